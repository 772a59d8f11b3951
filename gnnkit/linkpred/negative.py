"""Negative sampling that returns exactly what was asked, or says why it cannot.

Every candidate node pair is numbered in a *pair space* (:class:`PairSpace`):

* a plain graph of ``N`` nodes: pair ``(u, v)`` has rank ``u * N + v``;
* a bipartite graph (``num_nodes=(num_src, num_dst)``): rank ``u * num_dst + v``,
  ``u`` a source-side id and ``v`` a destination-side id (separate numbering);
* a disjoint union of graphs (``batch`` given, nodes of a graph contiguous):
  only pairs inside one graph exist; graph ``g`` with ``n_g`` nodes owns the
  ranks ``cum[g] .. cum[g] + n_g**2``.

The forbidden pairs (known edges, ``exclude``, self-loops unless allowed) become a
sorted set ``F`` of ranks.  The ``r``-th *allowed* rank is then
``r + searchsorted(F - arange(|F|), r, right=True)``, so uniform sampling without
replacement over the allowed pairs is exact and vectorised, the number of allowed
pairs is known before drawing (an infeasible request raises
:class:`ValueError`), and no loop can spin on a nearly complete graph.

Undirected sampling (``force_undirected=True``) forbids both directions of every
known edge and returns each sampled pair once, as ``row < col``.
"""
from __future__ import annotations

import numbers
from typing import Optional, Tuple, Union

import torch
from torch import Tensor

from gnnkit._checks import check_flag, check_int, check_seed, size_as_int

from .hard import hard_candidates

NumNodes = Union[int, Tuple[int, int]]
METHODS = ("uniform", "degree", "hard")
HARD_SCORES = ("ra", "cn", "ppr")


# --------------------------------------------------------------------------- helpers
def _generator(seed: Optional[int], device: torch.device) -> Optional[torch.Generator]:
    if seed is None:
        return None
    g = torch.Generator(device=device)
    g.manual_seed(int(seed))
    return g


