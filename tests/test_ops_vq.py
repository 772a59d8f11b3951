"""Nearest-codeword search, torch path (``gnnkit.ops.vq``): brute-force agreement on odd shapes,
chunking, ties, low-precision inputs, validation, the memory bound and the public dispatch.
The Triton kernel against this reference is in ``test_kernels_interpret.py`` (interpreter),
``test_kernels_aot.py`` (sm_90 / sm_80 compilation) and ``test_kernels_cuda.py`` (GPU)."""
import pytest
import torch

from gnnkit.ops import vq as opvq
from gnnkit.ops.vq import nearest_code, nearest_code_ref


def brute(z, codebook):
    """``[N, K]`` squared distances in fp64 from the (upcast) inputs, direct form."""
    return (z.double()[:, None, :] - codebook.double()[None, :, :]).square().sum(-1)


def check_against_brute(z, codebook, index, dist, rtol):
    """``index`` attains the brute-force minimum up to ``rtol`` (relative to the minimum + 1), equals
    ``argmin`` wherever the runner-up is farther than that, and ``dist`` is its distance."""
    d = brute(z, codebook)
    best, arg = d.min(dim=1)
    tol = rtol * (1.0 + best)
    chosen = d.gather(1, index.view(-1, 1)).squeeze(1)
    assert torch.all(chosen - best <= tol)
    gap = d.clone()
    gap.scatter_(1, arg.view(-1, 1), float("inf"))
    clear = gap.min(dim=1).values - best > tol
    assert torch.equal(index[clear], arg[clear])
    assert torch.all(dist >= 0)
    torch.testing.assert_close(dist.double(), chosen, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("N", [1, 37, 130])
@pytest.mark.parametrize("D", [3, 16, 37])
@pytest.mark.parametrize("K", [1, 5, 300])
def test_ref_matches_brute_force_odd_shapes(N, D, K):
    g = torch.Generator().manual_seed(N * 1000 + D * 10 + K)
    z, e = torch.randn(N, D, generator=g), torch.randn(K, D, generator=g)
    index, dist = nearest_code_ref(z, e)
    assert index.dtype == torch.int64 and dist.dtype == torch.float32 and index.shape == dist.shape == (N,)
    check_against_brute(z, e, index, dist, rtol=1e-5)


@pytest.mark.parametrize("chunk_size", [1, 7, 299, 300, 301, 1000, 2 ** 24])
def test_chunking_gives_the_unchunked_result(chunk_size):
    g = torch.Generator().manual_seed(1)
    z, e = torch.randn(130, 37, generator=g), torch.randn(300, 37, generator=g)
    e[250] = e[3]  # a duplicate in another codeword block when chunk_size < 300
    z[:5] = e[3]
    full = nearest_code_ref(z, e, chunk_size=130 * 300)
    got = nearest_code_ref(z, e, chunk_size=chunk_size)
    assert torch.equal(got[0], full[0]) and torch.equal(got[1], full[1])
    assert got[0][:5].tolist() == [3] * 5 and torch.all(got[1][:5] == 0)


def test_blocks_respect_chunk_size(monkeypatch):
    """No block of distances is larger than ``chunk_size`` entries, and all N x K are covered."""
    shapes = []
    real = torch.cdist

    def spy(a, b, *args, **kw):
        shapes.append((a.shape[0], b.shape[0]))
        return real(a, b, *args, **kw)

    monkeypatch.setattr(opvq.torch, "cdist", spy)
    z, e = torch.randn(100, 8), torch.randn(30, 8)
    for chunk_size, expect in ((90, [(3, 30)] * 33 + [(1, 30)]), (20, [(1, 20), (1, 10)] * 100)):
        shapes.clear()
        nearest_code_ref(z, e, chunk_size=chunk_size)
        assert shapes == expect
        assert all(n * k <= chunk_size for n, k in shapes)
        assert sum(n * k for n, k in shapes) == 100 * 30
    shapes.clear()
    nearest_code_ref(z, e)  # default: 64 MB of fp32 distances, one block here
    assert shapes == [(100, 30)] and opvq.DEFAULT_CHUNK_SIZE * 4 == 64 * 2 ** 20


def test_ties_go_to_the_lowest_index():
    # integer-valued data: every distance is exact, so the ties below are exact
    e = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [1.0, 0.0], [0.0, -1.0], [0.0, 1.0]])
    z = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [2.0, 0.0], [0.0, 5.0]])
    for chunk_size in (1, 2, 5, 100):
        index, dist = nearest_code_ref(z, e, chunk_size=chunk_size)
        assert index.tolist() == [0, 0, 1, 0, 1], chunk_size
        assert dist.tolist() == [1.0, 0.0, 0.0, 1.0, 16.0]
        assert torch.equal(index, torch.cdist(z, e).argmin(1))


