r"""SpMM: aggregate source features over each destination's incoming edges.

.. math::
    \mathbf{y}_i = \bigoplus_{e = (j \to i)} w_e \, \mathbf{x}_j,
    \qquad \oplus \in \{\text{sum}, \text{mean}, \text{max}, \text{min}\}

``mean`` divides the weighted sum by the in-degree; rows without edges give 0
(and no gradient).  Multi-head: ``x`` ``[S, H, F]`` with ``edge_weight``
``[E, H]`` aggregates each head with its own weights.

Internal layout (the contract with ``gnnkit.kernels.spmm``): ``x`` is
``[S, H, F]`` contiguous, ``value`` is ``None`` or ``[E, H]`` in CSR slot
order, ``out`` is ``[N, H, F]`` in ``x.dtype`` (fp32 accumulation).
"""
from typing import Optional, Tuple

import torch
from torch import Tensor

from ._backend import kernel, use_triton
from .graph import Graph
from .sddmm import _sddmm_slots
from .segment import route_to_first_extremum

REDUCES = ("sum", "mean", "max", "min")
_TORCH_REDUCE = {"sum": "sum", "mean": "mean", "max": "amax", "min": "amin"}
_LOW = (torch.float16, torch.bfloat16)


def _check_reduce(reduce: str) -> None:
    if reduce not in REDUCES:
        raise ValueError(f"reduce={reduce!r} is not supported; use one of {REDUCES}")


# ---------------------------------------------------------------------- torch path
def spmm_csr_ref(rowptr: Tensor, col: Tensor, value: Optional[Tensor], x: Tensor, reduce: str) -> Tensor:
    """Reference SpMM on CSR slots with ``torch.sparse.mm`` (PyTorch's fast CPU kernel)."""
    N = rowptr.numel() - 1
    S, H, F = x.shape
    dtype = x.dtype
    xc = x.float() if dtype in _LOW else x
    r = _TORCH_REDUCE[reduce]
    if value is None:
        ones = torch.ones(col.numel(), dtype=xc.dtype, device=x.device)
        A = torch.sparse_csr_tensor(rowptr, col, ones, (N, S), check_invariants=False)
        out = torch.sparse.mm(A, xc.reshape(S, H * F), reduce=r).reshape(N, H, F)
    elif H == 1:  # one weighted product, written in place (no per-head output copy)
        A = torch.sparse_csr_tensor(rowptr, col, value.to(xc.dtype).reshape(-1), (N, S), check_invariants=False)
        out = torch.sparse.mm(A, xc.reshape(S, F), reduce=r).reshape(N, 1, F)
    else:
        vc = value.to(xc.dtype)
        out = xc.new_empty(N, H, F)
        for h in range(H):
            A = torch.sparse_csr_tensor(rowptr, col, vc[:, h].contiguous(), (N, S), check_invariants=False)
            out[:, h] = torch.sparse.mm(A, xc[:, h].contiguous(), reduce=r)
    return out.to(dtype)


def spmm_arg_bwd_ref(rowptr: Tensor, col: Tensor, value: Optional[Tensor], x: Tensor,
                     grad_out: Tensor, reduce: str) -> Tuple[Tensor, Optional[Tensor]]:
    """Backward of max/min: each (row, head, feature) sends its gradient to the first
    CSR slot that attains the extremum (deterministic)."""
    N = rowptr.numel() - 1
    E = col.numel()
    S, H, F = x.shape
    xc = x.float() if x.dtype in _LOW else x
    vc = None if value is None else value.to(xc.dtype)
    out = spmm_csr_ref(rowptr, col, vc, xc, reduce)
    row = torch.repeat_interleave(torch.arange(N, device=x.device), rowptr[1:] - rowptr[:-1], output_size=E)
    msg = xc.index_select(0, col)  # [E, H, F]
    if vc is not None:
        msg = msg * vc.unsqueeze(-1)
    grad_msg = route_to_first_extremum(msg, out, row, grad_out.to(xc.dtype))
    grad_value = None
    if vc is not None:
        grad_value = (grad_msg * xc.index_select(0, col)).sum(-1).to(value.dtype)
        grad_msg = grad_msg * vc.unsqueeze(-1)
    grad_x = xc.new_zeros(S, H, F).index_add_(0, col, grad_msg)
    return grad_x.to(x.dtype), grad_value


# ---------------------------------------------------------------------- custom ops
@torch.library.custom_op("gnnkit::spmm", mutates_args=())
def _spmm_op(rowptr: Tensor, col: Tensor, value: Optional[Tensor], x: Tensor, reduce: str) -> Tensor:
    if use_triton("spmm", x):
        return kernel("spmm").spmm_fwd(rowptr, col, value, x, reduce)
    out = spmm_csr_ref(rowptr, col, value, x, reduce)
    # a reshaped torch.sparse.mm result is a view; returned as one, autograd would forbid the
    # layers' in-place epilogues (bias, root term) on it.  No autograd runs in here.
    return out.detach() if out._is_view() else out


