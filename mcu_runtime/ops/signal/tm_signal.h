/* tinymcu runtime: TFLM's Signal library ops (the micro_speech audio front end), integer
 * arithmetic exactly as signal/src computes it: window, FFT auto-scale, kiss_fft's 16-bit
 * fixed-point real FFT, energy, mel filter bank, square root, spectral subtraction (its
 * noise estimate is a state buffer in the arena), PCAN gain control and the log.
 *
 * Buffers are raw arena bytes (4-byte aligned, the uint64 filter-bank output included), so
 * every element is read and written with memcpy: any alignment is fine and GCC turns the
 * copies into plain loads and stores. Every constant (twiddles, weights, LUTs) comes from the
 * generator; nothing here uses float. Where TFLM's C++ relies on wrap-around of signed
 * arithmetic, the sums are formed in unsigned types so the C stays defined. */
#ifndef TM_SIGNAL_H
#define TM_SIGNAL_H

#include "tm_common.h"

static inline int16_t tm_sig_ld16(const uint8_t *p, int32_t i) {
    int16_t v;
    memcpy(&v, p + 2 * (size_t)i, 2);
    return v;
}
static inline void tm_sig_st16(uint8_t *p, int32_t i, int32_t v) {
    int16_t w = (int16_t)v; /* an int16 store keeps the low 16 bits */
    memcpy(p + 2 * (size_t)i, &w, 2);
}
static inline uint32_t tm_sig_ld32(const uint8_t *p, int32_t i) {
    return tm_load32((const int8_t *)p + 4 * (size_t)i);
}
static inline void tm_sig_st32(uint8_t *p, int32_t i, uint32_t v) {
    tm_store32((int8_t *)p + 4 * (size_t)i, v);
}
static inline uint64_t tm_sig_ld64(const uint8_t *p, int32_t i) {
    uint64_t v;
    memcpy(&v, p + 8 * (size_t)i, 8);
    return v;
}
static inline void tm_sig_st64(uint8_t *p, int32_t i, uint64_t v) {
    memcpy(p + 8 * (size_t)i, &v, 8);
}

/* MostSignificantBit32 as TFLM's GCC build has it: the bit length, 32 for zero. */
static inline int32_t tm_sig_msb32(uint32_t x) {
    int32_t n = 0;
    if (x == 0) return 32;
    while (x) {
        ++n;
        x >>= 1;
    }
    return n;
}

/* ---- SignalWindow: (x * w) >> shift, saturated, row by row ------------------------------ */
static inline void tm_signal_window(const uint8_t *in, const int16_t *w, int32_t n,
                                    int32_t rows, int32_t shift, uint8_t *out) {
    int32_t r, i;
    for (r = 0; r < rows; ++r) {
        for (i = 0; i < n; ++i) {
            int32_t v = ((int32_t)tm_sig_ld16(in, r * n + i) * w[i]) >> shift;
            tm_sig_st16(out, r * n + i, v < -32768 ? -32768 : v > 32767 ? 32767 : v);
        }
    }
}

/* ---- SignalFftAutoScale ------------------------------------------------------------------ */
static inline void tm_signal_fft_auto_scale(const uint8_t *in, int32_t n, uint8_t *out,
                                            uint8_t *scale_out) {
    int16_t top = 0;
    int32_t i, bits;
    for (i = 0; i < n; ++i) { /* MaxAbs16, including its int16 store of -(-32768) */
        int16_t v = tm_sig_ld16(in, i);
        if (v > top) {
            top = v;
        } else if (-v > top) {
            top = (int16_t)(uint16_t)(-(int32_t)v);
        }
    }
    bits = 16 - tm_sig_msb32((uint32_t)(int32_t)top) - 1;
    if (bits < 0) bits = 0;
    for (i = 0; i < n; ++i) {
        tm_sig_st16(out, i, (int32_t)((uint32_t)(int32_t)tm_sig_ld16(in, i) << bits));
    }
    memcpy(scale_out, &bits, 4);
}

/* ---- SignalRfft: kiss_fftr, 16-bit fixed point --------------------------------------------
 * Complex arrays are interleaved int16 (re, im). */
