r"""Time gnnkit's sparse ops against their peers on one graph (the logic of ``gnnkit profile``).

For every op (``spmm``, ``sddmm``, ``softmax``, ``segment``, ``gat``), every backend
available here, and each mode (``fwd``, ``fwd+bwd``) it records:

* the median wall time over ``repeats`` runs after ``warmup`` runs
  (CUDA: synchronised before and after each run);
* effective bandwidth, GB/s = modelled compulsory bytes / median time, with the
  model of :func:`compulsory_bytes` (docs/kernels.md);
* that bandwidth as a percent of a device-to-device copy measured on the same
  device in the same run (``dst.copy_(src)``, read + write bytes);
* peak memory of one run above the memory in use before it.  CUDA:
  ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``.  CPU:
  the process's peak resident set size (``VmHWM``, reset through
  ``/proc/self/clear_refs``) minus the resident size before the run, with glibc's
  mmap threshold pinned at 64 KiB (``mallopt``) during that run so freed tensors
  leave the RSS;
  it counts every allocation of the run (torch, PyG, allocator overhead).  Outside
  the measured run the threshold is set to 32 MiB (glibc's own dynamic maximum), so
  timed runs allocate as usual.

Backends: ``gnnkit-triton`` (CUDA + triton), ``gnnkit-torch`` (the pure-torch path),
``pyg`` (PyG's own ``MessagePassing`` / ``torch_geometric.utils``), ``pyg-compiled``
(the same under ``torch.compile``), ``torch.sparse`` (PyTorch's sparse kernels),
``torch-sparse`` / ``torch-scatter`` (when installed).
"""
from __future__ import annotations

import contextlib
import ctypes
import json
import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import torch
from torch import Tensor

from gnnkit._atomic import atomic_write

OPS = ("spmm", "sddmm", "softmax", "segment", "gat")
MODES = ("fwd", "fwd+bwd")
BACKENDS = ("gnnkit-triton", "gnnkit-torch", "pyg", "pyg-compiled", "torch.sparse", "torch-sparse",
            "torch-scatter")
_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


# ---------------------------------------------------------------------- graphs
@dataclass
class GraphSpec:
    name: str
    edge_index: Tensor  # [2, E] int64 (source, destination)
    num_nodes: int


def power_law_graph(num_nodes: int, num_edges: int, exponent: float = 2.1, seed: int = 0) -> GraphSpec:
    """Directed graph whose in- and out-degrees follow a power law (Chung–Lu style sampling:
    endpoints drawn with probability proportional to ``rank^(-1/(exponent-1))``)."""
    if num_nodes < 1:
        raise ValueError(f"num_nodes must be >= 1, got {num_nodes}")
    if num_edges < 0:
        raise ValueError(f"num_edges must be >= 0, got {num_edges}")
    if exponent <= 1:
        raise ValueError(f"exponent must be > 1, got {exponent}")
    gen = torch.Generator().manual_seed(seed)
    w = torch.arange(1, num_nodes + 1, dtype=torch.float64).pow(-1.0 / (exponent - 1.0))
    src = torch.multinomial(w, num_edges, replacement=True, generator=gen)
    dst = torch.multinomial(w, num_edges, replacement=True, generator=gen)
    relabel = torch.randperm(num_nodes, generator=gen)  # hubs are not all at low ids
    ei = torch.stack([relabel[src], relabel[dst]])
    return GraphSpec(f"powerlaw(N={num_nodes},E={num_edges})", ei, num_nodes)


def dataset_graph(name: str) -> GraphSpec:
    """The (union of the) graph(s) of a dataset known to :func:`gnnkit.data.load_dataset`."""
    from gnnkit.data import load_dataset
    ds = load_dataset(name)
    if len(ds) == 1:
        data = ds[0]
    else:
        from torch_geometric.data import Batch
        data = Batch.from_data_list([ds[i] for i in range(len(ds))])
    return GraphSpec(name, data.edge_index.long(), int(data.num_nodes))


