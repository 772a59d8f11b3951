"""GINEConv: drop-in for ``torch_geometric.nn.GINEConv`` (GIN with edge features)."""
from typing import Any, Optional, Tuple

import torch
from torch import Tensor
from torch_geometric.nn.dense.linear import Linear
from torch_geometric.nn.inits import reset

from gnnkit.ops import is_sparse_adj, relu_message_slots, segment_reduce_slots
from gnnkit.typing import Adj, NodeFeatures

from ._attention import num_input_edges
from ._base import CSRMessagePassing, reduce_of, slot_mask
from ._utils import check_edge_rows, edge_linear, graph_of, node_pair, resolve_size


def _split_hybrid(adj: Tensor) -> Tuple[Tensor, Tensor]:
    """A hybrid ``torch.sparse`` adj_t ``[num_dst, num_src, D]`` (PyG reads its values as ``edge_attr``) as its
    2-D structure and its values ``[nnz, D]`` in that structure's entry order (coalesced COO or CSR: row-major)."""
    if adj.layout == torch.sparse_coo:
        adj = adj.coalesce()  # (duplicates summed, as PyG's to_edge_index)
        vals = adj.values()
        ones = torch.ones(vals.size(0), dtype=vals.dtype, device=vals.device)
        return torch.sparse_coo_tensor(adj.indices(), ones, adj.shape[:2], is_coalesced=True), vals
    if adj.layout == torch.sparse_csr:
        vals = adj.values()
        ones = torch.ones(vals.size(0), dtype=vals.dtype, device=vals.device)
        return torch.sparse_csr_tensor(adj.crow_indices(), adj.col_indices(), ones, adj.shape[:2]), vals
    raise ValueError(f"GINEConv: a hybrid sparse adj_t [N, M, D] must be COO or CSR, got {adj.layout}; convert it with "
                     ".to_sparse_csr()")


