"""Time the link splitters on ogbl-ddi (2,135,822 directed = 1,067,911 undirected edges).

Target: a transductive split of ogbl-ddi in under 30 s on CPU.

    GNNKIT_DATA=../shared/datasets python benchmarks/linkpred_split_speed.py \
        --repeats 3 --out benchmarks/results/linkpred_split_speed.json
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
from pathlib import Path

import torch

from gnnkit._atomic import write_json_atomic
from gnnkit.profile import time_fn


def timed(fn, repeats):
    """(the last call's result, the wall time of each call): ``gnnkit.profile.time_fn``, keeping the result."""
    out = []
    times = time_fn(lambda: out.append(fn()), torch.device("cpu"), warmup=0, repeats=repeats)
    return out[-1], times


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="ogbl-ddi", help="dataset name (default: ogbl-ddi)")
    p.add_argument("--repeats", type=int, default=3, help="timed repetitions per case (default: 3)")
    p.add_argument("--methods", default="uniform,degree,hard",
                   help="negative methods to time (default: uniform,degree,hard)")
    p.add_argument("--out", default="benchmarks/results/linkpred_split_speed.json",
                   help="JSON results file (default: benchmarks/results/linkpred_split_speed.json)")
    args = p.parse_args()

    from gnnkit.data import load_dataset
    from gnnkit.linkpred import InductiveLinkSplit, TransductiveLinkSplit, check_leakage
    data = load_dataset(args.dataset)[0]
    results = []
    for method in args.methods.split(","):
        tf = TransductiveLinkSplit(0.1, 0.2, is_undirected=True, seed=0, neg_method=method)
        (tr, va, te), times = timed(lambda: tf(data), args.repeats if method != "hard" else 1)
        rep, ctimes = timed(lambda: check_leakage(tr, va, te, full_edge_index=data.edge_index), 1)
        results.append({"case": f"transductive/{method}", "seconds": times, "median_s": statistics.median(times),
                        "check_leakage_s": ctimes[0], "leakage_ok": rep.ok, "sizes": tf.stats})
        print(f"transductive {method:8s} median {statistics.median(times):6.2f} s  "
              f"(check_leakage {ctimes[0]:.2f} s, ok={rep.ok})", flush=True)
    for partition in ("random", "region"):
        tf = InductiveLinkSplit(0.1, 0.2, is_undirected=True, seed=0, partition=partition)
        (tr, va, te), times = timed(lambda: tf(data), args.repeats)
        rep = check_leakage(tr, va, te, full_edge_index=data.edge_index)
        results.append({"case": f"inductive/{partition}/uniform", "seconds": times,
                        "median_s": statistics.median(times), "leakage_ok": rep.ok, "sizes": tf.stats})
        print(f"inductive {partition:8s}   median {statistics.median(times):6.2f} s  (ok={rep.ok})", flush=True)
    payload = {
        "dataset": args.dataset, "num_nodes": int(data.num_nodes), "directed_edges": int(data.edge_index.size(1)),
        "target_s": 30.0, "results": results,
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "platform": platform.platform(), "python": platform.python_version(),
                    "torch": torch.__version__, "load_avg_1m": os.getloadavg()[0]},
        "note": "times are wall-clock; see load_avg_1m for how busy the machine was",
    }
    out = Path(args.out)
    write_json_atomic(payload, out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
