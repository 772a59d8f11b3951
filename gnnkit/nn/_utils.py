"""Input handling shared by the conv layers: node-feature pairs, adjacency -> :class:`Graph`,
argument checks with errors that name the argument and the fix."""
import numbers
from typing import Any, Optional, Tuple, Union

import torch
from torch import Tensor
from torch.nn.modules import module as _m
from torch_geometric.nn.dense.linear import Linear as PyGLinear, is_uninitialized_parameter

from gnnkit._checks import check_int
from gnnkit.ops import Graph, SparseTensor, as_graph, bias_add, coo_sum, functorch_active, is_sparse_adj, spmm_slots
from gnnkit.typing import Size


def refuse_torch_func(layer: str, alternative: str = "") -> None:
    """``torch.func`` transforms (grad, vmap, jacrev, jvp) are refused by name: the layers' fused ops are autograd
    Functions and custom ops without functorch rules (raw torch errors came from deep inside before).  Free
    under ``torch.compile`` (no check) and ~0.2 µs in eager mode."""
    if not torch.compiler.is_compiling() and functorch_active():
        raise RuntimeError(
            f"{layer}: torch.func transforms (grad, vmap, jacrev, jvp) are not supported by gnnkit's layers: their "
            "fused ops are autograd Functions and custom ops without functorch rules; fix: torch.autograd.grad on "
            "the output (torch.func.functional_call alone works), a loop instead of vmap"
            + (f", or {alternative}" if alternative else ""))


def loops_from_tensor(edge_index: Any) -> bool:
    """A plain ``edge_index`` tensor in eager mode: layers build their derived graph (self-loops) straight from
    it and cache it on the tensor; compiled code keeps the :class:`Graph` path, which inductor lowers."""
    return type(edge_index) is Tensor and edge_index.layout == torch.strided and not torch.compiler.is_compiling()


def materialised(*lins) -> bool:
    """All ``lins`` exist and hold real weights (not PyG's lazy ``in_channels=-1`` placeholders
    before the first call), so a layer may use ``lin.weight`` directly."""
    return all(lin is not None and not is_uninitialized_parameter(lin.weight) for lin in lins)


# input widths below which a CPU linear map's weight gradient is taken as x^T @ grad (see edge_linear)
_EDGE_LINEAR_MAX_IN = 16


def _plain_linear_call(lin: torch.nn.Module) -> bool:
    """``lin(x)`` would be exactly ``F.linear(x, lin.weight, lin.bias)``: a ``torch.nn.Linear`` or PyG ``Linear``
    whose ``forward`` is the class's own (not a subclass's or a quantized module's), real weights (not PyG's
    lazy placeholder), and no module hook, on it or global, that the call would run."""
    return (type(lin).forward in (torch.nn.Linear.forward, PyGLinear.forward) and "forward" not in lin.__dict__
            and materialised(lin)
            and not (lin._forward_hooks or lin._forward_pre_hooks or lin._backward_hooks or lin._backward_pre_hooks
                     or _m._global_forward_hooks or _m._global_forward_pre_hooks or _m._global_backward_hooks
                     or _m._global_backward_pre_hooks))


def plain_linears(*lins: Optional[torch.nn.Module]) -> bool:
    """Every one of ``lins`` exists and its call is plain ``F.linear`` (:func:`_plain_linear_call`), so a layer may
    read ``lin.weight`` in place of calling ``lin``: a hook, a pruning mask (a forward pre-hook), an adapter
    subclass or a lazy weight makes the layer call the module, as PyG does."""
    return all(lin is not None and _plain_linear_call(lin) for lin in lins)


def linear(lin: torch.nn.Module, x: Tensor) -> Tensor:
    """``lin(x)``; under ``torch.compile`` a plain linear layer's bias (one that needs a gradient) is added by
    :func:`gnnkit.ops.bias_add`, so its gradient is aten's column sum, not inductor's (module text there)."""
    if torch.compiler.is_compiling() and _plain_linear_call(lin) and lin.bias is not None and lin.bias.requires_grad \
            and torch.is_grad_enabled() and not torch.is_autocast_enabled(x.device.type) \
            and x.dtype == lin.weight.dtype == lin.bias.dtype:  # else lin(x): autocast casts its bias, as eager
        return bias_add(torch.nn.functional.linear(x, lin.weight), lin.bias)
    return lin(x)


