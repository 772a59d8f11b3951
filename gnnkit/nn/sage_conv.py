"""SAGEConv: drop-in for ``torch_geometric.nn.SAGEConv`` (mean / sum / max / min / LSTM)."""
import math
from typing import Any, List, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.nn.aggr import (
    Aggregation,
    MaxAggregation,
    MeanAggregation,
    MinAggregation,
    MultiAggregation,
    StdAggregation,
    SumAggregation,
    VarAggregation,
)
from torch_geometric.nn.dense.linear import Linear

from gnnkit.ops import Graph, gather_slots
from gnnkit.typing import Adj, NodeFeatures

from ._attention import num_input_edges
from ._base import CSRMessagePassing, slot_mask
from ._utils import aggregate, check_width, graph_of, materialised, node_pair, resolve_size
from .lstm_aggr import LSTMAggregation

# aggregations gnnkit runs as one CSR SpMM; any other aggregation (a name, an Aggregation, a list) runs
# PyG's own Aggregation module on gnnkit's sorted CSR
_FAST = {"mean": "mean", "sum": "sum", "add": "sum", "max": "max", "min": "min"}
_FAST_MODULES = ((SumAggregation, "sum"), (MeanAggregation, "mean"), (MaxAggregation, "max"), (MinAggregation, "min"))


def _fast_reduce(aggr: Any) -> Optional[str]:
    for cls, name in _FAST_MODULES:
        if type(aggr) is cls:
            return name
    return None


def _moment(aggr: Any) -> Optional[str]:
    """``"var"``/``"std"`` when the aggregation is PyG's variance / standard deviation with full gradients:
    gnnkit computes them from two mean SpMMs (E[x^2] - E[x]^2) instead of gathering [E, F] messages."""
    if isinstance(aggr, str):
        return aggr if aggr in ("var", "std") else None
    if type(aggr) is VarAggregation and not aggr.semi_grad:
        return "var"
    if type(aggr) is StdAggregation and not aggr.var_aggr.semi_grad:
        return "std"
    return None


