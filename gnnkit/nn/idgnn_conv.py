"""Identity-aware GNN (ID-GNN, You et al. 2021): heterogeneous message passing over identity-coloured ego
networks, and ID-GNN-Fast's cycle-count features.

The lecture's question: a GCN cannot tell which graph a node lies in when the nodes' computation graphs
are the same (a node of a triangle and a node of a hexagon: every node has degree 2).  ID-GNN colours
the node being embedded (the *ego*) and lets its messages use their own weights, so the ego "sees" itself
come back around a cycle:

.. math::
    \\mathbf{m}_s = \\mathbf{W}\\mathbf{h}_s + \\mathbb{1}[s = v]\\, \\mathbf{W}_{\\mathrm{id}}\\mathbf{h}_s,
    \\qquad \\mathbf{h}_u' = \\sum_{s \\in \\mathcal{N}(u) \\cup \\{u\\}}
    \\frac{\\mathbf{m}_s}{\\sqrt{\\hat d_s \\hat d_u}}
    + \\mathbf{b}

(``normalize=False``: a plain sum).  To embed node ``v``, :class:`IDGNN` runs L such layers on v's L-hop
ego network with only v coloured, for every requested node at once (their ego networks batched as one
disjoint graph).  ID-GNN-Fast instead adds to the input the cycle counts :math:`[A^k]_{vv}`,
``k = 1..K`` (:func:`cycle_count_features`), and uses any GNN.
"""
from __future__ import annotations

import hashlib
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import Linear, ModuleList, Parameter

from gnnkit._checks import assert_in_graph, check_int
from gnnkit.ops import as_graph, cached_for, validate_edge_index

from ._utils import aggregate, refuse_torch_func, require_edge_list
from .gcn_conv import gcn_norm_slots


def _identity_mask(identity: Optional[Tensor], n: int, device: torch.device) -> Tensor:
    if identity is None:
        return torch.zeros(n, dtype=torch.bool, device=device)
    if identity.dtype == torch.bool:
        if identity.shape != (n,):
            raise ValueError(f"IDGNNConv: identity must be a bool mask [N={n}] or node indices, got shape "
                             f"{list(identity.shape)}")
        return identity
    if identity.is_floating_point() or identity.is_complex():  # .long() would truncate 0.7 to node 0
        raise ValueError(f"IDGNNConv: identity must be a bool mask [N={n}] or integer node indices, got "
                         f"{identity.dtype}; fix: identity.long() if the values are whole node ids")
    idx = identity.long().view(-1)
    if torch.compiler.is_compiling():  # checked as the compiled graph runs
        assert_in_graph((idx >= 0) & (idx < n), f"IDGNNConv: identity indices must lie in [0, {n})")
    elif idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= n):
        raise ValueError(f"IDGNNConv: identity indices must lie in [0, {n})")
    return torch.zeros(n, dtype=torch.bool, device=device).index_fill_(0, idx, True)


class IDGNNConv(torch.nn.Module):
    """One ID-GNN layer (see the module doc): GCN-style propagation in which the messages of the
    identity-coloured nodes add :math:`\\mathbf{W}_{\\mathrm{id}}\\mathbf{h}_s` (GraphGym's ID-GCN layer).

    Args:
        in_channels, out_channels: widths.
        normalize: symmetric GCN normalisation with self-loops (default True; a node's self-loop already in
            ``edge_index`` is kept, one, as PyG's ``GCNConv`` keeps it); False: the sum over the neighbours plus the
            node's own message, as PyG's ``GraphConv`` / ``GINConv`` sum (a self-loop already in ``edge_index``
            then counts the node twice: drop loops first, ``torch_geometric.utils.remove_self_loops``, for once).
        bias: learn an additive bias.

    ``forward(x, edge_index, identity)``: ``identity`` a bool mask ``[N]`` or the indices of the coloured
    nodes (``None``: none coloured, a plain GCN layer).
    """

    def __init__(self, in_channels: int, out_channels: int, normalize: bool = True, bias: bool = True):
        super().__init__()
        self.in_channels, self.out_channels, self.normalize = in_channels, out_channels, normalize
        self.lin = Linear(in_channels, out_channels, bias=False)
        self.lin_id = Linear(in_channels, out_channels, bias=False)
        self.bias = Parameter(torch.zeros(out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        torch.nn.init.xavier_uniform_(self.lin.weight)
        torch.nn.init.xavier_uniform_(self.lin_id.weight)
        if self.bias is not None:
            torch.nn.init.zeros_(self.bias)

    def forward(self, x: Tensor, edge_index: Tensor, identity: Optional[Tensor] = None) -> Tensor:
        refuse_torch_func("IDGNNConv")
        if x.dim() != 2 or x.size(-1) != self.in_channels:
            raise ValueError(f"IDGNNConv: x must be [N, in_channels={self.in_channels}], got {list(x.shape)}")
        n = x.size(0)
        ident = _identity_mask(identity, n, x.device)
        h = self.lin(x)
        if torch.compiler.is_compiling() or bool(ident.any()):  # (compiled: no data-dependent branch; adds 0 rows)
            h = h + self.lin_id(x) * ident.unsqueeze(-1).to(x.dtype)
        if self.normalize:
            graph, w = gcn_norm_slots(edge_index, num_nodes=n, dtype=x.dtype)
            out = aggregate(graph, h, w, "sum")
        else:
            graph, _ = as_graph(edge_index, num_nodes=n)
            out = aggregate(graph, h, None, "sum", root=h)
        return out + self.bias if self.bias is not None else out

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.in_channels}, {self.out_channels})"


