"""gnnkit's op registration (gnnkit/ops/_custom_op.py): ``torch.library.Library`` ops that keep the semantics
``torch.library.custom_op`` gave them — schema, fake and meta functions, AOT dispatch (torch's own
``opcheck``), a deferred error on backward, forward AD, no aliasing."""
import pytest
import torch

from gnnkit.ops import Graph, _custom_op
from gnnkit.ops.primitives import (
    bias_grad_op,
    node_sums_op,
    relu_message_mask_bwd_op,
    relu_message_op,
    sddmm_op,
    segment_bwd_op,
    segment_op,
    softmax_bwd_op,
    softmax_op,
    spmm_op,
)


def _graph():
    return Graph.build(torch.tensor([[0, 1, 2, 2, 0, 3], [1, 2, 0, 1, 1, 1]]), num_nodes=4)


def _samples():
    g = _graph()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4, 2, 3, generator=gen)
    v = torch.rand(6, 2, generator=gen)
    logits = torch.randn(6, 2, generator=gen)
    p = softmax_op(g.rowptr, g.row, logits)
    rt, ct, pt = g.transpose()  # (rowptr_t, col_t, perm_t)
    return [
        (spmm_op, (g.rowptr, g.col, v, x, "sum")),
        (spmm_op, (g.rowptr, g.col, None, x, "max")),
        (spmm_op, (g.rowptr, g.col, v, x, "min", None, None, g.row)),  # the slots' rows given (Graph.row)
        (spmm_op, (g.rowptr, g.col, v, x, "mean")),
        (sddmm_op, (g.rowptr, g.col, g.row, x, x.clone(), None, None, None)),
        (softmax_op, (g.rowptr, g.row, logits)),
        (softmax_bwd_op, (g.rowptr, g.row, p, torch.randn(6, 2, generator=gen))),
        (segment_op, (g.rowptr, v, "sum")),
        (segment_op, (g.rowptr, v, "max")),
        (segment_bwd_op, (g.rowptr, g.row, v, torch.randn(4, 2, generator=gen), "mean")),
        (node_sums_op, (v, g.rowptr, g.row, g.col, rt, pt, 4, True, True)),
        (relu_message_op, (x, g.col, torch.randn(6, 2, 3, generator=gen))),
        (relu_message_mask_bwd_op, (torch.randn(6, 5, generator=gen), torch.rand(6, 5, generator=gen) > 0.5)),
        # a transposed gradient: the result (and the fake's) is contiguous all the same
        (relu_message_mask_bwd_op, (torch.randn(5, 6, generator=gen).t(), torch.rand(6, 5, generator=gen) > 0.5)),
        (bias_grad_op, (torch.randn(7, 5, generator=gen),)),
        (bias_grad_op, (torch.randn(3, 4, 5, generator=gen).transpose(0, 1),)),  # [..., F], strided
    ], ct


@pytest.mark.parametrize("i", range(16))
def test_ops_pass_torch_opcheck(i):
    """torch.library.opcheck: schema, autograd registration, fake tensors and AOT dispatch (dynamic shapes)."""
    op, args = _samples()[0][i]
    result = torch.library.opcheck(op._op, args)
    assert set(result.values()) == {"SUCCESS"}, result


def test_ops_are_tagged_and_run_on_meta_tensors():
    g = _graph()
    x = torch.randn(4, 2, 3)
    assert torch.Tag.pt2_compliant_tag in torch.ops.gnnkit.spmm.default.tags
    meta = [t.to("meta") for t in (g.rowptr, g.col, x)]
    out = torch.ops.gnnkit.spmm(meta[0], meta[1], None, meta[2], "sum")
    assert out.device.type == "meta" and out.shape == (4, 2, 3)


