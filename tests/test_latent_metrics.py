"""Tests for gnnkit.latent.metrics (graph-generation MMD, ORCA orbits, V/U/N)."""
from __future__ import annotations

import itertools
import math

import networkx as nx
import numpy as np
import pytest
from scipy.optimize import linprog
from scipy.stats import wasserstein_distance

from gnnkit.latent.metrics import (
    NUM_ORBITS,
    MMDResult,
    clustering_histogram,
    clustering_mmd,
    degree_histogram,
    degree_mmd,
    emd_1d,
    gaussian_emd_kernel,
    gaussian_kernel,
    gaussian_tv_kernel,
    generation_mmd,
    mmd2,
    node_orbit_counts,
    novelty,
    orbit_features,
    orbit_mmd,
    protocol_kernels,
    uniqueness,
    validity,
    vun,
)

PROTOCOLS = ("graphrnn", "gran")


def _random_graphs(seed: int, k: int, n_lo: int = 8, n_hi: int = 25, p: float = 0.25):
    rng = np.random.default_rng(seed)
    return [nx.gnp_random_graph(int(rng.integers(n_lo, n_hi)), p, seed=int(rng.integers(2**31)))
            for _ in range(k)]


def _paw() -> nx.Graph:
    # triangle 0-1-2, tail 2-3
    return nx.Graph([(0, 1), (1, 2), (0, 2), (2, 3)])


def _diamond() -> nx.Graph:
    # K4 minus edge (0, 3): 0 and 3 have degree 2, 1 and 2 degree 3
    return nx.Graph([(0, 1), (0, 2), (1, 2), (1, 3), (2, 3)])


# --------------------------------------------------------------------------------------
# Reference formulas, transcribed literally (GDSS evaluation/mmd.py, GRAN utils/dist_helper.py),
# with pyemd.emd replaced by an explicit transport LP over the same distance matrix.
# --------------------------------------------------------------------------------------
def _toeplitz_range(n):
    r = np.arange(n, dtype=float)
    return np.abs(r[:, None] - r[None, :])  # scipy.linalg.toeplitz(range(n))


def _process_tensor(x, y):
    support_size = max(len(x), len(y))
    if len(x) < len(y):
        x = np.hstack((x, [0.0] * (support_size - len(x))))
    elif len(y) < len(x):
        y = np.hstack((y, [0.0] * (support_size - len(y))))
    return x, y


_LP_CACHE: dict = {}


def _lp_emd(x, y, distance_mat):
    """min Σ f_ij D_ij s.t. Σ_j f_ij = x_i, Σ_i f_ij = y_j, f >= 0 (what pyemd.emd solves)."""
    key = tuple(sorted((x.tobytes(), y.tobytes()))) + (distance_mat.tobytes(),)  # EMD is symmetric
    if key not in _LP_CACHE:
        _LP_CACHE[key] = _lp_emd_uncached(x, y, distance_mat)
    return _LP_CACHE[key]


def _lp_emd_uncached(x, y, distance_mat):
    n = len(x)
    a_eq = np.zeros((2 * n, n * n))
    for i in range(n):
        a_eq[i, i * n:(i + 1) * n] = 1.0
        a_eq[n + i, i::n] = 1.0
    y = y * (x.sum() / y.sum())  # remove float-rounding mass mismatch
    res = linprog(distance_mat.ravel(), A_eq=a_eq, b_eq=np.concatenate([x, y]), bounds=(0, None),
                  method="highs")
    assert res.success
    return res.fun


def _ref_emd(x, y, distance_scaling=1.0):
    x = x.astype(float)
    y = y.astype(float)
    support_size = max(len(x), len(y))
    d_mat = _toeplitz_range(support_size)
    distance_mat = d_mat / distance_scaling
    x, y = _process_tensor(x, y)
    return np.abs(_lp_emd(x, y, distance_mat))


