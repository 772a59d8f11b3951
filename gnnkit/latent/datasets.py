"""Graph-generation benchmark datasets, built offline the way the papers build them.

Three of the generic-graph benchmarks of GraphRNN (You et al., 2018) and GDSS
(Jo et al., 2022) are reproduced here from their reference code:

* **community-small** -- :func:`community_small`, the generator of
  ``harryjo97/GDSS : data/data_generators.py`` (``n_community`` /
  ``gen_graph_list`` / ``generate_dataset('community_small')``, itself taken from
  EDP-GNN, Niu et al. 2020), reproduced draw for draw with a seeded
  :class:`numpy.random.Generator` in place of the global ``np.random`` state.
* **ego-small** -- :func:`ego_small`, radius-1 ego networks of a Planetoid
  citation graph (``GDSS : data/data_generators.py`` ``citeseer_ego`` /
  ``generate_dataset('ego_small')``; ``JiaxuanYou/graph-generation :
  create_graphs.py`` ``citeseer_small``).  The published set uses **CiteSeer**,
  which is not available offline here: the default builds **"ego-small built
  from Cora"**, a different data set with the same recipe.  Every graph and
  the :class:`GenerationDataset` say so.
* **ENZYMES** -- :func:`enzymes`, the 600 TUDataset protein graphs with GDSS's
  filtering (``GDSS : data/data_generators.py`` ``graph_load_batch``), which
  leaves 587 graphs of 10--125 nodes.

:func:`load_generation_dataset` returns any of them split 80/20 exactly as
``GDSS : utils/data_loader.py`` ``dataloader`` splits them, and :func:`to_pyg` /
:func:`from_pyg` convert between :mod:`networkx` graphs and PyG ``Data``.

Conventions of the returned graphs: undirected :class:`networkx.Graph` without
self-loops, nodes ``0 .. n-1``; the node attribute ``label`` (``int``) holds a
node class where the data set has one (ENZYMES); graph-level facts are in
``G.graph`` (``dataset``, and per data set e.g. ``center`` or ``label``).
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence, Tuple, Union

import networkx as nx
import numpy as np
import torch

from ._common import check_int, check_number

if TYPE_CHECKING:  # pragma: no cover
    from torch_geometric.data import Data

__all__ = [
    "GenerationDataset",
    "community_small",
    "ego_small",
    "enzymes",
    "gdss_split",
    "generation_dataset_names",
    "load_generation_dataset",
    "to_pyg",
    "from_pyg",
]

SeedLike = Union[int, np.random.Generator]

GDSS_REPO = "https://github.com/harryjo97/GDSS"
GRAPHRNN_REPO = "https://github.com/JiaxuanYou/graph-generation"


def _rng(seed: SeedLike, fn: str) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        if seed < 0:
            raise ValueError(f"{fn}: seed must be >= 0 (numpy's generators take no negative seed), got {seed!r}")
        return np.random.default_rng(int(seed))
    raise TypeError(f"{fn}: seed must be an int or a numpy.random.Generator, got {seed!r} "
                    f"(type {type(seed).__name__}); pass e.g. seed=0 for a reproducible data set")


# --------------------------------------------------------------------------------------
# community-small
# --------------------------------------------------------------------------------------

def _n_community(num_communities: int, max_nodes: int, rng: np.random.Generator,
                 p_intra: float, p_inter: float, resample_communities: bool) -> nx.Graph:
    """One graph of ``GDSS : data/data_generators.py`` ``n_community`` (EDP-GNN's version)."""
    size = max_nodes // num_communities  # one_community_size; total = size * num_communities
    p_make_a_bridge = p_inter * 2 / ((num_communities - 1) * size)
    if resample_communities:
        seeds = [int(s) for s in rng.integers(0, 2**31 - 1, size=num_communities)]
    else:
        # The reference calls nx.gnp_random_graph(c_sizes[i], 0.7, seed=i): the
        # communities are the same fixed G(n, 0.7) draws for every graph of a size.
        seeds = list(range(num_communities))
    parts = [nx.gnp_random_graph(size, p_intra, seed=s) for s in seeds]
    G = nx.disjoint_union_all(parts)
    for c in range(num_communities):
        for v in range(c * size, (c + 1) * size):
            G.nodes[v]["community"] = c
    # The reference bridges the *connected components* of the union (== the
    # communities unless a G(n, 0.7) draw is itself disconnected), in node order.
    comps = [sorted(c) for c in nx.connected_components(G)]
    for i in range(len(comps)):
        nodes1 = comps[i]
        for j in range(i + 1, len(comps)):
            nodes2 = comps[j]
            # One uniform draw per (n1, n2) pair in row-major order, as the reference loop.
            bridges = rng.random((len(nodes1), len(nodes2))) < p_make_a_bridge
            if bridges.any():
                for a, b in zip(*np.nonzero(bridges)):
                    G.add_edge(nodes1[a], nodes2[b])
            else:
                G.add_edge(nodes1[0], nodes2[0])  # guarantees connectivity
    return G


def community_small(num_graphs: int = 100, seed: SeedLike = 0, *, num_communities: int = 2,
                    max_nodes_choices: Sequence[int] = tuple(range(12, 21)), p_intra: float = 0.7,
                    p_inter: float = 0.05, resample_communities: bool = False) -> List[nx.Graph]:
    """The community-small data set of GDSS / EDP-GNN (100 graphs, 12--20 nodes).

    Reproduces ``harryjo97/GDSS : data/data_generators.py``::

        generate_dataset('community_small') ->
        gen_graph_list('community', {'num_communities': [2], 'max_nodes': np.arange(12, 21)}, length=100)

    For each graph (draws in the reference's order, from one ``numpy`` Generator):

    1. ``max_nodes`` is drawn uniformly from 12..20 (``np.random.choice``);
    2. each of the 2 communities has ``max_nodes // 2`` nodes (so graphs have an
       even count 12, 14, 16, 18 or 20; 12 is twice as likely: from 12 and 13);
    3. community ``i`` is ``nx.gnp_random_graph(size, 0.7, seed=i)`` -- the
       reference seeds it with the community index, so every graph of a given size
       has the *same* two communities and only the bridges vary.
       ``resample_communities=True`` draws them from ``seed`` instead (not the
       reference);
    4. every pair of nodes across two connected components of the union gets an
       edge with probability ``p_inter * 2 / ((k - 1) * size)`` = ``0.1 / size``;
       if a pair of components got no edge, their first nodes are joined, so
       every graph is connected.

    Checked: edge for edge the same graphs as a literal copy of the reference
    code whose ``np.random.choice`` / ``np.random.rand`` read the same Generator,
    and the communities of GDSS's ``data/community_small.pkl`` are exactly these
    ``seed=0`` / ``seed=1`` draws (networkx 3.x).

    GraphRNN's ``community`` generator (``JiaxuanYou/graph-generation : utils.py``
    ``n_community``) is the same scheme with other sizes and ``p_inter=0.01`` per pair.

    Args:
        num_graphs: how many graphs (reference: 100).
        seed: an int or a :class:`numpy.random.Generator`; the same seed gives the
            same graphs (the reference used the unseeded global ``np.random``).
        num_communities: communities per graph (reference: 2).
        max_nodes_choices: the values ``max_nodes`` is drawn from (reference: 12..20).
        p_intra: edge probability inside a community (reference: 0.7).
        p_inter: the reference's ``p_inter`` (bridge probability is derived from it).
        resample_communities: draw each community from ``seed`` rather than the
            reference's fixed ``seed=i``.

    Returns:
        ``num_graphs`` connected graphs with nodes ``0..n-1``, node attribute
        ``community`` (0 or 1) and ``G.graph['dataset'] == 'community-small'``.
    """
    fn = "community_small"
    num_graphs = check_int("num_graphs", num_graphs, 0, who=fn)
    num_communities = check_int("num_communities", num_communities, 2, who=fn)
    values = list(max_nodes_choices)
    if any(isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral) for v in values):
        raise ValueError(f"{fn}: max_nodes_choices must hold integers (node counts), got {values!r}")
    choices = np.asarray(values, dtype=np.int64)
    if choices.size == 0 or int(choices.min()) < num_communities:
        raise ValueError(f"{fn}: max_nodes_choices must be non-empty with every value >= "
                         f"num_communities={num_communities}, got {list(max_nodes_choices)!r}")
    for arg, p in (("p_intra", p_intra), ("p_inter", p_inter)):
        check_number(f"{fn}: {arg}", p, 0.0, 1.0, hint=" (a probability)")
    rng = _rng(seed, fn)
    graphs = []
    for _ in range(num_graphs):
        max_nodes = int(rng.choice(choices))
        G = _n_community(num_communities, max_nodes, rng, float(p_intra), float(p_inter),
                         resample_communities)
        G.graph["dataset"] = "community-small"
        graphs.append(G)
    return graphs


