"""The numpy SVDF reference kernel: int64 sums wrapped to int32 where TFLM's loops wrap."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tinymcu.mcu_runtime.quant import multiply_by_quantized_multiplier, wrap32

if TYPE_CHECKING:
    from tinymcu.mcu_runtime.ops.svdf import SvdfParams


def svdf(p: SvdfParams, inputs: list[np.ndarray | None]) -> tuple[np.ndarray, np.ndarray]:
    """(int8 output (B, U), new state (B, F·M)) from (input, W_f, W_t, bias, state)."""
    x, wf, wt, bias, state = inputs
    assert x is not None and wf is not None and wt is not None and state is not None
    info = np.iinfo(np.dtype(p.state_dtype))
    xs = x.reshape(p.batches, p.inputs).astype(np.int64) - p.in_zp
    feature = wrap32(xs @ np.asarray(wf, np.int64).T)  # (B, F)
    feature = multiply_by_quantized_multiplier(feature, p.mult1, p.shift1) + p.state_zp
    feature = np.clip(feature, info.min, info.max)
    mem = np.asarray(state).reshape(p.batches, p.filters, p.memory)
    new = np.concatenate([mem[:, :, 1:], feature[:, :, None].astype(mem.dtype)], axis=2)
    per_filter = wrap32(np.einsum("bfm,fm->bf", new.astype(np.int64) - p.state_zp,
                                  np.asarray(wt, np.int64)))
    acc = wrap32(per_filter.reshape(p.batches, p.units, p.rank).sum(axis=2)
                 + np.asarray(bias, np.int64))
    y = multiply_by_quantized_multiplier(acc, p.mult2, p.shift2) + p.out_zp
    out = np.clip(y, -128, 127).astype(np.int8)
    return out, new.reshape(p.batches, p.filters * p.memory).astype(p.state_dtype)
