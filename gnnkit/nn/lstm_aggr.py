r"""LSTM neighbourhood aggregation (GraphSAGE-LSTM) without padding.

.. math::
    \mathbf{h}_{\mathcal{N}(i)} = \mathrm{LSTM}\big(\mathbf{x}_{\pi(1)}, \ldots,
    \mathbf{x}_{\pi(d_i)}\big)_{d_i}, \qquad \pi \text{ an order of } \mathcal{N}(i)

Each node's neighbours are fed to the LSTM as one sequence and the hidden state after
the node's *last real neighbour* is its aggregate.  Nodes are bucketed by in-degree and each
bucket of degree ``d`` is one dense ``[n_d, d, F]`` LSTM batch built straight from the CSR
structure, so no node is padded (PyG pads ``N x max_deg x F`` and reads the state after
the padding), the dense batches take PyTorch's fast LSTM kernel (a ``PackedSequence`` version ran
2.8x slower on CPU: 4.70 s vs 1.68 s forward+backward on ``benchmarks/layers_speed.py``'s
``sage_lstm_small`` graph) and no pre-sorted ``edge_index`` is needed.  By default each neighbourhood is read
in input edge order (as PyG reads it), so results are repeatable; ``shuffle=True`` draws a fresh random
permutation of every neighbourhood in each training call — the lecture's and GraphSAGE's (Hamilton et al. 2017)
"LSTM + random order-permutation" — and reads edge order in eval.
Nodes without neighbours get zeros.

Under ``torch.compile`` the bucketing (data-dependent shapes) cannot be traced (and inductor
cannot compile aten's CPU LSTM either), so the aggregation runs as one opaque custom op.  When a
backward can follow (gradients on and an input or weight requiring them), it is
``gnnkit::lstm_aggr_keep``, which runs the LSTM under autograd inside the op and keeps that graph
for its backward op (at most 8 kept at a time; a backward whose graph was dropped recomputes the
forward); otherwise ``gnnkit::lstm_aggr`` runs it without autograd.
The random neighbour order is drawn outside the op, in the traced graph, so forward and
backward see the same permutation.  ``fullgraph=True`` compiles without graph breaks.
"""
import contextlib
import itertools
from collections import OrderedDict
from typing import Any, List, Optional, Tuple

import torch
from torch import Tensor

from gnnkit.ops import Graph, gather_slots


def input_order_slots(graph: Graph) -> Tensor:
    """CSR slots with each row's slots in input edge order (PyG's order for an ``edge_index`` sorted by
    destination): ``[E]``, kept in the graph."""
    E = graph.num_edges
    if graph.perm is None or E == 0:  # input already in CSR order
        return torch.arange(E, device=graph.device)
    return graph.derived("lstm_input_order", lambda: torch.sort(graph.row * E + graph.perm).indices)


def _slot_order(graph: Graph, shuffle: bool) -> Tensor:
    """CSR slots in the order the LSTM reads them: each row's slots in input edge order (as PyG reads
    its neighbours), or (``shuffle``) a fresh random order within each row (sort random keys, then
    stably regroup by row)."""
    E = graph.num_edges
    if shuffle and E > 0:
        p = torch.randperm(E, device=graph.device)
        return p[torch.sort(graph.row[p], stable=True).indices]
    return input_order_slots(graph)


def _degree_buckets(rowptr: Tensor, col: Tensor, slots: Tensor):
    """``[(nodes [n_d], sources [n_d, d])]``, one entry per distinct in-degree ``d > 0``:
    ``sources[k, t]`` is the ``t``-th neighbour of ``nodes[k]`` in the order ``slots``.
    Every edge appears exactly once: no padding."""
    deg = rowptr[1:] - rowptr[:-1]
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
        pos = rowptr[nodes].view(-1, 1) + torch.arange(d, device=rowptr.device).view(1, -1)
        buckets.append((nodes, col[slots[pos]]))
    return buckets


