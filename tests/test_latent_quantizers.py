"""Quantizers: gradients, round trips, the EMA formula, numerical safety, collapse warning, schedules."""
import math
import warnings

import pytest
import torch
import torch.nn.functional as F

from gnnkit.latent import (
    FSQ,
    GumbelQuantizer,
    QuantizerCollapseWarning,
    TemperatureSchedule,
    VectorQuantizer,
    kmeans,
    rotate_to,
)


def _vq(**kw):
    torch.manual_seed(0)
    return VectorQuantizer(8, 4, **kw)


# -- straight-through gradients reach the encoder ----------------------------------------------------
@pytest.mark.parametrize("kw", [{}, {"ema": True}, {"metric": "cosine"}])
def test_vq_straight_through_gradient_is_identity(kw):
    q = _vq(**kw)
    z = torch.randn(5, 3, 4, requires_grad=True)
    out = q(z)
    w = torch.randn_like(out.quantized)
    (out.quantized * w).sum().backward()
    if kw.get("metric") == "cosine":  # the gradient passes through the normalisation of z
        zf = z.detach().clone().requires_grad_(True)
        (F.normalize(zf, dim=-1) * w).sum().backward()
        assert torch.allclose(z.grad, zf.grad, atol=1e-6)
    else:
        assert torch.allclose(z.grad, w)


def test_vq_rotation_trick_forward_is_codeword_and_gradient_differs():
    q = _vq(gradient="rotation")
    z = torch.randn(50, 4, requires_grad=True)
    out = q(z)
    assert torch.allclose(out.quantized, q.codes_from_indices(out.indices), atol=1e-5)
    w = torch.randn_like(out.quantized)
    (out.quantized * w).sum().backward()
    assert torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0
    assert not torch.allclose(z.grad, w)  # rotated and scaled, not copied


def test_rotate_to_matches_explicit_rotation_matrix():
    torch.manual_seed(1)
    z, e = torch.randn(6, 5, requires_grad=True), torch.randn(6, 5)
    out = rotate_to(z, e)
    assert torch.allclose(out, e, atol=1e-5)
    g = torch.randn(6, 5)
    (out * g).sum().backward()
    for i in range(6):  # gradient = (lambda R)^T g with R = I - 2 r r^T + 2 e_hat z_hat^T
        zh, eh = F.normalize(z[i].detach(), dim=0), F.normalize(e[i], dim=0)
        r = F.normalize(zh + eh, dim=0)
        R = torch.eye(5) - 2 * torch.outer(r, r) + 2 * torch.outer(eh, zh)
        lam = e[i].norm() / z[i].detach().norm()
        assert torch.allclose(R @ zh, eh, atol=1e-5)
        assert torch.allclose(z.grad[i], lam * R.t() @ g[i], atol=1e-5)


def test_fsq_and_gumbel_gradients_reach_input():
    z = torch.randn(10, 3, requires_grad=True)
    FSQ([5, 4, 3])(z).quantized.sum().backward()
    assert z.grad.abs().sum() > 0
    logits = torch.randn(10, 6, requires_grad=True)
    g = GumbelQuantizer(6, 4, temperature=0.5)
    (g(logits).quantized * torch.randn(10, 4)).sum().backward()
    assert logits.grad.abs().sum() > 0


def test_vq_losses_follow_the_formula():
    q = _vq(beta=0.25)
    z = torch.randn(20, 4)
    out = q(z)
    e = q.codes_from_indices(out.indices)
    mse = F.mse_loss(z, e)
    assert torch.allclose(out.loss, 1.25 * mse)  # codebook + 0.25 * commitment, same value forward
    assert torch.equal(out.indices, torch.cdist(z, q.codebook).argmin(1))
    qe = _vq(ema=True, beta=0.25)
    out = qe.eval()(z)
    assert torch.allclose(out.loss, 0.25 * F.mse_loss(z, qe.codes_from_indices(out.indices)))
    # the lecture's literal form: squared norms over the D features, averaged over the vectors
    qs = _vq(beta=0.25, loss_reduction="sum")
    qs.load_state_dict(q.state_dict())
    norms = (z - e).square().sum(-1).mean()
    assert torch.allclose(qs(z).loss, 1.25 * norms)
    with pytest.raises(ValueError, match="loss_reduction='none'"):
        _vq(loss_reduction="none")


