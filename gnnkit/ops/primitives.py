"""The registered custom ops (``torch.ops.gnnkit.*``): each runs its Triton kernel from
``gnnkit.kernels`` or its pure-torch reference from :mod:`.reference`.

This is the only module that reaches ``gnnkit.kernels``, always by an explicit import of
the op's launcher module inside the op (lazy: triton is imported only when a kernel is
launched).  The autograd Functions (:mod:`.spmm`, :mod:`.sddmm`, :mod:`.softmax`,
:mod:`.segment`, :mod:`.gat`) call these ops; being custom ops they are opaque to
``torch.compile``, which sees only their fake (shape) functions.  One structure op,
``gnnkit::sddmm_pattern``, lives in :mod:`.graph` with the pattern it builds.

Contracts (checked once more by the launchers): CSR slot order for every per-edge
tensor; ``x`` ``[S, H, F]`` contiguous; ``value``/scores ``[E, H]``; ``row`` is
:attr:`Graph.row` (the destination of each slot), passed so no kernel rebuilds it; ``plan``/
``plan_meta`` (``plan_t``/``plan_t_meta`` for the transposed CSR) are the graph's Triton row
schedule, built once and kept in the :class:`Graph` (:func:`kernel_plan`), ``None`` on the torch path.
"""
import math
import weakref
from collections import OrderedDict
from typing import List, Optional, Tuple

import torch
from torch import Tensor

from ._backend import use_triton
from ._custom_op import custom_op
from .graph import Graph
from .reference import (
    graph_attention_ref,
    node_sums_ref,
    sddmm_csr_ref,
    segment_reduce_bwd_ref,
    segment_reduce_ref,
    segment_softmax_bwd_ref,
    segment_softmax_ref,
    spmm_arg_bwd_ref,
    spmm_csr_ref,
)

# ---------------------------------------------------------------------- the graph's row schedule
Plan = Tuple[Optional[Tensor], Optional[List[int]]]
NO_PLAN: Plan = (None, None)
# a graph's CSR in a compiled region with no plan kept: the op builds the schedule itself, once per rowptr tensor
RUNTIME_PLAN: Plan = (None, [-1])


def kernel_plan(graph: Graph, op: str, like: Tensor, transposed: bool = False) -> Plan:
    """The Triton row schedule of ``graph``'s CSR (or of its transpose) for ``op`` on ``like``'s device,
    as ``(plan, plan_meta)`` for the custom ops: built once (one host sync) and kept in the graph, even
    under ``torch.inference_mode`` (it holds only int64 indices).  :data:`NO_PLAN` when ``op`` runs its
    torch reference, or in a compiled region on a graph no eager call planned (the launcher then builds
    one per call, inside its opaque op).  The split length is in ``plan_meta``: a changed
    ``GNNKIT_ROW_SPLIT`` replans in eager mode."""
    if not use_triton(op, like):
        return NO_PLAN
    key = ("kernel_plan", transposed)
    hit = graph.derived_or_none(key)
    if torch.compiler.is_compiling():
        return RUNTIME_PLAN if hit is None else hit
    from gnnkit.kernels import _config
    split_len = _config.row_split()
    if hit is None or hit[1][0] != split_len:
        rowptr = graph.transpose()[0] if transposed else graph.rowptr
        with torch.inference_mode(False):
            hit = _config.build_schedule(rowptr, split_len).pack(split_len)
        graph.keep(key, hit)
    return hit


# schedules built inside the ops when no plan came in, per rowptr tensor (see _schedule)
_RUNTIME_PLANS: "OrderedDict[tuple, tuple]" = OrderedDict()
_RUNTIME_PLANS_SIZE = 32


