"""OGB's baseline models, built from gnnkit's layers or from PyG's (``lib="gnnkit" | "pyg"``).

Both builds of a model have the same modules under the same names (the same ``state_dict`` keys), so
one build's initial weights load into the other and a comparison differs only in the conv layers.

- :class:`MolGNN`: OGB's molecule model (``examples/graphproppred/mol``): ``AtomEncoder``, L convs with
  a ``BondEncoder`` each, batch norm, ReLU (not after the last), dropout, optional virtual node
  (:class:`gnnkit.nn.VirtualNode`, one per layer but the last), mean pooling, a linear head.
  ``gin`` = ``GINEConv`` with OGB's MLP and a learned eps; ``gcn`` = OGB's GCN with bond features
  (:class:`gnnkit.nn.EdgeGCNConv`, and :class:`PyGEdgeGCNConv` as its PyG counterpart); ``gt`` (gnnkit
  only: PyG has no layer with a distance bias) = L :class:`gnnkit.nn.GraphTransformerConv` (pre-norm
  transformer per molecule, Graphormer's spatial bias and degree encoding, 4 heads, dropout 0.1 inside as
  Graphormer's) on the atom embeddings, a final LayerNorm, then OGB's pooling and head; bond features are
  not used (the layer has no edge encoding).
- :class:`NodeGNN`: OGB's ogbn-arxiv / ogbn-products model: L convs (GCN or GraphSAGE), batch norm
  optional, ReLU and dropout between them.
"""
from __future__ import annotations

from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import BatchNorm1d, Linear, ModuleList, ReLU, Sequential
from torch_geometric.nn import MessagePassing, global_add_pool as pyg_global_add_pool
from torch_geometric.utils import degree

from gnnkit.nn import VirtualNode

LIBS = ("gnnkit", "pyg")


def _lib(lib: str) -> Any:
    if lib not in LIBS:
        raise ValueError(f"--layers {lib!r} is not known; choose one of {LIBS}")
    if lib == "gnnkit":
        import gnnkit.nn as mod
    else:
        import torch_geometric.nn as mod
    return mod


class PyGEdgeGCNConv(MessagePassing):
    """OGB's molecule GCN as a PyG ``MessagePassing``: the reference :class:`gnnkit.nn.EdgeGCNConv` is tested
    against, with the same parameter names (PyG has no such layer)."""

    def __init__(self, channels: int):
        super().__init__(aggr="add")
        self.channels = channels
        self.linear = Linear(channels, channels)
        self.root_emb = torch.nn.Embedding(1, channels)

    def reset_parameters(self) -> None:
        self.linear.reset_parameters()
        self.root_emb.reset_parameters()

    def forward(self, x: Tensor, edge_index: Tensor, edge_attr: Tensor) -> Tensor:
        x = self.linear(x)
        row, col = edge_index
        deg = degree(row, x.size(0), dtype=x.dtype) + 1
        dis = deg.pow(-0.5)
        norm = dis[row] * dis[col]
        out = self.propagate(edge_index, x=x, edge_attr=edge_attr, norm=norm)
        return out + F.relu(x + self.root_emb.weight) / deg.view(-1, 1)

    def message(self, x_j: Tensor, edge_attr: Tensor, norm: Tensor) -> Tensor:
        return norm.view(-1, 1) * F.relu(x_j + edge_attr)


class PyGVirtualNode(VirtualNode):
    """:class:`gnnkit.nn.VirtualNode` pooled with PyG's ``global_add_pool`` (PyG has no virtual-node layer)."""

    def update(self, x: Tensor, state: Tensor, batch: Optional[Tensor]) -> Tensor:
        new = F.dropout(self.mlp(pyg_global_add_pool(x, batch, state.size(0)) + state), self.dropout, self.training)
        return new + state if self.residual else new  # OGB: v + dropout(MLP(pool + v))


MOL_MODELS = {"gcn": ("gcn", False), "gin": ("gin", False),
              "gcn-virtual": ("gcn", True), "gin-virtual": ("gin", True), "gt": ("gt", False)}
