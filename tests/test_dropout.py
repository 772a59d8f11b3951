import pytest
import torch
import torch.nn.functional as F

from gnnkit.nn.dropout import dropout


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_drop_rate_scale_and_gradient(p):
    torch.manual_seed(0)
    x = torch.rand(400, 257) + 0.5  # odd width: the 4-per-word mask must cover every element
    x.requires_grad_(True)
    y = dropout(x, p, True)
    dropped = y == 0
    assert abs(float(dropped.float().mean()) - p) < 0.01
    scale = y[~dropped] / x.detach()[~dropped]
    assert torch.allclose(scale, torch.full_like(scale, 1 / (1 - p)), rtol=1e-3)
    # unbiased: E[y] = x
    assert abs(float(y.mean() / x.mean()) - 1) < 0.02
    g = torch.randn_like(y)
    (gx,) = torch.autograd.grad(y, x, g)
    assert torch.equal(gx == 0, dropped | (g == 0))
    assert torch.allclose(gx[~dropped], g[~dropped] * scale[0], rtol=1e-5)


def test_identity_cases_and_bad_p():
    x = torch.randn(5, 3)
    assert dropout(x, 0.5, training=False) is x
    assert dropout(x, 0.0, True) is x
    assert torch.equal(dropout(x, 1.0, True), F.dropout(x, 1.0, True))
    with pytest.raises(ValueError, match="p must be in"):
        dropout(x, 1.5)


def test_seeded_and_non_contiguous():
    x = torch.randn(64, 33).t()  # non-contiguous
    torch.manual_seed(3)
    a = dropout(x, 0.3)
    torch.manual_seed(3)
    b = dropout(x, 0.3)
    assert torch.equal(a, b) and a.shape == x.shape
    kept = a != 0
    assert torch.allclose(a[kept], x[kept] / (1 - round(0.3 * 2 ** 15) / 2 ** 15))
