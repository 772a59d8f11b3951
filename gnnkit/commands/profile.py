"""``gnnkit profile``: time each sparse op on each backend on one graph (logic in :mod:`gnnkit.profile`)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import _args

HELP = "time gnnkit's sparse ops against PyG, torch.sparse and torch-scatter/sparse on one graph"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from gnnkit.profile import BACKENDS, MODES, OPS
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--dataset", type=_args.nonempty,
                     help="a dataset name for gnnkit.data.load_dataset (e.g. Cora, ogbl-ddi); "
                          "graph collections are profiled as one disjoint union")
    src.add_argument("--edges", type=_args.nonempty,
                     help="edge-list file: .pt with a [2, E] tensor, or text 'src dst' per line")
    src.add_argument("--synthetic", nargs=2, type=_args.positive_int, metavar=("N", "E"), default=None,
                     help="synthetic power-law graph with N nodes and E edges (default when no source "
                          "is given: 10000 100000; --quick: 300 2000)")
    parser.add_argument("--features", "-F", type=_args.bounded_int, default=None,
                        help="feature width F of spmm/sddmm/segment (default 64; --quick: 16)")
    parser.add_argument("--heads", type=_args.bounded_int, default=None,
                        help="heads H of softmax and gat (default 8; --quick: 2)")
    parser.add_argument("--head-dim", type=_args.bounded_int, default=None, help="gat width per head (default F // H)")
    parser.add_argument("--dtype", choices=("float32", "float16", "bfloat16"), default="float32",
                        help="feature dtype")
    parser.add_argument("--device", type=_args.device, default=None,
                        help="cpu or cuda[:k] (default: cuda when available)")
    parser.add_argument("--ops", nargs="+", choices=OPS, default=list(OPS), help="ops to time")
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=None,
                        help="backends to time (default: every one available here)")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES), help="fwd and/or fwd+bwd")
    parser.add_argument("--warmup", type=_args.bounded_int, default=None,
                        help="untimed runs before timing (default 2; --quick: 1)")
    parser.add_argument("--repeats", type=_args.bounded_int, default=None,
                        help="timed runs, the median is reported (default 10; --quick: 3)")
    parser.add_argument("--no-compile", action="store_true", help="skip the pyg-compiled backend")
    parser.add_argument("--quick", action="store_true",
                        help="tiny run for tests: default graph 300 nodes / 2000 edges, F=16, H=2, 1 warmup, "
                             "3 repeats, no torch.compile, 16 MiB copy probe (flags given explicitly win)")
    parser.add_argument("--seed", type=_args.seed, default=0,
                        help="seed of the synthetic graph and the features")
    parser.add_argument("--out", type=_args.report_file, default="profile.json",
                        help="JSON report path (written atomically)")
    parser.add_argument("--plot", type=_args.figure_file, default=None,
                        help="plot path, .png (or .svg, .pdf, ... by its suffix; default: the JSON path with .png)")
    parser.add_argument("--no-plot", action="store_true", help="do not write the PNG")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    import torch

    from gnnkit import profile as prof

    if args.plot and args.no_plot:
        raise ValueError(f"--plot {args.plot} and --no-plot contradict each other; fix: give one of them")
    png = None if args.no_plot else Path(args.plot) if args.plot else Path(args.out).with_suffix(".png")
    if png is not None and png.resolve() == Path(args.out).resolve():
        which = f"--plot {args.plot} is" if args.plot else f"the plot's default path ({png}, --out's name with .png) is"
        raise ValueError(f"{which} the --out path: the PNG would replace the JSON report; fix: --out with a .json "
                         "name, another --plot path, or --no-plot")
    quick = {"features": 16, "heads": 2, "warmup": 1, "repeats": 3}
    plain = {"features": 64, "heads": 8, "warmup": 2, "repeats": 10}
    for name, value in (quick if args.quick else plain).items():  # a flag the user gave wins over --quick
        if getattr(args, name) is None:
            setattr(args, name, value)
    for name in ("features", "heads", "repeats"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.warmup < 0:
        raise ValueError(f"--warmup must be >= 0, got {args.warmup}")
    if args.head_dim is not None and args.head_dim < 1:
        raise ValueError(f"--head-dim must be >= 1, got {args.head_dim}")
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {args.device}: CUDA is not available here; use --device cpu")
    features, heads, warmup, repeats, compile_, copy_mb = (args.features, args.heads, args.warmup, args.repeats,
                                                           not args.no_compile, 256)
    if args.quick:
        compile_, copy_mb = False, 16
    if args.backends:
        here = prof.available_backends(device, compile_)
        missing = [b for b in args.backends if b not in here]
        if len(missing) == len(args.backends):
            raise ValueError(f"--backends {' '.join(args.backends)}: not available on {device} here (available: "
                             f"{' '.join(here)})")
        if missing:
            print(f"note: --backends {' '.join(missing)} not available on {device} here; timing the others",
                  file=sys.stderr)
    if args.dataset:
        graph = prof.dataset_graph(args.dataset)
    elif args.edges:
        graph = prof.edge_list_graph(args.edges)
    else:
        n, e = args.synthetic or ((300, 2000) if args.quick else (10_000, 100_000))
        graph = prof.power_law_graph(n, e, seed=args.seed)
    report = prof.profile(graph, device, features=features, heads=heads, head_dim=args.head_dim,
                          dtype=prof.DTYPES[args.dtype], ops=tuple(args.ops), backends=args.backends,
                          modes=tuple(args.modes), warmup=warmup, repeats=repeats, compile_=compile_,
                          seed=args.seed, progress=not args.no_progress, copy_mb=copy_mb)
    out = Path(args.out)
    prof.write_report(report, out, png)
    print(prof.format_table(report))
    print(f"wrote {out}" + (f" and {png}" if png else ""))
    if not any(r["error"] is None for r in report["results"]):  # a report of errors only is not a success
        first = next((r for r in report["results"] if r["error"] is not None), None)
        why = f" (first: {first['op']} {first['backend']} {first['mode']}: {first['error'][:120]})" if first else ""
        print(f"gnnkit profile: error: nothing was measured{why}; the report lists every error", file=sys.stderr)
        return 1
    return 0
