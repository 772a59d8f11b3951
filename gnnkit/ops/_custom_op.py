"""gnnkit's registered ops (``torch.ops.gnnkit.*``, opaque to ``torch.compile``, which reads their fake
functions), with eager calls on plain tensors going straight to the implementation.

Why the direct path: an eager call of a registered op goes through the dispatcher and back into Python.
Measured on this project's CPU for a MUTAG batch of 32 graphs (569 nodes, 1,256 edges, 64 features): 192 µs
per SpMM call through a ``torch.library.custom_op`` against 105 µs for the same implementation called
directly, whose MKL product takes 56 µs — on small graphs the round trip costs more than the work. The op
is kept for every caller that needs it: ``torch.compile`` / ``torch.export`` (Dynamo traces the op, not its
body), fake and meta tensors, tensor subclasses, functorch transforms (``vmap``, ``grad``) and active
dispatch modes; ``torch.ops.gnnkit.*`` stays registered for direct users.

Why not ``torch.library.custom_op``: a compiled graph calls every op through the dispatcher, each call
paying that wrapper's Python layers (an autograd kernel built for ops with a formula, which gnnkit's ops do
not have — their autograd Functions trace around them — a redispatch, then a backend wrapper that checks
output aliasing).  The ops are defined with ``torch.library.Library`` instead: schema inferred from the
type hints as ``custom_op`` does, tagged ``pt2_compliant_tag``, the implementation registered as the
``CompositeExplicitAutograd`` kernel (every device; meta tensors get the fake function), and a small
autograd kernel.  One ``gnnkit::spmm`` call on a small graph costs 30-36 µs over its body on this project's CPU,
against 48-55 µs as a ``custom_op`` (``benchmarks/op_dispatch.py``).  No output may alias an input
(``custom_op``'s check, kept for the test suite: ``GNNKIT_CHECK_OP_ALIASING=1``).

Semantics are ``custom_op``'s: a call that autograd would record (gradients on and an input that requires
them) returns outputs whose backward raises "no autograd formula" (any backward reaching an input through
them); under forward-mode AD the outputs carry no tangent, or, when a dual input also requires grad, the
call raises (no forward formula either).  The direct path serves the rest, which is every gnnkit caller
(an autograd Function's forward or backward, where gradients are off).
"""
from __future__ import annotations

import os
from typing import Any, Callable

import torch
from torch import Tensor
from torch.utils._python_dispatch import _get_current_dispatch_mode

_LIB = torch.library.Library("gnnkit", "FRAGMENT")
_AFTER_AUTOGRAD = torch._C._after_autograd_keyset
_CHECK_ALIASING = os.environ.get("GNNKIT_CHECK_OP_ALIASING", "") not in ("", "0")

_PLAIN_TYPES = (Tensor, torch.nn.Parameter)


def _plain(values: Any, grad: bool) -> bool:
    """Every tensor among ``values`` (lists too) is a plain tensor (or parameter) on a real device, and with
    gradients on (``grad``) none requires them."""
    for v in values:
        if isinstance(v, Tensor):
            if type(v) not in _PLAIN_TYPES or v.device.type == "meta" or (grad and v.requires_grad):
                return False
        elif isinstance(v, (list, tuple)) and not _plain(v, grad):
            return False
    return True


def forward_ad_active() -> bool:
    """A forward-mode AD level is open (``torch.autograd.forward_ad.dual_level``).  torch has no public query;
    this reads the private ``forward_ad._current_level``, in this one place."""
    return torch.autograd.forward_ad._current_level >= 0


def functorch_active() -> bool:
    """A ``torch.func`` transform (grad, vmap, jvp, functionalize) is active.  torch has no public query; this reads
    the private interpreter stack, in this one place of gnnkit (``gnnkit.nn`` imports it from ``gnnkit.ops``)."""
    return torch._C._functorch.peek_interpreter_stack() is not None


def transforms_active() -> bool:
    """A compiled region, a dispatch mode, a functorch transform or forward-mode AD is active: a call must go
    through the registered op (or the autograd Function), not straight to an implementation."""
    return (torch.compiler.is_compiling() or _get_current_dispatch_mode() is not None
            or functorch_active() or forward_ad_active())


def _grad_inputs(args: Any, kwargs: Any) -> list:
    """The tensors among ``args`` and ``kwargs`` (lists too) that require grad."""
    found = []
    for v in (*args, *kwargs.values()):
        for t in (v if isinstance(v, (list, tuple)) else (v,)):
            if isinstance(t, Tensor) and t.requires_grad:
                found.append(t)
    return found


