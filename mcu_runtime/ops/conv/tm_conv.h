/* tinymcu runtime: CONV_2D (per-channel int8, TFLite reference_integer_ops::ConvPerChannel).
 *
 * Per-channel int8 convolutions as TFLite's reference_integer_ops compute them: int32
 * accumulation of (input - input zero point) * filter, int32 bias, per-output-channel
 * fixed-point requantization, output zero point, activation clamp. Padding is explicit
 * (pad_top, pad_left; bottom/right follow from the output box): window taps outside the input
 * box are skipped, which equals padding with the input zero point. A patch step passes the
 * box it reads (a tile plus halo) and pads only at the real image border.
 *
 * Sparse weights (pruned models) come in two formats. Per-row non-zero lists (`nz`, the
 * CONV_2D and FULLY_CONNECTED format when it is no larger than the bitmask; see
 * tm_sparse_dot1): the kernels touch only the non-zero weights, with the input zero point
 * and the bias folded into `kbias` as in the dense GEMM. The bitmask (`mask`): one bit per
 * weight (bit i of the row-major filter at mask[i / 8] >> (i % 8)) plus only the non-zero
 * values, in order; every kernel walks its filter rows in storage order, so the values are
 * read with a running pointer and no index. Depthwise filters are stored channel-major
 * (C*M rows of KH*KW taps) for that reason; dense ones keep TFLite's 1HW(C*M) layout.
 */
#ifndef TM_CONV_H
#define TM_CONV_H

#include "tm_common.h"

/* GCC propagates a model's constant row count (e.g. 1) into the row-pair loops that never
 * run for it and then warns about reads past the per-channel arrays (-Warray-bounds, a
 * false positive at -O2); keep -Werror usable on generated code. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Warray-bounds"
#endif

typedef struct {
    const int8_t *filter;   /* CONV_2D: OHWI; depthwise: 1HW(C*M) */
    const int32_t *bias;    /* NULL when the op has none */
    const int32_t *mult;    /* per output channel */
    const int8_t *shift;    /* per output channel, in [-31, 31] */
    int32_t kh, kw, sh, sw, dh, dw;
    int32_t depth_multiplier;
    int32_t in_zp, out_zp, act_min, act_max;
    const uint8_t *mask;    /* NULL: dense filter; else the sparse bitmask (see above) */
    /* CONV_2D run as a GEMM (dense; 1x1 without padding, or an im2col buffer planned): the
     * filter in the paired layout below (`filter` is then NULL) and bias[o] - in_zp *
     * sum(filter row o), computed at code-generation time (ConvParams.kernel_bias) so the
     * GEMM sums raw int8 products; both NULL for the direct loop */
    const int8_t *wpairs;
    const int32_t *kbias;
    /* 1: the generator proved every accumulator below 2^29 and every shift <= -1, so the
     * short requantization (tm_rq_out_fast) is exact */
    int32_t fast_rq;
    /* sparse CONV_2D as per-row non-zero lists (tm_conv2d_lists; `filter`, `bias` and `mask`
     * are then NULL, `kbias` is set): the entries and each row's entry count */
    const uint8_t *nz;
    const uint16_t *nz_count; /* NULL when every row has at most 255 entries: */
    const uint8_t *nz_count8;
} tm_conv_params;

static inline int8_t tm_conv_out(const tm_conv_params *p, int32_t acc, int32_t oc) {
    if (p->bias) {
        acc = tm_wrap_add(acc, p->bias[oc]);
    }
    return tm_requant_out(acc, p->mult[oc], p->shift[oc], p->out_zp, p->act_min, p->act_max);
}

/* ---- GEMM core (CONV_2D and FULLY_CONNECTED) ----------------------------------------------
 * Raw int8 columns (K values each) times int8 filter rows (K values each). The input zero
 * point is folded into the bias (sum (x - z) w = sum x w - z sum w, exact modulo 2^32 as
 * int32 accumulation is), so the inner loop is a pure dot product and padded taps hold the
 * zero point itself.
 *
 * Paired filter layout (written by the code generator, ops/conv/emit.py pair_rows): rows o
 * and o + 1 (o even) are interleaved in groups of 4 taps — 4 bytes of row o, 4 of row o + 1,
 * ... — followed by the K % 4 tail bytes of row o, then of row o + 1; an odd last row is
 * stored plainly. Pair o starts at byte o * K either way, and one pointer walks both rows.
 *
 * Register-blocked 2 columns x 2 rows = 4 accumulators. With the DSP extension one group of
 * 4 taps is 4 loads, 8 sign-extensions (__sxtb16 of the even and the odd bytes) and 8 __smlad
 * (2 MACs each): 22 instructions for 16 MACs with the loop. That loop is inline assembly
 * because it needs 14 registers and GCC spills accumulators of the same C at -Os; the
 * C99 loop below it computes the same sums and is the only path off the DSP cores. */
TM_INLINE void tm_dot2x2(const int8_t *c0, const int8_t *c1, const int8_t *w, int32_t k,
                         int32_t *acc) {
    int32_t s00 = acc[0], s01 = acc[1], s10 = acc[2], s11 = acc[3], g = k >> 2, t;
#if TM_ASM
    if (g > 0) {
        uint32_t a, b, ae, be, x, xe;
        __asm__ volatile(
            "1:\n\t"
            "ldr %[a], [%[c0]], #4\n\t"
            "ldr %[b], [%[c1]], #4\n\t"
            "ldr %[x], [%[w]], #4\n\t"
            "sxtb16 %[ae], %[a]\n\t"
            "sxtb16 %[a], %[a], ror #8\n\t"
            "sxtb16 %[be], %[b]\n\t"
            "sxtb16 %[b], %[b], ror #8\n\t"
            "sxtb16 %[xe], %[x]\n\t"
            "sxtb16 %[x], %[x], ror #8\n\t"
            "smlad %[s00], %[ae], %[xe], %[s00]\n\t"
            "smlad %[s10], %[be], %[xe], %[s10]\n\t"
            "smlad %[s00], %[a], %[x], %[s00]\n\t"
            "smlad %[s10], %[b], %[x], %[s10]\n\t"
            "ldr %[x], [%[w]], #4\n\t"
            "sxtb16 %[xe], %[x]\n\t"
            "sxtb16 %[x], %[x], ror #8\n\t"
            "smlad %[s01], %[ae], %[xe], %[s01]\n\t"
            "smlad %[s11], %[be], %[xe], %[s11]\n\t"
            "smlad %[s01], %[a], %[x], %[s01]\n\t"
            "smlad %[s11], %[b], %[x], %[s11]\n\t"
            "subs %[g], %[g], #1\n\t"
            "bne 1b\n\t"
            : [c0] "+r"(c0), [c1] "+r"(c1), [w] "+r"(w), [g] "+r"(g), [s00] "+r"(s00),
              [s01] "+r"(s01), [s10] "+r"(s10), [s11] "+r"(s11), [a] "=&r"(a),
              [b] "=&r"(b), [ae] "=&r"(ae), [be] "=&r"(be), [x] "=&r"(x), [xe] "=&r"(xe)
            :
            : "cc", "memory");
        g = 0; /* the loop ran every group: the C loop below is dead code here */
    }
#elif TM_DSP
    for (; g > 0; --g, c0 += 4, c1 += 4, w += 8) {
        const uint32_t a = tm_load32(c0), b = tm_load32(c1), x = tm_load32(w),
                       y = tm_load32(w + 4);
        const int32_t ae = __sxtb16((int32_t)a), ao = (int32_t)tm_sxtb16_odd(a);
        const int32_t be = __sxtb16((int32_t)b), bo = (int32_t)tm_sxtb16_odd(b);
        const int32_t xe = __sxtb16((int32_t)x), xo = (int32_t)tm_sxtb16_odd(x);
        const int32_t ye = __sxtb16((int32_t)y), yo = (int32_t)tm_sxtb16_odd(y);
        s00 = __smlad(ao, xo, __smlad(ae, xe, s00));
        s10 = __smlad(bo, xo, __smlad(be, xe, s10));
        s01 = __smlad(ao, yo, __smlad(ae, ye, s01));
        s11 = __smlad(bo, yo, __smlad(be, ye, s11));
    }
#endif
    for (; g > 0; --g, c0 += 4, c1 += 4, w += 8) { /* written out: gcc vectorizes it */
        s00 += c0[0] * w[0] + c0[1] * w[1] + c0[2] * w[2] + c0[3] * w[3];
        s01 += c0[0] * w[4] + c0[1] * w[5] + c0[2] * w[6] + c0[3] * w[7];
        s10 += c1[0] * w[0] + c1[1] * w[1] + c1[2] * w[2] + c1[3] * w[3];
        s11 += c1[0] * w[4] + c1[1] * w[5] + c1[2] * w[6] + c1[3] * w[7];
    }
    k &= 3;
    for (t = 0; t < k; ++t) {
        s00 += c0[t] * w[t];
        s01 += c0[t] * w[k + t];
        s10 += c1[t] * w[t];
        s11 += c1[t] * w[k + t];
    }
    acc[0] = s00;
    acc[1] = s01;
    acc[2] = s10;
    acc[3] = s11;
}

/* One column against a row pair (paired layout): the last pixel of an odd count, and
 * FULLY_CONNECTED with one batch. */
TM_INLINE void tm_dot1x2(const int8_t *c0, const int8_t *w, int32_t k, int32_t *acc) {
    int32_t s0 = acc[0], s1 = acc[1], g = k >> 2, t;
#if TM_DSP
    for (; g > 0; --g, c0 += 4, w += 8) {
        const uint32_t a = tm_load32(c0), x = tm_load32(w), y = tm_load32(w + 4);
        const int32_t ae = __sxtb16((int32_t)a), ao = (int32_t)tm_sxtb16_odd(a);
        s0 = __smlad(ae, __sxtb16((int32_t)x), s0);
        s1 = __smlad(ae, __sxtb16((int32_t)y), s1);
        s0 = __smlad(ao, (int32_t)tm_sxtb16_odd(x), s0);
        s1 = __smlad(ao, (int32_t)tm_sxtb16_odd(y), s1);
    }
#endif
    for (; g > 0; --g, c0 += 4, w += 8) {
        s0 += c0[0] * w[0] + c0[1] * w[1] + c0[2] * w[2] + c0[3] * w[3];
        s1 += c0[0] * w[4] + c0[1] * w[5] + c0[2] * w[6] + c0[3] * w[7];
    }
    k &= 3;
    for (t = 0; t < k; ++t) {
        s0 += c0[t] * w[t];
        s1 += c0[t] * w[k + t];
    }
    acc[0] = s0;
    acc[1] = s1;
}

/* One column against two row pairs (w: pair o, v: pair o + 2): a fully connected layer's
 * single batch row shares each column word's sign-extension among 4 rows. */
