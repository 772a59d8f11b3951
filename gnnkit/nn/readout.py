r"""Graph readouts (sum / mean / max pooling, the gated readout) and the edge readout.

Pooling reduces node rows into their graph (``batch[i]`` = graph of node ``i``, any order)
with ``index_add``/``scatter_reduce`` (deterministic on CPU); graphs without nodes give 0.
"""
import numbers
from typing import Optional, Tuple

import torch
from torch import Tensor
from torch.nn import Linear, ReLU, Sequential

from gnnkit._checks import assert_in_graph, check_int, size_as_int
from gnnkit.ops import validate_edge_index

from ._utils import check_graph_channels, edge_linear, graph_features


def _node_dim(x: Tensor) -> int:
    if x.dim() not in (1, 2, 3):
        raise ValueError(f"x must be [num_nodes, F] (or [num_nodes], or [B, num_nodes, F] as PyG), got {list(x.shape)}")
    return 0 if x.dim() == 1 else x.dim() - 2


def check_batch(batch: Tensor, num_nodes: Optional[int], size: Optional[int], size_name: str = "size",
                who: str = "") -> Tuple[Tensor, int]:
    """``(batch as int64, number of graphs)``: ``batch`` a 1-D integer tensor of ``num_nodes`` graph ids (any
    order; ``num_nodes=None``: any length) in ``[0, size)``; ``size`` (named ``size_name`` in errors; None:
    ``max(batch) + 1``) an int >= 0.  Bad input is a named error."""
    pre = f"{who}: " if who else ""
    if not isinstance(batch, Tensor):
        raise ValueError(f"{pre}batch must be a tensor of graph ids [num_nodes], got {type(batch).__name__}")
    if batch.dim() != 1 or (num_nodes is not None and batch.numel() != num_nodes):
        want = "num_nodes" if num_nodes is None else f"num_nodes={num_nodes}"
        raise ValueError(f"{pre}batch must be [{want}] (the graph id of each node), got {list(batch.shape)}")
    if batch.is_floating_point() or batch.is_complex() or batch.dtype == torch.bool:
        raise ValueError(f"{pre}batch must hold integer graph ids, got {batch.dtype}; use batch.long()")
    batch = batch.long()
    size = size_as_int(size)
    if size is not None:
        if torch.compiler.is_compiling() and isinstance(size, numbers.Integral) and not isinstance(size, bool):
            # possibly a count read from the ids inside the compiled graph (a model's check_batch hands its
            # max(batch) + 1 to the pools): a Python comparison would guard on data, so checked as the graph runs
            torch._check(size >= 0)
        else:
            size = check_int(size_name, size, 0, who=who)
    if torch.compiler.is_compiling():  # no Python branch on values inside a compiled graph (fullgraph=True): the ids
        # are checked when the graph runs; without a size the graph count is read from the data, as PyG's pools do
        assert_in_graph(batch >= 0 if size is None else (batch >= 0) & (batch < size),
                        f"{pre}batch holds a graph id outside [0, {size_name})")
        if size is None and batch.numel():
            top = int(batch.max())
            torch._check(top >= 0)  # (asserted above): the count max + 1 is known to be positive when tracing
            size = top + 1
        return batch, size if size is not None else 0
    if batch.numel() > 0:
        lo, hi = torch.aminmax(batch)
        if int(lo) < 0:
            raise IndexError(f"{pre}batch holds a negative graph id ({int(lo)}); ids must lie in [0, num_graphs)")
        if size is None:
            size = int(hi) + 1
        elif int(hi) >= size:
            raise IndexError(f"{pre}batch holds graph id {int(hi)} but {size_name}={size}; pass {size_name} > "
                             "max(batch) (or leave it out)")
    elif size is None:
        size = 0
    return batch, size


def _batch(x: Tensor, batch: Tensor, size: Optional[int]):
    return check_batch(batch, x.size(_node_dim(x)), size)


