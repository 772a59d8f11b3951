"""Files a user keeps (results, splits, reports) are written whole or not at all:
to a temporary file in the same folder, then renamed over the target."""
from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Union


def atomic_write(path: Union[str, Path], data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_json_atomic(obj: Any, path: Union[str, Path]) -> None:
    """JSON (indented, NaN written as null) to ``path``, atomically."""
    text = json.dumps(obj, indent=2,
                      default=lambda o: None if isinstance(o, float) and math.isnan(o) else str(o))
    atomic_write(path, (text + "\n").encode())
