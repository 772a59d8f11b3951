"""Graph-generation metrics as the graph-generation literature computes them.

Three families, all deterministic:

* **MMD²** between a reference set and a generated set of graphs for three graph
  statistics (``"degree"``, ``"clustering"``, ``"orbit"``) under two *protocols*, i.e. the
  two kernel choices found in published tables.  Every result names its protocol.
* **Orbit counts** of the 15 node orbits (0..14) of the graphlets with 2-4 nodes, numbered
  as ORCA numbers them (Hočevar & Demšar, *A combinatorial approach to graphlet counting*,
  Bioinformatics 2014; Pržulj 2007), computed here in numpy (ORCA itself is GPLv3 and is
  not used).
* **Validity / uniqueness / novelty** of unlabelled (optionally labelled) graphs.

MMD² (both protocols)
---------------------
Given per-graph feature vectors ``x_1..x_m`` (reference) and ``y_1..y_n`` (generated), the
reference code computes the *biased* (V-statistic) estimate, diagonal terms included::

    MMD² = 1/m² Σ_ij k(x_i, x_j) + 1/n² Σ_ij k(y_i, y_j) - 2/(mn) Σ_ij k(x_i, y_j)

No clipping at zero is applied (the EMD/TV Gaussian kernels are not guaranteed positive
definite, so tiny negative values are possible, exactly as in the reference code).
Histogram features are first normalised to probability mass functions (``s / s.sum()``)
and zero-padded at the end to a common length (padding changes none of the distances below).

Kernels (``x``, ``y`` padded to the same length ``L``):

* ``gaussian_emd``:  ``k = exp(-EMD(x, y)² / (2σ²))`` where EMD is the earth mover's distance
  with ground distance ``|i - j| / distance_scaling`` between bins ``i`` and ``j``.  For 1-D
  histograms of equal mass this is exactly
  ``EMD = Σ_{i=0}^{L-2} |X_i - Y_i| / distance_scaling`` with ``X``, ``Y`` the cumulative sums;
  the reference calls ``pyemd.emd(x, y, toeplitz(range(L)) / distance_scaling)`` instead.
* ``gaussian_tv``:   ``k = exp(-TV(x, y)² / (2σ²))`` with ``TV = ½ Σ_i |x_i - y_i|``.
* ``gaussian``:      ``k = exp(-‖x - y‖₂² / (2σ²))``.

Protocol ``"graphrnn"`` (GraphRNN, GDSS; the headline tables of GraphRNN/GRAN/GDSS-era papers)
    Source: github.com/JiaxuanYou/graph-generation ``eval/stats.py`` + ``eval/mmd.py``, and
    github.com/harryjo97/GDSS ``evaluation/stats.py`` + ``evaluation/mmd.py`` with the kernels
    of ``utils/loader.py::load_eval_settings`` (the two agree):

    ========== ====================================== ============ ===== =================
    statistic  feature                                kernel       σ     distance_scaling
    ========== ====================================== ============ ===== =================
    degree     ``nx.degree_histogram`` → pmf          gaussian_emd 1.0   1
    clustering 100-bin histogram of ``nx.clustering``  gaussian_emd 0.1   100 (= bins)
               on [0, 1] → pmf
    orbit      ORCA 4-node orbit counts summed over   gaussian     30.0  —
               nodes / number of nodes (15-vector,
               not normalised, ``is_hist=False``)
    ========== ====================================== ============ ===== =================

Protocol ``"gran"`` (GRAN, and SPECTRE / DiGress which copy it)
    Source: github.com/lrjconan/GRAN ``utils/eval_helper.py`` + ``utils/dist_helper.py``:
    same features, every kernel ``gaussian_tv``; σ = 1.0 (degree), 0.1 (clustering, 100 bins),
    30.0 (orbit, raw 15-vectors).  (SPECTRE's copy, ``util/dist_helper.py``, and DiGress',
    ``src/analysis/dist_helper.py``, divide histograms by ``sum + 1e-6`` rather than ``sum``; that
    changes values by ~1e-7 absolute (8.5e-8 at most in an independent comparison with SPECTRE's
    code) and is not reproduced.)

Sample preparation (:func:`as_scored`, what ``VQRun.evaluate`` applies to sampled graphs before the MMD): both
reference pipelines remove isolated nodes from every generated graph first — GDSS's ``utils/graph_utils.py``
``adjs_to_graphs`` (self-loops and isolated nodes removed; a graph left without nodes becomes one node) and
GRAN's ``runner/gran_runner.py`` ``get_graph`` (all-zero rows and columns removed; a graph left without nodes
stays empty, and is then dropped as below).  The MMD functions themselves score the graphs they are given.

Reference behaviour that is kept: generated graphs with zero nodes are dropped before
computing MMD (the reference drops them, or ORCA fails on them and they are skipped); the
number dropped is reported.  Reference behaviour that is *not* kept: an empty reference
graph (the reference yields NaN), self-loops (ORCA refuses them and the reference silently
skips the graph), directed graphs and multigraphs all raise :class:`ValueError`.

Numerical note on EMD: the EMD here is exact (closed form above; equal to an explicit
transport LP and to ``scipy.stats.wasserstein_distance`` to float rounding).  The reference
repositories call ``pyemd`` 0.5.x (GDSS pins ``pyemd==0.5.1``), whose FastEMD core rounds the
masses and ground distances of ``double`` inputs to a 10^6 integer grid; its EMDs therefore
differ from the exact value by up to ~4e-6 of the largest ground distance, and reference MMD²
values from ours by up to a few times 1e-6, so in the 6th decimal (measured with pyemd 1.0.0 and
0.5.1, same C++ core: 1.4e-7 on degree and 1.6e-7 on clustering for 20 vs 16 random graphs; an
independent comparison over 14 set pairs found up to 5.6e-7 on degree and 2.6e-6 on clustering,
and ≤ 7e-16 against the reference with an exact EMD).  GDSS rounds its reported MMDs to 6 decimals:
the last digit can differ.  ``pyemd`` >= 1.1 solves with POT instead.
Gaussian-TV and Gaussian(L2) values agree with the reference to ~1e-16.
"""
from __future__ import annotations

