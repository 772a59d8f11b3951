"""Transductive / inductive link splits: the message/supervision rule, orientation,
bipartite graphs, datasets of many graphs, and check_leakage on real and generated graphs."""
import os

import pytest
import torch
from hypothesis import given, settings, strategies as st
from torch_geometric.data import Data

from gnnkit.linkpred import (
    InductiveLinkSplit,
    LeakageError,
    TransductiveLinkSplit,
    check_leakage,
    train_negative_sampler,
)
from gnnkit.linkpred._graph import is_symmetric, reciprocity


def load(name):
    """Datasets by name; a missing dataset fails when GNNKIT_DATA is set and skips otherwise."""
    from gnnkit.data import DatasetNotFoundError, load_dataset
    try:
        return load_dataset(name)
    except DatasetNotFoundError:
        if os.environ.get("GNNKIT_DATA"):
            raise
        pytest.skip(f"{name} not available (set GNNKIT_DATA)")


def pairs(ei, und):
    u, v = ei[0].tolist(), ei[1].tolist()
    return {(min(a, b), max(a, b)) if und else (a, b) for a, b in zip(u, v)}


def pos(d):
    return d.edge_label_index[:, d.edge_label == 1]


def neg(d):
    return d.edge_label_index[:, d.edge_label == 0]


def assert_rules(tr, va, te, full, und, overlap=False):
    """The message/supervision rule of TransductiveLinkSplit, checked independently of check_leakage."""
    P = [pairs(pos(d), und) for d in (tr, va, te)]
    M = [pairs(d.edge_index, und) for d in (tr, va, te)]
    N = [pairs(neg(d), und) for d in (tr, va, te)]
    allp = pairs(full, und)
    # supervision never among messages of the same or an earlier split
    for i in range(3):
        for j in range(i + 1):
            if not (overlap and i == j == 0):
                assert not (P[i] & M[j])
    # message sets: val = train msg + train sup; test = val msg + val positives
    assert M[1] == M[0] | P[0]
    assert M[2] == M[1] | P[1]
    # every edge is somewhere, exactly once
    assert (M[0] | P[0] | P[1] | P[2]) == allp
    assert not (P[1] & P[2]) and not (P[0] & P[1]) and not (P[0] & P[2])
    assert len(M[0]) + len(P[0]) + len(P[1]) + len(P[2]) == len(allp) + (len(P[0]) if overlap else 0)
    # negatives exclude what the split knows; test negatives are non-edges
    assert not (N[0] & (M[0] | P[0]))
    assert not (N[1] & (M[1] | P[1]))
    assert not (N[2] & allp)
    for d in (tr, va, te):
        assert set(d.edge_label.unique().tolist()) <= {0.0, 1.0}
        if und:  # messages in both directions
            assert pairs(d.edge_index, False) == pairs(d.edge_index.flip(0), False)


@st.composite
def random_graph(draw):
    n = draw(st.integers(8, 30))
    m = draw(st.integers(10, 60))
    src = draw(st.lists(st.integers(0, n - 1), min_size=m, max_size=m))
    dst = draw(st.lists(st.integers(0, n - 1), min_size=m, max_size=m))
    return Data(edge_index=torch.tensor([src, dst]), num_nodes=n)


@settings(max_examples=12, deadline=None)
@given(random_graph(), st.booleans(), st.sampled_from([0.0, 0.3]), st.sampled_from(["uniform", "degree", "hard"]),
       st.integers(0, 1000))
def test_transductive_rules_on_generated_graphs(data, und, dtr, method, seed):
    from gnnkit.linkpred import unique_edges
    edges, _ = unique_edges(data.edge_index, data.num_nodes, und)
    if edges.size(1) < 10:
        return
    tf = TransductiveLinkSplit(0.2, 0.2, is_undirected=und, disjoint_train_ratio=dtr, seed=seed,
                               neg_method=method, neg_sampling_ratio=0.5, debug=True)
    tr, va, te = tf(data)
    assert_rules(tr, va, te, edges, und, overlap=dtr == 0)
    rep = check_leakage(tr, va, te, full_edge_index=edges, is_undirected=und, allow_train_overlap=dtr == 0)
    assert rep.ok, str(rep)
    if dtr == 0:
        assert pairs(pos(tr), und) == pairs(tr.edge_index, und)  # PyG's behaviour, on request


