"""negative_sampling / NegativeSampler: exact counts, uniqueness, exclusions, errors."""

import pytest
import torch
from hypothesis import given, settings, strategies as st

from gnnkit.linkpred import NegativeSampler, negative_sampling


def keyset(ei, n, undirected=False):
    u, v = ei[0].tolist(), ei[1].tolist()
    if undirected:
        return {(min(a, b), max(a, b)) for a, b in zip(u, v)}
    return set(zip(u, v))


@st.composite
def graphs(draw, max_nodes=12):
    n = draw(st.integers(2, max_nodes))
    m = draw(st.integers(0, n * n))
    src = draw(st.lists(st.integers(0, n - 1), min_size=m, max_size=m))
    dst = draw(st.lists(st.integers(0, n - 1), min_size=m, max_size=m))
    return n, torch.tensor([src, dst], dtype=torch.long).view(2, -1)


def check_negatives(neg, ei, n, k, undirected, exclude=None):
    assert neg.dtype == torch.int64 and neg.shape == (2, k)
    assert not bool((neg[0] == neg[1]).any()), "self-loop returned"
    assert neg.numel() == 0 or (int(neg.min()) >= 0 and int(neg.max()) < n)
    pairs = list(zip(neg[0].tolist(), neg[1].tolist()))
    if undirected:
        assert all(a < b for a, b in pairs), "undirected negatives must be row < col"
    assert len(set(pairs)) == k, "duplicates returned"
    known = keyset(ei, n, undirected)
    if exclude is not None:
        known |= keyset(exclude, n, undirected)
    got = keyset(neg, n, undirected)
    if undirected:
        assert not (got & known)
    else:
        assert not (got & known)