typedef struct {
    int32_t nfft;            /* the complex FFT's length: half the real one */
    int32_t stages;
    const int32_t *factors;  /* (radix, remaining length) per stage, kf_factor's order */
    const int16_t *twiddles; /* nfft complex Q15 */
    const int16_t *super_tw; /* nfft / 2 complex Q15, the real-split twiddles */
    const int16_t *perm;     /* input index of each leaf of the decimation in time */
    int32_t in_len, rows;    /* samples per input row (zero-padded to 2 * nfft), rows */
} tm_rfft_params;

/* kiss_fft's sround: a Q30 sum back to Q15, the int32 add wrapping as in C. */
static inline int32_t tm_sig_sround(int32_t x) {
    return (int32_t)(int16_t)((int32_t)((uint32_t)x + 16384u) >> 15);
}
static inline int32_t tm_sig_fixdiv(int32_t x, int32_t k) {
    return tm_sig_sround(x * (32767 / k));
}
static inline void tm_sig_cmul(int32_t ar, int32_t ai, int32_t br, int32_t bi, int32_t *r,
                               int32_t *i) {
    *r = tm_sig_sround(ar * br - ai * bi);
    *i = tm_sig_sround(ar * bi + ai * br);
}
static inline int32_t tm_sig_w16(int32_t v) { return (int32_t)(int16_t)v; }

static inline void tm_sig_bfly2(uint8_t *f, int32_t base, int32_t stride, const int16_t *tw,
                                int32_t m) {
    int32_t k;
    for (k = 0; k < m; ++k) {
        int32_t a = base + k, b = base + k + m, tr, ti;
        int32_t ar = tm_sig_fixdiv(tm_sig_ld16(f, 2 * a), 2);
        int32_t ai = tm_sig_fixdiv(tm_sig_ld16(f, 2 * a + 1), 2);
        int32_t br = tm_sig_fixdiv(tm_sig_ld16(f, 2 * b), 2);
        int32_t bi = tm_sig_fixdiv(tm_sig_ld16(f, 2 * b + 1), 2);
        tm_sig_cmul(br, bi, tw[2 * k * stride], tw[2 * k * stride + 1], &tr, &ti);
        tm_sig_st16(f, 2 * b, ar - tr);
        tm_sig_st16(f, 2 * b + 1, ai - ti);
        tm_sig_st16(f, 2 * a, ar + tr);
        tm_sig_st16(f, 2 * a + 1, ai + ti);
    }
}

static inline void tm_sig_bfly4(uint8_t *f, int32_t base, int32_t stride, const int16_t *tw,
                                int32_t m) {
    int32_t k, j;
    for (k = 0; k < m; ++k) {
        int32_t r[4], im[4], s0r, s0i, s1r, s1i, s2r, s2i, s3r, s3i, s4r, s4i, s5r, s5i;
        for (j = 0; j < 4; ++j) {
            r[j] = tm_sig_fixdiv(tm_sig_ld16(f, 2 * (base + k + j * m)), 4);
            im[j] = tm_sig_fixdiv(tm_sig_ld16(f, 2 * (base + k + j * m) + 1), 4);
        }
        tm_sig_cmul(r[1], im[1], tw[2 * k * stride], tw[2 * k * stride + 1], &s0r, &s0i);
        tm_sig_cmul(r[2], im[2], tw[4 * k * stride], tw[4 * k * stride + 1], &s1r, &s1i);
        tm_sig_cmul(r[3], im[3], tw[6 * k * stride], tw[6 * k * stride + 1], &s2r, &s2i);
        s5r = tm_sig_w16(r[0] - s1r);
        s5i = tm_sig_w16(im[0] - s1i);
        r[0] = tm_sig_w16(r[0] + s1r);
        im[0] = tm_sig_w16(im[0] + s1i);
        s3r = tm_sig_w16(s0r + s2r);
        s3i = tm_sig_w16(s0i + s2i);
        s4r = tm_sig_w16(s0r - s2r);
        s4i = tm_sig_w16(s0i - s2i);
        tm_sig_st16(f, 2 * (base + k + 2 * m), r[0] - s3r);
        tm_sig_st16(f, 2 * (base + k + 2 * m) + 1, im[0] - s3i);
        tm_sig_st16(f, 2 * (base + k), r[0] + s3r);
        tm_sig_st16(f, 2 * (base + k) + 1, im[0] + s3i);
        tm_sig_st16(f, 2 * (base + k + m), s5r + s4i);
        tm_sig_st16(f, 2 * (base + k + m) + 1, s5i - s4r);
        tm_sig_st16(f, 2 * (base + k + 3 * m), s5r - s4i);
        tm_sig_st16(f, 2 * (base + k + 3 * m) + 1, s5i + s4r);
    }
}