def ego_networks(edge_index: Tensor, num_nodes: int, nodes: Tensor, num_hops: int) -> Tuple[Tensor, Tensor, Tensor]:
    """The ``num_hops``-hop in-neighbourhoods of ``nodes`` (every node whose messages reach the centre in
    ``num_hops`` layers) as one disjoint graph: ``(node_ids, edge_index, centre)`` with ``node_ids`` the
    original id of every node of the union, ``edge_index`` over the union, ``centre[i]`` the position of
    ``nodes[i]``."""
    from torch_geometric.utils import k_hop_subgraph
    ids, edges, centres, offset = [], [], [], 0
    for v in nodes.tolist():
        subset, sub_ei, mapping, _ = k_hop_subgraph(int(v), num_hops, edge_index, relabel_nodes=True,
                                                    num_nodes=num_nodes, flow="source_to_target")
        ids.append(subset)
        edges.append(sub_ei + offset)
        centres.append(int(mapping) + offset)
        offset += subset.numel()
    return torch.cat(ids), torch.cat(edges, 1), torch.tensor(centres, dtype=torch.long)


class IDGNN(torch.nn.Module):
    """ID-GNN for node embeddings: ``num_layers`` :class:`IDGNNConv` layers (ReLU and dropout between them)
    run on each requested node's ``num_layers``-hop ego network with that node coloured.

    ``forward(x, edge_index, nodes=None)`` returns ``[len(nodes), out_channels]`` (all nodes when ``nodes``
    is None), ego networks batched ``batch_size`` at a time.  Cost: the sum of the ego networks' sizes
    (the paper's price for its expressiveness); ID-GNN-Fast (:func:`cycle_count_features`) avoids it.
    """

    def __init__(self, in_channels: int, hidden_channels: int, out_channels: int, num_layers: int = 2,
                 dropout: float = 0.0, normalize: bool = True, batch_size: int = 256):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"IDGNN: num_layers must be >= 1, got {num_layers}")
        dims = [in_channels] + [hidden_channels] * (num_layers - 1) + [out_channels]
        self.convs = ModuleList(IDGNNConv(a, b, normalize) for a, b in zip(dims[:-1], dims[1:]))
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"IDGNN: batch_size must be an integer >= 1 (ego networks per chunk), got {batch_size!r}")
        self.dropout, self.batch_size = dropout, batch_size

    def _egos(self, edge_index: Tensor, n: int, nodes: Tensor, device: torch.device) -> list:
        """The batched ego networks of ``nodes``, cached on ``edge_index`` (training re-reads them)."""
        def build() -> list:  # validated once per edge_index, with the ego networks (not on every call)
            validate_edge_index(edge_index, n, n)
            ei, chunks = edge_index.cpu().long(), []
            for i in range(0, nodes.numel(), self.batch_size):
                ids, sub, centre = ego_networks(ei, n, nodes[i:i + self.batch_size].cpu(), len(self.convs))
                chunks.append((ids.to(device), sub.to(device), centre.to(device)))
            return chunks
        # keyed on the exact node list (order matters: row i of the output is nodes[i]); O(len(nodes)) per call
        nodes_key = hashlib.sha1(nodes.detach().to("cpu", torch.long).contiguous().numpy().tobytes()).hexdigest()
        tag = ("idgnn_egos", n, len(self.convs), self.batch_size, str(device), nodes.numel(), nodes_key)
        return cached_for(edge_index, tag, build)

    def forward(self, x: Tensor, edge_index: Tensor, nodes: Optional[Tensor] = None) -> Tensor:
        refuse_torch_func("IDGNN")
        require_edge_list(edge_index, "IDGNN")
        width = self.convs[0].in_channels
        if x.dim() != 2 or x.size(1) != width:
            raise ValueError(f"IDGNN: x must be [N, in_channels={width}], got {list(x.shape)}")
        n = x.size(0)
        if nodes is None:
            nodes = torch.arange(n, device=x.device)
        elif not isinstance(nodes, Tensor):
            raise ValueError(f"IDGNN: nodes must be a tensor of node indices or a bool mask, got "
                             f"{type(nodes).__name__}")
        elif nodes.dtype == torch.bool:  # a mask (e.g. train_mask): its nodes, in order
            if nodes.shape != (n,):
                raise ValueError(f"IDGNN: a bool nodes mask must have shape [{n}] (one entry per row of x), got "
                                 f"{list(nodes.shape)}")
            nodes = nodes.nonzero().view(-1)
        elif nodes.is_floating_point() or nodes.is_complex():
            raise ValueError(f"IDGNN: nodes must be integer node indices or a bool mask, got dtype {nodes.dtype}")
        else:
            nodes = nodes.long().view(-1)
        if nodes.numel() and (int(nodes.min()) < 0 or int(nodes.max()) >= n):
            raise ValueError(f"IDGNN: nodes must be node indices in [0, {n}), got values from {int(nodes.min())} "
                             f"to {int(nodes.max())}")
        outs = []
        for ids, ei, centre in self._egos(edge_index, n, nodes, x.device):
            h = x.index_select(0, ids)
            for k, conv in enumerate(self.convs):
                h = conv(h, ei, centre)
                if k < len(self.convs) - 1:
                    h = F.dropout(F.relu(h), self.dropout, self.training)
            outs.append(h.index_select(0, centre))
        return torch.cat(outs) if outs else x.new_zeros(0, self.convs[-1].out_channels)


