"""Writing sampled graphs: one edge list (``u v`` a line) and one ``.pt`` file per graph (the PyG ``Data``:
``torch.load(path, weights_only=False)``, or plain ``torch.load(path)`` once :mod:`gnnkit.latent` is imported,
which adds PyG's ``Data`` classes to torch's safe globals), a PNG grid of drawings and a JSON manifest — every file
written whole or not at all (temporary file + rename)."""
from __future__ import annotations

import hashlib
import io
import json
import math
import re
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import torch
from torch_geometric.data import Data

from gnnkit._atomic import atomic_write, digest_path, write_figure_atomic, write_json_verified

from ._common import check_undirected

_WHY = "the files keep the pairs u < v"


def allow_data_loading() -> None:
    """Let ``torch.load``'s default (``weights_only=True``) read PyG ``Data`` objects, as the sample files hold:
    PyG's ``Data`` and its storage classes join torch's safe globals (done when :mod:`gnnkit.latent` is
    imported; the classes hold tensors and plain values only)."""
    from torch_geometric.data import Data
    from torch_geometric.data.data import DataEdgeAttr, DataTensorAttr
    from torch_geometric.data.storage import GlobalStorage
    torch.serialization.add_safe_globals([Data, DataEdgeAttr, DataTensorAttr, GlobalStorage])



def edge_list_text(graph: Data) -> str:
    """``u v`` lines, one per undirected edge (``u < v``), preceded by a ``# nodes N`` comment so that
    isolated nodes survive the round trip."""
    check_undirected(graph.edge_index, int(graph.num_nodes), "edge_list_text", _WHY)
    ei = graph.edge_index
    keep = ei[0] < ei[1]
    lines = [f"# nodes {int(graph.num_nodes)}"]
    lines += [f"{u} {v}" for u, v in ei[:, keep].t().tolist()]
    return "\n".join(lines) + "\n"


def read_edge_list(path: Union[str, Path]) -> Data:
    """Inverse of :func:`edge_list_text` (both directions in ``edge_index``)."""
    n, pairs = None, []
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if line.startswith("# nodes"):
            n = int(line.split()[2])
        elif line and not line.startswith("#"):
            u, v = line.split()
            pairs.append((int(u), int(v)))
    ei = torch.tensor(pairs, dtype=torch.long).t() if pairs else torch.zeros(2, 0, dtype=torch.long)
    if n is None:
        n = int(ei.max()) + 1 if pairs else 0
    return Data(edge_index=torch.cat([ei, ei.flip(0)], 1), num_nodes=n)


def draw_grid(graphs: Sequence[Data], path: Union[str, Path], title: Optional[str] = None, max_graphs: int = 16,
              seed: int = 0) -> None:
    """A PNG grid of up to ``max_graphs`` drawings (spring layout, fixed ``seed``), written atomically."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import networkx as nx
    shown = list(graphs)[:max_graphs]
    cols = max(1, math.ceil(math.sqrt(len(shown))))
    rows = max(1, math.ceil(len(shown) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.4 * cols, 2.4 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, g in zip(axes.flat, shown):
        G = nx.Graph()
        G.add_nodes_from(range(int(g.num_nodes)))
        G.add_edges_from(g.edge_index.t().tolist())
        labels = getattr(g, "node_label", None)
        style = dict(node_color=labels.tolist(), cmap="tab10", vmin=0, vmax=9) if labels is not None \
            else dict(node_color="tab:blue")
        nx.draw_networkx(G, pos=nx.spring_layout(G, seed=seed), ax=ax, node_size=30, with_labels=False,
                         width=0.7, **style)
        ax.set_title(f"{G.number_of_nodes()} nodes, {G.number_of_edges()} edges", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    write_figure_atomic(fig, path, dpi=110)


def earlier_draw(out_dir: Union[str, Path]) -> List[str]:
    """The files an earlier draw wrote into ``out_dir`` (its ``samples.json``), which a new draw may replace or
    remove; [] for a new or empty folder.  A folder holding other files and no ``samples.json`` is refused."""
    out = Path(out_dir)
    if not (out.is_dir() and any(out.iterdir())):
        return []
    state = _pending_list(out)
    pending = _pending(out, state)  # the files of a draw killed before its samples.json
    if state[0] is not None and not (out / "samples.json").exists():
        # a draw began here and was killed before its samples.json, maybe before any graph file: the folder
        # was new or empty then (a folder with an earlier draw keeps that draw's samples.json until replaced)
        return pending
    try:
        return [str(f) for f in json.loads((out / "samples.json").read_text())["files"]] + pending
    except (OSError, ValueError, KeyError, TypeError):
        raise ValueError(f"{out} (the samples folder, --out) holds files but no samples.json of an earlier draw: "
                         "writing graph_*.txt/.pt there could replace files that are not gnnkit's; fix: a new or "
                         "empty folder") from None


_SAMPLE_FILE = re.compile(r"graph_\d+\.(txt|pt)")
_PENDING = ".draw-in-progress.json"  # the names a draw is about to write; gone once its samples.json is


def _pending_list(out: Path) -> Tuple[Optional[int], List[str], List[str]]:
    """``(since, names, stale)`` of the in-progress list: the time the first unfinished draw began, every name
    the unfinished draws were about to write, and the graph files of the draw they replace that they were to
    remove; ``(None, [], [])`` without one."""
    try:
        d = json.loads((out / _PENDING).read_text())
        since = d["since"]  # None: the list's own time (the file clock the graph files are stamped by)
        return (int((out / _PENDING).stat().st_mtime_ns if since is None else since), [str(f) for f in d["files"]],
                [str(f) for f in d.get("stale", [])])
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None, [], []


def _pending(out: Path, state: Tuple[Optional[int], List[str], List[str]]) -> List[str]:
    """From the in-progress list ``state`` (:func:`_pending_list`): the names killed draws were about to write
    that they did write (not older than the first of those draws: a user's own file of such a name, untouched
    by them, stays), and the earlier draw's graph files they were to remove."""
    since, names, stale = state  # _pending_list(out)
    # an earlier draw's graph files (listed by its samples.json) are gnnkit's whatever their time, also those of
    # the names a killed draw was about to write but had not reached
    written = [f for f in names if (out / f).is_file() and (out / f).stat().st_mtime_ns >= since]
    return written + [f for f in stale if _SAMPLE_FILE.fullmatch(f) and (out / f).is_file() and f not in written]


