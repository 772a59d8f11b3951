"""Graph VQ-VAEs: node latents from a gnnkit GNN, quantised, decoded back to a graph.

One level (:class:`GraphVQVAE`)::

    h     = GNN(pos(rank) + label + x)                 gnnkit layers over the graph, [N, hidden]
    z_e   = Linear(h)                                  [N, parts, quantizer.input_dim]
    z_q   = Quantize(z_e)                              [N, parts, quantizer.dim]   (VQ, FSQ or Gumbel)
    h'    = Transformer(Linear(z_q) + pos(rank))       over the nodes of each graph (the decoder)
    A_ij  = σ(MLP([a_i ⊙ a_j, |a_i − a_j|])),  a = Linear(h')      symmetric edge decoder
    label = Linear(h'),  x = Linear(h')

Nodes are numbered in a canonical BFS order (:func:`gnnkit.latent.order.canonical`), and ``rank`` is a
node's place in it, so a sequence of node codes in that order — what the prior samples — decodes to a
graph. Each node vector is split into ``parts`` sub-vectors quantised with one codebook (as DGAE's
partitioned VQ): ``parts * log2(K)`` bits per node.

Two levels (:class:`HierarchicalGraphVQVAE`, VQ-VAE-2's recipe from the lecture):
``h_top = E_top(x)`` (pooled, ``top_slots`` graph-level codes for the coarse structure), ``e_top = VQ(h_top)``;
``h_bottom = E_bottom(x, e_top)``, ``e_bottom = VQ(h_bottom)``; ``x̂ = D(e_top, e_bottom)`` — the top
codes enter the decoder's Transformer as extra tokens.

Edge loss: all node pairs of each graph for small graphs (``edge_loss="dense"``), or the edges plus as
many non-edges drawn by :func:`gnnkit.linkpred.negative_sampling` for large ones (``"sampled"``);
``"auto"`` picks dense up to 256 nodes per graph.
"""
from __future__ import annotations

from typing import Dict, List, NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import LayerNorm, Linear, ReLU, Sequential
from torch_geometric.data import Batch, Data
from torch_geometric.utils import to_dense_batch

from gnnkit.linkpred import negative_sampling
from gnnkit.nn import GCNConv, GINConv, SAGEConv, global_max_pool, global_mean_pool

from ._common import QuantizerOutput, QuantizerStats, UsageMonitor, check_int, check_number, evaluating

CONVS = {
    "gin": lambda h: GINConv(Sequential(Linear(h, h), ReLU(), Linear(h, h))),
    "gcn": lambda h: GCNConv(h, h),
    "sage": lambda h: SAGEConv(h, h),
}
EDGE_LOSSES = ("auto", "dense", "sampled")
DENSE_MAX_NODES = 256


class Codes(NamedTuple):
    """Discrete codes of a batch of graphs: ``num_nodes`` ``[B]``, ``nodes`` — one ``[n_b, parts]`` long
    tensor per graph (canonical order), ``top`` ``[B, top_slots]`` (two-level models) or ``None``."""
    num_nodes: Tensor
    nodes: List[Tensor]
    top: Optional[Tensor]


class VQVAEOutput(NamedTuple):
    """``loss`` (total), ``terms`` (each unweighted reconstruction term and the quantizer losses),
    ``node_indices`` ``[N, parts]``, ``top_indices`` ``[B, top_slots]`` or ``None``, ``stats`` of the
    node (bottom) quantizer, ``edge_logits`` ``[P]`` for the pairs ``edge_pairs`` ``[2, P]`` (global node
    ids) with targets ``edge_targets`` ``[P]``, ``label_logits`` ``[N, C]`` or ``None``."""
    loss: Tensor
    terms: Dict[str, Tensor]
    node_indices: Tensor
    top_indices: Optional[Tensor]
    stats: QuantizerStats
    edge_logits: Tensor
    edge_pairs: Tensor
    edge_targets: Tensor
    label_logits: Optional[Tensor]


def _ranks(batch: Tensor, ptr: Tensor) -> Tensor:
    return torch.arange(batch.numel(), device=batch.device) - ptr.index_select(0, batch)