TM_INLINE void tm_dot1x4(const int8_t *c0, const int8_t *w, const int8_t *v, int32_t k,
                         int32_t *acc) {
    int32_t s0 = acc[0], s1 = acc[1], s2 = acc[2], s3 = acc[3], g = k >> 2, t;
#if TM_ASM
    if (g > 0) { /* 25 instructions per 16 MACs; inline assembly for the same reason */
        uint32_t a, ae, x, xe;
        __asm__ volatile(
            "1:\n\t"
            "ldr %[a], [%[c0]], #4\n\t"
            "sxtb16 %[ae], %[a]\n\t"
            "sxtb16 %[a], %[a], ror #8\n\t"
            "ldr %[x], [%[w]], #4\n\t"
            "sxtb16 %[xe], %[x]\n\t"
            "sxtb16 %[x], %[x], ror #8\n\t"
            "smlad %[s0], %[ae], %[xe], %[s0]\n\t"
            "smlad %[s0], %[a], %[x], %[s0]\n\t"
            "ldr %[x], [%[w]], #4\n\t"
            "sxtb16 %[xe], %[x]\n\t"
            "sxtb16 %[x], %[x], ror #8\n\t"
            "smlad %[s1], %[ae], %[xe], %[s1]\n\t"
            "smlad %[s1], %[a], %[x], %[s1]\n\t"
            "ldr %[x], [%[v]], #4\n\t"
            "sxtb16 %[xe], %[x]\n\t"
            "sxtb16 %[x], %[x], ror #8\n\t"
            "smlad %[s2], %[ae], %[xe], %[s2]\n\t"
            "smlad %[s2], %[a], %[x], %[s2]\n\t"
            "ldr %[x], [%[v]], #4\n\t"
            "sxtb16 %[xe], %[x]\n\t"
            "sxtb16 %[x], %[x], ror #8\n\t"
            "smlad %[s3], %[ae], %[xe], %[s3]\n\t"
            "smlad %[s3], %[a], %[x], %[s3]\n\t"
            "subs %[g], %[g], #1\n\t"
            "bne 1b\n\t"
            : [c0] "+r"(c0), [w] "+r"(w), [v] "+r"(v), [g] "+r"(g), [s0] "+r"(s0),
              [s1] "+r"(s1), [s2] "+r"(s2), [s3] "+r"(s3), [a] "=&r"(a), [ae] "=&r"(ae),
              [x] "=&r"(x), [xe] "=&r"(xe)
            :
            : "cc", "memory");
        g = 0;
    }
#elif TM_DSP
    for (; g > 0; --g, c0 += 4, w += 8, v += 8) {
        const uint32_t a = tm_load32(c0);
        const int32_t ae = __sxtb16((int32_t)a), ao = (int32_t)tm_sxtb16_odd(a);
        uint32_t x = tm_load32(w);
        s0 = __smlad(ao, (int32_t)tm_sxtb16_odd(x), __smlad(ae, __sxtb16((int32_t)x), s0));
        x = tm_load32(w + 4);
        s1 = __smlad(ao, (int32_t)tm_sxtb16_odd(x), __smlad(ae, __sxtb16((int32_t)x), s1));
        x = tm_load32(v);
        s2 = __smlad(ao, (int32_t)tm_sxtb16_odd(x), __smlad(ae, __sxtb16((int32_t)x), s2));
        x = tm_load32(v + 4);
        s3 = __smlad(ao, (int32_t)tm_sxtb16_odd(x), __smlad(ae, __sxtb16((int32_t)x), s3));
    }
#endif
    for (; g > 0; --g, c0 += 4, w += 8, v += 8) {
        s0 += c0[0] * w[0] + c0[1] * w[1] + c0[2] * w[2] + c0[3] * w[3];
        s1 += c0[0] * w[4] + c0[1] * w[5] + c0[2] * w[6] + c0[3] * w[7];
        s2 += c0[0] * v[0] + c0[1] * v[1] + c0[2] * v[2] + c0[3] * v[3];
        s3 += c0[0] * v[4] + c0[1] * v[5] + c0[2] * v[6] + c0[3] * v[7];
    }
    k &= 3;
    for (t = 0; t < k; ++t) {
        s0 += c0[t] * w[t];
        s1 += c0[t] * w[k + t];
        s2 += c0[t] * v[t];
        s3 += c0[t] * v[k + t];
    }
    acc[0] = s0;
    acc[1] = s1;
    acc[2] = s2;
    acc[3] = s3;
}

/* A plain row (the odd last one) against one column. */
TM_INLINE int32_t tm_dot1(const int8_t *c0, const int8_t *w, int32_t k, int32_t s) {
#if TM_DSP
    for (; k >= 4; k -= 4, c0 += 4, w += 4) {
        const uint32_t a = tm_load32(c0), x = tm_load32(w);
        s = __smlad(__sxtb16((int32_t)a), __sxtb16((int32_t)x), s);
        s = __smlad((int32_t)tm_sxtb16_odd(a), (int32_t)tm_sxtb16_odd(x), s);
    }
#endif
    for (; k > 0; --k) {
        s += *c0++ * *w++;
    }
    return s;
}

/* The requantization constants of a GEMM's rows. */
typedef struct {
    const int32_t *kbias, *mult;
    const int8_t *shift;
    int32_t out_zp, act_min, act_max, fast;
} tm_gemm_q;

/* The requantization of one GEMM output (the short form when the op was proved bounded). */
#define TM_GEMM_OUT(fast, r, cl, acc) ((fast) ? tm_rq_out_fast(r, cl, acc) : tm_rq_out(r, cl, acc))

/* The requantization of a `fast_rq` output, plus the output zero point (tm_rq_out_fast's
 * arithmetic with the channel's right shift r >= 1 and its rounding half 2^(r-1) passed in,
 * so a row's constants are derived once for the 2 or 4 outputs that share them). No clamp:
 * the bound on the accumulator keeps the sum far inside int32. */
TM_INLINE int32_t tm_rqf(int32_t acc, int32_t m, int32_t right, int32_t half, int32_t zp) {
    int32_t hi;
#if TM_DSP
    __asm__("smmulr %0, %1, %2" : "=r"(hi) : "r"(acc * 2), "r"(m));
#else
    hi = (int32_t)(((int64_t)acc * 2 * m + ((int64_t)1 << 31)) >> 32);
#endif
    return ((hi + half - (int32_t)((uint32_t)hi >> 31)) >> right) + zp;
}

/* The activation clamp of a requantized value: `full` (a constant at every call) is the
 * whole int8 range, one SSAT with the DSP extension; else [lo, hi]. */
TM_INLINE int8_t tm_sat8(int32_t v, int32_t lo, int32_t hi, int32_t full) {
    if (full) {
#if TM_DSP
        return (int8_t)__ssat(v, 8);
#else
        lo = -128;
        hi = 127;
#endif
    }
    return (int8_t)(v < lo ? lo : (v > hi ? hi : v));
}

/* tm_gemm2 for an op proved bounded (`fast_rq`: every shift <= -1, |acc| < 2^29), with its
 * clamp `full` fixed at compile time: per output only the short requantization and one
 * saturation, and no test in the row loops. Everything it reads lives in locals, so the
 * int8 stores (which may alias anything) force no reloads. */
TM_INLINE void tm_gemm2_fast(const int8_t *col0, const int8_t *col1, const int8_t *w,
                             int32_t k, int32_t n, const tm_gemm_q *q, int8_t *dst0,
                             int8_t *dst1, int32_t full) {
    const int32_t *kb = q->kbias, *mu = q->mult;
    const int8_t *sh = q->shift;
    const int32_t zp = q->out_zp, lo = q->act_min, hi = q->act_max;
    int32_t o = 0;
    if (col1) {
        for (; o + 2 <= n; o += 2, w += 2 * k) {
            int32_t acc[4], m0, m1, r0, r1, h0, h1;
            int8_t y0, y1, y2, y3;
            acc[0] = acc[2] = kb[o];
            acc[1] = acc[3] = kb[o + 1];
            tm_dot2x2(col0, col1, w, k, acc);
            /* read after the dot product (the asm's memory clobber keeps them there), so
             * they are not held, or spilled, across its loop */
            m0 = mu[o];
            m1 = mu[o + 1];
            r0 = -sh[o];
            r1 = -sh[o + 1];
            h0 = 1 << (r0 - 1);
            h1 = 1 << (r1 - 1);
            y0 = tm_sat8(tm_rqf(acc[0], m0, r0, h0, zp), lo, hi, full);
            y1 = tm_sat8(tm_rqf(acc[1], m1, r1, h1, zp), lo, hi, full);
            y2 = tm_sat8(tm_rqf(acc[2], m0, r0, h0, zp), lo, hi, full);
            y3 = tm_sat8(tm_rqf(acc[3], m1, r1, h1, zp), lo, hi, full);
            dst0[o] = y0;
            dst0[o + 1] = y1;
            dst1[o] = y2;
            dst1[o + 1] = y3;
        }
    } else {
        for (; o + 4 <= n; o += 4, w += 4 * k) {
            int32_t acc[4];
            int8_t y0, y1, y2, y3;
            acc[0] = kb[o];
            acc[1] = kb[o + 1];
            acc[2] = kb[o + 2];
            acc[3] = kb[o + 3];
            tm_dot1x4(col0, w, w + 2 * k, k, acc);
            y0 = tm_sat8(tm_rqf(acc[0], mu[o], -sh[o], 1 << (-sh[o] - 1), zp), lo, hi, full);
            y1 = tm_sat8(tm_rqf(acc[1], mu[o + 1], -sh[o + 1], 1 << (-sh[o + 1] - 1), zp), lo,
                         hi, full);
            y2 = tm_sat8(tm_rqf(acc[2], mu[o + 2], -sh[o + 2], 1 << (-sh[o + 2] - 1), zp), lo,
                         hi, full);
            y3 = tm_sat8(tm_rqf(acc[3], mu[o + 3], -sh[o + 3], 1 << (-sh[o + 3] - 1), zp), lo,
                         hi, full);
            dst0[o] = y0;
            dst0[o + 1] = y1;
            dst0[o + 2] = y2;
            dst0[o + 3] = y3;
        }
        for (; o + 2 <= n; o += 2, w += 2 * k) {
            int32_t acc[2];
            int8_t y0, y1;
            acc[0] = kb[o];
            acc[1] = kb[o + 1];
            tm_dot1x2(col0, w, k, acc);
            y0 = tm_sat8(tm_rqf(acc[0], mu[o], -sh[o], 1 << (-sh[o] - 1), zp), lo, hi, full);
            y1 = tm_sat8(tm_rqf(acc[1], mu[o + 1], -sh[o + 1], 1 << (-sh[o + 1] - 1), zp), lo,
                         hi, full);
            dst0[o] = y0;
            dst0[o + 1] = y1;
        }
    }
    if (o < n) { /* the odd last row, stored plainly */
        const int32_t r = -sh[o], h = 1 << (r - 1);
        const int8_t y0 = tm_sat8(tm_rqf(tm_dot1(col0, w, k, kb[o]), mu[o], r, h, zp), lo, hi,
                                  full);
        if (col1) {
            dst1[o] = tm_sat8(tm_rqf(tm_dot1(col1, w, k, kb[o]), mu[o], r, h, zp), lo, hi, full);
        }
        dst0[o] = y0;
    }
}