# --------------------------------------------------------------------------------------
# ego-small
# --------------------------------------------------------------------------------------

def _planetoid_graph(name: str, root: Optional[str]) -> nx.Graph:
    from gnnkit.data import load_dataset

    data = load_dataset(name, root=root)[0]
    G = nx.Graph()
    G.add_nodes_from(range(int(data.num_nodes)))
    ei = data.edge_index.cpu().numpy()
    keep = ei[0] != ei[1]  # the reference strips self-loops from every ego net
    G.add_edges_from(zip(ei[0, keep].tolist(), ei[1, keep].tolist()))
    return G


def ego_small(name: str = "Cora", root: Optional[str] = None, radius: int = 1, min_nodes: int = 4,
              max_nodes: int = 18, num_graphs: Optional[int] = 200, seed: SeedLike = 0, *,
              selection: str = "first") -> List[nx.Graph]:
    """Ego-small: radius-1 ego networks with 4--18 nodes of a Planetoid graph.

    .. warning:: The published ego-small (GraphRNN, GDSS) is built from **CiteSeer**.
       With the default ``name="Cora"`` this returns **"ego-small built from
       Cora"**, the same recipe on another graph: numbers are not comparable with
       the papers'.  Every graph carries ``G.graph['dataset']`` saying which.

    Reproduces ``harryjo97/GDSS : data/data_generators.py``
    ``citeseer_ego(radius=1, node_min=4, node_max=18)[:200]``:

    1. the Planetoid graph (``nx.from_dict_of_lists`` of ``ind.<name>.graph`` in
       the reference; here PyG's ``edge_index`` of the same file, loaded by
       :func:`gnnkit.data.load_dataset`), reduced to its **largest connected
       component**, relabelled ``0..M-1`` in node order;
    2. **every** node ``i = 0..M-1`` of that component is a center, in order;
       ``nx.ego_graph(G, i, radius)`` is kept if it has ``min_nodes..max_nodes``
       nodes (inclusive), with self-loops removed;
    3. the **first** ``num_graphs`` (200) kept ego nets, in center order -- no
       random sampling (``selection="first"``, the default).

    GraphRNN (``JiaxuanYou/graph-generation : create_graphs.py`` ``citeseer_small``)
    differs: 4..20 nodes, and ``shuffle(graphs)[:200]`` (unseeded); pass
    ``max_nodes=20, selection="shuffle"`` for that recipe (shuffled with ``seed``).
    Checked offline: on the CiteSeer files of the GDSS repository this function
    (``name="CiteSeer"``) yields the 200 graphs of GDSS's ``data/ego_small.pkl``
    edge for edge.

    Args:
        name: Planetoid data set name for :func:`gnnkit.data.load_dataset`
            ("Cora", "CiteSeer", "PubMed").
        root: data root for :func:`gnnkit.data.load_dataset` (default: ``$GNNKIT_DATA``,
            then the bundled ``datasets/``).
        radius: ego-net radius (reference: 1).
        min_nodes, max_nodes: inclusive node-count bounds (reference: 4, 18).
        num_graphs: how many ego nets to keep (reference: 200); ``None`` keeps all.
        seed: int or :class:`numpy.random.Generator`; used only by ``selection="shuffle"``.
        selection: ``"first"`` (GDSS) or ``"shuffle"`` (GraphRNN).

    Returns:
        Graphs relabelled so the center is node 0 and the other nodes follow in
        increasing largest-component index; ``G.graph`` holds ``center`` (0),
        ``center_index`` (the center's index in the largest component), ``radius``
        and ``dataset`` (e.g. ``"ego-small built from Cora"``).
    """
    fn = "ego_small"
    radius = check_int("radius", radius, 0, who=fn)
    min_nodes = check_int("min_nodes", min_nodes, 1, who=fn)
    max_nodes = check_int("max_nodes", max_nodes, 1, who=fn)
    if min_nodes > max_nodes:
        raise ValueError(f"{fn}: min_nodes={min_nodes} exceeds max_nodes={max_nodes}; "
                         "pass min_nodes <= max_nodes")
    if num_graphs is not None:
        num_graphs = check_int("num_graphs", num_graphs, 0, who=fn)
    if selection not in ("first", "shuffle"):
        raise ValueError(f"{fn}: selection must be 'first' (GDSS) or 'shuffle' (GraphRNN), "
                         f"got {selection!r}")
    rng = _rng(seed, fn) if selection == "shuffle" else None

    G = _planetoid_graph(name, root)
    lcc = sorted(max(nx.connected_components(G), key=len))
    G = nx.convert_node_labels_to_integers(G.subgraph(lcc).copy(), ordering="sorted")

    label = f"ego-small built from {name}"
    if name.lower() != "citeseer":
        label += " (not the published CiteSeer ego-small)"
    stop_early = selection == "first" and num_graphs is not None
    picked: List[Tuple[int, List[int]]] = []
    for i in range(G.number_of_nodes()):
        nodes = nx.single_source_shortest_path_length(G, i, cutoff=radius)
        if min_nodes <= len(nodes) <= max_nodes:
            picked.append((i, sorted(nodes)))
            if stop_early and len(picked) == num_graphs:
                break
    if num_graphs is not None and len(picked) < num_graphs:
        raise ValueError(
            f"{fn}: only {len(picked)} ego nets of {name} with radius={radius} have "
            f"{min_nodes}..{max_nodes} nodes, fewer than num_graphs={num_graphs}; lower "
            "num_graphs, pass num_graphs=None for all, or widen min_nodes/max_nodes")
    if selection == "shuffle":
        picked = [picked[k] for k in rng.permutation(len(picked))]
    if num_graphs is not None:
        picked = picked[:num_graphs]

    graphs = []
    for center, nodes in picked:
        order = [center] + [v for v in nodes if v != center]
        ego = G.subgraph(order)
        H = nx.Graph(dataset=label, center=0, center_index=center, radius=radius)
        H.add_nodes_from(range(len(order)))
        index = {v: k for k, v in enumerate(order)}
        H.add_edges_from((index[u], index[v]) for u, v in ego.edges())
        graphs.append(H)
    return graphs


