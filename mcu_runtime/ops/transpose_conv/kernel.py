"""The numpy TRANSPOSE_CONV reference kernel: TFLM's scatter of input × filter taps into an
int32 accumulator over the output, then bias, per-channel requantization and clamp."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tinymcu.mcu_runtime.ops.conv.kernel import requantize

if TYPE_CHECKING:
    from tinymcu.mcu_runtime.ops.transpose_conv import TransposeConvParams


def _taps(n_in: int, n_out: int, stride: int, pad: int, tap: int) -> tuple[slice, slice]:
    """(input slice, output slice) of the input positions whose tap ``tap`` lands inside
    the output: ``o = i·stride − pad + tap``, ``0 <= o < n_out``."""
    lo = max(0, -(-(pad - tap) // stride))
    hi = min(n_in, (n_out - 1 + pad - tap) // stride + 1)
    if hi <= lo:
        return slice(0, 0), slice(0, 0)
    o0 = lo * stride - pad + tap
    return slice(lo, hi), slice(o0, o0 + (hi - lo - 1) * stride + 1, stride)


def transpose_conv(p: TransposeConvParams, x: np.ndarray | None, w: np.ndarray,
                   bias: np.ndarray | None, out_shape: tuple[int, ...]) -> np.ndarray:
    assert x is not None
    n, oh, ow, oc = out_shape
    xc = x.astype(np.int64) - p.in_zp
    acc = np.zeros((n, oh, ow, oc), dtype=np.int64)
    for ky in range(p.kernel[0]):
        ys, oys = _taps(x.shape[1], oh, p.stride[0], p.pad[0], ky)
        for kx in range(p.kernel[1]):
            xs, oxs = _taps(x.shape[2], ow, p.stride[1], p.pad[1], kx)
            acc[:, oys, oxs, :] += xc[:, ys, xs, :] @ w[:, ky, kx, :].astype(np.int64).T
    if bias is not None:
        acc += np.asarray(bias, dtype=np.int64)
    return requantize(acc, p.mult, p.shift, p.out_zp, p.act_min, p.act_max)
