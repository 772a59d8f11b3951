"""Vector quantizer (VQ-VAE, van den Oord et al., NeurIPS 2017, https://arxiv.org/abs/1711.00937).

The lecture's loss, with :math:`\\mathrm{sg}` the stop-gradient and :math:`e_k` the nearest codeword:

.. math::
    \\mathcal{L} = \\underbrace{\\| \\mathrm{sg}[z_e] - e_k \\|_2^2}_{\\text{codebook}}
                 + \\beta \\underbrace{\\| z_e - \\mathrm{sg}[e_k] \\|_2^2}_{\\text{commitment}}, \\qquad \\beta = 0.25,

the decoder's gradient copied to the encoder (straight-through: :math:`z_q = z_e + \\mathrm{sg}[e_k - z_e]`),
or passed through a rotation (Fifty et al. 2024, https://arxiv.org/abs/2410.06424). With ``ema=True`` the
codebook term is replaced by exponential moving averages (VQ-VAE appendix; Razavi et al. 2019):

.. math::
    N_k \\leftarrow \\gamma N_k + (1-\\gamma) n_k, \\quad
    m_k \\leftarrow \\gamma m_k + (1-\\gamma) \\sum_{i: k_i = k} z_i,
    \\quad e_k = m_k / \\tilde N_k, \\quad \\tilde N_k = \\frac{N_k + \\epsilon}{\\sum_j N_j + K\\epsilon} \\sum_j N_j

(the Laplace-smoothed counts :math:`\\tilde N_k` keep unused codes from dividing by zero).

Scale: by default both terms are averaged over all ``N * D`` entries (``F.mse_loss``, as the VQ-VAE
reference implementation in Sonnet does), i.e. the lecture's per-vector squared norms divided by ``D``;
``loss_reduction="sum"`` gives the lecture's literal form (squared norms over ``D``, averaged over the
``N`` vectors).  β's weighting of the two terms is the same either way.

Nearest codewords come from :func:`gnnkit.ops.nearest_code` (a fused distance + arg-min Triton kernel on
CUDA, a chunked torch path elsewhere: never an ``N × K`` matrix for large codebooks), in fp32 whatever
the input dtype.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from gnnkit.ops import nearest_code

from ._common import (
    QuantizerOutput,
    UsageMonitor,
    check_indices,
    check_int,
    check_nonempty,
    check_number,
    code_counts,
    usage_stats,
    work_dtype,
)

METRICS = ("l2", "cosine")
GRADIENTS = ("straight_through", "rotation")


def rotate_to(z: Tensor, e: Tensor, eps: float = 1e-8) -> Tensor:
    """The rotation trick: :math:`\\mathrm{sg}[\\lambda R]\\, z`, where :math:`R` rotates
    :math:`\\hat z` onto :math:`\\hat e` and :math:`\\lambda = \\|e\\| / \\|z\\|`, so the forward value is ``e``
    and the gradient reaching ``z`` is the decoder's, rotated and scaled. ``R z`` is computed as
    :math:`z - 2 r (r^\\top z) + 2 \\hat e (\\hat z^\\top z)` with
    :math:`r = (\\hat z + \\hat e)/\\|\\hat z + \\hat e\\|`
    (never a ``D × D`` matrix). Vectors pointing exactly away from their codeword, and zero vectors, fall
    back to the straight-through copy."""
    z_norm = z.detach().norm(dim=-1, keepdim=True)
    zn = z_norm.clamp_min(eps)
    en = e.detach().norm(dim=-1, keepdim=True).clamp_min(eps)
    u, q = z.detach() / zn, e.detach() / en
    s = u + q
    sn = s.norm(dim=-1, keepdim=True)
    r = s / sn.clamp_min(eps)
    rz = z - 2 * r * (r * z).sum(-1, keepdim=True) + 2 * q * (u * z).sum(-1, keepdim=True)
    rotated = (en / zn) * rz
    straight = z + (e - z).detach()
    # a zero z has no direction to rotate (the scaled rotation would give 0, not e): straight-through too
    return torch.where((sn > 1e-4) & (z_norm > eps), rotated, straight)


def kmeans(x: Tensor, k: int, iters: int = 10, generator: Optional[torch.Generator] = None) -> Tensor:
    """Lloyd's k-means on ``x`` ``[M, D]`` (fp32) with k-means++ seeding (Arthur & Vassilvitskii 2007:
    each new centre drawn with probability proportional to the squared distance to the nearest chosen
    one); with ``M < k`` rows the extra centres are rows plus small noise. An empty cluster keeps its
    centre. Draws come from ``generator`` (CPU), or torch's global generator."""
    m = x.size(0)
    if m == 0 or x.dim() != 2:
        raise ValueError(f"x must be [M, D] with M >= 1 vectors, got shape {list(x.shape)}")
    if k < 1 or iters < 1:
        raise ValueError(f"k={k} and iters={iters} must be >= 1")
    first = int(torch.randint(0, m, (1,), generator=generator))
    centres = [x[first]]
    d2 = (x - x[first]).square().sum(1)
    for _ in range(1, min(k, m)):
        total = d2.sum()
        if not bool(total > 0):
            break
        nxt = int(torch.multinomial((d2 / total).cpu(), 1, generator=generator))
        centres.append(x[nxt])
        d2 = torch.minimum(d2, (x - x[nxt]).square().sum(1))
    c = torch.stack(centres)
    if c.size(0) < k:  # fewer distinct rows than codes: jittered copies
        pick = torch.randint(0, c.size(0), (k - c.size(0),), generator=generator).to(x.device)
        noise = torch.randn(k - c.size(0), x.size(1), generator=generator).to(x.device)
        c = torch.cat([c, c.index_select(0, pick) + 1e-3 * x.std().nan_to_num(1.0).clamp_min(1e-3) * noise])
    for _ in range(iters):
        idx, _ = nearest_code(x, c)
        sums = torch.zeros_like(c).index_add_(0, idx, x)
        counts = torch.bincount(idx, minlength=k).to(x.dtype).unsqueeze(1)
        c = torch.where(counts > 0, sums / counts.clamp_min(1), c)
    return c


