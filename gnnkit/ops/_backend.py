"""Which implementation an op runs: the Triton kernel or the pure-torch path.

Decided per call from the input's device and one environment variable:

``GNNKIT_BACKEND=auto`` (default)
    Triton on CUDA tensors when ``triton`` imports and the op has a kernel;
    the torch path otherwise.
``GNNKIT_BACKEND=torch``
    Always the torch path (the reference).
``GNNKIT_BACKEND=triton``
    Always the Triton kernel; on CPU tensors this needs ``TRITON_INTERPRET=1``
    (Triton's interpreter), which is how the tests run every kernel on CPU.
"""
from __future__ import annotations

import importlib.util
import os

import torch

_MODES = ("auto", "torch", "triton")
# whether triton is installed: looked up once, without importing it (the CPU path never
# imports triton, and torch.compile can evaluate use_triton without tracing an import)
TRITON_FOUND = importlib.util.find_spec("triton") is not None


def backend_mode() -> str:
    mode = os.environ.get("GNNKIT_BACKEND", "auto").strip().lower() or "auto"
    if mode not in _MODES:
        raise ValueError(f"GNNKIT_BACKEND={mode!r} is not one of {_MODES}; unset it or pick one of those")
    return mode


# kernels that compute in fp32 inside (softmax's exponentials, the fused attentions): float64 input keeps its
# precision, and passes gradcheck, only on the torch path
_FP32_INSIDE = ("softmax", "gat", "graph_attention")


def use_triton(op: str, t: torch.Tensor) -> bool:
    """True when ``op`` should run its Triton kernel on tensor ``t``.

    The one place the backend is chosen; the kernel itself is imported by the custom op
    that launches it (:mod:`gnnkit.ops.primitives`).  Whatever the mode, non-floating-point data
    (e.g. integer counts through ``segment_reduce``) and float64 data of the ops in ``_FP32_INSIDE``
    run the torch path, so a result does not depend on the device."""
    mode = backend_mode()
    if mode == "torch":
        return False
    if not t.is_floating_point() or (t.dtype == torch.float64 and op in _FP32_INSIDE):
        return False
    if mode == "triton":
        if not TRITON_FOUND:
            raise RuntimeError(f"GNNKIT_BACKEND=triton but triton is not installed (op {op!r}); install it or "
                               "unset GNNKIT_BACKEND to use the torch path")
        if not t.is_cuda and os.environ.get("TRITON_INTERPRET", "0") != "1":
            raise RuntimeError(
                "GNNKIT_BACKEND=triton on CPU tensors needs TRITON_INTERPRET=1 (Triton's interpreter)")
        return True
    return t.is_cuda and TRITON_FOUND