def _check_edge_index(edge_index: Tensor, name: str) -> Tensor:
    if not isinstance(edge_index, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape [2, E], got {type(edge_index).__name__}")
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ValueError(f"{name} must have shape [2, E], got {list(edge_index.shape)}; "
                         "fix: pass edge_index (not its transpose; OGB's [E, 2] splits need .t())")
    if edge_index.dtype not in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
        raise ValueError(f"{name} must be an integer tensor, got dtype {edge_index.dtype}")
    return edge_index.long()


def _first_occurrence(keys: Tensor) -> Tensor:
    """Positions of the first occurrence of each distinct key, in input order."""
    if keys.numel() == 0:
        return keys.new_empty(0, dtype=torch.long)
    uniq, inv = torch.unique(keys, return_inverse=True)
    pos = torch.arange(keys.numel(), device=keys.device)
    first = torch.full((uniq.numel(),), keys.numel(), dtype=torch.long, device=keys.device)
    first.scatter_reduce_(0, inv, pos, reduce="amin")
    return first.sort().values


def _rand_subset(n: int, k: int, gen: Optional[torch.Generator], device) -> Tensor:
    return torch.randperm(n, generator=gen, device=device)[:k]


# --------------------------------------------------------------------------- pair space
def _check_pair_ranks(size: int, num_nodes: object) -> None:
    """Pairs are numbered in int64: ``num_src * num_dst`` must fit."""
    if size >= 2 ** 63:
        raise ValueError(f"num_nodes={num_nodes!r}: its {size} node pairs do not fit int64 pair ids; at most "
                         "3,037,000,499 nodes per side")


class PairSpace:
    """Numbering of the candidate pairs of a plain, bipartite or batched graph."""

    def __init__(self, num_nodes: NumNodes, batch: Optional[Tensor] = None,
                 device: Union[str, torch.device] = "cpu"):
        self.device = torch.device(device)
        if isinstance(num_nodes, (tuple, list)):
            if len(num_nodes) != 2:
                raise ValueError(f"num_nodes must be an int or (num_src, num_dst), got {num_nodes!r}")
            if batch is not None:
                raise ValueError("batch is not supported with bipartite num_nodes=(num_src, num_dst)")
            self.bipartite = True
            sides = [size_as_int(v) for v in num_nodes]
            if all(isinstance(v, int) for v in sides) and min(sides) <= 0:
                raise ValueError(f"num_nodes sides must be positive, got {num_nodes!r}")
            self.num_src = check_int("num_nodes[0] (num_src)", sides[0], 1)
            self.num_dst = check_int("num_nodes[1] (num_dst)", sides[1], 1)
            self.size = self.num_src * self.num_dst
            _check_pair_ranks(self.size, num_nodes)
            self.ptr = None
            return
        self.bipartite = False
        n = size_as_int(num_nodes)
        if isinstance(n, int) and not isinstance(n, bool) and n <= 0:
            raise ValueError(f"num_nodes must be positive, got {num_nodes!r}")
        n = check_int("num_nodes", n, 1)
        _check_pair_ranks(n * n, num_nodes)
        self.num_src = self.num_dst = n
        if batch is None:
            self.ptr = torch.tensor([0, n], device=self.device)
            self.batch = None
        else:
            if not isinstance(batch, Tensor) or batch.dim() != 1 or batch.is_floating_point() or batch.is_complex() \
                    or batch.dtype == torch.bool:
                raise ValueError("batch must be a 1-D integer tensor (the graph id of each node), got "
                                 f"{getattr(batch, 'dtype', type(batch).__name__)} of shape "
                                 f"{list(batch.shape) if isinstance(batch, Tensor) else '?'}")
            batch = batch.to(self.device).long()
            if batch.numel() and int(batch.min()) < 0:
                raise ValueError(f"batch holds a negative graph id ({int(batch.min())}); ids must be >= 0")
            if batch.numel() != n:
                raise ValueError(f"batch has {batch.numel()} entries but num_nodes={n}")
            if batch.numel() > 1 and bool((batch[1:] < batch[:-1]).any()):
                raise ValueError("batch must be sorted (nodes of each graph contiguous), as PyG's Batch is")
            counts = torch.bincount(batch)
            self.ptr = torch.cat([counts.new_zeros(1), counts.cumsum(0)])
            self.batch = batch
        sizes = self.ptr.diff()
        self.cum = torch.cat([sizes.new_zeros(1), (sizes * sizes).cumsum(0)])
        # the same numbering without the diagonal (no self-loops): n * (n - 1) pairs per graph
        self.cum_lf = torch.cat([sizes.new_zeros(1), (sizes * (sizes - 1)).cumsum(0)])
        self.size = int(self.cum[-1])
        self.size_lf = int(self.cum_lf[-1])

    # group of each node / range of the candidates of a node's row
    def group(self, u: Tensor) -> Tensor:
        if self.bipartite or self.batch is None:
            return torch.zeros_like(u)
        return self.batch[u]

    def rank(self, u: Tensor, v: Tensor) -> Tuple[Tensor, Tensor]:
        """Ranks of pairs ``u -> v`` and a mask of the pairs that lie in the space."""
        if self.bipartite:
            return u * self.num_dst + v, torch.ones_like(u, dtype=torch.bool)
        gu, gv = self.group(u), self.group(v)
        start = self.ptr[gu]
        n = self.ptr[gu + 1] - start
        return self.cum[gu] + (u - start) * n + (v - start), gu == gv

    def unrank(self, r: Tensor) -> Tuple[Tensor, Tensor]:
        if self.bipartite:
            return r // self.num_dst, r % self.num_dst
        g = torch.searchsorted(self.cum, r, right=True) - 1
        start = self.ptr[g]
        n = self.ptr[g + 1] - start
        t = r - self.cum[g]
        return start + t // n, start + t % n

    def to_loopfree(self, r: Tensor) -> Tensor:
        """Index of (non-diagonal) rank ``r`` among the ranks without the diagonal (order kept)."""
        u, v = self.unrank(r)
        g = self.group(u)
        s = self.ptr[g]
        n = self.ptr[g + 1] - s
        return self.cum_lf[g] + (u - s) * (n - 1) + (v - s) - (v > u).long()

    def from_loopfree(self, j: Tensor) -> Tensor:
        """Rank of the ``j``-th pair without the diagonal: the inverse of :meth:`to_loopfree`."""
        g = torch.searchsorted(self.cum_lf, j, right=True) - 1
        s = self.ptr[g]
        n = self.ptr[g + 1] - s
        t = j - self.cum_lf[g]
        m = (n - 1).clamp(min=1)
        a, c = t // m, t % m
        return self.cum[g] + a * n + c + (c >= a).long()

    def self_loop_ranks(self) -> Tensor:
        if self.bipartite:
            return torch.empty(0, dtype=torch.long, device=self.device)
        i = torch.arange(self.num_src, device=self.device)
        return self.rank(i, i)[0]


# --------------------------------------------------------------------------- sampler core
class _Forbidden:
    """Sorted unique forbidden ranks and the derived allowed-rank lookup."""

    def __init__(self, space: PairSpace, edges: Tensor, undirected: bool, allow_self_loops: bool):
        self.space = space
        u, v = edges
        if undirected:
            u, v = torch.cat([u, v]), torch.cat([v, u])
        r, inside = space.rank(u, v)
        # Self-loops, when forbidden, are left out of the rank space analytically (PairSpace's loop-free
        # numbering) instead of listing all N of them: memory follows the edges, not the node count.
        self.skip_diag = not allow_self_loops and not space.bipartite
        keep = inside & (u != v) if self.skip_diag else inside
        f = torch.unique(r[keep])
        self.ranks = f  # the forbidden ranks listed explicitly (never a diagonal one when skip_diag)
        idx = space.to_loopfree(f) if self.skip_diag else f
        self.gap = idx - torch.arange(idx.numel(), device=f.device)
        self.num_allowed = (space.size_lf if self.skip_diag else space.size) - f.numel()
        self.num_loops_allowed = 0
        if allow_self_loops and not space.bipartite:
            fu, fv = space.unrank(f)
            self.num_loops_allowed = space.num_src - int((fu == fv).sum())

    def contains(self, r: Tensor) -> Tensor:
        if self.ranks.numel() == 0:
            hit = torch.zeros_like(r, dtype=torch.bool)
        else:
            pos = torch.searchsorted(self.ranks, r).clamp_max(self.ranks.numel() - 1)
            hit = self.ranks[pos] == r
        if self.skip_diag:
            u, v = self.space.unrank(r)
            hit = hit | (u == v)
        return hit

    def allowed(self, i: Tensor) -> Tensor:
        """The ``i``-th allowed rank, for ``0 <= i < num_allowed``."""
        j = i + torch.searchsorted(self.gap, i, right=True)
        return self.space.from_loopfree(j) if self.skip_diag else j


class NegativeSampler:
    """Draws fresh negatives on every :meth:`sample` call from a fixed forbidden set.

    The forbidden set (``edge_index`` + ``exclude`` + self-loops) is sorted once;
    each call only draws.  With a ``seed`` the sequence of draws is reproducible.

    Args:
        edge_index: ``[2, E]`` known edges: never returned, and the structure that
            ``method="degree"`` and ``method="hard"`` read.
        num_nodes: ``N``, or ``(num_src, num_dst)`` for a bipartite graph.
        num_neg_samples: how many pairs each :meth:`sample` returns by default.
        method: ``"uniform"``, ``"degree"`` (endpoints drawn with probability
            proportional to degree + 1) or ``"hard"`` (HeaRT-style, see
            :func:`negative_sampling`).
        exclude: ``[2, E']`` more pairs that must never be returned.
        force_undirected: treat pairs as unordered; returned once as ``row < col``.
        seed: seed of the sampler's own generator.
        allow_self_loops: let ``(i, i)`` be drawn.
        batch: node -> graph vector of a disjoint union (sorted); pairs are drawn
            inside one graph only.
        targets: ``[2, T]`` positive edges to corrupt for ``"hard"`` (default
            ``edge_index``).
        hard_score: ``"ra"`` (resource allocation), ``"cn"`` (common neighbours)
            or ``"ppr"`` (personalised PageRank) for ``"hard"``.
    """

    def __init__(self, edge_index: Tensor, num_nodes: NumNodes, num_neg_samples: int,
                 method: str = "uniform", exclude: Optional[Tensor] = None,
                 force_undirected: bool = False, seed: Optional[int] = None, *,
                 allow_self_loops: bool = False, batch: Optional[Tensor] = None,
                 targets: Optional[Tensor] = None, hard_score: str = "ra"):
        edge_index = _check_edge_index(edge_index, "edge_index")
        self.device = edge_index.device
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        if hard_score not in HARD_SCORES:
            raise ValueError(f"hard_score must be one of {HARD_SCORES}, got {hard_score!r}")
        self.space = PairSpace(num_nodes, batch=batch, device=self.device)
        if self.space.bipartite and force_undirected:
            raise ValueError("force_undirected=True is meaningless for bipartite num_nodes=(num_src, num_dst): "
                             "pairs always go source side -> destination side; fix: drop force_undirected")
        self._check_range(edge_index, "edge_index")
        known = [edge_index]
        if exclude is not None:
            exclude = _check_edge_index(exclude, "exclude").to(self.device)
            self._check_range(exclude, "exclude")
            known.append(exclude)
        self.edge_index = edge_index
        self.num_neg_samples = self._check_k(num_neg_samples)
        self.method = method
        self.undirected = check_flag("force_undirected", force_undirected)
        self.allow_self_loops = check_flag("allow_self_loops", allow_self_loops)
        self.forbidden = _Forbidden(self.space, torch.cat(known, 1), self.undirected, self.allow_self_loops)
        self.targets = edge_index if targets is None else _check_edge_index(targets, "targets").to(self.device)
        self._check_range(self.targets, "targets")
        self.hard_score = hard_score
        self.generator = _generator(check_seed("seed", seed), self.device)
        self._degree_weights: Optional[Tuple[Tensor, Tensor]] = None

    # ---------------------------------------------------------------- validation
    def _check_range(self, ei: Tensor, name: str) -> None:
        if ei.numel() == 0:
            return
        lo = int(ei.min())
        hi_src, hi_dst = int(ei[0].max()), int(ei[1].max())
        if lo < 0 or hi_src >= self.space.num_src or hi_dst >= self.space.num_dst:
            raise IndexError(f"{name} has node ids outside [0, num_nodes): min {lo}, max "
                             f"({hi_src}, {hi_dst}) with num_nodes=({self.space.num_src}, {self.space.num_dst}); "
                             "fix: pass the right num_nodes")

    @staticmethod
    def _check_k(k) -> int:
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) and not (isinstance(k, Tensor) and k.numel() == 1
                                                                            and not k.is_floating_point()):
            raise ValueError(f"num_neg_samples must be an int >= 0, got {k!r}")
        k = int(k)
        if k < 0:
            raise ValueError(f"num_neg_samples must be >= 0, got {k}")
        return k

    @property
    def num_available(self) -> int:
        """How many distinct pairs can be drawn at all."""
        f = self.forbidden
        if not self.undirected:
            return f.num_allowed
        return (f.num_allowed - f.num_loops_allowed) // 2 + f.num_loops_allowed

    # ---------------------------------------------------------------- drawing
    def sample(self, num_neg_samples: Optional[int] = None, method: Optional[str] = None) -> Tensor:
        """``[2, k]`` int64 negatives on the input's device: exact count, unique, none forbidden."""
        k = self.num_neg_samples if num_neg_samples is None else self._check_k(num_neg_samples)
        method = self.method if method is None else method
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        if k == 0:
            return torch.empty(2, 0, dtype=torch.long, device=self.device)
        avail = self.num_available
        if k > avail:
            raise ValueError(
                f"negative_sampling: num_neg_samples={k} but only {avail} "
                f"{'undirected ' if self.undirected else ''}pairs are not known edges "
                f"(pair space {self.space.size}, forbidden {self.forbidden.ranks.numel()}); "
                "fix: ask for at most that many, or pass allow_self_loops=True / fewer exclude edges")
        if method == "uniform":
            ranks = self._uniform(k, None)
        elif method == "degree":
            ranks = self._degree(k)
        else:
            ranks = self._hard(k)
        return self._to_pairs(ranks)

    def _to_pairs(self, ranks: Tensor) -> Tensor:
        u, v = self.space.unrank(ranks)
        if self.undirected:
            u, v = torch.minimum(u, v), torch.maximum(u, v)
        return torch.stack([u, v]).long()

    def _canon(self, ranks: Tensor) -> Tensor:
        """Rank of the ``row <= col`` orientation (identity when directed)."""
        if not self.undirected:
            return ranks
        u, v = self.space.unrank(ranks)
        return self.space.rank(torch.minimum(u, v), torch.maximum(u, v))[0]

    def _uniform(self, k: int, chosen: Optional[Tensor]) -> Tensor:
        """``k`` canonical ranks uniformly among allowed pairs not in ``chosen``."""
        f, gen, dev = self.forbidden, self.generator, self.device
        if chosen is not None and chosen.numel():
            # Add the already chosen pairs (both orientations) to the forbidden set.
            u, v = self.space.unrank(chosen)
            extra = torch.stack([u, v])
            f = _Forbidden(self.space, torch.cat([self._forbidden_edges(), extra], 1), self.undirected,
                           self.allow_self_loops)
        n = f.num_allowed
        avail = n if not self.undirected else (n - f.num_loops_allowed) // 2 + f.num_loops_allowed
        if k > avail:  # pragma: no cover - guarded by sample()
            raise ValueError(f"cannot draw {k} more pairs, only {avail} left")
        if 2 * k >= avail:
            # Dense request: enumerate every allowed pair once, then pick k.
            ranks = f.allowed(torch.arange(n, device=dev))
            if self.undirected:
                u, v = self.space.unrank(ranks)
                ranks = ranks[u <= v]
            return ranks[_rand_subset(ranks.numel(), k, gen, dev)]
        have = torch.empty(0, dtype=torch.long, device=dev)
        for _ in range(64):  # each round at least halves the shortfall in expectation
            need = k - have.numel()
            m = 2 * need + 64
            i = torch.randint(0, n, (m,), generator=gen, device=dev)
            r = f.allowed(i)
            if self.undirected:
                u, v = self.space.unrank(r)
                # a self-loop has one orientation, other pairs two: keep half of the other pairs' draws so that
                # every unordered pair is drawn with the same probability
                loop = u == v
                if bool(loop.any()):
                    keep = loop | (torch.rand(m, generator=gen, device=dev) < 0.5)
                    r = r[keep]
                r = self._canon(r)
            have = torch.unique(torch.cat([have, r]))
            if have.numel() >= k:
                return have[_rand_subset(have.numel(), k, gen, dev)]
        raise RuntimeError("negative sampling did not converge; this is a bug")  # pragma: no cover

    def _forbidden_edges(self) -> Tensor:
        u, v = self.space.unrank(self.forbidden.ranks)
        return torch.stack([u, v])

    # degree-weighted ------------------------------------------------------------
    def _weights(self) -> Tuple[Tensor, Tensor]:
        if self._degree_weights is None:
            s, d = self.edge_index
            ns, nd = self.space.num_src, self.space.num_dst
            # degrees of the graph, not of its storage: an undirected edge stored both ways (PyG's habit) or an
            # edge given twice counts once, so a graph gets the same weights however its edges are stored
            if self.undirected:
                s, d = torch.minimum(s, d), torch.maximum(s, d)
            if s.numel():
                s, d = torch.unique(torch.stack([s, d]), dim=1)
            if self.undirected:
                deg = torch.bincount(torch.cat([s, d[d != s]]), minlength=ns).double()  # a self-loop: once
                ws = wd = deg + 1.0
            else:
                ws = torch.bincount(s, minlength=ns).double() + 1.0
                wd = torch.bincount(d, minlength=nd).double() + 1.0
            self._degree_weights = (ws, wd)
        return self._degree_weights

    def _draw_degree(self, m: int) -> Tensor:
        ws, wd = self._weights()
        gen, dev = self.generator, self.device
        u = torch.multinomial(ws, m, replacement=True, generator=gen)
        if self.space.bipartite:
            v = torch.multinomial(wd, m, replacement=True, generator=gen)
        else:
            # v drawn in proportion to wd inside u's graph: inverse CDF on a cumulative sum
            cw = torch.cat([wd.new_zeros(1), wd.cumsum(0)])
            g = self.space.group(u)
            lo, hi = cw[self.space.ptr[g]], cw[self.space.ptr[g + 1]]
            t = lo + torch.rand(m, generator=gen, device=dev, dtype=torch.float64) * (hi - lo)
            v = (torch.searchsorted(cw, t, right=True) - 1)
            v = torch.minimum(torch.maximum(v, self.space.ptr[g]), self.space.ptr[g + 1] - 1)
        r, _ = self.space.rank(u, v)
        return r

    def _degree(self, k: int) -> Tensor:
        have = torch.empty(0, dtype=torch.long, device=self.device)
        for _ in range(20):
            need = k - have.numel()
            r = self._draw_degree(2 * need + 64)
            r = r[~self.forbidden.contains(r)]
            r = self._canon(r)
            allr = torch.cat([have, r])
            have = allr[_first_occurrence(allr)]
            if have.numel() >= k:
                return have[:k]
        # Acceptance collapsed (near-complete graph): fill the rest uniformly, exactly.
        return torch.cat([have, self._uniform(k - have.numel(), have)])

    # hard (HeaRT-style) -------------------------------------------------------------
    def _hard(self, k: int) -> Tensor:
        ranks = hard_candidates(self, k)
        ranks = ranks[_first_occurrence(ranks)][:k]
        if ranks.numel() < k:
            ranks = torch.cat([ranks, self._uniform(k - ranks.numel(), ranks)])
        return ranks

    def __repr__(self) -> str:
        return (f"NegativeSampler(num_neg_samples={self.num_neg_samples}, method={self.method!r}, "
                f"undirected={self.undirected}, available={self.num_available})")


