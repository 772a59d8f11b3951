"""Pure-torch references of gnnkit's CSR primitives: what every Triton kernel is tested
against, and the path taken on CPU (``GNNKIT_BACKEND=torch`` everywhere).

All take the graph in CSR-by-destination slot order (``rowptr``, ``col`` and, where a
destination per slot is needed, ``row`` = :attr:`gnnkit.ops.Graph.row`; it is rebuilt
from ``rowptr`` only when a caller does not pass it).  Low-precision inputs are computed
in fp32 and returned in their own dtype.  This module imports nothing else from gnnkit
but :mod:`.graph`: the op modules and :mod:`.primitives` build on it.
"""
import contextlib
import math
from typing import Optional, Tuple

import torch
from torch import Tensor

from ._custom_op import forward_ad_active
from .graph import unique_pattern

LOW = (torch.float16, torch.bfloat16)
_TORCH_REDUCE = {"sum": "sum", "mean": "mean", "max": "amax", "min": "amin"}


def slot_rows(rowptr: Tensor, num_slots: int) -> Tensor:
    """Destination of each CSR slot from ``rowptr`` (for callers without a :class:`Graph`)."""
    N = rowptr.numel() - 1
    return torch.repeat_interleave(torch.arange(N, device=rowptr.device), rowptr[1:] - rowptr[:-1],
                                   output_size=num_slots)


def tracks_grad(*ts: Tensor) -> bool:
    return torch.is_grad_enabled() and any(t.requires_grad for t in ts)


# On CPU, torch.addmm with a CSR matrix runs MKL's sparse kernel: for dense operands of at most 64
# columns it is faster than torch.sparse.mm(reduce="sum") (0.28-0.48x the time at 8 columns, 0.6-0.86x at
# 32-64, E = 16k and 220k, 2 threads) and than index_add_; wider, it is faster on some graphs and slower on
# others (0.44-0.86x at 96-256 columns and E = 220k, 1.12x at 128 columns and E = 1.17M), so those keep
# torch.sparse.mm.  Its results are the same for 1 and 2 threads (tests/test_cpu_sum_paths.py).  torch
# links MKL's 32-bit-index interface and casts the indices to int32 without a range check, so larger
# extents keep the old kernels.
_MKL_MAX_WIDTH = 64
# multi-head products on graphs with at most this many message values (E x H x F) gather the [E, H, F] messages
# once and reduce them in one pass: a CPU product per head costs a fixed ~50 µs (MKL's set-up, the sparse
# tensor) that dominates small graphs (3.2x faster at E = 1,800, H = 8, F = 8; 1.5x at Cora's E = 13k), while
# above a few million values the fresh buffer's page faults make it 4-10x slower (E = 100k: 0.23x)
_SMALL_MESSAGES = 2 ** 20
_INT32_MAX = 2 ** 31 - 1


def _mkl_serves(t: Tensor, width: int, *extents: int) -> bool:
    """Whether MKL's CSR kernel takes ``t``'s data, ``width`` columns wide: CPU, fp32/fp64, at most 64
    columns, every extent (rows, columns, entries) within int32."""
    return (t.device.type == "cpu" and t.dtype in (torch.float32, torch.float64) and width <= _MKL_MAX_WIDTH
            and all(n <= _INT32_MAX for n in extents) and torch.backends.mkl.is_available())


def sum_reads_rows(x: Tensor, num_slots: int, weighted: bool) -> bool:
    """Whether :func:`spmm_csr_ref`'s sum over ``x`` ``[S, H, F]`` reads each slot's row: the weighted multi-head
    sum of a small graph (one gather, one :func:`segment_sum`) wider than MKL's 64 columns, which sums with
    ``index_add_`` over the rows.  :class:`gnnkit.ops.spmm.SpMMFunction` fetches
    :meth:`gnnkit.ops.Graph.transpose_rows` for its backward only then."""
    H, F = x.shape[1], x.shape[2]
    if not (weighted and H > 1 and x.device.type == "cpu" and H * F > _MKL_MAX_WIDTH):
        return False
    if isinstance(num_slots, int):
        return 0 < num_slots * H * F <= _SMALL_MESSAGES
    return True  # a number of slots a compiled region does not know (a data-dependent size): the rows may be read


