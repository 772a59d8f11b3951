"""Sparse ops with autograd on a CSR graph structure (see docs/architecture.md).

The one API layers use.  Two tiers per op:

* the public boundary (``spmm``, ``sddmm``, ``segment_softmax``, ``segment_reduce``,
  ``gat_attention``): per-edge tensors in the input edge order, inputs checked;
* the CSR-slot tier (``*_slots``): per-edge tensors already in the :class:`Graph`'s CSR slot
  order, 3-D node features ``[nodes, H, F]``, no reordering and only a row-count check — what
  layers call every step.

Each op has a pure-torch reference (``*_ref``, :mod:`.reference`), an autograd Function, and
a registered custom op (:mod:`.primitives`) that runs the Triton kernel from
``gnnkit.kernels`` on CUDA or the torch path (``GNNKIT_BACKEND=torch|triton|auto`` forces either).
"""
import warnings as _warnings

from ._backend import backend_mode, use_triton
from ._custom_op import functorch_active
from .aggregations import quantile_aggregate_slots, softmax_aggregate_ref, softmax_aggregate_slots
from .bias import bias_add
from .gat import coo_gat_attention, edge_dropout, gat_attention, gat_attention_slots
from .graph import (
                    Graph,
                    Size,
                    SparseTensor,
                    as_graph,
                    cached_for,
                    clear_cache,
                    is_sparse_adj,
                    set_cache_limit,
                    validate_edge_index,
)
from .reference import sddmm_csr_ref, segment_reduce_ref, segment_softmax_ref, spmm_csr_ref
from .sddmm import sddmm, sddmm_slots
from .segment import segment_reduce, segment_reduce_slots
from .softmax import segment_softmax, segment_softmax_slots
from .spmm import coo_gcn_sum, coo_sum, gather_slots, relu_message_slots, spmm, spmm_slots
from .transformer import batch_distances, graph_attention
from .vq import nearest_code, nearest_code_ref

# gnnkit builds torch.sparse CSR tensors internally (the CPU SpMM path); PyTorch's one-time
# "beta state" notice is about the public sparse-CSR API, not something gnnkit's users do.
_warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")

__all__ = [
    "Graph", "Size", "SparseTensor", "as_graph", "cached_for", "clear_cache", "is_sparse_adj", "set_cache_limit",
    "validate_edge_index", "coo_sum", "coo_gcn_sum",
    "spmm", "spmm_slots", "gather_slots", "relu_message_slots", "spmm_csr_ref", "sddmm", "sddmm_slots", "sddmm_csr_ref",
    "segment_softmax", "segment_softmax_slots", "segment_softmax_ref",
    "segment_reduce", "segment_reduce_slots", "segment_reduce_ref",
    "gat_attention", "gat_attention_slots", "coo_gat_attention", "edge_dropout", "nearest_code", "nearest_code_ref",
    "backend_mode",
    "use_triton", "graph_attention", "batch_distances", "softmax_aggregate_slots", "softmax_aggregate_ref",
    "quantile_aggregate_slots", "bias_add", "functorch_active",
]
