r"""SpMM: aggregate source features over each destination's incoming edges.

.. math::
    \mathbf{y}_i = \bigoplus_{e = (j \to i)} w_e \, \mathbf{x}_j,
    \qquad \oplus \in \{\text{sum}, \text{mean}, \text{max}, \text{min}\}

``mean`` divides the weighted sum by the in-degree; rows without edges give 0
(and no gradient).  Multi-head: ``x`` ``[S, H, F]`` with ``edge_weight``
``[E, H]`` aggregates each head with its own weights.

Two tiers: :func:`spmm` takes per-edge weights in the input edge order (the public
boundary); :func:`spmm_slots` takes ``x`` ``[S, H, F]`` and ``value`` ``[E, H]`` already in
CSR slot order (what layers use: no reordering per call).  Kernel contract:
:func:`gnnkit.ops.primitives.spmm_op`.
"""
import math
from typing import Optional, Tuple

import torch
from torch import Tensor

from ._autograd import apply_function, first_order_only
from ._backend import use_triton
from ._custom_op import transforms_active
from .graph import (
    Graph,
    _check_count,
    cached_for,
    check_op_inputs,
    check_rows,
    edge_list_serves,
    in_degree,
    loop_edges,
    with_named_id_errors,
)
from .primitives import (
    NO_PLAN,
    kernel_plan,
    relu_message_bwd_op,
    relu_message_mask_bwd_op,
    relu_message_op,
    sddmm_op,
    sddmm_pattern_args,
    spmm_arg_bwd_op,
    spmm_op,
)
from .reference import _mkl_serves, mkl_one_head_sum, spmm_arg_bwd_ref, spmm_csr_ref, sum_reads_rows  # noqa: F401

REDUCES = ("sum", "mean", "max", "min")


def _values_t(graph: Graph, value: Optional[Tensor], value_t: Optional[Tensor]) -> Optional[Tensor]:
    """The weights of a sum's backward, in transposed-CSR slot order: the caller's ``value_t`` when it keeps
    one, else ``value`` gathered (:meth:`Graph.values_t`); None without weights."""
    return value_t if value_t is not None else None if value is None else graph.values_t(value)


def _backward_reads_rows(graph: Graph, x: Tensor, value: Optional[Tensor], reduce: str, need_x: bool) -> bool:
    """Whether the backward's sum of ``x``'s gradient over the transposed CSR reads that CSR's slot rows."""
    return (need_x and reduce in ("sum", "mean") and not use_triton("spmm", x)
            and sum_reads_rows(x, graph.num_edges, value is not None))


def check_reduce(reduce: str) -> None:
    if reduce not in REDUCES:
        raise ValueError(f"reduce={reduce!r} is not supported; use one of {REDUCES}")


def _sum_through_transpose(graph: Graph, vt: Optional[Tensor], g: Tensor) -> Tensor:
    """``A^T g`` over ``graph``'s transposed CSR (``vt``: its weights ``[E, H]`` or None) in plain differentiable torch
    ops: the backward of a sum under ``create_graph=True`` (second derivatives), not a fast path."""
    col_t, rows_t, num_src = graph.transpose()[1], graph.transpose_rows(), graph.num_src
    msg = g.index_select(0, col_t)
    if vt is not None:  # [E, H] (or [E]) weights against [E, H, F] messages; E may be 0
        v = vt.to(g.dtype)
        msg = msg * (v.unsqueeze(-1) if v.dim() == 2 else v.reshape(v.size(0), 1, 1))
    return torch.zeros((num_src, *g.shape[1:]), dtype=g.dtype, device=g.device).index_add(0, rows_t, msg)


