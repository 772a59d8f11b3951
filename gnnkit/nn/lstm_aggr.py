r"""LSTM neighbourhood aggregation (GraphSAGE-LSTM) without padding.

.. math::
    \mathbf{h}_{\mathcal{N}(i)} = \mathrm{LSTM}\big(\mathbf{x}_{\pi(1)}, \ldots,
    \mathbf{x}_{\pi(d_i)}\big)_{d_i}, \qquad \pi \text{ a random permutation of } \mathcal{N}(i)

Each node's neighbours are fed to the LSTM as one sequence and the hidden state after
the node's *last real neighbour* is its aggregate.  Nodes are bucketed by in-degree and each
bucket of degree ``d`` is one dense ``[n_d, d, F]`` LSTM batch built straight from the CSR
structure, so no node is padded (PyG pads ``N x max_deg x F`` and reads the state after
the padding), the dense batches take PyTorch's fast LSTM kernel (a ``PackedSequence`` version ran
2.8x slower on CPU: 4.70 s vs 1.68 s forward+backward on ``benchmarks/layers_speed.py``'s
``sage_lstm_small`` graph), no pre-sorted ``edge_index`` is needed, and in training every
call shuffles each neighbourhood with a fresh permutation (GraphSAGE, Hamilton et al.
2017); in eval the order is the CSR order (sources ascending), so results are repeatable.
Nodes without neighbours get zeros.
"""
import torch
from torch import Tensor
from torch.nn import LSTM

from gnnkit.ops import Graph


def _degree_buckets(graph: Graph, shuffle: bool):
    """``[(nodes [n_d], sources [n_d, d])]``, one entry per distinct in-degree ``d > 0``:
    ``sources[k, t]`` is the ``t``-th neighbour of ``nodes[k]`` (a random order per call when
    ``shuffle``, CSR order otherwise).  Every edge appears exactly once: no padding."""
    deg = graph.in_degree()
    E = graph.num_edges
    slots = torch.arange(E, device=graph.device)
    if shuffle and E > 0:
        # random order within each row: sort random keys, then stably regroup by row
        p = torch.randperm(E, device=graph.device)
        slots = p[torch.sort(graph.row[p], stable=True).indices]
    order = torch.sort(deg, stable=True).indices  # nodes by increasing degree
    sdeg = deg[order]
    values, counts = torch.unique_consecutive(sdeg, return_counts=True)
    buckets = []
    start = 0
    for d, c in zip(values.tolist(), counts.tolist()):
        nodes = order[start:start + c]
        start += c
        if d == 0:
            continue
        pos = graph.rowptr[nodes].view(-1, 1) + torch.arange(d, device=graph.device).view(1, -1)
        buckets.append((nodes, graph.col[slots[pos]]))
    return buckets


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
        buckets = _degree_buckets(graph, self.training)
        if not buckets:
            return x.new_zeros(graph.num_dst, self.out_channels) + 0 * sum(p.sum() for p in self.lstm.parameters())
        nodes, states = [], []
        for nd, src in buckets:
            _, (h, _) = self.lstm(x[src])  # [n_d, d, F]: one dense batch per degree
            nodes.append(nd)
            states.append(h[-1])
        out = x.new_zeros(graph.num_dst, self.out_channels)
        return out.index_copy(0, torch.cat(nodes), torch.cat(states))

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.in_channels}, {self.out_channels})"
