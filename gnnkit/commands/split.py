"""``gnnkit split``: write a leak-free link split of a dataset, with a JSON manifest."""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
from typing import TYPE_CHECKING, Any, Dict, Optional, Tuple

from . import _args

if TYPE_CHECKING:  # pragma: no cover
    from torch_geometric.data import Data

HELP = "write a leak-free train/val/test link split (message vs supervision edges) and its manifest"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dataset", help="dataset name, e.g. Cora, ogbl-ddi, MUTAG (see gnnkit.data.dataset_names)")
    p.add_argument("--mode", choices=("transductive", "inductive"), default="transductive",
                   help="transductive: all nodes visible, edges split; inductive: node-disjoint parts "
                        "(whole graphs for datasets of many graphs)")
    p.add_argument("--neg", choices=("uniform", "degree", "hard"), default="uniform",
                   help="how negatives are drawn")
    p.add_argument("--seed", type=_args.seed, default=0, help="random seed (the split is a function of it)")
    p.add_argument("--out", type=_args.out_dir, required=True, help="output folder (written atomically)")
    p.add_argument("--num-val", type=_args.share, default=0.1,
                   help="fraction (or count) of edges (nodes/graphs if inductive) for validation")
    p.add_argument("--num-test", type=_args.share, default=0.2,
                   help="fraction (or count) of edges (nodes/graphs if inductive) for test")
    p.add_argument("--disjoint-train-ratio", type=_args.probability, default=None,
                   help="transductive: fraction of training edges kept as supervision only (default 0.3; 0 = PyG's "
                        "overlap)")
    p.add_argument("--supervision-ratio", type=_args.open_fraction, default=None,
                   help="inductive: fraction of each part's edges used as supervision (default 0.3)")
    p.add_argument("--partition", choices=("random", "region"), default=None,
                   help="inductive node partition: random nodes or connected regions (default random)")
    p.add_argument("--neg-ratio", type=_args.nonneg_float, default=1.0,
                   help="negatives per positive (default 1; 0 writes none, which gnnkit linkpred cannot score)")
    p.add_argument("--undirected", choices=("auto", "yes", "no"), default="auto",
                   help="treat edges as undirected (auto: when the dataset stores both directions)")
    p.add_argument("--root", default=None, help="dataset root (default: $GNNKIT_DATA, then bundled)")


def load_graph(name: str, root: Optional[str] = None) -> Tuple[Data, bool, Any]:
    """(data, is_multi_graph, dataset) — one Data, or the disjoint union of a dataset of graphs."""
    from gnnkit.data import load_dataset
    ds = load_dataset(name, root=root)
    if len(ds) == 1:
        return ds[0], False, ds
    from gnnkit.linkpred.split import _as_union
    union, _ = _as_union(ds)
    return union, True, ds


def decide_undirected(choice: str, data: "Data") -> bool:
    if choice != "auto":
        return choice == "yes"
    from gnnkit.linkpred._graph import decide_undirected as decide
    return decide(data, yes="--undirected yes", no="--undirected no")


# the split classes' argument names, as this command's flags (their errors are shown to a command-line user)
_FLAG_OF = {"num_val": "--num-val", "num_test": "--num-test", "disjoint_train_ratio": "--disjoint-train-ratio",
            "supervision_ratio": "--supervision-ratio", "neg_sampling_ratio": "--neg-ratio",
            "partition": "--partition"}
_LIB_NAME = re.compile(r"(?<![\w-])(" + "|".join(_FLAG_OF) + r")\b")


def _as_flags(message: str) -> str:
    """``message`` with the split classes' argument names written as this command's flags."""
    return _LIB_NAME.sub(lambda m: _FLAG_OF[m.group(1)], message)


def make_split(args: argparse.Namespace) -> Tuple[tuple, Dict[str, object]]:
    """Build the split the arguments describe; returns (splits, manifest without files)."""
    try:
        return _make_split(args)
    except ValueError as e:
        raise ValueError(_as_flags(str(e))) from e


# each mode's own flags and their defaults: given with the other mode they are refused (they were ignored, and saved
# in the manifest as if used)
MODE_FLAGS = {"transductive": {"disjoint_train_ratio": 0.3},
              "inductive": {"supervision_ratio": 0.3, "partition": "random"}}


def fill_mode_flags(args: argparse.Namespace) -> None:
    """Refuse a flag of the other ``--mode`` (naming it), and give this mode's flags their defaults."""
    for mode, flags in MODE_FLAGS.items():
        for name, default in flags.items():
            value = getattr(args, name, None)
            if mode != args.mode and value is not None:
                raise ValueError(f"--{name.replace('_', '-')} applies to --mode {mode}, not {args.mode}; drop it")
            if mode == args.mode and value is None:
                setattr(args, name, default)