class GINEConv(CSRMessagePassing):
    r"""The modified GIN operator from `"Strategies for Pre-training Graph Neural Networks"
    <https://arxiv.org/abs/1905.12265>`_, a drop-in for :class:`torch_geometric.nn.GINEConv`.

    .. math::
        \mathbf{x}^{\prime}_i = h_{\mathbf{\Theta}} \Big( (1 + \epsilon) \cdot \mathbf{x}_i +
        \sum_{j \in \mathcal{N}(i)} \mathrm{ReLU}(\mathbf{x}_j + \mathbf{\Theta}_e \mathbf{e}_{j,i})
        \Big)

    (:math:`\mathbf{\Theta}_e` only with ``edge_dim``; otherwise ``edge_attr`` must already
    have the node width).  Messages are summed by a CSR segment reduction (deterministic).

    Args:
        nn: the network :math:`h_{\mathbf{\Theta}}`.
        eps: initial :math:`\epsilon` (default 0).
        train_eps: learn :math:`\epsilon` (default False).
        edge_dim: edge feature width; adds the linear map :math:`\mathbf{\Theta}_e` to the
            input width of ``nn`` (default None).

    Shapes:
        - input: node features :math:`(|V|, F_{in})` or a pair; edge indices or sparse ``adj_t``;
          edge features :math:`(|E|, D)` (required)
        - output: :math:`(|V_t|, F_{out})`
    """

    def __init__(self, nn: torch.nn.Module, eps: float = 0.0, train_eps: bool = False,
                 edge_dim: Optional[int] = None, **kwargs: Any):
        kwargs.setdefault("aggr", "add")
        reduce = reduce_of("GINEConv", kwargs["aggr"])
        super().__init__(**kwargs)
        self._reduce = reduce
        self.nn = nn
        self.initial_eps = eps
        if train_eps:
            self.eps = torch.nn.Parameter(torch.empty(1))
        else:
            self.register_buffer("eps", torch.empty(1))
        if edge_dim is not None:
            first = nn[0] if isinstance(nn, torch.nn.Sequential) else nn
            if hasattr(first, "in_features"):
                in_channels = first.in_features
            elif hasattr(first, "in_channels"):
                in_channels = first.in_channels
            else:
                raise ValueError("GINEConv could not infer the input width of nn (its first module has neither "
                                 "in_features nor in_channels); start nn with a Linear layer")
            self.lin = Linear(edge_dim, in_channels)
        else:
            self.lin = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        reset(self.nn)
        self.eps.data.fill_(self.initial_eps)
        if self.lin is not None:
            self.lin.reset_parameters()

    def forward(self, x: NodeFeatures, edge_index: Adj,
                edge_attr: Optional[Tensor] = None, size: Optional[Tuple[int, int]] = None) -> Tensor:
        edge_index = self.oriented(edge_index)
        static = isinstance(x, Tensor) and x.dim() == 3
        nodes_first = static and self.static_nodes_first(x)  # node_dim=0: x is [N, B, F] already
        if static:  # static graph [B, N, F]: one graph for every batch row, nodes first inside
            x_src = x_dst = x if nodes_first else x.transpose(0, 1)
            ns = nd = x_src.size(0)
        else:
            x_src, x_dst, _ = node_pair(x, "GINEConv", dense=True)
            ns, nd = resolve_size(edge_index, x_src, x_dst, size)
        if edge_attr is None and is_sparse_adj(edge_index) and isinstance(edge_index, Tensor) \
                and edge_index.dim() == 3 and edge_index.dense_dim() == 1:
            edge_index, edge_attr = _split_hybrid(edge_index)  # [N, M, D]: its values are the edge features
        graph, w = graph_of(edge_index, ns, nd, use_values=True)
        if edge_attr is None:
            if w is None:
                raise ValueError("GINEConv needs edge features: pass edge_attr [E, edge_dim] (use GINConv for "
                                 "graphs without edge features)")
            edge_attr = graph.from_csr_order(w)  # PyG reads a sparse adj_t's values as edge_attr
        if static and edge_attr.dim() == 3:  # per-batch-row edge features: [E, B, D] (node_dim=0) or [B, E, D]
            B = x_src.size(1)
            edge_attr = edge_attr if nodes_first else edge_attr.transpose(0, 1)
            if edge_attr.size(1) == 1:  # one set of features for every batch row, broadcast as in PyG
                edge_attr = edge_attr.expand(-1, B, -1)
            if edge_attr.size(1) != B:
                raise ValueError(f"GINEConv: a static graph with {B} batch rows takes edge_attr [E, D] (shared) or "
                                 f"{'[E, B, D]' if nodes_first else '[B, E, D]'} with B={B}, got "
                                 f"{list(edge_attr.shape) if nodes_first else list(edge_attr.transpose(0, 1).shape)}")
        check_edge_rows(edge_attr, num_input_edges(edge_index), "GINEConv", "edge_attr", max_dim=3 if static else 2)
        # to CSR slot order first: a row permutation commutes with the row-wise linear map, and permuting
        # the raw features (no gradient) spares the backward a scatter of the [E, F] gradient
        ea = graph.to_csr_order(edge_attr.view(-1, 1) if edge_attr.dim() == 1 else edge_attr)
        # edge features meet the weights that read them in their dtype (float32 features in a .double() model);
        # then x_j + e_ji promotes as PyG's message does (bfloat16 x in a float32 model: a float32 result)
        if ea.is_floating_point() and self.lin is not None and self.lin.in_channels > 0 and \
                ea.dtype != self.lin.weight.dtype:
            ea = ea.to(self.lin.weight.dtype)
        if self.lin is not None:
            if self.lin.in_channels > 0 and ea.size(-1) != self.lin.in_channels:
                raise ValueError(f"GINEConv: edge_attr has {ea.size(-1)} features but edge_dim="
                                 f"{self.lin.in_channels}; fix edge_dim or edge_attr")
            ea = edge_linear(self.lin, ea)
            if ea.size(-1) != x_src.size(-1):
                raise ValueError(f"GINEConv: x has {x_src.size(-1)} features but edge_dim maps edge_attr to the width "
                                 f"of nn's input, {ea.size(-1)}; fix: x with {ea.size(-1)} features, or an nn whose "
                                 f"first layer takes {x_src.size(-1)}")
        elif ea.size(-1) != x_src.size(-1):
            raise ValueError(f"GINEConv: node features have width {x_src.size(-1)} but edge_attr has "
                             f"{ea.size(-1)}; set edge_dim={ea.size(-1)} to map edge features to the node width")
        if x_dst is not None and x_dst.size(-1) != x_src.size(-1):
            raise ValueError(f"GINEConv: x_src has {x_src.size(-1)} features but x_dst has {x_dst.size(-1)}; "
                             "both sides must have the same width")
        if ea.is_floating_point() and ea.dtype != x_src.dtype:
            common = torch.promote_types(ea.dtype, x_src.dtype)
            w = next(self.nn.parameters(), None) if isinstance(self.nn, torch.nn.Module) else None
            if w is not None and w.dtype == x_src.dtype != common:  # wider edge features than the model: its dtype
                common = x_src.dtype
            ea, x_src = ea.to(common), x_src.to(common)
            x_dst = None if x_dst is None else x_dst.to(common)
        if static and ea.dim() == 2:  # one set of edge features for every batch row
            ea = ea.unsqueeze(1).expand(-1, x_src.size(1), -1)
        msg = relu_message_slots(graph, x_src, ea)  # relu(x_j + e_ji), [E, F] in CSR order
        mask = self.explain_mask(num_input_edges(edge_index))
        if mask is not None:  # PyG's explain_message: each edge's message times its mask
            msg = msg * slot_mask(graph, mask).to(msg.dtype).view((-1,) + (1,) * (msg.dim() - 1))
        out = segment_reduce_slots(graph, msg, self._reduce)
        if x_dst is not None:
            out = out + (1 + self.eps) * x_dst
        return self.nn(out.transpose(0, 1) if static and not nodes_first else out)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(nn={self.nn})"