def _schedule(rowptr: Tensor, plan: Optional[Tensor], plan_meta: Optional[List[int]]):
    """The launcher's ``sched=``: from the graph's kept plan; None (the launcher builds one for the call) when
    no plan came in; for :data:`RUNTIME_PLAN` — a graph's CSR in a compiled region on a graph no eager call
    planned (:func:`kernel_plan` cannot build a plan while tracing: the build reads the degrees back to the
    host) — the schedule built here once per ``rowptr`` tensor and kept for the next call, which sees the same
    tensor (the graph's, or its kept transpose's).  Keyed by the tensor's identity, storage, version (an
    in-place edit invalidates) and the split length; held weakly (a dead ``rowptr``'s entry goes), at most 32.
    Only a graph's own CSR gets here, which :class:`Graph` treats as immutable (its kept plans rely on that
    too: an edit that bypasses the version counter, through ``.data`` or a numpy view, is not seen); a direct
    call of the op without a plan keeps building per call.  Inference tensors (no version counter) get a
    schedule per call.  Before, a compiled step on such a graph rebuilt it in every op call: one
    device-to-host sync each (on an H200, GCN at 200k nodes / 2M edges: compiled 2.05 ms against eager
    1.32 ms per step, the same 1.3 ms of device time)."""
    if plan_meta is None:
        return None
    from gnnkit.kernels import _config
    if list(plan_meta) != RUNTIME_PLAN[1]:
        return _config.Schedule.unpack(rowptr, plan, plan_meta)
    if rowptr.is_inference() or torch.compiler.is_compiling():
        return None
    split_len = _config.row_split()
    key = (id(rowptr), rowptr.data_ptr(), rowptr._version, rowptr.numel(), rowptr.device, split_len)
    hit = _RUNTIME_PLANS.get(key)
    if hit is not None and hit[0]() is rowptr:
        try:
            _RUNTIME_PLANS.move_to_end(key)
        except KeyError:  # another thread evicted it meanwhile (threads share the plans)
            pass
        return hit[1]
    with torch.inference_mode(False):
        sched = _config.build_schedule(rowptr, split_len)
    _RUNTIME_PLANS[key] = (weakref.ref(rowptr, lambda _, k=key: _RUNTIME_PLANS.pop(k, None)), sched)
    while len(_RUNTIME_PLANS) > _RUNTIME_PLANS_SIZE:
        try:
            _RUNTIME_PLANS.popitem(last=False)
        except KeyError:
            break
    return sched


# ---------------------------------------------------------------------- SpMM
@custom_op("gnnkit::spmm")
def spmm_op(rowptr: Tensor, col: Tensor, value: Optional[Tensor], x: Tensor, reduce: str,
            plan: Optional[Tensor] = None, plan_meta: Optional[List[int]] = None,
            row: Optional[Tensor] = None) -> Tensor:
    """``out[i] = reduce_{slots k of row i} value[k] * x[col[k]]`` -> ``[N, H, F]``.  ``row``: each slot's
    destination (:attr:`Graph.row`; :meth:`Graph.transpose_rows` for the transposed CSR), read by the torch path's
    max / min off the CPU and its multi-head sums of more than 64 values per slot (rebuilt when not given)."""
    if use_triton("spmm", x):
        from gnnkit.kernels import spmm as kernels
        return kernels.spmm_fwd(rowptr, col, value, x, reduce, sched=_schedule(rowptr, plan, plan_meta))
    out = spmm_csr_ref(rowptr, col, value, x, reduce, row)
    # a reshaped torch.sparse.mm result is a view; returned as one, autograd would forbid the
    # layers' in-place epilogues (bias, root term) on it.  No autograd runs in here.
    return out.detach() if out._is_view() else out


@spmm_op.register_fake
def _(rowptr, col, value, x, reduce, plan=None, plan_meta=None, row=None):
    return x.new_empty((rowptr.shape[0] - 1, x.shape[1], x.shape[2]))


@custom_op("gnnkit::spmm_arg_bwd")
def spmm_arg_bwd_op(rowptr: Tensor, col: Tensor, row: Tensor, value: Optional[Tensor], x: Tensor,
                    grad_out: Tensor, reduce: str, rowptr_t: Tensor, col_t: Tensor, perm_t: Tensor,
                    plan: Optional[Tensor] = None, plan_meta: Optional[List[int]] = None,
                    plan_t: Optional[Tensor] = None, plan_t_meta: Optional[List[int]] = None
                    ) -> Tuple[Tensor, Tensor]:
    """Backward of max/min SpMM: ``(grad_x, grad_value)``; ``grad_value`` is empty without ``value``."""
    if use_triton("spmm", x):
        from gnnkit.kernels import spmm as kernels
        gx, gv = kernels.spmm_arg_bwd(rowptr, col, value, x, grad_out, reduce, rowptr_t, col_t, perm_t, row=row,
                                      sched=_schedule(rowptr, plan, plan_meta),
                                      sched_t=_schedule(rowptr_t, plan_t, plan_t_meta))
    else:
        gx, gv = spmm_arg_bwd_ref(rowptr, col, value, x, grad_out, reduce, row)
    return gx, x.new_empty(0) if gv is None else gv


