"""Saving and loading link splits atomically, and OGB's official link splits.

A split folder holds ``train.pt``, ``val.pt``, ``test.pt`` (dicts of tensors and ints,
loadable with ``torch.load(..., weights_only=True)``) and ``manifest.json``.  Node
features are not copied: :func:`load_split` re-attaches them from the dataset.
The folder is written under a temporary name next to its destination and swapped into
place with one atomic ``renameat2(RENAME_EXCHANGE)`` (Linux), so an interrupted run leaves
either the old split or the new one at the destination, never neither.  An existing
destination keeps everything gnnkit did not write there (a ``results.json``, a ``notes/``
folder): those entries are hard-linked (or copied) into the new folder before the swap.
Where the filesystem cannot exchange, the old folder is first renamed aside and, if a run
dies between the two renames, the next write or load puts it back.
"""
from __future__ import annotations

import ctypes
import errno
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


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (``renameat2(RENAME_EXCHANGE)``); False where unsupported."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if fn(at_fdcwd, os.fsencode(str(a)), at_fdcwd, os.fsencode(str(b)), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _restore_interrupted(out: Path) -> None:
    """A previous overwrite that died between its two renames left the old split aside: put it back."""
    if out.exists():
        return
    backups = sorted(out.parent.glob(f".{out.name}.old-*/split"))
    if backups:
        os.rename(backups[-1], out)
        shutil.rmtree(backups[-1].parent, ignore_errors=True)


def _link_tree(src: Path, dst: Path) -> None:
    """``src`` -> ``dst`` with hard links (copies where links are impossible)."""
    def link(a, b):
        try:
            os.link(a, b)
        except OSError:
            shutil.copy2(a, b)
    if src.is_dir() and not src.is_symlink():
        shutil.copytree(src, dst, symlinks=True, copy_function=link)
    elif src.is_symlink():
        os.symlink(os.readlink(src), dst)
    else:
        link(src, dst)


def _is_gnnkit_split(folder: Path) -> bool:
    try:
        return json.loads((folder / "manifest.json").read_text()).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def write_atomic_dir(out_dir, files: Dict[str, object], manifest: Dict[str, object]) -> Path:
    """Write ``files`` (name -> object for ``torch.save``) and ``manifest.json`` atomically, keeping
    every other entry of an existing ``out_dir`` (see the module doc)."""
    out = Path(out_dir).expanduser().resolve()
    _restore_interrupted(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is a file; fix: choose a folder path")
    out.parent.mkdir(parents=True, exist_ok=True)
    if not os.access(out.parent, os.W_OK):
        raise PermissionError(f"--out {out}: the folder {out.parent} is not writable; fix: choose a writable path")
    ours = set(files) | {"manifest.json"}
    if out.is_dir() and any(out.iterdir()) and not _is_gnnkit_split(out):
        raise ValueError(f"--out {out} exists, is not empty and holds no gnnkit split (no gnnkit manifest.json); "
                         "fix: choose a new folder")
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
        if out.is_dir():
            for entry in out.iterdir():  # what gnnkit did not write stays
                if entry.name not in ours:
                    _link_tree(entry, tmp / entry.name)
            os.chmod(tmp, out.stat().st_mode & 0o7777)
            if _exchange(tmp, out):  # tmp now holds the old split
                shutil.rmtree(tmp, ignore_errors=True)
                return out
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.rename(out, old / "split")
            os.rename(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, out)
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
    _restore_interrupted(p.expanduser().resolve())
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