def test_distance_has_no_cancellation():
    """z next to its codeword, both of norm ~1e3: the expanded form ||z||^2 - 2 z.e + ||e||^2 in
    fp32 loses everything (errors ~0.1 against distances ~1e-6, often negative); the direct form
    keeps fp32 relative accuracy."""
    g = torch.Generator().manual_seed(2)
    e = 1000 + torch.randn(64, 32, generator=g)
    z = e[torch.arange(64).flip(0)] + 1e-4 * torch.randn(64, 32, generator=g)
    index, dist = nearest_code_ref(z, e)
    assert torch.equal(index, torch.arange(64).flip(0))
    exact = brute(z, e).min(1).values
    torch.testing.assert_close(dist.double(), exact, rtol=1e-3, atol=1e-9)
    expanded = (z.square().sum(1) - 2 * (z * e[index]).sum(1) + e[index].square().sum(1))
    assert (expanded - exact.float()).abs().max() > 1000 * (dist - exact.float()).abs().max()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_inputs_give_fp32_distances(dtype):
    g = torch.Generator().manual_seed(3)
    z, e = torch.randn(37, 16, generator=g).to(dtype), torch.randn(300, 16, generator=g).to(dtype)
    index, dist = nearest_code_ref(z, e, chunk_size=1000)
    assert dist.dtype == torch.float32
    # the same as computing from the upcast inputs in fp32: nothing is rounded to the input dtype
    i32, d32 = nearest_code_ref(z.float(), e.float(), chunk_size=1000)
    assert torch.equal(index, i32) and torch.equal(dist, d32)
    check_against_brute(z, e, index, dist, rtol=1e-5)
    assert not torch.equal(dist, dist.to(dtype).float())  # would be equal if rounded to the input dtype


def test_fp64_and_mixed_dtypes():
    z, e = torch.randn(20, 5, dtype=torch.float64), torch.randn(9, 5)
    index, dist = nearest_code_ref(z, e)
    assert dist.dtype == torch.float64
    check_against_brute(z, e, index, dist, rtol=1e-12)
    _, dist2 = nearest_code_ref(torch.randn(20, 5).half(), e)
    assert dist2.dtype == torch.float32


def test_nan_rows_follow_torch_argmin():
    e = torch.tensor([[0.0, 0.0], [float("nan"), 0.0], [1.0, 1.0], [float("nan"), 1.0]])
    z = torch.tensor([[1.0, 1.0], [float("nan"), 0.0]])
    for chunk_size in (1, 2, 100):
        index, dist = nearest_code_ref(z, e, chunk_size=chunk_size)
        assert index.tolist() == [1, 0]  # torch.argmin: the first NaN is the minimum
        assert torch.isnan(dist).all()
        assert torch.equal(index, brute(z, e).argmin(1))


def test_empty_inputs():
    index, dist = nearest_code_ref(torch.randn(0, 4), torch.randn(3, 4))
    assert index.shape == dist.shape == (0,)
    index, dist = nearest_code_ref(torch.randn(3, 0), torch.randn(2, 0))  # D = 0: every distance is 0
    assert index.tolist() == [0, 0, 0] and dist.tolist() == [0.0, 0.0, 0.0]


