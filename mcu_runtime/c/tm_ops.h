/* tinymcu runtime: pooling, MEAN, elementwise ADD/SUB/MUL and SOFTMAX on int8.
 *
 * Same arithmetic as TFLite's reference integer kernels (and the Python emulator):
 * average pooling divides by the number of real pixels under the window with rounding
 * away from zero; ADD/SUB bring both inputs to a common scale with a 2^20 left shift;
 * SOFTMAX uses gemmlowp's fixed-point exp and Newton-Raphson reciprocal.
 */
#ifndef TM_OPS_H
#define TM_OPS_H

#include "tm_common.h"

typedef struct {
    int32_t kh, kw, sh, sw;
    int32_t act_min, act_max;
} tm_pool_params;

static inline void tm_avg_pool(const tm_pool_params *p, tm_box in, tm_box out,
                               int32_t pad_top, int32_t pad_left) {
    int32_t oy, ox, c, ky, kx;
    for (oy = 0; oy < out.h; ++oy) {
        for (ox = 0; ox < out.w; ++ox) {
            for (c = 0; c < out.c; ++c) {
                int32_t sum = 0, count = 0, avg;
                for (ky = 0; ky < p->kh; ++ky) {
                    const int32_t iy = oy * p->sh - pad_top + ky;
                    if (iy < 0 || iy >= in.h) {
                        continue;
                    }
                    for (kx = 0; kx < p->kw; ++kx) {
                        const int32_t ix = ox * p->sw - pad_left + kx;
                        if (ix < 0 || ix >= in.w) {
                            continue;
                        }
                        sum += tm_at(in, iy, ix)[c];
                        ++count;
                    }
                }
                if (count == 0) {
                    count = 1; /* no real pixel under the window: cannot happen for SAME */
                }
                avg = sum > 0 ? (sum + count / 2) / count : (sum - count / 2) / count;
                tm_at(out, oy, ox)[c] = tm_clamp8(avg, p->act_min, p->act_max);
            }
        }
    }
}

static inline void tm_max_pool(const tm_pool_params *p, tm_box in, tm_box out,
                               int32_t pad_top, int32_t pad_left) {
    int32_t oy, ox, c, ky, kx;
    for (oy = 0; oy < out.h; ++oy) {
        for (ox = 0; ox < out.w; ++ox) {
            for (c = 0; c < out.c; ++c) {
                int32_t m = -(1 << 20);
                for (ky = 0; ky < p->kh; ++ky) {
                    const int32_t iy = oy * p->sh - pad_top + ky;
                    if (iy < 0 || iy >= in.h) {
                        continue;
                    }
                    for (kx = 0; kx < p->kw; ++kx) {
                        const int32_t ix = ox * p->sw - pad_left + kx;
                        int32_t v;
                        if (ix < 0 || ix >= in.w) {
                            continue;
                        }
                        v = tm_at(in, iy, ix)[c];
                        m = v > m ? v : m;
                    }
                }
                tm_at(out, oy, ox)[c] = tm_clamp8(m, p->act_min, p->act_max);
            }
        }
    }
}

/* MEAN over H and W, one channel at a time in a register. `rescale` 0: input and output
 * share quantization (reference_ops::Mean: truncating division of the raw sum); 1: TFLM's
 * rescaling path with 1/count folded into (mult, shift) at code-generation time. */
typedef struct {
    int32_t rescale;
    int32_t count, mult, shift, in_zp, out_zp;
} tm_mean_params;

static inline void tm_mean_hw(const tm_mean_params *p, tm_box in, int8_t *out) {
    int32_t c, y, x;
    for (c = 0; c < in.c; ++c) {
        int32_t total = 0, v;
        for (y = 0; y < in.h; ++y) {
            for (x = 0; x < in.w; ++x) {
                total += tm_at(in, y, x)[c];
            }
        }
        if (p->rescale) {
            v = tm_requant(tm_wrap_sub(total, p->in_zp * p->count), p->mult, p->shift);
            out[c] = tm_out8(v, p->out_zp, -128, 127);
        } else {
            v = total < 0 ? -(-total / p->count) : total / p->count;
            out[c] = tm_clamp8(v, -128, 127);
        }
    }
}

enum { TM_ADD = 0, TM_SUB = 1, TM_MUL = 2 };

typedef struct {
    int32_t kind;
    int32_t a_zp, b_zp, out_zp;
    int32_t a_mult, a_shift, b_mult, b_shift; /* ADD/SUB: inputs onto the common scale */
    int32_t out_mult, out_shift;
    int32_t act_min, act_max;
} tm_eltwise_params;

/* Element by element, row-major and forward, so `out` may be `a`'s memory (in place). */
static inline void tm_eltwise(const tm_eltwise_params *p, tm_box a, tm_box b, tm_box out) {
    int32_t y, x, k;
    for (y = 0; y < out.h; ++y) {
        for (x = 0; x < out.w; ++x) {
            const int8_t *pa = tm_at(a, y, x);
            const int8_t *pb = tm_at(b, y, x);
            int8_t *po = tm_at(out, y, x);
            for (k = 0; k < out.c; ++k) {
                const int32_t va = (int32_t)pa[k] - p->a_zp;
                const int32_t vb = (int32_t)pb[k] - p->b_zp;
                int32_t raw;
                if (p->kind == TM_MUL) {
                    raw = va * vb;
                } else {
                    const int32_t sa = tm_requant(va * (1 << 20), p->a_mult, p->a_shift);
                    const int32_t sb = tm_requant(vb * (1 << 20), p->b_mult, p->b_shift);
                    raw = p->kind == TM_ADD ? tm_wrap_add(sa, sb) : tm_wrap_sub(sa, sb);
                }
                po[k] = tm_out8(tm_requant(raw, p->out_mult, p->out_shift), p->out_zp,
                                p->act_min, p->act_max);
            }
        }
    }
}

