"""Ready models: ``GCN``, ``GraphSAGE``, ``GAT``, ``GIN`` for node and graph tasks.

Every model is a stack of ``num_layers`` convs with, between layers, an optional norm,
ReLU and dropout; options from the lectures: node dropout (drop whole node rows),
residual connections, Jumping Knowledge, a virtual node, and a graph readout.

* Node tasks (``readout=None``): the last conv maps to ``out_channels`` (or, with ``jk``,
  all convs are hidden and a linear layer maps the combined representation).
* Graph tasks (``readout="sum" | "mean" | "max" | "gated"``): every conv is hidden, nodes
  are pooled per graph (``batch``) and a linear layer maps to ``out_channels``.
"""
import numbers
from typing import Any, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import BatchNorm1d, LayerNorm, Linear, ModuleList, ReLU, Sequential
from torch_geometric.utils import trim_to_layer

from gnnkit.typing import Adj

from ._utils import check_count, check_graph_channels, graph_features
from .gat_conv import GATConv
from .gcn_conv import GCNConv
from .gin_conv import GINConv
from .gine_conv import GINEConv
from .readout import POOLS, GatedReadout, check_batch
from .sage_conv import SAGEConv
from .skip import JumpingKnowledge
from .virtual_node import VirtualNode, assert_several_graphs

_NORMS = {"batch": BatchNorm1d, "layer": LayerNorm}
# forward's per-hop counts -> the NeighborLoader batch attributes that hold them
_BATCH_ATTR = {"num_sampled_nodes_per_hop": "num_sampled_nodes", "num_sampled_edges_per_hop": "num_sampled_edges"}


def _drop_unused_embeddings(state_dict, prefix, *args) -> None:
    """Load-state-dict pre-hook: the initial embeddings of the 2nd and later virtual nodes, which checkpoints saved
    before 2026-12-05 hold (never used, always their zero initialisation), are dropped."""
    for key in [k for k in state_dict if k.startswith(prefix + "vn.") and k.endswith(".embedding.weight")]:
        if not key.startswith(prefix + "vn.0."):
            del state_dict[key]