class GraphEncoder(torch.nn.Module):
    """Input embedding (BFS rank, node label, features) and ``num_layers`` gnnkit convolutions with
    residual connections and LayerNorm."""

    def __init__(self, hidden: int, num_layers: int, max_nodes: int, in_channels: int, num_node_labels: int,
                 conv: str, dropout: float):
        super().__init__()
        if conv not in CONVS:
            raise ValueError(f"conv={conv!r} is not available; use one of {sorted(CONVS)}")
        self.pos = torch.nn.Embedding(max_nodes, hidden) if max_nodes else None  # 0: a stack of layers only
        self.label = torch.nn.Embedding(num_node_labels, hidden) if num_node_labels else None
        self.feat = Linear(in_channels, hidden) if in_channels else None
        self.convs = torch.nn.ModuleList([CONVS[conv](hidden) for _ in range(num_layers)])
        self.norms = torch.nn.ModuleList([LayerNorm(hidden) for _ in range(num_layers)])
        self.dropout = dropout

    def embed(self, data: Batch, rank: Tensor) -> Tensor:
        h = self.pos(rank)
        if self.label is not None:
            h = h + self.label(data.node_label)
        if self.feat is not None:
            h = h + self.feat(data.x.to(self.feat.weight.dtype))  # (a .double() model reads float64 features)
        return h

    def forward(self, h: Tensor, edge_index: Tensor) -> Tensor:
        for conv, norm in zip(self.convs, self.norms):
            h = h + F.dropout(F.relu(norm(conv(h, edge_index))), self.dropout, self.training)
        return h


class GraphDecoder(torch.nn.Module):
    """Transformer over the nodes of each graph (plus optional prefix tokens), then edge, label and
    feature heads."""

    def __init__(self, hidden: int, layers: int, heads: int, max_nodes: int, num_node_labels: int,
                 in_channels: int, edge_channels: int, dropout: float):
        super().__init__()
        self.pos = torch.nn.Embedding(max_nodes, hidden)
        layer = torch.nn.TransformerEncoderLayer(hidden, heads, 2 * hidden, dropout, batch_first=True,
                                                 norm_first=True)
        self.transformer = torch.nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.edge_in = Linear(hidden, edge_channels)
        self.edge_mlp = Sequential(Linear(2 * edge_channels, edge_channels), ReLU(), Linear(edge_channels, 1))
        self.label_head = Linear(hidden, num_node_labels) if num_node_labels else None
        self.feat_head = Linear(hidden, in_channels) if in_channels else None

    def forward(self, tokens: Tensor, mask: Tensor, prefix: Optional[Tensor] = None) -> Tensor:
        """``tokens`` ``[B, Nmax, hidden]``, ``mask`` ``[B, Nmax]`` → node states ``[B, Nmax, hidden]``."""
        rank = torch.arange(tokens.size(1), device=tokens.device)
        h = tokens + self.pos(rank).unsqueeze(0)
        pad = ~mask
        if prefix is not None:
            h = torch.cat([prefix, h], dim=1)
            pad = torch.cat([pad.new_zeros(prefix.shape[:2]), pad], dim=1)
        h = self.transformer(h, src_key_padding_mask=pad)
        return h[:, prefix.size(1):] if prefix is not None else h

    def pair_logits(self, a_i: Tensor, a_j: Tensor) -> Tensor:
        """Edge logits of pairs of edge embeddings (broadcasting; symmetric in ``i``, ``j``)."""
        pair = torch.cat(torch.broadcast_tensors(a_i * a_j, (a_i - a_j).abs()), dim=-1)
        return self.edge_mlp(pair).squeeze(-1)


