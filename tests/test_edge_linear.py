"""``gnnkit.nn._utils.edge_linear``: a PyG ``Linear`` over edge features, with the weight gradient taken as
``x^T @ grad`` on CPU for 2-15 input features; same values and gradients as ``lin(x)``, and ``lin(x)`` itself
wherever the fast form does not apply."""
import pytest
import torch
from torch_geometric.nn.dense.linear import Linear

from gnnkit.nn._utils import edge_linear


def _graph_names(t: torch.Tensor) -> set:
    """The autograd node names reachable from ``t``."""
    seen, todo = set(), [t.grad_fn]
    while todo:
        fn = todo.pop()
        if fn is None or fn.name() in seen:
            continue
        seen.add(fn.name())
        todo.extend(f for f, _ in fn.next_functions)
    return seen


@pytest.mark.parametrize("d", [1, 2, 4, 15, 16, 40])
@pytest.mark.parametrize("bias", [True, False])
def test_matches_linear(d, bias):
    torch.manual_seed(d)
    lin = Linear(d, 24, bias=bias)
    x = torch.randn(3001, d, dtype=torch.float64, requires_grad=True)
    lin = lin.double()
    out = edge_linear(lin, x)
    ref = lin(x)
    torch.testing.assert_close(out, ref)
    g = torch.randn_like(ref)
    grads = torch.autograd.grad(out, [x, *lin.parameters()], g)
    refs = torch.autograd.grad(ref, [x, *lin.parameters()], g)
    for a, b in zip(grads, refs):
        torch.testing.assert_close(a, b)
    # the row-major weight copy (CloneBackward0; CatBackward0 with the bias row) marks the fast form, used for
    # 2-15 inputs only
    assert bool({"CloneBackward0", "CatBackward0"} & _graph_names(out)) == (1 < d < 16)


def test_float32_gradients_close_to_exact():
    """float32, 50k rows: the weight and bias gradients (summed by MKL's product, in another order than
    F.linear's) within float32 accumulation error of the float64 values, as F.linear's are."""
    torch.manual_seed(0)
    lin = Linear(4, 64)
    x = torch.randn(50_000, 4)
    g = torch.randn(50_000, 64)
    exact = torch.autograd.grad(lin.double()(x.double()), [lin.weight, lin.bias], g.double())
    lin = lin.float()
    fast = torch.autograd.grad(edge_linear(lin, x), [lin.weight, lin.bias], g)
    plain = torch.autograd.grad(lin(x), [lin.weight, lin.bias], g)
    for f, p, e in zip(fast, plain, exact):
        torch.testing.assert_close(f.double(), e, rtol=1e-4, atol=2e-3)
        torch.testing.assert_close(p.double(), e, rtol=1e-4, atol=2e-3)


def _fast(out: torch.Tensor) -> bool:
    return bool({"CloneBackward0", "CatBackward0"} & _graph_names(out)) if out.grad_fn is not None else False


def test_falls_back_to_the_module():
    """Whatever lin(x) would do beyond F.linear runs: lazy initialisation, hooks (forward, backward, global),
    a subclass's or an instance's own forward, a quantized module; and with no weight gradient to take
    (no_grad, frozen weights) the plain call is the cheaper one."""
    torch.manual_seed(0)
    x = torch.randn(10, 4)
    lazy = Linear(-1, 8)  # lazy weights: the module's own call initialises them
    out = edge_linear(lazy, x)
    assert out.shape == (10, 8) and lazy.in_channels == 4
    lin = Linear(4, 8)
    seen = []
    h = lin.register_forward_hook(lambda mod, inp, res: seen.append("fwd"))
    out = edge_linear(lin, x)
    assert seen == ["fwd"] and not _fast(out)
    h.remove()
    h = lin.register_full_backward_hook(lambda mod, gi, go: seen.append("bwd"))
    edge_linear(lin, x.requires_grad_()).sum().backward()
    assert seen == ["fwd", "bwd"]
    h.remove()
    x = x.detach()
    h = torch.nn.modules.module.register_module_forward_hook(lambda mod, inp, res: seen.append("global"))
    try:
        edge_linear(lin, x)
    finally:
        h.remove()
    assert seen[-1] == "global"
    assert _fast(edge_linear(lin, x))  # no hook left: the fast form

    class Scaled(Linear):
        def forward(self, x):
            return 2 * super().forward(x)

    sc = Scaled(4, 8)
    torch.testing.assert_close(edge_linear(sc, x), sc(x))
    tl = torch.nn.Linear(4, 8)
    tl.forward = lambda x: torch.zeros(x.size(0), 8)
    assert edge_linear(tl, x).abs().sum() == 0
    q = torch.ao.quantization.quantize_dynamic(torch.nn.Sequential(torch.nn.Linear(4, 8)), {torch.nn.Linear},
                                               dtype=torch.qint8)[0]
    torch.testing.assert_close(edge_linear(q, x), q(x))
    with torch.no_grad():
        assert edge_linear(lin, x).grad_fn is None
    lin.requires_grad_(False)
    xr = x.clone().requires_grad_()
    out = edge_linear(lin, xr)
    assert not _fast(out)
    torch.testing.assert_close(torch.autograd.grad(out.sum(), xr)[0], torch.autograd.grad(lin(xr).sum(), xr)[0])
    three_d = edge_linear(Linear(4, 8), torch.randn(2, 5, 4, requires_grad=True))
    assert three_d.shape == (2, 5, 8)


def test_a_bias_of_another_dtype_fails_as_the_module_does():
    lin = Linear(4, 8)
    lin.bias.data = lin.bias.data.double()
    with pytest.raises(RuntimeError) as got:
        edge_linear(lin, torch.randn(6, 4))
    with pytest.raises(RuntimeError) as want:
        lin(torch.randn(6, 4))
    assert str(got.value) == str(want.value)


def test_gine_gradients_match_pyg():
    """GINEConv (which maps edge features through edge_linear) against PyG's, same weights, float64."""
    from torch.nn import Linear as TLinear, ReLU, Sequential
    from torch_geometric.nn import GINEConv as PyGGINE

    import gnnkit.nn as gnn

    torch.manual_seed(3)
    N, E, F, D = 60, 400, 8, 3
    ei = torch.randint(0, N, (2, E))
    x = torch.randn(N, F, dtype=torch.float64, requires_grad=True)
    ea = torch.randn(E, D, dtype=torch.float64)
    mine = gnn.GINEConv(Sequential(TLinear(F, F), ReLU(), TLinear(F, F)), edge_dim=D).double()
    theirs = PyGGINE(Sequential(TLinear(F, F), ReLU(), TLinear(F, F)), edge_dim=D).double()
    theirs.load_state_dict(mine.state_dict())
    a, b = mine(x, ei, ea), theirs(x, ei, ea)
    torch.testing.assert_close(a, b)
    g = torch.randn_like(a)
    ga = torch.autograd.grad(a, [x, mine.lin.weight, mine.lin.bias], g)
    gb = torch.autograd.grad(b, [x, theirs.lin.weight, theirs.lin.bias], g)
    for u, v in zip(ga, gb):
        torch.testing.assert_close(u, v)
