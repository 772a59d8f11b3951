"""``gnnkit linkpred``: train a GNN encoder + decoder for link prediction on a leak-free split."""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Tuple

from . import _args

if TYPE_CHECKING:  # pragma: no cover
    from torch_geometric.data import Data

    from gnnkit.linkpred.train import LinkPredConfig

HELP = "train GCN/GraphSAGE + dot/MLP decoder for link prediction; report AUC / AP / Hits@K"

# Per-dataset defaults; every value can be overridden on the command line.
PRESETS = {
    # OGB's ogbl-ddi example (examples/linkproppred/ddi/gnn.py): GraphSAGE, 2 layers, 256 channels,
    # dropout 0.5, a 2-layer MLP predictor, gradient norms clipped to 1, evaluated every 5th epoch
    "ogbl-ddi": dict(model="sage", decoder="mlp", decoder_layers=2, clip_grad=1.0, hidden=256, out_channels=256,
                     num_layers=2, dropout=0.5,
                     lr=0.005, epochs=200, batch_size=64 * 1024, eval_every=5, select="hits@20", ks=(20,)),
    # GAE-style (Kipf & Welling 2016) link prediction on feature graphs
    "default": dict(model="gcn", decoder="dot", hidden=128, out_channels=64, num_layers=2, dropout=0.0,
                    lr=0.01, epochs=100, batch_size=0, eval_every=1, select="auc", ks=(20, 50, 100)),
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dataset", help="dataset name, e.g. Cora or ogbl-ddi")
    p.add_argument("--split", default=None, help="a folder written by `gnnkit split` (default: make a split)")
    p.add_argument("--official", choices=("auto", "yes", "no"), default="auto",
                   help="use OGB's official edge split (auto: yes for ogbl-* datasets)")
    p.add_argument("--model", choices=("gcn", "sage"), default=None, help="encoder (default: per-dataset preset)")
    p.add_argument("--decoder", choices=("dot", "mlp"), default=None, help="decoder (default: preset)")
    p.add_argument("--decoder-layers", type=_args.bounded_int, default=None,
                   help="linear layers of the MLP decoder (default: preset)")
    p.add_argument("--clip-grad", type=_args.nonneg_float, default=None,
                   help="clip each part's gradient norm to this, 0 = off (default: preset)")
    p.add_argument("--hidden", type=_args.positive_int, default=None, help="hidden channels (default: preset)")
    p.add_argument("--out-channels", type=_args.positive_int, default=None, help="embedding size (default: preset)")
    p.add_argument("--layers", type=_args.bounded_int, default=None, help="GNN layers (default: preset)")
    p.add_argument("--dropout", type=_args.probability, default=None, help="dropout (default: preset)")
    p.add_argument("--lr", type=_args.positive_float, default=None, help="Adam learning rate (default: preset)")
    p.add_argument("--epochs", type=_args.bounded_int, default=None, help="training epochs (default: preset)")
    p.add_argument("--batch-size", type=_args.nonneg_int, default=None,
                   help="supervision edges per step, 0 = all (default: preset)")
    p.add_argument("--eval-every", type=_args.bounded_int, default=None,
                   help="evaluate every N epochs (default: preset)")
    p.add_argument("--select", default=None, help="validation metric that picks the epoch (default: preset)")
    p.add_argument("--ks", default=None, help="comma-separated K for Hits@K (default: preset)")
    p.add_argument("--normalize-features", choices=("yes", "no"), default="no",
                   help="row-normalise node features (as the GAE / PyG examples do)")
    p.add_argument("--device", type=_args.device, default="cpu",
                   help="torch device")
    p.add_argument("--json", type=_args.report_file, default=None,
                   help="also write the results as JSON to this file (atomically)")
    p.add_argument("--checkpoint", type=_args.out_file, default=None,
                   help="keep the run in this file (weights, optimizer, random streams, history; atomic), so that "
                        "an interrupted run can continue with --resume")
    p.add_argument("--checkpoint-every", type=_args.nonneg_float, default=10.0, metavar="SECONDS",
                   help="write the checkpoint after an epoch once this many seconds have passed since the last "
                        "write, and after the last epoch; 0 = every epoch")
    p.add_argument("--resume", action="store_true",
                   help="continue the run kept in --checkpoint (same settings and split, and under torchrun as many "
                        "processes: it then ends as an uninterrupted run would); without a checkpoint on disk, "
                        "start afresh")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--neg", choices=("uniform", "degree", "hard"), default="uniform",
                   help="negatives of training (and of the split, when one is made)")
    p.add_argument("--seed", type=_args.seed, default=0, help="seed of training (and of the split, when one is made)")
    p.add_argument("--root", default=None, help="dataset root (default: $GNNKIT_DATA, then bundled)")
    # the split options, used when a split is made here (no --split folder, no official split)
    g = p.add_argument_group("split (when a split is made here: no --split, no official split)")
    g.add_argument("--mode", choices=("transductive", "inductive"), default="transductive", help="split mode")
    g.add_argument("--num-val", type=_args.share, default=0.05, help="validation fraction (or count)")
    g.add_argument("--num-test", type=_args.share, default=0.1, help="test fraction (or count)")
    g.add_argument("--disjoint-train-ratio", type=_args.probability, default=None,
                   help="transductive: training edges kept as supervision only (default 0.3)")
    g.add_argument("--supervision-ratio", type=_args.open_fraction, default=None,
                   help="inductive: supervision fraction per part (default 0.3)")
    g.add_argument("--partition", choices=("random", "region"), default=None,
                   help="inductive partition (default random)")
    g.add_argument("--neg-ratio", type=_args.positive_float, default=1.0,
                   help="negatives per positive in val/test (> 0: every metric ranks the positives against them)")
    g.add_argument("--undirected", choices=("auto", "yes", "no"), default="auto", help="undirected edges")