# --------------------------------------------------------------------------------------
# ENZYMES
# --------------------------------------------------------------------------------------

def enzymes(root: Optional[str] = None, min_nodes: int = 10, max_nodes: int = 1000, *,
            remove_isolated: bool = True) -> List[nx.Graph]:
    """ENZYMES as GDSS uses it: 587 of the 600 TUDataset graphs, 10--125 nodes.

    Reproduces ``harryjo97/GDSS : data/data_generators.py``
    ``graph_load_batch(min_num_nodes=10, max_num_nodes=1000, name='ENZYMES',
    node_attributes=False, graph_labels=True)`` (the same as GraphRNN's
    ``JiaxuanYou/graph-generation : data.py`` ``Graph_load_batch`` used with
    ``min_num_nodes=10`` in ``create_graphs.py``):

    1. **isolated nodes are removed** (``G.remove_nodes_from(nx.isolates(G))``);
    2. graphs with ``min_nodes <= n <= max_nodes`` are kept (10..1000), in data set
       order.  GDSS's config pads to ``max_node_num: 125``, the largest kept graph.

    The raw files are read by PyG's ``TUDataset`` through
    :func:`gnnkit.data.load_dataset` (``$GNNKIT_DATA/tu/ENZYMES/raw``); PyG drops
    self-loops (ENZYMES has none).

    Returns:
        Graphs with nodes ``0..n-1`` (original node order, isolated nodes removed),
        node attribute ``label``: the node class 0..2 (PyG's index; the raw
        ``ENZYMES_node_labels.txt`` value minus 1 -- GDSS keeps the raw 1..3), and
        ``G.graph['label']``: the enzyme class 0..5 (raw graph label minus 1).
        (In GDSS's ``data/ENZYMES.pkl`` every graph's ``label`` is 4, the last
        graph's: ``G.subgraph`` views share the parent's ``graph`` dict.  GDSS never
        reads it; here each graph has its own.)

    Checked offline against GDSS's ``data/ENZYMES.pkl``: same 587 graphs, node
    counts, edges and node labels (minus 1), in the same order.
    """
    from gnnkit.data import load_dataset

    fn = "enzymes"
    min_nodes = check_int("min_nodes", min_nodes, 0, who=fn)
    max_nodes = check_int("max_nodes", max_nodes, 0, who=fn)
    ds = load_dataset("ENZYMES", root=root)
    num_labels = int(getattr(ds, "num_node_labels", 0) or 0)
    graphs = []
    for data in ds:
        n = int(data.num_nodes)
        ei = data.edge_index.cpu().numpy()
        ei = ei[:, ei[0] != ei[1]]
        labels = None
        if num_labels and data.x is not None:
            labels = data.x[:, :num_labels].argmax(dim=1).tolist()
        if remove_isolated:
            keep = np.zeros(n, dtype=bool)
            keep[ei.reshape(-1)] = True
            kept = np.nonzero(keep)[0].tolist()
        else:
            kept = list(range(n))
        if not (min_nodes <= len(kept) <= max_nodes):
            continue
        index = {v: k for k, v in enumerate(kept)}
        G = nx.Graph(dataset="ENZYMES", label=int(data.y.view(-1)[0]))
        if labels is None:
            G.add_nodes_from(range(len(kept)))
        else:
            G.add_nodes_from((index[v], {"label": int(labels[v])}) for v in kept)
        G.add_edges_from((index[u], index[v]) for u, v in zip(ei[0].tolist(), ei[1].tolist()))
        graphs.append(G)
    return graphs


