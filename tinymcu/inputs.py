"""The one input layer every command uses: model files, ``--input`` arrays, output paths and
size/board options, each checked before any work starts.

Every problem is a :class:`TinymcuError` (one line, exit 2) and is found without trusting
the input: files are opened non-blocking and ``fstat``-ed (a FIFO or ``/dev/zero`` is
refused, never read), sizes are capped before reading, and an ``.npy`` header's declared
shape and dtype are compared with what the model takes before a byte of data is read.
Output paths are refused when they would overwrite or delete an input.
"""

from __future__ import annotations

import contextlib
import os
import stat
import struct
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import click
import numpy as np

from tinymcu.boards import BOARDS, get_board, parse_size
from tinymcu.errors import TinymcuError
from tinymcu.mcu_runtime.tflite_reader import MAX_MODEL_BYTES

#: largest ``--input`` / small side file read when the model gives no expected size
MAX_ARRAY_BYTES = 256 << 20
MAX_TEXT_BYTES = 16 << 20
MAX_NPZ_MEMBERS = 64
#: pseudo file systems no command may write into
PSEUDO_FS = (Path("/proc"), Path("/sys"), Path("/dev"))

#: what the model takes: (shape, dtype) per input, in order
Expect = list[tuple[tuple[int, ...], str]]


def _why(e: OSError) -> str:
    return e.strerror or type(e).__name__


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


@contextlib.contextmanager
def open_regular(path: Path, what: str, max_bytes: int) -> Iterator[tuple[IO[bytes], int]]:
    """Open ``path`` for reading if it is a readable regular file of at most ``max_bytes``.

    Non-blocking open, so a FIFO without a writer cannot hang us; ``fstat`` on the open
    descriptor, so the checks hold for the file actually read; one byte is read up front
    so that permission and I/O errors (``/proc/self/mem``) surface here, as one line."""
    label = f"{what} {show(path)}".strip()
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise TinymcuError(f"{label}: no such file") from None
    except OSError as e:
        raise TinymcuError(f"{label}: cannot open ({_why(e)})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise TinymcuError(f"{label}: is {_kind(st.st_mode)}, expected a file")
        if st.st_size > max_bytes:
            raise TinymcuError(f"{label}: {st.st_size:,} bytes; at most {max_bytes:,} are read")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd, "rb", buffering=0) as f:
        try:
            f.read(1)
            f.seek(0)
        except OSError as e:
            raise TinymcuError(f"{label}: cannot read ({_why(e)})") from None
        yield f, st.st_size


def show(path: Path | str) -> str:
    """A path for a one-line message: printable, and at most 100 characters."""
    text = "".join(c if c.isprintable() else "?" for c in str(path))
    return text if len(text) <= 100 else f"{text[:48]}...{text[-49:]}"


def model_file(path: Path, what: str = "") -> Path:
    """``path`` if it is a readable regular file within the reader's size cap.

    The commands and the reader then read it by name; checking here first means a FIFO,
    a device or an unreadable file never reaches code that would block or read unbounded."""
    with open_regular(Path(path), what, MAX_MODEL_BYTES):
        pass  # an empty file is the reader's to reject, like any other non-model
    return Path(path)


def read_text(path: Path, what: str) -> str:
    """A small text side file (a baseline report), capped and decoded as UTF-8."""
    with open_regular(Path(path), what, MAX_TEXT_BYTES) as (f, _):
        data = f.read()
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise TinymcuError(f"{what} {show(path)}: not UTF-8 text") from None


def model_inputs(model: Path) -> Expect:
    """(shape, dtype) of each of the model's inputs, from the reader (one line on error)."""
    from tinymcu.mcu_runtime.tflite_reader import load_tflite

    try:
        g = load_tflite(model)
    except TinymcuError as e:
        raise TinymcuError(f"{show(model)}: {e}") from None
    return [(g.tensors[i].shape, g.tensors[i].dtype) for i in g.inputs]