def edge_linear(lin: torch.nn.Module, x: Tensor) -> Tensor:
    """``lin(x)`` for a linear layer over many rows of few features (edge features: ``[E, edge_dim]``).

    On CPU with 2-15 input features, when the weight's gradient is asked for, the weight enters the product as
    a row-major ``[in, out]`` copy, so autograd takes its gradient as ``x^T @ grad`` (``[in, E] @ [E, out]``)
    instead of ``F.linear``'s ``grad^T @ x`` (``[out, E] @ [E, in]``), which MKL runs 4-13x slower at these
    widths: 35.7 against 5.7 ms for E = 200k rows, 4 inputs, 64 outputs; 89 against 12 ms for 128 outputs
    (2 threads; from 16 inputs on the two are within 16 %).  A bias is added as one more weight row over a
    column of ones, so its gradient comes out of the same product.  Same products, summed in another order.
    Anything else (no gradient to take, other devices, wider or one-feature inputs, a module whose call is
    not plain ``F.linear``: lazy weights, a subclass's or quantized ``forward``, hooks) calls ``lin(x)``."""
    if (x.device.type != "cpu" or x.dim() != 2 or not 1 < x.size(1) < _EDGE_LINEAR_MAX_IN
            or not torch.is_grad_enabled() or not _plain_linear_call(lin) or not lin.weight.requires_grad
            or lin.bias is not None and lin.bias.dtype != lin.weight.dtype):
        return lin(x)
    w, b = lin.weight, lin.bias
    if b is None:
        return x @ w.t().contiguous()
    # the bias's gradient from the same product: no column sum over [E, out] (2.3 ms less per step eager,
    # 3.8 ms compiled, at E = 200k, 4 -> 64)
    return torch.cat([x, x.new_ones(x.size(0), 1)], 1) @ torch.cat([w.t(), b.view(1, -1)], 0)


def require_edge_list(edge_index: Any, layer: str) -> None:
    """Layers that read the edge list itself (distances, ego networks, anchor scores) take ``edge_index`` ``[2, E]``
    only: a ``Graph`` or a sparse adjacency is refused by name (it failed deep inside with an ``AttributeError``)."""
    if isinstance(edge_index, Graph) or is_sparse_adj(edge_index):
        raise ValueError(f"{layer} takes edge_index as a [2, E] tensor (it reads the edge list itself), got a "
                         f"{type(edge_index).__name__}{' (sparse)' if is_sparse_adj(edge_index) else ''}; fix: pass "
                         "the edge_index (for a sparse adj_t: adj_t.coalesce().indices().flip(0))")


def check_floating(layer: str, x: Any) -> None:
    """Integer or bool node features (``x``, or either side of a pair) are refused by name: the layer's weights are
    floating point (PyG fails there with a raw dtype error from deep inside)."""
    sides = [("x", x)] if isinstance(x, Tensor) else list(zip(("x[0] (x_src)", "x[1] (x_dst)"), x))
    for arg, t in sides:
        if isinstance(t, Tensor) and not (t.is_floating_point() or t.is_complex()):
            raise ValueError(f"{layer}: {arg} holds {t.dtype} values but the layer's weights are floating point; "
                             "pass the features as floats (x.float())")


