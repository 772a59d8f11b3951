"""Transductive and inductive link splits that keep supervision edges out of the input.

The rule (lecture 000, "Edge Prediction Problem"): edges are either *message edges*,
the input the GNN propagates over, or *supervision edges*, the labels it predicts;
a supervision edge is never a message edge of its own split or an earlier one.

Conventions of every returned :class:`~torch_geometric.data.Data`:

* ``edge_index`` — message edges; undirected graphs store both directions;
* ``edge_label_index`` ``[2, M]`` / ``edge_label`` ``[M]`` (float, 1 = positive,
  0 = negative, the same in all three splits); undirected pairs appear once;
* bipartite graphs carry ``num_src`` / ``num_dst``: ``edge_index[0]`` indexes the
  source side, ``edge_index[1]`` the destination side (separate numbering, PyG's
  ``size=(num_src, num_dst)`` convention); negatives go source -> destination only;
* inductive splits carry ``n_id`` (original node ids; bipartite: ``n_id_src`` /
  ``n_id_dst``) and, for datasets of many graphs, ``batch`` and ``graph_id``.

Edge-level attributes of the input (``edge_attr`` ...) are dropped: after
de-duplication and re-orientation they no longer line up with the edges.
"""
from __future__ import annotations

import copy
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor
from torch_geometric.data import Data

from gnnkit._checks import check_flag, check_number, check_seed

from ._graph import both_directions, decide_undirected, infer_undirected, is_bipartite  # noqa: F401  (re-exported)
from .hard import _csr, _gather_rows
from .leakage import check_leakage
from .negative import METHODS, NegativeSampler

Ratio = Union[int, float]


# --------------------------------------------------------------------------- helpers
def _check_data(data: Any, who: str) -> None:
    if not isinstance(data, Data):
        raise TypeError(f"{who} takes a torch_geometric.data.Data with edge_index and num_nodes, got "
                        f"{type(data).__name__}; fix: Data(edge_index=edge_index, num_nodes=N)")
    if getattr(data, "edge_index", None) is None:
        raise ValueError(f"{who}: data has no edge_index; fix: Data(edge_index=edge_index, num_nodes=N)")


def _num_nodes(data: Data):
    if is_bipartite(data):
        return (int(data.num_src), int(data.num_dst))
    if data.num_nodes is None:
        raise ValueError("data.num_nodes is unknown; fix: set data.num_nodes")
    return int(data.num_nodes)


def _count(x: Ratio, total: int, name: str) -> int:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise ValueError(f"{name} must be a float in [0, 1) or an int >= 0, got {x!r}")
    if isinstance(x, float):
        if not 0.0 <= x < 1.0:
            raise ValueError(f"{name}={x} as a fraction must lie in [0, 1); fix: pass a fraction or a count")
        return int(round(x * total))
    if x < 0:
        raise ValueError(f"{name} must be >= 0, got {x}")
    return int(x)


def _negative_count(ratio: float, positives: int, who: str = "") -> int:
    """``round(neg_sampling_ratio * positives)``; a product past any count (a huge finite ratio) is named."""
    k = ratio * positives
    if k > 2 ** 62:
        raise ValueError(f"{who + ': ' if who else ''}neg_sampling_ratio={ratio!r} asks for {k:g} negatives for "
                         f"{positives} positives, more than any graph holds; fix: a smaller neg_sampling_ratio")
    return int(round(k))


def _check_not_rounded_away(counts: Tuple[int, int], requested: Tuple[Ratio, Ratio], total: int, what: str) -> None:
    """A part asked for (``num_val`` / ``num_test`` above 0) must not round to nothing: a split without
    validation or test positives would be written and fail only when a model is evaluated on it."""
    for n, req, name in zip(counts, requested, ("num_val", "num_test")):
        if n == 0 and req > 0:
            raise ValueError(f"{name}={req} of {total} {what} rounds to 0 {what} for that part; fix: more {what}, a "
                             f"larger {name} (or an int >= 1), or {name}=0 to ask for an empty part")


def _generator(seed: Optional[int]) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(int(seed) if seed is not None else int(torch.randint(0, 2 ** 62, (1,))))
    return g


