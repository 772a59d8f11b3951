"""Type aliases shared by gnnkit's public signatures (PyG's names where PyG has one)."""
from typing import Any, Optional, Tuple, Union

from torch import Tensor

OptTensor = Optional[Tensor]
#: ``(num_src, num_dst)``, PyG's order; either may be None (inferred)
Size = Optional[Tuple[Optional[int], Optional[int]]]
#: node features of a bipartite layer: ``(x_src, x_dst)``; ``x_dst`` may be None
PairTensor = Tuple[Tensor, Optional[Tensor]]
#: what a layer's ``x`` accepts: one tensor or a bipartite pair
NodeFeatures = Union[Tensor, PairTensor]
#: every adjacency form a layer accepts: ``edge_index [2, E]`` (int32/int64, also
#: ``torch_geometric.EdgeIndex``), a ``torch.sparse`` COO/CSR ``adj_t``, a ``torch_sparse.SparseTensor``
#: ``adj_t``, or a :class:`gnnkit.ops.Graph`.  (``Any`` stands for the last two: ``SparseTensor`` is optional,
#: and naming ``Graph`` here would make this leaf module import ``gnnkit.ops``.)
Adj = Union[Tensor, Any]
#: a layer's output with ``return_attention_weights=True``: ``(out, (edge_index or adj_t, alpha))``
AttentionOutput = Union[Tensor, Tuple[Tensor, Tuple[Any, Tensor]]]

__all__ = ["OptTensor", "Size", "PairTensor", "NodeFeatures", "Adj", "AttentionOutput"]
