"""Every Triton kernel compiles to a CUDA binary (cubin) for H100 (sm_90) and A100 (sm_80),
on a machine without a GPU.

The interpreter tests (``test_kernels_interpret.py``) check the kernels' numerics, but the
interpreter is lenient: it never runs Triton's type checker, layout passes, PTX generation or
``ptxas``.  Here every launcher runs for real with Triton's CUDA backend pointed at a target
architecture instead of a device: a stand-in driver names the target, each launch compiles
(``warmup=True``) and returns without running, so the outputs are garbage and only the
compilation is checked.  The launches cover what the ops send: fp32/fp16/bf16, int32/int64
indices, every reduce, with and without edge values / edge term, one head and several, a
feature width that is not a power of two, and rows split over several programs.
"""
import contextlib
import importlib.util

import pytest
import torch

pytestmark = pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton is not installed")

ARCHS = [90, 80]


class _TargetOnlyDriver:
    """Enough of a Triton driver for compiling: it names a CUDA target and never launches."""

    def __init__(self, arch: int):
        from triton.backends.compiler import GPUTarget
        self.target = GPUTarget("cuda", arch, 32)

    def get_current_device(self):
        return 0

    def get_current_stream(self, device=None):
        return 0

    def get_current_target(self):
        return self.target

    def get_active_torch_device(self):
        return torch.device("cpu")

    def is_active(self):
        return True


@contextlib.contextmanager
def compile_only(arch: int, log: list):
    """Within: every ``kernel[grid](...)`` compiles for ``sm_<arch>`` and is recorded in ``log``."""
    import os

    from triton.runtime import driver
    from triton.runtime.jit import JITFunction
    if os.environ.get("TRITON_INTERPRET") == "1":
        pytest.skip("compiling needs Triton's compiler, not its interpreter")
    if not hasattr(driver, "set_active"):
        pytest.skip("this triton has no driver.set_active (triton >= 3.0 has)")
    real_run = JITFunction.run

    touched = set()

    def run(self, *args, grid, warmup, **kwargs):
        if self not in touched:  # its per-device cache may hold another target's binder
            self.device_caches.clear()
            touched.add(self)
        kernel = real_run(self, *args, grid=grid, warmup=True, **kwargs)
        log.append((self.fn.__name__, kernel))
        return kernel

    previous = getattr(driver, "_active", None)  # None on a machine without a GPU driver
    driver.set_active(_TargetOnlyDriver(arch))
    JITFunction.run = run
    try:
        yield
    finally:
        JITFunction.run = real_run
        for fn in touched:  # no fake-target binder survives into real launches
            fn.device_caches.clear()
        driver._active = previous  # reset_active() would look for a real GPU driver


def _graph(idx_dtype, hub=40):
    """CSR with an empty row, a self-loop, a duplicate edge and a hub row longer than the split."""
    g = torch.Generator().manual_seed(0)
    src = torch.cat([torch.randint(0, 12, (30,), generator=g), torch.arange(hub) % 12, torch.tensor([3, 3, 5])])
    dst = torch.cat([torch.randint(1, 12, (30,), generator=g), torch.zeros(hub, dtype=torch.long),
                     torch.tensor([4, 4, 5])])
    order = torch.argsort(dst * 12 + src, stable=True)
    src, dst = src[order], dst[order]
    rowptr = torch.zeros(13, dtype=torch.long)
    rowptr[1:] = torch.bincount(dst, minlength=12).cumsum(0)
    key = src * 12 + dst
    perm_t = torch.argsort(key, stable=True)
    rowptr_t = torch.zeros(13, dtype=torch.long)
    rowptr_t[1:] = torch.bincount(src, minlength=12).cumsum(0)
    return (rowptr.to(idx_dtype), src.to(idx_dtype), rowptr_t.to(idx_dtype), dst[perm_t].to(idx_dtype),
            perm_t.to(idx_dtype))


