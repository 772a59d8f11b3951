"""Gumbel-softmax quantizer (Jang et al., ICLR 2017, https://arxiv.org/abs/1611.01144;
Maddison et al., ICLR 2017) with temperature schedules.

From the lecture: a Gumbel(0, 1) sample is :math:`Q = -\\log(-\\log U)`, :math:`U \\sim \\mathcal{U}(0, 1)`, and
:math:`\\arg\\max_i (l_i + Q_i)` is a sample of the categorical distribution with logits :math:`l`.
The relaxation replaces the arg max by

.. math::
    z_i = \\operatorname{softmax}\\Big(\\frac{l_i + Q_i}{\\tau}\\Big), \\qquad \\tau \\to 0,

annealed during training; the loss adds :math:`\\mathrm{KL}(q(z \\mid x) \\,\\|\\, \\mathcal{U}(K))`.
"""
from __future__ import annotations

import math
from typing import Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from ._common import (
    QuantizerOutput,
    UsageMonitor,
    check_indices,
    check_int,
    check_nonempty,
    check_number,
    code_counts,
    tempered,
    usage_stats,
    work_dtype,
)

_U_EPS = 1e-10  # U is drawn in [eps, 1 - eps] (fp32) so -log(-log U) stays finite


class TemperatureSchedule:
    """Temperature :math:`\\tau(t)` from ``start`` down to ``end`` (a floor > 0) over ``steps`` steps.

    * ``"exp"`` — :math:`\\tau = \\max(\\tau_{end}, \\tau_0 e^{-r t})` with :math:`r = \\ln(\\tau_0/\\tau_{end}) / T`
      (Jang et al.'s :math:`\\max(0.5, e^{-rt})`, reaching the floor at ``steps``);
    * ``"cosine"`` — :math:`\\tau_{end} + \\tfrac12(\\tau_0 - \\tau_{end})(1 + \\cos(\\pi \\min(t, T)/T))`
      (DALL-E's dVAE anneals to 1/16 on a cosine);
    * ``"constant"`` — :math:`\\tau_0` throughout.
    """

    KINDS = ("exp", "cosine", "constant")

    def __init__(self, kind: str = "exp", start: float = 1.0, end: float = 1.0 / 16, steps: int = 10000):
        if kind not in self.KINDS:
            raise ValueError(f"kind={kind!r} is not a temperature schedule; use one of {self.KINDS}")
        if not (0 < start < math.inf and 0 < end < math.inf):
            raise ValueError(f"start={start} and end={end} must be finite and > 0: a temperature of 0 divides by zero "
                             f"(F.gumbel_softmax(tau=0) gives NaN); use a small floor such as 1/16")
        if end > start:
            raise ValueError(f"end={end} must be <= start={start} (the schedule anneals downwards)")
        check_int("steps", steps, 1)
        self.kind, self.start, self.end, self.steps = kind, float(start), float(end), int(steps)

    def __call__(self, step: int) -> float:
        t = min(max(int(step), 0), self.steps)
        if self.kind == "constant":
            return self.start
        if self.kind == "exp":
            rate = math.log(self.start / self.end) / self.steps
            return max(self.end, self.start * math.exp(-rate * t))
        return self.end + 0.5 * (self.start - self.end) * (1.0 + math.cos(math.pi * t / self.steps))

    def __repr__(self) -> str:
        return f"TemperatureSchedule({self.kind!r}, start={self.start}, end={self.end}, steps={self.steps})"


def gumbel_noise(shape: Union[torch.Size, Tuple[int, ...]], generator: Optional[torch.Generator] = None,
                 device: Optional[Union[str, torch.device]] = None) -> Tensor:
    """Gumbel(0, 1) samples in fp32: :math:`-\\log(-\\log U)` with :math:`U` kept inside
    :math:`[10^{-10}, 1 - 10^{-10}]`, so every sample is finite."""
    u = torch.rand(shape, generator=generator, device=device, dtype=torch.float32)
    u = u.clamp_(_U_EPS, 1.0 - _U_EPS)
    return -torch.log(-torch.log(u))