GNNKIT_ONLY = ("gt",)  # models without a PyG counterpart: --layers gnnkit only


class MolGNN(torch.nn.Module):
    """OGB's molecule property model; see the module doc.

    Args:
        model: one of :data:`MOL_MODELS` (``gcn``, ``gin``, ``gcn-virtual``, ``gin-virtual``).
        lib: ``"gnnkit"`` or ``"pyg"``: where the conv layers (and pooling) come from.
        num_tasks: outputs (one logit per task).
        num_layers, emb_dim, dropout: OGB's defaults 5, 300, 0.5.
        pooling: ``mean`` (OGB's default), ``sum`` or ``max``.
    """

    def __init__(self, model: str, lib: str, num_tasks: int, num_layers: int = 5, emb_dim: int = 300,
                 dropout: float = 0.5, pooling: str = "mean"):
        super().__init__()
        from ogb.graphproppred.mol_encoder import AtomEncoder, BondEncoder
        if model not in MOL_MODELS:
            raise ValueError(f"--model {model!r} does not fit a molecule dataset; choose one of {sorted(MOL_MODELS)}")
        if num_layers < 2:
            raise ValueError(f"num_layers must be >= 2 (OGB's molecule models), got {num_layers}")
        if pooling not in ("mean", "sum", "max"):
            raise ValueError(f"pooling must be 'mean', 'sum' or 'max', got {pooling!r}")
        conv, virtual = MOL_MODELS[model]
        if model in GNNKIT_ONLY and lib != "gnnkit":
            raise ValueError(f"--model {model} (GraphTransformerConv) has no PyG counterpart; use --layers gnnkit")
        if conv == "gt" and emb_dim % 4:
            raise ValueError(f"--model gt: the width (--hidden / emb_dim) {emb_dim} must be divisible by 4, the "
                             "transformer's heads")
        mod = _lib(lib)
        self.model, self.lib, self.num_layers, self.dropout = model, lib, num_layers, dropout
        self.atom_encoder = AtomEncoder(emb_dim)
        self.pool = getattr(mod, {"mean": "global_mean_pool", "sum": "global_add_pool", "max": "global_max_pool"}[
            pooling])
        if conv == "gt":  # residual transformer blocks (their own norms and dropout), then a final norm
            from gnnkit.nn import GraphTransformerConv
            self.convs = ModuleList(GraphTransformerConv(emb_dim, heads=4, dropout=0.1) for _ in range(num_layers))
            self.final_norm = torch.nn.LayerNorm(emb_dim)
            self.virtual_nodes = None
            self.head = Linear(emb_dim, num_tasks)
            return
        self.bond_encoders = ModuleList(BondEncoder(emb_dim) for _ in range(num_layers))
        if conv == "gin":  # OGB's GIN: eps learned from 0, MLP emb -> 2 emb (batch norm, ReLU) -> emb
            self.convs = ModuleList(
                mod.GINEConv(Sequential(Linear(emb_dim, 2 * emb_dim), BatchNorm1d(2 * emb_dim), ReLU(),
                                        Linear(2 * emb_dim, emb_dim)), train_eps=True)
                for _ in range(num_layers))
        else:
            make = mod.EdgeGCNConv if lib == "gnnkit" else PyGEdgeGCNConv
            self.convs = ModuleList(make(emb_dim) for _ in range(num_layers))
        self.batch_norms = ModuleList(BatchNorm1d(emb_dim) for _ in range(num_layers))
        vn = VirtualNode if lib == "gnnkit" else PyGVirtualNode
        self.virtual_nodes = ModuleList(vn(emb_dim, dropout) for _ in range(num_layers - 1)) if virtual else None
        self.head = Linear(emb_dim, num_tasks)

    def forward(self, data: Any) -> Tensor:
        x, edge_index, edge_attr, batch = data.x, data.edge_index, data.edge_attr, data.batch
        num_graphs = int(data.num_graphs) if hasattr(data, "num_graphs") else 1
        # edges sorted by destination once per batch, for either library (a sum does not depend on the
        # order): gnnkit's CSR then needs no per-layer gather of the [E, width] bond embeddings
        order = torch.argsort(edge_index[1] * x.size(0) + edge_index[0], stable=True)
        edge_index, edge_attr = edge_index[:, order], edge_attr[order]
        h = self.atom_encoder(x)
        if self.model == "gt":
            for conv in self.convs:
                h = conv(h, edge_index, batch)
            return self.head(self.pool(F.dropout(self.final_norm(h), self.dropout, self.training), batch,
                                       num_graphs))
        state = self.virtual_nodes[0].initial_state(batch, num_graphs) if self.virtual_nodes is not None else None
        for layer, conv in enumerate(self.convs):
            if state is not None:
                h = self.virtual_nodes[0].broadcast(h, state, batch)
            h_in = h
            h = self.batch_norms[layer](conv(h, edge_index, self.bond_encoders[layer](edge_attr)))
            if layer < self.num_layers - 1:
                h = F.relu(h)
            h = F.dropout(h, self.dropout, self.training)
            if state is not None and layer < self.num_layers - 1:
                state = self.virtual_nodes[layer].update(h_in, state, batch)
        return self.head(self.pool(h, batch, num_graphs))