# --------------------------------------------------------------------------------------
# split and registry
# --------------------------------------------------------------------------------------

def gdss_split(graphs: Sequence[nx.Graph], test_fraction: float = 0.2
               ) -> Tuple[List[nx.Graph], List[nx.Graph]]:
    """Train/test split of ``harryjo97/GDSS : utils/data_loader.py`` ``dataloader``.

    ``test_size = int(test_split * len(graph_list))``; ``test = graph_list[:test_size]``,
    ``train = graph_list[test_size:]`` -- no shuffling, no seed: the **first**
    20 % (in generation / file order) is the test set.  (GraphRNN's ``main.py``
    instead does ``random.seed(123); shuffle(graphs)`` and tests on the *last* 20 %.)

    Returns:
        ``(train, test)``.
    """
    check_number("gdss_split: test_fraction", test_fraction, 0.0, 1.0)
    graphs = list(graphs)
    test_size = int(test_fraction * len(graphs))
    return graphs[test_size:], graphs[:test_size]


@dataclass
class GenerationDataset:
    """A graph-generation benchmark split as GDSS splits it.

    Attributes:
        name: canonical name ("community-small", "ego-small", "enzymes").
        train, test: the graphs (see :func:`gdss_split`).
        description: one line saying what the graphs are (and, for ego-small,
            which Planetoid graph they come from).
        max_nodes: the largest node count over train and test.
        num_node_labels: number of node classes (ENZYMES: 3), else 0.
        source: the reference code reproduced.
        info: further facts (e.g. ``{"base_graph": "Cora"}``).
    """
    name: str
    train: List[nx.Graph]
    test: List[nx.Graph]
    description: str
    max_nodes: int
    num_node_labels: int = 0
    source: str = ""
    info: Dict[str, object] = field(default_factory=dict)

    @property
    def graphs(self) -> List[nx.Graph]:
        """All graphs in the reference's order (test first, as GDSS slices it)."""
        return self.test + self.train

    def __repr__(self) -> str:
        return (f"GenerationDataset(name={self.name!r}, train={len(self.train)}, test={len(self.test)}, "
                f"max_nodes={self.max_nodes}, num_node_labels={self.num_node_labels}, "
                f"description={self.description!r})")