import functools
import itertools
import math
import numbers
import sys
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import networkx as nx
import numpy as np
from scipy.spatial.distance import cdist

__all__ = [
    "PROTOCOLS",
    "STATISTICS",
    "NUM_ORBITS",
    "KernelSpec",
    "MMDResult",
    "protocol_kernels",
    "as_graph_list",
    "degree_histogram",
    "clustering_histogram",
    "node_orbit_counts",
    "orbit_features",
    "emd_1d",
    "gaussian_emd_kernel",
    "gaussian_tv_kernel",
    "gaussian_kernel",
    "mmd2",
    "degree_mmd",
    "clustering_mmd",
    "orbit_mmd",
    "generation_mmd",
    "as_scored",
    "is_connected_nonempty",
    "validity",
    "uniqueness",
    "novelty",
    "vun",
]

#: The two MMD protocols, see the module docstring.
PROTOCOLS: Tuple[str, ...] = ("graphrnn", "gran")
#: The graph statistics :func:`generation_mmd` knows.
STATISTICS: Tuple[str, ...] = ("degree", "clustering", "orbit")
#: Number of node orbits of the graphlets with 2, 3 and 4 nodes (ORCA ``node 4``).
NUM_ORBITS: int = 15

GraphLike = object  # networkx.Graph or torch_geometric.data.Data (kept loose for the type checker)


# --------------------------------------------------------------------------------------
# Protocol table
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class KernelSpec:
    """One kernel as a protocol applies it to one statistic.

    ``kernel`` is ``"gaussian_emd"``, ``"gaussian_tv"`` or ``"gaussian"``; ``is_hist`` says
    whether features are normalised to pmfs first (the reference's ``is_hist``);
    ``distance_scaling`` only matters for ``gaussian_emd``.
    """

    kernel: str
    sigma: float
    distance_scaling: float = 1.0
    is_hist: bool = True


_CLUSTERING_BINS = 100

_PROTOCOL_TABLE: Dict[str, Dict[str, KernelSpec]] = {
    # GraphRNN eval/stats.py, GDSS evaluation/stats.py + utils/loader.py
    "graphrnn": {
        "degree": KernelSpec("gaussian_emd", sigma=1.0, distance_scaling=1.0, is_hist=True),
        # distance_scaling = bins is set from the ``bins`` argument (100 in the reference)
        "clustering": KernelSpec("gaussian_emd", sigma=0.1, distance_scaling=float(_CLUSTERING_BINS),
                                 is_hist=True),
        "orbit": KernelSpec("gaussian", sigma=30.0, is_hist=False),
    },
    # GRAN utils/eval_helper.py
    "gran": {
        "degree": KernelSpec("gaussian_tv", sigma=1.0, is_hist=True),
        "clustering": KernelSpec("gaussian_tv", sigma=0.1, is_hist=True),
        "orbit": KernelSpec("gaussian_tv", sigma=30.0, is_hist=False),
    },
}


def _check_protocol(protocol: str) -> str:
    if not isinstance(protocol, str) or protocol not in PROTOCOLS:
        raise ValueError(
            f"protocol={protocol!r} is not supported; fix: pass protocol='graphrnn' "
            "(GraphRNN/GDSS: Gaussian-EMD kernels) or protocol='gran' "
            "(GRAN/SPECTRE/DiGress: Gaussian-TV kernels)"
        )
    return protocol


def protocol_kernels(protocol: str, clustering_bins: int = _CLUSTERING_BINS) -> Dict[str, KernelSpec]:
    """The kernel each statistic uses under ``protocol`` (a copy; see the module docstring)."""
    _check_protocol(protocol)
    table = dict(_PROTOCOL_TABLE[protocol])
    if table["clustering"].kernel == "gaussian_emd":
        spec = table["clustering"]
        table["clustering"] = KernelSpec(spec.kernel, spec.sigma, float(clustering_bins), spec.is_hist)
    return table


@dataclass(frozen=True)
class MMDResult:
    """MMD² of one statistic, with the protocol and kernel that produced it.

    ``float(result)`` gives ``result.value``.  ``num_generated`` counts the generated graphs
    used; ``num_generated_empty`` those dropped because they have no nodes.
    """

    statistic: str
    protocol: str
    value: float
    kernel: str
    sigma: float
    distance_scaling: Optional[float]
    num_reference: int
    num_generated: int
    num_generated_empty: int

    def __float__(self) -> float:
        return self.value


