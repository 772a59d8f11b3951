"""Learned prior over graph codes (stage 2): an autoregressive Transformer over the code sequence.

The lecture's remark on VQ-VAE: there is no useful KL term, so fit a prior :math:`p(z;\\psi)` to the
codes of the training set and sample from it. A graph's sequence is

    [BOS, n, t_1 … t_T, c_{1,1} … c_{1,P}, …, c_{n,1} … c_{n,P}]

— the node count, the top codes (two-level models), then each node's ``P`` codes in canonical BFS
order (as GraphRNN orders nodes). :class:`CodePrior` models
:math:`p(s) = \\prod_t p(s_t \\mid s_{<t})` with a causal Transformer whose output at each step is
restricted to the tokens valid there (counts ``1..max_nodes``, top codes, node codes). Trained on a
``predict`` range of the sequence it is either a whole prior, the top prior :math:`p(n, e_{top})`, or
the bottom prior :math:`p(e_{bottom} \\mid n, e_{top})` of VQ-VAE-2.
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ._common import check_indices, check_int, check_number, evaluating, tempered, work_dtype
from .vqvae import Codes

PREDICTS = ("all", "top", "nodes")


class CodePrior(torch.nn.Module):
    """Causal Transformer over ``[BOS, n, top codes, node codes]`` (see the module docstring).

    Args:
        num_codes (int): node-code vocabulary :math:`K`.
        max_nodes (int): largest node count.
        parts (int): codes per node.
        top_codes (int): top-code vocabulary (0 for one-level models).
        top_slots (int): top codes per graph (0 for one-level models).
        predict (str): ``"all"`` (count, top and node codes), ``"top"`` (count and top codes: the
            top prior) or ``"nodes"`` (node codes given count and top codes: the bottom prior).
        d_model, layers, heads, dropout: the Transformer.
    """

    def __init__(self, num_codes: int, max_nodes: int, parts: int = 1, top_codes: int = 0, top_slots: int = 0,
                 predict: str = "all", d_model: int = 128, layers: int = 4, heads: int = 4, dropout: float = 0.1):
        super().__init__()
        for name, value in (("num_codes", num_codes), ("max_nodes", max_nodes), ("parts", parts),
                            ("d_model", d_model), ("layers", layers), ("heads", heads)):
            check_int(name, value, 1)
        check_int("top_codes", top_codes, 0)
        check_int("top_slots", top_slots, 0)
        check_number("dropout", dropout, 0.0, 1.0, high_open=True)
        if d_model % heads:
            raise ValueError(f"d_model={d_model} must be divisible by heads={heads}")
        if predict not in PREDICTS:
            raise ValueError(f"predict={predict!r} is not supported; use one of {PREDICTS}")
        if (top_codes > 0) != (top_slots > 0):
            raise ValueError(f"top_codes={top_codes} and top_slots={top_slots} must both be 0 (one level) or "
                             f"both > 0 (two levels)")
        if predict == "top" and not top_slots:
            raise ValueError("predict='top' needs a two-level layout (top_codes, top_slots > 0)")
        self.num_codes, self.max_nodes, self.parts = num_codes, max_nodes, parts
        self.top_codes, self.top_slots, self.predict = top_codes, top_slots, predict
        # joint vocabulary: [BOS] [counts 0..max_nodes] [top codes] [node codes]
        self.bos = 0
        self.count_offset = 1
        self.top_offset = self.count_offset + max_nodes + 1
        self.node_offset = self.top_offset + top_codes
        self.vocab = self.node_offset + num_codes
        self.max_len = 2 + top_slots + max_nodes * parts
        self.tok = torch.nn.Embedding(self.vocab, d_model)
        self.pos = torch.nn.Embedding(self.max_len, d_model)
        layer = torch.nn.TransformerEncoderLayer(d_model, heads, 4 * d_model, dropout, batch_first=True,
                                                 norm_first=True)
        self.transformer = torch.nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = torch.nn.LayerNorm(d_model)
        self.head = torch.nn.Linear(d_model, self.vocab)
        self.register_buffer("_allowed", self._allowed_table(), persistent=False)

    # -- layout -------------------------------------------------------------------------------------
    def _allowed_table(self) -> Tensor:
        """``[max_len, vocab]`` bool: which tokens may stand at each sequence position."""
        allowed = torch.zeros(self.max_len, self.vocab, dtype=torch.bool)
        allowed[0, self.bos] = True
        allowed[1, self.count_offset + 1:self.count_offset + self.max_nodes + 1] = True
        allowed[2:2 + self.top_slots, self.top_offset:self.node_offset] = True
        allowed[2 + self.top_slots:, self.node_offset:] = True
        return allowed

    def predicted_range(self, n: int) -> Tuple[int, int]:
        """Positions ``[start, end)`` of a graph with ``n`` nodes whose tokens this prior predicts."""
        end_top = 2 + self.top_slots
        end = end_top + n * self.parts
        if self.predict == "all":
            return 1, end
        if self.predict == "top":
            return 1, end_top
        return end_top, end

    def sequences(self, codes: Codes) -> List[Tensor]:
        """Token sequences of a batch of codes (joint vocabulary)."""
        seqs = []
        for b, (n, nodes) in enumerate(zip(codes.num_nodes.tolist(), codes.nodes)):
            if not 1 <= n <= self.max_nodes:
                raise ValueError(f"graph {b} has {n} nodes; this prior takes 1..max_nodes={self.max_nodes}")
            parts = [torch.tensor([self.bos, self.count_offset + n])]
            if self.top_slots:
                if codes.top is None:
                    raise ValueError("a two-level prior needs top codes (codes.top is None)")
                top = codes.top[b].long().cpu()
                if top.numel() != self.top_slots or int(top.min()) < 0 or int(top.max()) >= self.top_codes:
                    raise ValueError(f"graph {b}: codes.top must hold {self.top_slots} codes in [0, {self.top_codes}), "
                                     f"got {top.tolist()}")
                parts.append(top + self.top_offset)
            node_codes = nodes.reshape(-1).long().cpu()
            if node_codes.numel() != n * self.parts:
                raise ValueError(f"graph {b}: {node_codes.numel()} node codes for {n} nodes x parts={self.parts}; "
                                 "fix: one row of parts codes per node")
            check_indices(node_codes, self.num_codes, f"graph {b}: node codes")
            parts.append(node_codes + self.node_offset)
            seqs.append(torch.cat(parts))
        return seqs

    # -- model --------------------------------------------------------------------------------------
    def logits(self, tokens: Tensor) -> Tensor:
        """``tokens`` ``[B, L]`` → logits ``[B, L, vocab]`` for the *next* token, invalid ones at -inf."""
        L = tokens.size(1)
        if L > self.max_len:
            raise ValueError(f"sequence of length {L} exceeds this prior's max_len={self.max_len}")
        pos = torch.arange(L, device=tokens.device)
        h = self.tok(tokens) + self.pos(pos).unsqueeze(0)
        causal = torch.nn.Transformer.generate_square_subsequent_mask(L, device=tokens.device)
        h = self.norm(self.transformer(h, mask=causal, is_causal=True))
        out = self.head(h)
        out = out.to(work_dtype(out))
        nxt = torch.arange(1, L + 1, device=tokens.device).clamp_max(self.max_len - 1)
        return out.masked_fill(~self._allowed.index_select(0, nxt).unsqueeze(0), float("-inf"))

    def loss(self, seqs: List[Tensor]) -> Tensor:
        """Mean negative log-likelihood (nats per predicted token) of a list of sequences."""
        if not seqs:
            raise ValueError("loss needs at least one sequence (from sequences(codes)); got none")
        device = self.head.weight.device
        L = max(s.numel() for s in seqs)
        tokens = torch.zeros(len(seqs), L, dtype=torch.long)
        weight = torch.zeros(len(seqs), L)
        for b, s in enumerate(seqs):
            tokens[b, :s.numel()] = s
            n = int(s[1]) - self.count_offset
            start, end = self.predicted_range(n)
            weight[b, start:end] = 1.0
        tokens, weight = tokens.to(device), weight.to(device)
        logits = self.logits(tokens[:, :-1])
        target = tokens[:, 1:]
        w = weight[:, 1:]
        nll = F.cross_entropy(logits.reshape(-1, self.vocab), target.reshape(-1), reduction="none").view_as(w)
        nll = torch.where(w > 0, nll, torch.zeros_like(nll))
        return (nll * w).sum() / w.sum().clamp_min(1.0)

    def sample(self, prefix: Optional[List[Tensor]] = None, num_samples: Optional[int] = None,
               generator: Optional[torch.Generator] = None, temperature: float = 1.0) -> List[Tensor]:
        """Complete sequences from their ``prefix`` es (default: ``num_samples`` times ``[BOS]``) until each
        holds its ``n`` node codes (or, for ``predict="top"``, its top codes). Reproducible for a seeded
        CPU ``generator``. Returns one token sequence per sample."""
        check_number("temperature", temperature, 0.0, low_open=True)
        with evaluating(self):
            device = self.head.weight.device
            if prefix is None:
                if num_samples is None or num_samples < 1:
                    raise ValueError("give num_samples >= 1 or a prefix per sample")
                prefix = [torch.tensor([self.bos])] * num_samples
            seqs = [p.long().cpu().clone() for p in prefix]
            if self.predict == "nodes" and any(s.numel() < 2 + self.top_slots for s in seqs):
                raise ValueError(f"this prior predicts node codes given the node count and top codes: each prefix "
                                 f"must hold [BOS, count, {self.top_slots} top codes] (from the top prior), got a "
                                 "shorter one; fix: sample the top prior first")
            while True:
                todo = [b for b, s in enumerate(seqs) if s.numel() < self._target_len(s)]
                if not todo:
                    return seqs
                L = max(seqs[b].numel() for b in todo)
                tokens = torch.zeros(len(todo), L, dtype=torch.long)
                last = torch.tensor([seqs[b].numel() - 1 for b in todo])
                for r, b in enumerate(todo):
                    tokens[r, :seqs[b].numel()] = seqs[b]
                logits = self.logits(tokens.to(device))
                step = logits[torch.arange(len(todo), device=device), last.to(device)].cpu()
                probs = F.softmax(tempered(step, temperature), dim=-1)
                draw = torch.multinomial(probs, 1, generator=generator).squeeze(1)
                for r, b in enumerate(todo):
                    seqs[b] = torch.cat([seqs[b], draw[r:r + 1]])

    def _target_len(self, seq: Tensor) -> int:
        if seq.numel() < 2:
            return 2
        end_top = 2 + self.top_slots
        if self.predict == "top":
            return end_top
        return end_top + (int(seq[1]) - self.count_offset) * self.parts

    def to_codes(self, seqs: List[Tensor]) -> Codes:
        """Codes (count, node codes, top codes) of complete sequences."""
        if self.predict == "top":
            raise ValueError("a top prior's sequences hold no node codes; complete them with the bottom prior "
                             "(bottom.sample(prefix=...)) and call bottom.to_codes")
        counts, nodes, tops = [], [], []
        for s in seqs:
            n = int(s[1]) - self.count_offset
            counts.append(n)
            end_top = 2 + self.top_slots
            tops.append(s[2:end_top] - self.top_offset)
            nodes.append((s[end_top:end_top + n * self.parts] - self.node_offset).view(n, self.parts))
        top = torch.stack(tops) if self.top_slots else None
        return Codes(torch.tensor(counts), nodes, top)