@settings(max_examples=12, deadline=None)
@given(random_graph(), st.sampled_from(["random", "region"]), st.integers(0, 1000))
def test_inductive_rules_on_generated_graphs(data, partition, seed):
    tf = InductiveLinkSplit(0.25, 0.25, is_undirected=True, partition=partition, seed=seed, debug=True)
    try:
        tr, va, te = tf(data)
    except ValueError as e:  # a part too small for its edges or negatives is a clear error
        assert "part" in str(e) and "fix:" in str(e)
        return
    ids = [set(d.n_id.tolist()) for d in (tr, va, te)]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
    assert sum(map(len, ids)) == data.num_nodes
    full = pairs(data.edge_index[:, data.edge_index[0] != data.edge_index[1]], True)
    kept = 0
    for d in (tr, va, te):
        g = lambda ei: d.n_id[ei]  # noqa: E731
        assert d.edge_index.numel() == 0 or int(d.edge_index.max()) < d.num_nodes
        P, M = pairs(g(pos(d)), True), pairs(g(d.edge_index), True)
        assert not (P & M) and (P | M) <= full
        assert not (pairs(g(neg(d)), True) & full)
        kept += len(P | M)
    assert kept + tf.stats["cross_part_edges_dropped"] == len(full)


def test_undirected_orientation_does_not_matter():
    g = torch.Generator().manual_seed(0)
    e = torch.randint(0, 40, (2, 150), generator=g)
    e = e[:, e[0] != e[1]]
    lo = torch.stack([e.min(0).values, e.max(0).values])
    hi = lo.flip(0)  # stored only as row > col (PyG drops these)
    both = torch.cat([lo, hi], 1)
    mixed = torch.where(torch.rand(lo.size(1), generator=g) < 0.5, lo, hi)
    outs = []
    for ei in (lo, hi, both, mixed):
        tr, va, te = TransductiveLinkSplit(0.1, 0.2, is_undirected=True, seed=5)(Data(edge_index=ei, num_nodes=40))
        outs.append([pairs(pos(d), True) for d in (tr, va, te)] + [pairs(tr.edge_index, True)])
    for o in outs[1:]:
        assert o == outs[0]
    assert len(outs[0][0] | outs[0][1] | outs[0][2] | outs[0][3]) == len(pairs(lo, True))


def test_num_val_zero_keeps_test_out_of_messages():
    # PyG #10590: num_val=0 made train and test share message edges
    data = Data(edge_index=torch.randint(0, 30, (2, 120), generator=torch.Generator().manual_seed(1)),
                num_nodes=30)
    tr, va, te = TransductiveLinkSplit(0, 0.2, is_undirected=True, seed=0, debug=True)(data)
    assert va.edge_label.numel() == 0
    assert not (pairs(pos(te), True) & pairs(te.edge_index, True))
    assert pairs(va.edge_index, True) == pairs(te.edge_index, True)


def test_seed_determinism_and_split_sizes():
    data = Data(edge_index=torch.randint(0, 50, (2, 300), generator=torch.Generator().manual_seed(2)), num_nodes=50)
    a = TransductiveLinkSplit(0.1, 0.2, is_undirected=True, seed=3)(data)
    b = TransductiveLinkSplit(0.1, 0.2, is_undirected=True, seed=3)(data)
    c = TransductiveLinkSplit(0.1, 0.2, is_undirected=True, seed=4)(data)
    for x, y in zip(a, b):
        assert torch.equal(x.edge_index, y.edge_index) and torch.equal(x.edge_label_index, y.edge_label_index)
    assert not torch.equal(a[2].edge_label_index, c[2].edge_label_index)


def test_bipartite_splits():
    g = torch.Generator().manual_seed(0)
    users, items = 40, 25
    ei = torch.stack([torch.randint(0, users, (300,), generator=g), torch.randint(0, items, (300,), generator=g)])
    data = Data(edge_index=ei, num_src=users, num_dst=items, num_nodes=users + items)
    for method in ("uniform", "degree", "hard"):
        tr, va, te = TransductiveLinkSplit(0.1, 0.2, seed=0, neg_method=method, debug=True)(data)
        for d in (tr, va, te):
            assert int(d.edge_label_index[0].max()) < users and int(d.edge_label_index[1].max()) < items
        assert not (pairs(neg(te), False) & pairs(ei, False))
    with pytest.raises(ValueError, match="bipartite"):
        TransductiveLinkSplit(is_undirected=True)(data)
    tr, va, te = InductiveLinkSplit(0.2, 0.2, seed=0, debug=True)(data)
    for d in (tr, va, te):
        assert d.num_src == d.n_id_src.numel() and d.num_dst == d.n_id_dst.numel()
    assert not set(tr.n_id_src.tolist()) & set(te.n_id_src.tolist())
    rep = check_leakage(tr, va, te, full_edge_index=ei)
    assert rep.ok and rep.inductive