def _spmm_backward_graph(ctx, grad_out: Tensor) -> object:
    """:class:`SpMMFunction`'s backward as differentiable torch ops (``first_order_only``); max / min through the
    reference's routing to the extrema (plain torch: the tie mask is constant, the split as the first-order one)."""
    graph: Graph = ctx.graph
    x, value = ctx.saved_tensors
    if ctx.reduce in ("max", "min"):
        gx, gv = spmm_arg_bwd_ref(graph.rowptr, graph.col, value, x, grad_out, ctx.reduce, graph.row)
        return None, gx if ctx.needs_input_grad[1] else None, gv if ctx.needs_input_grad[2] else None, None, None
    g = grad_out
    if ctx.reduce == "mean":
        g = g / graph.in_degree().clamp(min=1).to(g.dtype).view(-1, 1, 1)
    gx = gv = None
    if ctx.needs_input_grad[1]:
        vt = None
        if value is not None:  # the slot-order weights in transposed slot order, differentiably
            vt = value.index_select(0, ctx.t[2])
        gx = _sum_through_transpose(graph, vt, g)
    if ctx.needs_input_grad[2]:
        gv = (g.index_select(0, graph.row) * x.to(g.dtype).index_select(0, graph.col)).sum(-1)
    return None, gx, gv, None, None


def _cpu_sum_backward_graph(ctx, grad_out: Tensor) -> object:
    """:class:`CpuSumFunction`'s backward as differentiable torch ops (``first_order_only``)."""
    g = grad_out if ctx.scale is None else grad_out * ctx.scale.to(grad_out.dtype).view(-1, 1, 1)
    return None, _sum_through_transpose(ctx.graph, ctx.vt, g), None, None, None


class SpMMFunction(torch.autograd.Function):
    """Autograd of CSR SpMM.  Backward: features through the transposed CSR (no atomics),
    edge weights through SDDMM, max/min split evenly among the tied extrema (as PyG).

    Everything the backward reads from the graph (transpose, SDDMM pattern) is fetched in
    forward, so a backward never builds graph state (which ``torch.compile`` forbids there)."""

    @staticmethod
    def forward(ctx, graph: Graph, x: Tensor, value: Optional[Tensor], reduce: str,
                value_t: Optional[Tensor] = None) -> Tensor:
        plan = kernel_plan(graph, "spmm", x)
        # each slot's row, where the torch path reads it (max / min off the CPU, multi-head sums: sum_reads_rows);
        # not passed to a one-head sum (GCN's), whose compiled call then takes one input fewer
        out = spmm_op(graph.rowptr, graph.col, value, x, reduce, *plan,
                      row=graph.row if reduce in ("max", "min") or x.size(1) > 1 else None)
        ctx.graph = graph
        ctx.reduce = reduce
        ctx.value_t = value_t
        # the torch path's sum over the transposed CSR reads its slot rows in one case (sum_reads_rows)
        ctx.row_t = graph.transpose_rows() if _backward_reads_rows(graph, x, value, reduce, ctx.needs_input_grad[1]) \
            else None
        if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
            ctx.t = graph.transpose()
            # the transposed CSR's plan: for x's gradient and the max/min backward (not for value's SDDMM)
            need_t = ctx.needs_input_grad[1] or reduce in ("max", "min")
            ctx.plans = (*plan, *(kernel_plan(graph, "spmm", x, transposed=True) if need_t else NO_PLAN))
        if ctx.needs_input_grad[2] and reduce not in ("max", "min"):
            ctx.pattern = sddmm_pattern_args(graph)
        ctx.save_for_backward(x, value)
        return out

    @staticmethod
    @first_order_only(differentiable=_spmm_backward_graph)
    def backward(ctx, grad_out: Tensor) -> Tuple[Optional[Tensor], ...]:
        graph: Graph = ctx.graph
        x, value = ctx.saved_tensors
        need_x, need_v = ctx.needs_input_grad[1], ctx.needs_input_grad[2]
        grad_out = grad_out.contiguous()
        rowptr_t, col_t, perm_t = ctx.t
        if ctx.reduce in ("max", "min"):
            gx, gv = spmm_arg_bwd_op(graph.rowptr, graph.col, graph.row, value, x, grad_out, ctx.reduce,
                                     rowptr_t, col_t, perm_t, *ctx.plans)
            return None, gx if need_x else None, gv if need_v else None, None, None
        if ctx.reduce == "mean":
            if value is None and grad_out.size(1) == 1 and grad_out.dtype != torch.float64 \
                    and not torch.compiler.is_compiling():
                # the gradient times 1 / degree, then an unweighted SpMM through the transposed CSR: the edge-list
                # path's products and sums (Graph.mean_scale), the same bits on any CPU
                g = grad_out * graph.mean_scale().to(grad_out.dtype).view(-1, 1, 1)
                gx = spmm_op(rowptr_t, col_t, None, g, "sum", *ctx.plans[2:]) if need_x else None
                return None, gx, None, None, None
            deg = graph.in_degree().clamp(min=1).to(grad_out.dtype)
            grad_out = grad_out / deg.view(-1, 1, 1)
        gx = gv = None
        if need_x:
            vt = _values_t(graph, value, ctx.value_t)
            gx = spmm_op(rowptr_t, col_t, vt, grad_out, "sum", *ctx.plans[2:], row=ctx.row_t)
        if need_v:
            gv = sddmm_op(graph.rowptr, graph.col, graph.row, grad_out, x.to(grad_out.dtype).contiguous(),
                          *ctx.pattern)
        return None, gx, gv, None, None


