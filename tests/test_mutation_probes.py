"""Behaviour the suite did not pin down, found by mutation testing (2026-12-05, sixth review round: 93 single
mutations of gnnkit's code, 26 survived the tests that cover each module). Each test here fails on one surviving
mutant (named in its docstring) and passes on the real code."""
import hashlib
import json
import math
from types import SimpleNamespace

import networkx as nx
import pytest
import torch
import torch.nn.functional as F
from torch_geometric.data import Data

from gnnkit.linkpred import NegativeSampler, TransductiveLinkSplit, check_leakage, negative_sampling
from gnnkit.linkpred.metrics import hits_at_k


# ---------------------------------------------------------------- linkpred
def test_hits_at_k_with_exactly_k_negatives_is_scored():
    """L1: ``neg.numel() < k`` -> ``<=`` refused a K that exactly k negatives can score."""
    assert hits_at_k([1.0], [0.5] * 20, 20) == 1.0


def test_fractional_split_sizes_round_to_nearest():
    """S5: int(round(x * total)) -> int(x * total) truncated 1.9 and 3.8 edges to 1 and 3."""
    ei = torch.stack([torch.arange(19), torch.arange(1, 20)])
    s = TransductiveLinkSplit(num_val=0.1, num_test=0.2, is_undirected=False, seed=0)
    s(Data(edge_index=ei, num_nodes=20))
    assert (s.stats["val_edges"], s.stats["test_edges"]) == (2, 4)


def test_supervision_taking_every_training_edge_is_refused():
    """S8: ``n_sup >= n_train`` -> ``>`` left a train split without message edges."""
    ei = torch.tensor([list(range(10)), [1, 2, 3, 4, 5, 6, 7, 8, 9, 0]])
    with pytest.raises(ValueError, match="no training message edges"):
        TransductiveLinkSplit(num_val=1, num_test=1, disjoint_train_ratio=8, is_undirected=False,
                              seed=0)(Data(edge_index=ei, num_nodes=10))


def test_dense_undirected_sampling_with_self_loops_returns_exactly_k():
    """N2: ``ranks[u <= v]`` -> ``<`` dropped the self-loop pairs and returned 3 of 6."""
    out = negative_sampling(torch.empty(2, 0, dtype=torch.long), 3, 6, force_undirected=True, allow_self_loops=True,
                            seed=0)
    assert out.shape == (2, 6)


def test_degree_weights_count_a_self_loop_once():
    """N5: a self-loop counted twice in the degree-proportional weights."""
    s = NegativeSampler(torch.tensor([[0, 0], [0, 1]]), 3, 1, "degree", force_undirected=True, allow_self_loops=True,
                        seed=0)
    assert s._weights()[0].tolist() == [3.0, 2.0, 1.0]


def test_negative_sampling_refuses_a_destination_id_equal_to_the_node_count():
    """N7: ``hi_dst >= num_dst`` -> ``>`` accepted id N."""
    with pytest.raises(IndexError):
        negative_sampling(torch.tensor([[0], [3]]), 3, 1, seed=0)


def test_half_reciprocal_graph_is_refused_as_almost_symmetric():
    """X2: at exactly 50 % reciprocity the inference must refuse to guess (``>=``), not call it directed."""
    with pytest.raises(ValueError):
        TransductiveLinkSplit(num_val=0.2, num_test=0.2, disjoint_train_ratio=0, seed=0)(
            Data(edge_index=torch.tensor([[0, 1, 1, 2], [1, 0, 2, 3]]), num_nodes=4))


def test_reciprocity_ignores_self_loops():
    """X3: self-loops counted as reciprocated edges (0.6 instead of 0)."""
    from gnnkit.linkpred._graph import reciprocity
    assert reciprocity(torch.tensor([[0, 1, 2, 0, 1], [0, 1, 2, 1, 2]])) == 0.0


# ---------------------------------------------------------------- leakage
@pytest.fixture()
def clean_split():
    ei = torch.randint(0, 40, (2, 200), generator=torch.Generator().manual_seed(0))
    tr, va, te = TransductiveLinkSplit(seed=0, is_undirected=False)(Data(edge_index=ei, num_nodes=40))
    assert check_leakage(tr, va, te, is_undirected=False).ok
    return tr, va, te


def _kinds(report):
    return {e.kind for e in report.errors}