@spmm_arg_bwd_op.register_fake
def _(rowptr, col, row, value, x, grad_out, reduce, rowptr_t, col_t, perm_t, plan=None, plan_meta=None, plan_t=None,
      plan_t_meta=None):
    gv = x.new_empty(0) if value is None else value.new_empty(value.shape)
    return x.new_empty(x.shape), gv


# ---------------------------------------------------------------------- ReLU messages
_INT_OF_SIZE = {2: torch.int16, 4: torch.int32, 8: torch.int64}


def keep_where(grad: Tensor, mask: Tensor) -> Tensor:
    """``grad`` where the bool ``mask`` holds, else +0 — also where ``grad`` is inf or NaN, as torch's ReLU
    backward gives (a float product with the mask would give NaN there).  The float bits times the mask's 0/1
    as integers: as fast as multiplying by the mask viewed as uint8 (0.22 ms at 1,700 x 300, 0.48 ms at
    20,000 x 64 on this project's CPU), 2-5x faster than ``torch.where`` / ``masked_fill``."""
    it = _INT_OF_SIZE.get(grad.element_size())
    if it is None or not grad.is_floating_point():
        return torch.where(mask, grad, torch.zeros((), dtype=grad.dtype, device=grad.device))
    return (grad.view(it) * mask.view(torch.uint8)).view(grad.dtype)


@custom_op("gnnkit::relu_message")
def relu_message_op(x: Tensor, index: Tensor, edge_term: Tensor) -> Tuple[Tensor, Tensor]:
    """``(relu(x[index] + edge_term), mask)`` with ``mask = result != 0`` (bool, for the backward: torch's ReLU
    passes the gradient where ``result <= 0`` is false, a NaN message included, as PyG's GINE does): one
    fresh ``[E, F]`` buffer, worked in place.  Opaque to ``torch.compile``: inductor's generated CPU
    loops for this gather-add-ReLU were slower than aten's kernels (benchmarks/layers_compile.py)."""
    m = x.index_select(0, index)
    if m.dtype == torch.result_type(m, edge_term):
        m.add_(edge_term)
    else:  # mixed dtypes: torch's promotion
        m = m + edge_term
    m.relu_()
    return m, m != 0


@relu_message_op.register_fake
def _(x, index, edge_term):
    shape = (index.shape[0],) + tuple(x.shape[1:])
    out = x.new_empty(shape, dtype=torch.result_type(x, edge_term))
    return out, x.new_empty(shape, dtype=torch.bool)


@custom_op("gnnkit::relu_message_bwd")
def relu_message_bwd_op(grad: Tensor, mask: Tensor, rowptr_t: Tensor, perm_t: Tensor, num_nodes: int,
                        x_dtype: torch.dtype, plan_t: Optional[Tensor] = None,
                        plan_t_meta: Optional[List[int]] = None) -> Tuple[Tensor, Tensor]:
    """``(grad_x [num_nodes, F], grad_edge_term [E, F])``: the masked gradient, and its sum per source
    node through the transposed CSR (one SpMM, no scatter)."""
    ge = keep_where(grad, mask)
    gx = spmm_op(rowptr_t, perm_t, None, ge.to(x_dtype).reshape(ge.size(0), 1, math.prod(ge.shape[1:])).contiguous(),
                 "sum", plan_t, plan_t_meta)
    return gx.reshape((num_nodes,) + tuple(ge.shape[1:])), ge


@relu_message_bwd_op.register_fake
def _(grad, mask, rowptr_t, perm_t, num_nodes, x_dtype, plan_t=None, plan_t_meta=None):
    return grad.new_empty((num_nodes,) + tuple(grad.shape[1:]), dtype=x_dtype), torch.empty_like(grad)


@custom_op("gnnkit::relu_message_mask_bwd")
def relu_message_mask_bwd_op(grad: Tensor, mask: Tensor) -> Tensor:
    """:func:`keep_where` ``(grad, mask)``: the gradient of GINE's messages reaching the edge term alone (no node
    gradient asked for, e.g. a first layer).  Opaque to ``torch.compile``: inductor's CPU code for
    ``masked_fill(~mask, 0)`` spent 101 ms per step of a 2-layer GINE model (E = 200k, F = 64) negating the bool
    mask, against 1 ms in aten, and its ``grad * mask.view(uint8)`` took 131 ms against 49 ms."""
    return keep_where(grad, mask).contiguous()