class CpuSumFunction(torch.autograd.Function):
    """:class:`SpMMFunction` for the eager CPU calls MKL serves (:func:`_cpu_direct`): sum, or mean without
    weights, of one head, the same products in the same order as the op path (MKL's; the mean's forward is
    ``torch.sparse.mm``'s, as there): bit-identical results, forward and backward, without the op layer's
    per-call dispatch (the backend choice, the custom-op gate, the reference's generic reshapes and checks),
    which on a small graph costs more than the product (MUTAG batches of 32 graphs, A/B runs of
    ``benchmarks/minibatch_layers.py``: GIN 0.66-0.72 -> 0.70-0.78 of PyG's speed, GCN 0.80-0.97 -> 0.87-1.09)."""

    @staticmethod
    def forward(ctx, graph: Graph, x: Tensor, value: Optional[Tensor], reduce: str,
                value_t: Optional[Tensor] = None) -> Tensor:
        if reduce == "mean":  # the reference's product; detached: a view would forbid the layers' in-place epilogues
            out = spmm_csr_ref(graph.rowptr, graph.col, None, x, "mean").detach()
        else:
            out = mkl_one_head_sum(graph.rowptr, graph.col, value, x)
        if ctx.needs_input_grad[1]:
            ctx.graph, ctx.t = graph, graph.transpose()
            ctx.vt = None if reduce == "mean" else _values_t(graph, value, value_t)
            ctx.scale = graph.mean_scale() if reduce == "mean" else None
        return out

    @staticmethod
    @first_order_only(differentiable=_cpu_sum_backward_graph)
    def backward(ctx, grad_out: Tensor) -> Tuple[Optional[Tensor], ...]:
        rowptr_t, col_t, _ = ctx.t
        vt = None if ctx.vt is None else ctx.vt.to(grad_out.dtype)
        if ctx.scale is not None:  # the mean: the gradient times 1 / degree, then the unweighted sum (as the op path)
            grad_out = grad_out * ctx.scale.to(grad_out.dtype).view(-1, 1, 1)
        return None, mkl_one_head_sum(rowptr_t, col_t, vt, grad_out), None, None, None