/* kf_work without recursion (the firmware's stack bound must be provable): the leaves'
 * order is the generator's permutation, then each stage's butterflies run from the
 * innermost out, over every contiguous block of radix * m outputs. */
static inline void tm_sig_kf_work(const tm_rfft_params *p, uint8_t *out, const uint8_t *in) {
    int32_t j, s, b;
    for (j = 0; j < p->nfft; ++j) {
        tm_sig_st16(out, 2 * j, tm_sig_ld16(in, 2 * p->perm[j]));
        tm_sig_st16(out, 2 * j + 1, tm_sig_ld16(in, 2 * p->perm[j] + 1));
    }
    for (s = p->stages - 1; s >= 0; --s) {
        int32_t radix = p->factors[2 * s], m = p->factors[2 * s + 1];
        int32_t stride = p->nfft / (radix * m);
        for (b = 0; b < stride; ++b) {
            if (radix == 2) {
                tm_sig_bfly2(out, b * radix * m, stride, p->twiddles, m);
            } else {
                tm_sig_bfly4(out, b * radix * m, stride, p->twiddles, m);
            }
        }
    }
}

/* scratch: 2 * nfft int16 of zero-padded frame, then nfft complex of FFT result. */
static inline void tm_signal_rfft(const tm_rfft_params *p, const uint8_t *in, uint8_t *out,
                                  uint8_t *scratch) {
    int32_t n = p->nfft, row, k;
    uint8_t *work = scratch, *tmp = scratch + 4 * (size_t)n;
    for (row = 0; row < p->rows; ++row) {
        const uint8_t *x = in + 2 * (size_t)row * (size_t)p->in_len;
        uint8_t *y = out + 4 * (size_t)row * (size_t)(n + 1);
        int32_t dr, di;
        memcpy(work, x, 2 * (size_t)p->in_len);
        memset(work + 2 * (size_t)p->in_len, 0, 2 * (size_t)(2 * n - p->in_len));
        tm_sig_kf_work(p, tmp, work);
        dr = tm_sig_fixdiv(tm_sig_ld16(tmp, 0), 2);
        di = tm_sig_fixdiv(tm_sig_ld16(tmp, 1), 2);
        tm_sig_st16(y, 0, dr + di);
        tm_sig_st16(y, 1, 0);
        tm_sig_st16(y, 2 * n, dr - di);
        tm_sig_st16(y, 2 * n + 1, 0);
        for (k = 1; k <= n / 2; ++k) {
            int32_t pr = tm_sig_fixdiv(tm_sig_ld16(tmp, 2 * k), 2);
            int32_t pi = tm_sig_fixdiv(tm_sig_ld16(tmp, 2 * k + 1), 2);
            int32_t qr = tm_sig_fixdiv(tm_sig_ld16(tmp, 2 * (n - k)), 2);
            int32_t qi = tm_sig_fixdiv(tm_sig_w16(-(int32_t)tm_sig_ld16(tmp, 2 * (n - k) + 1)),
                                       2);
            int32_t f1r = tm_sig_w16(pr + qr), f1i = tm_sig_w16(pi + qi);
            int32_t f2r = tm_sig_w16(pr - qr), f2i = tm_sig_w16(pi - qi), tr, ti;
            tm_sig_cmul(f2r, f2i, p->super_tw[2 * (k - 1)], p->super_tw[2 * (k - 1) + 1], &tr,
                        &ti);
            tm_sig_st16(y, 2 * k, (f1r + tr) >> 1);
            tm_sig_st16(y, 2 * k + 1, (f1i + ti) >> 1);
            tm_sig_st16(y, 2 * (n - k), (f1r - tr) >> 1);
            tm_sig_st16(y, 2 * (n - k) + 1, (ti - f1i) >> 1);
        }
    }
}

