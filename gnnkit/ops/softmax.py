r"""Edge softmax: normalise per-edge scores over each destination's incoming edges.

.. math::
    \alpha_{e,h} = \frac{\exp(s_{e,h} - m_{i,h})}{\sum_{e' \to i} \exp(s_{e',h} - m_{i,h})},
    \qquad m_{i,h} = \max_{e' \to i} s_{e',h}

Backward: :math:`\partial s = \alpha \odot (\partial\alpha - \sum_{e' \to i} \alpha_{e'} \partial\alpha_{e'})`.

:func:`segment_softmax` takes scores in the input edge order; :func:`segment_softmax_slots`
``[E, H]`` scores in CSR slot order.  Kernel contract: :func:`gnnkit.ops.primitives.softmax_op`.
"""
from typing import Optional, Tuple

import torch
from torch import Tensor

from ._autograd import apply_function, first_order_only
from .graph import Graph, check_op_inputs, check_rows
from .primitives import kernel_plan, softmax_bwd_op, softmax_op
from .reference import segment_softmax_bwd_ref, segment_softmax_ref  # noqa: F401  (re-exported)


def _softmax_backward_graph(ctx, grad: Tensor) -> object:
    """:class:`SegmentSoftmaxFunction`'s backward as differentiable torch ops (``first_order_only``):
    ``p * (grad - sum_dst(grad * p))``, the saved output ``p`` carrying its own graph."""
    (p,) = ctx.saved_tensors
    row = ctx.graph.row
    gp = grad * p
    sums = gp.new_zeros((ctx.graph.num_dst, *gp.shape[1:])).index_add(0, row, gp)
    return None, gp - p * sums.index_select(0, row)


class SegmentSoftmaxFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, graph: Graph, logits: Tensor) -> Tensor:
        ctx.plan = kernel_plan(graph, "softmax", logits)
        p = softmax_op(graph.rowptr, graph.row, logits, *ctx.plan)
        ctx.graph = graph
        ctx.save_for_backward(p)
        return p

    @staticmethod
    @first_order_only(differentiable=_softmax_backward_graph)
    def backward(ctx, grad: Tensor) -> Tuple[Optional[Tensor], ...]:
        (p,) = ctx.saved_tensors
        graph: Graph = ctx.graph
        return None, softmax_bwd_op(graph.rowptr, graph.row, p, grad.contiguous(), *ctx.plan)


def segment_softmax_slots(graph: Graph, logits: Tensor) -> Tensor:
    """Edge softmax of ``[E, H]`` scores already in CSR slot order."""
    check_rows(logits, graph.num_edges, "logits", "edges")
    if logits.dim() != 2:  # the contract on every backend (the torch path alone would take other shapes)
        raise ValueError(f"segment_softmax_slots: logits must be [E={graph.num_edges}, H], got {list(logits.shape)}; "
                         "fix: logits.view(-1, 1) for one head (or the public segment_softmax, which takes [E])")
    return apply_function(SegmentSoftmaxFunction, graph, logits.contiguous())


def segment_softmax(graph: Graph, logits: Tensor) -> Tensor:
    """Softmax of per-edge scores over each destination's incoming edges.

    Args:
        graph: from :func:`gnnkit.ops.as_graph`.
        logits: ``[E]`` or ``[E, H]`` in the input edge order.

    Returns:
        Same shape and order as ``logits``; each destination's weights sum to 1.
    """
    check_op_inputs("segment_softmax", graph, logits=logits)
    if logits.dim() not in (1, 2) or logits.size(0) != graph.num_edges:
        raise ValueError(f"logits must have shape [E={graph.num_edges}] or [E, H], got {list(logits.shape)}")
    if not logits.is_floating_point():
        raise ValueError(f"logits must be floating point, got {logits.dtype}")
    s = logits.unsqueeze(1) if logits.dim() == 1 else logits
    out = graph.from_csr_order(segment_softmax_slots(graph, graph.to_csr_order(s)))
    return out.squeeze(1) if logits.dim() == 1 else out
