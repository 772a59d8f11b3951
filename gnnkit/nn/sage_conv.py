"""SAGEConv: drop-in for ``torch_geometric.nn.SAGEConv`` (mean / sum / max / min / LSTM)."""
import inspect
import math
from typing import Any, List, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.nn.aggr import (
    Aggregation,
    MaxAggregation,
    MeanAggregation,
    MedianAggregation,
    MinAggregation,
    MultiAggregation,
    PowerMeanAggregation,
    QuantileAggregation,
    SoftmaxAggregation,
    StdAggregation,
    SumAggregation,
    VarAggregation,
)
from torch_geometric.nn.dense.linear import Linear

from gnnkit._checks import assert_in_graph
from gnnkit.ops import Graph, bias_add, gather_slots, quantile_aggregate_slots, softmax_aggregate_slots
from gnnkit.typing import Adj, NodeFeatures

from ._attention import num_input_edges
from ._base import CSRMessagePassing, slot_mask
from ._utils import (
    aggregate,
    check_floating,
    check_width,
    graph_of,
    linear,
    node_pair,
    plain_linears,
    pyg_fuses,
    resolve_size,
    small_aggregate,
)
from .lstm_aggr import LSTMAggregation, input_order_slots

# PyG aggregation modules gnnkit runs on its CSR ops (by exact type: a subclass may change the definition);
# any other aggregation (an Aggregation, a list) runs PyG's own module on gnnkit's sorted CSR
_SPMM = ("sum", "mean", "max", "min")
_REDUCES = ((SumAggregation, "sum"), (MeanAggregation, "mean"), (MaxAggregation, "max"), (MinAggregation, "min"))


def _native(module: Any) -> Optional[str]:
    """How gnnkit runs ``module`` on CSR ops without gathering [E, F] messages through PyG's module:
    sum/mean/max/min as one SpMM; var/std as ``E[x^2] - E[x]^2`` from two mean SpMMs; powermean as a
    mean SpMM between two elementwise powers of node features; softmax by ``softmax_aggregate_slots``
    (hand-written backward, keeps no per-edge tensor); median / one quantile by ``quantile_aggregate_slots``
    (one sort, float32/16 features).  None: PyG's module on gathered messages."""
    kind = type(module)
    for cls, name in _REDUCES:
        if kind is cls:
            return name
    if kind is VarAggregation and not module.semi_grad:
        return "var"
    if kind is StdAggregation and not module.var_aggr.semi_grad:
        return "std"
    if kind is SoftmaxAggregation:
        return "softmax"
    if kind is PowerMeanAggregation:
        return "powermean"
    if kind in (MedianAggregation, QuantileAggregation) and module.q.numel() == 1:
        return "quantile"
    return None


def _destinations_sorted(graph: Graph) -> bool:
    """Whether the input edges came sorted by destination (ties in any order), as PyG's LSTM needs."""
    if graph.perm is None:  # already in CSR order
        return True
    dst = graph.from_csr_order(graph.row)  # destinations in input order
    return bool((dst[1:] >= dst[:-1]).all())


def _flag(kwargs: dict, name: str, default: bool) -> bool:
    value = kwargs.pop(name, default)
    if not isinstance(value, bool):  # bool("no") is True: a string or number here is a mistake, not a choice
        raise ValueError(f"SAGEConv(aggr='lstm'): aggr_kwargs['{name}'] must be True or False, got {value!r}")
    return value


def _check_sorted_by_destination(graph: Graph, lstm: bool = True) -> None:
    """PyG's LSTM aggregation (and every aggregation that reads a neighbourhood as a sequence, ``lstm=False``)
    refuses an ``edge_index`` not sorted by destination; so does gnnkit's drop-in (under ``torch.compile`` the
    check uses what an eager call on the same graph found, else it runs as the compiled graph runs: a
    ``RuntimeError`` with the same words)."""
    ok = graph.derived_or_none("destinations_sorted")
    who = "SAGEConv(aggr='lstm')" if lstm else "SAGEConv"
    what = "PyG's LSTM aggregation requires" if lstm else \
        "PyG's aggregations that read each neighbourhood as a sequence (to_dense_batch) require"
    fix = ", or pass aggr_kwargs={'require_sorted': False} to read each node's neighbours in input order" \
        if lstm else ""
    message = (f"{who}: the 'index' tensor is not sorted: edge_index[1] (the destinations) must be sorted, "
               f"as {what}; sort it with torch_geometric.utils.sort_edge_index(edge_index, sort_by_row=False){fix}")
    if ok is None and torch.compiler.is_compiling():
        if graph.perm is not None:  # (None: already in CSR order, hence sorted)
            dst = graph.from_csr_order(graph.row)
            assert_in_graph((dst[1:] >= dst[:-1]).all(), message)
        return
    if ok is None:
        ok = _destinations_sorted(graph)
        graph.keep("destinations_sorted", ok)  # a bool: kept under inference mode too
    if ok is False:
        raise ValueError(message)


