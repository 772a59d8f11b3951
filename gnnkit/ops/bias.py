"""``bias_add``: a layer's bias added to its output, with the bias gradient taken by aten under ``torch.compile``."""
from typing import Optional, Tuple

import torch
from torch import Tensor

from .primitives import bias_grad_op


class BiasAddFunction(torch.autograd.Function):
    """``out + bias`` whose bias gradient is :func:`~gnnkit.ops.primitives.bias_grad_op` (opaque to inductor).
    Traced by ``torch.compile`` (forward and backward); eager calls do not use it (:func:`bias_add`)."""

    @staticmethod
    def forward(ctx, out: Tensor, bias: Tensor) -> Tensor:
        return out + bias

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tuple[Optional[Tensor], ...]:
        return grad, bias_grad_op(grad) if ctx.needs_input_grad[1] else None


def bias_add(out: Tensor, bias: Tensor, inplace: bool = False) -> Tensor:
    """``out + bias`` for a bias ``[F]`` and ``out`` ``[..., F]`` — in place when ``inplace`` (``out`` is a fresh
    result nothing else reads) and the sum keeps ``out``'s dtype.

    Under ``torch.compile``, with a bias that requires grad, the sum is :class:`BiasAddFunction`, so the bias
    gradient is aten's reduction instead of inductor's CPU column sum (about 3x slower at ``[20000, 64]``); the
    forward stays traceable (inductor fuses the sum with its neighbours).  Results are the same either way."""
    if not isinstance(out, Tensor) or not isinstance(bias, Tensor):
        raise TypeError(f"bias_add takes tensors: out is {type(out).__name__}, bias is {type(bias).__name__}")
    if bias.dim() > 1 or bias.dim() == 1 and bias.size(0) not in (1, out.size(-1) if out.dim() else 1):
        raise ValueError(f"bias must be [{out.size(-1) if out.dim() else 1}] (one value per channel of out's last "
                         f"dimension) or a scalar, got {list(bias.shape)} for out {list(out.shape)}")
    if torch.compiler.is_compiling() and bias.requires_grad and torch.is_grad_enabled() and out.dim() >= 2 \
            and bias.dim() == 1 and bias.size(0) == out.size(-1) and out.dtype == bias.dtype:
        return BiasAddFunction.apply(out, bias)
    return out.add_(bias) if inplace and bias.dtype == out.dtype else out + bias
