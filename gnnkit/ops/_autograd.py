"""``first_order_only``: the backward decorator of gnnkit's autograd Functions.

Their fast backwards (kernels, MKL, custom ops) are first derivatives only.  PyTorch's ``once_differentiable``
refuses a second derivative only when the incoming gradient itself requires grad; with ``create_graph=True`` on a
plain loss (``grad(loss, x, create_graph=True)``, then a gradient of that gradient, e.g. a gradient
penalty) it returns a first derivative detached from ``x``, so the second derivative comes out silently
wrong.  Under ``create_graph=True`` this decorator runs the Function's ``differentiable=`` formula instead (the
same gradient in plain torch ops, so autograd records it: second and higher derivatives), or raises, naming the
op, where there is none.
"""
import functools
from typing import Any, Callable, Optional

import torch

from ._custom_op import functorch_active as _functorch_active, transforms_active as _transforms_active


def first_order_only(backward: Optional[Callable] = None, *,
                     differentiable: Optional[Callable] = None) -> Callable:
    """``@first_order_only`` or ``@first_order_only(differentiable=f)``: under ``create_graph=True`` the backward
    is ``f(ctx, *grads)``, a formula of plain differentiable torch ops (so second derivatives flow), where ``f``
    is given and returns something other than ``NotImplemented``; otherwise that call raises, naming the op."""
    if backward is None:
        return functools.partial(first_order_only, differentiable=differentiable)
    inner = torch.autograd.function.once_differentiable(backward)

    @functools.wraps(backward)
    def wrapper(ctx, *grads):
        if torch.is_grad_enabled():  # backward under create_graph=True
            if differentiable is not None:
                out = differentiable(ctx, *grads)
                if out is not NotImplemented:
                    return out
            raise RuntimeError(f"{backward.__qualname__.split('.')[0]}: gnnkit's sparse ops have first derivatives "
                               "only here; a second derivative (create_graph=True, e.g. a gradient penalty) is "
                               "supported by GCN, GIN, GINE, GAT, GATv2 and SAGE's aggregations, not by this op — "
                               "use PyG's layers for this model, or torch.func on the pure-torch references in "
                               "gnnkit.ops")
        return inner(ctx, *grads)
    return wrapper


def apply_function(fn: type, *args: Any) -> Any:
    """``fn.apply(*args)``, unrecorded where autograd records nothing.

    ``Function.apply`` sets ``ctx.needs_input_grad`` from the inputs' ``requires_grad`` alone, whatever the grad
    mode, so under ``torch.no_grad()`` a forward would still build and keep what only a backward reads (a
    graph's transpose, saved tensors: the evaluation of a model whose first layer reads a learned embedding).
    Under ``no_grad`` the tensors that require grad are passed detached (the output requires no grad either way).
    Inference mode records nothing, even under ``enable_grad()``; there the call runs under ``no_grad`` with
    detached inputs too (saving inference tensors for a backward fails), so its output requires no grad, as a
    PyG layer's does there."""
    if torch.compiler.is_compiling():  # (dynamo cannot trace the tests; the compiled graph records as asked)
        return fn.apply(*args)
    if _functorch_active():  # (the layers name themselves first; this names
        raise RuntimeError(  # the op to whoever calls gnnkit.ops under a transform)
            f"{fn.__name__}: torch.func transforms (grad, vmap, jacrev, jvp) are not supported by gnnkit's sparse "
            "ops: they are autograd Functions without functorch rules; fix: torch.autograd.grad on the output, a "
            "loop instead of vmap, or the pure-torch references in gnnkit.ops (spmm_csr_ref, segment_softmax_ref, "
            "...)")
    if torch.is_inference_mode_enabled():
        with torch.no_grad():
            return fn.apply(*_detached(args))
    if not torch.is_grad_enabled():
        return fn.apply(*_detached(args))
    return fn.apply(*args)


def _detached(args: tuple) -> tuple:
    """``args`` with the tensors that require grad detached — unless :func:`~gnnkit.ops._custom_op.transforms_active`
    (a functorch transform or forward-mode AD, whose tangents ``detach`` would drop: an unsupported transform must
    still raise, not lose them; or a dispatch mode): then ``args`` as they are."""
    if not any(isinstance(a, torch.Tensor) and a.requires_grad for a in args) or _transforms_active():
        return args  # (the common evaluation: nothing requires grad, nothing to check)
    return tuple(a.detach() if isinstance(a, torch.Tensor) and a.requires_grad else a for a in args)

