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
* a dataset root with ``SHA256SUMS`` (the project's data folder): every listed file.

A folder is walked recursively.  Files without any record are reported as "unchecked", never as
good.
"""
from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import List, Union

from gnnkit._atomic import IntegrityError, digest_path, read_json_verified, verify_file

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


def _check_split(folder: Path) -> Finding:
    from gnnkit.linkpred.io import load_split  # only when a split folder is checked (imports the splitter)
    try:
        with warnings.catch_warnings():  # PyG's "unable to infer num_nodes" on a split without features
            warnings.simplefilter("ignore")
            load_split(folder)
    except (ValueError, OSError) as e:
        return Finding(folder, BAD, str(e))
    return Finding(folder, OK, "split: every file's SHA-256, tensor types, id ranges, labels and the leakage "
                               "check")


def _check_samples(folder: Path) -> List[Finding]:
    manifest = folder / "samples.json"
    try:
        meta = read_json_verified(manifest)
    except (IntegrityError, OSError) as e:
        return [Finding(manifest, BAD, str(e))]
    hashes = meta.get("sha256") if isinstance(meta, dict) else None
    if not isinstance(hashes, dict):
        return [Finding(folder, UNCHECKED, "samples.json lists no SHA-256 (written before gnnkit kept them)")]
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
    return out


def _check_dataset_root(root: Path) -> List[Finding]:
    from gnnkit.data import DatasetIntegrityError, dataset_names, verify_checksums
    out = []
    for name in dataset_names():
        try:
            n = verify_checksums(name, root)
        except DatasetIntegrityError as e:
            out.append(Finding(root, BAD, str(e)))
            continue
        if n:
            out.append(Finding(root, OK, f"dataset {name}: {n} files match SHA256SUMS"))
    return out


def verify(path: Union[str, Path]) -> List[Finding]:
    """Check a file or a folder gnnkit wrote (module doc); a path that does not exist raises
    ``FileNotFoundError``.  Folders are walked: split and sample folders anywhere below are checked as
    such, every side file is checked, and ``.json``/``.pt`` files with no record are listed as unchecked
    (except below a data root, whose processed files PyG rebuilds)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; pass a file or folder gnnkit wrote")
    if path.is_file():
        if path.name.endswith(".sha256"):
            path = path.with_name(path.name[:-len(".sha256")])
        return [_check_file(path)]
    findings: List[Finding] = []
    covered = set()  # files a manifest already checked
    data_roots = []
    for folder in sorted([path, *(p for p in path.rglob("*") if p.is_dir())]):
        if (folder / "manifest.json").is_file():
            findings.append(_check_split(folder))
            covered.update(p for p in folder.iterdir() if p.is_file())
        if (folder / "samples.json").is_file():
            findings += _check_samples(folder)
            covered.update(p for p in folder.iterdir() if p.is_file())
        if (folder / "SHA256SUMS").is_file():
            findings += _check_dataset_root(folder)
            data_roots.append(folder)
    for digest in sorted(path.rglob("*.sha256")):
        target = digest.with_name(digest.name[:-len(".sha256")])
        if target in covered:
            continue
        if not target.exists():
            findings.append(Finding(target, UNCHECKED, f"only its side file {digest.name} exists (the first write of "
                                                       "this file was interrupted); nothing to check"))
            continue
        findings.append(_check_file(target))
        covered.add(target)
    for p in sorted(path.rglob("*")):
        if p.is_file() and p.suffix in (".json", ".pt") and p not in covered and not digest_path(p).is_file() \
                and not any(root in p.parents for root in data_roots):
            findings.append(Finding(p, UNCHECKED, f"no {digest_path(p).name} side file (written before gnnkit "
                                                  "kept them, or not by gnnkit)"))
    if not findings:
        findings.append(Finding(path, UNCHECKED, "no gnnkit manifest, samples.json, SHA256SUMS or .sha256 side "
                                                 "file inside"))
    return findings
