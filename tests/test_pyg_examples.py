"""PyG's own example scripts (tests/pyg_examples/: gcn.py, gat.py, mutag_gin.py of PyG 2.8, unchanged)
run at toy scale twice from the same seed: with PyG's layers and with gnnkit's (swapped in for
``torch_geometric.nn.GCNConv`` / ``GATConv`` / ``GINConv`` before the script imports them).  Both runs
must print the same per-epoch losses and accuracies.  PyG's heterogeneous examples need OGB-MAG or
DBLP, which are not available offline; ``tests/test_pyg_ecosystem.py`` runs ``to_hetero`` and
``HeteroConv`` models instead."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = Path(__file__).resolve().parent / "pyg_examples"
DATA = ROOT / "datasets"

RUNNER = """
import runpy, sys, warnings
import torch
warnings.filterwarnings("ignore")
torch.manual_seed(0)
if sys.argv[1] == "gnnkit":
    import torch_geometric.nn as pnn
    import gnnkit.nn as gnn
    for name in ("GCNConv", "GATConv", "GINConv"):
        setattr(pnn, name, getattr(gnn, name))
script = sys.argv[2]
sys.argv = [script] + sys.argv[3:]
runpy.run_path(script, run_name="__main__")
"""

CASES = {
    "gcn": (["--epochs", "5"], ("Planetoid", "planetoid", "Cora")),
    "gat": (["--epochs", "3"], ("Planetoid", "planetoid", "Cora")),
    "mutag_gin": (["--epochs", "2", "--batch_size", "64"], ("TU", "tu", "MUTAG")),
}


def _layout(tmp: Path, where) -> Path:
    """tmp/examples/ and tmp/data/<Kind>/<Name>/raw -> the bundled raw files (processed/ is written in tmp)."""
    kind, local, name = where
    raw = tmp / "data" / kind / name / "raw"
    raw.parent.mkdir(parents=True)
    raw.symlink_to(DATA / local / name / "raw", target_is_directory=True)
    (tmp / "examples").mkdir()
    return tmp / "examples"


def _run(tmp: Path, script: str, impl: str) -> list:
    args, where = CASES[script]
    ex = _layout(tmp / impl, where)
    (ex / f"{script}.py").write_text((EXAMPLES / f"{script}.py").read_text())
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
    res = subprocess.run([sys.executable, "-c", RUNNER, impl, str(ex / f"{script}.py"), *args], cwd=ex, env=env,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("Epoch")]
    assert len(lines) == int(args[1]), res.stdout
    return lines


def _numbers(line: str) -> list:
    return [float(v) for v in re.findall(r"[-+]?\d+\.\d+", line)]


@pytest.mark.parametrize("script", list(CASES))
def test_pyg_example_runs_the_same_with_gnnkit(script, tmp_path):
    pyg = _run(tmp_path, script, "pyg")
    ours = _run(tmp_path, script, "gnnkit")
    for a, b in zip(pyg, ours):
        assert _numbers(b) == pytest.approx(_numbers(a), abs=2e-3), (a, b)