def _lstm_aggregate(x: Tensor, rowptr: Tensor, col: Tensor, slots: Tensor, weights: List[Tensor],
                    hidden: int, pyg_padding: bool = False) -> Tensor:
    """The bucketed LSTM aggregation with explicit LSTM weights ``[w_ih, w_hh, b_ih, b_hh]``.

    ``pyg_padding``: PyG's reading instead of GraphSAGE's — every sequence continues with zero inputs
    up to the largest in-degree ``D`` and the state after step ``D`` is read (nodes without neighbours
    get the state after ``D`` zeros)."""
    num_dst = rowptr.numel() - 1
    out = x.new_zeros(num_dst, hidden)
    buckets = _degree_buckets(rowptr, col, slots)
    if not buckets:
        return out + 0 * sum(w.sum() for w in weights)
    max_deg = buckets[-1][1].size(1)  # buckets come in increasing degree
    nodes, states = [], []
    for nd, src in buckets:
        # [n_d, d, F]: one dense batch per degree (index_select: a deterministic backward on CPU)
        seq = x.index_select(0, src.reshape(-1)).view(src.size(0), src.size(1), x.size(1))
        h0 = seq.new_zeros(1, seq.size(0), hidden)
        _, h, c = torch._VF.lstm(seq, (h0, h0), weights, True, 1, 0.0, False, False, True)
        if pyg_padding and src.size(1) < max_deg:  # continue over the padding, from the state reached
            pad = seq.new_zeros(seq.size(0), max_deg - src.size(1), x.size(1))
            _, h, _ = torch._VF.lstm(pad, (h, c), weights, True, 1, 0.0, False, False, True)
        nodes.append(nd)
        states.append(h[-1])
    if pyg_padding:
        deg = rowptr[1:] - rowptr[:-1]
        empty = (deg == 0).nonzero().view(-1)
        if empty.numel() > 0:  # every node without neighbours: the state after max_deg zero inputs
            pad = x.new_zeros(1, max_deg, x.size(1))
            h0 = pad.new_zeros(1, 1, hidden)
            _, h, _ = torch._VF.lstm(pad, (h0, h0), weights, True, 1, 0.0, False, False, True)
            nodes.append(empty)
            states.append(h[-1].expand(empty.numel(), hidden))
    return out.index_copy(0, torch.cat(nodes), torch.cat(states))


@torch.library.custom_op("gnnkit::lstm_aggr", mutates_args=())
def _lstm_aggr_op(x: Tensor, rowptr: Tensor, col: Tensor, slots: Tensor, w_ih: Tensor, w_hh: Tensor,
                  b_ih: Tensor, b_hh: Tensor, pyg_padding: bool) -> Tensor:
    with torch.no_grad():
        return _lstm_aggregate(x, rowptr, col, slots, [w_ih, w_hh, b_ih, b_hh], w_hh.size(1), pyg_padding)


@_lstm_aggr_op.register_fake
def _(x, rowptr, col, slots, w_ih, w_hh, b_ih, b_hh, pyg_padding):
    return x.new_empty(rowptr.shape[0] - 1, w_hh.shape[1])


@contextlib.contextmanager
def _autograd_inside_custom_op():
    """A custom op's body runs with autograd's dispatch keys excluded; the recompute in the
    backward needs them back (the same thing torch.utils.checkpoint relies on)."""
    K = torch._C.DispatchKey
    with contextlib.ExitStack() as stack:
        for key in (K.AutogradFunctionality, K.AutogradOther):
            stack.enter_context(torch._C._SetExcludeDispatchKeyGuard(key, False))
        stack.enter_context(torch.enable_grad())
        yield


