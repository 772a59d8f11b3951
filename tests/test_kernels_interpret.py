"""Every Triton kernel against the torch reference, on CPU under Triton's interpreter.

With triton 3.9 the interpreter must be switched on before ``triton`` is first
imported (its own ``tl.sum``/``tl.max`` helpers are decorated at import), and
switching it on for the whole pytest process would make every later CUDA test
interpret its kernels.  So, unless ``TRITON_INTERPRET=1`` was set when this
process started, the module runs itself in a child pytest with
``TRITON_INTERPRET=1`` (``test_interpreter_subprocess``) and skips its other tests
in the parent.  In the child each test runs with ``GNNKIT_BACKEND=triton`` and a
row-split length of 8, so row splitting is exercised on tiny graphs.

Run directly: ``TRITON_INTERPRET=1 pytest tests/test_kernels_interpret.py``.
"""
import os
import subprocess
import sys
from pathlib import Path

IN_INTERPRETER = os.environ.get("TRITON_INTERPRET") == "1"

import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st

from gnnkit.kernels import (
    _config,
    gat as kgat,
    sddmm as ksddmm,
    segment as kseg,
    softmax as ksoftmax,
    spmm as kspmm,
    vq as kvq,
)
from gnnkit.ops import as_graph, gat_attention, sddmm, segment_reduce, segment_softmax, spmm
from gnnkit.ops.graph import Graph
from gnnkit.ops.sddmm import sddmm_csr_ref
from gnnkit.ops.segment import segment_reduce_bwd_ref, segment_reduce_ref
from gnnkit.ops.softmax import segment_softmax_bwd_ref, segment_softmax_ref
from gnnkit.ops.spmm import spmm_arg_bwd_ref, spmm_csr_ref
from gnnkit.ops.vq import nearest_code, nearest_code_ref
from tests.test_ops_vq import brute, check_against_brute


def test_interpreter_subprocess():
    """Parent process: run this module under the interpreter in a child pytest."""
    if IN_INTERPRETER:
        pytest.skip("already running under TRITON_INTERPRET=1")
    env = {**os.environ, "TRITON_INTERPRET": "1", "GNNKIT_BACKEND": "triton"}
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.run([sys.executable, "-m", "pytest", str(Path(__file__).resolve()), "-q", "-x",
                           "-p", "no:cacheprovider", "-W", "ignore::DeprecationWarning"],
                          cwd=str(root), env=env, capture_output=True, text=True, timeout=900)
    tail = (proc.stdout + proc.stderr)[-6000:]
    assert proc.returncode == 0, f"interpreter tests failed (rc={proc.returncode}):\n{tail}"
    assert " passed" in tail and "failed" not in tail, tail


SPLIT = 8  # row-split length in these tests: rows longer than 8 slots are cut into chunks
TOL = {torch.float32: (2e-5, 2e-5), torch.float16: (2e-3, 2e-3), torch.bfloat16: (1.6e-2, 1.6e-2)}
REDUCES = ["sum", "mean", "max", "min"]


@pytest.fixture(autouse=True)
def _interpreter(monkeypatch, request):
    if not IN_INTERPRETER and request.node.name != "test_interpreter_subprocess":
        pytest.skip("runs in the interpreter child process (test_interpreter_subprocess)")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    monkeypatch.setenv("GNNKIT_BACKEND", "triton")
    monkeypatch.setenv("GNNKIT_ROW_SPLIT", str(SPLIT))


def close(a, b, dtype, scale=1.0):
    rtol, atol = TOL[dtype]
    torch.testing.assert_close(a.float(), b.float(), rtol=rtol * scale, atol=atol * scale)


def adversarial_edges(seed=0):
    """16 nodes: hub 0 with 18 in-edges (3 chunks of 8, duplicates included), self-loops,
    a duplicated edge, isolated nodes 10 and 11 (no edges at all), degree-1 rows;
    shuffled so the input order differs from the CSR order."""
    g = torch.Generator().manual_seed(seed)
    N = 16
    hub_src = torch.cat([torch.arange(1, 16), torch.tensor([1, 2, 3])])
    src = [hub_src, torch.tensor([3, 4, 2, 2, 5, 6, 7, 8, 9, 12, 13, 14, 15]), torch.randint(12, 16, (4,), generator=g)]
    dst = [torch.zeros(18, dtype=torch.long), torch.tensor([3, 4, 1, 1, 6, 7, 8, 9, 5, 13, 14, 15, 12]),
           torch.randint(12, 16, (4,), generator=g)]
    ei = torch.stack([torch.cat(src), torch.cat(dst)])
    return ei[:, torch.randperm(ei.size(1), generator=g)], N


ISOLATED = [10, 11]
# (feature dtype, index dtype, heads): every dtype and both index types, without the full product
COMBOS = [(torch.float32, torch.int64, 2), (torch.float16, torch.int32, 1), (torch.bfloat16, torch.int64, 1)]


def csr(ei, N, idx_dtype):
    g = Graph.from_coo(ei[0], ei[1], N, N)
    rpt, colt, permt = g.transpose()
    cast = (lambda t: t.to(idx_dtype))
    return g, cast(g.rowptr), cast(g.col), cast(rpt), cast(colt), cast(permt)


