"""Check what gnnkit saved: ``verify(path)`` (and ``gnnkit verify PATH ...``).

What gnnkit writes and how each is checked:

* files with a SHA-256 side file ``<name>.sha256`` (checkpoints of ``gnnkit ogb`` / ``gnnkit vq``,
  ``log.json`` / ``results.json`` of ``gnnkit ogb``, the JSON of ``gnnkit train --out``,
  ``gnnkit linkpred --json``, ``gnnkit vq --json``, ``gnnkit profile``): the file's hash must be one
  the side file recorded;
* split folders (``gnnkit split``, ``gnnkit.linkpred.save_split``): ``manifest.json`` holds every
  file's SHA-256 and the settings; :func:`gnnkit.linkpred.load_split` checks hashes, tensor types,
  id ranges, labels, and runs the leakage check again;
* sample folders (``gnnkit vq sample``): ``samples.json`` holds every sample file's SHA-256;
* a dataset root with ``SHA256SUMS`` (the project's data folder): every listed file; a folder or file
  below such a root is checked against the root's ``SHA256SUMS`` (the lines under it);
* a dataset's processed files (``processed/gnnkit_raw_stamp.json``, written by :func:`gnnkit.load_dataset`):
  each file's SHA-256 as it was built.

A folder is walked recursively.  Files without any record are reported as "unchecked", never as
good.
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Union

from gnnkit._atomic import (
    SUM_MISMATCH,
    TEMP_NAME,
    IntegrityError,
    _alive,
    digest_path,
    read_json_verified,
    sha256_file,
    sum_lines,
    verify_file,
)

OK, BAD, UNCHECKED = "ok", "bad", "unchecked"


@dataclass
class Finding:
    """One checked item: ``status`` is ``"ok"``, ``"bad"`` or ``"unchecked"``; ``detail`` says what was
    checked or what is wrong (with the fix)."""
    path: Path
    status: str
    detail: str

    def __str__(self) -> str:
        detail = self.detail.removeprefix(f"{self.path}: ")  # errors already name their file
        return f"{self.status:9s} {self.path}: {detail}"


def _check_file(path: Path) -> Finding:
    try:
        found = verify_file(path)
    except IntegrityError as e:
        return Finding(path, BAD, str(e))
    except OSError as e:
        return Finding(path, BAD, f"unreadable ({type(e).__name__}: {e})")
    if found is None:
        return Finding(path, UNCHECKED, f"no {digest_path(path).name} side file (not written by this gnnkit)")
    return Finding(path, OK, f"SHA-256 matches {digest_path(path).name}")


SPLIT_FILES = ("train.pt", "val.pt", "test.pt", "manifest.json")


def _is_split(folder: Path) -> bool:
    """A gnnkit split folder: its manifest says so, or (a damaged manifest) it holds the split's files, or (a deleted
    manifest) its side file and the split's files are left (then checked, and bad: ``load_split`` refuses a split
    without its manifest; three ``train/val/test.pt`` alone, as PyG's ZINC keeps, are no sign of a split)."""
    if not (folder / "manifest.json").is_file():
        return (folder / "manifest.json.sha256").is_file() and all((folder / f).is_file() for f in SPLIT_FILES[:3])
    try:
        meta = json.loads((folder / "manifest.json").read_text())
        if isinstance(meta, dict) and str(meta.get("format", "")).startswith("gnnkit-linkpred-split/"):
            return True
    except (OSError, ValueError):
        pass
    return all((folder / f).is_file() for f in SPLIT_FILES[:3])


def _check_split(folder: Path) -> Finding:
    from gnnkit.linkpred.io import load_split  # only when a split folder is checked (imports the splitter)
    try:
        with warnings.catch_warnings():  # PyG's "unable to infer num_nodes" on a split without features
            warnings.simplefilter("ignore")
            load_split(folder)
    except Exception as e:  # anything a damaged split raises is a finding, not a crash of verify
        msg = str(e) if isinstance(e, (ValueError, OSError)) else f"unreadable split ({type(e).__name__}: {e})"
        return Finding(folder, BAD, msg)
    if not (folder / "manifest.json.sha256").is_file():  # the files match a manifest nothing vouches for
        return Finding(folder, UNCHECKED, "split: the files match manifest.json, but no manifest.json.sha256 "
                                          "vouches for the manifest itself (a split written before gnnkit kept "
                                          "it, or the side file was deleted): an edited setting would pass")
    return Finding(folder, OK, "split: every file's SHA-256, tensor types, id ranges, labels and the leakage "
                               "check")


_DRAW_IN_PROGRESS = ".draw-in-progress.json"  # gnnkit.latent.io's list of an unfinished draw