def _mkl_fits(dense: Tensor, *extents: int) -> bool:
    """Whether a CSR sum over ``dense`` ``[S, F]`` runs through MKL (:func:`_mkl_serves`) with nothing tracking
    a gradient (backward or forward mode: the references keep autograd on torch.sparse.mm / index_add_)."""
    return (_mkl_serves(dense, dense.size(1), *extents) and not tracks_grad(dense)
            and not forward_ad_active())


def _mkl_sum(rowptr: Tensor, col: Tensor, value: Optional[Tensor], dense: Tensor, out: Tensor) -> Tensor:
    """:func:`csr_sum` through MKL into ``out`` ``[N, F]`` (the caller checked :func:`_mkl_fits`)."""
    v = torch.ones(col.numel(), dtype=dense.dtype, device=dense.device) if value is None else value
    A = torch.sparse_csr_tensor(rowptr, col, v, (out.size(0), dense.size(0)), check_invariants=False)
    # autocast would run addmm in bf16, which MKL's sparse kernel lacks: the operands' own dtype here
    with torch.autocast("cpu", enabled=False) if torch.is_autocast_enabled("cpu") else contextlib.nullcontext():
        return torch.addmm(out, A, dense.contiguous(), beta=0, out=out)  # out=: no copy of out into itself


def mkl_one_head_sum(rowptr: Tensor, col: Tensor, value: Optional[Tensor], x: Tensor) -> Tensor:
    """One head's weighted CSR sum through MKL, ``x`` ``[S, 1, F]`` -> ``[N, 1, F]`` (the caller checked
    :func:`_mkl_fits`): written through a 2-D view, the whole tensor returned (not a view)."""
    N, S, F = rowptr.numel() - 1, x.size(0), x.size(2)
    out = x.new_empty(N, 1, F)
    v = None if value is None else outside_inference(value.reshape(-1))
    _mkl_sum(rowptr, col, v, x.reshape(S, F), out.view(N, F))
    return out


def outside_inference(v: Tensor) -> Tensor:
    """``v``, or a plain copy of it when it was made under ``torch.inference_mode`` (weights kept by an
    inference-mode call) and is used outside it, where a sparse tensor built on it would be refused."""
    return v.clone() if v.is_inference() and not torch.is_inference_mode_enabled() else v


def csr_sum(rowptr: Tensor, col: Tensor, value: Optional[Tensor], dense: Tensor) -> Tensor:
    """``out[i] = sum over the slots k of row i of value[k] * dense[col[k]]`` (``value`` None: 1) for
    ``dense`` ``[S, F]`` -> ``[N, F]``, deterministic; empty rows give 0."""
    N, (S, F) = rowptr.numel() - 1, dense.shape
    if dense.device.type != "cpu":
        return _gathered_reduce(rowptr, col, value, dense, "sum")
    v = torch.ones(col.numel(), dtype=dense.dtype, device=dense.device) if value is None else value
    if col.numel() > 0 and _mkl_fits(dense, N, S, col.numel()) and not tracks_grad(v):
        return _mkl_sum(rowptr, col, v, dense, dense.new_empty(N, F))
    return torch.sparse.mm(torch.sparse_csr_tensor(rowptr, col, v, (N, S), check_invariants=False), dense,
                           reduce="sum")


def _gathered_reduce(rowptr: Tensor, col: Tensor, value: Optional[Tensor], dense: Tensor, reduce: str,
                     row: Optional[Tensor] = None) -> Tensor:
    """``reduce`` ("sum", "mean", "amax", "amin") over each CSR row of ``value[k] * dense[col[k]]`` off the CPU,
    where ``torch.sparse.mm(reduce=)`` is not implemented: the messages gathered (``[E, F]``), sums and means
    by :func:`segment_reduce_ref` (``torch.segment_reduce``: deterministic, no atomics), max / min by
    ``scatter_reduce`` (PyG's definition: the gradient split evenly among ties; ``segment_reduce``'s max
    backward gives each tie the whole of a negative gradient in torch 2.13).  Empty rows give 0, as
    ``torch.sparse.mm`` does.  ``row``: each slot's destination (:attr:`gnnkit.ops.Graph.row`), rebuilt from
    ``rowptr`` when not given."""
    msg = dense.index_select(0, col)
    if value is not None:
        msg = msg * value.unsqueeze(-1)
    if reduce in ("amax", "amin"):
        row = (slot_rows(rowptr, col.numel()) if row is None else row).unsqueeze(-1).expand_as(msg)
        return msg.new_zeros(rowptr.numel() - 1, msg.size(1)).scatter_reduce(0, row, msg, reduce, include_self=False)
    return segment_reduce_ref(rowptr, msg, reduce)


