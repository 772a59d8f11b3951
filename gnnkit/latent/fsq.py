"""Finite scalar quantization (FSQ, Mentzer et al., ICLR 2024, https://arxiv.org/abs/2309.15505).

Each of the ``d = len(levels)`` channels is bounded and rounded to one of ``L_i`` values; the implicit
codebook is the product grid of :math:`\\prod_i L_i` points, so nothing can collapse and there is no
codebook or commitment loss. GLAD (Nguyen et al. 2024) found it the best quantizer for graph latents.

.. math::
    \\hat z_i = \\mathrm{round}\\big(\\tfrac{(L_i - 1)(1+\\epsilon)}{2} \\tanh(z_i + s_i) - o_i\\big)
    \\,/\\, \\lfloor L_i / 2 \\rfloor,

with :math:`o_i = 1/2` for even :math:`L_i` (0 for odd) and :math:`s_i = \\operatorname{atanh}(o_i / h_i)`,
rounding with a straight-through gradient, as in the paper's reference code (which shifts with
:math:`\\tan`; :math:`\\operatorname{atanh}` is the exact inverse of the bound and gives the same grid).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from ._common import QuantizerOutput, UsageMonitor, check_indices, code_counts, usage_stats


class FSQ(torch.nn.Module):
    """Finite scalar quantizer over ``levels`` (e.g. ``(8, 5, 5, 5)``: 1000 codes in 4 channels).

    Shapes: input ``[..., len(levels)]`` → quantized ``[..., len(levels)]`` (values in [-1, 1]),
    indices ``[...]`` (mixed-radix code index in ``[0, prod(levels))``).
    """

    def __init__(self, levels: Sequence[int], eps: float = 1e-3, min_usage: float = 0.1):
        super().__init__()
        if isinstance(levels, (str, bytes)) or not hasattr(levels, "__iter__") or \
                any(isinstance(v, bool) or not float(v).is_integer() for v in levels):
            raise ValueError(f"levels={levels!r} must be whole numbers >= 2, e.g. (8, 5, 5, 5)")
        levels = [int(v) for v in levels]
        if not levels or any(v < 2 for v in levels):
            raise ValueError(f"levels={levels} must be a non-empty list of integers >= 2, e.g. (8, 5, 5, 5)")
        self.levels = tuple(levels)
        self.dim = self.input_dim = len(levels)
        self.num_codes = 1
        for v in levels:
            self.num_codes *= v
        if not 0.0 <= eps < 1.0 / (max(levels) - 1):
            raise ValueError(f"eps={eps} must be in [0, 1/(max(levels)-1)) = [0, {1.0 / (max(levels) - 1):.3g}) so "
                             f"that rounding stays inside the levels")
        self.eps = float(eps)
        lv = torch.tensor(levels, dtype=torch.float32)
        basis = torch.cumprod(torch.tensor([1] + levels[:-1], dtype=torch.long), 0)
        self.register_buffer("_levels", lv, persistent=False)
        self.register_buffer("_basis", basis, persistent=False)
        self.register_buffer("_half_width", torch.div(lv, 2, rounding_mode="floor"), persistent=False)
        self.monitor = UsageMonitor(self.num_codes, min_usage)

    def bound(self, z: Tensor) -> Tensor:
        half_l = (self._levels - 1) * (1 + self.eps) / 2
        offset = torch.where(self._levels % 2 == 0, 0.5, 0.0)
        shift = torch.atanh(offset / half_l)
        return torch.tanh(z + shift) * half_l - offset

    def codes_from_indices(self, indices: Tensor) -> Tensor:
        """Grid points ``[..., d]`` (in [-1, 1]) of code ``indices`` ``[...]``."""
        check_indices(indices, self.num_codes)
        digits = torch.div(indices.long().unsqueeze(-1), self._basis, rounding_mode="floor") % self._levels.long()
        return (digits.float() - self._half_width) / self._half_width

    def indices_from_codes(self, codes: Tensor) -> Tensor:
        digits = (codes.float() * self._half_width + self._half_width).round().long()
        return (digits * self._basis).sum(-1)

    def forward(self, z: Tensor) -> QuantizerOutput:
        if z.size(-1) != self.dim:
            raise ValueError(f"input has width {z.size(-1)}; FSQ with levels={self.levels} expects {self.dim}")
        if not torch.is_floating_point(z):
            raise ValueError(f"input must be a floating tensor, got {z.dtype}; fix: z.float()")
        zf = z.float()
        b = self.bound(zf)
        q = b + (b.round() - b).detach()
        quantized = q / self._half_width
        indices = self.indices_from_codes(quantized.detach())
        counts = code_counts(indices, self.num_codes)
        if self.training:
            self.monitor.update(counts, type(self).__name__)
        # FSQ has no loss term; 0 * sum(z) keeps it 0 but NaN when the input holds a NaN (whose code would be
        # whatever casting NaN to an integer gives), as VQ's loss is: a training loop sees it, without a sync
        loss = zf.detach().sum() * 0.0
        return QuantizerOutput(quantized.to(z.dtype), indices, loss, usage_stats(counts))

    def extra_repr(self) -> str:
        return f"levels={self.levels}, num_codes={self.num_codes}"
