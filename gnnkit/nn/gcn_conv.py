"""GCNConv: drop-in for ``torch_geometric.nn.GCNConv`` on gnnkit's CSR SpMM."""
from typing import Any, Optional, Tuple

import torch
from torch import Tensor
from torch.nn import Parameter
from torch_geometric.nn.dense.linear import Linear
from torch_geometric.nn.inits import zeros

from gnnkit.ops import (
    Graph,
    SparseTensor,
    as_graph,
    bias_add,
    cached_for,
    coo_gcn_sum,
    is_sparse_adj,
    segment_reduce_slots,
    spmm_slots,
    validate_edge_index,
)
from gnnkit.typing import Adj

from ._attention import num_input_edges
from ._base import CSRMessagePassing, reduce_of, slot_mask
from ._utils import check_floating, loops_from_tensor, pyg_fuses, torch_sparse_extrema


def _self_loop_structure(base: Graph, num_nodes: int) -> Tuple[Graph, Tensor, Tensor]:
    """``A`` with PyG's *remaining* self-loops (:meth:`gnnkit.ops.Graph.remaining_self_loops`): the new graph,
    the input-edge ids of its kept edges, and for each node the id of an input self-loop whose weight it
    inherits (-1: none).  Read from ``base``'s CSR slots, so the new CSR equals the one built from the input
    order (kept edges, then one loop per node)."""
    if base.num_dst != num_nodes:
        raise ValueError(f"GCNConv: the graph has {base.num_dst} nodes, expected {num_nodes}")
    return base.remaining_self_loops()


def _loop_structure(edge_index: Any, n: int) -> Tuple[Graph, Tensor, Tensor]:
    """``(graph with PyG's remaining self-loops, keep, loop_edge)`` (:func:`_self_loop_structure`) of an
    ``edge_index`` or :class:`Graph`, built once: a plain ``edge_index`` in eager mode straight from the tensor
    and cached on it (one sort per new ``edge_index``: the CSR of the input itself is never used), otherwise
    from the input's :class:`Graph` and kept in it (compiled code keeps that path, whose state a prebuilt
    ``Graph`` carries between calls)."""
    if loops_from_tensor(edge_index):
        def build() -> Tuple[Graph, Tensor, Tensor]:
            validate_edge_index(edge_index, n, n)
            return Graph.with_remaining_self_loops(edge_index[0], edge_index[1], n, check=False)
        return cached_for(edge_index, ("gcn_loops", n), build)
    base, _ = as_graph(edge_index, num_nodes=n)
    if base.num_src != n or base.num_dst != n:
        raise ValueError(f"GCNConv needs a square graph with {n} nodes, got num_src={base.num_src}, "
                         f"num_dst={base.num_dst}")
    return base.derived("gcn_loops", lambda: _self_loop_structure(base, n))


def gcn_norm(edge_index: Any, edge_weight: Optional[Tensor] = None, num_nodes: Optional[int] = None,
             improved: bool = False, add_self_loops: bool = True, flow: str = "source_to_target",
             dtype: Optional[torch.dtype] = None) -> Tuple[Graph, Tensor]:
    r"""Symmetric GCN normalisation :math:`\hat D^{-1/2} \hat A \hat D^{-1/2}`.

    Follows PyG's ``gcn_norm`` for each input form: ``edge_index`` gets *remaining*
    self-loops (an existing loop keeps its weight), a ``torch.sparse`` ``adj_t`` gets
    self-loops added to its diagonal, a ``SparseTensor`` gets its diagonal set to the fill
    value.  Degrees are summed in CSR order (deterministic).

    The arguments are PyG's, in PyG's order (``flow``: ``"source_to_target"`` only; flip ``edge_index``
    for the other); ``dtype`` last.  Unlike PyG's, it returns a :class:`gnnkit.ops.Graph` (with the
    self-loops) instead of an ``edge_index``; the weights are in the graph's edge order, so PyG's idiom
    "normalise once, then ``GCNConv(normalize=False)``" works with either form:
    ``conv(x, graph, weight)`` or ``conv(x, graph.edge_index(), weight)``.  (Before 2026-12-05 the weights
    came in CSR slot order, which those calls read as edge order: wrong results without an error.)

    Returns:
        ``(graph, weight)`` with ``weight`` ``[E']`` in ``graph``'s edge order (``graph.edge_index()``'s;
        ``graph.to_csr_order(weight)`` gives the slot order the ops use inside).
    """
    graph, w = gcn_norm_slots(edge_index, edge_weight, num_nodes, improved, add_self_loops, flow, dtype)
    return graph, graph.from_csr_order(w)


