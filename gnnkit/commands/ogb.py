"""``gnnkit ogb``: OGB's baselines on the official split and evaluator, gnnkit's layers beside PyG's."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from . import _args

if TYPE_CHECKING:  # pragma: no cover
    from gnnkit.ogb import OGBConfig

HELP = "run an OGB baseline (official split and Evaluator) with gnnkit's and PyG's layers side by side"

DEFAULT_MODEL = {"ogbg": "gin-virtual", "ogbn-arxiv": "gcn", "ogbn-products": "sage", "ogbl": "sage"}

EPILOG = """\
datasets and models (files under $GNNKIT_DATA/ogb/, OGB's layout; gnnkit never downloads):
  ogbg-molhiv    gcn, gin, gcn-virtual, gin-virtual   5 layers, width 300, batch 32, 100 epochs
                 gt (GraphTransformerConv; --layers gnnkit: no PyG counterpart)
  ogbn-arxiv     gcn, sage                            3 layers, 256 hidden, full batch, 500 epochs
  ogbn-products  sage                                 NeighborLoader 15/10/5, batch 1024, 20 epochs
  ogbl-ddi       gcn, sage                            gnnkit's link trainer, Hits@20, 200 epochs
OGB's protocol runs 10 seeds (--runs 10, the default); measured numbers are in docs/benchmarks.md.

measured on 2 CPU cores (one run each; test score at the best validation epoch):
  ogbg-molhiv gin-virtual, 10 epochs: 0.7380 (gnnkit layers)            OGB 0.7707 +- 0.0149
  ogbg-molhiv gcn, 40 epochs: 0.7413 (gnnkit layers)                   OGB 0.7606 +- 0.0097
  ogbg-molhiv gcn, 10 epochs: 0.7065 (gnnkit), 0.7380 (PyG)
  ogbg-molhiv gt, 10 epochs: 0.6700 (gnnkit only; no leaderboard entry)
  ogbl-ddi sage, 100 of 200 epochs: Hits@20 0.5063 (gnnkit)             OGB 0.5390 +- 0.0474
    (on OGB's every-5th-epoch schedule, which the runner uses; 0.4942 selected over every epoch)
  training speed, gnnkit/PyG paired: ddi 3.75x faster at 0.40x memory; molhiv 0.96-0.97x

examples:
  gnnkit ogb ogbg-molhiv --model gin-virtual --runs 10 --device cuda
  gnnkit ogb ogbg-molhiv --model gcn --runs 1 --epochs 5          # a short run on CPU
  gnnkit ogb ogbl-ddi --model sage --layers gnnkit --out runs/ddi --resume
  torchrun --nproc-per-node 4 -m gnnkit ogb ogbg-molhiv --device cuda   # data-parallel, docs/distributed.md
"""


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """The epilog as written, and each option's default in its help (where the help does not name it)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        # identity, not ==: a default of 0 (--seed) is shown, only None / False (store_true) / SUPPRESS are not
        if "default" in text or any(action.default is v for v in (None, False, argparse.SUPPRESS)) or \
                not action.option_strings:
            return text
        return text + " (default: %(default)s)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.epilog = EPILOG
    p.formatter_class = _Formatter
    p.add_argument("dataset", help="ogbg-molhiv, ogbn-arxiv, ogbn-products or ogbl-ddi")
    p.add_argument("--model", type=_args.nonempty, default=None,
                   help="model (default: gin-virtual for ogbg, gcn for arxiv, sage for products and ddi)")
    p.add_argument("--runs", type=_args.positive_int, default=None, help="seeds (default: OGB's 10)")
    p.add_argument("--epochs", type=_args.positive_int, default=None, help="epochs per run (default: OGB's)")
    p.add_argument("--layers", default=None,
                   help="whose conv layers: gnnkit, pyg, or both as gnnkit,pyg (the same model and weights; "
                        "default both, gnnkit alone for gt)")
    p.add_argument("--device", type=_args.device, default="cpu", help="torch device")
    p.add_argument("--seed", type=_args.seed, default=0, help="seed of the first run (run r uses seed + r)")
    p.add_argument("--hidden", type=_args.positive_int, default=None, help="hidden width (default: OGB's)")
    p.add_argument("--num-layers", type=_args.positive_int, default=None, help="conv layers (default: OGB's)")
    p.add_argument("--dropout", type=_args.probability, default=None, help="dropout (default: OGB's)")
    p.add_argument("--lr", type=_args.positive_float, default=None, help="Adam learning rate (default: OGB's)")
    p.add_argument("--batch-size", type=_args.nonneg_int, default=None,
                   help="graphs / seed nodes / edges per step (default: OGB's; 0 = full batch, ogbn-* and ogbl-* only; "
                        "ogbg-* takes >= 2 graphs); under torchrun "
                        "graphs and seed nodes are per process, edges (ogbl) are shared out")
    p.add_argument("--fanout", default=None,
                   help="ogbn-* mini-batches (--batch-size > 0): neighbours per layer, e.g. 15,10,5 (default: OGB's "
                        "15,10,5 for 3 layers; for another --num-layers its first numbers, or the last repeated)")
    p.add_argument("--batch-norm", choices=("yes", "no"), default=None,
                   help="ogbn-*: batch norm between the convs (default: OGB's, yes for arxiv, no for products)")
    p.add_argument("--root", default=None, help="data root (default: $GNNKIT_DATA, then the bundled datasets/)")
    p.add_argument("--out", type=_args.out_dir, default=None,
                   help="folder for log.json, checkpoint.pt and results.json (default: ogb-runs/DATASET-MODEL)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out after an interruption")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")


def config_from_args(args: argparse.Namespace) -> "OGBConfig":
    from gnnkit.ogb import OGBConfig, family
    fam = family(args.dataset)
    name = args.dataset.lower().replace("_", "-")  # ogbn_arxiv too (family checked the name)
    model = args.model or DEFAULT_MODEL.get(name, DEFAULT_MODEL.get(fam))
    layers = None if args.layers is None else tuple(x.strip() for x in args.layers.split(",") if x.strip())
    extra = {}
    if args.fanout is not None:  # where it applies is OGBConfig's check
        try:
            extra["fanout"] = [int(k) for k in args.fanout.split(",")]
        except ValueError:
            raise ValueError(f"--fanout must be comma-separated integers, got {args.fanout!r}") from None
    if args.batch_norm is not None:
        if fam != "ogbn":
            raise ValueError("--batch-norm applies to ogbn-* datasets (the molecule models always use it)")
        extra["batch_norm"] = args.batch_norm == "yes"
    return OGBConfig(dataset=args.dataset, model=model, runs=args.runs, epochs=args.epochs, layers=layers,
                     device=args.device, seed=args.seed, hidden=args.hidden, num_layers=args.num_layers,
                     dropout=args.dropout, lr=args.lr, batch_size=args.batch_size, root=args.root, extra=extra)


def run(args: argparse.Namespace) -> int:
    from gnnkit import distributed
    from gnnkit._atomic import mark_unsaved
    from gnnkit.data import DatasetIntegrityError, DatasetNotFoundError
    from gnnkit.ogb import format_table, run as ogb_run
    try:
        cfg = config_from_args(args)
        _args.check_model_size(cfg.hidden, cfg.num_layers)
        out = args.out or f"ogb-runs/{cfg.dataset}-{cfg.model}"
        try:
            res = ogb_run(cfg, out, resume=args.resume, progress=not args.no_progress)
        except KeyboardInterrupt as e:
            kept = Path(out).expanduser()
            if not (kept / "checkpoint.pt").exists() and not (kept / "log.json").exists():
                mark_unsaved(e, f"nothing was kept yet in {out}: a run is saved after each finished epoch")
            raise
    except (ValueError, DatasetNotFoundError, DatasetIntegrityError) as e:
        print(f"gnnkit ogb: error: {str(e).removeprefix('gnnkit ogb: ')}", file=sys.stderr)
        return 2
    except distributed.DistributedError as e:
        print(f"gnnkit ogb: error: {e}", file=sys.stderr)
        return 3
    finally:
        distributed.shutdown()
    if distributed.is_main_process():
        print(format_table(res))
        print(f"results in {out}/results.json (per-epoch log: {out}/log.json)")
    return 0
