"""What every gnnkit quantizer returns, and the code-usage bookkeeping they share."""
from __future__ import annotations

import contextlib
import math
import numbers
import warnings
from typing import Iterator, NamedTuple

import torch
from torch import Tensor

from gnnkit._checks import check_int  # noqa: F401  (re-exported: the latent modules import it from here)

# temperatures below which a softmax of logits / temperature subtracts the maximum first (the same distribution;
# above it the division comes first, as before, so results at usual temperatures stay bit for bit): below ~1e-37
# the division overflows to inf and the softmax gives NaN
SHIFT_BELOW = 1e-3


def work_dtype(*tensors: Tensor) -> torch.dtype:
    """The dtype the quantizers compute in: float32 for half-precision inputs (fp16/bf16: distances, softmaxes and
    roundings in fp32), float64 when an input is float64 (a ``.double()`` model or input is not cut to fp32)."""
    dt = torch.float32
    for t in tensors:
        dt = torch.promote_types(dt, t.dtype)
    return dt


def tempered(logits: Tensor, temperature: float) -> Tensor:
    """``logits / temperature`` along the last dimension, ready for a softmax; below :data:`SHIFT_BELOW` the row's
    maximum comes off first and the temperature is floored at the dtype's smallest normal number (one that rounds
    to 0 would give 0 / 0): the greedy limit instead of NaN."""
    if temperature < SHIFT_BELOW:
        logits = logits - logits.amax(-1, keepdim=True)
        temperature = max(temperature, torch.finfo(logits.dtype).tiny)
    return logits / temperature


class QuantizerCollapseWarning(UserWarning):
    """Fewer than the given fraction of a codebook's codes were used over a window of assignments."""


class QuantizerStats(NamedTuple):
    """Code usage of one forward pass (detached scalars).

    * ``perplexity`` — :math:`\\exp(-\\sum_k p_k \\log p_k)` of the batch's code histogram
      (1 = every vector got the same code, ``num_codes`` = perfectly uniform use);
    * ``usage`` — fraction of the codebook's codes used at least once in the batch;
    * ``num_used`` — how many codes that is.
    """
    perplexity: Tensor
    usage: Tensor
    num_used: Tensor


class QuantizerOutput(NamedTuple):
    """``quantized`` ``[..., dim]`` (gradients reach the input through it), ``indices`` ``[...]``
    (long), ``loss`` (scalar, already weighted; add it to the model's loss) and ``stats``."""
    quantized: Tensor
    indices: Tensor
    loss: Tensor
    stats: QuantizerStats


@contextlib.contextmanager
def evaluating(module: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """``module`` in eval mode under ``torch.no_grad()``; its mode is restored after, also on an error
    (encoding, decoding, sampling and scoring leave a model in training mode as they found it)."""
    was = module.training
    module.eval()
    try:
        with torch.no_grad():
            yield module
    finally:
        module.train(was)


def check_number(name: str, value: object, low: float = -math.inf, high: float = math.inf,
                 low_open: bool = False, high_open: bool = False, hint: str = "") -> float:
    """``value`` is a finite real number in the given range (NaN and infinities fail every range), else a
    ValueError naming ``name``."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
    if not ok:
        if math.isinf(high):
            span = f"{'>' if low_open else '>='} {low:g}"
        else:
            span = f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise ValueError(f"{name}={value!r} must be a finite number {span}{hint}")
    return float(value)


def check_indices(indices: Tensor, num_codes: int, what: str = "code indices") -> None:
    """Code ``indices`` must be integers in ``[0, num_codes)`` (an index outside wrapped round or failed deep in
    an embedding lookup)."""
    if torch.is_floating_point(indices) or indices.dtype == torch.bool:
        raise ValueError(f"{what} must be an integer tensor, got {indices.dtype}")
    if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= num_codes):
        raise ValueError(f"{what} must lie in [0, {num_codes}), got values in [{int(indices.min())}, "
                         f"{int(indices.max())}]; fix: indices of the {num_codes} codes")


def check_nonempty(z: Tensor) -> None:
    """A quantizer needs at least one vector (an empty batch gave a NaN loss)."""
    if z.numel() == 0:
        raise ValueError(f"the quantizer got no vectors (input of shape {list(z.shape)}); fix: skip empty batches")


def code_counts(indices: Tensor, num_codes: int) -> Tensor:
    """How often each of ``num_codes`` codes occurs in ``indices`` (long ``[num_codes]``); computed once per
    forward and shared by the stats, the usage monitor and the codebook updates."""
    return torch.bincount(indices.reshape(-1).detach().long(), minlength=num_codes)


def usage_stats(counts: Tensor) -> QuantizerStats:
    """Perplexity and usage of a batch, from its :func:`code_counts`."""
    num_codes = counts.numel()
    counts = counts.double()
    total = counts.sum().clamp_min(1.0)
    p = counts / total
    entropy = -(p * torch.log(p.clamp_min(1e-30))).sum()
    used = (counts > 0).sum()
    return QuantizerStats(perplexity=torch.exp(entropy).float(), usage=(used.double() / num_codes).float(),
                          num_used=used)


class UsageMonitor(torch.nn.Module):
    """Counts code assignments seen in training; after every ``window_factor * num_codes`` of them
    it warns (:class:`QuantizerCollapseWarning`) when fewer than ``min_usage`` of the codes were used,
    then starts a new window. A batch alone is a poor judge (a batch of 20 vectors cannot use 10% of
    512 codes), a window that scales with the codebook is not."""

    def __init__(self, num_codes: int, min_usage: float = 0.1, window_factor: int = 10,
                 advice: str = "a smaller codebook or a lower learning rate"):
        super().__init__()
        self.advice = advice  # what helps this quantizer (the warning names only options it has)
        self.label = ""  # which of a model's quantizers this is (e.g. "top level"), named in the warning
        if not 0.0 <= min_usage <= 1.0:
            raise ValueError(f"min_usage={min_usage} must be in [0, 1] (0 disables the collapse warning)")
        self.num_codes = num_codes
        self.min_usage = min_usage
        self.window = max(1, window_factor * num_codes)
        self.register_buffer("hist", torch.zeros(num_codes, dtype=torch.long), persistent=False)
        self.last_window_usage: float = float("nan")

    @torch.no_grad()
    def update(self, counts: Tensor, name: str) -> None:
        """Add one training batch's :func:`code_counts`."""
        self.hist += counts.to(self.hist.device)
        if int(self.hist.sum()) < self.window:
            return
        usage = float((self.hist > 0).float().mean())
        self.last_window_usage = usage
        self.hist.zero_()
        if usage < self.min_usage:
            who = f"{name} ({self.label})" if self.label else name
            warnings.warn(f"{who}: only {usage:.1%} of its {self.num_codes} codes were used over the last "
                          f"{self.window} assignments (codebook collapse); try {self.advice}",
                          QuantizerCollapseWarning, stacklevel=3)


def check_undirected(edge_index: Tensor, num_nodes: int, who: str, why: str) -> None:
    """``edge_index`` lists every edge in both directions, else a ValueError from ``who`` saying ``why`` it matters
    and naming the fix."""
    from torch_geometric.utils import is_undirected
    if not is_undirected(edge_index, num_nodes=num_nodes):
        raise ValueError(f"{who}: edge_index must list every edge in both directions ({why}); fix: "
                         "torch_geometric.utils.to_undirected(edge_index)")
