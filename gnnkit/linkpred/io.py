"""Saving and loading link splits atomically, and OGB's official link splits.

A split folder holds ``train.pt``, ``val.pt``, ``test.pt`` (dicts of tensors and ints,
loadable with ``torch.load(..., weights_only=True)``) and ``manifest.json``.  Node
features are not copied: :func:`load_split` re-attaches them from the dataset.
The folder is written under a temporary name next to its destination and swapped into
place with one atomic ``renameat2(RENAME_EXCHANGE)`` (Linux), so an interrupted run leaves
either the old split or the new one at the destination, never neither.  An existing
destination keeps everything gnnkit did not write there (a ``results.json``, a ``notes/``
folder): those entries are hard-linked (or copied) into the new folder before the swap — so a
sub-folder is a new directory with the same files afterwards (a shell whose working directory is
inside it must ``cd`` again), and a file the user adds between that copy and the swap (a fraction
of a second) would stay in the old folder, which is then removed.
Where the filesystem cannot exchange, the old folder is first renamed aside and, if a run
dies between the two renames, the next write or load puts it back.
"""
from __future__ import annotations

import ctypes
import errno
import hashlib
import io
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import torch
from torch import Tensor
from torch_geometric.data import Data

from gnnkit._atomic import (
    IntegrityError,
    _fsync_dir,
    digest_line,
    mark_written,
    read_verified,
    sweep_stale_temps,
    temp_prefix,
)

from .leakage import check_leakage
from .split import _as_union

PathLike = Union[str, os.PathLike]
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
    if "num_nodes" not in out and "n_id" not in out and isinstance(d.get("x"), Tensor):
        # a graph whose node count lives in its features (Planetoid's): keep the count, or a reload would
        # guess it from the message edges and lose the nodes only a held-out or negative pair reaches
        out["num_nodes"] = int(d.x.size(0))
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
    backups = sorted(out.parent.glob(f".{out.name}.old-*/split"), key=lambda b: b.stat().st_mtime)
    if backups:  # the newest
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


def check_split_folder(out_dir: PathLike) -> None:
    """``out_dir`` may take a split: new, empty, or holding an earlier gnnkit split (replaced as a whole);
    else a ValueError naming ``--out`` (``gnnkit split`` checks it before any work)."""
    out = Path(out_dir).expanduser().resolve()
    if out.is_dir() and any(out.iterdir()) and not _is_gnnkit_split(out):
        raise ValueError(f"--out {out} exists, is not empty and holds no gnnkit split (no gnnkit manifest.json); "
                         "fix: choose a new folder")