class GumbelQuantizer(torch.nn.Module):
    """Logits over ``num_codes`` codes → a (soft or straight-through hard) one-hot sample → its
    codeword (a learned ``[num_codes, dim]`` codebook).

    Args:
        num_codes (int): :math:`K`.
        dim (int): width of a codeword (the output).
        temperature (float or TemperatureSchedule): :math:`\\tau`, or a schedule of the training
            step; every training-mode forward is one step (the counter is a buffer, so it is saved
            and restored with the ``state_dict``). Must stay > 0.
        hard (bool): straight-through: the forward value is the arg max one-hot, the gradient that
            of the soft sample (default ``True``).
        kl_weight (float): weight of :math:`\\mathrm{KL}(q \\| \\mathcal{U}(K)) = \\sum_k q_k \\log q_k + \\log K`
            (closed form, ``q = softmax(logits)``), averaged over vectors (default 0: no KL term; a
            small weight such as 5e-4, ``gnnkit vq``'s default, pulls unused codes back into use).
        min_usage (float): collapse warning threshold (fraction of codes used over a window).

    In eval mode no noise is drawn: the code is the arg max of the logits (deterministic).
    Everything is computed in fp32 (also under bf16/fp16 inputs); ``quantized`` comes back in
    the codebook's dtype.

    Shapes: logits ``[..., num_codes]`` → quantized ``[..., dim]``, indices ``[...]``.
    """

    def __init__(self, num_codes: int, dim: int, temperature: Union[float, TemperatureSchedule] = 1.0,
                 hard: bool = True, kl_weight: float = 0.0, min_usage: float = 0.1):
        super().__init__()
        check_int("num_codes", num_codes, 2)
        check_int("dim", dim, 1)
        check_number("kl_weight", kl_weight, 0.0)
        if isinstance(temperature, bool):
            raise ValueError(f"temperature={temperature} must be a number > 0 or a TemperatureSchedule, not a bool")
        if isinstance(temperature, (int, float)):
            if not 0 < temperature < math.inf:
                raise ValueError(f"temperature={temperature} must be a finite number > 0 (0 gives NaN); use a small "
                                 f"floor such as 1/16 or a TemperatureSchedule")
            temperature = TemperatureSchedule("constant", float(temperature), float(temperature), 1)
        if not isinstance(temperature, TemperatureSchedule):
            raise ValueError(f"temperature must be a float or a TemperatureSchedule, got {type(temperature)}")
        self.num_codes, self.dim, self.input_dim = num_codes, dim, num_codes
        self.schedule = temperature
        self.hard = hard
        self.kl_weight = float(kl_weight)
        self.codebook = torch.nn.Embedding(num_codes, dim)
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        self.monitor = UsageMonitor(num_codes, min_usage, advice="kl_weight > 0 (the KL to the uniform prior "
                                    "spreads the codes), a slower temperature schedule or a smaller codebook")
        self.reset_parameters()

    def reset_parameters(self) -> None:
        torch.nn.init.normal_(self.codebook.weight)
        self.step.zero_()

    @property
    def temperature(self) -> float:
        """The temperature the next training forward uses."""
        return self.schedule(int(self.step))

    def codes_from_indices(self, indices: Tensor) -> Tensor:
        """Codewords ``[..., dim]`` of ``indices`` ``[...]``."""
        check_indices(indices, self.num_codes)
        return F.embedding(indices.long(), self.codebook.weight)

    def forward(self, logits: Tensor, generator: Optional[torch.Generator] = None) -> QuantizerOutput:
        if logits.size(-1) != self.num_codes:
            raise ValueError(f"logits has {logits.size(-1)} entries in its last dimension; GumbelQuantizer "
                             f"expects num_codes={self.num_codes} logits per vector")
        check_nonempty(logits)
        lf = logits.to(work_dtype(logits))
        log_q = F.log_softmax(lf, dim=-1)
        if self.training:
            tau = self.temperature
            y = F.softmax(tempered(lf + gumbel_noise(lf.shape, generator, lf.device), tau), dim=-1)
            indices = y.argmax(-1)
            if self.hard:
                hard = F.one_hot(indices, self.num_codes).to(y.dtype)
                y = hard - y.detach() + y
            self.step += 1
        else:
            indices = lf.argmax(-1)
            y = F.one_hot(indices, self.num_codes).to(lf.dtype)
        quantized = y.to(self.codebook.weight.dtype) @ self.codebook.weight
        if self.kl_weight > 0:
            # q log q, with 0 log 0 = 0 for a masked (-inf) logit (a plain product gives 0 * -inf = NaN, in the
            # value and, through a where, in the gradient): the log is zeroed before the product
            kl = (log_q.exp() * torch.where(torch.isfinite(log_q), log_q, 0.0)).sum(-1) + math.log(self.num_codes)
            loss = self.kl_weight * kl.mean()
        else:
            loss = lf.new_zeros(())
        counts = code_counts(indices, self.num_codes)
        if self.training:
            self.monitor.update(counts, type(self).__name__)
        return QuantizerOutput(quantized, indices, loss, usage_stats(counts))

    def extra_repr(self) -> str:
        return (f"{self.num_codes}, {self.dim}, temperature={self.schedule}, hard={self.hard}, "
                f"kl_weight={self.kl_weight}")