class GraphVQVAE(torch.nn.Module):
    """A graph VQ-VAE with per-node discrete codes (see the module docstring for the equations).

    Args:
        quantizer: a :class:`VectorQuantizer`, :class:`FSQ` or :class:`GumbelQuantizer` (anything with
            ``input_dim``, ``dim``, ``num_codes``, ``codes_from_indices`` and returning a
            :class:`QuantizerOutput`); one codebook shared by the ``parts`` sub-vectors of every node.
        max_nodes (int): largest graph (positions are embedded up to it).
        in_channels (int): width of continuous node features ``x`` to reconstruct (0: none).
        num_node_labels (int): number of categorical node labels ``node_label`` (0: none).
        hidden_channels (int): width of the encoder, decoder and Transformer.
        num_layers (int): gnnkit convolutions in the encoder.
        parts (int): code slots per node.
        conv (str): ``"gin"``, ``"gcn"`` or ``"sage"`` (gnnkit layers).
        decoder_layers (int), heads (int): the decoder Transformer.
        edge_channels (int): width of the pairwise edge decoder.
        edge_loss (str): ``"auto"``, ``"dense"`` or ``"sampled"`` (see module docstring).
        dropout (float): dropout in the encoder and decoder.

    Input batches are PyG ``Batch`` es of canonical graphs (:func:`gnnkit.latent.order.canonical`) with
    ``edge_index`` (both directions), and ``node_label`` / ``x`` when configured.
    """

    def __init__(self, quantizer: torch.nn.Module, max_nodes: int, in_channels: int = 0, num_node_labels: int = 0,
                 hidden_channels: int = 128, num_layers: int = 3, parts: int = 2, conv: str = "gin",
                 decoder_layers: int = 2, heads: int = 4, edge_channels: int = 32, edge_loss: str = "auto",
                 dropout: float = 0.0):
        super().__init__()
        for name, value in (("max_nodes", max_nodes), ("parts", parts), ("hidden_channels", hidden_channels),
                            ("num_layers", num_layers), ("decoder_layers", decoder_layers), ("heads", heads),
                            ("edge_channels", edge_channels)):
            check_int(name, value, 1)
        check_int("in_channels", in_channels, 0)
        check_int("num_node_labels", num_node_labels, 0)
        check_number("dropout", dropout, 0.0, 1.0, high_open=True)
        if hidden_channels % heads:
            raise ValueError(f"hidden_channels={hidden_channels} must be divisible by heads={heads}")
        missing = [a for a in ("input_dim", "dim", "num_codes", "codes_from_indices") if not hasattr(quantizer, a)]
        if missing:
            raise ValueError(f"quantizer {type(quantizer).__name__} lacks {missing}; pass a VectorQuantizer, FSQ or "
                             f"GumbelQuantizer (or a module with the same attributes)")
        if edge_loss not in EDGE_LOSSES:
            raise ValueError(f"edge_loss={edge_loss!r} is not supported; use one of {EDGE_LOSSES}")
        self.max_nodes, self.parts, self.hidden = max_nodes, parts, hidden_channels
        self.in_channels, self.num_node_labels, self.edge_loss = in_channels, num_node_labels, edge_loss
        self.quantizer = quantizer
        self.encoder = GraphEncoder(hidden_channels, num_layers, max_nodes, in_channels, num_node_labels, conv,
                                    dropout)
        self.to_latent = Linear(hidden_channels, parts * quantizer.input_dim)
        self.from_latent = Linear(parts * quantizer.dim, hidden_channels)
        self.decoder = GraphDecoder(hidden_channels, decoder_layers, heads, max_nodes, num_node_labels, in_channels,
                                    edge_channels, dropout)

    @property
    def num_codes(self) -> int:
        return self.quantizer.num_codes

    # -- pieces -------------------------------------------------------------------------------------
    def _check(self, data: Batch) -> None:
        if not isinstance(data, Batch):
            raise ValueError(f"GraphVQVAE takes a PyG Batch (it needs batch and ptr), got a {type(data).__name__}; "
                             "fix: Batch.from_data_list([data]) for one graph, or a DataLoader's batches")
        if data.edge_index.dim() != 2 or data.edge_index.size(0) != 2:
            raise ValueError(f"edge_index must have shape [2, E], got {tuple(data.edge_index.shape)}")
        ei = data.edge_index
        if int((ei[0] < ei[1]).sum()) != int((ei[0] > ei[1]).sum()):  # cheap: a one-way list fails it
            raise ValueError("edge_index must list every edge in both directions (undirected graphs): the edge "
                             "targets read the pairs i < j, so an edge stored only as (j, i) would count as absent; "
                             "fix: torch_geometric.utils.to_undirected(edge_index)")
        counts = data.ptr[1:] - data.ptr[:-1]
        if int(counts.max()) > self.max_nodes:
            raise ValueError(f"a graph has {int(counts.max())} nodes, more than max_nodes={self.max_nodes}; "
                             f"build the model with a larger max_nodes")
        if self.num_node_labels and getattr(data, "node_label", None) is None:
            raise ValueError("the model reconstructs node labels (num_node_labels > 0) but the batch has no "
                             "node_label; give labels or build the model with num_node_labels=0")
        if self.in_channels and getattr(data, "x", None) is None:
            raise ValueError("the model reconstructs features (in_channels > 0) but the batch has no x")

    def _quantize(self, h: Tensor) -> QuantizerOutput:
        z = self.to_latent(h).view(h.size(0), self.parts, self.quantizer.input_dim)
        return self.quantizer(z)

    def _top(self, h: Tensor, data: Batch, rank: Tensor):
        return None, None, h  # one level: no top codes, the node states pass unchanged

    def _decode(self, q: Tensor, batch: Tensor, top_tokens: Optional[Tensor], num_graphs: int):
        tokens, mask = to_dense_batch(self.from_latent(q.reshape(q.size(0), -1)), batch, batch_size=num_graphs)
        return self.decoder(tokens, mask, top_tokens), mask

    def _edge_targets(self, data: Batch, mask: Tensor):
        """Pairs (global ids, ``i < j``) the edge loss covers and their 0/1 targets."""
        n_max = mask.size(1)
        ei = data.edge_index
        sampled = self.edge_loss == "sampled" or (self.edge_loss == "auto" and n_max > DENSE_MAX_NODES)
        if sampled:
            pos = ei[:, ei[0] < ei[1]]
            sizes = (data.ptr[1:] - data.ptr[:-1]).long()
            available = int((sizes * (sizes - 1) // 2).sum()) - pos.size(1)
            wanted = min(pos.size(1), available)  # as many non-edges as edges, where the graphs have them
            neg = negative_sampling(ei, data.num_nodes, wanted, batch=data.batch,
                                    force_undirected=True)                       # unique pairs, row < col
            pairs = torch.cat([pos, neg], 1)
            targets = torch.cat([torch.ones(pos.size(1)), torch.zeros(neg.size(1))]).to(ei.device)
            return pairs, targets
        # dense: every pair i < j inside each graph
        i, j = torch.triu_indices(n_max, n_max, 1, device=ei.device)
        valid = mask[:, i] & mask[:, j]                                    # [B, P]
        g, p = valid.nonzero(as_tuple=True)
        offset = data.ptr[:-1].index_select(0, g)
        pairs = torch.stack([offset + i.index_select(0, p), offset + j.index_select(0, p)])
        n = data.num_nodes
        key = ei[0].long() * n + ei[1].long()
        targets = torch.isin(pairs[0] * n + pairs[1], key).float()
        return pairs, targets

    def _heads(self, h_dense: Tensor, mask: Tensor, pairs: Tensor):
        h = h_dense[mask]                                                  # [N, hidden] (canonical order)
        a = self.decoder.edge_in(h)
        logits = self.decoder.pair_logits(a.index_select(0, pairs[0]), a.index_select(0, pairs[1]))
        labels = self.decoder.label_head(h) if self.decoder.label_head is not None else None
        feats = self.decoder.feat_head(h) if self.decoder.feat_head is not None else None
        return logits, labels, feats

    # -- training forward ---------------------------------------------------------------------------
    def forward(self, data: Batch) -> VQVAEOutput:
        self._check(data)
        rank = _ranks(data.batch, data.ptr)
        h = self.encoder(self.encoder.embed(data, rank), data.edge_index)
        top_out, top_tokens, h = self._top(h, data, rank)
        qo = self._quantize(h)
        h_dense, mask = self._decode(qo.quantized, data.batch, top_tokens, data.num_graphs)
        pairs, targets = self._edge_targets(data, mask)
        logits, labels, feats = self._heads(h_dense, mask, pairs)
        # a batch without node pairs (single-node graphs) has no edge term
        targets = targets.to(logits.dtype)  # (float64 logits of a .double() model: float64 targets)
        edge = F.binary_cross_entropy_with_logits(logits, targets) if logits.numel() else logits.sum()
        terms = {"edge": edge, "vq": qo.loss}
        loss = terms["edge"] + qo.loss
        if labels is not None:
            terms["label"] = F.cross_entropy(labels, data.node_label)
            loss = loss + terms["label"]
        if feats is not None:
            terms["feature"] = F.mse_loss(feats, data.x.to(feats.dtype))
            loss = loss + terms["feature"]
        if top_out is not None:
            terms["vq_top"] = top_out.loss
            loss = loss + top_out.loss
        return VQVAEOutput(loss, terms, qo.indices, top_out.indices if top_out is not None else None, qo.stats,
                           logits, pairs, targets, labels)

    # -- codes <-> graphs ---------------------------------------------------------------------------
    def encode(self, data: Batch) -> Codes:
        """The discrete codes of a batch (eval-mode quantisation; the model's mode is restored)."""
        with evaluating(self):
            out = self.forward(data)
        counts = (data.ptr[1:] - data.ptr[:-1]).cpu()
        nodes = list(out.node_indices.cpu().split(counts.tolist()))
        top = out.top_indices.cpu() if out.top_indices is not None else None
        return Codes(counts, nodes, top)

    def _top_tokens_from_codes(self, top: Optional[Tensor], num_graphs: int) -> Optional[Tensor]:
        """The decoder's top-level tokens from ``codes.top`` (a one-level model has none)."""
        return None

    def decode(self, codes: Codes, threshold: float = 0.5, sample_edges: bool = False,
               generator: Optional[torch.Generator] = None) -> List[Data]:
        """Graphs from codes: edge ``i``–``j`` where its probability exceeds ``threshold`` (or, with
        ``sample_edges``, a Bernoulli draw from ``generator``); node labels by arg max. Returns PyG
        ``Data`` with both edge directions, ``node_label`` when the model has labels and the reconstructed
        features ``x`` (``[num_nodes, in_channels]``) when it has ``in_channels > 0``."""
        check_number("threshold", threshold, 0.0, 1.0, high_open=True,
                     hint=": an edge is kept where its probability exceeds it (1 or NaN would keep none)")
        with evaluating(self):
            device = next(self.parameters()).device
            sizes = [int(n) for n in codes.num_nodes]
            if any(n < 1 or n > self.max_nodes for n in sizes):
                raise ValueError(f"num_nodes must lie in [1, max_nodes={self.max_nodes}], got {sizes}")
            if len(codes.nodes) != len(sizes):
                raise ValueError(f"codes.nodes holds {len(codes.nodes)} graphs' codes for {len(sizes)} num_nodes; "
                                 "fix: one [num_nodes, parts] tensor per graph")
            for b, (c, n) in enumerate(zip(codes.nodes, sizes)):
                if c.numel() != n * self.parts:
                    raise ValueError(f"graph {b}: codes.nodes[{b}] holds {c.numel()} codes for num_nodes={n} x "
                                     f"parts={self.parts}; fix: one row of {self.parts} codes per node")
                if c.numel() and (int(c.min()) < 0 or int(c.max()) >= self.num_codes):
                    raise ValueError(f"graph {b}: codes.nodes[{b}] holds codes outside [0, {self.num_codes}); "
                                     "fix: indices of this model's codebook")
            idx = torch.cat([c.reshape(-1, self.parts) for c in codes.nodes]).to(device)
            batch = torch.repeat_interleave(torch.arange(len(sizes), device=device),
                                            torch.tensor(sizes, device=device))
            q = self.quantizer.codes_from_indices(idx)                       # [N, parts, dim]
            top = codes.top
            top_tokens = self._top_tokens_from_codes(top.to(device) if top is not None else None, len(sizes))
            h_dense, mask = self._decode(q, batch, top_tokens, len(sizes))
            h = h_dense[mask]
            a = self.decoder.edge_in(h)
            labels = self.decoder.label_head(h).argmax(-1) if self.decoder.label_head is not None else None
            feats = self.decoder.feat_head(h) if self.decoder.feat_head is not None else None
            graphs, start = [], 0
            for n in sizes:
                ab = a[start:start + n]
                probs = torch.sigmoid(self.decoder.pair_logits(ab.unsqueeze(1), ab.unsqueeze(0)))
                iu, ju = torch.triu_indices(n, n, 1, device=device)
                p = probs[iu, ju]
                if sample_edges:
                    keep = torch.rand(p.shape, generator=generator, device="cpu").to(device) < p
                else:
                    keep = p > threshold
                ei = torch.stack([iu[keep], ju[keep]])
                g = Data(edge_index=torch.cat([ei, ei.flip(0)], 1).cpu(), num_nodes=n)
                if labels is not None:
                    g.node_label = labels[start:start + n].cpu()
                if feats is not None:
                    g.x = feats[start:start + n].cpu()
                graphs.append(g)
                start += n
            return graphs


class HierarchicalGraphVQVAE(GraphVQVAE):
    """Two-level graph VQ-VAE (VQ-VAE-2 on graphs): ``top_slots`` graph-level codes from a pooled
    encoder (coarse structure), node codes from an encoder conditioned on them (detail), and a decoder
    that reads both. Arguments as :class:`GraphVQVAE`, plus ``top_quantizer`` and ``top_slots``."""

    def __init__(self, quantizer: torch.nn.Module, top_quantizer: torch.nn.Module, max_nodes: int,
                 top_slots: int = 4, in_channels: int = 0, num_node_labels: int = 0, hidden_channels: int = 128,
                 num_layers: int = 3, parts: int = 2, conv: str = "gin", decoder_layers: int = 2, heads: int = 4,
                 edge_channels: int = 32, edge_loss: str = "auto", dropout: float = 0.0):
        super().__init__(quantizer, max_nodes, in_channels, num_node_labels, hidden_channels, num_layers, parts,
                         conv, decoder_layers, heads, edge_channels, edge_loss, dropout)
        if top_slots < 1:
            raise ValueError(f"top_slots={top_slots} must be >= 1")
        h = self.hidden
        self.top_slots = top_slots
        self.top_quantizer = top_quantizer
        for q, label in ((quantizer, "node level"), (top_quantizer, "top level")):
            if isinstance(getattr(q, "monitor", None), UsageMonitor):
                q.monitor.label = label  # the collapse warning says which of the two quantizers it is
        self.top_in = Sequential(Linear(2 * h, h), ReLU(), Linear(h, top_slots * top_quantizer.input_dim))
        self.top_out = Linear(top_quantizer.dim, h)
        self.top_slot = torch.nn.Embedding(top_slots, h)
        self.cond = Linear(top_slots * top_quantizer.dim, h)
        self.bottom = GraphEncoder(h, 1, 0, 0, 0, conv, dropout)

    def _top(self, h: Tensor, data: Batch, rank: Tensor):
        b = data.num_graphs
        pooled = torch.cat([global_mean_pool(h, data.batch, b), global_max_pool(h, data.batch, b)], -1)
        top = self.top_quantizer(self.top_in(pooled).view(b, self.top_slots, self.top_quantizer.input_dim))
        cond = self.cond(top.quantized.reshape(b, -1)).index_select(0, data.batch)     # E_bottom(x, e_top)
        h_bottom = self.bottom(h + cond, data.edge_index)
        return top, self._tokens(top.quantized), h_bottom

    def _tokens(self, quantized_top: Tensor) -> Tensor:
        return self.top_out(quantized_top) + self.top_slot.weight.unsqueeze(0)

    def _top_tokens_from_codes(self, top: Optional[Tensor], num_graphs: int) -> Optional[Tensor]:
        if top is None:
            raise ValueError("a two-level model decodes from node codes and top codes; codes.top is None")
        if tuple(top.shape) != (num_graphs, self.top_slots):
            raise ValueError(f"codes.top must be [num_graphs={num_graphs}, top_slots={self.top_slots}], got "
                             f"{list(top.shape)}; fix: one row of top codes per graph")
        if top.numel() and (int(top.min()) < 0 or int(top.max()) >= self.top_quantizer.num_codes):
            raise ValueError(f"codes.top holds codes outside [0, {self.top_quantizer.num_codes}); fix: indices of "
                             "this model's top codebook")
        return self._tokens(self.top_quantizer.codes_from_indices(top))
