"""Graph generation benchmark: train graph VQ-VAEs + priors, evaluate MMD², write JSON and a markdown table.

    python benchmarks/generation.py                       # every run in RUNS (long on 2 CPU cores)
    python benchmarks/generation.py --only cs_vq1         # one run
    python benchmarks/generation.py --report              # only rebuild the table from the JSON files

Each run is exactly ``gnnkit vq train DATASET ARGS --out RUN_DIR`` followed by
``gnnkit vq eval RUN_DIR --repeats 5 --json benchmarks/results/generation/NAME.json`` (the library
calls behind those commands: :class:`gnnkit.latent.train.VQRun`). Runs resume from their folder when
interrupted. The table (``benchmarks/results/generation/table.md``) lists, per dataset, the GraphRNN/GDSS
protocol (Gaussian-EMD) and the GRAN protocol (Gaussian-TV), mean ± std over the 5 sampling seeds, the
calibration row (random training graphs against the test graphs) and the training seconds.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
OUT = ROOT / "results" / "generation"

# name -> (dataset, overrides of gnnkit.latent.train.config_for)
RUNS = {
    "cs_vq1": ("community-small", dict(quantizer="vq", levels=1)),
    "cs_vq1_seed1": ("community-small", dict(quantizer="vq", levels=1, seed=1)),
    "cs_fsq1": ("community-small", dict(quantizer="fsq", levels=1, epochs=300)),
    "cs_gumbel1": ("community-small", dict(quantizer="gumbel", levels=1, epochs=300)),
    "cs_vq2": ("community-small", dict(quantizer="vq", levels=2, epochs=300)),
    "cs_vq1_canonical": ("community-small", dict(quantizer="vq", levels=1, random_order=False, prior_epochs=300)),
    "ego_vq1": ("ego-small", dict(quantizer="vq", levels=1)),
    "enz_vq1": ("enzymes", dict(quantizer="vq", levels=1)),
}
STATS = ("degree", "clustering", "orbit")


def run_one(name: str, runs_dir: Path, repeats: int) -> dict:
    from gnnkit._atomic import write_json_atomic
    from gnnkit.latent.train import CHECKPOINT, VQRun, config_for
    dataset, overrides = RUNS[name]
    run_dir = runs_dir / name
    if (run_dir / CHECKPOINT).exists():
        run = VQRun.resume(run_dir)
    else:
        run = VQRun.create(config_for(dataset, **overrides), run_dir)
    run.fit(progress=sys.stderr.isatty())
    res = run.evaluate(repeats=repeats)
    res["name"] = name
    write_json_atomic(res, OUT / f"{name}.json")
    return res


def _cell(res: dict, key: str) -> str:
    return f"{res[key]:.4f} ± {res[key + '_std']:.4f}"


def report() -> str:
    from gnnkit._atomic import atomic_write
    rows = {}
    for path in sorted(OUT.glob("*.json")):
        res = json.loads(path.read_text())
        rows.setdefault(res["dataset"], []).append(res)
    lines = []
    for dataset, results in rows.items():
        lines.append(f"### {dataset}: {results[0]['description']}")
        lines.append(f"{results[0]['num_samples']} samples vs {results[0]['num_test']} test graphs, "
                     f"mean ± std over {len(results[0]['sample_seeds'])} sampling seeds, 2 CPU cores")
        lines.append("")
        lines.append("| run | quantizer | levels | order | protocol | degree | clustering | orbit | avg | "
                     "valid | unique | novel | edge AUC | train s |")
        lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for res in results:
            cfg = res["config"]
            order = "random BFS" if cfg.get("random_order", True) else "canonical"
            secs = sum(res["train_seconds"].values())
            for protocol in ("graphrnn", "gran"):
                m = res[f"mmd_{protocol}"]
                avg = sum(m[s] for s in STATS) / 3
                lines.append(f"| {res['name']} | {cfg['quantizer']} | {cfg['levels']} | {order} | {protocol} | "
                             + " | ".join(_cell(m, s) for s in STATS) + f" | {avg:.4f} | {res['validity']:.2f} | "
                             f"{res['uniqueness']:.2f} | {res['novelty']:.2f} | "
                             f"{res['reconstruction_test']['edge_auc']:.3f} | {secs:.0f} |")
        first = results[0]
        for protocol in ("graphrnn", "gran"):
            m = first[f"mmd_{protocol}"]
            avg = sum(m["train_subset_" + s] for s in STATS) / 3
            lines.append(f"| training graphs (calibration) | – | – | – | {protocol} | "
                         + " | ".join(_cell(m, "train_subset_" + s) for s in STATS) + f" | {avg:.4f} | | | | | |")
        lines.append("")
    text = "\n".join(lines)
    atomic_write(OUT / "table.md", (text + "\n").encode())
    return text


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", nargs="*", default=None, help=f"runs to do (default: all of {list(RUNS)})")
    p.add_argument("--runs-dir", default="runs/generation", help="where the run folders (checkpoints) go")
    p.add_argument("--repeats", type=int, default=5, help="sampling seeds per evaluation")
    p.add_argument("--report", action="store_true", help="only rebuild the table from the JSON files")
    args = p.parse_args(argv)
    if not args.report:
        names = args.only if args.only is not None else list(RUNS)
        unknown = [n for n in names if n not in RUNS]
        if unknown:
            p.error(f"unknown runs {unknown}; available: {list(RUNS)}")
        os.environ.setdefault("GNNKIT_DATA", str(ROOT.parent.parent / "shared" / "datasets"))
        for name in names:
            run_one(name, Path(args.runs_dir), args.repeats)
    print(report())
    return 0


if __name__ == "__main__":
    sys.exit(main())
