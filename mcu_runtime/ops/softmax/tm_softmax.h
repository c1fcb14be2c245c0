/* tinymcu runtime: SOFTMAX on int8 with gemmlowp's fixed-point exp and Newton-Raphson
 * reciprocal (TFLite's reference integer kernel). */
#ifndef TM_SOFTMAX_H
#define TM_SOFTMAX_H

#include "tm_common.h"

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
/* One row; out_bits 8 writes int8 (zero point -128), 16 writes int16 (zero point -32768). */
static inline void tm_softmax_row(const tm_softmax_params *p, const int8_t *x, void *out,
                                  int32_t depth, int32_t out_bits) {
    const int32_t lo = out_bits == 16 ? -32768 : -128;
    const int32_t hi = out_bits == 16 ? 32767 : 127;
    int32_t max = -128, sum = 0, headroom, bits_over_unit, recip, i;
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
        int32_t v = lo;
        if (diff >= p->diff_min) {
            const int32_t scaled = tm_srdhm(tm_wrap_shl(diff, p->left_shift), p->mult);
            v = tm_rdbpot_wide(tm_srdhm(recip, tm_exp_neg_q5(scaled)),
                               bits_over_unit + 31 - out_bits) + lo;
            v = v < lo ? lo : (v > hi ? hi : v);
        }
        if (out_bits == 16) {
            ((int16_t *)out)[i] = (int16_t)v;
        } else {
            ((int8_t *)out)[i] = (int8_t)v;
        }
    }
}

static inline void tm_softmax(const tm_softmax_params *p, const int8_t *in, int8_t *out,
                              int32_t rows, int32_t depth) {
    int32_t r;
    for (r = 0; r < rows; ++r) {
        tm_softmax_row(p, in + r * depth, out + r * depth, depth, 8);
    }
}

/* int8 in, int16 out (TFLM's int16 softmax output, scale 1/65536, zero point -32768). */
static inline void tm_softmax16(const tm_softmax_params *p, const int8_t *in, int16_t *out,
                                int32_t rows, int32_t depth) {
    int32_t r;
    for (r = 0; r < rows; ++r) {
        tm_softmax_row(p, in + r * depth, out + r * depth, depth, 16);
    }
}

#endif /* TM_SOFTMAX_H */