def dataset_fingerprint(data: GenerationDataset) -> str:
    """SHA-256 (hex) of a dataset's graphs, test then train, each as its node count, its edges between node
    positions (``G``'s node order, as :func:`to_pyg` indexes them) and its integer node labels: two datasets
    with the same fingerprint train and evaluate on the same graphs.  A run keeps it to recognise its data."""
    import hashlib

    if not isinstance(data, GenerationDataset):
        raise ValueError(f"dataset_fingerprint: data must be a GenerationDataset, got {type(data).__name__}")
    h = hashlib.sha256()
    for part, graphs in (("test", data.test), ("train", data.train)):
        h.update(f"{part}:{len(graphs)};".encode())
        for G in graphs:
            index = {v: i for i, v in enumerate(G.nodes())}
            edges = sorted((min(index[u], index[v]), max(index[u], index[v])) for u, v in G.edges())
            labels = [G.nodes[v].get("label") for v in G.nodes()]  # ints as ints (np.int64 too: to_pyg's values)
            labels = [int(v) if isinstance(v, numbers.Integral) and not isinstance(v, bool) else v for v in labels]
            h.update(f"{len(index)}|{edges}|{labels};".encode())
    return h.hexdigest()


_NAMES = ("community-small", "ego-small", "enzymes")