def test_check_leakage_catches_the_known_faults():
    from torch_geometric.transforms import RandomLinkSplit
    g = torch.Generator().manual_seed(0)
    data = Data(edge_index=torch.randint(0, 60, (2, 400), generator=g), num_nodes=60)
    tr, va, te = TransductiveLinkSplit(0.1, 0.2, is_undirected=True, seed=0)(data)
    assert check_leakage(tr, va, te).ok
    # a test edge put back into the training messages
    bad = tr.clone()
    t = pos(te)[:, :3]
    bad.edge_index = torch.cat([tr.edge_index, t.flip(0)], 1)  # reversed copy only
    rep = check_leakage(bad, va, te, is_undirected=True)
    assert [i.kind for i in rep.errors] == ["supervision_in_messages"] and rep.errors[0].count == 3
    with pytest.raises(LeakageError):
        check_leakage(bad, va, te, is_undirected=True, strict=True)
    # a val/test positive overlap, a negative that is a real edge, offset labels
    bad_va = va.clone()
    bad_va.edge_label_index = torch.cat([va.edge_label_index, t], 1)
    bad_va.edge_label = torch.cat([va.edge_label, torch.ones(3)])
    assert "positive_overlap" in {i.kind for i in check_leakage(tr, bad_va, te).errors}
    bad_te = te.clone()
    bad_te.edge_label_index = torch.cat([te.edge_label_index, pos(tr)[:, :2]], 1)
    bad_te.edge_label = torch.cat([te.edge_label, torch.zeros(2)])
    kinds = {i.kind for i in check_leakage(tr, va, bad_te).errors}
    assert "negative_is_known_edge" in kinds
    # a self-loop negative (the review found it unreported): a warning, the split stays ok
    loop_te = te.clone()
    loop_te.edge_label_index = torch.cat([te.edge_label_index, torch.tensor([[5, 7], [5, 7]])], 1)
    loop_te.edge_label = torch.cat([te.edge_label, torch.zeros(2)])
    rep = check_leakage(tr, va, loop_te)
    loops = [(i.split, i.count) for i in rep.warnings if i.kind == "self_loop_labels"]
    assert rep.ok and loops == [("test", 2)]
    assert not [i for i in check_leakage(tr, va, te).warnings if i.kind == "self_loop_labels"]
    off = te.clone()
    off.edge_label = te.edge_label + 1
    assert "bad_labels" in {i.kind for i in check_leakage(tr, va, off).errors}
    # PyG's RandomLinkSplit default: train supervision == train messages
    ptr, pva, pte = RandomLinkSplit(0.1, 0.2, is_undirected=True)(data)
    rep = check_leakage(ptr, pva, pte, is_undirected=True)
    assert "supervision_in_messages" in {i.kind for i in rep.errors}
    # inductive node overlap
    itr, iva, ite = InductiveLinkSplit(0.2, 0.2, is_undirected=True, seed=0)(data)
    ite2 = ite.clone()
    ite2.n_id = ite.n_id.clone()
    ite2.n_id[0] = itr.n_id[0]
    assert "node_overlap" in {i.kind for i in check_leakage(itr, iva, ite2).errors}


def test_training_sampler_excludes_only_training_edges():
    g = torch.Generator().manual_seed(0)
    data = Data(edge_index=torch.randint(0, 25, (2, 150), generator=g), num_nodes=25)
    tr, va, te = TransductiveLinkSplit(0.1, 0.2, is_undirected=True, seed=0,
                                       add_negative_train_samples=False)(data)
    assert bool((tr.edge_label == 1).all())
    s = train_negative_sampler(tr, 1.0, seed=0)
    known = pairs(tr.edge_index, True) | pairs(pos(tr), True)
    held = pairs(pos(va), True) | pairs(pos(te), True)
    seen = set()
    for _ in range(30):
        n = pairs(s.sample(), True)
        assert not (n & known)
        seen |= n
    # held-out edges are *not* excluded: with enough draws some appear as negatives
    assert seen & held


