"""Files a user keeps (results, splits, reports, checkpoints) are written whole or not at all:
to a temporary file in the same folder, then renamed over the target.  Files gnnkit reads back
(checkpoints, logs, results) also carry their SHA-256 in a side file ``<name>.sha256``
(:func:`write_verified` / :func:`read_verified`), checked on every read and by ``gnnkit verify``."""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Optional, Union


def _target(path: Union[str, Path]) -> Path:
    """``path`` with ``~`` expanded and a symbolic link followed to the file it names (a loop: ValueError)."""
    path = Path(path).expanduser()
    if path.is_symlink():
        try:
            path = path.resolve(strict=False)
        except RuntimeError:  # a link loop (Python < 3.13 raises RuntimeError)
            raise ValueError(f"{path} is a symbolic link that loops; pass a file path") from None
        if path.is_symlink():  # resolve() leaves a looping link as it is on newer Pythons
            raise ValueError(f"{path} is a symbolic link that loops; pass a file path")
    return path


def temp_prefix(path: Path) -> str:
    """The name prefix of this process's temporary files and folders for ``path``: ``.<name>.tmp-<pid>-``, so a
    later write can tell a dead writer's leftovers (:func:`sweep_stale_temps`) from a live one's."""
    return f".{path.name}.tmp-{os.getpid()}-"


TEMP_NAME = re.compile(r"\.(.+)\.tmp-(\d{1,10})-[a-z0-9_]{8}(\.tmp)?")  # temp_prefix + mkstemp / mkdtemp


def write_leftover(name: str, target: str) -> bool:
    """``name`` is what an interrupted write of the file ``target`` leaves beside it: the side file that is renamed
    into place first (:func:`write_verified`) or a temporary file of ``target`` or of its side file."""
    m = TEMP_NAME.fullmatch(name)
    return name == target + ".sha256" or (m is not None and m.group(1) in (target, target + ".sha256"))


def mark_unsaved(exc: BaseException, why: str) -> None:
    """Note on an interrupt of a resumable command that had kept nothing yet: the ``gnnkit`` executable's
    "interrupted" line then says ``why`` instead of "continue with the same command and --resume"."""
    exc.gnnkit_unsaved = why


def mark_written(exc: BaseException, path: Path) -> None:
    """Note on an interrupt that arrived after ``path`` was in place, whole: the ``gnnkit`` executable's
    "interrupted" line then says so (``gnnkit.cli``) instead of implying nothing was written."""
    exc.gnnkit_saved = f"{path} was written whole before it"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError, OverflowError):  # someone else's process (or no way to tell): keep its files
        return True
    return True


_SWEPT: set = set()  # (folder, name) already swept by this process: once is enough (a folder of many files)


_STALE_S = 3600.0  # a temporary file untouched this long, of a process gone, is a killed write's


def sweep_stale_temps(path: Path) -> None:
    """Remove what writers of ``path`` that were killed mid-write left beside it: ``.<name>.tmp-<pid>-XXXXXXXX``
    (``.tmp``), the names :func:`temp_prefix` gives ``mkstemp`` / ``mkdtemp``, a whole temporary file or split folder
    each, whose process is gone and which nothing touched for an hour (a writer in another PID namespace or on
    another host sharing the folder looks gone; a write lasts seconds).  Best effort, once per path and process."""
    key = (str(path.parent), path.name)
    if key in _SWEPT:
        return
    _SWEPT.add(key)
    prefix = f".{path.name}.tmp-"
    try:
        entries = [Path(e.path) for e in os.scandir(path.parent) if e.name.startswith(prefix)]
    except OSError:
        return
    now = time.time()
    for entry in entries:
        m = TEMP_NAME.fullmatch(entry.name)
        if m is None or m.group(1) != path.name or int(m.group(2)) == os.getpid() or _alive(int(m.group(2))):
            continue
        try:
            if now - entry.lstat().st_mtime < _STALE_S:
                continue
        except OSError:
            continue
        with contextlib.suppress(OSError):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()