def node_pair(x: Union[Tensor, Tuple[Tensor, Optional[Tensor]]], layer: str,
              dense: bool = False) -> Tuple[Tensor, Optional[Tensor], bool]:
    """``(x_src, x_dst, is_pair)``; a plain tensor gives ``(x, x, False)``.  ``dense``: sparse features (COO or
    CSR layout; GCN and GAT transform them first, layers that aggregate ``x`` itself cannot) are refused by name
    (PyG fails there too, with a raw error)."""
    if dense:
        for arg, t in [("x", x)] if isinstance(x, Tensor) else zip(("x[0] (x_src)", "x[1] (x_dst)"), x):
            if isinstance(t, Tensor) and t.layout != torch.strided:
                raise ValueError(f"{layer}: {arg} is a sparse tensor ({t.layout}) but {layer} aggregates the "
                                 f"features themselves, which needs them dense; fix: pass {arg.split()[0]}.to_dense() "
                                 "(GCNConv and GATConv take sparse x)")
    if isinstance(x, (tuple, list)):
        if len(x) != 2:
            raise ValueError(f"{layer}: x must be a tensor or a pair (x_src, x_dst), got a sequence of {len(x)}")
        x_src, x_dst = x
        if not isinstance(x_src, Tensor) or x_src.dim() != 2:
            raise ValueError(f"{layer}: x_src must be a [num_src, F] tensor, got "
                             f"{list(x_src.shape) if isinstance(x_src, Tensor) else type(x_src).__name__}")
        if x_dst is not None and (not isinstance(x_dst, Tensor) or x_dst.dim() != 2):
            raise ValueError(f"{layer}: x_dst must be a [num_dst, F] tensor or None, got "
                             f"{list(x_dst.shape) if isinstance(x_dst, Tensor) else type(x_dst).__name__}")
        return x_src, x_dst, True
    if not isinstance(x, Tensor) or x.dim() != 2:
        raise ValueError(f"{layer}: x must be a [num_nodes, F] tensor or a pair (x_src, x_dst), got "
                         f"{list(x.shape) if isinstance(x, Tensor) else type(x).__name__}")
    return x, x, False


def check_width(t: Optional[Tensor], expected: int, layer: str, arg: str, ctor: str) -> None:
    """``t.size(-1) == expected`` unless ``expected`` is lazy (<= 0)."""
    if t is not None and expected > 0 and t.size(-1) != expected:
        raise ValueError(f"{layer}: {arg} has {t.size(-1)} features but the layer was built with "
                         f"{ctor}={expected}; fix {ctor} or the input")


def check_count(value: Any, arg: str, layer: str, lazy: bool = False) -> int:
    """A width or layer count: an int >= 1 (:func:`gnnkit._checks.check_int`), or with ``lazy`` -1 (inferred on
    the first call, as PyG's lazy layers)."""
    if lazy and value == -1 and not isinstance(value, bool) and isinstance(value, numbers.Integral):
        return -1
    return check_int(arg, value, 1, who=layer, hint=" (or -1: inferred on the first call)" if lazy else "")


def check_graph_channels(graph_channels: Any, layer: str) -> int:
    """``graph_channels`` (the width of a per-graph feature ``g``) is an int >= 0."""
    return check_int("graph_channels", graph_channels, 0, who=layer, hint=" (the width of g)")


def graph_features(g: Optional[Tensor], graph_channels: int, num_graphs: int, layer: str,
                   method: str, arg: str = "g") -> Optional[Tensor]:
    """``g`` as ``[num_graphs, graph_channels]`` (a 1-D ``g`` for one graph is taken as its row), or None
    for a layer built without graph features; a missing, unexpected or misshapen ``g`` is a named error."""
    if not graph_channels:
        if g is not None:
            raise ValueError(f"{layer}: got {arg} but was built without graph_channels; pass "
                             f"graph_channels={arg}.size(-1) to the constructor or drop {arg}")
        return None
    if g is None:
        raise ValueError(f"{layer}: built with graph_channels={graph_channels}, so {method} needs "
                         f"{arg} [num_graphs, {graph_channels}]")
    if not isinstance(g, Tensor):
        raise ValueError(f"{layer}: {arg} must be a tensor [num_graphs, {graph_channels}], got {type(g).__name__}")
    if g.dim() == 1 and num_graphs == 1:
        g = g.view(1, -1)
    if g.dim() != 2 or g.size(0) != num_graphs or g.size(1) != graph_channels:
        raise ValueError(f"{layer}: {arg} must be [num_graphs={num_graphs}, {graph_channels}], got {list(g.shape)}")
    return g


def plain_edge_index(edge_index: Tensor) -> Tensor:
    """A ``torch_geometric.EdgeIndex`` as a plain tensor (other tensors unchanged)."""
    from torch_geometric import EdgeIndex
    return edge_index.as_tensor() if isinstance(edge_index, EdgeIndex) else edge_index