def _ref_gaussian_emd(x, y, sigma=1.0, distance_scaling=1.0):
    emd_value = _ref_emd(x, y, distance_scaling)
    return np.exp(-emd_value * emd_value / (2 * sigma * sigma))


def _ref_gaussian(x, y, sigma=1.0):
    x = x.astype(float)
    y = y.astype(float)
    x, y = _process_tensor(x, y)
    dist = np.linalg.norm(x - y, 2)
    return np.exp(-dist * dist / (2 * sigma * sigma))


def _ref_gaussian_tv(x, y, sigma=1.0):
    x = x.astype(float)
    y = y.astype(float)
    x, y = _process_tensor(x, y)
    dist = np.abs(x - y).sum() / 2.0
    return np.exp(-dist * dist / (2 * sigma * sigma))


def _ref_disc(samples1, samples2, kernel, **kwargs):
    d = 0
    for s1 in samples1:
        for s2 in samples2:
            d += kernel(s1, s2, **kwargs)
    d /= len(samples1) * len(samples2)
    return d


def _ref_compute_mmd(samples1, samples2, kernel, is_hist=True, **kwargs):
    if is_hist:
        samples1 = [s1 / np.sum(s1) for s1 in samples1]
        samples2 = [s2 / np.sum(s2) for s2 in samples2]
    return _ref_disc(samples1, samples1, kernel, **kwargs) + \
        _ref_disc(samples2, samples2, kernel, **kwargs) - \
        2 * _ref_disc(samples1, samples2, kernel, **kwargs)


def _ref_degree_hist(g):
    return np.array(nx.degree_histogram(g))


def _ref_clustering_hist(g, bins=100):
    hist, _ = np.histogram(list(nx.clustering(g).values()), bins=bins, range=(0.0, 1.0), density=False)
    return hist


# --------------------------------------------------------------------------------------
# MMD
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_mmd_of_a_set_against_itself_is_zero(protocol):
    graphs = _random_graphs(0, 12)
    res = generation_mmd(graphs, graphs, protocol=protocol)
    for m in ("degree", "clustering", "orbit"):
        assert abs(res[m]) < 1e-12
    shuffled = graphs[::-1]
    res = generation_mmd(graphs, shuffled, protocol=protocol)
    for m in ("degree", "clustering", "orbit"):
        assert abs(res[m]) < 1e-12


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_degree_mmd_grows_as_more_graphs_get_random_edges(protocol):
    rng = np.random.default_rng(7)
    reference = [nx.cycle_graph(16) for _ in range(12)]
    perturbed = []
    for g in reference:
        h = g.copy()
        while h.number_of_edges() < g.number_of_edges() + 6:
            u, v = rng.choice(16, size=2, replace=False)
            h.add_edge(int(u), int(v))
        perturbed.append(h)
    values = []
    for k in range(0, 13, 2):
        generated = perturbed[:k] + reference[k:]
        values.append(degree_mmd(reference, generated, protocol=protocol).value)
    assert abs(values[0]) < 1e-12
    assert all(b > a for a, b in zip(values, values[1:])), values


def test_mmd_closed_form_for_two_point_sets():
    # Reference: m copies of a; generated: fraction f = k/m replaced by b with k(a,b) = kappa.
    # MMD² = 1 + [(1-f)² + f² + 2f(1-f)kappa] - 2[(1-f) + f kappa] = 2 f² (1 - kappa).
    a, b = nx.cycle_graph(6), nx.star_graph(5)  # degree pmfs: e_2 and (5/6 e_1 + 1/6 e_5)
    # EMD: mass 5/6 moves 1 bin, 1/6 moves 3 bins -> 5/6 + 3/6 = 4/3
    kappa = math.exp(-(4 / 3) ** 2 / 2)
    for k in range(0, 11):
        got = degree_mmd([a] * 10, [b] * k + [a] * (10 - k), protocol="graphrnn").value
        f = k / 10
        assert got == pytest.approx(2 * f * f * (1 - kappa), abs=1e-12)