def atomic_write(path: Union[str, Path], data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename.  A symbolic link is
    followed (its target is written, the link stays); an existing path that is not a regular file (a device such as
    ``/dev/null``, a pipe, a folder) is refused: the rename would replace it."""
    path = _target(path)
    if path.exists() and not path.is_file():
        raise ValueError(f"{path} exists and is not a regular file (a device, pipe or folder); gnnkit writes whole "
                         "files through a rename, which would replace it; pass a file path")
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale_temps(path)
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path), suffix=".tmp", dir=str(path.parent))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())  # the bytes are on disk before the rename makes them the file
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual permissions
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (a power loss keeps old or new, not neither); best effort."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def folder_lock(folder: Path):
    """An exclusive advisory lock on ``folder`` (flock on the directory: no lock file is left behind), so
    two processes writing the same verified file do not interleave their renames."""
    try:
        import fcntl
        fd = os.open(folder, os.O_RDONLY)
    except (ImportError, OSError):  # no flock (not POSIX) or an unopenable folder: unlocked, as before
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _finite(o: Any) -> Any:
    """``o`` with every NaN and ±inf float (numpy scalars too) replaced by None: strict JSON has no such numbers,
    and ``json.dumps`` never hands a float to ``default=``."""
    if hasattr(o, "dtype") and hasattr(o, "item") and getattr(o, "shape", None) == ():  # numpy scalar
        o = o.item()
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite(v) for v in o]
    return o


def json_text(obj: Any) -> str:
    """Strict JSON, indented: NaN and ±inf written as null; other non-JSON values as their ``str``."""
    return json.dumps(_finite(obj), indent=2, allow_nan=False, default=str)


def figure_format(path: Union[str, Path]) -> str:
    """The image format matplotlib writes for ``path``, from its suffix (``.png``, ``.svg``, ``.pdf``, ...; no
    suffix: PNG).  ValueError naming the path and the formats for a suffix matplotlib cannot write (e.g. a
    ``.json`` or ``.txt`` path, which would otherwise get PNG bytes)."""
    suffix = Path(path).suffix.lower().lstrip(".")
    if not suffix:
        return "png"
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    formats = FigureCanvasAgg.get_supported_filetypes()
    if suffix not in formats:
        raise ValueError(f"{path}: matplotlib cannot write a .{suffix} image; name the plot with one of "
                         f"{', '.join('.' + f for f in sorted(formats))} (e.g. {Path(path).with_suffix('.png')})")
    return suffix


def write_figure_atomic(fig: Any, path: Union[str, Path], dpi: int = 110) -> None:
    """A matplotlib figure at ``path`` in the format its suffix names (:func:`figure_format`; PNG without one),
    whole or not at all (:func:`atomic_write`); the figure is closed."""
    import matplotlib.pyplot as plt
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format=figure_format(path), dpi=dpi)
    finally:
        plt.close(fig)
    atomic_write(path, buf.getvalue())


def write_json_atomic(obj: Any, path: Union[str, Path]) -> None:
    """JSON (indented, NaN and ±inf written as null) to ``path``, atomically."""
    atomic_write(path, (json_text(obj) + "\n").encode())


# ---------------------------------------------------------------------- verified files
class IntegrityError(ValueError):
    """A saved file fails its check: unreadable, or not the bytes gnnkit wrote (edited, truncated, corrupted)."""


def digest_path(path: Union[str, Path]) -> Path:
    """``<path>.sha256``: the SHA-256 side file of a file gnnkit wrote (``sha256sum`` line format)."""
    path = Path(path)
    return path.with_name(path.name + ".sha256")


def digest_line(name: str, data: bytes) -> bytes:
    """The side file's content for file ``name`` holding ``data``: one ``sha256sum`` line (``sha256sum -c``
    reads it); for a file written into a folder that is renamed into place as a whole, where
    :func:`write_verified`'s three renames are not needed."""
    return f"{hashlib.sha256(data).hexdigest()}  {name}\n".encode()


def _known_digests(digest: Path) -> list:
    return [ln.split()[0] for ln in digest.read_text().splitlines() if ln.strip()]