def generation_dataset_names() -> List[str]:
    """The names :func:`load_generation_dataset` accepts."""
    return list(_NAMES)


def _canonical(name: str) -> str:
    if not isinstance(name, str):
        raise ValueError(f"load_generation_dataset: name must be a str, one of {list(_NAMES)}; got {name!r}")
    key = name.strip().lower().replace("_", "-").replace(" ", "-")
    if key not in _NAMES:
        raise ValueError(f"load_generation_dataset: unknown dataset name={name!r}; "
                         f"available: {', '.join(_NAMES)} (case and '_'/'-' do not matter)")
    return key


def load_generation_dataset(name: str, root: Optional[str] = None, seed: SeedLike = 0, *,
                            ego_base: str = "Cora", test_fraction: float = 0.2) -> GenerationDataset:
    """A graph-generation benchmark by name, split 80/20 as GDSS does.

    Args:
        name: "community-small", "ego-small" or "enzymes" (case-insensitive, ``_`` = ``-``).
        root: data root for :func:`gnnkit.data.load_dataset` (ego-small, enzymes).
        seed: int or :class:`numpy.random.Generator` for community-small (the only
            random one; ego-small and enzymes are deterministic).
        ego_base: the Planetoid graph ego-small is built from (published: CiteSeer;
            default Cora, which is what is available offline).
        test_fraction: reference 0.2 (``config/*.yaml`` ``data.test_split``).

    Raises:
        ValueError: unknown ``name`` (the message lists the available ones).
    """
    key = _canonical(name)
    info: Dict[str, object] = {}
    if key == "community-small":
        graphs = community_small(100, seed=seed)
        description = "community-small: 100 two-community graphs, 12-20 nodes (GDSS/EDP-GNN generator)"
        source = f"{GDSS_REPO} : data/data_generators.py n_community, generate_dataset('community_small')"
        num_node_labels = 0
    elif key == "ego-small":
        graphs = ego_small(ego_base, root=root, seed=seed)
        description = graphs[0].graph["dataset"] + ": 200 radius-1 ego nets with 4-18 nodes"
        source = (f"{GDSS_REPO} : data/data_generators.py citeseer_ego(radius=1, node_min=4, node_max=18)"
                  f"[:200] applied to {ego_base}")
        info["base_graph"] = ego_base
        info["published_base_graph"] = "CiteSeer"
        num_node_labels = 0
    else:
        graphs = enzymes(root=root)
        description = f"ENZYMES: {len(graphs)} of 600 TUDataset graphs with >= 10 nodes (isolated nodes removed)"
        source = f"{GDSS_REPO} : data/data_generators.py graph_load_batch(min_num_nodes=10, max_num_nodes=1000)"
        num_node_labels = 3
    train, test = gdss_split(graphs, test_fraction)
    max_nodes = max((g.number_of_nodes() for g in graphs), default=0)
    source += f"; split: {GDSS_REPO} : utils/data_loader.py (test = first int({test_fraction} * N))"
    return GenerationDataset(key, train, test, description, max_nodes, num_node_labels, source, info)


