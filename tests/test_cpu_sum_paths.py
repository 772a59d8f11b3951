"""The CPU sums that run through MKL's CSR kernel (``gnnkit.ops.reference.csr_sum``): SpMM with
reduce="sum", segment sums and GAT's node sums, for operands of at most 64 columns; wider ones keep
``torch.sparse.mm`` / ``index_add_``.  Checked against dense products, across thread counts, and on
the path each width takes."""
import pytest
import torch
from hypothesis import given, settings, strategies as st

import gnnkit.ops.reference as ref
from gnnkit.ops import Graph, segment_reduce, spmm

pytestmark = pytest.mark.skipif(not torch.backends.mkl.is_available(), reason="needs torch built with MKL")


def _csr(n, s, e, seed):
    g = torch.Generator().manual_seed(seed)
    row = torch.randint(0, max(n, 1), (e,), generator=g).sort().values
    col = torch.randint(0, max(s, 1), (e,), generator=g)
    rowptr = torch.ops.aten._convert_indices_from_coo_to_csr(row, n) if n else torch.zeros(1, dtype=torch.long)
    return rowptr, row, col


def _dense(n, s, row, col, value):
    a = torch.zeros(n, s, dtype=torch.float64)
    a.index_put_((row, col), value.double(), accumulate=True)
    return a


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 40), s=st.integers(0, 40), e=st.integers(0, 200), f=st.sampled_from([0, 1, 7, 64, 65, 130]),
       weighted=st.booleans(), dtype=st.sampled_from([torch.float32, torch.float64]), seed=st.integers(0, 2**16))
def test_csr_sum_matches_the_dense_product(n, s, e, f, weighted, dtype, seed):
    if n == 0 or s == 0:
        e = 0
    rowptr, row, col = _csr(n, s, e, seed)
    x = torch.randn(s, f, dtype=dtype, generator=torch.Generator().manual_seed(seed))
    value = torch.rand(e, dtype=dtype) if weighted else None
    out = ref.csr_sum(rowptr, col, value, x)
    expect = _dense(n, s, row, col, value if weighted else torch.ones(e)) @ x.double()
    assert out.shape == (n, f) and out.dtype == dtype
    torch.testing.assert_close(out.double(), expect, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("f", [8, 64])
def test_csr_sum_does_not_depend_on_the_thread_count(f):
    rowptr, _, col = _csr(3000, 3000, 40000, 1)
    x, v = torch.randn(3000, f), torch.rand(40000)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = ref.csr_sum(rowptr, col, v, x)
        torch.set_num_threads(max(2, threads))
        two = ref.csr_sum(rowptr, col, v, x)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one, two)


@pytest.mark.parametrize("f, mkl", [(8, True), (64, True), (65, False), (300, False)])
def test_each_width_takes_its_path(monkeypatch, f, mkl):
    """MKL (torch.addmm on the CSR matrix) up to 64 columns, torch.sparse.mm's reduce kernel above:
    the one measured faster at each width (gnnkit/ops/reference.py)."""
    calls = []
    real = torch.addmm
    monkeypatch.setattr(torch, "addmm", lambda *a, **k: calls.append(1) or real(*a, **k))
    rowptr, _, col = _csr(50, 40, 300, 2)
    ref.spmm_csr_ref(rowptr, col, torch.rand(300, 1), torch.randn(40, 1, f), "sum")
    ref.segment_sum(rowptr, torch.randn(300, f))
    assert len(calls) == (2 if mkl else 0)


def test_csr_sum_differentiates_in_its_dense_operand():
    """A reference differentiated by a test: inputs that need a gradient take torch.sparse.mm."""
    rowptr, row, col = _csr(20, 20, 80, 3)
    x = torch.randn(20, 8, dtype=torch.float64, requires_grad=True)
    v = torch.rand(80, dtype=torch.float64)
    ref.csr_sum(rowptr, col, v, x).sum().backward()
    a = _dense(20, 20, row, col, v)
    torch.testing.assert_close(x.grad, a.sum(0).view(-1, 1).expand(20, 8))


