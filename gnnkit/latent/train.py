"""Two-stage training of a graph VQ-VAE and its prior, checkpoints, sampling and evaluation.

Stage 1 trains the autoencoder (:class:`GraphVQVAE` or :class:`HierarchicalGraphVQVAE`) on the training
graphs; stage 2 encodes them to codes and fits the prior(s) (:class:`CodePrior`; a top and a bottom prior
for two levels, as VQ-VAE-2's Algorithm 2). :class:`VQRun` holds both stages and writes one checkpoint
(``checkpoint.pt`` in the run folder) atomically after every epoch; a run resumes from it and gives
the same result as an uninterrupted one, because each epoch re-seeds from ``(seed, stage, epoch)``.
"""
from __future__ import annotations

import dataclasses
import io
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch_geometric.data import Batch, Data

from gnnkit._atomic import IntegrityError, verify_file, write_leftover, write_verified

from ._common import check_int, code_counts, evaluating, usage_stats
from .datasets import (
    GenerationDataset,
    dataset_fingerprint,
    from_pyg,
    generation_dataset_names,
    load_generation_dataset,
    to_pyg,
)
from .fsq import BOUNDS as FSQ_BOUNDS, FSQ, whole_levels
from .gumbel import GumbelQuantizer, TemperatureSchedule
from .order import canonical
from .prior import CodePrior
from .vq import VectorQuantizer
from .vqvae import Codes, GraphVQVAE, HierarchicalGraphVQVAE

FORMAT = "gnnkit-vq"
VERSION = 1
QUANTIZERS = ("vq", "fsq", "gumbel")
MAX_CODES = 2 ** 16  # codes per codebook a run takes (FSQ's paper goes up to 2**16 too)
CHECKPOINT = "checkpoint.pt"


class CheckpointError(ValueError):
    """A checkpoint file that is not a complete gnnkit VQ checkpoint."""


