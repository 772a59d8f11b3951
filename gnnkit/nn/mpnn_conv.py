"""MPNNConv: message MLP over [h_i, h_j, e_ij], CSR aggregation, GRU update (Gilmer et al. 2017)."""
from typing import Optional

import torch
from torch import Tensor
from torch.nn import GRUCell, Linear, ModuleList

from gnnkit._checks import check_int
from gnnkit.ops import gather_slots, segment_reduce_slots
from gnnkit.typing import Adj

from ._attention import num_input_edges
from ._utils import (
    check_edge_rows,
    check_width,
    edge_linear,
    graph_of,
    linear,
    node_pair,
    refuse_torch_func,
    resolve_size,
)

_AGGRS = ("sum", "mean", "max")


class _Message(torch.nn.Module):
    """``MLP([h_i, h_j, e_ij])`` with its first layer split into per-node and per-edge parts,
    so only ``[E, hidden]`` is gathered (never ``[E, 2F + D]``)."""

    def __init__(self, channels: int, edge_dim: Optional[int], hidden: int):
        super().__init__()
        self.lin_i = Linear(channels, hidden)              # the bias of the first layer
        self.lin_j = Linear(channels, hidden, bias=False)
        self.lin_e = Linear(edge_dim, hidden, bias=False) if edge_dim else None
        self.lin_out = Linear(hidden, channels)

    def reset_parameters(self) -> None:
        for lin in (self.lin_i, self.lin_j, self.lin_e, self.lin_out):
            if lin is not None:
                lin.reset_parameters()

    def forward(self, x: Tensor, graph, ea_csr: Optional[Tensor]) -> Tensor:
        h = gather_slots(graph, linear(self.lin_i, x), "dst") + gather_slots(graph, self.lin_j(x), "src")
        if self.lin_e is not None:
            h = h + edge_linear(self.lin_e, ea_csr)
        return linear(self.lin_out, h.relu())  # [E, F] in CSR order


class MPNNConv(torch.nn.Module):
    r"""Message passing with a GRU update, `"Neural Message Passing for Quantum Chemistry"
    <https://arxiv.org/abs/1704.01212>`_ (no PyG counterpart with this exact form).

    .. math::
        \mathbf{m}_{j \to i}^{t} = \mathrm{MLP}\big([\mathbf{h}_i^t, \mathbf{h}_j^t, \mathbf{e}_{j,i}]\big),
        \quad \bar{\mathbf{m}}_i^t = \bigoplus_{j \in \mathcal{N}(i)} \mathbf{m}_{j \to i}^{t},
        \quad \mathbf{h}_i^{t+1} = \mathrm{GRU}\big(\bar{\mathbf{m}}_i^t, \mathbf{h}_i^t\big)

    applied ``num_steps`` times, with one (message, GRU) pair shared by all steps
    (``share_weights=True``, as in Gilmer et al.) or one pair per step.  Aggregation is a
    CSR segment reduction (deterministic; max sends its gradient to one arg-max).

    Args:
        channels: node state width (input and output).
        edge_dim: edge feature width, or None for graphs without edge features.
        aggr: ``"sum"`` (default), ``"mean"`` or ``"max"``.
        num_steps: message-passing steps :math:`T` (default 1).
        share_weights: one module applied :math:`T` times (default True).
        hidden_channels: width of the message MLP (default ``channels``).

    Shapes:
        - input: node states :math:`(|V|, F)`, edge indices :math:`(2, |E|)` or sparse ``adj_t``,
          edge features :math:`(|E|, D)` when ``edge_dim`` is set
        - output: :math:`(|V|, F)`
    """

    def __init__(self, channels: int, edge_dim: Optional[int] = None, aggr: str = "sum", num_steps: int = 1,
                 share_weights: bool = True, hidden_channels: Optional[int] = None):
        super().__init__()
        if aggr not in _AGGRS:
            raise ValueError(f"MPNNConv: aggr={aggr!r} is not supported; use one of {_AGGRS}")
        check_int("num_steps", num_steps, 1, who="MPNNConv")
        check_int("channels", channels, 1, who="MPNNConv")
        if hidden_channels is not None:  # 0 fell back to channels before
            check_int("hidden_channels", hidden_channels, 1, who="MPNNConv", hint=" (or None: channels)")
        if edge_dim is not None:  # 0 was read as None before
            check_int("edge_dim", edge_dim, 1, who="MPNNConv", hint=" (or None: no edge features)")
        self.channels = channels
        self.edge_dim = edge_dim
        self.aggr = aggr
        self.num_steps = num_steps
        self.share_weights = share_weights
        hidden = hidden_channels or channels
        n = 1 if share_weights else num_steps
        self.message = ModuleList([_Message(channels, edge_dim, hidden) for _ in range(n)])
        self.gru = ModuleList([GRUCell(channels, channels) for _ in range(n)])
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m, g in zip(self.message, self.gru):
            m.reset_parameters()
            g.reset_parameters()

    def forward(self, x: Tensor, edge_index: Adj, edge_attr: Optional[Tensor] = None) -> Tensor:
        refuse_torch_func("MPNNConv")
        x, _, is_pair = node_pair(x, "MPNNConv", dense=True)
        if is_pair:
            raise ValueError("MPNNConv updates node states in place of themselves; pass one tensor x, not a pair")
        check_width(x, self.channels, "MPNNConv", "x", "channels")
        ns, nd = resolve_size(edge_index, x, x, None)
        graph, _ = graph_of(edge_index, ns, nd, use_values=False)
        ea = None
        if self.edge_dim:
            if edge_attr is None:
                raise ValueError(f"MPNNConv was built with edge_dim={self.edge_dim}: pass edge_attr [E, "
                                 f"{self.edge_dim}] (or build it with edge_dim=None)")
            ea = edge_attr.view(-1, 1) if edge_attr.dim() == 1 else edge_attr
            check_edge_rows(ea, num_input_edges(edge_index), "MPNNConv", "edge_attr")
            check_width(ea, self.edge_dim, "MPNNConv", "edge_attr", "edge_dim")
            ea = graph.to_csr_order(ea)
        elif edge_attr is not None:
            raise ValueError("MPNNConv got edge_attr but was built without edge_dim; pass "
                             "edge_dim=edge_attr.size(-1) to the constructor or drop edge_attr")
        h = x
        for t in range(self.num_steps):
            k = 0 if self.share_weights else t
            msg = self.message[k](h, graph, ea)
            m = segment_reduce_slots(graph, msg, self.aggr)
            h = self.gru[k](m, h)
        return h

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.channels}, edge_dim={self.edge_dim}, aggr={self.aggr}, "
                f"num_steps={self.num_steps})")