@_spmm_op.register_fake
def _(rowptr, col, value, x, reduce):
    return x.new_empty((rowptr.shape[0] - 1, x.shape[1], x.shape[2]))


@torch.library.custom_op("gnnkit::spmm_arg_bwd", mutates_args=())
def _spmm_arg_bwd_op(rowptr: Tensor, col: Tensor, value: Optional[Tensor], x: Tensor, grad_out: Tensor,
                     reduce: str, rowptr_t: Tensor, col_t: Tensor, perm_t: Tensor
                     ) -> Tuple[Tensor, Tensor]:
    """Returns ``(grad_x, grad_value)``; ``grad_value`` is empty when ``value`` is None."""
    if use_triton("spmm", x):
        gx, gv = kernel("spmm").spmm_arg_bwd(rowptr, col, value, x, grad_out, reduce, rowptr_t, col_t, perm_t)
    else:
        gx, gv = spmm_arg_bwd_ref(rowptr, col, value, x, grad_out, reduce)
    return gx, x.new_empty(0) if gv is None else gv


@_spmm_arg_bwd_op.register_fake
def _(rowptr, col, value, x, grad_out, reduce, rowptr_t, col_t, perm_t):
    gv = x.new_empty(0) if value is None else value.new_empty(value.shape)
    return x.new_empty(x.shape), gv


class SpMMFunction(torch.autograd.Function):
    """Autograd of CSR SpMM.  Backward: features through the transposed CSR (no atomics),
    edge weights through SDDMM, max/min through the first arg-extremum."""

    @staticmethod
    def forward(ctx, graph: Graph, x: Tensor, value: Optional[Tensor], reduce: str) -> Tensor:
        out = _spmm_op(graph.rowptr, graph.col, value, x, reduce)
        ctx.graph = graph
        ctx.reduce = reduce
        ctx.save_for_backward(x, value)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: Tensor):
        graph: Graph = ctx.graph
        x, value = ctx.saved_tensors
        need_x, need_v = ctx.needs_input_grad[1], ctx.needs_input_grad[2]
        grad_out = grad_out.contiguous()
        rowptr_t, col_t, perm_t = graph.transpose()
        if ctx.reduce in ("max", "min"):
            gx, gv = _spmm_arg_bwd_op(graph.rowptr, graph.col, value, x, grad_out, ctx.reduce,
                                      rowptr_t, col_t, perm_t)
            return None, gx if need_x else None, gv if need_v else None, None
        if ctx.reduce == "mean":
            if value is None and grad_out.size(1) == 1 and grad_out.dtype != torch.float64 \
                    and not torch.compiler.is_compiling():
                # one weighted SpMM through the transposed CSR instead of a division pass + SpMM
                w = graph.mean_weights_t().to(grad_out.dtype)
                return None, _spmm_op(rowptr_t, col_t, w, grad_out, "sum") if need_x else None, None, None
            deg = graph.in_degree().clamp(min=1).to(grad_out.dtype)
            grad_out = grad_out / deg.view(-1, 1, 1)
        gx = gv = None
        if need_x:
            vt = None if value is None else graph.values_t(value)
            gx = _spmm_op(rowptr_t, col_t, vt, grad_out, "sum")
        if need_v:
            gv = _sddmm_slots(graph, grad_out, x)
        return None, gx, gv, None


def spmm_slots(graph: Graph, x: Tensor, value: Optional[Tensor] = None, reduce: str = "sum") -> Tensor:
    """SpMM with ``x`` ``[S, H, F]`` and ``value`` ``[E, H]`` already in CSR slot order."""
    if torch.compiler.is_compiling():
        graph.transpose()  # build it in the traced forward: the backward may not mutate the graph
    return SpMMFunction.apply(graph, x.contiguous(), value, reduce)


# ---------------------------------------------------------------------- public
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
    _check_reduce(reduce)
    if x.dim() not in (2, 3) or x.size(0) != graph.num_src:
        raise ValueError(f"x must have shape [num_src={graph.num_src}, F] or [num_src, H, F], "
                         f"got {list(x.shape)}; check that x matches the graph's node count")
    x3 = x.unsqueeze(1) if x.dim() == 2 else x
    value = None
    if edge_weight is not None:
        H = x3.size(1)
        if edge_weight.size(0) != graph.num_edges or edge_weight.dim() > 2 or \
                (edge_weight.dim() == 2 and edge_weight.size(1) != H):
            raise ValueError(f"edge_weight must have shape [E={graph.num_edges}]"
                             f"{'' if H == 1 else f' or [E, H={H}]'}, got {list(edge_weight.shape)}; "
                             "pass one weight per edge of edge_index")
        if not edge_weight.is_floating_point():
            raise ValueError(f"edge_weight must be a floating-point tensor, got {edge_weight.dtype}")
        value = graph.to_csr_order(edge_weight)
        value = value.view(-1, 1).expand(-1, H) if value.dim() == 1 else value
        value = value.to(x.dtype).contiguous()
    out = spmm_slots(graph, x3, value, reduce)
    return out.squeeze(1) if x.dim() == 2 else out
