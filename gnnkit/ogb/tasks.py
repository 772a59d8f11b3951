"""One OGB task per dataset family, each a source of trainers: OGB's dataset class, ``get_idx_split()`` /
``get_edge_split()`` and ``Evaluator`` (never re-implemented), and one model built from gnnkit's or PyG's
layers.

A trainer trains one model epoch by epoch and has a ``state_dict`` holding its weights, optimizer and every
random stream it draws from (batch order, neighbour samples, negatives), so that a run resumed from a
checkpoint continues as if it had not stopped.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from gnnkit.data import dataset_names, load_dataset
from gnnkit.distributed import DistContext, rank_seed, wrap

from .models import GNNKIT_ONLY, MOL_MODELS, NODE_MODELS, MolGNN, NodeGNN

# Per-dataset protocol defaults: OGB's example scripts (and the leaderboard entries they produced).
PRESETS: Dict[str, Dict[str, Any]] = {
    # examples/graphproppred/mol/main_pyg.py: 5 layers, width 300, dropout 0.5, batch 32, 100 epochs, Adam 1e-3
    "ogbg": dict(num_layers=5, hidden=300, dropout=0.5, batch_size=32, epochs=100, lr=0.001, runs=10,
                 pooling="mean"),
    # examples/nodeproppred/arxiv/gnn.py: 3 layers, 256 hidden, dropout 0.5, Adam 0.01, 500 epochs, full batch
    "ogbn-arxiv": dict(num_layers=3, hidden=256, dropout=0.5, lr=0.01, epochs=500, runs=10, batch_size=0,
                       batch_norm=True),
    # examples/nodeproppred/products/neighbor_sampling.py: GraphSAGE, 3 layers, 256 hidden, fan-out 15/10/5,
    # batch 1024, Adam 0.003, 20 epochs; evaluation with every neighbour, layer by layer
    "ogbn-products": dict(num_layers=3, hidden=256, dropout=0.5, lr=0.003, epochs=20, runs=10, batch_size=1024,
                          fanout=(15, 10, 5), batch_norm=False),
    # examples/linkproppred/ddi/gnn.py (see gnnkit.commands.linkpred.PRESETS); it evaluates every 5th epoch
    # (--eval_steps 5), so only those epochs can be the reported (best validation) one
    "ogbl-ddi": dict(num_layers=2, hidden=256, dropout=0.5, lr=0.005, epochs=200, runs=10, batch_size=64 * 1024,
                     eval_every=5),
}
# OGB's products fan-out, also arxiv's in mini-batches; with another --num-layers its first entries, or its last
# entry repeated (OGBConfig)
DEFAULT_FANOUT = (15, 10, 5)
LEADERBOARD = {  # test score (mean ± std over 10 runs) of OGB's leaderboard entry for each baseline
    ("ogbg-molhiv", "gcn"): (0.7606, 0.0097), ("ogbg-molhiv", "gin"): (0.7558, 0.0140),
    ("ogbg-molhiv", "gcn-virtual"): (0.7599, 0.0119), ("ogbg-molhiv", "gin-virtual"): (0.7707, 0.0149),
    ("ogbn-arxiv", "gcn"): (0.7174, 0.0029), ("ogbn-arxiv", "sage"): (0.7149, 0.0027),
    ("ogbn-products", "sage"): (0.7870, 0.0036),
    ("ogbl-ddi", "gcn"): (0.3707, 0.0507), ("ogbl-ddi", "sage"): (0.5390, 0.0474),
}


def family(dataset: str) -> str:
    """``ogbg`` / ``ogbn`` / ``ogbl`` of an OGB dataset name; a clear error for anything else."""
    name = dataset.lower().replace("_", "-")
    ogb = [n for n in dataset_names() if n.startswith("ogb")]
    if name not in ogb:
        raise ValueError(f"gnnkit ogb: unknown dataset {dataset!r}; available: {ogb} (their files under "
                         "$GNNKIT_DATA/ogb/, see docs/benchmarks.md)")
    return name.split("-")[0]


def canonical(dataset: str) -> str:
    """OGB's name of a dataset given with ``_`` or capitals (``ogbn_arxiv`` -> ``ogbn-arxiv``), checked."""
    family(dataset)
    return dataset.lower().replace("_", "-")


