"""Numpy reference kernels of TFLM's Signal library (``signal/src``), bit-exact.

Each is a pure function of its params and inputs. C's integer semantics are kept on
purpose: int16/uint32 stores wrap, uint64 accumulators wrap, right shifts of signed
values are arithmetic — the same values a Cortex-M build of TFLM computes. Scalar loops
stay in Python where TFLM's loop carries a dependency (the max-abs scan, square roots);
everything else is vectorised.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from tinymcu.mcu_runtime.ops.signal import (
        EnergyParams,
        FilterBankLogParams,
        FilterBankParams,
        PcanParams,
        RfftParams,
        SpectralSubtractionParams,
        WindowParams,
    )

_M32 = (1 << 32) - 1


def wrap16(x: np.ndarray) -> np.ndarray:
    """int16 store of a wider integer (two's complement wrap)."""
    return np.asarray(x).astype(np.int64).astype(np.uint16).view(np.int16)


def msb32(x: int) -> int:
    """TFLM's ``MostSignificantBit32``: bit length, except 32 for zero (its GCC path)."""
    return x.bit_length() if x else 32


def window(p: WindowParams, x: np.ndarray) -> np.ndarray:
    """``ApplyWindow`` on every row: (x · w) >> shift, saturated to int16."""
    rows = x.reshape(-1, p.weights.size).astype(np.int32)
    y = (rows * p.weights.astype(np.int32)) >> p.shift
    return np.clip(y, -32768, 32767).astype(np.int16).reshape(x.shape)


def max_abs16(x: np.ndarray) -> int:
    """``MaxAbs16`` with its int16 quirk: -(-32768) stored back to int16 is -32768, after
    which any later value is larger, so the scan is replayed literally when it occurs."""
    if not np.any(x == -32768):
        return int(np.max(np.abs(x.astype(np.int32)), initial=0))
    best = 0
    for v in x.astype(np.int32).tolist():
        if v > best:
            best = v
        elif -v > best:
            best = ((-v + 32768) & 0xFFFF) - 32768
    return best


def fft_auto_scale(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``FftAutoScale``: shift the frame left so its largest magnitude uses 15 bits; the
    shift is returned as well (FilterBankSquareRoot undoes it)."""
    top = max_abs16(x.ravel())
    # MostSignificantBit32 of the int16 widened to uint32 (a negative max is 32 bits)
    bits = 16 - msb32(top & _M32) - 1
    scale = max(bits, 0)
    return wrap16(x.astype(np.int64) * (1 << scale)), np.array(scale, np.int32)


def _sround(x: np.ndarray) -> np.ndarray:
    """kiss_fft's fixed-point rounding of a Q30 product sum back to Q15: the int32 sum
    plus half, shifted, stored to int16 (each step wrapping as in C)."""
    total = (np.asarray(x, np.int64) + (1 << 14)).astype(np.uint32).view(np.int32)
    return wrap16(total.astype(np.int64) >> 15)


def _cmul(ar: np.ndarray, ai: np.ndarray, br: np.ndarray, bi: np.ndarray
          ) -> tuple[np.ndarray, np.ndarray]:
    ar, ai = ar.astype(np.int64), ai.astype(np.int64)
    return _sround(ar * br - ai * bi), _sround(ar * bi + ai * br)


def _fixdiv(x: np.ndarray, k: int) -> np.ndarray:
    """``C_FIXDIV``: multiply by (32767 / k) in Q15 — kiss_fft's per-stage scaling."""
    return _sround(x.astype(np.int64) * (32767 // k))


def _work(p: RfftParams, xr: np.ndarray, xi: np.ndarray, stage: int
          ) -> tuple[np.ndarray, np.ndarray]:
    """kiss_fft's ``kf_work``: decimation in time over ``p.factors[stage:]``; the
    sub-sequence of the stage's q-th block is every radix-th input from q."""
    radix, m = p.factors[stage]
    if m == 1:
        fr, fi = xr.copy(), xi.copy()
    else:
        parts = [_work(p, xr[q::radix], xi[q::radix], stage + 1) for q in range(radix)]
        fr = np.concatenate([a for a, _ in parts])
        fi = np.concatenate([b for _, b in parts])
    stride = p.nfft // (radix * m)
    k = np.arange(m)
    tr, ti = p.twiddles_r, p.twiddles_i
    if radix == 2:
        a_r, a_i = _fixdiv(fr[:m], 2), _fixdiv(fi[:m], 2)
        b_r, b_i = _fixdiv(fr[m:], 2), _fixdiv(fi[m:], 2)
        t_r, t_i = _cmul(b_r, b_i, tr[k * stride], ti[k * stride])
        return (np.concatenate([wrap16(a_r + t_r.astype(np.int32)),
                                wrap16(a_r - t_r.astype(np.int32))]),
                np.concatenate([wrap16(a_i + t_i.astype(np.int32)),
                                wrap16(a_i - t_i.astype(np.int32))]))
    # radix 4 (the forward transform)
    q = [(_fixdiv(fr[j * m:(j + 1) * m], 4).astype(np.int32),
          _fixdiv(fi[j * m:(j + 1) * m], 4).astype(np.int32)) for j in range(4)]
    s0 = [v.astype(np.int32) for v in _cmul(*q[1], tr[k * stride], ti[k * stride])]
    s1 = [v.astype(np.int32) for v in _cmul(*q[2], tr[2 * k * stride], ti[2 * k * stride])]
    s2 = [v.astype(np.int32) for v in _cmul(*q[3], tr[3 * k * stride], ti[3 * k * stride])]
    s5 = [wrap16(q[0][c] - s1[c]).astype(np.int32) for c in range(2)]
    f0 = [wrap16(q[0][c] + s1[c]).astype(np.int32) for c in range(2)]
    s3 = [wrap16(s0[c] + s2[c]).astype(np.int32) for c in range(2)]
    s4 = [wrap16(s0[c] - s2[c]).astype(np.int32) for c in range(2)]
    out_r = [wrap16(f0[0] + s3[0]), wrap16(s5[0] + s4[1]), wrap16(f0[0] - s3[0]),
             wrap16(s5[0] - s4[1])]
    out_i = [wrap16(f0[1] + s3[1]), wrap16(s5[1] - s4[0]), wrap16(f0[1] - s3[1]),
             wrap16(s5[1] + s4[0])]
    return np.concatenate(out_r), np.concatenate(out_i)


def rfft_row(p: RfftParams, frame: np.ndarray) -> np.ndarray:
    """kiss_fftr in 16-bit fixed point: a half-length complex FFT of the frame packed as
    (even, odd) pairs, then the split into the ``nfft + 1`` bins of the real transform."""
    work = np.zeros(2 * p.nfft, np.int16)
    work[:frame.size] = frame
    zr, zi = _work(p, work[0::2], work[1::2], 0)
    n = p.nfft
    out_r = np.zeros(n + 1, np.int32)
    out_i = np.zeros(n + 1, np.int32)
    dc_r, dc_i = (int(v) for v in (_fixdiv(zr[:1], 2)[0], _fixdiv(zi[:1], 2)[0]))
    out_r[0] = dc_r + dc_i
    out_r[n] = dc_r - dc_i
    k = np.arange(1, n // 2 + 1)
    pk_r, pk_i = _fixdiv(zr[k], 2), _fixdiv(zi[k], 2)
    pn_r, pn_i = _fixdiv(zr[n - k], 2), _fixdiv(wrap16(-zi[n - k].astype(np.int32)), 2)
    f1_r = wrap16(pk_r.astype(np.int32) + pn_r).astype(np.int32)
    f1_i = wrap16(pk_i.astype(np.int32) + pn_i).astype(np.int32)
    f2_r = wrap16(pk_r.astype(np.int32) - pn_r)
    f2_i = wrap16(pk_i.astype(np.int32) - pn_i)
    t_r, t_i = (v.astype(np.int32) for v in _cmul(f2_r, f2_i, p.super_r[k - 1],
                                                  p.super_i[k - 1]))
    out_r[k], out_i[k] = (f1_r + t_r) >> 1, (f1_i + t_i) >> 1
    out_r[n - k], out_i[n - k] = (f1_r - t_r) >> 1, (t_i - f1_i) >> 1  # n/2 written twice
    y = np.empty(2 * (n + 1), np.int16)
    y[0::2], y[1::2] = wrap16(out_r), wrap16(out_i)
    return y


def rfft(p: RfftParams, x: np.ndarray, out_shape: tuple[int, ...]) -> np.ndarray:
    rows = x.reshape(-1, x.shape[-1])
    return np.stack([rfft_row(p, r) for r in rows]).reshape(out_shape)


def energy(p: EnergyParams, x: np.ndarray) -> np.ndarray:
    """``SpectrumToEnergy`` over bins [start, end): re² + im² as uint32. TFLM leaves the
    other bins as they were in the arena; here (and in C) they are 0, deterministically."""
    z = x.astype(np.int64).reshape(-1, 2)
    y = np.zeros(z.shape[0], np.uint32)
    s = slice(p.start, p.end)
    y[s] = ((z[s, 0] ** 2 + z[s, 1] ** 2) & _M32).astype(np.uint32)
    return y


def filter_bank(p: FilterBankParams, x: np.ndarray) -> np.ndarray:
    """``FilterbankAccumulateChannels``: each bin's energy weighted into its channel and
    unweighted into the next; all in uint64 (weights widened modulo 2^64 as in C)."""
    xs = x.astype(np.uint64)
    with np.errstate(over="ignore"):
        return (p.weight_matrix @ xs) + (p.unweight_matrix @ xs)


def sqrt32(n: int) -> int:
    """``Sqrt32``: the floor square root, rounded up when the remainder exceeds the root
    (unless the root is already 0xFFFF)."""
    r = math.isqrt(n)
    return r + 1 if n - r * r > r and r != 0xFFFF else r


def sqrt64(n: int) -> int:
    """``Sqrt64``: ``Sqrt32`` below 2^32 (TFLM's shortcut), else the same rounding at 32
    bits."""
    if n >> 32 == 0:
        return sqrt32(n)
    r = math.isqrt(n)
    return r + 1 if n - r * r > r and r != 0xFFFFFFFF else r


def filter_bank_square_root(x: np.ndarray, scale_bits: int) -> np.ndarray:
    """``FilterbankSqrt``: the channel amplitudes, with FftAutoScale's gain shifted out."""
    return np.array([(sqrt64(int(v)) >> scale_bits) & _M32 for v in x.ravel().tolist()],
                    np.uint32).reshape(x.shape)


def spectral_subtraction(p: SpectralSubtractionParams, x: np.ndarray, noise: np.ndarray
                         ) -> tuple[np.ndarray, np.ndarray]:
    """``FilterbankSpectralSubtraction``: update each channel's smoothed noise estimate
    (even and odd channels use their own coefficients) and subtract it, keeping at least
    ``min_signal_remaining`` of the signal. Returns (output, new noise estimate)."""
    xi = x.astype(np.uint64)
    up = (xi << np.uint64(p.smoothing_bits)) & np.uint64(_M32)
    est = ((up * p.smoothing + noise.astype(np.uint64) * p.one_minus)
           >> np.uint64(p.bits)) & np.uint64(_M32)
    over = est > up
    sub_from = np.where(over, up, est)
    new_noise = np.where(over, up, est) if p.clamping else est
    floor = ((xi * np.uint64(p.min_signal_remaining)) >> np.uint64(p.bits)) & np.uint64(_M32)
    subtracted = (up - sub_from) >> np.uint64(p.smoothing_bits)
    return (np.maximum(subtracted, floor).astype(np.uint32), new_noise.astype(np.uint32))


def wide_dynamic(x: int, lut: np.ndarray) -> int:
    """``WideDynamicFunction``: PCAN's gain for noise level ``x``, a quadratic per octave
    from the LUT, in TFLM's int32 arithmetic (wraps kept)."""
    if x <= 2:
        return int(lut[x])
    interval = msb32(x)
    base = 4 * interval - 6
    c0, c1, c2 = (int(v) for v in lut[base:base + 3])
    frac = ((x << (11 - interval)) if interval < 11 else (x >> (interval - 11))) & 0x3FF
    res = (c2 * frac) >> 5
    res = _i32(res + _i32((c1 & _M32) << 5))
    res = _i32(res * frac)
    res = _i32(res + (1 << 14)) >> 15
    return ((res + c0 + 32768) & 0xFFFF) - 32768


def _i32(v: int) -> int:
    v &= _M32
    return v - (1 << 32) if v >> 31 else v


def pcan_shrink(x: int) -> int:
    """``PcanShrink``: x²/4 below 2, x - 1 above (SNR in Q12 → output in Q6)."""
    if x < 2 << 12:
        return ((x * x) & _M32) >> (2 + 2 * 12 - 6)
    return ((x >> (12 - 6)) - (1 << 6)) & _M32


def pcan(p: PcanParams, x: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """``ApplyPcanAutoGainControlFixed``: per-channel energy normalisation."""
    out = []
    for v, n in zip(x.ravel().tolist(), noise.ravel().tolist(), strict=True):
        gain = wide_dynamic(int(n), p.lut) & _M32  # int16 widened to uint32
        snr = ((int(v) * gain) >> p.snr_shift) & _M32
        out.append(pcan_shrink(snr))
    return np.array(out, np.uint32).reshape(x.shape)


def log32(x: int, out_scale: int, lut: np.ndarray) -> int:
    """``Log32``: ln(x)·out_scale in fixed point from log2 by octave and a 128-segment
    correction table, with TFLM's uint32 wraps."""
    integer = x.bit_length() - 1
    frac = x - (1 << integer)
    frac = frac << (16 - integer) if integer < 16 else frac >> (integer - 16)
    seg = frac >> 9
    c0, c1 = int(lut[seg]), int(lut[seg + 1])
    rel = _i32((c1 - c0) * (frac - 512 * seg)) >> 16
    log2 = ((integer << 16) + ((frac + c0 + rel) & _M32)) & _M32
    loge = ((45426 * log2 + 32768) >> 16) & _M32
    return ((out_scale * loge & _M32) + 32768 & _M32) >> 16


def filter_bank_log(p: FilterBankLogParams, x: np.ndarray) -> np.ndarray:
    """``FilterbankLog``: log of each channel (after the correction shift), saturated to
    int16; 0 for inputs <= 1."""
    out = []
    for v in x.ravel().tolist():
        scaled = (int(v) << p.correction_bits) & _M32
        out.append(min(log32(scaled, p.output_scale, p.lut), 32767) if scaled > 1 else 0)
    return np.array(out, np.int16).reshape(x.shape)
