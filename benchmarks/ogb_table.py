"""The OGB table of docs/benchmarks.md from ``gnnkit ogb`` results (``results.json`` / ``log.json`` folders).

  python benchmarks/ogb_table.py benchmarks/results/ogb/*/

One row per (dataset, model, library): test score at the best validation epoch (mean ± std over the
finished runs), runs x epochs, the epoch of the best validation score, median training-epoch time and
peak memory, and OGB's leaderboard entry beside it with whether the score lies within one std of it.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from gnnkit.ogb.runner import spread


def rows(folder: Path) -> list:
    res = json.loads((folder / "results.json").read_text())
    log = json.loads((folder / "log.json").read_text())
    board = res.get("leaderboard")
    out = []
    for lib, s in res["summary"].items():
        runs = [r for r in log["runs"][lib] if r.get("complete")]
        best = ", ".join(str(r["best_epoch"]) for r in runs)
        t = s["test"]
        within = ""
        if board:
            within = "yes" if abs(t["mean"] - board[0]) <= board[1] else f"no ({t['mean'] - board[0]:+.4f})"
        out.append(f"| {res['dataset']} | {res['model']} | {lib} | {t['mean']:.4f} {spread(t, s['runs'])} | "
                   f"{s['runs']} × {res['protocol']['epochs']} | {best} | {s['epoch_s']:.1f} | {s['peak_mb']:.0f} | "
                   + (f"{board[0]:.4f} ± {board[1]:.4f} | {within} |" if board else "– | – |"))
    return out


def main() -> None:
    print("| dataset | model | layers | test (best valid epoch) | runs × epochs | best epoch | epoch (s) | "
          "peak (MiB) | OGB leaderboard | within 1 std |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for arg in sys.argv[1:]:
        if not (Path(arg) / "results.json").exists():  # a run stopped before its last epoch writes none
            print(f"skipped {arg}: no results.json (the run did not finish; its log.json has the epochs done)",
                  file=sys.stderr)
            continue
        for line in rows(Path(arg)):
            print(line)


if __name__ == "__main__":
    main()
