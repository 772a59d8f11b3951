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