def test_leakage_finds_a_positive_among_its_own_splits_messages(clean_split):
    """K1: a split's positives were checked against earlier splits' messages only, not its own."""
    tr, va, te = clean_split
    p = va.edge_label_index[:, va.edge_label == 1][:, :1]
    va2 = va.clone()
    va2.edge_index = torch.cat([va.edge_index, p], 1)
    rep = check_leakage(tr, va2, te, is_undirected=False)
    assert not rep.ok


def test_leakage_finds_a_training_positive_used_as_a_validation_negative(clean_split):
    """K2: an earlier split's positives were left out of the edges a negative must avoid."""
    tr, va, te = clean_split
    va4 = va.clone()
    va4.edge_index = tr.edge_index
    tp = tr.edge_label_index[:, tr.edge_label == 1][:, :1]
    va4.edge_label_index = torch.cat([va.edge_label_index, tp], 1)
    va4.edge_label = torch.cat([va.edge_label, torch.zeros(1)])
    rep = check_leakage(tr, va4, te, is_undirected=False)
    assert not rep.ok and "negative_is_known_edge" in _kinds(rep)


def test_leakage_finds_a_pair_labelled_both_ways(clean_split):
    """K5: the conflicting-labels count was never exercised."""
    tr, va, te = clean_split
    p = va.edge_label_index[:, va.edge_label == 1][:, :1]
    va3 = va.clone()
    va3.edge_label_index = torch.cat([va.edge_label_index, p], 1)
    va3.edge_label = torch.cat([va.edge_label, torch.zeros(1)])
    assert not check_leakage(tr, va3, te, is_undirected=False).ok


def test_leakage_direction_inference_tie_reads_undirected():
    """K6: one symmetric and one directed message set (a tie) is read as undirected (``>=``)."""
    def E(pairs):
        return torch.tensor(pairs, dtype=torch.long).t().reshape(2, -1)

    def mk(ei, pos, neg):
        return Data(edge_index=ei, edge_label_index=torch.cat([E(pos), E(neg)], 1),
                    edge_label=torch.tensor([1.0] * len(pos) + [0.0] * len(neg)), num_nodes=6)
    r = check_leakage(mk(E([(0, 1), (1, 0)]), [(1, 2)], [(0, 5)]), mk(E([(0, 1), (1, 2)]), [(2, 3)], [(1, 5)]),
                      mk(torch.empty(2, 0, dtype=torch.long), [(3, 4)], [(2, 5)]))
    assert r.undirected is True


# ---------------------------------------------------------------- latent
def test_clustering_mmd_scales_the_emd_by_the_bins_given():
    """LM10: the EMD distance scaling used the default 100 bins whatever ``bins`` was."""
    from gnnkit.latent.metrics import clustering_mmd
    assert clustering_mmd([nx.complete_graph(3)], [nx.path_graph(3)], bins=10).value == pytest.approx(
        2 - 2 * math.exp(-40.5), abs=1e-9)


def test_vq_restarts_only_codes_used_below_the_threshold():
    """Q8: a code used exactly at dead_code_threshold was restarted (``<=``)."""
    from gnnkit.latent.vq import VectorQuantizer
    vq = VectorQuantizer(2, 1, dead_code_threshold=1.0).train()
    with torch.no_grad():
        vq.codebook.copy_(torch.tensor([[0.0], [10.0]]))
    vq(torch.tensor([[0.0], [0.1], [10.0]]))
    assert vq.restart_pending.tolist() == [False, False]


def test_prior_loss_is_the_mean_nll_over_predicted_tokens():
    """P1: dividing by every position (padding too) diluted the prior's NLL."""
    from gnnkit.latent.prior import CodePrior
    torch.manual_seed(0)
    p = CodePrior(num_codes=4, max_nodes=3, d_model=16, layers=1, heads=2, dropout=0.0).eval()
    seqs = [torch.tensor([0, 4, 5, 6, 7]), torch.tensor([0, 2, 8])]
    want = torch.cat([F.cross_entropy(p.logits(s[:-1].unsqueeze(0))[0], s[1:], reduction="none") for s in seqs])
    torch.testing.assert_close(p.loss(seqs), want.mean())


