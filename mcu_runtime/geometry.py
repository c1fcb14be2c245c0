"""Spatial geometry of window ops, in one place: SAME/VALID/EXPLICIT padding, output sizes,
and the sliding windows a kernel walks.

The reader validates declared output shapes with it, the kernels pad and slide with it, the
patch scheduler (``regions.py``) maps tiles back through windows with it and ``passes`` folds
PAD ops with it — one formula each, so the three can never disagree about where a window
sits. Conventions are TFLite's (``ComputePaddingHeightWidth``, ``ComputeOutSize``): the
smaller half of a SAME pad goes first (top/left), the odd remainder last.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from tinymcu.errors import TinymcuError
from tinymcu.mcu_runtime.ir import Op

#: (top, bottom, left, right)
Pad = tuple[int, int, int, int]


def effective_size(kernel: int, dilation: int) -> int:
    """Span of a dilated kernel: (k - 1)·d + 1."""
    return (kernel - 1) * dilation + 1


def out_size(size: int, kernel: int, stride: int, dilation: int, padding: str) -> int:
    """Output length along one axis for SAME or VALID padding (TFLite's ``ComputeOutSize``)."""
    if padding == "SAME":
        return (size + stride - 1) // stride
    return (size - effective_size(kernel, dilation)) // stride + 1


def same_pad_before(in_size: int, out: int, kernel: int, stride: int, dilation: int) -> int:
    """Leading padding of TFLite's SAME scheme (the smaller half goes first)."""
    return max((out - 1) * stride + effective_size(kernel, dilation) - in_size, 0) // 2


def same_valid_pad(op: Op, in_hw: tuple[int, int], kernel_hw: tuple[int, int]) -> Pad:
    """(top, bottom, left, right) TFLite applies for the op's padding attribute; for
    ``padding="EXPLICIT"`` (a PAD folded in by ``passes.fold_pads``) its ``pads``."""
    padding = op.attrs.get("padding", "VALID")
    if padding == "EXPLICIT":
        top, bottom, left, right = op.attrs["pads"]
        return top, bottom, left, right
    stride = op.attrs.get("stride", (1, 1))
    dilation = op.attrs.get("dilation", (1, 1))
    pads = []
    for size, k, s, d in zip(in_hw, kernel_hw, stride, dilation, strict=True):
        if padding == "SAME":
            total = max(0, (out_size(size, k, s, d, "SAME") - 1) * s + effective_size(k, d)
                        - size)
            pads += [total // 2, total - total // 2]
        elif padding == "VALID":
            pads += [0, 0]
        else:
            raise TinymcuError(f"unsupported padding {padding!r} in op {op.index} ({op.kind})")
    return pads[0], pads[1], pads[2], pads[3]


def output_hw(in_hw: tuple[int, int], kernel_hw: tuple[int, int], stride: tuple[int, int],
              dilation: tuple[int, int], pad: Pad) -> tuple[int, int]:
    """floor((H + top + bottom - effective_kernel) / stride) + 1, per axis."""
    h = (in_hw[0] + pad[0] + pad[1] - effective_size(kernel_hw[0], dilation[0])) // stride[0] + 1
    w = (in_hw[1] + pad[2] + pad[3] - effective_size(kernel_hw[1], dilation[1])) // stride[1] + 1
    return h, w


def pad_nhwc(x: np.ndarray, pad: Pad, value: int) -> np.ndarray:
    """Pad H and W of an NHWC array with a constant."""
    t, b, left, r = pad
    if not any(pad):
        return x
    return np.pad(x, ((0, 0), (t, b), (left, r), (0, 0)), constant_values=value)


def windows(x: np.ndarray, kernel_hw: tuple[int, int], stride: tuple[int, int],
            dilation: tuple[int, int], out_hw: tuple[int, int]
            ) -> Iterator[tuple[int, int, np.ndarray]]:
    """Yield (ky, kx, view) with view[n, oy, ox, c] = x[n, oy*sh + ky*dh, ox*sw + kx*dw, c]."""
    sh, sw = stride
    dh, dw = dilation
    oh, ow = out_hw
    for ky in range(kernel_hw[0]):
        for kx in range(kernel_hw[1]):
            y0, x0 = ky * dh, kx * dw
            yield ky, kx, x[:, y0:y0 + (oh - 1) * sh + 1:sh, x0:x0 + (ow - 1) * sw + 1:sw, :]


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
        return effective_size(self.kernel[axis], self.dilation[axis])


def op_window(op: Op, in_hw: tuple[int, int], out_hw: tuple[int, int],
              kernel: tuple[int, int]) -> Window:
    """The window of a conv/depthwise/pool op from its stride, dilation and padding attrs."""
    stride: tuple[int, int] = tuple(op.attrs.get("stride", (1, 1)))
    dilation: tuple[int, int] = tuple(op.attrs.get("dilation", (1, 1)))
    padding = op.attrs.get("padding", "VALID")
    if padding == "SAME":
        before = (same_pad_before(in_hw[0], out_hw[0], kernel[0], stride[0], dilation[0]),
                  same_pad_before(in_hw[1], out_hw[1], kernel[1], stride[1], dilation[1]))
    elif padding == "EXPLICIT":  # a folded PAD (passes.fold_pads): its top and left pads
        before = (op.attrs["pads"][0], op.attrs["pads"][2])
    else:
        before = (0, 0)
    return Window(kernel, stride, dilation, before, in_hw)