def edge_index_size(edge_index: Any) -> Optional[Tuple[Optional[int], Optional[int]]]:
    from torch_geometric import EdgeIndex
    return edge_index.sparse_size() if isinstance(edge_index, EdgeIndex) else None


def resolve_size(edge_index: Any, x_src: Tensor, x_dst: Optional[Tensor], size: Size) -> Tuple[int, Optional[int]]:
    """``(num_src, num_dst)`` from the features, ``size`` and a sparse adjacency's shape."""
    if size is not None:
        if len(size) != 2:
            raise ValueError(f"size must be (num_src, num_dst), got {size!r}")
        ns, nd = size
    else:
        ns = nd = None
    ns = x_src.size(0) if ns is None else int(ns)
    if ns != x_src.size(0):
        raise ValueError(f"size[0]={ns} but x_src has {x_src.size(0)} rows; size is (num_src, num_dst)")
    if x_dst is not None:
        if nd is not None and int(nd) != x_dst.size(0):
            raise ValueError(f"size[1]={nd} but x_dst has {x_dst.size(0)} rows; size is (num_src, num_dst)")
        nd = x_dst.size(0)
    if nd is None:
        if isinstance(edge_index, Graph):
            nd = edge_index.num_dst
        elif is_sparse_adj(edge_index):
            nd = int(edge_index.sizes()[0] if SparseTensor is not None and isinstance(edge_index, SparseTensor)
                     else edge_index.size(0))
        else:
            es = edge_index_size(edge_index)
            nd = es[1] if es is not None and es[1] is not None else ns
    return ns, int(nd)


def graph_of(edge_index: Any, num_src: int, num_dst: int, use_values: bool = True
             ) -> Tuple[Graph, Optional[Tensor]]:
    """``(graph, csr_weight)`` of any adjacency form PyG layers accept.

    ``csr_weight`` is a ``torch.sparse`` matrix's values in CSR order (PyG multiplies by
    them), ``None`` for ``edge_index`` and for ``SparseTensor`` when ``use_values`` is False
    (PyG's SAGE/GIN call ``adj_t.set_value(None)``).
    """
    if edge_index is None:
        raise ValueError("edge_index is required: pass an edge_index [2, E], a sparse adj_t or a gnnkit Graph")
    graph, w = as_graph(edge_index, size=(num_src, num_dst),
                        name="adj_t" if is_sparse_adj(edge_index) else "edge_index")
    if w is not None and not use_values and SparseTensor is not None and isinstance(edge_index, SparseTensor):
        w = None
    return graph, w


def pyg_fuses(layer: Any, edge_index: Any, mask: Optional[Tensor]) -> bool:
    """Whether PyG's layer would aggregate this call with its fused ``message_and_aggregate`` on a ``torch.sparse``
    ``adj_t`` (``torch.sparse.mm``, the matrix's values weighting the messages): a string ``aggr`` (PyG fuses
    only those) and no explainer's mask (PyG's explained calls go through the messages)."""
    return isinstance(edge_index, Tensor) and (edge_index.is_sparse or edge_index.layout in (torch.sparse_csr,
                                                                                             torch.sparse_csc)) \
        and getattr(layer, "aggr", None) in ("add", "sum", "mean", "min", "max") and mask is None  # PyG's FUSE_AGGRS
    # (PyG keeps str(aggr): an Aggregation object reads "MaxAggregation()" there, and is not fused)


def torch_sparse_extrema(graph: Graph, x: Tensor, value: Optional[Tensor], reduce: str) -> Optional[Tensor]:
    """PyG's fused max / min over a ``torch.sparse`` ``adj_t`` on the CPU (:func:`pyg_fuses`):
    ``torch.sparse.mm(adj, x, reduce)``, whose backward hands each output's whole gradient to one neighbour (the
    extremum's argument) — not the even split (with its zero start) of PyG's message path, which gnnkit's own
    max / min follows.  ``None`` where that does not apply (another reduce, a device PyG refuses max / min on, a
    compiled region)."""
    if reduce not in ("max", "min") or x.device.type != "cpu" or x.dim() != 2 or torch.compiler.is_compiling():
        return None
    vals = x.new_ones(graph.num_edges) if value is None else value.reshape(-1).to(x.dtype)
    adj = torch.sparse_csr_tensor(graph.rowptr, graph.col, vals, (graph.num_dst, graph.num_src),
                                  check_invariants=False)
    return torch.sparse.mm(adj, x, reduce)