def _subseed(gen: torch.Generator) -> int:
    return int(torch.randint(0, 2 ** 62, (1,), generator=gen))


def unique_edges(edge_index: Tensor, num_nodes: Union[int, Tuple[int, int]], undirected: bool
                 ) -> Tuple[Tensor, Dict[str, int]]:
    """Distinct edges without self-loops; undirected ones once as ``row < col``.

    An undirected edge stored as ``(u, v)``, as ``(v, u)`` or both gives the same
    single pair, so stored orientation never drops an edge.  The returned counts:
    ``input_edges``, ``self_loops_removed`` and ``duplicates_removed`` (entries merged
    into another: repeated edges and, for undirected graphs, reverse copies).
    """
    if not isinstance(edge_index, Tensor):
        raise TypeError(f"edge_index must be a [2, E] integer tensor, got {type(edge_index).__name__}")
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ValueError(f"edge_index must have shape [2, E], got {list(edge_index.shape)}")
    if edge_index.numel() and (edge_index.is_floating_point() or edge_index.is_complex()
                               or edge_index.dtype == torch.bool):  # (an empty float tensor([[], []]) is fine)
        raise ValueError(f"edge_index must be an integer tensor (int64 or int32), got dtype {edge_index.dtype}; "
                         "fix: edge_index.long(), once the ids are checked to be whole numbers")
    ei = edge_index.long()
    if isinstance(num_nodes, tuple):
        if undirected:
            raise ValueError("is_undirected=True is not defined for bipartite data (num_src/num_dst): each "
                             "user-item edge is stored once, source side -> destination side; fix: "
                             "is_undirected=False")
        ns, nd = num_nodes
        if ei.numel() and (int(ei.min()) < 0 or int(ei[0].max()) >= ns or int(ei[1].max()) >= nd):
            raise IndexError(f"edge_index has ids outside num_src={ns} / num_dst={nd}")
        key = ei[0] * nd + ei[1]
        uk = torch.unique(key)
        out = torch.stack([uk // nd, uk % nd])
        return out, {"input_edges": ei.size(1), "self_loops_removed": 0,
                     "duplicates_removed": ei.size(1) - out.size(1)}
    n = int(num_nodes)
    if ei.numel() and (int(ei.min()) < 0 or int(ei.max()) >= n):
        raise IndexError(f"edge_index has ids outside [0, num_nodes={n}); fix: set data.num_nodes")
    loops = ei[0] == ei[1]
    e = ei[:, ~loops]
    u, v = e
    if undirected:
        u, v = torch.minimum(u, v), torch.maximum(u, v)
    uk = torch.unique(u * n + v)
    out = torch.stack([uk // n, uk % n])
    return out, {"input_edges": ei.size(1), "self_loops_removed": int(loops.sum()),
                 "duplicates_removed": e.size(1) - out.size(1)}


def _strip_edge_attrs(data: Data) -> Data:
    out = copy.copy(data)
    for key in list(out.keys()):
        if key in ("edge_index", "edge_label_index", "edge_label", "num_nodes"):
            continue
        if out.is_edge_attr(key):
            del out[key]
    for key in ("edge_label_index", "edge_label"):
        if key in out:
            del out[key]
    return out


def _labelled(pos: Tensor, neg: Tensor) -> Tuple[Tensor, Tensor]:
    eli = torch.cat([pos, neg], 1)
    lab = torch.cat([torch.ones(pos.size(1)), torch.zeros(neg.size(1))])
    return eli, lab


def _sample_negatives(msg: Tensor, sup: Tensor, known: Tensor, num_nodes: Union[int, Tuple[int, int]], k: int,
                      method: str, undirected: bool, seed: int, what: str, fix: str,
                      batch: Optional[Tensor] = None) -> Tensor:
    """``k`` negatives excluding ``msg`` and ``known``; ``hard`` scores on ``msg`` and corrupts ``sup``.
    Too few non-edges raise, naming ``what`` (the split or part) and the ``fix``."""
    sampler = NegativeSampler(msg, num_nodes, k, method, exclude=known, force_undirected=undirected,
                              seed=seed, batch=batch, targets=sup)
    if k > sampler.num_available:
        raise ValueError(f"{what} needs {k} negatives but only {sampler.num_available} node pairs are not edges; "
                         f"fix: {fix}")
    return sampler.sample()


def train_negative_sampler(train_data: Data, neg_sampling_ratio: float = 1.0, method: str = "uniform",
                           seed: Optional[int] = None, is_undirected: Optional[bool] = None) -> NegativeSampler:
    """A sampler of fresh training negatives for every epoch (call ``.sample()``).

    It excludes exactly what training may know — the training message edges and the
    training supervision positives — and nothing held out, so the choice of
    negatives reveals nothing about validation or test edges (PyG #6946).
    """
    neg_sampling_ratio = check_number("neg_sampling_ratio", neg_sampling_ratio, 0, who="train_negative_sampler")
    seed = check_seed("seed", seed, who="train_negative_sampler")
    pos = train_data.edge_label_index[:, train_data.edge_label == 1]
    if is_undirected is None:
        is_undirected = infer_undirected(train_data)
    else:
        is_undirected = check_flag("is_undirected", is_undirected, who="train_negative_sampler")
    k = _negative_count(neg_sampling_ratio, pos.size(1), "train_negative_sampler")
    batch = train_data.batch if "batch" in train_data else None
    return NegativeSampler(train_data.edge_index, _num_nodes(train_data), k, method, exclude=pos,
                           force_undirected=is_undirected, seed=seed, batch=batch, targets=pos)


def _debug_default(debug: Optional[bool]) -> bool:
    return check_flag("debug", debug) if debug is not None else os.environ.get("GNNKIT_DEBUG", "") not in ("", "0")


# --------------------------------------------------------------------------- transductive
def _set_common_options(split, num_val, num_test, is_undirected, neg_sampling_ratio, add_negative_train_samples,
                        seed, neg_method, debug) -> None:
    """Validate and store the options both splitters share (PyG's ``RandomLinkSplit`` names)."""
    _count(num_val, 1, "num_val")
    _count(num_test, 1, "num_test")
    neg_sampling_ratio = check_number("neg_sampling_ratio", neg_sampling_ratio, 0)
    if neg_method not in METHODS:
        raise ValueError(f"neg_method must be one of {METHODS}, got {neg_method!r}")
    split.num_val, split.num_test = num_val, num_test
    split.is_undirected = None if is_undirected is None else check_flag("is_undirected", is_undirected)
    split.neg_sampling_ratio = neg_sampling_ratio
    split.add_negative_train_samples = check_flag("add_negative_train_samples", add_negative_train_samples)
    split.seed = check_seed("seed", seed)
    split.neg_method = neg_method
    split.debug = None if debug is None else check_flag("debug", debug)
    split.stats = {}


class TransductiveLinkSplit:
    r"""Edge-level train/val/test split of one graph; every split sees all nodes.

    Edges are de-duplicated (undirected: ``(u, v)`` and ``(v, u)`` are one edge
    whichever is stored), shuffled with ``seed`` and cut into test, validation and
    training edges; training edges are cut again into *message* and *supervision*
    edges (``disjoint_train_ratio`` of them supervise).

    ============  ========================================  ==================================
    split         message edges (``edge_index``)             positives in ``edge_label_index``
    ============  ========================================  ==================================
    train         train message                              train supervision
    val           train message + train supervision          val
    test          train + val                                test
    ============  ========================================  ==================================

    Negatives: training ones exclude only training edges (message + supervision);
    validation ones exclude training and validation edges; test ones exclude every
    edge.  None is ever a message edge of its split.

    Args:
        num_val: fraction (float) or number (int) of edges for validation.
        num_test: fraction or number of edges for test.
        is_undirected: treat the graph as undirected (not for bipartite data); default None:
            inferred from the data (every edge stored in both directions -> undirected, as for
            Cora), recorded in :attr:`stats` (``undirected``, ``undirected_inferred``).
        disjoint_train_ratio: fraction or number of training edges used only as
            supervision.  ``0`` reproduces PyG's ``RandomLinkSplit`` default (every
            training edge is both message and supervision) — on request only.
        neg_sampling_ratio: negatives per positive in each split.
        add_negative_train_samples: store fixed training negatives; pass ``False``
            and use :func:`train_negative_sampler` to draw new ones every epoch.
        seed: makes the split reproducible.
        neg_method: ``"uniform"``, ``"degree"`` or ``"hard"`` (see
            :func:`~gnnkit.linkpred.negative_sampling`).
        debug: run :func:`~gnnkit.linkpred.check_leakage` with ``strict=True`` on
            the result (default: environment variable ``GNNKIT_DEBUG``).

    After a call, :attr:`stats` holds the sizes of every part.
    """

    def __init__(self, num_val: Ratio = 0.1, num_test: Ratio = 0.2, is_undirected: Optional[bool] = None,
                 disjoint_train_ratio: Ratio = 0.3, neg_sampling_ratio: float = 1.0,
                 add_negative_train_samples: bool = True, seed: Optional[int] = None,
                 neg_method: str = "uniform", debug: Optional[bool] = None):
        _set_common_options(self, num_val, num_test, is_undirected, neg_sampling_ratio, add_negative_train_samples,
                            seed, neg_method, debug)
        _count(disjoint_train_ratio, 1, "disjoint_train_ratio")
        self.disjoint_train_ratio = disjoint_train_ratio

    def __call__(self, data: Data) -> Tuple[Data, Data, Data]:
        _check_data(data, "TransductiveLinkSplit")
        num_nodes = _num_nodes(data)
        und = decide_undirected(data) if self.is_undirected is None else self.is_undirected
        edges, st = unique_edges(data.edge_index, num_nodes, und)
        E = edges.size(1)
        gen = _generator(self.seed)
        n_test = _count(self.num_test, E, "num_test")
        n_val = _count(self.num_val, E, "num_val")
        n_train = E - n_val - n_test
        if E == 0:  # (the message below would tell the user to shrink parts that cannot help)
            raise ValueError(f"edge_index holds 0 edges to split ({st['input_edges']} given, "
                             f"{st['self_loops_removed']} of them self-loops, which are not split), so num_val="
                             f"{self.num_val} and num_test={self.num_test} leave no training edges; fix: a graph with "
                             "edges (smaller parts cannot help)")
        if n_train <= 0:
            raise ValueError(f"num_val={self.num_val} and num_test={self.num_test} leave no training edges "
                             f"out of {E}; fix: smaller num_val / num_test")
        _check_not_rounded_away((n_val, n_test), (self.num_val, self.num_test), E, "edges")
        perm = torch.randperm(E, generator=gen).to(edges.device)
        e = edges[:, perm]
        test_e, val_e, train_e = e[:, :n_test], e[:, n_test:n_test + n_val], e[:, n_test + n_val:]
        n_sup = _count(self.disjoint_train_ratio, n_train, "disjoint_train_ratio")
        if n_sup == 0 and self.disjoint_train_ratio != 0:
            # rounding must never turn disjoint supervision into PyG's overlap (supervision edges that
            # are also training messages): that overlap is a choice, disjoint_train_ratio=0
            raise ValueError(f"disjoint_train_ratio={self.disjoint_train_ratio} of {n_train} training edges rounds "
                             "to 0 supervision edges, which would put every training positive into the training "
                             "messages; fix: a larger ratio (or an int >= 1), more edges, smaller num_val/num_test, "
                             "or disjoint_train_ratio=0 to ask for PyG's overlap on purpose")
        if n_sup == 0:
            sup_e, msg_e = train_e, train_e
        else:
            if n_sup >= n_train:
                raise ValueError(f"disjoint_train_ratio={self.disjoint_train_ratio} leaves no training "
                                 "message edges; fix: a smaller ratio")
            sup_e, msg_e = train_e[:, :n_sup], train_e[:, n_sup:]
        msgs = [msg_e, train_e, torch.cat([train_e, val_e], 1)]
        sups = [sup_e, val_e, test_e]
        # what each split may know: train knows train edges, val adds val, test knows all
        known = [train_e, torch.cat([train_e, val_e], 1), e]
        out: List[Data] = []
        base = _strip_edge_attrs(data)
        r = self.neg_sampling_ratio
        for i, (msg, sup, kn) in enumerate(zip(msgs, sups, known)):
            k = _negative_count(r, sup.size(1))
            if i == 0 and not self.add_negative_train_samples:
                k = 0
            # hard negatives score on the split's message graph and corrupt its positives
            neg = _sample_negatives(msg, sup, kn, num_nodes, k, self.neg_method, und, _subseed(gen),
                                    f"the {('train', 'val', 'test')[i]} split", "a smaller neg_sampling_ratio")
            d = copy.copy(base)
            d.edge_index = both_directions(msg) if und else msg
            d.edge_label_index, d.edge_label = _labelled(sup, neg)
            out.append(d)
        self.stats = dict(st, undirected=und, undirected_inferred=self.is_undirected is None, unique_edges=E,
                          train_edges=n_train, train_message=msg_e.size(1),
                          train_supervision=sup_e.size(1), val_edges=n_val, test_edges=n_test,
                          train_negatives=int((out[0].edge_label == 0).sum()),
                          val_negatives=int((out[1].edge_label == 0).sum()),
                          test_negatives=int((out[2].edge_label == 0).sum()))
        if _debug_default(self.debug):
            full = both_directions(edges) if und else edges
            check_leakage(*out, full_edge_index=full, is_undirected=und, strict=True,
                          allow_train_overlap=(n_sup == 0))
        return out[0], out[1], out[2]

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(num_val={self.num_val}, num_test={self.num_test}, "
                f"disjoint_train_ratio={self.disjoint_train_ratio})")


# --------------------------------------------------------------------------- inductive
def _as_union(dataset) -> Tuple[Data, int]:
    """A disjoint union of a dataset's graphs with ``batch`` (node -> graph)."""
    n = len(dataset)
    if n == 0:
        raise ValueError("the dataset holds no graphs")
    store = getattr(dataset, "_data", None)
    slices = getattr(dataset, "slices", None)
    indices = getattr(dataset, "_indices", None)
    if (store is not None and slices is not None and indices is None and "x" in slices
            and "edge_index" in slices and "num_src" not in slices and "num_dst" not in slices
            and getattr(dataset, "transform", None) is None):
        # fast path on InMemoryDataset storage: edge_index is stored per graph (local ids); a dataset with a
        # transform goes through dataset[i], which applies it (the storage holds the untransformed graphs)
        nptr, eptr = slices["x"].long(), slices["edge_index"].long()
        ecount = eptr.diff()
        gid = torch.repeat_interleave(torch.arange(n), ecount)
        size = nptr.diff()[gid]
        bad = ((store.edge_index < 0) | (store.edge_index >= size)).any(0)
        if bool(bad.any()):
            first = int(gid[bad.nonzero()[0, 0]])
            _bad_graph_ids(first, int(nptr[first + 1] - nptr[first]))
        offs = torch.repeat_interleave(nptr[:-1], ecount)
        u = Data(x=store.x, edge_index=store.edge_index.long() + offs, num_nodes=int(nptr[-1]))
        u.batch = torch.repeat_interleave(torch.arange(n), nptr.diff())
        if "y" in store and store.y is not None and store.y.size(0) == n:
            u.y = store.y
        return u, n
    from torch_geometric.data import Batch
    graphs = [dataset[i] for i in range(n)]
    for i, g in enumerate(graphs):
        if is_bipartite(g):
            raise ValueError(f"graph {i} of the dataset is bipartite (num_src / num_dst): a dataset is split as "
                             "homogeneous graphs (its users and items would share ids, user j -> item j read as a "
                             "self-loop); fix: split one bipartite Data at a time, or give each graph one id space")
        ei = g.edge_index
        if ei is not None and ei.numel():
            lo, hi = torch.aminmax(ei)  # one pass
            if int(lo) < 0 or int(hi) >= g.num_nodes:
                _bad_graph_ids(i, g.num_nodes)
    b = Batch.from_data_list(graphs)
    u = Data(edge_index=b.edge_index, num_nodes=b.num_nodes, batch=b.batch)
    if "x" in b:
        u.x = b.x
    if "y" in b and b.y is not None and b.y.size(0) == n:
        u.y = b.y
    return u, n


def _bad_graph_ids(i: int, num_nodes: int) -> None:
    """A dataset's graph with ids outside its own nodes: after the union's offsets they would join graphs."""
    raise IndexError(f"graph {i} of the dataset has edge_index ids outside [0, num_nodes={num_nodes}) (after the "
                     "union's offsets they would point into a neighbouring graph); fix: that graph's edge_index or "
                     "num_nodes")


def _region_partition(edges: Tensor, n: int, sizes: Sequence[int], gen: torch.Generator) -> Tensor:
    """Grow connected regions by breadth-first search: part 2 (test), then part 1 (val)."""
    rowptr, col = _csr(n, torch.cat([edges[0], edges[1]]), torch.cat([edges[1], edges[0]]))
    part = torch.zeros(n, dtype=torch.long)
    free = torch.ones(n, dtype=torch.bool)
    for p, size in ((2, sizes[2]), (1, sizes[1])):
        taken = 0
        frontier = torch.empty(0, dtype=torch.long)
        restarts = 0
        while taken < size:
            if frontier.numel() == 0:
                cand = free.nonzero().view(-1)
                nseed = min(size - taken, max(1, restarts), cand.numel())
                frontier = cand[torch.randperm(cand.numel(), generator=gen)[:nseed]]
                restarts += 1
            else:
                _, nb = _gather_rows(rowptr, col, frontier)
                nb = torch.unique(nb)
                frontier = nb[free[nb]]
                if frontier.numel() == 0:
                    continue
            if frontier.numel() > size - taken:
                frontier = frontier[torch.randperm(frontier.numel(), generator=gen)[:size - taken]]
            free[frontier] = False
            part[frontier] = p
            taken += frontier.numel()
    return part


class InductiveLinkSplit:
    """Node-disjoint split: train, val and test are separate graphs.

    One graph: its nodes are partitioned into train/val/test node sets at random
    (``partition="random"``) or as connected regions grown by breadth-first search
    (``"region"``); each part keeps its induced subgraph, and edges between parts
    are dropped (counted in ``stats["cross_part_edges_dropped"]``).  A dataset of
    many graphs (a list or a PyG dataset, e.g. MUTAG, ogbg-molhiv) is split by whole
    graphs instead, so no edge is dropped.

    Within every part the edges are cut into message edges (``edge_index``) and
    supervision edges (``supervision_ratio`` of them, the positives of
    ``edge_label_index``); negatives are pairs of the same part (of the same graph
    for datasets) that are not edges of the part.  Each returned ``Data`` is
    relabelled ``0..n-1`` and carries ``n_id`` (original ids); bipartite parts
    carry ``n_id_src`` / ``n_id_dst`` (both sides are partitioned).

    Args:
        num_val: fraction or number of nodes (graphs for datasets) for validation.
        num_test: fraction or number of nodes (graphs) for test.
        is_undirected: treat edges as undirected; default None: inferred from the data
            (symmetric -> undirected), recorded in :attr:`stats`.
        supervision_ratio: fraction of each part's edges used as supervision.
        partition: ``"random"`` or ``"region"`` (one homogeneous graph only).
        neg_sampling_ratio, add_negative_train_samples, seed, neg_method, debug:
            as in :class:`TransductiveLinkSplit`.
    """

    def __init__(self, num_val: Ratio = 0.1, num_test: Ratio = 0.2, is_undirected: Optional[bool] = None,
                 supervision_ratio: float = 0.3, partition: str = "random", neg_sampling_ratio: float = 1.0,
                 add_negative_train_samples: bool = True, seed: Optional[int] = None,
                 neg_method: str = "uniform", debug: Optional[bool] = None):
        _set_common_options(self, num_val, num_test, is_undirected, neg_sampling_ratio, add_negative_train_samples,
                            seed, neg_method, debug)
        if not (isinstance(supervision_ratio, float) and 0.0 < supervision_ratio < 1.0):
            raise ValueError(f"supervision_ratio must be a float in (0, 1), got {supervision_ratio!r}")
        if partition not in ("random", "region"):
            raise ValueError(f"partition must be 'random' or 'region', got {partition!r}")
        self.supervision_ratio = supervision_ratio
        self.partition = partition

    def _sizes(self, total: int, what: str) -> List[int]:
        n_test = _count(self.num_test, total, "num_test")
        n_val = _count(self.num_val, total, "num_val")
        n_train = total - n_val - n_test
        if n_train <= 0:
            raise ValueError(f"num_val={self.num_val}, num_test={self.num_test} leave no training {what} "
                             f"out of {total}; fix: smaller fractions")
        _check_not_rounded_away((n_val, n_test), (self.num_val, self.num_test), total, what)
        return [n_train, n_val, n_test]

    def _random_parts(self, n: int, gen: torch.Generator, what: str) -> Tensor:
        sizes = self._sizes(n, what)
        perm = torch.randperm(n, generator=gen)
        part = torch.zeros(n, dtype=torch.long)
        part[perm[:sizes[2]]] = 2
        part[perm[sizes[2]:sizes[2] + sizes[1]]] = 1
        return part

    def __call__(self, data: Any) -> Tuple[Data, Data, Data]:
        gen = _generator(self.seed)
        if isinstance(data, Tensor) or not isinstance(data, Data) and not hasattr(data, "__len__"):
            raise TypeError(f"InductiveLinkSplit takes a torch_geometric.data.Data (one graph) or a dataset / list of "
                            f"Data (many graphs), got {type(data).__name__}")
        if not isinstance(data, Data):
            if self.partition != "random":  # documented for one homogeneous graph; a dataset goes by whole graphs
                raise ValueError("partition='region' is for one homogeneous graph; a dataset of graphs is split by "
                                 "whole graphs at random; fix: partition='random'")
            return self._split_graphs(data, gen)
        _check_data(data, "InductiveLinkSplit")
        if is_bipartite(data):
            if self.partition != "random":
                raise ValueError("partition='region' is for homogeneous graphs; fix: partition='random' "
                                 "for bipartite data")
            ns, nd = _num_nodes(data)
            ps, pd = self._random_parts(ns, gen, "source nodes"), self._random_parts(nd, gen, "destination nodes")
            return self._split(data, (ps, pd), gen, batch=None)
        n = _num_nodes(data)
        if self.partition == "random":
            part = self._random_parts(n, gen, "nodes")
        else:
            edges, _ = unique_edges(data.edge_index, n, True)
            part = _region_partition(edges, n, self._sizes(n, "nodes"), gen)
        return self._split(data, part, gen, batch=None)

    def _split_graphs(self, dataset, gen: torch.Generator) -> Tuple[Data, Data, Data]:
        union, G = _as_union(dataset)
        gpart = self._random_parts(G, gen, "graphs")
        part = gpart[union.batch]
        self._graph_part = gpart
        return self._split(union, part, gen, batch=union.batch, graph_part=gpart)

    def _split(self, data: Data, part, gen: torch.Generator, batch: Optional[Tensor],
               graph_part: Optional[Tensor] = None) -> Tuple[Data, Data, Data]:
        num_nodes = _num_nodes(data)
        bip = isinstance(num_nodes, tuple)
        und = decide_undirected(data) if self.is_undirected is None else self.is_undirected
        edges, st = unique_edges(data.edge_index, num_nodes, und)
        ps, pd = part if bip else (part, part)
        same = ps[edges[0]] == pd[edges[1]]
        stats = dict(st, undirected=und, undirected_inferred=self.is_undirected is None, unique_edges=edges.size(1),
                     cross_part_edges_dropped=int((~same).sum()))
        base = _strip_edge_attrs(data)
        out: List[Data] = []
        for p, name in enumerate(("train", "val", "test")):
            src_nodes = (ps == p).nonzero().view(-1)
            dst_nodes = (pd == p).nonzero().view(-1) if bip else src_nodes
            map_s = torch.full((ps.numel(),), -1, dtype=torch.long)
            map_s[src_nodes] = torch.arange(src_nodes.numel())
            if bip:
                map_d = torch.full((pd.numel(),), -1, dtype=torch.long)
                map_d[dst_nodes] = torch.arange(dst_nodes.numel())
            else:
                map_d = map_s
            nodes = f"{src_nodes.numel()} source and {dst_nodes.numel()} destination nodes" if bip \
                else f"{src_nodes.numel()} nodes"
            pe = edges[:, same & (ps[edges[0]] == p)]
            local = torch.stack([map_s[pe[0]], map_d[pe[1]]])
            local = local[:, torch.randperm(local.size(1), generator=gen)]
            n_sup = int(round(self.supervision_ratio * local.size(1)))
            if p == 0 and n_sup == 0:
                raise ValueError(f"the training part has {local.size(1)} edges, too few for "
                                 f"supervision_ratio={self.supervision_ratio}; fix: larger num nodes in train")
            if p == 0 and n_sup == local.size(1):
                raise ValueError(f"supervision_ratio={self.supervision_ratio} of the training part's {local.size(1)} "
                                 "edges leaves it no message edges; fix: a smaller supervision_ratio or a larger "
                                 "training part (smaller num_val / num_test)")
            if p > 0 and n_sup == 0 and (self.num_val, self.num_test)[p - 1] > 0:
                arg = ("num_val", "num_test")[p - 1]
                raise ValueError(f"the {name} part ({nodes}, {local.size(1)} edges inside it) "
                                 f"gets 0 positive pairs at supervision_ratio={self.supervision_ratio}; fix: a larger "
                                 f"{arg} (a part's edges are those with both ends in it), a larger supervision_ratio, "
                                 f"or {arg}=0 to ask for an empty part")
            sup, msg = local[:, :n_sup], local[:, n_sup:]
            nn = (src_nodes.numel(), dst_nodes.numel()) if bip else src_nodes.numel()
            lbatch = None
            if batch is not None:  # each node's graph as its position in this part's graph_id (graphs
                # without nodes keep their place: batch, graph_id and y stay aligned)
                lbatch = torch.searchsorted((graph_part == p).nonzero().view(-1), batch[src_nodes])
            k = _negative_count(self.neg_sampling_ratio, n_sup)
            if p == 0 and not self.add_negative_train_samples:
                k = 0
            seed_p = _subseed(gen)
            if src_nodes.numel() == 0 or (bip and dst_nodes.numel() == 0):  # an empty part (num_val=0)
                neg = torch.empty(2, 0, dtype=torch.long)
            else:
                neg = _sample_negatives(msg, sup, sup, nn, k, self.neg_method, und, seed_p,
                                        f"the {name} part ({nodes}, {local.size(1)} edges)",
                                        "a smaller neg_sampling_ratio or larger parts (num_val / num_test)",
                                        batch=lbatch)
            d = Data()
            for key in base.keys():
                val = base[key]
                if key in ("edge_index", "num_nodes", "num_src", "num_dst", "batch"):
                    continue
                if isinstance(val, Tensor) and not bip and val.dim() > 0 and val.size(0) == num_nodes \
                        and base.is_node_attr(key):
                    d[key] = val[src_nodes]
                elif key == "y" and graph_part is not None and isinstance(val, Tensor) \
                        and val.size(0) == graph_part.numel():
                    d[key] = val[graph_part == p]
                elif key in ("x_src",) and bip:
                    d[key] = val[src_nodes]
                elif key in ("x_dst",) and bip:
                    d[key] = val[dst_nodes]
            if bip:
                d.num_src, d.num_dst = src_nodes.numel(), dst_nodes.numel()
                d.n_id_src, d.n_id_dst = src_nodes, dst_nodes
                d.num_nodes = src_nodes.numel() + dst_nodes.numel()
            else:
                d.num_nodes = src_nodes.numel()
                d.n_id = src_nodes
            if lbatch is not None:
                d.batch = lbatch
                d.graph_id = (graph_part == p).nonzero().view(-1)
            d.edge_index = both_directions(msg) if und else msg
            d.edge_label_index, d.edge_label = _labelled(sup, neg)
            out.append(d)
            stats.update({f"{name}_nodes": src_nodes.numel() if not bip else src_nodes.numel() + dst_nodes.numel(),
                          f"{name}_edges": local.size(1), f"{name}_message": msg.size(1),
                          f"{name}_supervision": n_sup, f"{name}_negatives": neg.size(1)})
            if graph_part is not None:
                stats[f"{name}_graphs"] = int((graph_part == p).sum())
        self.stats = stats
        if _debug_default(self.debug):
            full = edges
            check_leakage(*out, full_edge_index=both_directions(full) if und else full, is_undirected=und,
                          strict=True)
        return out[0], out[1], out[2]

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(num_val={self.num_val}, num_test={self.num_test}, "
                f"partition={self.partition!r})")
