"""Argument types shared by the commands: every value is checked when the command line is parsed,
before any long work starts, and a bad one is one line naming the flag (argparse's
``gnnkit CMD: error: argument --flag: ...``, exit code 2)."""
from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Union

import torch

MAX_SEED = 2 ** 63 - 1
MAX_INT = 2 ** 31 - 1  # counts and sizes on the command line
MAX_FLOAT = float(torch.finfo(torch.float32).max)


def seed(value: str) -> int:
    try:
        v = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an integer seed") from None
    if not 0 <= v <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"{value} is outside [0, 2**63 - 1]; pass a smaller non-negative seed")
    return v


def _int_at_least(value: str, lo: int) -> int:
    try:
        v = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an integer") from None
    if v < lo:
        raise argparse.ArgumentTypeError(f"{value} must be >= {lo}")
    if v > MAX_INT:  # 2**70 hidden units or samples reached torch's overflow or allocation errors as tracebacks
        raise argparse.ArgumentTypeError(f"{value} is too large (at most 2**31 - 1 = {MAX_INT})")
    return v


def bounded_int(value: str) -> int:
    """An integer of at most 2**31 - 1 either way (the command names a value out of its own range)."""
    return _int_at_least(value, -MAX_INT)


def nonempty(value: str) -> str:
    """A non-empty string (an empty ``--edges ""`` fell back to the default synthetic graph)."""
    if not value.strip():
        raise argparse.ArgumentTypeError("an empty value")
    return value


def positive_int(value: str) -> int:
    return _int_at_least(value, 1)


def levels(value: str) -> tuple:
    """A comma-separated list of whole numbers >= 2 (FSQ levels), e.g. ``8,5,5``."""
    try:
        out = tuple(int(v) for v in value.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a comma-separated list of integers, e.g. 8,5,5") from None
    if any(v < 2 for v in out):
        raise argparse.ArgumentTypeError(f"{value}: every level must be >= 2, e.g. 8,5,5")
    return out


def nonneg_int(value: str) -> int:
    return _int_at_least(value, 0)


def _finite(value: str) -> float:
    try:
        v = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"{value} is not a finite number")
    if abs(v) > MAX_FLOAT:  # torch's float32 parameters: 1e308 failed as "cannot be converted ... without overflow"
        raise argparse.ArgumentTypeError(f"{value} is too large for float32 (at most {MAX_FLOAT:.3g})")
    return v


def nonneg_float(value: str) -> float:
    v = _finite(value)
    if v < 0:
        raise argparse.ArgumentTypeError(f"{value} must be >= 0")
    return v


def positive_float(value: str) -> float:
    v = _finite(value)
    if v <= 0:
        raise argparse.ArgumentTypeError(f"{value} must be > 0")
    return v


def open_fraction(value: str) -> float:
    v = _finite(value)
    if not 0.0 < v < 1.0:
        raise argparse.ArgumentTypeError(f"{value} must lie in (0, 1)")
    return v


def share(value: str) -> Union[int, float]:
    """A split size: a fraction in [0, 1) or a whole count >= 1 (``0.1``, ``500``)."""
    v = _finite(value)
    if v >= 1:
        if v != int(v):
            raise argparse.ArgumentTypeError(f"{value} must be a fraction in [0, 1) or a whole count")
        return int(v)
    if v < 0:
        raise argparse.ArgumentTypeError(f"{value} must be a fraction in [0, 1) or a count >= 1")
    return v


def probability(value: str) -> float:
    v = _finite(value)
    if not 0.0 <= v < 1.0:
        raise argparse.ArgumentTypeError(f"{value} must lie in [0, 1)")
    return v