def _cpu_direct(graph: Graph, x: Tensor, value: Optional[Tensor], reduce: str) -> bool:
    """Whether :class:`CpuSumFunction` serves this :func:`spmm_slots` call: eager (no transform active,
    :func:`~gnnkit.ops._custom_op.transforms_active`), a plain tensor MKL's kernel takes (:func:`_mkl_serves`:
    CPU, float32/float64, at most 64 features, int32 extents) with one head and at least one edge, the torch
    backend (``GNNKIT_BACKEND=triton`` runs the kernels), no autocast; ``sum`` with weights that need no
    gradient (their gradient is an SDDMM: :class:`SpMMFunction`) or none, or float32 ``mean`` without weights.
    Everything else takes :class:`SpMMFunction`."""
    if type(x) is not Tensor or x.device.type != "cpu" or x.size(1) != 1 or graph.num_edges == 0 \
            or transforms_active() or not _mkl_serves(x, x.size(2), x.size(0), graph.num_dst, graph.num_edges):
        return False
    if reduce == "mean":
        if value is not None or x.dtype != torch.float32:
            return False
    elif reduce != "sum" or value is not None and (type(value) is not Tensor or value.requires_grad
                                                   or value.dtype != x.dtype or value.dim() != 2):
        return False
    return not torch.is_autocast_enabled("cpu") and not use_triton("spmm", x)


def spmm_slots(graph: Graph, x: Tensor, value: Optional[Tensor] = None, reduce: str = "sum",
               value_t: Optional[Tensor] = None) -> Tensor:
    """SpMM with ``x`` ``[S, H, F]`` and ``value`` ``[E, H]`` already in CSR slot order -> ``[N, H, F]``.

    ``value_t``: ``value`` in transposed-CSR slot order, when the caller keeps it (constant weights kept
    in the graph's derived state, e.g. GCN's normalisation); the backward otherwise gathers it."""
    check_rows(x, graph.num_src, "x", "source nodes")
    check_rows(value, graph.num_edges, "value", "edges")
    check_reduce(reduce)
    if x.dim() != 3:
        raise ValueError(f"spmm_slots: x must be [num_src, H, F], got {list(x.shape)}; fix: x.unsqueeze(1) for one "
                         "head (or the public spmm, which takes [N, F])")
    if value is not None and (value.dim() != 2 or value.size(1) != x.size(1)):
        raise ValueError(f"spmm_slots: value must be [E={graph.num_edges}, H={x.size(1)}] (one weight per slot and "
                         f"head of x), got {list(value.shape)}; fix: value.view(-1, 1) for one head")
    value = None if value is None else value.contiguous()  # the kernels' contract (the torch path reads any)
    if _cpu_direct(graph, x, value, reduce):
        return apply_function(CpuSumFunction, graph, x.contiguous(), value, reduce, value_t)
    graph.prepare_backward(x, value, sddmm=value is not None and value.requires_grad and reduce not in ("max", "min"),
                           transpose_rows=_backward_reads_rows(graph, x, value, reduce, x.requires_grad))
    return apply_function(SpMMFunction, graph, x.contiguous(), value, reduce, value_t)


# message values (edges x features) up to which an edge_index is summed without a CSR (:func:`coo_sum`)
COO_SUM_MAX = 1 << 17
_COO_DTYPES = {False: (torch.float32, torch.float64), True: (torch.float32,)}  # x's dtypes it serves: sum; mean
_COO_COUNT_DIRECT = 4096  # edges up to which coo_sum's mean counts the in-degrees on every call


def _coo_mean(edge_index: Tensor, x: Tensor, num_dst: int, deg: Tensor) -> Tensor:
    """``x[src]`` summed into ``dst`` by ``index_add_``, divided by ``deg``: :class:`CooSumFunction`'s forward."""
    src, dst = edge_index.unbind(0)
    out = x.new_zeros(num_dst, x.size(1)).index_add_(0, dst, x.index_select(0, src))
    return out.div_(deg.to(out.dtype).view(-1, 1))


