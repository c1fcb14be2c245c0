"""Receptive-field math for patch execution: which input box an output box needs.

A patch stage computes a tile of a feature map from only the input pixels that tile
depends on. Walking a tile back through an op needs the op's window (kernel, stride,
dilation) and where its SAME/VALID/EXPLICIT padding sits; the part of the window that falls
outside the real image becomes the step's explicit padding, so a tile in the middle of
the image is never padded and its result equals the full-map computation exactly.

An explicit PAD op is a window of one pixel, stride one, shifted by its leading pad: a
tile of its output that lies partly in the border reads a clipped input box and pads the
rest; a tile entirely inside the border reads an *empty* box (zero rows or columns) and
is pure padding.
"""

from __future__ import annotations

from tinymcu.mcu_runtime import ops
from tinymcu.mcu_runtime.geometry import Window, same_pad_before
from tinymcu.mcu_runtime.ir import Graph, Op
from tinymcu.mcu_runtime.schedule import Region

__all__ = ["PAD_KINDS", "POINTWISE_KINDS", "WINDOW_KINDS", "Window", "grid", "input_region",
           "input_span", "same_pad_before", "window"]

#: ops computed pixel by pixel: output pixel (y, x) reads only input pixel (y, x)
POINTWISE_KINDS = ops.tiling_kinds("pointwise")
#: ops with a sliding window over H and W (EXPAND_DEPTHWISE: a 1×1 conv fused into the
#: depthwise that reads it, ``passes.fuse_expand_depthwise``; its window is the depthwise's)
WINDOW_KINDS = ops.tiling_kinds("window")
#: explicit padding ops: a window of 1 shifted by the leading H/W pad (``OpDef.window``)
PAD_KINDS = ops.tiling_kinds("pad")


def window(op: Op, graph: Graph) -> Window | None:
    """The window of a spatial op (its OpDef's), or None for a pointwise op."""
    return ops.get(op.kind).window(op, graph)


def input_span(win: Window | None, axis: int, o0: int, o1: int) -> tuple[int, int, int, int]:
    """Along one axis: the input rows ``[lo, hi)`` output rows ``[o0, o1)`` read, and the
    padding ``(before, after)`` beyond the image border, as ``(lo, hi, before, after)``.

    Rows and columns are independent (windows are boxes), which lets the scheduler walk a
    p×p grid as p row bands and p column bands instead of p² tiles.

    The window rows ``[start, end)`` split into padding before row 0, real rows and padding
    after the last row, so ``before + (hi - lo) + after == end - start`` always. When the
    window lies entirely in the padding (only a PAD op's tile can: a SAME window always
    covers a real pixel, and so does an EXPLICIT one, as ``passes.fold_pads`` keeps each
    pad smaller than the window), ``[lo, hi)`` is empty, placed at the border it touches, and the
    padding is the window's whole length on that one side.
    """
    if win is None:
        return o0, o1, 0, 0
    start = o0 * win.stride[axis] - win.before[axis]
    end = (o1 - 1) * win.stride[axis] - win.before[axis] + win.span(axis)
    size = win.in_size[axis]
    lo, hi = min(max(start, 0), size), min(max(end, 0), size)
    return lo, hi, max(min(end, 0) - start, 0), max(end - max(start, size), 0)


def input_region(win: Window | None, out: Region) -> tuple[Region, tuple[int, int, int, int]]:
    """The input box ``out`` needs (clipped to the image) and the padding beyond the border.

    The padding is (top, bottom, left, right); it is non-zero only on sides where the
    window of ``out`` leaves the real input, i.e. at the image border.
    """
    y0, y1, top, bottom = input_span(win, 0, out.y0, out.y1)
    x0, x1, left, right = input_span(win, 1, out.x0, out.x1)
    return Region(y0, y1, x0, x1), (top, bottom, left, right)


def grid(height: int, width: int, parts: int) -> list[Region]:
    """Split an H×W map into ``parts``×``parts`` tiles, row-major, covering each pixel once.

    Edges are ``i*size // parts`` so sizes differ by at most one pixel and no tile is
    empty as long as ``parts`` ≤ min(H, W); a map that does not divide evenly gets
    uneven tiles rather than a ragged last row.
    """
    if not 1 <= parts <= min(height, width):
        raise ValueError(f"a {parts}x{parts} grid does not fit a {height}x{width} map")
    ys = [i * height // parts for i in range(parts + 1)]
    xs = [i * width // parts for i in range(parts + 1)]
    return [Region(ys[r], ys[r + 1], xs[c], xs[c + 1])
            for r in range(parts) for c in range(parts)]
