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

from dataclasses import dataclass

import numpy as np

from ..errors import TinymcuError
from .ir import Graph, Op
from .schedule import Region

#: ops computed pixel by pixel: output pixel (y, x) reads only input pixel (y, x)
POINTWISE_KINDS = frozenset({
    "ADD", "SUB", "MUL", "RELU", "RELU6", "RELU_N1_TO_1", "LEAKY_RELU", "LOGISTIC", "TANH",
    "HARD_SWISH", "QUANTIZE", "DEQUANTIZE", "CONCATENATION",
})
#: ops with a sliding window over H and W (EXPAND_DEPTHWISE: a 1×1 conv fused into the
#: depthwise that reads it, ``passes.fuse_expand_depthwise``; its window is the depthwise's)
WINDOW_KINDS = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "MAX_POOL_2D",
                          "EXPAND_DEPTHWISE"})
#: explicit padding ops: a window of 1 shifted by the leading H/W pad (see :func:`window`)
PAD_KINDS = frozenset({"PAD", "PADV2"})


@dataclass(frozen=True)
class Window:
    """How one op maps output rows/columns to input rows/columns.

    Output index ``o`` reads input indices ``o*stride - before + i*dilation`` for
    ``i < kernel``; indices outside ``[0, size)`` are the op's padding.
    """

    kernel: tuple[int, int]
    stride: tuple[int, int]
    dilation: tuple[int, int]
    before: tuple[int, int]
    in_size: tuple[int, int]

    def span(self, axis: int) -> int:
        return (self.kernel[axis] - 1) * self.dilation[axis] + 1


def same_pad_before(in_size: int, out_size: int, kernel: int, stride: int, dilation: int) -> int:
    """Leading padding of TFLite's SAME scheme (the smaller half goes first)."""
    span = (kernel - 1) * dilation + 1
    return max((out_size - 1) * stride + span - in_size, 0) // 2


def pad_widths(op: Op, graph: Graph) -> list[tuple[int, int]] | None:
    """(before, after) per axis of a PAD/PADV2 op, or None if its paddings are not constant."""
    paddings = graph.tensors[op.inputs[1]]
    if not paddings.is_const:
        return None
    rows = [(int(a), int(b)) for a, b in np.asarray(paddings.data).reshape(-1, 2)]
    rank = len(graph.tensors[op.inputs[0]].shape)
    return [(0, 0)] * (rank - len(rows)) + rows


def window(op: Op, graph: Graph) -> Window | None:
    """The window of a spatial op, or None for a pointwise op.

    A PAD op (constant paddings, which ``patch`` checks) maps output row ``o`` to input row
    ``o - before``: kernel 1, stride 1, its leading pad as ``before``.
    """
    if op.kind in POINTWISE_KINDS:
        return None
    if op.kind == "EXPAND_DEPTHWISE":  # a 1×1 stride-1 conv keeps H and W: the depthwise's
        return window(op.attrs["depthwise"], graph)
    src = graph.tensors[op.inputs[0]].shape
    dst = graph.tensors[op.outputs[0]].shape
    in_size = (src[1], src[2])
    if op.kind in PAD_KINDS:
        widths = pad_widths(op, graph)
        if widths is None:
            raise TinymcuError(f"op {op.index} {op.kind} has non-constant paddings")
        return Window((1, 1), (1, 1), (1, 1), (widths[1][0], widths[2][0]), in_size)
    if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        fshape = graph.tensors[op.inputs[1]].shape
        kernel = (fshape[1], fshape[2])
    else:
        kernel = tuple(op.attrs["filter"])
    stride = tuple(op.attrs.get("stride", (1, 1)))
    dilation = tuple(op.attrs.get("dilation", (1, 1)))
    padding = op.attrs.get("padding", "VALID")
    if padding == "SAME":
        before = tuple(same_pad_before(in_size[a], dst[1 + a], kernel[a], stride[a], dilation[a])
                       for a in (0, 1))
    elif padding == "EXPLICIT":  # a folded PAD (passes.fold_pads): its top and left pads
        before = (op.attrs["pads"][0], op.attrs["pads"][2])
    else:
        before = (0, 0)
    return Window(kernel, stride, dilation, before, in_size)  # type: ignore[arg-type]


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