class CooSumFunction(torch.autograd.Function):
    """:func:`coo_sum`'s mean: ``x[src]`` summed into ``dst`` by ``index_add_``, divided by the clamped float32
    in-degree ``deg``, as ``torch.sparse.mm(reduce="mean")`` does; backward: the gradient times the reciprocal
    in-degree (as the CSR path's transposed weights), gathered at ``dst`` and summed into ``src``."""

    @staticmethod
    def forward(ctx, edge_index: Tensor, x: Tensor, num_dst: int, deg: Tensor) -> Tensor:
        out = _coo_mean(edge_index, x, num_dst, deg)
        if ctx.needs_input_grad[1]:
            # a private copy, as the CSR path's graph is: the backward follows the forward's edges whatever
            # happens to edge_index meanwhile (an in-place edit; one made under inference mode can be kept too)
            ctx.pairs, ctx.inv, ctx.num_src = edge_index.clone(), 1.0 / deg, x.size(0)
        return out

    @staticmethod
    def backward(ctx, grad_out: Tensor) -> Tuple[Optional[Tensor], ...]:
        # plain torch ops on a fresh tensor: differentiable as it is (second derivatives under create_graph=True)
        src, dst = ctx.pairs.unbind(0)
        g = grad_out * ctx.inv.to(grad_out.dtype).view(-1, 1)
        gx = g.new_zeros(ctx.num_src, g.size(1)).index_add_(0, src, g.index_select(0, dst))
        return None, gx, None, None


def coo_sum(edge_index: Tensor, x: Tensor, num_src: int, num_dst: int, reduce: str = "sum") -> Optional[Tensor]:
    """The sum (or unweighted mean) of ``x`` ``[num_src, F]`` over the edges of a small ``edge_index`` without
    building a :class:`Graph`: ``[num_dst, F]``, or ``None`` where this does not apply (then the caller takes
    the CSR path).

    ``index_add_`` adds each destination's messages in input order, as PyG's scatter does, with no sort, no
    transpose and no MKL call — on a graph seen once (a mini-batch) those cost more than the product.  For an
    ``edge_index`` sorted by (source, destination) — a coalesced one, as PyG's TU datasets and their mini-batches
    hold — that is the CSR path's slot order, and each source's gradients come in increasing destination order,
    the transposed CSR's: results equal the CSR path's bit for bit (``tests/test_coo_sum.py``); in another
    order they agree with it to rounding.  The sum is plain autograd over a private copy of the ids (the
    backward follows the forward's edges whatever happens to ``edge_index`` meanwhile); the mean divides by the
    clamped in-degree in :class:`CooSumFunction`, whose backward multiplies by its float32 reciprocal as the CSR
    path does.  Applies in eager mode on CPU (no transform or dispatch mode, no autocast) to plain
    float32/float64 tensors (the mean: float32), at most 64 features, 1 to :data:`COO_SUM_MAX` message values;
    an id out of range raises :func:`as_graph`'s error, an unknown ``reduce`` or a node count that is not a
    non-negative int a ``ValueError`` naming it."""
    check_reduce(reduce)
    _check_count(num_src, "num_src", "coo_sum")
    _check_count(num_dst, "num_dst", "coo_sum")
    if reduce not in ("sum", "mean") or not edge_list_serves(edge_index, x, "spmm") or x.dim() != 2:
        return None
    F = x.size(1)
    if not 0 < edge_index.size(1) * F <= COO_SUM_MAX or F > 64 or x.size(0) != num_src \
            or x.dtype not in _COO_DTYPES[reduce == "mean"]:
        return None

    def run() -> Tensor:
        if reduce == "mean":
            count = lambda: in_degree(edge_index[1], num_dst, torch.float32).clamp_(min=1)  # noqa: E731
            # up to _COO_COUNT_DIRECT edges counting costs less than the cache's bookkeeping (on a mini-batch's
            # fresh edge_index every call misses it: MUTAG batches, 1,250 edges, 11 µs to count, 29 µs to count
            # and keep); above, the degrees are kept on the tensor and a reused edge_index recounts nothing
            deg = count() if edge_index.size(1) <= _COO_COUNT_DIRECT else cached_for(
                edge_index, ("coo_mean_degree", num_dst), count)
            if not (x.requires_grad and torch.is_grad_enabled()):  # nothing to record: no Function (a first
                return _coo_mean(edge_index, x.contiguous(), num_dst, deg)  # layer's call, an evaluation)
            return apply_function(CooSumFunction, edge_index, x.contiguous(), num_dst, deg)
        e = edge_index.clone()  # private ids, which autograd keeps for the backward
        return x.new_zeros(num_dst, F).index_add_(0, e[1], x.index_select(0, e[0]))
    return with_named_id_errors(run, edge_index, num_src, num_dst)