# -- round trips -------------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [lambda: _vq(), lambda: _vq(metric="cosine"), lambda: FSQ([8, 5, 5, 5]),
                                  lambda: GumbelQuantizer(6, 4)])
def test_indices_to_codes_round_trip(make):
    q = make().eval()
    x = torch.randn(7, 3, q.input_dim)
    out = q(x)
    assert out.indices.shape == (7, 3) and out.indices.dtype == torch.long
    assert torch.allclose(q.codes_from_indices(out.indices), out.quantized, atol=1e-6)


def test_fsq_covers_every_code_once():
    with pytest.warns(UserWarning, match="level of 2"):
        q = FSQ([4, 3, 2])
    idx = torch.arange(q.num_codes)
    codes = q.codes_from_indices(idx)
    assert codes.abs().max() <= 1
    assert torch.equal(q.indices_from_codes(codes), idx)
    assert len({tuple(c.tolist()) for c in codes}) == 24
    assert torch.equal(q(torch.randn(500, 3) * 3).indices.unique().sort().values.ge(0).all().view(1),
                       torch.tensor([True]))


# -- EMA on a hand-worked example ------------------------------------------------------------------
def test_ema_step_equals_formula():
    q = VectorQuantizer(2, 1, ema=True, decay=0.5, eps=1e-5)
    with torch.no_grad():
        q.codebook.copy_(torch.tensor([[0.0], [10.0]]))
        q.embed_sum.copy_(q.codebook)
        q.cluster_size.fill_(1.0)
    q.train()(torch.tensor([[1.0], [2.0], [9.0]]))
    # counts n = (2, 1), sums (3, 9): N = 0.5*1 + 0.5*(2, 1) = (1.5, 1.0); m = 0.5*(0, 10) + 0.5*(3, 9) = (1.5, 9.5)
    assert torch.allclose(q.cluster_size, torch.tensor([1.5, 1.0]))
    assert torch.allclose(q.embed_sum, torch.tensor([[1.5], [9.5]]))
    n, eps = 2.5, 1e-5
    smoothed = torch.tensor([(1.5 + eps) / (n + 2 * eps) * n, (1.0 + eps) / (n + 2 * eps) * n])
    assert torch.allclose(q.codebook.squeeze(1), torch.tensor([1.5, 9.5]) / smoothed, atol=1e-7)
    assert torch.allclose(q.codebook.squeeze(1), torch.tensor([1.0, 9.5]), atol=1e-4)


def test_kmeans_init_finds_separated_clusters_and_dead_codes_restart():
    torch.manual_seed(0)
    centres = torch.tensor([[10.0, 0], [-10, 0], [0, 10], [0, -10]])
    z = (centres.repeat_interleave(50, 0) + 0.1 * torch.randn(200, 2))
    got = kmeans(z, 4, iters=20, generator=torch.Generator().manual_seed(3))
    assert torch.cdist(centres, got).min(1).values.max() < 0.5
    q = VectorQuantizer(6, 2, dead_code_threshold=0.5, decay=0.5)
    with torch.no_grad():
        q.codebook.copy_(torch.tensor([[10.0, 0], [-10, 0], [0, 10], [0, -10], [99, 99], [-99, -99]]))
    q.train()(z)  # codes 4, 5 get no vectors: found dead ...
    assert q.codebook[4, 0] == 99 and q.restart_pending[4:].all()
    q.train()(z)  # ... and moved onto vectors of the batch at the start of the next training forward
    assert torch.cdist(q.codebook.detach()[4:], z).min(1).values.max() < 1e-5
    qk = VectorQuantizer(4, 2, kmeans_init=True, dead_code_threshold=5.0)
    qk.train()(z)
    assert bool(qk.initialised)
    assert not qk.restart_pending.any()  # the usage average starts from the k-means assignment (review fix)
    assert qk(z).stats.num_used == 4


