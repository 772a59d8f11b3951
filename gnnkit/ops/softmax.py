r"""Edge softmax: normalise per-edge scores over each destination's incoming edges.

.. math::
    \alpha_{e,h} = \frac{\exp(s_{e,h} - m_{i,h})}{\sum_{e' \to i} \exp(s_{e',h} - m_{i,h})},
    \qquad m_{i,h} = \max_{e' \to i} s_{e',h}

Backward: :math:`\partial s = \alpha \odot (\partial\alpha - \sum_{e' \to i} \alpha_{e'} \partial\alpha_{e'})`.

Internal layout (the contract with ``gnnkit.kernels.softmax``): scores ``[E, H]``
in CSR slot order; the torch path also takes ``row`` (destination per slot).
"""
import torch
from torch import Tensor

from ._backend import kernel, use_triton
from .graph import Graph

_LOW = (torch.float16, torch.bfloat16)


def _tracks_grad(*ts: Tensor) -> bool:
    return torch.is_grad_enabled() and any(t.requires_grad for t in ts)


def _segment_sum(rowptr: Tensor, v: Tensor) -> Tensor:
    return torch.segment_reduce(v, "sum", offsets=rowptr, axis=0)


def segment_softmax_ref(rowptr: Tensor, row: Tensor, logits: Tensor) -> Tensor:
    """Reference edge softmax over CSR segments (fp32 math for low precision)."""
    dtype = logits.dtype
    s = logits.float() if dtype in _LOW else logits
    if s.numel() == 0:
        return logits.clone()
    m = torch.segment_reduce(s, "max", offsets=rowptr, axis=0, initial=float("-inf"))
    e = s - m.index_select(0, row)
    if _tracks_grad(s):  # differentiable reference (tests take gradients through it)
        e = e.exp()
        return (e / _segment_sum(rowptr, e).index_select(0, row)).to(dtype)
    e.exp_()  # the op's own path: in place, one [E, H] allocation for the whole softmax
    return e.div_(_segment_sum(rowptr, e).index_select(0, row)).to(dtype)


def segment_softmax_bwd_ref(rowptr: Tensor, row: Tensor, p: Tensor, grad: Tensor) -> Tensor:
    dtype = p.dtype
    pc = p.float() if dtype in _LOW else p
    gc = grad.to(pc.dtype)
    if pc.numel() == 0:
        return gc.to(dtype, copy=True)  # a custom op's output must not alias its input
    dot = _segment_sum(rowptr, pc * gc)
    d = gc - dot.index_select(0, row)
    return (pc * d if _tracks_grad(pc, gc) else d.mul_(pc)).to(dtype)


@torch.library.custom_op("gnnkit::segment_softmax", mutates_args=())
def _softmax_op(rowptr: Tensor, row: Tensor, logits: Tensor) -> Tensor:
    if use_triton("softmax", logits):
        return kernel("softmax").segment_softmax_fwd(rowptr, logits)
    return segment_softmax_ref(rowptr, row, logits)


@_softmax_op.register_fake
def _(rowptr, row, logits):
    return torch.empty_like(logits)


@torch.library.custom_op("gnnkit::segment_softmax_bwd", mutates_args=())
def _softmax_bwd_op(rowptr: Tensor, row: Tensor, p: Tensor, grad: Tensor) -> Tensor:
    if use_triton("softmax", p):
        return kernel("softmax").segment_softmax_bwd(rowptr, p, grad)
    return segment_softmax_bwd_ref(rowptr, row, p, grad)


@_softmax_bwd_op.register_fake
def _(rowptr, row, p, grad):
    return torch.empty_like(p)


class SegmentSoftmaxFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, graph: Graph, logits: Tensor) -> Tensor:
        p = _softmax_op(graph.rowptr, graph.row, logits)
        ctx.graph = graph
        ctx.save_for_backward(p)
        return p

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor):
        (p,) = ctx.saved_tensors
        graph: Graph = ctx.graph
        return None, _softmax_bwd_op(graph.rowptr, graph.row, p, grad.contiguous())


def segment_softmax_slots(graph: Graph, logits: Tensor) -> Tensor:
    """Edge softmax of ``[E, H]`` scores already in CSR slot order."""
    return SegmentSoftmaxFunction.apply(graph, logits.contiguous())


def segment_softmax(graph: Graph, logits: Tensor) -> Tensor:
    """Softmax of per-edge scores over each destination's incoming edges.

    Args:
        graph: from :func:`gnnkit.ops.as_graph`.
        logits: ``[E]`` or ``[E, H]`` in the input edge order.

    Returns:
        Same shape and order as ``logits``; each destination's weights sum to 1.
    """
    if logits.dim() not in (1, 2) or logits.size(0) != graph.num_edges:
        raise ValueError(f"logits must have shape [E={graph.num_edges}] or [E, H], got {list(logits.shape)}")
    if not logits.is_floating_point():
        raise ValueError(f"logits must be floating point, got {logits.dtype}")
    s = logits.unsqueeze(1) if logits.dim() == 1 else logits
    out = graph.from_csr_order(segment_softmax_slots(graph, graph.to_csr_order(s)))
    return out.squeeze(1) if logits.dim() == 1 else out
