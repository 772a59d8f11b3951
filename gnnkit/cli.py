"""The ``gnnkit`` command line: one sub-command per module in ``gnnkit.commands``.

Each module in :data:`COMMANDS` defines ``HELP`` (one line), ``add_arguments(parser)``
and ``run(args) -> int``.  Every module is imported (for its ``HELP``; keep their top-level imports light),
but only the command that runs gets its arguments added: ``gnnkit vq``'s import ``gnnkit.latent`` and PyG,
seconds that ``gnnkit --help`` and the other commands do not pay.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import List, Optional

# name -> module; add a line here to add a sub-command
COMMANDS = {
    "train": "gnnkit.commands.train",
    "split": "gnnkit.commands.split",
    "linkpred": "gnnkit.commands.linkpred",
    "ogb": "gnnkit.commands.ogb",
    "profile": "gnnkit.commands.profile",
    "vq": "gnnkit.commands.vq",
    "verify": "gnnkit.commands.verify",
}


def build_parser(argv: Optional[List[str]] = None) -> argparse.ArgumentParser:
    """The parser; with ``argv``, only the command it names (its first word) gets its arguments (all without)."""
    chosen = None if argv is None else next((a for a in argv if not a.startswith("-")), "")
    parser = argparse.ArgumentParser(
        prog="gnnkit",
        description="gnnkit: drop-in PyG layers on CSR sparse ops, with Triton kernels on CUDA.")
    from gnnkit import __version__
    parser.add_argument("--version", action="version", version=f"gnnkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, module in COMMANDS.items():
        mod = importlib.import_module(module)
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP,
                           formatter_class=HelpFormatter)
        if chosen is None or name == chosen:
            mod.add_arguments(p)
        p.set_defaults(_module=mod)
    return parser


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """argparse's defaults in the help, except where there is none to show (None, a required option) or the
    text already says it ("(default: as many as test graphs)")."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default is None or action.required or "default:" in text:
            return text
        return super()._get_help_string(action)


def main(argv: Optional[List[str]] = None) -> int:
    """Run one command and return its exit code; a flag argparse rejects raises ``SystemExit(2)`` after
    printing its one-line error (``--help``/``--version``: ``SystemExit(0)``)."""
    given = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(given)
    args, extra = parser.parse_known_args(given)
    if extra:  # named by the sub-command that was given them ("gnnkit vq train: error: ..."), not by "gnnkit"
        at = given.index(args.command) if args.command in given else len(given)
        before = [a for a in extra if a in given[:at]]  # given to gnnkit itself, before the command's name
        (parser if before else _chosen_parser(parser, args)).error(
            f"unrecognized arguments: {' '.join(before or extra)}")
    return int(args._module.run(args) or 0)


def _chosen_parser(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The innermost sub-command parser ``args`` were parsed with (``gnnkit vq train``'s for ``vq train``)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            chosen = action.choices.get(getattr(args, action.dest, None) or "")
            return parser if chosen is None else _chosen_parser(chosen, args)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, ``timeout``, ``docker stop``, a batch scheduler) raised in the ``gnnkit`` executable as an
    interrupt, so an unfinished write removes its temporary files as on Ctrl-C (the default action killed the
    process and left them, a whole split copy among them); exit status 143 (128 + SIGTERM)."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated()


def console_main(argv: Optional[List[str]] = None) -> int:
    """The ``gnnkit`` executable: :func:`main`, with bad input reported as one line, not a traceback."""
    import signal
    import threading
    previous = None
    if threading.current_thread() is threading.main_thread() and \
            signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:  # (a handler someone installed stays theirs)
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    given = argv if argv is not None else sys.argv[1:]
    try:
        return _console_main(given)
    except Terminated:  # a SIGTERM while an error was being reported (torchrun's agent stops the survivors so)
        print(f"gnnkit {_command(given)}: terminated".replace("gnnkit : ", "gnnkit: "), file=sys.stderr)
        return 143
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _command(given: List[str]) -> str:
    """The command ``given`` runs, as its errors name it: ``train``, ``vq train`` (argparse's own say so too)."""
    at = next((k for k, a in enumerate(given) if a in COMMANDS), None)
    cmd = "" if at is None else given[at]
    if cmd == "vq" and at + 1 < len(given) and given[at + 1] in ("train", "sample", "eval"):
        cmd = f"vq {given[at + 1]}"
    return cmd


def _console_main(given: List[str]) -> int:
    cmd = _command(given)
    # the runs the same command with --resume continues (vq train names its own resume command)
    resumable = cmd == "ogb" or (cmd == "linkpred" and any(
        a == "--checkpoint" or a.startswith("--checkpoint=") for a in given))
    try:
        return main(given)
    except SystemExit as e:  # argparse: its error line is printed already; a command's own message is not
        if isinstance(e.code, str):
            print(e.code, file=sys.stderr)
            return 2
        return 0 if e.code is None else e.code
    except (ValueError, IndexError, FileNotFoundError) as e:
        print(f"gnnkit {cmd}: error: {e}".replace("gnnkit : ", "gnnkit: "), file=sys.stderr)
        return 2
    except RuntimeError as e:  # under torchrun: another rank died (a failed collective), one line, exit 3
        if _out_of_memory(e):  # a model or batch too large for this machine: one line naming the sizes, exit 1
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            print(f"gnnkit {cmd}: error: out of memory ({first[:200]}); fix: smaller sizes (--hidden, layers, "
                  "batch size) or a device with more memory", file=sys.stderr)
            return 1
        from gnnkit.distributed import DistributedError, comm_failure, is_comm_error
        if isinstance(e, DistributedError):
            print(f"gnnkit {cmd}: error: {e}", file=sys.stderr)
            return 3
        if os.environ.get("WORLD_SIZE", "1") != "1" and is_comm_error(e):
            print(f"gnnkit {cmd}: error: {comm_failure(e, 'training', resumable=resumable)}",
                  file=sys.stderr)
            return 3
        raise
    except BrokenPipeError:  # `gnnkit ... | head`: the reader left; quiet, as other tools (128 + SIGPIPE)
        try:  # Python's flush of stdout at exit would raise again
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 141
    except KeyboardInterrupt as e:  # Ctrl-C, SIGTERM: one line, not a traceback; what is saved is whole
        saved = getattr(e, "gnnkit_saved", None)  # gnnkit._atomic.mark_written: the result was in place, whole
        unsaved = getattr(e, "gnnkit_unsaved", None)  # gnnkit._atomic.mark_unsaved: nothing to resume yet
        print(f"gnnkit {cmd}: {'terminated' if isinstance(e, Terminated) else 'interrupted'}"
              + (f" ({saved})" if saved else f" ({unsaved})" if unsaved
                 else "; continue with the same command and --resume" if resumable else ""),
              file=sys.stderr)
        return 143 if isinstance(e, Terminated) else 130


def _out_of_memory(e: BaseException) -> bool:
    """torch's allocation failures: ``torch.OutOfMemoryError`` (CUDA) and the CPU allocator's enforce message."""
    import torch
    return isinstance(e, torch.OutOfMemoryError) or "can't allocate memory" in str(e)


if __name__ == "__main__":
    sys.exit(console_main())