class _GNN(torch.nn.Module):
    supports_edge_attr = False
    supports_edge_weight = False  # GCN: forward(..., edge_weight=) goes to every GCNConv
    lazy_input = True  # in_channels=-1 allowed

    def __init__(self, in_channels: int, hidden_channels: int, num_layers: int,
                 out_channels: Optional[int] = None,
                 dropout: float = 0.0, *, node_dropout: float = 0.0, norm: Optional[str] = None,
                 jk: Optional[str] = None, residual: bool = False, virtual_node: bool = False,
                 readout: Optional[str] = None, graph_channels: int = 0):
        super().__init__()
        name = type(self).__name__
        check_graph_channels(graph_channels, name)
        if graph_channels and not (virtual_node or readout == "gated"):
            raise ValueError(f"{name}: graph_channels={graph_channels} is read by the virtual node's initial state "
                             "and the gated readout; fix: virtual_node=True and/or readout='gated', or drop it")
        self.graph_channels = graph_channels
        in_channels = check_count(in_channels, "in_channels", name, lazy=True)
        # -1 (lazy): the convs infer their input width on the first call; GIN's MLP and the virtual node's input
        # map are plain Linear layers that cannot
        if in_channels == -1 and (virtual_node or not type(self).lazy_input):
            where = "with virtual_node=True" if virtual_node else f"by {name}'s MLP"
            raise ValueError(f"{name}: in_channels=-1 (inferred on the first call) is not supported {where}; pass "
                             "the input width")
        hidden_channels = check_count(hidden_channels, "hidden_channels", name)
        num_layers = check_count(num_layers, "num_layers", name)
        # None: PyG's default, the hidden width (the last conv, or the head, maps to hidden_channels)
        out_channels = hidden_channels if out_channels is None else check_count(out_channels, "out_channels", name)
        if jk is not None:
            if not isinstance(jk, str):
                raise ValueError(f"{name}: jk={jk!r} must be None or a JumpingKnowledge mode name (e.g. 'cat')")
            jk = jk.lower()  # JumpingKnowledge takes any case; the head's width below must agree with it
        if norm is not None and norm not in _NORMS:
            raise ValueError(f"{name}: norm={norm!r} is not supported; use None or one of {tuple(_NORMS)}")
        if readout is not None and readout not in (*POOLS, "gated"):
            raise ValueError(f"{name}: readout={readout!r} is not supported; use None (node task) or one of "
                             f"{(*POOLS, 'gated')}")
        if not (0 <= dropout < 1 and 0 <= node_dropout < 1):
            raise ValueError(f"{name}: dropout and node_dropout must lie in [0, 1)")
        self.in_channels, self.hidden_channels, self.out_channels = in_channels, hidden_channels, out_channels
        self.num_layers = num_layers
        self.dropout, self.node_dropout = dropout, node_dropout
        self.residual, self.readout = residual, readout
        self.jk_mode = jk
        head = jk is not None or readout is not None  # a final linear layer maps to out_channels
        self.convs = ModuleList()
        self.norms = ModuleList()
        for i in range(num_layers):
            last = i == num_layers - 1
            c_in = in_channels if i == 0 and not (virtual_node and in_channels != hidden_channels) \
                else hidden_channels
            c_out = out_channels if (last and not head) else hidden_channels
            self.convs.append(self.init_conv(c_in, c_out, last and not head))
            if norm is not None and not (last and not head):
                self.norms.append(_NORMS[norm](c_out))
        self.vn = None
        if virtual_node:
            if num_layers < 2:
                raise ValueError(f"{name}: virtual_node=True needs num_layers >= 2 (the state is updated "
                                 "between layers)")
            if in_channels != hidden_channels:
                self.lin_in = Linear(in_channels, hidden_channels)
            # the state starts from the first one's embedding: the later ones hold none (no parameter without a
            # gradient; checkpoints saved with one still load, _drop_unused_embeddings)
            self.vn = ModuleList([VirtualNode(hidden_channels, dropout, graph_channels=graph_channels if i == 0 else 0,
                                              initial_embedding=i == 0) for i in range(num_layers - 1)])
            self._register_load_state_dict_pre_hook(_drop_unused_embeddings)
        self.jk = None
        if jk is not None:
            self.jk = JumpingKnowledge(jk, hidden_channels, num_layers)
        width = hidden_channels * num_layers if jk == "cat" else hidden_channels
        self.pool = GatedReadout(width, width, graph_channels=graph_channels) if readout == "gated" else None
        self.lin = Linear(width, out_channels) if head else None

    def init_conv(self, in_channels: int, out_channels: int, is_output: bool) -> torch.nn.Module:
        raise NotImplementedError  # each model defines its conv

    def reset_parameters(self) -> None:
        """Re-initialise every parameter: each sub-module with its own ``reset_parameters`` resets itself and
        its children (so a child's default never overrides a parent's, e.g. the virtual node's zero start
        state); containers without one are walked into."""
        def walk(module: torch.nn.Module) -> None:
            for child in module.children():
                if hasattr(child, "reset_parameters"):
                    child.reset_parameters()
                else:
                    walk(child)
        walk(self)

    def _conv(self, i: int, x: Tensor, edge_index: Adj, edge_attr: Optional[Tensor],
              edge_weight: Optional[Tensor]) -> Tensor:
        if edge_weight is not None:
            return self.convs[i](x, edge_index, edge_weight)
        if edge_attr is not None and self.supports_edge_attr:
            return self.convs[i](x, edge_index, edge_attr)
        return self.convs[i](x, edge_index)

    def forward(self, x: Tensor, edge_index: Adj, edge_attr: Optional[Tensor] = None,
                batch: Optional[Tensor] = None, num_graphs: Optional[int] = None,
                graph_attr: Optional[Tensor] = None, edge_weight: Optional[Tensor] = None, *,
                batch_size: Optional[int] = None, num_sampled_nodes_per_hop: Optional[List[int]] = None,
                num_sampled_edges_per_hop: Optional[List[int]] = None) -> Tensor:
        """``batch_size`` is PyG's name for ``num_graphs``; ``num_sampled_nodes_per_hop`` /
        ``num_sampled_edges_per_hop`` (a ``NeighborLoader`` batch's) trim the nodes and edges no later layer
        reads before each layer, as PyG's ``BasicGNN`` does (``torch_geometric.utils.trim_to_layer``)."""
        name = type(self).__name__
        if batch_size is not None:
            batch_size = check_count(batch_size, "batch_size", name)
            if num_graphs is not None and num_graphs != batch_size:
                raise ValueError(f"{name}: batch_size={batch_size} (PyG's name for the number of graphs) and "
                                 f"num_graphs={num_graphs} disagree; pass one of them")
            num_graphs = batch_size
        trim = self._check_trim(num_sampled_nodes_per_hop, num_sampled_edges_per_hop, edge_index, edge_attr,
                                edge_weight)  # (nodes, edges) per hop as ints, or None
        if not isinstance(x, Tensor) or x.dim() < 2:
            raise ValueError(f"{name}: x must be a [num_nodes, in_channels] tensor, got "
                             f"{list(x.shape) if isinstance(x, Tensor) else type(x).__name__}")
        if self.in_channels > 0 and x.size(-1) != self.in_channels:
            raise ValueError(f"{name}: x has {x.size(-1)} features but the model was built with "
                             f"in_channels={self.in_channels}; fix in_channels or the input")
        if edge_weight is not None and not self.supports_edge_weight:
            raise ValueError(f"{name} does not use edge_weight (only GCN does); drop edge_weight, or pass edge "
                             "features as edge_attr to a model built with edge_dim=... (GAT, GIN)")
        if batch is not None:
            if self.vn is not None:
                assert_several_graphs(self, batch, num_graphs)
            _, num_graphs = check_batch(batch, x.size(-2), num_graphs, "num_graphs", name)
        if graph_attr is not None and not self.graph_channels:
            raise ValueError(f"{type(self).__name__} got graph_attr but was built without graph_channels; fix: "
                             "graph_channels=graph_attr.size(-1) (with virtual_node=True or readout='gated')")
        if graph_attr is None and self.graph_channels:
            raise ValueError(f"{type(self).__name__} was built with graph_channels={self.graph_channels}; fix: pass "
                             f"graph_attr [num_graphs, {self.graph_channels}]")
        if edge_attr is not None and not self.supports_edge_attr:
            raise ValueError(f"{type(self).__name__} does not use edge_attr; build it with edge_dim=... "
                             "(GAT, GIN) or drop edge_attr" + ("; edge weights go in as edge_weight [E]"
                                                               if self.supports_edge_weight else ""))
        if edge_attr is None and getattr(self, "edge_dim", None) is not None:  # GAT would run without them
            raise ValueError(f"{type(self).__name__} was built with edge_dim={self.edge_dim} but got no edge_attr; "
                             "fix: pass edge_attr [E, edge_dim] or build it without edge_dim")
        if graph_attr is not None:
            graph_features(graph_attr, self.graph_channels, 1 if batch is None else num_graphs, name, "forward",
                           arg="graph_attr")
        head = self.lin is not None
        if self.vn is not None:
            if hasattr(self, "lin_in"):
                x = self.lin_in(x)
            state = self.vn[0].initial_state(batch, num_graphs, graph_attr)
        xs: List[Tensor] = []
        n_norm = 0
        for i in range(self.num_layers):
            last = i == self.num_layers - 1
            if self.vn is not None:
                x = self.vn[0].broadcast(x, state, batch)
                h_vn = x
            if trim is not None and i > 0:
                x, edge_index, value = trim_to_layer(i, *trim, x, edge_index,
                                                     edge_weight if edge_weight is not None else edge_attr)
                if edge_weight is not None:
                    edge_weight = value
                else:
                    edge_attr = value
            if self.node_dropout > 0 and self.training:
                keep = torch.rand(x.size(0), 1, device=x.device) >= self.node_dropout
                x = x * keep.to(x.dtype) / (1 - self.node_dropout)
            h = self._conv(i, x, edge_index, edge_attr, edge_weight)
            if not (last and not head):
                if len(self.norms) > 0:
                    h = self.norms[n_norm](h)
                    n_norm += 1
                h = h.relu()
                h = F.dropout(h, self.dropout, self.training)
            if self.residual and h.shape == x.shape:
                h = h + x
            if self.vn is not None and not last:
                state = self.vn[i].update(h_vn, state, batch)
            xs.append(h)
            x = h
        if self.jk is not None:
            x = self.jk(xs)
        if self.readout is not None:
            x = self.pool(x, batch, num_graphs, graph_attr) if self.pool is not None else \
                POOLS[self.readout](x, batch, num_graphs)
        return self.lin(x) if head else x

    def _check_trim(self, nodes: Any, edges: Any, edge_index: Adj, edge_attr: Optional[Tensor],
                    edge_weight: Optional[Tensor]) -> Optional[Tuple[List[int], List[int]]]:
        """The per-hop node and edge counts ``forward`` trims with (as ints), or None without them; refuses, by name,
        what trimming cannot serve."""
        if nodes is None and edges is None:
            return None
        name = type(self).__name__
        if nodes is None or edges is None:
            given, missing = (("num_sampled_nodes_per_hop", "num_sampled_edges_per_hop") if edges is None
                              else ("num_sampled_edges_per_hop", "num_sampled_nodes_per_hop"))
            raise ValueError(f"{name}: {given} needs {missing} too (a NeighborLoader batch holds both: "
                             f"batch.{_BATCH_ATTR[missing]})")
        for arg, v in (("num_sampled_nodes_per_hop", nodes), ("num_sampled_edges_per_hop", edges)):
            if not isinstance(v, (list, tuple)) or not all(
                    isinstance(k, numbers.Integral) and not isinstance(k, bool) and k >= 0 for k in v):
                raise ValueError(f"{name}: {arg} must be a list of counts per hop (a NeighborLoader batch's "
                                 f"batch.{_BATCH_ATTR[arg]}), got {v!r}")
        if len(nodes) < self.num_layers or len(edges) < self.num_layers:
            raise ValueError(f"{name}: num_sampled_nodes_per_hop / num_sampled_edges_per_hop hold "
                             f"{len(nodes)} / {len(edges)} hops for {self.num_layers} layers; sample as many hops "
                             f"as layers (NeighborLoader(num_neighbors=[...] of length {self.num_layers}))")
        why = self._layerwise_refusal(" (it combines every layer's rows)")
        if why is not None:
            raise ValueError(f"{name}: num_sampled_nodes_per_hop trims the nodes layer by layer, which {why} cannot "
                             "take; drop the per-hop counts, or use a node model with jk=None or 'last'")
        if edge_weight is not None and edge_attr is not None:
            raise ValueError(f"{name}: trimming takes edge_weight or edge_attr, not both (as PyG's BasicGNN)")
        if not isinstance(edge_index, Tensor) or edge_index.layout != torch.strided:
            raise ValueError(f"{name}: num_sampled_nodes_per_hop trims an edge_index [2, E] tensor (a NeighborLoader "
                             f"batch's batch.edge_index), got {type(edge_index).__name__}; pass the edge_index")
        return [int(k) for k in nodes], [int(k) for k in edges]

    def _layerwise_refusal(self, jk_note: str = "", edge_features: bool = False) -> Optional[str]:
        """What keeps the model from running layer by layer on shrinking node sets (trimming, ``inference``):
        a readout, a virtual node, a ``jk`` mode other than None / ``'last'`` (``jk_note`` says why), and with
        ``edge_features`` an ``edge_dim``; None when nothing does."""
        if self.readout is not None:
            return "readout (a graph task)"
        if self.vn is not None:
            return "virtual_node=True"
        if self.jk_mode not in (None, "last"):
            return f"jk={self.jk_mode!r}{jk_note}"
        if edge_features and getattr(self, "edge_dim", None) is not None:
            return "edge_dim (edge features)"
        return None

    @torch.no_grad()
    def inference_per_layer(self, layer: int, x: Tensor, edge_index: Adj, batch_size: int) -> Tensor:
        """Layer ``layer`` of the model in eval mode for the first ``batch_size`` nodes of ``x`` (the seed nodes of
        a one-hop ``NeighborLoader`` batch), as PyG's ``BasicGNN.inference_per_layer``."""
        name = f"{type(self).__name__}.inference_per_layer"
        if isinstance(layer, bool) or not isinstance(layer, numbers.Integral) or not 0 <= layer < self.num_layers:
            raise ValueError(f"{name}: layer must be an int in [0, {self.num_layers}) (the model's layers), got "
                             f"{layer!r}")
        batch_size = check_count(batch_size, "batch_size", name)
        h = self.convs[layer](x, edge_index)[:batch_size]
        last = layer == self.num_layers - 1
        head = self.lin is not None
        if not (last and not head):
            if len(self.norms) > 0:
                h = self.norms[layer](h)
            h = h.relu()
        x = x[:batch_size]
        if self.residual and h.shape == x.shape:
            h = h + x
        if last and head:
            h = self.lin(h)
        return h

    @torch.no_grad()
    def inference(self, loader: Any, device: Any = None, embedding_device: Any = "cpu", progress_bar: bool = False,
                  cache: bool = False) -> Tensor:
        """Layer-wise inference for every node of a large graph, as PyG's ``BasicGNN.inference``: ``loader`` is a
        ``torch_geometric.loader.NeighborLoader`` over all nodes that samples one hop (``num_neighbors=[-1]``
        reads every neighbour, so the outputs equal a full-graph eval forward); each layer runs over all
        batches before the next, with the intermediate embeddings kept on ``embedding_device``.  Any loader
        whose batches carry ``n_id``, ``batch_size`` and ``edge_index`` (or ``adj_t``), with the node features in
        ``loader.data.x``, serves.  Each batch's seed rows are placed by their ids, so a shuffling loader gives
        the same result; every node must be a seed once.  ``cache=True`` keeps the batches (PyG's
        ``CachedLoader``).  Node models only (no readout or virtual node, ``jk`` None or ``'last'``), in eval
        mode, without edge features (as PyG's)."""
        name = type(self).__name__
        if self.training:
            raise RuntimeError(f"{name}.inference runs the model in eval mode; call model.eval() first")
        why = self._layerwise_refusal(edge_features=True)
        if why is not None:
            raise ValueError(f"{name}.inference runs the model one layer at a time over one-hop batches, which "
                             f"{why} cannot take; call the model on the whole graph (model(x, edge_index)) instead")
        data = getattr(loader, "data", None)
        if getattr(data, "x", None) is None:
            raise ValueError(f"{name}.inference: loader.data.x holds no node features; pass a NeighborLoader over a "
                             "Data with x")
        sampler = getattr(loader, "node_sampler", None)
        hops = getattr(getattr(sampler, "num_neighbors", None), "values", None)
        if isinstance(hops, list) and len(hops) != 1:
            raise ValueError(f"{name}.inference: the loader samples {len(hops)} hops; build it for one layer at a "
                             "time, NeighborLoader(data, num_neighbors=[-1], ...)")
        num_nodes = data.x.size(0)
        if cache:
            from torch_geometric.data import Data
            from torch_geometric.loader import CachedLoader

            def keep(b: Any) -> Any:
                kept = {"n_id": b.n_id, "batch_size": b.batch_size}
                kept.update({"adj_t": b.adj_t} if hasattr(b, "adj_t") else {"edge_index": b.edge_index})
                return Data.from_dict(kept)
            loader = CachedLoader(loader, device=device, transform=keep)
        bar = None
        if progress_bar:
            from tqdm.auto import tqdm
            bar = tqdm(total=self.num_layers * len(loader), desc="Inference")
        x_all = data.x.to(embedding_device)
        try:
            for i in range(self.num_layers):
                out, seen = None, torch.zeros(num_nodes, dtype=torch.bool, device=embedding_device)
                for b in loader:
                    n_id, size = b.n_id, int(b.batch_size)
                    adj = b.adj_t if hasattr(b, "adj_t") else b.edge_index
                    h = self.inference_per_layer(i, x_all[n_id.to(x_all.device)].to(device), adj.to(device), size)
                    seeds = n_id[:size].to(embedding_device)
                    if out is None:
                        out = torch.empty(num_nodes, h.size(-1), dtype=h.dtype, device=embedding_device)
                    if bool(seen[seeds].any()):
                        raise ValueError(f"{name}.inference: a node is a seed of two batches; the loader must visit "
                                         "every node once (input_nodes=None)")
                    out[seeds] = h.to(embedding_device)
                    seen[seeds] = True
                    if bar is not None:
                        bar.update(1)
                if out is None or not bool(seen.all()):
                    missing = num_nodes - int(seen.sum())
                    raise ValueError(f"{name}.inference: {missing} of {num_nodes} nodes were in no batch's seeds; the "
                                     "loader must visit every node (NeighborLoader(data, input_nodes=None, ...))")
                x_all = out
        finally:
            if bar is not None:
                bar.close()
        return x_all

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.in_channels}, {self.out_channels}, num_layers={self.num_layers})")