@relu_message_mask_bwd_op.register_fake
def _(grad, mask):
    return torch.empty_like(grad, memory_format=torch.contiguous_format)


@custom_op("gnnkit::bias_grad")
def bias_grad_op(grad: Tensor) -> Tensor:
    """The gradient of a bias ``[F]`` added to a tensor ``[..., F]``: ``grad`` summed over every dimension but the
    last (aten's reduction).  Opaque to ``torch.compile``: inductor's CPU code for that column sum walks the whole
    tensor once per 8 columns (0.47 ms for a ``[20000, 64]`` float32 tensor on this project's CPU, against
    0.17 ms in aten), which cost a compiled GCN layer ~5 % of its training step."""
    return grad.sum(tuple(range(grad.dim() - 1)))


@bias_grad_op.register_fake
def _(grad):
    return grad.new_empty(grad.shape[-1:])


# ---------------------------------------------------------------------- SDDMM
def sddmm_pattern_args(graph: Graph) -> Tuple[Optional[Tensor], Optional[Tensor], Optional[Tensor]]:
    """The pattern arguments of :func:`~gnnkit.ops.primitives.sddmm_op`: the graph's duplicate-free
    SDDMM pattern, built once and kept in the graph (:meth:`Graph.sddmm_pattern`)."""
    if use_triton("sddmm", graph.col):  # the kernel needs no pattern: skip its host sync
        return None, None, None
    return graph.sddmm_pattern()


@custom_op("gnnkit::sddmm")
def sddmm_op(rowptr: Tensor, col: Tensor, row: Tensor, a: Tensor, b: Tensor, pattern_rowptr: Optional[Tensor],
             pattern_col: Optional[Tensor], pattern_gather: Optional[Tensor]) -> Tensor:
    """``out[k, h] = <a[row[k], h], b[col[k], h]>`` -> ``[E, H]``.  ``pattern_*``:
    :meth:`Graph.sddmm_pattern` for the torch path (``pattern_rowptr`` None: built here)."""
    if use_triton("sddmm", a):
        from gnnkit.kernels import sddmm as kernels
        return kernels.sddmm_fwd(rowptr, col, a, b, row=row)
    pattern = None
    if pattern_rowptr is not None:  # an empty gather (the compiled pattern op's): no duplicates
        gather = pattern_gather if pattern_gather is not None and pattern_gather.numel() else None
        pattern = (pattern_rowptr, pattern_col, gather)
    return sddmm_csr_ref(rowptr, col, a, b, pattern, row)


@sddmm_op.register_fake
def _(rowptr, col, row, a, b, pattern_rowptr, pattern_col, pattern_gather):
    return a.new_empty((col.shape[0], a.shape[1]))


# ---------------------------------------------------------------------- edge softmax
@custom_op("gnnkit::segment_softmax")
def softmax_op(rowptr: Tensor, row: Tensor, logits: Tensor, plan: Optional[Tensor] = None,
               plan_meta: Optional[List[int]] = None) -> Tensor:
    if use_triton("softmax", logits):
        from gnnkit.kernels import softmax as kernels
        return kernels.segment_softmax_fwd(rowptr, logits, row=row, sched=_schedule(rowptr, plan, plan_meta))
    return segment_softmax_ref(rowptr, row, logits)


@softmax_op.register_fake
def _(rowptr, row, logits, plan=None, plan_meta=None):
    return torch.empty_like(logits)


@custom_op("gnnkit::segment_softmax_bwd")
def softmax_bwd_op(rowptr: Tensor, row: Tensor, p: Tensor, grad: Tensor, plan: Optional[Tensor] = None,
                   plan_meta: Optional[List[int]] = None) -> Tensor:
    if use_triton("softmax", p):
        from gnnkit.kernels import softmax as kernels
        return kernels.segment_softmax_bwd(rowptr, p, grad, row=row, sched=_schedule(rowptr, plan, plan_meta))
    return segment_softmax_bwd_ref(rowptr, row, p, grad)


