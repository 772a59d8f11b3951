"""Cora link prediction, GAE-style (GCN encoder + dot decoder), over several seeds.

Each seed runs ``gnnkit linkpred Cora --model gcn --decoder dot --seed S`` (the seed
makes both the split, 85/5/10 with 30% of training edges supervision-only, and the
training) and writes ``benchmarks/results/linkpred_cora_gcn_seed{S}.json``; runs whose
file exists are reused unless ``--force``.  The summary (mean and sample std of the test
metrics at the best validation epoch) goes to ``linkpred_cora_gcn_summary.json``.
Target: test AUC >= 0.91 (Kipf & Welling 2016, GAE: AUC 0.910, AP 0.920).

    GNNKIT_DATA=../shared/datasets python benchmarks/linkpred_cora.py --seeds 0 1 2
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds (default: 0 1 2)")
    p.add_argument("--force", action="store_true", help="re-run seeds whose results exist")
    args = p.parse_args()
    from gnnkit.cli import main as gnnkit
    runs = []
    for s in args.seeds:
        path = RESULTS / f"linkpred_cora_gcn_seed{s}.json"
        if args.force or not path.is_file():
            rc = gnnkit(["linkpred", "Cora", "--model", "gcn", "--decoder", "dot", "--seed", str(s),
                         "--no-progress", "--json", str(path)])
            if rc != 0:
                return rc
        runs.append(json.loads(path.read_text()))
    summary = {"dataset": "Cora", "model": "gcn+dot", "seeds": args.seeds, "target_auc": 0.91,
               "config": runs[0]["config"], "split_sizes": runs[0]["split"].get("sizes"),
               "per_seed": [{"seed": s, "best_epoch": r["best_epoch"], "test": r["test"], "seconds": r["seconds"]}
                            for s, r in zip(args.seeds, runs)]}
    for k in runs[0]["test"]:
        vals = [r["test"][k] for r in runs]
        summary[f"test_{k}_mean"] = statistics.mean(vals)
        summary[f"test_{k}_std"] = statistics.stdev(vals) if len(vals) > 1 else 0.0
        print(f"test {k:9s} {summary[f'test_{k}_mean']:.4f} ± {summary[f'test_{k}_std']:.4f}")
    out = RESULTS / "linkpred_cora_gcn_summary.json"
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