@pytest.mark.parametrize("f", [4, 64, 100])
def test_ops_sums_match_pytorch_on_both_paths(f):
    torch.manual_seed(0)
    ei = torch.randint(0, 300, (2, 2000))
    x = torch.randn(300, f, dtype=torch.float64)
    w = torch.rand(2000, dtype=torch.float64)
    expect = torch.zeros(300, f, dtype=torch.float64).index_add_(0, ei[1], w.view(-1, 1) * x[ei[0]])
    g = Graph.build(ei, num_nodes=300)
    torch.testing.assert_close(spmm(g, x, w), expect)
    vals = torch.randn(2000, f, dtype=torch.float64)
    seg = torch.zeros(300, f, dtype=torch.float64).index_add_(0, ei[1], vals)
    torch.testing.assert_close(segment_reduce(g, vals, "sum"), seg)


@pytest.mark.parametrize("width", [(8,), (2, 3), (70,)])
def test_node_sums_over_the_transpose_match_index_add(width):
    """GAT's per-slot scores summed onto sources: through the transposed CSR (MKL) when the
    transpose is given, index_add_ over the slots' sources otherwise; the same sums."""
    torch.manual_seed(0)
    g = Graph.build(torch.randint(0, 200, (2, 1500)), num_nodes=200)
    rowptr_t, _, perm_t = g.transpose()
    slots = torch.randn((g.num_edges,) + width)
    with_t, dst_t = ref.node_sums_ref(slots, g.rowptr, g.row, g.col, rowptr_t, perm_t, 200, True, True)
    without, dst = ref.node_sums_ref(slots, g.rowptr, g.row, g.col, None, None, 200, True, True)
    torch.testing.assert_close(with_t, without, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(with_t, torch.zeros((200,) + width).index_add_(0, g.col, slots), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(dst_t, torch.zeros((200,) + width).index_add_(0, g.row, slots), rtol=1e-5, atol=1e-5)
    assert torch.equal(dst_t, dst)


def test_csr_sum_under_autocast_keeps_the_operands_dtype():
    """autocast(bf16) would turn torch.addmm's operands into bf16, which MKL's sparse kernel lacks."""
    rowptr, row, col = _csr(30, 30, 100, 4)
    x, v = torch.randn(30, 8), torch.rand(100)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = ref.csr_sum(rowptr, col, v, x)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.double(), _dense(30, 30, row, col, v) @ x.double(), rtol=1e-5, atol=1e-5)


def test_segment_sums_are_not_views():
    """An MKL segment sum was a view of its 2-D result: the op's output then refused in-place changes
    under autograd ("Output 0 of SegmentReduceFunction is a view ..."); found by a review."""
    ei = torch.randint(0, 20, (2, 80), generator=torch.Generator().manual_seed(0))
    g = Graph.build(ei, num_nodes=20)
    for shape in [(80, 8), (80, 2, 4)]:
        v = torch.randn(*shape, requires_grad=True)
        out = segment_reduce(g, v, "sum")
        assert not out._is_view()
        out.add_(1.0)
        out.square().sum().backward()
        torch.testing.assert_close(v.grad, 2 * out.detach().index_select(0, ei[1]))  # d/dv of sum((s + 1)^2)
    rowptr_t, _, perm_t = g.transpose()
    src, _ = ref.node_sums_ref(torch.randn(80, 8), g.rowptr, g.row, g.col, rowptr_t, perm_t, 20, True, False)
    assert not src._is_view()


def test_extents_beyond_int32_keep_the_old_kernels(monkeypatch):
    """torch casts CSR indices to int32 for MKL without a range check: rows, columns or entries past
    int32 must not take that path (checked on the rule, with a lowered limit)."""
    monkeypatch.setattr(ref, "_INT32_MAX", 99)
    x = torch.randn(10, 8)
    assert ref._mkl_fits(x, 10, 10, 99) and not ref._mkl_fits(x, 10, 10, 100) and not ref._mkl_fits(x, 100)
    calls = []
    real = torch.addmm
    monkeypatch.setattr(torch, "addmm", lambda *a, **k: calls.append(1) or real(*a, **k))
    rowptr, row, col = _csr(10, 10, 150, 5)
    out = ref.csr_sum(rowptr, col, None, x)
    torch.testing.assert_close(out.double(), _dense(10, 10, row, col, torch.ones(150)) @ x.double(), rtol=1e-5,
                               atol=1e-5)
    assert not calls


def test_forward_mode_ad_keeps_the_old_kernels():
    """Dual tensors (forward-mode AD) have no MKL sparse kernel: segment sums keep index_add_ and exact tangents."""
    import torch.autograd.forward_ad as fwAD
    rowptr, row, _ = _csr(12, 12, 60, 6)
    v, t = torch.randn(60, 4, dtype=torch.float64), torch.randn(60, 4, dtype=torch.float64)
    with fwAD.dual_level():
        out = ref.segment_sum(rowptr, fwAD.make_dual(v, t))
        tangent = fwAD.unpack_dual(out).tangent
    torch.testing.assert_close(tangent, torch.zeros(12, 4, dtype=torch.float64).index_add_(0, row, t))


# ---------------------------------------------------------------------- the direct eager CPU path of spmm_slots
import importlib  # noqa: E402

_spmm_mod = importlib.import_module("gnnkit.ops.spmm")


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 60), e=st.integers(1, 400), f=st.sampled_from([1, 5, 64]), dtype=st.sampled_from(
    [torch.float32, torch.float64]), reduce=st.sampled_from(["sum", "mean"]), weighted=st.booleans(),
    seed=st.integers(0, 2 ** 16))