/* ---- SignalEnergy: re^2 + im^2 over [start, end); 0 elsewhere (TFLM leaves those) -------- */
static inline void tm_signal_energy(const uint8_t *in, int32_t bins, int32_t start,
                                    int32_t end, uint8_t *out) {
    int32_t i;
    for (i = 0; i < bins; ++i) {
        uint32_t e = 0;
        if (i >= start && i < end) {
            int32_t re = tm_sig_ld16(in, 2 * i), im = tm_sig_ld16(in, 2 * i + 1);
            e = (uint32_t)(re * re) + (uint32_t)(im * im);
        }
        tm_sig_st32(out, i, e);
    }
}

/* ---- SignalFilterBank: weights into channel c, unweights into c + 1, in uint64 ----------- */
static inline void tm_signal_filter_bank(const uint8_t *in, const int16_t *w,
                                         const int16_t *uw, const int16_t *freq_starts,
                                         const int16_t *weight_starts, const int16_t *widths,
                                         int32_t channels, uint8_t *out) {
    uint64_t acc = 0, next = 0;
    int32_t c, j;
    for (c = 0; c <= channels; ++c) {
        for (j = 0; j < widths[c]; ++j) {
            uint64_t x = tm_sig_ld32(in, freq_starts[c] + j);
            acc += (uint64_t)(int64_t)w[weight_starts[c] + j] * x;
            next += (uint64_t)(int64_t)uw[weight_starts[c] + j] * x;
        }
        if (c > 0) tm_sig_st64(out, c - 1, acc); /* channel 0 is TFLM's scratch */
        acc = next;
        next = 0;
    }
}

/* ---- SignalFilterBankSquareRoot: Sqrt64 (digit by digit, rounded) >> scale bits -------- */
static inline uint64_t tm_sig_sqrt_digits(uint64_t num, int32_t bits) {
    uint64_t res = 0, bit;
    int32_t len = 0, top, steps;
    uint64_t t = num;
    while (t) {
        ++len;
        t >>= 1;
    }
    top = (bits - len) | 1;
    bit = (uint64_t)1 << (bits - 1 - top);
    for (steps = (bits - 1 - top) / 2 + 1; steps > 0; --steps) {
        if (num >= res + bit) {
            num -= res + bit;
            res = (res >> 1) + bit;
        } else {
            res >>= 1;
        }
        bit >>= 2;
    }
    if (num > res && res != ((uint64_t)1 << (bits / 2)) - 1) ++res;
    return res;
}
static inline uint32_t tm_sig_sqrt64(uint64_t num) {
    if (num == 0) return 0;
    return (uint32_t)tm_sig_sqrt_digits(num, (num >> 32) == 0 ? 32 : 64);
}
static inline void tm_signal_filter_bank_sqrt(const uint8_t *in, const uint8_t *scale_bits,
                                              int32_t n, uint8_t *out) {
    int32_t i, s;
    memcpy(&s, scale_bits, 4);
    for (i = 0; i < n; ++i) tm_sig_st32(out, i, tm_sig_sqrt64(tm_sig_ld64(in, i)) >> (s & 31));
}

/* ---- SignalFilterBankSpectralSubtraction (noise: the state buffer, updated in place) ----- */
typedef struct {
    uint32_t smoothing, one_minus, alt_smoothing, alt_one_minus, min_signal_remaining;
    int32_t smoothing_bits, bits, clamping, channels;
} tm_spectral_sub_params;

