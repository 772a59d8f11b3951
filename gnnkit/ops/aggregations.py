r"""Softmax aggregation over CSR rows (DeeperGCN, Li et al. 2020; PyG's ``SoftmaxAggregation``).

.. math::
    \mathbf{y}_i = \sum_{j \to i} \frac{\exp(t\,\mathbf{x}_j)}{\sum_{k \to i} \exp(t\,\mathbf{x}_k)}
    \odot \mathbf{x}_j \qquad \text{(per channel; } t \text{ a number or one per channel)}

One autograd Function with a hand-written backward: the forward keeps only ``x``, the output and
two ``[num_dst, F]`` statistics (row maximum and normaliser); the backward recomputes the per-slot
weights.  PyG's module keeps about five ``[E, F]`` tensors for its backward.  With
:math:`a_{ij}` the weights and :math:`g_i` the output gradient:

.. math::
    \frac{\partial L}{\partial \mathbf{x}_j} = \sum_{i \leftarrow j} a_{ij} \odot g_i \odot
    \bigl(1 + t\,(\mathbf{x}_j - \mathbf{y}_i)\bigr), \qquad
    \frac{\partial L}{\partial t} = \sum_{i, j} a_{ij} \odot g_i \odot \mathbf{x}_j \odot
    (\mathbf{x}_j - \mathbf{y}_i)

(``semi_grad``: the weights are constants, :math:`\partial L / \partial \mathbf{x}_j = \sum_i a_{ij}
g_i`, PyG's option).  Rows without edges give 0; sums run over CSR segments (deterministic): the
forward over destination rows, the backward over the transposed CSR (source rows), each in chunks of
about a million elements, so no temporary grows with ``E * F``.
:func:`softmax_aggregate_ref` is PyG's definition in plain torch, the tests' reference.
"""
from typing import Optional, Tuple, Union

import torch
from torch import Tensor

from gnnkit._checks import assert_in_graph

from ._autograd import apply_function, first_order_only
from ._custom_op import custom_op
from .graph import Graph, check_op_inputs
from .reference import LOW, segment_sum

_EPS = 1e-16  # PyG's softmax adds it to the normaliser


_CHUNK = 1 << 20  # elements of one per-slot [slots, F] temporary (4 MiB in fp32)


