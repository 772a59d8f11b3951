r"""Multi-head graph attention aggregation (the GAT primitive).

.. math::
    s_{e,h} = \mathrm{LeakyReLU}\big(a^{src}_{j,h} + a^{dst}_{i,h} + t_{e,h}\big), \quad
    \alpha_{e,h} = \operatorname{softmax}_{e \to i}(s_{e,h}), \quad
    \mathbf{y}_{i,h} = \sum_{e = (j \to i)} \alpha_{e,h} \mathbf{x}_{j,h}

GAT's logits split into per-node terms (``a_src = <x_j, att_src>``,
``a_dst = <x_i, att_dst>``) plus an optional per-edge term ``t`` (edge
features), so the only E-sized tensors are the ``[E, H]`` scores.
The torch path composes :mod:`.softmax` and :mod:`.spmm` (whose hand-written
backwards never build an ``E x H x F`` tensor).

The fused path (:class:`FusedGATFunction`, Triton, taken when
``use_triton("gat", x)`` and neither attention dropout in training nor
``return_attention`` is asked) computes scores, softmax and aggregation in one
kernel that keeps only the per-node softmax max and sum ``[N, H]``; its backward
recomputes the attention from them (see ``kernels/gat.py`` and docs/kernels.md).
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ._autograd import apply_function, first_order_only
from ._backend import use_triton
from .graph import Graph, cached_for, check_op_inputs, check_rows, edge_list_serves, loop_edges, with_named_id_errors
from .primitives import NO_PLAN, gat_fused_bwd_op, gat_fused_op, kernel_plan, node_sums_op
from .softmax import segment_softmax_slots
from .spmm import spmm_slots


# ---------------------------------------------------------------------- fused path (Triton)
class FusedGATFunction(torch.autograd.Function):
    """Fused GAT attention: forward keeps only ``out`` and the ``[N, H]`` softmax statistics;
    backward recomputes the attention weights from them (no ``E x H x F`` tensor, no atomics)."""

    @staticmethod
    def forward(ctx, graph: Graph, x: Tensor, a_src: Tensor, a_dst: Tensor, edge_term: Optional[Tensor],
                negative_slope: float) -> Tensor:
        ctx.plan = kernel_plan(graph, "gat", x)
        out, m, z = gat_fused_op(graph.rowptr, graph.col, x, a_src, a_dst, edge_term, float(negative_slope),
                                 *ctx.plan)
        ctx.graph = graph
        ctx.t = graph.transpose() if any(ctx.needs_input_grad) else None
        ctx.plan_t = kernel_plan(graph, "gat", x, transposed=True) if ctx.t is not None else NO_PLAN
        ctx.negative_slope = float(negative_slope)
        ctx.save_for_backward(x, a_src, a_dst, edge_term, out, m, z)
        return out

    @staticmethod
    @first_order_only
    def backward(ctx, grad_out: Tensor) -> Tuple[Optional[Tensor], ...]:
        graph: Graph = ctx.graph
        x, a_src, a_dst, edge_term, out, m, z = ctx.saved_tensors
        rowptr_t, col_t, perm_t = ctx.t
        gx, gs, gd, gt = gat_fused_bwd_op(graph.rowptr, graph.col, graph.row, rowptr_t, col_t, perm_t, x, a_src,
                                          a_dst, edge_term, out, m, z, grad_out.contiguous(), ctx.negative_slope,
                                          *ctx.plan, *ctx.plan_t)
        need = ctx.needs_input_grad
        return (None, gx if need[1] else None, gs if need[2] else None, gd if need[3] else None,
                gt if edge_term is not None and need[4] else None, None)


# ---------------------------------------------------------------------- composite path
def _edge_scores_backward_graph(ctx, grad: Tensor) -> object:
    """:class:`EdgeScoresFunction`'s backward as differentiable torch ops (``first_order_only``): the LeakyReLU's
    slope per slot is constant (its second derivative is zero)."""
    graph: Graph = ctx.graph
    (saved,) = ctx.saved_tensors
    pos = saved > 0 if ctx.slope >= 0 else saved
    g = torch.where(pos, grad, grad * ctx.slope)  # the slope in grad's dtype (a float32 factor rounded 0.2)
    need = ctx.needs_input_grad
    g_src = g.new_zeros((ctx.num_src, *g.shape[1:])).index_add(0, graph.col, g) if need[1] else None
    g_dst = g.new_zeros((graph.num_dst, *g.shape[1:])).index_add(0, graph.row, g) if need[2] else None
    return None, g_src, g_dst, (g if ctx.has_term and need[3] else None), None


class EdgeScoresFunction(torch.autograd.Function):
    """``s = LeakyReLU(a_src[col] + a_dst[row] + t)`` in CSR slot order, built in place in one
    ``[E, H]`` tensor.  Backward: both node gradients are deterministic sums of the per-slot gradient
    (:func:`gnnkit.ops.reference.node_sums_ref`, an op so a compiled backward calls it as eager does):
    no atomics on GPU."""

    @staticmethod
    def forward(ctx, graph: Graph, a_src: Tensor, a_dst: Tensor, edge_term: Optional[Tensor],
                negative_slope: float) -> Tensor:
        s = a_src.index_select(0, graph.col)
        if a_dst.dtype == s.dtype and (edge_term is None or edge_term.dtype == s.dtype):
            s.add_(a_dst.index_select(0, graph.row))  # in place: one [E, H] tensor
            if edge_term is not None:
                s.add_(edge_term)
        else:  # mixed dtypes: out of place, with torch's type promotion
            s = s + a_dst.index_select(0, graph.row) + (0 if edge_term is None else edge_term)
        ctx.graph, ctx.slope, ctx.num_src = graph, negative_slope, a_src.size(0)
        ctx.t = graph.transpose() if ctx.needs_input_grad[1] else None
        ctx.has_term = edge_term is not None
        if negative_slope >= 0:  # the sign of the output is the sign of the input
            F.leaky_relu_(s, negative_slope)
            ctx.save_for_backward(s)
        else:
            pos = s > 0
            F.leaky_relu_(s, negative_slope)
            ctx.save_for_backward(pos)
        return s

    @staticmethod
    @first_order_only(differentiable=_edge_scores_backward_graph)
    def backward(ctx, grad: Tensor) -> Tuple[Optional[Tensor], ...]:
        graph: Graph = ctx.graph
        (saved,) = ctx.saved_tensors
        grad = grad.contiguous()
        if ctx.slope >= 0:
            g = torch.ops.aten.leaky_relu_backward(grad, saved, ctx.slope, True)
        else:
            g = torch.where(saved, grad, grad * ctx.slope)
        need = ctx.needs_input_grad
        rowptr_t, _, perm_t = ctx.t if ctx.t is not None else (None, None, None)
        g_src, g_dst = node_sums_op(g, graph.rowptr, graph.row, graph.col, rowptr_t, perm_t, ctx.num_src,
                                    bool(need[1]), bool(need[2]))
        g_src, g_dst = (g_src if need[1] else None), (g_dst if need[2] else None)
        return None, g_src, g_dst, (g if ctx.has_term and need[3] else None), None


def edge_dropout(graph: Graph, weights: Tensor, p: float, training: bool, draw_in_csr_order: bool = False) -> Tensor:
    """Dropout on per-slot ``weights`` (CSR order) whose random mask is drawn in the graph's input
    edge order, so a seeded run drops the same edges as PyG (which drops in edge order);
    ``draw_in_csr_order``: drawn in CSR order (PyG's order for a sparse ``adj_t``, whose loops PyG sorts in)."""
    if p <= 0 or not training:
        return weights
    keep = F.dropout(weights.new_ones(weights.shape), p=p, training=True)
    return weights * (keep if draw_in_csr_order else graph.to_csr_order(keep))


COO_ATTENTION_MAX = 1 << 19
COO_ATTENTION_MAX_EDGES = 1 << 13
_COO_ATTENTION_DTYPES = (torch.float32, torch.float64)


def coo_gat_attention(edge_index: Tensor, x: Tensor, a_src: Tensor, a_dst: Tensor, negative_slope: float = 0.2,
                      add_self_loops: bool = True, dropout: float = 0.0, training: bool = False) -> Optional[Tensor]:
    """:func:`gat_attention` on a small plain ``edge_index`` with no :class:`Graph`: ``[num_dst, H, F]``, or
    ``None`` where this does not apply (then the caller takes the CSR path).

    ``x`` ``[num_src, H, F]``, ``a_src`` ``[num_src, H]``, ``a_dst`` ``[num_dst, H]``; ``add_self_loops``:
    GAT's loops, as PyG adds them (the input's own loops dropped, one per node ``< min(num_src, num_dst)``
    appended).  The attention runs on that edge list as PyG's does: gathers, a scatter max, ``index_add_``
    sums, the ``[E', H, F]`` messages materialised, plain autograd — on a graph seen once (a mini-batch)
    cheaper than building its CSR and transpose, which the CSR path needs (MUTAG batches of 32 graphs:
    ~1.5x faster).  Dropout draws its mask over ``[E', H]`` in this edge order, as :func:`edge_dropout`
    does: a seeded run drops the same edges on either path.  The sums run in edge order rather than CSR
    slot order, so results agree with the CSR path to rounding, not bit for bit.

    Applies in eager mode on CPU (no transform or dispatch mode, no autocast, the torch backend) to plain
    float32/float64 tensors with 1 to :data:`COO_ATTENTION_MAX_EDGES` edges ``E'`` (counting the loops) and at
    most :data:`COO_ATTENTION_MAX` message values ``E' * H * F``: beyond, the CSR path's products win, at least on
    a graph used again (Cora's 13,264 edges with loops, 1 head of 7: a training step 5.0 ms on the CSR path with
    its structure kept, 7.0 ms here).  An id out of range raises :func:`as_graph`'s error."""
    if not edge_list_serves(edge_index, x, "gat") or type(a_src) is not Tensor or type(a_dst) is not Tensor \
            or x.dim() != 3 or a_src.dim() != 2 or a_dst.dim() != 2:
        return None
    (ns, H, C), nd = x.shape, a_dst.size(0)
    n_loops = min(ns, nd) if add_self_loops else 0
    edges = edge_index.size(1) + n_loops
    if not 0 < edges <= COO_ATTENTION_MAX_EDGES or edges * H * C > COO_ATTENTION_MAX or a_src.shape != (ns, H) \
            or a_dst.size(1) != H or x.dtype not in _COO_ATTENTION_DTYPES \
            or a_src.dtype != x.dtype or a_dst.dtype != x.dtype or a_src.device != x.device or a_dst.device != x.device:
        return None
    return with_named_id_errors(
        lambda: _coo_attention(edge_index, x, a_src, a_dst, float(negative_slope), n_loops, dropout, training),
        edge_index, ns, nd)


def _coo_attention(edge_index: Tensor, x: Tensor, a_src: Tensor, a_dst: Tensor, negative_slope: float,
                   n_loops: int, dropout: float, training: bool) -> Tensor:
    src, dst = cached_for(edge_index, ("loop_edges", n_loops), lambda: loop_edges(edge_index, n_loops))
    nd, H = a_dst.shape
    s = F.leaky_relu(a_src.index_select(0, src) + a_dst.index_select(0, dst), negative_slope)  # [E', H]
    # the softmax: minus each destination's maximum (a constant to the gradient), exp, over the sum
    sd = s.detach()
    top = sd.new_full((nd, H), float("-inf")).scatter_reduce_(0, dst.view(-1, 1).expand(-1, H), sd, "amax")
    e = (s - top.index_select(0, dst)).exp()
    alpha = e / e.new_zeros(nd, H).index_add_(0, dst, e).index_select(0, dst)
    if training and dropout > 0:
        alpha = alpha * F.dropout(alpha.new_ones(alpha.shape), p=dropout, training=True)
    msg = x.index_select(0, src) * alpha.unsqueeze(-1)
    return msg.new_zeros(nd, H, x.size(2)).index_add_(0, dst, msg)


def gat_attention_slots(graph: Graph, x: Tensor, a_src: Tensor, a_dst: Tensor, edge_term: Optional[Tensor] = None,
                        negative_slope: float = 0.2, dropout: float = 0.0, training: bool = False,
                        return_attention: bool = False, edge_scale: Optional[Tensor] = None,
                        reduce: str = "sum", draw_in_csr_order: bool = False) -> Tuple[Tensor, Optional[Tensor]]:
    """:func:`gat_attention` with ``edge_term`` and the returned attention weights in CSR slot
    order (what layers use); only row counts are checked (the layer checked the rest).  ``edge_scale`` ``[E]``
    (CSR order) multiplies each edge's message after the softmax (an explainer's edge mask); the
    returned attention weights are the unscaled ones (after dropout in training, as PyG's).  ``reduce``: how the
    weighted messages are combined (``sum``, GAT's; ``mean``/``max``/``min`` as PyG's ``aggr``).
    ``draw_in_csr_order``: dropout's mask drawn in CSR order (see :func:`edge_dropout`)."""
    check_rows(x, graph.num_src, "x", "source nodes")
    check_rows(a_src, graph.num_src, "a_src", "source nodes")
    check_rows(a_dst, graph.num_dst, "a_dst", "destination nodes")
    check_rows(edge_term, graph.num_edges, "edge_term", "edges")
    check_rows(edge_scale, graph.num_edges, "edge_scale", "edges")
    graph.prepare_backward(x, a_src, a_dst, edge_term)
    if not return_attention and not (training and dropout > 0) and edge_scale is None and reduce == "sum" \
            and use_triton("gat", x):
        t = None if edge_term is None else edge_term.contiguous()
        out = apply_function(FusedGATFunction, graph, x.contiguous(), a_src.contiguous(), a_dst.contiguous(), t,
                                     negative_slope)
        return out, None
    s = apply_function(EdgeScoresFunction, graph, a_src, a_dst, edge_term, float(negative_slope))
    alpha = segment_softmax_slots(graph, s)
    dropped = edge_dropout(graph, alpha, dropout, training, draw_in_csr_order)
    weights = dropped if edge_scale is None else dropped * edge_scale.to(dropped.dtype).view(-1, 1)
    out = spmm_slots(graph, x, weights.to(x.dtype), reduce)
    return out, (dropped if return_attention else None)  # after dropout, as PyG returns them


def gat_attention(graph: Graph, x: Tensor, a_src: Tensor, a_dst: Tensor, edge_term: Optional[Tensor] = None,
                  negative_slope: float = 0.2, dropout: float = 0.0, training: bool = False,
                  return_attention: bool = False) -> Tuple[Tensor, Optional[Tensor]]:
    """Attention-weighted aggregation over incoming edges, all heads at once.

    Args:
        graph: from :func:`gnnkit.ops.as_graph`.
        x: source features ``[num_src, H, F]``.
        a_src: source scores ``[num_src, H]``; a_dst: destination scores ``[num_dst, H]``.
        edge_term: optional per-edge scores ``[E, H]`` in the input edge order.
        negative_slope: LeakyReLU slope.
        dropout: dropout probability on the attention weights (only when ``training``).
        return_attention: also return the attention weights ``[E, H]`` (input edge order; after dropout).

    Returns:
        ``(out [num_dst, H, F], alpha or None)``.
    """
    # (integer x: the weights were cast to it, all 0 — refused by name)
    check_op_inputs("gat_attention", graph, floating=("x", "a_src", "a_dst", "edge_term"), x=x, a_src=a_src,
                    a_dst=a_dst, edge_term=edge_term)
    if x.dim() != 3 or x.size(0) != graph.num_src:
        raise ValueError(f"x must have shape [num_src={graph.num_src}, H, F], got {list(x.shape)}")
    if a_dst is a_src:  # one tensor for both (autograd.Function under torch.compile refuses a duplicate input)
        a_dst = a_src.view_as(a_src)
    H = x.size(1)
    if a_src.shape != (graph.num_src, H) or a_dst.shape != (graph.num_dst, H):
        raise ValueError(f"a_src must be [num_src={graph.num_src}, H={H}] and a_dst [num_dst={graph.num_dst}, "
                         f"H={H}], got {list(a_src.shape)} and {list(a_dst.shape)}")
    if edge_term is not None and edge_term.shape != (graph.num_edges, H):
        raise ValueError(f"edge_term must be [E={graph.num_edges}, H={H}], got {list(edge_term.shape)}")
    t = None if edge_term is None else graph.to_csr_order(edge_term)
    out, alpha = gat_attention_slots(graph, x, a_src, a_dst, t, negative_slope, dropout, training, return_attention)
    return out, (None if alpha is None else graph.from_csr_order(alpha))