def segment_sum(rowptr: Tensor, v: Tensor, row: Optional[Tensor] = None) -> Tensor:
    """Sum of the rows of ``v`` ``[E, ...]`` within each CSR segment (deterministic); ``row``: the segment of
    each slot (:attr:`gnnkit.ops.Graph.row`), rebuilt from ``rowptr`` when not given.

    On CPU, up to 64 values per slot, MKL's CSR kernel (:func:`csr_sum` over the slots); wider, an
    ``index_add_`` over the slots' rows: it adds the slots in order, one after the other (the same
    order and result as ``torch.segment_reduce``, which is 3-10x slower there: 0.82 vs 0.08 ms at E=1,700,
    F=300; 240 vs 84 ms at E=1.17M, F=128).  Elsewhere ``torch.segment_reduce`` (``index_add_`` is atomic,
    so run-to-run different, on CUDA)."""
    if v.device.type == "cpu":
        E, rest = v.size(0), tuple(v.shape[1:])
        flat = v.reshape(E, math.prod(rest))
        N = rowptr.numel() - 1
        if E > 0 and _mkl_fits(flat, N, E):  # each slot once, in order: rows of the E x E identity's columns
            res = v.new_empty((N,) + rest)  # written through a 2-D view, returned whole (not a view)
            _mkl_sum(rowptr, torch.arange(E, device=v.device), None, flat, res.view(N, flat.size(1)))
            return res
        row = slot_rows(rowptr, E) if row is None else row
        return v.new_zeros((N,) + rest).index_add_(0, row, v)
    return torch.segment_reduce(v, "sum", offsets=rowptr, axis=0)


def node_sums_ref(g: Tensor, rowptr: Tensor, row: Tensor, col: Tensor, rowptr_t: Optional[Tensor],
                  perm_t: Optional[Tensor], num_src: int, need_src: bool, need_dst: bool) -> Tuple[Tensor, Tensor]:
    """``(g_src [num_src, ...], g_dst [num_dst, ...])``: the per-slot values ``g`` ``[E, ...]`` summed onto each
    slot's source and destination node (an empty tensor for a side not asked for), deterministic.  On CPU
    ``index_add_`` in slot order: for the sources that is the order of their transposed-CSR segments (the
    transpose sorts by source stably), so no gather into that order is needed, or, up to 64 values per
    slot and with the transpose given, MKL's CSR kernel over the transposed CSR (same order); elsewhere
    segment sums over the CSR and over the transposed CSR (``rowptr_t``, ``perm_t``), no atomics."""
    zeros = lambda n: g.new_zeros((n,) + tuple(g.shape[1:]))
    g_src, g_dst = zeros(0), zeros(0)
    if need_src:
        flat = g.reshape(g.size(0), math.prod(g.shape[1:]))
        if g.size(0) == 0:
            g_src = zeros(num_src)
        elif g.device.type == "cpu" and rowptr_t is not None and _mkl_fits(flat, num_src, g.size(0)):
            # the transposed CSR's slot ids as columns: each source sums its slots in that order
            g_src = g.new_empty((num_src,) + tuple(g.shape[1:]))
            _mkl_sum(rowptr_t, perm_t, None, flat, g_src.view(num_src, flat.size(1)))
        elif g.device.type == "cpu":
            g_src = zeros(num_src).index_add_(0, col, g)
        else:
            g_src = segment_sum(rowptr_t, g.index_select(0, perm_t))
    if need_dst:
        g_dst = zeros(rowptr.numel() - 1) if g.size(0) == 0 else segment_sum(rowptr, g, row)
    return g_src, g_dst