# ---- --input arrays ---------------------------------------------------------------------
def load_arrays(path: Path, expect: Expect | None = None,
                what: str = "--input") -> list[np.ndarray]:
    """The arrays in an ``.npy`` (one) or ``.npz`` (several, in file order).

    With ``expect`` (the model's inputs) the count, and every header's shape and dtype, must
    match before the data is read, so a header that claims terabytes costs nothing; a
    missing leading batch dimension of 1 is accepted (``execute.validate_inputs`` adds it).
    """
    path = Path(path)
    label = f"{what} {show(path)}"
    with open_regular(path, what, MAX_ARRAY_BYTES if expect is None else 1 << 62) as (f, size):
        if size == 0:
            raise TinymcuError(f"{label}: empty file, expected .npy or .npz")
        magic = f.read(6)
        f.seek(0)
        try:
            if magic == b"\x93NUMPY":
                arrays = [_read_npy(f, size, label, expect[0] if expect else None)]
            elif magic[:2] == b"PK":
                arrays = _read_npz(f, label, expect)
            else:
                raise TinymcuError(f"{label}: not a .npy or .npz file")
        except (OSError, EOFError, ValueError, zipfile.BadZipFile, zlib.error, struct.error,
                RuntimeError, NotImplementedError, OverflowError) as e:
            raise TinymcuError(f"{label}: corrupt .npy/.npz ({_first_line(e)})") from None
    if expect is not None and len(arrays) != len(expect):
        raise TinymcuError(f"{label}: {len(arrays)} array(s), the model has "
                           f"{len(expect)} input(s)")
    return arrays


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    msg = text[0] if text else type(e).__name__
    return msg if len(msg) <= 120 else msg[:117] + "..."


def _read_npy(f: IO[bytes], size: int | None, label: str,
              want: tuple[tuple[int, ...], str] | None) -> np.ndarray:
    """One array: header first, checked, then exactly the declared bytes."""
    fmt = np.lib.format
    version = fmt.read_magic(f)
    if version == (1, 0):
        shape, fortran, dtype = fmt.read_array_header_1_0(f)
    elif version in ((2, 0), (3, 0)):
        shape, fortran, dtype = fmt.read_array_header_2_0(f)
    else:
        raise TinymcuError(f"{label}: .npy format version {version} is not supported")
    if dtype.hasobject or dtype.fields is not None or dtype.kind not in "biuf":
        raise TinymcuError(f"{label}: holds an array of dtype {dtype}; expected numbers "
                           "(int8 for an int8 model), not objects or records")
    count = 1
    for d in shape:
        count *= int(d)
    nbytes = count * dtype.itemsize
    if want is not None:
        wshape, wdtype = want
        if (tuple(shape) != wshape and (1, *shape) != wshape) or dtype != np.dtype(wdtype):
            raise TinymcuError(f"{label}: shape {list(shape)} dtype {dtype}, the model wants "
                               f"shape {list(wshape)} dtype {wdtype}")
    elif nbytes > MAX_ARRAY_BYTES:
        raise TinymcuError(f"{label}: declares {nbytes:,} bytes of data; at most "
                           f"{MAX_ARRAY_BYTES:,} are read")
    if size is not None and size - f.tell() < nbytes:
        raise TinymcuError(f"{label}: truncated, the header declares {nbytes:,} bytes of data, "
                           f"the file holds {size - f.tell():,}")
    data = f.read(nbytes)
    if len(data) != nbytes:
        raise TinymcuError(f"{label}: truncated, the header declares {nbytes:,} bytes of data, "
                           f"read {len(data):,}")
    arr = np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")
    return np.ascontiguousarray(arr.astype(dtype.newbyteorder("=")))


def _read_npz(f: IO[bytes], label: str, expect: Expect | None) -> list[np.ndarray]:
    with zipfile.ZipFile(f) as zf:
        members = zf.infolist()
        if not members:
            raise TinymcuError(f"{label}: an empty .npz")
        if len(members) > MAX_NPZ_MEMBERS:
            raise TinymcuError(f"{label}: {len(members)} arrays; at most {MAX_NPZ_MEMBERS}")
        for m in members:
            if not m.filename.endswith(".npy") or m.is_dir():
                raise TinymcuError(f"{label}: member {m.filename[:60]!r} is not a .npy array")
        if expect is not None and len(members) != len(expect):
            raise TinymcuError(f"{label}: {len(members)} array(s), the model has "
                               f"{len(expect)} input(s)")
        out = []
        for i, m in enumerate(members):
            mlabel = f"{label}[{m.filename[:-4][:60]}]"
            with zf.open(m) as member:
                arr = _read_npy(member, m.file_size, mlabel, expect[i] if expect else None)
                if member.read(1):  # also makes zipfile check the CRC at the end
                    raise TinymcuError(f"{mlabel}: trailing bytes after the array data")
            out.append(arr)
        return out


# ---- output paths -----------------------------------------------------------------------
def _resolved(path: Path, what: str) -> Path:
    try:
        return Path(path).resolve()
    except (OSError, RuntimeError) as e:
        raise TinymcuError(f"{what} {show(path)}: {_first_line(e)}") from None


