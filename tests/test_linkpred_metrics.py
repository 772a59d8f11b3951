"""Metrics: agree with direct computations and refuse OGB's / sklearn's traps."""
import numpy as np
import pytest
import torch

from gnnkit.linkpred import average_precision, evaluate, hits_at_k, mrr, roc_auc


def test_hits_at_k_matches_definition_and_refuses_too_few_negatives():
    g = torch.Generator().manual_seed(0)
    p, n = torch.randn(200, generator=g) + 1, torch.randn(500, generator=g)
    for k in (1, 20, 100):
        kth = n.sort(descending=True).values[k - 1]
        assert hits_at_k(p, n, k) == pytest.approx(float((p > kth).float().mean()))
    # OGB silently returns 1.0 here
    with pytest.raises(ValueError, match="only 10 negatives"):
        hits_at_k(p, n[:10], 20)
    with pytest.raises(ValueError, match="k must"):
        hits_at_k(p, n, 0)
    assert hits_at_k(p.numpy(), n.numpy(), 20) == hits_at_k(p, n, 20)


def test_mrr_numpy_and_torch_agree_with_definition():
    rng = np.random.default_rng(0)
    p = rng.normal(size=50).astype(np.float32)
    n = rng.normal(size=(50, 30)).astype(np.float32)
    rank = (n >= p[:, None]).sum(1) + 1  # no ties in continuous draws
    expect = float((1.0 / rank).mean())
    assert mrr(p, n) == pytest.approx(expect, rel=1e-6)
    assert mrr(torch.from_numpy(p), torch.from_numpy(n)) == pytest.approx(expect, rel=1e-6)
    with pytest.raises(ValueError, match="rows"):
        mrr(p[:10], n)


def test_auc_ap_and_their_traps():
    p, n = torch.tensor([0.9, 0.8, 0.3]), torch.tensor([0.1, 0.4, 0.2, 0.5])
    # pairs with p > n: 0.9,0.8 beat all 4 -> 8; 0.3 beats 0.1, 0.2 -> 2; total 10 of 12
    assert roc_auc(p, n) == pytest.approx(10 / 12)
    # ranking: .9(+) .8(+) .5 .4 .3(+) -> AP = (1 + 1 + 3/5) / 3
    assert average_precision(p, n) == pytest.approx((1 + 1 + 3 / 5) / 3)
    with pytest.raises(ValueError, match="negative"):
        roc_auc(p, torch.tensor([]))
    with pytest.raises(ValueError, match="NaN"):
        average_precision(torch.tensor([float("nan")]), n)
    out = evaluate(p, n, ks=(2, 10))
    assert set(out) == {"auc", "ap", "hits@2"}  # hits@10 needs 10 negatives: left out, not 1.0


def test_float64_scores_keep_their_precision():
    """Review finding: Hits@K and MRR rounded float64 scores to float32, so close scores became ties, which
    Hits@K does not count (saturated sigmoids: 1.0 against OGB's 0.0 on the same float64 input)."""
    from ogb.linkproppred import Evaluator
    pos = torch.sigmoid(torch.tensor([20.0, 21.0, 22.0], dtype=torch.float64))
    neg = torch.sigmoid(torch.tensor([19.0, -3.0], dtype=torch.float64))
    ev = Evaluator(name="ogbl-ddi")
    ev.K = 1
    assert ev.eval({"y_pred_pos": pos, "y_pred_neg": neg})["hits@1"] == 1.0
    assert hits_at_k(pos, neg, 1) == 1.0
    assert hits_at_k(pos.numpy(), neg.numpy(), 1) == 1.0
    assert hits_at_k([0.30000001, 0.30000001], [0.3, 0.1], 1) == 1.0  # Python floats are doubles
    assert mrr(pos, neg[:1].expand(3, 1)) == 1.0


def test_mrr_ties_take_the_mean_rank_and_hits_refuses_a_per_positive_matrix():
    # a positive tied with 2 of its 3 negatives: 0 greater, 2 equal -> rank 1 + 0 + 2/2 = 2
    assert mrr([0.5], [[0.5, 0.5, 0.1]]) == pytest.approx(0.5)
    assert mrr(np.array([0.5]), np.array([[0.5, 0.5, 0.1]])) == pytest.approx(0.5)
    with pytest.raises(ValueError, match=r"\[P, K\].*mrr"):
        hits_at_k([0.9, 0.8], [[0.1, 0.2], [0.3, 0.4]], 1)
    assert hits_at_k(torch.tensor([[0.9], [0.2]]), torch.tensor([[0.5], [0.1]]), 1) == 0.5  # [N, 1] is fine
    with pytest.raises(ValueError, match=r"one score per pair.*\[2, 1, 2\]"):  # was read as 4 shared negatives
        hits_at_k([1.0, 0.5], torch.zeros(2, 1, 2), 1)
    assert hits_at_k([1.0, 0.5], [0.7, 0.2], np.int64(1)) == 0.5  # a numpy int is a k
    with pytest.raises(ValueError, match="k must"):
        hits_at_k([1.0, 0.5], [0.7, 0.2], np.bool_(True))
    with pytest.raises(ValueError, match="inf"):
        roc_auc([float("inf")], [1.0])