# the flags of a split made here: ignored (and said so) when the split comes from --split or OGB
SPLIT_FLAGS = ("mode", "num_val", "num_test", "disjoint_train_ratio", "supervision_ratio", "partition", "neg_ratio",
               "undirected")


def config_from_args(args: argparse.Namespace) -> "LinkPredConfig":
    from gnnkit.linkpred.train import LinkPredConfig
    preset = dict(PRESETS.get(args.dataset.lower(), PRESETS["default"]))
    over = dict(model=args.model, decoder=args.decoder, decoder_layers=args.decoder_layers, clip_grad=args.clip_grad,
                hidden=args.hidden, out_channels=args.out_channels,
                num_layers=args.layers, dropout=args.dropout, lr=args.lr, epochs=args.epochs,
                batch_size=args.batch_size, eval_every=args.eval_every, select=args.select)
    preset.update({k: v for k, v in over.items() if v is not None})
    if args.decoder_layers is not None and preset["decoder"] != "mlp":  # was ignored, and saved as if used
        raise ValueError(f"--decoder-layers applies to --decoder mlp (the decoder here is {preset['decoder']!r}); "
                         "drop it or add --decoder mlp")
    if args.ks is not None:
        try:
            preset["ks"] = tuple(int(k) for k in args.ks.split(","))
        except ValueError:
            raise ValueError(f"--ks must be comma-separated integers, got {args.ks!r}") from None
    try:
        cfg = LinkPredConfig(neg_method=args.neg, seed=args.seed, device=args.device, **preset)
    except ValueError as e:  # name the flag the user typed, not the config field behind it
        raise ValueError(_flag_names(str(e))) from None
    _args.check_model_size(cfg.hidden, cfg.num_layers, "--hidden", "--layers")
    return cfg


# LinkPredConfig fields -> the command-line flags that set them (for error messages)
_FLAGS = {"decoder_layers": "--decoder-layers", "clip_grad": "--clip-grad", "eval_every": "--eval-every",
          "num_layers": "--layers", "out_channels": "--out-channels", "batch_size": "--batch-size",
          "epochs": "--epochs", "decoder": "--decoder", "model": "--model", "select": "--select",
          "hidden": "--hidden", "dropout": "--dropout", "lr": "--lr", "ks": "--ks", "neg_method": "--neg",
          "seed": "--seed"}


def _flag_names(message: str) -> str:
    """``message`` with LinkPredConfig's field names replaced by the flags that set them."""
    pattern = r"(?<![-\w])(" + "|".join(sorted(_FLAGS, key=len, reverse=True)) + r")\b"
    return re.sub(pattern, lambda m: _FLAGS[m.group(1)], message)


def get_splits(args: argparse.Namespace) -> Tuple[Data, Data, Data, str]:
    """(train, val, test, description) from --split, the official split, or a fresh split."""
    from gnnkit.commands.split import load_graph, make_split
    from gnnkit.linkpred import check_leakage
    from gnnkit.linkpred.io import load_split, ogb_official_split
    official = args.official == "yes" or (args.official == "auto" and args.dataset.lower().startswith("ogbl")
                                          and args.split is None)
    if official or args.split is not None:
        parser = argparse.ArgumentParser()
        add_arguments(parser)
        changed = [f for f in SPLIT_FLAGS if getattr(args, f) != parser.get_default(f)]
        if changed:
            source = "OGB's official split" if official else f"--split {args.split}"
            print(f"note: {', '.join('--' + f.replace('_', '-') for f in changed)} ignored: the split is {source}",
                  file=sys.stderr)
    if official:
        from gnnkit.data import load_dataset
        if not args.dataset.lower().startswith("ogbl"):
            raise ValueError(f"--official yes needs an ogbl-* dataset, got {args.dataset!r}")
        ds = load_dataset(args.dataset, root=args.root)
        tr, va, te = ogb_official_split(ds)
        rep = check_leakage(tr, va, te, is_undirected=True, allow_train_overlap=True)
        return tr, va, te, {"split": "ogb-official", "leakage": rep.to_dict()}
    if args.split is not None:
        try:  # the dataset named in the split's manifest, checked before its ids index this dataset's features
            made_from = json.loads((Path(args.split) / "manifest.json").read_text()).get("dataset")
        except (OSError, ValueError, AttributeError):
            made_from = None  # load_split names what is wrong with the folder
        if isinstance(made_from, str) and made_from.lower() != args.dataset.lower():
            raise ValueError(f"--split {args.split} was made from {made_from!r}, not {args.dataset!r}; fix: pass the "
                             "matching dataset")
        data, multi, _ = load_graph(args.dataset, args.root)
        tr, va, te, manifest = load_split(args.split, full=data)
        return tr, va, te, {"split": args.split, "leakage": manifest.get("leakage")}
    (tr, va, te), manifest = make_split(args)
    if not manifest["leakage"]["ok"]:
        raise ValueError("the split failed its leakage check:\n" + json.dumps(manifest["leakage"], indent=2))
    return tr, va, te, {"split": "fresh", "sizes": manifest["sizes"], "leakage": manifest["leakage"]}


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except (ValueError, IndexError) as e:
        print(f"gnnkit {args.command}: error: {e}", file=sys.stderr)
        return 2


