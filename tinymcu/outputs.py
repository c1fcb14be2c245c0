"""Atomic outputs: a failed or interrupted command leaves no half-written file or directory.

Files are written to a temporary sibling and renamed over the target; directories are
built in a temporary sibling directory and renamed into place only when complete. Every
temp path is registered with :mod:`tinymcu.interrupts`, so it is removed on Ctrl-C,
SIGTERM, or when clean-up itself hangs. OS errors (read-only or pseudo file systems, a
parent that is a file, no space) are bad input: one line, exit 2, the target untouched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from tinymcu import interrupts
from tinymcu.errors import TinymcuError


def _why(e: OSError) -> str:
    return e.strerror or str(e)


def _check_parent(path: Path) -> None:
    if not path.parent.exists():
        raise TinymcuError(f"{path}: directory {path.parent} does not exist")
    if not path.parent.is_dir():
        raise TinymcuError(f"{path}: {path.parent} is not a directory")
    if path.is_dir():
        raise TinymcuError(f"{path}: is a directory, expected a file name")


def write_atomic(path: Path, text: str | None = None,
                 writer: Callable[[Path], object] | None = None) -> None:
    """Write ``text`` (or let ``writer`` write) to a temp file, then rename it to ``path``."""
    path = Path(path)
    _check_parent(path)
    try:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.",
                                    suffix=path.suffix)
    except OSError as e:
        raise TinymcuError(f"{path}: cannot write in {path.parent} ({_why(e)})") from None
    os.close(fd)
    tmp = Path(name)
    interrupts.register_temp(tmp)
    try:
        if writer is not None:
            writer(tmp)
        else:
            tmp.write_text(text or "")
        os.replace(tmp, path)
    except OSError as e:
        raise TinymcuError(f"{path}: cannot write ({_why(e)})") from None
    finally:
        tmp.unlink(missing_ok=True)
        interrupts.unregister_temp(tmp)


@contextlib.contextmanager
def _as_input_error(shown: Path) -> Iterator[None]:
    try:
        yield
    except OSError as e:
        raise TinymcuError(f"--out {shown}: cannot replace it ({_why(e)})") from None


def _contains_cwd(out: Path) -> bool:
    try:
        cwd = Path.cwd().resolve()
    except OSError:
        return False
    return cwd == out or out in cwd.parents


@contextlib.contextmanager
def atomic_dir(out: Path) -> Iterator[Path]:
    """Yield a temp directory beside ``out``; on success it replaces ``out``, else vanishes.

    An existing ``out`` that is a file is bad input; an existing directory is replaced only
    once the new one is complete, and never when it is (or contains) the working directory:
    that would delete the user's files and leave their shell in a removed folder. Missing
    parent directories are created, like ``mkdir -p``.
    """
    shown = Path(out)
    try:
        out = shown.resolve()  # "." and ".." cannot be renamed; their real paths can
    except OSError as e:
        raise TinymcuError(f"--out {shown}: {_why(e)}") from None
    if out.exists() and not out.is_dir():
        raise TinymcuError(f"--out {shown}: exists and is not a directory")
    if _contains_cwd(out):
        raise TinymcuError(f"--out {shown}: is (or contains) the current directory, which "
                           "would be replaced; choose a new directory")
    parent = out.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=parent, prefix=f".{out.name}.tmp-"))
    except OSError as e:
        raise TinymcuError(f"--out {shown}: cannot create a directory in {parent} "
                           f"({_why(e)})") from None
    interrupts.register_temp(tmp)
    old: Path | None = None
    try:
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o777 & ~umask)  # mkdtemp makes it private; the result is an ordinary folder
        yield tmp
        # the swap must not be split by a signal: between the two renames neither output
        # is in place, and the clean-up below would delete both
        with interrupts.deferred(), _as_input_error(shown):
            if out.exists():
                old = Path(tempfile.mkdtemp(dir=parent, prefix=f".{out.name}.old-"))
                interrupts.register_temp(old)
                os.replace(out, old / "d")
                try:
                    os.replace(tmp, out)
                except OSError:
                    os.replace(old / "d", out)  # put the previous output back
                    raise
            else:
                os.replace(tmp, out)
    finally:
        for p in (tmp, old):
            if p is not None:
                shutil.rmtree(p, ignore_errors=True)
                interrupts.unregister_temp(p)
