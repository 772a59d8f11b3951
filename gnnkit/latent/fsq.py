"""Finite scalar quantization (FSQ, Mentzer et al., ICLR 2024, https://arxiv.org/abs/2309.15505).

Each of the ``d = len(levels)`` channels is bounded and rounded to one of ``L_i`` values; the implicit
codebook is the product grid of :math:`\\prod_i L_i` points, so nothing can collapse and there is no
codebook or commitment loss. GLAD (Nguyen et al. 2024) found it the best quantizer for graph latents.

.. math::
    \\hat z_i = \\mathrm{round}\\big(h_i \\tanh(z_i + s_i) - o_i\\big) \\,/\\, \\lfloor L_i / 2 \\rfloor,
    \\qquad h_i = \\tfrac{(L_i - 1)(1-\\epsilon)}{2}, \\quad s_i = \\tan(o_i / h_i),

with :math:`o_i = 1/2` for even :math:`L_i` (0 for odd), rounding with a straight-through gradient: the paper's
reference code (its Appendix A.1; ``bound="paper"``, the default).  ``bound="inverse"`` is the variant of
vector-quantize-pytorch (and of gnnkit before 2026-12-04): :math:`h_i = (L_i - 1)(1+\\epsilon)/2` and
:math:`s_i = \\operatorname{atanh}(o_i / h_i)`, the exact inverse of the bound, which puts :math:`z = 0` exactly on
the grid point 0.  Both give the same grid; they send inputs to different points (measured on N(0, 1) inputs:
1.1 % of the vectors of levels (8, 5, 5, 5), 0.8 % of (8, 5, 5), 6 % of the values of an L = 2 channel).

For an even :math:`L_i` the shifted grid is not centred on 0 ({-2, -1, 0, 1} / 2 for L = 4), and for
L = 2 ({-1, 0}) the input must fall below :math:`-s_i` to reach -1: with the paper's bound (:math:`s_i` = 1.56)
6 % of N(0, 1) inputs do, with the inverse bound (:math:`s_i` = 3.8) about 1 in 10,000, and such a channel
trains poorly (measured mean gradients on N(0, 1): 0.15 and 0.006, against 0.6 for L = 3).
``symmetric=True`` uses the symmetry-preserving grid of arXiv:2411.19842 (§3.2,
https://arxiv.org/abs/2411.19842), the same grid for odd levels and symmetric around 0 for even ones:

.. math::
    \\hat z_i = \\tfrac{2}{L_i - 1} \\Big\\lfloor \\tfrac{(L_i - 1)(\\tanh z_i + 1)}{2} + \\tfrac12 \\Big\\rfloor - 1
    \\in \\{-1, \\dots, 1\\},

with a straight-through floor.
"""
from __future__ import annotations

import math
import warnings
from typing import Sequence

import torch
from torch import Tensor

from ._common import (
    QuantizerOutput,
    UsageMonitor,
    check_indices,
    check_int,
    check_nonempty,
    code_counts,
    usage_stats,
    work_dtype,
)

MAX_CODES = 2 ** 24
BOUNDS = ("paper", "inverse")


def whole_levels(levels: object, name: str = "levels") -> tuple:
    """FSQ levels as a tuple of ints >= 2 (integer-valued floats and numpy integers taken), else a ValueError
    naming ``name``."""
    bad = ValueError(f"{name} must be whole numbers >= 2, e.g. (8, 5, 5, 5), got {levels!r}")
    if isinstance(levels, (str, bytes)) or not hasattr(levels, "__iter__"):
        raise bad
    try:
        values = list(levels)
        if not values or any(isinstance(v, bool) or not float(v).is_integer() or float(v) < 2 for v in values):
            raise bad
    except (TypeError, ValueError, OverflowError):
        raise bad from None
    return tuple(int(v) for v in values)


# the FSQ paper's levels for its target codebook sizes (Mentzer et al. 2023, Table 1): K = 2^8 ... 2^16
PAPER_LEVELS = {2 ** 8: (8, 6, 5), 2 ** 10: (8, 5, 5, 5), 2 ** 12: (7, 5, 5, 5, 5), 2 ** 14: (8, 8, 8, 6, 5),
                2 ** 16: (8, 8, 8, 5, 5, 5)}