@dataclass
class VQConfig:
    """Everything that defines a run (saved in the checkpoint). Defaults suit the small generation
    sets; :data:`DATASET_DEFAULTS` adjusts them per dataset."""
    dataset: str = "community-small"
    levels: int = 1
    quantizer: str = "vq"
    codes: int = 64              # K (VQ, Gumbel); FSQ's K is the product of fsq_levels
    code_dim: int = 16           # codeword width (VQ, Gumbel)
    fsq_levels: Tuple[int, ...] = (8, 5, 5)
    fsq_symmetric: bool = False  # FSQ's symmetry-preserving grid (top level too); see gnnkit.latent.FSQ
    fsq_bound: str = "paper"     # FSQ's bound on the paper's grid: "paper" | "inverse" (runs saved before it: inverse)
    parts: int = 2               # code slots per node
    top_codes: int = 32          # two levels: top codebook size (FSQ: levels (8, 4) -> 32)
    top_slots: int = 2           # two levels: graph-level codes
    hidden: int = 128
    layers: int = 3
    conv: str = "gin"
    decoder_layers: int = 2
    heads: int = 4
    beta: float = 0.25
    ema: bool = True
    epochs: int = 300            # stage 1
    batch_size: int = 32
    lr: float = 1e-3
    prior_epochs: int = 300      # stage 2
    prior_lr: float = 5e-4
    prior_d_model: int = 128
    prior_layers: int = 4
    prior_dropout: float = 0.1
    tau_start: float = 1.0       # Gumbel temperature schedule (exponential)
    tau_end: float = 1.0 / 16
    kl_weight: float = 5e-4      # Gumbel KL to the uniform prior
    threshold: float = 0.5       # edge probability above which a decoded pair is an edge
    random_order: bool = True    # train on random BFS orders (GraphRNN's augmentation), else the canonical one
    prior_orderings: int = 8     # random orders per training graph in each prior epoch (random_order only)
    prior_batch_size: int = 64
    seed: int = 0
    data_seed: int = 0

    def validate(self) -> "VQConfig":
        self._check_types()
        if self.quantizer not in QUANTIZERS:
            raise ValueError(f"--quantizer {self.quantizer!r} is not available; use one of {QUANTIZERS}")
        if self.levels not in (1, 2):
            raise ValueError(f"--levels {self.levels} is not supported; use 1 or 2")
        for name in ("codes", "code_dim", "parts", "top_codes", "top_slots", "hidden", "layers", "epochs",
                     "batch_size", "prior_epochs", "prior_d_model", "prior_layers", "heads", "decoder_layers",
                     "prior_orderings", "prior_batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:  # --epochs 0 trained the prior on an untrained autoencoder
                raise ValueError(f"--{name.replace('_', '-')} must be an integer >= 1, got {value!r}")
        if self.quantizer != "fsq" and self.codes < 2:
            raise ValueError(f"--codes must be >= 2, got {self.codes}")
        for name in ("hidden", "prior_d_model"):
            if getattr(self, name) % self.heads:
                raise ValueError(f"--{name.replace('_', '-')} {getattr(self, name)} must be divisible by "
                                 f"--heads {self.heads}")
        if self.levels == 2 and self.quantizer != "fsq" and self.top_codes < 2:
            raise ValueError(f"--top-codes must be >= 2 for a two-level {self.quantizer} model, got {self.top_codes}")
        for name in ("seed", "data_seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2 ** 63:
                raise ValueError(f"--{name.replace('_', '-')} must be an integer in [0, 2**63), got {value!r}")
        for name, low, high, closed in (("beta", 0.0, math.inf, True), ("prior_dropout", 0.0, 1.0, True),
                                        ("tau_start", 0.0, math.inf, False), ("tau_end", 0.0, math.inf, False),
                                        ("kl_weight", 0.0, math.inf, True)):
            value = getattr(self, name)
            if not (low <= value < high if closed else low < value < high):
                bound = f"[{low:g}, {high:g})" if closed else f"({low:g}, {high:g})"
                raise ValueError(f"--{name.replace('_', '-')} must lie in {bound}, got {value!r}")
        if not (0 < self.lr < math.inf and 0 < self.prior_lr < math.inf):
            raise ValueError(f"--lr and --prior-lr must be > 0, got {self.lr}, {self.prior_lr}")
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"--threshold must be in (0, 1), got {self.threshold}")
        self.fsq_levels = whole_levels(self.fsq_levels, "--fsq-levels")
        if not isinstance(self.fsq_symmetric, bool):
            raise ValueError(f"fsq_symmetric must be True or False, got {self.fsq_symmetric!r}")
        if self.fsq_symmetric and self.quantizer != "fsq":
            raise ValueError(f"--fsq-symmetric applies to --quantizer fsq, not {self.quantizer}; drop it")
        if self.fsq_bound not in FSQ_BOUNDS:
            raise ValueError(f"--fsq-bound {self.fsq_bound!r} is not available; use one of {FSQ_BOUNDS}")
        if self.fsq_bound != "paper" and (self.quantizer != "fsq" or self.fsq_symmetric):
            raise ValueError("--fsq-bound applies only with --quantizer fsq on the paper's grid (not with "
                             "--fsq-symmetric); drop it")
        # the prior has one token per code (an embedding and an output row each): keep its vocabulary sane
        k = math.prod(self.fsq_levels) if self.quantizer == "fsq" else self.codes
        flag = "--fsq-levels" if self.quantizer == "fsq" else "--codes"
        if k > MAX_CODES or (self.levels == 2 and self.quantizer != "fsq" and self.top_codes > MAX_CODES):
            raise ValueError(f"{flag if k > MAX_CODES else '--top-codes'} gives "
                             f"{k if k > MAX_CODES else self.top_codes:,} codes; the prior's vocabulary takes at most "
                             f"{MAX_CODES:,} (2**16); fix: a smaller codebook")
        if self.quantizer == "fsq" and max(self.fsq_levels) > 1000:
            raise ValueError(f"--fsq-levels: each level must be <= 1000 (FSQ's bound), got {max(self.fsq_levels)}")
        return self


    def _check_types(self) -> None:
        """Every field holds its declared type: ints (numpy's too) as int, never a bool; bools as bool, never a
        string ("no" was true); floats as finite-or-not real numbers, never a string or bool; names as str.
        Errors name the field as the command's flag."""
        import numbers

        import numpy as np

        for f in dataclasses.fields(self):
            value, flag = getattr(self, f.name), "--" + f.name.replace("_", "-")
            kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
            if kind == "int":
                if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
                    raise ValueError(f"{flag} ({f.name}) must be an integer, got {value!r}")
                setattr(self, f.name, int(value))
            elif kind == "bool":  # 0 and 1 too (configs made with them validated before this check)
                if not (isinstance(value, (bool, np.bool_)) or isinstance(value, numbers.Integral) and value in (0, 1)):
                    raise ValueError(f"{f.name} must be True or False, got {value!r}")
                setattr(self, f.name, bool(value))
            elif kind == "float":
                if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
                    raise ValueError(f"{flag} ({f.name}) must be a number, got {value!r}")
                if math.isnan(float(value)):
                    raise ValueError(f"{flag} ({f.name}) must be a number, got NaN")
                setattr(self, f.name, float(value))
            elif kind == "str" and not isinstance(value, str):
                raise ValueError(f"{flag} ({f.name}) must be a string, got {value!r}")


# Per-dataset defaults (what `gnnkit vq train DATASET` uses unless a flag overrides it).
DATASET_DEFAULTS: Dict[str, Dict[str, object]] = {
    "community-small": dict(epochs=1000, prior_epochs=150, batch_size=16, prior_orderings=8),
    "ego-small": dict(epochs=200, prior_epochs=100, batch_size=32, prior_orderings=4),
    "enzymes": dict(epochs=100, prior_epochs=30, batch_size=32, prior_orderings=2),
}


def config_for(dataset: str, **overrides) -> VQConfig:
    """:class:`VQConfig` for ``dataset`` with its defaults, then ``overrides`` (``None`` values ignored)."""
    from .datasets import _canonical
    key = _canonical(dataset)
    values = dict(DATASET_DEFAULTS.get(key, {}))
    values.update({k: v for k, v in overrides.items() if v is not None})
    names = {f.name for f in dataclasses.fields(VQConfig)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"unknown configuration keys {unknown}; known: {sorted(names)}")
    return VQConfig(dataset=key, **values).validate()


# -- building blocks -------------------------------------------------------------------------------
def _quantizer(kind: str, codes: int, dim: int, cfg: VQConfig, fsq_levels: Sequence[int], steps: int):
    if kind == "vq":
        return VectorQuantizer(codes, dim, beta=cfg.beta, ema=cfg.ema, kmeans_init=True, dead_code_threshold=0.05)
    if kind == "fsq":
        return FSQ(fsq_levels, symmetric=cfg.fsq_symmetric, bound=cfg.fsq_bound)
    schedule = TemperatureSchedule("exp", cfg.tau_start, cfg.tau_end, max(1, steps))
    return GumbelQuantizer(codes, dim, schedule, hard=True, kl_weight=cfg.kl_weight)


def build_model(cfg: VQConfig, max_nodes: int, num_node_labels: int, steps: int = 1) -> GraphVQVAE:
    """The autoencoder a configuration describes (``steps``: training steps, for Gumbel annealing)."""
    q = _quantizer(cfg.quantizer, cfg.codes, cfg.code_dim, cfg, cfg.fsq_levels, steps)
    kwargs = dict(num_node_labels=num_node_labels, hidden_channels=cfg.hidden, num_layers=cfg.layers,
                  parts=cfg.parts, conv=cfg.conv, decoder_layers=cfg.decoder_layers, heads=cfg.heads)
    if cfg.levels == 1:
        return GraphVQVAE(q, max_nodes, **kwargs)
    top = _quantizer(cfg.quantizer, cfg.top_codes, cfg.code_dim, cfg, (8, 4), steps)
    return HierarchicalGraphVQVAE(q, top, max_nodes, top_slots=cfg.top_slots, **kwargs)


def build_priors(cfg: VQConfig, model: GraphVQVAE) -> Dict[str, CodePrior]:
    """One prior over ``[n, node codes]`` (one level), or a top prior over ``[n, top codes]`` and a
    bottom prior over the node codes given them (two levels)."""
    common = dict(parts=cfg.parts, d_model=cfg.prior_d_model, layers=cfg.prior_layers, heads=cfg.heads,
                  dropout=cfg.prior_dropout)
    if cfg.levels == 1:
        return {"prior": CodePrior(model.num_codes, model.max_nodes, **common)}
    top = dict(top_codes=model.top_quantizer.num_codes, top_slots=model.top_slots)
    return {"top": CodePrior(model.num_codes, model.max_nodes, predict="top", **top, **common),
            "bottom": CodePrior(model.num_codes, model.max_nodes, predict="nodes", **top, **common)}


def prepare(graphs: Sequence, generator: Optional[torch.Generator] = None) -> List[Data]:
    """networkx graphs or PyG ``Data`` → BFS-ordered ``Data`` for the autoencoder: the canonical order,
    or a random BFS order per graph drawn from ``generator``."""
    out = []
    for g in graphs:
        d = to_pyg([g])[0] if not isinstance(g, Data) else g
        out.append(canonical(d, generator))
    return out


def _seed_value(cfg: "VQConfig", stage: int, epoch: int) -> int:
    """The seed of one epoch of one stage: a run re-seeds from it, so a resumed run repeats the draws."""
    return (cfg.seed * 1_000_003 + stage * 10_007 + epoch) % (2 ** 63)


def _generator(cfg: "VQConfig", stage: int, epoch: int) -> torch.Generator:
    """A CPU generator for the epoch's BFS orders (its own stream, apart from torch's global one)."""
    return torch.Generator().manual_seed(_seed_value(cfg, stage, epoch + 7919))


def _batches(data: List[Data], batch_size: int, shuffle: bool) -> List[Batch]:
    order = torch.randperm(len(data)).tolist() if shuffle else list(range(len(data)))
    return [Batch.from_data_list([data[i] for i in order[s:s + batch_size]]) for s in range(0, len(order), batch_size)]


def _device(device: Union[str, torch.device]) -> torch.device:
    try:
        d = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"--device {device!r} is not a torch device (cpu, cuda, cuda:1, ...): {e}") from None
    if d.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: CUDA is not available on this machine; use --device cpu")
    return d