def cycle_count_features(edge_index: Tensor, num_nodes: int, max_length: int = 4, chunk: int = 1024,
                         dtype: Optional[torch.dtype] = None) -> Tensor:
    """ID-GNN-Fast's identity features: ``[N, max_length]`` with column ``k-1`` = :math:`[A^k]_{vv}`, the
    number of closed walks of length k from each node (``k=3``: twice its triangles), for ``k = 1..max_length``.

    ``A`` is the edge list as given: a repeated edge counts as parallel edges and a self-loop as a walk of
    length 1 (coalesce and drop loops first, ``torch_geometric.utils.coalesce`` / ``remove_self_loops``, for
    a simple graph's counts).

    Computed in float64 by sparse products with ``chunk`` columns of the identity at a time (memory
    ``N x chunk``, time ``max_length x E x N``: meant for graphs up to ~10^5 nodes): exact below 2^53.
    Returned in ``dtype`` (default: torch's default dtype; float32 rounds counts above 2^24, a hub of ~4,100
    neighbours at k = 4: pass ``dtype=torch.float64`` for the exact counts)."""
    for name, value, least in (("num_nodes", num_nodes, 0), ("max_length", max_length, 1), ("chunk", chunk, 1)):
        check_int(name, value, least, who="cycle_count_features")
    validate_edge_index(edge_index, num_nodes, num_nodes)
    ei = edge_index.long().cpu()  # the counts are computed (and returned) on the CPU, whatever the edges' device
    a = torch.sparse_coo_tensor(torch.stack([ei[1], ei[0]]), torch.ones(ei.size(1), dtype=torch.float64),
                                (num_nodes, num_nodes), check_invariants=False).coalesce()
    out = torch.zeros(num_nodes, max_length, dtype=torch.float64)
    for start in range(0, num_nodes, chunk):
        cols = torch.arange(start, min(start + chunk, num_nodes))
        y = torch.zeros(num_nodes, cols.numel(), dtype=torch.float64)
        y[cols, torch.arange(cols.numel())] = 1.0
        for k in range(max_length):
            y = torch.sparse.mm(a, y)
            out[cols, k] = y[cols, torch.arange(cols.numel())]
    if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise ValueError(f"cycle_count_features: dtype must be a floating torch dtype, got {dtype!r}")
    return out.to(torch.get_default_dtype() if dtype is None else dtype)