static inline void tm_signal_spectral_sub(const tm_spectral_sub_params *p, const uint8_t *in,
                                          uint8_t *noise, uint8_t *out, uint8_t *noise_out) {
    int32_t i;
    for (i = 0; i < p->channels; ++i) {
        uint32_t x = tm_sig_ld32(in, i), up = x << p->smoothing_bits;
        uint32_t sm = (i & 1) ? p->alt_smoothing : p->smoothing;
        uint32_t om = (i & 1) ? p->alt_one_minus : p->one_minus;
        uint32_t est = (uint32_t)(((uint64_t)up * sm + (uint64_t)tm_sig_ld32(noise, i) * om)
                                  >> p->bits);
        uint32_t under = est, floor_, sub;
        if (under > up) {
            under = up;
            if (p->clamping) est = up;
        }
        tm_sig_st32(noise, i, est);
        floor_ = (uint32_t)(((uint64_t)x * p->min_signal_remaining) >> p->bits);
        sub = (up - under) >> p->smoothing_bits;
        tm_sig_st32(out, i, sub > floor_ ? sub : floor_);
        tm_sig_st32(noise_out, i, est);
    }
}

/* ---- SignalPCAN ---------------------------------------------------------------------------- */
static inline int16_t tm_sig_wide_dynamic(uint32_t x, const int16_t *lut) {
    int32_t interval, frac;
    uint32_t res;
    const int16_t *l;
    if (x <= 2) return lut[x];
    interval = tm_sig_msb32(x);
    l = lut + 4 * interval - 6;
    frac = (int32_t)(((interval < 11) ? (x << (11 - interval)) : (x >> (interval - 11)))
                     & 0x3FF);
    res = (uint32_t)(((int32_t)l[2] * frac) >> 5);
    res += (uint32_t)(int32_t)l[1] << 5;
    res *= (uint32_t)frac;
    res = (uint32_t)((int32_t)(res + (1u << 14)) >> 15);
    return (int16_t)(res + (uint32_t)(int32_t)l[0]);
}
static inline void tm_signal_pcan(const uint8_t *in, const uint8_t *noise, const int16_t *lut,
                                  int32_t snr_shift, int32_t n, uint8_t *out) {
    int32_t i;
    for (i = 0; i < n; ++i) {
        uint32_t gain = (uint32_t)(int32_t)tm_sig_wide_dynamic(tm_sig_ld32(noise, i), lut);
        uint32_t snr = (uint32_t)(((uint64_t)tm_sig_ld32(in, i) * gain) >> snr_shift);
        /* PcanShrink: SNR in Q12 to the output's Q6 */
        uint32_t y = snr < (2u << 12) ? (snr * snr) >> 20 : (snr >> 6) - (1u << 6);
        tm_sig_st32(out, i, y);
    }
}

/* ---- SignalFilterBankLog: Log32 by octave plus a 128-segment correction table ----------- */
static inline uint32_t tm_sig_log32(uint32_t x, uint32_t out_scale, const uint16_t *lut) {
    uint32_t integer = (uint32_t)tm_sig_msb32(x) - 1, seg, log2, loge;
    int32_t frac = (int32_t)(x - (1u << integer)), c0, c1, rel;
    if (integer < 16) {
        frac = (int32_t)((uint32_t)frac << (16 - integer));
    } else {
        frac >>= integer - 16;
    }
    seg = (uint32_t)frac >> 9;
    c0 = lut[seg];
    c1 = lut[seg + 1];
    rel = ((c1 - c0) * (frac - (int32_t)(512 * seg))) >> 16;
    log2 = (integer << 16) + (uint32_t)(frac + c0 + rel);
    loge = (uint32_t)(((uint64_t)45426 * log2 + 32768u) >> 16);
    return (out_scale * loge + 32768u) >> 16;
}
static inline void tm_signal_filter_bank_log(const uint8_t *in, int32_t n,
                                             int32_t correction_bits, uint32_t out_scale,
                                             const uint16_t *lut, uint8_t *out) {
    int32_t i;
    for (i = 0; i < n; ++i) {
        uint32_t scaled = tm_sig_ld32(in, i) << correction_bits, v = 0;
        if (scaled > 1) {
            v = tm_sig_log32(scaled, out_scale, lut);
            if (v > 32767u) v = 32767u;
        }
        tm_sig_st16(out, i, (int32_t)v);
    }
}

#endif /* TM_SIGNAL_H */
