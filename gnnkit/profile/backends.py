"""The callables each backend runs for each op (gnnkit's two paths, PyG, torch.sparse, the
torch-sparse/torch-scatter extensions), and one measured run of one of them."""
from __future__ import annotations

import contextlib
import os
import statistics
import zlib
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

import torch
from torch import Tensor

from .graphs import GraphSpec
from .measure import PeakMemory, compulsory_bytes, time_fn

MODES = ("fwd", "fwd+bwd")
BACKENDS = ("gnnkit-triton", "gnnkit-torch", "pyg", "pyg-compiled", "torch.sparse", "torch-sparse",
            "torch-scatter")
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


# ---------------------------------------------------------------------- problems
class Problem:
    """Inputs of every op on one graph, in one dtype and on one device.

    The dense inputs are made on first use and dropped by :meth:`release` after each
    op, so an op's ``[E, F]`` tensors never sit in memory while another op is timed."""

    def __init__(self, g: GraphSpec, F: int, H: int, C: int, dtype: torch.dtype, device: torch.device,
                 seed: int = 0):
        self.edge_index = g.edge_index.to(device)
        self.num_nodes = N = g.num_nodes
        self.F, self.heads, self.C, self.dtype, self.device, self.seed = F, H, C, dtype, device, seed
        dst = self.edge_index[1]
        self.csr_perm = torch.sort(dst * max(N, 1) + self.edge_index[0], stable=True).indices
        self.rowptr = torch.searchsorted(dst[self.csr_perm], torch.arange(N + 1, device=device))
        self._made: Dict[str, Tensor] = {}

    def _make(self, name: str, *shape: int, scale: float = 1.0) -> Tensor:
        if name not in self._made:
            # a seed per name (zlib.crc32: stable across processes, unlike hash()); len(name) gave att_src and
            # att_dst the same values
            gen = torch.Generator(device=self.device).manual_seed(self.seed + zlib.crc32(name.encode()))
            t = torch.randn(*shape, generator=gen, device=self.device, dtype=torch.float32) * scale
            self._made[name] = t.to(self.dtype)
        return self._made[name]

    @property
    def num_edges(self) -> int:
        return self.edge_index.size(1)

    @property
    def x(self) -> Tensor:  # [N, F] (spmm, sddmm)
        return self._make("x", self.num_nodes, self.F)

    @property
    def x2(self) -> Tensor:  # [N, F] second operand of sddmm
        return self._make("x2", self.num_nodes, self.F)

    @property
    def xh(self) -> Tensor:  # [N, H, C] (gat)
        return self._make("xh", self.num_nodes, self.heads, self.C)

    @property
    def att_src(self) -> Tensor:  # [H, C]
        return self._make("att_src", self.heads, self.C, scale=self.C ** -0.5)

    @property
    def att_dst(self) -> Tensor:
        return self._make("att_dst", self.heads, self.C, scale=self.C ** -0.5)

    @property
    def logits(self) -> Tensor:  # [E, H] (softmax)
        return self._make("logits", self.num_edges, self.heads)

    @property
    def values(self) -> Tensor:  # [E, F] (segment)
        return self._make("values", self.num_edges, self.F)

    def release(self) -> None:
        self._made.clear()


def make_problem(g: GraphSpec, F: int, H: int, C: int, dtype: torch.dtype, device: torch.device,
                 seed: int = 0) -> Problem:
    return Problem(g, F, H, C, dtype, device, seed)