@torch.library.custom_op("gnnkit::lstm_aggr_bwd", mutates_args=())
def _lstm_aggr_bwd_op(grad_out: Tensor, x: Tensor, rowptr: Tensor, col: Tensor, slots: Tensor, w_ih: Tensor,
                      w_hh: Tensor, b_ih: Tensor, b_hh: Tensor, pyg_padding: bool
                      ) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Gradients w.r.t. ``(x, w_ih, w_hh, b_ih, b_hh)`` by recomputing the forward with autograd."""
    inputs = [t.detach().requires_grad_(True) for t in (x, w_ih, w_hh, b_ih, b_hh)]
    with _autograd_inside_custom_op():
        out = _lstm_aggregate(inputs[0], rowptr, col, slots, inputs[1:], w_hh.size(1), pyg_padding)
        grads = torch.autograd.grad(out, inputs, grad_out, allow_unused=True)
    return tuple(torch.zeros_like(t) if g is None else g for g, t in zip(grads, inputs))


@_lstm_aggr_bwd_op.register_fake
def _(grad_out, x, rowptr, col, slots, w_ih, w_hh, b_ih, b_hh, pyg_padding):
    return tuple(torch.empty_like(t) for t in (x, w_ih, w_hh, b_ih, b_hh))


def _setup(ctx, inputs, output) -> None:
    ctx.save_for_backward(*inputs[:-1])
    ctx.pyg_padding = inputs[-1]


def _backward(ctx, grad_out: Tensor):
    x, rowptr, col, slots, w_ih, w_hh, b_ih, b_hh = ctx.saved_tensors
    gx, gwi, gwh, gbi, gbh = _lstm_aggr_bwd_op(grad_out.contiguous(), x, rowptr, col, slots, w_ih, w_hh, b_ih,
                                               b_hh, ctx.pyg_padding)
    return gx, None, None, None, gwi, gwh, gbi, gbh, None


_lstm_aggr_op.register_autograd(_backward, setup_context=_setup)


# The training variant under torch.compile: the forward op runs the LSTM under autograd and keeps
# that graph (keyed by a token it returns) for the backward op, which then costs one backward instead
# of a forward and a backward.  At most _KEEP_MAX graphs are kept (oldest dropped first: a forward
# whose backward never comes, e.g. evaluation with gradients on, cannot hold memory for long); a
# backward whose graph was dropped recomputes the forward, as the plain op does.
_KEPT: "OrderedDict[int, Tuple[Tensor, List[Tensor]]]" = OrderedDict()
_KEEP_MAX = 8
_TOKENS = itertools.count()


@torch.library.custom_op("gnnkit::lstm_aggr_keep", mutates_args=())
def _lstm_aggr_keep_op(x: Tensor, rowptr: Tensor, col: Tensor, slots: Tensor, w_ih: Tensor, w_hh: Tensor,
                       b_ih: Tensor, b_hh: Tensor, pyg_padding: bool) -> Tuple[Tensor, Tensor]:
    """``(aggregate, token)``; the autograd graph of the aggregate is kept under ``token``."""
    inputs = [t.detach().requires_grad_(True) for t in (x, w_ih, w_hh, b_ih, b_hh)]
    with _autograd_inside_custom_op():
        out = _lstm_aggregate(inputs[0], rowptr, col, slots, inputs[1:], w_hh.size(1), pyg_padding)
    key = next(_TOKENS)
    _KEPT[key] = (out, inputs)
    while len(_KEPT) > _KEEP_MAX:
        try:
            _KEPT.popitem(last=False)
        except KeyError:  # another thread emptied it meanwhile
            break
    return out.detach(), torch.full((1,), key, dtype=torch.long)


@_lstm_aggr_keep_op.register_fake
def _(x, rowptr, col, slots, w_ih, w_hh, b_ih, b_hh, pyg_padding):
    return x.new_empty(rowptr.shape[0] - 1, w_hh.shape[1]), torch.empty(1, dtype=torch.long, device="cpu")


@torch.library.custom_op("gnnkit::lstm_aggr_keep_bwd", mutates_args=())
def _lstm_aggr_keep_bwd_op(grad_out: Tensor, token: Tensor, x: Tensor, rowptr: Tensor, col: Tensor, slots: Tensor,
                           w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor, pyg_padding: bool
                           ) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    kept = _KEPT.pop(int(token.item()), None)
    if kept is None:  # dropped (or never kept): recompute
        return _lstm_aggr_bwd_op(grad_out, x, rowptr, col, slots, w_ih, w_hh, b_ih, b_hh, pyg_padding)
    out, inputs = kept
    with _autograd_inside_custom_op():
        grads = torch.autograd.grad(out, inputs, grad_out, allow_unused=True)
    return tuple(torch.zeros_like(t) if g is None else g for g, t in zip(grads, inputs))


@_lstm_aggr_keep_bwd_op.register_fake
def _(grad_out, token, x, rowptr, col, slots, w_ih, w_hh, b_ih, b_hh, pyg_padding):
    return tuple(torch.empty_like(t) for t in (x, w_ih, w_hh, b_ih, b_hh))


def _setup_keep(ctx, inputs, output) -> None:
    ctx.save_for_backward(output[1], *inputs[:-1])
    ctx.pyg_padding = inputs[-1]


def _backward_keep(ctx, grad_out: Tensor, grad_token: Optional[Tensor]):
    token, x, rowptr, col, slots, w_ih, w_hh, b_ih, b_hh = ctx.saved_tensors
    gx, gwi, gwh, gbi, gbh = _lstm_aggr_keep_bwd_op(grad_out.contiguous(), token, x, rowptr, col, slots, w_ih, w_hh,
                                                    b_ih, b_hh, ctx.pyg_padding)
    return gx, None, None, None, gwi, gwh, gbi, gbh, None


_lstm_aggr_keep_op.register_autograd(_backward_keep, setup_context=_setup_keep)


class LSTMWeights(torch.nn.Module):
    """The parameters of a one-layer ``torch.nn.LSTM`` (same names, shapes, order and
    initialisation, so ``state_dict`` keys ``lstm.weight_ih_l0`` ... match PyG's), without
    ``nn.LSTM``'s module, which ``torch.compile`` refuses to trace even to read a weight."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.weight_ih_l0 = torch.nn.Parameter(torch.empty(4 * hidden_size, input_size))
        self.weight_hh_l0 = torch.nn.Parameter(torch.empty(4 * hidden_size, hidden_size))
        self.bias_ih_l0 = torch.nn.Parameter(torch.empty(4 * hidden_size))
        self.bias_hh_l0 = torch.nn.Parameter(torch.empty(4 * hidden_size))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """``nn.LSTM``'s: every weight uniform in ``±1/sqrt(hidden_size)``, in registration order."""
        bound = 1.0 / self.hidden_size ** 0.5 if self.hidden_size > 0 else 0.0
        for w in self.parameters():
            torch.nn.init.uniform_(w, -bound, bound)

    def flat_weights(self) -> List[Tensor]:
        return [self.weight_ih_l0, self.weight_hh_l0, self.bias_ih_l0, self.bias_hh_l0]

    def forward(self, seq: Tensor) -> Tuple[Tensor, Tuple[Tensor, Tensor]]:
        """``nn.LSTM(batch_first=True)``'s call: ``[B, T, F]`` -> ``(output, (h_n, c_n))``."""
        h0 = seq.new_zeros(1, seq.size(0), self.hidden_size)
        out, h, c = torch._VF.lstm(seq, (h0, h0), self.flat_weights(), True, 1, 0.0, self.training, False, True)
        return out, (h, c)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}"