def edge_list_graph(path: str) -> GraphSpec:
    """An edge-list file: ``.pt`` holding a ``[2, E]`` tensor, or text with one ``src dst`` pair
    per line (``#`` comments, commas or whitespace)."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"--edges {path!r}: no such file; give a .pt [2, E] tensor or a text edge list")
    if p.suffix == ".pt":
        ei = torch.load(p, map_location="cpu", weights_only=True)
        if not isinstance(ei, Tensor) or ei.dim() != 2 or ei.size(0) != 2:
            raise ValueError(f"--edges {path!r}: expected a [2, E] tensor, got "
                             f"{getattr(ei, 'shape', type(ei).__name__)}")
        ei = ei.long()
    else:
        pairs = []
        for lineno, line in enumerate(p.read_text().splitlines(), 1):
            line = line.split("#", 1)[0].replace(",", " ").strip()
            if not line:
                continue
            parts = line.split()
            if len(parts) < 2:
                raise ValueError(f"--edges {path!r} line {lineno}: expected 'src dst', got {line!r}")
            try:
                pairs.append((int(parts[0]), int(parts[1])))
            except ValueError:
                raise ValueError(f"--edges {path!r} line {lineno}: node ids must be integers, got {line!r}")
        ei = torch.tensor(pairs, dtype=torch.long).t().reshape(2, -1)
    if ei.numel() and int(ei.min()) < 0:
        raise ValueError(f"--edges {path!r}: negative node id {int(ei.min())}")
    n = int(ei.max()) + 1 if ei.numel() else 0
    return GraphSpec(p.name, ei, n)


# ---------------------------------------------------------------------- memory and time
_M_MMAP_THRESHOLD = -3
_MEASURE_THRESHOLD = 64 * 1024  # while measuring: blocks >= 64 KiB are mmapped and unmapped on free
_RUN_THRESHOLD = 32 * 2 ** 20  # afterwards: glibc's own upper limit for its dynamic threshold


def _set_mmap_threshold(nbytes: int) -> bool:
    """glibc ``mallopt(M_MMAP_THRESHOLD)``; False where there is no glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, nbytes))
    except (OSError, AttributeError):
        return False