def test_bad_arguments_are_clear():
    data = Data(edge_index=torch.tensor([[0, 1], [1, 2]]), num_nodes=3)
    with pytest.raises(ValueError, match="num_val"):
        TransductiveLinkSplit(num_val=1.5)
    with pytest.raises(ValueError, match="no training edges"):
        TransductiveLinkSplit(0.5, 0.5)(data)
    with pytest.raises(ValueError, match="neg_method"):
        TransductiveLinkSplit(neg_method="bogus")
    with pytest.raises(ValueError, match="partition"):
        InductiveLinkSplit(partition="metis")
    with pytest.raises(IndexError, match="num_nodes"):
        TransductiveLinkSplit()(Data(edge_index=torch.tensor([[0], [5]]), num_nodes=3))


@pytest.mark.data
def test_cora_splits_pass_check_leakage():
    data = load("Cora")[0]
    for method in ("uniform", "hard"):
        tf = TransductiveLinkSplit(0.05, 0.1, is_undirected=True, seed=0, neg_method=method, debug=True)
        tr, va, te = tf(data)
        assert_rules(tr, va, te, tf_edges(data), True)
        assert tr.x.shape == data.x.shape  # all nodes visible
    for partition in ("random", "region"):
        tf = InductiveLinkSplit(0.1, 0.2, is_undirected=True, partition=partition, seed=0, debug=True)
        tr, va, te = tf(data)
        assert tr.num_nodes + va.num_nodes + te.num_nodes == data.num_nodes
        assert torch.equal(tr.x, data.x[tr.n_id])


def tf_edges(data):
    from gnnkit.linkpred import unique_edges
    return unique_edges(data.edge_index, data.num_nodes, True)[0]


@pytest.mark.data
def test_mutag_splits_whole_graphs():
    ds = load("MUTAG")
    tf = InductiveLinkSplit(0.1, 0.2, is_undirected=True, seed=0, debug=True)
    tr, va, te = tf(ds)
    assert tf.stats["cross_part_edges_dropped"] == 0
    assert tr.graph_id.numel() + va.graph_id.numel() + te.graph_id.numel() == len(ds)
    for d in (tr, va, te):
        # negatives stay inside one molecule
        e = neg(d)
        assert bool((d.batch[e[0]] == d.batch[e[1]]).all())


@pytest.mark.data
def test_ogbl_ddi_split_is_leak_free_and_fast():
    import time
    data = load("ogbl-ddi")[0]
    t = time.perf_counter()
    tf = TransductiveLinkSplit(0.1, 0.1, is_undirected=True, seed=0)
    tr, va, te = tf(data)
    assert time.perf_counter() - t < 30
    rep = check_leakage(tr, va, te, full_edge_index=data.edge_index, strict=True)
    assert rep.sizes["val"]["positives"] == tf.stats["val_edges"]
    assert tf.stats["unique_edges"] == data.edge_index.size(1) // 2
    ind = InductiveLinkSplit(0.1, 0.1, is_undirected=True, seed=0, partition="region")
    itr, iva, ite = ind(data)
    rep = check_leakage(itr, iva, ite, full_edge_index=data.edge_index, strict=True)
    assert rep.inductive and itr.num_nodes + iva.num_nodes + ite.num_nodes == data.num_nodes
    kept = sum(ind.stats[f"{s}_edges"] for s in ("train", "val", "test"))
    assert kept + ind.stats["cross_part_edges_dropped"] == ind.stats["unique_edges"]


@pytest.mark.data
def test_ogbg_molhiv_splits_whole_graphs():
    ds = load("ogbg-molhiv")
    tf = InductiveLinkSplit(0.1, 0.1, is_undirected=True, seed=0)
    tr, va, te = tf(ds)
    assert tf.stats["cross_part_edges_dropped"] == 0
    assert sum(d.graph_id.numel() for d in (tr, va, te)) == len(ds)
    assert check_leakage(tr, va, te, strict=True).inductive
    e = neg(te)
    assert bool((te.batch[e[0]] == te.batch[e[1]]).all())
    assert te.y.size(0) == te.graph_id.numel()


def _random_undirected(n=120, e=300, seed=0):
    g = torch.Generator().manual_seed(seed)
    ei = torch.randint(0, n, (2, e), generator=g)
    ei = ei[:, ei[0] != ei[1]]
    return Data(edge_index=torch.cat([ei, ei.flip(0)], 1), num_nodes=n)