/* Columns col0 and col1 (K values each; col1 NULL: one column) through all n rows of the
 * paired filter w: row o's int8 result goes to dst0[o] and dst1[o]. Everything read is
 * loaded before the int8 stores (which may alias anything). */
static inline void tm_gemm2(const int8_t *col0, const int8_t *col1, const int8_t *w, int32_t k,
                            int32_t n, const tm_gemm_q *q, int8_t *dst0, int8_t *dst1) {
    const tm_clamp cl = tm_clamp_of(q->out_zp, q->act_min, q->act_max);
    const int32_t *kb = q->kbias, *mu = q->mult;
    const int8_t *sh = q->shift; /* walk with the rows */
    const int32_t fast = q->fast;
    int32_t left = n, acc[4];
    if (fast) {
        if (q->act_min == -128 && q->act_max == 127) {
            tm_gemm2_fast(col0, col1, w, k, n, q, dst0, dst1, 1);
        } else {
            tm_gemm2_fast(col0, col1, w, k, n, q, dst0, dst1, 0);
        }
        return;
    }
    if (!col1) {
        for (; left >= 4; left -= 4, kb += 4, mu += 4, sh += 4, w += 4 * k, dst0 += 4) {
            const tm_rq r0 = tm_rq_of(mu[0], sh[0]), r1 = tm_rq_of(mu[1], sh[1]);
            const tm_rq r2 = tm_rq_of(mu[2], sh[2]), r3 = tm_rq_of(mu[3], sh[3]);
            int8_t y0, y1, y2, y3;
            acc[0] = kb[0];
            acc[1] = kb[1];
            acc[2] = kb[2];
            acc[3] = kb[3];
            tm_dot1x4(col0, w, w + 2 * k, k, acc);
            y0 = TM_GEMM_OUT(fast, r0, cl, acc[0]);
            y1 = TM_GEMM_OUT(fast, r1, cl, acc[1]);
            y2 = TM_GEMM_OUT(fast, r2, cl, acc[2]);
            y3 = TM_GEMM_OUT(fast, r3, cl, acc[3]);
            dst0[0] = y0;
            dst0[1] = y1;
            dst0[2] = y2;
            dst0[3] = y3;
        }
    }
    for (; left >= 2; left -= 2, kb += 2, mu += 2, sh += 2, w += 2 * k, dst0 += 2) {
        const tm_rq r0 = tm_rq_of(mu[0], sh[0]), r1 = tm_rq_of(mu[1], sh[1]);
        int8_t y0, y1;
        acc[0] = acc[2] = kb[0];
        acc[1] = acc[3] = kb[1];
        if (col1) {
            tm_dot2x2(col0, col1, w, k, acc);
            y0 = TM_GEMM_OUT(fast, r0, cl, acc[2]);
            y1 = TM_GEMM_OUT(fast, r1, cl, acc[3]);
            dst1[0] = y0;
            dst1[1] = y1;
            dst1 += 2;
        } else {
            tm_dot1x2(col0, w, k, acc);
        }
        y0 = TM_GEMM_OUT(fast, r0, cl, acc[0]);
        y1 = TM_GEMM_OUT(fast, r1, cl, acc[1]);
        dst0[0] = y0;
        dst0[1] = y1;
    }
    if (left) {
        const tm_rq r0 = tm_rq_of(mu[0], sh[0]);
        const int8_t y0 = TM_GEMM_OUT(fast, r0, cl, tm_dot1(col0, w, k, kb[0]));
        if (col1) {
            dst1[0] = TM_GEMM_OUT(fast, r0, cl, tm_dot1(col1, w, k, kb[0]));
        }
        dst0[0] = y0;
    }
}

/* ---- sparse GEMM core (per-row non-zero lists) --------------------------------------------
 * A pruned filter row is a list of entries, two bytes each: the distance in taps from the
 * previous entry (from tap 0 for the row's first; uint8) and the int8 weight. A gap of more
 * than 255 taps takes extra entries of weight 0 (they add nothing), so the inner loop is
 * just x += delta; acc += *x * w, over the non-zero weights only
 * (ops/conv/emit.py, codegen/emitters.py sparse_row_lists). The rows run over several
 * columns at a time (tm_sparse_dot4, the column tail through tm_sparse_dot1): 1x1 pixels,
 * im2col blocks of a window conv, fully-connected batch rows.
 *
 * With the DSP extension two entries are one word load: uxtab adds a delta to the column
 * pointer, sxtb with rotation extracts a weight; inline assembly so that GCC keeps every
 * operand in a register at -Os. */
/* One column (x: its first byte; the column tail of the row loops). */
TM_INLINE const uint8_t *tm_sparse_dot1(const uint8_t *nz, int32_t n, const int8_t *x,
                                        int32_t *acc) {
    int32_t s0 = *acc;
#if TM_ASM
    int32_t pairs = n >> 1;
    if (pairs > 0) {
        uint32_t e, w, a;
        __asm__ volatile(
            "1:\n\t"
            "ldr %[e], [%[nz]], #4\n\t"
            "uxtab %[x], %[x], %[e]\n\t"
            "sxtb %[w], %[e], ror #8\n\t"
            "ldrsb %[a], [%[x]]\n\t"
            "mla %[s0], %[a], %[w], %[s0]\n\t"
            "uxtab %[x], %[x], %[e], ror #16\n\t"
            "asr %[w], %[e], #24\n\t"
            "ldrsb %[a], [%[x]]\n\t"
            "mla %[s0], %[a], %[w], %[s0]\n\t"
            "subs %[pairs], %[pairs], #1\n\t"
            "bne 1b\n\t"
            : [nz] "+r"(nz), [x] "+r"(x), [pairs] "+r"(pairs), [s0] "+r"(s0), [e] "=&r"(e),
              [w] "=&r"(w), [a] "=&r"(a)
            :
            : "cc", "memory");
    }
    n &= 1;
#endif
    for (; n > 0; --n, nz += 2) {
        x += nz[0];
        s0 += x[0] * (int8_t)nz[1];
    }
    *acc = s0;
    return nz;
}

/* The sparse filter of a GEMM: entries and per-row entry counts (count8 when every row has
 * at most 255 entries, else count). */
typedef struct {
    const uint8_t *nz;
    const uint16_t *count;
    const uint8_t *count8;
} tm_sparse_rows;

TM_INLINE int32_t tm_sparse_count(const tm_sparse_rows *w, int32_t o) {
    return w->count8 ? w->count8[o] : w->count[o];
}

/* Four columns (column j at col0 + off[j], off[0] = 0): the 1x1 conv's pixels; with the
 * DSP extension two entries (one word) cost 23 instructions for 8 MACs. */
TM_INLINE const uint8_t *tm_sparse_dot4(const uint8_t *nz, int32_t n, const int8_t *x,
                                        const int32_t *off, int32_t *acc) {
    int32_t s0 = acc[0], s1 = acc[1], s2 = acc[2], s3 = acc[3];
    const int32_t o1 = off[1], o2 = off[2], o3 = off[3];
#if TM_ASM
    int32_t pairs = n >> 1;
    if (pairs > 0) { /* two entries per word */
        uint32_t e, w, a;
        __asm__ volatile(
            "1:\n\t"
            "ldr %[e], [%[nz]], #4\n\t"
            "uxtab %[x], %[x], %[e]\n\t"
            "sxtb %[w], %[e], ror #8\n\t"
            "ldrsb %[a], [%[x]]\n\t"
            "mla %[s0], %[a], %[w], %[s0]\n\t"
            "ldrsb %[a], [%[x], %[o1]]\n\t"
            "mla %[s1], %[a], %[w], %[s1]\n\t"
            "ldrsb %[a], [%[x], %[o2]]\n\t"
            "mla %[s2], %[a], %[w], %[s2]\n\t"
            "ldrsb %[a], [%[x], %[o3]]\n\t"
            "mla %[s3], %[a], %[w], %[s3]\n\t"
            "uxtab %[x], %[x], %[e], ror #16\n\t"
            "asr %[w], %[e], #24\n\t"
            "ldrsb %[a], [%[x]]\n\t"
            "mla %[s0], %[a], %[w], %[s0]\n\t"
            "ldrsb %[a], [%[x], %[o1]]\n\t"
            "mla %[s1], %[a], %[w], %[s1]\n\t"
            "ldrsb %[a], [%[x], %[o2]]\n\t"
            "mla %[s2], %[a], %[w], %[s2]\n\t"
            "ldrsb %[a], [%[x], %[o3]]\n\t"
            "mla %[s3], %[a], %[w], %[s3]\n\t"
            "subs %[pairs], %[pairs], #1\n\t"
            "bne 1b\n\t"
            : [nz] "+r"(nz), [x] "+r"(x), [pairs] "+r"(pairs), [s0] "+r"(s0), [s1] "+r"(s1),
              [s2] "+r"(s2), [s3] "+r"(s3), [e] "=&r"(e), [w] "=&r"(w), [a] "=&r"(a)
            : [o1] "r"(o1), [o2] "r"(o2), [o3] "r"(o3)
            : "cc", "memory");
    }
    n &= 1;
#endif
    for (; n > 0; --n, nz += 2) {
        const int32_t w = (int8_t)nz[1];
        x += nz[0];
        s0 += x[0] * w;
        s1 += x[o1] * w;
        s2 += x[o2] * w;
        s3 += x[o3] * w;
    }
    acc[0] = s0;
    acc[1] = s1;
    acc[2] = s2;
    acc[3] = s3;
    return nz;
}

/* The requantization forms of the sparse loops: TM_RQ_EXACT (tm_rq_out), TM_RQ_FAST (the
 * op was proved bounded: the short requantization) and TM_RQ_FULL, the fast form whose
 * activation clamp is the whole int8 range (no activation, or ReLU with the output zero
 * point at -128): then the clamp is SSAT #8. Each sparse kernel is compiled once per form
 * in TM_SPARSE_FORMS (the form a constant in each copy); a generated model lists the forms
 * its ops take (CUnit.note_sparse_form, the same rule as tm_rq_form), so the others are
 * not compiled in.
 *
 * The fast forms fold the output zero point into the rounding constant: ((hi + 2^(r-1) -
 * [hi < 0]) >> r) + zp = (hi + 2^(r-1) + zp 2^r - [hi < 0]) >> r (an arithmetic shift
 * floors, and zp 2^r is a multiple of 2^r). For a sparse filter the generator sets
 * fast_rq only when every shift also lies in [-23, -1], so with |hi| < 2^29 (the
 * accumulator bound) and |zp| <= 128 the sum stays below 2^31: one instruction less per
 * output. tm_rq_fast_of makes these constants (tm_rq.half holds the folded sum). */