# ---------------------------------------------------------------------- SpMM
def spmm_csr_ref(rowptr: Tensor, col: Tensor, value: Optional[Tensor], x: Tensor, reduce: str,
                 row: Optional[Tensor] = None) -> Tensor:
    """Reference SpMM on CSR slots: sums through :func:`csr_sum` (MKL's CSR kernel for at most 64 columns
    on CPU, else ``torch.sparse.mm``), mean/max/min through ``torch.sparse.mm(reduce=)``; off the CPU (where
    that is not implemented) over the gathered messages (:func:`_gathered_reduce`; max / min read each slot's
    destination from ``row``, :attr:`gnnkit.ops.Graph.row`, rebuilt when not given)."""
    N = rowptr.numel() - 1
    S, H, F = x.shape
    if reduce == "sum" and H == 1 and col.numel() > 0 and (value is None or value.dtype == x.dtype) \
            and _mkl_fits(x.reshape(S, F), N, S, col.numel()) and (value is None or not tracks_grad(value)):
        # the common CPU case straight to MKL (the same product as below, without its generic steps: ~30 µs a call
        # on small graphs, what a compiled layer's op call runs)
        return mkl_one_head_sum(rowptr, col, value, x)
    dtype = x.dtype
    xc = x.float() if dtype in LOW else x
    r = _TORCH_REDUCE[reduce]

    def product(v: Optional[Tensor], dense: Tensor) -> Tensor:
        if r == "sum":
            return csr_sum(rowptr, col, v, dense)
        if dense.device.type != "cpu":
            return _gathered_reduce(rowptr, col, v, dense, r, row)
        v = torch.ones(col.numel(), dtype=xc.dtype, device=x.device) if v is None else v
        return torch.sparse.mm(torch.sparse_csr_tensor(rowptr, col, v, (N, S), check_invariants=False), dense,
                               reduce=r)

    if value is None:
        out = product(None, xc.reshape(S, H * F)).reshape(N, H, F)
    elif H == 1:  # one weighted product, written in place (no per-head output copy)
        out = product(outside_inference(value.to(xc.dtype).reshape(-1)), xc.reshape(S, F)).reshape(N, 1, F)
    elif r == "sum" and col.numel() * H * F <= _SMALL_MESSAGES:  # small: one gather, one sum (torch.func: no mul_)
        out = segment_sum(rowptr, xc.index_select(0, col) * value.to(xc.dtype).unsqueeze(-1), row)
    else:
        vc = value.to(xc.dtype)
        out = xc.new_empty(N, H, F)
        for h in range(H):
            out[:, h] = product(vc[:, h].contiguous(), xc[:, h].contiguous())
    return out.to(dtype)


def spmm_arg_bwd_ref(rowptr: Tensor, col: Tensor, value: Optional[Tensor], x: Tensor,
                     grad_out: Tensor, reduce: str, row: Optional[Tensor] = None
                     ) -> Tuple[Tensor, Optional[Tensor]]:
    """Backward of max/min: each (row, head, feature) splits its gradient evenly among the CSR slots
    that attain the extremum (:func:`route_to_extrema`)."""
    S, H, F = x.shape
    xc = x.float() if x.dtype in LOW else x
    vc = None if value is None else value.to(xc.dtype)
    row = slot_rows(rowptr, col.numel()) if row is None else row
    out = spmm_csr_ref(rowptr, col, vc, xc, reduce, row)
    msg = xc.index_select(0, col)  # [E, H, F]
    if vc is not None:
        msg = msg * vc.unsqueeze(-1)
    grad_msg = route_to_extrema(msg, out, row, grad_out.to(xc.dtype))
    grad_value = None
    if vc is not None:
        grad_value = (grad_msg * xc.index_select(0, col)).sum(-1).to(value.dtype)
        grad_msg = grad_msg * vc.unsqueeze(-1)
    grad_x = xc.new_zeros(S, H, F).index_add_(0, col, grad_msg)
    return grad_x.to(x.dtype), grad_value


def route_to_extrema(msg: Tensor, out: Tensor, row: Tensor, grad_out: Tensor) -> Tensor:
    """Gradient of a max/min over CSR segments with respect to the per-slot messages.

    ``msg`` ``[E, ...]`` are the slot values, ``out`` ``[N, ...]`` their row extrema and ``row``
    the row of each slot; each entry of ``grad_out`` is split evenly among the slots whose message
    equals the extremum — the gradient of torch's ``scatter_reduce`` ``amax``/``amin``, which PyG's
    max/min aggregations use.  The tie counts are whole numbers, exact in any order of summation.  As there,
    an extremum of exactly 0 counts one tie more (:func:`zero_start_ties`).
    """
    hit = (msg == out.index_select(0, row)).to(grad_out.dtype)
    count = zero_start_ties(grad_out.new_zeros(out.shape).index_add_(0, row, hit), out)
    return hit * (grad_out / count.clamp(min=1)).index_select(0, row)