def _seed(cfg: VQConfig, stage: int, epoch: int) -> None:
    torch.manual_seed(_seed_value(cfg, stage, epoch))


# -- checkpoints -----------------------------------------------------------------------------------
def check_new_run_dir(run_dir: Union[str, Path], name: str = "VQRun.create: run_dir",
                      resume: str = "VQRun.resume({dir!r})") -> None:
    """Refuse a folder a new run may not start in: a file, a folder that holds a run (its first save would replace
    that run's checkpoint), or one holding files that are not a run's (:func:`foreign_files`).  ``name`` and
    ``resume`` word the error for the caller (``gnnkit vq train`` says ``--out`` and ``--resume``)."""
    if not isinstance(run_dir, (str, os.PathLike)):
        raise TypeError(f"{name} must be a folder path (str or os.PathLike), got {type(run_dir).__name__}")
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise ValueError(f"{name} {run_dir} is a file; fix: a folder path")
    if (run_dir / CHECKPOINT).exists():
        raise ValueError(f"{name} {run_dir} already holds a run ({CHECKPOINT}); continue it with "
                         f"{resume.format(dir=str(run_dir))} or choose another folder")
    if foreign_files(run_dir):
        raise ValueError(f"{name} {run_dir} is not empty and holds no gnnkit run; fix: an empty or new folder")


def foreign_files(run_dir: Union[str, Path]) -> List[Path]:
    """What ``run_dir`` holds besides what an interrupted first save of a run leaves (the checkpoint's side file,
    temporary files): a run may start there only when this is empty."""
    if not isinstance(run_dir, (str, os.PathLike)):
        raise TypeError(f"foreign_files: run_dir must be a folder path (str or os.PathLike), got "
                        f"{type(run_dir).__name__}")
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    return sorted(p for p in run_dir.iterdir() if not write_leftover(p.name, CHECKPOINT))