# ---------------------------------------------------------------- ops / nn
def test_segment_softmax_is_stable_for_large_scores_and_max_ties_follow_pyg():
    """O2: the max subtraction of the CPU softmax (NaN at 1000 without it); O4: PyG's extra tie at a maximum of 0."""
    from gnnkit.ops import Graph, segment_reduce, segment_softmax
    g = Graph.from_coo(torch.tensor([0, 1]), torch.tensor([0, 0]), 2, 1)
    torch.testing.assert_close(segment_softmax(g, torch.tensor([[1000.0], [1000.0]])).view(-1),
                               torch.tensor([0.5, 0.5]))
    v = torch.tensor([[0.0], [-1.0]], requires_grad=True)
    segment_reduce(g, v, "max").sum().backward()
    ref = torch.tensor([[0.0], [-1.0]], requires_grad=True)
    torch.zeros(1, 1).scatter_reduce(0, torch.zeros(2, 1, dtype=torch.long), ref, "amax", include_self=False
                                     ).sum().backward()
    torch.testing.assert_close(v.grad, ref.grad)
    assert v.grad.view(-1).tolist() == [0.5, 0.0]


def test_gat_attention_gradients_with_a_negative_slope_below_zero():
    """G1: the backward's leaky-ReLU branches swapped only matter for negative_slope < 0."""
    from gnnkit.ops import Graph, gat_attention
    g = Graph.from_coo(torch.tensor([0, 1, 2, 0]), torch.tensor([1, 1, 0, 2]), 3, 3)
    torch.manual_seed(0)
    x = torch.randn(3, 1, 2, dtype=torch.double, requires_grad=True)
    a = torch.randn(3, 1, dtype=torch.double, requires_grad=True)
    b = torch.randn(3, 1, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, a, b: gat_attention(g, x, a, b, negative_slope=-0.5)[0], (x, a, b))


def test_gin_static_graph_keeps_one_plus_eps():
    """GIN2: the 3-D (static graph) path dropped (1 + eps); it must equal the 2-D call on each batch row."""
    from gnnkit.nn import GINConv
    conv = GINConv(torch.nn.Identity(), eps=0.5)
    ei = torch.tensor([[0, 1], [1, 2]])
    assert conv(torch.ones(1, 3, 1), ei).view(-1).tolist() == [1.5, 2.5, 2.5]
    x = torch.randn(2, 3, 4)
    torch.testing.assert_close(conv(x, ei), torch.stack([conv(x[i], ei) for i in range(2)]))


# ---------------------------------------------------------------- _atomic / integrity
def test_verify_reads_binary_mode_sha256sum_lines(tmp_path):
    """A3: ``sha256sum -b`` writes ``<hash> *<file>``; the ``*`` must be stripped."""
    from gnnkit.integrity import verify
    (tmp_path / "a.txt").write_bytes(b"hello")
    (tmp_path / "SHA256SUMS").write_text(hashlib.sha256(b"hello").hexdigest() + " *a.txt\n")
    assert [f.status for f in verify(tmp_path)] == ["ok"]


def test_verify_names_a_bare_checkpoint_unchecked(tmp_path):
    """IN3: a .pt file without a side file must be listed as unchecked."""
    from gnnkit.integrity import verify
    torch.save({"w": 1}, tmp_path / "model.pt")
    assert ("model.pt", "unchecked") in [(f.path.name, f.status) for f in verify(tmp_path)]


def test_verify_does_not_call_a_foreign_folder_a_broken_split(tmp_path):
    """IN4: a folder with another tool's manifest.json and only train.pt is not a (bad) gnnkit split."""
    from gnnkit.integrity import verify
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "something-else"}))
    torch.save({}, tmp_path / "train.pt")
    assert "bad" not in [f.status for f in verify(tmp_path)]


# ---------------------------------------------------------------- ogb
def test_ogb_mean_std_is_the_sample_standard_deviation():
    """OG2: OGB reports the sample (n - 1) standard deviation."""
    from gnnkit.ogb.runner import _mean_std
    assert _mean_std([1.0, 3.0])["std"] == pytest.approx(math.sqrt(2))


def test_gcn_inverse_sqrt_degree_counts_one_self_loop_per_node():
    """OG3: an input self-loop must not count twice beside the added one."""
    from gnnkit.ogb.tasks import NodeTask
    t = SimpleNamespace(_gcn_dinv=None, data=Data(edge_index=torch.tensor([[0, 1, 1], [1, 0, 1]]), num_nodes=2))
    torch.testing.assert_close(NodeTask.gcn_inv_sqrt_degree(t).view(-1).float(),
                               torch.tensor([2 ** -0.5, 2 ** -0.5]))


def test_metrics_name_infinite_scores():
    """L5 (near-equivalent): sklearn would refuse inf too, but gnnkit names the argument."""
    from gnnkit.linkpred.metrics import roc_auc
    with pytest.raises(ValueError, match="pos_scores"):
        roc_auc([float("inf"), 1.0], [0.0, 0.5])
