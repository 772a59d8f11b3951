"""Graphs to profile on: a seeded power-law generator, the bundled/shared datasets, edge-list files."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from gnnkit._checks import check_int, check_number


@dataclass
class GraphSpec:
    name: str
    edge_index: Tensor  # [2, E] int64 (source, destination)
    num_nodes: int


def skewed_in_degree_graph(num_nodes: int, num_edges: int, exponent: float = 0.6, seed: int = 0,
                           cap: int = 0) -> Tensor:
    """``edge_index`` ``[2, E]`` with uniform sources and destinations drawn with probability proportional to
    ``rank^(-exponent)`` (node ids shuffled): the arxiv-like graph of ``benchmarks/layers_speed.py``.  ``cap``: keep
    only the first ``cap`` in-edges of each node (in input order), sorted by destination (as PyG's LSTM
    aggregation needs)."""
    who = "skewed_in_degree_graph"
    check_int("num_nodes", num_nodes, 1, who)
    check_int("num_edges", num_edges, 0, who)
    check_int("cap", cap, 0, who, hint=" (0: no cap)")
    check_number("exponent", exponent, 0.0, who)
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(0, num_nodes, (num_edges,), generator=g)
    w = (torch.arange(num_nodes, dtype=torch.float64) + 1).pow(-exponent)
    dst = torch.multinomial(w, num_edges, replacement=True, generator=g)
    relabel = torch.randperm(num_nodes, generator=g)
    ei = torch.stack([relabel[src], relabel[dst]])
    if cap:
        order = torch.sort(ei[1], stable=True).indices
        d = ei[1, order]
        start = torch.searchsorted(d, torch.arange(num_nodes))
        pos = torch.arange(num_edges) - start[d]
        ei = ei[:, order[pos < cap]]
    return ei


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
        try:
            ei = torch.load(p, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - a damaged or foreign file raises many types
            raise ValueError(f"--edges {path!r}: not a readable .pt file ({type(e).__name__}); give a [2, E] "
                             "tensor saved with torch.save, or a text edge list") from None
        if not isinstance(ei, Tensor) or ei.dim() != 2 or ei.size(0) != 2:
            raise ValueError(f"--edges {path!r}: expected a [2, E] tensor, got "
                             f"{getattr(ei, 'shape', type(ei).__name__)}")
        if ei.is_floating_point() and not bool((ei == ei.round()).all()):  # 3.7 was truncated to node 3
            raise ValueError(f"--edges {path!r}: node ids must be integers, the tensor holds fractional values; "
                             "fix: save the ids as an integer tensor")
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
    if ei.numel() == 0:
        raise ValueError(f"--edges {path!r} holds no edges; fix: a file with at least one 'src dst' line "
                         "(or a [2, E] tensor with E >= 1)")
    if int(ei.min()) < 0:
        raise ValueError(f"--edges {path!r}: negative node id {int(ei.min())}")
    return GraphSpec(p.name, ei, int(ei.max()) + 1)
