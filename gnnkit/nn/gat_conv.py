"""GATConv: drop-in for ``torch_geometric.nn.GATConv`` on gnnkit's fused attention op."""
from typing import Any, Optional, Tuple, Union

import torch
from torch import Tensor
from torch.nn import Parameter
from torch_geometric.nn.dense.linear import Linear
from torch_geometric.nn.inits import glorot, zeros

from gnnkit.ops import bias_add, coo_gat_attention, gat_attention_slots
from gnnkit.typing import Adj, AttentionOutput, NodeFeatures

from ._attention import (
    add_residual_and_bias,
    attention_output,
    attention_structure,
    edge_features,
    num_input_edges,
    set_attention_options,
)
from ._base import CSRMessagePassing, reduce_of, slot_mask
from ._utils import check_edge_rows, check_floating, check_width, node_pair, plain_linears, resolve_size


def _score_matrix(weight: Tensor, att: Tensor, H: int, C: int) -> Tensor:
    """``M [F_in, H]`` with ``x @ M == (Θ x).view(H, C) · att`` per head:
    ``M[d, h] = Σ_c Θ[h*C+c, d] att[h, c]``."""
    return (weight.view(H, C, -1) * att.view(H, C, 1)).sum(1).t()


def _fold_scores(f_in: int, heads: int, channels: int) -> bool:
    """Whether the node scores are computed as ``x @ M`` (``[F_in, 2H]``, see :func:`_score_matrix`)
    rather than from the transformed features: only for inputs narrower than half the output
    (``F_in < H * C / 2``).  Measured on 2 CPU threads, forward + backward of the scores:
    ``x @ M`` is 1.2x faster at F_in = 16 (H = C = 8), on par at 64, and 1.2-1.6x slower from
    128 to 1433 input features (docs/layers/benchmarks.md)."""
    return 2 * f_in < heads * channels