class VectorQuantizer(torch.nn.Module):
    """Nearest-codeword quantizer with codebook/commitment losses or EMA codebook updates.

    Args:
        num_codes (int): codebook size :math:`K`.
        dim (int): codeword width :math:`D` (input and output).
        beta (float): commitment weight (0.25 as in the paper).
        metric (str): ``"l2"`` or ``"cosine"`` (inputs and codewords are L2-normalised first; the
            output then has unit norm).
        ema (bool): update the codebook by EMA instead of the codebook loss.
        decay (float): EMA decay :math:`\\gamma`.
        eps (float): Laplace smoothing :math:`\\epsilon` of the EMA counts.
        kmeans_init (bool): on the first training forward, set the codebook to k-means centres of
            that batch (``kmeans_iters`` Lloyd steps).
        dead_code_threshold (float): codes whose moving-average count of assignments per batch (decay
            ``decay``) falls below this are moved onto random vectors of the batch, at the start of the
            next training forward (0 disables). A moved code restarts at the expected use per code.
        gradient (str): ``"straight_through"`` or ``"rotation"`` (the rotation trick).
        min_usage (float): warn (:class:`QuantizerCollapseWarning`) when fewer than this fraction of the
            codes are used over a window of ``10 * num_codes`` training assignments.
        loss_reduction (str): ``"mean"`` (default: over all entries, as Sonnet) or ``"sum"`` (squared norms
            over the ``D`` features, mean over vectors: the lecture's form, ``D`` times the default).

    Shapes: input ``[..., D]`` → quantized ``[..., D]``, indices ``[...]`` (long).
    """

    def __init__(self, num_codes: int, dim: int, beta: float = 0.25, metric: str = "l2", ema: bool = False,
                 decay: float = 0.99, eps: float = 1e-5, kmeans_init: bool = False, kmeans_iters: int = 10,
                 dead_code_threshold: float = 0.0, gradient: str = "straight_through", min_usage: float = 0.1,
                 loss_reduction: str = "mean"):
        super().__init__()
        check_int("num_codes", num_codes, 1)
        check_int("dim", dim, 1)
        check_number("beta", beta, 0.0, hint=" (the paper uses 0.25)")
        check_number("decay", decay, 0.0, 1.0, low_open=True, high_open=True, hint=", e.g. 0.99")
        check_number("eps", eps, 0.0, low_open=True, hint=" (Laplace smoothing of the EMA counts)")
        check_number("dead_code_threshold", dead_code_threshold, 0.0, hint=" (0 disables restarts)")
        check_int("kmeans_iters", kmeans_iters, 1)
        if metric not in METRICS:
            raise ValueError(f"metric={metric!r} is not supported; use one of {METRICS}")
        if gradient not in GRADIENTS:
            raise ValueError(f"gradient={gradient!r} is not supported; use one of {GRADIENTS}")
        if loss_reduction not in ("mean", "sum"):
            raise ValueError(f"loss_reduction={loss_reduction!r} is not supported; use 'mean' (over all entries) or "
                             "'sum' (squared norms over the features, the lecture's form)")
        self.loss_reduction = loss_reduction
        if not beta >= 0:
            raise ValueError(f"beta={beta} must be >= 0 (the paper uses 0.25)")
        if not 0.0 < decay < 1.0:
            raise ValueError(f"decay={decay} must be in (0, 1), e.g. 0.99")
        if eps <= 0:
            raise ValueError(f"eps={eps} must be > 0 (Laplace smoothing of the EMA counts)")
        if dead_code_threshold < 0:
            raise ValueError(f"dead_code_threshold={dead_code_threshold} must be >= 0 (0 disables restarts)")
        if kmeans_iters < 1:
            raise ValueError(f"kmeans_iters={kmeans_iters} must be >= 1")
        self.num_codes, self.dim, self.input_dim = num_codes, dim, dim
        self.beta, self.metric, self.ema, self.decay, self.eps = float(beta), metric, ema, float(decay), float(eps)
        self.kmeans_init, self.kmeans_iters = kmeans_init, kmeans_iters
        self.dead_code_threshold, self.gradient = float(dead_code_threshold), gradient
        if ema:
            self.register_buffer("codebook", torch.empty(num_codes, dim))
            self.register_buffer("cluster_size", torch.zeros(num_codes))
            self.register_buffer("embed_sum", torch.empty(num_codes, dim))
        else:
            self.codebook = torch.nn.Parameter(torch.empty(num_codes, dim))
        self.register_buffer("usage_ema", torch.zeros(num_codes))
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))
        # restarts found in one training forward, applied at the start of the next (saved with the weights,
        # so a resumed run applies them as an uninterrupted one would)
        self.register_buffer("restart_pending", torch.zeros(num_codes, dtype=torch.bool))
        self.register_buffer("restart_vectors", torch.zeros(num_codes, dim))
        self.monitor = UsageMonitor(num_codes, min_usage, advice="kmeans_init=True, dead_code_threshold > 0, a "
                                    "smaller codebook or a lower learning rate")
        self.reset_parameters()

    def reset_parameters(self) -> None:
        with torch.no_grad():
            # uniform(-1/K, 1/K) as in the VQ-VAE reference (sonnet); EMA: unit normal, as Razavi et al.
            if self.ema:
                self.codebook.normal_()
                self.embed_sum.copy_(self.codebook)
                self.cluster_size.fill_(1.0)
            else:
                self.codebook.uniform_(-1.0 / self.num_codes, 1.0 / self.num_codes)
            self.usage_ema.zero_()
            self.initialised.fill_(not self.kmeans_init)
            self.restart_pending.zero_()

    def _codewords(self, dtype: Optional[torch.dtype] = None) -> Tensor:
        w = self.codebook.to(work_dtype(self.codebook) if dtype is None else dtype)
        return F.normalize(w, dim=-1) if self.metric == "cosine" else w

    def codes_from_indices(self, indices: Tensor) -> Tensor:
        """Codewords ``[..., D]`` of ``indices`` ``[...]`` (normalised under ``metric="cosine"``)."""
        check_indices(indices, self.num_codes)
        w = F.normalize(self.codebook, dim=-1) if self.metric == "cosine" else self.codebook
        return F.embedding(indices.long(), w)

    @torch.no_grad()
    def _init_kmeans(self, zf: Tensor) -> None:
        centres = kmeans(zf, self.num_codes, self.kmeans_iters)
        self.codebook.data.copy_(centres)
        counts = torch.bincount(nearest_code(zf, centres)[0], minlength=self.num_codes).float()
        # the usage average starts from this batch's assignments (at least the expected share per code),
        # so that dead-code restarts do not undo the k-means centres on the first step
        self.usage_ema.copy_(counts.clamp_min(zf.size(0) / self.num_codes))
        if self.ema:
            self.cluster_size.fill_(1.0)
            self.embed_sum.copy_(centres)
        self.initialised.fill_(True)

    @torch.no_grad()
    def _ema_update(self, zf: Tensor, idx: Tensor, counts: Tensor) -> None:
        counts = counts.to(self.cluster_size.dtype)  # (zf in the work dtype, float64 for a float64 input)
        sums = zf.new_zeros(self.num_codes, self.dim).index_add_(0, idx, zf).to(self.embed_sum.dtype)
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.embed_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        n = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.eps) / (n + self.num_codes * self.eps) * n
        self.codebook.copy_(self.embed_sum / smoothed.unsqueeze(1))

    @torch.no_grad()
    def _find_dead(self, zf: Tensor, counts: Tensor) -> None:
        """Update the usage average; codes below ``dead_code_threshold`` get a random vector of this
        batch, applied at the start of the next training forward (not now: the current step's
        backward still needs the codebook as it was)."""
        if not bool(self.usage_ema.any()):
            # the first training step (no k-means init seeded the average): it starts as this batch's use (the
            # bias-corrected average of one step); an average from zero would read 1 % of every count and
            # restart codes in full use
            self.usage_ema.copy_(counts.float())
        else:
            self.usage_ema.mul_(self.decay).add_(counts.float(), alpha=1 - self.decay)
        if self.dead_code_threshold <= 0:
            return
        dead = (self.usage_ema < self.dead_code_threshold).nonzero().flatten()
        if dead.numel() == 0:
            return
        pick = torch.randint(0, zf.size(0), (dead.numel(),), device="cpu").to(zf.device)
        # grace: a restarted code starts at the expected use per code, not at the threshold
        self.usage_ema[dead] = max(self.dead_code_threshold, zf.size(0) / self.num_codes)
        self.restart_pending[dead] = True
        self.restart_vectors[dead] = zf.index_select(0, pick).to(self.restart_vectors.dtype)

    @torch.no_grad()
    def _apply_restart(self) -> None:
        if not bool(self.restart_pending.any()):
            return
        dead = self.restart_pending.nonzero().flatten()
        new = self.restart_vectors.index_select(0, dead)
        self.restart_pending.zero_()
        self.codebook.data[dead] = new.to(self.codebook.dtype)
        if self.ema:
            self.cluster_size[dead] = 1.0
            self.embed_sum[dead] = new

    def forward(self, z: Tensor) -> QuantizerOutput:
        if z.size(-1) != self.dim:
            raise ValueError(f"input has width {z.size(-1)}; this VectorQuantizer expects dim={self.dim}")
        if not torch.is_floating_point(z):
            raise ValueError(f"input must be a floating tensor, got {z.dtype}")
        check_nonempty(z)
        shape = z.shape[:-1]
        wd = work_dtype(z, self.codebook)  # fp32 for fp16/bf16, fp64 for a float64 input or codebook
        zf = z.reshape(-1, self.dim).to(wd)
        if self.metric == "cosine":
            zf = F.normalize(zf, dim=-1)
        if self.training:
            self._apply_restart()
            if not bool(self.initialised):
                self._init_kmeans(zf.detach())
        codewords = self._codewords(wd)
        idx, _ = nearest_code(zf.detach(), codewords.detach())
        e = codewords.index_select(0, idx)
        scale = float(self.dim) if self.loss_reduction == "sum" else 1.0  # mean over N*D -> sum over D
        commitment = F.mse_loss(zf, e.detach()) * scale
        loss = self.beta * commitment
        if not self.ema:
            loss = loss + F.mse_loss(e, zf.detach()) * scale
        if not zf.requires_grad:
            out = e.detach()  # nothing to pass a gradient to: the codewords themselves (exactly)
        else:
            out = rotate_to(zf, e) if self.gradient == "rotation" else zf + (e - zf).detach()
        counts = code_counts(idx, self.num_codes)
        if self.training:
            if self.ema:
                self._ema_update(zf.detach(), idx, counts)
            self._find_dead(zf.detach(), counts)
            self.monitor.update(counts, type(self).__name__)
        return QuantizerOutput(out.to(z.dtype).reshape(*shape, self.dim), idx.reshape(shape), loss,
                               usage_stats(counts))

    def extra_repr(self) -> str:
        return (f"{self.num_codes}, {self.dim}, beta={self.beta}, metric={self.metric!r}, ema={self.ema}, "
                f"gradient={self.gradient!r}" + (f", loss_reduction={self.loss_reduction!r}"
                                                 if self.loss_reduction != "mean" else ""))