# --------------------------------------------------------------------------------------
# Input handling
# --------------------------------------------------------------------------------------
def _convert_one(g: object, name: str, index: int, node_attrs: Optional[Sequence[str]] = None,
                 edge_attrs: Optional[Sequence[str]] = None) -> nx.Graph:
    if isinstance(g, nx.Graph):
        if g.is_directed():
            raise ValueError(
                f"{name}[{index}] is a directed {type(g).__name__}; these metrics are for "
                "undirected graphs; fix: pass G.to_undirected() (or nx.Graph(G))"
            )
        if g.is_multigraph():
            raise ValueError(
                f"{name}[{index}] is a {type(g).__name__}; parallel edges are not supported; "
                "fix: pass nx.Graph(G) to collapse them"
            )
        return g
    # PyG Data (a subclass too), imported lazily (importing torch_geometric is slow; without it no Data exists)
    if "torch_geometric" in sys.modules:
        from torch_geometric.data import Batch, Data
        from torch_geometric.utils import is_undirected, to_networkx

        if isinstance(g, Batch):
            raise ValueError(f"{name}[{index}] is a Batch of {g.num_graphs} graphs; fix: pass batch.to_data_list() "
                             "(or its graphs in the list)")
        if isinstance(g, Data):
            ei = g.edge_index
            if ei is None:
                raise ValueError(f"{name}[{index}] is a Data without edge_index; fix: set data.edge_index (a [2, 0] "
                                 "long tensor for a graph without edges) and data.num_nodes")
            if ei is not None and ei.numel() > 0 and not is_undirected(ei, num_nodes=g.num_nodes):
                raise ValueError(
                    f"{name}[{index}] is a Data whose edge_index is not symmetric; "
                    "to_networkx(to_undirected=True) would keep only its upper triangle; "
                    "fix: data.edge_index = torch_geometric.utils.to_undirected(data.edge_index)"
                )
            keys = set(g.keys())
            na = [a for a in (node_attrs or ()) if a in keys] or None
            ea = [a for a in (edge_attrs or ()) if a in keys] or None
            for attrs, count, what in ((na, g.num_nodes, "node"), (ea, ei.size(1), "edge")):
                for a in attrs or ():
                    t = g[a]
                    if not hasattr(t, "__len__") or getattr(t, "dim", lambda: 1)() == 0 or len(t) != count:
                        raise ValueError(f"{name}[{index}].{a} must hold one entry per {what} ({count}), got "
                                         f"{list(t.shape) if hasattr(t, 'shape') else type(t).__name__}; fix: a "
                                         f"per-{what} label (a graph-level attribute such as y cannot label {what}s)")
            return to_networkx(g, node_attrs=na, edge_attrs=ea, to_undirected=True)
    raise ValueError(
        f"{name}[{index}] is a {type(g).__module__}.{type(g).__qualname__}, not a graph; "
        "fix: pass networkx.Graph objects or torch_geometric.data.Data objects"
    )


def as_graph_list(graphs: Iterable[GraphLike], name: str = "graphs",
                  node_attrs: Optional[Sequence[str]] = None,
                  edge_attrs: Optional[Sequence[str]] = None) -> List[nx.Graph]:
    """Validate ``graphs`` and return them as a list of undirected ``networkx.Graph``.

    Accepts ``networkx.Graph`` and PyG ``Data`` (converted with
    ``torch_geometric.utils.to_networkx(data, to_undirected=True)``; ``node_attrs`` /
    ``edge_attrs`` present on the ``Data`` are carried over).  ``name`` is used in errors.
    Raises :class:`ValueError` on an empty collection, a single graph instead of a
    collection, non-graph items, directed graphs, multigraphs and non-symmetric ``Data``.
    """
    single = isinstance(graphs, nx.Graph)
    if not single and "torch_geometric" in sys.modules:
        from torch_geometric.data import Batch, Data

        if isinstance(graphs, Batch):  # a batch of graphs is a collection: its graphs
            graphs = graphs.to_data_list()
        single = isinstance(graphs, Data)  # one Data; a PyG dataset is fine
    if single:
        raise ValueError(
            f"{name} must be a list of graphs, got a single {type(graphs).__name__}; "
            f"fix: wrap it in a list, e.g. [{name}]"
        )
    if isinstance(graphs, (str, bytes)) or not isinstance(graphs, Iterable):
        raise ValueError(
            f"{name} must be a list of networkx.Graph or torch_geometric Data objects, "
            f"got {type(graphs).__name__}; fix: pass a list of graphs"
        )
    out = [_convert_one(g, name, i, node_attrs, edge_attrs) for i, g in enumerate(graphs)]
    if not out:
        raise ValueError(f"{name} is empty; fix: pass at least one graph")
    return out


def _check_no_self_loops(graphs: Sequence[nx.Graph], name: str) -> None:
    for i, g in enumerate(graphs):
        if nx.number_of_selfloops(g) > 0:
            raise ValueError(
                f"{name}[{i}] has self-loops, which ORCA (and hence the reference orbit "
                "statistic) refuses; fix: G.remove_edges_from(list(nx.selfloop_edges(G)))"
            )


def _prepare(reference: Iterable[GraphLike], generated: Iterable[GraphLike]
             ) -> Tuple[List[nx.Graph], List[nx.Graph], int]:
    ref = as_graph_list(reference, "reference")
    gen = as_graph_list(generated, "generated")
    _check_no_self_loops(ref, "reference")
    _check_no_self_loops(gen, "generated")
    for i, g in enumerate(ref):
        if g.number_of_nodes() == 0:
            raise ValueError(
                f"reference[{i}] has no nodes, so its statistics are undefined; "
                "fix: remove empty graphs from the reference set"
            )
    kept = [g for g in gen if g.number_of_nodes() > 0]
    if not kept:
        raise ValueError(
            "generated holds only graphs with no nodes (these are dropped, as in the "
            "reference code); fix: pass at least one non-empty generated graph"
        )
    return ref, kept, len(gen) - len(kept)


# --------------------------------------------------------------------------------------
# Per-graph statistics
# --------------------------------------------------------------------------------------
def degree_histogram(graph: nx.Graph) -> np.ndarray:
    """Counts of nodes per degree, ``nx.degree_histogram(graph)`` as an int64 array.

    Entry ``k`` is the number of nodes of degree ``k``; length is max degree + 1.
    """
    return np.asarray(nx.degree_histogram(graph), dtype=np.int64)


def clustering_histogram(graph: nx.Graph, bins: int = _CLUSTERING_BINS) -> np.ndarray:
    """Histogram of the local clustering coefficients, as the reference computes it.

    ``np.histogram(list(nx.clustering(graph).values()), bins=bins, range=(0, 1))[0]``
    (``bins`` equal bins on [0, 1], last bin closed).
    """
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
        raise ValueError(f"bins={bins!r} must be a positive integer; fix: use bins=100 (the reference)")
    values = list(nx.clustering(graph).values())
    hist, _ = np.histogram(values, bins=int(bins), range=(0.0, 1.0), density=False)
    return hist.astype(np.int64)