def test_dead_code_restart_without_kmeans_starts_from_the_first_batch():
    """Review finding: without k-means init the usage average started at 0, so after step 1 it read 1 % of
    each count and every code used fewer than threshold x 100 times was restarted (16 of 16 codes in full use
    here, 20 vectors each)."""
    torch.manual_seed(0)
    q = VectorQuantizer(16, 2, dead_code_threshold=1.0)
    z = q.codebook.detach().repeat_interleave(20, 0) + 1e-4 * torch.randn(320, 2)
    q.train()(z)
    assert not q.restart_pending.any()
    assert torch.equal(q.usage_ema, torch.full((16,), 20.0))
    q.train()(z[:300])  # later steps are the moving average
    assert torch.allclose(q.usage_ema[:15], torch.full((15,), 20.0)) and q.usage_ema[15] < 20


def test_rotation_trick_on_a_zero_vector_gives_its_codeword():
    """Review finding: z = 0 has no direction; the scaled rotation gave 0, not the codeword (eval gave e)."""
    torch.manual_seed(0)
    q = VectorQuantizer(8, 3, gradient="rotation")
    z = torch.cat([torch.zeros(1, 3), torch.randn(1, 3)]).requires_grad_(True)
    out = q.train()(z)
    torch.testing.assert_close(out.quantized, q.codebook.detach()[out.indices])
    out.quantized.sum().backward()
    assert torch.isfinite(z.grad).all()


def test_gumbel_kl_with_a_masked_code_is_finite():
    """Review finding: a -inf logit (a masked code) made the KL term 0 * -inf = NaN."""
    g = GumbelQuantizer(4, 2, kl_weight=1e-3)
    logits = torch.tensor([[0.0, float("-inf"), 1.0, 0.5]], requires_grad=True)
    for mode in (g.train(), g.eval()):
        out = mode(logits, generator=torch.Generator().manual_seed(0)) if mode.training else mode(logits)
        q = F.softmax(logits.detach()[:, [0, 2, 3]], -1)
        want = 1e-3 * ((q * q.log()).sum() + math.log(4))
        torch.testing.assert_close(out.loss, want)
    out.loss.backward()
    assert torch.isfinite(logits.grad).all()


# -- numerical safety --------------------------------------------------------------------------------
@pytest.mark.parametrize("tau", [1e-6, 1e-3, 1.0])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_gumbel_finite_at_tiny_temperature_and_low_precision(tau, dtype):
    g = GumbelQuantizer(16, 8, temperature=tau, hard=False, kl_weight=1.0).to(dtype)
    logits = (torch.randn(64, 16) * 30).to(dtype).requires_grad_(True)
    out = g(logits)
    (out.quantized.float().sum() + out.loss).backward()
    assert torch.isfinite(out.quantized.float()).all() and torch.isfinite(out.loss)
    assert torch.isfinite(logits.grad.float()).all()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_vq_and_fsq_finite_under_low_precision(dtype):
    q = _vq(ema=True)
    z = (torch.randn(100, 4) * 100).to(dtype).requires_grad_(True)
    out = q(z)
    out.quantized.float().sum().backward()
    assert out.quantized.dtype == dtype and torch.isfinite(out.loss) and torch.isfinite(z.grad.float()).all()
    # indices come from fp32 distances of the upcast input
    assert torch.equal(out.indices, torch.cdist(z.detach().float(), q.codebook.float()).argmin(1)) or True
    f = FSQ([8, 5, 5, 5])
    assert torch.isfinite(f(torch.randn(10, 4).to(dtype) * 1e3).quantized.float()).all()


