"""Training an encoder (GCN / GraphSAGE) + decoder (dot / MLP) on a leak-free split.

Protocol: every epoch the encoder runs on the training *message* edges only, the
loss is binary cross-entropy on the training *supervision* edges and as many fresh
negatives (drawn by :func:`~gnnkit.linkpred.train_negative_sampler`, which excludes
only training edges); validation and test are scored with the encoder run on their
own message edges; the test result reported is the one at the best validation epoch
(OGB's rule).  Featureless graphs (ogbl-ddi) get a learnable embedding per node.
"""
from __future__ import annotations

import contextlib
import hashlib
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Data

import gnnkit.nn as gnn
from gnnkit._atomic import IntegrityError, load_torch_verified, save_torch_verified
from gnnkit.distributed import (  # noqa: F401  (rng_state, set_rng_state: imported from here before 2026-12-05)
    DistContext,
    rank_seed,
    rank_streams,
    restore_rank_streams,
    rng_state,
    set_rng_state,
    wrap,
)
from gnnkit.nn.dropout import dropout

from .metrics import evaluate
from .split import both_directions, infer_undirected, is_bipartite, train_negative_sampler, unique_edges

MODELS = ("gcn", "sage")
LIBS = ("gnnkit", "pyg")  # where the conv layers come from
DECODERS = ("dot", "mlp")
_CONV_NAMES = {"gcn": "GCNConv", "sage": "SAGEConv"}


def conv_class(model: str, lib: str = "gnnkit") -> type:
    """The conv layer of ``model`` from ``lib``: ``"gnnkit"`` (gnnkit.nn) or ``"pyg"`` (torch_geometric.nn)."""
    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {model!r}")
    if lib not in LIBS:
        raise ValueError(f"lib must be one of {LIBS}, got {lib!r}")
    if lib == "pyg":
        import torch_geometric.nn as pyg_nn
        return getattr(pyg_nn, _CONV_NAMES[model])
    cls = getattr(gnn, _CONV_NAMES[model], None)
    if cls is None:
        raise ValueError(f"gnnkit.nn.{_CONV_NAMES[model]} is not available in this gnnkit build; "
                         f"fix: use --model {'gcn' if model == 'sage' else 'sage'}")
    return cls