def test_rounding_never_turns_disjoint_supervision_into_overlap():
    """Regression (issue 13.2): a disjoint_train_ratio that rounds to 0 silently fell back to PyG's overlap
    (every training positive also a training message), even with debug=True."""
    g = torch.Generator().manual_seed(0)
    data = Data(edge_index=torch.randint(0, 200, (2, 600), generator=g), num_nodes=200)
    with pytest.raises(ValueError, match="rounds to 0 supervision edges"):
        TransductiveLinkSplit(0.1, 0.2, is_undirected=True, disjoint_train_ratio=0.001, seed=0, debug=True)(data)
    odd = Data(edge_index=torch.stack([torch.arange(0, 601), torch.arange(1, 602)]), num_nodes=602)
    with pytest.raises(ValueError, match="no training edges|rounds to 0 supervision"):
        TransductiveLinkSplit(num_val=0.5, num_test=0.5, seed=0)(odd)
    # disjoint_train_ratio=0 is PyG's overlap on purpose, and still allowed
    tr, _, _ = TransductiveLinkSplit(0.1, 0.2, disjoint_train_ratio=0, seed=0)(data)
    assert tr.edge_label.sum() > 0


@pytest.mark.parametrize("splitter", ["transductive", "inductive"])
def test_undirected_graphs_are_recognised_by_default(splitter):
    """Regression (issue 13.2): on a graph stored in both directions (like Cora) the default
    is_undirected=False put the reverse of most supervision edges into the messages."""
    data = _random_undirected()
    split = TransductiveLinkSplit(seed=0) if splitter == "transductive" else InductiveLinkSplit(seed=0)
    tr, va, te = split(data)
    assert split.stats["undirected"] is True and split.stats["undirected_inferred"] is True
    for d in (tr, va, te):
        pos = d.edge_label_index[:, d.edge_label == 1]
        msg = set(map(tuple, d.edge_index.t().tolist()))
        assert not any((v, u) in msg or (u, v) in msg for u, v in pos.t().tolist()), "a supervision edge leaked"
    assert check_leakage(tr, va, te, strict=True).ok


def test_check_leakage_sees_a_reverse_pair_added_to_the_training_messages():
    """Regression (issue 13.2): adding the reverse of one validation positive to the training messages made the
    training graph asymmetric, so the check compared ordered pairs and said "ok"."""
    data = _random_undirected(seed=1)
    tr, va, te = TransductiveLinkSplit(seed=0)(data)
    u, v = va.edge_label_index[:, va.edge_label == 1][:, 0].tolist()
    bad = tr.clone()
    bad.edge_index = torch.cat([tr.edge_index, torch.tensor([[v], [u]])], 1)
    assert not check_leakage(bad, va, te).ok
    assert not check_leakage(bad, va, te, full_edge_index=data.edge_index).ok


@pytest.mark.parametrize("splitter", ["transductive", "inductive"])
def test_an_almost_symmetric_graph_asks_for_is_undirected(splitter):
    """Review finding: one edge appended one way to an undirected graph made the default inference say
    "directed", and the split kept the reverse of most held-out edges in the training messages (615 of 1056
    test positives on Cora), silently.  Now the default refuses and names the choice; either choice is
    leak-free for what it means."""
    data = _random_undirected(seed=2)
    one_way = Data(edge_index=torch.cat([data.edge_index, torch.tensor([[0], [119]])], 1), num_nodes=120)
    assert not bool(((data.edge_index[0] == 0) & (data.edge_index[1] == 119)).any())
    make = TransductiveLinkSplit if splitter == "transductive" else InductiveLinkSplit
    with pytest.raises(ValueError, match=r"almost symmetric.*is_undirected=True.*is_undirected=False"):
        make(seed=0)(one_way)
    tr, va, te = make(seed=0, is_undirected=True)(one_way)
    assert check_leakage(tr, va, te, strict=True, full_edge_index=one_way.edge_index).ok
    make(seed=0, is_undirected=False)(one_way)  # directed on purpose: allowed
    # a directed graph with a few reciprocal pairs is still inferred as directed
    g = torch.Generator().manual_seed(3)
    ei = torch.randint(0, 120, (2, 300), generator=g)
    ei = torch.cat([ei, ei[:, :10].flip(0)], 1)
    split = make(seed=0)
    split(Data(edge_index=ei, num_nodes=120))
    assert split.stats["undirected"] is False