def write_samples(graphs: Sequence[Data], out_dir: Union[str, Path], manifest: dict,
                  title: Optional[str] = None) -> List[Path]:
    """``graph_000.txt`` / ``graph_000.pt`` … per graph, ``graphs.png`` and ``samples.json`` (last, so a
    folder with a manifest is complete; it holds every file's SHA-256, checked by ``gnnkit verify``)
    in ``out_dir``; then the ``graph_*`` files of an earlier, larger draw into the same folder (those its
    ``samples.json`` lists) go.  A non-empty folder without an earlier draw's ``samples.json`` is refused.
    Returns the paths written."""
    for i, g in enumerate(graphs):  # before anything is written
        check_undirected(g.edge_index, int(g.num_nodes), f"write_samples: graph {i}", _WHY)
    out = Path(out_dir)
    old_files = earlier_draw(out)
    out.mkdir(parents=True, exist_ok=True)
    width = max(3, len(str(len(graphs) - 1)))
    # named before they are written: a draw killed half-way leaves this list, and the next draw removes them
    # (else a later, smaller draw would leave the killed draw's extra graph files beside its own)
    names_ahead = [f"graph_{i:0{width}d}{ext}" for i in range(len(graphs)) for ext in (".txt", ".pt")]
    since, before, stale_before = _pending_list(out)
    # and the earlier draw's graph files this draw is to remove: a draw killed after its samples.json but
    # before removing them leaves them listed here, for the next draw to remove
    stale = sorted(set(stale_before) | {f for f in old_files if _SAMPLE_FILE.fullmatch(f)})
    atomic_write(out / _PENDING, json.dumps({"since": since, "files": sorted(set(names_ahead) | set(before)),
                                             "stale": stale}).encode())
    # the earlier draw's manifest goes before any of its graph files is overwritten: a draw killed half-way leaves
    # no samples.json describing graphs that are no longer those (the in-progress list says what is there, and the
    # next draw removes it all)
    for f in (out / "samples.json", digest_path(out / "samples.json")):
        f.unlink(missing_ok=True)
    written = []
    for i, g in enumerate(graphs):
        stem = out / f"graph_{i:0{width}d}"
        atomic_write(stem.with_suffix(".txt"), edge_list_text(g).encode())
        buf = io.BytesIO()
        torch.save(g, buf)  # the PyG Data (allow_data_loading: torch.load's default weights_only reads it)
        atomic_write(stem.with_suffix(".pt"), buf.getvalue())
        written += [stem.with_suffix(".txt"), stem.with_suffix(".pt")]
    draw_grid(graphs, out / "graphs.png", title=title)
    written.append(out / "graphs.png")
    manifest = dict(manifest, files=[p.name for p in written],
                    sha256={p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in written},
                    graphs=[{"num_nodes": int(g.num_nodes), "num_edges": int(g.edge_index.size(1)) // 2}
                            for g in graphs])
    write_json_verified(manifest, out / "samples.json")  # per-file hashes inside, its own in a side file
    written.append(out / "samples.json")
    names = {p.name for p in written}
    for name in old_files:  # the earlier draw's graphs that this one did not replace would mix in
        if _SAMPLE_FILE.fullmatch(name) and name not in names:
            (out / name).unlink(missing_ok=True)
    (out / _PENDING).unlink(missing_ok=True)
    return written