# ---- orbits --------------------------------------------------------------------------
# Canonical graphlet and a representative node for every orbit, ORCA/Pržulj numbering:
#   0  edge                       (G0)
#   1  end of the 3-path          2  middle of the 3-path          (G1)
#   3  triangle                   (G2)
#   4  end of the 4-path          5  inner node of the 4-path      (G3)
#   6  leaf of the 3-star         7  centre of the 3-star          (G4)
#   8  4-cycle                    (G5)
#   9  tail tip of the paw        10 degree-2 node of the paw's triangle
#   11 degree-3 node of the paw   (G6, "tailed triangle")
#   12 degree-2 node of the diamond  13 degree-3 node of the diamond (G7)
#   14 K4                         (G8)
_ORBIT_GRAPHLETS: Tuple[Tuple[int, Tuple[Tuple[int, int], ...], int], ...] = (
    (2, ((0, 1),), 0),
    (3, ((0, 1), (1, 2)), 0),
    (3, ((0, 1), (1, 2)), 1),
    (3, ((0, 1), (1, 2), (0, 2)), 0),
    (4, ((0, 1), (1, 2), (2, 3)), 0),
    (4, ((0, 1), (1, 2), (2, 3)), 1),
    (4, ((0, 1), (0, 2), (0, 3)), 1),
    (4, ((0, 1), (0, 2), (0, 3)), 0),
    (4, ((0, 1), (1, 2), (2, 3), (0, 3)), 0),
    (4, ((0, 1), (1, 2), (0, 2), (2, 3)), 3),
    (4, ((0, 1), (1, 2), (0, 2), (2, 3)), 0),
    (4, ((0, 1), (1, 2), (0, 2), (2, 3)), 2),
    (4, ((0, 1), (0, 2), (1, 2), (1, 3), (2, 3)), 0),
    (4, ((0, 1), (0, 2), (1, 2), (1, 3), (2, 3)), 1),
    (4, ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)), 0),
)


def _orbit_of(k: int, edges: Sequence[Tuple[int, int]], node: int) -> Optional[int]:
    """ORCA orbit of ``node`` in the graph on nodes ``0..k-1`` with ``edges`` (None if disconnected)."""
    deg = [0] * k
    adj = {i: set() for i in range(k)}
    for u, v in edges:
        deg[u] += 1
        deg[v] += 1
        adj[u].add(v)
        adj[v].add(u)
    seen, stack = {0}, [0]
    while stack:
        for w in adj[stack.pop()]:
            if w not in seen:
                seen.add(w)
                stack.append(w)
    if len(seen) != k:
        return None
    m, d, sd = len(edges), deg[node], tuple(sorted(deg))
    if k == 2:
        return 0
    if k == 3:
        return 3 if m == 3 else (1 if d == 1 else 2)
    if m == 3:
        if sd == (1, 1, 2, 2):
            return 4 if d == 1 else 5
        return 6 if d == 1 else 7  # star (1, 1, 1, 3)
    if m == 4:
        if sd == (2, 2, 2, 2):
            return 8
        return {1: 9, 2: 10, 3: 11}[d]  # paw (1, 2, 2, 3)
    if m == 5:
        return 12 if d == 2 else 13
    return 14


@functools.lru_cache(maxsize=1)
def _orbit_containment() -> np.ndarray:
    """``C[o, o2]``: spanning subgraphs of the graphlet of orbit ``o2`` in which the
    representative node of ``o2`` has orbit ``o`` (non-induced = C @ induced)."""
    C = np.zeros((NUM_ORBITS, NUM_ORBITS), dtype=np.int64)
    for o2, (k, edges, r) in enumerate(_ORBIT_GRAPHLETS):
        for size in range(1, len(edges) + 1):
            for sub in itertools.combinations(edges, size):
                o = _orbit_of(k, sub, r)
                if o is not None:
                    C[o, o2] += 1
    return C


def _graph_adjacency(graph: nx.Graph) -> np.ndarray:
    n = graph.number_of_nodes()
    index = {u: i for i, u in enumerate(graph.nodes())}
    A = np.zeros((n, n), dtype=np.float64)
    for u, v in graph.edges():
        if u != v:
            A[index[u], index[v]] = 1.0
            A[index[v], index[u]] = 1.0
    return A