def models_for(dataset: str) -> List[str]:
    fam, name = family(dataset), canonical(dataset)
    if fam == "ogbg":
        return sorted(MOL_MODELS)
    if fam == "ogbn":
        return ["sage"] if name == "ogbn-products" else list(NODE_MODELS)
    return ["gcn", "sage"]


def preset(dataset: str) -> Dict[str, Any]:
    fam = family(dataset)
    return dict(PRESETS["ogbg" if fam == "ogbg" else canonical(dataset)])


@dataclass
class OGBConfig:
    """One benchmark: dataset, model, protocol (``None`` fields take the dataset's :data:`PRESETS`)."""
    dataset: str
    model: str
    runs: Optional[int] = None
    epochs: Optional[int] = None
    layers: Optional[Tuple[str, ...]] = None  # default: both, gnnkit alone for the gnnkit-only models
    device: str = "cpu"
    seed: int = 0
    hidden: Optional[int] = None
    num_layers: Optional[int] = None
    dropout: Optional[float] = None
    lr: Optional[float] = None
    batch_size: Optional[int] = None
    root: Optional[str] = None
    extra: Dict[str, Any] = field(default_factory=dict)  # other preset keys (pooling, fanout, batch_norm)

    def __post_init__(self) -> None:
        self.dataset = self.dataset.lower().replace("_", "-")
        avail = models_for(self.dataset)
        if self.model not in avail:
            raise ValueError(f"gnnkit ogb: --model {self.model!r} does not fit {self.dataset}; available: {avail}")
        p = preset(self.dataset)
        user_fanout = "fanout" in self.extra  # given by the user, not the preset
        for k in ("runs", "epochs", "hidden", "num_layers", "dropout", "lr", "batch_size"):
            if getattr(self, k) is None:
                setattr(self, k, p.pop(k))
            else:
                p.pop(k, None)
        for k, v in p.items():
            self.extra.setdefault(k, v)
        self.extra = {k: list(v) if isinstance(v, tuple) else v for k, v in self.extra.items()}
        if self.layers is None:
            self.layers = ("gnnkit",) if self.model in GNNKIT_ONLY else ("gnnkit", "pyg")
        self.layers = tuple(self.layers)
        bad = [lib for lib in self.layers if lib not in ("gnnkit", "pyg")]
        if bad or not self.layers:
            raise ValueError(f"gnnkit ogb: --layers takes gnnkit, pyg or both, got {list(self.layers)}")
        if self.model in GNNKIT_ONLY and "pyg" in self.layers:
            raise ValueError(f"gnnkit ogb: --model {self.model} (GraphTransformerConv) has no PyG counterpart; "
                             "pass --layers gnnkit")
        for k in ("runs", "epochs", "hidden", "num_layers"):
            if getattr(self, k) < 1:
                raise ValueError(f"gnnkit ogb: --{k.replace('_', '-')} must be >= 1, got {getattr(self, k)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"gnnkit ogb: --dropout must lie in [0, 1), got {self.dropout}")
        fam = family(self.dataset)
        if fam == "ogbg" and self.num_layers < 2:
            raise ValueError(f"gnnkit ogb: --num-layers must be >= 2 for {self.dataset} (OGB's molecule models), got "
                             f"{self.num_layers}")
        if fam == "ogbg" and self.batch_size < 2:
            raise ValueError(f"gnnkit ogb: --batch-size must be >= 2 for {self.dataset} (graphs per step: OGB's loop "
                             f"skips one-graph batches, whose batch norm cannot train), got {self.batch_size}")
        if fam == "ogbn" and self.batch_size > 0 and not user_fanout and self.num_layers != len(DEFAULT_FANOUT):
            # no fan-out given for another depth: the preset's first entries, or its last one repeated
            base = list(self.extra.get("fanout", DEFAULT_FANOUT))
            self.extra["fanout"] = (base + [base[-1]] * self.num_layers)[:self.num_layers]
        if user_fanout and (fam != "ogbn" or self.batch_size <= 0):
            raise ValueError("gnnkit ogb: --fanout applies to ogbn-* datasets trained in mini-batches "
                             "(--batch-size > 0); fix: drop --fanout, or --batch-size > 0")
        if "fanout" in self.extra and self.batch_size > 0:
            if len(self.extra["fanout"]) != self.num_layers or min(self.extra["fanout"]) < 1:
                raise ValueError(f"gnnkit ogb: --fanout {self.extra['fanout']} needs one number >= 1 per layer "
                                 f"(--num-layers {self.num_layers})")
        if self.model == "gt" and self.hidden % 4:
            raise ValueError(f"gnnkit ogb: --hidden {self.hidden} must be divisible by 4 (the transformer's heads) "
                             "for --model gt")

    def protocol(self) -> Dict[str, Any]:
        """The settings a result depends on (what ``--resume`` must find unchanged)."""
        return {k: getattr(self, k) for k in ("dataset", "model", "epochs", "seed", "hidden", "num_layers",
                                              "dropout", "lr", "batch_size")} | {"extra": self.extra}


class Trainer:
    """What the runner drives; see the module doc."""
    model: torch.nn.Module
    metric: str

    def train_epoch(self, progress: bool = False) -> float:  # pragma: no cover - interface
        raise NotImplementedError

    def evaluate(self) -> Dict[str, float]:  # pragma: no cover - interface
        """``{"valid": ..., "test": ...}`` in the dataset's official metric (higher is better)."""
        raise NotImplementedError

    def state_dict(self) -> Dict[str, Any]:  # pragma: no cover - interface
        raise NotImplementedError

    def load_state_dict(self, state: Dict[str, Any]) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def generators(self) -> Dict[str, torch.Generator]:  # pragma: no cover - interface
        """This rank's random generators by name, as ``state_dict()["generators"]`` keeps their states."""
        raise NotImplementedError

    def initial_state(self) -> Dict[str, Any]:
        return {k: v.clone() for k, v in self.model.state_dict().items()}

    def _start(self, task: Any, seed: int, ctx: DistContext) -> "OGBConfig":
        """Common set-up: task, metric, rank context, seed, device; seeds torch; returns the config."""
        self.task, self.metric, self.ctx, self.seed = task, task.metric, ctx, seed
        self.device = ctx.device(task.cfg.device)
        torch.manual_seed(seed)
        return task.cfg


_LOCAL = DistContext()


def _bar(it: Any, total: int, progress: bool, desc: str) -> Any:
    from tqdm.auto import tqdm
    return tqdm(it, total=total, disable=not progress, leave=False, desc=desc, unit="batch")


# ------------------------------------------------------------------------------------------ graph level
class GraphTask:
    """ogbg-* (molecules): :class:`~gnnkit.ogb.models.MolGNN` with BCE on the labelled tasks."""

    def __init__(self, cfg: OGBConfig):
        from ogb.graphproppred import Evaluator
        self.cfg = cfg
        self.dataset = load_dataset(cfg.dataset, root=cfg.root)
        self.split = self.dataset.get_idx_split()
        self.evaluator = Evaluator(cfg.dataset)
        self.metric = self.evaluator.eval_metric
        if self.dataset.task_type != "binary classification":
            raise ValueError(f"gnnkit ogb: {cfg.dataset} is a {self.dataset.task_type} task; the graph-level "
                             "runner trains binary classification (ogbg-mol* classification sets)")

    def trainer(self, lib: str, seed: int, init_state: Optional[Dict[str, Tensor]] = None,
                ctx: DistContext = _LOCAL) -> "GraphTrainer":
        return GraphTrainer(self, lib, seed, init_state, ctx)


class GraphTrainer(Trainer):
    """Mini-batches of graphs, as OGB's example: shuffled, the last batch partial, a batch of one graph skipped (batch
    norm).  With several processes each rank trains on its share of every epoch (``DistributedSampler``, reshuffled
    per epoch from the seed; it repeats up to ``P - 1`` graphs so the shares are equal, hence every rank's batches
    have the same sizes and every rank takes the same steps) and evaluates its share of valid/test; rank 0 gathers
    the predictions and computes the score once with OGB's ``Evaluator``."""

    def __init__(self, task: GraphTask, lib: str, seed: int, init_state: Optional[Dict[str, Tensor]],
                 ctx: DistContext = _LOCAL):
        from torch_geometric.loader import DataLoader
        cfg = self._start(task, seed, ctx)
        ds = task.dataset  # the share check first: before a model or a process group is touched
        train = ds[task.split["train"]]
        share = -(-len(train) // ctx.world_size)  # graphs per process and epoch (the sampler pads to equal shares)
        if share < 2:  # (--batch-size >= 2 is OGBConfig's check)
            raise ValueError(f"--batch-size {cfg.batch_size} over {len(train)} training graphs"
                             f"{f' in {ctx.world_size} processes ({share} each)' if ctx.enabled else ''}: every "
                             "batch would hold one graph, which OGB's loop skips (batch norm), so no training step "
                             "would be taken; fix: --batch-size >= 2 and at least 2 training graphs per process")
        self.model = MolGNN(cfg.model, lib, task.dataset.num_tasks, cfg.num_layers, cfg.hidden, cfg.dropout,
                            cfg.extra.get("pooling", "mean"))
        if init_state is not None:
            self.model.load_state_dict(init_state)
        self.model.to(self.device)
        self.net = wrap(self.model, ctx, find_unused_parameters=self.model.virtual_nodes is not None)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        self.gen = torch.Generator().manual_seed(seed)
        self.epoch = 0
        if ctx.enabled:
            from torch.utils.data.distributed import DistributedSampler
            self.sampler = DistributedSampler(train, ctx.world_size, ctx.rank, shuffle=True, seed=seed)
            # (no drop_last: equal shares give every rank the same batch sizes, the partial last one included)
            self.train_loader = DataLoader(train, batch_size=cfg.batch_size, sampler=self.sampler)
        else:
            self.sampler = None
            self.train_loader = DataLoader(train, batch_size=cfg.batch_size, shuffle=True, generator=self.gen)
        self.eval_parts = {k: ctx.shard(task.split[k]) for k in ("valid", "test")}
        self.eval_loaders = {k: DataLoader(ds[idx], batch_size=cfg.batch_size, shuffle=False)
                             for k, idx in self.eval_parts.items()}

    def train_epoch(self, progress: bool = False) -> float:
        self.model.train()
        if self.sampler is not None:
            self.sampler.set_epoch(self.epoch)
        total, count = 0.0, 0
        for batch in _bar(self.train_loader, len(self.train_loader), progress, "train"):
            batch = batch.to(self.device)
            if batch.x.size(0) == 1 or int(batch.batch[-1]) == 0:
                # OGB's examples skip single-node / single-graph batches (batch norm); under several processes every
                # rank's batch holds as many graphs (equal shares), so every rank skips the same step
                continue
            pred = self.net(batch)
            y = batch.y.to(pred.dtype)
            labelled = y == y  # NaN marks a missing label
            loss = F.binary_cross_entropy_with_logits(pred[labelled], y[labelled])
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
            total += float(loss.detach()) * batch.num_graphs
            count += batch.num_graphs
        if count == 0:  # every batch skipped: an untrained model would be scored as if trained
            raise RuntimeError(f"gnnkit ogb: an epoch of {self.task.cfg.dataset} took no training step (every batch "
                               f"held one graph); fix: --batch-size >= 2 with at least 2 training graphs")
        self.epoch += 1
        return self.ctx.all_reduce_mean(total / max(count, 1))

    @torch.no_grad()
    def evaluate(self) -> Dict[str, float]:
        self.model.eval()
        self.ctx.broadcast_buffers(self.model)  # every rank scores its share with the model rank 0 saves
        local = {}
        for part, loader in self.eval_loaders.items():
            preds, ys = [], []
            for batch in loader:
                batch = batch.to(self.device)
                preds.append(self.model(batch).cpu())
                ys.append(batch.y.view(preds[-1].shape).cpu())
            local[part] = (self.eval_parts[part], torch.cat(ys), torch.cat(preds))
        gathered = self.ctx.all_gather_object(local)
        out = None
        if self.ctx.is_main:  # every rank's share, back in split order, scored once
            out = {}
            for part in local:
                order = torch.argsort(torch.cat([g[part][0] for g in gathered]))
                y = torch.cat([g[part][1] for g in gathered])[order]
                pred = torch.cat([g[part][2] for g in gathered])[order]
                out[part] = float(self.task.evaluator.eval({"y_true": y, "y_pred": pred})[self.metric])
        return self.ctx.broadcast_object(out)

    def generators(self) -> Dict[str, torch.Generator]:
        return {"batches": self.gen}

    def state_dict(self) -> Dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.opt.state_dict(),
                "generators": {k: g.get_state() for k, g in self.generators().items()}, "epoch": self.epoch}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.gen.set_state(state["generators"]["batches"])
        self.epoch = int(state.get("epoch", 0))


# ------------------------------------------------------------------------------------------- node level
class NodeTask:
    """ogbn-arxiv (full batch) and ogbn-products (``NeighborLoader`` mini-batches, layer-wise inference)."""

    def __init__(self, cfg: OGBConfig):
        from ogb.nodeproppred import Evaluator
        from torch_geometric.utils import to_undirected
        self.cfg = cfg
        ds = load_dataset(cfg.dataset, root=cfg.root)
        self.dataset = ds
        data = ds[0]
        # OGB's examples make the graph undirected (arxiv: adj_t.to_symmetric()); datasets stored with
        # add_inverse_edge (products) already hold both directions, and re-sorting 124M edges costs GBs
        if str(getattr(ds, "meta_info", {}).get("add_inverse_edge", "False")) != "True":
            data.edge_index = to_undirected(data.edge_index, num_nodes=data.num_nodes)
        data.y = data.y.view(-1)
        self.data = data
        self.split = ds.get_idx_split()
        self.evaluator = Evaluator(cfg.dataset)
        self.metric = self.evaluator.eval_metric
        self.num_classes = int(ds.num_classes)
        self.minibatch = cfg.batch_size > 0
        self._gcn_dinv: Optional[Tensor] = None  # gcn_inv_sqrt_degree's, built on first use

    def trainer(self, lib: str, seed: int, init_state: Optional[Dict[str, Tensor]] = None,
                ctx: DistContext = _LOCAL) -> "NodeTrainer":
        return NodeTrainer(self, lib, seed, init_state, ctx)

    def gcn_inv_sqrt_degree(self) -> Tensor:
        """``(1 + in-degree)^-1/2`` of every node of the whole graph (loops aside, then one self-loop each, as
        ``gcn_norm`` counts them), computed once: GCN's normalisation for layer-wise inference on subgraphs."""
        if self._gcn_dinv is None:
            src, dst = self.data.edge_index
            dst = dst[src != dst]
            self._gcn_dinv = (torch.bincount(dst, minlength=self.data.num_nodes) + 1).float().rsqrt()
        return self._gcn_dinv


def gcn_subgraph_weights(edge_index: Tensor, n_id: Tensor, num_seeds: int, dinv: Tensor) -> Tuple[Tensor, Tensor]:
    """A sampled subgraph's edges (local ids; ``n_id`` maps them to the whole graph's, its first ``num_seeds`` the
    seeds) with the whole graph's GCN weights ``dinv[src] * dinv[dst]``, its self-loops dropped and one added to
    each seed with weight ``dinv^2``: the seeds' GCN output is then the whole graph's when the subgraph holds all
    their in-edges (a 1-hop ``NeighborLoader`` with fan-out -1).  ``dinv``: :meth:`NodeTask.gcn_inv_sqrt_degree`."""
    edge_index = edge_index.to(dinv.device)
    keep = edge_index[0] != edge_index[1]
    ei = edge_index[:, keep]
    g = n_id.to(dinv.device)
    w = dinv[g[ei[0]]] * dinv[g[ei[1]]]
    seeds = torch.arange(num_seeds, device=ei.device)
    loops_w = dinv[g[:num_seeds]].pow(2)
    return torch.cat([ei, torch.stack([seeds, seeds])], 1), torch.cat([w, loops_w.to(w.device)])


class NodeTrainer(Trainer):
    """Full batch (every rank runs the whole graph; the loss is over its share of the training nodes) or
    ``NeighborLoader`` mini-batches (each rank samples around its share of the seed nodes, shares cut to
    one length so every rank takes the same number of steps).  Evaluation: the whole graph on every rank
    (identical weights give identical scores) with OGB's ``Evaluator``."""

    def __init__(self, task: NodeTask, lib: str, seed: int, init_state: Optional[Dict[str, Tensor]],
                 ctx: DistContext = _LOCAL):
        cfg = self._start(task, seed, ctx)
        data = task.data
        self.model = NodeGNN(cfg.model, lib, data.num_features, cfg.hidden, task.num_classes, cfg.num_layers,
                             cfg.dropout, cfg.extra.get("batch_norm", True), cached=not task.minibatch)
        if init_state is not None:
            self.model.load_state_dict(init_state)
        self.model.to(self.device)
        self.net = wrap(self.model, ctx)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        self.gens: Dict[str, torch.Generator] = {}
        self.epoch = 0
        train_idx = task.split["train"]
        if ctx.enabled:  # equal shares of a seeded permutation (the remainder dropped)
            train_idx = ctx.equal_share(train_idx[torch.randperm(train_idx.numel(),
                                                                 generator=torch.Generator().manual_seed(seed))])
        if task.minibatch:
            from .sampling import neighbor_loader
            fanout = list(cfg.extra.get("fanout", DEFAULT_FANOUT))
            if len(fanout) != cfg.num_layers:
                raise ValueError(f"gnnkit ogb: the fan-out {fanout} needs one entry per layer "
                                 f"(--num-layers {cfg.num_layers}); fix: --fanout with {cfg.num_layers} numbers")
            # (a preset fan-out is checked here, after loading: --fanout itself is checked by OGBConfig)
            self.gens["batches"] = torch.Generator().manual_seed(seed)
            self.train_loader = neighbor_loader(data, fanout, seed=rank_seed(seed + 1, ctx),
                                                input_nodes=train_idx, batch_size=cfg.batch_size, shuffle=True,
                                                generator=self.gens["batches"])
            sampler = self.train_loader.node_sampler
            if hasattr(sampler, "generator"):
                self.gens["neighbors"] = sampler.generator
            self.all_loader = neighbor_loader(data, [-1], batch_size=max(cfg.batch_size, 4096), shuffle=False)
        else:
            self.x = data.x.to(self.device)
            self.edge_index = data.edge_index.to(self.device)
            self.y = data.y.to(self.device)
            self.train_idx = train_idx.to(self.device)

    def train_epoch(self, progress: bool = False) -> float:
        self.model.train()
        self.epoch += 1
        if not self.task.minibatch:
            self.opt.zero_grad()
            out = self.net(self.x, self.edge_index)[self.train_idx]
            loss = F.cross_entropy(out, self.y[self.train_idx])
            loss.backward()
            self.opt.step()
            return self.ctx.all_reduce_mean(float(loss.detach()))
        total, count = 0.0, 0
        for batch in _bar(self.train_loader, len(self.train_loader), progress, "train"):
            batch = batch.to(self.device)
            n = batch.batch_size
            self.opt.zero_grad()
            out = self.net(batch.x, batch.edge_index)[:n]
            loss = F.cross_entropy(out, batch.y[:n])
            loss.backward()
            self.opt.step()
            total += float(loss.detach()) * n
            count += n
        return self.ctx.all_reduce_mean(total / max(count, 1))

    @torch.no_grad()
    def _logits(self) -> Tensor:
        self.model.eval()
        if not self.task.minibatch:
            return self.model(self.x, self.edge_index).cpu()
        x_all = self.task.data.x
        # GCN: the whole graph's normalisation (a subgraph's own degrees count a neighbour outside the batch as
        # having none: scores off by up to 0.19 accuracy on a 5,000-node graph before)
        dinv = self.task.gcn_inv_sqrt_degree() if self.task.cfg.model == "gcn" else None
        for i in range(self.model.num_layers):  # layer by layer, every neighbour (OGB's inference)
            parts = []
            for batch in self.all_loader:
                h = x_all[batch.n_id].to(self.device)
                ei, w = batch.edge_index, None
                if dinv is not None:
                    ei, w = gcn_subgraph_weights(ei, batch.n_id, batch.batch_size, dinv)
                    w = w.to(self.device)
                parts.append(self.model.forward_layer(i, h, ei.to(self.device), w)[:batch.batch_size].cpu())
            x_all = torch.cat(parts)
        return x_all

    def evaluate(self) -> Dict[str, float]:
        pred = self._logits().argmax(-1, keepdim=True)
        y = self.task.data.y.view(-1, 1)
        out = {}
        for part in ("valid", "test"):
            idx = self.task.split[part]
            out[part] = float(self.task.evaluator.eval({"y_true": y[idx], "y_pred": pred[idx]})[self.metric])
        return out

    def generators(self) -> Dict[str, torch.Generator]:
        return dict(self.gens)

    def state_dict(self) -> Dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.opt.state_dict(),
                "generators": {k: g.get_state() for k, g in self.generators().items()}, "epoch": self.epoch}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.epoch = int(state.get("epoch", 0))
        for k, s in state["generators"].items():
            if k in self.gens:
                self.gens[k].set_state(s)
        if self.ctx.rank > 0 and "neighbors" in self.gens:  # rank 0's stream was saved; others start afresh
            self.gens["neighbors"].manual_seed(rank_seed(self.seed + 1, self.ctx, self.epoch))