def zero_start_ties(count: Tensor, out: Tensor) -> Tensor:
    """Tie counts of a max/min as PyG's gradient splits them: PyG reduces with ``new_zeros(...).scatter_reduce_(...,
    "amax"/"amin", include_self=False)``, and torch's backward of that still counts the zero it started from as
    one more tie wherever a non-empty row's extremum is exactly 0 (e.g. after a ReLU): two messages of 0 get a
    third of the gradient each, one gets a half.  ``count``: ties among the messages per entry of ``out``."""
    return count + ((out == 0) & (count > 0)).to(count.dtype)


# ---------------------------------------------------------------------- SDDMM
def sddmm_csr_ref(rowptr: Tensor, col: Tensor, a: Tensor, b: Tensor,
                  pattern: Optional[Tuple[Tensor, Tensor, Optional[Tensor]]] = None,
                  row: Optional[Tensor] = None) -> Tensor:
    """Reference SDDMM with ``torch.sparse.sampled_addmm`` (PyTorch's CPU SDDMM), one head at a time; on
    small graphs (at most ``_SMALL_MESSAGES`` products) the rows' and columns' features gathered once and
    multiplied.

    ``pattern``: :meth:`Graph.sddmm_pattern` (duplicate-free pattern and gather map); built
    here when not given.  ``row``: the destination of each slot (:attr:`gnnkit.ops.Graph.row`)."""
    N, H, F = a.shape
    S = b.shape[0]
    E = col.numel()
    dtype = a.dtype
    ac = a.float() if dtype in LOW else a
    bc = b.to(ac.dtype)
    out = ac.new_empty(E, H)
    if E == 0:
        return out.to(dtype)
    if E * H * F <= _SMALL_MESSAGES:
        row = slot_rows(rowptr, E) if row is None else row
        return (ac.index_select(0, row) * bc.index_select(0, col)).sum(-1).to(dtype)
    if pattern is None:
        pattern = unique_pattern(rowptr, col, slot_rows(rowptr, E) if row is None else row)
    p_rowptr, p_col, gather = pattern
    zeros = torch.zeros(p_col.numel(), dtype=ac.dtype, device=a.device)
    sparse = torch.sparse_csr_tensor(p_rowptr, p_col, zeros, (N, S), check_invariants=False)
    # head-major result rows (contiguous writes), strided head slices passed as views: sampled_addmm
    # reads them in place (copying b[:, h].t() per head cost a quarter of the op on CPU)
    out_hm = ac.new_empty(H, E)
    for h in range(H):
        vals = torch.sparse.sampled_addmm(sparse, ac[:, h], bc[:, h].t(), beta=0.0).values()
        out_hm[h] = vals if gather is None else vals.index_select(0, gather)
    out.copy_(out_hm.t())
    return out.to(dtype)


# ---------------------------------------------------------------------- edge softmax
def segment_softmax_ref(rowptr: Tensor, row: Tensor, logits: Tensor) -> Tensor:
    """Reference edge softmax over CSR segments (fp32 math for low precision)."""
    dtype = logits.dtype
    s = logits.float() if dtype in LOW else logits
    if s.numel() == 0:
        return logits.clone()
    m = torch.segment_reduce(s, "max", offsets=rowptr, axis=0, initial=float("-inf"))
    e = s - m.index_select(0, row)
    if tracks_grad(s):  # differentiable reference (tests take gradients through it)
        e = e.exp()
        return (e / segment_sum(rowptr, e, row).index_select(0, row)).to(dtype)
    e.exp_()  # the op's own path: in place, one [E, H] allocation for the whole softmax
    return e.div_(segment_sum(rowptr, e, row).index_select(0, row)).to(dtype)