def _check_samples(folder: Path) -> List[Finding]:
    manifest = folder / "samples.json"
    try:
        meta = read_json_verified(manifest)
    except (IntegrityError, OSError) as e:
        return [Finding(manifest, BAD, str(e))]
    hashes = meta.get("sha256") if isinstance(meta, dict) else None
    if not isinstance(hashes, dict):
        return [Finding(folder, UNCHECKED, "samples.json lists no SHA-256 (written before gnnkit kept them)")]
    hashes = {str(k): v for k, v in hashes.items()}
    out = []
    for name, digest in hashes.items():
        p = folder / name
        if not p.is_file():
            out.append(Finding(p, BAD, "listed in samples.json but missing; fix: sample again"))
        elif hashlib.sha256(p.read_bytes()).hexdigest() != digest:
            out.append(Finding(p, BAD, "its SHA-256 differs from samples.json (edited or corrupted); fix: sample "
                                       "again"))
    if not out:
        out.append(Finding(folder, OK, f"samples: {len(hashes)} files match samples.json"))
    if not digest_path(manifest).is_file():  # the files match a manifest nothing vouches for
        out.append(Finding(manifest, UNCHECKED, f"no {digest_path(manifest).name} side file: the manifest itself "
                                                "is not checked; fix: sample again (or copy the side file with it)"))
    return out


def _sample_files(folder: Path) -> List[str]:
    """The files samples.json lists (and itself), or just samples.json when it cannot be read."""
    try:
        meta = json.loads((folder / "samples.json").read_text())
        names = [str(k) for k in meta.get("sha256", {})] if isinstance(meta, dict) else []
    except (OSError, ValueError, AttributeError):
        names = []
    return names + ["samples.json"]


def _lexical(path: Path) -> Path:
    """``path`` made absolute without following symlinks (a dataset folder may link its files elsewhere)."""
    return Path(os.path.normpath(os.path.abspath(path)))


def _data_root_above(path: Path) -> Optional[Path]:
    """The nearest folder above ``path`` (lexically: symlinks not followed) that holds a ``SHA256SUMS``."""
    for parent in _lexical(path).parents:
        if (parent / "SHA256SUMS").is_file():
            return parent
    return None


def _check_dataset_root(root: Path, under: Optional[Path] = None) -> List[Finding]:
    """Every file ``SHA256SUMS`` lists (``sha256sum`` format), whatever dataset it belongs to; with
    ``under`` (a file or folder below ``root``) only the files at or below it, and nothing at all when the
    root lists none there (a ``SHA256SUMS`` above a folder that is no dataset's says nothing of it)."""
    sums = root / "SHA256SUMS"
    try:
        lines = sum_lines(sums)
    except (OSError, UnicodeDecodeError) as e:
        if under is not None:  # another folder's damaged record is not this path's finding
            return []
        return [Finding(sums, BAD, f"unreadable ({type(e).__name__}); fix: restore the data root's SHA256SUMS")]
    out, good = [], 0
    scope = _lexical(under) if under is not None else None
    for digest, path in lines:
        if scope is not None:
            lexical = _lexical(path)
            if lexical != scope and scope not in lexical.parents:
                continue
            path = under / lexical.relative_to(scope) if lexical != scope else under
        if not path.is_file():
            out.append(Finding(path, BAD, f"listed in {sums} but missing; fix: restore the dataset's files"))
        elif sha256_file(path) != digest:
            out.append(Finding(path, BAD, SUM_MISMATCH.format(sums=sums)))
        else:
            good += 1
    where = under if under is not None else root
    if good and under is not None and under.is_file():
        out.append(Finding(where, OK, f"SHA-256 matches {sums}"))
    elif good:
        out.append(Finding(where, OK, f"{'data root' if under is None else 'dataset files'}: {good} file"
                                      f"{'s' if good != 1 else ''} listed in {sums} match"))
    elif not out and under is None:
        out.append(Finding(sums, UNCHECKED, "lists no file"))
    return out


def _check_processed(stamp: Path) -> Finding:
    """A dataset's processed files against the hashes :func:`gnnkit.load_dataset` recorded when it built them."""
    from gnnkit.data import check_processed  # imports torch_geometric: only when a stamp is found
    status, detail = check_processed(stamp.parent.parent)
    return Finding(stamp.parent, {"ok": OK, "bad": BAD}.get(status, UNCHECKED), detail)


def _stray(path: Path) -> Finding:
    """A temporary file or folder of a gnnkit write (``.<name>.tmp-<pid>-XXXXXXXX``), left when its process was
    killed (SIGKILL, a power cut) or still being written."""
    m = TEMP_NAME.fullmatch(path.name)
    pid = int(m.group(2))
    state = "still running: a write in progress" if _alive(pid) and pid != os.getpid() else \
        "gone: a write that was killed"
    return Finding(path, UNCHECKED, f"a temporary {'folder' if path.is_dir() else 'file'} of a gnnkit write of "
                                    f"{m.group(1)} (process {pid} {state}), not saved data; fix: delete it once no "
                                    "gnnkit command writes here (the next write there removes it after an hour)")