# ---------------------------------------------------------------------- launchers
@pytest.mark.parametrize("dtype,idx_dtype,H", COMBOS)
def test_spmm_launchers(dtype, idx_dtype, H):
    ei, N = adversarial_edges()
    g, rp, col, rpt, colt, permt = csr(ei, N, idx_dtype)
    torch.manual_seed(1)
    F = 5
    x = torch.randn(N, H, F).to(dtype)
    value = torch.rand(g.num_edges, H).add_(0.5).to(dtype)
    for reduce in REDUCES:
        for v in (None, value):
            out = kspmm.spmm_fwd(rp, col, v, x, reduce)
            assert out.dtype == dtype and out.shape == (N, H, F)
            close(out, spmm_csr_ref(g.rowptr, g.col, v, x, reduce), dtype)
            assert torch.all(out[ISOLATED] == 0), "rows without edges must give 0"
            if reduce in ("max", "min"):
                go = torch.randn(N, H, F).to(dtype)
                gx, gv = kspmm.spmm_arg_bwd(rp, col, v, x, go, reduce, rpt, colt, permt)
                rx, rv = spmm_arg_bwd_ref(g.rowptr, g.col, v, x, go, reduce)
                close(gx, rx, dtype)
                assert (gv is None) == (v is None)
                if v is not None:
                    close(gv, rv, dtype, scale=4.0)


def test_spmm_arg_backward_splits_among_tied_slots():
    # row 0 receives the same value from sources 1, 2 and 3 (source 2 twice: a duplicate edge): its gradient 1
    # is split in four, as torch's scatter amax does
    ei = torch.tensor([[1, 2, 3, 2], [0, 0, 0, 0]])
    g, rp, col, rpt, colt, permt = csr(ei, 4, torch.int64)
    x = torch.ones(4, 1, 3)
    go = torch.arange(1.0, 5.0).view(4, 1, 1).expand(4, 1, 3).contiguous()
    gx, _ = kspmm.spmm_arg_bwd(rp, col, None, x, go, "max", rpt, colt, permt)
    expect = torch.zeros(4, 1, 3)
    expect[1], expect[2], expect[3] = 0.25, 0.5, 0.25
    assert torch.equal(gx, expect)
    # a maximum of exactly 0: PyG's zero start counts as one more tie (torch's backward of its scatter amax)
    gx, _ = kspmm.spmm_arg_bwd(rp, col, None, torch.zeros(4, 1, 3), go, "max", rpt, colt, permt)
    expect[1], expect[2], expect[3] = 0.2, 0.4, 0.2
    torch.testing.assert_close(gx, expect)
    vals = torch.tensor([[0.0], [0.0], [-1.0]])
    srp = torch.tensor([0, 3])
    torch.testing.assert_close(kseg.segment_reduce_bwd(srp, vals, torch.ones(1, 1), "max"),
                               torch.tensor([[1 / 3], [1 / 3], [0.0]]))


@pytest.mark.parametrize("dtype,idx_dtype,H", COMBOS)
def test_sddmm_softmax_segment_launchers(dtype, idx_dtype, H):
    ei, N = adversarial_edges(1)
    g, rp, col, *_ = csr(ei, N, idx_dtype)
    E = g.num_edges
    torch.manual_seed(2)
    H, F = H + 1, 7
    a = torch.randn(N, H, F).to(dtype)
    b = torch.randn(N, H, F).to(dtype)
    close(ksddmm.sddmm_fwd(rp, col, a, b), sddmm_csr_ref(g.rowptr, g.col, a, b), dtype, scale=2.0)

    s = (3 * torch.randn(E, H)).to(dtype)
    p = ksoftmax.segment_softmax_fwd(rp, s)
    close(p, segment_softmax_ref(g.rowptr, g.row, s), dtype)
    grad = torch.randn(E, H).to(dtype)
    close(ksoftmax.segment_softmax_bwd(rp, p, grad), segment_softmax_bwd_ref(g.rowptr, g.row, p, grad), dtype)

    vals = torch.randn(E, 2, 3).to(dtype)
    for reduce in REDUCES:
        close(kseg.segment_reduce_fwd(rp, vals, reduce), segment_reduce_ref(g.rowptr, vals, reduce), dtype)
        go = torch.randn(N, 2, 3).to(dtype)
        close(kseg.segment_reduce_bwd(rp, vals, go, reduce), segment_reduce_bwd_ref(g.rowptr, vals, go, reduce),
              dtype)


def _gat_reference(g, x, a_src, a_dst, t_slots, slope):
    """Dense-free autograd reference of the fused GAT in fp32."""
    pre = a_src[g.col] + a_dst[g.row]
    if t_slots is not None:
        pre = pre + t_slots
    s = torch.nn.functional.leaky_relu(pre, slope)
    alpha = segment_softmax_ref(g.rowptr, g.row, s)
    msg = alpha.unsqueeze(-1) * x[g.col]
    return torch.zeros(g.num_dst, *x.shape[1:], dtype=x.dtype).index_add_(0, g.row, msg)


@pytest.mark.parametrize("dtype,idx_dtype,H", COMBOS)
@pytest.mark.parametrize("with_t", [False, True])
def test_gat_launchers(dtype, idx_dtype, H, with_t):
    ei, N = adversarial_edges(2)
    g, rp, col, rpt, colt, permt = csr(ei, N, idx_dtype)
    torch.manual_seed(3)
    F = 6
    x = torch.randn(N, H, F).to(dtype)
    a_src, a_dst = torch.randn(N, H).to(dtype), torch.randn(N, H).to(dtype)
    t = torch.randn(g.num_edges, H).to(dtype) if with_t else None
    out, m, z = kgat.gat_fwd(rp, col, x, a_src, a_dst, t, 0.2)
    assert m.shape == z.shape == (N, H) and m.dtype == torch.float32
    leaves = [u.float().requires_grad_() for u in (x, a_src, a_dst)] + \
        ([t.float().requires_grad_()] if with_t else [None])
    ref = _gat_reference(g, *leaves, 0.2)
    close(out, ref, dtype)
    assert torch.all(out[ISOLATED] == 0)
    go = torch.randn(N, H, F).to(dtype)
    ref.backward(go.float())
    grads = kgat.gat_bwd(rp, col, rpt, colt, permt, x, a_src, a_dst, t, out, m, z, go, 0.2)
    for got, leaf in zip(grads, leaves):
        if leaf is None:
            assert got is None
        else:
            assert got.dtype == dtype
            close(got, leaf.grad, dtype, scale=4.0)