def fsq_levels_for(num_codes: int) -> tuple:
    """FSQ levels for a codebook of about ``num_codes`` codes: the paper's levels for its targets 2^8, 2^10, 2^12,
    2^14, 2^16 (Table 1; their products are 240, 1000, 4375, 15360, 64000), else the fewest levels between 3 and 8
    whose product is exactly ``num_codes`` (the largest smallest level among those; e.g. 64 -> (8, 8), 200 ->
    (8, 5, 5)).  A ``num_codes`` with no such split (a prime above 8, say) is a ValueError naming the fix."""
    k = check_int("num_codes", num_codes, 3, who="fsq_levels_for")
    if k in PAPER_LEVELS:
        return PAPER_LEVELS[k]
    best = None

    def split(rest: int, most: int, parts: tuple) -> None:  # non-increasing factors in [3, most]
        nonlocal best
        if rest == 1:
            if best is None or (len(parts), -min(parts)) < (len(best), -min(best)):
                best = parts
            return
        if best is not None and len(parts) >= len(best):
            return
        for f in range(min(most, rest), 2, -1):
            if rest % f == 0:
                split(rest // f, f, parts + (f,))
    split(k, 8, ())
    if best is None:
        raise ValueError(f"fsq_levels_for: {k} codes is no product of levels between 3 and 8; pick levels "
                         f"yourself (gnnkit vq train: --fsq-levels, e.g. 8,5,5 for 200 codes) or a K such as "
                         f"{', '.join(map(str, sorted(PAPER_LEVELS)))} (the FSQ paper's)")
    return best


class FSQ(torch.nn.Module):
    """Finite scalar quantizer over ``levels`` (e.g. ``(8, 5, 5, 5)``: 1000 codes in 4 channels).

    Shapes: input ``[..., len(levels)]`` → quantized ``[..., len(levels)]`` (values in [-1, 1]),
    indices ``[...]`` (mixed-radix code index in ``[0, prod(levels))``).

    ``symmetric=False`` (default) is the paper's grid; ``symmetric=True`` the symmetry-preserving one (see
    the module text), which even levels need to train well, L = 2 above all (a level of 2 on the paper's
    grid warns).  ``bound`` (paper's grid only): ``"paper"`` (default), the paper's reference code, or
    ``"inverse"``, vector-quantize-pytorch's exact-inverse shift (gnnkit's before 2026-12-04).
    """

    def __init__(self, levels: Sequence[int], eps: float = 1e-3, min_usage: float = 0.1,
                 symmetric: bool = False, bound: str = "paper"):
        super().__init__()
        levels = list(whole_levels(levels))
        self.levels = tuple(levels)
        self.dim = self.input_dim = len(levels)
        self.num_codes = math.prod(levels)
        if self.num_codes > MAX_CODES:
            raise ValueError(f"levels={self.levels} give {self.num_codes:,} codes; at most {MAX_CODES:,} (2**24) are "
                             "supported (code usage is counted per code); fix: fewer or smaller levels")
        if bound not in BOUNDS:
            raise ValueError(f"bound={bound!r} must be one of {BOUNDS}: 'paper' (the FSQ paper's reference code) or "
                             "'inverse' (vector-quantize-pytorch's exact-inverse shift)")
        if symmetric is True and bound != "paper":
            raise ValueError(f"bound={bound!r} applies to the paper's grid; the symmetric grid has no shift: drop it "
                             "with symmetric=True")
        self.bound_kind = bound
        if not 0.0 <= eps < 1.0 / (max(levels) - 1):  # the paper's bound would not reach the outer levels,
            top = f"levels <= {math.ceil(1 / eps)} or " if eps > 0 else ""  # the inverse one round past them
            raise ValueError(f"eps={eps} must be in [0, 1/(max(levels)-1)) = [0, {1.0 / (max(levels) - 1):.3g}) so "
                             f"that rounding reaches every level and stays inside them; fix: {top}a smaller eps")
        even = [v for v in levels if v % 2 == 0]
        # the paper's shift tan(1/2 / h): defined (and increasing) while 1/2 / h < pi/2, h = (L - 1)(1 - eps)/2
        shift_defined = 0.0 <= eps < 1.0 and all(1 / ((v - 1) * (1 - eps)) < math.pi / 2 for v in even)
        if bound == "paper" and not symmetric and not shift_defined:
            cap = 1 - 2 / (math.pi * (min(even) - 1)) if even else 1.0
            raise ValueError(f"eps={eps} must be in [0, {cap:.3g}) with levels {self.levels} (the paper's shift "
                             f"tan(0.5 / ((L - 1)(1 - eps) / 2)) must stay below pi/2); fix: a smaller eps")
        self.eps = float(eps)
        if not isinstance(symmetric, bool):
            raise ValueError(f"symmetric={symmetric!r} must be True or False")
        self.symmetric = symmetric
        if not symmetric and 2 in levels:
            share = "6 %" if bound == "paper" else "about 0.01 %"
            warnings.warn(f"FSQ levels={self.levels} has a level of 2: on the paper's grid such a channel "
                          f"holds {{-1, 0}} and only inputs below the shift reach -1 ({share} of N(0, 1) inputs), "
                          f"so it barely trains; fix: FSQ(..., symmetric=True) (gnnkit vq train: "
                          f"--fsq-symmetric) or levels >= 3", UserWarning, stacklevel=2)
        lv = torch.tensor(levels, dtype=torch.float32)
        basis = torch.cumprod(torch.tensor([1] + levels[:-1], dtype=torch.long), 0)
        self.register_buffer("_levels", lv, persistent=False)
        self.register_buffer("_basis", basis, persistent=False)
        # grid point of digit k: (k - c) / c, with c = floor(L / 2) on the paper's grid, (L - 1) / 2 on the
        # symmetric one (the same for odd L)
        center = (lv - 1) / 2 if symmetric else torch.div(lv, 2, rounding_mode="floor")
        self.register_buffer("_half_width", center, persistent=False)
        # a fixed grid has no codes to restart: few used points mean the encoder's outputs sit in a corner
        self.monitor = UsageMonitor(self.num_codes, min_usage, advice="fewer levels (a smaller grid), symmetric=True "
                                    "for even levels, or longer training (the encoder spreads its outputs)")

    def bound(self, z: Tensor) -> Tensor:
        """The bounded, shifted input ``[..., d]`` (rounding it gives the digit minus its centre): the paper's
        ``bound`` or the inverse one (module text)."""
        offset = torch.where(self._levels % 2 == 0, 0.5, 0.0)
        if self.bound_kind == "paper":
            half_l = (self._levels - 1) * (1 - self.eps) / 2
            shift = torch.tan(offset / half_l)
        else:
            half_l = (self._levels - 1) * (1 + self.eps) / 2
            shift = torch.atanh(offset / half_l)
        return torch.tanh(z + shift) * half_l - offset

    def codes_from_indices(self, indices: Tensor) -> Tensor:
        """Grid points ``[..., d]`` (in [-1, 1]) of code ``indices`` ``[...]``."""
        check_indices(indices, self.num_codes)
        digits = torch.div(indices.long().unsqueeze(-1), self._basis, rounding_mode="floor") % self._levels.long()
        return (digits.to(self._half_width.dtype) - self._half_width) / self._half_width

    def indices_from_codes(self, codes: Tensor) -> Tensor:
        """Code indices ``[...]`` of grid points ``codes`` ``[..., d]``; a point with a NaN (a diverged input)
        gets index 0, as :class:`~gnnkit.latent.vq.VectorQuantizer` gives it (a NaN cast to an integer is
        INT64_MIN on x86: a negative or wrapped index otherwise)."""
        digits = (codes.to(work_dtype(codes)) * self._half_width + self._half_width).round()
        digits = digits.masked_fill(digits.isnan().any(-1, keepdim=True), 0.0).long()
        return (digits * self._basis).sum(-1)

    def forward(self, z: Tensor) -> QuantizerOutput:
        if z.size(-1) != self.dim:
            raise ValueError(f"input has width {z.size(-1)}; FSQ with levels={self.levels} expects {self.dim}")
        if not torch.is_floating_point(z):
            raise ValueError(f"input must be a floating tensor, got {z.dtype}; fix: z.float()")
        check_nonempty(z)
        zf = z.to(work_dtype(z))  # fp32 for fp16/bf16; a float64 input keeps its grid points exact in float64
        if self.symmetric:
            b = (self._levels - 1) * (torch.tanh(zf) + 1) / 2 + 0.5
            q = b + (b.floor() - b).detach()
            quantized = (q - self._half_width) / self._half_width  # (k - c) / c: as codes_from_indices, exact
        else:
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
        return f"levels={self.levels}, num_codes={self.num_codes}" + (", symmetric=True" if self.symmetric else "") \
            + (", bound='inverse'" if self.bound_kind == "inverse" and not self.symmetric else "")