def test_check_leakage_with_the_input_graph_given_each_edge_once():
    """Review finding: with full_edge_index holding each undirected edge once (what unique_edges returns),
    the check compared ordered pairs and missed the reverse of a test positive in the training messages."""
    data = _random_undirected(seed=4)
    tr, va, te = TransductiveLinkSplit(seed=0)(data)
    u, v = te.edge_label_index[:, te.edge_label == 1][:, 0].tolist()
    bad = tr.clone()
    bad.edge_index = torch.cat([tr.edge_index, torch.tensor([[v], [u]])], 1)
    once = data.edge_index[:, data.edge_index[0] < data.edge_index[1]]
    for full in (None, data.edge_index, once):
        assert not check_leakage(bad, va, te, full_edge_index=full).ok, full is None
    assert check_leakage(tr, va, te, full_edge_index=once).ok


def test_check_leakage_does_not_call_a_directed_split_undirected_for_one_symmetric_part():
    """Review finding: with is_undirected=None, one split whose few message edges happened to be symmetric (a
    small inductive part of a directed graph) made the whole check compare unordered pairs, so every training
    positive whose legal reverse is a message edge was reported as a leak — with the directed full graph given
    too.  Now a directed full graph decides, and without one at least half of the splits must be symmetric."""
    g = torch.Generator().manual_seed(0)
    for _ in range(13):  # the reviewer's stream; the 13th graph fails on the old rule
        e = torch.randint(0, 30, (2, 60), generator=g)
        ei = torch.cat([e, e[:, :20].flip(0)], 1)  # directed, 20 of its 80 edges reciprocated
    tr, va, te = InductiveLinkSplit(0.2, 0.2, is_undirected=False, seed=12)(Data(edge_index=ei, num_nodes=30))
    assert [is_symmetric(d.edge_index) for d in (tr, va, te)] == [False, False, True]
    for full in (ei, None):
        report = check_leakage(tr, va, te, full_edge_index=full)
        assert report.ok and report.undirected is False, (full is None, report)
    # a directed graph with a few reciprocal pairs: its full graph decides, whatever the splits look like
    few = torch.cat([ei, torch.tensor([[0, 1], [1, 0]])], 1)[:, 20:]
    assert 0 < reciprocity(few) < 0.5
    assert check_leakage(tr, va, te, full_edge_index=few).undirected is False


def test_inductive_num_val_zero_gives_an_empty_validation_part():
    """Regression (issue 13.8): InductiveLinkSplit(num_val=0) said "num_nodes must be positive"."""
    data = _random_undirected(n=100, e=400)
    tr, va, te = InductiveLinkSplit(num_val=0, seed=0)(data)
    assert va.num_nodes == 0 and va.edge_label.numel() == 0 and va.edge_index.size(1) == 0
    assert tr.edge_label.numel() > 0 and te.edge_label.numel() > 0
    assert check_leakage(tr, va, te, strict=True).ok


@pytest.mark.parametrize("splitter", ["transductive", "inductive"])
def test_splitters_name_bad_data(splitter):
    """Regression: a float edge_index was truncated to ids silently (1.7 -> 1); a tensor instead of a Data and
    a Data without edge_index gave raw errors."""
    from torch_geometric.data import Data

    from gnnkit.linkpred import InductiveLinkSplit, TransductiveLinkSplit
    make = TransductiveLinkSplit if splitter == "transductive" else InductiveLinkSplit
    ei = torch.randint(0, 30, (2, 80), generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="edge_index must be an integer tensor.*float32"):
        make(seed=0)(Data(edge_index=ei.float() + 0.7, num_nodes=30))
    with pytest.raises(TypeError, match="takes a torch_geometric.data.Data"):
        make(seed=0)(ei)
    with pytest.raises(ValueError, match="data has no edge_index"):
        make(seed=0)(Data(num_nodes=30))
    # the empty float idiom tensor([[], []]) is an empty graph, not a dtype error
    with pytest.raises(ValueError, match="leave no training|0 edges"):
        make(seed=0)(Data(edge_index=torch.tensor([[], []]), num_nodes=30))


def _ring(n):
    u = torch.arange(n)
    return Data(edge_index=torch.stack([u, (u + 1) % n]), num_nodes=n)