def _run(args) -> int:
    from gnnkit._atomic import mark_unsaved
    from gnnkit.linkpred.train import fit
    if args.resume and args.checkpoint is None:
        raise ValueError("--resume needs --checkpoint FILE: the file the run was kept in")
    if args.checkpoint is not None and args.json is not None and \
            Path(args.checkpoint).expanduser().resolve() == Path(args.json).expanduser().resolve():
        raise ValueError("--checkpoint and --json name the same file; fix: two different paths")
    cfg = config_from_args(args)
    tr, va, te, info = get_splits(args)
    if args.normalize_features == "yes":
        for d in (tr, va, te):
            if "x" in d and d.x is not None:
                x = d.x.float()
                d.x = x / x.sum(1, keepdim=True).clamp_min(1e-12)
    from gnnkit import distributed
    from gnnkit._atomic import write_json_verified
    from gnnkit.linkpred.metrics import too_few_negatives

    # Hits@K of a K above a split's negatives cannot be ranked: left out of its metrics, and said so
    not_ranked = {name: {f"hits@{k}": f"{n} negatives (Hits@K needs at least K)" for k in too_few_negatives(n, cfg.ks)}
                  for name, d in (("val", va), ("test", te)) for n in [int((d.edge_label == 0).sum())]}

    def save(res, complete=False):
        """Results so far (after every epoch of a long run) or final, written atomically."""
        payload = {"dataset": args.dataset, "complete": complete, "epochs_done": len(res.history),
                   "best_epoch": res.best_epoch, "val": res.val, "test": res.test, "seconds": res.seconds,
                   "not_computed": {k: v for k, v in not_ranked.items() if v},
                   "world_size": distributed.world_size(),  # processes that trained (torchrun)
                   "config": res.config, "split": info, "history": res.history,
                   "arguments": {k: v for k, v in vars(args).items() if not k.startswith("_")}}
        write_json_verified(payload, args.json)
    try:
        res = fit(tr, va, te, cfg, progress=not args.no_progress, on_epoch=save if args.json else None,
                  checkpoint=args.checkpoint, resume=args.resume, checkpoint_every_s=args.checkpoint_every)
    except ValueError as e:  # a resume with other settings: the flags, not the config fields; the split's flags
        message = str(e)
        head, sep, rest = message.partition("was started with other settings (saved, now): ")
        if sep:  # only the settings' dict is rewritten (a path or other text in the message is not)
            diff, semi, tail = rest.partition("; fix")
            raise ValueError(head + sep + _flag_names(diff) + semi + tail) from None
        if "trained on another split" in message:
            raise ValueError(message + " (a split made here comes from --seed and " +
                             ", ".join("--" + f.replace("_", "-") for f in SPLIT_FLAGS) + ")") from None
        raise
    except KeyboardInterrupt as e:
        if args.checkpoint is not None and not Path(args.checkpoint).expanduser().exists():
            mark_unsaved(e, f"nothing was kept yet in {args.checkpoint}: it is written after an epoch once "
                            f"{args.checkpoint_every:g} s have passed (--checkpoint-every; 0: every epoch)")
        raise
    if not distributed.is_main_process():  # under torchrun rank 0 reports and writes
        return 0
    print(f"{args.dataset}: {cfg.model}+{cfg.decoder}, {cfg.epochs} epochs, {res.seconds:.1f} s; "
          f"best validation {cfg.select} at epoch {res.best_epoch}")
    for name, m in (("val", res.val), ("test", res.test)):
        print(f"  {name:4s} " + "  ".join(f"{k}={v:.4f}" for k, v in m.items()))
        for metric, why in not_ranked[name].items():
            print(f"  note: {name} {metric} not computed: {why}", file=sys.stderr)
    if args.json:
        save(res, complete=True)
    return 0

