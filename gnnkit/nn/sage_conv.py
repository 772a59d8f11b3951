"""SAGEConv: drop-in for ``torch_geometric.nn.SAGEConv`` (mean / sum / max / min / LSTM)."""
from typing import Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.nn.dense.linear import Linear

from gnnkit.typing import Adj, NodeFeatures

from ._utils import aggregate, check_width, graph_of, materialised, node_pair, resolve_size
from .lstm_aggr import LSTMAggregation

_AGGRS = ("mean", "sum", "add", "max", "min", "lstm")


class SAGEConv(torch.nn.Module):
    r"""The GraphSAGE operator from `"Inductive Representation Learning on Large Graphs"
    <https://arxiv.org/abs/1706.02216>`_, a drop-in for :class:`torch_geometric.nn.SAGEConv`.

    .. math::
        \mathbf{x}^{\prime}_i = \mathbf{W}_1 \mathbf{x}_i + \mathbf{W}_2 \cdot
        \bigoplus_{j \in \mathcal{N}(i)} \mathbf{x}_j

    with :math:`\bigoplus` mean, sum, max, min or an LSTM over a random permutation of the
    neighbours.  ``project=True`` first applies :math:`\mathbf{x}_j \leftarrow
    \mathrm{ReLU}(\mathbf{W}_3 \mathbf{x}_j + \mathbf{b})` (GraphSAGE-pool with ``aggr="max"``);
    ``normalize=True`` divides each output row by its L2 norm.

    The sum/mean/max/min aggregation is one CSR SpMM (deterministic, exact gradients for
    int32 and int64 ``edge_index``); LSTM packs each neighbourhood as one sequence (see
    :mod:`gnnkit.nn.lstm_aggr`), shuffled in training.

    Args:
        in_channels: input width, or ``(src, dst)`` widths for bipartite graphs; -1 = lazy.
        out_channels: output width.
        aggr: ``"mean"`` (default), ``"sum"``/``"add"``, ``"max"``, ``"min"`` or ``"lstm"``.
        normalize: L2-normalise the output (default False).
        root_weight: add the transformed root features :math:`\mathbf{W}_1 \mathbf{x}_i`
            (default True).
        project: transform neighbours by a ReLU layer before aggregating (default False).
        bias: learn an additive bias in :math:`\mathbf{W}_2` (default True).

    Shapes:
        - input: node features :math:`(|V|, F_{in})` or :math:`((|V_s|, F_s), (|V_t|, F_t))`,
          edge indices :math:`(2, |E|)` or a sparse ``adj_t``
        - output: :math:`(|V|, F_{out})` or :math:`(|V_t|, F_{out})`
    """

    def __init__(self, in_channels: Union[int, Tuple[int, int]], out_channels: int, aggr: str = "mean",
                 normalize: bool = False, root_weight: bool = True, project: bool = False, bias: bool = True):
        super().__init__()
        if not isinstance(aggr, str) or aggr not in _AGGRS:
            raise ValueError(f"SAGEConv: aggr={aggr!r} is not supported; use one of {_AGGRS}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.aggr = aggr
        self.normalize = normalize
        self.root_weight = root_weight
        self.project = project
        ins = (in_channels, in_channels) if isinstance(in_channels, int) else tuple(in_channels)
        self._in = ins
        if project:
            if ins[0] <= 0:
                raise ValueError("SAGEConv does not support lazy initialization (in_channels=-1) with "
                                 "project=True; pass the input width")
            self.lin = Linear(ins[0], ins[0], bias=True)
        if aggr == "lstm":
            if ins[0] <= 0:
                raise ValueError("SAGEConv(aggr='lstm') needs the input width; in_channels=-1 is not supported")
            self.aggr_module = LSTMAggregation(ins[0], ins[0])
        else:
            self.aggr_module = None
        self.lin_l = Linear(ins[0], out_channels, bias=bias)
        if root_weight:
            self.lin_r = Linear(ins[1], out_channels, bias=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.project:
            self.lin.reset_parameters()
        if self.aggr_module is not None:
            self.aggr_module.reset_parameters()
        self.lin_l.reset_parameters()
        if self.root_weight:
            self.lin_r.reset_parameters()

    def forward(self, x: NodeFeatures, edge_index: Adj,
                size: Optional[Tuple[int, int]] = None) -> Tensor:
        x_src, x_dst, _ = node_pair(x, "SAGEConv")
        check_width(x_src, self._in[0], "SAGEConv", "x", "in_channels")
        check_width(x_dst, self._in[1], "SAGEConv", "x_dst", "in_channels[1]")
        ns, nd = resolve_size(edge_index, x_src, x_dst, size)
        graph, w = graph_of(edge_index, ns, nd, use_values=False)
        if self.project:
            x_src = self.lin(x_src).relu()
        if self.aggr == "lstm":
            out = self.aggr_module(x_src, graph)
        else:
            reduce = "sum" if self.aggr == "add" else self.aggr
            out = aggregate(graph, x_src, w, reduce)
        if self.root_weight and x_dst is not None and materialised(self.lin_l, self.lin_r) \
                and out.dim() == 2 and x_dst.dim() == 2:
            # lin_l(agg) + lin_r(x) as two accumulating GEMMs: no separate bias/add passes over [N, F]
            W_l, W_r, b = self.lin_l.weight, self.lin_r.weight, self.lin_l.bias
            base = x_dst @ W_r.t() if b is None else torch.addmm(b, x_dst, W_r.t())
            out = base.addmm_(out, W_l.t())  # in place: addmm would copy base first
        else:
            out = self.lin_l(out)
            if self.root_weight and x_dst is not None:
                out = out + self.lin_r(x_dst)
        if self.normalize:
            out = F.normalize(out, p=2.0, dim=-1)
        return out

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, aggr={self.aggr})"
