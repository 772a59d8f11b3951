"""Virtual node: one learnable extra node per graph, connected to all of the graph's nodes."""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import BatchNorm1d, Embedding, Linear, ReLU, Sequential

from gnnkit._checks import assert_in_graph, check_int, size_as_int

from ._utils import check_graph_channels, graph_features
from .readout import check_batch, global_add_pool


class VirtualNode(torch.nn.Module):
    r"""The virtual node of the OGB molecule examples (Gilmer et al. 2017; Hu et al. 2020),
    usable with any conv layer.

    .. math::
        \mathbf{h}_i \leftarrow \mathbf{h}_i + \mathbf{v}_{g(i)}, \qquad
        \mathbf{v}_g \leftarrow \mathrm{MLP}\Big(\sum_{i \in g} \mathbf{h}_i + \mathbf{v}_g\Big)
        \; (+\, \mathbf{v}_g \text{ with } \texttt{residual})

    The state starts from one learned embedding (initialised to zero, as in OGB); with ``graph_channels``
    a graph feature ``g`` seeds it too (the lecture's "graph feature as a super node"):
    :math:`\mathbf{v}_g^{(0)} = \mathbf{v}^{(0)} + \mathbf{W}_g \mathbf{g}`.  Per layer:
    ``h = vn.broadcast(h, state, batch)`` before the conv, then
    ``state = vn.update(h, state, batch)`` with the same (broadcast) ``h``.

    Args:
        channels: node width.
        dropout: dropout after the MLP (default 0).
        residual: add the old state to the new one (default False).
        graph_channels: width of a graph feature ``g`` given to :meth:`initial_state` (default 0: none).
        initial_embedding: hold the learned initial embedding (default True).  A model that stacks one
            ``VirtualNode`` per layer starts the state from the first one only; the others, built with False,
            hold no parameter that never gets a gradient (``DistributedDataParallel`` refuses such parameters
            unless ``find_unused_parameters=True``).

    With a single graph in training (a node task, ``batch=None``, or a batch of one), the MLP's
    BatchNorms use their running statistics for that step (batch statistics of one row do not exist).
    """

    def __init__(self, channels: int, dropout: float = 0.0, residual: bool = False, graph_channels: int = 0,
                 initial_embedding: bool = True):
        super().__init__()
        check_graph_channels(graph_channels, "VirtualNode")
        self.channels = channels
        self.graph_channels = graph_channels
        self.lin_graph = Linear(graph_channels, channels) if graph_channels else None
        self.dropout = dropout
        self.residual = residual
        self.embedding = Embedding(1, channels) if initial_embedding else None
        self.mlp = Sequential(Linear(channels, 2 * channels), BatchNorm1d(2 * channels), ReLU(),
                              Linear(2 * channels, channels), BatchNorm1d(channels), ReLU())
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.embedding is not None:
            torch.nn.init.zeros_(self.embedding.weight)
        if self.lin_graph is not None:
            self.lin_graph.reset_parameters()
        for m in self.mlp:
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()

    def initial_state(self, batch: Optional[Tensor], num_graphs: Optional[int] = None,
                      g: Optional[Tensor] = None) -> Tensor:
        """``[num_graphs, channels]``: every row the learned initial embedding, plus ``W_g g`` for the graph
        features ``g`` ``[num_graphs, graph_channels]`` when built with ``graph_channels``."""
        if self.embedding is None:
            raise ValueError("VirtualNode.initial_state: this VirtualNode was built with initial_embedding=False (a "
                             "later layer's); call initial_state on the first layer's VirtualNode")
        if batch is not None:
            assert_several_graphs(self, batch, num_graphs)
            _, n = check_batch(batch, None, num_graphs, "num_graphs", "VirtualNode.initial_state")
            num_graphs = n if num_graphs is not None or batch.numel() > 0 else 1
        elif num_graphs is None:
            num_graphs = 1
        else:
            num_graphs = check_int("num_graphs", size_as_int(num_graphs), 1, who="VirtualNode.initial_state")
        state = self.embedding.weight.expand(num_graphs, -1)
        g = graph_features(g, self.graph_channels, num_graphs, "VirtualNode", "initial_state")
        return state if g is None else state + self.lin_graph(g)

    def broadcast(self, x: Tensor, state: Tensor, batch: Optional[Tensor]) -> Tensor:
        """Add each graph's virtual-node state to its nodes."""
        if x.size(-1) != self.channels:
            raise ValueError(f"VirtualNode: x has {x.size(-1)} features but channels={self.channels}")
        if batch is None:
            return x + state[:1]
        if batch.dim() != 1 or batch.numel() != x.size(0):
            raise ValueError(f"VirtualNode: batch must be [num_nodes={x.size(0)}] (each node's graph), got "
                             f"{list(batch.shape)}")
        if torch.compiler.is_compiling():  # check_batch checks the ids as the compiled graph runs
            batch, _ = check_batch(batch, x.size(0), state.size(0), "num_graphs", "VirtualNode")
            return x + state.index_select(0, batch)
        batch, needed = check_batch(batch, x.size(0), None, who="VirtualNode")  # needed: max(batch) + 1, one pass
        if needed > state.size(0):
            raise ValueError(f"VirtualNode: batch names graph {needed - 1} but the state holds "
                             f"{state.size(0)} graphs; fix: num_graphs > max(batch) (or none) for initial_state")
        return x + state.index_select(0, batch.long())

    def update(self, x: Tensor, state: Tensor, batch: Optional[Tensor]) -> Tensor:
        """New state from the pooled nodes plus the old state."""
        pooled = global_add_pool(x, batch, state.size(0))
        h = pooled + state
        one = h.size(0) == 1
        if torch.compiler.is_compiling() and self.training:
            # a graph count read from batch inside a compiled graph is not known when tracing: taken as several
            # graphs, asserted when the graph runs (BatchNorm's own check of its batch would need the count)
            from torch.fx.experimental.symbolic_shapes import guard_or_false
            one = guard_or_false(one)
            if not one:
                torch._check(h.size(0) >= 2)
        if self.training and one:
            # one graph (a node task, or a batch of one): batch statistics over a single row do not exist
            # (BatchNorm raises); its BatchNorms normalise with their running statistics for this step instead
            for m in self.mlp:
                h = F.batch_norm(h, m.running_mean, m.running_var, m.weight, m.bias, False, 0.0, m.eps) \
                    if isinstance(m, BatchNorm1d) else m(h)
            new = h
        else:
            new = self.mlp(h)
        new = torch.nn.functional.dropout(new, self.dropout, self.training)
        return new + state if self.residual else new  # OGB: v + dropout(MLP(pool + v)), the old state undropped

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.channels})"


def assert_several_graphs(module: torch.nn.Module, batch: Tensor, num_graphs: Optional[int]) -> None:
    """A compiled training step that reads its graph count from ``batch`` assumes two or more graphs (the
    one-graph branch of :meth:`VirtualNode.update` cannot be chosen while tracing); a batch of one is refused as
    the graph runs, with this message instead of torch's "Runtime assertion failed for expression u0 >= 1"
    (the tensor check runs before the count is read; inductor checks its own assertion first and keeps torch's
    words)."""
    if torch.compiler.is_compiling() and module.training and num_graphs is None and batch.numel():
        assert_in_graph(batch.max() >= 1, "VirtualNode: a compiled training step got a batch of one graph (its "
                        "MLP's BatchNorm needs two or more); fix: pass num_graphs=1 for a batch of one")