def test_a_requested_part_that_rounds_to_nothing_is_an_error():
    """Regression: num_val / num_test above 0 that rounded to no positives gave an empty part silently (written by
    `gnnkit split`, failing only at evaluation); an explicit 0 still asks for an empty part."""
    two = Data(edge_index=torch.tensor([[0, 1], [1, 2]]), num_nodes=4)
    with pytest.raises(ValueError, match=r"num_val=0\.1 of 2 edges rounds to 0.*fix:"):
        TransductiveLinkSplit(0.1, 0.2, is_undirected=True, seed=0)(two)
    tr, va, te = TransductiveLinkSplit(0, 1, is_undirected=True, disjoint_train_ratio=0, seed=0)(two)
    assert va.edge_label.numel() == 0 and int(te.edge_label.sum()) == 1
    # inductive: a val part of 3 ring nodes holds no edge with both ends in it
    with pytest.raises(ValueError, match=r"the val part .* 0 positive pairs.*fix: a larger num_val"):
        InductiveLinkSplit(0.1, 0.1, is_undirected=True, seed=0)(_ring(30))
    with pytest.raises(ValueError, match=r"num_test=0\.01 of 30 nodes rounds to 0"):
        InductiveLinkSplit(0.3, 0.01, is_undirected=True, seed=0)(_ring(30))


def test_inductive_training_part_keeps_message_edges():
    """Regression: supervision_ratio close to 1 left the inductive training part without message edges
    (the transductive splitter already refused the same case)."""
    with pytest.raises(ValueError, match=r"supervision_ratio=0\.99 .* no message edges; fix"):
        InductiveLinkSplit(0.1, 0.1, is_undirected=True, supervision_ratio=0.99, seed=0)(_ring(40))


def test_a_saved_split_keeps_the_node_count_of_features_only_graphs(tmp_path):
    """Regression: a graph whose node count lives in x (Planetoid's) was saved without it, and load_split then
    guessed it from the message edges: isolated nodes reached only by held-out or negative pairs fell outside,
    and the reload failed its own leakage check (`gnnkit split Cora --seed 24` then load_split)."""
    from gnnkit.linkpred.io import load_split, save_split
    u = torch.arange(20)
    ei = torch.stack([u, (u + 1) % 20])
    data = Data(edge_index=torch.cat([ei, ei.flip(0)], 1), x=torch.randn(30, 3))  # nodes 20..29 isolated
    splits = TransductiveLinkSplit(0.1, 0.2, seed=0)(data)
    assert int(torch.cat([d.edge_label_index for d in splits], 1).max()) >= 20  # a pair reaches them
    out = save_split(tmp_path / "s", splits, {"undirected": True, "num_nodes": 30})
    assert [d.num_nodes for d in load_split(out)[:3]] == [30, 30, 30]
    # files written before the fix (no node count inside) take the manifest's
    import hashlib
    import json
    man = json.loads((out / "manifest.json").read_text())
    for name in ("train.pt", "val.pt", "test.pt"):
        raw = torch.load(out / name, weights_only=True)
        raw.pop("num_nodes")
        torch.save(raw, out / name)
        man["sha256"][name] = hashlib.sha256((out / name).read_bytes()).hexdigest()
    (out / "manifest.json").write_text(json.dumps(man))
    (out / "manifest.json.sha256").unlink()  # files from before the manifest's side file, too
    assert [d.num_nodes for d in load_split(out, verify=False)[:3]] == [30, 30, 30]


def test_region_partition_of_a_dataset_of_graphs_is_an_error():
    """Review (session 13): partition='region' on a dataset of graphs was silently random (graphs go whole)."""
    graphs = [_ring(6), _ring(7), _ring(8), _ring(9)]
    with pytest.raises(ValueError, match=r"partition='region' is for one homogeneous graph.*fix: partition='random'"):
        InductiveLinkSplit(0.25, 0.25, partition="region", is_undirected=True, seed=0)(graphs)


def test_mrr_without_positives_is_an_error_as_hits_at_k():
    from gnnkit.linkpred import hits_at_k, mrr
    with pytest.raises(ValueError, match="mrr: no positive scores"):
        mrr(torch.zeros(0), torch.zeros(0, 3))
    with pytest.raises(ValueError, match="no positive scores"):
        hits_at_k(torch.zeros(0), torch.zeros(30), 20)


