"""Over-smoothing diagnostics: how alike node embeddings become, layer by layer.

The lectures: "GCN will suffer from the over-smoothing issue when L is too large" — every node's
embedding converges to the same value.  Two standard measures make it visible:

- **Dirichlet energy** (Cai & Wang 2020; Rusch, Bronstein & Mishra 2023, "A survey on oversmoothing"):

  .. math:: E(\\mathbf{X}) = \\frac{1}{|V|} \\sum_{i \\in V} \\sum_{j \\in \\mathcal{N}(i)}
            \\lVert \\mathbf{x}_i - \\mathbf{x}_j \\rVert_2^2

  (``normalized=True``: :math:`\\mathbf{x}_i / \\sqrt{1 + d_i}` in place of :math:`\\mathbf{x}_i`, the
  GCN-normalised form of Cai & Wang).  It tends to 0 as embeddings over-smooth (exponentially in depth
  for plain GCNs).
- **Mean average distance, MAD** (Chen et al. 2020, AAAI): the cosine distance
  :math:`1 - \\cos(\\mathbf{x}_i, \\mathbf{x}_j)` over the node pairs a mask selects (all pairs, or the
  graph's edges), averaged per node over its non-zero distances, then over nodes — the definition of the
  authors' reference code (``mad_value``).

:func:`relative_energy` divides the energy by the mean squared norm (scale-free: trained weights that grow
with depth cannot hide the collapse).  :class:`SmoothingMonitor` records all three for the output of every
layer of any model with forward hooks.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor

MAX_DENSE_NODES = 20_000  # MAD over all pairs is O(N^2): above this, ask for mask="edges"
ZERO_DISTANCE = 1e-12  # cosine distances (in float64) below this are rounding, counted as 0 (see mad)


def _edges(edge_index: Tensor, num_nodes: int, name: str) -> Tensor:
    if not isinstance(edge_index, Tensor) or edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ValueError(f"{name}: edge_index must be a [2, E] tensor, got "
                         f"{getattr(edge_index, 'shape', type(edge_index).__name__)}")
    if edge_index.numel() and (int(edge_index.min()) < 0 or int(edge_index.max()) >= num_nodes):
        raise ValueError(f"{name}: edge_index refers to nodes outside [0, {num_nodes}); pass the graph of x")
    return edge_index.long()


def dirichlet_energy(x: Tensor, edge_index: Tensor, normalized: bool = False) -> Tensor:
    """Dirichlet energy of node features ``x`` ``[N, F]`` on the graph ``edge_index`` (each stored edge
    ``j -> i`` adds :math:`\\lVert x_i - x_j \\rVert^2`; an undirected graph stored both ways counts each pair
    twice, as the sum over :math:`j \\in \\mathcal{N}(i)` does).  See the module doc."""
    if x.dim() != 2:
        raise ValueError(f"dirichlet_energy: x must be [N, F], got {list(x.shape)}")
    n = x.size(0)
    ei = _edges(edge_index, n, "dirichlet_energy")
    x = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
    if normalized:
        deg = torch.bincount(ei[1], minlength=n).to(x.dtype) + 1
        x = x * deg.rsqrt().unsqueeze(-1)
    if n == 0:
        return x.new_zeros(())
    diff = x.index_select(0, ei[1]) - x.index_select(0, ei[0])
    return diff.pow(2).sum() / n


def relative_energy(x: Tensor, edge_index: Tensor) -> Tensor:
    r"""Scale-free Dirichlet energy: the degree-normalised :func:`dirichlet_energy` over the mean squared
    norm of the rows, :math:`E_{\hat D}(\mathbf{X}) / (\lVert \mathbf{X} \rVert_F^2 / |V|)`.  For an
    undirected graph stored both ways (each pair counted twice, as :func:`dirichlet_energy` does) and one
    feature column this is *twice* the Rayleigh quotient :math:`x^\top \tilde\Delta x / x^\top x` of the
    augmented normalised Laplacian :math:`\tilde\Delta = I - (D+I)^{-1/2}(A+I)(D+I)^{-1/2}` (an eigenvector
    of eigenvalue :math:`\lambda` gives :math:`2\lambda`), so it lies in :math:`[0, 4)`; with several
    columns, twice the quotient of their sums.  Degree-normalised because GCN propagation converges to rows
    proportional to :math:`\sqrt{1 + d_i}`, which keep a plain energy but lose the normalised one;
    scale-free because weights that grow with training must not hide that embeddings became alike."""
    xs = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x  # float64 stays float64
    scale = xs.pow(2).sum() / max(x.size(0), 1)
    e = dirichlet_energy(x, edge_index, normalized=True)
    return e / scale if float(scale) > 0 else torch.zeros_like(e)


def mad(x: Tensor, edge_index: Optional[Tensor] = None, mask: str = "all",
        target: Optional[Tensor] = None) -> Tensor:
    """Mean average (cosine) distance of ``x`` ``[N, F]`` (Chen et al. 2020).

    Args:
        x: node embeddings.
        edge_index: the graph, needed for ``mask="edges"``.
        mask: ``"all"`` (every pair; O(N²), up to :data:`MAX_DENSE_NODES` nodes) or ``"edges"`` (neighbours:
            MAD\\ :sup:`neb`).
        target: optional bool mask or index of the nodes averaged over (then the mean runs over those with a
            non-zero average distance, as in the reference code).
    """
    if x.dim() != 2:
        raise ValueError(f"mad: x must be [N, F], got {list(x.shape)}")
    n = x.size(0)
    # float64 and a tolerance at float64's rounding: identical rows give 1 - cos of ~1e-16 (4e-15 at 10^4
    # features), which count as zero distance, as exact duplicates do in the reference; a real distance down to
    # 1e-12 (an angle of ~1.4e-6 rad) counts, as in the reference (a 1e-6 cut-off dropped near-collapsed
    # nodes' small distances and over-reported MAD exactly when nodes collapse)
    z = F.normalize(x.double(), dim=-1)
    if mask == "all":
        if n > MAX_DENSE_NODES:
            raise ValueError(f"mad: mask='all' compares all N^2 pairs; N={n} > {MAX_DENSE_NODES}; fix: "
                             "mask='edges' (neighbour pairs)")
        dist = 1.0 - z @ z.t()
        dist = dist.masked_fill(dist < ZERO_DISTANCE, 0.0)
        dist.fill_diagonal_(0.0)
        total, count = dist.sum(1), (dist > 0).sum(1)
    elif mask == "edges":
        if edge_index is None:
            raise ValueError("mad: mask='edges' needs edge_index")
        ei = _edges(edge_index, n, "mad")
        # the reference's 0/1 mask: an edge stored twice (an uncoalesced list) is one neighbour pair
        ei = torch.unique(ei[0] * max(n, 1) + ei[1]) if ei.numel() else ei[0]
        ei = torch.stack([ei // max(n, 1), ei % max(n, 1)])
        d = 1.0 - (z.index_select(0, ei[0]) * z.index_select(0, ei[1])).sum(-1)
        d = d.masked_fill(d < ZERO_DISTANCE, 0.0)
        total = z.new_zeros(n).index_add_(0, ei[1], d)
        count = torch.zeros(n, dtype=torch.long, device=x.device).index_add_(0, ei[1], (d > 0).long())
    else:
        raise ValueError(f"mad: mask must be 'all' or 'edges', got {mask!r}")
    node = total / (count.to(total.dtype) + 1e-8)
    if target is None:
        return (node.mean() if n else node.new_zeros(())).to(x.dtype if x.is_floating_point() else torch.float32)
    if not isinstance(target, Tensor):
        raise ValueError(f"mad: target must be a bool mask [N] or a tensor of node indices, got "
                         f"{type(target).__name__}")
    if target.dtype == torch.bool:
        if target.shape != (n,):
            raise ValueError(f"mad: a bool target must be a mask of shape [{n}] (one entry per node of x), got "
                             f"{list(target.shape)}")
        node = node * target.to(node.dtype)
    else:
        if target.is_floating_point() or target.is_complex():
            raise ValueError(f"mad: target must be a bool mask or integer node indices, got dtype {target.dtype}")
        idx = target.reshape(-1).long()
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= n):
            raise ValueError(f"mad: target holds node indices outside [0, {n}) (from {int(idx.min())} to "
                             f"{int(idx.max())}); fix: indices of rows of x")
        node = node.new_zeros(n).index_copy_(0, idx, node.index_select(0, idx))
    out = node.sum() / ((node != 0).sum().to(node.dtype) + 1e-8)
    return out.to(x.dtype if x.is_floating_point() else torch.float32)


@dataclass
class LayerStats:
    layer: str
    energy: float
    rel_energy: float
    mad: float

    def as_dict(self) -> Dict[str, Union[str, float]]:
        return {"layer": self.layer, "energy": self.energy, "rel_energy": self.rel_energy, "mad": self.mad}


def _default_layers(model: torch.nn.Module) -> List[str]:
    """Every conv-like module: a PyG ``MessagePassing`` or a class named ``...Conv``, outermost only."""
    try:
        from torch_geometric.nn import MessagePassing
    except ImportError:  # pragma: no cover - PyG is a dependency
        MessagePassing = ()  # noqa: N806
    names: List[str] = []
    for name, mod in model.named_modules():
        if not name or any(name.startswith(n + ".") for n in names):
            continue
        if isinstance(mod, MessagePassing) or type(mod).__name__.endswith("Conv"):
            names.append(name)
    return names


class SmoothingMonitor:
    """Dirichlet energy and MAD of each chosen layer's output, collected with forward hooks.

    ``with SmoothingMonitor(model, edge_index) as mon: model(x, edge_index)`` then ``mon.stats`` holds one
    :class:`LayerStats` per hooked layer call, in call order (``mon.input_stats(x)`` gives the input's).

    Args:
        model: any ``torch.nn.Module``.
        edge_index: the graph the embeddings live on (all nodes of ``x``).
        layers: module names to hook (default: every ``MessagePassing`` / ``...Conv`` module).
        normalized: degree-normalised energy (see :func:`dirichlet_energy`).
        mad_mask: ``"all"`` or ``"edges"`` (see :func:`mad`; ``"all"`` switches to ``"edges"`` above
            :data:`MAX_DENSE_NODES` nodes).
        num_nodes: the graph's node count (default ``max(edge_index) + 1``; pass ``x.size(0)`` when the last
            nodes have no edge).  Only outputs with exactly this many rows are measured: a layer that runs on
            other rows (ID-GNN's ego networks, a pooled batch) is skipped, not scored as if its rows were nodes.
    """

    def __init__(self, model: torch.nn.Module, edge_index: Tensor, layers: Optional[Sequence[str]] = None,
                 normalized: bool = False, mad_mask: str = "all", num_nodes: Optional[int] = None):
        self.model, self.edge_index = model, edge_index
        modules = dict(model.named_modules())
        self.layers = list(layers) if layers is not None else _default_layers(model)
        missing = [n for n in self.layers if n not in modules]
        if missing:
            raise ValueError(f"SmoothingMonitor: no module named {missing} in the model; choose from "
                             f"{[n for n in modules if n][:20]}")
        if not self.layers:
            raise ValueError("SmoothingMonitor: the model has no conv layer to hook; pass layers=[module names]")
        if mad_mask not in ("all", "edges"):
            raise ValueError(f"SmoothingMonitor: mad_mask must be 'all' or 'edges', got {mad_mask!r}")
        self.normalized, self.mad_mask = normalized, mad_mask
        least = int(edge_index.max()) + 1 if edge_index.numel() else 0
        if num_nodes is not None and (isinstance(num_nodes, bool) or not isinstance(num_nodes, int)
                                      or num_nodes < least):
            raise ValueError(f"SmoothingMonitor: num_nodes={num_nodes!r} must be an int >= max(edge_index) + 1 = "
                             f"{least}; fix: num_nodes=x.size(0)")
        self.num_nodes = least if num_nodes is None else num_nodes
        self.stats: List[LayerStats] = []
        self._handles: List[torch.utils.hooks.RemovableHandle] = []
        self._modules = modules

    def measure(self, name: str, out: Tensor) -> LayerStats:
        h = out.detach()
        if h.dim() == 3:  # [N, heads, F] -> [N, heads * F]
            h = h.reshape(h.size(0), -1)
        mask = self.mad_mask if h.size(0) <= MAX_DENSE_NODES else "edges"
        return LayerStats(name, float(dirichlet_energy(h, self.edge_index, self.normalized)),
                          float(relative_energy(h, self.edge_index)), float(mad(h, self.edge_index, mask)))

    def input_stats(self, x: Tensor) -> LayerStats:
        return self.measure("input", x)

    def _hook(self, name: str):
        def hook(_mod, _inp, out):
            if isinstance(out, tuple):  # e.g. GAT with return_attention_weights
                out = out[0]
            # node embeddings only: one row per node of the monitored graph
            if isinstance(out, Tensor) and out.dim() in (2, 3) and out.size(0) == self.num_nodes:
                self.stats.append(self.measure(name, out))
            elif isinstance(out, Tensor) and out.dim() in (2, 3):
                self._skipped.append((name, out.size(0)))
        return hook

    def __enter__(self) -> "SmoothingMonitor":
        self.stats = []
        self._skipped: List[tuple] = []
        for name in self.layers:
            self._handles.append(self._modules[name].register_forward_hook(self._hook(name)))
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []
        if exc_type is None and not self.stats and self._skipped:  # every output skipped: say why, not just []
            name, rows = self._skipped[0]
            warnings.warn(f"SmoothingMonitor: no layer output had num_nodes={self.num_nodes} rows (e.g. {name!r}: "
                          f"{rows}), so nothing was measured; if the graph's last nodes have no edges, pass "
                          "num_nodes=x.size(0)", UserWarning, stacklevel=2)


def smoothing_profile(model: torch.nn.Module, x: Tensor, edge_index: Tensor,
                      layers: Optional[Iterable[str]] = None, normalized: bool = False,
                      mad_mask: str = "all", *, model_args: Sequence[Any] = (),
                      model_kwargs: Optional[Mapping[str, Any]] = None) -> List[Dict[str, Union[str, float]]]:
    """One eval-mode forward ``model(x, edge_index, *model_args, **model_kwargs)`` under a
    :class:`SmoothingMonitor`: the input's and every hooked layer's energy and MAD, as dicts (the model's
    train/eval mode is restored).  ``model_args``/``model_kwargs`` pass what else the model's forward takes,
    e.g. ``model_kwargs={"batch": data.batch}`` for a graph classifier over a mini-batch (the energy is then
    summed over the batch's disjoint graphs, as over one graph with several components)."""
    if isinstance(model_args, (str, bytes, Tensor)) or not isinstance(model_args, Sequence):
        raise ValueError(f"smoothing_profile: model_args must be a tuple of the forward's further arguments, got "
                         f"{type(model_args).__name__}; e.g. model_args=(batch,)")
    if model_kwargs is not None and not isinstance(model_kwargs, Mapping):
        raise ValueError(f"smoothing_profile: model_kwargs must be a dict of the forward's keyword arguments, got "
                         f"{type(model_kwargs).__name__}; e.g. model_kwargs={{'batch': batch}}")
    mon = SmoothingMonitor(model, edge_index, list(layers) if layers is not None else None, normalized, mad_mask,
                           num_nodes=x.size(0))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), mon:
            model(x, edge_index, *model_args, **(model_kwargs or {}))
    finally:
        model.train(was_training)
    return [mon.input_stats(x).as_dict()] + [s.as_dict() for s in mon.stats]