def negative_sampling(edge_index: Tensor, num_nodes: NumNodes, num_neg_samples: int,
                      method: str = "uniform", exclude: Optional[Tensor] = None,
                      force_undirected: bool = False, seed: Optional[int] = None, *,
                      allow_self_loops: bool = False, batch: Optional[Tensor] = None,
                      targets: Optional[Tensor] = None, hard_score: str = "ra") -> Tensor:
    """Exactly ``num_neg_samples`` unique node pairs that are not edges.

    Unlike PyG's ``negative_sampling`` this never returns fewer pairs than asked
    (an infeasible request, e.g. on a complete graph, raises :class:`ValueError`),
    always returns ``int64`` (also for ``num_neg_samples=0``), and never loops
    forever.

    Args:
        edge_index: ``[2, E]`` edges that must not be returned (and the structure
            read by ``"degree"`` and ``"hard"``).
        num_nodes: ``N``, or ``(num_src, num_dst)`` for a bipartite graph whose
            ``edge_index[0]`` indexes the source side and ``edge_index[1]`` the
            destination side; negatives then go source -> destination only.
        num_neg_samples: how many pairs to return.
        method: ``"uniform"``; ``"degree"`` (both endpoints drawn with probability
            proportional to degree + 1, then de-duplicated); ``"hard"``: for each
            positive in ``targets`` the head or the tail (at random) is replaced by
            the highest-scoring non-edges of the kept endpoint, scored by
            ``hard_score`` (resource allocation by default, common neighbours or
            personalised PageRank) on ``edge_index`` taken as undirected, as in
            HeaRT (Li et al., NeurIPS 2023).  ``"hard"`` needs ``O(N)`` memory per
            scored node and scores the distinct kept endpoints in chunks.
        exclude: ``[2, E']`` more pairs never to return (e.g. training positives).
        force_undirected: pairs are unordered: both directions of every known edge
            are excluded and each pair is returned once with ``row < col``.
        seed: makes the draw reproducible (its own generator; the global RNG is
            untouched).  ``None`` uses torch's global generator.
        allow_self_loops: allow ``(i, i)``.
        batch: sorted node -> graph vector of a disjoint union: pairs stay inside
            one graph.
        targets: positives to corrupt for ``"hard"`` (default ``edge_index``).
        hard_score: ``"ra"``, ``"cn"`` or ``"ppr"``.

    Returns:
        ``[2, num_neg_samples]`` int64 tensor on ``edge_index.device``.
    """
    sampler = NegativeSampler(edge_index, num_nodes, num_neg_samples, method, exclude, force_undirected,
                              seed, allow_self_loops=allow_self_loops, batch=batch, targets=targets,
                              hard_score=hard_score)
    return sampler.sample()