enum { TM_RQ_EXACT, TM_RQ_FAST, TM_RQ_FULL };
#define TM_RQ_HAS_EXACT ((TM_SPARSE_FORMS & 1) != 0)
#define TM_RQ_HAS_FAST ((TM_SPARSE_FORMS & 2) != 0)
#define TM_RQ_HAS_FULL ((TM_SPARSE_FORMS & 4) != 0)

TM_INLINE tm_rq tm_rq_fast_of(int32_t m, int32_t shift, int32_t zp) {
    tm_rq c;
    c.m = m;
    c.left = 0;
    c.right = -shift;
    c.mask = 0;
    c.half = (int32_t)((1u << (c.right - 1)) + ((uint32_t)zp << c.right));
    return c;
}

/* The requantization constants of form `form` (tm_rq_of for the exact one). */
#define TM_SPARSE_RQ(form, m, shift, zp)                                                  \
    ((form) == TM_RQ_EXACT ? tm_rq_of(m, shift) : tm_rq_fast_of(m, shift, zp))

/* A fast form's output from hi, the rounded high product: the folded rounding shift, then
 * SSAT (full range) or the activation clamp [vlo + zp, vhi + zp]. */
TM_INLINE int8_t tm_rq_tail(tm_rq c, tm_clamp k, int32_t hi, int32_t form) {
    const int32_t v = (hi + c.half - (int32_t)((uint32_t)hi >> 31)) >> c.right;
    const int32_t lo = form == TM_RQ_FULL ? -128 : k.vlo + k.zp;
    const int32_t up = form == TM_RQ_FULL ? 127 : k.vhi + k.zp;
#if TM_DSP
    if (form == TM_RQ_FULL) {
        return (int8_t)__ssat(v, 8);
    }
#endif
    return (int8_t)(v < lo ? lo : (v > up ? up : v));
}

/* A fast form's output of accumulator acc, or (tm_rq_out2) of acc2 = 2 * acc modulo 2^32
 * (the tap tables double their weights and bias, so SMMULR's operand takes no shift). */
TM_INLINE int8_t tm_rq_out2(tm_rq c, tm_clamp k, int32_t acc2, int32_t form) {
    int32_t hi;
#if TM_DSP
    __asm__("smmulr %0, %1, %2" : "=r"(hi) : "r"(acc2), "r"(c.m));
#else
    hi = (int32_t)(((int64_t)acc2 * c.m + ((int64_t)1 << 31)) >> 32);
#endif
    return tm_rq_tail(c, k, hi, form);
}

#define TM_SPARSE_OUT(form, r, cl, acc)                                                   \
    ((form) == TM_RQ_EXACT ? tm_rq_out(r, cl, acc)                                        \
                           : tm_rq_out2(r, cl, (int32_t)((uint32_t)(acc) << 1), form))

/* The form an op's outputs take (its fast_rq flag and activation range): a constant when
 * TM_SPARSE_FORMS holds one form only. */
TM_INLINE int32_t tm_rq_form(int32_t fast, int32_t act_min, int32_t act_max) {
    if (TM_SPARSE_FORMS == 1 || TM_SPARSE_FORMS == 2 || TM_SPARSE_FORMS == 4) {
        return TM_SPARSE_FORMS == 4 ? TM_RQ_FULL : TM_SPARSE_FORMS - 1;
    }
    if (!fast) {
        return TM_RQ_EXACT;
    }
    return act_min == -128 && act_max == 127 ? TM_RQ_FULL : TM_RQ_FAST;
}

/* Runs the call of `form` among the three (each passes its form as a constant); a form
 * not in TM_SPARSE_FORMS is never taken, so its call is not compiled in. */
#define TM_RQ_DISPATCH(form, call_full, call_fast, call_exact)                            \
    do {                                                                                  \
        if (TM_RQ_HAS_FULL && (TM_SPARSE_FORMS == 4 || (form) == TM_RQ_FULL)) {           \
            call_full;                                                                    \
        } else if (TM_RQ_HAS_FAST && (!TM_RQ_HAS_EXACT || (form) == TM_RQ_FAST)) {         \
            call_fast;                                                                    \
        } else {                                                                          \
            call_exact;                                                                   \
        }                                                                                 \
    } while (0)

/* The index of the lowest set bit of m != 0: RBIT + CLZ where the core has CLZ (Armv7-M,
 * hosts). Armv6-M (Cortex-M0) has neither, and GCC's __builtin_ctz there is a libgcc call
 * the firmware's call-graph stack bound cannot see into: a de Bruijn multiply instead. */
TM_INLINE int32_t tm_ctz(uint32_t m) {
#if (defined(__GNUC__) || defined(__clang__)) && (!defined(__arm__) || defined(__ARM_FEATURE_CLZ))
    return __builtin_ctz(m);
#else
    static const uint8_t pos[32] = {0,  1,  28, 2,  29, 14, 24, 3,  30, 22, 20,
                                    15, 25, 17, 4,  8,  31, 27, 13, 23, 21, 19,
                                    16, 7,  26, 12, 18, 6,  11, 5,  10, 9};
    return pos[((m & (0u - m)) * 0x077CB531u) >> 27];
#endif
}

/* Row o of a bitmask filter of k <= TM_MASK_ROW taps (its bits from `bit` on, of a mask of
 * `bytes` bytes) as non-zero list entries in `row` (gaps below 256: no bridging entries);
 * *values is its first non-zero value and moves past its last. Returns the entry count. */
#define TM_MASK_ROW 128

static inline int32_t tm_mask_row_list(const uint8_t *mask, int32_t bytes, int32_t bit,
                                       int32_t k, const int8_t **values, uint8_t *row) {
    const int8_t *v = *values;
    int32_t t, n = 0, prev = 0;
    for (t = 0; t < k; t += 8) { /* 8 bits at a time, bytewise: never past the mask */
        const int32_t b = (bit + t) >> 3, s = (bit + t) & 7, span = k - t < 8 ? k - t : 8;
        uint32_t m = (uint32_t)mask[b] >> s;
        if (s && b + 1 < bytes) {
            m |= (uint32_t)mask[b + 1] << (8 - s);
        }
        for (m &= (1u << span) - 1u; m; m &= m - 1u, ++n) {
            const int32_t j = t + tm_ctz(m);
            row[2 * n] = (uint8_t)(j - prev);
            row[2 * n + 1] = (uint8_t)*v++;
            prev = j;
        }
    }
    *values = v;
    return n;
}

/* The rows of a sparse 1x1 CONV_2D that never pads (tm_conv_pointwise), rows outer: each
 * row's requantization constants, folded bias and entries are taken once, then the row
 * walks every output pixel, four at a time (tm_sparse_dot4, one entry a multiply-accumulate
 * across the four pixels), the tail one at a time. The pixels are walked as runs along
 * which the input and output steps are constant: the whole box when its rows are
 * contiguous (a layer's whole map), else one run per output row (a tile). `form` is a
 * constant at each call. */
TM_INLINE void tm_sparse_pointwise_rows(const tm_conv_params *p, tm_box in, tm_box out,
                                        int32_t sh, int32_t sw, int32_t form,
                                        int32_t masked) {
    const tm_clamp cl = tm_clamp_of(p->out_zp, p->act_min, p->act_max);
    const tm_sparse_rows sp = {p->nz, p->nz_count, p->nz_count8};
    const int32_t bytes = masked ? (out.c * in.c + 7) / 8 : 0;
    const int8_t *values = p->filter;
    uint8_t list[2 * TM_MASK_ROW]; /* a bitmask row decoded (masked only) */
    const int32_t istep = sw * in.pix, ostep = out.pix;
    const int32_t linear = out.h == 1 || (sh * in.row == out.w * istep &&
                                          out.row == out.w * ostep);
    const int32_t runs = linear ? 1 : out.h, len = linear ? out.h * out.w : out.w;
    const int32_t off[4] = {0, istep, 2 * istep, 3 * istep};
    const uint8_t *rows = p->nz;
    int32_t o, k, i;
    for (o = 0; o < out.c; ++o) {
        const tm_rq r = TM_SPARSE_RQ(form, p->mult[o], p->shift[o], p->out_zp);
        const int32_t count = masked ? tm_mask_row_list(p->mask, bytes, o * in.c, in.c,
                                                        &values, list)
                                     : tm_sparse_count(&sp, o);
        const int32_t kb = p->kbias[o];
        const uint8_t *nz = masked ? list : rows;
        for (k = 0; k < runs; ++k) {
            const int8_t *x = tm_at(in, k * sh, 0);
            int8_t *d = tm_at(out, k, 0) + o;
            for (i = 0; i + 4 <= len; i += 4, x += 4 * istep, d += 4 * ostep) {
                int32_t acc[4];
                int8_t y0, y1, y2, y3;
                acc[0] = acc[1] = acc[2] = acc[3] = kb;
                (void)tm_sparse_dot4(nz, count, x, off, acc);
                y0 = TM_SPARSE_OUT(form, r, cl, acc[0]);
                y1 = TM_SPARSE_OUT(form, r, cl, acc[1]);
                y2 = TM_SPARSE_OUT(form, r, cl, acc[2]);
                y3 = TM_SPARSE_OUT(form, r, cl, acc[3]);
                d[0] = y0;
                d[ostep] = y1;
                d[2 * ostep] = y2;
                d[3 * ostep] = y3;
            }
            for (; i < len; ++i, x += istep, d += ostep) {
                int32_t acc = kb;
                (void)tm_sparse_dot1(nz, count, x, &acc);
                *d = TM_SPARSE_OUT(form, r, cl, acc);
            }
        }
        rows += masked ? 0 : 2 * count;
    }
}

/* The sparse 1x1 CONV_2D of non-zero lists (sh, sw: its strides over box `in`). */
TM_NOINLINE void tm_conv2d_sparse_pointwise(const tm_conv_params *p, tm_box in, tm_box out,
                                            int32_t sh, int32_t sw) {
    TM_RQ_DISPATCH(tm_rq_form(p->fast_rq, p->act_min, p->act_max),
                   tm_sparse_pointwise_rows(p, in, out, sh, sw, TM_RQ_FULL, 0),
                   tm_sparse_pointwise_rows(p, in, out, sh, sw, TM_RQ_FAST, 0),
                   tm_sparse_pointwise_rows(p, in, out, sh, sw, TM_RQ_EXACT, 0));
}

/* The same for a bitmask filter (kbias set) of at most TM_MASK_ROW input channels: each
 * row is decoded into a list once per call, then walks the pixels as the lists do. */
TM_NOINLINE void tm_conv2d_mask_pointwise(const tm_conv_params *p, tm_box in, tm_box out,
                                          int32_t sh, int32_t sw) {
    TM_RQ_DISPATCH(tm_rq_form(p->fast_rq, p->act_min, p->act_max),
                   tm_sparse_pointwise_rows(p, in, out, sh, sw, TM_RQ_FULL, 1),
                   tm_sparse_pointwise_rows(p, in, out, sh, sw, TM_RQ_FAST, 1),
                   tm_sparse_pointwise_rows(p, in, out, sh, sw, TM_RQ_EXACT, 1));
}