@softmax_bwd_op.register_fake
def _(rowptr, row, p, grad, plan=None, plan_meta=None):
    return torch.empty_like(p)


# ---------------------------------------------------------------------- per-slot values onto nodes
# An op (torch only) so that a compiled GAT backward calls the eager reduction: inductor's lowering of
# index_add_ is ~2.5x slower than aten's on CPU (5.3 vs 1.9 ms at E=220k, H=8, 2 threads).
@custom_op("gnnkit::node_sums")
def node_sums_op(g: Tensor, rowptr: Tensor, row: Tensor, col: Tensor, rowptr_t: Optional[Tensor],
                 perm_t: Optional[Tensor], num_src: int, need_src: bool, need_dst: bool) -> Tuple[Tensor, Tensor]:
    return node_sums_ref(g, rowptr, row, col, rowptr_t, perm_t, num_src, need_src, need_dst)


@node_sums_op.register_fake
def _(g, rowptr, row, col, rowptr_t, perm_t, num_src, need_src, need_dst):
    rest = tuple(g.shape[1:])
    return (g.new_empty((num_src if need_src else 0,) + rest),
            g.new_empty((rowptr.shape[0] - 1 if need_dst else 0,) + rest))


# ---------------------------------------------------------------------- segment reduction
@custom_op("gnnkit::segment_reduce")
def segment_op(rowptr: Tensor, values: Tensor, reduce: str, plan: Optional[Tensor] = None,
               plan_meta: Optional[List[int]] = None, row: Optional[Tensor] = None) -> Tensor:
    if use_triton("segment", values):
        from gnnkit.kernels import segment as kernels
        return kernels.segment_reduce_fwd(rowptr, values, reduce, sched=_schedule(rowptr, plan, plan_meta))
    return segment_reduce_ref(rowptr, values, reduce, row)


@segment_op.register_fake
def _(rowptr, values, reduce, plan=None, plan_meta=None, row=None):
    return values.new_empty((rowptr.shape[0] - 1,) + tuple(values.shape[1:]))


@custom_op("gnnkit::segment_reduce_bwd")
def segment_bwd_op(rowptr: Tensor, row: Tensor, values: Tensor, grad_out: Tensor, reduce: str,
                   plan: Optional[Tensor] = None, plan_meta: Optional[List[int]] = None) -> Tensor:
    if use_triton("segment", values):
        from gnnkit.kernels import segment as kernels
        return kernels.segment_reduce_bwd(rowptr, values, grad_out, reduce, row=row,
                                          sched=_schedule(rowptr, plan, plan_meta))
    return segment_reduce_bwd_ref(rowptr, values, grad_out, reduce, row)


@segment_bwd_op.register_fake
def _(rowptr, row, values, grad_out, reduce, plan=None, plan_meta=None):
    return torch.empty_like(values)


# ---------------------------------------------------------------------- fused GAT (Triton only)
@custom_op("gnnkit::gat_fused")
def gat_fused_op(rowptr: Tensor, col: Tensor, x: Tensor, a_src: Tensor, a_dst: Tensor,
                 edge_term: Optional[Tensor], negative_slope: float, plan: Optional[Tensor] = None,
                 plan_meta: Optional[List[int]] = None) -> Tuple[Tensor, Tensor, Tensor]:
    """``(out [N, H, F], row max m [N, H] fp32, row sum z [N, H] fp32)``; ``edge_term`` in CSR slot order."""
    from gnnkit.kernels import gat as kernels
    return kernels.gat_fwd(rowptr, col, x, a_src, a_dst, edge_term, negative_slope,
                           sched=_schedule(rowptr, plan, plan_meta))


@gat_fused_op.register_fake
def _(rowptr, col, x, a_src, a_dst, edge_term, negative_slope, plan=None, plan_meta=None):
    N = rowptr.shape[0] - 1
    stats = x.new_empty((N, x.shape[1]), dtype=torch.float32)
    return x.new_empty((N, x.shape[1], x.shape[2])), stats, torch.empty_like(stats)


