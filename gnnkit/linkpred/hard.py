"""HeaRT-style hard negatives: corrupt the head or the tail of each positive with the
highest-scoring non-edges of the endpoint that is kept.

Scores are computed on the known structure (``sampler.edge_index``) taken as
undirected, embedded as one homogeneous graph (a bipartite graph's destination side
is shifted by ``num_src``):

* ``cn``  — common neighbours, ``e_f A A`` (bipartite: ``e_f A A A``, paths of length 3);
* ``ra``  — resource allocation, ``e_f A D^-1 A`` (bipartite ``e_f A D^-1 A D^-1 A``);
* ``ppr`` — personalised PageRank from the kept endpoint (alpha 0.15, 20 steps).

Rows are computed once per distinct (kept endpoint, corrupted side) — per kept
endpoint for undirected graphs — in float32, in chunks of at most ``2**23`` scores, so
memory is bounded by ``O(2**23 + N)`` (plus a dense ``N x N`` copy of the structure when
it is dense and small enough to pay, see :func:`_right_multiplier`).  For ``cn``/``ra``
the first hop is a row gather of ``A``, not a product.  Known pairs and (unless allowed)
self-loops are masked before ranking, ties are broken at random, and a kept endpoint
shared by ``m`` positives contributes its ``m * q`` best candidates.
"""
from __future__ import annotations

import math
from typing import Any, Optional, Protocol, Tuple

import torch
from torch import Tensor


class SamplerState(Protocol):
    """What :func:`hard_candidates` reads of a :class:`~gnnkit.linkpred.NegativeSampler`
    (stated here so this module does not import the sampler that imports it)."""

    space: Any
    device: torch.device
    generator: Optional[torch.Generator]
    targets: Tensor
    edge_index: Tensor
    undirected: bool
    hard_score: str

    def _forbidden_edges(self) -> Tensor: ...

CHUNK_SCORES = 2 ** 23
PPR_ALPHA, PPR_STEPS = 0.15, 20
DENSE_MAX_ENTRIES = 2 ** 26  # 256 MB of float32
DENSE_MIN_DENSITY = 0.02


def _csr(n: int, u: Tensor, v: Tensor) -> Tuple[Tensor, Tensor]:
    """rowptr/col of the pairs ``u -> v`` (sorted, de-duplicated)."""
    key = torch.unique(u * n + v)
    row, col = key // n, key % n
    rowptr = torch.zeros(n + 1, dtype=torch.long, device=u.device)
    rowptr[1:] = torch.bincount(row, minlength=n).cumsum(0)
    return rowptr, col


def _gather_rows(rowptr: Tensor, col: Tensor, rows: Tensor) -> Tuple[Tensor, Tensor]:
    """(position in ``rows``, neighbour) for every neighbour of every entry of ``rows``."""
    start, end = rowptr[rows], rowptr[rows + 1]
    cnt = end - start
    pos = torch.repeat_interleave(torch.arange(rows.numel(), device=rows.device), cnt)
    offs = torch.arange(int(cnt.sum()), device=rows.device) - torch.repeat_interleave(cnt.cumsum(0) - cnt, cnt)
    return pos, col[start[pos] + offs]


def _right_multiplier(rowptr: Tensor, col: Tensor, n: int):
    """``X -> X @ A`` for the symmetric 0/1 matrix ``A`` given as CSR.

    Dense BLAS when ``A`` is dense enough for its extra flops to pay (density >= DENSE_MIN_DENSITY)
    and small enough to hold (n^2 <= DENSE_MAX_ENTRIES); ogbl-ddi (4,267 nodes, 12% dense) is 4x
    faster that way.  Otherwise a CSR product (``A`` symmetric: ``X A = (A X^T)^T``)."""
    nnz = col.numel()
    if n * n <= DENSE_MAX_ENTRIES and nnz >= DENSE_MIN_DENSITY * n * n:
        dense = torch.zeros(n, n, dtype=torch.float32, device=col.device)
        rows = torch.repeat_interleave(torch.arange(n, device=col.device), rowptr.diff())
        dense[rows, col] = 1.0
        return lambda X: X @ dense
    A = torch.sparse_csr_tensor(rowptr, col, torch.ones(nnz, dtype=torch.float32, device=col.device),
                                (n, n), check_invariants=False)
    return lambda X: torch.sparse.mm(A, X.t().contiguous()).t()