class _NoFormula(torch.autograd.Function):
    """Ties an op's outputs to its inputs that require grad; any backward through them raises (the op has no
    formula), whichever way it is asked for (``backward()``, ``torch.autograd.grad`` of an input, ...).
    Integer and boolean outputs stay out of autograd."""

    @staticmethod
    def forward(ctx: Any, qualname: str, outs: tuple, *inputs: Tensor) -> tuple:
        ctx.qualname = qualname
        res = tuple(o.detach() if isinstance(o, Tensor) else o for o in outs)
        ctx.mark_non_differentiable(*[o for o in res if isinstance(o, Tensor)
                                      and not (o.is_floating_point() or o.is_complex())])
        return res

    @staticmethod
    def backward(ctx: Any, *grads: Any) -> Any:
        raise RuntimeError(f"{ctx.qualname} has no autograd formula: gnnkit's differentiable functions (gnnkit.ops) "
                           "call it inside their autograd Functions; call those, or this op on detached tensors")


class CustomOp:
    """A registered op (``torch.ops.gnnkit.<name>``, module doc) whose eager calls on plain tensors run its
    Python implementation directly; ``register_fake`` registers its fake (shape) function."""

    def __init__(self, qualname: str, fn: Callable[..., Any]):
        ns, name = qualname.split("::")
        if ns != _LIB.ns:
            raise ValueError(f"custom_op: {qualname!r} is not in the {_LIB.ns!r} namespace; name it "
                             f"'{_LIB.ns}::{name}'")
        self._fn, self._qualname = fn, qualname
        self.__doc__, self.__name__ = fn.__doc__, fn.__name__
        _LIB.define(name + torch.library.infer_schema(fn, mutates_args=()), tags=[torch.Tag.pt2_compliant_tag])
        self._op = getattr(getattr(torch.ops, ns), name).default
        # Dynamo must not trace into the body should the kernel run while a compiled frame is set up (as custom_op)
        impl = fn
        if _CHECK_ALIASING:
            def impl(*args: Any, **kwargs: Any) -> Any:
                return self._checked(*args, **kwargs)
        _LIB.impl(name, torch._disable_dynamo(impl), "CompositeExplicitAutograd")
        _LIB.impl(name, self._autograd, "Autograd", with_keyset=True)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        grad = torch.is_grad_enabled()
        if transforms_active() or not _plain(args, grad) or not _plain(kwargs.values(), grad):
            return self._op(*args, **kwargs)
        return self._fn(*args, **kwargs)

    def register_fake(self, fake: Callable[..., Any]) -> Callable[..., Any]:
        """Decorator: ``fake`` gives the outputs' shapes and dtypes (fake and meta tensors, tracing)."""
        torch.library.register_fake(self._qualname, fake, lib=_LIB)
        return fake

    def _autograd(self, keyset: Any, *args: Any, **kwargs: Any) -> Any:
        """The Autograd kernel: the op below autograd; when autograd would record the call, its outputs are
        tied to the inputs that require grad through :class:`_NoFormula`, whose backward raises (as
        ``custom_op`` without a formula does)."""
        with torch._C._AutoDispatchBelowAutograd():
            out = self._op.redispatch(keyset & _AFTER_AUTOGRAD, *args, **kwargs)
        if torch.is_grad_enabled() and torch._C._any_requires_grad(*args, *kwargs.values()):
            single = not isinstance(out, tuple)
            tied = _NoFormula.apply(self._qualname, (out,) if single else out, *_grad_inputs(args, kwargs))
            out = tied[0] if single else tied
        return out

    def _checked(self, *args: Any, **kwargs: Any) -> Any:
        """The implementation, then ``custom_op``'s check that no output aliases an input or another output."""
        out = self._fn(*args, **kwargs)
        torch._library.utils._c_check_aliasing_constraint(self._qualname, args, kwargs, out)
        return out


def custom_op(name: str) -> Callable[[Callable[..., Any]], CustomOp]:
    """``@custom_op("gnnkit::name")``: registers ``name`` as a functional op (no argument mutated) with the
    schema its type hints give, and returns the :class:`CustomOp` (direct eager path, module doc)."""
    def register(fn: Callable[..., Any]) -> CustomOp:
        return CustomOp(name, fn)
    return register