@pytest.mark.parametrize("splitter", ["transductive", "inductive"])
def test_load_split_restores_both_sides_features_of_a_bipartite_graph(tmp_path, splitter):
    """Review finding: ``load_split(full=...)`` put back ``x`` only; a bipartite graph's ``x_src`` / ``x_dst``
    were lost (inductive parts take their own rows, as the splitter gives them)."""
    from gnnkit.linkpred.io import load_split, save_split
    g = torch.Generator().manual_seed(0)
    ui = torch.stack([torch.randint(0, 40, (300,), generator=g), torch.randint(0, 25, (300,), generator=g)])
    full = Data(edge_index=ui, num_src=40, num_dst=25, num_nodes=65, x_src=torch.randn(40, 3, generator=g),
                x_dst=torch.randn(25, 5, generator=g))
    make = TransductiveLinkSplit if splitter == "transductive" else InductiveLinkSplit
    splits = make(0.1, 0.2, seed=0)(full)
    save_split(tmp_path / "s", splits, {"num_nodes": 65, "arguments": {"mode": splitter}})
    loaded = load_split(tmp_path / "s", full=full)[:3]
    for made, got in zip(splits, loaded):
        for key in ("x_src", "x_dst"):
            assert torch.equal(got[key], made[key]), key
    if splitter == "inductive":  # another, smaller bipartite graph: named, not a raw IndexError
        from gnnkit.linkpred.io import SplitFileError
        small = Data(edge_index=ui[:, :5] % 5, num_src=5, num_dst=5, num_nodes=10, x_src=torch.randn(5, 3),
                     x_dst=torch.randn(5, 5))
        with pytest.raises(SplitFileError, match="n_id_src .* is outside full's 5 src nodes"):
            load_split(tmp_path / "s", full=small)


def test_inductive_dataset_with_empty_graphs_keeps_batch_and_graph_id_aligned():
    """Review finding: a part holding a graph without nodes numbered its nodes' ``batch`` consecutively over the
    graphs that have nodes, while ``graph_id`` (and the per-graph ``y``) list every graph: from the empty graph on,
    a node's batch pointed at the wrong graph."""
    g = torch.Generator().manual_seed(0)
    graphs = []
    for i in range(30):
        n = 0 if i % 7 == 3 else 12
        graphs.append(Data(edge_index=torch.randint(0, max(n, 1), (2, 30 if n else 0), generator=g), num_nodes=n,
                           y=torch.tensor([i])))
    tr, va, te = InductiveLinkSplit(0.2, 0.2, seed=0, is_undirected=False)(graphs)
    assert any(graphs[j].num_nodes == 0 for d in (tr, va, te) for j in d.graph_id.tolist())
    for d in (tr, va, te):
        sizes = [graphs[j].num_nodes for j in d.graph_id.tolist()]
        assert torch.bincount(d.batch, minlength=len(sizes)).tolist() == sizes
        assert torch.equal(d.y.view(-1), d.graph_id)
        neg = d.edge_label_index[:, d.edge_label == 0]
        assert bool((d.batch[neg[0]] == d.batch[neg[1]]).all())  # negatives stay inside one graph
    assert check_leakage(tr, va, te, strict=True).ok
    fresh = train_negative_sampler(tr, seed=0).sample()
    assert fresh.size(1) > 0 and bool((tr.batch[fresh[0]] == tr.batch[fresh[1]]).all())


def test_a_bipartite_part_too_small_names_both_sides():
    g = torch.Generator().manual_seed(0)
    ui = torch.stack([torch.randint(0, 6, (20,), generator=g), torch.randint(0, 30, (20,), generator=g)])
    with pytest.raises(ValueError, match=r"val part \(1 source and 6 destination nodes, 0 edges inside it\)"):
        InductiveLinkSplit(0.2, 0.2, seed=0)(Data(edge_index=ui, num_src=6, num_dst=30, num_nodes=36))


def test_check_leakage_names_a_missing_or_malformed_edge_index():
    """Review note (session 24): the orientation is inferred from the message edges, which ran before the
    attributes were checked: a split without edge_index raised AttributeError / IndexError, not the named error."""
    g = torch.Generator().manual_seed(0)
    tr, va, te = TransductiveLinkSplit(seed=0, is_undirected=False)(
        Data(edge_index=torch.randint(0, 30, (2, 100), generator=g), num_nodes=30))
    bad = tr.clone()
    del bad.edge_index
    with pytest.raises(ValueError, match="train_data has no edge_index"):
        check_leakage(bad, va, te)
    bad.edge_index = torch.tensor([0, 1, 2])
    with pytest.raises(ValueError, match=r"train_data.edge_index must be a \[2, E\] tensor .* got \[3\]"):
        check_leakage(bad, va, te)
