"""Strided copies: the one numpy and C mechanism every data-movement op runs on.

SLICE, STRIDED_SLICE, SPLIT, SPLIT_V, PACK, UNPACK, GATHER (constant indices), TILE,
DEPTH_TO_SPACE, SPACE_TO_DEPTH, BATCH_TO_SPACE_ND and SPACE_TO_BATCH_ND move bytes and
compute nothing. Each OpDef's ``params`` describes its op as a list of :class:`Copy` —
an odometer walk over ``dims`` reading ``src_off + Σ i_k·src_strides[k]`` of one input and
writing ``dst_off + Σ i_k·dst_strides[k]`` of one output (element strides, possibly 0 or
negative) — plus optional fills of an output with a constant (SPACE_TO_BATCH_ND's padding)
written first. The numpy kernel (:func:`run`) and the C kernel (``tm_strided_copy``) both
execute that list in the same order, so they cannot disagree, and the list is checked
against TFLM per op.

A copy is derived from two numpy views (:func:`from_views`) of ``arange`` index arrays: the
view's first value is its offset, its strides are the walk's strides, and the derived walk
is checked to reproduce the view (a numpy reshape that silently copied would fail). Axes
that are contiguous in both walks are merged, so most copies have rank 1–3.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinymcu.errors import TinymcuError

#: axes the C kernel walks (after merging); TILE of a rank-4 tensor needs at most 8
MAX_RANK = 8


@dataclass(frozen=True)
class Copy:
    """Copy a ``dims`` box from input ``src`` (its position in ``op.inputs``) to output
    ``dst`` (position in ``op.outputs``); offsets and strides in elements."""

    src: int
    dst: int
    dims: tuple[int, ...]
    src_off: int
    src_strides: tuple[int, ...]
    dst_off: int
    dst_strides: tuple[int, ...]

    @property
    def size(self) -> int:
        return int(np.prod(self.dims, dtype=np.int64)) if self.dims else 1


@dataclass(frozen=True)
class CopyParams:
    """The copies in execution order; ``fills`` (output position, value) come first."""

    copies: tuple[Copy, ...]
    fills: tuple[tuple[int, int], ...] = ()


def index_array(shape: tuple[int, ...]) -> np.ndarray:
    """Element indices of a C-contiguous tensor of ``shape``: views of it are walks."""
    return np.arange(int(np.prod(shape, dtype=np.int64)), dtype=np.int64).reshape(shape)


def _walk(off: int, dims: tuple[int, ...], strides: tuple[int, ...]) -> np.ndarray:
    idx = np.full((), off, dtype=np.int64)
    for n, s in zip(dims, strides, strict=True):
        idx = idx[..., None] + np.arange(n, dtype=np.int64) * s
    return idx


def _of(view: np.ndarray) -> tuple[int, tuple[int, ...]]:
    """(offset, element strides) of a view of an :func:`index_array`, checked."""
    item = view.itemsize
    strides = tuple(int(s) // item for s in view.strides)
    off = int(view.flat[0]) if view.size else 0
    if not np.array_equal(_walk(off, view.shape, strides), view):
        raise TinymcuError("internal: a data-movement view is not a strided walk")
    return off, strides


def simplify(c: Copy) -> Copy:
    """Drop length-1 axes and merge axes contiguous in both walks (order is unchanged)."""
    axes = [(n, s, d) for n, s, d in zip(c.dims, c.src_strides, c.dst_strides, strict=True)
            if n != 1]
    merged: list[tuple[int, int, int]] = []
    for n, s, d in axes:
        if merged:
            pn, ps, pd = merged[-1]
            if ps == s * n and pd == d * n:
                merged[-1] = (pn * n, s, d)
                continue
        merged.append((n, s, d))
    return Copy(c.src, c.dst, tuple(m[0] for m in merged), c.src_off,
                tuple(m[1] for m in merged), c.dst_off, tuple(m[2] for m in merged))


def from_views(src: int, dst: int, src_view: np.ndarray, dst_view: np.ndarray) -> Copy:
    """The copy that moves ``src_view`` (of input ``src``'s index array) onto ``dst_view``
    (of output ``dst``'s); the two views have one shape."""
    src_b = np.broadcast_to(src_view, dst_view.shape)
    s_off, s_str = _of(src_b)
    d_off, d_str = _of(dst_view)
    return simplify(Copy(src, dst, tuple(dst_view.shape), s_off, s_str, d_off, d_str))


def run(p: CopyParams, inputs: list[np.ndarray | None],
        outputs: list[tuple[tuple[int, ...], str]]) -> list[np.ndarray]:
    """Execute the copies on numpy arrays; ``outputs`` are (shape, dtype) per output."""
    flats = [np.zeros(int(np.prod(s, dtype=np.int64)), dtype=dt) for s, dt in outputs]
    written = [np.zeros(f.size, dtype=bool) for f in flats]
    for k, value in p.fills:
        flats[k][:] = value
        written[k][:] = True
    for c in p.copies:
        x = inputs[c.src]
        assert x is not None
        src = np.asarray(x).ravel()
        d_idx = _walk(c.dst_off, c.dims, c.dst_strides).ravel()
        flats[c.dst][d_idx] = src[_walk(c.src_off, c.dims, c.src_strides).ravel()]
        written[c.dst][d_idx] = True
    for k, w in enumerate(written):
        if not w.all():
            raise TinymcuError(f"internal: data-movement output {k} is not fully written")
    return [f.reshape(s) for f, (s, _) in zip(flats, outputs, strict=True)]


def safe_in_place(p: CopyParams, src: int = 0, dst: int = 0) -> bool:
    """True if output ``dst`` may occupy input ``src``'s memory (same start): executing
    the copies in order never reads an element a previous write already replaced.

    Writes to other outputs and reads of other inputs touch other buffers. A fill of
    ``dst`` would overwrite the input before any read."""
    if any(k == dst for k, _ in p.fills):
        return False
    reads: list[np.ndarray] = []
    read_t: list[np.ndarray] = []
    writes: list[np.ndarray] = []
    write_t: list[np.ndarray] = []
    t = 0
    for c in p.copies:
        times = np.arange(t, t + c.size, dtype=np.int64)
        if c.src == src:
            reads.append(_walk(c.src_off, c.dims, c.src_strides).ravel())
            read_t.append(times)
        if c.dst == dst:
            writes.append(_walk(c.dst_off, c.dims, c.dst_strides).ravel())
            write_t.append(times)
        t += c.size
    if not reads or not writes:
        return True
    r, rt = np.concatenate(reads), np.concatenate(read_t)
    w, wt = np.concatenate(writes), np.concatenate(write_t)
    size = int(max(r.max(), w.max())) + 1
    first_write = np.full(size, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first_write, w, wt)
    return bool(np.all(first_write[r] >= rt))


def identity(c: Copy) -> bool:
    """The copy moves every element onto itself (a zero-copy alias when the buffers
    share their start)."""
    return c.src_off == c.dst_off and c.src_strides == c.dst_strides
