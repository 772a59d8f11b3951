r"""CSR segment reduction: reduce per-edge messages into their destination node.

.. math::
    \mathbf{y}_i = \bigoplus_{e \to i} \mathbf{m}_e,
    \qquad \oplus \in \{\text{sum}, \text{mean}, \text{max}, \text{min}\}

Used by layers whose messages depend on the edge (GINE, MPNN, edge readouts).
Rows without edges give 0 and no gradient; max/min split the gradient evenly among
the slots that attain the extremum (as torch's scatter amax/amin and PyG; deterministic).

:func:`segment_reduce` takes values in the input edge order; :func:`segment_reduce_slots`
``[E, ...]`` values in CSR slot order.  Kernel contract: :func:`gnnkit.ops.primitives.segment_op`.
"""
import math
from typing import Optional, Tuple

import torch
from torch import Tensor

from ._autograd import apply_function, first_order_only
from .graph import Graph, check_op_inputs
from .primitives import kernel_plan, segment_bwd_op, segment_op, spmm_op
from .reference import route_to_extrema, segment_reduce_bwd_ref, segment_reduce_ref  # noqa: F401

REDUCES = ("sum", "mean", "max", "min")


def _per_edge_grad(grad_out: Tensor, index: Tensor, rowptr: Tensor, reduce: str) -> object:
    """Each edge's gradient of a segment sum / mean, its destination's, as differentiable torch ops (the backward
    under ``create_graph=True``, ``first_order_only``); max / min: ``NotImplemented`` (they refuse)."""
    if reduce not in ("sum", "mean"):
        return NotImplemented
    g = grad_out
    if reduce == "mean":
        count = rowptr.diff().clamp(min=1).to(g.dtype)
        g = g / count.view((-1,) + (1,) * (g.dim() - 1))
    return g.index_select(0, index)


def _segment_backward_graph(ctx, grad_out: Tensor) -> object:
    grad = _per_edge_grad(grad_out, ctx.graph.row, ctx.graph.rowptr, ctx.reduce)
    return grad if grad is NotImplemented else (None, grad, None)


def _input_order_backward_graph(ctx, grad_out: Tensor) -> object:
    dst, rowptr = ctx.saved_tensors
    grad = _per_edge_grad(grad_out, dst, rowptr, ctx.reduce)
    return grad if grad is NotImplemented else (None, grad, None, None)


class SegmentReduceFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, graph: Graph, values: Tensor, reduce: str) -> Tensor:
        ctx.graph = graph
        ctx.reduce = reduce
        ctx.save_for_backward(values if reduce in ("max", "min") else values[:0])
        ctx.shape = values.shape
        ctx.plan = kernel_plan(graph, "segment", values)
        return segment_op(graph.rowptr, values, reduce, *ctx.plan, row=graph.row)

    @staticmethod
    @first_order_only(differentiable=_segment_backward_graph)
    def backward(ctx, grad_out: Tensor) -> Tuple[Optional[Tensor], ...]:
        (values,) = ctx.saved_tensors
        if ctx.reduce in ("sum", "mean"):
            values = values.new_empty(ctx.shape)  # only its shape/dtype is read
        graph: Graph = ctx.graph
        return None, segment_bwd_op(graph.rowptr, graph.row, values, grad_out.contiguous(), ctx.reduce,
                                    *ctx.plan), None


def _check(graph: Graph, values: Tensor, reduce: str) -> None:
    if reduce not in REDUCES:
        raise ValueError(f"reduce={reduce!r} is not supported; use one of {REDUCES}")
    if values.dim() < 1 or values.size(0) != graph.num_edges:
        raise ValueError(f"values must have one row per edge (E={graph.num_edges}), got {list(values.shape)}")
    if reduce != "sum" and not values.is_floating_point():
        raise ValueError(f"reduce={reduce!r} needs floating-point values, got {values.dtype}; fix: values.float()")


def segment_reduce_slots(graph: Graph, values: Tensor, reduce: str = "sum") -> Tensor:
    """Reduce per-slot ``values`` ``[E, ...]`` (CSR slot order) into ``[num_dst, ...]``."""
    _check(graph, values, reduce)
    if values.dtype == torch.bool:  # counts, as torch.sum of booleans gives (an OR otherwise)
        values = values.long()
    return apply_function(SegmentReduceFunction, graph, values.contiguous(), reduce)


class InputOrderSumFunction(torch.autograd.Function):
    """Sum / mean of per-edge values kept in the input edge order: an SpMM whose "columns" are the edges each
    CSR slot holds (``graph.perm``), so the values are read where they are, in CSR slot order (the same sums
    as reordering them first), with no ``[E, ...]`` copy in CSR order; the backward gathers each edge's
    gradient from its destination (one ``[E, ...]`` tensor, the gradient itself), where reordering would
    build the CSR-order gradient and then its input-order copy."""

    @staticmethod
    def forward(ctx, graph: Graph, values: Tensor, reduce: str, dst: Tensor) -> Tensor:
        E, rest = values.size(0), values.shape[1:]
        flat = values.reshape(E, 1, math.prod(rest)).contiguous()
        out = spmm_op(graph.rowptr, graph.perm, None, flat, reduce, *kernel_plan(graph, "spmm", flat))
        ctx.save_for_backward(dst, graph.rowptr)
        ctx.reduce = reduce
        # not a view (a view output would refuse the caller's in-place edits), traceable by torch.compile
        return torch.ops.aten._unsafe_view(out, (graph.num_dst,) + tuple(rest))

    @staticmethod
    @first_order_only(differentiable=_input_order_backward_graph)
    def backward(ctx, grad_out: Tensor) -> Tuple[Optional[Tensor], ...]:
        dst, rowptr = ctx.saved_tensors
        # the slots' backward with each edge's destination as its row: gathered straight into input order (16-bit
        # means divided in float32); values: only their dtype is read
        grad = segment_reduce_bwd_ref(rowptr, grad_out.new_empty(0), grad_out, ctx.reduce, dst)
        return None, grad, None, None


def segment_reduce(graph: Graph, values: Tensor, reduce: str = "sum") -> Tensor:
    """Reduce per-edge ``values`` ``[E, ...]`` (input edge order) into ``[num_dst, ...]``.  Sums and means of
    floating-point values read the values in place (:class:`InputOrderSumFunction`); max / min and integer
    sums reorder them into CSR slot order first."""
    check_op_inputs("segment_reduce", graph, values=values)
    _check(graph, values, reduce)  # before the reordering reads values
    if graph.perm is not None and reduce in ("sum", "mean") and values.is_floating_point() and values.dim() >= 1:
        # each edge's destination in input order, kept in the graph (fetched before apply: under torch.compile a
        # store inside a Function's forward is dropped)
        dst = graph.derived("dst_input_order", lambda: graph.from_csr_order(graph.row))
        return apply_function(InputOrderSumFunction, graph, values, reduce, dst)
    return segment_reduce_slots(graph, graph.to_csr_order(values), reduce)