def _make_split(args: argparse.Namespace) -> Tuple[tuple, Dict[str, object]]:
    from gnnkit.linkpred import InductiveLinkSplit, TransductiveLinkSplit, check_leakage
    from gnnkit.linkpred._graph import is_symmetric
    from gnnkit.linkpred.split import both_directions, unique_edges
    fill_mode_flags(args)
    data, multi, ds = load_graph(args.dataset, args.root)
    und = decide_undirected(args.undirected, data)
    if args.undirected == "no" and is_symmetric(data.edge_index):
        print(f"gnnkit {getattr(args, 'command', 'split')}: warning: --undirected no on a graph stored both ways: "
              "each held-out edge's reverse stays a message edge (a leak unless the task is directed); --undirected "
              "auto/yes holds out both directions", file=sys.stderr)
    t0 = time.perf_counter()
    if args.mode == "transductive":
        if multi:
            raise ValueError(f"{args.dataset} holds {len(ds)} graphs; a transductive split needs one graph. "
                             "Fix: --mode inductive (splits whole graphs)")
        tf = TransductiveLinkSplit(args.num_val, args.num_test, is_undirected=und,
                                   disjoint_train_ratio=args.disjoint_train_ratio,
                                   neg_sampling_ratio=args.neg_ratio, seed=args.seed, neg_method=args.neg)
        splits = tf(data)
    else:
        tf = InductiveLinkSplit(args.num_val, args.num_test, is_undirected=und,
                                supervision_ratio=args.supervision_ratio, partition=args.partition,
                                neg_sampling_ratio=args.neg_ratio, seed=args.seed, neg_method=args.neg)
        splits = tf(ds if multi else data)
    seconds = time.perf_counter() - t0
    edges, _ = unique_edges(data.edge_index, int(data.num_nodes), und)
    full = both_directions(edges) if und else edges
    allow = args.mode == "transductive" and args.disjoint_train_ratio == 0
    report = check_leakage(*splits, full_edge_index=full, is_undirected=und, allow_train_overlap=allow)
    manifest = {
        "dataset": args.dataset, "mode": args.mode, "seed": args.seed, "undirected": und,
        "multi_graph": multi, "num_nodes": int(data.num_nodes),
        "arguments": {k: v for k, v in vars(args).items() if not k.startswith("_") and k != "command"},
        "sizes": tf.stats, "split_seconds": round(seconds, 3), "leakage": report.to_dict(),
    }
    return splits, manifest


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except (ValueError, IndexError) as e:
        print(f"gnnkit {args.command}: error: {e}", file=sys.stderr)
        return 2


def _run(args) -> int:
    from gnnkit.linkpred.io import check_split_folder, save_split
    check_split_folder(args.out)  # before the data is loaded and split (seconds on ogbl-ddi)
    splits, manifest = make_split(args)
    if not manifest["leakage"]["ok"]:
        print(json.dumps(manifest["leakage"], indent=2), file=sys.stderr)
        print("split NOT written: the leakage check failed", file=sys.stderr)
        return 1
    out = save_split(args.out, splits, manifest)
    try:
        return _summary(out, args, manifest)
    except KeyboardInterrupt as e:  # the split is whole: the "interrupted" line says so
        from gnnkit._atomic import mark_written
        mark_written(e, out)
        raise


def _summary(out, args, manifest) -> int:
    s = manifest["sizes"]
    print(f"wrote {out} ({args.mode}, seed {args.seed}, {manifest['split_seconds']:.2f} s)")
    for name in ("train", "val", "test"):
        keys = [k for k in s if k.startswith(name + "_")]
        print(f"  {name:5s} " + ", ".join(f"{k[len(name) + 1:]}={s[k]}" for k in keys))
    warn = [i for i in manifest["leakage"]["issues"] if i["severity"] == "warning"]
    print("  leakage check: ok" + (f" ({len(warn)} warning(s), in manifest.json too)" if warn else ""))
    for i in warn:
        print(f"    warning {i['kind']} ({i['split']}): {i['count']} — {i['message']}")
    if args.num_val == 0:  # asked for; but `gnnkit linkpred` selects its epoch on validation and refuses it
        print("  note: --num-val 0 gives no validation edges; gnnkit linkpred needs them (it picks the epoch on "
              "validation) and will refuse this split")
    return 0