/* ---- sparse tap tables (CONV_2D lists and depthwise bitmask rows) -------------------------
 * A pruned filter row (an output channel) has a handful of non-zero taps. They are found
 * once per row and kept in a table: per tap its byte offset from the window origin (ky *
 * dh * row + kx * dw * pix + channel) and its weight, next to each other so one LDRD reads
 * both; then every output pixel of the row is the folded bias plus one multiply-accumulate
 * per non-zero tap, with no per-weight test and no im2col copy. The input zero point is
 * folded the GEMM's way (bias - zp * sum w, raw products summed): the output pixels whose
 * non-zero taps all lie inside the box (a rectangle, found once per row) run without a
 * bounds test, the ones around it read the zero point for a tap outside, which the folded
 * bias cancels. A row without non-zero taps is one requantized bias, filled in; a row of
 * more than TM_TAPS non-zero taps is not tabled (its kernel walks it another way). */
#define TM_TAPS 16

typedef struct {
    int32_t n;                     /* non-zero taps (more than TM_TAPS: not tabled) */
    int32_t kb;                    /* the bias minus in_zp * the sum of the weights */
    int32_t y0, y1, x0, x1;        /* output rows [y0, y1) x cols [x0, x1): every tap inside */
    int32_t tab[2 * TM_TAPS];  /* per tap: byte offset from the window origin, weight */
    int16_t dy[TM_TAPS], dx[TM_TAPS]; /* per tap: its distance from the origin */
} tm_taps;

/* ceil(a / b) for b > 0 and any a (C division truncates toward zero). */
TM_INLINE int32_t tm_ceil_div(int32_t a, int32_t b) {
    return a > 0 ? (a + b - 1) / b : -((-a) / b);
}

/* The rectangle of output pixels whose taps (extents dy0..dy1, dx0..dx1 from the window
 * origin) all lie inside box `in`: oy is inside when 0 <= oy * sh - pad_top + dy0 and
 * oy * sh - pad_top + dy1 < in.h, likewise ox. */
static inline void tm_taps_rect(tm_taps *t, const tm_conv_params *p, tm_box in, tm_box out,
                                int32_t pad_top, int32_t pad_left, int32_t dy0, int32_t dy1,
                                int32_t dx0, int32_t dx1) {
    t->y0 = tm_ceil_div(pad_top - dy0, p->sh);
    t->y1 = tm_ceil_div(in.h + pad_top - dy1, p->sh);
    t->x0 = tm_ceil_div(pad_left - dx0, p->sw);
    t->x1 = tm_ceil_div(in.w + pad_left - dx1, p->sw);
    t->y0 = t->y0 < 0 ? 0 : (t->y0 > out.h ? out.h : t->y0);
    t->y1 = t->y1 < t->y0 ? t->y0 : (t->y1 > out.h ? out.h : t->y1);
    t->x0 = t->x0 < 0 ? 0 : (t->x0 > out.w ? out.w : t->x0);
    t->x1 = t->x1 < t->x0 ? t->x0 : (t->x1 > out.w ? out.w : t->x1);
}

/* Adds one tap to a table under construction (n taps so far; extents in ext[4]). */
static inline void tm_taps_add(tm_taps *t, int32_t n, int32_t off, int32_t w, int32_t dy,
                               int32_t dx, int32_t *ext) {
    if (n < TM_TAPS) {
        t->tab[2 * n] = off;
        t->tab[2 * n + 1] = w;
        t->dy[n] = (int16_t)dy;
        t->dx[n] = (int16_t)dx;
    }
    ext[0] = n == 0 || dy < ext[0] ? dy : ext[0];
    ext[1] = n == 0 || dy > ext[1] ? dy : ext[1];
    ext[2] = n == 0 || dx < ext[2] ? dx : ext[2];
    ext[3] = n == 0 || dx > ext[3] ? dx : ext[3];
}

/* Output pixel (iy0, ix0: its window origin) of a tabled row whose taps may fall outside
 * the box: such a tap reads the input zero point. */
static inline int8_t tm_taps_border(const tm_taps *t, tm_box in, int32_t ic, int32_t zp,
                                    tm_rq r, tm_clamp cl, int32_t form, int32_t iy0,
                                    int32_t ix0) {
    const int32_t at = iy0 * in.row + ix0 * in.pix + ic; /* may lie outside: an index */
    int32_t j, s = 0;
    for (j = 0; j < t->n; ++j) {
        const int32_t iy = iy0 + t->dy[j], ix = ix0 + t->dx[j];
        s += (iy >= 0 && iy < in.h && ix >= 0 && ix < in.w ? (int32_t)in.p[at + t->tab[2 * j]]
                                                             : zp) * t->tab[2 * j + 1];
    }
    s = tm_wrap_add(t->kb, s);
    return TM_SPARSE_OUT(form, r, cl, s);
}

/* One output of a run: `acc` is kb + the products in the exact form, twice that (doubled
 * table) in the fast ones. */
#define TM_TAPS_OUT(form, r, cl, acc)                                                     \
    ((form) == TM_RQ_EXACT ? tm_rq_out(r, cl, acc) : tm_rq_out2(r, cl, acc, form))

/* The inside run of a one-tap row: n outputs (dst, step ostep) from the inputs at x (step
 * xstep), kb + x * w each (both doubled in the fast forms, r their folded constants);
 * `form` is a constant at each call, so the loop keeps everything in registers. With the
 * DSP extension the full-range form is one assembly loop of 12 instructions per output. */
TM_INLINE void tm_taps_run1(const int8_t *x, int32_t xstep, int8_t *dst, int32_t ostep,
                            int32_t n, int32_t kb, int32_t w, tm_rq r, tm_clamp cl,
                            int32_t form) {
#if TM_ASM
    if (form == TM_RQ_FULL && n > 0) {
        int32_t a, t;
        __asm__ volatile(
            "1:\n\t"
            "ldrsb %[a], [%[x]]\n\t"
            "add %[x], %[x], %[xs]\n\t"
            "mla %[a], %[a], %[w], %[kb]\n\t"
            "smmulr %[a], %[a], %[m]\n\t"
            "add %[t], %[a], %[hz]\n\t"
            "sub %[t], %[t], %[a], lsr #31\n\t"
            "asr %[t], %[t], %[rt]\n\t"
            "ssat %[t], #8, %[t]\n\t"
            "strb %[t], [%[d]]\n\t"
            "add %[d], %[d], %[os]\n\t"
            "subs %[n], %[n], #1\n\t"
            "bne 1b\n\t"
            : [x] "+r"(x), [d] "+r"(dst), [n] "+r"(n), [a] "=&r"(a), [t] "=&r"(t)
            : [xs] "r"(xstep), [w] "r"(w), [kb] "r"(kb), [m] "r"(r.m), [hz] "r"(r.half),
              [rt] "r"(r.right), [os] "r"(ostep)
            : "cc", "memory");
        return;
    }
#endif
    for (; n > 0; --n, x += xstep, dst += ostep) {
        const int32_t a0 = kb + x[0] * w;
        *dst = TM_TAPS_OUT(form, r, cl, a0);
    }
}

/* The same for a row of 2..TM_TAPS taps (table tab: offset, weight per tap; k taps): x is
 * the first output's window origin (the taps lie inside the box); four outputs per pass
 * share each table entry (with the DSP extension 11 instructions per tap, 4 MACs), the
 * last n % 4 one at a time. */
TM_INLINE void tm_taps_runn(const int32_t *tab, int32_t k, int32_t kb, const int8_t *x,
                            int32_t xstep, int8_t *dst, int32_t ostep, int32_t n, tm_rq r,
                            tm_clamp cl, int32_t form) {
    for (; n >= 4; n -= 4, x += 4 * xstep, dst += 4 * ostep) {
        int32_t s0 = kb, s1 = kb, s2 = kb, s3 = kb;
        int8_t y0, y1, y2, y3;
#if TM_ASM
        {
            const int32_t x2 = 2 * xstep, x3 = 3 * xstep;
            const int32_t *e = tab;
            int32_t j = k;
            uint32_t off, w, a;
            const int8_t *xt;
            __asm__ volatile(
                "1:\n\t"
                "ldrd %[off], %[w], [%[e]], #8\n\t"
                "adds %[xt], %[x], %[off]\n\t"
                "ldrsb %[a], [%[xt]]\n\t"
                "mla %[s0], %[a], %[w], %[s0]\n\t"
                "ldrsb %[a], [%[xt], %[x1]]\n\t"
                "mla %[s1], %[a], %[w], %[s1]\n\t"
                "ldrsb %[a], [%[xt], %[x2]]\n\t"
                "mla %[s2], %[a], %[w], %[s2]\n\t"
                "ldrsb %[a], [%[xt], %[x3]]\n\t"
                "mla %[s3], %[a], %[w], %[s3]\n\t"
                "subs %[j], %[j], #1\n\t"
                "bne 1b\n\t"
                : [e] "+r"(e), [j] "+r"(j), [s0] "+r"(s0), [s1] "+r"(s1), [s2] "+r"(s2),
                  [s3] "+r"(s3), [off] "=&r"(off), [w] "=&r"(w), [a] "=&r"(a),
                  [xt] "=&r"(xt)
                : [x] "r"(x), [x1] "r"(xstep), [x2] "r"(x2), [x3] "r"(x3)
                : "cc", "memory");
        }
#else
        {
            const int32_t *e = tab;
            int32_t j;
            for (j = k; j > 0; --j, e += 2) {
                const int8_t *xt = x + e[0];
                s0 += xt[0] * e[1];
                s1 += xt[xstep] * e[1];
                s2 += xt[2 * xstep] * e[1];
                s3 += xt[3 * xstep] * e[1];
            }
        }
#endif
        y0 = TM_TAPS_OUT(form, r, cl, s0);
        y1 = TM_TAPS_OUT(form, r, cl, s1);
        y2 = TM_TAPS_OUT(form, r, cl, s2);
        y3 = TM_TAPS_OUT(form, r, cl, s3);
        dst[0] = y0;
        dst[ostep] = y1;
        dst[2 * ostep] = y2;
        dst[3 * ostep] = y3;
    }
    for (; n > 0; --n, x += xstep, dst += ostep) {
        const int32_t *e = tab;
        int32_t j, s = kb;
        for (j = k; j > 0; --j, e += 2) {
            s += x[e[0]] * e[1];
        }
        *dst = TM_TAPS_OUT(form, r, cl, s);
    }
}

/* The runs of a tabled row over its rectangle (tm_taps_rows), in requantization form
 * `form` (a constant at each call): `runs` runs of `len` outputs, run k starting at
 * window origin x0 + k * rstep and output d0 + k * dstep, along which input and output
 * step by xstep and ostep. The fast forms double the table's weights and bias first. */
