"""Position-aware GNN (P-GNN, You, Ying & Leskovec 2019): node embeddings from messages to random anchor
sets, weighted by shortest-path distance.

A message-passing GNN embeds two nodes with the same neighbourhood structure identically wherever they
lie; P-GNN measures each node's position against ``k`` anchor sets :math:`S_1..S_k` (Bourgain's
construction: ``copies`` sets for each size :math:`n/2, n/4, \\ldots`, resampled every training forward,
fixed under a seed at evaluation).  Per layer, for node ``v`` and anchor set :math:`S_i` with ``u`` its
closest anchor:

.. math::
    s(v, u) = \\frac{1}{d_{sp}(v, u) + 1} \\; (0 \\text{ beyond } q \\text{ hops}), \\qquad
    \\mathbf{M}_{v,i} = \\sigma\\big(\\mathbf{W}\\,[\\, s(v,u)\\,\\mathbf{h}_u \\,\\Vert\\, \\mathbf{h}_v \\,]\\big)

(the authors' code, and gnnkit by default, first pass :math:`s` through a small learned map, see
:class:`PGNNConv`), and the layer returns the position-aware
:math:`\\mathbf{z}_v = (\\mathbf{w}^\\top \\mathbf{M}_{v,i})_{i=1..k}`
and the structure-aware :math:`\\mathbf{h}'_v = \\frac{1}{k}\\sum_i \\mathbf{M}_{v,i}` that feeds the next
layer (the authors' implementation: one anchor per set, the closest).  Distances are computed once per graph
(breadth-first, capped at ``q`` hops, SciPy) and cached.
"""
from __future__ import annotations

import hashlib
import math
import numbers
from collections import OrderedDict
from typing import List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import Linear, ModuleList, ReLU, Sequential

from gnnkit._checks import assert_in_graph
from gnnkit.ops import validate_edge_index

from ._utils import refuse_torch_func, require_edge_list

MAX_NODES = 50_000  # the [N, N] distance table: above this, P-GNN's exact distances do not fit


def _check_q(q: object, who: str) -> None:
    """``q`` is a whole number of hops >= 1 (2.5 searched up to 3 hops: the limit is ``q + 0.5``)."""
    if isinstance(q, bool) or not isinstance(q, numbers.Integral) or q < 1:
        raise ValueError(f"{who}: the distance cap q must be a whole number of hops >= 1, got {q!r}")


def shortest_path_scores(edge_index: Tensor, num_nodes: int, q: int) -> Tensor:
    """``[N, N]`` float with ``1 / (d + 1)`` for shortest-path distance ``d <= q`` (``d(v, v) = 0`` gives 1),
    0 beyond ``q`` or unreachable; the graph is taken as undirected (P-GNN's setting)."""
    _check_q(q, "P-GNN")
    if num_nodes > MAX_NODES:
        raise ValueError(f"P-GNN: {num_nodes} nodes need a {num_nodes}^2 distance table; at most {MAX_NODES} "
                         "are supported (fix: a subgraph, or ID-GNN-Fast (cycle_count_features) for large graphs)")
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ValueError(f"P-GNN: edge_index must be [2, E], got {list(edge_index.shape)}")
    if edge_index.numel() and (int(edge_index.min()) < 0 or int(edge_index.max()) >= num_nodes):
        raise ValueError(f"P-GNN: edge_index refers to nodes outside [0, {num_nodes}); pass the graph of x")
    import scipy.sparse as sp
    from scipy.sparse.csgraph import dijkstra
    ei = edge_index.cpu().numpy()
    adj = sp.coo_matrix((np.ones(ei.shape[1]), (ei[0], ei[1])), shape=(num_nodes, num_nodes)).tocsr()
    dist = dijkstra(adj, directed=False, unweighted=True, limit=q + 0.5)  # stops searching past q hops
    score = np.where(np.isfinite(dist), 1.0 / (dist + 1.0), 0.0)
    return torch.from_numpy(score).to(torch.get_default_dtype())


def _check_copies(copies: float, who: str) -> None:
    if isinstance(copies, bool) or not isinstance(copies, (int, float)) or not copies > 0:
        raise ValueError(f"{who}: copies must be > 0 (anchor sets per size, a fraction of log2 n), got {copies!r}")


def bourgain_anchor_sets(num_nodes: int, copies: float = 0.5, generator: Optional[torch.Generator] = None
                         ) -> List[Tensor]:
    """Random anchor sets as in the authors' code: ``m = floor(log2 n)`` sizes ``n / 2^(i+1)``, ``i < m``, each
    drawn ``max(1, int(copies * m))`` times without replacement: ``m * max(1, int(copies * m))`` sets in all
    (about ``copies * log2(n)^2``, O(log² n); n = 64, copies = 0.5: 6 sizes x 3 = 18 sets)."""
    _check_copies(copies, "P-GNN")
    m = max(int(math.log2(max(num_nodes, 2))), 1)
    per = max(int(copies * m), 1)
    sets = []
    for i in range(m):
        size = max(int(num_nodes / 2 ** (i + 1)), 1)
        for _ in range(per):
            sets.append(torch.randperm(num_nodes, generator=generator)[:size])
    return sets