def test_hand_worked_degree_mmd_both_protocols():
    # reference = {K2, K4}, generated = {K3}; degree pmfs padded to length 4:
    #   K2: a = [0, 1, 0, 0]   K4: b = [0, 0, 0, 1]   K3: c = [0, 0, 1, 0]
    # graphrnn (Gaussian-EMD, sigma = 1, unit ground distance):
    #   EMD(a, b) = 2 (mass 1 moves bins 1 -> 3), EMD(a, c) = 1, EMD(b, c) = 1
    #   mean K_XX = (1 + 1 + 2 e^{-2²/2}) / 4 = (1 + e^{-2}) / 2
    #   mean K_YY = 1
    #   mean K_XY = (e^{-1/2} + e^{-1/2}) / 2 = e^{-1/2}
    #   MMD² = (1 + e^{-2}) / 2 + 1 - 2 e^{-1/2}
    ref, gen = [nx.complete_graph(2), nx.complete_graph(4)], [nx.complete_graph(3)]
    expected_graphrnn = (1 + math.exp(-2)) / 2 + 1 - 2 * math.exp(-0.5)
    assert degree_mmd(ref, gen, "graphrnn").value == pytest.approx(expected_graphrnn, abs=1e-14)
    # gran (Gaussian-TV, sigma = 1): TV(a, b) = TV(a, c) = TV(b, c) = ½(1 + 1) = 1
    #   mean K_XX = (1 + 1 + 2 e^{-1/2}) / 4,  K_YY = 1,  K_XY = e^{-1/2}
    #   MMD² = (1 + e^{-1/2}) / 2 + 1 - 2 e^{-1/2} = 3/2 - (3/2) e^{-1/2}
    expected_gran = 1.5 - 1.5 * math.exp(-0.5)
    assert degree_mmd(ref, gen, "gran").value == pytest.approx(expected_gran, abs=1e-14)


def test_hand_worked_clustering_and_orbit_mmd():
    tri, path = [nx.complete_graph(3)], [nx.path_graph(3)]
    # Clustering: every node of K3 has c = 1 -> last bin (index 99, [0.99, 1] is closed);
    # every node of P3 has c = 0 -> bin 0.
    # graphrnn: EMD = 99 bins * (1/100 per bin) = 0.99, sigma = 0.1:
    #   MMD² = 1 + 1 - 2 exp(-0.99² / (2 * 0.01)) = 2 - 2 exp(-49.005)
    assert clustering_mmd(tri, path, "graphrnn").value == pytest.approx(2 - 2 * math.exp(-49.005), abs=1e-14)
    # gran: TV = 1, sigma = 0.1: MMD² = 2 - 2 exp(-1 / 0.02) = 2 - 2 e^{-50}
    assert clustering_mmd(tri, path, "gran").value == pytest.approx(2 - 2 * math.exp(-50), abs=1e-14)
    # Orbit features (sum over nodes / n):
    #   K3: every node has orbit 0 = 2, orbit 3 = 1           -> [2, 0, 0, 1, 0, ...]
    #   P3: ends [1, 1, 0, 0], middle [2, 0, 1, 0], sum / 3     -> [4/3, 2/3, 1/3, 0, ...]
    #   difference [2/3, -2/3, -1/3, 1]: squared L2 = 4/9 + 4/9 + 1/9 + 1 = 2; L1 = 8/3
    # graphrnn: Gaussian on L2, sigma = 30: MMD² = 2 - 2 exp(-2 / 1800)
    assert orbit_mmd(tri, path, "graphrnn").value == pytest.approx(2 - 2 * math.exp(-2 / 1800), abs=1e-14)
    # gran: TV = ½ * 8/3 = 4/3, sigma = 30: MMD² = 2 - 2 exp(-(16/9) / 1800)
    assert orbit_mmd(tri, path, "gran").value == pytest.approx(2 - 2 * math.exp(-(16 / 9) / 1800), abs=1e-14)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_matches_literal_reference_transcription(protocol):
    ref = _random_graphs(1, 5, 5, 14, 0.3)
    gen = _random_graphs(2, 4, 5, 14, 0.45) + [nx.barabasi_albert_graph(12, 2, seed=3)]
    deg = ([_ref_degree_hist(g) for g in ref], [_ref_degree_hist(g) for g in gen])
    clu = ([_ref_clustering_hist(g) for g in ref], [_ref_clustering_hist(g) for g in gen])
    orb = (np.array([orbit_features(g) for g in ref]), np.array([orbit_features(g) for g in gen]))
    if protocol == "graphrnn":  # GDSS load_eval_settings: gaussian_emd, gaussian_emd, gaussian
        expected = {
            "degree": _ref_compute_mmd(*deg, kernel=_ref_gaussian_emd),
            "clustering": _ref_compute_mmd(*clu, kernel=_ref_gaussian_emd, sigma=1.0 / 10, distance_scaling=100),
            "orbit": _ref_compute_mmd(*orb, kernel=_ref_gaussian, is_hist=False, sigma=30.0),
        }
    else:  # GRAN eval_helper: gaussian_tv everywhere
        expected = {
            "degree": _ref_compute_mmd(*deg, kernel=_ref_gaussian_tv),
            "clustering": _ref_compute_mmd(*clu, kernel=_ref_gaussian_tv, sigma=1.0 / 10),
            "orbit": _ref_compute_mmd(*orb, kernel=_ref_gaussian_tv, is_hist=False, sigma=30.0),
        }
    got = generation_mmd(ref, gen, protocol=protocol)
    assert got["protocol"] == protocol
    for m, v in expected.items():
        assert got[m] == pytest.approx(v, abs=1e-9), m