def _chunks(rowptr: Tensor, width: int):
    """``(r0, r1, s0, s1)``: consecutive row ranges of a CSR whose slots ``s0:s1`` hold about ``_CHUNK``
    elements of width ``width`` (a row is never split), so per-slot temporaries stay bounded."""
    n = rowptr.numel() - 1
    e = int(rowptr[-1])
    step = max(1, _CHUNK // max(width, 1))
    if e <= step:
        yield 0, n, 0, e
        return
    cuts = torch.searchsorted(rowptr, torch.arange(step, e, step, device=rowptr.device), right=True) - 1
    bounds = torch.unique(torch.cat([cuts.new_tensor([0]), cuts, cuts.new_tensor([n])])).tolist()
    starts = rowptr[bounds].tolist()
    for i in range(len(bounds) - 1):
        yield bounds[i], bounds[i + 1], starts[i], starts[i + 1]


def _local_rows(rowptr: Tensor, row: Tensor, r0: int, r1: int, s0: int, s1: int) -> Tuple[Tensor, Tensor]:
    """Local ``rowptr`` and per-slot row (0-based within the range) of rows ``r0:r1``, from the CSR's slot rows
    ``row`` (:attr:`Graph.row`, or :meth:`Graph.transpose_rows` for the transposed CSR)."""
    return rowptr[r0:r1 + 1] - s0, row[s0:s1] - r0


# Both passes are custom ops: opaque to torch.compile (their chunk boundaries are data-dependent), so a
# compiled model (fullgraph=True) calls them as it calls the SpMM ops.
@custom_op("gnnkit::softmax_aggr_fwd")
def _forward_op(rowptr: Tensor, col: Tensor, row: Tensor, x: Tensor, t: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    """``(out, m, s)``: the aggregation, each row's maximum logit and normaliser ``[num_dst, F]``."""
    n, F = rowptr.numel() - 1, x.size(1)
    out, m, s = x.new_zeros(n, F), x.new_zeros(n, F), x.new_full((n, F), _EPS)
    for r0, r1, s0, s1 in _chunks(rowptr, F):  # destination rows, about _CHUNK elements at a time
        if s1 == s0:
            continue
        local, rows = _local_rows(rowptr, row, r0, r1, s0, s1)
        xj = x.index_select(0, col[s0:s1])
        e = xj * t
        mc = e.new_full((r1 - r0, F), float("-inf")).scatter_reduce_(0, rows.view(-1, 1).expand_as(e), e, "amax")
        mc.masked_fill_(mc == float("-inf"), 0.0)  # rows without slots
        e.sub_(mc.index_select(0, rows)).exp_()
        sc = segment_sum(local, e, rows).add_(_EPS)
        out[r0:r1] = segment_sum(local, e.mul_(xj), rows).div_(sc)
        m[r0:r1], s[r0:r1] = mc, sc
    return out, m, s


@_forward_op.register_fake
def _(rowptr, col, row, x, t):
    n = rowptr.numel() - 1
    return x.new_empty(n, x.size(1)), x.new_empty(n, x.size(1)), x.new_empty(n, x.size(1))


@custom_op("gnnkit::softmax_aggr_bwd")
def _backward_op(rowptr_t: Tensor, col_t: Tensor, row_t: Tensor, x: Tensor, t: Tensor, out: Tensor, m: Tensor,
                 s: Tensor, grad_out: Tensor, semi_grad: bool, need_t: bool) -> Tuple[Tensor, Tensor]:
    """``(grad_x, grad_t)`` over the transposed CSR (source rows), weights recomputed from ``m`` and ``s``;
    ``grad_t`` is zeros unless ``need_t``."""
    F = x.size(1)
    g = grad_out / s
    grad_x = x.new_zeros(x.shape)
    grad_t = torch.zeros_like(t)
    for r0, r1, s0, s1 in _chunks(rowptr_t, F):
        if s1 == s0:
            continue
        local, src = _local_rows(rowptr_t, row_t, r0, r1, s0, s1)
        dst = col_t[s0:s1]
        xj = x[r0:r1].index_select(0, src)
        ga = (xj * t).sub_(m.index_select(0, dst)).exp_().mul_(g.index_select(0, dst))  # a_ij * g_i
        diff = xj.sub_(out.index_select(0, dst)) if (need_t or not semi_grad) else None  # x_j - y_i
        if need_t:
            part = (ga * diff).mul_(diff + out.index_select(0, dst)).sum(0)  # a g x_j (x_j - y_i)
            grad_t += part.sum() if t.dim() == 0 else part
        per_slot = ga if semi_grad else ga.addcmul_(ga, diff.mul_(t))
        grad_x[r0:r1] = segment_sum(local, per_slot, src)
    return grad_x, grad_t


@_backward_op.register_fake
def _(rowptr_t, col_t, row_t, x, t, out, m, s, grad_out, semi_grad, need_t):
    return x.new_empty(x.shape), t.new_empty(t.shape)  # contiguous, as the real op's results


def _softmax_aggregate_backward_graph(ctx, grad_out: Tensor) -> object:
    """:class:`SoftmaxAggregateFunction`'s backward under ``create_graph=True`` (``first_order_only``): the
    forward recomputed by :func:`softmax_aggregate_ref` (plain autograd) from the saved inputs and differentiated
    with a graph; ``semi_grad`` (constant weights) has no such formula and refuses."""
    if ctx.semi_grad:
        return NotImplemented
    x, t, out, _, _, _, col_t, row_t = ctx.saved_tensors
    with torch.enable_grad():
        xs = x if x.requires_grad else x.detach().requires_grad_()
        ts = t if t.requires_grad else t.detach().requires_grad_()
        ref = softmax_aggregate_ref(col_t, xs.index_select(0, row_t), out.size(0), ts)
        gx, gt = torch.autograd.grad(ref, (xs, ts), grad_out, create_graph=True, allow_unused=True)
    return None, gx if ctx.needs_input_grad[1] else None, gt if ctx.needs_input_grad[2] else None, None


class SoftmaxAggregateFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, graph: Graph, x: Tensor, t: Tensor, semi_grad: bool) -> Tensor:
        out, m, s = _forward_op(graph.rowptr, graph.col, graph.row, x, t)
        if not (ctx.needs_input_grad[1] or ctx.needs_input_grad[2]):  # no backward follows: nothing to keep
            return out
        rowptr_t, col_t, _ = graph.transpose()  # fetched here: what the backward reads (also under compile)
        row_t = graph.transpose_rows()
        ctx.semi_grad = semi_grad
        if not torch.compiler.is_compiling() and x.is_inference():  # made under inference_mode: not savable
            x = x.clone()
        ctx.save_for_backward(x, t, out, m, s, rowptr_t, col_t, row_t)
        return out

    @staticmethod
    @first_order_only(differentiable=_softmax_aggregate_backward_graph)
    def backward(ctx, grad_out: Tensor) -> Tuple[Optional[Tensor], ...]:
        x, t, out, m, s, rowptr_t, col_t, row_t = ctx.saved_tensors
        need_x, need_t = ctx.needs_input_grad[1], ctx.needs_input_grad[2]
        grad_x, grad_t = _backward_op(rowptr_t, col_t, row_t, x, t, out, m, s, grad_out.contiguous(), ctx.semi_grad,
                                      bool(need_t))
        return None, grad_x if need_x else None, grad_t if need_t else None, None


def _check(name: str, graph: Graph, x: Tensor) -> None:
    check_op_inputs(name, graph, x=x)  # a Graph, x a tensor on its device
    if not isinstance(x, Tensor) or x.dim() != 2 or x.size(0) != graph.num_src:
        shape = list(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{name}: x must be [num_src={graph.num_src}, F], got {shape}")
    if not x.is_floating_point():
        raise ValueError(f"{name}: x must hold floating-point features, got dtype {x.dtype}; convert it with "
                         "x.float()")


def _as_t(t: Union[float, Tensor], x: Tensor) -> Tensor:
    if isinstance(t, Tensor):
        if t.numel() not in (1, x.size(1)):
            raise ValueError(f"softmax_aggregate_slots: t has {t.numel()} values; pass a number or one per channel "
                             f"of x ({x.size(1)})")
        return t.reshape(-1).to(x.dtype) if t.numel() > 1 else t.reshape(()).to(x.dtype)
    return x.new_tensor(float(t))


def softmax_aggregate_slots(graph: Graph, x: Tensor, t: Union[float, Tensor] = 1.0,
                            semi_grad: bool = False) -> Tensor:
    """Softmax aggregation of source features ``x`` ``[num_src, F]`` into ``[num_dst, F]`` (module doc).

    ``t``: the inverse temperature, a number or a tensor with one value or one per channel (learnable:
    it gets a gradient); ``semi_grad=True`` treats the weights as constants in the backward."""
    _check("softmax_aggregate_slots", graph, x)
    graph.prepare_backward(x, t, transpose_rows=True)
    if x.dtype in LOW:  # computed in fp32 (t too, not rounded to x's dtype first), returned in x's dtype
        xf = x.float()
        return apply_function(SoftmaxAggregateFunction, graph, xf, _as_t(t, xf), semi_grad).to(x.dtype)
    return apply_function(SoftmaxAggregateFunction, graph, x, _as_t(t, x), semi_grad)


def softmax_aggregate_ref(index: Tensor, x_j: Tensor, num_dst: int, t: Union[float, Tensor] = 1.0,
                          ptr: Optional[Tensor] = None) -> Tensor:
    """PyG's ``SoftmaxAggregation`` on per-edge messages ``x_j`` with destinations ``index`` (plain torch
    autograd): ``alpha = softmax(t x_j)`` per destination and channel, ``sum alpha * x_j``."""
    logits = x_j * t
    m = torch.full((num_dst, x_j.size(1)), float("-inf"), dtype=x_j.dtype, device=x_j.device)
    m = m.scatter_reduce(0, index.view(-1, 1).expand_as(logits), logits.detach(), "amax")
    e = (logits - m.index_select(0, index)).exp()
    s = torch.zeros_like(m).index_add(0, index, e) + _EPS
    alpha = e / s.index_select(0, index)
    return torch.zeros_like(m).index_add(0, index, x_j * alpha)


# ---------------------------------------------------------------------- quantiles (median)
INTERPOLATIONS = ("lower", "higher", "nearest", "linear", "midpoint")


def _order_keys(values: Tensor) -> Tensor:
    """int64 keys that order like the float32 ``values`` (IEEE bits with the negative range flipped),
    shifted to [0, 2^32): -0.0 equals +0.0 and every NaN (whatever its sign bit) sorts last, as in
    ``torch.sort``."""
    values = values + 0.0  # -0.0 -> +0.0
    i = values.contiguous().view(torch.int32)
    keys = (i ^ ((i >> 31) & 0x7FFFFFFF)).long() + 2 ** 31
    return keys.masked_fill_(values.isnan(), 2 ** 32 - 1)


def quantile_aggregate_slots(graph: Graph, x: Tensor, q: Union[float, Tensor] = 0.5, interpolation: str = "lower",
                             fill_value: float = 0.0, pyg_rounding: bool = False) -> Tensor:
    """Feature-wise ``q``-quantile of each destination's source features (PyG's ``QuantileAggregation``;
    ``q=0.5, "lower"`` is ``MedianAggregation``): ``[num_src, F]`` -> ``[num_dst, F]``, rows without edges
    ``fill_value``.

    One sort instead of PyG's two: the messages of a CSR row are contiguous, so sorting the int64 key
    ``(row << 32) | order-preserving bits of the value`` sorts every row's values at once.  The output
    gathers the chosen sources' features from ``x``, so the gradient goes straight to them (no ``[E, F]``
    tensor is kept).  Among equal values the earlier slot is chosen (the lower source id for an ``edge_index``;
    a sparse ``adj_t``'s own column order within a row), so the gradient of a tie goes to that source (PyG's
    choice among ties follows ``torch.sort``'s unstable order of all messages, implementation-defined: the same
    output, another tied source's gradient).  The quantile's
    position is computed inside each row (``q`` times the row's count less one in ``q``'s precision: float64
    for a Python float, as ``torch.quantile``; a tensor's own dtype, as PyG's module, whose float32 ``q = 0.7``
    gives position 7.0 in a row of 11, not 6.99999988), then in
    float64: PyG computes it in float32 after adding the row's offset, so its interpolation fraction coarsens
    once offsets pass ~10^5 (rows past 2^24 slots pick wrong elements), and its "nearest" rounds a .5
    position up or down depending on the parity of the row's offset (here: half to even inside the row, as
    ``torch.quantile``; ``pyg_rounding=True`` rounds PyG's way, what the drop-in ``SAGEConv`` asks for, so
    that its float32 path and its float64 one, PyG's module, agree).
    float32, float16 and bfloat16 ``x`` (keys from the float32 value); float64 raises."""
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"quantile_aggregate_slots: interpolation={interpolation!r}; use one of {INTERPOLATIONS}")
    if isinstance(q, Tensor):  # e.g. QuantileAggregation's buffer: read as a tensor (no sync, compiles)
        if q.numel() != 1:
            raise ValueError(f"quantile_aggregate_slots: one q at a time, got {q.numel()} values")
        q = q.reshape(())
        q = q if q.is_floating_point() else q.to(torch.float64)
        if q.device.type == "cpu" and not torch.compiler.is_compiling():
            if not 0.0 <= float(q) <= 1.0:  # (outside, the position ran into the next row's slots)
                raise ValueError(f"quantile_aggregate_slots: q must lie in [0, 1], got {float(q)}")
        else:  # checked as the graph runs, no sync
            assert_in_graph((q >= 0) & (q <= 1), "quantile_aggregate_slots: q must lie in [0, 1]")
    elif not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile_aggregate_slots: q must lie in [0, 1], got {q}")
    _check("quantile_aggregate_slots", graph, x)
    if x.dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise ValueError(f"quantile_aggregate_slots: x of dtype {x.dtype} is not supported (its values do not fit "
                         "the 32-bit sort key); use float32 or PyG's QuantileAggregation")
    E, F = graph.num_edges, x.size(1)
    count = graph.rowptr.diff()
    if E == 0:  # attached to x (a zero gradient), as the other aggregations' empty results
        return x.new_full((graph.num_dst, F), fill_value).add(x[:0].sum(0))
    with torch.no_grad():
        vals = x.detach().float().t().contiguous().index_select(1, graph.col)  # [F, E]: channels in rows
        key = _order_keys(vals).bitwise_or_(graph.row.view(1, -1) << 32)
        del vals
        # each channel's slots, row by row; stable: ties go to the earlier slot (a CSR row built from an
        # edge_index holds its slots by source id; a sparse adj_t keeps its own column order)
        perm = torch.sort(key, dim=1, stable=True).indices
        # position inside each row.  A tensor q (PyG's module keeps a float32 buffer) multiplies in its own
        # precision, as PyG does: float32 0.7 times 10 rounds to 7.0 there, but is 6.99999988 in float64,
        # which would pick the element below; a Python float multiplies in float64, as torch.quantile
        local = (q * (count - 1).clamp(min=0)).to(torch.float64) if isinstance(q, Tensor) \
            else q * (count - 1).clamp(min=0).to(torch.float64)
        start = graph.rowptr[:-1]
        lo = (local.floor().long() + start).clamp(max=E - 1)
        hi = (local.ceil().long() + start).clamp(max=E - 1)

        channel = torch.arange(F, device=x.device).view(1, -1)

        def flat(slot: Tensor) -> Tensor:  # [N] chosen slot per row -> [N * F] index of x[source, channel]
            src = graph.col[perm.gather(1, slot.view(1, -1).expand(F, -1))].t()  # [N, F] source per channel
            return (src * F + channel).reshape(-1)

    def pick(index: Tensor) -> Tensor:  # index_select: a sequential (deterministic) index_add_ backward
        return x.reshape(-1).index_select(0, index).view(-1, F)
    if interpolation in ("lower", "higher", "nearest"):
        if interpolation == "nearest":  # PyG rounds the global position (row start + local; half to even)
            pos = (local + start.to(torch.float64)).round().long() if pyg_rounding else local.round().long() + start
            nearest = pos.clamp(max=E - 1)
        else:
            nearest = None
        out = pick(flat({"lower": lo, "higher": hi, "nearest": nearest}[interpolation]))
    else:
        a, b = pick(flat(lo)), pick(flat(hi))
        if interpolation == "midpoint":
            out = 0.5 * a + 0.5 * b
        else:
            out = a + (b - a) * local.frac().to(x.dtype).view(-1, 1)
    return out.masked_fill((count == 0).view(-1, 1), fill_value)