def write_verified(path: Union[str, Path], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically with its SHA-256 in :func:`digest_path`.

    Three renames: the side file first, listing the hash of the file now on disk (when that file verifies,
    or has no readable side file) and the new hash; then the data; then the side file with the new hash
    only.  A process killed at any point leaves the old file or the new one, each verifying, also after
    several interrupted writes in a row; a finished write leaves one ``sha256sum`` line.  Writers of one
    folder take turns (an advisory lock on the folder), and every file is fsynced before its rename."""
    path = _target(path)  # a link: the side file and the lock beside the file it names, not beside the link
    path.parent.mkdir(parents=True, exist_ok=True)
    with folder_lock(path.parent):
        _write_verified(path, data)


def _write_verified(path: Path, data: bytes) -> None:
    digest = digest_path(path)
    new = hashlib.sha256(data).hexdigest()
    keep = []
    if path.is_file():
        current = sha256_file(path)
        try:
            known = _known_digests(digest) if digest.is_file() else None
        except (OSError, UnicodeDecodeError):
            known = None  # a damaged side file says nothing; the file on disk is what an interrupted run kept
        if known is None or current in known:
            keep = [current]
    line = "{}  " + path.name + "\n"  # digest_line's format, for hashes already computed
    atomic_write(digest, "".join(line.format(h) for h in dict.fromkeys(keep + [new])).encode())
    atomic_write(path, data)
    if keep and keep != [new]:
        atomic_write(digest, line.format(new).encode())


def sha256_file(path: Union[str, Path]) -> str:
    """SHA-256 (hex) of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _checked(path: Path, data: Optional[bytes]) -> "tuple[bytes, Optional[bool]]":
    """``(data, True|None)`` or IntegrityError.  A mismatch is re-read (side file and data) a few times
    before it counts: a reader racing a writer can see a side file and data of two different writes."""
    digest = digest_path(path)
    for attempt in range(4):
        if not digest.is_file():
            return (path.read_bytes() if data is None else data), None
        try:
            known = _known_digests(digest)
        except (OSError, UnicodeDecodeError) as e:
            raise IntegrityError(f"{digest}: unreadable ({type(e).__name__}); fix: restore it or delete it "
                                 "(the file is then unchecked)") from None
        if data is None or attempt:
            data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() in known:
            return data, True
        time.sleep(0.01 * (attempt + 1))
    raise IntegrityError(f"{path}: its SHA-256 is not the one {digest.name} recorded (edited, truncated or "
                         "corrupted); fix: restore the file or write it again")


def verify_file(path: Union[str, Path], data: Optional[bytes] = None) -> Optional[bool]:
    """Check ``path`` (or its already-read bytes ``data``) against its side file: True when it matches,
    None when it has no side file (written before gnnkit kept them, or not by gnnkit); a mismatch raises
    :class:`IntegrityError` naming the file."""
    return _checked(Path(path), data)[1]


def read_verified(path: Union[str, Path]) -> bytes:
    """The bytes of ``path`` after :func:`verify_file` (the bytes that verified, when a writer raced the
    read); a missing file raises ``FileNotFoundError``."""
    return _checked(Path(path), None)[0]


def write_json_verified(obj: Any, path: Union[str, Path]) -> None:
    """:func:`write_json_atomic` with a SHA-256 side file (:func:`write_verified`)."""
    write_verified(path, (json_text(obj) + "\n").encode())


def read_json_verified(path: Union[str, Path]) -> Any:
    """JSON written by gnnkit, checked against its side file; anything unreadable raises
    :class:`IntegrityError` naming the file."""
    data = read_verified(path)
    try:
        return json.loads(data.decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise IntegrityError(f"{path}: not valid JSON ({type(e).__name__}: {str(e)[:120]}); fix: restore the file "
                             "or write it again") from None


def save_torch_verified(obj: Any, path: Union[str, Path]) -> None:
    """``torch.save(obj)`` to ``path`` through :func:`write_verified` (atomic, with a SHA-256 side file:
    torch's zip format checks no CRCs, so a damaged checkpoint would otherwise load as garbage)."""
    import torch
    buf = io.BytesIO()
    torch.save(obj, buf)
    write_verified(path, buf.getvalue())


def load_torch_verified(path: Union[str, Path]) -> Any:
    """What :func:`save_torch_verified` wrote, checked against its side file and loaded on the CPU;
    a damaged or unreadable file raises :class:`IntegrityError` naming it (``FileNotFoundError`` when
    missing)."""
    import torch
    data = read_verified(path)
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - torch.load raises many types for a damaged file
        raise IntegrityError(f"{path} is not a readable checkpoint ({type(e).__name__}); fix: restore "
                             "it") from None


# the one message for a listed file whose hash differs: nothing tells whether the file or its line changed
SUM_MISMATCH = ("its SHA-256 differs from {sums} (the file was truncated or edited, or its line in {sums} was); "
                "fix: restore the original file, or {sums} if the file is the original")


def sum_lines(sums: Path) -> list:
    """``(digest, path)`` for each ``sha256sum`` line of ``sums`` (paths below its folder): a data root's
    ``SHA256SUMS``, read by every dataset load and by ``gnnkit verify``."""
    out = []
    for line in sums.read_text().splitlines():
        parts = line.strip().split(None, 1)
        if len(parts) != 2:
            continue
        digest, rel = parts[0].lower(), parts[1].lstrip("*").strip()
        out.append((digest, sums.parent / (rel[2:] if rel.startswith("./") else rel)))
    return out