def closest_anchors(score: Tensor, sets: List[Tensor]) -> Tuple[Tensor, Tensor]:
    """``(dist_max [N, k], dist_argmax [N, k])``: for every node and anchor set, the best score and the anchor
    that has it (the closest one)."""
    n = score.size(0)
    best = torch.empty(n, len(sets), dtype=score.dtype)
    arg = torch.empty(n, len(sets), dtype=torch.long)
    for i, s in enumerate(sets):
        vals, pos = score.index_select(1, s).max(1)
        best[:, i], arg[:, i] = vals, s[pos]
    return best, arg


class PGNNConv(torch.nn.Module):
    """One P-GNN layer (see the module doc).

    ``distance_map=True`` (the authors' ``dist_trainable``, their default) passes each score through a learned
    map :math:`\\phi(s) = \\mathbf{w}_2^\\top \\mathrm{ReLU}(\\mathbf{w}_1 s + \\mathbf{b}_1) + b_2` (hidden width
    ``out_channels``) before it weights the anchor's features, so the layer learns how fast position decays
    with distance; ``False`` uses :math:`s` as it is.  A set with no anchor within ``q`` hops (score 0) sends
    no anchor message either way (the authors' map sends :math:`\\phi(0)` times an arbitrary member).

    ``forward(x, dist_max, dist_argmax)`` -> ``(position [N, k], structure [N, out_channels])`` with
    ``dist_max`` / ``dist_argmax`` from :func:`closest_anchors`.
    """

    def __init__(self, in_channels: int, out_channels: int, distance_map: bool = True):
        super().__init__()
        if not isinstance(distance_map, bool):
            raise ValueError(f"PGNNConv: distance_map must be True or False, got {distance_map!r}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.distance_map = Sequential(Linear(1, out_channels), ReLU(), Linear(out_channels, 1)) \
            if distance_map else None
        self.lin_hidden = Linear(2 * in_channels, out_channels)
        self.lin_position = Linear(out_channels, 1)

    def reset_parameters(self) -> None:
        for m in self.modules():
            if isinstance(m, Linear):
                m.reset_parameters()

    def forward(self, x: Tensor, dist_max: Tensor, dist_argmax: Tensor) -> Tuple[Tensor, Tensor]:
        if dist_argmax.dim() != 2 or dist_max.shape != dist_argmax.shape:
            raise ValueError(f"PGNNConv: dist_max and dist_argmax must both be [N, k] (closest_anchors' output), got "
                             f"{list(dist_max.shape)} and {list(dist_argmax.shape)}")
        n, k = dist_argmax.shape
        if x.dim() != 2 or x.size(0) != n or x.size(1) != self.in_channels:
            raise ValueError(f"PGNNConv: x must be [N={n}, in_channels={self.in_channels}], got {list(x.shape)}")
        if torch.compiler.is_compiling():  # checked as the compiled graph runs
            assert_in_graph((dist_argmax >= 0) & (dist_argmax < n), f"PGNNConv: dist_argmax holds node ids outside "
                            f"[0, {n}); it must index rows of x (closest_anchors' output)")
        elif dist_argmax.numel() and (int(dist_argmax.min()) < 0 or int(dist_argmax.max()) >= n):
            raise IndexError(f"PGNNConv: dist_argmax holds node ids outside [0, {n}) (from {int(dist_argmax.min())} "
                             f"to {int(dist_argmax.max())}); it must index rows of x (closest_anchors' output)")
        weight = dist_max.to(x.device, x.dtype).unsqueeze(-1)  # [N, k, 1]
        if self.distance_map is not None:
            # no anchor of the set within q hops (score 0): the "closest" anchor is arbitrary, so it sends
            # nothing, as with the raw score (the authors' code sends phi(0) times that arbitrary anchor)
            weight = self.distance_map(weight) * (weight > 0)
        anchors = x.index_select(0, dist_argmax.reshape(-1).to(x.device)).view(n, k, -1)
        msg = torch.cat([anchors * weight, x.unsqueeze(1).expand(-1, k, -1)], -1)
        msg = F.relu(self.lin_hidden(msg))  # [N, k, out]
        return self.lin_position(msg).squeeze(-1), msg.mean(1)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, "
                f"distance_map={self.distance_map is not None})")