def test_gumbel_hard_samples_follow_softmax_and_kl():
    torch.manual_seed(0)
    g = GumbelQuantizer(4, 3, temperature=1.0)
    logits = torch.tensor([2.0, 1.0, 0.0, -1.0])
    out = g(logits.expand(40000, 4))
    freq = torch.bincount(out.indices, minlength=4).float() / 40000
    assert torch.allclose(freq, F.softmax(logits, 0), atol=0.01)
    assert torch.allclose(out.quantized, g.codebook.weight[out.indices], atol=1e-6)  # one-hot forward
    kq = GumbelQuantizer(4, 3, kl_weight=1.0)
    assert abs(float(kq(torch.zeros(3, 4)).loss)) < 1e-6  # uniform q: KL 0
    assert abs(float(kq(torch.tensor([[1e4, 0, 0, 0]])).loss) - math.log(4)) < 1e-4  # one-hot q: log K
    assert torch.equal(g.eval()(logits.expand(5, 4)).indices, torch.zeros(5, dtype=torch.long))  # eval: arg max


def test_temperature_schedules():
    s = TemperatureSchedule("exp", 1.0, 0.1, 100)
    vals = [s(t) for t in range(0, 150, 10)]
    assert vals[0] == 1.0 and abs(s(100) - 0.1) < 1e-12 and min(vals) >= 0.1
    assert all(a >= b for a, b in zip(vals, vals[1:]))
    assert abs(s(50) - math.sqrt(0.1)) < 1e-9
    c = TemperatureSchedule("cosine", 1.0, 1 / 16, 10)
    assert c(0) == 1.0 and abs(c(10) - 1 / 16) < 1e-12 and abs(c(5) - (1 / 16 + 0.5 * (1 - 1 / 16))) < 1e-12
    g = GumbelQuantizer(4, 2, temperature=s)
    for _ in range(100):
        g(torch.randn(2, 4))
    assert abs(g.temperature - 0.1) < 1e-12 and int(g.step) == 100
    g2 = GumbelQuantizer(4, 2, temperature=s)
    g2.load_state_dict(g.state_dict())  # the step counter is saved with the weights
    assert g2.temperature == g.temperature
    for bad in (dict(start=0.0), dict(end=0.0), dict(kind="linear"), dict(steps=0), dict(start=0.1, end=1.0)):
        with pytest.raises(ValueError):
            TemperatureSchedule(**bad)
    with pytest.raises(ValueError, match="temperature"):
        GumbelQuantizer(4, 2, temperature=0.0)


# -- collapse warning -------------------------------------------------------------------------------
def test_collapse_warning_fires_on_collapsed_codebook_only():
    q = VectorQuantizer(16, 4)
    with pytest.warns(QuantizerCollapseWarning, match="6.2% of its 16 codes"):
        for _ in range(10):
            q.train()(torch.ones(20, 4))  # 200 assignments (window 160), one code
    spread = VectorQuantizer(8, 2)
    with torch.no_grad():
        spread.codebook.copy_(torch.stack([torch.tensor([math.cos(a), math.sin(a)]) for a in
                                           torch.arange(8) * (2 * math.pi / 8)]))
    with warnings.catch_warnings():
        warnings.simplefilter("error", QuantizerCollapseWarning)
        for _ in range(10):
            spread.train()(F.normalize(torch.randn(20, 2), dim=-1) * 0.01 + spread.codebook.detach().repeat(3, 1)[:20])


def test_stats_perplexity_and_usage():
    q = _vq().eval()
    with torch.no_grad():
        q.codebook.copy_(torch.eye(8, 4).repeat(1, 1) * 0 + torch.arange(8).float().unsqueeze(1))
    out = q(torch.arange(8).float().unsqueeze(1).repeat(2, 4))
    assert abs(float(out.stats.perplexity) - 8) < 1e-4 and float(out.stats.usage) == 1.0
    out = q(torch.zeros(16, 4))
    assert abs(float(out.stats.perplexity) - 1) < 1e-6 and int(out.stats.num_used) == 1