def test_emd_closed_form_equals_transport_lp_and_scipy():
    rng = np.random.default_rng(3)
    for _ in range(25):
        lx, ly = rng.integers(1, 12, size=2)
        x = rng.random(lx) * (rng.random(lx) < 0.7) + 1e-3 * (np.arange(lx) == 0)
        y = rng.random(ly) * (rng.random(ly) < 0.7) + 1e-3 * (np.arange(ly) == 0)
        x, y = x / x.sum(), y / y.sum()
        for scaling in (1.0, 100.0):
            lp = _ref_emd(x, y, scaling)
            assert emd_1d(x, y, scaling) == pytest.approx(lp, abs=1e-9)
            ws = wasserstein_distance(np.arange(lx), np.arange(ly), x, y) / scaling
            assert emd_1d(x, y, scaling) == pytest.approx(ws, abs=1e-12)
            assert gaussian_emd_kernel(x, y, 0.1, scaling) == pytest.approx(
                _ref_gaussian_emd(x, y, 0.1, scaling), abs=1e-9)
        assert gaussian_tv_kernel(x, y, 1.0) == pytest.approx(_ref_gaussian_tv(x, y, 1.0), abs=1e-15)
        assert gaussian_kernel(x, y, 2.0) == pytest.approx(_ref_gaussian(x, y, 2.0), abs=1e-15)


def test_both_protocols_named_in_every_output():
    ref, gen = _random_graphs(4, 4), _random_graphs(5, 4)
    for p in PROTOCOLS:
        res = generation_mmd(ref, gen, protocol=p, metrics=("degree", "orbit"))
        assert res["protocol"] == p
        assert set(res) == {"protocol", "degree", "orbit", "num_reference", "num_generated",
                            "num_generated_empty"}
        for fn in (degree_mmd, clustering_mmd, orbit_mmd):
            r = fn(ref, gen, protocol=p)
            assert isinstance(r, MMDResult) and r.protocol == p
            assert float(r) == r.value >= 0
    specs = protocol_kernels("graphrnn")
    deg = specs["degree"]
    assert (deg.kernel, deg.sigma, deg.distance_scaling) == ("gaussian_emd", 1.0, 1.0)
    assert (specs["clustering"].kernel, specs["clustering"].sigma, specs["clustering"].distance_scaling) == (
        "gaussian_emd", 0.1, 100.0)
    assert (specs["orbit"].kernel, specs["orbit"].sigma, specs["orbit"].is_hist) == ("gaussian", 30.0, False)
    assert {k: (s.kernel, s.sigma) for k, s in protocol_kernels("gran").items()} == {
        "degree": ("gaussian_tv", 1.0), "clustering": ("gaussian_tv", 0.1), "orbit": ("gaussian_tv", 30.0)}