class GATConv(CSRMessagePassing):
    r"""The graph attentional operator from `"Graph Attention Networks"
    <https://arxiv.org/abs/1710.10903>`_, a drop-in for :class:`torch_geometric.nn.GATConv`.

    .. math::
        \mathbf{x}^{\prime}_i = \Big\Vert_{h=1}^{H} \sum_{j \in \mathcal{N}(i) \cup \{ i \}}
        \alpha_{i,j}^{h} \mathbf{\Theta}^{h}_{s} \mathbf{x}_{j}, \qquad
        \alpha_{i,j}^{h} = \operatorname{softmax}_j \Big( \mathrm{LeakyReLU}\big(
        \mathbf{a}^{h\top}_{s} \mathbf{\Theta}^{h}_{s} \mathbf{x}_j +
        \mathbf{a}^{h\top}_{t} \mathbf{\Theta}^{h}_{t} \mathbf{x}_i +
        \mathbf{a}^{h\top}_{e} \mathbf{\Theta}^{h}_{e} \mathbf{e}_{j,i} \big) \Big)

    (heads averaged instead of concatenated when ``concat=False``).  The logits split into
    per-node terms plus an optional per-edge term, so the layer calls
    :func:`gnnkit.ops.gat_attention` and never builds an ``E x H x F`` tensor; the edge term
    is folded to ``edge_attr @ M`` with ``M = (Θ_e · a_e)`` ``[edge_dim, H]``.

    Differences from PyG, on purpose: ``edge_attr`` without ``edge_dim`` raises (PyG ignores
    it silently, pyg-team/pytorch_geometric#9940); int32 ``edge_index`` gives int64's
    outputs and gradients (PyG 2.8.1's input gradients are silently wrong for int32 ids without self-loops).

    Args:
        in_channels: input width, or ``(src, dst)`` widths for bipartite graphs; -1 = lazy.
        out_channels: width per head.
        heads: number of attention heads (default 1).
        concat: concatenate the heads (True, default) or average them.
        negative_slope: LeakyReLU slope (default 0.2).
        dropout: dropout on the attention coefficients in training (default 0).
        add_self_loops: add a self-loop to every node (existing loops are replaced; default True).
        edge_dim: edge feature width; needed to use ``edge_attr`` (default None).
        fill_value: edge features of the added loops: a number, a tensor, or ``"mean"``
            (default), ``"add"``/``"sum"``, ``"max"``, ``"min"`` of the incoming edges' features.
        bias: learn an additive bias (default True).
        residual: add a linear projection of the (destination) input (default False).

    Shapes:
        - input: node features :math:`(|V|, F_{in})` or a pair; edge indices :math:`(2, |E|)`
          or a sparse ``adj_t``; edge features :math:`(|E|, D)` (optional)
        - output: :math:`(|V_t|, H \cdot F_{out})` (or :math:`(|V_t|, F_{out})` without
          concat); with ``return_attention_weights=True`` also ``(edge_index, alpha [E', H])``
    """

    def __init__(self, in_channels: Union[int, Tuple[int, int]], out_channels: int, heads: int = 1,
                 concat: bool = True, negative_slope: float = 0.2, dropout: float = 0.0,
                 add_self_loops: bool = True, edge_dim: Optional[int] = None,
                 fill_value: Union[float, Tensor, str] = "mean", bias: bool = True, residual: bool = False,
                 **kwargs: Any):
        kwargs.setdefault("aggr", "add")
        reduce = reduce_of("GATConv", kwargs["aggr"])
        super().__init__(node_dim=kwargs.pop("node_dim", 0), **kwargs)
        self._reduce = reduce
        set_attention_options(self, "GATConv", in_channels, out_channels, heads, concat, negative_slope, dropout,
                              add_self_loops, edge_dim, fill_value, residual)
        self.lin = self.lin_src = self.lin_dst = None
        if isinstance(in_channels, int):
            self.lin = Linear(in_channels, heads * out_channels, bias=False, weight_initializer="glorot")
        else:
            self.lin_src = Linear(in_channels[0], heads * out_channels, False, weight_initializer="glorot")
            self.lin_dst = Linear(in_channels[1], heads * out_channels, False, weight_initializer="glorot")
        self.att_src = Parameter(torch.empty(1, heads, out_channels))
        self.att_dst = Parameter(torch.empty(1, heads, out_channels))
        if edge_dim is not None:
            self.lin_edge = Linear(edge_dim, heads * out_channels, bias=False, weight_initializer="glorot")
            self.att_edge = Parameter(torch.empty(1, heads, out_channels))
        else:
            self.lin_edge = None
            self.register_parameter("att_edge", None)
        add_residual_and_bias(self, in_channels if isinstance(in_channels, int) else in_channels[1], residual, bias)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        for lin in (self.lin, self.lin_src, self.lin_dst, self.lin_edge, self.res):
            if lin is not None:
                lin.reset_parameters()
        glorot(self.att_src)
        glorot(self.att_dst)
        glorot(self.att_edge)
        zeros(self.bias)

    def forward(self, x: NodeFeatures, edge_index: Adj,
                edge_attr: Optional[Tensor] = None, size: Optional[Tuple[int, int]] = None,
                return_attention_weights: Optional[bool] = None) -> AttentionOutput:
        H, C = self.heads, self.out_channels
        given, edge_index = edge_index, self.oriented(edge_index)
        x_src, x_dst, is_pair = node_pair(x, "GATConv")
        check_floating("GATConv", x)
        if self.lin is not None:
            check_width(x_src, self.in_channels, "GATConv", "x", "in_channels")
            check_width(x_dst, self.in_channels, "GATConv", "x_dst", "in_channels")
        else:
            check_width(x_src, self.in_channels[0], "GATConv", "x_src", "in_channels[0]")
            check_width(x_dst, self.in_channels[1], "GATConv", "x_dst", "in_channels[1]")
        if edge_attr is not None and self.lin_edge is None:
            raise ValueError("GATConv got edge_attr but was built without edge_dim; pass "
                             "edge_dim=edge_attr.size(-1) to the constructor (PyG would ignore edge_attr "
                             "silently) or drop edge_attr")
        ns, nd = resolve_size(edge_index, x_src, x_dst, size)

        res = self.res(x_dst) if self.res is not None and x_dst is not None else None
        lin_s, lin_d = (self.lin, self.lin) if self.lin is not None else (self.lin_src, self.lin_dst)
        h_src = lin_s(x_src).view(-1, H, C)
        if not plain_linears(lin_s, lin_d) or not _fold_scores(x_src.size(-1), H, C):
            # PyG's order of operations: for a lazy Linear before its first call, a Linear with hooks, a pruning
            # mask or another forward (the scores must see what lin(x) gives), and for wide inputs
            # (Cora's 1433 features), where a pass over the [S, H, C] features is cheaper than an
            # [S, F_in] x [F_in, 2H] product and its backward
            shared = not is_pair and lin_s is lin_d  # x_dst is x_src, transformed by the same Linear
            h_dst = None if x_dst is None else (h_src if shared else lin_d(x_dst).view(-1, H, C))
            a_src = (h_src * self.att_src).sum(-1)
            a_dst = h_src.new_zeros(nd, H) if h_dst is None else (h_dst * self.att_dst).sum(-1)
        elif not is_pair and x_dst is not None and lin_s is lin_d:
            # <Θ x_j, a_s> = x_j @ M_s with M_s[d, h] = Σ_c Θ[h*C + c, d] a_s[h, c]: both node
            # scores in one [S, F_in] x [F_in, 2H] product, no pass over the [S, H, C] features
            a = x_src @ torch.cat([_score_matrix(lin_s.weight, self.att_src, H, C),
                                   _score_matrix(lin_s.weight, self.att_dst, H, C)], 1)
            a_src, a_dst = a[:, :H], a[:, H:]
        else:
            a_src = x_src @ _score_matrix(lin_s.weight, self.att_src, H, C)
            a_dst = (h_src.new_zeros(nd, H) if x_dst is None
                     else x_dst @ _score_matrix(lin_d.weight, self.att_dst, H, C))

        out = weights = None
        if edge_attr is None and not return_attention_weights and self._explain is not True \
                and self._reduce == "sum":  # a small plain edge_index (a mini-batch): no CSR to build
            out = coo_gat_attention(edge_index, h_src, a_src, a_dst, self.negative_slope, self.add_self_loops,
                                    self.dropout, self.training)
        if out is None:
            out, weights = self._csr_attention(edge_index, edge_attr, h_src, a_src, a_dst, ns, nd,
                                               bool(return_attention_weights), given)
        out = out.reshape(-1, H * C) if self.concat else out.mean(dim=1)
        if res is not None:
            out = out + res
        if self.bias is not None:
            out = bias_add(out, self.bias)
        return (out, weights) if return_attention_weights else out

    def _csr_attention(self, edge_index: Adj, edge_attr: Optional[Tensor], h_src: Tensor, a_src: Tensor,
                       a_dst: Tensor, ns: int, nd: int, return_attention_weights: bool, given: Adj = None
                       ) -> Tuple[Tensor, Optional[Tuple[Tensor, Tensor]]]:
        """The attention over the graph's CSR (with its loops): ``([nd, H, C], None)``, or with
        ``return_attention_weights`` PyG's ``(edge_index, alpha)`` in place of ``None``."""
        H, C = self.heads, self.out_channels
        st = attention_structure(edge_index, ns, nd, self.add_self_loops, self.flow == "target_to_source")
        edge_term = None
        if edge_attr is not None:
            ea = edge_attr.view(-1, 1) if edge_attr.dim() == 1 else edge_attr
            check_edge_rows(ea, num_input_edges(edge_index), "GATConv", "edge_attr")
            check_width(ea, self.edge_dim, "GATConv", "edge_attr", "edge_dim")
            ea = st.graph.to_csr_order(edge_features(st, ea, self.fill_value))
            if plain_linears(self.lin_edge):
                edge_term = ea @ _score_matrix(self.lin_edge.weight, self.att_edge, H, C)  # [E', H], CSR order
            else:  # PyG's order: lin_edge called (its hooks, mask or forward), then the score per head
                edge_term = (self.lin_edge(ea).view(-1, H, C) * self.att_edge).sum(-1)

        mask = self.explain_mask(num_input_edges(edge_index))
        scale = None if mask is None else slot_mask(st.graph, mask, st.keep, st.num_loops)
        out, alpha = gat_attention_slots(st.graph, h_src, a_src, a_dst, edge_term, self.negative_slope,
                                         self.dropout, self.training, return_attention_weights, scale,
                                         self._reduce, st.draw_in_csr_order)
        if not return_attention_weights:
            return out, None
        return out, attention_output(edge_index, st, alpha, ns, nd, self.flow == "target_to_source", given)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, heads={self.heads})"

