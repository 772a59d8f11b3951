"""``first_order_only``: the backward decorator of gnnkit's autograd Functions.

Their backwards are written out for first derivatives only.  PyTorch's ``once_differentiable`` refuses a
second derivative only when the incoming gradient itself requires grad; with ``create_graph=True`` on a
plain loss (``grad(loss, x, create_graph=True)``, then a gradient of that gradient, e.g. a gradient
penalty) it returns a first derivative detached from ``x``, so the second derivative comes out silently
wrong.  This decorator raises instead, naming the op.
"""
import functools
from typing import Any, Callable

import torch


def first_order_only(backward: Callable) -> Callable:
    inner = torch.autograd.function.once_differentiable(backward)

    @functools.wraps(backward)
    def wrapper(ctx, *grads):
        if torch.is_grad_enabled():  # backward under create_graph=True
            raise RuntimeError(f"{backward.__qualname__.split('.')[0]}: gnnkit's sparse ops have first derivatives "
                               "only; a second derivative (create_graph=True, e.g. a gradient penalty) is not "
                               "supported — use PyG's layers for that model, or torch.func on the pure-torch "
                               "references in gnnkit.ops")
        return inner(ctx, *grads)
    return wrapper


def apply_function(fn: type, *args: Any) -> Any:
    """``fn.apply(*args)``, unrecorded under ``torch.inference_mode()``.

    Inference mode records nothing, even under ``enable_grad()``; but ``Function.apply`` still records when an
    input requires grad (a learned parameter passed straight in, e.g. the softmax temperature or the
    Graphormer bias), and saving the inference tensors then fails.  Under inference mode the call runs under
    ``no_grad``, so its output requires no grad, as a PyG layer's does there."""
    if not torch.compiler.is_compiling() and torch.is_inference_mode_enabled():  # (dynamo cannot trace the test)
        with torch.no_grad():
            return fn.apply(*args)
    return fn.apply(*args)
