r"""SDDMM: one dot product per edge, sampled on the graph's sparsity pattern.

.. math::
    s_{e,h} = \langle \mathbf{a}_{i,h}, \mathbf{b}_{j,h} \rangle \quad \text{for } e = (j \to i)

:func:`sddmm` returns the input edge order; :func:`sddmm_slots` takes ``a`` ``[N, H, F]``
(destination side) and ``b`` ``[S, H, F]`` (source side) and returns ``[E, H]`` in CSR slot
order.  Kernel contract: :func:`gnnkit.ops.primitives.sddmm_op`.
"""
from typing import Optional, Tuple

import torch
from torch import Tensor

from ._autograd import apply_function, first_order_only
from .graph import Graph, check_op_inputs, check_rows
from .primitives import kernel_plan, sddmm_op, sddmm_pattern_args, spmm_op
from .reference import sddmm_csr_ref  # noqa: F401  (re-exported: the op's reference)


class SDDMMFunction(torch.autograd.Function):
    """Autograd of SDDMM: both gradients are SpMMs with the incoming gradient as edge values."""

    @staticmethod
    def forward(ctx, graph: Graph, a: Tensor, b: Tensor) -> Tensor:
        ctx.graph = graph
        if ctx.needs_input_grad[1]:
            ctx.plan = kernel_plan(graph, "spmm", a)
        if ctx.needs_input_grad[2]:
            ctx.t = graph.transpose()
            ctx.plan_t = kernel_plan(graph, "spmm", a, transposed=True)
        ctx.save_for_backward(a, b)
        return sddmm_op(graph.rowptr, graph.col, graph.row, a, b, *sddmm_pattern_args(graph))

    @staticmethod
    @first_order_only
    def backward(ctx, grad: Tensor) -> Tuple[Optional[Tensor], ...]:
        graph: Graph = ctx.graph
        a, b = ctx.saved_tensors
        grad = grad.contiguous().to(a.dtype)
        ga = gb = None
        if ctx.needs_input_grad[1]:
            ga = spmm_op(graph.rowptr, graph.col, grad, b, "sum", *ctx.plan)
        if ctx.needs_input_grad[2]:
            rowptr_t, col_t, perm_t = ctx.t
            gb = spmm_op(rowptr_t, col_t, grad.index_select(0, perm_t), a, "sum", *ctx.plan_t)
        return None, ga, gb


def sddmm_slots(graph: Graph, a: Tensor, b: Tensor) -> Tensor:
    """SDDMM on ``a`` ``[N, H, F]``, ``b`` ``[S, H, F]`` -> ``[E, H]`` in CSR slot order."""
    check_rows(a, graph.num_dst, "a", "destination nodes")
    check_rows(b, graph.num_src, "b", "source nodes")
    if a.dim() != b.dim() or a.shape[1:] != b.shape[1:]:
        raise ValueError(f"sddmm: a {list(a.shape)} and b {list(b.shape)} must agree past the node dimension "
                         "(the same heads H and width F)")
    sddmm_pattern_args(graph)  # here, not in the Function's forward: kept under torch.compile too
    graph.prepare_backward(b)
    return apply_function(SDDMMFunction, graph, a.contiguous(), b.to(a.dtype).contiguous())


def sddmm(graph: Graph, a: Tensor, b: Tensor) -> Tensor:
    """Per-edge dot products ``out[e] = <a[dst_e], b[src_e]>``.

    Args:
        graph: from :func:`gnnkit.ops.as_graph`.
        a: destination-side features ``[num_dst, F]`` or ``[num_dst, H, F]``.
        b: source-side features ``[num_src, F]`` or ``[num_src, H, F]``.

    Returns:
        ``[E]`` (or ``[E, H]``) in the input edge order.
    """
    check_op_inputs("sddmm", graph, floating=("a", "b"), a=a, b=b)
    if a.dim() != b.dim() or a.dim() not in (2, 3) or a.shape[1:] != b.shape[1:]:
        raise ValueError(f"a and b must both be [nodes, F] or [nodes, H, F] with equal trailing sizes, "
                         f"got a {list(a.shape)} and b {list(b.shape)}")
    if a.size(0) != graph.num_dst or b.size(0) != graph.num_src:
        raise ValueError(f"a must have num_dst={graph.num_dst} rows and b num_src={graph.num_src} rows, "
                         f"got {a.size(0)} and {b.size(0)}")
    a3 = a.unsqueeze(1) if a.dim() == 2 else a
    b3 = b.unsqueeze(1) if b.dim() == 2 else b
    out = graph.from_csr_order(sddmm_slots(graph, a3, b3))
    return out.squeeze(1) if a.dim() == 2 else out
