"""PyG's ``NeighborLoader`` everywhere: with ``pyg-lib`` or ``torch-sparse`` installed it samples with them;
without (they have no wheels for every torch), a pure-torch uniform sampler takes their place inside PyG's
own loader, so batches, node/edge filtering and ``batch_size`` seeds first are PyG's."""
from __future__ import annotations

import warnings
from typing import Any, List, Optional, Sequence

import torch
import torch_geometric.typing as pyg_typing
from torch import Tensor
from torch_geometric.loader import NeighborLoader
from torch_geometric.sampler import NeighborSampler, SamplerOutput


def native_sampler_available() -> bool:
    """Whether PyG can sample neighbours itself (``pyg-lib`` or ``torch-sparse`` installed)."""
    return bool(pyg_typing.WITH_PYG_LIB or pyg_typing.WITH_TORCH_SPARSE)


class TorchNeighborSampler(NeighborSampler):
    """Uniform neighbour sampling without replacement, in torch, for homogeneous graphs.

    Same output as PyG's sampler (``SamplerOutput``: seeds first, then each hop's new nodes in order of
    first appearance; ``row`` = sampled source, ``col`` = its destination, local ids; ``edge`` = CSC slot,
    which PyG maps back to the input edge order); ``-1`` fans out to every neighbour.  Its random
    stream is :attr:`generator` (seeded, saved with a checkpoint).
    """

    def __init__(self, data: Any, num_neighbors: Sequence[int], seed: int = 0, **kwargs: Any):
        with warnings.catch_warnings():  # PyG warns that it lacks pyg-lib: this class is the answer to that
            warnings.simplefilter("ignore", UserWarning)
            super().__init__(data, list(num_neighbors), **kwargs)
        if self.is_hetero:
            raise NotImplementedError("TorchNeighborSampler samples homogeneous graphs only; for HeteroData "
                                      "install pyg-lib (see PyG's installation notes)")
        if self.replace or self.disjoint or self.subgraph_type.value == "induced" or self.edge_weight is not None \
                or self.node_time is not None or self.edge_time is not None:
            raise NotImplementedError("TorchNeighborSampler: replace / disjoint / induced / weighted / temporal "
                                      "sampling needs pyg-lib; fix: install pyg-lib or use the defaults")
        self.generator = torch.Generator().manual_seed(seed)
        self._local = torch.full((self.num_nodes,), -1, dtype=torch.long)

    def _sample(self, seed: Tensor, seed_time: Optional[Tensor] = None, **kwargs: Any) -> SamplerOutput:
        if seed_time is not None:
            raise NotImplementedError("TorchNeighborSampler does not sample in time; install pyg-lib")
        colptr, row, local = self.colptr, self.row, self._local
        seed = seed.to(torch.long)
        nodes: List[Tensor] = [seed]
        local[seed] = torch.arange(seed.numel())
        n_local = seed.numel()
        frontier, frontier_local = seed, torch.arange(seed.numel())
        rows, cols, edges, n_nodes, n_edges = [], [], [], [seed.numel()], []
        try:
            for k in self.num_neighbors.get_mapped_values():
                start = colptr[frontier]
                deg = colptr[frontier + 1] - start
                seg = torch.repeat_interleave(torch.arange(frontier.numel()), deg)
                offset = torch.cumsum(deg, 0) - deg
                pos = torch.arange(seg.numel()) - offset[seg]  # slot within each node's neighbour list
                if k >= 0 and seg.numel() > 0:
                    keys = torch.rand(seg.numel(), generator=self.generator)
                    order = torch.sort(keys, stable=True).indices
                    order = order[torch.sort(seg[order], stable=True).indices]  # by node, random inside
                    rank = torch.arange(order.numel()) - offset[seg[order]]
                    order = order[rank < k]
                    seg, pos = seg[order], pos[order]
                    # keep each node's draw in CSC order (PyG's samplers keep neighbour lists sorted)
                    keep = torch.sort(seg * (int(deg.max()) + 1) + pos).indices
                    seg, pos = seg[keep], pos[keep]
                eid = start[seg] + pos
                src = row[eid]
                new_mask = local[src] < 0
                cand = src[new_mask]
                if cand.numel() > 0:
                    uniq, inv = torch.unique(cand, return_inverse=True)
                    first = torch.full((uniq.numel(),), cand.numel(), dtype=torch.long)
                    first.scatter_reduce_(0, inv, torch.arange(cand.numel()), reduce="amin")
                    new = uniq[torch.argsort(first)]
                else:
                    new = cand
                local[new] = torch.arange(n_local, n_local + new.numel())
                n_local += new.numel()
                nodes.append(new)
                rows.append(local[src])
                cols.append(frontier_local[seg])
                edges.append(eid)
                n_nodes.append(new.numel())
                n_edges.append(eid.numel())
                frontier, frontier_local = new, local[new]
        finally:
            for t in nodes:
                local[t] = -1
        cat = lambda ts: torch.cat(ts) if ts else torch.empty(0, dtype=torch.long)
        return SamplerOutput(node=cat(nodes), row=cat(rows), col=cat(cols), edge=cat(edges), batch=None,
                             num_sampled_nodes=n_nodes, num_sampled_edges=n_edges)


def neighbor_loader(data: Any, num_neighbors: Sequence[int], seed: int = 0, **kwargs: Any) -> NeighborLoader:
    """``torch_geometric.loader.NeighborLoader(data, num_neighbors, **kwargs)``, with
    :class:`TorchNeighborSampler` (seeded with ``seed``) when PyG has no native sampler here.
    The loader's ``node_sampler`` is the sampler either way."""
    if native_sampler_available():
        return NeighborLoader(data, list(num_neighbors), **kwargs)
    sampler = TorchNeighborSampler(data, num_neighbors, seed=seed)
    return NeighborLoader(data, list(num_neighbors), neighbor_sampler=sampler, **kwargs)
