"""Spatial padding shared by the window ops (CONV_2D, DEPTHWISE_CONV_2D, the pools).

Every window op here runs VALID on an input that was first padded explicitly. With
``pad=None`` the pad comes from the op's SAME/VALID attribute exactly as TFLite computes it
(``ComputePaddingHeightWidth``: half the total in front, the odd remainder at the bottom/right),
or, for ``padding="EXPLICIT"`` (a PAD op folded into the conv by ``passes.fold_pads``), from
its ``pads`` attribute.
The patch scheduler instead passes an explicit ``pad`` that is non-zero only where a tile
touches the real image border; a tile's halo pixels are real data already inside the input
region, so they are never treated as padding.
"""

from __future__ import annotations

import numpy as np

from ...errors import TinymcuError
from ..ir import Op

Pad = tuple[int, int, int, int]


def effective_size(kernel: int, dilation: int) -> int:
    return (kernel - 1) * dilation + 1


def same_valid_pad(op: Op, in_hw: tuple[int, int], kernel_hw: tuple[int, int]) -> Pad:
    """(top, bottom, left, right) TFLite applies for the op's padding attribute."""
    padding = op.attrs.get("padding", "VALID")
    if padding == "EXPLICIT":
        top, bottom, left, right = op.attrs["pads"]
        return top, bottom, left, right
    stride = op.attrs.get("stride", (1, 1))
    dilation = op.attrs.get("dilation", (1, 1))
    pads = []
    for size, k, s, d in zip(in_hw, kernel_hw, stride, dilation, strict=True):
        eff = effective_size(k, d)
        if padding == "SAME":
            out = (size + s - 1) // s
            total = max(0, (out - 1) * s + eff - size)
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
            dilation: tuple[int, int], out_hw: tuple[int, int]):
    """Yield (ky, kx, view) with view[n, oy, ox, c] = x[n, oy*sh + ky*dh, ox*sw + kx*dw, c]."""
    sh, sw = stride
    dh, dw = dilation
    oh, ow = out_hw
    for ky in range(kernel_hw[0]):
        for kx in range(kernel_hw[1]):
            y0, x0 = ky * dh, kx * dw
            yield ky, kx, x[:, y0:y0 + (oh - 1) * sh + 1:sh, x0:x0 + (ow - 1) * sw + 1:sw, :]
