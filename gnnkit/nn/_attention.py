"""Graph structure for the attention layers: PyG's ``remove_self_loops`` + ``add_self_loops``
(with ``fill_value`` for edge features), cached per ``edge_index``, and the
``return_attention_weights`` output in the form PyG returns it."""
from typing import Any, NamedTuple, Optional, Tuple, Union

import torch
from torch import Tensor
from torch_geometric import EdgeIndex

from gnnkit.ops import Graph, SparseTensor, cached_for, is_sparse_adj, validate_edge_index

from ._utils import graph_of, loops_from_tensor, plain_edge_index

_FILLS = ("mean", "add", "sum", "max", "min", "mul")


def set_attention_options(layer: torch.nn.Module, name: str, in_channels: Union[int, Tuple[int, int]],
                          out_channels: int, heads: int, concat: bool, negative_slope: float, dropout: float,
                          add_self_loops: bool, edge_dim: Optional[int], fill_value: Union[float, Tensor, str],
                          residual: bool) -> None:
    """Validate and store the constructor options GATConv and GATv2Conv share (PyG's attribute names)."""
    if heads < 1:
        raise ValueError(f"{name}: heads must be >= 1, got {heads}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"{name}: dropout must lie in [0, 1), got {dropout}")
    layer.in_channels = in_channels
    layer.out_channels = out_channels
    layer.heads = heads
    layer.concat = concat
    layer.negative_slope = negative_slope
    layer.dropout = dropout
    layer.add_self_loops = add_self_loops
    layer.edge_dim = edge_dim
    layer.fill_value = fill_value
    layer.residual = residual


def add_residual_and_bias(layer: torch.nn.Module, dst_channels: int, residual: bool, bias: bool) -> None:
    """``layer.res`` (a glorot Linear of the destination input, or None) and ``layer.bias``, as PyG registers them."""
    from torch_geometric.nn.dense.linear import Linear
    total = layer.out_channels * (layer.heads if layer.concat else 1)
    if residual:
        layer.res = Linear(dst_channels, total, bias=False, weight_initializer="glorot")
    else:
        layer.register_parameter("res", None)
    if bias:
        layer.bias = torch.nn.Parameter(torch.empty(total))
    else:
        layer.register_parameter("bias", None)


class AttnStructure(NamedTuple):
    graph: Graph          # edges in "attention order": kept input edges, then loops 0..num_loops-1
    keep: Optional[Tensor]  # ids of the kept input edges (None: all, no loops added)
    num_loops: int
    # for fill_value reductions: (kept edges ending at a looped node, their destinations, in-degree of each
    # looped node from the kept edges, at least 1); structure only, so built once with the graph
    fill: Optional[Tuple[Tensor, Tensor, Tensor]]
    # dropout's mask drawn in CSR order: a sparse adj_t with loops added, which PyG coalesces (its loops sorted in)
    draw_in_csr_order: bool = False


def _loops_from_coo(src: Tensor, dst: Tensor, ns: int, nd: int, n_loops: int, flipped: bool = False
                    ) -> AttnStructure:
    keep = (src != dst).nonzero().view(-1)
    loops = torch.arange(n_loops, device=src.device)
    s = torch.cat([src.long()[keep], loops])
    kept_dst = dst.long()[keep]
    d = torch.cat([kept_dst, loops])
    # PyG fills a loop from the edges whose edge_index[1] is its node, whatever the flow: under
    # flow="target_to_source" (edge_index flipped here) that is the flipped graph's source
    group = src.long()[keep] if flipped else kept_dst
    inside = (group < n_loops).nonzero().view(-1)
    dst_in = group[inside]
    fill = (inside, dst_in, torch.bincount(dst_in, minlength=n_loops).clamp(min=1))
    return AttnStructure(Graph.from_coo(s, d, ns, nd, check=False), keep, n_loops, fill)


def attention_structure(edge_index: Any, ns: int, nd: int, add_self_loops: bool,
                        flipped: bool = False) -> AttnStructure:
    """The graph the attention runs on, kept in the input's :class:`Graph` (built once).
    ``edge_index`` (or ``Graph``) input keeps PyG's edge order (kept edges, then one loop per
    node ``< min(num_src, num_dst)``); sparse input keeps its row-major order.  ``flipped``: the
    layer's ``flow="target_to_source"`` flipped ``edge_index`` (loops are filled by the original's row 1)."""
    n_loops = min(ns, nd)
    if add_self_loops and loops_from_tensor(edge_index):  # (compiled code keeps the path below, which inductor lowers)
        # a plain edge_index: the loop graph straight from it, cached on the tensor (the CSR of the input
        # itself, which the path below builds to read the input order back, is never used: one sort per new
        # edge_index instead of two, ~10 % of GAT's step on a MUTAG batch)
        def build() -> AttnStructure:
            validate_edge_index(edge_index, ns, nd)
            return _loops_from_coo(edge_index[0], edge_index[1], ns, nd, n_loops, flipped)
        return cached_for(edge_index, ("attn_loops", ns, nd, flipped), build)
    g0, _ = graph_of(edge_index, ns, nd)
    if not add_self_loops:
        return AttnStructure(g0, None, 0, None)
    if is_sparse_adj(edge_index):  # slots in CSR (row-major) order are the "input order"
        return g0.derived(("attn_loops", "csr"),
                          lambda: _loops_from_coo(g0.col, g0.row, ns, nd, n_loops)._replace(draw_in_csr_order=True))
    return g0.derived(("attn_loops", "input") + (("flipped",) if flipped else ()),
                      lambda: _loops_from_coo(g0.from_csr_order(g0.col), g0.from_csr_order(g0.row), ns, nd,
                                              n_loops, flipped))


def edge_features(st: AttnStructure, edge_attr: Tensor, fill_value: Union[float, Tensor, str]) -> Tensor:
    """``edge_attr`` ``[E, D]`` (input order) -> ``[E', D]`` in attention order, with the
    self-loops' features given by ``fill_value`` as in PyG's ``add_self_loops``."""
    if st.keep is None:
        return edge_attr
    kept = edge_attr.index_select(0, st.keep)
    n, D = st.num_loops, edge_attr.size(1)
    if isinstance(fill_value, str):
        if fill_value not in _FILLS:
            raise ValueError(f"fill_value={fill_value!r} is not supported; use a number, a tensor or one of {_FILLS}")
        inside, dst_in, cnt = st.fill
        kept_in = kept.index_select(0, inside)
        if fill_value == "mean" or fill_value in ("add", "sum"):
            loop = kept.new_zeros(n, D).index_add(0, dst_in, kept_in)
            if fill_value == "mean":
                loop = loop / cnt.to(kept.dtype).view(-1, 1)
        elif fill_value == "mul":  # PyG's scatter "mul": a product started at one (a loop without in-edges: 1)
            loop = kept.new_ones(n, D).scatter_reduce(0, dst_in.view(-1, 1).expand(-1, D), kept_in, "prod",
                                                      include_self=True)
        else:
            loop = kept.new_zeros(n, D).scatter_reduce(0, dst_in.view(-1, 1).expand(-1, D), kept_in,
                                                       "amax" if fill_value == "max" else "amin",
                                                       include_self=False)
    else:
        fv = torch.as_tensor(fill_value, dtype=kept.dtype, device=kept.device)
        rows_ok = fv.dim() < 2 or (fv.dim() == 2 and fv.size(0) in (1, n))
        if not rows_ok or (fv.dim() >= 1 and fv.size(-1) not in (1, D)):
            raise ValueError(f"fill_value of shape {list(fv.shape)} does not fit the {n} self-loops' edge features "
                             f"[{n}, {D}]; fix: a number, a [{D}] tensor, or one row per loop [{n}, {D}]")
        loop = fv.expand(n, D)
    return torch.cat([kept, loop.to(kept.dtype)], 0)


def attention_edge_index(st: AttnStructure, edge_index: Any) -> Tensor:
    """``edge_index`` after PyG's remove/add self-loops (same dtype as the input)."""
    ei = edge_index.edge_index() if isinstance(edge_index, Graph) else plain_edge_index(edge_index)
    if st.keep is None:
        return ei
    loops = torch.arange(st.num_loops, device=ei.device, dtype=ei.dtype)
    return torch.cat([ei.index_select(1, st.keep), torch.stack([loops, loops])], 1)


def attention_output(edge_index: Any, st: AttnStructure, alpha: Tensor, ns: int, nd: int, flipped: bool = False,
                     given: Any = None) -> Any:
    """What PyG returns with ``return_attention_weights``, from ``alpha`` ``[E', H]`` in CSR slot
    order: ``(edge_index, alpha)`` (attention edge order) for ``edge_index`` and ``Graph``,
    ``(adj_t with alpha values, alpha)`` for ``torch.sparse``, a ``SparseTensor`` with alpha
    values for ``SparseTensor``.  Sparse results are row-major.  ``given``: the user's ``edge_index``
    before ``flow="target_to_source"`` flipped it (an ``EdgeIndex`` comes back as one, as in PyG)."""
    g = st.graph
    if not is_sparse_adj(edge_index):
        ei = attention_edge_index(st, edge_index)
        # flow="target_to_source": the user's orientation, as PyG returns it
        ei = ei.flip(0) if flipped else ei
        given = edge_index if given is None else given
        if isinstance(given, EdgeIndex):
            if st.keep is None:  # no loops added: PyG hands the input back (its sort order kept)
                return given, g.from_csr_order(alpha)
            ei = EdgeIndex(ei, sparse_size=given.sparse_size())  # loops added: sizes kept, no sort order
        return ei, g.from_csr_order(alpha)
    a = alpha
    if SparseTensor is not None and isinstance(edge_index, SparseTensor):
        return SparseTensor(row=g.row, col=g.col, value=a, sparse_sizes=(nd, ns), is_sorted=True)
    if edge_index.layout == torch.sparse_csr:
        adj = torch.sparse_csr_tensor(g.rowptr, g.col, a, (nd, ns) + tuple(a.shape[1:]), check_invariants=False)
    else:
        adj = torch.sparse_coo_tensor(torch.stack([g.row, g.col]), a, (nd, ns) + tuple(a.shape[1:]),
                                      is_coalesced=True)
    return adj, a


def num_input_edges(edge_index: Any) -> int:
    """Number of edges of the adjacency as given (before any self-loop rewrite)."""
    if isinstance(edge_index, Graph):
        return edge_index.num_edges
    if SparseTensor is not None and isinstance(edge_index, SparseTensor):
        return int(edge_index.nnz())
    if isinstance(edge_index, Tensor) and edge_index.layout == torch.sparse_coo:
        return int(edge_index._nnz())
    if isinstance(edge_index, Tensor) and edge_index.layout == torch.sparse_csr:
        return int(edge_index.values().numel())
    return int(edge_index.size(1))