def test_validation_names_the_argument():
    z, e = torch.randn(4, 3), torch.randn(5, 3)
    cases = [
        ((torch.randn(4), e), "z must be 2-D"),
        ((torch.randn(2, 4, 3), e), "z must be 2-D"),
        ((z, torch.randn(5, 3, 1)), "codebook must be 2-D"),
        ((z, torch.randn(0, 3)), "codebook must have at least one codeword"),
        ((z, torch.randn(5, 4)), "same width D"),
        ((z.long(), e), "z must be float"),
        ((z, e.int()), "codebook must be float"),
        ((z, e.to("meta")), "same device"),
    ]
    for fn in (nearest_code_ref, nearest_code):
        for args, msg in cases:
            with pytest.raises(ValueError, match=msg):
                fn(*args)
    with pytest.raises(TypeError, match="codebook must be a torch.Tensor"):
        nearest_code(z, [[0.0, 0.0, 0.0]])
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="chunk_size"):
            nearest_code_ref(z, e, chunk_size=bad)


def test_public_op_is_the_torch_path_on_cpu_and_detached(monkeypatch):
    monkeypatch.delenv("GNNKIT_BACKEND", raising=False)
    z = torch.randn(37, 16, requires_grad=True)
    e = torch.randn(300, 16, requires_grad=True)
    index, dist = nearest_code(z, e)
    ri, rd = nearest_code_ref(z, e)
    assert torch.equal(index, ri) and torch.equal(dist, rd)
    assert not dist.requires_grad and not index.requires_grad
    # the documented VQ-VAE use: gradients reach the codebook through the gather
    zq = e.index_select(0, index)
    (zq - z.detach()).square().mean().backward()
    assert e.grad is not None and e.grad.abs().sum() > 0
    monkeypatch.setenv("GNNKIT_BACKEND", "torch")
    assert torch.equal(nearest_code(z, e)[0], ri)


def test_public_op_under_torch_compile():
    z, e = torch.randn(37, 16), torch.randn(300, 16)

    def f(z, e):
        index, dist = nearest_code(z, e)
        return e.index_select(0, index), dist.sum()

    eager = f(z, e)
    torch._dynamo.reset()
    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")(z, e)
    for a, b in zip(compiled, eager):
        torch.testing.assert_close(a, b)


def test_benchmark_vq_stage_runs_at_toy_scale():
    from tests.conftest import load_benchmark
    bench = load_benchmark("kernels")
    rows = bench.vq_bench(torch.device("cpu"), N=64, D=8, K=32, warmup=0, repeats=2)
    assert [r["op"] for r in rows] == ["torch cdist+min", "gnnkit nearest_code (torch)"]
    for r in rows:
        assert r["error"] is None, r["error"]
        assert r["median_ms"] > 0 and len(r["times_ms"]) == 2
    md = bench.markdown({"device": "cpu", "features": 1, "heads": 2, "head_dim": 8, "copy_gbps": 1.0,
                         "memory_method": "x", "graphs": {}, "layers": {}, "train": {}, "vq": rows,
                         "summary": {"ours": "gnnkit-torch", "spmm_fwd_bwd_speedup": {}, "gat_layer": {}}})
    assert "| VQ N=64 D=8 K=32 | torch cdist+min |" in md
    assert "| VQ N=64 D=8 K=32 | gnnkit nearest_code (torch) |" in md


def test_custom_op_passes_opcheck():
    """Schema, fake (meta) implementation and dynamic-shape tracing of ``gnnkit::nearest_code``."""
    for z, e in ((torch.randn(37, 16), torch.randn(300, 16)),
                 (torch.randn(5, 3).bfloat16(), torch.randn(4, 3).double())):
        result = torch.library.opcheck(torch.ops.gnnkit.nearest_code.default, (z, e))
        assert all(v == "SUCCESS" for v in result.values()), result
