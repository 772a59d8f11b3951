"""The base of gnnkit's drop-in layers: a :class:`torch_geometric.nn.MessagePassing`, so PyG's
tooling (``to_hetero``, ``HeteroConv``, ``torch_geometric.explain``, ``Sequential``, ``flow``,
``node_dim``, ``aggr``, ``decomposed_layers``) treats them as its own, while ``forward`` runs
gnnkit's fused CSR ops instead of ``propagate``/``message``/``aggregate``.

What PyG's tooling sets on a ``MessagePassing`` and gnnkit honours:

* ``explain`` with ``_edge_mask`` / ``_apply_sigmoid`` (set by ``torch_geometric.explain``): the
  mask multiplies each input edge's message, as ``MessagePassing.explain_message`` does; edges a
  layer adds (self-loops) get 1 and input self-loops a layer removes are dropped with it;
* ``flow="target_to_source"``: ``edge_index`` is read the other way round (``edge_index`` input only,
  as in PyG);
* ``decomposed_layers``: accepted (it only changes PyG's peak memory; results are the same);
* ``node_dim``: for a static graph (one ``edge_index`` for every batch row), the axis of a 3-D ``x``
  that holds the nodes: the second-to-last (PyG's default ``-2``, ``x`` ``[B, N, F]``) or the first
  (``node_dim=0``, ``x`` ``[N, B, F]``, the output keeps that layout); 2-D ``x`` is ``[N, F]`` either way.

Message-level hooks (``register_message_forward_pre_hook`` and the other eight) raise a clear
error: gnnkit never calls ``message``/``aggregate``, so such a hook would silently never run (PyG's
``AttentionExplainer`` and ``to_hetero_with_bases`` register them: use PyG's layer there).  For the same
reason a subclass that overrides ``message``, ``aggregate``, ``update``, ``message_and_aggregate``,
``propagate`` or ``edge_update`` (unless its own ``forward`` calls ``propagate`` and it defines ``message``) is
refused when built, and an ``explain_message``
replaced on a layer (PyG's ``GraphMaskExplainer``) when explaining: those would be silently skipped.
"""
from typing import Any, Callable, Optional

import torch
from torch import Tensor
from torch_geometric.nn.conv import MessagePassing

from gnnkit.ops import Graph, cached_for, is_sparse_adj

from ._utils import refuse_torch_func

_HOOKS = ("register_propagate_forward_pre_hook", "register_propagate_forward_hook",
          "register_message_forward_pre_hook", "register_message_forward_hook",
          "register_aggregate_forward_pre_hook", "register_aggregate_forward_hook",
          "register_message_and_aggregate_forward_pre_hook", "register_message_and_aggregate_forward_hook",
          "register_edge_update_forward_pre_hook", "register_edge_update_forward_hook")


def _flip(edge_index: Tensor) -> Tensor:
    """``edge_index.flip(0)``; a plain tensor's flip stays plain under ``torch.inference_mode`` (an inference
    tensor has no version counter, so the graph cache could not keep its structure, rebuilt on every call)."""
    if not torch.compiler.is_compiling() and torch.is_inference_mode_enabled() and not edge_index.is_inference():
        with torch.inference_mode(False):
            return edge_index.flip(0)
    return edge_index.flip(0)


# MessagePassing's methods that gnnkit's layers never call: a subclass overriding one would be silently ignored
_NEVER_CALLED = ("propagate", "message", "aggregate", "message_and_aggregate", "update", "edge_update", "edge_updater",
                 "explain_message")


def _pyg_twin(cls: type) -> str:
    """``torch_geometric.nn.<the gnnkit layer cls derives from>``, for error messages."""
    for base in cls.__mro__:
        if base.__module__.startswith("gnnkit."):
            return f"torch_geometric.nn.{base.__name__}"
    return "PyG's layer"  # pragma: no cover


