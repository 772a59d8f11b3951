r"""LSTM neighbourhood aggregation (GraphSAGE-LSTM) without padding.

.. math::
    \mathbf{h}_{\mathcal{N}(i)} = \mathrm{LSTM}\big(\mathbf{x}_{\pi(1)}, \ldots,
    \mathbf{x}_{\pi(d_i)}\big)_{d_i}, \qquad \pi \text{ a random permutation of } \mathcal{N}(i)

Each node's neighbours are fed to the LSTM as one sequence and the hidden state after
the node's *last real neighbour* is its aggregate.  The sequences go to the LSTM as a
``PackedSequence`` built straight from the CSR structure: nodes sorted by decreasing
degree, time step ``t`` holds the ``t``-th neighbour of every node with degree ``> t``.
No node is padded to the maximum degree (PyG pads ``N x max_deg x F`` and reads the
state after the padding), no pre-sorted ``edge_index`` is needed, and in training every
call shuffles each neighbourhood with a fresh permutation (GraphSAGE, Hamilton et al.
2017); in eval the order is the CSR order (sources ascending), so results are repeatable.
Nodes without neighbours get zeros.
"""
import torch
from torch import Tensor
from torch.nn import LSTM
from torch.nn.utils.rnn import PackedSequence

from gnnkit.ops import Graph


def _packed_layout(graph: Graph, shuffle: bool):
    """``(gather, batch_sizes, sorted_nodes, nonempty)``: ``gather[k]`` is the source node
    of packed element ``k``."""
    deg = graph.in_degree()
    rowptr = graph.rowptr
    E = graph.num_edges
    slots = torch.arange(E, device=graph.device)
    if shuffle and E > 0:
        # random order within each row: sort random keys, then stably regroup by row
        p = torch.randperm(E, device=graph.device)
        p = p[torch.sort(graph.row[p], stable=True).indices]
        slots = p
    order = torch.sort(deg, descending=True, stable=True).indices  # nodes by decreasing degree
    num_nonempty = int((deg > 0).sum())
    sorted_nodes = order[:num_nonempty]
    sdeg = deg[sorted_nodes]
    max_deg = int(sdeg[0]) if num_nonempty > 0 else 0
    # batch_sizes[t] = #nodes with degree > t
    cnt = torch.bincount(sdeg, minlength=max_deg + 1)
    batch_sizes = (num_nonempty - torch.cumsum(cnt, 0))[:max_deg]
    offsets = torch.cumsum(batch_sizes, 0) - batch_sizes  # start of each time step
    rank = torch.empty_like(deg)
    rank[sorted_nodes] = torch.arange(num_nonempty, device=graph.device)
    pos = torch.arange(E, device=graph.device) - rowptr[graph.row]  # position within the row
    packed_index = offsets[pos] + rank[graph.row]  # where CSR slot k goes in the packed data
    gather = torch.empty(E, dtype=torch.long, device=graph.device)
    gather[packed_index] = graph.col[slots]
    return gather, batch_sizes.cpu(), sorted_nodes, num_nonempty


class LSTMAggregation(torch.nn.Module):
    """State-dict compatible with ``torch_geometric.nn.aggr.LSTMAggregation`` (``lstm.*``)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.lstm = LSTM(in_channels, out_channels, batch_first=True)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.lstm.reset_parameters()

    def forward(self, x: Tensor, graph: Graph) -> Tensor:
        """``x`` ``[num_src, F]`` -> ``[num_dst, out_channels]``."""
        if x.size(0) != graph.num_src:
            raise ValueError(f"LSTMAggregation: x has {x.size(0)} rows but the graph has {graph.num_src} sources")
        out = x.new_zeros(graph.num_dst, self.out_channels)
        gather, batch_sizes, sorted_nodes, n = _packed_layout(graph, self.training)
        if n == 0:
            return out + 0 * sum(p.sum() for p in self.lstm.parameters())  # keep params in the graph
        data = x.index_select(0, gather)
        ident = torch.arange(n, device=x.device)
        seq = PackedSequence(data, batch_sizes, ident, ident)
        _, (h, _) = self.lstm(seq)
        return out.index_copy(0, sorted_nodes, h[-1])

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.in_channels}, {self.out_channels})"