/* --- SOFTMAX: gemmlowp fixed point ------------------------------------------------------ */

/* exp(a) for a in [-1/4, 0), Q0.31 in and out: Taylor series around -1/8. */
static inline int32_t tm_exp_quarter(int32_t a) {
    const int32_t constant_term = 1895147668;
    const int32_t constant_1_over_3 = 715827883;
    const int32_t x = tm_wrap_add(a, 1 << 28);
    const int32_t x2 = tm_srdhm(x, x);
    const int32_t x3 = tm_srdhm(x2, x);
    const int32_t x4 = tm_srdhm(x2, x2);
    const int32_t x4_over_4 = tm_rdbpot(x4, 2);
    const int32_t poly = tm_rdbpot(
        tm_wrap_add(tm_srdhm(tm_wrap_add(x4_over_4, x3), constant_1_over_3), x2), 1);
    return tm_wrap_add(constant_term, tm_srdhm(constant_term, tm_wrap_add(x, poly)));
}

/* gemmlowp exp_on_negative_values for a Q5.26 input; result Q0.31. */
static inline int32_t tm_exp_neg_q5(int32_t a) {
    static const int32_t barrel[7] = {1672461947, 1302514674, 790015084, 290630308,
                                      39332535, 720401, 242};
    const int32_t one_quarter = 1 << 24;
    const int32_t a_mod = tm_wrap_sub(a & (one_quarter - 1), one_quarter);
    const int32_t remainder = tm_wrap_sub(a_mod, a);
    int32_t result = tm_exp_quarter(tm_sat_mul_pot(a_mod, 5));
    int32_t i;
    if (a == 0) {
        return INT32_MAX;
    }
    for (i = 0; i < 7; ++i) {
        if (remainder & (int32_t)((uint32_t)1 << (24 + i))) {
            result = tm_srdhm(result, barrel[i]);
        }
    }
    return result;
}

/* gemmlowp one_over_one_plus_x_for_x_in_0_1: Newton-Raphson 1/(1+a), Q0.31 in and out. */
static inline int32_t tm_one_over_one_plus_x(int32_t a) {
    const int64_t s = (int64_t)a + INT32_MAX;
    const int32_t half_denominator = (int32_t)((s + (s >= 0 ? 1 : -1)) / 2);
    int32_t x = tm_wrap_add(1515870810, tm_srdhm(half_denominator, -1010580540));
    int32_t i;
    for (i = 0; i < 3; ++i) {
        const int32_t one_minus = tm_wrap_sub(1 << 29, tm_srdhm(half_denominator, x));
        x = tm_wrap_add(x, tm_sat_mul_pot(tm_srdhm(x, one_minus), 2));
    }
    return tm_sat_mul_pot(x >> 1, 2);
}

static inline int32_t tm_clz32(uint32_t x) {
    int32_t n = 0;
    if (x == 0) {
        return 32;
    }
    while (!(x & 0x80000000u)) {
        x <<= 1;
        ++n;
    }
    return n;
}

typedef struct {
    int32_t mult, left_shift, diff_min;
} tm_softmax_params;

/* Row by row over the last axis; a row is read completely (max, sum) before it is written,
 * so `out` may be `in`'s memory. */
static inline void tm_softmax(const tm_softmax_params *p, const int8_t *in, int8_t *out,
                              int32_t rows, int32_t depth) {
    int32_t r, i;
    for (r = 0; r < rows; ++r) {
        const int8_t *x = in + r * depth;
        int8_t *y = out + r * depth;
        int32_t max = -128, sum = 0, headroom, bits_over_unit, recip;
        uint32_t usum;
        for (i = 0; i < depth; ++i) {
            max = x[i] > max ? x[i] : max;
        }
        for (i = 0; i < depth; ++i) {
            const int32_t diff = (int32_t)x[i] - max;
            if (diff >= p->diff_min) {
                const int32_t scaled = tm_srdhm(tm_wrap_shl(diff, p->left_shift), p->mult);
                sum = tm_wrap_add(sum, tm_rdbpot(tm_exp_neg_q5(scaled), 12));
            }
        }
        usum = (uint32_t)sum;
        headroom = tm_clz32(usum);
        bits_over_unit = 12 - headroom;
        recip = tm_one_over_one_plus_x(
            (int32_t)((headroom < 32 ? usum << headroom : 0u) - 0x80000000u));
        for (i = 0; i < depth; ++i) {
            const int32_t diff = (int32_t)x[i] - max;
            int32_t v = -128;
            if (diff >= p->diff_min) {
                const int32_t scaled = tm_srdhm(tm_wrap_shl(diff, p->left_shift), p->mult);
                v = tm_rdbpot_wide(tm_srdhm(recip, tm_exp_neg_q5(scaled)), bits_over_unit + 23);
                v = tm_clamp8(v - 128, -128, 127);
            }
            y[i] = (int8_t)v;
        }
    }
}

#endif /* TM_OPS_H */
