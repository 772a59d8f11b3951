r"""SDDMM: one dot product per edge, sampled on the graph's sparsity pattern.

.. math::
    s_{e,h} = \langle \mathbf{a}_{i,h}, \mathbf{b}_{j,h} \rangle \quad \text{for } e = (j \to i)

Internal layout (the contract with ``gnnkit.kernels.sddmm``): ``a`` ``[N, H, F]``
(destination side), ``b`` ``[S, H, F]`` (source side), result ``[E, H]`` in CSR
slot order, fp32 accumulation.
"""
import weakref
from collections import OrderedDict
from typing import Optional, Tuple

import torch
from torch import Tensor

from ._backend import kernel, use_triton
from .graph import Graph

_LOW = (torch.float16, torch.bfloat16)


_PATTERNS: "OrderedDict[int, tuple]" = OrderedDict()  # id(col) -> (weak col, weak rowptr, versions, pattern)


def _unique_pattern(rowptr: Tensor, col: Tensor, N: int) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
    """``(rowptr, col, gather)`` of the CSR pattern without duplicate ``(row, col)`` slots
    (``sampled_addmm`` rejects them) and the slot -> unique-slot map (None: no duplicates).
    Cached for the last few structures (a layer sees the same graph every call)."""
    if torch.compiler.is_compiling() or rowptr.is_inference() or col.is_inference():  # not cacheable
        return _dedup(rowptr, col, N) or (rowptr, col, None)
    key = id(col)
    hit = _PATTERNS.get(key)
    versions = (rowptr._version, col._version)
    if hit is not None and hit[0]() is col and hit[1]() is rowptr and hit[2] == versions:
        _PATTERNS.move_to_end(key)
        return (rowptr, col, None) if hit[3] is None else hit[3]
    dedup = _dedup(rowptr, col, N)  # None: no duplicates, the pattern is the input (not stored)
    if not torch.compiler.is_compiling():
        _PATTERNS[key] = (weakref.ref(col, lambda _, k=key: _PATTERNS.pop(k, None)), weakref.ref(rowptr),
                          versions, dedup)
        while len(_PATTERNS) > 4:
            _PATTERNS.popitem(last=False)
    return (rowptr, col, None) if dedup is None else dedup


def _dedup(rowptr: Tensor, col: Tensor, N: int):
    E = col.numel()
    row = torch.repeat_interleave(torch.arange(N, device=col.device), rowptr[1:] - rowptr[:-1], output_size=E)
    first = torch.ones(E, dtype=torch.bool, device=col.device)
    first[1:] = (row[1:] != row[:-1]) | (col[1:] != col[:-1])
    if bool(first.all()):
        return None
    return (torch.searchsorted(row[first], torch.arange(N + 1, device=col.device)).to(rowptr.dtype),
            col[first], torch.cumsum(first, 0) - 1)


def sddmm_csr_ref(rowptr: Tensor, col: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """Reference SDDMM with ``torch.sparse.sampled_addmm`` (PyTorch's CPU SDDMM), one head at a time."""
    N, H, F = a.shape
    S = b.shape[0]
    E = col.numel()
    dtype = a.dtype
    ac = a.float() if dtype in _LOW else a
    bc = b.to(ac.dtype)
    out = ac.new_empty(E, H)
    if E == 0:
        return out.to(dtype)
    rowptr, col, gather = _unique_pattern(rowptr, col, N)
    zeros = torch.zeros(col.numel(), dtype=ac.dtype, device=a.device)
    pattern = torch.sparse_csr_tensor(rowptr, col, zeros, (N, S), check_invariants=False)
    # head-major result rows (contiguous writes), strided head slices passed as views: sampled_addmm
    # reads them in place (copying b[:, h].t() per head cost a quarter of the op on CPU)
    out_hm = ac.new_empty(H, E)
    for h in range(H):
        vals = torch.sparse.sampled_addmm(pattern, ac[:, h], bc[:, h].t(), beta=0.0).values()
        out_hm[h] = vals if gather is None else vals.index_select(0, gather)
    out.copy_(out_hm.t())
    return out.to(dtype)


@torch.library.custom_op("gnnkit::sddmm", mutates_args=())
def _sddmm_op(rowptr: Tensor, col: Tensor, a: Tensor, b: Tensor) -> Tensor:
    if use_triton("sddmm", a):
        return kernel("sddmm").sddmm_fwd(rowptr, col, a, b)
    return sddmm_csr_ref(rowptr, col, a, b)


@_sddmm_op.register_fake
def _(rowptr, col, a, b):
    return a.new_empty((col.shape[0], a.shape[1]))


class SDDMMFunction(torch.autograd.Function):
    """Autograd of SDDMM: both gradients are SpMMs with the incoming gradient as edge values."""

    @staticmethod
    def forward(ctx, graph: Graph, a: Tensor, b: Tensor) -> Tensor:
        ctx.graph = graph
        ctx.save_for_backward(a, b)
        return _sddmm_op(graph.rowptr, graph.col, a, b)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor):
        from .spmm import _spmm_op
        graph: Graph = ctx.graph
        a, b = ctx.saved_tensors
        grad = grad.contiguous().to(a.dtype)
        ga = gb = None
        if ctx.needs_input_grad[1]:
            ga = _spmm_op(graph.rowptr, graph.col, grad, b, "sum")
        if ctx.needs_input_grad[2]:
            rowptr_t, col_t, perm_t = graph.transpose()
            gb = _spmm_op(rowptr_t, col_t, grad.index_select(0, perm_t), a, "sum")
        return None, ga, gb


def _sddmm_slots(graph: Graph, a: Tensor, b: Tensor) -> Tensor:
    """SDDMM on 3-D inputs, result in CSR slot order."""
    if torch.compiler.is_compiling():
        graph.transpose()  # build it in the traced forward: the backward may not mutate the graph
    return SDDMMFunction.apply(graph, a.contiguous(), b.to(a.dtype).contiguous())


def sddmm(graph: Graph, a: Tensor, b: Tensor) -> Tensor:
    """Per-edge dot products ``out[e] = <a[dst_e], b[src_e]>``.

    Args:
        graph: from :func:`gnnkit.ops.as_graph`.
        a: destination-side features ``[num_dst, F]`` or ``[num_dst, H, F]``.
        b: source-side features ``[num_src, F]`` or ``[num_src, H, F]``.

    Returns:
        ``[E]`` (or ``[E, H]``) in the input edge order.
    """
    if a.dim() != b.dim() or a.dim() not in (2, 3) or a.shape[1:] != b.shape[1:]:
        raise ValueError(f"a and b must both be [nodes, F] or [nodes, H, F] with equal trailing sizes, "
                         f"got a {list(a.shape)} and b {list(b.shape)}")
    if a.size(0) != graph.num_dst or b.size(0) != graph.num_src:
        raise ValueError(f"a must have num_dst={graph.num_dst} rows and b num_src={graph.num_src} rows, "
                         f"got {a.size(0)} and {b.size(0)}")
    a3 = a.unsqueeze(1) if a.dim() == 2 else a
    b3 = b.unsqueeze(1) if b.dim() == 2 else b
    out = graph.from_csr_order(_sddmm_slots(graph, a3, b3))
    return out.squeeze(1) if a.dim() == 2 else out
