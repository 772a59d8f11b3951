"""Sparse ops with autograd on a CSR graph structure (see docs/architecture.md).

Every op has a pure-torch reference (``*_ref``), an autograd Function, and one
public function that dispatches to a Triton kernel on CUDA or the torch path
(``GNNKIT_BACKEND=torch|triton|auto`` forces either).
"""
import warnings as _warnings

# gnnkit builds torch.sparse CSR tensors internally (the CPU SpMM path); PyTorch's one-time
# "beta state" notice is about the public sparse-CSR API, not something gnnkit's users do.
_warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")

from ._backend import backend_mode, use_triton
from .gat import gat_attention
from .graph import Graph, as_graph, cached_for, clear_cache, is_sparse_adj, validate_edge_index
from .sddmm import sddmm, sddmm_csr_ref
from .segment import segment_reduce, segment_reduce_ref
from .softmax import segment_softmax, segment_softmax_ref
from .spmm import spmm, spmm_csr_ref
from .vq import nearest_code, nearest_code_ref

__all__ = [
    "Graph", "as_graph", "cached_for", "clear_cache", "is_sparse_adj", "validate_edge_index",
    "spmm", "spmm_csr_ref", "sddmm", "sddmm_csr_ref", "segment_softmax", "segment_softmax_ref",
    "segment_reduce", "segment_reduce_ref", "gat_attention", "nearest_code", "nearest_code_ref", "backend_mode", "use_triton",
]