def test_empty_generated_graphs_are_dropped_and_counted():
    ref, gen = _random_graphs(6, 5), _random_graphs(7, 5)
    a = generation_mmd(ref, gen)
    b = generation_mmd(ref, gen + [nx.Graph()])
    assert b["num_generated_empty"] == 1 and b["num_generated"] == 5
    for m in ("degree", "clustering", "orbit"):
        assert a[m] == b[m]


def test_pyg_data_input_matches_networkx():
    from torch_geometric.utils import from_networkx

    ref, gen = _random_graphs(8, 4), _random_graphs(9, 4)
    a = generation_mmd(ref, gen, protocol="gran")
    b = generation_mmd([from_networkx(g) for g in ref], [from_networkx(g) for g in gen], protocol="gran")
    for m in ("degree", "clustering", "orbit"):
        assert a[m] == pytest.approx(b[m], abs=1e-14)


def test_mmd2_generic_matches_transcription():
    rng = np.random.default_rng(11)
    s1 = [rng.integers(0, 5, size=int(rng.integers(2, 9))) + 1 for _ in range(5)]
    s2 = [rng.integers(0, 5, size=int(rng.integers(2, 9))) + 1 for _ in range(4)]
    assert mmd2(s1, s2, "gaussian_emd", 1.0) == pytest.approx(
        _ref_compute_mmd(s1, s2, _ref_gaussian_emd), abs=1e-9)
    assert mmd2(s1, s2, "gaussian_tv", 0.5) == pytest.approx(
        _ref_compute_mmd(s1, s2, _ref_gaussian_tv, sigma=0.5), abs=1e-14)


# --------------------------------------------------------------------------------------
# Per-graph statistics
# --------------------------------------------------------------------------------------
def test_degree_and_clustering_statistics_equal_networkx():
    for g in _random_graphs(12, 6) + [_paw(), nx.complete_graph(3), nx.path_graph(3)]:
        np.testing.assert_array_equal(degree_histogram(g), nx.degree_histogram(g))
        c = np.array(list(nx.clustering(g).values()))
        expected = np.array([np.sum((c >= i / 100) & (c < (i + 1) / 100)) for i in range(100)])
        expected[99] += np.sum(c == 1.0)  # numpy's last bin is closed
        np.testing.assert_array_equal(clustering_histogram(g), expected)
        assert clustering_histogram(g).sum() == g.number_of_nodes()
    # paw: nodes 0, 1 have c = 1, hub has 1/3, tail 0 -> bins 99, 99, 33, 0
    h = clustering_histogram(_paw())
    assert (h[0], h[33], h[99], h.sum()) == (1, 1, 2, 4)


# Hand-worked ORCA node orbits (columns 0..14); numbering of Hočevar & Demšar (2014).
_O = NUM_ORBITS


def _row(**kw):
    r = [0] * _O
    for k, v in kw.items():
        r[int(k[1:])] = v
    return r