def device(value: str) -> str:
    """A torch device this machine has: ``cpu``, ``cuda``, ``cuda:K``."""
    try:
        d = torch.device(value)
    except (RuntimeError, ValueError):
        raise argparse.ArgumentTypeError(f"{value!r} is not a torch device; use cpu, cuda or cuda:K") from None
    if d.type == "cuda":
        if not torch.cuda.is_available():
            raise argparse.ArgumentTypeError(f"{value}: CUDA is not available on this machine; use cpu")
        if d.index is not None and d.index >= torch.cuda.device_count():
            raise argparse.ArgumentTypeError(f"{value}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif d.type != "cpu":
        raise argparse.ArgumentTypeError(f"{value}: gnnkit runs on cpu or cuda")
    elif d.index not in (None, 0):  # torch takes "cpu:1" and runs on the one CPU device: not what was asked
        raise argparse.ArgumentTypeError(f"{value}: there is one CPU device (its threads are set by "
                                         "OMP_NUM_THREADS); use cpu")
    return value


def physical_memory() -> int:
    """This machine's memory in bytes (0 where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def check_model_size(hidden: int, layers: int, hidden_flag: str = "--hidden", layers_flag: str = "--num-layers"
                     ) -> None:
    """Refuse a model whose hidden-to-hidden weights alone (``(layers - 2) * hidden**2`` float32 numbers, a lower
    bound for every model the commands build: the first and last layers may be narrower) exceed this machine's
    memory, before building it (``--num-layers 100000000`` built layers for hours). A single layer too large to
    allocate is named by ``gnnkit.cli.console_main``."""
    need = 4 * (max(layers - 2, 0) * hidden * hidden + hidden)
    have = physical_memory()
    if have and need > have:
        raise ValueError(f"{hidden_flag} {hidden} with {layers_flag} {layers} needs at least {need / 2 ** 30:,.0f} GiB "
                         f"of weights; this machine has {have / 2 ** 30:,.0f} GiB; fix: a smaller {hidden_flag} or "
                         f"{layers_flag}")


def _writable_ancestor(p: Path) -> Path:
    a = p
    while not a.exists():
        if a.parent == a:
            break
        a = a.parent
    if not a.is_dir():
        raise argparse.ArgumentTypeError(f"{p}: {a} is a file, not a folder; choose another path")
    if not os.access(a, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"{p}: the folder {a} is not writable; choose another path")
    try:  # os.access says yes to root everywhere (and knows nothing of /proc or read-only mounts): try a file
        with tempfile.TemporaryFile(dir=a):
            pass
    except OSError as e:
        raise argparse.ArgumentTypeError(f"{p}: cannot write in the folder {a} ({e.strerror or e}); choose another "
                                         "path") from None
    return a


def out_file(value: str) -> str:
    """A file to write: not empty, not an existing folder, in a folder that exists or can be made and is
    writable."""
    if not value.strip():
        raise argparse.ArgumentTypeError("an empty path; pass a file path")
    p = Path(value).expanduser()  # "--out=~/x" reaches us unexpanded: checked and returned expanded
    if p.is_dir() or value.endswith(("/", os.sep)):  # "dir/" names a folder even before it exists
        raise argparse.ArgumentTypeError(f"{value} is a folder; pass a file path, e.g. {p / 'results.json'}")
    if p.exists() and not p.resolve().is_file():  # /dev/null, a pipe: the atomic rename would replace it
        raise argparse.ArgumentTypeError(f"{value} is not a regular file (a device or pipe); gnnkit writes whole "
                                         "files through a rename, which would replace it; pass a file path")
    _writable_ancestor(p.parent if str(p.parent) else Path("."))
    return str(p)


def report_file(value: str) -> str:
    """A JSON report to write (:func:`out_file`) that may replace an earlier report, but not a file of another
    kind: an existing file that is not JSON (a checkpoint, a split's tensors, an image) or a JSON file that a gnnkit
    folder lives on (a split's or run's ``manifest.json``, an OGB run's ``log.json``) is refused — the atomic
    write replaced it, and rewrote its ``.sha256`` record, so ``gnnkit verify`` called the loss intact."""
    value = out_file(value)
    p = Path(value)
    if not p.is_file():
        return value
    with open(p, "rb") as f:  # one read: the whole of a report-sized file, the head of anything larger
        data = f.read(2 ** 24)
    if data.lstrip()[:1] not in (b"{", b"["):
        raise argparse.ArgumentTypeError(f"{value} exists and is not a JSON report (a checkpoint, tensors or an "
                                         "image?); gnnkit does not replace it; fix: another path for the report")
    try:
        obj = json.loads(data)
    except ValueError:  # (a larger file's head, or not quite JSON: no gnnkit record is either)
        obj = None
    own = isinstance(obj, dict) and str(obj.get("format", "")).startswith("gnnkit")
    if own or (p.name == "log.json" and (p.parent / "checkpoint.pt").is_file()):
        raise argparse.ArgumentTypeError(f"{value} is the record of a gnnkit split or run (its manifest or log); "
                                         "gnnkit does not replace it; fix: another path for the report")
    return value


def figure_file(value: str) -> str:
    """An image to write (:func:`out_file`) whose suffix names a format matplotlib writes (``.png``, ``.svg``,
    ``.pdf``, ...; none: PNG), checked before any work."""
    from gnnkit._atomic import figure_format
    value = out_file(value)
    try:
        figure_format(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def out_dir(value: str) -> str:
    """A folder to write: not empty, not an existing file, with a writable (existing) ancestor."""
    if not value.strip():
        raise argparse.ArgumentTypeError("an empty path; pass a folder path")
    p = Path(value).expanduser()
    if p.exists() and not p.is_dir():
        raise argparse.ArgumentTypeError(f"{value} is a file; pass a folder path")
    _writable_ancestor(p)  # the folder itself when it exists, else its nearest existing ancestor
    return str(p)
