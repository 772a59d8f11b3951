"""``gnnkit.ops.bias_add``: a layer's bias, whose gradient under ``torch.compile`` is aten's column sum (the
registered ``gnnkit::bias_grad``) instead of inductor's; eager: in place where allowed, the same numbers."""
import pytest
import torch
from torch._dynamo.testing import AotEagerAndRecordGraphs

from gnnkit.nn import GATConv, GCNConv, MPNNConv, SAGEConv
from gnnkit.ops import Graph, bias_add


def test_eager_in_place_only_when_asked_and_dtype_kept():
    out, b = torch.randn(5, 3), torch.randn(3)
    ptr = out.data_ptr()
    r = bias_add(out, b, inplace=True)
    assert r.data_ptr() == ptr
    r2 = bias_add(torch.randn(5, 3), b)
    assert r2.data_ptr() != ptr
    low = torch.randn(5, 3, dtype=torch.bfloat16)
    r3 = bias_add(low, b, inplace=True)  # promotes: a new float32 tensor, low untouched
    assert r3.dtype == torch.float32 and r3.data_ptr() != low.data_ptr()


@pytest.mark.parametrize("shape", [(7, 4), (3, 6, 4), (0, 4)])
def test_compiled_gradients_match_eager_through_the_registered_op(shape):
    g = torch.Generator().manual_seed(0)
    out = torch.randn(*shape, generator=g, requires_grad=True)
    bias = torch.randn(4, generator=g, requires_grad=True)
    w = torch.randn(*shape, generator=g)

    def f(out, bias):
        return (bias_add(out * 2, bias) * w).sum()

    want = torch.autograd.grad(f(out, bias), (out, bias))
    torch._dynamo.reset()
    rec = AotEagerAndRecordGraphs()
    got = torch.autograd.grad(torch.compile(f, fullgraph=True, backend=rec)(out, bias), (out, bias))
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b)
    code = "".join(gm.code for gm in rec.bw_graphs)
    assert "gnnkit.bias_grad" in code and "aten.sum" not in code
    torch._dynamo.reset()
    got = torch.autograd.grad(torch.compile(f, fullgraph=True)(out, bias), (out, bias))  # inductor
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b)


def test_a_broadcast_or_frozen_bias_stays_a_plain_sum():
    """A bias that is not one value per last-dim channel, or needs no gradient: the plain traced sum."""
    out = torch.randn(5, 4, requires_grad=True)
    for bias in (torch.randn(1, requires_grad=True), torch.randn(4)):
        torch._dynamo.reset()
        rec = AotEagerAndRecordGraphs()
        y = torch.compile(lambda o, b: bias_add(o, b).sum(), fullgraph=True, backend=rec)(out, bias)
        y.backward()
        assert "gnnkit.bias_grad" not in "".join(gm.code for gm in rec.bw_graphs)
        if bias.requires_grad:
            torch.testing.assert_close(bias.grad, torch.tensor([20.0]))


def test_compiled_gcn_takes_its_bias_gradient_from_aten():
    ei = torch.randint(0, 30, (2, 120), generator=torch.Generator().manual_seed(1))
    graph = Graph.build(ei, num_nodes=30)
    conv = GCNConv(8, 8)
    x = torch.randn(30, 8, requires_grad=True)
    conv(x, graph).sum().backward()
    want = conv.bias.grad.clone()
    conv.bias.grad = None
    torch._dynamo.reset()
    rec = AotEagerAndRecordGraphs()
    compiled = torch.compile(conv, fullgraph=True, backend=rec)
    for _ in range(2):  # the second call reads the graph state the first one kept
        conv.bias.grad = None
        compiled(x, graph).sum().backward()
    torch.testing.assert_close(conv.bias.grad, want)
    assert "gnnkit.bias_grad" in rec.bw_graphs[-1].code


@pytest.mark.parametrize("make", [lambda: SAGEConv(8, 8), lambda: GATConv(8, 4, heads=2),
                                  lambda: MPNNConv(8, edge_dim=3, num_steps=1)], ids=["sage", "gat", "mpnn"])
def test_compiled_layers_take_their_bias_gradients_from_aten(make):
    """The layers' own biases and their linear maps' biases (SAGE's lin_l, MPNN's lin_i and edge-wise lin_out): under
    torch.compile through gnnkit.bias_grad, with eager's gradients.  (Not GATv2: a compiled two-layer GATv2 model
    was 1.5x slower with it.)"""
    g = torch.Generator().manual_seed(2)
    graph = Graph.build(torch.randint(0, 30, (2, 120), generator=g), num_nodes=30)
    torch.manual_seed(0)
    conv = make()
    x = torch.randn(30, 8, generator=g, requires_grad=True)
    extra = (torch.randn(120, 3, generator=g),) if isinstance(conv, MPNNConv) else ()
    conv(x, graph, *extra).pow(2).sum().backward()
    want = [p.grad.clone() for p in conv.parameters()] + [x.grad.clone()]
    torch._dynamo.reset()
    rec = AotEagerAndRecordGraphs()
    compiled = torch.compile(conv, fullgraph=True, backend=rec)
    for _ in range(2):
        conv.zero_grad()
        x.grad = None
        compiled(x, graph, *extra).pow(2).sum().backward()
    for a, b in zip([p.grad for p in conv.parameters()] + [x.grad], want):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    code = rec.bw_graphs[-1].code
    assert code.count("gnnkit.bias_grad") >= (2 if isinstance(conv, MPNNConv) else 1)  # MPNN: lin_i, lin_out


@pytest.mark.parametrize("make", [lambda: SAGEConv(8, 4), lambda: MPNNConv(8, edge_dim=3, num_steps=1)],
                         ids=["sage", "mpnn"])
def test_compiled_linear_maps_under_autocast_keep_eagers_dtype_and_numbers(make):
    """Review finding (session 24): under autocast, nn._utils.linear added an fp32 bias to the bf16 product, so the
    compiled layer returned fp32 and other numbers than eager; now it calls the layer (autocast casts the bias)."""
    g = torch.Generator().manual_seed(3)
    graph = Graph.build(torch.randint(0, 12, (2, 40), generator=g), num_nodes=12)
    torch.manual_seed(0)
    conv = make()
    x = torch.randn(12, 8, generator=g)
    extra = (torch.randn(40, 3, generator=g),) if isinstance(conv, MPNNConv) else ()

    def f(x):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return conv(x, graph, *extra)

    want = f(x)
    torch._dynamo.reset()
    got = torch.compile(f, fullgraph=True, backend="aot_eager")(x)
    assert got.dtype == want.dtype  # SAGE: bf16; MPNN: its GRU's fp32
    torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_bad_input_is_named():
    with pytest.raises(TypeError, match="out is list, bias is Tensor"):
        bias_add([1.0], torch.zeros(3))
    with pytest.raises(ValueError, match=r"bias must be \[3\].*got \[4\] for out \[5, 3\]"):
        bias_add(torch.zeros(5, 3), torch.zeros(4))
    with pytest.raises(ValueError, match=r"got \[2, 3\]"):
        bias_add(torch.zeros(5, 3), torch.zeros(2, 3))
    torch.testing.assert_close(bias_add(torch.zeros(5, 3), torch.tensor(2.0)), torch.full((5, 3), 2.0))
