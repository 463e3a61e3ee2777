"""The one writer for files Tutela keeps: atomic, and private unless told otherwise.

Every file that holds key material, results or anything a reader must never see half
written goes through :func:`atomic_write` (bytes in hand) or :func:`atomic_writer` /
:func:`atomic_text_writer` (a serialiser that streams). The bytes go to a temporary file in
the destination's directory (created ``0600`` by :func:`tempfile.mkstemp`), are flushed and
fsynced, and the temporary file is renamed over the destination (``os.replace`` is atomic on
POSIX and Windows). Missing parent directories are created ``0700``; existing ones are left
as they are.

Security: protects against other local users reading keys or results (file mode) and against
readers or a crash seeing a torn file. Not protected: an attacker running as the same user.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, TextIO

__all__ = [
    "PRIVATE_DIR_MODE",
    "PRIVATE_FILE_MODE",
    "atomic_text_writer",
    "atomic_write",
    "atomic_writer",
    "private_dir",
]

PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700


def private_dir(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` and any missing parents with mode 0700; return it.

    Directories that already exist keep their mode (the working directory, ``/tmp``).
    """
    target = Path(path)
    missing: list[Path] = []
    for directory in (target, *target.parents):
        if directory.is_dir():
            break
        missing.append(directory)
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=PRIVATE_DIR_MODE)
        except FileExistsError:
            if not directory.is_dir():
                raise
            continue  # created concurrently by someone else: leave its mode alone
        directory.chmod(PRIVATE_DIR_MODE)  # the umask may have removed bits; never adds any
    return target


@contextlib.contextmanager
def atomic_writer(
    path: str | os.PathLike[str], *, mode: int = PRIVATE_FILE_MODE, make_parents: bool = True
) -> Iterator[BinaryIO]:
    """Open a binary handle whose content replaces ``path`` when the block exits cleanly.

    If the block raises (a serialiser failing half way, an interrupt), the temporary file is
    removed and ``path`` keeps its old content, or stays absent.

    Args:
        path: destination file.
        mode: permission bits of the new file (default owner read/write only).
        make_parents: create missing parent directories (mode 0700); if false, a missing
            parent raises :class:`FileNotFoundError`.
    """
    target = Path(path)
    directory = target.parent
    if make_parents:
        private_dir(directory)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        tmp.chmod(mode)
        tmp.replace(target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def atomic_text_writer(
    path: str | os.PathLike[str], *, mode: int = PRIVATE_FILE_MODE, make_parents: bool = True
) -> Iterator[TextIO]:
    """:func:`atomic_writer` for UTF-8 text (newlines written as given, as ``csv`` expects)."""
    with atomic_writer(path, mode=mode, make_parents=make_parents) as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8", newline="", write_through=True)
        try:
            yield text
            text.flush()
        finally:
            text.detach()  # the binary handle is flushed, fsynced and closed by atomic_writer


def atomic_write(
    path: str | os.PathLike[str],
    data: bytes,
    *,
    mode: int = PRIVATE_FILE_MODE,
    make_parents: bool = True,
) -> None:
    """Write ``data`` to ``path`` so that readers see either the old file or the new one.

    Args:
        path: destination file.
        data: the complete new content.
        mode: permission bits of the new file (default owner read/write only).
        make_parents: create missing parent directories (mode 0700).
    """
    with atomic_writer(path, mode=mode, make_parents=make_parents) as handle:
        handle.write(data)