def gcn_norm_slots(edge_index: Any, edge_weight: Optional[Tensor] = None, num_nodes: Optional[int] = None,
                   improved: bool = False, add_self_loops: bool = True, flow: str = "source_to_target",
                   dtype: Optional[torch.dtype] = None) -> Tuple[Graph, Tensor]:
    """:func:`gcn_norm` with the weights in the graph's CSR slot order (what the layers hand the ops)."""
    if flow != "source_to_target":
        raise ValueError(f"gcn_norm: flow={flow!r} is not supported here; pass edge_index.flip(0) with the "
                         "default flow='source_to_target'")
    fill = 2.0 if improved else 1.0
    if isinstance(edge_weight, Tensor) and edge_weight.dim() == 2 and edge_weight.size(1) == 1:
        edge_weight = edge_weight.view(-1)  # [E, 1], as PyG's gcn_norm takes it
    if is_sparse_adj(edge_index):
        if edge_weight is not None:
            raise ValueError("edge_weight must be None when the adjacency is a sparse matrix: "
                             "its values are the edge weights")
        graph, w = _sparse_with_loops(edge_index, num_nodes, fill, add_self_loops, dtype)
    elif add_self_loops:
        if num_nodes is None and loops_from_tensor(edge_index):
            # as PyG's maybe_num_nodes: the largest id + 1 (checked here; the CSR of the input is never built)
            num_nodes = validate_edge_index(edge_index, None, None)[0]
        elif num_nodes is None:
            base, _ = as_graph(edge_index)
            if base.num_src != base.num_dst:
                raise ValueError(f"GCNConv needs a square graph, got num_src={base.num_src}, num_dst={base.num_dst}")
            num_nodes = base.num_dst
        n = num_nodes
        graph, keep, loop_edge = _loop_structure(edge_index, n)
        dt = dtype or (edge_weight.dtype if edge_weight is not None else torch.get_default_dtype())
        if edge_weight is None:
            # as PyG: without weights every edge and every loop weighs 1 (improved has no effect), so the
            # weighted in-degree is the slot count and the weights need no pass of their own
            return graph, _normalised_weights(graph, graph.in_degree().to(dt), None)
        _check_weight(edge_weight, num_input_edges(edge_index))
        # a node without an input self-loop reads the appended fill value (also when E = 0)
        padded = torch.cat([edge_weight, edge_weight.new_full((1,), fill)])
        loop_w = padded[torch.where(loop_edge >= 0, loop_edge, edge_weight.numel())]
        w = graph.to_csr_order(torch.cat([edge_weight[keep], loop_w]).to(dt))
    else:
        graph, _ = as_graph(edge_index, num_nodes=num_nodes)
        dt = dtype or torch.get_default_dtype()
        if edge_weight is None:  # every edge weighs 1: the degree is the slot count, as with self-loops
            return graph, _normalised_weights(graph, graph.in_degree().to(dt), None)
        _check_weight(edge_weight, graph.num_edges)
        w = graph.to_csr_order(edge_weight)
    deg = segment_reduce_slots(graph, w.view(-1, 1), "sum").view(-1)  # weighted in-degree, CSR order
    return graph, _normalised_weights(graph, deg, w)


def _normalised_weights(graph: Graph, deg: Tensor, w: Optional[Tensor]) -> Tensor:
    """``deg[dst]^-1/2 * w * deg[src]^-1/2`` per CSR slot (``w`` None: all ones); a node of degree 0 gives 0."""
    dis = deg.pow(-0.5)
    dis = dis.masked_fill(dis == float("inf"), 0.0)
    out = dis.index_select(0, graph.row)
    return (out if w is None else out * w) * dis.index_select(0, graph.col)


def _check_weight(edge_weight: Tensor, num_edges: int) -> None:
    if edge_weight.dim() != 1 or edge_weight.numel() != num_edges:
        raise ValueError(f"edge_weight must have shape [E={num_edges}] (one weight per edge of edge_index), "
                         f"got {list(edge_weight.shape)}")
    if not edge_weight.is_floating_point():
        raise ValueError(f"edge_weight must be floating point, got {edge_weight.dtype}; use edge_weight.float()")


