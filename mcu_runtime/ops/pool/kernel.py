"""The numpy AVERAGE_POOL_2D / MAX_POOL_2D reference kernels."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tinymcu.mcu_runtime import geometry
from tinymcu.mcu_runtime.geometry import Pad
from tinymcu.mcu_runtime.ir import Op

if TYPE_CHECKING:
    from tinymcu.mcu_runtime.ops.pool import PoolParams


def pool(op: Op, p: PoolParams, x: np.ndarray | None, pad: Pad | None) -> np.ndarray:
    assert x is not None
    k, stride = p.kernel, p.stride
    full = pad if pad is not None else geometry.same_valid_pad(op, x.shape[1:3], k)
    out_hw = geometry.output_hw(x.shape[1:3], k, stride, (1, 1), full)
    if op.kind == "MAX_POOL_2D":
        xp = geometry.pad_nhwc(x.astype(np.int64), full, -(1 << 20))
        acc = np.full((x.shape[0], *out_hw, x.shape[3]), -(1 << 20), dtype=np.int64)
        for _, _, view in geometry.windows(xp, k, stride, (1, 1), out_hw):
            acc = np.maximum(acc, view)
        return np.clip(acc, p.act_min, p.act_max).astype(np.int8)
    xp = geometry.pad_nhwc(x.astype(np.int64), full, 0)
    valid = geometry.pad_nhwc(np.ones((1, *x.shape[1:3], 1), dtype=np.int64), full, 0)
    acc = np.zeros((x.shape[0], *out_hw, x.shape[3]), dtype=np.int64)
    count = np.zeros((1, *out_hw, 1), dtype=np.int64)
    for (_, _, view), (_, _, v) in zip(geometry.windows(xp, k, stride, (1, 1), out_hw),
                                       geometry.windows(valid, k, stride, (1, 1), out_hw),
                                       strict=True):
        acc += view
        count += v
    half = count // 2
    avg = np.where(acc > 0, (acc + half) // count, -((-(acc - half)) // count))
    return np.clip(avg, p.act_min, p.act_max).astype(np.int8)