def _pseudo(out: Path, path: Path, what: str) -> None:
    for root in PSEUDO_FS:
        if out == root or root in out.parents:
            raise TinymcuError(f"{what} {show(path)}: {root} is not a place for outputs")


def _writable_ancestor(out: Path, path: Path, what: str) -> None:
    """The nearest existing ancestor must be a directory we may create entries in."""
    anc = out.parent
    while not anc.exists() and anc != anc.parent:
        anc = anc.parent
    if not anc.is_dir():
        raise TinymcuError(f"{what} {show(path)}: {show(anc)} is not a directory")
    if not os.access(anc, os.W_OK | os.X_OK):
        raise TinymcuError(f"{what} {show(path)}: {show(anc)} is not writable")


def _existing(inputs: Iterable[Path | str | None]) -> list[Path]:
    out = []
    for p in inputs:
        if p is None:
            continue
        with contextlib.suppress(OSError, RuntimeError, ValueError):
            if Path(p).exists():
                out.append(Path(p).resolve())
    return out


def out_dir(path: Path, inputs: Iterable[Path | str | None] = (), what: str = "--out") -> Path:
    """Check an output directory before any work: it is replaced at the end, so it must not
    be, or contain, an input or the working directory, and must be creatable."""
    path = Path(path)
    out = _resolved(path, what)
    _pseudo(out, path, what)
    if out.exists() and not out.is_dir():
        raise TinymcuError(f"{what} {show(path)}: exists and is not a directory")
    for src in _existing(inputs):
        if src == out or out in src.parents:
            raise TinymcuError(f"{what} {show(path)}: contains the input "
                               f"{show(src)}, which replacing it "
                               "would delete; choose another directory")
    with contextlib.suppress(OSError):
        cwd = Path.cwd().resolve()
        if cwd == out or out in cwd.parents:
            raise TinymcuError(f"{what} {show(path)}: is (or contains) the current directory, "
                               "which would be replaced; choose a new directory")
    _writable_ancestor(out, path, what)
    return path


def out_file(path: Path, inputs: Iterable[Path | str | None] = (), what: str = "--out") -> Path:
    """Check an output file before any work: parent directory exists and is writable, the
    name is not a directory, a pseudo file system, or one of the inputs."""
    path = Path(path)
    out = _resolved(path, what)
    _pseudo(out, path, what)
    if not out.parent.exists():
        raise TinymcuError(f"{what} {show(path)}: directory {path.parent} does not exist")
    if not out.parent.is_dir():
        raise TinymcuError(f"{what} {show(path)}: {path.parent} is not a directory")
    if out.is_dir():
        raise TinymcuError(f"{what} {show(path)}: is a directory, expected a file name")
    if out.exists() and not out.is_file():
        raise TinymcuError(f"{what} {show(path)}: exists and is not a regular file")
    for src in _existing(inputs):
        if src == out or (out.exists() and os.path.samefile(src, out)):
            raise TinymcuError(f"{what} {show(path)}: is the input "
                               f"{show(src)}; it would be overwritten")
    _writable_ancestor(out, path, what)
    return path


# ---- option types -----------------------------------------------------------------------
class SizeType(click.ParamType):
    """``--sram``/``--flash`` for every command: :func:`tinymcu.boards.parse_size`'s rule.

    Raises :class:`TinymcuError` (not click's usage error) so the message is the same
    one line from every command and from the Python API."""

    name = "SIZE"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        opt = f"--{param.name}" if param is not None and param.name else "size"
        return parse_size(str(value), opt)


class SizeText(click.ParamType):
    """A size option checked by :class:`SizeType`'s rule but kept as written (for labels).

    Not a SizeType subclass: it converts to ``str``, not ``int``."""

    name = SizeType.name

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> str:
        SizeType().convert(value, param, ctx)
        return str(value).strip()


class BoardType(click.ParamType):
    """``--board``: a preset name; an empty or unknown name is bad input, not the default."""

    name = "BOARD"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> str:
        return get_board(str(value)).name

    def shell_complete(self, ctx: click.Context, param: click.Parameter,
                       incomplete: str) -> list[click.shell_completion.CompletionItem]:
        from click.shell_completion import CompletionItem

        return [CompletionItem(n) for n in BOARDS if n.startswith(incomplete)]


SIZE = SizeType()
SIZE_TEXT = SizeText()
BOARD = BoardType()
