"""Training throughput of ``gnnkit ogb`` with 1 and with N processes (torchrun, data-parallel).

Runs the same command once per world size and reads the training time of its epochs from ``log.json``
(training only, evaluation excluded; the first, memory-measured epoch left out when there are more):

  python benchmarks/distributed_throughput.py --worlds 1,2 --epochs 2 -- ogbg-molhiv --model gin --hidden 64

With N processes on a machine of C cores each process gets C / N threads (``OMP_NUM_THREADS``), so on a CPU
machine the comparison is at equal total cores.  Writes benchmarks/results/distributed_throughput_DEVICE.json.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from gnnkit._atomic import write_json_atomic

RESULTS = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--worlds", default="1,2")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    p.add_argument("--device", default="cpu")
    p.add_argument("ogb_args", nargs=argparse.REMAINDER, help="after --: the dataset and options of gnnkit ogb")
    args = p.parse_args()
    ogb_args = [a for a in args.ogb_args if a != "--"] or ["ogbg-molhiv", "--model", "gin", "--hidden", "64"]
    rows = []
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
    for world in (int(w) for w in args.worlds.split(",")):
        out = Path(tempfile.mkdtemp(prefix=f"dist{world}_"))
        cmd = [*ogb_args, "--runs", "1", "--epochs", str(args.epochs), "--layers", "gnnkit", "--no-progress",
               "--device", args.device, "--out", str(out / "run")]
        threads = max(1, args.cores // world)
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        if world == 1:
            full = [sys.executable, "-m", "gnnkit", "ogb", *cmd]
        else:
            full = [torchrun, "--nproc-per-node", str(world), "--master-port", str(29500 + world), "-m", "gnnkit",
                    "ogb", *cmd]
        proc = subprocess.run(full, cwd=REPO, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"world {world} failed:\n{proc.stderr[-3000:]}")
        log = json.loads((out / "run" / "log.json").read_text())
        epochs = log["runs"]["gnnkit"][0]["epochs"]
        timed = [e["train_s"] for e in epochs if not e.get("memory_measured")] or [e["train_s"] for e in epochs]
        rows.append({"world_size": world, "threads_per_process": threads, "epoch_train_s": statistics.median(timed),
                     "epochs": [e["train_s"] for e in epochs]})
        print(f"{world} process(es) x {threads} thread(s): {rows[-1]['epoch_train_s']:.1f} s per training epoch",
              flush=True)
        shutil.rmtree(out, ignore_errors=True)
    base = rows[0]["epoch_train_s"]
    for r in rows:
        r["speedup_over_first"] = base / r["epoch_train_s"]
    path = RESULTS / f"distributed_throughput_{args.device}.json"
    write_json_atomic({"command": ["gnnkit", "ogb", *ogb_args], "epochs": args.epochs, "cores": args.cores,
                       "rows": rows}, path)
    print(f"written {path}")


if __name__ == "__main__":
    main()