HAND_ORBITS = {
    # P3 0-1-2: ends are on 1 edge and end of one 3-path; middle on 2 edges, middle of one 3-path
    "path3": (nx.path_graph(3), [_row(o0=1, o1=1), _row(o0=2, o2=1), _row(o0=1, o1=1)]),
    # P4 0-1-2-3: end = end of 4-path (o4) and of 3-path 0-1-2; inner = inner (o5),
    # middle of one 3-path and end of the other
    "path4": (nx.path_graph(4), [_row(o0=1, o1=1, o4=1), _row(o0=2, o1=1, o2=1, o5=1),
                                 _row(o0=2, o1=1, o2=1, o5=1), _row(o0=1, o1=1, o4=1)]),
    # star with centre 0 and leaves 1..3: centre in C(3,2) = 3 3-paths as middle, star centre o7;
    # each leaf: end of 2 3-paths, star leaf o6
    "star": (nx.star_graph(3), [_row(o0=3, o2=3, o7=1)] + [_row(o0=1, o1=2, o6=1)] * 3),
    "triangle": (nx.complete_graph(3), [_row(o0=2, o3=1)] * 3),
    # C4: each node ends two induced 3-paths, middles one, and sits on the 4-cycle (o8)
    "cycle4": (nx.cycle_graph(4), [_row(o0=2, o1=2, o2=1, o8=1)] * 4),
    # K4: every 3-set is a triangle (3 per node), the 4-set is K4 (o14)
    "k4": (nx.complete_graph(4), [_row(o0=3, o3=3, o14=1)] * 4),
    # paw = tailed triangle 0-1-2 + tail 2-3. 3-sets: {0,1,2} triangle, {0,2,3} path centre 2,
    # {1,2,3} path centre 2, {0,1,3} disconnected.
    # 0, 1: triangle (o3), end of one path (o1), degree-2 triangle node of the paw (o10)
    # 2: middle of two paths (o2), triangle, paw hub (o11); 3: end of two paths, tail tip (o9)
    "paw": (_paw(), [_row(o0=2, o1=1, o3=1, o10=1), _row(o0=2, o1=1, o3=1, o10=1),
                     _row(o0=3, o2=2, o3=1, o11=1), _row(o0=1, o1=2, o9=1)]),
    # diamond: 3-sets {0,1,2}, {1,2,3} triangles; {0,1,3} path centre 1; {0,2,3} path centre 2.
    # 0, 3 (degree 2): one triangle, end of two paths, o12; 1, 2 (degree 3): two triangles,
    # middle of one path, o13
    "diamond": (_diamond(), [_row(o0=2, o1=2, o3=1, o12=1), _row(o0=3, o2=1, o3=2, o13=1),
                             _row(o0=3, o2=1, o3=2, o13=1), _row(o0=2, o1=2, o3=1, o12=1)]),
}


@pytest.mark.parametrize("name", sorted(HAND_ORBITS))
def test_orbit_counts_hand_worked(name):
    g, expected = HAND_ORBITS[name]
    np.testing.assert_array_equal(node_orbit_counts(g), np.array(expected))


def _brute_force_orbits(g: nx.Graph) -> np.ndarray:
    """Enumerate every connected induced 2-4 node subgraph and read off each node's orbit."""
    nodes = list(g.nodes())
    pos = {u: i for i, u in enumerate(nodes)}
    out = np.zeros((len(nodes), _O), dtype=np.int64)
    for k in (2, 3, 4):
        for s in itertools.combinations(nodes, k):
            h = g.subgraph(s)
            if not nx.is_connected(h):
                continue
            m = h.number_of_edges()
            degs = sorted(d for _, d in h.degree())
            for v in s:
                d = h.degree(v)
                if k == 2:
                    o = 0
                elif k == 3:
                    o = 3 if m == 3 else (1 if d == 1 else 2)
                elif m == 3:
                    o = (4 if d == 1 else 5) if degs == [1, 1, 2, 2] else (6 if d == 1 else 7)
                elif m == 4:
                    o = 8 if degs == [2, 2, 2, 2] else {1: 9, 2: 10, 3: 11}[d]
                elif m == 5:
                    o = 12 if d == 2 else 13
                else:
                    o = 14
                out[pos[v], o] += 1
    return out