def save_checkpoint(state: dict, path: Union[str, Path]) -> None:
    """Write ``state`` whole or not at all (temporary file + rename), with its SHA-256 in
    ``<path>.sha256`` (torch's zip format does not check its own CRCs: a flipped byte in a tensor
    loads silently).  The digest file lists the previous and the new checkpoint's hashes and is
    replaced first, so a run killed between the two renames still verifies."""
    buf = io.BytesIO()
    torch.save(state, buf)
    write_verified(path, buf.getvalue())


def load_checkpoint(path: Union[str, Path]) -> dict:
    """Read a gnnkit VQ checkpoint (a file, or a run folder holding ``checkpoint.pt``), with a clear
    :class:`CheckpointError` for anything else: missing, truncated, corrupted or foreign files."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT
    if not path.exists():
        # the side file is renamed into place first, each from a temporary file: what is left of a cut first save
        left = sorted(q.name for q in path.parent.iterdir() if write_leftover(q.name, path.name)) \
            if path.parent.is_dir() else []
        if left:
            raise FileNotFoundError(f"checkpoint {path} does not exist: the run's first save was interrupted "
                                    f"(only {', '.join(left)} is there); fix: start the run again with the "
                                    f"same folder (gnnkit vq train DATASET --out {path.parent})")
        raise FileNotFoundError(f"checkpoint {path} does not exist; give a run folder written by "
                                f"'gnnkit vq train' or its {CHECKPOINT}")
    try:
        checked = verify_file(path)  # written by save_checkpoint (runs from before it have no side file)
    except IntegrityError as e:
        raise CheckpointError(f"{e}; or use another run folder or retrain") from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - an unpickler fed damaged bytes raises many types (IndexError too)
        if "weights only load failed" in str(e).lower():  # torch's advice to unpickle anyway is not ours to give
            raise CheckpointError(f"{path} is not a gnnkit VQ checkpoint (it holds objects a gnnkit checkpoint never "
                                  "holds; not loaded); give a run folder written by 'gnnkit vq train'") from None
        raise CheckpointError(f"{path} is not a readable gnnkit VQ checkpoint (another kind of file, or truncated or "
                              "corrupted): "
                              f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a gnnkit VQ checkpoint (no format={FORMAT!r} marker); "
                              f"it may come from another program")
    if state.get("version") != VERSION:
        raise CheckpointError(f"{path} has checkpoint version {state.get('version')!r}; this gnnkit reads "
                              f"version {VERSION}")
    missing = [k for k in ("config", "meta", "model", "priors", "stage", "epoch", "history") if k not in state]
    if missing:
        raise CheckpointError(f"{path} lacks {missing}; the file is incomplete")
    if checked is None:  # copied without its side file: loadable, but damage would go unseen
        import warnings
        warnings.warn(f"{path} has no {path.name}.sha256 beside it, so it cannot be checked for damage (torch's "
                      "format checks no CRCs); copy the side file with it", stacklevel=2)
    return state


# -- the run ---------------------------------------------------------------------------------------
@dataclass
class Sampled:
    """Generated graphs (PyG ``Data``, canonical order) and the codes they came from."""
    graphs: List[Data]
    codes: Codes


class VQRun:
    """A two-stage graph VQ-VAE run in a folder: build with :meth:`create` or :meth:`resume`, call
    :meth:`fit`, then :meth:`sample` / :meth:`evaluate`."""

    def __init__(self, cfg: VQConfig, run_dir: Optional[Union[str, Path]], data: Optional[GenerationDataset],
                 meta: dict, device: Union[str, torch.device] = "cpu"):
        self.cfg, self.meta, self.data = cfg, meta, data
        self.run_dir = Path(run_dir) if run_dir is not None else None
        steps = cfg.epochs * max(1, math.ceil(meta["num_train"] / cfg.batch_size))
        torch.manual_seed(cfg.seed)
        self.model = build_model(cfg, meta["max_nodes"], meta["num_node_labels"], steps)
        self.priors = build_priors(cfg, self.model)
        self.device = _device(device)
        self.model.to(self.device)
        for prior in self.priors.values():
            prior.to(self.device)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        self.prior_opts = {k: torch.optim.Adam(p.parameters(), lr=cfg.prior_lr) for k, p in self.priors.items()}
        self.stage = "autoencoder"
        self.epoch = 0
        self.history: List[dict] = []
        self.seconds = {"autoencoder": 0.0, "prior": 0.0}

    # construction
    @classmethod
    def create(cls, cfg: VQConfig, run_dir: Optional[Union[str, Path]] = None, root: Optional[str] = None,
               data: Optional[GenerationDataset] = None, device: Union[str, torch.device] = "cpu") -> "VQRun":
        cfg.validate()
        if run_dir is not None:
            check_new_run_dir(run_dir)
        data = data if data is not None else load_generation_dataset(cfg.dataset, root=root, seed=cfg.data_seed)
        if not isinstance(data, GenerationDataset):
            raise ValueError(f"VQRun.create: data must be a GenerationDataset (gnnkit.latent.load_generation_dataset "
                             f"or your own), got {type(data).__name__}")
        meta = {"max_nodes": int(data.max_nodes), "num_node_labels": int(data.num_node_labels),
                "num_train": len(data.train), "num_test": len(data.test), "dataset": data.name,
                "description": data.description, "fingerprint": dataset_fingerprint(data)}
        return cls(cfg, run_dir, data, meta, device)

    @classmethod
    def resume(cls, path: Union[str, Path], root: Optional[str] = None, load_data: bool = True,
               device: Union[str, torch.device] = "cpu", data: Optional[GenerationDataset] = None) -> "VQRun":
        """The run saved at ``path`` (a run folder or its checkpoint).  A run made from a built-in dataset reloads
        it (``root``); a run made from your own ``GenerationDataset`` needs it again as ``data`` (the
        checkpoint keeps its name and sizes, which must match)."""
        state = load_checkpoint(path)
        try:
            saved = dict(state["config"])
            if saved.get("quantizer") == "fsq" and not saved.get("fsq_symmetric") and "fsq_bound" not in saved:
                saved["fsq_bound"] = "inverse"  # a run saved before the option trained with that bound
            cfg = VQConfig(**{k: (tuple(v) if k == "fsq_levels" else v) for k, v in saved.items()})
            cfg.validate()
            meta = state["meta"]
            for key in ("max_nodes", "num_node_labels", "num_train", "num_test", "dataset", "description"):
                meta[key]  # noqa: B018 (KeyError if absent)
            if state["stage"] not in ("autoencoder", "prior", "done") or not isinstance(state["epoch"], int):
                raise ValueError(f"stage {state['stage']!r} / epoch {state['epoch']!r} are not a training state")
        except (TypeError, ValueError, KeyError, AttributeError) as e:
            raise CheckpointError(f"{path}: its configuration is not valid for this gnnkit: "
                                  f"{type(e).__name__}: {e}") from None
        given = data is not None
        if not given and load_data:
            if meta["dataset"] not in generation_dataset_names():
                # cfg.dataset names a built-in set even when create() was given other data: loading it would
                # train or evaluate on the wrong graphs under this run's name
                raise ValueError(f"VQRun.resume: {path} was made from your own dataset {meta['dataset']!r} "
                                 f"({meta['num_train']} train / {meta['num_test']} test graphs), not a built-in one; "
                                 "fix: VQRun.resume(path, data=<that GenerationDataset>) (or load_data=False to "
                                 "sample only)")
            data = load_generation_dataset(cfg.dataset, root=root, seed=cfg.data_seed)
        if data is not None:  # given, or loaded again (from another root, it may not be the run's)
            got = {"dataset": data.name, "num_train": len(data.train), "num_test": len(data.test)}
            want = {k: meta[k] for k in got}
            if got != want or int(data.max_nodes) > int(meta["max_nodes"]):
                fix = "pass the same GenerationDataset" if given else "the same data root (--root) as the run's"
                raise ValueError(f"VQRun.resume: data {got} (max_nodes={data.max_nodes}) is not the dataset this run "
                                 f"was made from, {want} (max_nodes={meta['max_nodes']}); fix: {fix}")
            # same name and sizes, other graphs (another generator seed, another ego base graph, edited files):
            # runs saved since 2026-12-05 keep their data's fingerprint
            if "fingerprint" in meta and dataset_fingerprint(data) != meta["fingerprint"]:
                if given:
                    fix = "pass the GenerationDataset the run was created with"
                else:
                    fix = (f"the run was created from data other than {cfg.dataset!r} with data_seed="
                           f"{cfg.data_seed}{' under this root' if root is not None else ''} (VQRun.create(..., "
                           "data=...)); resume it with VQRun.resume(path, data=<that GenerationDataset>)")
                raise ValueError(f"VQRun.resume: the graphs of {data.name!r} loaded now differ from the ones {path} "
                                 f"was trained on (same name and sizes, another fingerprint); fix: {fix}")
        p = Path(path)
        run = cls(cfg, p if p.is_dir() else p.parent, data, meta, device)
        try:
            run.model.load_state_dict(state["model"])
            for k, prior in run.priors.items():
                prior.load_state_dict(state["priors"][k])
            if state.get("optim"):
                run.opt.load_state_dict(state["optim"])
            for k, o in run.prior_opts.items():
                if state.get("prior_optim", {}).get(k):
                    o.load_state_dict(state["prior_optim"][k])
        except (RuntimeError, KeyError, ValueError) as e:
            raise CheckpointError(f"{path}: the saved weights do not fit the saved configuration: "
                                  f"{str(e).splitlines()[0][:300]}") from None
        run.stage, run.epoch, run.history = state["stage"], int(state["epoch"]), list(state["history"])
        run.seconds = dict(state.get("seconds", run.seconds))
        return run

    def state(self) -> dict:
        cfg = dataclasses.asdict(self.cfg)
        cfg["fsq_levels"] = list(cfg["fsq_levels"])
        return {"format": FORMAT, "version": VERSION, "config": cfg, "meta": self.meta,
                "model": self.model.state_dict(), "priors": {k: p.state_dict() for k, p in self.priors.items()},
                "optim": self.opt.state_dict(), "prior_optim": {k: o.state_dict() for k, o in self.prior_opts.items()},
                "stage": self.stage, "epoch": self.epoch, "history": self.history, "seconds": self.seconds}

    def save(self) -> Optional[Path]:
        if self.run_dir is None:
            return None
        path = self.run_dir / CHECKPOINT
        save_checkpoint(self.state(), path)
        return path

    # training
    def fit(self, progress: bool = True, on_epoch: Optional[Callable[[dict], None]] = None,
            stop_after: Optional[int] = None) -> "VQRun":
        """Run what is left of both stages (``stop_after``: stop after that many epochs in this call, for
        tests of interrupted runs). Saves after every epoch when the run has a folder."""
        from tqdm.auto import tqdm
        if self.data is None:
            raise ValueError("this run was resumed without its data (load_data=False); it cannot train")
        train = [to_pyg([g])[0] for g in self.data.train]

        def prior_epoch() -> dict:
            fixed = None if self.cfg.random_order else self._prior_sequences(prepare(train))
            return lambda: self._prior_epoch(fixed if fixed is not None else self._prior_sequences(
                [d for r in range(self.cfg.prior_orderings)
                 for d in prepare(train, _generator(self.cfg, 2, self.epoch * 1000 + r))]))

        # (stage, epochs, progress label, builder of the epoch function, progress fields, next stage)
        stages = [
            ("autoencoder", self.cfg.epochs, "stage 1: autoencoder", lambda: lambda: self._ae_epoch(train),
             lambda r: dict(loss=f"{r['loss']:.4f}", perplexity=f"{r['perplexity']:.1f}"), "prior"),
            ("prior", self.cfg.prior_epochs, "stage 2: prior", prior_epoch,
             lambda r: dict(nll=f"{r['nll']:.4f}"), "done"),
        ]
        done = 0
        for stage, total, label, build, fields, next_stage in stages:
            if self.stage != stage:
                continue
            epoch_fn = build()
            bar = tqdm(total=total, initial=self.epoch, desc=label, disable=not progress)
            while self.epoch < total:
                if stop_after is not None and done >= stop_after:
                    bar.close()
                    return self
                rec = epoch_fn()
                bar.update(1)
                bar.set_postfix(**fields(rec))
                done += 1
                if on_epoch:
                    on_epoch(rec)
                if self.epoch < total:
                    self.save()
            bar.close()
            self.stage = next_stage
            self.epoch = 0 if next_stage != "done" else self.epoch
            self.save()
        return self

    def _ae_epoch(self, raw: List[Data]) -> dict:
        t0 = time.perf_counter()
        _seed(self.cfg, 1, self.epoch)
        train = prepare(raw, _generator(self.cfg, 1, self.epoch) if self.cfg.random_order else None)
        self.model.train()
        totals: Dict[str, float] = {}
        n, perplexity = 0, 0.0
        for batch in _batches(train, self.cfg.batch_size, shuffle=True):
            batch = batch.to(self.device)
            out = self.model(batch)
            self.opt.zero_grad()
            out.loss.backward()
            self.opt.step()
            n += 1
            totals["loss"] = totals.get("loss", 0.0) + out.loss.item()
            for k, v in out.terms.items():
                totals[k] = totals.get(k, 0.0) + v.item()
            perplexity += float(out.stats.perplexity)
        self.epoch += 1
        self.seconds["autoencoder"] += time.perf_counter() - t0
        rec = {"stage": "autoencoder", "epoch": self.epoch, **{k: v / n for k, v in totals.items()},
               "perplexity": perplexity / n}
        self.history.append(rec)
        return rec

    @torch.no_grad()
    def encode(self, graphs: List[Data]) -> Codes:
        """Codes of canonical graphs (eval mode), in batches."""
        counts, nodes, tops = [], [], []
        for batch in _batches(graphs, 64, shuffle=False):
            c = self.model.encode(batch.to(self.device))
            counts.append(c.num_nodes)
            nodes.extend(c.nodes)
            if c.top is not None:
                tops.append(c.top)
        return Codes(torch.cat(counts), nodes, torch.cat(tops) if tops else None)

    def _prior_sequences(self, train: List[Data]) -> Dict[str, List[torch.Tensor]]:
        codes = self.encode(train)
        return {k: p.sequences(codes) for k, p in self.priors.items()}

    def _prior_epoch(self, seqs: Dict[str, List[torch.Tensor]]) -> dict:
        t0 = time.perf_counter()
        _seed(self.cfg, 2, self.epoch)
        rec = {"stage": "prior", "epoch": self.epoch + 1}
        for k, prior in self.priors.items():
            prior.train()
            s = seqs[k]
            order = torch.randperm(len(s)).tolist()
            total, n = 0.0, 0
            for start in range(0, len(order), self.cfg.prior_batch_size):
                loss = prior.loss([s[i] for i in order[start:start + self.cfg.prior_batch_size]])
                self.prior_opts[k].zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(prior.parameters(), 1.0)
                self.prior_opts[k].step()
                total, n = total + loss.item(), n + 1
            rec[f"nll_{k}" if len(self.priors) > 1 else "nll"] = total / n
        if len(self.priors) > 1:
            rec["nll"] = sum(v for key, v in rec.items() if key.startswith("nll_")) / len(self.priors)
        self.epoch += 1
        self.seconds["prior"] += time.perf_counter() - t0
        self.history.append(rec)
        return rec

    # generation
    @torch.no_grad()
    def sample(self, num_samples: int, seed: int = 0, temperature: float = 1.0) -> Sampled:
        """``num_samples`` new graphs, reproducible for a ``seed``."""
        num_samples = check_int("num_samples", num_samples, 1, who="VQRun.sample")
        seed = check_int("seed", seed, 0, who="VQRun.sample")
        if seed >= 2 ** 63:
            raise ValueError(f"VQRun.sample: seed must be below 2**63 (torch's generator seed), got {seed}")
        if self.stage != "done":
            raise ValueError(f"this run has not finished training (stage {self.stage!r}, epoch {self.epoch}); "
                             f"finish it with 'gnnkit vq train --resume RUN_DIR'")
        gen = torch.Generator().manual_seed(seed)
        if "prior" in self.priors:
            seqs = self.priors["prior"].sample(num_samples=num_samples, generator=gen, temperature=temperature)
            codes = self.priors["prior"].to_codes(seqs)
        else:
            top = self.priors["top"].sample(num_samples=num_samples, generator=gen, temperature=temperature)
            seqs = self.priors["bottom"].sample(prefix=top, generator=gen, temperature=temperature)
            codes = self.priors["bottom"].to_codes(seqs)
        return Sampled(self.model.decode(codes, threshold=self.cfg.threshold), codes)

    def reconstruction(self, graphs: List[Data]) -> dict:
        """Edge ROC-AUC / accuracy over all node pairs (over edges and as many sampled non-edges for
        batches of graphs above 256 nodes, as in training), node-label accuracy and codebook perplexity of
        ``graphs`` (canonical), in eval mode (the model's mode is restored after)."""
        from sklearn.metrics import roc_auc_score
        logits, targets, label_hits, label_total, idx = [], [], 0, 0, []
        with evaluating(self.model):
            for batch in _batches(graphs, 64, shuffle=False):
                batch = batch.to(self.device)
                out = self.model(batch)
                logits.append(out.edge_logits)
                targets.append(out.edge_targets)
                idx.append(out.node_indices.reshape(-1))
                if out.label_logits is not None:
                    label_hits += int((out.label_logits.argmax(-1) == batch.node_label).sum())
                    label_total += batch.num_nodes
        lg, tg = torch.cat(logits).cpu(), torch.cat(targets).cpu()
        stats = usage_stats(code_counts(torch.cat(idx), self.model.num_codes))
        res = {"edge_auc": float(roc_auc_score(tg.numpy(), lg.numpy())) if 0 < float(tg.mean()) < 1 else float("nan"),
               "edge_accuracy": float(((lg > 0).float() == tg).float().mean()),
               "perplexity": float(stats.perplexity), "codes_used": int(stats.num_used),
               "num_codes": int(self.model.num_codes)}
        if label_total:
            res["label_accuracy"] = label_hits / label_total
        return res

    def evaluate(self, num_samples: Optional[int] = None, seed: int = 0, repeats: int = 3,
                 protocols: Sequence[str] = ("graphrnn", "gran"), temperature: float = 1.0,
                 progress: bool = False) -> dict:
        """Generation MMD² of ``num_samples`` sampled graphs (default: as many as test graphs, as GDSS
        samples) against the test graphs under each protocol, and validity / uniqueness / novelty, for
        ``repeats`` sampling seeds ``seed, seed+1, …`` (mean and standard deviation over them; small
        test sets make one draw noisy); plus test-set reconstruction."""
        from .metrics import STATISTICS, as_scored, generation_mmd, novelty, uniqueness, validity
        if self.data is None:
            raise ValueError("evaluation needs the run's data; resume it with load_data=True")
        repeats = check_int("repeats", repeats, 1, who="VQRun.evaluate")
        seed = check_int("seed", seed, 0, who="VQRun.evaluate")
        if isinstance(protocols, str):  # one protocol by name ('gran' was read as 'g', 'r', 'a', 'n')
            protocols = (protocols,)
        # num_samples=0 fell back to the test-set size (``or``): only None means "as many as test graphs"
        n = len(self.data.test) if num_samples is None else check_int("num_samples", num_samples, 1,
                                                                      who="VQRun.evaluate")
        attr = "label" if self.meta["num_node_labels"] else None  # labelled graphs: isomorphism respects labels

        def scored_mmd(graphs: list, protocol: str) -> dict:
            """MMD² of ``graphs`` against the test graphs after the protocol's removal of isolated nodes; graphs
            that all lose every node (none has an edge, GRAN's pipeline) have undefined MMDs: NaN, as GRAN's."""
            scored, removed = as_scored(graphs, protocol)
            if any(h.number_of_nodes() for h in scored):
                out = generation_mmd(self.data.test, scored, protocol=protocol)
            else:
                out = {"protocol": protocol, **{s: math.nan for s in STATISTICS},
                       "num_reference": len(self.data.test), "num_generated": 0, "num_generated_empty": len(graphs)}
            out["isolated_nodes_removed"] = removed
            return out

        runs = []
        from tqdm.auto import tqdm
        for r in tqdm(range(repeats), desc="sampling seeds (sample, MMD, V.U.N.)", unit="seed", disable=not progress):
            t0 = time.perf_counter()
            sampled = self.sample(n, seed=seed + r, temperature=temperature)
            gen = [from_pyg(g) for g in sampled.graphs]
            one = {"seed": seed + r, "sample_seconds": time.perf_counter() - t0,
                   "validity": validity(gen), "uniqueness": uniqueness(gen, node_attr=attr),
                   "novelty": novelty(gen, self.data.train, node_attr=attr),
                   "nodes_mean": sum(g.number_of_nodes() for g in gen) / n,
                   "edges_mean": sum(g.number_of_edges() for g in gen) / n}
            for protocol in protocols:  # isolated nodes removed first, as the protocol's reference pipeline does
                one[f"mmd_{protocol}"] = scored_mmd(gen, protocol)
            runs.append(one)

        def mean_std(values: List[float]) -> Tuple[float, float]:
            t = torch.tensor(values, dtype=torch.float64)
            return float(t.mean()), float(t.std(unbiased=False)) if len(values) > 1 else 0.0

        # calibration: the same statistics for random subsets of the *training* graphs (no model at all);
        # with 20 test graphs this is how close independent draws of the same distribution get
        import random
        base = []
        for r in range(repeats):
            subset = random.Random(seed + r).sample(list(self.data.train), min(n, len(self.data.train)))
            base.append({p: scored_mmd(subset, p) for p in protocols})  # (edgeless training graphs: NaN too)

        res = {"dataset": self.meta["dataset"], "description": self.meta["description"], "num_samples": n,
               "num_test": len(self.data.test), "sample_seeds": [seed + r for r in range(repeats)],
               "temperature": temperature,
               "train_seconds": dict(self.seconds), "config": dataclasses.asdict(self.cfg), "runs": runs}
        for protocol in protocols:
            agg: Dict[str, object] = {"protocol": protocol}
            for stat in STATISTICS:
                if stat in runs[0][f"mmd_{protocol}"]:
                    agg[stat], agg[f"{stat}_std"] = mean_std([x[f"mmd_{protocol}"][stat] for x in runs])
                    agg[f"train_subset_{stat}"], agg[f"train_subset_{stat}_std"] = mean_std(
                        [b[protocol][stat] for b in base])
            agg["isolated_nodes_removed_mean"] = sum(x[f"mmd_{protocol}"]["isolated_nodes_removed"] for x in runs) / \
                (len(runs) * n)  # per sampled graph
            res[f"mmd_{protocol}"] = agg
        for key in ("validity", "uniqueness", "novelty", "nodes_mean", "edges_mean", "sample_seconds"):
            res[key], res[f"{key}_std"] = mean_std([x[key] for x in runs])
        res["reconstruction_test"] = self.reconstruction(prepare(self.data.test))
        return res


# Published MMD² on the same datasets (../shared/guide/field.md); protocol "graphrnn" = Gaussian-EMD kernels as in
# GraphRNN's / GDSS's evaluation code. GraphRNN's own numbers come from its paper's protocol; GDSS re-ran GraphRNN.
PUBLISHED_MMD: Dict[str, List[Tuple[str, str, Tuple[Optional[float], Optional[float], Optional[float]], str]]] = {
    "community-small": [
        ("GraphVAE", "graphrnn", (0.35, 0.98, 0.54), "GraphRNN paper"),
        ("GraphRNN", "graphrnn", (0.03, 0.03, 0.01), "GraphRNN paper"),
        ("GraphRNN (GDSS re-run)", "graphrnn", (0.080, 0.120, 0.040), "GDSS paper"),
        ("GDSS", "graphrnn", (0.045, 0.086, 0.007), "GDSS paper (avg 0.046)"),
    ],
    "ego-small": [
        ("GraphVAE (CiteSeer)", "graphrnn", (0.13, 0.17, 0.05), "GraphRNN paper"),
        ("GraphRNN (CiteSeer)", "graphrnn", (0.0003, 0.05, 0.0009), "GraphRNN paper"),
    ],
}


def format_table(result: dict) -> str:
    """The MMD² table of :meth:`VQRun.evaluate`'s result (mean ± std over sampling seeds), one block per
    protocol, with the published rows of the same protocol."""
    lines = []
    seeds = result.get("sample_seeds", [0])
    for key in sorted((k for k in result if k.startswith("mmd_")), key=lambda k: k != "mmd_graphrnn"):
        res = result[key]
        protocol = key[4:]
        lines.append(f"MMD² under protocol {protocol!r}, {result['num_samples']} samples vs {result['num_test']} "
                     f"test graphs, mean ± std over {len(seeds)} sampling seed(s)")
        lines.append(f"{'model':40s} {'degree':>15s} {'cluster':>15s} {'orbit':>15s} {'avg':>8s}")
        stats = ("degree", "clustering", "orbit")
        cell = lambda m, sd: f"{m:7.4f} ± {sd:.4f}" if sd is not None else f"{m:7.4f}{'':8s}"  # noqa: E731
        got = [res[m] for m in stats if m in res]
        levels = result['config']['levels']
        name = f"gnnkit graph VQ-VAE ({result['config']['quantizer']}, {levels} level{'s' if levels != 1 else ''})"
        lines.append(f"{name:40s} " + " ".join(cell(res[m], res.get(m + "_std")) if m in res else f"{'-':>15s}"
                                             for m in stats) + f" {sum(got) / max(len(got), 1):8.4f}")
        if "train_subset_degree" in res:
            lines.append(f"{'training graphs, no model (calibration)':40s} "
                         + " ".join(cell(res["train_subset_" + m], res.get(f"train_subset_{m}_std")) for m in stats)
                         + f" {sum(res['train_subset_' + m] for m in stats) / 3:8.4f}")
        for model, proto, pub, source in PUBLISHED_MMD.get(result["dataset"], []):
            if proto == protocol:
                lines.append(f"{model + ' [' + source + ']':40s} " + " ".join(cell(v, None) for v in pub)
                             + f" {sum(pub) / 3:8.4f}")
        lines.append("")
    lines.append(f"validity {result['validity']:.3f}  uniqueness {result['uniqueness']:.3f}  "
                 f"novelty {result['novelty']:.3f}  (validity = connected; mean over the sampling seeds)")
    rec = result.get("reconstruction_test", {})
    if rec:
        lines.append(f"test reconstruction: edge ROC-AUC {rec['edge_auc']:.4f}, "
                     f"edge accuracy {rec['edge_accuracy']:.4f}"
                     + (f", node-label accuracy {rec['label_accuracy']:.4f}" if "label_accuracy" in rec else "")
                     + f"; codebook perplexity {rec['perplexity']:.1f} "
                       f"({rec['codes_used']}/{rec['num_codes']} codes used)")
    return "\n".join(lines)
