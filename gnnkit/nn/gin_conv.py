"""GINConv: drop-in for ``torch_geometric.nn.GINConv``."""
from typing import Any, Callable, Optional, Tuple

import torch
from torch import Tensor
from torch_geometric.nn.inits import reset

from gnnkit.typing import Adj, NodeFeatures

from ._attention import num_input_edges
from ._base import CSRMessagePassing, reduce_of, slot_mask
from ._utils import aggregate, graph_of, node_pair, pyg_fuses, resolve_size, small_aggregate


def _input_width(nn: Any) -> Optional[int]:
    """The input width of ``nn`` when its first layer states one (``in_features``, lazy -1 excluded)."""
    first = nn[0] if isinstance(nn, torch.nn.Sequential) and len(nn) > 0 else nn
    w = getattr(first, "in_features", None)
    if w is None:
        w = getattr(first, "in_channels", None)
    return w if isinstance(w, int) and w > 0 else None


class GINConv(CSRMessagePassing):
    r"""The graph isomorphism operator from `"How Powerful are Graph Neural Networks?"
    <https://arxiv.org/abs/1810.00826>`_, a drop-in for :class:`torch_geometric.nn.GINConv`.

    .. math::
        \mathbf{x}^{\prime}_i = h_{\mathbf{\Theta}} \Big( (1 + \epsilon) \cdot \mathbf{x}_i +
        \sum_{j \in \mathcal{N}(i)} \mathbf{x}_j \Big)

    The neighbour sum is one CSR SpMM: deterministic and with exact gradients for int32
    and int64 ``edge_index`` (PyG 2.8.1's int32 gradients are wrong).  A small plain ``edge_index`` (a
    mini-batch's) is summed without the CSR (:func:`gnnkit.ops.coo_sum`), in input order as PyG's scatter: the
    CSR path's bits when it is sorted by (source, destination), as a coalesced mini-batch is, else to rounding.

    Args:
        nn: the network :math:`h_{\mathbf{\Theta}}` applied after the sum (e.g. an MLP).
        eps: initial :math:`\epsilon` (default 0).
        train_eps: learn :math:`\epsilon` (default False).

    Shapes:
        - input: node features :math:`(|V|, F_{in})` or a pair; edge indices or sparse ``adj_t``
        - output: :math:`(|V_t|, F_{out})`
    """

    def __init__(self, nn: Callable, eps: float = 0.0, train_eps: bool = False, **kwargs: Any):
        kwargs.setdefault("aggr", "add")
        reduce = reduce_of("GINConv", kwargs["aggr"])
        super().__init__(**kwargs)
        self._reduce = reduce
        self.nn = nn
        self.initial_eps = eps
        if train_eps:
            self.eps = torch.nn.Parameter(torch.empty(1))
        else:
            self.register_buffer("eps", torch.empty(1))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        reset(self.nn)
        self.eps.data.fill_(self.initial_eps)

    def forward(self, x: NodeFeatures, edge_index: Adj,
                size: Optional[Tuple[int, int]] = None) -> Tensor:
        if isinstance(x, Tensor) and x.dim() == 3:  # static graph: [B, N, F], one graph for every batch row
            if self.static_nodes_first(x):  # node_dim=0: [N, B, F]
                return self._static(x.transpose(0, 1), edge_index).transpose(0, 1)
            return self._static(x, edge_index)
        edge_index = self.oriented(edge_index)
        x_src, x_dst, _ = node_pair(x, "GINConv", dense=True)
        x_src, x_dst = self._floating(x_src), self._floating(x_dst)
        width = _input_width(self.nn)
        if width is not None and x_src.size(-1) != width:
            raise ValueError(f"GINConv: x has {x_src.size(-1)} features but nn expects {width} (its first layer's "
                             "in_features); fix the input or nn")
        if x_dst is not None and x_dst.size(-1) != x_src.size(-1):
            raise ValueError(f"GINConv: x_src has {x_src.size(-1)} features but x_dst has {x_dst.size(-1)}; "
                             "both sides must have the same width (the root term is added to the sum)")
        ns, nd = resolve_size(edge_index, x_src, x_dst, size)
        # (1 + eps) x_dst is added in place into the SpMM result: one pass, not a multiply and an add.
        # A fixed eps on CPU is read as a number (free there), so with eps = 0 the backward hands the
        # gradient to x_dst as it is instead of multiplying it by 1.
        scale = None
        if x_dst is not None:
            scale = 1 + self.eps
            # a wider eps (fp32 with bf16 x, or a .double() layer) promotes the result, as PyG's (1 + eps) * x: kept
            # as a tensor then
            if not self.eps.requires_grad and self.eps.device.type == "cpu" and not torch.compiler.is_compiling() \
                    and torch.promote_types(x_dst.dtype, self.eps.dtype) == x_dst.dtype:
                scale = float(1 + self.eps)  # rounded in eps' dtype first, as PyG's (1 + eps) * x
        if self._explain is not True:  # a small mini-batch's edge_index: no graph to build
            out = small_aggregate(edge_index, x_src, ns, nd, self._reduce, x_dst, scale)
            if out is not None:
                return self.nn(out)
        graph, w = graph_of(edge_index, ns, nd, use_values=False)
        mask = self.explain_mask(num_input_edges(edge_index))
        fused = pyg_fuses(self, edge_index, mask)
        if mask is not None:  # PyG's explain_message: each edge's message times its mask
            w = slot_mask(graph, mask)
        elif not fused:  # PyG's message path (an Aggregation object) ignores a torch.sparse adj_t's values
            w = None
        out = aggregate(graph, x_src, w, self._reduce, x_dst, scale, fused)
        return self.nn(out)

    def _floating(self, x: Optional[Tensor]) -> Optional[Tensor]:
        """Integer features as PyG takes them: summed, then ``(1 + eps) x`` added, a float — the same values from
        features cast to eps' dtype first (exact below 2^24).  Bool features are refused (PyG's sum of bools is a
        logical or)."""
        if x is None or x.is_floating_point() or x.is_complex():
            return x
        if x.dtype == torch.bool:
            raise ValueError("GINConv: x holds bool features (PyG sums them as a logical or); fix: x.float()")
        return x.to(self.eps.dtype)

    def _static(self, x: Tensor, edge_index: Adj) -> Tensor:
        x = self._floating(x)
        B, N, F = x.shape
        flat = x.transpose(0, 1).reshape(N, B * F)  # every batch row aggregated by one SpMM
        graph, w = graph_of(self.oriented(edge_index), N, N, use_values=False)
        mask = self.explain_mask(num_input_edges(edge_index))
        w = slot_mask(graph, mask) if mask is not None else w
        out = aggregate(graph, flat, w, self._reduce).view(N, B, F).transpose(0, 1)
        return self.nn(out + (1 + self.eps) * x)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(nn={self.nn})"
