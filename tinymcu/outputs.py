"""Atomic outputs: a failed command leaves no half-written file or directory behind.

Files are written to a temporary sibling and renamed over the target; directories are
built in a temporary sibling directory and renamed into place only when complete.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from .errors import TinymcuError


def _check_parent(path: Path) -> None:
    if not path.parent.exists():
        raise TinymcuError(f"{path}: directory {path.parent} does not exist")
    if path.is_dir():
        raise TinymcuError(f"{path}: is a directory, expected a file name")


def write_atomic(path: Path, text: str | None = None,
                 writer: Callable[[Path], None] | None = None) -> None:
    """Write ``text`` (or let ``writer`` write) to a temp file, then rename it to ``path``."""
    path = Path(path)
    _check_parent(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    try:
        if writer is not None:
            writer(Path(tmp))
        else:
            Path(tmp).write_text(text or "")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextlib.contextmanager
def atomic_dir(out: Path) -> Iterator[Path]:
    """Yield a temp directory beside ``out``; on success it replaces ``out``, else vanishes.

    An existing ``out`` that is a file is bad input; an existing directory is replaced only
    once the new one is complete. Missing parent directories are created, like ``mkdir -p``.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise TinymcuError(f"--out {out}: exists and is not a directory")
    parent = out.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise TinymcuError(f"--out {out}: cannot create {parent} ({e.strerror})") from None
    tmp = Path(tempfile.mkdtemp(dir=parent, prefix=f".{out.name}.tmp-"))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # mkdtemp makes it private; the result is an ordinary folder
    try:
        yield tmp
        if out.exists():
            old = Path(tempfile.mkdtemp(dir=parent, prefix=f".{out.name}.old-"))
            os.replace(out, old / "d")
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