class GCN(_GNN):
    r"""Graph convolutional network (Kipf & Welling 2017) built from :class:`GCNConv`.  Edge weights go in as
    ``forward(x, edge_index, edge_weight=w)`` (``[E]`` or ``[E, 1]``), or as PyG's ``GCN`` takes them, the third
    positional argument ``model(x, edge_index, w)``."""

    supports_edge_weight = True

    def forward(self, x: Tensor, edge_index: Adj, edge_weight: Optional[Tensor] = None,
                batch: Optional[Tensor] = None, num_graphs: Optional[int] = None,
                graph_attr: Optional[Tensor] = None, edge_attr: Optional[Tensor] = None, *,
                batch_size: Optional[int] = None, num_sampled_nodes_per_hop: Optional[List[int]] = None,
                num_sampled_edges_per_hop: Optional[List[int]] = None) -> Tensor:
        """As the other models', with PyG's ``GCN`` order: the third argument is ``edge_weight`` (GCN reads no
        edge features; ``edge_attr`` is refused by name); ``batch_size`` and the per-hop counts as theirs."""
        return super().forward(x, edge_index, edge_attr, batch, num_graphs, graph_attr, edge_weight,
                               batch_size=batch_size, num_sampled_nodes_per_hop=num_sampled_nodes_per_hop,
                               num_sampled_edges_per_hop=num_sampled_edges_per_hop)

    def init_conv(self, in_channels: int, out_channels: int, is_output: bool) -> torch.nn.Module:
        return GCNConv(in_channels, out_channels)