def _pool(x: Tensor, batch: Optional[Tensor], size: Optional[int], reduce: str) -> Tensor:
    """As PyG's pools: without ``batch`` one graph, reduced over the node axis (kept as a row of one for
    ``[N, F]``; ``size`` is ignored, as PyG does); with it ``[size, F]`` (``[B, size, F]`` for 3-D ``x``)."""
    d = _node_dim(x)
    if batch is None:
        keep = x.dim() <= 2
        if x.size(d) == 0:  # a graph without nodes gives 0, still tied to x for autograd (x.grad: empty, as PyG)
            return x.sum(dim=d, keepdim=keep).to(x.dtype)
        if reduce == "max":  # as PyG's x.max(dim)[0]: the gradient goes to one maximum, not split among ties
            return x.max(dim=d, keepdim=keep)[0]
        return x.sum(dim=d, keepdim=keep) if reduce == "sum" else x.mean(dim=d, keepdim=keep)
    batch, size = _batch(x, batch, size)
    xm = x.movedim(d, 0)
    shape = (size,) + tuple(xm.shape[1:])
    if reduce == "max":
        idx = batch.view((-1,) + (1,) * (xm.dim() - 1)).expand_as(xm)
        out = xm.new_zeros(shape).scatter_reduce(0, idx, xm, "amax", include_self=False)
    else:
        out = xm.new_zeros(shape).index_add(0, batch, xm)
        if reduce == "mean":
            cnt = torch.bincount(batch, minlength=size).clamp(min=1).to(x.dtype)
            out = out / cnt.view((-1,) + (1,) * (xm.dim() - 1))
    return out.movedim(0, d)


def global_add_pool(x: Tensor, batch: Optional[Tensor] = None, size: Optional[int] = None) -> Tensor:
    r""":math:`\mathbf{r}_g = \sum_{i \in g} \mathbf{x}_i` -> ``[num_graphs, F]``."""
    return _pool(x, batch, size, "sum")


def global_mean_pool(x: Tensor, batch: Optional[Tensor] = None, size: Optional[int] = None) -> Tensor:
    r""":math:`\mathbf{r}_g = \frac{1}{|g|} \sum_{i \in g} \mathbf{x}_i`."""
    return _pool(x, batch, size, "mean")


def global_max_pool(x: Tensor, batch: Optional[Tensor] = None, size: Optional[int] = None) -> Tensor:
    r""":math:`\mathbf{r}_g = \max_{i \in g} \mathbf{x}_i` (element-wise)."""
    return _pool(x, batch, size, "max")


POOLS = {"sum": global_add_pool, "add": global_add_pool, "mean": global_mean_pool, "max": global_max_pool}


def _mlp(i: int, h: int, o: int) -> Sequential:
    return Sequential(Linear(i, h), ReLU(), Linear(h, o))


class GatedReadout(torch.nn.Module):
    r"""Gated graph readout (Li et al. 2016, "Gated Graph Sequence Neural Networks"), optionally reading a
    graph feature :math:`\mathbf{g}` (the lecture's :math:`f_{readout}(\{\mathbf{h}_i\}, \mathbf{g})`):

    .. math::
        \mathbf{r}_g = \sum_{i \in g} \sigma\big(\mathrm{MLP}_1(\mathbf{h}_i, \mathbf{g})\big) \odot
        \mathrm{MLP}_2(\mathbf{h}_i, \mathbf{g})

    (:math:`(\mathbf{h}_i, \mathbf{g})` is the concatenation; without ``graph_channels`` the MLPs read
    :math:`\mathbf{h}_i` alone.)

    Args:
        in_channels: node width. out_channels: graph embedding width.
        hidden_channels: width of both MLPs (default ``in_channels + graph_channels``).
        graph_channels: width of the graph feature ``g`` passed to :meth:`forward` (default 0: none).
    """

    def __init__(self, in_channels: int, out_channels: int, hidden_channels: Optional[int] = None,
                 graph_channels: int = 0):
        super().__init__()
        check_graph_channels(graph_channels, "GatedReadout")
        i = in_channels + graph_channels
        h = hidden_channels or i
        self.in_channels, self.out_channels, self.graph_channels = in_channels, out_channels, graph_channels
        self.gate = _mlp(i, h, out_channels)
        self.value = _mlp(i, h, out_channels)

    def reset_parameters(self) -> None:
        for m in (*self.gate, *self.value):
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()

    def forward(self, x: Tensor, batch: Optional[Tensor] = None, size: Optional[int] = None,
                g: Optional[Tensor] = None) -> Tensor:
        """``x`` ``[num_nodes, in_channels]``, ``batch`` (default: one graph), ``g`` ``[num_graphs,
        graph_channels]`` when built with ``graph_channels`` -> ``[num_graphs, out_channels]``."""
        if x.dim() != 2 or x.size(1) != self.in_channels:
            raise ValueError(f"GatedReadout: x must be [num_nodes, {self.in_channels}], got {list(x.shape)}")
        if self.graph_channels or g is not None:
            # batch=None is one graph whatever size says (the pool returns one row then, as PyG's)
            if batch is not None:
                batch, size = check_batch(batch, x.size(0), size, "size", "GatedReadout")
            n_graphs = 1 if batch is None else size if size > 0 else \
                (1 if batch.numel() == 0 else int(batch.max()) + 1)
            g = graph_features(g, self.graph_channels, n_graphs, "GatedReadout", "forward")
            x = torch.cat([x, g.expand(x.size(0), -1) if batch is None else g.index_select(0, batch.long())], 1)
        return global_add_pool(torch.sigmoid(self.gate(x)) * self.value(x), batch, size)

    def __repr__(self) -> str:
        extra = f", graph_channels={self.graph_channels}" if self.graph_channels else ""
        return f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}{extra})"