def verify(path: Union[str, Path]) -> List[Finding]:
    """Check a file or a folder gnnkit wrote (module doc); a path that does not exist raises
    ``FileNotFoundError``.  Folders are walked: split and sample folders anywhere below are checked as
    such, every side file is checked, and ``.json``/``.pt`` files with no record are listed as unchecked
    (except below a data root, whose processed files PyG rebuilds)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; pass a file or folder gnnkit wrote")
    if TEMP_NAME.fullmatch(path.name):
        return [_stray(path)]
    if path.is_file():
        if path.name.endswith(".sha256"):
            target = path.with_name(path.name[:-len(".sha256")])
            if not target.exists():
                return [Finding(target, UNCHECKED, f"only its side file {path.name} exists (the first write of this "
                                                   "file was interrupted); nothing to check")]
            path = target
        found = _check_file(path)
        root = _data_root_above(path) if found.status == UNCHECKED else None
        if root is not None:  # a dataset file: its line in the root's SHA256SUMS, if it has one
            return _check_dataset_root(root, under=path) or [found]
        return [found]
    findings: List[Finding] = []
    covered = set()  # files a manifest already checked
    data_roots = []
    above = _data_root_above(path) if not (path / "SHA256SUMS").is_file() else None
    listed = _check_dataset_root(above, under=path) if above is not None else []
    if listed:  # a folder below a data root (a dataset's folder): the root's lines for it
        findings += listed
        data_roots.append(path)
    entries = sorted(path.rglob("*"))  # one walk of the tree (a data root can hold many files)
    # a killed write's temporary file or folder (a whole split copy) is named, not checked as saved data
    strays = [p for p in entries if TEMP_NAME.fullmatch(p.name) and not any(TEMP_NAME.fullmatch(a.name)
                                                                              for a in p.parents)]
    findings += [_stray(p) for p in strays]
    entries = [p for p in entries if not any(p == t or t in p.parents for t in strays)]
    for folder in [path, *(p for p in entries if p.is_dir())]:  # (path sorts before everything below it)
        if _is_split(folder):
            findings.append(_check_split(folder))
            # what the manifest lists, and the manifest with its side file (load_split checked both)
            covered.update([*(folder / f for f in SPLIT_FILES), folder / "manifest.json"])
        if (folder / "samples.json").is_file():
            findings += _check_samples(folder)
            covered.update(folder / f for f in _sample_files(folder))
        if (folder / _DRAW_IN_PROGRESS).is_file():  # a killed `vq sample` draw: its graph files are a mix
            findings.append(Finding(folder, BAD, "an interrupted `gnnkit vq sample` draw (its "
                                                 f"{_DRAW_IN_PROGRESS} is there): the graph files may mix two draws; "
                                                 "fix: sample again into this folder"))
            covered.add(folder / _DRAW_IN_PROGRESS)
        if (folder / "SHA256SUMS").is_file():
            findings += _check_dataset_root(folder)
            data_roots.append(folder)
        stamp = folder / "processed" / "gnnkit_raw_stamp.json"
        if stamp.is_file():
            findings.append(_check_processed(stamp))
            covered.update(p for p in stamp.parent.rglob("*") if p.is_file())
        elif (folder / "processed").is_dir() and (folder / "raw").is_dir() and \
                any(p.is_file() for p in (folder / "processed").iterdir()):
            findings.append(Finding(folder / "processed", UNCHECKED, "processed files with no recorded hashes "
                                    "(built by PyG outside gnnkit, or on a read-only copy); a gnnkit load of a "
                                    "writable copy records them"))
            covered.update(p for p in (folder / "processed").rglob("*") if p.is_file())
    for digest in (p for p in entries if p.name.endswith(".sha256")):
        target = digest.with_name(digest.name[:-len(".sha256")])
        if target in covered:
            continue
        if not target.exists():
            findings.append(Finding(target, UNCHECKED, f"only its side file {digest.name} exists (the first write of "
                                                       "this file was interrupted); nothing to check"))
            continue
        findings.append(_check_file(target))
        covered.add(target)
    for p in entries:
        if p.is_file() and p.suffix in (".json", ".pt") and p not in covered and not digest_path(p).is_file() \
                and not any(root in p.parents for root in data_roots):
            findings.append(Finding(p, UNCHECKED, f"no {digest_path(p).name} side file (written before gnnkit "
                                                  "kept them, or not by gnnkit)"))
    if not findings:
        findings.append(Finding(path, UNCHECKED, "no gnnkit manifest, samples.json, SHA256SUMS or .sha256 side "
                                                 "file inside"))
    return findings
