"""Graph-generation datasets (gnnkit.latent.datasets): GDSS/GraphRNN recipes, offline."""
import networkx as nx
import numpy as np
import pytest
import torch

from gnnkit.latent.datasets import (
    GenerationDataset,
    community_small,
    ego_small,
    enzymes,
    from_pyg,
    gdss_split,
    generation_dataset_names,
    load_generation_dataset,
    to_pyg,
)
from tests.conftest import load_or_skip


def edge_sets(graphs):
    return [(g.number_of_nodes(), frozenset(frozenset(e) for e in g.edges())) for g in graphs]


# ------------------------------------------------------------------ community-small

def test_community_small_reproducible_under_seed():
    a, b = community_small(seed=0), community_small(seed=0)
    assert edge_sets(a) == edge_sets(b)
    assert edge_sets(a) != edge_sets(community_small(seed=1))
    rng = np.random.default_rng(3)
    assert edge_sets(community_small(10, seed=rng)) == edge_sets(community_small(10, seed=3))


def test_community_small_structure():
    graphs = community_small(seed=0)
    assert len(graphs) == 100
    sizes = set()
    for g in graphs:
        n = g.number_of_nodes()
        sizes.add(n)
        assert 12 <= n <= 20 and n % 2 == 0  # two communities of max_nodes // 2 nodes
        assert sorted(g.nodes()) == list(range(n))
        assert nx.is_connected(g)  # the reference joins unbridged components
        comm = nx.get_node_attributes(g, "community")
        assert sorted(comm.values()) == [0] * (n // 2) + [1] * (n // 2)
        intra = sum(comm[u] == comm[v] for u, v in g.edges())
        inter = g.number_of_edges() - intra
        h = n // 2
        assert inter >= 1
        assert intra / (2 * h * (h - 1) / 2) > 0.5 > 0.25 > inter / (h * h)
        # the reference seeds community i with nx.gnp_random_graph(size, 0.7, seed=i)
        for c in (0, 1):
            sub = nx.convert_node_labels_to_integers(g.subgraph(range(c * h, (c + 1) * h)))
            ref = nx.gnp_random_graph(h, 0.7, seed=c)
            assert {frozenset(e) for e in sub.edges()} == {frozenset(e) for e in ref.edges()}
    assert sizes == {12, 14, 16, 18, 20}


def test_community_small_resampled_communities_vary():
    graphs = community_small(40, seed=0, resample_communities=True)
    by_size = {}
    for g in graphs:
        h = g.number_of_nodes() // 2
        by_size.setdefault(h, set()).add(frozenset(frozenset(e) for e in g.subgraph(range(h)).edges()))
    assert any(len(v) > 1 for v in by_size.values())


def test_community_small_bad_arguments():
    with pytest.raises(TypeError, match="seed"):
        community_small(5, seed="zero")
    with pytest.raises(ValueError, match="num_graphs"):
        community_small(-1)
    with pytest.raises(ValueError, match="p_intra"):
        community_small(5, p_intra=1.5)


# ------------------------------------------------------------------ ego-small (Cora)

@pytest.fixture(scope="module")
def ego_cora():
    return ego_small("Cora")


def test_ego_small_from_cora(ego_cora):
    assert len(ego_cora) == 200
    for g in ego_cora:
        n = g.number_of_nodes()
        assert 4 <= n <= 18
        assert g.graph["center"] == 0
        assert set(g.neighbors(0)) == set(range(1, n))  # a radius-1 ego net around node 0
        assert nx.number_of_selfloops(g) == 0
        assert "built from Cora" in g.graph["dataset"] and "not the published CiteSeer" in g.graph["dataset"]
    centers = [g.graph["center_index"] for g in ego_cora]
    assert centers == sorted(centers) and len(set(centers)) == 200  # GDSS: first 200 centers in order


def test_ego_small_matches_networkx_ego_graph(ego_cora):
    from gnnkit.data import load_dataset
    data = load_dataset("Cora")[0]
    G = nx.Graph()
    G.add_nodes_from(range(data.num_nodes))
    G.add_edges_from(data.edge_index.t().tolist())
    lcc = nx.convert_node_labels_to_integers(G.subgraph(max(nx.connected_components(G), key=len)),
                                             ordering="sorted")
    for g in ego_cora[:20]:
        ref = nx.ego_graph(lcc, g.graph["center_index"], radius=1)
        assert nx.is_isomorphic(g, ref)
    # centers skipped before the last one picked are exactly those outside 4..18 nodes
    last = ego_cora[-1].graph["center_index"]
    picked = {g.graph["center_index"] for g in ego_cora}
    for i in range(last + 1):
        n = len(lcc[i]) + 1
        assert (i in picked) == (4 <= n <= 18)


def test_ego_small_shuffle_selection_is_seeded(ego_cora):
    a = ego_small("Cora", num_graphs=30, seed=1, selection="shuffle")
    b = ego_small("Cora", num_graphs=30, seed=1, selection="shuffle")
    c = ego_small("Cora", num_graphs=30, seed=2, selection="shuffle")
    assert edge_sets(a) == edge_sets(b)
    assert [g.graph["center_index"] for g in a] != [g.graph["center_index"] for g in c]
    assert edge_sets(ego_small("Cora", num_graphs=200, seed=5)) == edge_sets(ego_cora)  # "first" ignores seed


def test_ego_small_bad_arguments():
    with pytest.raises(ValueError, match="num_graphs"):
        ego_small("Cora", min_nodes=17, max_nodes=18, num_graphs=100000)
    with pytest.raises(ValueError, match="selection"):
        ego_small("Cora", selection="random")
    with pytest.raises(ValueError, match="min_nodes"):
        ego_small("Cora", min_nodes=10, max_nodes=5)


# ------------------------------------------------------------------ ENZYMES

@pytest.fixture(scope="module")
def enzymes_graphs():
    load_or_skip("ENZYMES")
    return enzymes()


def test_enzymes_gdss_filter(enzymes_graphs):
    assert len(load_or_skip("ENZYMES")) == 600  # before the filter
    assert len(enzymes_graphs) == 587  # GDSS data/ENZYMES.txt
    n = [g.number_of_nodes() for g in enzymes_graphs]
    assert min(n) >= 10 and max(n) == 125
    for g in enzymes_graphs:
        assert not list(nx.isolates(g))
        labels = nx.get_node_attributes(g, "label")
        assert len(labels) == g.number_of_nodes()
        assert set(labels.values()) <= {0, 1, 2}
        assert all(type(v) is int for v in labels.values())
        assert 0 <= g.graph["label"] <= 5


# ------------------------------------------------------------------ splits and registry

def test_split_like_gdss():
    graphs = community_small(seed=4)
    ds = load_generation_dataset("Community_Small", seed=4)
    assert isinstance(ds, GenerationDataset) and ds.name == "community-small"
    assert (len(ds.train), len(ds.test)) == (80, 20)
    assert edge_sets(ds.test) == edge_sets(graphs[:20]) and edge_sets(ds.train) == edge_sets(graphs[20:])
    assert not {id(g) for g in ds.train} & {id(g) for g in ds.test}
    assert ds.max_nodes == 20 and ds.num_node_labels == 0
    train, test = gdss_split(list(range(587)))
    assert (len(train), len(test), test[0], train[0]) == (470, 117, 0, 117)


def test_load_ego_small_metadata():
    ds = load_generation_dataset("EGO_SMALL")
    assert (len(ds.train), len(ds.test)) == (160, 40)
    assert "built from Cora" in ds.description and ds.info["base_graph"] == "Cora"
    assert ds.max_nodes <= 18
    assert not {id(g) for g in ds.train} & {id(g) for g in ds.test}


def test_load_enzymes(enzymes_graphs):
    ds = load_generation_dataset("enzymes")
    assert (len(ds.train), len(ds.test), ds.max_nodes, ds.num_node_labels) == (470, 117, 125, 3)


def test_unknown_name_lists_available():
    with pytest.raises(ValueError) as err:
        load_generation_dataset("grid")
    for name in generation_dataset_names():
        assert name in str(err.value)


# ------------------------------------------------------------------ PyG conversion

def test_to_pyg_round_trip():
    graphs = community_small(5, seed=0)
    datas = to_pyg(graphs)
    for g, d in zip(graphs, datas):
        assert d.edge_index.dtype == torch.int64 and d.num_nodes == g.number_of_nodes()
        assert d.edge_index.size(1) == 2 * g.number_of_edges()
        pairs = set(map(tuple, d.edge_index.t().tolist()))
        assert all((v, u) in pairs for u, v in pairs)  # both directions
        assert not hasattr(d, "node_label") or d.node_label is None
        back = from_pyg(d)
        assert edge_sets([back]) == edge_sets([g])


def test_to_pyg_labels_round_trip():
    g = nx.Graph(label=3)
    g.add_nodes_from([(0, {"label": 2}), (1, {"label": 0}), (2, {"label": 1}), (3, {"label": 1})])
    g.add_edges_from([(0, 1), (1, 2)])  # node 3 isolated
    d = to_pyg(g)
    assert d.node_label.dtype == torch.int64 and d.node_label.tolist() == [2, 0, 1, 1]
    assert d.y.tolist() == [3] and d.num_nodes == 4
    back = from_pyg(d)
    assert dict(back.nodes(data="label")) == {0: 2, 1: 0, 2: 1, 3: 1}
    assert back.graph["label"] == 3 and edge_sets([back]) == edge_sets([g])
    g.nodes[3].pop("label")
    with pytest.raises(ValueError, match="label"):
        to_pyg([g])


def test_to_pyg_enzymes(enzymes_graphs):
    g = enzymes_graphs[0]
    back = from_pyg(to_pyg([g])[0])
    assert edge_sets([back]) == edge_sets([g])
    assert dict(back.nodes(data="label")) == dict(g.nodes(data="label"))