class CSRMessagePassing(MessagePassing):
    """``MessagePassing`` whose subclasses aggregate with gnnkit's CSR ops (see the module doc)."""

    def __init__(self, aggr: Any = "add", **kwargs: Any):
        # a user's subclass (not gnnkit's, PyG's or torch's classes) that defines one of _NEVER_CALLED in its body:
        # PyG installs its generated propagate on the class after the first build (another module: not counted);
        # a subclass with its own forward may call propagate, which does call its message (not refused)
        users = [k for k in type(self).__mro__ if not k.__module__.startswith(("gnnkit.", "torch_geometric.", "torch."))
                 and k is not object]
        overridden = [name for k in users for name in _NEVER_CALLED
                      if name in k.__dict__ and getattr(k.__dict__[name], "__module__", None) in (k.__module__, None)]
        own_forward = next((k.__dict__["forward"] for k in users if "forward" in k.__dict__), None)
        calls_propagate = "propagate" in getattr(getattr(own_forward, "__code__", None), "co_names", ())
        if calls_propagate:
            # the subclass's forward runs PyG's propagate, which calls its own message; without one it would
            # call MessagePassing's default (x_j), not PyG's layer's (GCN's edge weights would be dropped)
            if not {"message", "message_and_aggregate"} & set(overridden):
                raise TypeError(
                    f"{type(self).__name__}.forward calls propagate, which would run MessagePassing's default "
                    f"message (x_j), not {_pyg_twin(type(self))}'s: gnnkit's layer defines none (it aggregates with "
                    f"fused CSR ops); fix: define message in {type(self).__name__}, or subclass "
                    f"{_pyg_twin(type(self))} (gnnkit's state_dict loads into it)")
            overridden = []
        if overridden:
            raise TypeError(
                f"{type(self).__name__} overrides {sorted(set(overridden))}, which gnnkit's "
                f"{_pyg_twin(type(self)).rsplit('.', 1)[-1]} never calls (it aggregates with fused CSR ops, not "
                f"propagate/message/aggregate/update), so the override would be silently skipped; fix: subclass "
                f"{_pyg_twin(type(self))} for a custom message passing (gnnkit's state_dict loads into it)")
        super().__init__(aggr, **kwargs)

    def __prepare_scriptable__(self) -> "CSRMessagePassing":
        """``torch.jit.script`` calls this first: refused by name (it failed on a type annotation it cannot
        resolve, naming neither the cause nor the fix)."""
        raise RuntimeError(f"{type(self).__name__}: TorchScript (torch.jit.script) is not supported by gnnkit's "
                           "layers: they call Python autograd Functions and custom ops; fix: torch.compile, or "
                           f"{_pyg_twin(type(self))} for a scripted model (gnnkit's state_dict loads into it)")

    # ------------------------------------------------------------------ PyG options
    def oriented(self, edge_index: Any) -> Any:
        """``edge_index`` as ``source -> target`` rows: flipped (once per tensor, cached) under
        ``flow="target_to_source"``.  Every layer's forward starts here, so it also refuses ``torch.func``
        transforms by name (below)."""
        refuse_torch_func(type(self).__name__, f"{_pyg_twin(type(self))} (gnnkit's state_dict loads into it)")
        if self.flow == "source_to_target":
            return edge_index
        if isinstance(edge_index, Graph) or is_sparse_adj(edge_index):
            raise ValueError(f"{type(self).__name__}: flow='target_to_source' needs an edge_index [2, E]; a "
                             f"{type(edge_index).__name__} is already oriented (as in PyG, which rejects "
                             "sparse adjacencies with this flow) — flip it yourself or use the default flow")
        from torch_geometric import EdgeIndex  # flip the plain tensor
        if isinstance(edge_index, EdgeIndex):
            edge_index = edge_index.as_tensor()
        if not isinstance(edge_index, Tensor):
            return edge_index  # the layer's own check names the problem
        return cached_for(edge_index, ("flipped",), lambda: _flip(edge_index))

    def static_nodes_first(self, x: Tensor) -> bool:
        """For a 3-D ``x`` (a static graph): True when ``node_dim`` puts the nodes on axis 0 (``x`` ``[N, B,
        F]``), False for the second-to-last axis (``[B, N, F]``, PyG's default); any other axis raises."""
        axis = self.node_dim + x.dim() if self.node_dim < 0 else self.node_dim
        if axis == x.dim() - 2:
            return False
        if axis == 0:
            return True
        raise ValueError(f"{type(self).__name__}: node_dim={self.node_dim} puts the nodes on axis {axis} of x with "
                         f"shape {list(x.shape)}; gnnkit takes the nodes on axis 0 ([N, B, F]) or on the "
                         "second-to-last axis ([B, N, F], node_dim=-2, the default); features are always last")

    def explain_mask(self, num_edges: int) -> Optional[Tensor]:
        """The explainer's mask ``[E]`` over the input edges (after the sigmoid), or None when not
        explaining."""
        if self._explain is not True:
            return None
        if "explain_message" in self.__dict__:  # replaced on this layer (PyG's GraphMaskExplainer does)
            raise NotImplementedError(
                f"{type(self).__name__}: explain_message was replaced on this layer (as PyG's GraphMaskExplainer "
                "does), but gnnkit's layers apply the explainer's edge mask inside their fused ops and never call "
                f"it; fix: explain with {_pyg_twin(type(self))} (gnnkit's state_dict loads into it), or with "
                "GNNExplainer / CaptumExplainer, which gnnkit's layers support")
        mask = self._edge_mask
        if mask is None:
            raise ValueError(f"{type(self).__name__}: explain=True but no edge mask was set (PyG's explainers "
                             "set one through torch_geometric.explain.algorithm.utils.set_masks)")
        if self._apply_sigmoid:
            mask = mask.sigmoid()
        if mask.dim() != 1 or mask.size(0) != num_edges:
            raise ValueError(f"{type(self).__name__}: the explainer's edge mask has shape {list(mask.shape)} but "
                             f"the layer got {num_edges} edges; edge masks must have one entry per input edge")
        return mask