def segment_softmax_bwd_ref(rowptr: Tensor, row: Tensor, p: Tensor, grad: Tensor) -> Tensor:
    dtype = p.dtype
    pc = p.float() if dtype in LOW else p
    gc = grad.to(pc.dtype)
    if pc.numel() == 0:
        return gc.to(dtype, copy=True)  # a custom op's output must not alias its input
    dot = segment_sum(rowptr, pc * gc, row)
    d = gc - dot.index_select(0, row)
    return (pc * d if tracks_grad(pc, gc) else d.mul_(pc)).to(dtype)


# ---------------------------------------------------------------------- segment reduction
def segment_reduce_ref(rowptr: Tensor, values: Tensor, reduce: str, row: Optional[Tensor] = None) -> Tensor:
    """Reference with ``torch.segment_reduce`` (a sum: :func:`segment_sum`, with the slots' ``row`` when
    given); empty segments give 0."""
    dtype = values.dtype
    v = values.float() if dtype in LOW else values
    if reduce == "sum":
        return segment_sum(rowptr, v, row).to(dtype)
    out = torch.segment_reduce(v, reduce, offsets=rowptr, axis=0)
    empty = (rowptr[1:] == rowptr[:-1]).view(-1, *([1] * (v.dim() - 1)))
    return out.masked_fill(empty, 0.0).to(dtype)


def segment_reduce_bwd_ref(rowptr: Tensor, values: Tensor, grad_out: Tensor, reduce: str,
                           row: Optional[Tensor] = None) -> Tensor:
    deg = rowptr[1:] - rowptr[:-1]
    row = slot_rows(rowptr, values.size(0)) if row is None else row
    g = grad_out.to(torch.float32 if values.dtype in LOW else values.dtype)
    if reduce == "sum":
        return g.index_select(0, row).to(values.dtype)
    if reduce == "mean":
        g = g / deg.clamp(min=1).to(g.dtype).view(-1, *([1] * (g.dim() - 1)))
        return g.index_select(0, row).to(values.dtype)
    v = values.to(g.dtype)
    return route_to_extrema(v, segment_reduce_ref(rowptr, v, reduce, row), row, g).to(values.dtype)


# ---------------------------------------------------------------------- dense per-graph attention
def graph_attention_ref(q: Tensor, k: Tensor, v: Tensor, num_nodes: Tensor, dist: Optional[Tensor],
                        bias: Optional[Tensor], adjacency: bool, scale: float) -> Tensor:
    """Multi-head attention within each padded graph: ``softmax(q k^T * scale + bias[h, dist]) v`` over the
    allowed keys (``j < num_nodes[b]``, and ``dist <= 1`` with ``adjacency``); rows with no allowed key give
    0.  ``q, k, v`` ``[B, H, N, D]``; ``dist`` ``[B, N, N]`` bucket indices into ``bias`` ``[H, buckets]``.
    Materialises ``[B, H, N, N]`` (the reference; the Triton kernel does not)."""
    dt = torch.float32 if q.dtype in LOW else q.dtype
    p = graph_attention_probs_ref(q.to(dt), k.to(dt), num_nodes, dist, None if bias is None else bias.to(dt),
                                  adjacency, scale)
    return torch.matmul(p, v.to(dt)).to(q.dtype)


def graph_attention_probs_ref(q: Tensor, k: Tensor, num_nodes: Tensor, dist: Optional[Tensor],
                              bias: Optional[Tensor], adjacency: bool, scale: float) -> Tensor:
    """The attention probabilities ``P`` ``[B, H, N, N]`` of :func:`graph_attention_ref`, in ``q``'s dtype (the
    reference's output is ``P v``): softmax over the allowed keys, rows with no allowed key all 0."""
    B, H, N, _ = q.shape
    s = torch.matmul(q, k.transpose(-1, -2)) * scale
    if bias is not None:
        s = s + bias[:, dist.long()].permute(1, 0, 2, 3)  # [H, B, N, N] -> [B, H, N, N]
    idx = torch.arange(N, device=q.device)
    allowed = (idx.view(1, N, 1) < num_nodes.view(B, 1, 1)) & (idx.view(1, 1, N) < num_nodes.view(B, 1, 1))
    if adjacency:
        allowed = allowed & (dist <= 1)
    allowed = allowed.unsqueeze(1)
    any_key = allowed.any(-1, keepdim=True)  # a row with no allowed key (padding) gives 0, without NaNs
    s = s.masked_fill(~allowed, float("-inf")).masked_fill(~any_key, 0.0)
    return torch.softmax(s, -1) * any_key
