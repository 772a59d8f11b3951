r"""Nearest-codeword search for vector quantisation (`VQ-VAE <https://arxiv.org/abs/1711.00937>`_).

.. math::
    k^*_n = \operatorname*{arg\,min}_k \lVert \mathbf{z}_n - \mathbf{e}_k \rVert_2^2,
    \qquad d_n = \lVert \mathbf{z}_n - \mathbf{e}_{k^*_n} \rVert_2^2

for ``z`` ``[N, D]`` and a codebook ``e`` ``[K, D]``.  Ties go to the lowest index (as
``torch.argmin``); a row whose distances are NaN gets the first NaN codeword and
``d = NaN`` (also as ``torch.argmin``).  Distances are computed in fp32 from the
upcast inputs for fp32/fp16/bf16 (fp64 if either input is fp64) in the direct form
``sum((z - e)^2)``, never as ``||z||^2 - 2 z.e + ||e||^2``, which cancels where VQ
looks (``z`` next to its codeword) and can go negative; so ``d >= 0``.

Neither path builds the ``N x K`` distance matrix at once: on CUDA the Triton kernel
(``gnnkit.kernels.vq``) fuses distance and arg-min over codebook chunks in registers;
the torch path (:func:`nearest_code_ref`) works on ``[rows, codewords]`` blocks of at
most ``chunk_size`` entries.

No autograd: the index is not differentiable and the distance is returned detached.
Callers gather the codewords and build the losses themselves, e.g. (VQ-VAE with the
straight-through estimator)::

    idx, _ = nearest_code(z_e, codebook)                 # [N] int64
    z_q = codebook.index_select(0, idx)                  # gradient reaches the codebook
    loss = F.mse_loss(z_q, z_e.detach()) + beta * F.mse_loss(z_e, z_q.detach())
    z_q = z_e + (z_q - z_e).detach()                     # straight-through to the encoder
"""
from typing import Tuple

import torch
from torch import Tensor

from ._backend import use_triton
from ._custom_op import custom_op

DEFAULT_CHUNK_SIZE = 1 << 24  # distance entries per block of the torch path: 64 MB of fp32
_FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _check(z: Tensor, codebook: Tensor) -> None:
    for name, t in (("z", z), ("codebook", codebook)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dtype not in _FLOATS:
            raise ValueError(f"{name} must be float16, bfloat16, float32 or float64, got {t.dtype}")
    if z.dim() != 2:
        raise ValueError(f"z must be 2-D [N, D], got shape {list(z.shape)}; flatten leading dims with "
                         "z.reshape(-1, D)")
    if codebook.dim() != 2:
        raise ValueError(f"codebook must be 2-D [K, D], got shape {list(codebook.shape)}")
    if codebook.shape[0] == 0:
        raise ValueError("codebook must have at least one codeword (K >= 1), got K=0")
    if z.shape[1] != codebook.shape[1]:
        raise ValueError(f"z and codebook must have the same width D, got z {list(z.shape)} and codebook "
                         f"{list(codebook.shape)}")
    if z.device != codebook.device:
        raise ValueError(f"z and codebook must be on the same device, got z on {z.device} and codebook on "
                         f"{codebook.device}")


def _acc_dtype(z: Tensor, codebook: Tensor) -> torch.dtype:
    return torch.float64 if torch.float64 in (z.dtype, codebook.dtype) else torch.float32


def nearest_code_ref(z: Tensor, codebook: Tensor, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Tuple[Tensor, Tensor]:
    """Pure-torch nearest codeword: ``(index [N] int64, dist [N] fp32)`` (fp64 for fp64 inputs).

    Args:
        z: ``[N, D]`` vectors to quantise.
        codebook: ``[K, D]`` codewords, ``K >= 1``.
        chunk_size: most distance entries computed at once (default ``2**24``, 64 MB of
            fp32): blocks of ``max(1, chunk_size // K)`` rows against the whole codebook,
            or, when one row's ``K`` distances exceed it, single rows against blocks of
            ``chunk_size`` codewords, combined so that ties keep the lowest index.

    The search uses ``torch.cdist(..., compute_mode="donot_use_mm_for_euclid_dist")`` (the
    direct difference form, no matrix-multiply expansion); the returned distance is then
    recomputed as ``sum((z - e[index])^2)`` in the accumulation type, so it is the squared
    distance itself, not a squared square root.
    """
    _check(z, codebook)
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int (distance entries per block), got {chunk_size!r}")
    acc = _acc_dtype(z, codebook)
    N, K = z.shape[0], codebook.shape[0]
    with torch.no_grad():
        zf = z.detach().to(acc)
        ef = codebook.detach().to(acc)
        index = torch.empty(N, dtype=torch.long, device=z.device)
        rows = max(1, chunk_size // K)
        cols = min(K, chunk_size)
        for r0 in range(0, N, rows):
            zc = zf[r0:r0 + rows]
            best_v = best_i = None
            for c0 in range(0, K, cols):
                d = torch.cdist(zc, ef[c0:c0 + cols], compute_mode="donot_use_mm_for_euclid_dist")  # [n, k]
                v, i = d.min(dim=1)  # first minimum (first NaN) of the block
                if best_v is None:
                    best_v, best_i = v, i
                    continue
                # a later block wins only with a strictly smaller distance, or a NaN over a number
                upd = (v < best_v) | (torch.isnan(v) & ~torch.isnan(best_v))
                best_v = torch.where(upd, v, best_v)
                best_i = torch.where(upd, i + c0, best_i)
            index[r0:r0 + rows] = best_i
        dist = (zf - ef.index_select(0, index)).square_().sum(dim=1)  # [N], >= 0 (or NaN)
    return index, dist


@custom_op("gnnkit::nearest_code")
def _nearest_code_op(z: Tensor, codebook: Tensor) -> Tuple[Tensor, Tensor]:
    if use_triton("vq", z):
        from gnnkit.kernels import vq as kernels
        return kernels.nearest_code_fwd(z, codebook)
    return nearest_code_ref(z, codebook)


@_nearest_code_op.register_fake
def _(z, codebook):
    acc = _acc_dtype(z, codebook)
    return z.new_empty(z.shape[:1], dtype=torch.long), z.new_empty(z.shape[:1], dtype=acc)


def nearest_code(z: Tensor, codebook: Tensor) -> Tuple[Tensor, Tensor]:
    """Nearest codeword of every row of ``z`` under squared L2.

    Args:
        z: ``[N, D]`` fp32/fp16/bf16/fp64 vectors to quantise (flatten leading dims first).
        codebook: ``[K, D]`` codewords on the same device, ``K >= 1``.

    Returns:
        ``(index, dist)``: ``index`` ``[N]`` int64, the lowest index attaining the minimum;
        ``dist`` ``[N]`` fp32 (fp64 for fp64 inputs), the squared distance to that codeword,
        ``>= 0``, detached (no autograd: gather ``codebook[index]`` and build losses from it).

    Runs the fused Triton kernel on CUDA (``GNNKIT_BACKEND=auto``, the default) and
    :func:`nearest_code_ref` otherwise; ``GNNKIT_BACKEND=torch|triton`` forces either.
    """
    _check(z, codebook)
    return _nearest_code_op(z.detach(), codebook.detach())