TM_INLINE void tm_taps_runs(const tm_taps *t, const int8_t *x0, int32_t rstep,
                            int32_t xstep, int8_t *d0, int32_t dstep, int32_t ostep,
                            int32_t runs, int32_t len, int32_t m, int32_t shift, tm_clamp cl,
                            int32_t form) {
    const tm_rq r = TM_SPARSE_RQ(form, m, shift, cl.zp);
    const int32_t n = t->n, scale = form == TM_RQ_EXACT ? 1 : 2;
    const int32_t kb = (int32_t)((uint32_t)t->kb * (uint32_t)scale);
    int32_t tab[2 * TM_TAPS], j, k;
    for (j = 0; j < n; ++j) {
        tab[2 * j] = t->tab[2 * j];
        tab[2 * j + 1] = t->tab[2 * j + 1] * scale;
    }
    for (k = 0; k < runs; ++k, x0 += rstep, d0 += dstep) {
        if (n == 1) {
            tm_taps_run1(x0 + tab[0], xstep, d0, ostep, len, kb, tab[1], r, cl, form);
        } else {
            tm_taps_runn(tab, n, kb, x0, xstep, d0, ostep, len, r, cl, form);
        }
    }
}

/* The outputs of a tabled row (tm_taps_rows) around the rectangle of its taps, where a
 * tap may fall outside box `in` and read the input zero point; with one tap it is outside
 * there, so they are the requantized bias plus zp * w. */
TM_COLD void tm_taps_around(const tm_conv_params *p, const tm_taps *t, tm_box in, int32_t ic,
                            tm_box out, int32_t oc, int32_t pad_top, int32_t pad_left) {
    const tm_rq r = tm_rq_of(p->mult[oc], p->shift[oc]);
    const tm_clamp cl = tm_clamp_of(p->out_zp, p->act_min, p->act_max);
    const int32_t y0 = t->y0, y1 = t->y1, x0 = t->x0, x1 = t->x1, zp = p->in_zp;
    const int8_t yb = tm_rq_out(r, cl, tm_wrap_add(t->kb, zp * t->tab[1]));
    int32_t oy, ox;
    for (oy = 0; oy < out.h; ++oy) {
        const int32_t iy0 = oy * p->sh - pad_top;
        /* a row across the rectangle has its columns [x0, x1) run by tm_taps_rows */
        const int32_t across = oy >= y0 && oy < y1 && x1 > x0, a = across ? x0 : out.w;
        int8_t *dst = tm_at(out, oy, 0) + oc;
        for (ox = 0; ox < out.w; ++ox, dst += out.pix) {
            if (ox == a) {
                ox = x1 - 1;
                dst += (x1 - 1 - a) * out.pix;
                continue;
            }
            *dst = t->n == 1 ? yb : tm_taps_border(t, in, ic, zp, r, cl, TM_RQ_EXACT, iy0,
                                                   ox * p->sw - pad_left);
        }
    }
}

/* Output channel oc of a tabled channel (1 <= n <= TM_TAPS) from channel ic of box
 * `in` (the offsets were made for its strides). The pixels around the rectangle of its taps
 * go through tm_taps_border (with one tap, the tap is outside there: they are the requantized
 * bias); the rectangle (all of the map when `in` is a padded plane) runs without a bounds
 * test, along its longer side (a narrow map such as a spectrogram's 25 x 5 would otherwise
 * pay a run's setup every few pixels). */
static inline void tm_taps_rows(const tm_conv_params *p, const tm_taps *t, tm_box in,
                                int32_t ic, tm_box out, int32_t oc, int32_t pad_top,
                                int32_t pad_left) {
    const tm_clamp cl = tm_clamp_of(p->out_zp, p->act_min, p->act_max);
    const int32_t form = tm_rq_form(p->fast_rq, p->act_min, p->act_max);
    const int32_t sh = p->sh, sw = p->sw;
    const int32_t y0 = t->y0, y1 = t->y1, x0 = t->x0, x1 = t->x1;
    const int32_t along_x = x1 - x0 >= y1 - y0;
    /* a run: its length and the steps of the input and output along it; the runs: */
    const int32_t len = along_x ? x1 - x0 : y1 - y0, runs = along_x ? y1 - y0 : x1 - x0;
    const int32_t xstep = along_x ? sw * in.pix : sh * in.row;
    const int32_t ostep = along_x ? out.pix : out.row;
    const int32_t rstep = along_x ? sh * in.row : sw * in.pix;
    const int32_t dstep = along_x ? out.row : out.pix;
    if (TM_SPARSE_BORDER && (y0 > 0 || y1 < out.h || x0 > 0 || x1 < out.w)) {
        tm_taps_around(p, t, in, ic, out, oc, pad_top, pad_left);
    }
    if (len > 0) {
        /* the window origin may lie outside the box: index from the box start */
        const int8_t *x = in.p + ((y0 * sh - pad_top) * in.row + (x0 * sw - pad_left) * in.pix +
                                  ic);
        int8_t *d = tm_at(out, y0, x0) + oc;
        TM_RQ_DISPATCH(form,
                       tm_taps_runs(t, x, rstep, xstep, d, dstep, ostep, runs, len,
                                    p->mult[oc], p->shift[oc], cl, TM_RQ_FULL),
                       tm_taps_runs(t, x, rstep, xstep, d, dstep, ostep, runs, len,
                                    p->mult[oc], p->shift[oc], cl, TM_RQ_FAST),
                       tm_taps_runs(t, x, rstep, xstep, d, dstep, ostep, runs, len,
                                    p->mult[oc], p->shift[oc], cl, TM_RQ_EXACT));
    }
}

/* Output channel oc of a row without non-zero taps: one value (its requantized bias)
 * everywhere. */
static inline void tm_taps_fill(tm_box out, int32_t oc, int8_t y) {
    int32_t oy, ox;
    for (oy = 0; oy < out.h; ++oy) {
        int8_t *dst = tm_at(out, oy, 0) + oc;
        for (ox = 0; ox < out.w; ++ox, dst += out.pix) {
            *dst = y;
        }
    }
}

/* ---- sparse GEMM core (bitmask) --------------------------------------------------------
 * The bitmask format walked over GEMM columns: row o's K bits start at bit o * K of the
 * mask (rows are not byte aligned), and its non-zero values follow the previous row's. The
 * walk takes up to 24 bits at a time from an unaligned word (bytewise at the mask's end,
 * which it never reads past) and visits only the set bits (count trailing zeros), with the
 * input zero point and bias folded into kbias as in the other GEMMs. */

/* Up to 24 mask bits from bit `bit` on (of a mask of `bytes` bytes), low bit first. */
TM_INLINE uint32_t tm_mask_bits(const uint8_t *mask, int32_t bytes, int32_t bit) {
    const int32_t b = bit >> 3;
    uint32_t v;
    if (b + 4 <= bytes) {
        v = tm_load32((const int8_t *)(const void *)(mask + b));
    } else {
        int32_t i;
        v = 0;
        for (i = 0; b + i < bytes && i < 4; ++i) {
            v |= (uint32_t)mask[b + i] << (8 * i);
        }
    }
    return v >> (bit & 7);
}

/* Columns col0 and col1 (col1 NULL: one column) through all n rows of a bitmask filter of
 * K taps per row: row o's result goes to dst0[o] and dst1[o] (tm_gemm2's requantization). */
static inline void tm_mask_gemm2(const int8_t *col0, const int8_t *col1, const uint8_t *mask,
                                 const int8_t *values, int32_t k, int32_t n,
                                 const tm_gemm_q *q, int8_t *dst0, int8_t *dst1) {
    const tm_clamp cl = tm_clamp_of(q->out_zp, q->act_min, q->act_max);
    const int32_t bytes = (int32_t)(((int64_t)n * k + 7) / 8), fast = q->fast;
    const int32_t off = col1 ? (int32_t)(col1 - col0) : 0;
    int32_t o, bit = 0;
    for (o = 0; o < n; ++o) {
        const tm_rq r = tm_rq_of(q->mult[o], q->shift[o]);
        int32_t s0 = q->kbias[o], s1 = s0, t;
        for (t = 0; t < k; t += 24, bit += 24) {
            const int32_t span = k - t < 24 ? k - t : 24;
            uint32_t m = tm_mask_bits(mask, bytes, bit) & ((1u << span) - 1u);
            const int8_t *x = col0 + t;
            while (m) {
                const int32_t j = tm_ctz(m);
                const int32_t w = *values++;
                s0 += x[j] * w;
                s1 += x[j + off] * w;
                m &= m - 1u;
            }
        }
        bit += k - t; /* t overshot k by the last chunk's shortfall */
        dst0[o] = TM_GEMM_OUT(fast, r, cl, s0);
        if (col1) {
            dst1[o] = TM_GEMM_OUT(fast, r, cl, s1);
        }
    }
}

/* n bytes from src to dst (a word at a time; the regions do not overlap). */
TM_INLINE void tm_copy_bytes(int8_t *dst, const int8_t *src, int32_t n) {
    for (; n >= 4; n -= 4, dst += 4, src += 4) {
        tm_store32(dst, tm_load32(src));
    }
    for (; n > 0; --n) {
        *dst++ = *src++;
    }
}

/* im2col of output pixel (oy, ox): its KH x KW x C window, in filter order, into col; taps
 * outside the input box hold the input zero point (they then add nothing, kbias folds it). */
static inline void tm_im2col(const tm_conv_params *p, tm_box in, int32_t oy, int32_t ox,
                             int32_t pad_top, int32_t pad_left, int8_t *col) {
    int32_t ky, kx;
    const int32_t iy0 = oy * p->sh - pad_top, ix0 = ox * p->sw - pad_left;
    const int32_t span = p->kw * in.c;
    for (ky = 0; ky < p->kh; ++ky) {
        const int32_t iy = iy0 + ky * p->dh;
        if (iy < 0 || iy >= in.h) {
            memset(col, p->in_zp, (size_t)span);
        } else if (p->dw == 1 && in.pix == in.c && ix0 >= 0 && ix0 + p->kw <= in.w) {
            tm_copy_bytes(col, tm_at(in, iy, ix0), span); /* the whole kernel row is one run */
        } else {
            for (kx = 0; kx < p->kw; ++kx) {
                const int32_t ix = ix0 + kx * p->dw;
                if (ix < 0 || ix >= in.w) {
                    memset(col + kx * in.c, p->in_zp, (size_t)in.c);
                } else {
                    tm_copy_bytes(col + kx * in.c, tm_at(in, iy, ix), in.c);
                }
            }
        }
        col += span;
    }
}

/* CONV_2D as a GEMM over output pixel pairs (raster order across the box): `kind` (a
 * constant at every call, so only one GEMM is compiled in) is TM_GEMM_DENSE (the paired
 * filter) or TM_GEMM_MASK (the bitmask rows of more than TM_MASK_ROW taps). A 1x1 window
 * without padding (scratch NULL) reads its columns straight from the input pixels; any other window gathers two columns into
 * `scratch` (2 * KH * KW * C bytes, planned by Conv2D.scratch_bytes). */
