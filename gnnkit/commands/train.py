"""``gnnkit train``: node classification with gnnkit's layers side by side with PyG's."""
import argparse
from pathlib import Path

from . import _args

HELP = "train a node classifier (default: 2-layer GCN on Cora) with gnnkit and PyG layers and print test accuracy"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from gnnkit.data import dataset_names
    from gnnkit.train import MODELS, TrainConfig
    d = TrainConfig()
    p.add_argument("--dataset", default=d.dataset, help=f"dataset name (node classification): {dataset_names()[:3]}")
    p.add_argument("--model", default=d.model, choices=sorted(MODELS), help="model")
    p.add_argument("--hidden", type=_args.positive_int, default=d.hidden, help="hidden units")
    p.add_argument("--dropout", type=_args.probability, default=d.dropout, help="dropout probability")
    p.add_argument("--lr", type=_args.positive_float, default=d.lr, help="Adam learning rate")
    p.add_argument("--weight-decay", type=_args.nonneg_float, default=d.weight_decay, help="Adam weight decay")
    p.add_argument("--epochs", type=_args.positive_int, default=d.epochs, help="training epochs per run")
    p.add_argument("--runs", type=_args.positive_int, default=d.runs,
                   help="runs (seeds seed, seed+1, ...); the mean ± std over them is printed (± 0 for one run)")
    p.add_argument("--seed", type=_args.seed, default=d.seed, help="seed of the first run")
    p.add_argument("--impl", choices=["both", "gnnkit", "pyg"], default="both",
                   help="which implementation(s) to train")
    p.add_argument("--root", default=None, help="data root (default: $GNNKIT_DATA, then the bundled datasets/)")
    p.add_argument("--out", type=_args.report_file, default=None, help="also write the results as JSON to this file")
    p.add_argument("--num-layers", type=_args.positive_int, default=d.num_layers, help="conv layers")
    p.add_argument("--diagnose", type=_args.figure_file, default=None, metavar="PNG",
                   help="after training, print the Dirichlet energy and MAD of every layer's output "
                        "(over-smoothing) and plot energy against depth to this image (.png; .svg, .pdf, ... "
                        "by its suffix)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    from gnnkit._atomic import write_json_verified
    from gnnkit.train import TrainConfig, format_table, run as train_run
    for name in ("hidden", "epochs", "runs"):
        if getattr(args, name) < 1:
            raise SystemExit(f"gnnkit train: --{name} must be >= 1, got {getattr(args, name)}")
    _args.check_model_size(args.hidden, args.num_layers)
    if not 0.0 <= args.dropout < 1.0:
        raise SystemExit(f"gnnkit train: --dropout must lie in [0, 1), got {args.dropout}")
    if args.out and args.diagnose and Path(args.out).resolve() == Path(args.diagnose).resolve():
        raise SystemExit("gnnkit train: --diagnose and --out name the same file: the JSON would replace the plot; "
                         "fix: two paths")
    impls = ["gnnkit", "pyg"] if args.impl == "both" else [args.impl]
    cfg = TrainConfig(dataset=args.dataset, model=args.model, hidden=args.hidden, dropout=args.dropout,
                      lr=args.lr, weight_decay=args.weight_decay, epochs=args.epochs, runs=args.runs,
                      seed=args.seed, impls=impls, root=args.root, num_layers=args.num_layers,
                      diagnose=args.diagnose is not None)
    from gnnkit import distributed
    try:
        res = train_run(cfg, progress=not args.no_progress and distributed.is_main_process())
    finally:  # under torchrun: the process group closed on every rank (as gnnkit ogb does)
        distributed.shutdown()
    if not distributed.is_main_process():  # under torchrun rank 0 reports and writes
        return 0
    print(format_table(res))
    if args.diagnose:
        from gnnkit.train import plot_diagnostics
        plot_diagnostics(res, args.diagnose)
        print(f"energy against depth plotted to {args.diagnose}")
    if args.out:
        write_json_verified(res, args.out)
        print(f"results written to {args.out}")
    return 0
