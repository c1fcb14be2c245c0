"""The numpy L2_NORMALIZATION kernel and TFLite's ``GetInvSqrtQuantizedMultiplierExp``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tinymcu.mcu_runtime.quant import (
    INT32_MAX,
    multiply_by_quantized_multiplier,
    rescale,
    rounding_divide_by_pot,
    srdhm,
    wrap32,
)

if TYPE_CHECKING:
    from tinymcu.mcu_runtime.ops.l2_norm import L2NormParams

#: gemmlowp constants: 1.5 in Q3.28, sqrt(2)/2 in Q0.31
_HALF_THREE_Q3 = (1 << 28) + (1 << 27)
_HALF_SQRT2_Q0 = 1518500250


def inv_sqrt_multiplier_exp(value: int, reverse_shift: int) -> tuple[int, int]:
    """(multiplier, shift) with ``multiplier · 2^shift ≈ 2^31 / sqrt(value)`` exactly as
    TFLite computes it (shift sign flipped by ``reverse_shift``)."""
    if value <= 1:
        return INT32_MAX, 0
    shift = 11
    while value >= 1 << 29:
        value //= 4
        shift += 1
    clz = 32 - int(value).bit_length()
    pairs = (clz - 1) // 2 - 1
    shift -= pairs
    value <<= 2 * pairs
    x_in = value >> 1
    half_in = int(rounding_divide_by_pot(x_in, 1))
    x = 1 << 28  # F3 one
    for _ in range(5):
        x3 = int(rescale(srdhm(srdhm(x, x), x), 9, 3))
        x = int(rescale(wrap32(int(srdhm(_HALF_THREE_Q3, x)) - int(srdhm(half_in, x3))),
                        6, 3))
    mult = int(srdhm(x, _HALF_SQRT2_Q0))
    if shift < 0:
        mult = int(wrap32(mult << -shift))
        shift = 0
    return mult, shift * reverse_shift


def l2_normalize(p: L2NormParams, x: np.ndarray) -> np.ndarray:
    rows = x.reshape(p.outer, p.depth).astype(np.int64) - p.in_zp
    out = np.empty_like(rows)
    for r, row in enumerate(rows):
        mult, shift = inv_sqrt_multiplier_exp(int(wrap32(int((row * row).sum()))), -1)
        out[r] = multiply_by_quantized_multiplier(row, mult, shift + 7)
    return np.clip(out, -128, 127).astype(np.int8).reshape(x.shape)