def test_the_direct_cpu_path_is_bit_identical_to_the_op_path(n, e, f, dtype, reduce, weighted, seed):
    """``CpuSumFunction`` (eager CPU calls, no op dispatch) gives SpMMFunction's bits, forward and backward."""
    if reduce == "mean" and (weighted or dtype == torch.float64):
        return  # not served by the direct path (below)
    g = torch.Generator().manual_seed(seed)
    graph = Graph.from_coo(torch.randint(0, n, (e,), generator=g), torch.randint(0, n, (e,), generator=g), n, n)
    x = torch.randn(n, 1, f, dtype=dtype, generator=g, requires_grad=True)
    v = torch.rand(e, 1, dtype=dtype, generator=g) if weighted else None
    seed_grad = torch.randn(n, 1, f, dtype=dtype, generator=g)
    assert _spmm_mod._cpu_direct(graph, x, v, reduce)
    outs = []
    for fn in (_spmm_mod.CpuSumFunction, _spmm_mod.SpMMFunction):
        x.grad = None
        y = fn.apply(graph, x, v, reduce, None)
        y.backward(seed_grad)
        outs.append((y.detach(), x.grad.clone()))
    assert torch.equal(outs[0][0], outs[1][0]) and torch.equal(outs[0][1], outs[1][1])


def test_the_direct_cpu_path_serves_only_what_it_computes(monkeypatch):
    """Everything outside its contract keeps the op path: other backends, dtypes, heads, widths, reductions,
    weights that need a gradient, no edges, compile-time tracers, forward-mode AD and autocast."""
    direct = _spmm_mod._cpu_direct
    graph = Graph.from_coo(torch.tensor([0, 1, 2]), torch.tensor([1, 2, 0]), 3, 3)
    x = torch.randn(3, 1, 8)
    assert direct(graph, x, None, "sum") and direct(graph, x, torch.rand(3, 1), "sum")
    assert direct(graph, x, None, "mean")
    assert not direct(graph, x, torch.rand(3, 1, requires_grad=True), "sum")  # its gradient is an SDDMM
    assert not direct(graph, x, torch.rand(3, 1), "mean")
    assert not direct(graph, x.double(), None, "mean")
    assert not direct(graph, x, None, "max")
    assert not direct(graph, x.half(), None, "sum")
    assert not direct(graph, torch.randn(3, 2, 8), torch.rand(3, 2), "sum")  # multi-head
    assert not direct(graph, torch.randn(3, 1, 65), None, "sum")  # wider than MKL's path
    assert not direct(Graph.from_coo(torch.tensor([], dtype=torch.long), torch.tensor([], dtype=torch.long), 3, 3),
                      x, None, "sum")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not direct(graph, x, None, "sum")
    import torch.autograd.forward_ad as fwAD
    with fwAD.dual_level():
        assert not direct(graph, x, None, "sum")
    monkeypatch.setenv("GNNKIT_BACKEND", "triton")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    import gnnkit.ops._backend as backend
    if backend.TRITON_FOUND:
        assert not direct(graph, x, None, "sum")