def node_orbit_counts(graph: nx.Graph) -> np.ndarray:
    """Per-node counts of the 15 node orbits of graphlets with 2-4 nodes, ORCA's ``node 4``.

    Returns an int64 array of shape ``(n, 15)``, rows in ``graph.nodes()`` order (the order
    the reference feeds ORCA).  Entry ``[v, o]`` is the number of *induced* connected
    subgraphs on 2-4 nodes in which ``v`` sits at orbit ``o`` (column 0 is the degree).
    Orbit numbering (Hočevar & Demšar 2014 / Pržulj 2007): 0 edge; 1/2 end/middle of the
    3-path; 3 triangle; 4/5 end/inner of the 4-path; 6/7 leaf/centre of the 3-star;
    8 4-cycle; 9/10/11 tail tip / degree-2 / degree-3 node of the paw (tailed triangle);
    12/13 degree-2 / degree-3 node of the diamond; 14 K4.

    Method: non-induced counts ``N`` per node from adjacency-matrix algebra (``A``, ``A²``,
    ``T = A ∘ A²`` edge triangle counts, triangles in each neighbourhood for K4), then the
    induced counts solve ``N = C · I`` with ``C`` the unit upper-triangular containment
    matrix (how often each orbit's graphlet appears as a spanning subgraph of another's),
    computed by enumeration.  Cost O(n³) dense; fine for generation-sized graphs.
    Self-loops raise :class:`ValueError` (ORCA refuses them too).
    """
    if not isinstance(graph, nx.Graph) or graph.is_directed() or graph.is_multigraph():
        raise ValueError("graph must be an undirected networkx.Graph; fix: convert with as_graph_list([g])[0]")
    if nx.number_of_selfloops(graph) > 0:
        raise ValueError("graph has self-loops, which ORCA refuses; fix: "
                         "G.remove_edges_from(list(nx.selfloop_edges(G)))")
    n = graph.number_of_nodes()
    if n == 0:
        return np.zeros((0, NUM_ORBITS), dtype=np.int64)
    A = _graph_adjacency(graph)
    d = A.sum(axis=1)
    A2 = A @ A
    T = A * A2  # T[v, u] = triangles through edge (v, u)
    t = T.sum(axis=1) / 2.0  # triangles at v
    Ad = A @ d

    N = np.zeros((n, NUM_ORBITS), dtype=np.float64)
    N[:, 0] = d
    N[:, 1] = Ad - d  # paths v-u-w
    N[:, 2] = d * (d - 1) / 2.0
    N[:, 3] = t
    N[:, 4] = A2 @ (d - 1) - 2.0 * t - d * (d - 1)  # paths v-a-b-c
    N[:, 5] = (d - 1) * (Ad - d) - 2.0 * t  # paths a-v-b-c
    N[:, 6] = A @ ((d - 1) * (d - 2) / 2.0)  # v is a leaf of a 3-star
    N[:, 7] = d * (d - 1) * (d - 2) / 6.0
    N[:, 8] = ((A2 * A2).sum(axis=1) - Ad - d * (d - 1)) / 2.0  # 4-cycles through v
    N[:, 9] = A @ t - 2.0 * t  # v - a, a in a triangle avoiding v
    N[:, 10] = T @ (d - 2)  # v in triangle (v, a, b), extra neighbour of a
    N[:, 11] = t * (d - 2)  # v in triangle, extra neighbour of v
    N[:, 12] = ((A @ (T - A)) * A).sum(axis=1) / 2.0  # v adjacent to both ends of an edge in a triangle
    N[:, 13] = (T * (T - 1) / 2.0).sum(axis=1)  # v-b edge with two common neighbours
    k4 = np.zeros(n)
    for v in range(n):
        nb = np.flatnonzero(A[v])
        if nb.size >= 3:
            S = A[np.ix_(nb, nb)]
            k4[v] = ((S @ S) * S).sum() / 6.0  # triangles inside N(v)
    N[:, 14] = k4
    Ni = np.rint(N).astype(np.int64)

    C = _orbit_containment()
    edges_of = [len(e) for _, e, _ in _ORBIT_GRAPHLETS]
    induced = np.zeros_like(Ni)
    for o in sorted(range(NUM_ORBITS), key=lambda x: -edges_of[x]):
        acc = Ni[:, o].copy()
        for o2 in range(NUM_ORBITS):
            if o2 != o and C[o, o2]:
                acc -= C[o, o2] * induced[:, o2]
        induced[:, o] = acc
    return induced


def orbit_features(graph: nx.Graph) -> np.ndarray:
    """The reference's per-graph orbit feature: ``node_orbit_counts(graph).sum(0) / n`` (15 floats)."""
    n = graph.number_of_nodes()
    if n == 0:
        raise ValueError("graph has no nodes, its orbit feature is undefined; fix: drop empty graphs")
    return node_orbit_counts(graph).sum(axis=0) / n