def _launch_everything(dtype, idx_dtype, H, F):
    from gnnkit.kernels import (
        gat as kgat,
        graph_attention as kga,
        sddmm as ksddmm,
        segment as kseg,
        softmax as ksoftmax,
        spmm as kspmm,
        vq as kvq,
    )
    rp, col, rpt, colt, permt = _graph(idx_dtype)
    N, E = rp.numel() - 1, col.numel()
    x = torch.randn(N, H, F).to(dtype)
    v = torch.rand(E, H).to(dtype)
    go = torch.randn(N, H, F).to(dtype)
    for value in (None, v):
        for reduce in ("sum", "mean", "max", "min"):
            kspmm.spmm_fwd(rp, col, value, x, reduce)
        for reduce in ("max", "min"):
            kspmm.spmm_arg_bwd(rp, col, value, x, go, reduce, rpt, colt, permt)
    ksddmm.sddmm_fwd(rp, col, x, x)
    s = torch.randn(E, H).to(dtype)
    p = ksoftmax.segment_softmax_fwd(rp, s)
    ksoftmax.segment_softmax_bwd(rp, p, s)
    vals = torch.randn(E, H * F).to(dtype)
    for reduce in ("sum", "mean", "max", "min"):
        kseg.segment_reduce_fwd(rp, vals, reduce)
        kseg.segment_reduce_bwd(rp, vals, torch.randn(N, H * F).to(dtype), reduce)
    a_src, a_dst = torch.randn(N, H).to(dtype), torch.randn(N, H).to(dtype)
    for t in (None, torch.randn(E, H).to(dtype)):
        out, m, z = kgat.gat_fwd(rp, col, x, a_src, a_dst, t, 0.2)
        kgat.gat_bwd(rp, col, rpt, colt, permt, x, a_src, a_dst, t, out, m, z, go, 0.2)
    # nearest codeword: D = H * F (37, 64, 260), a codebook spanning several BLOCK_K chunks, a strided z
    codebook = torch.randn(70, H * F).to(dtype)
    kvq.nearest_code_fwd(x.view(N, H * F), codebook)
    kvq.nearest_code_fwd(torch.randn(H * F, N).to(dtype).t(), codebook)
    # dense per-graph attention: head width F (37, 16, 130: BLOCK_D 64, 16, 256), with and without bias / mask
    q = torch.randn(3, H, 21, F).to(dtype)
    n, dist = torch.tensor([21, 5, 0]), torch.randint(0, 6, (3, 21, 21))
    for bias in (None, torch.randn(H, 6).to(dtype)):
        for adj in (False, True):
            out, lse = kga.graph_attention_fwd(q, q, q, n, dist, bias, adj, 0.1, True)
            kga.graph_attention_bwd(q, q, q, n, dist, bias, adj, 0.1, out, lse, q)


@pytest.mark.parametrize("arch", ARCHS)
def test_every_kernel_compiles_to_cubin(arch, monkeypatch):
    monkeypatch.setenv("GNNKIT_ROW_SPLIT", "16")  # the hub row (40 edges) is split over programs
    log = []
    with compile_only(arch, log):
        for dtype, idx_dtype, H, F in ((torch.float32, torch.int64, 1, 37), (torch.float16, torch.int32, 4, 16),
                                       (torch.bfloat16, torch.int64, 2, 130)):
            _launch_everything(dtype, idx_dtype, H, F)
    assert log, "no kernel was launched"
    for name, kernel in log:
        assert kernel is not None and len(kernel.asm["cubin"]) > 0, name
        assert f"sm_{arch}" in kernel.asm["ptx"] or f".target sm_{arch}" in kernel.asm["ptx"], name
    # every @triton.jit kernel of every module was compiled at least once
    from triton.runtime.jit import JITFunction

    import gnnkit.kernels as K
    defined = set()
    for mod in (K.spmm, K.sddmm, K.softmax, K.segment, K.gat, K.vq, K.graph_attention):
        defined |= {name for name, obj in vars(mod).items()
                    if isinstance(obj, JITFunction) and name.endswith("_kernel") and obj.__module__ == mod.__name__}
    compiled = {name for name, _ in log}
    assert defined <= compiled, f"never compiled: {sorted(defined - compiled)}"
