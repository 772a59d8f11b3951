"""``gnnkit vq``: train a graph VQ-VAE and its prior, sample graphs, evaluate generation (MMD²)."""
from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

from . import _args

HELP = "discrete-latent graph generation: 'vq train' a graph VQ-VAE + prior, 'vq sample' graphs, 'vq eval' MMD"

# flags that set the configuration (None = the dataset's default; refused with --resume)
CONFIG_FLAGS = {
    "levels": (int, "1 or 2 (VQ-VAE-2: graph-level top codes + node codes)"),
    "quantizer": (str, "vq | fsq | gumbel"),
    "codes": (int, "codebook size K (vq, gumbel; fsq: levels of about K codes, the FSQ paper's for 256, 1024, "
                   "4096, 16384, 65536, else the fewest levels 3-8 whose product is K)"),
    "code_dim": (int, "codeword width (vq, gumbel)"),
    "heads": (int, "attention heads of the decoder and the prior (--hidden and --prior-d-model must be multiples)"),
    "fsq_levels": (_args.levels, "FSQ levels per channel, comma-separated; FSQ's K is their product (fsq)"),
    "top_codes": (int, "two levels: top codebook size (vq, gumbel; fsq's top levels are 8,4)"),
    "top_slots": (int, "two levels: graph-level code slots"),
    "parts": (int, "code slots per node"),
    "hidden": (int, "width of encoder, decoder and Transformer"),
    "layers": (int, "gnnkit GIN layers in the encoder"),
    "epochs": (int, "stage-1 (autoencoder) epochs"),
    "prior_epochs": (int, "stage-2 (prior) epochs"),
    "prior_d_model": (int, "width of the prior's Transformer"),
    "prior_layers": (int, "layers of the prior's Transformer"),
    "batch_size": (int, "graphs per batch"),
    "lr": (_args.positive_float, "autoencoder learning rate"),
    "prior_lr": (_args.positive_float, "prior learning rate"),
    "prior_orderings": (int, "random BFS orders per training graph in each prior epoch"),
    "prior_batch_size": (int, "code sequences per prior batch"),
    "seed": (_args.seed, "training seed"),
    "data_seed": (_args.seed, "seed of the generated dataset (community-small)"),
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    from gnnkit.cli import HelpFormatter
    sub = p.add_subparsers(dest="vq_command", metavar="ACTION")
    sub.required = True
    from gnnkit.latent.train import DATASET_DEFAULTS, VQConfig
    t = sub.add_parser("train", help="train both stages (autoencoder, then prior) on a generation dataset")
    t.add_argument("dataset", nargs="?", help="community-small | ego-small | enzymes (omit with --resume)")
    base = VQConfig()
    for name, (typ, text) in CONFIG_FLAGS.items():
        per = ", ".join(f"{ds}: {d[name]}" for ds, d in DATASET_DEFAULTS.items() if name in d)
        value = getattr(base, name)
        value = ",".join(map(str, value)) if isinstance(value, tuple) else value
        t.add_argument("--" + name.replace("_", "-"), type=typ, default=None,
                       help=f"{text} (default: {per})" if per else f"{text} (default: {value})")
    t.add_argument("--fsq-symmetric", action="store_const", const=True, default=None,
                   help="FSQ on the symmetry-preserving grid (arXiv:2411.19842), which even levels need, 2 above "
                        "all (default: the FSQ paper's grid)")
    t.add_argument("--fsq-bound", choices=("paper", "inverse"), default=None,
                   help="FSQ's bound on the paper's grid: 'paper' (its reference code) or 'inverse' "
                        "(vector-quantize-pytorch's exact-inverse shift; gnnkit's before 2026-12-04) (default: paper)")
    t.add_argument("--canonical-order", dest="random_order", action="store_const", const=False, default=None,
                   help="train on each graph's canonical BFS order only (default: random BFS orders, as GraphRNN "
                        "trains)")
    t.add_argument("--out", type=_args.out_dir, default=None,
                   help="run folder (default: a new folder vq-DATASET-... under the "
                                               "working directory); checkpoint.pt is rewritten after every epoch")
    t.add_argument("--resume", default=None, metavar="RUN_DIR", help="continue an interrupted run from its folder")
    t.add_argument("--root", default=None,
                   help="dataset root (default: $GNNKIT_DATA, then the bundled datasets/)")
    t.add_argument("--device", type=_args.device, default="cpu",
                   help="torch device to train on (cpu, cuda, cuda:1, ...)")
    t.add_argument("--no-progress", action="store_true", help="no progress bars")

    s = sub.add_parser("sample", help="sample graphs from a trained run",
                       formatter_class=HelpFormatter)
    s.add_argument("checkpoint",
                   help="run folder or its checkpoint.pt")
    s.add_argument("-n", "--num", type=_args.bounded_int, default=16, help="number of graphs")
    s.add_argument("--out", type=_args.out_dir, required=True,
                   help="folder for graph_*.txt (u v per line), graph_*.pt, graphs.png")
    s.add_argument("--seed", type=_args.seed, default=0, help="sampling seed (same seed, same graphs)")
    s.add_argument("--temperature", type=_args.positive_float, default=1.0, help="prior sampling temperature (> 0)")
    s.add_argument("--device", type=_args.device, default="cpu", help="torch device (cpu, cuda, ...)")

    e = sub.add_parser("eval",
                       help="MMD² (GraphRNN/GDSS and GRAN protocols) of sampled vs test graphs",
                       formatter_class=HelpFormatter)
    e.add_argument("checkpoint", help="run folder or its checkpoint.pt")
    e.add_argument("--no-progress", action="store_true", help="no progress bar")
    e.add_argument("-n", "--num", type=_args.bounded_int, default=None,
                   help="graphs to sample (default: as many as test graphs)")
    e.add_argument("--seed", type=_args.seed, default=0, help="first sampling seed")
    e.add_argument("--repeats", type=_args.positive_int, default=3,
                   help="sampling seeds (seed, seed+1, ...) to average over")
    e.add_argument("--temperature", type=_args.positive_float, default=1.0, help="prior sampling temperature (> 0)")
    e.add_argument("--root", default=None, help="dataset root (default: $GNNKIT_DATA, then bundled)")
    e.add_argument("--json", type=_args.report_file, default=None, help="write the full result here (atomically)")
    e.add_argument("--device", type=_args.device, default="cpu", help="torch device (cpu, cuda, ...)")


def _check_output(path: str, flag: str, folder: bool) -> None:
    """Refuse an output that cannot be written before any long work starts."""
    p = Path(path)
    if not str(path):
        raise ValueError(f"{flag} is empty; give a path")
    if folder and p.exists() and not p.is_dir():
        raise ValueError(f"{flag} {path} is a file; give a folder")
    if not folder and p.is_dir():
        raise ValueError(f"{flag} {path} is a folder; give a file name")
    parent = p if folder and p.exists() else p.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not os.access(parent, os.W_OK):
        raise ValueError(f"{flag} {path}: {parent} is not writable")


def _new_run_dir(cfg) -> Path:
    base = f"vq-{cfg.dataset}-{cfg.quantizer}-{cfg.levels}level-seed{cfg.seed}"
    path, k = Path(base), 1
    while path.exists():
        path, k = Path(f"{base}-{k}"), k + 1
    return path


def _check_applicable(cfg, given: dict) -> None:
    """A flag the configuration does not use is refused, not saved as if it had been used."""
    unused = []
    if cfg.quantizer != "fsq":
        unused += [(f, "--quantizer fsq") for f in ("fsq_levels",) if f in given]
    else:  # FSQ's codes are its grid (K = the product of --fsq-levels, one channel per level; --codes picks them)
        unused += [(f, "--quantizer vq or gumbel (FSQ's width comes from --fsq-levels or --codes)")
                   for f in ("code_dim",) if f in given]
    if "fsq_bound" in given and (cfg.quantizer != "fsq" or cfg.fsq_symmetric):
        unused.append(("fsq_bound", "--quantizer fsq on the paper's grid (not with --fsq-symmetric)"))
    if not cfg.random_order and "prior_orderings" in given:
        unused.append(("prior_orderings", "random BFS orders (drop --canonical-order)"))
    if "data_seed" in given and cfg.dataset.lower().replace("_", "-") != "community-small":
        unused.append(("data_seed", "community-small (ego-small and enzymes are the same for every seed)"))
    if cfg.levels == 1:
        unused += [(f, "--levels 2") for f in ("top_codes", "top_slots") if f in given]
    elif cfg.quantizer == "fsq" and "top_codes" in given:
        unused.append(("top_codes", "--quantizer vq or gumbel (FSQ's top level is the grid 8,4: 32 codes)"))
    if unused:
        flag, needs = unused[0]
        raise ValueError(f"--{flag.replace('_', '-')} applies only with {needs}; drop it")


def _train(args) -> int:
    from gnnkit.latent.train import VQRun, config_for
    names = (*CONFIG_FLAGS, "random_order", "fsq_symmetric", "fsq_bound")
    given = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    if args.resume:
        if args.dataset or given or args.out is not None:
            flags = ([args.dataset] if args.dataset else []) + ["--" + k.replace("_", "-") for k in given] + \
                (["--out"] if args.out is not None else [])
            raise ValueError(f"--resume takes the dataset, configuration and run folder from the checkpoint; drop "
                             f"{flags}")
        run = VQRun.resume(args.resume, root=args.root, device=args.device)
        print(f"resuming {args.resume}: stage {run.stage}, epoch {run.epoch}", file=sys.stderr)
    else:
        if not args.dataset:
            raise ValueError("give a DATASET (community-small, ego-small, enzymes) or --resume RUN_DIR")
        if given.get("quantizer") == "fsq" and "codes" in given:  # --codes K: FSQ levels of about K codes
            from gnnkit.latent.fsq import fsq_levels_for
            k = given.pop("codes")
            if k < 3:  # (fsq_levels_for's own words name its argument, not the flag)
                raise ValueError(f"--codes {k}: FSQ needs at least 3 codes (one channel of 3 levels); "
                                 "fix: --codes >= 3")
            if "fsq_levels" in given and math.prod(given["fsq_levels"]) != k and \
                    tuple(given["fsq_levels"]) != fsq_levels_for(k):  # (the paper's 8,6,5 for 256 agrees)
                raise ValueError(f"--codes {k} and --fsq-levels {','.join(map(str, given['fsq_levels']))} "
                                 f"({math.prod(given['fsq_levels'])} codes) disagree; give one of them")
            from gnnkit.latent.train import MAX_CODES
            if k > MAX_CODES:
                raise ValueError(f"--codes gives {k:,} codes; the prior's vocabulary takes at most {MAX_CODES:,} "
                                 "(2**16); fix: a smaller codebook")
            given.setdefault("fsq_levels", fsq_levels_for(k))
            given["codes"] = k  # recorded in the run's settings as asked (FSQ's K is the levels' product)
        cfg = config_for(args.dataset, **given)
        _check_applicable(cfg, given)
        _args.check_model_size(cfg.hidden, cfg.layers, "--hidden", "--layers")
        _args.check_model_size(cfg.prior_d_model, cfg.prior_layers, "--prior-d-model", "--prior-layers")
        if args.out is not None:
            _check_output(args.out, "--out", folder=True)
        run_dir = Path(args.out) if args.out else _new_run_dir(cfg)
        from gnnkit.latent.train import check_new_run_dir  # before the data loads: VQRun.create's check, our words
        check_new_run_dir(run_dir, name="--out", resume="--resume {dir}")
        run = VQRun.create(cfg, run_dir, root=args.root, device=args.device)
        run.save()
    try:
        run.fit(progress=not args.no_progress)
    except KeyboardInterrupt as e:  # the run folder may be auto-named: say which command continues it
        from gnnkit.cli import Terminated
        how = "terminated" if isinstance(e, Terminated) else "interrupted"
        print(f"gnnkit vq train: {how}; continue with: gnnkit vq train --resume {run.run_dir}", file=sys.stderr)
        raise SystemExit(143 if isinstance(e, Terminated) else 130) from None
    last_ae = next((h for h in reversed(run.history) if h["stage"] == "autoencoder"), {})
    last_pr = next((h for h in reversed(run.history) if h["stage"] == "prior"), {})
    print(f"autoencoder: loss {last_ae.get('loss', float('nan')):.4f}, "
          f"edge BCE {last_ae.get('edge', float('nan')):.4f}, "
          f"perplexity {last_ae.get('perplexity', float('nan')):.1f} ({run.seconds['autoencoder']:.0f} s); "
          f"prior: NLL {last_pr.get('nll', float('nan')):.4f} nats/token ({run.seconds['prior']:.0f} s)")
    print(f"run folder: {run.run_dir}")
    return 0


def _sample(args) -> int:
    from gnnkit.latent.io import earlier_draw, write_samples
    from gnnkit.latent.train import VQRun
    if args.num < 1:
        raise ValueError(f"-n must be >= 1, got {args.num}")
    if not args.temperature > 0:
        raise ValueError(f"--temperature must be > 0, got {args.temperature}")
    _check_output(args.out, "--out", folder=True)
    earlier_draw(args.out)  # a folder of other files is refused before any work
    run = VQRun.resume(args.checkpoint, load_data=False, device=args.device)
    sampled = run.sample(args.num, seed=args.seed, temperature=args.temperature)
    manifest = {"checkpoint": str(args.checkpoint), "seed": args.seed, "temperature": args.temperature,
                "dataset": run.meta["dataset"], "quantizer": run.cfg.quantizer, "levels": run.cfg.levels}
    title = f"{run.meta['dataset']}: {args.num} samples ({run.cfg.quantizer}, {run.cfg.levels} level, seed {args.seed})"
    write_samples(sampled.graphs, args.out, manifest, title=title)
    print(f"wrote {args.num} graphs to {args.out} (graph_*.txt, graph_*.pt, graphs.png, samples.json)")
    return 0


def _eval(args) -> int:
    from gnnkit._atomic import write_json_verified
    from gnnkit.latent.train import VQRun, format_table
    if args.json:
        _check_output(args.json, "--json", folder=False)
    if args.num is not None and args.num < 1:
        raise ValueError(f"-n must be >= 1, got {args.num}")
    if args.repeats < 1 or not args.temperature > 0:
        raise ValueError(f"--repeats must be >= 1 and --temperature > 0, got {args.repeats}, {args.temperature}")
    run = VQRun.resume(args.checkpoint, root=args.root, device=args.device)
    res = run.evaluate(num_samples=args.num, seed=args.seed, repeats=args.repeats, temperature=args.temperature,
                       progress=not args.no_progress)
    print(format_table(res))
    if args.json:
        write_json_verified(res, args.json)
    return 0


def run(args: argparse.Namespace) -> int:
    return {"train": _train, "sample": _sample, "eval": _eval}[args.vq_command](args)