enum { TM_GEMM_DENSE, TM_GEMM_MASK };

TM_INLINE void tm_conv2d_gemm(const tm_conv_params *p, tm_box in, tm_box out,
                              int32_t pad_top, int32_t pad_left, int8_t *scratch,
                              int32_t kind) {
    const int32_t k = p->kh * p->kw * in.c;
    const int32_t n = out.h * out.w;
    const tm_gemm_q q = {p->kbias, p->mult, p->shift, p->out_zp, p->act_min, p->act_max,
                         p->fast_rq};
    int32_t i, oy = 0, ox = 0;
    for (i = 0; i < n; i += 2) {
        const int32_t last = i + 1 == n;
        const int32_t oy1 = ox + 1 == out.w ? oy + 1 : oy, ox1 = ox + 1 == out.w ? 0 : ox + 1;
        int8_t *d0 = tm_at(out, oy, ox), *d1 = last ? d0 : tm_at(out, oy1, ox1);
        const int8_t *c0, *c1;
        if (scratch) {
            tm_im2col(p, in, oy, ox, pad_top, pad_left, scratch);
            if (!last) {
                tm_im2col(p, in, oy1, ox1, pad_top, pad_left, scratch + k);
            }
            c0 = scratch;
            c1 = last ? scratch : scratch + k;
        } else {
            c0 = tm_at(in, oy * p->sh, ox * p->sw);
            c1 = last ? c0 : tm_at(in, oy1 * p->sh, ox1 * p->sw);
        }
        if (kind == TM_GEMM_MASK) {
            tm_mask_gemm2(c0, last ? NULL : c1, p->mask, p->filter, k, out.c, &q, d0, d1);
        } else {
            tm_gemm2(c0, last ? NULL : c1, p->wpairs, k, out.c, &q, d0, d1);
        }
        oy = ox1 + 1 == out.w ? oy1 + 1 : oy1;
        ox = ox1 + 1 == out.w ? 0 : ox1 + 1;
    }
}

/* The direct bitmask loop (a test per weight). With kbias (the bias and the input zero
 * point folded) it sums raw products, else (x - zp) * w plus the bias. */
static inline void tm_conv2d_sparse(const tm_conv_params *p, tm_box in, tm_box out,
                                    int32_t pad_top, int32_t pad_left) {
    const int32_t zsub = p->kbias ? 0 : p->in_zp;
    int32_t oy, ox, oc, ky, kx, ic;
    for (oy = 0; oy < out.h; ++oy) {
        for (ox = 0; ox < out.w; ++ox) {
            int8_t *dst = tm_at(out, oy, ox);
            const int8_t *v = p->filter;
            int32_t bit = 0;
            for (oc = 0; oc < out.c; ++oc) {
                int32_t acc = p->kbias ? p->kbias[oc] : 0;
                for (ky = 0; ky < p->kh; ++ky) {
                    const int32_t iy = oy * p->sh - pad_top + ky * p->dh;
                    for (kx = 0; kx < p->kw; ++kx) {
                        const int32_t ix = ox * p->sw - pad_left + kx * p->dw;
                        const int32_t valid = iy >= 0 && iy < in.h && ix >= 0 && ix < in.w;
                        const int8_t *src = valid ? tm_at(in, iy, ix) : 0;
                        for (ic = 0; ic < in.c; ++ic, ++bit) {
                            if (tm_bit(p->mask, bit)) {
                                /* outside the box the tap reads the zero point */
                                const int32_t x = valid ? (int32_t)src[ic] : p->in_zp;
                                acc += (x - zsub) * (int32_t)*v++;
                            }
                        }
                    }
                }
                dst[oc] = tm_conv_out(p, acc, oc);
            }
        }
    }
}

/* One entry of a row's non-zero list: skip `gap` weights from (ky, kx, c), carrying the
 * channel into kx and kx into ky as the filter's [ky][kx][c] layout does. */
TM_INLINE void tm_list_advance(int32_t gap, int32_t channels, int32_t kw, int32_t *c,
                               int32_t *kx, int32_t *ky) {
    *c += gap;
    while (*c >= channels) {
        *c -= channels;
        if (++*kx == kw) {
            *kx = 0;
            ++*ky;
        }
    }
}

/* Row o of a sparse (non-zero lists) CONV_2D as a tap table for the strides of box `in`:
 * each entry's tap index followed as (ky, kx, channel); the zero-weight entries that only
 * bridge long gaps are left out. The folded bias is the row's kbias. */
static inline void tm_taps_of_list(const tm_conv_params *p, tm_box in, tm_box out,
                                   const uint8_t *nz, int32_t count, int32_t o,
                                   int32_t pad_top, int32_t pad_left, tm_taps *t) {
    int32_t n = 0, c = 0, kx = 0, ky = 0, ext[4] = {0, 0, 0, 0};
    for (; count > 0; --count, nz += 2) {
        tm_list_advance(nz[0], in.c, p->kw, &c, &kx, &ky);
        if (nz[1]) {
            const int32_t dy = ky * p->dh, dx = kx * p->dw;
            tm_taps_add(t, n++, dy * in.row + dx * in.pix + c, (int8_t)nz[1], dy, dx, ext);
        }
    }
    t->n = n;
    t->kb = p->kbias[o];
    tm_taps_rect(t, p, in, out, pad_top, pad_left, ext[0], ext[1], ext[2], ext[3]);
}

/* Row o of a sparse CONV_2D walked pixel by pixel (a row of more than TM_TAPS non-zero
 * taps with no im2col buffer): each entry's tap followed as (ky, kx, channel); a tap
 * outside the input box reads the input zero point, which kbias cancels. */
static inline void tm_conv2d_sparse_row(const tm_conv_params *p, tm_box in, tm_box out,
                                        const uint8_t *row, int32_t count, int32_t o,
                                        int32_t pad_top, int32_t pad_left) {
    const tm_clamp cl = tm_clamp_of(p->out_zp, p->act_min, p->act_max);
    const tm_rq r = tm_rq_of(p->mult[o], p->shift[o]);
    int32_t oy, ox, n;
    for (oy = 0; oy < out.h; ++oy) {
        for (ox = 0; ox < out.w; ++ox) {
            const int32_t iy0 = oy * p->sh - pad_top, ix0 = ox * p->sw - pad_left;
            const uint8_t *nz = row;
            int32_t acc = p->kbias[o], c = 0, kx = 0, ky = 0;
            for (n = count; n > 0; --n, nz += 2) {
                int32_t iy, ix;
                tm_list_advance(nz[0], in.c, p->kw, &c, &kx, &ky);
                iy = iy0 + ky * p->dh;
                ix = ix0 + kx * p->dw;
                acc += (iy >= 0 && iy < in.h && ix >= 0 && ix < in.w
                            ? (int32_t)tm_at(in, iy, ix)[c] : p->in_zp) * (int8_t)nz[1];
            }
            tm_at(out, oy, ox)[o] = TM_GEMM_OUT(p->fast_rq, r, cl, acc);
        }
    }
}

/* Sparse (non-zero lists) CONV_2D row by row through tap tables (no scratch); a row of
 * more than TM_TAPS non-zero taps is walked pixel by pixel. */
TM_NOINLINE void tm_conv2d_sparse_taps(const tm_conv_params *p, tm_box in, tm_box out,
                                       int32_t pad_top, int32_t pad_left) {
    const tm_sparse_rows sp = {p->nz, p->nz_count, p->nz_count8};
    const uint8_t *nz = p->nz;
    tm_taps t;
    int32_t o;
    for (o = 0; o < out.c; ++o) {
        const int32_t count = tm_sparse_count(&sp, o);
        tm_taps_of_list(p, in, out, nz, count, o, pad_top, pad_left, &t);
        if (t.n == 0) {
            tm_taps_fill(out, o, tm_requant_out(t.kb, p->mult[o], p->shift[o], p->out_zp,
                                                p->act_min, p->act_max));
        } else if (TM_SPARSE_LONG && t.n > TM_TAPS) {
            tm_conv2d_sparse_row(p, in, out, nz, count, o, pad_top, pad_left);
        } else {
            tm_taps_rows(p, &t, in, 0, out, o, pad_top, pad_left);
        }
        nz += 2 * count;
    }
}

/* True when a 1x1 conv's every output pixel reads one input pixel of the box (no padding
 * reaches it): its GEMM columns are the input pixels themselves. */
TM_INLINE int32_t tm_conv_pointwise(const tm_conv_params *p, tm_box in, tm_box out,
                                    int32_t pad_top, int32_t pad_left) {
    return p->kh == 1 && p->kw == 1 && pad_top == 0 && pad_left == 0 &&
           (out.h - 1) * p->sh < in.h && (out.w - 1) * p->sw < in.w;
}

/* GCC turns a short byte-fill loop into a memset call, which costs more than the few
 * bytes a window's border takes; the gather keeps its loops. */
#if defined(__GNUC__) && !defined(__clang__)
#define TM_KEEP_LOOPS __attribute__((optimize("no-tree-loop-distribute-patterns")))
#else
#define TM_KEEP_LOOPS
#endif

/* The im2col column of output pixel (oy, ox) (tm_im2col_block's general case: a window
 * across the border of box `in`, or pixels that are not one run): per kernel row, the taps
 * left and right of the box hold the input zero point, the ones inside are copied. */
TM_NOINLINE TM_KEEP_LOOPS void tm_im2col_border(const tm_conv_params *p, tm_box in, int32_t oy,
                                            int32_t ox, int32_t pad_top, int32_t pad_left,
                                            int8_t *col) {
    const int32_t c = in.c, kw = p->kw, dw = p->dw, span = kw * c, run = dw == 1 && in.pix == c;
    const int32_t iy0 = oy * p->sh - pad_top, ix0 = ox * p->sw - pad_left;
    /* the taps [kx0, kx1) of a kernel row lie inside the box */
    const int32_t a = ix0 >= 0 ? 0 : tm_ceil_div(-ix0, dw), b = tm_ceil_div(in.w - ix0, dw);
    const int32_t kx0 = a < kw ? a : kw, kx1 = b < kx0 ? kx0 : (b > kw ? kw : b);
    int32_t ky, kx, j;
    for (ky = 0; ky < p->kh; ++ky, col += span) {
        const int32_t iy = iy0 + ky * p->dh, inside = iy >= 0 && iy < in.h;
        const int32_t lo = inside ? kx0 * c : span, hi = inside ? kx1 * c : span;
        for (j = 0; j < span; ++j) {
            col[j] = (int8_t)p->in_zp;
        }
        for (kx = kx0; kx < kx1 && lo < hi; kx = run ? kx1 : kx + 1) { /* a run: one copy */
            tm_copy_bytes(col + kx * c, tm_at(in, iy, ix0 + kx * dw), run ? hi - lo : c);
        }
    }
}

