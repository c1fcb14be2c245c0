"""The numpy FULLY_CONNECTED reference kernel (float64 sums of int8 products: exact)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tinymcu.mcu_runtime.ops.conv.kernel import requantize

if TYPE_CHECKING:
    from tinymcu.mcu_runtime.ops.fully_connected import FullyConnectedParams


def fully_connected(p: FullyConnectedParams, inputs: list[np.ndarray | None]) -> np.ndarray:
    x, w = inputs[0], np.asarray(inputs[1])
    assert x is not None
    bias = inputs[2] if len(inputs) > 2 else None
    xf = x.reshape(-1, p.depth).astype(np.float64) - p.in_zp
    acc = (xf @ (w.astype(np.float64) - p.w_zp).T).astype(np.int64)
    if bias is not None:
        acc += np.asarray(bias, dtype=np.int64)
    return requantize(acc, p.mult, p.shift, p.out_zp, p.act_min, p.act_max)