@settings(max_examples=25, deadline=None)
@given(graphs(), st.booleans(), st.sampled_from(["uniform", "degree", "hard"]), st.integers(0, 2 ** 31))
def test_exact_unique_or_clear_error(g, undirected, method, seed):
    n, ei = g
    s = NegativeSampler(ei, n, 0, method, force_undirected=undirected, seed=seed)
    avail = s.num_available
    # brute-force count of what is available
    known = keyset(ei, n, undirected)
    pairs = [(a, b) for a in range(n) for b in range(n) if a != b and (not undirected or a < b)]
    assert avail == len([p for p in pairs if p not in known])
    for k in {0, avail // 2, avail}:
        neg = s.sample(k)
        check_negatives(neg, ei, n, k, undirected)
    with pytest.raises(ValueError, match="num_neg_samples"):
        s.sample(avail + 1)


def test_complete_graph_is_an_error_not_a_short_result():
    n = 6
    a = torch.arange(n)
    ei = torch.cartesian_prod(a, a).t()
    with pytest.raises(ValueError, match="only 0"):
        negative_sampling(ei, n, 1)
    # PyG #3219: a node adjacent to all others must not hang anything
    star = torch.stack([torch.zeros(n - 1, dtype=torch.long), torch.arange(1, n)])
    neg = negative_sampling(star, n, (n - 1) * (n - 2) // 2, force_undirected=True, seed=0)
    assert neg.size(1) == 10 and not bool((neg[0] == 0).any())


def test_zero_samples_is_int64_and_self_loops_on_request():
    ei = torch.tensor([[0, 1], [1, 2]])
    out = negative_sampling(ei, 3, 0)
    assert out.dtype == torch.int64 and out.shape == (2, 0)
    # 9 pairs - 2 edges = 7 with loops allowed, 4 without
    assert negative_sampling(ei, 3, 7, allow_self_loops=True, seed=0).size(1) == 7
    with pytest.raises(ValueError):
        negative_sampling(ei, 3, 5)


def test_exclude_and_reverse_pairs():
    n = 30
    g = torch.Generator().manual_seed(0)
    ei = torch.randint(0, n, (2, 120), generator=g)
    ex = torch.randint(0, n, (2, 60), generator=g)
    for und in (False, True):
        neg = negative_sampling(ei, n, 150, exclude=ex, force_undirected=und, seed=1)
        check_negatives(neg, ei, n, 150, und, exclude=ex)
        if und:  # PyG #10707: no pair may appear with its reverse
            assert len(keyset(neg, n, True)) == 150


def test_seed_is_deterministic_and_sampler_resamples():
    ei = torch.randint(0, 50, (2, 200), generator=torch.Generator().manual_seed(3))
    for m in ("uniform", "degree", "hard"):
        a = negative_sampling(ei, 50, 100, m, seed=7)
        b = negative_sampling(ei, 50, 100, m, seed=7)
        assert torch.equal(a, b)
    s = NegativeSampler(ei, 50, 100, seed=7)
    first, second = s.sample(), s.sample()
    assert not torch.equal(first, second)  # a new draw each epoch
    s2 = NegativeSampler(ei, 50, 100, seed=7)
    assert torch.equal(s2.sample(), first) and torch.equal(s2.sample(), second)


def test_uniform_is_uniform():
    # 5 nodes, 1 edge: 19 allowed directed pairs; draw 1 each time, 3800 times
    ei = torch.tensor([[0], [1]])
    s = NegativeSampler(ei, 5, 1, seed=0)
    counts = {}
    for _ in range(3800):
        p = tuple(s.sample()[:, 0].tolist())
        counts[p] = counts.get(p, 0) + 1
    assert len(counts) == 19 and (0, 1) not in counts
    chi2 = sum((c - 200) ** 2 / 200 for c in counts.values())
    assert chi2 < 45  # 18 dof, p ~ 0.0005


def test_undirected_uniform_with_self_loops_is_uniform_over_unordered_pairs():
    """Review finding: with force_undirected and allow_self_loops the sparse path thinned the self-loops
    (one orientation) instead of the other pairs (two), so loops came ~4x too rarely (0.29 per sample of
    10 against 0.95)."""
    n, k, rounds = 20, 10, 3000  # no edges: 190 pairs + 20 loops = 210 unordered candidates
    s = NegativeSampler(torch.empty(2, 0, dtype=torch.long), n, k, force_undirected=True,
                        allow_self_loops=True, seed=0)
    assert s.num_available == 210
    loops = sum(int((e[0] == e[1]).sum()) for e in (s.sample() for _ in range(rounds)))
    expect = rounds * k * n / 210  # 2857; binomial sd ~ 51
    assert abs(loops - expect) < 5 * (expect * (1 - n / 210)) ** 0.5, (loops, expect)


def test_degree_prefers_hubs():
    n = 200
    hub = torch.zeros(150, dtype=torch.long)
    ei = torch.stack([hub, torch.arange(1, 151)])
    ei = torch.cat([ei, torch.tensor([[160, 170], [161, 171]])], 1)
    neg = negative_sampling(ei, n, 400, "degree", force_undirected=True, seed=0)
    uni = negative_sampling(ei, n, 400, "uniform", force_undirected=True, seed=0)
    deg = torch.bincount(torch.cat([ei[0], ei[1]]), minlength=n).float()
    assert float(deg[neg].mean()) > 3 * float(deg[uni].mean())


def test_hard_negatives_score_higher_than_uniform():
    # two dense communities joined by a few edges: hard negatives share neighbours
    g = torch.Generator().manual_seed(0)
    n = 60
    blocks = torch.randint(0, 30, (2, 300), generator=g)
    ei = torch.cat([blocks, blocks + 30, torch.tensor([[0, 31], [45, 2]])], 1)
    ei = ei[:, ei[0] != ei[1]]
    targets = ei[:, :50]
    A = torch.zeros(n, n)
    A[ei[0], ei[1]] = 1
    A = ((A + A.t()) > 0).float()
    cn = A @ A
    for score in ("cn", "ra", "ppr"):
        hard = negative_sampling(ei, n, 50, "hard", force_undirected=True, seed=0, targets=targets,
                                 hard_score=score)
        check_negatives(hard, ei, n, 50, True)
        uni = negative_sampling(ei, n, 50, "uniform", force_undirected=True, seed=0)
        assert float(cn[hard[0], hard[1]].mean()) > float(cn[uni[0], uni[1]].mean()) + 1.0
        # each negative keeps one endpoint of a target (head or tail corruption)
        ends = set(targets.reshape(-1).tolist())
        assert all(a in ends or b in ends for a, b in hard.t().tolist())


@pytest.mark.parametrize("bipartite", [False, True])
def test_hard_dense_and_sparse_products_agree(monkeypatch, bipartite):
    """hard.py multiplies by A densely on dense graphs (ogbl-ddi) and as CSR otherwise:
    both paths must give the same negatives, for every score."""
    import gnnkit.linkpred.hard as hard
    g = torch.Generator().manual_seed(1)
    if bipartite:
        ei, size = torch.stack([torch.randint(0, 25, (120,), generator=g),
                                torch.randint(0, 18, (120,), generator=g)]), (25, 18)
    else:
        ei, size = torch.randint(0, 40, (2, 200), generator=g), 40
        ei = ei[:, ei[0] != ei[1]]
    targets = ei[:, :30]
    for score in ("cn", "ra", "ppr"):
        out = {}
        for name, density in (("dense", 0.0), ("sparse", 2.0)):
            monkeypatch.setattr(hard, "DENSE_MIN_DENSITY", density)
            out[name] = negative_sampling(ei, size, 30, "hard", force_undirected=not bipartite, seed=3,
                                          targets=targets, hard_score=score)
        assert torch.equal(out["dense"], out["sparse"]), score


def test_hard_cn_picks_the_top_common_neighbour_pairs():
    """One target, tail corruption: the negatives are the kept endpoint's non-neighbours
    with the most common neighbours (brute-force oracle on a dense A)."""
    g = torch.Generator().manual_seed(2)
    n = 30
    ei = torch.randint(0, n, (2, 150), generator=g)
    ei = ei[:, ei[0] != ei[1]]
    A = torch.zeros(n, n)
    A[ei[0], ei[1]] = 1
    A = ((A + A.t()) > 0).float()
    cn = A @ A
    targets = ei[:, :1]
    k = 5
    neg = negative_sampling(ei, n, k, "hard", force_undirected=True, seed=0, targets=targets, hard_score="cn")
    check_negatives(neg, ei, n, k, True)
    # the kept endpoint is the head or the tail of the target (chosen at random)
    kept = [int(e) for e in targets[:, 0] if bool(((neg[0] == e) | (neg[1] == e)).all())]
    assert kept, "every negative must keep one endpoint of the target"
    u = kept[0]
    others = torch.where(neg[0] == u, neg[1], neg[0])
    assert bool(((neg[0] == u) | (neg[1] == u)).all())
    allowed = (A[u] == 0) & (torch.arange(n) != u)
    best = cn[u][allowed].sort(descending=True).values
    assert sorted(cn[u, others].tolist(), reverse=True) == best[:k].tolist()


def test_bipartite_and_batched():
    # bipartite: 4 users x 3 items, separate numbering
    ei = torch.tensor([[0, 0, 1, 3], [0, 2, 1, 2]])
    for m in ("uniform", "degree", "hard"):
        neg = negative_sampling(ei, (4, 3), 8, m, seed=0)
        assert neg.shape == (2, 8) and int(neg[0].max()) < 4 and int(neg[1].max()) < 3
        assert not (set(zip(*neg.tolist())) & set(zip(*ei.tolist())))
    with pytest.raises(ValueError, match="only 8"):
        negative_sampling(ei, (4, 3), 9)
    with pytest.raises(ValueError, match="bipartite"):
        negative_sampling(ei, (4, 3), 2, force_undirected=True)
    # batched: two graphs of 3 nodes, pairs never cross graphs
    batch = torch.tensor([0, 0, 0, 1, 1, 1])
    ei = torch.tensor([[0, 3], [1, 4]])
    for m in ("uniform", "degree", "hard"):
        neg = negative_sampling(ei, 6, 4, m, batch=batch, force_undirected=True, seed=0)
        assert bool((batch[neg[0]] == batch[neg[1]]).all())
        check_negatives(neg, ei, 6, 4, True)
    with pytest.raises(ValueError, match="only 4"):
        negative_sampling(ei, 6, 5, batch=batch, force_undirected=True)


def test_bad_input_names_the_argument():
    ei = torch.tensor([[0, 1, 2], [1, 2, 0]])
    with pytest.raises(ValueError, match="edge_index"):
        negative_sampling(ei.t(), 3, 1)
    with pytest.raises(ValueError, match="integer"):
        negative_sampling(ei.float(), 3, 1)
    with pytest.raises(IndexError, match="num_nodes"):
        negative_sampling(ei, 2, 1)
    with pytest.raises(ValueError, match="method"):
        negative_sampling(ei, 3, 1, method="random")
    with pytest.raises(ValueError, match="num_neg_samples"):
        negative_sampling(ei, 3, -1)
    with pytest.raises(ValueError, match="num_neg_samples"):
        negative_sampling(ei, 3, 1.5)


def test_int32_input_and_large_sparse_graph_is_fast():
    import time
    n = 100_000
    g = torch.Generator().manual_seed(0)
    ei = torch.randint(0, n, (2, 500_000), generator=g).int()
    t = time.perf_counter()
    neg = negative_sampling(ei, n, 500_000, force_undirected=True, seed=0)
    assert time.perf_counter() - t < 10
    assert neg.dtype == torch.int64 and neg.size(1) == 500_000
    assert torch.unique(neg[0].long() * n + neg[1]).numel() == 500_000


@pytest.mark.parametrize("batched", [False, True])
@pytest.mark.parametrize("seed", range(4))
def test_loop_free_rank_space_enumerates_exactly_the_allowed_pairs(batched, seed):
    """The forbidden self-loops are left out analytically: allowed(0..num_allowed-1) is exactly the sorted
    set of ranks that are neither a known edge nor a loop, for plain and batched graphs."""
    from gnnkit.linkpred.negative import PairSpace, _Forbidden
    g = torch.Generator().manual_seed(seed)
    n = 17
    batch = torch.tensor([0] * 5 + [1] * 1 + [2] * 11) if batched else None
    space = PairSpace(n, batch=batch)
    ei = torch.randint(0, n, (2, 40), generator=g)
    if batched:
        ei = ei[:, batch[ei[0]] == batch[ei[1]]]
    ei = torch.cat([ei, torch.tensor([[3, 3], [3, 3]])], 1)  # an explicit self-loop too
    for und in (False, True):
        f = _Forbidden(space, ei, und, allow_self_loops=False)
        got = f.allowed(torch.arange(f.num_allowed)).tolist()
        forb = {tuple(p) for p in ei.t().tolist()} | ({tuple(p) for p in ei.flip(0).t().tolist()} if und else set())
        want = []
        for u in range(n):
            for v in range(n):
                if u != v and (u, v) not in forb and (batch is None or batch[u] == batch[v]):
                    want.append(int(space.rank(torch.tensor([u]), torch.tensor([v]))[0]))
        assert got == sorted(want)
        r = torch.tensor(sorted(want) + [int(space.rank(torch.tensor([2]), torch.tensor([2]))[0])])
        assert f.contains(r).tolist() == [False] * len(want) + [True]


@pytest.mark.parametrize("num_nodes", [10 ** 8, 2 ** 31])
def test_negative_sampling_memory_follows_the_samples_not_the_nodes(num_nodes):
    """Regression (issue 13.7): forbidding self-loops listed all N loop ranks (one edge with num_nodes=1e8
    took > 5.5 GB; 2**31 was killed). Now it is instant and small."""
    import resource
    import time
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    neg = negative_sampling(torch.tensor([[0], [1]]), num_nodes, 1000, seed=0)
    assert time.perf_counter() - t < 5
    assert neg.shape == (2, 1000) and bool((neg[0] != neg[1]).all()) and int(neg.max()) < num_nodes
    assert not bool(((neg[0] == 0) & (neg[1] == 1)).any())
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 200, f"peak RSS grew by {grown_mb:.0f} MB"