class SAGEConv(CSRMessagePassing):
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

    def __init__(self, in_channels: Union[int, Tuple[int, int]], out_channels: int,
                 aggr: Optional[Union[str, List[str], Aggregation]] = "mean", normalize: bool = False,
                 root_weight: bool = True, project: bool = False, bias: bool = True, **kwargs: Any):
        ins = (in_channels, in_channels) if isinstance(in_channels, int) else tuple(in_channels)
        if aggr is None:
            raise ValueError("SAGEConv: aggr=None is not supported; pass a name ('mean', 'max', 'lstm', ...), an "
                             "Aggregation or a list of them")
        reduce = _FAST.get(aggr) if isinstance(aggr, str) else _fast_reduce(aggr)
        shuffle = pyg_padding = False
        if aggr == "lstm":
            if ins[0] <= 0:
                raise ValueError("SAGEConv(aggr='lstm') needs the input width; in_channels=-1 is not supported")
            lstm_kwargs = dict(kwargs.pop("aggr_kwargs", None) or {})
            shuffle = bool(lstm_kwargs.pop("shuffle", False))
            pyg_padding = bool(lstm_kwargs.pop("pyg_padding", False))
            lstm_kwargs.pop("in_channels", None), lstm_kwargs.pop("out_channels", None)  # PyG's; fixed here
            if lstm_kwargs:
                raise ValueError(f"SAGEConv(aggr='lstm'): unknown aggr_kwargs {sorted(lstm_kwargs)}; gnnkit's LSTM "
                                 "aggregation takes shuffle=True|False and pyg_padding=True|False")
            super().__init__(None, **kwargs)  # gnnkit's own LSTM aggregation, set below
            self.aggr = "lstm"
        else:
            super().__init__(aggr, **kwargs)  # PyG's aggregation module (used where no CSR op is faster)
        self._reduce, self._shuffle, self._pyg_padding = reduce, shuffle, pyg_padding
        self._moment = None if reduce is not None else _moment(aggr)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.normalize = normalize
        self.root_weight = root_weight
        self.project = project
        self._in = ins
        if project:
            if ins[0] <= 0:
                raise ValueError("SAGEConv does not support lazy initialization (in_channels=-1) with "
                                 "project=True; pass the input width")
            self.lin = Linear(ins[0], ins[0], bias=True)
        if aggr == "lstm":
            self.aggr_module = LSTMAggregation(ins[0], ins[0], shuffle=self._shuffle, pyg_padding=self._pyg_padding)
        aggr_out = ins[0]
        if isinstance(self.aggr_module, MultiAggregation):
            aggr_out = self.aggr_module.get_out_channels(ins[0])
        self.lin_l = Linear(aggr_out, out_channels, bias=bias)
        if root_weight:
            self.lin_r = Linear(ins[1], out_channels, bias=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        if self.project:
            self.lin.reset_parameters()
        self.lin_l.reset_parameters()
        if self.root_weight:
            self.lin_r.reset_parameters()

    def forward(self, x: NodeFeatures, edge_index: Adj,
                size: Optional[Tuple[int, int]] = None) -> Tensor:
        edge_index = self.oriented(edge_index)
        if isinstance(x, Tensor) and x.dim() == 3:  # static graph [B, N, F]: one graph for every batch row
            return self._static(x, edge_index)
        x_src, x_dst, _ = node_pair(x, "SAGEConv")
        check_width(x_src, self._in[0], "SAGEConv", "x", "in_channels")
        check_width(x_dst, self._in[1], "SAGEConv", "x_dst", "in_channels[1]")
        ns, nd = resolve_size(edge_index, x_src, x_dst, size)
        graph, w = graph_of(edge_index, ns, nd, use_values=False)
        if self.project:
            x_src = self.lin(x_src).relu()
        mask = self.explain_mask(num_input_edges(edge_index))
        if self.aggr == "lstm":
            if mask is not None:
                raise NotImplementedError("SAGEConv(aggr='lstm'): explaining the LSTM aggregation is not supported "
                                          "by gnnkit; explain a model with a 'mean'/'max'/'sum' aggregation")
            out = self.aggr_module(x_src, graph)
        elif self._reduce is not None or self._moment is not None:
            # a torch.sparse adj_t's values weight the SpMM reductions (PyG's fused path), not var/std
            weights = w if self._reduce is not None else None
            out = self._csr_aggregate(graph, x_src, slot_mask(graph, mask) if mask is not None else weights)
        else:  # PyG's Aggregation module(s) on gnnkit's sorted CSR: messages per slot, index = row, ptr = rowptr
            msg = gather_slots(graph, x_src)
            if mask is not None:
                msg = msg * slot_mask(graph, mask).to(msg.dtype).view(-1, 1)
            out = self.aggr_module(msg, index=graph.row, ptr=graph.rowptr, dim_size=graph.num_dst)
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

    def _csr_aggregate(self, graph: Graph, x: Tensor, w: Optional[Tensor]) -> Tensor:
        """The aggregations gnnkit runs on CSR SpMMs (``w``: per-slot weights, e.g. an explainer's mask):
        sum/mean/max/min as one SpMM, var/std as ``E[x^2] - E[x]^2`` from two mean SpMMs (PyG's
        definitions), column by column, so ``x`` may hold several batch rows side by side."""
        if self._reduce is not None:
            return aggregate(graph, x, w, self._reduce)
        mean = aggregate(graph, x, w, "mean")
        out = aggregate(graph, x * x, None if w is None else w * w, "mean") - mean * mean
        if self._moment == "std":
            out = out.clamp(min=1e-5).sqrt()
            out = out.masked_fill(out <= math.sqrt(1e-5), 0.0)
        return out

    def _static(self, x: Tensor, edge_index: Adj) -> Tensor:
        if self._reduce is None and self._moment is None:
            raise NotImplementedError(f"SAGEConv(aggr={self.aggr!r}) on a static graph (x of shape [B, N, F]) is "
                                      "not supported by gnnkit; use sum/mean/max/min/var/std or one graph per call")
        check_width(x, self._in[0], "SAGEConv", "x", "in_channels")
        B, N = x.shape[0], x.shape[1]
        graph, _ = graph_of(edge_index, N, N, use_values=False)
        mask = self.explain_mask(num_input_edges(edge_index))
        h = self.lin(x).relu() if self.project else x
        Fh = h.size(-1)
        flat = h.transpose(0, 1).reshape(N, B * Fh)  # every batch row aggregated by one SpMM
        out = self._csr_aggregate(graph, flat, slot_mask(graph, mask) if mask is not None else None)
        out = self.lin_l(out.view(N, B, Fh).transpose(0, 1))
        if self.root_weight:
            out = out + self.lin_r(x)
        return F.normalize(out, p=2.0, dim=-1) if self.normalize else out

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, aggr={self.aggr})"
