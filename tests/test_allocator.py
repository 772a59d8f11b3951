"""gnnkit.allocator.reuse_freed_memory: after it, a large tensor freed and allocated again costs no page faults
(glibc); PeakMemory keeps the setting after a measurement.  Each case runs in a child process: the setting
is process-wide and permanent."""
import json
import platform
import subprocess
import sys

import pytest

CHILD = r"""
import json, resource, sys, torch
import gnnkit.allocator as al

def step():  # three fresh 64 MiB tensors, as a training step's temporaries (above glibc's largest mmap threshold)
    a = torch.ones(16 * 2 ** 20); b = a * 2; c = b + a
    return float(c[-1])

def faults_per_step(n):
    out = []
    for _ in range(n):
        f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        step()
        out.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
    return out

res = {"before": faults_per_step(3), "applied": al.reuse_freed_memory(), "flag": al.reusing_freed_memory()}
res["after"] = faults_per_step(16)  # glibc's heap settles after a few steps (alignment remainders)
if sys.argv[1] == "peak":
    from gnnkit.profile import PeakMemory
    pm, rec = PeakMemory(torch.device("cpu")), {}
    with pm.measure(rec):
        torch.empty(64 * 2 ** 20 // 4).fill_(1.0)
    res["peak_mib"] = rec["peak_bytes"] / 2 ** 20
    res["after_measure"] = faults_per_step(16)
print(json.dumps(res))
"""


def _child(mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, mode], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(platform.system() != "Linux" or not platform.libc_ver()[0] == "glibc", reason="glibc only")
def test_freed_memory_is_reused_without_page_faults():
    res = _child("plain")
    assert res["applied"] and res["flag"]
    assert min(res["before"]) > 40_000  # 3 x 64 MiB = 48k pages, faulted in again on every step
    # glibc's heap settles within a few steps (alignment remainders): at most two 64 MiB blocks faulted in over
    # the last 8 steps, against 8 x 48k pages without the setting
    assert sum(res["after"][-8:]) <= 2 * 16_384 + 100, res["after"]


@pytest.mark.skipif(platform.system() != "Linux" or not platform.libc_ver()[0] == "glibc", reason="glibc only")
def test_peak_memory_measurement_keeps_the_setting():
    res = _child("peak")
    assert 60 < res["peak_mib"] < 80  # the measurement still sees the 64 MiB block (mmapped while measuring)
    assert sum(res["after_measure"][-8:]) <= 2 * 16_384 + 100, res  # and reuse is back on afterwards


def test_not_applied_without_glibc(monkeypatch):
    import gnnkit.allocator as al

    class NoLibc:
        def __init__(self, *a, **k):
            raise OSError("no libc.so.6")

    monkeypatch.setattr(al.ctypes, "CDLL", NoLibc)
    monkeypatch.setattr(al, "_STATE", {"reuse": False})
    assert al.reuse_freed_memory() is False and al.reusing_freed_memory() is False