def _reads_in_order(module: Any) -> bool:
    """Whether PyG's aggregation ``module`` (or one inside it, e.g. in a MultiAggregation) reads each neighbourhood
    as a sequence through ``Aggregation.to_dense_batch`` (GRU, MLP, LCM, Sort, SetTransformer, GMT,
    PatchTransformer, a user's own): PyG hands such a module the messages in input edge order and refuses an
    ``edge_index`` not sorted by destination."""
    for m in module.modules():
        if not isinstance(m, Aggregation):
            continue
        for cls in type(m).__mro__:
            if cls is Aggregation or not issubclass(cls, Aggregation):
                continue
            for f in vars(cls).values():
                code = getattr(inspect.unwrap(f) if callable(f) else f, "__code__", None)  # (PyG's decorators)
                if code is not None and "to_dense_batch" in code.co_names:
                    return True
    return False


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
    int32 and int64 ``edge_index``; sum and mean over a small plain ``edge_index`` skip the CSR,
    :func:`gnnkit.ops.coo_sum`, with its bits when sorted by (source, destination), else to rounding); var/std,
    powermean and softmax also run on gnnkit's CSR ops
    without gathering ``[E, F]`` messages (see :func:`_native`); LSTM packs each neighbourhood as one
    sequence (see :mod:`gnnkit.nn.lstm_aggr`); every other PyG aggregation runs PyG's module on
    gnnkit's sorted CSR.

    Args:
        in_channels: input width, or ``(src, dst)`` widths for bipartite graphs; -1 = lazy.
        out_channels: output width.
        aggr: ``"mean"`` (default), ``"sum"``/``"add"``, ``"max"``, ``"min"``, ``"lstm"``, any other
            PyG aggregation name (``"var"``, ``"std"``, ``"softmax"``, ``"powermean"``, ``"median"``, ...),
            an ``Aggregation`` object or a list of them (``aggr_kwargs={"mode": ...}``).
            ``"lstm"`` reads each node's neighbours in input edge order and, as PyG, needs ``edge_index``
            sorted by destination (a ``ValueError`` otherwise); ``aggr_kwargs`` for it:
            ``require_sorted=False`` (accept any order), ``shuffle=True`` (GraphSAGE's random neighbour
            order in training; any input order), ``pyg_padding=True`` (PyG's reading of padded sequences).
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
        shuffle = pyg_padding = False
        require_sorted = True
        if aggr == "lstm":
            if ins[0] <= 0:
                raise ValueError("SAGEConv(aggr='lstm') needs the input width; in_channels=-1 is not supported")
            lstm_kwargs = dict(kwargs.pop("aggr_kwargs", None) or {})
            shuffle = _flag(lstm_kwargs, "shuffle", False)
            pyg_padding = _flag(lstm_kwargs, "pyg_padding", False)
            require_sorted = _flag(lstm_kwargs, "require_sorted", True)
            lstm_kwargs.pop("in_channels", None), lstm_kwargs.pop("out_channels", None)  # PyG's; fixed here
            if lstm_kwargs:
                raise ValueError(f"SAGEConv(aggr='lstm'): unknown aggr_kwargs {sorted(lstm_kwargs)}; gnnkit's LSTM "
                                 "aggregation takes shuffle=True|False, pyg_padding=True|False and "
                                 "require_sorted=True|False")
            super().__init__(None, **kwargs)  # gnnkit's own LSTM aggregation, set below
            self.aggr = "lstm"
        else:
            super().__init__(aggr, **kwargs)  # PyG's aggregation module (used where no CSR op is faster)
        self._shuffle, self._pyg_padding = shuffle, pyg_padding
        self._require_sorted = require_sorted and not shuffle
        self._kind = None if aggr == "lstm" else _native(self.aggr_module)
        self._in_order = aggr != "lstm" and _reads_in_order(self.aggr_module)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.normalize = normalize
        self.root_weight = root_weight
        self.project = project
        self._in = ins
        if aggr == "lstm":  # registered before lin, as PyG's: the same parameter order (optimizer states)
            self.aggr_module = LSTMAggregation(ins[0], ins[0], shuffle=self._shuffle, pyg_padding=self._pyg_padding)
        if project:
            if ins[0] <= 0:
                raise ValueError("SAGEConv does not support lazy initialization (in_channels=-1) with "
                                 "project=True; pass the input width")
            self.lin = Linear(ins[0], ins[0], bias=True)
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
            if self.static_nodes_first(x):  # node_dim=0: [N, B, F]
                return self._static(x.transpose(0, 1), edge_index).transpose(0, 1)
            return self._static(x, edge_index)
        x_src, x_dst, _ = node_pair(x, "SAGEConv", dense=True)
        check_floating("SAGEConv", x)
        check_width(x_src, self._in[0], "SAGEConv", "x", "in_channels")
        check_width(x_dst, self._in[1], "SAGEConv", "x_dst", "in_channels[1]")
        ns, nd = resolve_size(edge_index, x_src, x_dst, size)
        out = None
        if self._explain is not True and not self.project and self._kind in ("sum", "mean"):
            # a small mini-batch's edge_index: no graph to build (the same id checks)
            out = small_aggregate(edge_index, x_src, ns, nd, self._kind)
        if out is None:
            out = self._aggregate(edge_index, x_src, ns, nd)
        return self._finish(out, x_dst)

    def _aggregate(self, edge_index: Adj, x_src: Tensor, ns: int, nd: int) -> Tensor:
        """The neighbourhood aggregation of ``x_src`` (projected first with ``project``) on gnnkit's CSR."""
        graph, w = graph_of(edge_index, ns, nd, use_values=False)
        if self.project:
            x_src = self.lin(x_src).relu()
        mask = self.explain_mask(num_input_edges(edge_index))
        if self.aggr == "lstm":  # an explainer's mask multiplies each neighbour's message, as in PyG
            if getattr(self, "_require_sorted", True):  # (modules pickled before the option: PyG's rule)
                _check_sorted_by_destination(graph)
            out = self.aggr_module(x_src, graph, slot_mask(graph, mask) if mask is not None else None)
        elif self._native_for(x_src, mask):
            # a torch.sparse adj_t's values weight the SpMM reductions of PyG's fused path (a string aggr), not its
            # message path (an Aggregation object, other reductions); an explainer's mask weights the messages (for
            # softmax/powermean: PyG's module, below)
            fused = pyg_fuses(self, edge_index, mask)
            weights = w if self._kind in _SPMM and fused else None
            out = self._csr_aggregate(graph, x_src, slot_mask(graph, mask) if mask is not None else weights,
                                      fused_sparse=fused)
        else:  # PyG's Aggregation module(s) on gnnkit's sorted CSR: messages per slot, index = row, ptr = rowptr
            msg = self._messages(graph, gather_slots(graph, x_src), mask)
            out = self.aggr_module(msg, index=graph.row, ptr=graph.rowptr, dim_size=graph.num_dst)
        return out

    def _messages(self, graph: Graph, msg: Tensor, mask: Optional[Tensor]) -> Tensor:
        """The gathered messages ``[E, ...]`` (CSR slot order) for PyG's module, times an explainer's mask; for a
        module that reads each neighbourhood as a sequence, in PyG's order (each row's messages in input edge
        order) and, as PyG, only for an ``edge_index`` sorted by destination."""
        if mask is not None:
            msg = msg * slot_mask(graph, mask).to(msg.dtype).view((-1,) + (1,) * (msg.dim() - 1))
        in_order = getattr(self, "_in_order", None)
        if in_order is None:  # a module pickled before the attribute
            in_order = self._in_order = _reads_in_order(self.aggr_module)
        if in_order:
            _check_sorted_by_destination(graph, lstm=False)
            msg = msg.index_select(0, input_order_slots(graph))
        return msg

    def _finish(self, out: Tensor, x_dst: Optional[Tensor]) -> Tensor:
        """``lin_l(out)`` plus the root term ``lin_r(x_dst)``, then the optional normalisation."""
        if self.root_weight and x_dst is not None and plain_linears(self.lin_l, self.lin_r) \
                and out.dim() == 2 and x_dst.dim() == 2 and not torch.is_autocast_enabled(out.device.type) \
                and out.dtype == x_dst.dtype == self.lin_l.weight.dtype:
            # (autocast casts out-of-place ops only: there the two Linear layers, as PyG)
            # lin_l(agg) + lin_r(x) as two accumulating GEMMs: no separate bias/add passes over [N, F]
            W_l, W_r, b = self.lin_l.weight, self.lin_r.weight, self.lin_l.bias
            if b is None:
                base = x_dst @ W_r.t()
            elif torch.compiler.is_compiling():  # the bias gradient by aten's column sum (gnnkit.ops.bias_add)
                base = bias_add(x_dst @ W_r.t(), b)
            else:
                base = torch.addmm(b, x_dst, W_r.t())
            out = base.addmm_(out, W_l.t())  # in place: addmm would copy base first
        else:
            out = linear(self.lin_l, out)
            if self.root_weight and x_dst is not None:
                out = out + self.lin_r(x_dst)
        if self.normalize:
            out = F.normalize(out, p=2.0, dim=-1)
        return out

    def _native_for(self, x: Tensor, mask: Optional[Tensor]) -> bool:
        """Whether this call runs on gnnkit's CSR ops: an explainer's mask multiplies the messages, which
        softmax/powermean/quantiles see only on the gathered path; quantiles sort float32 keys."""
        if self._kind is None:
            return False
        if mask is not None and self._kind in ("softmax", "powermean", "quantile"):
            return False
        return self._kind != "quantile" or x.dtype in (torch.float32, torch.float16, torch.bfloat16)

    def _csr_aggregate(self, graph: Graph, x: Tensor, w: Optional[Tensor], repeat: int = 1,
                       fused_sparse: bool = False) -> Tensor:
        """The aggregations gnnkit runs on its CSR ops (``w``: per-slot weights, e.g. an explainer's mask; not
        for softmax/powermean), PyG's definitions (see :func:`_native`), column by column, so ``x`` may hold
        ``repeat`` batch rows side by side (per-channel parameters are repeated to match)."""
        kind, module = self._kind, self.aggr_module
        if kind in _SPMM:
            return aggregate(graph, x, w, kind, fused_sparse=fused_sparse)
        if kind == "softmax":
            t = module.t
            if isinstance(t, Tensor) and t.numel() > 1:
                t = t.repeat(repeat)
            return softmax_aggregate_slots(graph, x, t, semi_grad=module.semi_grad and not module.learn)
        if kind == "quantile":
            # the buffer (what load_state_dict sets), as PyG reads it
            return quantile_aggregate_slots(graph, x, module.q, module.interpolation, module.fill_value,
                                            pyg_rounding=True)
        if kind == "powermean":
            p = module.p
            if isinstance(p, Tensor) and p.numel() > 1:
                p = p.repeat(repeat).view(1, -1)
            identity = isinstance(p, (int, float)) and p == 1
            # the clamp and power are elementwise, so they run on the [N, F] sources, not on [E, F] messages
            h = x if identity else x.clamp(min=module.min_value, max=module.max_value).pow(p)
            out = aggregate(graph, h, None, "mean")
            return out if identity else out.clamp(min=module.min_value, max=module.max_value).pow(1.0 / p)
        mean = aggregate(graph, x, w, "mean")
        out = aggregate(graph, x * x, None if w is None else w * w, "mean") - mean * mean
        if kind == "std":
            out = out.clamp(min=1e-5).sqrt()
            out = out.masked_fill(out <= math.sqrt(1e-5), 0.0)
        return out

    def _static(self, x: Tensor, edge_index: Adj) -> Tensor:
        if self.aggr == "lstm":
            raise NotImplementedError("SAGEConv(aggr='lstm') on a static graph (x of shape [B, N, F]) is not "
                                      "supported by gnnkit (nor by PyG's LSTM aggregation); pass one graph per call")
        check_width(x, self._in[0], "SAGEConv", "x", "in_channels")
        B, N = x.shape[0], x.shape[1]
        graph, _ = graph_of(edge_index, N, N, use_values=False)
        mask = self.explain_mask(num_input_edges(edge_index))
        h = self.lin(x).relu() if self.project else x
        Fh = h.size(-1)
        flat = h.transpose(0, 1).reshape(N, B * Fh)  # every batch row aggregated by one SpMM
        if not self._native_for(flat, mask):
            # PyG's Aggregation module over the messages [E, B, F] of all batch rows, reduced over the edges
            msg = self._messages(graph, gather_slots(graph, flat), mask)
            out = self.aggr_module(msg.view(-1, B, Fh), index=graph.row, ptr=graph.rowptr, dim_size=N, dim=0)
            out = out.transpose(0, 1)
        else:
            out = self._csr_aggregate(graph, flat, slot_mask(graph, mask) if mask is not None else None, repeat=B)
            out = out.view(N, B, Fh).transpose(0, 1)
        out = self.lin_l(out)
        if self.root_weight:
            out = out + self.lin_r(x)
        return F.normalize(out, p=2.0, dim=-1) if self.normalize else out

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, aggr={self.aggr})"
