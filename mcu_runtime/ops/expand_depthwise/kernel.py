"""The numpy EXPAND_DEPTHWISE kernel, channel by channel as the C runtime runs it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tinymcu.mcu_runtime import geometry
from tinymcu.mcu_runtime.geometry import Pad
from tinymcu.mcu_runtime.ir import Op
from tinymcu.mcu_runtime.ops.conv.kernel import centred_input, requantize

if TYPE_CHECKING:
    from tinymcu.mcu_runtime.ops.expand_depthwise import ExpandDepthwiseParams


def expand_depthwise(expand: Op, dw: Op, p: ExpandDepthwiseParams,
                     inputs: list[np.ndarray | None], pad: Pad | None) -> np.ndarray:
    """Expanded channel ``c`` (int32 sum, bias, requantization to int8 with the expand's
    per-channel multiplier) exists only as one H×W plane, which depthwise filter ``c`` then
    reads."""
    x, w1, b1, w2, b2 = (inputs + [None] * 5)[:5]
    assert x is not None
    w1, w2 = np.asarray(w1), np.asarray(w2)
    channels = w1.shape[0]
    pe, pd = p.expand, p.dw
    xc, _ = centred_input(expand, x, pe, None, np.float64)
    kh, kw = pd.kernel
    out = None
    for c in range(channels):
        acc = (xc @ w1[c, 0, 0, :].astype(np.float64)).astype(np.int64)[..., None]
        if b1 is not None:
            acc = acc + int(b1[c])
        plane = requantize(acc, pe.mult[c:c + 1], pe.shift[c:c + 1], pe.out_zp, pe.act_min,
                           pe.act_max)
        pp, out_hw = centred_input(dw, plane, pd, pad, np.int64)
        acc = np.zeros((x.shape[0], *out_hw, 1), dtype=np.int64)
        for ky, kx, view in geometry.windows(pp, (kh, kw), pd.stride, pd.dilation, out_hw):
            acc += view * int(w2[0, ky, kx, c])
        if b2 is not None:
            acc = acc + int(b2[c])
        if out is None:
            out = np.empty((x.shape[0], *out_hw, channels), dtype=np.int8)
        out[..., c:c + 1] = requantize(acc, pd.mult[c:c + 1], pd.shift[c:c + 1], pd.out_zp,
                                       pd.act_min, pd.act_max)
    assert out is not None
    return out