# ------------------------------------------------------------------------------------------- link level
class LinkTask:
    """ogbl-ddi through gnnkit's link-prediction trainer (:class:`gnnkit.linkpred.LinkPredTrainer`) on OGB's
    official split; the metric is the dataset's (Hits@20 for ddi), computed by OGB's ``Evaluator``."""

    def __init__(self, cfg: OGBConfig):
        from ogb.linkproppred import Evaluator

        from gnnkit.commands.linkpred import PRESETS as LP_PRESETS
        from gnnkit.linkpred.io import ogb_official_split
        self.cfg = cfg
        ds = load_dataset(cfg.dataset, root=cfg.root)
        self.splits = ogb_official_split(ds)
        self.evaluator = Evaluator(cfg.dataset)
        self.metric = self.evaluator.eval_metric  # e.g. "hits@20"
        self.lp_preset = dict(LP_PRESETS.get(cfg.dataset, LP_PRESETS["default"]))

    def config(self, lib: str, seed: int) -> Any:
        from gnnkit.linkpred.train import LinkPredConfig
        cfg, p = self.cfg, self.lp_preset
        k = int(self.metric.split("@")[1]) if "@" in self.metric else 20
        return LinkPredConfig(model=cfg.model, decoder=p.get("decoder", "mlp"), hidden=cfg.hidden,
                              out_channels=cfg.hidden, num_layers=cfg.num_layers, dropout=cfg.dropout, lr=cfg.lr,
                              epochs=cfg.epochs, batch_size=cfg.batch_size, select=f"hits@{k}", ks=(k,), seed=seed,
                              device=cfg.device, decoder_layers=p.get("decoder_layers", 2),
                              clip_grad=p.get("clip_grad", 1.0), lib=lib)

    def trainer(self, lib: str, seed: int, init_state: Optional[Dict[str, Any]] = None,
                ctx: DistContext = _LOCAL) -> "LinkTrainer":
        return LinkTrainer(self, lib, seed, init_state, ctx)