COO_GCN_MAX = 1 << 18
COO_GCN_MAX_EDGES = 1 << 12


def coo_gcn_sum(edge_index: Tensor, x: Tensor, add_self_loops: bool = True) -> Optional[Tensor]:
    r"""GCN's normalised sum :math:`\hat D^{-1/2} \hat A \hat D^{-1/2} x` (PyG's ``gcn_norm`` without edge weights:
    the input's loops dropped and one loop per node appended when ``add_self_loops``) over a small plain
    ``edge_index`` of ``x``'s ``[N, F]`` nodes without building a :class:`Graph`: ``[N, F]``, or ``None`` where this
    does not apply (then the caller takes the CSR path).

    The sum is PyG's: ``x[src] * w`` added into ``dst`` by ``index_add_``, plain autograd — on a mini-batch's
    ``edge_index`` cheaper than building the CSR and its transpose.  The edge list and weights are kept on the
    tensor (``cached_for``), so the layers after the first one of a batch, and a graph used again, rebuild
    nothing; on a small graph used every step with ``x`` needing a gradient the CSR path is faster (its backward
    is a product over the transpose it keeps, where this one is an ``index_add_`` into the sources, on one
    thread: 600 nodes / 1,300 edges, 64 features, 1.18 against 0.95 ms a step), which a :class:`Graph` input
    keeps.  The choice depends on the inputs alone, never on what is cached (a checkpointed layer recomputes the
    same path).  The sums run in input order, so results
    agree with the CSR path to rounding, not bit for bit.  Applies in eager mode on CPU (no transform or dispatch
    mode, no autocast, the torch backend) to plain float32/float64 tensors with 1 to :data:`COO_GCN_MAX_EDGES`
    edges ``E'`` (counting the loops) and at most :data:`COO_GCN_MAX` message values ``E' * F`` (beyond, MKL's
    multi-threaded product beats ``index_add_``); an id out of range raises :func:`as_graph`'s error."""
    if not edge_list_serves(edge_index, x, "spmm") or x.dim() != 2:
        return None
    (n, F), edges = x.shape, edge_index.size(1) + (x.size(0) if add_self_loops else 0)
    if not 0 < edges <= COO_GCN_MAX_EDGES or edges * F > COO_GCN_MAX or x.dtype not in (torch.float32, torch.float64):
        return None

    def run() -> Tensor:
        src, dst, w = cached_for(edge_index, ("coo_gcn", n, add_self_loops, x.dtype),
                                 lambda: _gcn_edges(edge_index, n, add_self_loops, x.dtype))
        return x.new_zeros(n, F).index_add_(0, dst, x.index_select(0, src) * w.view(-1, 1))
    return with_named_id_errors(run, edge_index, n, n)


def _gcn_edges(edge_index: Tensor, n: int, add_self_loops: bool, dtype: torch.dtype) -> Tuple[Tensor, Tensor, Tensor]:
    """``(src, dst, w)``: the edges with GCN's loops (:func:`loop_edges`) and ``deg[src]^-1/2 * deg[dst]^-1/2``
    (``deg``: in-degree with the loops; a node of degree 0 gives 0), as PyG's ``gcn_norm``."""
    src, dst = loop_edges(edge_index, n if add_self_loops else 0)
    dis = in_degree(dst, n, dtype).pow_(-0.5)
    dis.masked_fill_(dis == float("inf"), 0.0)
    return src, dst, dis.index_select(0, src) * dis.index_select(0, dst)