def write_atomic_dir(out_dir: PathLike, files: Dict[str, bytes], manifest: Dict[str, object]) -> Path:
    """Write ``files`` (name -> serialised bytes) and ``manifest.json`` atomically, keeping
    every other entry of an existing ``out_dir`` (see the module doc)."""
    out = Path(out_dir).expanduser().resolve()
    _restore_interrupted(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is a file; fix: choose a folder path")
    out.parent.mkdir(parents=True, exist_ok=True)
    if not os.access(out.parent, os.W_OK):
        raise PermissionError(f"--out {out}: the folder {out.parent} is not writable; fix: choose a writable path")
    ours = set(files) | {"manifest.json", "manifest.json.sha256"}
    check_split_folder(out)
    sweep_stale_temps(out)  # what a killed earlier write left (a whole copy of a split each)
    tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(out), dir=out.parent))
    swapped = False  # the new split is in place: an interrupt from here on only stops the old copy's removal
    try:
        for name, data in files.items():
            with open(tmp / name, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        text = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
        # the manifest's own SHA-256 beside it (the split files' hashes are inside it): an edited setting is seen
        for name, data in (("manifest.json", text),
                           ("manifest.json.sha256", digest_line("manifest.json", text))):
            with open(tmp / name, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        _fsync_dir(tmp)  # the new folder's entries are on disk before it replaces the old one
        if out.is_dir():
            for entry in out.iterdir():  # what gnnkit did not write stays
                if entry.name not in ours:
                    _link_tree(entry, tmp / entry.name)
            os.chmod(tmp, out.stat().st_mode & 0o7777)
            if _exchange(tmp, out):  # tmp now holds the old split
                swapped = True
                _fsync_dir(out.parent)
                shutil.rmtree(tmp, ignore_errors=True)
                return out
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.rename(out, old / "split")
            os.rename(tmp, out)
            swapped, tmp = True, old  # (tmp is gone: renamed)
            _fsync_dir(out.parent)
            shutil.rmtree(old, ignore_errors=True)
        else:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes 0700; a new folder gets the usual permissions
            os.rename(tmp, out)
            swapped = True
            _fsync_dir(out.parent)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)  # the unfinished new copy, or once swapped the old split
        if swapped and isinstance(e, KeyboardInterrupt):  # the command's "interrupted" line says the split is whole
            mark_written(e, out)
        raise
    return out


def _serialised(obj: object) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def save_split(out_dir: PathLike, splits: Tuple[Data, Data, Data], manifest: Dict[str, object]) -> Path:
    """Save three splits and a manifest (``format``, file list and each file's SHA-256 are added)
    atomically."""
    blobs = {name: _serialised(split_to_dict(d)) for name, d in zip(SPLIT_FILES, splits)}
    manifest = dict(manifest, format=FORMAT, files=list(SPLIT_FILES) + ["manifest.json"],
                    sha256={name: hashlib.sha256(b).hexdigest() for name, b in blobs.items()})
    return write_atomic_dir(out_dir, blobs, manifest)


class SplitFileError(ValueError):
    """A saved split that cannot be trusted: missing, truncated, edited or inconsistent files."""


def _read_split_file(path: Path, expected_sha: Optional[str]) -> Dict[str, object]:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise SplitFileError(f"{path}: cannot be read ({e.strerror or e}); fix: re-run gnnkit split") from None
    if expected_sha is not None and hashlib.sha256(data).hexdigest() != expected_sha:
        raise SplitFileError(f"{path}: its SHA-256 does not match manifest.json (edited, truncated, swapped or "
                             "from another run); fix: re-run gnnkit split")
    try:
        raw = torch.load(io.BytesIO(data), weights_only=True)
    except Exception as e:  # truncated/garbled pickles raise many types
        raise SplitFileError(f"{path}: not a readable split file ({type(e).__name__}); fix: re-run gnnkit split") \
            from None
    if not isinstance(raw, dict):
        raise SplitFileError(f"{path}: holds a {type(raw).__name__}, not a split dict; fix: re-run gnnkit split")
    return raw


def _check_split_dict(path: Path, raw: Dict[str, object], num_nodes: Optional[int] = None) -> None:
    """The tensors a split needs, with integer ids in range and 0/1 labels of the right length
    (``num_nodes``: the graph's, for splits that do not store their own)."""
    for key in ("edge_index", "edge_label_index", "edge_label"):
        if not isinstance(raw.get(key), Tensor):
            raise SplitFileError(f"{path}: no {key} tensor; fix: re-run gnnkit split")
    n_src = raw.get("num_src", raw.get("num_nodes", num_nodes))
    n_dst = raw.get("num_dst", raw.get("num_nodes", num_nodes))
    if "n_id" in raw and isinstance(raw["n_id"], Tensor):
        n_src = n_dst = raw["n_id"].numel()
    for key in ("edge_index", "edge_label_index"):
        t = raw[key]
        if t.is_floating_point() or t.dim() != 2 or t.size(0) != 2:
            raise SplitFileError(f"{path}: {key} must be an integer [2, E] tensor, got {t.dtype} "
                                 f"{list(t.shape)}; fix: re-run gnnkit split")
        if t.numel() and (int(t.min()) < 0 or (n_src is not None and int(t[0].max()) >= int(n_src))
                          or (n_dst is not None and int(t[1].max()) >= int(n_dst))):
            raise SplitFileError(f"{path}: {key} holds node ids outside the split's nodes; fix: re-run gnnkit split")
    lab = raw["edge_label"]
    if lab.dim() != 1 or lab.numel() != raw["edge_label_index"].size(1):
        raise SplitFileError(f"{path}: edge_label has {lab.numel()} entries for "
                             f"{raw['edge_label_index'].size(1)} labelled pairs; fix: re-run gnnkit split")
    if lab.numel() and not bool(((lab == 0) | (lab == 1)).all()):
        raise SplitFileError(f"{path}: edge_label holds values other than 0 and 1; fix: re-run gnnkit split")


def _check_full(path: Path, d: Data, num_nodes: Optional[int], full: Data) -> None:
    """``full`` must be the graph the split was made from: same node count (transductive), every ``n_id``
    among its nodes (inductive)."""
    have = int(full.num_nodes)
    if num_nodes is not None and num_nodes != have:
        raise SplitFileError(f"{path.parent}: the split was made on a graph of {num_nodes} nodes, but full has {have}; "
                             "fix: pass the graph (or dataset) the split was made from")
    if "n_id" in d and d.n_id.numel() and int(d.n_id.max()) >= have:
        raise SplitFileError(f"{path}: node id {int(d.n_id.max())} is outside full's {have} nodes; fix: pass the "
                             "graph (or dataset) the split was made from")
    for ids, count in (("n_id_src", "num_src"), ("n_id_dst", "num_dst")):  # bipartite inductive parts
        side = full[count] if count in full else None
        if ids in d and d[ids].numel() and side is not None and int(d[ids].max()) >= int(side):
            raise SplitFileError(f"{path}: {ids} {int(d[ids].max())} is outside full's {int(side)} {count[4:]} nodes; "
                                 "fix: pass the graph the split was made from")


def load_split(split_dir: PathLike, full: Any = None, verify: bool = True
               ) -> Tuple[Data, Data, Data, Dict[str, object]]:
    """Load a split folder; with ``full`` (the graph, or the dataset / list of graphs, it came from) node features
    return (a dataset is read as the split read it: the disjoint union of its graphs, in order).

    ``x`` is copied from ``full.x`` (rows ``n_id`` for inductive splits); a bipartite graph's ``x_src`` /
    ``x_dst`` likewise (rows ``n_id_src`` / ``n_id_dst``).  Every file is checked
    against the SHA-256 in ``manifest.json``, its tensors are checked (integer ids in range, 0/1
    labels), and with ``verify`` the leakage check runs again; anything wrong raises
    :class:`SplitFileError` (a ``ValueError``) naming the file.
    """
    p = Path(split_dir)
    _restore_interrupted(p.expanduser().resolve())
    man_path = p / "manifest.json"
    if not man_path.is_file():
        raise SplitFileError(f"{p} holds no manifest.json; fix: pass a folder written by `gnnkit split`")
    try:
        manifest = json.loads(read_verified(man_path))  # against its side file (splits written before it had none)
    except IntegrityError as e:
        raise SplitFileError(f"{e} (the split's settings and file hashes)") from None
    except (OSError, ValueError) as e:
        raise SplitFileError(f"{man_path}: not readable JSON ({type(e).__name__}); fix: re-run gnnkit split") \
            from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        got = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise SplitFileError(f"{man_path}: format {got!r}, expected {FORMAT!r}")
    shas = manifest.get("sha256") or {}
    if full is not None and not isinstance(full, Data):
        if isinstance(full, Tensor) or not hasattr(full, "__len__") or not hasattr(full, "__getitem__"):
            raise TypeError(f"load_split: full must be the torch_geometric.data.Data, or the dataset / list of Data, "
                            f"the split was made from, got {type(full).__name__}")
        full = _as_union(full)[0]  # the graphs' disjoint union, as the split made it
    out = []
    for name in SPLIT_FILES:
        raw = _read_split_file(p / name, shas.get(name))
        n = manifest.get("num_nodes") if (manifest.get("arguments") or {}).get("mode") != "inductive" else None
        _check_split_dict(p / name, raw, n if isinstance(n, int) else None)
        d = Data(**raw)
        if isinstance(n, int) and "num_nodes" not in raw and "n_id" not in raw and "num_src" not in raw:
            d.num_nodes = n  # the node count the split was made with, not a guess from its edges
        if full is not None:
            _check_full(p / name, d, n if isinstance(n, int) else None, full)
            for key, ids in (("x", "n_id"), ("x_src", "n_id_src"), ("x_dst", "n_id_dst")):  # bipartite: two sides
                if key in full and full[key] is not None:
                    d[key] = full[key][d[ids]] if ids in d else full[key]
            if "n_id" not in d and "num_nodes" not in raw:
                d.num_nodes = full.num_nodes
        out.append(d)
    if verify:
        a = manifest.get("arguments") or {}
        overlap = a.get("mode", "transductive") == "transductive" and a.get("disjoint_train_ratio", 1) == 0
        rep = check_leakage(*out, is_undirected=manifest.get("undirected"), allow_train_overlap=overlap)
        if not rep.ok:
            e = rep.errors[0]
            raise SplitFileError(f"{p}: the saved split fails its leakage check ({e.split}: {e.kind} x{e.count}); "
                                 "fix: re-run gnnkit split")
    return out[0], out[1], out[2], manifest


def ogb_official_split(dataset: Any) -> Tuple[Data, Data, Data]:
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