/* The im2col columns of the nb output pixels from (oy, ox) on (raster order over an
 * output `ow` pixels wide) for the sparse blocks, K bytes each in filter order: the bytes
 * the dense GEMM's tm_im2col gathers. A window inside the box whose kernel rows are runs
 * (no dilation, pixel stride = channels) copies them, any other goes through
 * tm_im2col_border. */
TM_NOINLINE void tm_im2col_block(const tm_conv_params *p, tm_box in, int32_t ow, int32_t oy,
                                 int32_t ox, int32_t nb, int32_t pad_top, int32_t pad_left,
                                 int8_t *col) {
    const int32_t kh = p->kh, span = p->kw * in.c, ystep = p->dh * in.row;
    const int32_t run = p->dw == 1 && in.pix == in.c;
    int32_t ky;
    for (; nb > 0; --nb) {
        const int32_t iy0 = oy * p->sh - pad_top, ix0 = ox * p->sw - pad_left;
        if (run && iy0 >= 0 && iy0 + (kh - 1) * p->dh < in.h && ix0 >= 0 &&
            ix0 + p->kw <= in.w) {
            const int8_t *src = tm_at(in, iy0, ix0);
            for (ky = 0; ky < kh; ++ky, col += span, src += ystep) {
                tm_copy_bytes(col, src, span);
            }
        } else {
            tm_im2col_border(p, in, oy, ox, pad_top, pad_left, col);
            col += kh * span;
        }
        if (++ox == ow) {
            ox = 0;
            ++oy;
        }
    }
}

/* A sparse window CONV_2D over blocks of im2col columns (`cols` >= 4 of them fit the
 * scratch, planned by Conv2D.scratch_bytes for sparse builds): the next `cols` output
 * pixels (raster order; within one output row when the output box's rows are not
 * contiguous) are gathered into the scratch, K bytes each, and then every filter row runs
 * over the block as a 1x1 conv's rows run over its pixels (tm_sparse_pointwise_rows: the
 * row's constants and entries are taken once per block, four columns share each entry).
 * `masked`: the filter is the bitmask (K <= TM_MASK_ROW), its rows decoded per block. */
TM_NOINLINE void tm_conv2d_sparse_blocks(const tm_conv_params *p, tm_box in, tm_box out,
                                         int32_t pad_top, int32_t pad_left, int8_t *scratch,
                                         int32_t cols, int32_t masked) {
    const int32_t k = p->kh * p->kw * in.c, n = out.h * out.w;
    const int32_t linear = out.row == out.w * out.pix;
    int32_t i0 = 0;
    while (i0 < n) {
        const int32_t oy0 = i0 / out.w, ox0 = i0 - oy0 * out.w;
        const int32_t room = linear ? n - i0 : out.w - ox0;
        const int32_t nb = room < cols ? room : cols;
        const tm_box cb = tm_box_make(scratch, 1, nb, k, k, nb * k);
        const tm_box ob = tm_box_make(tm_at(out, oy0, ox0), 1, nb, out.c, out.pix,
                                      nb * out.pix);
        tm_im2col_block(p, in, out.w, oy0, ox0, nb, pad_top, pad_left, scratch);
        if (masked) {
            tm_conv2d_mask_pointwise(p, cb, ob, 1, 1);
        } else {
            tm_conv2d_sparse_pointwise(p, cb, ob, 1, 1);
        }
        i0 += nb;
    }
}

/* Sparse CONV_2D stored as non-zero lists (the generator calls it for them, so a model
 * without dense convs links no dense GEMM): a 1x1 that never pads runs its rows over the
 * input pixels; a window conv its rows over blocks of `cols` im2col columns when `scratch`
 * was planned (the window's border is the im2col's), else its tap tables. */
static inline void tm_conv2d_lists(const tm_conv_params *p, tm_box in, tm_box out,
                                   int32_t pad_top, int32_t pad_left, int8_t *scratch,
                                   int32_t cols) {
    if (tm_conv_pointwise(p, in, out, pad_top, pad_left)) {
        tm_conv2d_sparse_pointwise(p, in, out, p->sh, p->sw);
    } else if (scratch) {
        tm_conv2d_sparse_blocks(p, in, out, pad_top, pad_left, scratch, cols, 0);
    } else {
        tm_conv2d_sparse_taps(p, in, out, pad_top, pad_left);
    }
}

/* Sparse CONV_2D stored as the bitmask (the generator calls it for them): with the bias
 * folded (kbias), rows of at most TM_MASK_ROW taps decoded into lists and run as the lists
 * are (over the input pixels of a 1x1, im2col blocks of a window), longer rows through the
 * bitmask GEMM over im2col or pixel columns; else the direct loop. */
static inline void tm_conv2d_masked(const tm_conv_params *p, tm_box in, tm_box out,
                                    int32_t pad_top, int32_t pad_left, int8_t *scratch,
                                    int32_t cols) {
    if (p->kbias && in.c <= TM_MASK_ROW && tm_conv_pointwise(p, in, out, pad_top, pad_left)) {
        tm_conv2d_mask_pointwise(p, in, out, p->sh, p->sw);
    } else if (p->kbias && scratch && p->kh * p->kw * in.c <= TM_MASK_ROW) {
        tm_conv2d_sparse_blocks(p, in, out, pad_top, pad_left, scratch, cols, 1);
    } else if (p->kbias && (scratch || tm_conv_pointwise(p, in, out, pad_top, pad_left))) {
        tm_conv2d_gemm(p, in, out, pad_top, pad_left, scratch, TM_GEMM_MASK);
    } else {
        tm_conv2d_sparse(p, in, out, pad_top, pad_left);
    }
}

/* tm_conv2d_masked's row paths alone: the generator calls it for a bitmask CONV_2D with
 * the bias folded, rows of at most TM_MASK_ROW taps and either no padding on a 1x1 or an
 * im2col buffer, so a model whose bitmask convs are all such links neither the bitmask
 * GEMM nor the direct loop. */
static inline void tm_conv2d_mask_rows(const tm_conv_params *p, tm_box in, tm_box out,
                                       int32_t pad_top, int32_t pad_left, int8_t *scratch,
                                       int32_t cols) {
    if (tm_conv_pointwise(p, in, out, pad_top, pad_left)) {
        tm_conv2d_mask_pointwise(p, in, out, p->sh, p->sw);
    } else {
        tm_conv2d_sparse_blocks(p, in, out, pad_top, pad_left, scratch, cols, 1);
    }
}

/* Dense CONV_2D: the GEMM when the generator emitted the paired filter (`scratch` is then
 * the im2col buffer of a window conv, NULL for a 1x1); else the direct loop below (a window
 * conv planned without scratch, --optimize memory). Sparse filters run tm_conv2d_lists and
 * tm_conv2d_masked. */
static inline void tm_conv2d(const tm_conv_params *p, tm_box in, tm_box out, int32_t pad_top,
                             int32_t pad_left, int8_t *scratch) {
    int32_t oy, ox, oc, ky, kx, ic;
    const int32_t taps = p->kh * p->kw * in.c;
    if (p->wpairs) {
        tm_conv2d_gemm(p, in, out, pad_top, pad_left, scratch, TM_GEMM_DENSE);
        return;
    }
    for (oy = 0; oy < out.h; ++oy) {
        for (ox = 0; ox < out.w; ++ox) {
            int8_t *dst = tm_at(out, oy, ox);
            for (oc = 0; oc < out.c; ++oc) {
                const int8_t *f = p->filter + oc * taps;
                int32_t acc = 0;
                for (ky = 0; ky < p->kh; ++ky) {
                    const int32_t iy = oy * p->sh - pad_top + ky * p->dh;
                    if (iy < 0 || iy >= in.h) {
                        continue;
                    }
                    for (kx = 0; kx < p->kw; ++kx) {
                        const int32_t ix = ox * p->sw - pad_left + kx * p->dw;
                        const int8_t *src;
                        const int8_t *fk;
                        if (ix < 0 || ix >= in.w) {
                            continue;
                        }
                        src = tm_at(in, iy, ix);
                        fk = f + (ky * p->kw + kx) * in.c;
                        for (ic = 0; ic < in.c; ++ic) {
                            acc += ((int32_t)src[ic] - p->in_zp) * (int32_t)fk[ic];
                        }
                    }
                }
                dst[oc] = tm_conv_out(p, acc, oc);
            }
        }
    }
}

/* TFLite's 16x8 CONV_2D (int16 activations with zero point 0, int8 filter, int64 bias):
 * int64 accumulation, then MultiplyByQuantizedMultiplier's int64 form: the multiplier
 * reduced to 16 bits and one rounding shift by 15 - shift. Whole maps (no boxes). */
typedef struct {
    const int8_t *filter;   /* OHWI */
    const int64_t *bias;    /* NULL when the op has none */
    const int32_t *mult;
    const int8_t *shift;
    int32_t kh, kw, sh, sw, dh, dw;
    int32_t in_h, in_w, in_c, out_h, out_w, out_c, pad_top, pad_left;
    int32_t act_min, act_max;
} tm_conv16_params;

static inline int32_t tm_requant64(int64_t x, int32_t m, int32_t shift) {
    const int64_t reduced = m < 0x7FFF0000 ? (m + (1 << 15)) >> 16 : 0x7FFF;
    const int32_t total = 15 - shift;
    return (int32_t)((x * reduced + ((int64_t)1 << (total - 1))) >> total);
}

static inline void tm_conv2d_s16(const tm_conv16_params *p, const int16_t *in, int16_t *out) {
    int32_t oy, ox, oc, ky, kx, ic;
    const int32_t taps = p->kh * p->kw * p->in_c;
    for (oy = 0; oy < p->out_h; ++oy) {
        for (ox = 0; ox < p->out_w; ++ox) {
            int16_t *dst = out + (oy * p->out_w + ox) * p->out_c;
            for (oc = 0; oc < p->out_c; ++oc) {
                const int8_t *f = p->filter + oc * taps;
                int64_t acc = 0;
                int32_t v;
                for (ky = 0; ky < p->kh; ++ky) {
                    const int32_t iy = oy * p->sh - p->pad_top + ky * p->dh;
                    if (iy < 0 || iy >= p->in_h) {
                        continue;
                    }
                    for (kx = 0; kx < p->kw; ++kx) {
                        const int32_t ix = ox * p->sw - p->pad_left + kx * p->dw;
                        const int16_t *src;
                        const int8_t *fk;
                        if (ix < 0 || ix >= p->in_w) {
                            continue;
                        }
                        src = in + (iy * p->in_w + ix) * p->in_c;
                        fk = f + (ky * p->kw + kx) * p->in_c;
                        for (ic = 0; ic < p->in_c; ++ic) {
                            acc += (int64_t)((int32_t)src[ic] * (int32_t)fk[ic]);
                        }
                    }
                }
                if (p->bias) {
                    acc += p->bias[oc];
                }
                v = tm_requant64(acc, p->mult[oc], p->shift[oc]);
                dst[oc] = (int16_t)(v < p->act_min ? p->act_min : (v > p->act_max ? p->act_max : v));
            }
        }
    }
}

#endif /* TM_CONV_H */