def check_edge_rows(t: Optional[Tensor], num_edges: int, layer: str, arg: str, max_dim: Optional[int] = 2) -> None:
    """``t`` (None, or one row per edge, floating point) and, with ``max_dim``, at most that many dimensions
    (``[E]`` or ``[E, D]`` for the layers' ``edge_attr``): errors name ``layer`` and ``arg``."""
    if t is None:
        return
    if max_dim is not None and t.dim() > max_dim:
        raise ValueError(f"{layer}: {arg} must be [E] or [E, D] (one row of features per edge), got shape "
                         f"{list(t.shape)}; fix: {arg}.view({arg}.size(0), -1) if the trailing dimensions are features")
    if t.dim() == 0 or t.size(0) != num_edges:
        raise ValueError(f"{layer}: {arg} must have one row per edge (E={num_edges}), got shape "
                         f"{list(t.shape)}; pass {arg} in the same order as edge_index")
    if not t.is_floating_point():
        raise ValueError(f"{layer}: {arg} must be floating point, got {t.dtype}; use {arg}.float()")


def aggregate(graph: Graph, x: Tensor, csr_weight: Optional[Tensor], reduce: str,
              root: Optional[Tensor] = None, root_scale: Union[Tensor, float, None] = None,
              fused_sparse: bool = False) -> Tensor:
    """``reduce_{j -> i} w_ji x_j`` for ``x`` ``[num_src, F]`` with weights already in CSR order;
    with ``root`` ``[num_dst, F]``, plus ``root_scale * root`` (added in place into the fresh
    SpMM result: one pass, no extra ``[N, F]`` tensor).  A number as ``root_scale`` (1 or None:
    the gradient passes to ``root`` without a multiply) or a tensor (e.g. a learnt ``1 + eps``).
    ``fused_sparse``: PyG would fuse this call on a ``torch.sparse`` ``adj_t`` (:func:`pyg_fuses`)."""
    if x.size(0) != graph.num_src:
        raise ValueError(f"x has {x.size(0)} rows but the graph has {graph.num_src} source nodes; "
                         "check the node features against edge_index/size")
    out = torch_sparse_extrema(graph, x, csr_weight, reduce) if fused_sparse else None
    if out is not None:
        return add_root(out, root, root_scale)
    value = None if csr_weight is None else csr_weight.to(x.dtype).view(-1, 1)
    return add_root(spmm_slots(graph, x.unsqueeze(1), value, reduce).squeeze(1), root, root_scale)


def add_root(out: Tensor, root: Optional[Tensor] = None, root_scale: Union[Tensor, float, None] = None) -> Tensor:
    """``out + root_scale * root`` for a fresh aggregation ``out`` ``[N, F]`` (see :func:`aggregate`): in place
    unless the dtypes differ (then torch's promotion, out of place); ``root`` None: ``out``."""
    if root is None:
        return out
    if root.dtype != out.dtype or (isinstance(root_scale, Tensor) and root_scale.dim() > 0
                                   and torch.promote_types(root.dtype, root_scale.dtype) != out.dtype):
        # mixed dtypes (e.g. GIN's fp32 [1] eps with bf16 x, which promotes as in PyG): out of place, promoted
        return out + root * (1.0 if root_scale is None else root_scale)
    if root_scale is None or isinstance(root_scale, (int, float)):
        return out.add_(root, alpha=1.0 if root_scale is None else root_scale)
    return out.addcmul_(root, root_scale)


def small_aggregate(edge_index: Any, x: Tensor, num_src: int, num_dst: int, reduce: str,
                    root: Optional[Tensor] = None,
                    root_scale: Union[Tensor, float, None] = None) -> Optional[Tensor]:
    """:func:`aggregate` without a graph for a small plain ``edge_index`` (:func:`gnnkit.ops.coo_sum`: the same
    result bit for bit when it is sorted by (source, destination), else to rounding); ``None`` where that does not
    apply."""
    out = coo_sum(edge_index, x, num_src, num_dst, reduce)
    return None if out is None else add_root(out, root, root_scale)
