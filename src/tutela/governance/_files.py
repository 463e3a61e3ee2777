"""Small file helpers shared by the governance modules (atomic writes)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def atomic_write(path: str | os.PathLike[str], data: bytes, *, mode: int = 0o600) -> None:
    """Write ``data`` to ``path`` so that readers see either the old file or the new one.

    The bytes go to a temporary file in the same directory, are flushed and fsynced, and
    the temporary file is renamed over ``path`` (``os.replace`` is atomic on POSIX and
    Windows). On any failure the temporary file is removed and ``path`` is untouched.

    Args:
        path: destination file.
        data: the complete new content.
        mode: permission bits of the new file (default owner read/write only).
    """
    target = Path(path)
    directory = target.parent if str(target.parent) else Path()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.chmod(mode)
        tmp.replace(target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
