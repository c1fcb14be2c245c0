"""The numpy SOFTMAX reference kernel (gemmlowp fixed point, int64 arrays)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tinymcu.mcu_runtime.quant import (
    exp_on_negative_values,
    get_reciprocal,
    rounding_divide_by_pot,
    srdhm,
    wrap32,
)

if TYPE_CHECKING:
    from tinymcu.mcu_runtime.ops.softmax import SoftmaxParams


def softmax(p: SoftmaxParams, x: np.ndarray, out_bits: int = 8) -> np.ndarray:
    """int8 → int8 (``out_bits`` 8) or int8 → int16 (16: TFLM's zero point -32768)."""
    xi = x.astype(np.int64)
    diff = xi - xi.max(axis=-1, keepdims=True)
    use = diff >= p.diff_min
    scaled = srdhm(wrap32(diff << p.left_shift), p.mult)
    exps = exp_on_negative_values(scaled, 5)
    sum_of_exps = wrap32(np.where(use, rounding_divide_by_pot(exps, 12), 0).sum(
        axis=-1, keepdims=True))
    recip, bits_over_unit = get_reciprocal(sum_of_exps, 12)
    lo, hi = -(1 << (out_bits - 1)), (1 << (out_bits - 1)) - 1
    y = rounding_divide_by_pot(srdhm(recip, exps), bits_over_unit + 31 - out_bits) + lo
    y = np.where(use, np.clip(y, lo, hi), lo)
    return y.astype(np.int8 if out_bits == 8 else np.int16)