def test_a_recorded_call_raises_on_backward_only():
    """custom_op's semantics: the call succeeds (an evaluation with gradients on works), any backward that reaches
    an input through the outputs raises — backward(), and torch.autograd.grad of the input even when another
    path reaches it (a review found the first version's error node hung off a detached copy, so that grad
    returned x's other gradient, silently wrong); integer and boolean outputs stay out of autograd."""
    g = _graph()
    x = torch.randn(4, 2, 3, requires_grad=True)
    out = torch.ops.gnnkit.spmm(g.rowptr, g.col, None, x, "sum")
    assert out.requires_grad
    with pytest.raises(RuntimeError, match="gnnkit::spmm has no autograd formula"):
        out.sum().backward()
    for loss in (lambda: torch.ops.gnnkit.spmm(g.rowptr, g.col, None, x, "sum").sum() + x.sum(),
                 lambda: torch.ops.gnnkit.spmm(g.rowptr, g.col, None, x, "sum").sum()):
        with pytest.raises(RuntimeError, match="no autograd formula"):
            torch.autograd.grad(loss(), x)
    with torch.no_grad():
        assert not torch.ops.gnnkit.spmm(g.rowptr, g.col, None, x, "sum").requires_grad
    assert torch.equal(out.detach(), spmm_op(g.rowptr, g.col, None, x.detach(), "sum"))
    xr = torch.randn(4, 3, requires_grad=True)
    msg, mask = torch.ops.gnnkit.relu_message(xr, g.col, torch.randn(6, 3))
    assert msg.requires_grad and mask.dtype == torch.bool and not mask.requires_grad


def test_a_compiled_call_recorded_by_autograd_raises_too():
    """Under torch.compile AOTAutograd traces the op's autograd kernel: a call on an input that requires grad fails
    with the same error (as custom_op's does), where the first version of this registration compiled it and
    returned x's other gradient, silently wrong (a review found it)."""
    import torch._dynamo
    g = _graph()
    x = torch.randn(4, 2, 3, requires_grad=True)

    def f(x):
        return torch.ops.gnnkit.spmm(g.rowptr, g.col, None, x, "sum").sum() + x.sum()
    torch._dynamo.reset()
    with torch._functorch.config.patch(enable_autograd_cache=False), \
            pytest.raises(Exception, match="no autograd formula"):
        torch.autograd.grad(torch.compile(f, backend="aot_eager", fullgraph=True)(x), x)


def test_forward_mode_ad_gives_no_tangent_or_raises_with_grad():
    """Forward AD: a dual input gives an output without tangent; a dual input that also requires grad raises (no
    forward formula either), as custom_op does."""
    import torch.autograd.forward_ad as fwAD
    g = _graph()
    x = torch.randn(4, 2, 3)
    with fwAD.dual_level():
        out = torch.ops.gnnkit.spmm(g.rowptr, g.col, None, fwAD.make_dual(x, torch.ones_like(x)), "sum")
        assert fwAD.unpack_dual(out).tangent is None
        with pytest.raises(NotImplementedError, match="jvp"):
            torch.ops.gnnkit.spmm(g.rowptr, g.col, None, fwAD.make_dual(x.clone().requires_grad_(True),
                                                                        torch.ones_like(x)), "sum")


def test_the_aliasing_check_catches_an_op_returning_its_input(monkeypatch):
    """An op whose output aliases an input would break functionalization under compile; the test suite runs
    every op with custom_op's check (conftest sets GNNKIT_CHECK_OP_ALIASING), and that check works."""
    assert _custom_op._CHECK_ALIASING
    monkeypatch.setattr(_custom_op, "_CHECK_ALIASING", True)

    @_custom_op.custom_op("gnnkit::_test_alias")
    def alias(x: torch.Tensor) -> torch.Tensor:
        return x.view(-1)

    alias.register_fake(lambda x: x.new_empty(x.numel()))
    with pytest.raises(RuntimeError, match="alias"):
        torch.ops.gnnkit._test_alias(torch.randn(2, 2))


def test_names_outside_the_namespace_are_refused():
    with pytest.raises(ValueError, match="gnnkit::mine"):
        _custom_op.custom_op("other::mine")(lambda x: x)