class GraphSAGE(_GNN):
    r"""GraphSAGE (Hamilton et al. 2017) built from :class:`SAGEConv`; ``aggr`` picks
    mean / sum / max / lstm and ``project=True`` the pooling variant; ``aggr_kwargs`` go to every
    :class:`SAGEConv` (as PyG's ``GraphSAGE`` passes them).  With ``aggr="lstm"``, as PyG's ``SAGEConv``,
    ``edge_index`` must be sorted by destination (``torch_geometric.utils.sort_edge_index(edge_index,
    sort_by_row=False)``); an unsorted one raises.  gnnkit's LSTM reads each neighbourhood without PyG's zero
    padding; ``aggr_kwargs={"pyg_padding": True}`` gives PyG's outputs (docs/layers/sage.md)."""

    def __init__(self, in_channels: int, hidden_channels: int, num_layers: int,
                 out_channels: Optional[int] = None,
                 dropout: float = 0.0, *, aggr: str = "mean", project: bool = False,
                 aggr_kwargs: Optional[dict] = None, **options: Any) -> None:
        if aggr_kwargs is not None and not isinstance(aggr_kwargs, dict):
            raise ValueError(f"GraphSAGE: aggr_kwargs must be a dict (or None), got {type(aggr_kwargs).__name__}")
        self.aggr, self.project, self.aggr_kwargs = aggr, project, aggr_kwargs
        super().__init__(in_channels, hidden_channels, num_layers, out_channels, dropout, **options)

    def init_conv(self, in_channels: int, out_channels: int, is_output: bool) -> torch.nn.Module:
        extra = {} if self.aggr_kwargs is None else {"aggr_kwargs": dict(self.aggr_kwargs)}
        return SAGEConv(in_channels, out_channels, aggr=self.aggr, project=self.project, **extra)