class LinkTrainer(Trainer):
    """gnnkit's link trainer; with several processes each rank trains on its share of every batch of
    positive edges, with negatives from its own seeded stream (evaluation: every rank, identical)."""

    def __init__(self, task: LinkTask, lib: str, seed: int, init_state: Optional[Dict[str, Any]],
                 ctx: DistContext = _LOCAL):
        from gnnkit.linkpred.train import LinkPredTrainer
        self.task, self.metric = task, task.metric
        cfg = task.config(lib, seed)
        cfg.device = str(ctx.device(cfg.device))
        self.inner = LinkPredTrainer(*task.splits, cfg, init_state=init_state, ctx=ctx)
        self.model = torch.nn.ModuleDict({"encoder": self.inner.enc, "decoder": self.inner.dec})

    def initial_state(self) -> Dict[str, Any]:
        return self.inner.initial_state()

    def train_epoch(self, progress: bool = False) -> float:
        return self.inner.ctx.all_reduce_mean(self.inner.train_epoch())

    @torch.no_grad()
    def evaluate(self) -> Dict[str, float]:
        from gnnkit.linkpred.train import score_split
        inner, out = self.inner, {}
        for part, data in (("valid", inner.val_data), ("test", inner.test_data)):
            pos, neg = score_split(inner.enc, inner.dec, data, inner.device)
            res = self.task.evaluator.eval({"y_pred_pos": pos, "y_pred_neg": neg})
            out[part] = float(res[self.metric])
        return out

    def generators(self) -> Dict[str, torch.Generator]:
        return self.inner.generators()

    def state_dict(self) -> Dict[str, Any]:
        return self.inner.state_dict()

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.inner.load_state_dict(state)


def make_task(cfg: OGBConfig) -> Any:
    """The task object of ``cfg.dataset`` (loads the dataset, its split and its evaluator)."""
    fam = family(cfg.dataset)
    return {"ogbg": GraphTask, "ogbn": NodeTask, "ogbl": LinkTask}[fam](cfg)