def test_orbit_counts_equal_brute_force_enumeration():
    rng = np.random.default_rng(5)
    for _ in range(12):
        n = int(rng.integers(4, 10))
        g = nx.gnp_random_graph(n, float(rng.uniform(0.2, 0.9)), seed=int(rng.integers(2**31)))
        perm = rng.permutation(n)
        g = nx.relabel_nodes(g, {u: f"v{perm[u]}" for u in g})  # non-integer labels
        h = nx.Graph()
        h.add_nodes_from(sorted(g.nodes(), key=lambda u: -int(u[1:])))  # scrambled node order
        h.add_edges_from(g.edges())
        g = h
        np.testing.assert_array_equal(node_orbit_counts(g), _brute_force_orbits(g))


def test_orbit_counts_basic_identities():
    g = nx.barabasi_albert_graph(40, 3, seed=2)
    oc = node_orbit_counts(g)
    np.testing.assert_array_equal(oc[:, 0], [d for _, d in g.degree()])
    np.testing.assert_array_equal(oc[:, 3], list(nx.triangles(g).values()))
    assert oc.shape == (40, 15) and oc.dtype == np.int64
    np.testing.assert_allclose(orbit_features(g), oc.sum(0) / 40)
    assert node_orbit_counts(nx.empty_graph(3)).sum() == 0


# --------------------------------------------------------------------------------------
# Validity / uniqueness / novelty
# --------------------------------------------------------------------------------------
def test_validity_uniqueness_novelty():
    c4 = nx.cycle_graph(4)
    c4_relabelled = nx.relabel_nodes(c4, {0: "a", 1: "c", 2: "b", 3: "d"})
    p4, k3 = nx.path_graph(4), nx.complete_graph(3)
    disconnected = nx.Graph([(0, 1), (2, 3)])
    gen = [c4, c4_relabelled, p4, k3, disconnected]
    assert uniqueness(gen) == pytest.approx(4 / 5)
    assert novelty(gen, [p4, nx.star_graph(3)]) == pytest.approx(4 / 5)
    assert validity(gen) == pytest.approx(4 / 5)
    assert validity(gen, is_valid=lambda g: g.number_of_edges() == 4) == pytest.approx(2 / 5)
    assert validity([nx.Graph()]) == 0.0
    r = vun(gen, [p4])
    # valid & unique & novel: c4 (first copy) and k3
    assert r == pytest.approx({"validity": 0.8, "uniqueness": 0.8, "novelty": 0.8, "valid_unique_novel": 0.4})


def test_uniqueness_respects_node_labels():
    a = nx.path_graph(3)
    nx.set_node_attributes(a, {0: "C", 1: "O", 2: "C"}, "atom")
    b = nx.path_graph(3)
    nx.set_node_attributes(b, {0: "O", 1: "C", 2: "C"}, "atom")
    assert uniqueness([a, b]) == 0.5
    assert uniqueness([a, b], node_attr="atom") == 1.0
    assert novelty([b], [a], node_attr="atom") == 1.0
    assert novelty([b], [a]) == 0.0