def _status_kb(key: str) -> Optional[int]:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class PeakMemory:
    """Peak memory of a code region above what was in use before it (bytes), see module doc."""

    def __init__(self, device: torch.device):
        self.device = device
        self.method = "unavailable"
        self._glibc = False
        if device.type == "cuda":
            self.method = "torch.cuda.max_memory_allocated"
        elif _status_kb("VmHWM") is not None and _reset_hwm():
            self._glibc = _set_mmap_threshold(_RUN_THRESHOLD)
            self.method = "peak RSS delta (VmHWM via /proc/self/clear_refs, glibc mmap threshold 64 KiB)" \
                if self._glibc else "peak RSS delta (VmHWM via /proc/self/clear_refs)"

    @contextlib.contextmanager
    def measure(self, out: Dict[str, float]):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            base = torch.cuda.memory_allocated(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            yield
            torch.cuda.synchronize(self.device)
            out["peak_bytes"] = float(torch.cuda.max_memory_allocated(self.device) - base)
        elif self.method != "unavailable":
            if self._glibc:  # large blocks leave the RSS when freed, only while measuring
                _set_mmap_threshold(_MEASURE_THRESHOLD)
            try:
                base = _status_kb("VmRSS")
                _reset_hwm()
                yield
                out["peak_bytes"] = float(max(_status_kb("VmHWM") - base, 0) * 1024)
            finally:
                if self._glibc:
                    _set_mmap_threshold(_RUN_THRESHOLD)
        else:
            yield
            out["peak_bytes"] = float("nan")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_fn(fn: Callable[[], None], device: torch.device, warmup: int, repeats: int) -> List[float]:
    """Wall times (seconds) of ``repeats`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return times


def copy_bandwidth(device: torch.device, nbytes: int = 256 * 2 ** 20, repeats: int = 5) -> float:
    """Device copy bandwidth in GB/s (bytes read + bytes written per second), median of ``repeats``."""
    n = nbytes // 4
    src = torch.randn(n, device=device)
    dst = torch.empty_like(src)
    times = time_fn(lambda: dst.copy_(src), device, warmup=2, repeats=repeats)
    return 2 * n * 4 / statistics.median(times) / 1e9


# ---------------------------------------------------------------------- bandwidth model
def compulsory_bytes(op: str, mode: str, N: int, E: int, F: int, H: int, b: int, i: int = 8) -> int:
    """Bytes an ideal kernel must move (docs/kernels.md, field.md's model): CSR structure
    ``(N+1)·i + E·i``, each dense input read once, each output written once.  ``F`` is the
    width per head (total width ``H·F``); backward adds the transposed structure and the
    gradients' reads and writes."""
    struct = (N + 1) * i + E * i
    W = H * F
    if op == "spmm":  # Y = A X (sum), X read once (perfect reuse), Y written once
        fwd = struct + N * W * b + N * W * b
        bwd = struct + N * W * b + N * W * b  # dX = A^T dY
    elif op == "sddmm":  # s_e = <a_i, b_j>
        fwd = struct + 2 * N * W * b + E * H * b
        bwd = 2 * struct + E * H * b + 2 * N * W * b + 2 * N * W * b  # two SpMMs with dS as values
    elif op == "softmax":
        fwd = struct + 2 * E * H * b
        bwd = struct + 3 * E * H * b
    elif op == "segment":  # values [E, W] in, [N, W] out
        fwd = (N + 1) * i + E * W * b + N * W * b
        bwd = (N + 1) * i + N * W * b + E * W * b
    elif op == "gat":  # x, a_src, a_dst in; out and the [N, H] fp32 statistics out
        fwd = struct + N * W * b + 2 * N * H * b + N * W * b + 2 * N * H * 4
        bwd = 2 * struct + 3 * N * W * b + 2 * N * H * b + N * W * b + 2 * N * H * b
    else:
        raise ValueError(f"op {op!r} has no bandwidth model; use one of {OPS}")
    return fwd if mode == "fwd" else fwd + bwd


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
            gen = torch.Generator(device=self.device).manual_seed(self.seed + len(name))
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
    from torch_geometric.utils import scatter
    from torch_geometric.utils import softmax as pyg_softmax

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
            from torch_sparse import SparseTensor
            from torch_sparse import matmul as ts_matmul
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
        from gnnkit.ops._backend import _kernel_module
        if _kernel_module("spmm") is not None:
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


def plot(report: dict, path: Path) -> None:
    """Bar chart of median times (log scale), one panel per mode; written atomically."""
    import io

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recs = [r for r in report["results"] if r["error"] is None]
    ops = [o for o in OPS if any(r["op"] == o for r in recs)]
    backends = [b for b in BACKENDS if any(r["backend"] == b for r in recs)]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    width = 0.8 / max(len(backends), 1)
    for ax, mode in zip(axes, MODES):
        for k, bk in enumerate(backends):
            xs, ys = [], []
            for j, o in enumerate(ops):
                hit = [r for r in recs if r["op"] == o and r["backend"] == bk and r["mode"] == mode]
                if hit:
                    xs.append(j + k * width)
                    ys.append(hit[0]["median_ms"])
            ax.bar(xs, ys, width, label=bk)
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(ops))], ops)
        ax.set_yscale("log")
        ax.set_title(f"{mode}")
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("median time (ms, log)")
    axes[1].legend(fontsize=8)
    g = report["graph"]
    fig.suptitle(f"gnnkit profile — {g['name']} N={g['num_nodes']:,} E={g['num_edges']:,} F={report['features']} "
                 f"({report['device']}, {report['dtype']})", fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write(path, buf.getvalue())


def profile(graph: GraphSpec, device: torch.device, features: int = 64, heads: int = 8,
            head_dim: Optional[int] = None, dtype: torch.dtype = torch.float32, ops: Tuple[str, ...] = OPS,
            backends: Optional[List[str]] = None, modes: Tuple[str, ...] = MODES, warmup: int = 2,
            repeats: int = 10, compile_: bool = True, seed: int = 0, progress: bool = True,
            copy_mb: int = 256, compile_ops: Optional[Tuple[str, ...]] = None) -> dict:
    """Run the whole grid and return the report (a JSON-able dict)."""
    from tqdm.auto import tqdm

    for o in ops:
        if o not in OPS:
            raise ValueError(f"unknown op {o!r}; choose from {OPS}")
    for m in modes:
        if m not in MODES:
            raise ValueError(f"unknown mode {m!r}; choose from {MODES}")
    avail = available_backends(device, compile_)
    if backends is None:
        backends = avail
    else:
        for bk in backends:
            if bk not in BACKENDS:
                raise ValueError(f"unknown backend {bk!r}; choose from {BACKENDS}")
    C = head_dim or max(features // heads, 1)
    p = make_problem(graph, features, heads, C, dtype, device, seed)
    mem = PeakMemory(device)
    copy_gbps = copy_bandwidth(device, copy_mb * 2 ** 20)
    grid = [(o, bk, m) for o in ops for bk in backends for m in modes]
    results = []
    bar = tqdm(grid, desc="profile", disable=not progress, leave=False)
    for k, (o, bk, m) in enumerate(bar):
        bar.set_postfix_str(f"{o} {bk} {m}")
        if k and grid[k - 1][0] != o:
            p.release()  # drop the previous op's inputs before timing the next op
        if bk not in avail:
            rec = Record(o, bk, m, error="backend not available here")
        elif bk == "pyg-compiled" and compile_ops is not None and o not in compile_ops:
            rec = Record(o, bk, m, error=f"torch.compile limited to {', '.join(compile_ops)} in this run")
        else:
            rec = run_one(p, o, bk, m, device, warmup, repeats, mem, features, C, copy_gbps)
        results.append(asdict(rec))
    return {
        "tool": "gnnkit profile",
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else
        f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)",
        "torch": torch.__version__,
        "torch_geometric": _version("torch_geometric"),
        "triton": _version("triton"),
        "dtype": str(dtype).replace("torch.", ""),
        "graph": {"name": graph.name, "num_nodes": graph.num_nodes, "num_edges": int(graph.edge_index.size(1))},
        "features": features, "heads": heads, "head_dim": C, "compile_ops": list(compile_ops or OPS)
        if compile_ else [],
        "warmup": warmup, "repeats": repeats,
        "copy_gbps": copy_gbps,
        "memory_method": mem.method,
        "bandwidth_model": "compulsory bytes (gnnkit.profile.compulsory_bytes, docs/kernels.md) / median time",
        "results": results,
    }


def _version(mod: str) -> Optional[str]:
    try:
        return __import__(mod).__version__
    except Exception:
        return None


def write_report(report: dict, json_path: Path, png_path: Optional[Path]) -> None:
    atomic_write(json_path, (json.dumps(report, indent=1, allow_nan=True) + "\n").encode())
    if png_path is not None:
        plot(report, png_path)


def format_table(report: dict) -> str:
    lines = [f"{'op':8} {'backend':14} {'mode':8} {'median ms':>10} {'GB/s':>8} {'% copy':>7} {'peak MB':>9}"]
    for r in report["results"]:
        if r["error"] is not None:
            if r["error"] not in ("not offered by this backend", "backend not available here") and \
                    not r["error"].startswith("torch.compile limited"):
                lines.append(f"{r['op']:8} {r['backend']:14} {r['mode']:8} error: {r['error'][:60]}")
            continue
        lines.append(f"{r['op']:8} {r['backend']:14} {r['mode']:8} {r['median_ms']:10.3f} {r['gbps']:8.2f} "
                     f"{r['pct_copy']:7.1f} {r['peak_mb']:9.1f}")
    lines.append(f"copy bandwidth {report['copy_gbps']:.1f} GB/s on {report['device']}; "
                 f"memory: {report['memory_method']}")
    return "\n".join(lines)
