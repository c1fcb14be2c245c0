/* tinymcu runtime: L2_NORMALIZATION int8 over the last axis (TFLite
 * reference_integer_ops::L2Normalization with GetInvSqrtQuantizedMultiplierExp). The
 * output is in 1/128 steps with zero point 0; each row is read whole before it is written,
 * so `out` may be `in`. */
#ifndef TM_L2_NORM_H
#define TM_L2_NORM_H

#include "tm_common.h"

/* 2^31 / sqrt(v) as (multiplier, left shift): five Newton-Raphson steps in Q3.28. */
static inline void tm_inv_sqrt(int32_t v, int32_t *mult, int32_t *shift) {
    int32_t s = 11, x, half_in, i, clz = 0, pairs;
    uint32_t u;
    if (v <= 1) {
        *mult = INT32_MAX;
        *shift = 0;
        return;
    }
    while (v >= (1 << 29)) {
        v /= 4;
        ++s;
    }
    for (u = (uint32_t)v; u < 0x80000000u; u <<= 1) {
        ++clz;
    }
    pairs = (clz - 1) / 2 - 1;
    s -= pairs;
    v <<= 2 * pairs;
    half_in = tm_rdbpot(v >> 1, 1);
    x = 1 << 28;
    for (i = 0; i < 5; ++i) {
        const int32_t x3 = tm_sat_mul_pot(tm_srdhm(tm_srdhm(x, x), x), 6);
        x = tm_sat_mul_pot(tm_wrap_sub(tm_srdhm((1 << 28) + (1 << 27), x),
                                       tm_srdhm(half_in, x3)), 3);
    }
    x = tm_srdhm(x, 1518500250);
    if (s < 0) {
        x = tm_wrap_shl(x, -s);
        s = 0;
    }
    *mult = x;
    *shift = -s;
}

static inline void tm_l2_norm(const int8_t *in, int8_t *out, int32_t outer, int32_t depth,
                              int32_t in_zp) {
    int32_t r, c;
    for (r = 0; r < outer; ++r) {
        const int8_t *row = in + r * depth;
        int8_t *dst = out + r * depth;
        int32_t acc = 0, mult, shift;
        for (c = 0; c < depth; ++c) {
            const int32_t v = (int32_t)row[c] - in_zp;
            acc += v * v;
        }
        tm_inv_sqrt(acc, &mult, &shift);
        for (c = 0; c < depth; ++c) {
            const int32_t v = (int32_t)row[c] - in_zp;
            dst[c] = tm_clamp8(tm_requant(v, mult, shift + 7), -128, 127);
        }
    }
}

#endif /* TM_L2_NORM_H */