@custom_op("gnnkit::gat_fused_bwd")
def gat_fused_bwd_op(rowptr: Tensor, col: Tensor, row: Tensor, rowptr_t: Tensor, col_t: Tensor, perm_t: Tensor,
                     x: Tensor, a_src: Tensor, a_dst: Tensor, edge_term: Optional[Tensor], out: Tensor, m: Tensor,
                     z: Tensor, grad_out: Tensor, negative_slope: float, plan: Optional[Tensor] = None,
                     plan_meta: Optional[List[int]] = None, plan_t: Optional[Tensor] = None,
                     plan_t_meta: Optional[List[int]] = None) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(grad_x, grad_a_src, grad_a_dst, grad_edge_term)``; the last is empty without ``edge_term``."""
    from gnnkit.kernels import gat as kernels
    gx, gs, gd, gt = kernels.gat_bwd(rowptr, col, rowptr_t, col_t, perm_t, x, a_src, a_dst, edge_term, out, m, z,
                                     grad_out, negative_slope, row=row, sched=_schedule(rowptr, plan, plan_meta),
                                     sched_t=_schedule(rowptr_t, plan_t, plan_t_meta))
    return gx, gs, gd, x.new_empty(0) if gt is None else gt


@gat_fused_bwd_op.register_fake
def _(rowptr, col, row, rowptr_t, col_t, perm_t, x, a_src, a_dst, edge_term, out, m, z, grad_out, negative_slope,
      plan=None, plan_meta=None, plan_t=None, plan_t_meta=None):
    gt = x.new_empty(0) if edge_term is None else torch.empty_like(edge_term)
    return torch.empty_like(x), torch.empty_like(a_src), torch.empty_like(a_dst), gt


# ---------------------------------------------------------------------- dense per-graph attention
@custom_op("gnnkit::graph_attention")
def graph_attention_op(q: Tensor, k: Tensor, v: Tensor, num_nodes: Tensor, dist: Optional[Tensor],
                       bias: Optional[Tensor], adjacency: bool, scale: float) -> Tensor:
    """Attention within each padded graph (Graphormer's spatial bias, optional adjacency mask), the torch
    reference (the Triton path is :func:`graph_attention_fused_op`)."""
    with torch.no_grad():
        return graph_attention_ref(q, k, v, num_nodes, dist, bias, adjacency, scale)


@graph_attention_op.register_fake
def _(q, k, v, num_nodes, dist, bias, adjacency, scale):
    return q.new_empty(q.shape)


@custom_op("gnnkit::graph_attention_fused")
def graph_attention_fused_op(q: Tensor, k: Tensor, v: Tensor, num_nodes: Tensor, dist: Optional[Tensor],
                             bias: Optional[Tensor], adjacency: bool, scale: float) -> Tuple[Tensor, Tensor]:
    """``(out, lse)``: the fused Triton kernel, which never stores the ``[B, H, N, N]`` scores, and each row's
    log-sum-exp ``[B, H, N]`` fp32 for :func:`graph_attention_fused_bwd_op`."""
    from gnnkit.kernels import graph_attention as kernels
    return kernels.graph_attention_fwd(q, k, v, num_nodes, dist, bias, adjacency, scale, True)


@graph_attention_fused_op.register_fake
def _(q, k, v, num_nodes, dist, bias, adjacency, scale):
    return q.new_empty(q.shape), q.new_empty(q.shape[:3], dtype=torch.float32)


@custom_op("gnnkit::graph_attention_fused_bwd")
def graph_attention_fused_bwd_op(q: Tensor, k: Tensor, v: Tensor, num_nodes: Tensor, dist: Optional[Tensor],
                                 bias: Optional[Tensor], adjacency: bool, scale: float, out: Tensor, lse: Tensor,
                                 grad_out: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(dq, dk, dv, dbias)`` by the fused backward kernels (P recomputed per tile from ``lse``); ``dbias``
    ``[H, buckets]`` fp32, empty without a bias."""
    from gnnkit.kernels import graph_attention as kernels
    dq, dk, dv, db = kernels.graph_attention_bwd(q, k, v, num_nodes, dist, bias, adjacency, scale, out, lse,
                                                 grad_out)
    return dq, dk, dv, (q.new_empty(0, dtype=torch.float32) if db is None else db)


@graph_attention_fused_bwd_op.register_fake
def _(q, k, v, num_nodes, dist, bias, adjacency, scale, out, lse, grad_out):
    db = q.new_empty(0, dtype=torch.float32) if bias is None else bias.new_empty(bias.shape, dtype=torch.float32)
    return q.new_empty(q.shape), k.new_empty(k.shape), v.new_empty(v.shape), db