def test_the_direct_cpu_path_gives_second_derivatives():
    """It refused them (a RuntimeError) until 2026-12-06; now ||A x||^2's gradient 2 A^T A x is differentiable:
    d(sum of it)/dx = 2 A^T A 1, against a dense A (duplicate edges counted twice)."""
    src, dst = torch.tensor([0, 1, 2, 2, 0]), torch.tensor([1, 2, 0, 0, 0])
    graph = Graph.from_coo(src, dst, 3, 3)
    x = torch.randn(3, 1, 4, dtype=torch.float64, requires_grad=True)
    assert _spmm_mod._cpu_direct(graph, x, None, "sum")
    (g,) = torch.autograd.grad(_spmm_mod.spmm_slots(graph, x).pow(2).sum(), x, create_graph=True)
    (gg,) = torch.autograd.grad(g.sum(), x)
    A = torch.zeros(3, 3, dtype=torch.float64).index_put_((dst, src), torch.ones(5, dtype=torch.float64),
                                                          accumulate=True)
    torch.testing.assert_close(g, 2 * torch.einsum("ji,jk,khf->ihf", A, A, x))
    torch.testing.assert_close(gg, 2 * (A.T @ A @ torch.ones(3, dtype=torch.float64)).view(3, 1, 1).expand(3, 1, 4))


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 30), s=st.integers(1, 30), e=st.integers(0, 120), f=st.sampled_from([1, 5, 64]),
       weighted=st.booleans(), reduce=st.sampled_from(["sum", "mean", "amax", "amin"]), seed=st.integers(0, 10**6))
def test_the_off_cpu_reduce_matches_scatter_reduce(n, s, e, f, weighted, reduce, seed):
    """``_gathered_reduce`` (what the references run off the CPU, where ``torch.sparse.mm(reduce=)`` is not
    implemented; run here on CPU tensors) against ``scatter_reduce`` (PyG's aggregation): values (empty rows 0),
    the gradients of the dense operand and the weights, ties included (repeated columns)."""
    e = e if n else 0
    rowptr, row, col = _csr(n, s, e, seed)
    g = torch.Generator().manual_seed(seed + 1)
    col = col if e < 4 else torch.cat([col[: e // 2], col[: e - e // 2]])  # repeated columns: ties in max / min
    dense = torch.randn(s, f, generator=g, dtype=torch.float64)
    value = torch.rand(e, generator=g, dtype=torch.float64) + 0.5 if weighted else None
    go = torch.randn(n, f, generator=g, dtype=torch.float64)

    def run(fn):
        d = dense.clone().requires_grad_()
        v = None if value is None else value.clone().requires_grad_()
        out = fn(d, v)
        leaves = [d] + ([v] if v is not None else [])
        grads = torch.autograd.grad(out, leaves, go, allow_unused=True) if out.requires_grad else [None] * len(leaves)
        return [out.detach()] + [torch.zeros_like(x) if gr is None else gr for x, gr in zip(leaves, grads)]

    def scatter(d, v):  # PyG's definition: torch's scatter_reduce (a max / min gradient split among ties)
        msg = d.index_select(0, col) * (1 if v is None else v.unsqueeze(-1))
        how = {"sum": "sum", "mean": "mean", "amax": "amax", "amin": "amin"}[reduce]
        return d.new_zeros(n, f).scatter_reduce(0, row.unsqueeze(-1).expand(e, f), msg, how, include_self=False)

    got = run(lambda d, v: ref._gathered_reduce(rowptr, col, v, d, reduce))
    given_rows = run(lambda d, v: ref._gathered_reduce(rowptr, col, v, d, reduce, row))  # Graph.row passed in
    want = run(scatter)
    for a, b, c in zip(got, given_rows, want):
        torch.testing.assert_close(a, c)
        torch.testing.assert_close(b, c)


def test_the_references_read_the_given_slot_rows(monkeypatch):
    """Given ``Graph.row``, the off-CPU max / min reduce, the max / min backward and the SDDMM's pattern do not
    rebuild the slots' rows from ``rowptr``."""
    graph = Graph.build(torch.randint(0, 300, (2, 4000), generator=torch.Generator().manual_seed(3)), num_nodes=300)
    x = torch.randn(300, 1, 64)

    def refuse(*_):
        raise AssertionError("slot_rows rebuilt the rows it was given")

    monkeypatch.setattr(ref, "slot_rows", refuse)
    for reduce in ("amax", "amin"):
        ref._gathered_reduce(graph.rowptr, graph.col, None, x.view(300, 64), reduce, graph.row)
    ref.spmm_arg_bwd_ref(graph.rowptr, graph.col, None, x, torch.randn(300, 1, 64), "max", graph.row)
    a = torch.randn(300, 1, 4096)  # E * H * F above the small-graph gather: the sampled-addmm path
    ref.sddmm_csr_ref(graph.rowptr, graph.col, a, a, None, graph.row)