REDUCES = {"add": "sum", "sum": "sum", "mean": "mean", "max": "max", "min": "min"}


def reduce_of(layer: str, aggr: Any) -> str:
    """The CSR reduction for a layer's ``aggr``: PyG's names ``add``/``sum``/``mean``/``max``/``min``, or PyG's
    ``SumAggregation()`` / ``MeanAggregation()`` / ``MaxAggregation()`` / ``MinAggregation()`` modules."""
    from torch_geometric.nn.aggr import MaxAggregation, MeanAggregation, MinAggregation, SumAggregation

    modules = {SumAggregation: "sum", MeanAggregation: "mean", MaxAggregation: "max", MinAggregation: "min"}
    if type(aggr) in modules:  # by exact type: a subclass may compute something else
        return modules[type(aggr)]
    if not isinstance(aggr, str) or aggr not in REDUCES:
        raise ValueError(f"{layer}: aggr={aggr!r} is not supported; gnnkit's {layer} runs one of {sorted(REDUCES)} "
                         "(or PyG's Sum/Mean/Max/MinAggregation) on its CSR ops; fix: one of those, or "
                         f"torch_geometric.nn.{layer} for other aggregations (gnnkit's SAGEConv takes every PyG "
                         "aggregation)")
    return REDUCES[aggr]


def _unsupported(name: str) -> Callable:
    def hook(self: CSRMessagePassing, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError(
            f"{type(self).__name__}.{name}: gnnkit's layers aggregate with fused CSR ops and never call "
            "propagate()/message()/aggregate(), so this hook would never run; use the module hooks "
            "(register_forward_pre_hook / register_forward_hook), or, where PyG's own tools register it "
            f"(AttentionExplainer, to_hetero_with_bases), {_pyg_twin(type(self))} (gnnkit's state_dict loads "
            "into it)")
    hook.__name__ = name
    return hook


for _name in _HOOKS:
    setattr(CSRMessagePassing, _name, _unsupported(_name))


def slot_mask(graph: Graph, mask: Tensor, keep: Optional[Tensor] = None, num_loops: int = 0) -> Tensor:
    """An input-edge mask as per-slot weights of ``graph`` (CSR order): the kept input edges' entries
    (``keep``: their ids, None: all), then 1 for each of the ``num_loops`` self-loops the layer added."""
    m = mask if keep is None else mask.index_select(0, keep)
    if num_loops:
        m = torch.cat([m, m.new_ones(num_loops)])
    return graph.to_csr_order(m)