class PGNN(torch.nn.Module):
    """P-GNN: a linear input map, ``num_layers`` :class:`PGNNConv` (structure-aware output feeding the next;
    dropout between them), the last layer's position-aware output, L2-normalised, as the embedding
    (``[N, k]``, k anchor sets), as in the authors' model.

    One graph per call: the anchor sets are drawn over all ``N`` nodes given, and ``k`` grows with ``N``, so a
    PyG ``Batch`` of several graphs would get sets that span graphs (some without a node of a given graph)
    and embeddings whose width depends on the batch.  The authors' code draws sets per graph; for several
    graphs, call the model once per graph (``data.get_example(i)``), each with its own ``N``.

    Args:
        in_channels, hidden_channels: widths.
        num_layers: P-GNN layers (default 2).
        q: distance cap in hops (default 2; the paper's "approximate" variant; use the graph's diameter
            for exact distances).
        copies: anchor sets per size, as a fraction of ``log2 n`` (the authors' ``c``, default 0.5).
        dropout: between layers.
        seed: anchor sets at evaluation come from this seed (the same sets every eval forward).
        distance_map: each layer learns a map of the distance scores (the authors' default; see
            :class:`PGNNConv`); ``False``: the raw :math:`1/(d+1)`.
        cache_bytes: the distance tables of the most recently used graphs are kept while together they
            fit in this many bytes (default 1 GiB; the newest is always kept).  A transductive link split
            has three message graphs (train, validation, test): all three stay cached, so an epoch that
            scores each runs no shortest-path search.
    """

    def __init__(self, in_channels: int, hidden_channels: int, num_layers: int = 2, q: int = 2,
                 copies: float = 0.5, dropout: float = 0.0, seed: int = 0, distance_map: bool = True,
                 cache_bytes: int = 2 ** 30):
        super().__init__()
        if isinstance(cache_bytes, bool) or not isinstance(cache_bytes, int) or cache_bytes < 0:
            raise ValueError(f"PGNN: cache_bytes must be an int >= 0 (0 keeps only the last graph), "
                             f"got {cache_bytes!r}")
        if num_layers < 1:
            raise ValueError(f"PGNN: num_layers must be >= 1, got {num_layers}")
        _check_q(q, "PGNN")
        _check_copies(copies, "PGNN")
        self.q, self.copies, self.dropout, self.seed = q, copies, dropout, seed
        self.lin_in = Linear(in_channels, hidden_channels)
        self.convs = ModuleList(PGNNConv(hidden_channels, hidden_channels, distance_map)
                                for _ in range(num_layers))
        self.cache_bytes = cache_bytes
        self._scores: "OrderedDict[tuple, Tensor]" = OrderedDict()  # least recently used first

    def __getstate__(self) -> dict:
        """Pickled (``torch.save`` of the model, ``copy.deepcopy``) without the distance tables it keeps: up to
        ``cache_bytes`` (1 GiB by default) of ``[N, N]`` scores any call recomputes."""
        state = dict(super().__getstate__())  # (torch's drops a compiled model's call: a copy would run the original)
        state["_scores"] = OrderedDict()
        return state

    def reset_parameters(self) -> None:
        self.lin_in.reset_parameters()
        for conv in self.convs:
            conv.reset_parameters()

    def scores(self, edge_index: Tensor, num_nodes: int) -> Tensor:
        """The cached ``[N, N]`` distance scores of this graph (computed on first use).  Keyed on the edges'
        dtype and bytes (an O(E) hash per call, against the table's O(N^2)): any other graph, or an edit in
        place, recomputes; the recently used graphs' tables are kept up to ``cache_bytes`` (the table is
        N^2).  ``edge_index`` is validated when its scores are computed (a hit is the same tensor contents,
        validated then)."""
        if not isinstance(edge_index, Tensor) or edge_index.dim() != 2:
            validate_edge_index(edge_index, num_nodes, num_nodes)  # raises the named error
        ei = edge_index.detach().to("cpu", torch.long).contiguous()
        key = (num_nodes, self.q, str(edge_index.dtype), tuple(ei.shape),
               hashlib.sha1(ei.numpy().tobytes()).hexdigest())
        hit = self._scores.get(key)
        if hit is not None:
            self._scores.move_to_end(key)
            return hit
        validate_edge_index(edge_index, num_nodes, num_nodes)
        hit = self._scores[key] = shortest_path_scores(edge_index, num_nodes, self.q)
        kept = sum(t.numel() * t.element_size() for t in self._scores.values())
        while len(self._scores) > 1 and kept > self.cache_bytes:  # evict the least recently used
            old = self._scores.popitem(last=False)[1]
            kept -= old.numel() * old.element_size()
        return hit

    def anchor_sets(self, num_nodes: int) -> List[Tensor]:
        """Fresh random sets in training (from torch's global generator); the seed's sets in eval mode."""
        gen = None if self.training else torch.Generator().manual_seed(self.seed)
        return bourgain_anchor_sets(num_nodes, self.copies, gen)

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        refuse_torch_func("PGNN")
        require_edge_list(edge_index, "PGNN")
        if x.dim() != 2 or x.size(1) != self.lin_in.in_features:
            raise ValueError(f"PGNN: x must be [N, in_channels={self.lin_in.in_features}], got {list(x.shape)}")
        n = x.size(0)
        if n == 0:
            raise ValueError("PGNN: x has no nodes; anchor sets and distances need at least one node")
        dist_max, dist_argmax = closest_anchors(self.scores(edge_index, n), self.anchor_sets(n))
        h = self.lin_in(x)
        pos = h
        for i, conv in enumerate(self.convs):
            pos, h = conv(h, dist_max, dist_argmax)
            if i < len(self.convs) - 1:
                h = F.dropout(h, self.dropout, self.training)
        return F.normalize(pos, dim=-1)