def test_hub_with_10000_neighbours_is_split_over_many_programs(monkeypatch):
    """A hub with 10,000 in-edges next to degree-1 rows: at the default split length it
    becomes ceil(10000 / split) chunks of at most split slots (checked on the schedule);
    the kernels then run on a 200-neighbour hub split into 25 chunks (the interpreter
    runs a program in milliseconds, so 10,000 rows would take minutes here)."""
    monkeypatch.delenv("GNNKIT_ROW_SPLIT")
    hub = 10_000
    src = torch.cat([torch.arange(1, hub + 1), torch.tensor([0, 1, 2])])
    dst = torch.cat([torch.zeros(hub, dtype=torch.long), torch.tensor([1, 2, 3])])
    g = Graph.from_coo(src, dst, hub + 1, hub + 1)
    sch = _config.schedule(g.rowptr)
    n_chunks = -(-hub // _config.DEFAULT_ROW_SPLIT)
    assert sch.split and sch.long_rows.tolist() == [0] and sch.num_parts == n_chunks
    assert int((sch.end - sch.start).max()) <= _config.DEFAULT_ROW_SPLIT
    assert sch.num_chunks == hub + 1 - 1 + n_chunks

    monkeypatch.setenv("GNNKIT_ROW_SPLIT", str(SPLIT))
    hub = 200
    src = torch.cat([torch.arange(1, hub + 1), torch.tensor([0, 1, 2])])
    dst = torch.cat([torch.zeros(hub, dtype=torch.long), torch.tensor([1, 2, 3])])
    N = 4
    g = Graph.from_coo(src, dst, hub + 1, N)
    assert _config.schedule(g.rowptr).num_parts == hub // SPLIT
    torch.manual_seed(4)
    x = torch.randn(hub + 1, 1, 3)
    for reduce in ("sum", "max"):
        close(kspmm.spmm_fwd(g.rowptr, g.col, None, x, reduce), spmm_csr_ref(g.rowptr, g.col, None, x, reduce),
              torch.float32, scale=10.0)
    a_src, a_dst = torch.randn(hub + 1, 1), torch.randn(N, 1)
    out, _, _ = kgat.gat_fwd(g.rowptr, g.col, x, a_src, a_dst, None, 0.2)
    close(out, _gat_reference(g, x, a_src, a_dst, None, 0.2), torch.float32)
    s = torch.randn(g.num_edges, 1)
    close(ksoftmax.segment_softmax_fwd(g.rowptr, s), segment_softmax_ref(g.rowptr, g.row, s), torch.float32)


def test_schedule_chunks_cover_every_slot_once():
    ei, N = adversarial_edges()
    g = Graph.from_coo(ei[0], ei[1], N, N)
    sch = _config._build_schedule(g.rowptr, SPLIT)
    assert sch.split
    covered = torch.zeros(g.num_edges, dtype=torch.long)
    for s, e in zip(sch.start.tolist(), sch.end.tolist()):
        assert 0 < e - s <= SPLIT or s == e
        covered[s:e] += 1
    assert torch.all(covered == 1)
    # partial slots of a long row are contiguous and in chunk order
    for lr, p0, p1 in zip(sch.long_rows.tolist(), sch.long_ptr[:-1].tolist(), sch.long_ptr[1:].tolist()):
        chunks = (sch.row == lr).nonzero().flatten()
        assert sch.part[chunks].tolist() == list(range(p0, p1))


def test_empty_graph_and_no_nodes():
    x = torch.randn(4, 2, 3)
    rp = torch.zeros(5, dtype=torch.long)
    col = torch.zeros(0, dtype=torch.long)
    for reduce in REDUCES:
        assert torch.equal(kspmm.spmm_fwd(rp, col, None, x, reduce), torch.zeros(4, 2, 3))
    assert kseg.segment_reduce_fwd(rp, torch.randn(0, 3), "max").shape == (4, 3)
    assert torch.equal(kseg.segment_reduce_fwd(rp, torch.randn(0, 3), "max"), torch.zeros(4, 3))
    assert ksoftmax.segment_softmax_fwd(rp, torch.randn(0, 2)).shape == (0, 2)
    assert ksddmm.sddmm_fwd(rp, col, x, x).shape == (0, 2)
    out, m, z = kgat.gat_fwd(rp, col, x, torch.randn(4, 2), torch.randn(4, 2), None, 0.2)
    assert torch.equal(out, torch.zeros(4, 2, 3))
    rp0 = torch.zeros(1, dtype=torch.long)
    assert kspmm.spmm_fwd(rp0, col, None, torch.randn(0, 1, 3), "sum").shape == (0, 1, 3)


def test_nan_and_all_minus_inf_rows_give_what_the_reference_gives(monkeypatch):
    """Review finding: max/min skipped NaN (tl.max ignores it; torch's amax returns it), and the fused GAT turned
    a row of -inf scores, or a NaN score, into zeros (the softmax reference: NaN). The hub row (18 slots) is
    cut into chunks of 8, so the chunk combine carries the NaN too."""
    ei, N = adversarial_edges()
    g, _ = as_graph(ei, num_nodes=N)
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(N, 2, 3, generator=gen)
    x[5, 0, 1] = float("nan")  # a source of the hub (row 0) and of other rows
    vals = torch.randn(ei.size(1), 3, generator=gen)
    vals[0, 2] = float("nan")

    def both(fn):
        monkeypatch.setenv("GNNKIT_BACKEND", "triton")
        a = fn()
        monkeypatch.setenv("GNNKIT_BACKEND", "torch")
        b = fn()
        monkeypatch.setenv("GNNKIT_BACKEND", "triton")
        return a, b

    for reduce in ("max", "min"):
        a, b = both(lambda: spmm(g, x.view(N, 6), None, reduce=reduce))
        assert a.isnan().any()
        torch.testing.assert_close(a, b, equal_nan=True)
        a, b = both(lambda: segment_reduce(g, vals, reduce))
        assert a.isnan().any()
        torch.testing.assert_close(a, b, equal_nan=True)
    a_s, a_d = torch.randn(N, 2, generator=gen), torch.randn(N, 2, generator=gen)
    for where in ("hub", "short row"):
        t = torch.randn(ei.size(1), 2, generator=gen)
        dst = ei[1]
        row = 0 if where == "hub" else int(dst[dst != 0][0])
        t[dst == row, 0] = -float("inf")  # every score of that row, head 0
        t[int((dst == 3).nonzero()[0]), 1] = float("nan")  # one NaN score in row 3, head 1
        a, b = both(lambda: gat_attention(g, x, a_s, a_d, t)[0])  # edge_term in input order
        assert a[row, 0].isnan().all() and a[3, 1].isnan().all() and not a[ISOLATED].isnan().any()
        torch.testing.assert_close(a, b, equal_nan=True)


def test_launchers_reject_bad_input(monkeypatch):
    rp = torch.tensor([0, 1, 2])
    col = torch.tensor([1, 0])
    x = torch.randn(2, 1, 3)
    with pytest.raises(ValueError, match="col"):
        kspmm.spmm_fwd(rp, col.float(), None, x, "sum")
    with pytest.raises(ValueError, match="reduce"):
        kspmm.spmm_fwd(rp, col, None, x, "prod")
    with pytest.raises(ValueError, match="contiguous"):
        kspmm.spmm_fwd(rp, col, None, x.transpose(0, 2), "sum")
    with pytest.raises(ValueError, match="value"):
        kspmm.spmm_fwd(rp, col, torch.ones(3, 1), x, "sum")
    with pytest.raises(ValueError, match="a_src"):
        kgat.gat_fwd(rp, col, x, torch.randn(3, 1), torch.randn(2, 1), None, 0.2)
    with pytest.raises(ValueError, match="GNNKIT_ROW_SPLIT"):
        monkeypatch.setenv("GNNKIT_ROW_SPLIT", "0")
        _config.row_split()


# ---------------------------------------------------------------------- nearest codeword (VQ)
VQ_DTYPES = [torch.float32, torch.float16, torch.bfloat16]


@pytest.mark.parametrize("dtype", VQ_DTYPES)
def test_nearest_code_launcher_odd_shapes(dtype):
    """Kernel vs the torch reference vs brute force (fp64 from the upcast inputs) on every
    N in {1, 37, 130}, D in {3, 16, 37}, K in {1, 5, 300}: K=300 spans several BLOCK_K chunks,
    D=37 several BLOCK_D tiles.  Distances are accumulated in fp32 for every input dtype, so
    the tolerance is fp32's; indices must agree wherever the runner-up is farther than it."""
    for N in (1, 37, 130):
        for D in (3, 16, 37):
            for K in (1, 5, 300):
                g = torch.Generator().manual_seed(N * 1000 + D * 10 + K)
                z = torch.randn(N, D, generator=g).to(dtype)
                e = torch.randn(K, D, generator=g).to(dtype)
                index, dist = kvq.nearest_code_fwd(z, e)
                assert index.dtype == torch.int64 and dist.dtype == torch.float32
                assert index.shape == dist.shape == (N,)
                check_against_brute(z, e, index, dist, rtol=1e-5)
                ri, rd = nearest_code_ref(z, e, chunk_size=997)
                d = brute(z, e)
                best = d.min(1).values
                runner_up = d.scatter(1, ri.view(-1, 1), float("inf")).min(1).values
                clear = runner_up - best > 1e-5 * (1 + best)
                assert torch.equal(index[clear], ri[clear]), (N, D, K)
                torch.testing.assert_close(dist, rd, rtol=1e-5, atol=1e-6)


def test_nearest_code_ties_and_duplicates_take_the_lowest_index():
    """Integer-valued data (every distance exact): many exact ties, duplicate codewords in
    different BLOCK_K chunks; the kernel's indices are exactly torch.argmin's."""
    g = torch.Generator().manual_seed(7)
    K, D = 300, 5
    e = torch.randint(-2, 3, (K, D), generator=g).float()
    e[200], e[290] = e[5], e[5]  # duplicates of codeword 5, two chunks later
    z = torch.randint(-3, 4, (130, D), generator=g).float()
    z[:4] = e[5]
    for dtype in VQ_DTYPES:
        index, dist = kvq.nearest_code_fwd(z.to(dtype), e.to(dtype))
        d = brute(z, e)
        assert torch.equal(index, d.argmin(1)), dtype
        assert torch.equal(dist.double(), d.min(1).values)
        assert index[:4].tolist() == [5] * 4 and torch.all(dist[:4] == 0)
        assert torch.equal(index, nearest_code_ref(z.to(dtype), e.to(dtype), chunk_size=64)[0])
    # z = 0 is equidistant from +v and -v: the first of them wins
    v = torch.randn(3, 16, generator=g)
    e = torch.cat([torch.randn(100, 16, generator=g) + 10, v, -v, v])
    index, _ = kvq.nearest_code_fwd(torch.zeros(2, 16), e)
    assert index.tolist() == [100 + int(v.square().sum(1).argmin())] * 2


def test_nearest_code_special_inputs():
    g = torch.Generator().manual_seed(8)
    e = torch.randn(70, 37, generator=g)
    zt = torch.randn(37, 40, generator=g)
    # strided (transposed) z and codebook are read in place
    index, dist = kvq.nearest_code_fwd(zt.t(), e.t().contiguous().t())
    ri, rd = nearest_code_ref(zt.t().contiguous(), e)
    assert torch.equal(index, ri)
    torch.testing.assert_close(dist, rd, rtol=1e-5, atol=1e-6)
    # fp64 accumulates in fp64
    index, dist = kvq.nearest_code_fwd(zt.t().double(), e.double())
    assert dist.dtype == torch.float64 and torch.equal(index, ri)
    torch.testing.assert_close(dist, brute(zt.t(), e).min(1).values, rtol=1e-12, atol=1e-12)
    # NaN: the first NaN codeword is the minimum (torch.argmin), dist NaN
    e2 = torch.tensor([[0.0, 0.0], [float("nan"), 0.0], [1.0, 1.0], [float("nan"), 1.0]])
    z2 = torch.tensor([[1.0, 1.0], [float("nan"), 0.0], [0.1, 0.0]])
    index, dist = kvq.nearest_code_fwd(z2, e2)
    assert index.tolist() == [1, 0, 1] == brute(z2, e2).argmin(1).tolist()
    assert torch.isnan(dist).all()
    # empty z, zero width
    index, dist = kvq.nearest_code_fwd(torch.randn(0, 4), torch.randn(3, 4))
    assert index.shape == dist.shape == (0,)
    index, dist = kvq.nearest_code_fwd(torch.randn(3, 0), torch.randn(2, 0))
    assert index.tolist() == [0, 0, 0] and dist.tolist() == [0.0, 0.0, 0.0]


def test_nearest_code_launcher_rejects_bad_input():
    z, e = torch.randn(4, 3), torch.randn(5, 3)
    for args, msg in (((z[0], e), "z must be 2-D"), ((z, e[None]), "codebook must be 2-D"),
                      ((z, e[:0]), "codebook must have at least one"), ((z, e[:, :2]), "same width"),
                      ((z.long(), e), "z must be float"), ((z, e.to("meta")), "same device")):
        with pytest.raises(ValueError, match=msg):
            kvq.nearest_code_fwd(*args)


def test_public_nearest_code_matches_torch_path(monkeypatch):
    g = torch.Generator().manual_seed(9)
    z = torch.randn(130, 16, generator=g).requires_grad_()
    e = torch.randn(300, 16, generator=g)
    got, ref = _both_backends(monkeypatch, lambda: nearest_code(z, e))
    assert torch.equal(got[0], ref[0])
    torch.testing.assert_close(got[1], ref[1], rtol=1e-5, atol=1e-6)
    assert not got[1].requires_grad


# ---------------------------------------------------------------------- public ops with autograd
@st.composite
def small_graphs(draw):
    N = draw(st.integers(1, 8))
    E = draw(st.integers(0, 20))
    src = draw(st.lists(st.integers(0, N - 1), min_size=E, max_size=E))
    dst = draw(st.lists(st.integers(0, N - 1), min_size=E, max_size=E))
    if E and draw(st.booleans()):  # pile edges onto one destination: a hub that gets split
        hub = draw(st.integers(0, N - 1))
        dst = [hub if i % 2 == 0 else d for i, d in enumerate(dst)]
    idx = draw(st.sampled_from([torch.int32, torch.int64]))
    H = draw(st.integers(1, 2))
    F = draw(st.sampled_from([1, 3, 17]))
    reduce = draw(st.sampled_from(REDUCES))
    seed = draw(st.integers(0, 2 ** 16))
    return torch.tensor([src, dst], dtype=idx).view(2, E), N, H, F, reduce, seed


def _both_backends(monkeypatch, fn):
    """Run ``fn()`` (returns tensors) with the Triton kernels and with the torch path."""
    got = fn()
    monkeypatch.setenv("GNNKIT_BACKEND", "torch")
    try:
        ref = fn()
    finally:
        monkeypatch.setenv("GNNKIT_BACKEND", "triton")
    return got, ref


@settings(max_examples=int(os.environ.get("GNNKIT_HYPOTHESIS_EXAMPLES", 8)), deadline=None, derandomize=True,
          database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=small_graphs())
def test_public_ops_match_torch_path(monkeypatch, case):
    ei, N, H, F, reduce, seed = case
    g, _ = as_graph(ei, num_nodes=N)
    E = g.num_edges
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(N, H, F, generator=gen)
    w = torch.rand(E, H, generator=gen) + 0.5
    a_src, a_dst = torch.randn(N, H, generator=gen), torch.randn(N, H, generator=gen)
    t = torch.randn(E, H, generator=gen)
    logits = torch.randn(E, H, generator=gen)
    gy = torch.randn(N, H, F, generator=gen)
    ge = torch.randn(E, H, generator=gen)

    def run():
        leaves = [u.clone().requires_grad_() for u in (x, w, a_src, a_dst, t, logits)]
        lx, lw, las, lad, lt, ll = leaves
        y = spmm(g, lx, lw, reduce=reduce)
        y2, _ = gat_attention(g, lx, las, lad, lt)
        s = sddmm(g, lx, lx)
        p = segment_softmax(g, ll)
        r = segment_reduce(g, lw, reduce=reduce)
        loss = (y * gy).sum() + (y2 * gy).sum() + (s * ge).sum() + (p * ge).sum() + (r[:, :1] * 2).sum()
        loss.backward()
        return [y, y2, s, p, r] + [u.grad if u.grad is not None else torch.zeros_like(u) for u in leaves]

    got, ref = _both_backends(monkeypatch, run)
    for a, b in zip(got, ref):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_public_gat_low_precision_and_int32(monkeypatch, dtype):
    ei, N = adversarial_edges(3)
    ei = ei.to(torch.int32)
    g, _ = as_graph(ei, num_nodes=N)
    torch.manual_seed(5)
    H, F = 1, 9
    base = [torch.randn(N, H, F), torch.randn(N, H), torch.randn(N, H), torch.randn(g.num_edges, H)]
    gy = torch.randn(N, H, F)

    def run():
        leaves = [u.to(dtype).requires_grad_() for u in base]
        y, att = gat_attention(g, *leaves)
        assert att is None
        (y.float() * gy).sum().backward()
        return [y] + [u.grad for u in leaves]

    got, _ = _both_backends(monkeypatch, run)
    # reference in fp32 from the same low-precision inputs
    leaves = [u.to(dtype).float().requires_grad_() for u in base]
    y = _gat_reference(g, leaves[0], leaves[1], leaves[2], g.to_csr_order(leaves[3]), 0.2)
    (y * gy).sum().backward()
    close(got[0], y, dtype)
    for a, leaf in zip(got[1:], leaves):
        close(a, leaf.grad, dtype, scale=4.0)


def test_gat_falls_back_to_composite_for_attention_and_dropout(monkeypatch):
    ei, N = adversarial_edges(4)
    g, _ = as_graph(ei, num_nodes=N)
    x, a_s, a_d = torch.randn(N, 2, 4), torch.randn(N, 2), torch.randn(N, 2)
    y, att = gat_attention(g, x, a_s, a_d, return_attention=True)
    assert att is not None and att.shape == (g.num_edges, 2)
    y_fused, none = gat_attention(g, x, a_s, a_d)
    assert none is None
    torch.testing.assert_close(y, y_fused, rtol=1e-5, atol=1e-6)


def test_fused_gat_and_spmm_under_torch_compile():
    """The Triton-backed custom ops (fused GAT included) trace with fullgraph=True and give
    the eager gradients (aot_eager: fake implementations + autograd, no C++ codegen)."""
    ei, N = adversarial_edges(5)
    g, _ = as_graph(ei, num_nodes=N)
    g.transpose()
    torch.manual_seed(6)
    leaves = [torch.randn(N, 2, 3), torch.randn(N, 2), torch.randn(N, 2), torch.randn(g.num_edges, 2)]

    def f(x, a_s, a_d, t):
        y, _ = gat_attention(g, x, a_s, a_d, t)
        z = spmm(g, x, reduce="max")
        return (y * y).sum() + z.sum()

    def grads(fn):
        ls = [u.clone().requires_grad_() for u in leaves]
        return torch.autograd.grad(fn(*ls), ls)

    eager = grads(f)
    torch._dynamo.reset()
    compiled = grads(torch.compile(f, fullgraph=True, backend="aot_eager"))
    for a, b in zip(compiled, eager):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_compiled_steps_on_an_unplanned_graph_build_each_schedule_once(monkeypatch):
    """A compiled step on a graph no eager call planned: each op builds its row schedule (a host sync on a GPU)
    once per rowptr tensor, not in every call; an in-place edit of rowptr builds it anew."""
    import gnnkit.kernels._config as config
    from gnnkit.ops.primitives import RUNTIME_PLAN, _schedule
    builds = []
    real = config.build_schedule
    monkeypatch.setattr(config, "build_schedule", lambda rowptr, *a: builds.append(rowptr.numel()) or real(rowptr, *a))
    ei, N = adversarial_edges(7)
    g, _ = as_graph(ei, num_nodes=N)
    x0 = torch.randn(N, 2, 3)

    def f(x):
        return spmm(g, x, reduce="sum").square().sum()

    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    torch._dynamo.reset()
    counts = []
    for _ in range(4):
        x = x0.clone().requires_grad_()
        torch.autograd.grad(compiled(x), x)
        counts.append(len(builds))
    assert counts[-1] == counts[-2] == counts[-3], f"schedules rebuilt per step: builds after each step {counts}"
    rowptr = torch.tensor([0, 2, 2, 5])
    first = _schedule(rowptr, *RUNTIME_PLAN)
    assert _schedule(rowptr, *RUNTIME_PLAN) is first
    rowptr.add_(0)  # an in-place edit: a new version
    assert _schedule(rowptr, *RUNTIME_PLAN) is not first
    assert _schedule(rowptr, None, None) is None  # a direct call without a plan: the launcher builds per call


# ---------------------------------------------------------------------- dense per-graph attention
@pytest.mark.parametrize("B,H,N,D", [(2, 2, 5, 8), (3, 1, 37, 20), (1, 3, 16, 16), (2, 2, 1, 3), (4, 2, 33, 64)])
@pytest.mark.parametrize("adjacency", [False, True])
@pytest.mark.parametrize("with_bias", [False, True])
def test_graph_attention_launcher(B, H, N, D, adjacency, with_bias):
    from gnnkit.kernels import graph_attention as kga
    from gnnkit.ops.reference import graph_attention_ref
    g = torch.Generator().manual_seed(B * 1000 + N)
    q, k, v = (torch.randn(B, H, N, D, generator=g) for _ in range(3))
    n = torch.randint(0, N + 1, (B,), generator=g)
    n[0] = N  # one full graph, the others padded (0 nodes included)
    dist = torch.randint(0, 5, (B, N, N), generator=g)
    bias = torch.randn(H, 5, generator=g) if with_bias else None
    out = kga.graph_attention_fwd(q, k, v, n, dist, bias, adjacency, 0.25)
    close(out, graph_attention_ref(q, k, v, n, dist, bias, adjacency, 0.25), torch.float32)
    pad = torch.arange(N).view(1, 1, N, 1) >= n.view(B, 1, 1, 1)
    assert bool((out.masked_select(pad.expand_as(out)) == 0).all())  # padding rows stay 0


@pytest.mark.parametrize("B,H,N,D", [(2, 2, 5, 8), (3, 1, 37, 20), (2, 2, 1, 3), (2, 2, 33, 64)])
@pytest.mark.parametrize("adjacency", [False, True])
@pytest.mark.parametrize("with_bias", [False, True])
def test_graph_attention_backward_launcher(B, H, N, D, adjacency, with_bias):
    """The fused backward (P recomputed per tile from the saved log-sum-exp; the bias gradient as per-program
    sums per bucket) against autograd through the reference: padded graphs, a graph of 0 nodes, rows whose only
    allowed key is masked out by the adjacency, several key/query blocks (N = 37, 33)."""
    from gnnkit.kernels import graph_attention as kga
    from gnnkit.ops.reference import graph_attention_ref
    g = torch.Generator().manual_seed(B * 1000 + N + 7)
    q, k, v = (torch.randn(B, H, N, D, generator=g) for _ in range(3))
    n = torch.randint(0, N + 1, (B,), generator=g)
    n[0] = N
    if B > 1:
        n[1] = 0
    dist = torch.randint(0, 5, (B, N, N), generator=g)
    if adjacency and N > 1:
        dist[0, 0] = 4  # row 0 of graph 0: no allowed key, not even itself -> zeros, zero gradients
    bias = torch.randn(H, 5, generator=g) if with_bias else None
    out, lse = kga.graph_attention_fwd(q, k, v, n, dist, bias, adjacency, 0.25, return_lse=True)
    go = torch.randn(out.shape, generator=g)
    got = kga.graph_attention_bwd(q, k, v, n, dist, bias, adjacency, 0.25, out, lse, go)
    leaves = [t.clone().requires_grad_() for t in (q, k, v)] + ([bias.clone().requires_grad_()] if with_bias else [])
    ref = graph_attention_ref(*leaves[:3], n, dist, leaves[3] if with_bias else None, adjacency, 0.25)
    close(out, ref.detach(), torch.float32)
    want = torch.autograd.grad(ref, leaves, go)
    for a, b in zip(got[:len(want)], want):
        close(a, b, torch.float32)
    assert (got[3] is None) == (not with_bias)
    pad = torch.arange(N).view(1, 1, N, 1) >= n.view(B, 1, 1, 1)
    for t in got[:3]:  # padding rows get no gradient
        assert bool((t.masked_select(pad.expand_as(t)) == 0).all())


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_graph_attention_backward_against_its_own_output(dtype):
    """The CUDA test's check (tests/test_kernels_cuda.py, attention_grads_given_output: FlashAttention-2's
    backward in fp64 from the kernel's own output, each gradient within its rounding bound), here in the
    interpreter with small sizes: bf16 inputs, whose bias gradients the H200 run found 0.38 off an exact-O
    reference, agree with the own-output reference to ~1e-6."""
    from gnnkit.kernels import graph_attention as kga
    from tests.test_kernels_cuda import attention_grads_given_output, close_sum, dot_unit
    g = torch.Generator().manual_seed(0)
    B, H, N, D = 6, 2, 40, 16
    q, k, v = (torch.randn(B, H, N, D, generator=g).to(dtype) for _ in range(3))
    n = torch.randint(1, N + 1, (B,), generator=g)
    dist = torch.randint(0, 10, (B, N, N), generator=g)
    bias = torch.randn(H, 10, generator=g).to(dtype)
    out, lse = kga.graph_attention_fwd(q, k, v, n, dist, bias, True, D ** -0.5, True)
    go = torch.randn(out.shape, generator=g).to(dtype)
    got = kga.graph_attention_bwd(q, k, v, n, dist, bias, True, D ** -0.5, out, lse, go)
    exact, spreads = attention_grads_given_output(q, k, v, n, dist, bias, True, D ** -0.5, out, go)
    units = (dot_unit(dtype),) * 3 + (2.0 ** -24,)
    for a, b, sp, unit, factor in zip(got, exact, spreads, units, (4, 4, 4, 16)):
        close_sum(a, b, sp, dtype, scale=8.0, unit=unit, factor=factor)
    assert float((got[3].double() - exact[3]).abs().max()) < 1e-4  # the bias gradient, fp32 from fp32 dS


@pytest.mark.parametrize("dist_dtype", [torch.int32, torch.uint8, torch.int16])
def test_graph_attention_reads_any_integer_distance_table(dist_dtype):
    """int64 and int32 tables are read as they are (no [B, N, N] copy), others converted: the same output and
    gradients whatever the table's integer type."""
    from gnnkit.kernels import graph_attention as kga
    g = torch.Generator().manual_seed(5)
    B, H, N, D = 2, 2, 19, 8
    q, k, v = (torch.randn(B, H, N, D, generator=g) for _ in range(3))
    n = torch.tensor([19, 7])
    dist = torch.randint(0, 5, (B, N, N), generator=g)
    bias = torch.randn(H, 5, generator=g)
    go = torch.randn(B, H, N, D, generator=g)
    res = {}
    for dt in (torch.int64, dist_dtype):
        out, lse = kga.graph_attention_fwd(q, k, v, n, dist.to(dt), bias, True, D ** -0.5, True)
        res[dt] = (out,) + tuple(kga.graph_attention_bwd(q, k, v, n, dist.to(dt), bias, True, D ** -0.5, out, lse, go))
    for a, b in zip(res[torch.int64], res[dist_dtype]):
        assert torch.equal(a, b)


def test_graph_attention_kernels_take_strided_inputs_and_clamp_counts():
    """q, k, v as a transposed view ([B, N, H, D] -> [B, H, N, D]) give the contiguous inputs' output and
    gradients (the outputs are written contiguous, so they must be allocated so); a node count above N reads as
    N, as the reference does, never past the graph's rows.  The public function names such a count."""
    from gnnkit.kernels import graph_attention as kga
    from gnnkit.ops import graph_attention
    from gnnkit.ops.reference import graph_attention_ref
    g = torch.Generator().manual_seed(5)
    B, H, N, D = 2, 3, 6, 5
    q, k, v = (torch.randn(B, N, H, D, generator=g).transpose(1, 2) for _ in range(3))
    n = torch.tensor([6, 4])
    dist = torch.randint(0, 4, (B, N, N), generator=g)
    bias = torch.randn(H, 4, generator=g)
    out, lse = kga.graph_attention_fwd(q, k, v, n, dist, bias, False, 0.3, True)
    ref_in = [t.contiguous().requires_grad_() for t in (q, k, v)]
    ref = graph_attention_ref(*ref_in, n, dist, bias, False, 0.3)
    close(out, ref.detach(), torch.float32)
    go = torch.randn(B, N, H, D, generator=g).transpose(1, 2)
    got = kga.graph_attention_bwd(q, k, v, n, dist, bias, False, 0.3, out, lse, go)
    for a, b in zip(got[:3], torch.autograd.grad(ref, ref_in, go)):
        close(a, b, torch.float32)
    big = torch.tensor([9, 4])  # 9 > N = 6: the reference reads 6
    close(kga.graph_attention_fwd(q, k, v, big, dist, bias, False, 0.3), graph_attention_ref(q, k, v, big, dist, bias,
                                                                                             False, 0.3),
          torch.float32)
    with pytest.raises(ValueError, match=r"num_nodes must lie in \[0, N=6\]"):
        graph_attention(q, k, v, big, dist, bias)


def test_public_graph_attention_dispatches_to_the_kernel_with_gradients(monkeypatch):
    from gnnkit.ops import batch_distances, graph_attention
    from gnnkit.ops.reference import graph_attention_ref
    g = torch.Generator().manual_seed(0)
    batch = torch.tensor([0, 0, 0, 1, 1, 1, 1, 1, 2])
    ei = torch.tensor([[0, 1, 3, 4, 5, 6], [1, 2, 4, 5, 6, 7]])
    dist, n = batch_distances(ei, batch, 3)
    q, k, v = (torch.randn(3, 2, 5, 4, generator=g, requires_grad=True) for _ in range(3))
    bias = torch.randn(2, 5, generator=g, requires_grad=True)
    calls = []
    from gnnkit.kernels import graph_attention as kga
    real = kga.graph_attention_fwd
    monkeypatch.setattr(kga, "graph_attention_fwd", lambda *a: calls.append(1) or real(*a))
    out = graph_attention(q, k, v, n, dist, bias, adjacency=False)
    assert calls  # the Triton kernel ran
    ref = graph_attention_ref(q, k, v, n, dist, bias, False, 0.5)
    close(out, ref, torch.float32)
    go = torch.randn(out.shape, generator=g)
    ga = torch.autograd.grad(out, [q, k, v, bias], go)
    gr = torch.autograd.grad(ref, [q, k, v, bias], go)
    for a, b in zip(ga, gr):
        close(a, b, torch.float32)


def test_the_graph_owns_its_row_schedule(monkeypatch):
    """The Triton row schedule of a graph's CSR and of its transpose is built once, kept in the Graph
    (``kernel_plan``), and handed to the launchers: a second forward and backward through every op builds no
    schedule.  The graph is bipartite with split rows on both sides (a destination with 20 in-edges, a
    source with 19 out-edges, split 8), so a CSR plan handed to a transposed launch would be refused or give
    other numbers: outputs and gradients equal the torch backend's.  A changed GNNKIT_ROW_SPLIT replans."""
    from gnnkit.kernels._config import Schedule
    from gnnkit.ops import gather_slots, relu_message_slots, segment_reduce_slots, segment_softmax_slots, spmm_slots
    from gnnkit.ops.primitives import kernel_plan
    S, N = 24, 5
    src = torch.cat([torch.arange(20), torch.full((19,), 23), torch.tensor([1, 2, 3, 5, 7])])
    dst = torch.cat([torch.zeros(20, dtype=torch.long), torch.arange(19) % 4 + 1, torch.tensor([4, 4, 3, 2, 1])])
    perm = torch.randperm(src.numel(), generator=torch.Generator().manual_seed(0))
    g = Graph.from_coo(src[perm], dst[perm], S, N)
    built = []
    real = _config._build_schedule
    monkeypatch.setattr(_config, "_build_schedule", lambda rowptr, split_len: built.append(split_len) or
                        real(rowptr, split_len))
    torch.manual_seed(0)
    x = torch.randn(S, 2, 3, requires_grad=True)
    w = torch.randn(g.num_edges, 2, requires_grad=True)
    s = torch.randn(g.num_edges, 2, requires_grad=True)
    t = torch.randn(g.num_edges, 6, requires_grad=True)

    def run():
        outs = [spmm_slots(g, x, w, r) for r in REDUCES]
        outs.append(segment_softmax_slots(g, s))
        outs.append(segment_reduce_slots(g, s, "max"))
        outs.append(gather_slots(g, x.view(S, 6), "src"))
        outs.append(relu_message_slots(g, x.view(S, 6), t))
        loss = sum((o.float() * torch.linspace(-1, 1, o.numel()).view(o.shape)).sum() for o in outs)
        return [o.detach() for o in outs], list(torch.autograd.grad(loss, (x, w, s, t)))

    first, grads1 = run()
    assert built == [SPLIT, SPLIT], built  # the CSR's schedule and the transpose's, once each
    for transposed, rows in ((False, N), (True, S)):
        plan, meta = kernel_plan(g, "spmm", x, transposed=transposed)
        assert meta[:2] == [SPLIT, 1] and meta[-1] == rows and plan is not None  # both sides have split rows
    with pytest.raises(ValueError, match="built for a CSR of 5 rows"):
        Schedule.unpack(g.transpose()[0], *kernel_plan(g, "spmm", x))
    built.clear()
    second, grads2 = run()
    assert built == [], "a kept plan must not be rebuilt"
    for a, b in zip(first + grads1, second + grads2):
        assert torch.equal(a, b)
    monkeypatch.setenv("GNNKIT_BACKEND", "torch")  # the reference path, same graph, same inputs
    ref, ref_grads = run()
    for a, b in zip(first + grads1, ref + ref_grads):
        close(a, b, torch.float32, scale=4.0)
    monkeypatch.setenv("GNNKIT_BACKEND", "triton")
    monkeypatch.setenv("GNNKIT_ROW_SPLIT", "4")
    built.clear()
    run()
    assert built == [4, 4]