# --------------------------------------------------------------------------------------
# Kernels and MMD
# --------------------------------------------------------------------------------------
def _pad(x: np.ndarray, y: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    L = max(len(x), len(y))
    return np.pad(x, (0, L - len(x))), np.pad(y, (0, L - len(y)))


def emd_1d(x: np.ndarray, y: np.ndarray, distance_scaling: float = 1.0) -> float:
    """Earth mover's distance between two equal-mass 1-D histograms, ground distance ``|i-j|/s``.

    Zero-pads the shorter one; ``EMD = Σ_{i<L-1} |cumsum(x)_i - cumsum(y)_i| / distance_scaling``,
    which is the optimum of ``pyemd.emd(x, y, toeplitz(range(L)) / distance_scaling)``
    (reference ``emd``) whenever ``x.sum() == y.sum()``.
    """
    x, y = _pad(x, y)
    sx, sy = float(x.sum()), float(y.sum())
    if abs(sx - sy) > 1e-9 * max(abs(sx), abs(sy), 1.0):
        raise ValueError(f"emd_1d: the histograms have different masses ({sx:.6g} and {sy:.6g}); the closed form holds "
                         "for equal masses only (pyemd then adds a mass penalty); fix: normalise both to sum 1 "
                         "(is_hist=True in mmd2), as every protocol here does")
    if len(x) < 2:
        return 0.0
    return float(np.abs(np.cumsum(x) - np.cumsum(y))[:-1].sum() / distance_scaling)


def gaussian_emd_kernel(x: np.ndarray, y: np.ndarray, sigma: float = 1.0, distance_scaling: float = 1.0) -> float:
    """``exp(-EMD(x, y)² / (2σ²))`` (reference ``gaussian_emd``)."""
    e = emd_1d(x, y, distance_scaling)
    return float(np.exp(-e * e / (2.0 * sigma * sigma)))


def gaussian_tv_kernel(x: np.ndarray, y: np.ndarray, sigma: float = 1.0) -> float:
    """``exp(-TV(x, y)² / (2σ²))``, ``TV = ½ Σ|x_i - y_i|`` (reference ``gaussian_tv``)."""
    x, y = _pad(x, y)
    tv = np.abs(x - y).sum() / 2.0
    return float(np.exp(-tv * tv / (2.0 * sigma * sigma)))


def gaussian_kernel(x: np.ndarray, y: np.ndarray, sigma: float = 1.0) -> float:
    """``exp(-‖x - y‖² / (2σ²))`` (reference ``gaussian``)."""
    x, y = _pad(x, y)
    dist = np.linalg.norm(x - y, 2)
    return float(np.exp(-dist * dist / (2.0 * sigma * sigma)))


_KERNELS = ("gaussian_emd", "gaussian_tv", "gaussian")


def _stack(samples: Sequence[np.ndarray], L: int) -> np.ndarray:
    out = np.zeros((len(samples), L), dtype=np.float64)
    for i, s in enumerate(samples):
        out[i, : len(s)] = s
    return out


def _kernel_matrix(X: np.ndarray, Y: np.ndarray, kernel: str, sigma: float, distance_scaling: float) -> np.ndarray:
    if kernel == "gaussian_emd":
        if X.shape[1] < 2:
            D = np.zeros((X.shape[0], Y.shape[0]))
        else:
            D = cdist(np.cumsum(X, axis=1)[:, :-1], np.cumsum(Y, axis=1)[:, :-1], "cityblock") / distance_scaling
        return np.exp(-D * D / (2.0 * sigma * sigma))
    if kernel == "gaussian_tv":
        D = cdist(X, Y, "cityblock") / 2.0
        return np.exp(-D * D / (2.0 * sigma * sigma))
    D2 = cdist(X, Y, "sqeuclidean")
    return np.exp(-D2 / (2.0 * sigma * sigma))


def mmd2(samples1: Sequence[np.ndarray], samples2: Sequence[np.ndarray], kernel: str, sigma: float,
         distance_scaling: float = 1.0, is_hist: bool = True) -> float:
    """Biased MMD² between two samples of feature vectors (reference ``compute_mmd``).

    ``mean K(X, X) + mean K(Y, Y) - 2 mean K(X, Y)`` over all pairs, diagonals included.
    With ``is_hist`` each vector is divided by its sum first.  Vectors of unequal length are
    zero-padded at the end.  ``kernel`` is ``"gaussian_emd"``, ``"gaussian_tv"`` or ``"gaussian"``.
    """
    if kernel not in _KERNELS:
        raise ValueError(f"kernel={kernel!r} is unknown; fix: use one of {_KERNELS}")
    if isinstance(sigma, bool) or not (isinstance(sigma, numbers.Real) and sigma > 0 and math.isfinite(sigma)):
        raise ValueError(f"sigma={sigma!r} must be a positive finite number")
    if isinstance(distance_scaling, bool) or not (isinstance(distance_scaling, numbers.Real)
                                                  and distance_scaling > 0):
        raise ValueError(f"distance_scaling={distance_scaling!r} must be a positive number")
    for name, s in (("samples1", samples1), ("samples2", samples2)):
        if len(s) == 0:
            raise ValueError(f"{name} is empty; fix: pass at least one feature vector")
    s1 = [np.asarray(s, dtype=np.float64).ravel() for s in samples1]
    s2 = [np.asarray(s, dtype=np.float64).ravel() for s in samples2]
    if is_hist:
        for name, ss in (("samples1", s1), ("samples2", s2)):
            for i, s in enumerate(ss):
                if not s.sum() > 0:
                    raise ValueError(f"{name}[{i}] sums to {s.sum()}, cannot be normalised to a pmf")
        s1 = [s / np.sum(s) for s in s1]
        s2 = [s / np.sum(s) for s in s2]
    elif kernel == "gaussian_emd":  # the closed-form EMD of gaussian_emd_kernel / emd_1d: equal masses only
        masses = np.array([float(s.sum()) for s in s1 + s2])
        if np.abs(masses - masses[0]).max() > 1e-9 * max(float(np.abs(masses).max()), 1.0):
            raise ValueError(f"mmd2: kernel='gaussian_emd' with is_hist=False needs vectors of equal mass (sums from "
                             f"{masses.min():.6g} to {masses.max():.6g}); the closed-form EMD holds for equal masses "
                             "only; fix: is_hist=True (each vector normalised to sum 1) or another kernel")
    L = max(max(len(s) for s in s1), max(len(s) for s in s2))
    X, Y = _stack(s1, L), _stack(s2, L)
    kxx = _kernel_matrix(X, X, kernel, sigma, distance_scaling).mean()
    kyy = _kernel_matrix(Y, Y, kernel, sigma, distance_scaling).mean()
    kxy = _kernel_matrix(X, Y, kernel, sigma, distance_scaling).mean()
    return float(kxx + kyy - 2.0 * kxy)


def _features(graphs: Sequence[nx.Graph], statistic: str, bins: int) -> List[np.ndarray]:
    if statistic == "degree":
        return [degree_histogram(g) for g in graphs]
    if statistic == "clustering":
        return [clustering_histogram(g, bins) for g in graphs]
    return [orbit_features(g) for g in graphs]


def _stat_mmd(ref: List[nx.Graph], gen: List[nx.Graph], n_empty: int, statistic: str,
              protocol: str, bins: int) -> MMDResult:
    spec = protocol_kernels(protocol, bins)[statistic]
    value = mmd2(_features(ref, statistic, bins), _features(gen, statistic, bins), spec.kernel,
                 spec.sigma, spec.distance_scaling, spec.is_hist)
    return MMDResult(
        statistic=statistic, protocol=protocol, value=value, kernel=spec.kernel, sigma=spec.sigma,
        distance_scaling=spec.distance_scaling if spec.kernel == "gaussian_emd" else None,
        num_reference=len(ref), num_generated=len(gen), num_generated_empty=n_empty,
    )


def degree_mmd(reference: Iterable[GraphLike], generated: Iterable[GraphLike],
               protocol: str = "graphrnn") -> MMDResult:
    """MMD² of degree histograms (pmf).  ``graphrnn``: Gaussian-EMD, σ=1, distance scaling 1;
    ``gran``: Gaussian-TV, σ=1.  Sources: GraphRNN/GDSS ``degree_stats``, GRAN ``degree_stats``."""
    _check_protocol(protocol)
    ref, gen, n_empty = _prepare(reference, generated)
    return _stat_mmd(ref, gen, n_empty, "degree", protocol, _CLUSTERING_BINS)


def clustering_mmd(reference: Iterable[GraphLike], generated: Iterable[GraphLike],
                   protocol: str = "graphrnn", bins: int = _CLUSTERING_BINS) -> MMDResult:
    """MMD² of clustering-coefficient histograms (``bins`` bins on [0, 1], pmf).

    ``graphrnn``: Gaussian-EMD, σ=0.1, distance scaling = ``bins`` (bin ``i`` to ``j`` costs
    ``|i-j|/bins``, i.e. the distance between bin positions on [0, 1]);
    ``gran``: Gaussian-TV, σ=0.1.  Sources: GraphRNN/GDSS and GRAN ``clustering_stats``.
    """
    _check_protocol(protocol)
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
        raise ValueError(f"bins={bins!r} must be a positive integer; fix: use bins=100 (the reference)")
    ref, gen, n_empty = _prepare(reference, generated)
    return _stat_mmd(ref, gen, n_empty, "clustering", protocol, int(bins))


def orbit_mmd(reference: Iterable[GraphLike], generated: Iterable[GraphLike],
              protocol: str = "graphrnn") -> MMDResult:
    """MMD² of per-graph mean 4-node orbit counts (15-vectors, not normalised).

    ``graphrnn``: Gaussian on L2, σ=30; ``gran``: Gaussian-TV (½ L1), σ=30.
    Sources: GraphRNN/GDSS and GRAN ``orbit_stats_all``.
    """
    _check_protocol(protocol)
    ref, gen, n_empty = _prepare(reference, generated)
    return _stat_mmd(ref, gen, n_empty, "orbit", protocol, _CLUSTERING_BINS)


def generation_mmd(reference: Iterable[GraphLike], generated: Iterable[GraphLike],
                   protocol: str = "graphrnn",
                   metrics: Sequence[str] = STATISTICS) -> Dict[str, Union[str, float, int]]:
    """MMD² for each statistic in ``metrics`` under ``protocol``; see the module docstring.

    Returns ``{"protocol": protocol, <statistic>: MMD² (float) for each requested statistic,
    "num_reference": m, "num_generated": n (non-empty generated graphs used),
    "num_generated_empty": generated graphs dropped for having no nodes}``.
    """
    _check_protocol(protocol)
    if isinstance(metrics, str):
        raise ValueError(f"metrics={metrics!r} is a single string; fix: pass a tuple, e.g. metrics=({metrics!r},)")
    metrics = tuple(metrics)
    if not metrics:
        raise ValueError(f"metrics is empty; fix: pass a subset of {STATISTICS}")
    for m in metrics:
        if m not in STATISTICS:
            raise ValueError(f"metrics holds unknown statistic {m!r}; fix: use names from {STATISTICS}")
    ref, gen, n_empty = _prepare(reference, generated)
    out: Dict[str, Union[str, float, int]] = {"protocol": protocol}
    for m in dict.fromkeys(metrics):
        out[m] = _stat_mmd(ref, gen, n_empty, m, protocol, _CLUSTERING_BINS).value
    out["num_reference"] = len(ref)
    out["num_generated"] = len(gen)
    out["num_generated_empty"] = n_empty
    return out


def as_scored(generated: Iterable[GraphLike], protocol: str = "graphrnn") -> Tuple[List[nx.Graph], int]:
    """Generated graphs as ``protocol``'s reference pipeline hands them to its statistics, and the number of
    isolated nodes removed: self-loops and isolated nodes removed (``"graphrnn"``: GDSS's ``adjs_to_graphs``, a
    graph left without nodes becomes one node; ``"gran"``: GRAN's ``get_graph``, such a graph stays empty and
    the MMD drops it and counts it).  Node attributes are kept; the input graphs are not changed."""
    _check_protocol(protocol)
    out, removed = [], 0
    for g in as_graph_list(generated, "generated"):
        h = g.copy()
        h.remove_edges_from(list(nx.selfloop_edges(h)))
        iso = list(nx.isolates(h))
        removed += len(iso)
        h.remove_nodes_from(iso)
        if protocol == "graphrnn" and h.number_of_nodes() == 0:
            h.add_node(0)
        out.append(h)
    return out, removed


# --------------------------------------------------------------------------------------
# Validity / uniqueness / novelty
# --------------------------------------------------------------------------------------
def is_connected_nonempty(graph: nx.Graph) -> bool:
    """Default validity predicate for unlabelled graphs: at least one node and connected."""
    return graph.number_of_nodes() > 0 and nx.is_connected(graph)


def validity(generated: Iterable[GraphLike],
             is_valid: Callable[[nx.Graph], bool] = is_connected_nonempty) -> float:
    """Fraction of generated graphs for which ``is_valid(graph)`` is true.

    For unlabelled graphs the default counts a graph as valid when it is connected (and
    non-empty); pass another predicate for planar/tree/SBM/... datasets.
    """
    if not callable(is_valid):
        raise ValueError(f"is_valid must be a callable graph -> bool, got {type(is_valid).__name__}")
    gen = as_graph_list(generated, "generated")
    return sum(bool(is_valid(g)) for g in gen) / len(gen)


def _canon_label(v: Any) -> str:
    """One string per ==-class of labels: numbers by value (1, 1.0, True and numpy's 1 alike), sequences by item."""
    if isinstance(v, (list, tuple)):
        return "(" + ",".join(_canon_label(u) for u in v) + ")"
    if isinstance(v, (bool, np.bool_, numbers.Integral)):  # exactly, however large (numpy's bool is not Real)
        return str(int(v))
    if isinstance(v, numbers.Real):
        f = float(v)
        return str(int(f)) if f.is_integer() else repr(f)
    return str(v)


class _IsoIndex:
    """Buckets graphs by Weisfeiler-Lehman hash, then confirms with ``nx.is_isomorphic``."""

    def __init__(self, node_attr: Optional[str], edge_attr: Optional[str]) -> None:
        self.node_attr, self.edge_attr = node_attr, edge_attr
        self.buckets: Dict[str, List[nx.Graph]] = {}
        iso = nx.algorithms.isomorphism
        self.node_match = iso.categorical_node_match(node_attr, None) if node_attr else None
        self.edge_match = iso.categorical_edge_match(edge_attr, None) if edge_attr else None

    def _key(self, g: nx.Graph) -> str:
        if self.node_attr or self.edge_attr:
            # the hash reads str(label) while the isomorphism test compares labels with ==: 1 and 1.0 (or a long
            # and a float one-hot) would fall in different buckets and never be compared — hash canonical labels
            g = g.copy()
            if self.node_attr:
                nx.set_node_attributes(g, {v: _canon_label(d.get(self.node_attr)) for v, d in g.nodes(data=True)},
                                       self.node_attr)
            if self.edge_attr:
                nx.set_edge_attributes(g, {(u, v): _canon_label(d.get(self.edge_attr))
                                           for u, v, d in g.edges(data=True)}, self.edge_attr)
        with warnings.catch_warnings():
            # networkx >= 3.5 warns that unlabelled hashes changed in 3.5; only equality within
            # one run matters here
            warnings.filterwarnings("ignore", message="The hashes produced for graphs", category=UserWarning)
            h = nx.weisfeiler_lehman_graph_hash(g, node_attr=self.node_attr, edge_attr=self.edge_attr,
                                                iterations=3)
        return f"{g.number_of_nodes()}:{g.number_of_edges()}:{h}"

    def contains(self, g: nx.Graph, key: Optional[str] = None) -> bool:
        key = self._key(g) if key is None else key
        return any(nx.is_isomorphic(g, h, node_match=self.node_match, edge_match=self.edge_match)
                   for h in self.buckets.get(key, ()))

    def add(self, g: nx.Graph, key: Optional[str] = None) -> None:
        key = self._key(g) if key is None else key
        self.buckets.setdefault(key, []).append(g)


def _attrs(attr: Optional[str], name: str) -> Optional[List[str]]:
    if attr is None:
        return None
    if not isinstance(attr, str):
        raise ValueError(f"{name} must be an attribute name (str) or None, got {attr!r}")
    return [attr]


def _unique_flags(gen: Sequence[nx.Graph], node_attr: Optional[str], edge_attr: Optional[str]) -> List[bool]:
    index = _IsoIndex(node_attr, edge_attr)
    flags = []
    for g in gen:
        key = index._key(g)
        dup = index.contains(g, key)
        if not dup:
            index.add(g, key)
        flags.append(not dup)
    return flags


def _novel_flags(gen: Sequence[nx.Graph], train: Sequence[nx.Graph], node_attr: Optional[str],
                 edge_attr: Optional[str]) -> List[bool]:
    index = _IsoIndex(node_attr, edge_attr)
    for g in train:
        index.add(g)
    return [not index.contains(g) for g in gen]


def _require_labels(graphs: List[nx.Graph], name: str, node_attr: Optional[str], edge_attr: Optional[str]) -> None:
    """Every node (edge) carries ``node_attr`` (``edge_attr``) when one is asked for."""
    for i, g in enumerate(graphs):
        if node_attr and any(node_attr not in d for _, d in g.nodes(data=True)):
            raise ValueError(f"{name}[{i}] has nodes without the attribute {node_attr!r}; fix: label every node "
                             "(a Data attribute of that name, one entry per node) or pass node_attr=None")
        if edge_attr and any(edge_attr not in d for _, _, d in g.edges(data=True)):
            raise ValueError(f"{name}[{i}] has edges without the attribute {edge_attr!r}; fix: label every edge "
                             "or pass edge_attr=None")


def uniqueness(generated: Iterable[GraphLike], node_attr: Optional[str] = None,
               edge_attr: Optional[str] = None) -> float:
    """Fraction of generated graphs not isomorphic to an *earlier* generated graph.

    Isomorphism respects node (edge) labels stored under ``node_attr`` (``edge_attr``) when
    given; candidates are bucketed by Weisfeiler-Lehman hash (3 iterations) and confirmed
    with ``nx.is_isomorphic``, so the answer is exact.
    """
    gen = as_graph_list(generated, "generated", _attrs(node_attr, "node_attr"), _attrs(edge_attr, "edge_attr"))
    _require_labels(gen, "generated", node_attr, edge_attr)
    return sum(_unique_flags(gen, node_attr, edge_attr)) / len(gen)


def novelty(generated: Iterable[GraphLike], train: Iterable[GraphLike], node_attr: Optional[str] = None,
            edge_attr: Optional[str] = None) -> float:
    """Fraction of generated graphs not isomorphic to any training graph (labels as in :func:`uniqueness`)."""
    na, ea = _attrs(node_attr, "node_attr"), _attrs(edge_attr, "edge_attr")
    gen = as_graph_list(generated, "generated", na, ea)
    tr = as_graph_list(train, "train", na, ea)
    _require_labels(gen, "generated", node_attr, edge_attr)
    _require_labels(tr, "train", node_attr, edge_attr)
    return sum(_novel_flags(gen, tr, node_attr, edge_attr)) / len(gen)


def vun(generated: Iterable[GraphLike], train: Iterable[GraphLike],
        is_valid: Callable[[nx.Graph], bool] = is_connected_nonempty,
        node_attr: Optional[str] = None, edge_attr: Optional[str] = None) -> Dict[str, float]:
    """Validity, uniqueness, novelty and the fraction that is all three at once.

    ``valid_unique_novel`` counts generated graphs that are valid, not isomorphic to an
    earlier generated graph and not isomorphic to any training graph (the V.U.N. of
    SPECTRE/DiGress-style tables, with this module's validity predicate).
    """
    if not callable(is_valid):
        raise ValueError(f"is_valid must be a callable graph -> bool, got {type(is_valid).__name__}")
    na, ea = _attrs(node_attr, "node_attr"), _attrs(edge_attr, "edge_attr")
    gen = as_graph_list(generated, "generated", na, ea)
    tr = as_graph_list(train, "train", na, ea)
    _require_labels(gen, "generated", node_attr, edge_attr)
    _require_labels(tr, "train", node_attr, edge_attr)
    valid = [bool(is_valid(g)) for g in gen]
    unique = _unique_flags(gen, node_attr, edge_attr)
    novel = _novel_flags(gen, tr, node_attr, edge_attr)
    n = len(gen)
    return {
        "validity": sum(valid) / n,
        "uniqueness": sum(unique) / n,
        "novelty": sum(novel) / n,
        "valid_unique_novel": sum(v and u and nv for v, u, nv in zip(valid, unique, novel)) / n,
    }
