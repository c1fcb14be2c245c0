"""The numpy UNIDIRECTIONAL_SEQUENCE_LSTM reference kernel (TFLM's 8x8→16 integer LSTM).

Vectorised over the batch: TFLM steps batch by batch (batch-major) or all batches per time
step (time-major), and every operation is per row or per element, so both orders give these
values. int64 arrays carry int32/int16 values.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tinymcu.mcu_runtime.ops.lstm.table import SIGMOID_TABLE
from tinymcu.mcu_runtime.quant import multiply_by_quantized_multiplier, wrap32

if TYPE_CHECKING:
    from tinymcu.mcu_runtime.ops.lstm import LstmParams

I16 = (-32768, 32767)


def sigmoid16(x: np.ndarray) -> np.ndarray:
    """``reference_integer_ops::Logistic`` on int16 Q3.12 (input multiplier 3, no shift)."""
    v = x.astype(np.int64) * 3
    a = np.abs(v)
    uh = a >> 9
    idx = np.minimum(uh, 254)
    ua, ub = SIGMOID_TABLE[idx], SIGMOID_TABLE[idx + 1]
    r = np.where(uh >= 255, 0x7FFF << 10, (ua << 9) + (a & 0x1FF) * (ub - ua))
    r = np.where(v >= 0, r + (1 << 9), (1 << 25) - r + (1 << 9) - 1)
    return (r >> 10).astype(np.int64)


def tanh16(x: np.ndarray, mult: int, shift: int) -> np.ndarray:
    """``reference_integer_ops::Tanh`` on int16 with input ``(x·mult + round) >> shift``."""
    rnd = (1 << (shift - 1)) if shift > 0 else 0
    v = (x.astype(np.int64) * mult + rnd) >> shift
    a = np.abs(v)
    uh = a >> 8
    idx = np.minimum(uh, 254)
    ua, ub = SIGMOID_TABLE[idx], SIGMOID_TABLE[idx + 1]
    r = np.where(uh >= 255, 0xFFFF << 8, (ua << 8) + (a & 0xFF) * (ub - ua))
    r = np.where(v >= 0, r - (1 << 23) + (1 << 7), -r + (1 << 23) + (1 << 7) - 1)
    return wrap16(r >> 8)


def wrap16(x: np.ndarray) -> np.ndarray:
    """C's narrowing store of an int32 into an int16 (two's complement)."""
    return ((x + 32768) & 0xFFFF) - 32768


def fc16(x: np.ndarray, w: np.ndarray, bias: np.ndarray | None, in_zp: int, mult: int,
         shift: int) -> np.ndarray:
    """int8 × int8 (+ int32 bias) → int16 fully connected, output scale 2^-12, zero point 0."""
    acc = wrap32((x.astype(np.int64) - in_zp) @ w.astype(np.int64).T)
    if bias is not None:
        acc = wrap32(acc + bias.astype(np.int64))
    return np.clip(multiply_by_quantized_multiplier(acc, mult, shift), *I16)


def mul(a: np.ndarray, b: np.ndarray, mult: int, shift: int, zp: int, lo: int,
        hi: int) -> np.ndarray:
    """``MulElementwise`` of two symmetric int16 vectors into [lo, hi]."""
    return np.clip(multiply_by_quantized_multiplier(a * b, mult, shift) + zp, lo, hi)


def lstm(p: LstmParams, inputs: list[np.ndarray | None]
         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(output, new hidden state, new cell state) for one invocation over every time step."""
    x = inputs[0]
    assert x is not None
    w_in = [np.asarray(inputs[1 + g]) for g in range(4)]      # input → gate (S, I)
    w_rec = [np.asarray(inputs[5 + g]) for g in range(4)]     # hidden → gate (S, S)
    bias = [np.asarray(inputs[12 + g]) for g in range(4)]     # (S,)
    h_in, c_in = inputs[18], inputs[19]
    assert h_in is not None and c_in is not None
    b, t, n, s = p.batches, p.steps, p.n_in, p.n_state
    seq = x.reshape(t, b, n) if p.time_major else x.reshape(b, t, n).transpose(1, 0, 2)
    h = np.asarray(h_in).reshape(b, s).astype(np.int64)
    c = np.asarray(c_in).reshape(b, s).astype(np.int64)
    out = np.empty((t, b, s), np.int64)

    def gate(g: int, xt: np.ndarray) -> np.ndarray:
        a = fc16(xt, w_in[g], bias[g], p.in_zp, int(p.in_mult[g]), int(p.in_shift[g]))
        r = fc16(h, w_rec[g], None, p.hidden_zp, int(p.rec_mult[g]), int(p.rec_shift[g]))
        z = np.clip(a + r, *I16)
        return tanh16(z, 3, 0) if g == 2 else sigmoid16(z)

    for k in range(t):
        xt = seq[k]
        i_g, f_g, g_g = gate(0, xt), gate(1, xt), gate(2, xt)
        c = mul(f_g, c, p.forget_mult, p.forget_shift, 0, *I16)
        c = np.clip(c + mul(i_g, g_g, p.input_mult, p.input_shift, 0, *I16), *I16)
        if p.cell_clip > 0:
            c = np.clip(c, -p.cell_clip, p.cell_clip)
        o_g = gate(3, xt)
        h = mul(tanh16(c, p.tanh_mult, p.tanh_shift), o_g, p.output_mult, p.output_shift,
                p.hidden_zp, -128, 127)
        out[k] = h
    y = out if p.time_major else out.transpose(1, 0, 2)
    return y.astype(np.int8), h.astype(np.int8), c.astype(np.int16)