def _sparse_with_loops(adj: Any, num_nodes: Optional[int], fill: float, add_self_loops: bool,
                       dtype: Optional[torch.dtype]) -> Tuple[Graph, Tensor]:
    graph, w = as_graph(adj, num_nodes=num_nodes, name="adj_t")
    if graph.num_src != graph.num_dst:
        raise ValueError(f"GCNConv needs a square adjacency, got adj_t of shape [{graph.num_dst}, {graph.num_src}]")
    dt = dtype or (w.dtype if w is not None else torch.get_default_dtype())
    w = torch.ones(graph.num_edges, dtype=dt, device=graph.device) if w is None else w.to(dt)
    torch_sparse = not (SparseTensor is not None and isinstance(adj, SparseTensor))
    if not add_self_loops:
        return graph, w
    n = graph.num_dst
    is_loop = graph.row == graph.col
    nodes = torch.arange(n, device=graph.device)
    keep = (~is_loop).nonzero().view(-1)
    loop_vals = torch.full((n,), fill, dtype=dt, device=graph.device)
    if torch_sparse:
        # PyG's add_self_loops appends a loop per node and coalesces a torch.sparse matrix: a diagonal entry already
        # there and its new loop are one entry, their values summed (so a mean or max sees one neighbour, not two);
        # (torch_sparse.fill_diag, for a SparseTensor, replaces the diagonal by the fill value instead)
        loops = is_loop.nonzero().view(-1)
        loop_vals = loop_vals.index_add(0, graph.row.index_select(0, loops), w.index_select(0, loops))
    src = torch.cat([graph.col[keep], nodes])
    dst = torch.cat([graph.row[keep], nodes])
    g2 = Graph.from_coo(src, dst, n, n, check=False)
    vals = g2.to_csr_order(torch.cat([w[keep], loop_vals]))
    return g2, vals


def _add_bias(out: Tensor, bias: Tensor) -> Tensor:
    """In place into a fresh result, unless the sum promotes (e.g. autocast bf16 + fp32 bias)."""
    return bias_add(out, bias, inplace=True)


