"""EdgeGCNConv: the GCN of OGB's molecule baselines, with edge features inside the message."""

import torch
from torch import Tensor

from gnnkit.ops import relu_message_slots, segment_reduce_slots
from gnnkit.typing import Adj

from ._attention import num_input_edges
from ._utils import check_edge_rows, graph_of, refuse_torch_func


class EdgeGCNConv(torch.nn.Module):
    r"""GCN with edge features, as in OGB's molecule examples (Hu et al. 2020, ``examples/graphproppred/mol``):

    .. math::
        \mathbf{x}'_i = \sum_{j \to i} \frac{\mathrm{ReLU}(\mathbf{W}\mathbf{x}_j + \mathbf{e}_{ji})}
        {\sqrt{\hat d_j \hat d_i}} + \frac{\mathrm{ReLU}(\mathbf{W}\mathbf{x}_i + \mathbf{r})}{\hat d_i},
        \qquad \hat d = 1 + \text{(out-)degree}

    with :math:`\mathbf{r}` a learned root embedding.  ``edge_attr`` must already have the
    node width (OGB embeds bond features with a ``BondEncoder`` per layer).  PyG has no such
    layer; ``gnnkit.ogb`` carries the message-passing reference it is tested against.

    Args:
        channels: node and edge feature width (input = output).
    """

    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels
        self.linear = torch.nn.Linear(channels, channels)
        self.root_emb = torch.nn.Embedding(1, channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.linear.reset_parameters()
        self.root_emb.reset_parameters()

    def forward(self, x: Tensor, edge_index: Adj, edge_attr: Tensor) -> Tensor:
        refuse_torch_func("EdgeGCNConv")
        if x.dim() != 2 or x.size(-1) != self.channels:
            raise ValueError(f"EdgeGCNConv: x must be [N, channels={self.channels}], got {list(x.shape)}")
        n = x.size(0)
        if edge_attr is None:
            raise ValueError(f"EdgeGCNConv needs edge_attr [E, channels={self.channels}] (edge features embedded "
                             "to the node width)")
        check_edge_rows(edge_attr, num_input_edges(edge_index), "EdgeGCNConv", "edge_attr")
        if edge_attr.dim() == 1 and self.channels == 1:
            edge_attr = edge_attr.view(-1, 1)  # [E] is one feature per edge
        if edge_attr.dim() != 2 or edge_attr.size(-1) != self.channels:
            width = 1 if edge_attr.dim() == 1 else edge_attr.size(-1)
            raise ValueError(f"EdgeGCNConv: edge_attr has {width} features but channels={self.channels} (it must "
                             f"be [E, {self.channels}], got shape {list(edge_attr.shape)}); embed edge features to "
                             "the node width first")
        graph, _ = graph_of(edge_index, n, n, use_values=False)
        x = self.linear(x)
        deg = graph.out_degree().to(x.dtype) + 1  # OGB: degree of each edge's source (row), plus the self term
        dis = deg.rsqrt()
        norm = (dis.index_select(0, graph.col) * dis.index_select(0, graph.row)).unsqueeze(-1)  # per CSR slot
        msg = relu_message_slots(graph, x, graph.to_csr_order(edge_attr.to(x.dtype))) * norm
        out = segment_reduce_slots(graph, msg, "sum")
        return out + torch.relu(x + self.root_emb.weight) / deg.unsqueeze(-1)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.channels})"