class GAT(_GNN):
    r"""Graph attention network (Veličković et al. 2018) built from :class:`GATConv`.
    Hidden layers use ``heads`` heads of ``hidden_channels // heads`` channels (concatenated);
    a node-task output layer uses ``out_heads`` heads averaged.  ``attn_dropout`` drops
    attention weights (the paper uses 0.6 on inputs and attention)."""

    supports_edge_attr = True

    def __init__(self, in_channels: int, hidden_channels: int, num_layers: int,
                 out_channels: Optional[int] = None,
                 dropout: float = 0.0, *, heads: int = 8, out_heads: int = 1, attn_dropout: float = 0.0,
                 edge_dim: Optional[int] = None, **options: Any) -> None:
        if hidden_channels % heads != 0:
            raise ValueError(f"GAT: hidden_channels={hidden_channels} must be divisible by heads={heads}")
        self.heads, self.out_heads, self.attn_dropout, self.edge_dim = heads, out_heads, attn_dropout, edge_dim
        super().__init__(in_channels, hidden_channels, num_layers, out_channels, dropout, **options)

    def init_conv(self, in_channels: int, out_channels: int, is_output: bool) -> torch.nn.Module:
        if is_output:
            return GATConv(in_channels, out_channels, heads=self.out_heads, concat=False,
                           dropout=self.attn_dropout, edge_dim=self.edge_dim)
        return GATConv(in_channels, out_channels // self.heads, heads=self.heads, dropout=self.attn_dropout,
                       edge_dim=self.edge_dim)


class GIN(_GNN):
    r"""Graph isomorphism network (Xu et al. 2019) built from :class:`GINConv` with a 2-layer MLP
    (Linear, BatchNorm, ReLU, Linear) per layer; with ``edge_dim`` it uses :class:`GINEConv`."""
    lazy_input = False  # the MLP's first Linear needs its input width

    def __init__(self, in_channels: int, hidden_channels: int, num_layers: int,
                 out_channels: Optional[int] = None,
                 dropout: float = 0.0, *, train_eps: bool = False, edge_dim: Optional[int] = None,
                 **options: Any) -> None:
        self.train_eps, self.edge_dim = train_eps, edge_dim
        self.supports_edge_attr = edge_dim is not None
        super().__init__(in_channels, hidden_channels, num_layers, out_channels, dropout, **options)

    def init_conv(self, in_channels: int, out_channels: int, is_output: bool) -> torch.nn.Module:
        mlp = Sequential(Linear(in_channels, out_channels), BatchNorm1d(out_channels), ReLU(),
                         Linear(out_channels, out_channels))
        if self.edge_dim is not None:
            return GINEConv(mlp, train_eps=self.train_eps, edge_dim=self.edge_dim)
        return GINConv(mlp, train_eps=self.train_eps)