# --------------------------------------------------------------------------------------
# PyG conversion
# --------------------------------------------------------------------------------------

def to_pyg(graphs: Union[nx.Graph, Sequence[nx.Graph]]) -> Union[Data, List[Data]]:
    """networkx graphs -> PyG ``Data`` (a list for a list, one ``Data`` for one graph).

    Each ``Data`` has ``edge_index`` (``int64``, both directions, sorted, no
    duplicates), ``num_nodes``, ``node_label`` (``int64 [num_nodes]``) when every node
    has an int ``label`` attribute, and ``y`` (``int64 [1]``) when ``G.graph`` has
    ``label``.  Nodes are indexed in ``G``'s node order.
    """
    from torch_geometric.data import Data
    from torch_geometric.utils import coalesce

    single = isinstance(graphs, nx.Graph)
    out = []
    for k, G in enumerate([graphs] if single else graphs):
        if not isinstance(G, nx.Graph) or G.is_directed():
            raise TypeError(f"to_pyg: graphs[{k}] must be an undirected networkx.Graph, got "
                            f"{type(G).__name__}")
        nodes = list(G.nodes())
        index = {v: i for i, v in enumerate(nodes)}
        n = len(nodes)
        if G.number_of_edges():
            e = torch.tensor([[index[u], index[v]] for u, v in G.edges()], dtype=torch.long).t()
            ei = torch.cat([e, e.flip(0)], dim=1)
            ei = coalesce(ei, num_nodes=n)
        else:
            ei = torch.empty(2, 0, dtype=torch.long)
        data = Data(edge_index=ei, num_nodes=n)
        has = [("label" in G.nodes[v]) for v in nodes]
        if n and all(has):
            data.node_label = torch.tensor([int(G.nodes[v]["label"]) for v in nodes], dtype=torch.long)
        elif any(has):
            raise ValueError(f"to_pyg: graphs[{k}]: only {sum(has)} of {n} nodes have a 'label' "
                             "attribute; give every node a label or none")
        if "label" in G.graph:
            data.y = torch.tensor([int(G.graph["label"])], dtype=torch.long)
        out.append(data)
    return out[0] if single else out


def from_pyg(data: "Data") -> nx.Graph:
    """PyG ``Data`` -> undirected :class:`networkx.Graph` (inverse of :func:`to_pyg`).

    Nodes ``0..num_nodes-1``; ``node_label`` becomes the node attribute ``label``
    and a one-element ``y`` the graph attribute ``label``.
    """
    n = int(data.num_nodes)
    G = nx.Graph()
    node_label = getattr(data, "node_label", None)
    if node_label is not None:
        G.add_nodes_from((i, {"label": int(c)}) for i, c in enumerate(node_label.view(-1).tolist()))
    else:
        G.add_nodes_from(range(n))
    ei = data.edge_index
    if ei is not None and ei.numel():
        G.add_edges_from(zip(ei[0].tolist(), ei[1].tolist()))
    y = getattr(data, "y", None)
    if isinstance(y, torch.Tensor) and y.numel() == 1:
        G.graph["label"] = int(y.view(-1)[0])
    return G