def _pyg_modules():
    from torch_geometric.nn import MessagePassing
    from torch_geometric.utils import softmax as pyg_softmax

    class SumAggr(MessagePassing):
        """PyG's message passing with the identity message: Y = A X."""

        def __init__(self):
            super().__init__(aggr="add")

        def forward(self, x, edge_index):
            return self.propagate(edge_index, x=x)

    class GATAttention(MessagePassing):
        """GATConv's attention and aggregation (its ``message``/``edge_update`` code) on
        projected features ``x [N, H, C]``."""

        def __init__(self):
            super().__init__(aggr="add", node_dim=0)

        def forward(self, x, att_src, att_dst, edge_index):
            a_src = (x * att_src).sum(-1)
            a_dst = (x * att_dst).sum(-1)
            alpha = self.edge_updater(edge_index, alpha=(a_src, a_dst), size=None)
            return self.propagate(edge_index, x=x, alpha=alpha)

        def edge_update(self, alpha_j, alpha_i, index, ptr, dim_size):
            alpha = torch.nn.functional.leaky_relu(alpha_j + alpha_i, 0.2)
            return pyg_softmax(alpha, index, ptr, dim_size)

        def message(self, x_j, alpha):
            return alpha.unsqueeze(-1) * x_j

    return SumAggr, GATAttention


def build_callables(p: Problem, backend: str, op: str) -> Optional[Tuple[Callable, List[Tensor]]]:
    """``(fn, leaves)``: ``fn()`` returns the op's output from ``leaves`` (the tensors that
    get gradients in fwd+bwd); None when the backend does not offer the op here."""
    from torch_geometric.utils import scatter, softmax as pyg_softmax

    ei, N = p.edge_index, p.num_nodes
    src, dst = ei[0], ei[1]
    if backend in ("gnnkit-triton", "gnnkit-torch"):
        from gnnkit import ops
        graph, _ = ops.as_graph(ei, num_nodes=N)
        graph.transpose()  # cached structure, as in a training loop
        if op == "spmm":
            return (lambda x: ops.spmm(graph, x)), [p.x]
        if op == "sddmm":
            return (lambda a, b: ops.sddmm(graph, a, b)), [p.x, p.x2]
        if op == "softmax":
            return (lambda s: ops.segment_softmax(graph, s)), [p.logits]
        if op == "segment":
            return (lambda v: ops.segment_reduce(graph, v, "sum")), [p.values]
        if op == "gat":
            def gat(x, att_s, att_d):
                out, _ = ops.gat_attention(graph, x, (x * att_s).sum(-1), (x * att_d).sum(-1))
                return out
            return gat, [p.xh, p.att_src, p.att_dst]
    if backend in ("pyg", "pyg-compiled"):
        SumAggr, GATAttention = _pyg_modules()
        wrap = (lambda f: torch.compile(f, dynamic=False)) if backend == "pyg-compiled" else (lambda f: f)
        if op == "spmm":
            m = wrap(SumAggr())
            return (lambda x: m(x, ei)), [p.x]
        if op == "sddmm":
            f = wrap(lambda a, b: (a.index_select(0, dst) * b.index_select(0, src)).sum(-1))
            return f, [p.x, p.x2]
        if op == "softmax":
            f = wrap(lambda s: pyg_softmax(s, dst, num_nodes=N))
            return f, [p.logits]
        if op == "segment":
            f = wrap(lambda v: scatter(v, dst, dim=0, dim_size=N, reduce="sum"))
            return f, [p.values]
        if op == "gat":
            m = wrap(GATAttention())
            return (lambda x, a, b: m(x, a, b, ei)), [p.xh, p.att_src, p.att_dst]
    if backend == "torch.sparse":
        col = src[p.csr_perm]
        if op == "spmm":
            ones = torch.ones(col.numel(), dtype=p.x.dtype, device=col.device)
            A = torch.sparse_csr_tensor(p.rowptr, col, ones, (N, N), check_invariants=False)
            return (lambda x: torch.sparse.mm(A, x)), [p.x]
        if op == "sddmm":
            pattern = torch.sparse_csr_tensor(p.rowptr, col, torch.zeros(col.numel(), dtype=p.x.dtype,
                                                                          device=col.device), (N, N))
            return (lambda a, b: torch.sparse.sampled_addmm(pattern, a, b.t(), beta=0.0).values()), \
                [p.x, p.x2]
        if op == "softmax":
            idx = torch.stack([dst, src])

            def sm(s):
                coo = torch.sparse_coo_tensor(idx, s, (N, N, s.size(1))).coalesce()
                return torch.sparse.softmax(coo, dim=1).values()
            return sm, [p.logits]
        return None
    if backend == "torch-sparse":
        try:
            from torch_sparse import SparseTensor, matmul as ts_matmul
        except Exception:
            return None
        if op == "spmm":
            adj_t = SparseTensor(row=dst, col=src, sparse_sizes=(N, N))
            adj_t.storage.rowptr()
            adj_t.storage.csr2csc()
            return (lambda x: ts_matmul(adj_t, x, reduce="sum")), [p.x]
        return None
    if backend == "torch-scatter":
        try:
            from torch_scatter import segment_csr
        except Exception:
            return None
        if op == "segment":
            perm, rowptr = p.csr_perm, p.rowptr
            return (lambda v: segment_csr(v.index_select(0, perm), rowptr, reduce="sum")), [p.values]
        return None
    return None


