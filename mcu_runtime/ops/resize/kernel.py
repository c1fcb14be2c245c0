"""The numpy resize reference kernels (see the folder's docstring)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from tinymcu.mcu_runtime.ops.resize import ResizeParams


def resize(p: ResizeParams, x: np.ndarray | None) -> np.ndarray:
    assert x is not None
    y0, y1, x0, x1 = (np.asarray(v, np.int64) for v in (p.y0, p.y1, p.x0, p.x1))
    if not p.bilinear:
        return x[:, y0][:, :, x0]
    v = x.astype(np.int64)
    wy = np.asarray(p.wy, np.int64)[None, :, None, None]
    wx = np.asarray(p.wx, np.int64)[None, None, :, None]
    one = 1 << 10
    total = (v[:, y0][:, :, x0] * (one - wy) * (one - wx) + v[:, y1][:, :, x0] * wy * (one - wx)
             + v[:, y0][:, :, x1] * (one - wy) * wx + v[:, y1][:, :, x1] * wy * wx)
    # round half away from zero by 2^20 (C division truncates toward zero)
    r = total + np.where(total > 0, 1 << 19, -(1 << 19))
    q = np.abs(r) >> 20
    return np.where(r < 0, -q, q).astype(x.dtype)
