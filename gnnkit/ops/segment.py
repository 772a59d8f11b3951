r"""CSR segment reduction: reduce per-edge messages into their destination node.

.. math::
    \mathbf{y}_i = \bigoplus_{e \to i} \mathbf{m}_e,
    \qquad \oplus \in \{\text{sum}, \text{mean}, \text{max}, \text{min}\}

Used by layers whose messages depend on the edge (GINE, MPNN, edge readouts).
Rows without edges give 0 and no gradient; max/min send the gradient to the
first slot that attains the extremum (deterministic, unlike atomic scatter).

Internal layout (the contract with ``gnnkit.kernels.segment``): ``values``
``[E, F]`` in CSR slot order, result ``[N, F]``.
"""
import torch
from torch import Tensor

from ._backend import kernel, use_triton
from .graph import Graph

REDUCES = ("sum", "mean", "max", "min")
_LOW = (torch.float16, torch.bfloat16)


def segment_reduce_ref(rowptr: Tensor, values: Tensor, reduce: str) -> Tensor:
    """Reference with ``torch.segment_reduce``; empty segments give 0."""
    dtype = values.dtype
    v = values.float() if dtype in _LOW else values
    out = torch.segment_reduce(v, reduce, offsets=rowptr, axis=0, initial=0.0 if reduce == "sum" else None)
    if reduce != "sum":
        empty = (rowptr[1:] == rowptr[:-1]).view(-1, *([1] * (v.dim() - 1)))
        out = out.masked_fill(empty, 0.0)
    return out.to(dtype)


def segment_reduce_bwd_ref(rowptr: Tensor, values: Tensor, grad_out: Tensor, reduce: str) -> Tensor:
    N = rowptr.numel() - 1
    E = values.size(0)
    deg = rowptr[1:] - rowptr[:-1]
    row = torch.repeat_interleave(torch.arange(N, device=values.device), deg, output_size=E)
    g = grad_out.to(torch.float32 if values.dtype in _LOW else values.dtype)
    if reduce == "sum":
        return g.index_select(0, row).to(values.dtype)
    if reduce == "mean":
        g = g / deg.clamp(min=1).to(g.dtype).view(-1, *([1] * (g.dim() - 1)))
        return g.index_select(0, row).to(values.dtype)
    v = values.to(g.dtype)
    return route_to_first_extremum(v, segment_reduce_ref(rowptr, v, reduce), row, g).to(values.dtype)


def route_to_first_extremum(msg: Tensor, out: Tensor, row: Tensor, grad_out: Tensor) -> Tensor:
    """Gradient of a max/min over CSR segments with respect to the per-slot messages.

    ``msg`` ``[E, ...]`` are the slot values, ``out`` ``[N, ...]`` their row extrema and ``row``
    the row of each slot; each entry of ``grad_out`` goes to the first slot (in CSR order)
    whose message equals the extremum — deterministic, unlike an atomic scatter.
    """
    E = msg.size(0)
    shape = (E,) + (1,) * (msg.dim() - 1)
    hit = msg == out.index_select(0, row)
    slot = torch.arange(E, device=msg.device).view(shape).expand_as(msg)
    cand = torch.where(hit, slot, torch.full_like(slot, E))
    first = torch.full(out.shape, E, dtype=torch.long, device=msg.device)
    first.scatter_reduce_(0, row.view(shape).expand_as(msg), cand, "amin")
    grad = grad_out.new_zeros((E + 1,) + tuple(msg.shape[1:]))  # slot E collects rows without edges
    grad.scatter_(0, first, grad_out)
    return grad[:E]


@torch.library.custom_op("gnnkit::segment_reduce", mutates_args=())
def _segment_op(rowptr: Tensor, values: Tensor, reduce: str) -> Tensor:
    if use_triton("segment", values):
        return kernel("segment").segment_reduce_fwd(rowptr, values, reduce)
    return segment_reduce_ref(rowptr, values, reduce)


@_segment_op.register_fake
def _(rowptr, values, reduce):
    return values.new_empty((rowptr.shape[0] - 1,) + tuple(values.shape[1:]))


@torch.library.custom_op("gnnkit::segment_reduce_bwd", mutates_args=())
def _segment_bwd_op(rowptr: Tensor, values: Tensor, grad_out: Tensor, reduce: str) -> Tensor:
    if use_triton("segment", values):
        return kernel("segment").segment_reduce_bwd(rowptr, values, grad_out, reduce)
    return segment_reduce_bwd_ref(rowptr, values, grad_out, reduce)


@_segment_bwd_op.register_fake
def _(rowptr, values, grad_out, reduce):
    return torch.empty_like(values)


class SegmentReduceFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, graph: Graph, values: Tensor, reduce: str) -> Tensor:
        ctx.graph = graph
        ctx.reduce = reduce
        ctx.save_for_backward(values if reduce in ("max", "min") else values[:0])
        ctx.shape = values.shape
        return _segment_op(graph.rowptr, values, reduce)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: Tensor):
        (values,) = ctx.saved_tensors
        if ctx.reduce in ("sum", "mean"):
            values = values.new_empty(ctx.shape)  # only its shape/dtype is read
        return None, _segment_bwd_op(ctx.graph.rowptr, values, grad_out.contiguous(), ctx.reduce), None


def segment_reduce(graph: Graph, values: Tensor, reduce: str = "sum") -> Tensor:
    """Reduce per-edge ``values`` ``[E, ...]`` (input edge order) into ``[num_dst, ...]``."""
    if reduce not in REDUCES:
        raise ValueError(f"reduce={reduce!r} is not supported; use one of {REDUCES}")
    if values.dim() < 1 or values.size(0) != graph.num_edges:
        raise ValueError(f"values must have one row per edge (E={graph.num_edges}), got {list(values.shape)}")
    return SegmentReduceFunction.apply(graph, graph.to_csr_order(values).contiguous(), reduce)
