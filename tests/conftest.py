import contextlib
import os

# every gnnkit op checks, in the test suite, that no output aliases an input (gnnkit/ops/_custom_op.py); set
# before gnnkit is imported
os.environ.setdefault("GNNKIT_CHECK_OP_ALIASING", "1")

import pytest  # noqa: E402
import torch  # noqa: E402


def load_benchmark(script: str):
    """Import ``benchmarks/<script>.py`` as a module (the benchmarks folder is not a package)."""
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parent.parent / "benchmarks" / f"{script}.py"
    spec = importlib.util.spec_from_file_location(f"gnnkit_bench_{script}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def load_or_skip(name: str, **kw):
    """Load a dataset for a test.

    With ``GNNKIT_DATA`` set (as in CI) a missing dataset FAILS the test; without it,
    datasets that are not bundled are skipped.
    """
    from gnnkit.data import DatasetNotFoundError, load_dataset
    try:
        return load_dataset(name, **kw)
    except DatasetNotFoundError:
        if os.environ.get("GNNKIT_DATA"):
            raise
        pytest.skip(f"{name} not available: set GNNKIT_DATA to run this test")


def random_graph(num_nodes: int, num_edges: int, seed: int = 0, self_loops: bool = True,
                 duplicates: bool = True, hub: int = 0):
    """A random directed graph; optional hub node 0 with ``hub`` incoming edges."""
    g = torch.Generator().manual_seed(seed)
    ei = torch.randint(0, max(num_nodes, 1), (2, num_edges), generator=g)
    if not self_loops and num_edges:
        ei = ei[:, ei[0] != ei[1]]
    if duplicates and ei.size(1) > 2:
        ei = torch.cat([ei, ei[:, :2]], dim=1)
    if hub:
        src = torch.randint(0, num_nodes, (hub,), generator=g)
        ei = torch.cat([ei, torch.stack([src, torch.zeros_like(src)])], dim=1)
    return ei


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(12345)


@contextlib.contextmanager
def without_edge_list(layer_module: str, name: str):
    """Within: the layer module's edge-list path ``name`` (e.g. ``coo_gcn_sum`` in ``gnnkit.nn.gcn_conv``)
    declines, so a plain ``edge_index`` takes the CSR path (the reference of the edge-list tests)."""
    import sys
    mod = sys.modules[layer_module]
    real = getattr(mod, name)
    setattr(mod, name, lambda *a, **k: None)
    try:
        yield
    finally:
        setattr(mod, name, real)


def assert_all_close(got, want, dtype=torch.float32):
    """Pairwise ``assert_close`` of two equally long lists of tensors, at float32's or float64's rounding."""
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == torch.float64 else dict(rtol=1e-5, atol=1e-5)
    assert len(got) == len(want)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, **tol)