NODE_MODELS = ("gcn", "sage")


class NodeGNN(torch.nn.Module):
    """OGB's node-classification baseline: ``num_layers`` GCN or GraphSAGE convs; between them batch
    norm (``batch_norm``, OGB's ogbn-arxiv model), ReLU and dropout; logits out.

    :meth:`forward_layer` runs one layer (layer-wise full-neighbourhood inference on large graphs)."""

    def __init__(self, model: str, lib: str, in_channels: int, hidden: int, out_channels: int,
                 num_layers: int = 3, dropout: float = 0.5, batch_norm: bool = True, cached: bool = False):
        super().__init__()
        if model not in NODE_MODELS:
            raise ValueError(f"--model {model!r} does not fit a node dataset; choose one of {list(NODE_MODELS)}")
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        mod = _lib(lib)
        self.model = model
        dims = [in_channels] + [hidden] * (num_layers - 1) + [out_channels]
        if model == "gcn":  # ``cached``: keep the normalised adjacency of a fixed full graph (OGB's arxiv GCN)
            self.convs = ModuleList(mod.GCNConv(a, b, cached=cached) for a, b in zip(dims[:-1], dims[1:]))
        else:
            self.convs = ModuleList(mod.SAGEConv(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.bns = ModuleList(BatchNorm1d(hidden) for _ in range(num_layers - 1)) if batch_norm else None
        self.dropout = dropout

    @property
    def num_layers(self) -> int:
        return len(self.convs)

    def forward_layer(self, i: int, x: Tensor, edge_index: Any, norm_weight: Optional[Tensor] = None) -> Tensor:
        """Layer ``i`` (conv, then batch norm, ReLU and dropout between layers).  ``norm_weight`` (GCN only): each
        edge's normalised weight, self-loops included in ``edge_index``, computed on the whole graph — layer-wise
        inference runs a layer on subgraphs whose own degrees are not the graph's (a neighbour outside the batch
        has no edges there) — used as given, without the conv's own normalisation."""
        conv = self.convs[i]
        if norm_weight is None:
            x = conv(x, edge_index)
        else:
            if self.model != "gcn":  # (SAGEConv has a normalize attribute too: not a test of the kind)
                raise ValueError(f"forward_layer: norm_weight is for GCN layers; this model's are {self.model!r}")
            normalize, conv.normalize = conv.normalize, False
            try:
                x = conv(x, edge_index, norm_weight)
            finally:
                conv.normalize = normalize
        if i < self.num_layers - 1:
            if self.bns is not None:
                x = self.bns[i](x)
            x = F.dropout(F.relu(x), self.dropout, self.training)
        return x

    def forward(self, x: Tensor, edge_index: Any) -> Tensor:
        for i in range(self.num_layers):
            x = self.forward_layer(i, x, edge_index)
        return x
