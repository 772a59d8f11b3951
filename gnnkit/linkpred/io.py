"""Saving and loading link splits atomically, and OGB's official link splits.

A split folder holds ``train.pt``, ``val.pt``, ``test.pt`` (dicts of tensors and ints,
loadable with ``torch.load(..., weights_only=True)``) and ``manifest.json``.  Node
features are not copied: :func:`load_split` re-attaches them from the dataset.
The folder is written under a temporary name next to its destination and renamed
into place, so an interrupted run leaves either the old folder or the new one.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Dict, Optional, Tuple

import torch
from torch import Tensor
from torch_geometric.data import Data

FORMAT = "gnnkit-linkpred-split/1"
SPLIT_FILES = ("train.pt", "val.pt", "test.pt")
_TENSORS = ("edge_index", "edge_label_index", "edge_label", "n_id", "n_id_src", "n_id_dst", "batch", "graph_id")
_INTS = ("num_nodes", "num_src", "num_dst")


def split_to_dict(d: Data) -> Dict[str, object]:
    out: Dict[str, object] = {}
    for k in _TENSORS:
        if k in d and isinstance(d[k], Tensor):
            out[k] = d[k].cpu()
    for k in _INTS:
        if k in d and d[k] is not None:
            out[k] = int(d[k])
    return out


def write_atomic_dir(out_dir, files: Dict[str, object], manifest: Dict[str, object]) -> Path:
    """Write ``files`` (name -> object for ``torch.save``) and ``manifest.json`` atomically."""
    out = Path(out_dir).expanduser().resolve()
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is a file; fix: choose a folder path")
    if out.is_dir() and any(out.iterdir()) and not (out / "manifest.json").is_file():
        raise ValueError(f"--out {out} exists, is not empty and holds no gnnkit split (no manifest.json); "
                         "fix: choose a new folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        for name, obj in files.items():
            with open(tmp / name, "wb") as f:
                torch.save(obj, f)
                f.flush()
                os.fsync(f.fileno())
        with open(tmp / "manifest.json", "w") as f:
            json.dump(manifest, f, indent=2, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        old = None
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.rename(out, old / "split")
        os.rename(tmp, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def save_split(out_dir, splits: Tuple[Data, Data, Data], manifest: Dict[str, object]) -> Path:
    """Save three splits and a manifest (``format`` is added) atomically."""
    files = {name: split_to_dict(d) for name, d in zip(SPLIT_FILES, splits)}
    manifest = dict(manifest, format=FORMAT, files=list(SPLIT_FILES) + ["manifest.json"])
    return write_atomic_dir(out_dir, files, manifest)


def load_split(split_dir, full: Optional[Data] = None) -> Tuple[Data, Data, Data, Dict[str, object]]:
    """Load a split folder; with ``full`` (the graph or union it came from) node features return.

    ``x`` is copied from ``full.x`` (rows ``n_id`` for inductive splits).
    """
    p = Path(split_dir)
    man_path = p / "manifest.json"
    if not man_path.is_file():
        raise ValueError(f"{p} holds no manifest.json; fix: pass a folder written by `gnnkit split`")
    manifest = json.loads(man_path.read_text())
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{man_path}: format {manifest.get('format')!r}, expected {FORMAT!r}")
    out = []
    for name in SPLIT_FILES:
        raw = torch.load(p / name, weights_only=True)
        d = Data(**raw)
        if full is not None:
            if "x" in full and full.x is not None:
                d.x = full.x[d.n_id] if "n_id" in d else full.x
            if "n_id" not in d and "num_nodes" not in raw:
                d.num_nodes = full.num_nodes
        out.append(d)
    return out[0], out[1], out[2], manifest


def ogb_official_split(dataset) -> Tuple[Data, Data, Data]:
    """OGB's official link split in gnnkit's convention (undirected datasets such as ogbl-ddi).

    Following OGB's protocol, training edges are both message and supervision edges
    (so ``check_leakage`` needs ``allow_train_overlap=True``) and validation and test
    use the training edges as messages; their negatives are OGB's fixed ones.
    """
    data = dataset[0]
    split = dataset.get_edge_split()
    n = int(data.num_nodes)

    def pairs(t: Tensor) -> Tensor:
        t = t.long()
        return t.t().contiguous() if t.dim() == 2 and t.size(1) == 2 else t

    train = pairs(split["train"]["edge"])
    msg = torch.cat([train, train.flip(0)], 1)
    out = []
    for name in ("train", "valid", "test"):
        pos = pairs(split[name]["edge"])
        neg = pairs(split[name]["edge_neg"]) if "edge_neg" in split[name] else torch.empty(2, 0, dtype=torch.long)
        d = Data(num_nodes=n, edge_index=msg)
        if "x" in data and data.x is not None:
            d.x = data.x
        d.edge_label_index = torch.cat([pos, neg], 1)
        d.edge_label = torch.cat([torch.ones(pos.size(1)), torch.zeros(neg.size(1))])
        out.append(d)
    return out[0], out[1], out[2]
