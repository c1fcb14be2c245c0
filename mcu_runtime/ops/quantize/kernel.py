"""The numpy QUANTIZE / DEQUANTIZE kernels."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tinymcu.mcu_runtime.quant import multiply_by_quantized_multiplier, round_half_away

if TYPE_CHECKING:
    from tinymcu.mcu_runtime.ops.quantize import DequantizeParams, QuantizeParams


def quantize(p: QuantizeParams, x: np.ndarray) -> np.ndarray:
    if x.dtype == np.float32:
        # TFLM divides in float32 (val / static_cast<float>(scale)), then rounds: a double
        # division lands on the other side of a .5 tie for values next to one
        ratio = (x / np.float32(p.out_scale)).astype(np.float32)
        q = round_half_away(ratio.astype(np.float64))
        q = np.clip(q, -(2.0**31), 2.0**31 - 1).astype(np.int64) + p.out_zp
    else:
        q = multiply_by_quantized_multiplier(x.astype(np.int64) - p.in_zp, p.mult,
                                             p.shift) + p.out_zp
    return np.clip(q, p.qmin, p.qmax).astype(p.out_dtype)


def dequantize(p: DequantizeParams, x: np.ndarray) -> np.ndarray:
    return (p.scale * (x.astype(np.float64) - p.zp)).astype(np.float32)