@contextlib.contextmanager
def _backend_env(backend: str):
    old = os.environ.get("GNNKIT_BACKEND")
    if backend.startswith("gnnkit-"):
        os.environ["GNNKIT_BACKEND"] = backend.split("-", 1)[1]
    try:
        yield
    finally:
        if backend.startswith("gnnkit-"):
            if old is None:
                os.environ.pop("GNNKIT_BACKEND", None)
            else:
                os.environ["GNNKIT_BACKEND"] = old


def available_backends(device: torch.device, compile_: bool = True) -> List[str]:
    out = []
    if device.type == "cuda":
        from gnnkit.ops._backend import TRITON_FOUND
        if TRITON_FOUND:
            out.append("gnnkit-triton")
    out += ["gnnkit-torch", "pyg"]
    if compile_:
        out.append("pyg-compiled")
    out.append("torch.sparse")
    for mod, name in (("torch_sparse", "torch-sparse"), ("torch_scatter", "torch-scatter")):
        try:
            __import__(mod)
            out.append(name)
        except Exception:
            pass
    return out


# ---------------------------------------------------------------------- runner
@dataclass
class Record:
    op: str
    backend: str
    mode: str
    median_ms: float = float("nan")
    times_ms: List[float] = field(default_factory=list)
    bytes_model: int = 0
    gbps: float = float("nan")
    pct_copy: float = float("nan")
    peak_mb: float = float("nan")
    error: Optional[str] = None


def run_one(p: Problem, op: str, backend: str, mode: str, device: torch.device, warmup: int, repeats: int,
            mem: PeakMemory, F: int, C: int, copy_gbps: float) -> Record:
    rec = Record(op, backend, mode)
    N, E = p.num_nodes, p.edge_index.size(1)
    b = torch.empty((), dtype=p.dtype).element_size()
    width, H = (C, p.heads) if op == "gat" else ((1, p.heads) if op == "softmax" else (F, 1))
    rec.bytes_model = compulsory_bytes(op, mode, N, E, width, H, b)
    with _backend_env(backend):
        try:
            built = build_callables(p, backend, op)
            if built is None:
                rec.error = "not offered by this backend"
                return rec
            fn, leaves = built
            if mode == "fwd":
                def call():
                    with torch.no_grad():
                        fn(*leaves)
            else:
                leaves = [t.detach().requires_grad_() for t in leaves]
                grad_holder: Dict[str, Tensor] = {}

                def call():
                    for t in leaves:
                        t.grad = None
                    out = fn(*leaves)
                    g = grad_holder.get("g")
                    if g is None or g.shape != out.shape:
                        g = grad_holder["g"] = torch.randn_like(out)
                    out.backward(g)
            times = time_fn(call, device, warmup, repeats)
            stats: Dict[str, float] = {}
            with mem.measure(stats):
                call()
            rec.times_ms = [t * 1e3 for t in times]
            rec.median_ms = statistics.median(rec.times_ms)
            rec.gbps = rec.bytes_model / (rec.median_ms / 1e3) / 1e9
            rec.pct_copy = 100.0 * rec.gbps / copy_gbps if copy_gbps > 0 else float("nan")
            rec.peak_mb = stats["peak_bytes"] / 2 ** 20
        except Exception as e:  # one backend failing (OOM, unsupported) must not stop the run
            rec.error = f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"
        finally:
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return rec