class Encoder(nn.Module):
    """``num_layers`` convolutions with ReLU and dropout between them; node embeddings when featureless."""

    def __init__(self, model: str, in_channels: Optional[int], num_nodes: int, hidden: int, out: int,
                 num_layers: int, dropout: float, lib: str = "gnnkit"):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        self.emb = nn.Embedding(num_nodes, hidden) if in_channels is None else None
        cls = conv_class(model, lib)
        dims = [in_channels if in_channels is not None else hidden] + [hidden] * (num_layers - 1) + [out]
        self.convs = nn.ModuleList(cls(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.dropout = dropout
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.emb is not None:
            nn.init.xavier_uniform_(self.emb.weight)
        for c in self.convs:
            c.reset_parameters()

    def forward(self, x: Optional[Tensor], edge_index: Tensor) -> Tensor:
        h = self.emb.weight if self.emb is not None else x
        for i, conv in enumerate(self.convs):
            h = conv(h, edge_index)
            if i < len(self.convs) - 1:
                h = F.relu(h)
                h = dropout(h, self.dropout, self.training)
        return h


def _pair_product(z: Tensor, pairs: Tensor) -> Tensor:
    """``z[u] * z[v]`` for each pair. ``index_select``, not ``z[idx]``: the backward of advanced
    indexing accumulates with atomics on CPU (thread-order dependent sums), index_select's
    backward is a sequential index_add, so a seeded run is bit-identical across processes."""
    return z.index_select(0, pairs[0]) * z.index_select(0, pairs[1])


class DotDecoder(nn.Module):
    def forward(self, z: Tensor, pairs: Tensor) -> Tensor:
        return _pair_product(z, pairs).sum(-1)


class MLPDecoder(nn.Module):
    """OGB's link predictor: an MLP on the Hadamard product of the two embeddings."""

    def __init__(self, channels: int, hidden: int, num_layers: int = 3, dropout: float = 0.0):
        super().__init__()
        dims = [channels] + [hidden] * (num_layers - 1) + [1]
        self.lins = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.dropout = dropout

    def forward(self, z: Tensor, pairs: Tensor) -> Tensor:
        h = _pair_product(z, pairs)
        for lin in self.lins[:-1]:
            h = dropout(F.relu(lin(h)), self.dropout, self.training)
        return self.lins[-1](h).view(-1)


@dataclass
class LinkPredConfig:
    model: str = "gcn"
    decoder: str = "dot"
    hidden: int = 32
    out_channels: int = 16
    num_layers: int = 2
    dropout: float = 0.0
    lr: float = 0.01
    epochs: int = 200
    batch_size: int = 0  # 0: all supervision edges in one batch
    eval_every: int = 1
    neg_method: str = "uniform"
    select: str = "auc"  # validation metric that picks the reported epoch
    ks: Tuple[int, ...] = (20, 50, 100)
    seed: int = 0
    device: str = "cpu"
    # re-divide the training edges into message / supervision edges every epoch (same
    # proportion, still disjoint): every training edge supervises some epochs and is
    # never in the input when it does; only when the split's two sets are disjoint
    reshuffle_train: bool = True
    decoder_layers: int = 3  # linear layers of the MLP decoder
    clip_grad: float = 0.0  # > 0: clip the gradient norm of embedding, encoder and decoder separately (OGB)
    lib: str = "gnnkit"  # the conv layers' library: "gnnkit" or "pyg" (same model, same state_dict keys)

    def __post_init__(self):
        if self.decoder not in DECODERS:
            raise ValueError(f"decoder must be one of {DECODERS}, got {self.decoder!r}")
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, got {self.model!r}")
        if self.epochs < 1 or self.eval_every < 1:
            raise ValueError("epochs and eval_every must be >= 1")
        if self.decoder_layers < 1:
            raise ValueError(f"decoder_layers must be >= 1, got {self.decoder_layers}")
        if self.lib not in LIBS:
            raise ValueError(f"lib must be one of {LIBS}, got {self.lib!r}")
        if self.clip_grad < 0:
            raise ValueError(f"clip_grad must be >= 0 (0 = no clipping), got {self.clip_grad}")
        for name in ("num_layers", "hidden", "out_channels"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.batch_size < 0:
            raise ValueError(f"batch_size must be >= 0 (0 = one batch), got {self.batch_size}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not self.clip_grad >= 0:  # nan too
            raise ValueError(f"clip_grad must be >= 0 (0 = no clipping), got {self.clip_grad}")
        self.ks = tuple(self.ks)
        if any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in self.ks):
            raise ValueError(f"ks must be integers >= 1 (the K of Hits@K), got {list(self.ks)}")
        known = ("auc", "ap") + tuple(f"hits@{k}" for k in self.ks)
        if self.select not in known:
            raise ValueError(f"select={self.select!r} is not a metric this run reports; use one of {list(known)} "
                             "(hits@K needs K in ks)")


@dataclass
class LinkPredResult:
    best_epoch: int
    val: Dict[str, float]
    test: Dict[str, float]
    history: List[Dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    config: Dict[str, object] = field(default_factory=dict)


def build_model(cfg: LinkPredConfig, data: Data) -> Tuple[Encoder, nn.Module]:
    x = data.x if "x" in data and data.x is not None else None
    in_ch = None if x is None else x.size(1)
    enc = Encoder(cfg.model, in_ch, int(data.num_nodes), cfg.hidden, cfg.out_channels, cfg.num_layers,
                  cfg.dropout, cfg.lib)
    dec = DotDecoder() if cfg.decoder == "dot" else \
        MLPDecoder(cfg.out_channels, cfg.hidden, cfg.decoder_layers, cfg.dropout)
    return enc, dec


def _x(data: Data, device) -> Optional[Tensor]:
    return data.x.float().to(device) if "x" in data and data.x is not None else None


@torch.no_grad()
def score_split(enc: Encoder, dec: nn.Module, data: Data, device: Union[str, torch.device]) -> Tuple[Tensor, Tensor]:
    enc.eval()
    dec.eval()
    z = enc(_x(data, device), data.edge_index.to(device))
    s = dec(z, data.edge_label_index.to(device)).cpu()
    lab = data.edge_label.cpu()
    return s[lab == 1], s[lab == 0]


def _reshuffler(train_data: Data, pos: Tensor, cfg: LinkPredConfig):
    """A callable giving a fresh (message edges, supervision positives) division (its generator is its
    ``generator`` attribute), or None."""
    if is_bipartite(train_data) or pos.size(1) == 0:
        return None
    und = infer_undirected(train_data)
    n = int(train_data.num_nodes)
    msg, _ = unique_edges(train_data.edge_index, n, und)
    sup, _ = unique_edges(pos, n, und)
    if bool(torch.isin(sup[0] * n + sup[1], msg[0] * n + msg[1]).any()):
        return None  # the split trains on overlapping edges on purpose (OGB protocol / ratio 0)
    edges = torch.cat([msg, sup], 1)
    n_sup = sup.size(1)
    gen = torch.Generator().manual_seed(cfg.seed + 1)

    def draw():
        perm = torch.randperm(edges.size(1), generator=gen)
        s, m = edges[:, perm[:n_sup]], edges[:, perm[n_sup:]]
        return (both_directions(m) if und else m), s
    draw.generator = gen
    return draw


class LinkPredTrainer:
    """One model (encoder + decoder) on one split, trained epoch by epoch: the engine of :func:`fit` and of
    ``gnnkit ogb`` for ``ogbl-*`` datasets.  Its :meth:`state_dict` holds the weights, the optimizer and every
    random stream (negatives, batch order, message/supervision reshuffle, dropout), so a run restored from it
    continues exactly as if it had not stopped.

    ``init_state``: ``{"encoder": ..., "decoder": ...}`` weights to start from (e.g. the other library's model,
    so that gnnkit's and PyG's layers start identical).  ``ctx`` (:func:`gnnkit.distributed.init`): with
    several processes, encoder and decoder are wrapped in ``DistributedDataParallel`` and each rank trains on
    its share of every batch of positives, with negatives from its own seeded stream."""

    def __init__(self, train_data: Data, val_data: Data, test_data: Data, cfg: LinkPredConfig,
                 init_state: Optional[Dict[str, Dict[str, Tensor]]] = None, ctx: Optional[DistContext] = None):
        if is_bipartite(train_data):
            raise ValueError("LinkPredTrainer / fit train a homogeneous encoder, but this split is bipartite "
                             "(num_src/num_dst: source and destination ids are numbered apart, so item j would share "
                             "user j's embedding and messages); fix: give the two node types one id space (shift "
                             "destination ids by num_src) and split that graph, or train a heterogeneous model "
                             "(e.g. PyG's to_hetero) on the bipartite split")
        for d, what in ((train_data, "train"), (val_data, "val"), (test_data, "test")):
            lab = d.edge_label if "edge_label" in d else None
            if lab is None or not bool((lab == 1).any()):
                fix = {"train": "more edges or smaller num_val / num_test",
                       "val": "num_val > 0 (--num-val; the reported epoch is the best on validation)",
                       "test": "num_test > 0 (--num-test)"}[what]
                verb = "train on" if what == "train" else "score"
                raise ValueError(f"the {what} split has no positive edges to {verb}; fix: a split with {fix}")
            if what != "train" and not bool((lab == 0).any()):  # ROC-AUC, AP and MRR failed after the first epoch
                raise ValueError(f"the {what} split holds no negatives (split with neg_sampling_ratio=0, "
                                 "--neg-ratio 0?), and ROC-AUC, AP and MRR need them; fix: a split with "
                                 "neg_sampling_ratio > 0 (gnnkit split ... --neg-ratio 1)")
        if "x" not in train_data or train_data.x is None:
            if "n_id" in train_data or "n_id_src" in train_data:
                raise ValueError("an inductive split of a featureless graph cannot use node embeddings "
                                 "(test nodes are unseen); fix: a graph with node features or --mode transductive")
        self.cfg, self.val_data, self.test_data = cfg, val_data, test_data
        torch.manual_seed(cfg.seed)
        self.device = device = torch.device(cfg.device)
        enc, dec = build_model(cfg, train_data)
        if init_state is not None:
            enc.load_state_dict(init_state["encoder"])
            dec.load_state_dict(init_state["decoder"])
        self.enc, self.dec = enc.to(device), dec.to(device)
        self.ctx = ctx if ctx is not None else DistContext()
        self.enc_net, self.dec_net = wrap(self.enc, self.ctx), wrap(self.dec, self.ctx)
        self.opt = torch.optim.Adam(list(enc.parameters()) + list(dec.parameters()), lr=cfg.lr)
        self.clip_groups = [g for g in ([] if enc.emb is None else list(enc.emb.parameters()),
                                        [p for n, p in enc.named_parameters() if not n.startswith("emb.")],
                                        list(dec.parameters())) if g]
        # rank 0 (and a 1-process run): the configured seed
        self.sampler = train_negative_sampler(train_data, 1.0, cfg.neg_method, seed=rank_seed(cfg.seed, self.ctx))
        self.pos = train_data.edge_label_index[:, train_data.edge_label == 1]
        self.x = _x(train_data, device)
        self.msg = train_data.edge_index.to(device)
        self.reshuffle = _reshuffler(train_data, self.pos, cfg) if cfg.reshuffle_train else None
        self.gen = torch.Generator().manual_seed(cfg.seed)
        # several processes: the decoder's per-pair dropout draws from this rank's own stream, so the ranks'
        # pairs get independent masks and the shared global stream (the encoder's whole-graph masks, equal on
        # every rank) advances alike on every rank whatever the shares; one process: the global stream, as before
        self.dec_gen = torch.Generator(device=device).manual_seed(rank_seed(cfg.seed + _DECODER, self.ctx)) \
            if self.ctx.enabled else None
        self.epoch = 0

    def initial_state(self) -> Dict[str, Dict[str, Tensor]]:
        """The weights as ``init_state`` takes them."""
        return {"encoder": {k: v.clone() for k, v in self.enc.state_dict().items()},
                "decoder": {k: v.clone() for k, v in self.dec.state_dict().items()}}

    def train_epoch(self) -> float:
        """One pass over the supervision positives (with as many fresh negatives); the mean loss."""
        cfg, device = self.cfg, self.device
        self.enc.train()
        self.dec.train()
        neg = self.sampler.sample()  # fresh negatives every epoch
        pos, msg = self.pos, self.msg
        if self.reshuffle is not None:
            msg_cpu, pos = self.reshuffle()
            msg = msg_cpu.to(device)
        P = pos.size(1)
        bs = P if cfg.batch_size <= 0 else cfg.batch_size
        perm = torch.randperm(P, generator=self.gen)
        total = 0.0
        for i in range(0, P, bs):
            batch = perm[i:i + bs]
            idx = self.ctx.shard(batch)  # this rank's share of the batch (all of it in 1 process)
            z = self.enc_net(self.x, msg)
            with self._decoder_stream():
                ps = self.dec_net(z, pos[:, idx].to(device))
                ns = self.dec_net(z, neg[:, idx].to(device))
            if idx.numel() == 0:  # a short last batch leaves this rank nothing: join the gradient average with 0
                loss = part = (ps.sum() + ns.sum()) * 0.0
            else:
                loss = F.binary_cross_entropy_with_logits(ps, torch.ones_like(ps)) + \
                    F.binary_cross_entropy_with_logits(ns, torch.zeros_like(ns))
                # DDP averages the ranks' gradients: weighting each rank's mean by its share of the batch
                # (times the world size) makes that average the gradient of the whole batch's mean loss, also
                # when the shares differ (a batch the world size does not divide); 1 in one process
                part = loss * self.ctx.share_weight(idx.numel(), batch.numel())
            self.opt.zero_grad()
            part.backward()
            if cfg.clip_grad > 0:  # as OGB's ogbl-ddi example: each part's norm on its own
                for group in self.clip_groups:
                    torch.nn.utils.clip_grad_norm_(group, cfg.clip_grad)
            self.opt.step()
            total += float(loss.detach()) * idx.numel()
        self.epoch += 1
        # this rank's summed per-pair losses over the epoch's P positives: the ranks' mean (all_reduce_mean) of
        # total * world_size / P is the epoch's mean loss, also when the world size does not divide P
        return total * self.ctx.share_weight(1, P)

    def evaluate(self) -> Tuple[Dict[str, float], Dict[str, float]]:
        """Validation and test metrics (AUC, AP, Hits@K) of the current weights."""
        val = evaluate(*score_split(self.enc, self.dec, self.val_data, self.device), ks=self.cfg.ks)
        test = evaluate(*score_split(self.enc, self.dec, self.test_data, self.device), ks=self.cfg.ks)
        if self.cfg.select not in val:
            raise ValueError(f"select={self.cfg.select!r} is not among the validation metrics {sorted(val)}; "
                             "fix: --select auc / ap / hits@K with enough negatives")
        return val, test

    @contextlib.contextmanager
    def _decoder_stream(self):
        """Under several processes, torch's global stream (CPU, or the CUDA device's) replaced by this rank's
        decoder stream (``dec_gen``) for the block, then restored; nothing in one process."""
        if self.dec_gen is None:
            yield
            return
        cuda = self.device.type == "cuda"
        with torch.random.fork_rng(devices=[self.device] if cuda else []):
            if cuda:
                torch.cuda.set_rng_state(self.dec_gen.get_state(), self.device)
            else:
                torch.set_rng_state(self.dec_gen.get_state())
            yield
            self.dec_gen.set_state(torch.cuda.get_rng_state(self.device) if cuda else torch.get_rng_state())

    def generators(self) -> Dict[str, torch.Generator]:
        """This rank's random generators by name (batch order, negatives, reshuffling, and under several
        processes the decoder's dropout), as ``state_dict`` keeps their states."""
        gens = {"batches": self.gen}
        if self.sampler.generator is not None:
            gens["negatives"] = self.sampler.generator
        if self.reshuffle is not None:
            gens["reshuffle"] = self.reshuffle.generator
        if self.dec_gen is not None:
            gens["decoder_dropout"] = self.dec_gen
        return gens

    def state_dict(self) -> Dict[str, object]:
        return {"encoder": self.enc.state_dict(), "decoder": self.dec.state_dict(),
                "optimizer": self.opt.state_dict(),
                "generators": {k: g.get_state() for k, g in self.generators().items()}, "epoch": self.epoch}

    def load_state_dict(self, state: Dict[str, object]) -> None:
        self.enc.load_state_dict(state["encoder"])
        self.dec.load_state_dict(state["decoder"])
        self.opt.load_state_dict(state["optimizer"])
        gens = state["generators"]
        self.gen.set_state(gens["batches"])
        if "negatives" in gens:
            self.sampler.generator.set_state(gens["negatives"])
            if self.ctx.rank > 0:  # rank 0's stream was saved; the other ranks draw afresh from the epoch on
                self.sampler.generator.manual_seed(rank_seed(self.cfg.seed, self.ctx, int(state["epoch"])))
        if "reshuffle" in gens:
            self.reshuffle.generator.set_state(gens["reshuffle"])
        if self.dec_gen is not None:  # rank 0's stream, if it was kept (a multi-process run); the others afresh
            if "decoder_dropout" in gens and self.ctx.rank == 0:
                self.dec_gen.set_state(gens["decoder_dropout"])
            else:
                self.dec_gen.manual_seed(rank_seed(self.cfg.seed + _DECODER, self.ctx, int(state["epoch"])))
        self.epoch = int(state["epoch"])


_DECODER = 15485863  # the decoder-dropout streams' seed offset (several processes only): apart from the negatives'


CHECKPOINT_FORMAT = "gnnkit-linkpred-checkpoint/1"


def split_fingerprint(train_data: Data, val_data: Data, test_data: Data) -> str:
    """SHA-256 over what a run trains and is scored on: node count, features, and every split's edges and
    labels (a checkpoint remembers it, so a resumed run refuses another split or other features)."""
    h = hashlib.sha256()
    for d in (train_data, val_data, test_data):
        h.update(str(int(d.num_nodes)).encode())
        for key in ("x", "edge_index", "edge_label_index", "edge_label"):
            t = d[key] if key in d else None
            h.update(key.encode())
            if isinstance(t, Tensor):
                t = t.detach().cpu().contiguous()
                h.update(f"{t.dtype}{tuple(t.shape)}".encode())
                h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _comparable(cfg: LinkPredConfig) -> Dict[str, object]:
    """The settings a resumed run must share with the saved one (the device may change)."""
    d = asdict(cfg)
    d.pop("device")
    d["ks"] = list(d["ks"])
    return d


def _read_checkpoint(path: Path, cfg: LinkPredConfig, fingerprint: str, resume: bool) -> Optional[Dict[str, object]]:
    """The saved run to continue, None to start afresh, or a ValueError saying why neither is right."""
    if not path.exists():
        return None
    if not resume:
        raise ValueError(f"checkpoint {path} already exists (a run started before); fix: --resume (resume=True "
                         "from Python) to continue it, or another checkpoint path")
    try:
        ck = load_torch_verified(path)
    except IntegrityError as e:
        raise ValueError(f"{e}; or delete it to start the run again") from None
    if not isinstance(ck, dict) or ck.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a gnnkit linkpred checkpoint; fix: another checkpoint path")
    saved, now = ck["config"], _comparable(cfg)
    if saved != now:
        diff = {k: (saved.get(k), v) for k, v in now.items() if saved.get(k) != v}
        raise ValueError(f"resume: {path} was started with other settings (saved, now): {diff}; fix: the same "
                         "settings, or another checkpoint path")
    if ck["split"] != fingerprint:
        raise ValueError(f"resume: {path} was trained on another split or other node features; fix: the same "
                         "split (e.g. the --split folder it was started with, same --normalize-features), or "
                         "another checkpoint path")
    return ck


def fit(train_data: Data, val_data: Data, test_data: Data, cfg: LinkPredConfig,
        progress: bool = True, on_epoch: Optional[Callable[[LinkPredResult], None]] = None,
        checkpoint: Optional[Union[str, Path]] = None, resume: bool = False,
        checkpoint_every_s: float = 10.0) -> LinkPredResult:
    """Train and report the test metrics at the best validation epoch.

    ``on_epoch``, if given, is called after every evaluated epoch with the result so far
    (``history`` up to that epoch), e.g. to save partial results of a long run (on rank 0 only when
    launched by ``torchrun``: then every rank trains its share of each batch, see :class:`LinkPredTrainer`).

    ``checkpoint``: a file that keeps the run (weights, optimizer, every random stream, history, best
    epoch), written atomically with a SHA-256 side file after an epoch once ``checkpoint_every_s``
    seconds have passed since the last write (0: after every epoch), and after the last epoch.  An
    existing checkpoint is never overwritten by a new run: with ``resume=True`` the run continues after
    its last saved epoch and, in one process, ends with exactly the losses, metrics and reported epoch of an
    uninterrupted run (same settings, device aside, and the same split are required and checked); a finished
    run's checkpoint gives its result without training.  ``resume=True`` without a checkpoint on disk starts
    afresh.  Under ``torchrun`` rank 0 reads and writes it, with every rank's random streams: resumed with as
    many processes the run also ends exactly as an uninterrupted one; it may resume with another number of
    processes (then rank 0's streams continue and the other ranks draw afresh: not bit-identical)."""
    from tqdm.auto import tqdm

    from gnnkit.distributed import init as dist_init
    if isinstance(checkpoint_every_s, bool) or not isinstance(checkpoint_every_s, (int, float)) or \
            not checkpoint_every_s >= 0:  # nan too
        raise ValueError(f"checkpoint_every_s must be >= 0 seconds, got {checkpoint_every_s!r}")
    if resume and checkpoint is None:
        raise ValueError("resume=True needs the checkpoint file to continue from; fix: pass checkpoint=PATH "
                         "(--checkpoint)")
    if checkpoint is not None and Path(checkpoint).is_dir():
        raise ValueError(f"checkpoint={str(checkpoint)!r} is a folder; fix: a file path, e.g. "
                         f"{Path(checkpoint) / 'linkpred.pt'}")
    ctx = dist_init(cfg.device)  # under torchrun: this rank's process group (else a 1-process no-op)
    if ctx.enabled:
        cfg = replace(cfg, device=str(ctx.device(cfg.device)))
    trainer = LinkPredTrainer(train_data, val_data, test_data, cfg, ctx=ctx)
    best, history, before = None, [], 0.0
    path = Path(checkpoint) if checkpoint is not None else None
    fingerprint = split_fingerprint(train_data, val_data, test_data) if path is not None else ""
    if path is not None:
        ck, error = None, None
        if ctx.is_main:  # rank 0 reads, the others get it from rank 0 (no shared file system needed)
            try:
                ck = _read_checkpoint(path, cfg, fingerprint, resume)
            except ValueError as e:
                error = str(e)
        ck, error = ctx.broadcast_object((ck, error))
        if error is not None:
            raise ValueError(error)
        if ck is not None:
            trainer.load_state_dict(ck["trainer"])
            set_rng_state(ck["rng"], trainer.device)
            restore_rank_streams(ck.get("ranks"), ctx, trainer.generators(), trainer.device)
            best, history, before = ck["best"], list(ck["history"]), float(ck["seconds"])
        if resume and ctx.is_main:  # say which: a mistyped path would otherwise redo the whole run silently
            print(f"resuming {path} after epoch {len(history)}" if ck is not None else
                  f"note: no checkpoint at {path}; starting a new run", file=sys.stderr)
    start = len(history)
    t0 = time.perf_counter()
    saved_at = t0

    def save() -> None:
        streams = rank_streams(ctx, trainer.generators(), trainer.device)  # every rank: a collective
        if ctx.is_main:
            save_torch_verified({"format": CHECKPOINT_FORMAT, "config": _comparable(cfg), "split": fingerprint,
                                 "trainer": trainer.state_dict(), "rng": rng_state(trainer.device), "ranks": streams,
                                 "best": best, "history": history, "seconds": before + time.perf_counter() - t0,
                                 "complete": len(history) == cfg.epochs}, path)

    bar = tqdm(range(start + 1, cfg.epochs + 1), disable=not progress or not ctx.is_main,
               desc=f"{cfg.model}+{cfg.decoder}", unit="epoch", initial=start, total=cfg.epochs)
    for epoch in bar:
        row = {"epoch": epoch, "loss": ctx.all_reduce_mean(trainer.train_epoch())}
        if epoch % cfg.eval_every == 0 or epoch == cfg.epochs:
            val, test = trainer.evaluate()
            row.update({f"val_{k}": v for k, v in val.items()})
            row.update({f"test_{k}": v for k, v in test.items()})
            if best is None or val[cfg.select] > best[1][cfg.select]:
                best = (epoch, val, test)
            bar.set_postfix(loss=f"{row['loss']:.4f}", **{f"val_{cfg.select}": f"{val[cfg.select]:.4f}"})
        history.append(row)
        due = epoch == cfg.epochs or time.perf_counter() - saved_at >= checkpoint_every_s
        if path is not None and ctx.broadcast_object(due):  # rank 0's clock decides: the ranks save together
            save()
            saved_at = time.perf_counter()
        if on_epoch is not None and "val_" + cfg.select in row and ctx.is_main:
            on_epoch(LinkPredResult(best_epoch=best[0], val=best[1], test=best[2], history=list(history),
                                    seconds=before + time.perf_counter() - t0, config=asdict(cfg)))
    bar.close()
    assert best is not None
    return LinkPredResult(best_epoch=best[0], val=best[1], test=best[2], history=history,
                          seconds=before + time.perf_counter() - t0, config=asdict(cfg))