class EdgeReadout(torch.nn.Module):
    r"""Per-edge prediction head :math:`\hat y_{j \to i} = \mathrm{MLP}([\mathbf{h}_i, \mathbf{h}_j,
    \mathbf{e}_{j,i}])` (edge classification / regression, link scoring).

    The first layer is split into per-node parts computed once per node, so the only
    ``E``-sized tensor is ``[E, hidden]``.

    Args:
        in_channels: node width. out_channels: output per edge.
        edge_dim: edge feature width (None: no edge features).
        hidden_channels: MLP width (default ``in_channels``).
    """

    def __init__(self, in_channels: int, out_channels: int, edge_dim: Optional[int] = None,
                 hidden_channels: Optional[int] = None):
        super().__init__()
        h = hidden_channels or in_channels
        self.in_channels, self.out_channels, self.edge_dim = in_channels, out_channels, edge_dim
        self.lin_dst = Linear(in_channels, h)
        self.lin_src = Linear(in_channels, h, bias=False)
        self.lin_edge = Linear(edge_dim, h, bias=False) if edge_dim else None
        self.lin_out = Linear(h, out_channels)

    def reset_parameters(self) -> None:
        for lin in (self.lin_dst, self.lin_src, self.lin_edge, self.lin_out):
            if lin is not None:
                lin.reset_parameters()

    def forward(self, x: Tensor, edge_index: Tensor, edge_attr: Optional[Tensor] = None) -> Tensor:
        if x.dim() != 2 or x.size(1) != self.in_channels:
            raise ValueError(f"EdgeReadout: x must be [num_nodes, {self.in_channels}], got {list(x.shape)}")
        validate_edge_index(edge_index, x.size(0), x.size(0))
        src, dst = edge_index[0].long(), edge_index[1].long()
        h = self.lin_dst(x).index_select(0, dst) + self.lin_src(x).index_select(0, src)
        if self.lin_edge is not None:
            if edge_attr is not None and edge_attr.dim() == 1 and self.edge_dim == 1:
                edge_attr = edge_attr.view(-1, 1)  # [E] is one feature per edge
            if edge_attr is None or edge_attr.dim() != 2 or edge_attr.size(0) != edge_index.size(1) \
                    or edge_attr.size(1) != self.edge_dim:
                got = "none" if edge_attr is None else f"shape {list(edge_attr.shape)}"
                raise ValueError(f"EdgeReadout was built with edge_dim={self.edge_dim}: pass edge_attr "
                                 f"[E={edge_index.size(1)}, {self.edge_dim}], got {got}")
            if not edge_attr.is_floating_point():
                raise ValueError(f"EdgeReadout: edge_attr must be floating point, got {edge_attr.dtype}; use "
                                 "edge_attr.float()")
            h = h + edge_linear(self.lin_edge, edge_attr.to(h.dtype))
        elif edge_attr is not None:
            raise ValueError("EdgeReadout got edge_attr but was built without edge_dim; pass edge_dim")
        return self.lin_out(h.relu())

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, edge_dim={self.edge_dim})"