def _gather_backward_graph(ctx, grad: Tensor) -> object:
    """:class:`GatherFunction`'s backward as differentiable torch ops (``first_order_only``)."""
    index = ctx.graph.col if ctx.side == "src" else ctx.graph.row
    return None, grad.new_zeros((ctx.num_nodes, *grad.shape[1:])).index_add(0, index, grad), None


class GatherFunction(torch.autograd.Function):
    """``x[col]`` (``side="src"``) or ``x[row]`` (``side="dst"``): one row per CSR slot.  Backward: the
    slot gradients summed into their node by one SpMM over the transposed CSR (source side) or the
    CSR itself (destination side) — no scatter, no atomics, and opaque to ``torch.compile`` (whose
    generated scatter-add backward of a gather is several times slower on CPU)."""

    @staticmethod
    def forward(ctx, graph: Graph, x: Tensor, side: str) -> Tensor:
        ctx.graph, ctx.side, ctx.num_nodes = graph, side, x.size(0)
        if ctx.needs_input_grad[1]:
            ctx.index = graph.transpose()[::2] if side == "src" else (graph.rowptr, graph.slot_ids())
            ctx.plan = kernel_plan(graph, "spmm", x, transposed=side == "src")
        return x.index_select(0, graph.col if side == "src" else graph.row)

    @staticmethod
    @first_order_only(differentiable=_gather_backward_graph)
    def backward(ctx, grad: Tensor) -> Tuple[Optional[Tensor], ...]:
        rowptr, slots = ctx.index
        g3 = grad.reshape(grad.size(0), 1, math.prod(grad.shape[1:])).contiguous()
        out = spmm_op(rowptr, slots, None, g3, "sum", *ctx.plan)  # [num_nodes, 1, prod(trailing)]
        return None, out.reshape((ctx.num_nodes,) + tuple(grad.shape[1:])), None


def gather_slots(graph: Graph, x: Tensor, side: str = "src") -> Tensor:
    """Node rows per CSR slot: ``x[graph.col]`` (``side="src"``, the source of each slot) or
    ``x[graph.row]`` (``"dst"``), ``x`` ``[nodes, ...]`` -> ``[E, ...]``, with a scatter-free backward."""
    if side not in ("src", "dst"):
        raise ValueError(f"side must be 'src' or 'dst', got {side!r}")
    n = graph.num_src if side == "src" else graph.num_dst
    if x.dim() < 1 or x.size(0) != n:
        raise ValueError(f"x must have one row per {side} node ({n}), got shape {list(x.shape)}")
    graph.prepare_backward(x, transpose=side == "src", slot_ids=side == "dst")
    return apply_function(GatherFunction, graph, x, side)


def _relu_message_backward_graph(ctx, grad: Tensor) -> object:
    """:class:`ReluMessageFunction`'s backward as differentiable torch ops (``first_order_only``): the mask is
    constant (ReLU's second derivative is zero)."""
    (mask,) = ctx.saved_tensors
    g = grad * mask.to(grad.dtype)
    gx = None
    if ctx.needs_input_grad[1]:
        gx = g.new_zeros((ctx.num_nodes, *g.shape[1:])).index_add(0, ctx.col, g).to(ctx.x_dtype)
    return None, gx, g if ctx.needs_input_grad[2] else None