def hard_candidates(s: SamplerState, k: int) -> Tensor:
    """Candidate ranks in priority order (may hold duplicates; the caller de-duplicates)."""
    space, dev, gen = s.space, s.device, s.generator
    bip = space.bipartite
    ns = space.num_src
    nh = ns + space.num_dst if bip else ns
    shift = ns if bip else 0
    targets = s.targets
    T = targets.size(1)
    if T == 0:
        return torch.empty(0, dtype=torch.long, device=dev)
    # Which positives are corrupted, and how many candidates each asks for.
    if k >= T:
        q = math.ceil(k / T)
        tsel = torch.arange(T, device=dev)
    else:
        q = 1
        tsel = torch.randperm(T, generator=gen, device=dev)[:k]
    head, tail = targets[0, tsel], targets[1, tsel]
    corrupt_head = torch.rand(tsel.numel(), generator=gen, device=dev) < 0.5
    fixed = torch.where(corrupt_head, tail + shift, head)  # homogeneous id of the kept endpoint
    if s.undirected:
        corrupt_head = torch.zeros_like(corrupt_head)  # symmetric masks and pairs: one row per node
    # distinct (kept endpoint, side) rows and how many positives share each
    row_key = fixed * 2 + corrupt_head.long()
    uniq, mult = torch.unique(row_key, return_counts=True)
    r_fixed, r_head = uniq // 2, (uniq % 2).bool()

    # Homogeneous symmetric structure for scoring.
    eu, ev = s.edge_index[0], s.edge_index[1] + shift
    su, sv = torch.cat([eu, ev]), torch.cat([ev, eu])
    keep = su != sv
    su, sv = su[keep], sv[keep]
    rowptr, col = _csr(nh, su, sv)
    deg = rowptr.diff().float()
    times_a = _right_multiplier(rowptr, col, nh)
    inv_deg = torch.where(deg > 0, 1.0 / deg.clamp_min(1), torch.zeros_like(deg))

    # Forbidden neighbours, by orientation, in homogeneous ids.
    fe = s._forbidden_edges()
    fu, fv = fe[0], fe[1] + shift
    out_ptr, out_col = _csr(nh, fu, fv)  # corrupt tail: pair (fixed, c) forbidden if c in out(fixed)
    in_ptr, in_col = _csr(nh, fv, fu)  # corrupt head: pair (c, fixed) forbidden if c in in(fixed)

    chunk = max(1, CHUNK_SCORES // nh)
    cols = torch.arange(nh, device=dev)
    out_r, out_prio = [], []
    for c0 in range(0, uniq.numel(), chunk):
        fx, hd, mu = r_fixed[c0:c0 + chunk], r_head[c0:c0 + chunk], mult[c0:c0 + chunk]
        c = fx.numel()
        X = torch.zeros(c, nh, dtype=torch.float32, device=dev)
        if s.hard_score == "ppr":
            X[torch.arange(c, device=dev), fx] = 1.0
            X0 = X
            for _ in range(PPR_STEPS):
                X = PPR_ALPHA * X0 + (1 - PPR_ALPHA) * times_a(X * inv_deg)
        else:
            # first hop: e_f A is row f of A (a gather, not a product)
            pos, nb = _gather_rows(rowptr, col, fx)
            X[pos, nb] = 1.0
            for _ in range(2 if bip else 1):
                if s.hard_score == "ra":
                    X = X * inv_deg
                X = times_a(X)
        # random tie-breaking below any meaningful score difference (relative to the row's best)
        X = X + torch.rand(X.shape, generator=gen, device=dev) * (1e-6 * X.amax(1, keepdim=True).clamp_min(1e-30))
        # candidate range of each row: the other side (bipartite) or the kept node's graph
        if bip:
            lo = torch.where(hd, torch.zeros_like(fx), torch.full_like(fx, ns))
            hi = torch.where(hd, torch.full_like(fx, ns), torch.full_like(fx, nh))
        else:
            g = space.group(fx)
            lo, hi = space.ptr[g], space.ptr[g + 1]
        X.masked_fill_((cols[None, :] < lo[:, None]) | (cols[None, :] >= hi[:, None]), -math.inf)
        if not s.allow_self_loops and not bip:
            X[torch.arange(c, device=dev), fx] = -math.inf
        for ptr, colf, sel in ((out_ptr, out_col, ~hd), (in_ptr, in_col, hd)):
            idx = sel.nonzero().view(-1)
            if idx.numel():
                pos, nb = _gather_rows(ptr, colf, fx[idx])
                X[idx[pos], nb] = -math.inf
        need = mu * q
        kk = min(int(need.max()) + 8, nh)
        score, cand = torch.topk(X, kk, dim=1)
        j = torch.arange(kk, device=dev)[None, :].expand(c, kk)
        ok = (j < (need[:, None] + 8)) & torch.isfinite(score)
        rr, jj = ok.nonzero(as_tuple=True)
        cc = cand[rr, jj]
        fxr, hdr = fx[rr], hd[rr]
        pu = torch.where(hdr, cc, fxr)
        pv = torch.where(hdr, fxr, cc) - shift
        ranks = space.rank(pu, pv)[0]
        out_r.append(s._canon(ranks))
        out_prio.append(jj.double() / need[rr].double())
    ranks = torch.cat(out_r)
    prio = torch.cat(out_prio) + torch.rand(ranks.numel(), generator=gen, device=dev, dtype=torch.float64) * 1e-9
    return ranks[torch.argsort(prio)]
