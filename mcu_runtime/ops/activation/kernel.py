"""The numpy pointwise activation kernels (see the folder's docstring)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tinymcu.mcu_runtime.quant import (
    logistic as fixed_logistic,
)
from tinymcu.mcu_runtime.quant import (
    multiply_by_quantized_multiplier,
    rounding_divide_by_pot,
    saturating_left_shift16,
    sdhm16,
    srdhm16,
)
from tinymcu.mcu_runtime.quant import (
    tanh as fixed_tanh,
)

if TYPE_CHECKING:
    from tinymcu.mcu_runtime.ops.activation import (
        AbsParams,
        HardSwishParams,
        LeakyReluParams,
        LogisticParams,
        ReluParams,
        TanhParams,
    )


def relu(p: ReluParams, x: np.ndarray) -> np.ndarray:
    if not p.requantize:
        return np.clip(x, p.act_min, p.act_max).astype(np.int8)
    y = multiply_by_quantized_multiplier(x.astype(np.int64) - p.in_zp, p.mult, p.shift) + p.out_zp
    return np.clip(y, p.act_min, p.act_max).astype(np.int8)


def logistic(p: LogisticParams, x: np.ndarray) -> np.ndarray:
    d = x.astype(np.int64) - p.in_zp
    q4 = multiply_by_quantized_multiplier(d, p.multiplier, p.left_shift)
    y = rounding_divide_by_pot(fixed_logistic(q4, 4), 23) - 128
    y = np.clip(y, -128, 127)
    y = np.where(d <= -p.radius, -128, np.where(d >= p.radius, 127, y))
    return y.astype(np.int8)


def hard_swish(p: HardSwishParams, x: np.ndarray) -> np.ndarray:
    hires = (x.astype(np.int64) - p.in_zp) * 128
    preshift = srdhm16(hires, p.out_mult16)
    reluish = hires
    if p.relu_exp > 0:
        reluish = saturating_left_shift16(reluish, p.relu_exp - 1)
    reluish = srdhm16(reluish, p.relu_mult16)
    if p.relu_exp > 0:
        reluish = saturating_left_shift16(reluish, 1)
    if p.relu_exp < 0:
        reluish = rounding_divide_by_pot(reluish, -p.relu_exp)
    reluish = (reluish + (1 << 15)) >> 1
    y = rounding_divide_by_pot(sdhm16(reluish, preshift), -p.out_exp) + p.out_zp
    return np.clip(y, -128, 127).astype(np.int8)


def tanh(p: TanhParams, x: np.ndarray) -> np.ndarray:
    d = x.astype(np.int64) - p.in_zp
    q4 = multiply_by_quantized_multiplier(d, p.multiplier, p.left_shift)
    y = np.clip(rounding_divide_by_pot(fixed_tanh(q4, 4), 24), -128, 127)
    y = np.where(d <= -p.radius, -128, np.where(d >= p.radius, 127, y))
    return y.astype(np.int8)


def leaky_relu(p: LeakyReluParams, x: np.ndarray) -> np.ndarray:
    d = x.astype(np.int64) - p.in_zp
    y = np.where(d >= 0, multiply_by_quantized_multiplier(d, p.id_mult, p.id_shift),
                 multiply_by_quantized_multiplier(d, p.alpha_mult, p.alpha_shift)) + p.out_zp
    return np.clip(y, -128, 127).astype(np.int8)


def absolute(p: AbsParams, x: np.ndarray) -> np.ndarray:
    v = np.abs(x.astype(np.int64) - p.in_zp)
    y = multiply_by_quantized_multiplier(v, p.mult, p.shift) if p.rescale else v
    return np.clip(y + p.out_zp, -128, 127).astype(np.int8)