class ReluMessageFunction(torch.autograd.Function):
    """``relu(x[col] + edge_term)`` per CSR slot (GINE's message); saves a bool mask, not the messages."""

    @staticmethod
    def forward(ctx, graph: Graph, x: Tensor, edge_term: Tensor) -> Tensor:
        out, mask = relu_message_op(x, graph.col, edge_term)
        ctx.num_nodes, ctx.x_dtype, ctx.col = x.size(0), x.dtype, graph.col
        ctx.t = graph.transpose() if ctx.needs_input_grad[1] else None
        ctx.plan_t = kernel_plan(graph, "spmm", x, transposed=True) if ctx.t is not None else None
        ctx.save_for_backward(mask)
        return out

    @staticmethod
    @first_order_only(differentiable=_relu_message_backward_graph)
    def backward(ctx, grad: Tensor) -> Tuple[Optional[Tensor], ...]:
        (mask,) = ctx.saved_tensors
        if ctx.t is None:  # only edge_term needs a gradient
            return None, None, relu_message_mask_bwd_op(grad, mask)
        rowptr_t, _, perm_t = ctx.t
        gx, ge = relu_message_bwd_op(grad.contiguous(), mask, rowptr_t, perm_t, ctx.num_nodes, ctx.x_dtype,
                                     *ctx.plan_t)
        return None, gx, ge if ctx.needs_input_grad[2] else None


def relu_message_slots(graph: Graph, x: Tensor, edge_term: Tensor) -> Tensor:
    """GINE's messages ``relu(x[src] + edge_term)`` per CSR slot: ``x`` ``[num_src, ...]``,
    ``edge_term`` ``[E, ...]`` in CSR slot order -> ``[E, ...]``.  Backward without a scatter (one SpMM over
    the transposed CSR) and a 1-byte mask saved instead of the ``[E, F]`` messages."""
    if x.size(0) != graph.num_src or edge_term.size(0) != graph.num_edges or x.shape[1:] != edge_term.shape[1:]:
        raise ValueError(f"x must be [num_src={graph.num_src}, F] and edge_term [E={graph.num_edges}, F] with the "
                         f"same F, got {list(x.shape)} and {list(edge_term.shape)}")
    graph.prepare_backward(x)
    return apply_function(ReluMessageFunction, graph, x.contiguous(), edge_term.contiguous())


def spmm(graph: Graph, x: Tensor, edge_weight: Optional[Tensor] = None, reduce: str = "sum") -> Tensor:
    """Aggregate ``x`` over incoming edges: ``out[i] = reduce_{j->i} w_ji * x[j]``.

    Args:
        graph: from :func:`gnnkit.ops.as_graph`.
        x: ``[num_src, F]``, or ``[num_src, H, F]`` for per-head weights.
        edge_weight: ``None``, ``[E]``, or ``[E, H]`` (with 3-D ``x``), in the input edge order.
        reduce: ``"sum"``, ``"mean"``, ``"max"`` or ``"min"``.

    Returns:
        ``[num_dst, F]`` (or ``[num_dst, H, F]``).
    """
    check_op_inputs("spmm", graph, floating=("x", "edge_weight"), x=x, edge_weight=edge_weight)
    check_reduce(reduce)
    if x.dim() not in (2, 3) or x.size(0) != graph.num_src:
        raise ValueError(f"x must have shape [num_src={graph.num_src}, F] or [num_src, H, F], "
                         f"got {list(x.shape)}; check that x matches the graph's node count")
    x3 = x.unsqueeze(1) if x.dim() == 2 else x
    value = None
    if edge_weight is not None:
        H = x3.size(1)
        if edge_weight.dim() == 0 or edge_weight.size(0) != graph.num_edges or edge_weight.dim() > 2 or \
                (edge_weight.dim() == 2 and edge_weight.size(1) != H):
            raise ValueError(f"edge_weight must have shape [E={graph.num_edges}]"
                             f"{'' if H == 1 else f' or [E, H={H}]'}, got {list(edge_weight.shape)}; "
                             "pass one weight per edge of edge_index")
        value = graph.to_csr_order(edge_weight)
        value = value.view(-1, 1).expand(-1, H) if value.dim() == 1 else value
        value = value.to(x.dtype).contiguous()
    out = spmm_slots(graph, x3, value, reduce)
    return out.squeeze(1) if x.dim() == 2 else out