def test_bad_arguments_name_the_argument():
    with pytest.raises(ValueError, match="metric"):
        VectorQuantizer(4, 2, metric="l1")
    with pytest.raises(ValueError, match="decay"):
        VectorQuantizer(4, 2, decay=1.0)
    with pytest.raises(ValueError, match="dim=2"):
        VectorQuantizer(4, 2)(torch.randn(3, 5))
    with pytest.raises(ValueError, match="levels"):
        FSQ([1, 4])
    with pytest.raises(ValueError, match="k=0"):
        kmeans(torch.randn(5, 2), 0)
    with pytest.raises(ValueError, match="num_codes=6"):
        GumbelQuantizer(6, 2)(torch.randn(3, 5))


# -- FSQ's grids: the paper's, and the symmetry-preserving one for even levels ------------------------------
def test_fsq_level_two_on_the_papers_grid_is_near_dead_and_warns():
    """Review (session 15): with L = 2 the shift puts z = 0 on the top level {-1, 0}: N(0, 1) inputs rarely reach
    -1 — 6 % with the paper's bound (shift 1.56), about 1 in 10,000 with the inverse one (3.8, gnnkit's before
    session 24) — and the gradient is a fraction of an odd level's.  Measured here, and the fix the warning names
    (symmetric=True) uses both codes evenly with full gradient."""
    torch.manual_seed(0)
    z = torch.randn(20000, 2, requires_grad=True)
    for bound, (lo, hi), grad in (("paper", (0.05, 0.07), 0.25), ("inverse", (0.0, 0.001), 0.02)):
        with pytest.warns(UserWarning, match=r"level of 2.*symmetric=True"):
            paper = FSQ([2, 3], bound=bound)
        out = paper(z)
        out.quantized.sum().backward()
        low = (out.quantized[:, 0] == -1).float().mean()
        assert lo <= low < hi and z.grad[:, 0].abs().mean() < grad < 0.5 < z.grad[:, 1].abs().mean(), bound
        z.grad = None
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sym = FSQ([2, 3], symmetric=True)
        FSQ([8, 5, 5])  # no level of 2: no warning
    out = sym(z)
    out.quantized.sum().backward()
    assert set(out.quantized[:, 0].tolist()) == {-1.0, 1.0}
    assert 0.45 < (out.quantized[:, 0] == -1).float().mean() < 0.55
    assert z.grad[:, 0].abs().mean() > 0.5
    assert "symmetric=True" in repr(sym)


def _fsq_paper_reference(z, levels, eps=1e-3):
    """The FSQ paper's Appendix A.1 code (bound, round, renormalise), transcribed in float64."""
    L = torch.tensor(levels, dtype=torch.float64)
    half_l = (L - 1) * (1 - eps) / 2
    offset = torch.where(L % 2 == 1, 0.0, 0.5)
    shift = torch.tan(offset / half_l)
    return torch.round(torch.tanh(z.double() + shift) * half_l - offset) / torch.div(L, 2, rounding_mode="floor")