# --------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------
def test_bad_input_raises_value_error_naming_argument_and_fix():
    g = [nx.path_graph(4)]
    with pytest.raises(ValueError, match=r"reference is empty.*fix"):
        generation_mmd([], g)
    with pytest.raises(ValueError, match=r"generated is empty.*fix"):
        degree_mmd(g, [])
    with pytest.raises(ValueError, match=r"generated\[1\].*not a graph.*fix"):
        generation_mmd(g, [nx.path_graph(3), np.eye(3)])
    with pytest.raises(ValueError, match=r"reference must be a list.*fix"):
        generation_mmd(nx.path_graph(4), g)
    with pytest.raises(ValueError, match=r"protocol='graphrn'.*fix"):
        generation_mmd(g, g, protocol="graphrn")
    with pytest.raises(ValueError, match=r"protocol.*fix"):
        orbit_mmd(g, g, protocol="GRAN")
    with pytest.raises(ValueError, match=r"metrics.*'spectral'.*fix"):
        generation_mmd(g, g, metrics=("degree", "spectral"))
    with pytest.raises(ValueError, match=r"metrics.*single string.*fix"):
        generation_mmd(g, g, metrics="degree")
    with pytest.raises(ValueError, match=r"generated\[0\].*directed.*fix"):
        generation_mmd(g, [nx.DiGraph([(0, 1)])])
    with pytest.raises(ValueError, match=r"reference\[0\].*self-loops.*fix"):
        generation_mmd([nx.Graph([(0, 0), (0, 1)])], g)
    with pytest.raises(ValueError, match=r"reference\[0\] has no nodes.*fix"):
        generation_mmd([nx.Graph()], g)
    with pytest.raises(ValueError, match=r"generated holds only graphs with no nodes.*fix"):
        generation_mmd(g, [nx.Graph()])
    with pytest.raises(ValueError, match=r"bins"):
        clustering_mmd(g, g, bins=0)
    with pytest.raises(ValueError, match=r"train is empty"):
        novelty(g, [])
    with pytest.raises(ValueError, match=r"is_valid"):
        validity(g, is_valid="connected")


def test_non_symmetric_pyg_data_is_rejected():
    import torch
    from torch_geometric.data import Data

    d = Data(edge_index=torch.tensor([[0, 1], [1, 2]]), num_nodes=3)
    with pytest.raises(ValueError, match=r"generated\[0\].*not symmetric.*to_undirected"):
        degree_mmd([nx.path_graph(3)], [d])


def test_pyg_batches_subclasses_and_missing_labels():
    """Review finding: a PyG Batch (its class lives in module 'abc') and any Data subclass were refused as 'not
    a graph'; uniqueness with node_attr on unlabelled graphs raised a bare KeyError; a Data without edge_index an
    AttributeError."""
    import torch
    from torch_geometric.data import Batch, Data
    from torch_geometric.utils import from_networkx

    class MyData(Data):
        pass

    graphs = [from_networkx(nx.path_graph(4)), from_networkx(nx.cycle_graph(5)), from_networkx(nx.star_graph(3))]
    ref = [nx.path_graph(4), nx.cycle_graph(5), nx.star_graph(3)]
    batch = Batch.from_data_list(graphs)
    want = degree_mmd(ref, graphs).value
    assert degree_mmd(ref, batch).value == want  # a Batch is its graphs
    assert degree_mmd(ref, [MyData(edge_index=g.edge_index, num_nodes=g.num_nodes) for g in graphs]).value == want
    with pytest.raises(ValueError, match=r"generated\[0\] is a Batch of 3 graphs; fix: pass batch.to_data_list"):
        uniqueness([batch])
    with pytest.raises(ValueError, match="without the attribute 'label'.*node_attr=None"):
        uniqueness([nx.path_graph(3)], node_attr="label")
    with pytest.raises(ValueError, match="without edge_index"):
        degree_mmd(ref, [Data(num_nodes=3)])
    labelled = Data(edge_index=torch.tensor([[0, 1], [1, 0]]), num_nodes=2, label=torch.tensor([0, 1]))
    assert uniqueness([labelled, labelled], node_attr="label") == 0.5


def test_emd_of_histograms_with_different_masses_is_refused():
    """Review finding: the closed form is exact for equal masses only; pyemd adds a mass penalty otherwise
    (15.389 vs 7.210 on one pair), so unequal masses were a silently different number."""
    from gnnkit.latent.metrics import emd_1d
    with pytest.raises(ValueError, match="different masses.*normalise both to sum 1"):
        emd_1d(np.array([2.43, 0.573, 2.332, 1.727]), np.array([0.613, 0.624, 0.47, 0.242]))
    assert emd_1d(np.array([0.5, 0.5]), np.array([1.0, 0.0])) == pytest.approx(0.5)
