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
  ``/proc/self/clear_refs``) minus the resident size before the run (taken after
  ``malloc_trim(0)``, so free heap chunks the run could reuse unseen are not counted as
  in use), with glibc's
  mmap threshold pinned at 64 KiB (``mallopt``) during that run so freed tensors
  leave the RSS;
  it counts every allocation of the run (torch, PyG, allocator overhead).  Outside
  the measured run the threshold is set to 32 MiB (glibc's own dynamic maximum), so
  timed runs allocate as usual.

Backends: ``gnnkit-triton`` (CUDA + triton), ``gnnkit-torch`` (the pure-torch path),
``pyg`` (PyG's own ``MessagePassing`` / ``torch_geometric.utils``), ``pyg-compiled``
(the same under ``torch.compile``), ``torch.sparse`` (PyTorch's sparse kernels),
``torch-sparse`` / ``torch-scatter`` (when installed).

The package: :mod:`.graphs` (what to profile on), :mod:`.measure` (peak memory, timing, the
bandwidth model), :mod:`.backends` (the callables per backend and op, one measured run),
:mod:`.report` (the grid, JSON, plot, table).  ``benchmarks/`` reuses these pieces.
"""
from .backends import (
                       BACKENDS,
                       DTYPES,
                       MODES,
                       Problem,
                       Record,
                       available_backends,
                       build_callables,
                       make_problem,
                       run_one,
)
from .graphs import GraphSpec, dataset_graph, edge_list_graph, power_law_graph, skewed_in_degree_graph
from .measure import (
    OPS,
    PeakMemory,
    compulsory_bytes,
    copy_bandwidth,
    interleaved,
    paired_ratio,
    require_at_least_one,
    sync,
    time_fn,
)
from .report import format_table, plot, plot_ratios, profile, write_report

__all__ = [
    "BACKENDS", "DTYPES", "MODES", "OPS", "Problem", "Record", "available_backends", "build_callables",
    "make_problem", "run_one", "GraphSpec", "dataset_graph", "edge_list_graph", "power_law_graph",
    "skewed_in_degree_graph", "PeakMemory",
    "compulsory_bytes", "copy_bandwidth", "time_fn", "interleaved", "paired_ratio", "require_at_least_one", "sync",
    "format_table", "plot", "plot_ratios", "profile", "write_report",
]