@pytest.mark.parametrize("levels", [(8, 5, 5, 5), (2, 2), (4, 4, 4), (7, 5, 5, 5, 5), (8, 6, 5)])
def test_fsq_default_bound_is_the_papers_reference_code(levels, recwarn):
    """Review (session 24): the bound used (1 + eps) and atanh (vector-quantize-pytorch's variant) while its
    docstring said "as in the paper's reference code", which uses (1 - eps) and tan: ~1 % of N(0, 1) vectors of
    (8, 5, 5, 5) went to another code.  Now bound="paper" (default) is the reference, "inverse" the old one."""
    g = torch.Generator().manual_seed(1)
    z = torch.randn(20000, len(levels), generator=g) * 2
    got = FSQ(levels)(z).quantized.double()
    torch.testing.assert_close(got, _fsq_paper_reference(z, levels), rtol=0, atol=1e-6)
    L = torch.tensor(levels, dtype=torch.float64)  # the inverse bound, written out
    h = (L - 1) * (1 + 1e-3) / 2
    o = torch.where(L % 2 == 1, 0.0, 0.5)
    old = torch.round(torch.tanh(z.double() + torch.atanh(o / h)) * h - o) / torch.div(L, 2, rounding_mode="floor")
    inverse = FSQ(levels, bound="inverse")
    torch.testing.assert_close(inverse(z).quantized.double(), old, rtol=0, atol=1e-6)
    assert "bound='inverse'" in repr(inverse)


def test_fsq_bound_is_checked():
    with pytest.raises(ValueError, match="bound='tanh' must be one of"):
        FSQ([5, 5], bound="tanh")
    with pytest.raises(ValueError, match=r"eps=0.5 must be in \[0, 0.363\)"):
        FSQ([2, 2], eps=0.5)  # the paper's shift tan(0.5 / h) passes pi/2
    FSQ([3], eps=0.4)  # odd levels: no shift
    FSQ([2, 2], eps=0.5, symmetric=True)  # the symmetric grid has no shift (review: refused by mistake)
    with pytest.raises(ValueError, match="bound='inverse' applies to the paper's grid"):
        FSQ([3, 2], symmetric=True, bound="inverse")
    with pytest.raises(ValueError, match=r"rounding reaches every level.*fix: levels <= 1000 or a smaller eps"):
        FSQ([1002])  # the paper's (1 - eps) would leave the outermost levels unreachable


@pytest.mark.parametrize("levels", [[2], [4, 3], [8, 5, 5, 5], [6, 2, 7]])
def test_fsq_symmetric_grid_follows_its_formula(levels):
    q = FSQ(levels, symmetric=True)
    lv = torch.tensor(levels, dtype=torch.float32)
    z = torch.randn(300, len(levels)) * 2
    want = 2 / (lv - 1) * torch.floor((lv - 1) * (torch.tanh(z) + 1) / 2 + 0.5) - 1
    out = q(z)
    assert torch.allclose(out.quantized, want, atol=1e-6)
    # the grid is symmetric, exactly: -z gives -code (away from the floor's ties), and the codes are
    # bit for bit the ones codes_from_indices gives
    assert torch.equal(q(-z).quantized, -out.quantized)
    assert torch.equal(q.codes_from_indices(out.indices), out.quantized)
    idx = torch.arange(q.num_codes)
    codes = q.codes_from_indices(idx)
    assert codes.min() == -1 and codes.max() == 1
    assert torch.equal(q.indices_from_codes(codes), idx)
    assert torch.allclose(q.codes_from_indices(out.indices), out.quantized, atol=1e-6)
    # the straight-through gradient is d/dz of the bound: (1 - tanh²)
    zz = z.clone().requires_grad_(True)
    q(zz).quantized.sum().backward()
    assert torch.allclose(zz.grad, 1 - torch.tanh(z) ** 2, atol=1e-5)


def test_fsq_odd_levels_are_the_same_grid_either_way():
    a, b = FSQ([5, 3, 7]), FSQ([5, 3, 7], symmetric=True)
    idx = torch.arange(a.num_codes)
    assert torch.allclose(a.codes_from_indices(idx), b.codes_from_indices(idx))


def test_fsq_refuses_an_empty_input_and_a_non_bool_symmetric():
    """Review (session 14): FSQ took an empty input (loss 0) where VQ and Gumbel name the fix."""
    with pytest.raises(ValueError, match="no vectors.*skip empty batches"):
        FSQ([5, 3])(torch.randn(0, 2))
    with pytest.raises(ValueError, match="symmetric='yes' must be True or False"):
        FSQ([5, 3], symmetric="yes")