class GCNConv(CSRMessagePassing):
    r"""The graph convolutional operator from `"Semi-supervised Classification with Graph
    Convolutional Networks" <https://arxiv.org/abs/1609.02907>`_, a drop-in for
    :class:`torch_geometric.nn.GCNConv`.

    .. math::
        \mathbf{X}^{\prime} = \mathbf{\hat{D}}^{-1/2} \mathbf{\hat{A}}
        \mathbf{\hat{D}}^{-1/2} \mathbf{X} \mathbf{\Theta}

    with :math:`\mathbf{\hat{A}} = \mathbf{A} + \mathbf{I}` (``+ 2I`` if ``improved``); node-wise
    :math:`\mathbf{x}^{\prime}_i = \mathbf{\Theta}^{\top} \sum_{j \in \mathcal{N}(i) \cup \{ i \}}
    \frac{e_{j,i}}{\sqrt{\hat{d}_j \hat{d}_i}} \mathbf{x}_j`.

    The aggregation is one CSR SpMM (``gnnkit.ops``) with the normalisation folded into the
    edge values; the self-loop structure and, without ``edge_weight``, the normalised values
    are cached per ``edge_index`` tensor, so repeated calls do not re-sort or re-normalise.

    One difference from PyG: when a node has several self-loops in ``edge_index``, the last one's
    weight is used (as in PyG on CPU) and only that edge gets a weight gradient; PyG's also sends one
    to the overwritten loops, which do not change the output.

    Args:
        in_channels: size of each input sample, or -1 to infer it lazily.
        out_channels: size of each output sample.
        improved: use :math:`\mathbf{A} + 2\mathbf{I}` (default False).
        cached: cache the normalised adjacency of the first call and reuse it (transductive
            use only; a later call with a different node count raises) (default False).
        add_self_loops: add self-loops; default: the value of ``normalize``.
        normalize: apply the symmetric normalisation (default True).
        bias: learn an additive bias (default True).

    Shapes:
        - input: node features :math:`(|V|, F_{in})`, edge indices :math:`(2, |E|)` or a sparse
          ``adj_t`` :math:`(|V|, |V|)`, edge weights :math:`(|E|)` (optional)
        - output: node features :math:`(|V|, F_{out})`
    """

    def __init__(self, in_channels: int, out_channels: int, improved: bool = False, cached: bool = False,
                 add_self_loops: Optional[bool] = None, normalize: bool = True, bias: bool = True, **kwargs: Any):
        kwargs.setdefault("aggr", "add")
        reduce = reduce_of("GCNConv", kwargs["aggr"])
        super().__init__(**kwargs)
        self._reduce = reduce
        if add_self_loops is None:
            add_self_loops = normalize
        if add_self_loops and not normalize:
            raise ValueError("GCNConv does not support adding self-loops to the graph when no on-the-fly "
                             "normalization is applied (add_self_loops=True with normalize=False); add the loops "
                             "to edge_index yourself or set normalize=True")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.improved = improved
        self.cached = cached
        self.add_self_loops = add_self_loops
        self.normalize = normalize
        self._cached_norm: Optional[Tuple[Graph, Tensor]] = None
        self._cached_edge_index: Optional[Tuple[Graph, Tensor]] = None
        self._cached_adj_t: Optional[Tuple[Graph, Tensor]] = None
        self.lin = Linear(in_channels, out_channels, bias=False, weight_initializer="glorot")
        if bias:
            self.bias = Parameter(torch.empty(out_channels))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        self.lin.reset_parameters()
        zeros(self.bias)
        self._cached_norm = self._cached_edge_index = self._cached_adj_t = None

    def _normalised(self, edge_index: Any, edge_weight: Optional[Tensor], n: int, dtype: torch.dtype
                    ) -> Tuple[Graph, Tensor, Optional[Tensor]]:
        """``(graph, weights, weights in transposed slot order or None)``."""
        if not self.normalize:
            graph, w = as_graph(edge_index, num_nodes=n)
            if w is not None and edge_weight is not None:
                raise ValueError("edge_weight must be None when the adjacency is a sparse matrix: "
                                 "its values are the edge weights")
            if w is None and edge_weight is not None:
                _check_weight(edge_weight, graph.num_edges)
                w = graph.to_csr_order(edge_weight)
            if w is None:
                w = torch.ones(graph.num_edges, dtype=dtype, device=graph.device)
            return graph, w.to(dtype), None
        if edge_weight is None and not is_sparse_adj(edge_index):
            # the normalised values depend on the structure alone: keep them with it (in the self-loop graph
            # of a plain edge_index, which is cached on the tensor, or in the input's Graph)
            if self.add_self_loops and loops_from_tensor(edge_index):
                holder, _, _ = _loop_structure(edge_index, n)
            else:
                holder, _ = as_graph(edge_index, num_nodes=n)
            key = ("gcn_norm", self.improved, self.add_self_loops, dtype)
            graph, w = holder.derived(key, lambda: gcn_norm_slots(edge_index, None, n, self.improved,
                                                                  self.add_self_loops, dtype=dtype))
            if not torch.is_grad_enabled():  # no backward can follow (evaluation): no transpose to build
                return graph, w, None
            # and in transposed slot order, for the backward (read, not gathered, under torch.compile too)
            w_t = holder.derived(key + ("transposed",), lambda: w.index_select(0, graph.transpose()[2]))
            return graph, w, w_t
        return gcn_norm_slots(edge_index, edge_weight, n, self.improved, self.add_self_loops, dtype=dtype) + (None,)

    def forward(self, x: Tensor, edge_index: Adj, edge_weight: Optional[Tensor] = None) -> Tensor:
        if isinstance(x, (tuple, list)):
            raise ValueError("GCNConv received a tuple of node features but does not support bipartite "
                             "message passing; use SAGEConv or GATConv for (x_src, x_dst)")
        if not isinstance(x, Tensor) or x.dim() not in (2, 3):
            raise ValueError(f"x must be a [num_nodes, in_channels] tensor (or [batch, num_nodes, in_channels] "
                             f"for a static graph), got {list(x.shape) if isinstance(x, Tensor) else type(x).__name__}")
        check_floating("GCNConv", x)
        if self.in_channels > 0 and x.size(-1) != self.in_channels:
            raise ValueError(f"x has {x.size(-1)} features but GCNConv was built with "
                             f"in_channels={self.in_channels}; fix in_channels or the input")
        if isinstance(edge_weight, Tensor) and edge_weight.dim() == 2 and edge_weight.size(1) == 1:
            edge_weight = edge_weight.view(-1)  # [E, 1] (e.g. a one-column edge_attr), as PyG takes it
        edge_index = self.oriented(edge_index)
        n = x.size(0) if x.dim() == 3 and self.static_nodes_first(x) else x.size(-2)
        w_t = None
        # as PyG: messages are edge_weight * x_j, so a wider edge_weight (fp32 with bf16 x) widens the result
        dt = x.dtype if edge_weight is None or not edge_weight.is_floating_point() or not x.is_floating_point() \
            else torch.promote_types(x.dtype, edge_weight.dtype)
        cache = self.cached and self.normalize  # as PyG: without normalisation nothing is cached
        f_in, f_out = x.size(-1), self.out_channels
        # A (x W) == (A x) W: pick the order that moves fewer features through SpMMs.  Transform
        # first costs an SpMM of width out_channels forward and again backward; aggregate first
        # costs one of width in_channels forward, and backward only when x needs a gradient.
        agg_first = self._reduce in ("sum", "mean") and f_in * (2 if x.requires_grad else 1) < 2 * f_out
        h = None
        if not cache and self.normalize and not self.improved and edge_weight is None and x.dim() == 2 \
                and x.layout == torch.strided and self._reduce == "sum" and self._explain is not True:
            # a small plain edge_index (a mini-batch): PyG's gather and scatter, no CSR to build
            h = x if agg_first else self.lin(x)
            out = coo_gcn_sum(edge_index, h, self.add_self_loops)
            if out is not None:
                out = self.lin(out) if agg_first else out
                return out if self.bias is None else _add_bias(out, self.bias)
            h = None if agg_first else h
        if cache and self._cached_norm is not None:
            graph, w = self._cached_norm
            if x.is_floating_point() and w.is_floating_point():  # the cached weights' dtype, as PyG reuses them
                dt = torch.promote_types(x.dtype, w.dtype)
            if graph.num_dst != n:
                raise ValueError(f"GCNConv(cached=True) was cached on a graph with {graph.num_dst} nodes but x "
                                 f"has {n}; cached=True is for one fixed graph (transductive) — use "
                                 "cached=False for mini-batches")
        else:
            graph, w, w_t = self._normalised(edge_index, edge_weight, n, dt)
            if cache:
                kept = w.detach()
                if not torch.compiler.is_compiling() and kept.is_inference():
                    with torch.inference_mode(False):  # a first call under inference_mode: keep a normal
                        kept = kept.clone()  # tensor, so training with this cache can save it for backward
                self._cached_norm = (graph, kept)
                # PyG's attribute names for the same cache (one of them set, by input form)
                if is_sparse_adj(edge_index):
                    self._cached_adj_t = self._cached_norm
                else:
                    self._cached_edge_index = self._cached_norm
        mask = self.explain_mask(num_input_edges(edge_index))
        if mask is not None:  # PyG's explain_message: each input edge's message times its mask
            if is_sparse_adj(edge_index):
                raise ValueError("GCNConv: explaining needs an edge_index [2, E] (as in PyG); got a sparse adj_t")
            w, w_t = w * self._slot_mask(edge_index, graph, mask, n).to(w.dtype), None
        if x.dim() == 3 or x.layout != torch.strided:
            # static graph [B, N, F] (one graph for every batch row) or sparse x: transform first, then
            # aggregate all batch rows in one SpMM over the node axis
            h = self.lin(x).to(dt)
            if h.dim() == 2:
                return self._propagate(graph, w, w_t, h, self.bias)
            nodes_first = self.static_nodes_first(h)  # node_dim=0: [N, B, F]
            h = h if nodes_first else h.transpose(0, 1)
            N, B, C = h.shape
            out = self._propagate(graph, w, w_t, h.reshape(N, B * C)).view(N, B, C)
            out = out if nodes_first else out.transpose(0, 1)
            return out if self.bias is None else out + self.bias
        # the bias is added in place into the last op's fresh result (no saved tensor is touched)
        if agg_first and dt == x.dtype:
            out = self.lin(self._propagate(graph, w, w_t, x))
            return out if self.bias is None else _add_bias(out, self.bias)
        return self._propagate(graph, w, w_t, (self.lin(x) if h is None else h).to(dt), self.bias,
                               pyg_fuses(self, edge_index, mask))

    def _slot_mask(self, edge_index: Any, graph: Graph, mask: Tensor, n: int) -> Tensor:
        if not self.add_self_loops:
            return slot_mask(graph, mask)
        _, keep, _ = _loop_structure(edge_index, n)
        return slot_mask(graph, mask, keep, n)

    def _propagate(self, graph: Graph, w: Tensor, w_t: Optional[Tensor], h: Tensor, bias: Optional[Tensor] = None,
                   fused_sparse: bool = False) -> Tensor:
        if fused_sparse and h.dim() == 2:  # PyG's fused max / min on a torch.sparse adj_t: torch.sparse.mm
            ext = torch_sparse_extrema(graph, h, w, self._reduce)
            if ext is not None:
                return ext if bias is None else _add_bias(ext, bias)
        vt = None if w_t is None else w_t.to(h.dtype).view(-1, 1)
        out = spmm_slots(graph, h.unsqueeze(1), w.to(h.dtype).view(-1, 1), self._reduce, vt)
        return (out if bias is None else _add_bias(out, bias)).squeeze(1)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.in_channels}, {self.out_channels})"
