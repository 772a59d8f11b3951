"""``gnnkit verify``: check files and folders gnnkit saved (logic in :mod:`gnnkit.integrity`)."""
from __future__ import annotations

import argparse
import sys

from . import _args

HELP = "check saved files (checkpoints, logs, results, splits, samples, datasets) against their SHA-256 records"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", metavar="PATH", type=_args.nonempty,
                   help="files or folders gnnkit wrote (run folders, split folders, sample folders, a data root)")
    p.add_argument("--strict", action="store_true",
                   help="also fail when something has no record to check against (status 'unchecked')")
    p.epilog = ("Exit status: 0 when everything checked is intact, 1 when something is not (one line each, with "
                "the fix), 2 when a path does not exist or cannot be read (the others are still checked and reported).")


def run(args: argparse.Namespace) -> int:
    from gnnkit.integrity import BAD, UNCHECKED, verify
    findings, missing = [], []
    for path in args.paths:  # every path checked, so a missing one cannot hide a damaged one
        try:
            findings += verify(path)
        except FileNotFoundError as e:
            missing.append(str(e))
        except PermissionError as e:  # e.g. /proc: a folder gnnkit did not write, with entries no one may read
            missing.append(f"{path}: cannot read {e.filename or path} ({e.strerror}); fix: a path gnnkit wrote "
                           "(a run, split, sample or data folder)")
    for f in findings:
        print(f, file=sys.stderr if f.status == BAD else sys.stdout)
    for m in missing:
        print(f"error: {m}", file=sys.stderr)
    bad = [f for f in findings if f.status == BAD or (args.strict and f.status == UNCHECKED)]
    return 2 if missing else 1 if bad else 0