class LSTMAggregation(torch.nn.Module):
    """State-dict compatible with ``torch_geometric.nn.aggr.LSTMAggregation`` (``lstm.*``)."""

    def __init__(self, in_channels: int, out_channels: int, shuffle: bool = False, pyg_padding: bool = False):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.shuffle = shuffle
        self.pyg_padding = pyg_padding
        self.lstm = LSTMWeights(in_channels, out_channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.lstm.reset_parameters()

    def forward(self, x: Tensor, graph: Optional[Graph] = None, weight: Optional[Tensor] = None, *rest: Any,
                index: Optional[Tensor] = None, ptr: Optional[Tensor] = None, dim_size: Optional[int] = None,
                dim: int = -2, max_num_elements: Optional[int] = None) -> Tensor:
        """``x`` ``[num_src, F]`` -> ``[num_dst, out_channels]``.  ``weight`` ``[E]`` (CSR slot order, e.g. an
        explainer's edge mask) multiplies each neighbour's features before the LSTM reads them.

        PyG's call form works too: ``aggr(x, index)`` (or ``index=`` / ``ptr=``, ``dim_size=``, ``dim=-2``,
        ``max_num_elements=``) reduces the rows of ``x`` into the groups ``index`` names, in their order;
        ``index`` must be sorted, as PyG's ``LSTMAggregation`` requires; positionally as PyG's, ``aggr(x, index, ptr,
        dim_size, dim)``.  The call form is PyG's, the result is PyG's only with ``pyg_padding=True``: by default
        the LSTM reads each group's own rows, without PyG's zero padding up to the largest group."""
        if isinstance(graph, Tensor) or index is not None or ptr is not None:
            if isinstance(graph, Tensor):
                if index is not None:
                    raise ValueError("LSTMAggregation: index given twice (second argument and index=)")
                index, graph = graph, None
                # PyG's positional order after index: ptr, dim_size, dim (max_num_elements by keyword only)
                if len(rest) > 2:
                    raise ValueError(f"LSTMAggregation: at most (x, index, ptr, dim_size, dim) positionally, as "
                                     f"PyG's; got {3 + len(rest)} arguments (max_num_elements= by keyword)")
                if rest and dim_size is not None:
                    raise ValueError("LSTMAggregation: dim_size given twice (positionally and dim_size=)")
                if len(rest) > 1 and dim != -2:
                    raise ValueError("LSTMAggregation: dim given twice (positionally and dim=)")
                given = dict(zip(("dim_size", "dim"), rest))
                dim_size = given.get("dim_size", dim_size)
                dim = given.get("dim", dim)
                if weight is not None:
                    if ptr is not None:
                        raise ValueError("LSTMAggregation: ptr given twice (third argument and ptr=)")
                    ptr, weight = weight, None
            elif rest:
                raise ValueError("LSTMAggregation: give index as the second argument to pass PyG's later ones "
                                 "positionally")
            if graph is not None or weight is not None:
                raise ValueError("LSTMAggregation: PyG's call form (x, index, ptr=, dim_size=) takes no graph or "
                                 "weight; pass a gnnkit Graph as the second argument for those")
            graph, rows = self._index_graph(x, index, ptr, dim_size, dim, max_num_elements)
            if rows.numel() != x.size(0):  # max_num_elements left rows out
                x = x.index_select(0, rows)
        elif not isinstance(graph, Graph):
            raise ValueError(f"LSTMAggregation: the second argument must be a gnnkit Graph (num_src = rows of x) or, "
                             f"as PyG's, an index tensor; got {type(graph).__name__}")
        elif rest:
            raise ValueError("LSTMAggregation: with a Graph the call is (x, graph, weight)")
        if x.dim() != 2:
            raise ValueError(f"LSTMAggregation: x must be [num_src, {self.in_channels}], got {list(x.shape)}")
        if x.size(1) != self.in_channels:
            raise ValueError(f"LSTMAggregation: x has {x.size(1)} features but in_channels={self.in_channels}")
        if x.size(0) != graph.num_src:
            raise ValueError(f"LSTMAggregation: x has {x.size(0)} rows but the graph has {graph.num_src} sources")
        weights = self.lstm.flat_weights()
        if x.dtype != weights[0].dtype and not torch.is_autocast_enabled(x.device.type):
            raise ValueError(f"LSTMAggregation: x is {x.dtype} but the LSTM's weights are {weights[0].dtype} (torch's "
                             f"LSTM, which PyG's calls, refuses that too); fix: x.to({weights[0].dtype}) or the layer "
                             f".to({x.dtype})")
        slots = _slot_order(graph, self.training and self.shuffle)
        col = graph.col
        if weight is not None:  # per-slot messages x_j * w_ji; the LSTM reads message s as "source" s
            x = gather_slots(graph, x) * weight.to(x.dtype).view(-1, 1)
            col = torch.arange(graph.num_edges, device=x.device)
        if torch.compiler.is_compiling():
            if torch.is_grad_enabled() and (x.requires_grad or any(w.requires_grad for w in weights)):
                return _lstm_aggr_keep_op(x.contiguous(), graph.rowptr, col, slots, *weights,
                                          self.pyg_padding)[0]
            return _lstm_aggr_op(x.contiguous(), graph.rowptr, col, slots, *weights, self.pyg_padding)
        return _lstm_aggregate(x, graph.rowptr, col, slots, weights, self.out_channels, self.pyg_padding)

    @staticmethod
    def _index_graph(x: Tensor, index: Optional[Tensor], ptr: Optional[Tensor], dim_size: Optional[int], dim: int,
                     max_num_elements: Optional[int]) -> Tuple[Graph, Tensor]:
        """PyG's ``(index | ptr, dim_size)`` as a Graph whose sources are the kept rows of ``x`` (an edge from
        row ``k`` to group ``index[k]``), and those rows' ids."""
        if not isinstance(x, Tensor) or x.dim() != 2:
            raise ValueError(f"LSTMAggregation: x must be a [num_rows, F] tensor, got "
                             f"{list(x.shape) if isinstance(x, Tensor) else type(x).__name__}")
        if dim not in (-2, 0):
            raise ValueError(f"LSTMAggregation: dim={dim} is not supported; the rows of a 2-D x are reduced (dim=-2)")
        n = x.size(0)
        if ptr is not None:
            if not isinstance(ptr, Tensor) or ptr.dim() != 1 or ptr.numel() < 1 or ptr.is_floating_point():
                raise ValueError("LSTMAggregation: ptr must be a 1-D integer tensor of group offsets [num_groups + 1]")
            ptr = ptr.long().to(x.device)
            counts = ptr[1:] - ptr[:-1]
            if int(ptr[0]) != 0 or int(ptr[-1]) != n or (counts < 0).any():
                raise ValueError(f"LSTMAggregation: ptr must rise from 0 to the number of rows of x ({n})")
            ptr_index = torch.repeat_interleave(torch.arange(counts.numel(), device=x.device), counts)
            if index is None:
                index = ptr_index
            if dim_size is None:
                dim_size = counts.numel()
        if not isinstance(index, Tensor) or index.dim() != 1 or index.numel() != n or index.is_floating_point():
            raise ValueError(f"LSTMAggregation: index must be a 1-D integer tensor with one group id per row of x "
                             f"({n}), got {list(index.shape) if isinstance(index, Tensor) else type(index).__name__}")
        index = index.long().to(x.device)
        if n > 1 and bool((index[1:] < index[:-1]).any()):
            raise ValueError("LSTMAggregation: index is not sorted; as PyG's LSTMAggregation, it must be (sort x "
                             "and index by index first: perm = index.argsort(stable=True))")
        if n and int(index[0]) < 0:
            raise ValueError("LSTMAggregation: index holds a negative group id")
        need = int(index[-1]) + 1 if n else 0
        if dim_size is None:
            dim_size = need
        elif not isinstance(dim_size, int) or isinstance(dim_size, bool) or dim_size < need:
            raise ValueError(f"LSTMAggregation: dim_size={dim_size!r} must be an int > max(index) ({need - 1})")
        rows = torch.arange(n, device=x.device)
        if max_num_elements is not None:  # as PyG: each group's first max_num_elements rows
            if not isinstance(max_num_elements, int) or isinstance(max_num_elements, bool) or max_num_elements < 1:
                raise ValueError(f"LSTMAggregation: max_num_elements={max_num_elements!r} must be an int >= 1")
            starts = torch.zeros(dim_size + 1, dtype=torch.long, device=x.device)
            starts[1:] = torch.cumsum(torch.bincount(index, minlength=dim_size), 0)
            keep = rows - starts.index_select(0, index) < max_num_elements
            rows, index = rows[keep], index[keep]
        edge_index = torch.stack([torch.arange(rows.numel(), device=x.device), index])
        return Graph.build(edge_index, size=(rows.numel(), dim_size)), rows

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.in_channels}, {self.out_channels})"
