"""The numpy MEAN reference kernel (TFLM's QuantizedMeanOrSum, see the folder's docstring)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tinymcu.mcu_runtime.quant import multiply_by_quantized_multiplier, wrap32

if TYPE_CHECKING:
    from tinymcu.mcu_runtime.ops.mean import MeanParams


def mean(p: MeanParams, x: np.ndarray | None) -> np.ndarray:
    assert x is not None
    total = wrap32(x.astype(np.int64).sum(axis=p.axes))
    y = multiply_by_quantized_multiplier(wrap32(total - p.in_zp * p.count), p.mult,
                                         p.shift) + p.out_zp
    return np.clip(y, -128, 127).astype(np.int8).reshape(p.out_shape)
