r"""Triton nearest-codeword search (vector quantisation, VQ-VAE):
``index[n] = argmin_k ||z[n] - e[k]||^2`` and ``dist[n] = min_k ||z[n] - e[k]||^2``.

Schedule: one program per block of ``BLOCK_N`` rows of ``z``; it walks the codebook in
``BLOCK_K`` chunks and, for each chunk, the feature dimension in ``BLOCK_D`` tiles,
accumulating ``sum((z - e)^2)`` for a ``[BLOCK_N, BLOCK_K]`` tile in registers (fp32;
fp64 for fp64 inputs), then folds the chunk into a running (minimum, index) pair.  The
``N x K`` distance matrix never reaches memory: memory is the two outputs only.

Distance form: the difference is formed before squaring, never the expanded
``||z||^2 - 2 z.e + ||e||^2``.  The expanded form lets the cross term use tensor cores,
but it cancels catastrophically exactly where VQ looks (z close to its codeword: an
error of ``eps * (||z||^2 + ||e||^2)`` against a small result, which can be negative and
can reorder close codewords), and with fp32 inputs ``tl.dot`` would round them to TF32.
The direct form is exact up to fp32 rounding of non-negative terms, so ``dist >= 0``
always, and duplicate codewords give bitwise equal distances, so ties resolve like
``torch.argmin``: within a chunk the lowest index attaining the minimum, across chunks
only a strictly smaller distance replaces the running one.  A NaN distance counts as
the smallest (as in ``torch.argmin``): the first NaN codeword wins and ``dist`` is NaN.
"""
from __future__ import annotations

from typing import Tuple

import torch
import triton
import triton.language as tl

from ._config import acc_dtype, check_float, code_blocks, torch_acc_dtype


@triton.jit
def _nearest_code_fwd_kernel(z_ptr, e_ptr, idx_ptr, dist_ptr, N, K, D,
                             stride_zn, stride_zd, stride_ek, stride_ed,
                             ACC: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                             BLOCK_D: tl.constexpr):
    pid = tl.program_id(0).to(tl.int64)
    offs_n = pid * BLOCK_N + tl.arange(0, BLOCK_N).to(tl.int64)
    nmask = offs_n < N
    best_d = tl.full([BLOCK_N], float("inf"), ACC)
    best_i = tl.zeros([BLOCK_N], tl.int64)
    for k0 in range(0, K, BLOCK_K):
        offs_k = k0 + tl.arange(0, BLOCK_K).to(tl.int64)
        kmask = offs_k < K
        acc = tl.zeros([BLOCK_N, BLOCK_K], ACC)
        for d0 in range(0, D, BLOCK_D):
            offs_d = (d0 + tl.arange(0, BLOCK_D)).to(tl.int64)
            dmask = offs_d < D
            zt = tl.load(z_ptr + offs_n[:, None] * stride_zn + offs_d[None, :] * stride_zd,
                         mask=nmask[:, None] & dmask[None, :], other=0.0).to(ACC)  # [BN, BD]
            et = tl.load(e_ptr + offs_k[:, None] * stride_ek + offs_d[None, :] * stride_ed,
                         mask=kmask[:, None] & dmask[None, :], other=0.0).to(ACC)  # [BK, BD]
            diff = zt[:, None, :] - et[None, :, :]  # [BN, BK, BD]
            acc += tl.sum(diff * diff, axis=2)
        acc = tl.where(acc != acc, -1.0, acc)  # NaN sorts first (distances are otherwise >= 0)
        acc = tl.where(kmask[None, :], acc, float("inf"))
        cmin = tl.min(acc, axis=1)  # [BN]
        cidx = tl.min(tl.where(acc == cmin[:, None], offs_k[None, :], K), axis=1)  # lowest tied index
        upd = cmin < best_d  # strict: an earlier chunk keeps its tie
        best_i = tl.where(upd, cidx, best_i)
        best_d = tl.where(upd, cmin, best_d)
    best_d = tl.where(best_d < 0, float("nan"), best_d)
    tl.store(idx_ptr + offs_n, best_i, mask=nmask)
    tl.store(dist_ptr + offs_n, best_d.to(dist_ptr.dtype.element_ty), mask=nmask)


def _check(z: torch.Tensor, codebook: torch.Tensor) -> None:
    check_float("z", z)
    check_float("codebook", codebook)
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


def nearest_code_fwd(z: torch.Tensor, codebook: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(index [N] int64, dist [N])`` for ``z`` ``[N, D]`` and ``codebook`` ``[K, D]``.

    ``dist`` is the squared L2 distance to the chosen codeword, fp32 (fp64 if either input
    is fp64), accumulated in that type from the upcast inputs; ties go to the lowest index.
    Strided inputs are read in place (strides are passed to the kernel).
    """
    _check(z, codebook)
    N, D = z.shape
    K = codebook.shape[0]
    wide = torch.float64 if torch.float64 in (z.dtype, codebook.dtype) else torch.float32
    index = torch.empty(N, dtype=torch.int64, device=z.device)
    dist = torch.empty(N, dtype=torch_acc_dtype(wide), device=z.device)
    if N == 0:
        return index, dist
    BLOCK_N, BLOCK_K, BLOCK_D, warps = code_blocks(D, wide)
    _nearest_code_fwd_kernel[(triton.cdiv(N, BLOCK_N),)](
        z, codebook, index, dist, N, K, D, z.stride(0), z.stride(1), codebook.stride(0), codebook.stride(1),
        ACC=acc_dtype(wide), BLOCK_N=BLOCK_N, BLOCK_K=BLOCK_K, BLOCK_D=BLOCK_D, num_warps=warps)
    return index, dist
