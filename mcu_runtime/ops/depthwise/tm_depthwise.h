/* tinymcu runtime: DEPTHWISE_CONV_2D, direct and in place (TinyEngine), dense or sparse
 * (channel-major sparse rows). Parameters and requantization are CONV_2D's (tm_conv.h).
 *
 * Dense filters with depth multiplier 1 run tm_dw_channels: SIMD over 4 channels at a time
 * (the filter is 1HW(C), so 4 neighbouring channels' weights of one tap are one word, like
 * the input's). With the DSP extension a tap of 4 channels is 2 loads, 4 sign-extensions
 * (__sxtab16 subtracts the input zero point on the way) and 4 16-bit MACs
 * (__smlabb/__smlatt); the C99 path is the same sum per byte. The taps a window has inside
 * the box are found once per output pixel, so padding costs nothing in the tap loop; a 3x3
 * window fully inside runs an unrolled body. Other cases (multiplier > 1, a fused
 * expand's bitmask filter) run the per-channel loop tm_depthwise_channel; bitmask filters
 * have their own entry points at the end of this header. */
#ifndef TM_DEPTHWISE_H
#define TM_DEPTHWISE_H

#include "tm_conv.h"

/* GCC propagates a model's constant channel count into the 4-channel group path that the
 * dispatcher never takes for it, and then warns about reads past the per-channel arrays
 * (-Warray-bounds, a false positive at -O2); keep -Werror usable on generated code. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Warray-bounds"
#endif

/* The taps [lo, hi) of a k-tap window starting at i0 (dilation d) inside [0, n). */
TM_INLINE void tm_tap_range(int32_t i0, int32_t k, int32_t d, int32_t n, int32_t *lo,
                                int32_t *hi) {
    int32_t a = 0, b = k;
    while (a < k && i0 + a * d < 0) {
        ++a;
    }
    while (b > a && i0 + (b - 1) * d >= n) {
        --b;
    }
    *lo = a;
    *hi = b;
}

/* a[0..3] += (x[j] - zp) * w[j] for the 4 channels of one tap (nzp: -zp in both halves). */
TM_INLINE void tm_dw_tap4(const int8_t *x, const int8_t *w, uint32_t nzp, int32_t zp,
                          int32_t *a0, int32_t *a1, int32_t *a2, int32_t *a3) {
#if TM_DSP
    const uint32_t xv = tm_load32(x), wv = tm_load32(w);
    const int32_t xe = __sxtab16((int32_t)nzp, (int32_t)xv);
    const int32_t xo = (int32_t)tm_sxtab16_odd(nzp, xv);
    const int32_t we = __sxtb16((int32_t)wv), wo = (int32_t)tm_sxtb16_odd(wv);
    (void)zp;
    *a0 = __smlabb(xe, we, *a0);
    *a1 = __smlabb(xo, wo, *a1);
    *a2 = __smlatt(xe, we, *a2);
    *a3 = __smlatt(xo, wo, *a3);
#else
    (void)nzp;
    *a0 += (x[0] - zp) * w[0];
    *a1 += (x[1] - zp) * w[1];
    *a2 += (x[2] - zp) * w[2];
    *a3 += (x[3] - zp) * w[3];
#endif
}

/* The same for 4 output channels that read one input channel (depth multiplier a multiple
 * of 4): the input byte minus the zero point times each lane's weight. */
TM_INLINE void tm_dw_tap4b(const int8_t *x, const int8_t *w, int32_t zp, int32_t *a0,
                           int32_t *a1, int32_t *a2, int32_t *a3) {
    const int32_t v = *x - zp;
#if TM_DSP
    const uint32_t wv = tm_load32(w);
    const int32_t we = __sxtb16((int32_t)wv), wo = (int32_t)tm_sxtb16_odd(wv);
    *a0 = __smlabb(v, we, *a0);
    *a1 = __smlabb(v, wo, *a1);
    *a2 = __smlabt(v, we, *a2);
    *a3 = __smlabt(v, wo, *a3);
#else
    *a0 += v * w[0];
    *a1 += v * w[1];
    *a2 += v * w[2];
    *a3 += v * w[3];
#endif
}

TM_INLINE void tm_dw_tap(int32_t bcast, const int8_t *x, const int8_t *w, uint32_t nzp,
                         int32_t zp, int32_t *a0, int32_t *a1, int32_t *a2, int32_t *a3) {
    if (bcast) {
        tm_dw_tap4b(x, w, zp, a0, a1, a2, a3);
    } else {
        tm_dw_tap4(x, w, nzp, zp, a0, a1, a2, a3);
    }
}

#if TM_ASM
/* The window taps of one 4-channel group as a table, for windows inside the box: per tap
 * the input's byte offset from the window origin and the 4 weights sign-extended into
 * (even, odd) halfword pairs, built once per group. Up to TM_DW_TABLE_TAPS taps (5x5), on
 * the stack. */
#define TM_DW_TABLE_TAPS 25

/* One tap-table entry (input offset, two pre-extended weight pairs) into a0..a3: shared
 * by the looped and the unrolled 3x3 kernels below. */
#define TM_DW_TAP_ASM                                                                      \
    "ldr %[off], [%[tab]], #12\n\t"                                                        \
    "ldr %[xv], [%[x], %[off]]\n\t"                                                        \
    "ldrd %[we], %[wo], [%[tab], #-8]\n\t"                                                 \
    "sxtab16 %[xe], %[nzp], %[xv]\n\t"                                                     \
    "sxtab16 %[xv], %[nzp], %[xv], ror #8\n\t"                                             \
    "smlabb %[s0], %[xe], %[we], %[s0]\n\t"                                                \
    "smlatt %[s2], %[xe], %[we], %[s2]\n\t"                                                \
    "smlabb %[s1], %[xv], %[wo], %[s1]\n\t"                                                \
    "smlatt %[s3], %[xv], %[wo], %[s3]\n\t"

/* a0..a3 += the n taps of `tab` at window origin x: 11 instructions per tap (4 MACs), in
 * inline assembly for the register count (13) that the C spills at -Os. */
TM_INLINE void tm_dw_taps(const int8_t *x, const int32_t *tab, int32_t n, uint32_t nzp,
                          int32_t *a0, int32_t *a1, int32_t *a2, int32_t *a3) {
    int32_t s0 = *a0, s1 = *a1, s2 = *a2, s3 = *a3;
    uint32_t off, xv, we, wo, xe;
    __asm__ volatile(
        "1:\n\t"
        TM_DW_TAP_ASM
        "subs %[n], %[n], #1\n\t"
        "bne 1b\n\t"
        : [tab] "+r"(tab), [n] "+r"(n), [s0] "+r"(s0), [s1] "+r"(s1), [s2] "+r"(s2),
          [s3] "+r"(s3), [off] "=&r"(off), [xv] "=&r"(xv), [we] "=&r"(we), [wo] "=&r"(wo),
          [xe] "=&r"(xe)
        : [x] "r"(x), [nzp] "r"(nzp)
        : "cc", "memory");
    *a0 = s0;
    *a1 = s1;
    *a2 = s2;
    *a3 = s3;
}

/* The same for exactly 9 taps (3x3), unrolled: 9 instructions per tap, no loop counter. */
TM_INLINE void tm_dw_taps9(const int8_t *x, const int32_t *tab, uint32_t nzp, int32_t *a0,
                           int32_t *a1, int32_t *a2, int32_t *a3) {
    int32_t s0 = *a0, s1 = *a1, s2 = *a2, s3 = *a3;
    uint32_t off, xv, we, wo, xe;
    __asm__ volatile(
        ".rept 9\n\t"
        TM_DW_TAP_ASM
        ".endr\n\t"
        : [tab] "+r"(tab), [s0] "+r"(s0), [s1] "+r"(s1), [s2] "+r"(s2), [s3] "+r"(s3),
          [off] "=&r"(off), [xv] "=&r"(xv), [we] "=&r"(we), [wo] "=&r"(wo), [xe] "=&r"(xe)
        : [x] "r"(x), [nzp] "r"(nzp)
        : "memory");
    *a0 = s0;
    *a1 = s1;
    *a2 = s2;
    *a3 = s3;
}
#endif

/* Output channels oc..oc+3 of a dense depthwise from channels ic..ic+3 of box `in` (bcast 0:
 * multiplier 1) or from channel ic alone (bcast 1: a multiplier that is a multiple of 4);
 * out.c is the filter's channel count, its 1HW(C) row stride. Everything the loops read is
 * loaded into locals first: the int8 output stores may alias any memory. Always inlined,
 * so each call site's constant `bcast` picks its tap at compile time. */
TM_INLINE void tm_dw_group4(const tm_conv_params *p, tm_box in, int32_t ic, tm_box out,
                            int32_t oc, int32_t pad_top, int32_t pad_left, int32_t bcast,
                            int32_t use_table) {
    const int32_t fc = out.c, zp = p->in_zp, kh = p->kh, kw = p->kw, sh = p->sh, sw = p->sw;
    const int32_t dh = p->dh, dw = p->dw;
    const uint32_t nzp = ((uint32_t)(-zp) & 0xffffu) * 0x10001u;
    const int8_t *fw = p->filter + oc;
    const int32_t b0 = p->bias ? p->bias[oc] : 0, b1 = p->bias ? p->bias[oc + 1] : 0;
    const int32_t b2 = p->bias ? p->bias[oc + 2] : 0, b3 = p->bias ? p->bias[oc + 3] : 0;
    const tm_rq r0 = tm_rq_of(p->mult[oc], p->shift[oc]);
    const tm_rq r1 = tm_rq_of(p->mult[oc + 1], p->shift[oc + 1]);
    const tm_rq r2 = tm_rq_of(p->mult[oc + 2], p->shift[oc + 2]);
    const tm_rq r3 = tm_rq_of(p->mult[oc + 3], p->shift[oc + 3]);
    const tm_clamp cl = tm_clamp_of(p->out_zp, p->act_min, p->act_max);
    const int32_t full3 = kh == 3 && kw == 3 && dh == 1 && dw == 1;
    int32_t oy, ox, ky, kx, ky0, ky1, kx0, kx1;
#if TM_ASM
    int32_t tab[3 * TM_DW_TABLE_TAPS];
    const int32_t table = use_table && kh * kw <= TM_DW_TABLE_TAPS;
    if (table) {
        int32_t *t = tab;
        for (ky = 0; ky < kh; ++ky) {
            for (kx = 0; kx < kw; ++kx, t += 3) {
                const uint32_t wv = tm_load32(fw + (ky * kw + kx) * fc);
                t[0] = ky * dh * in.row + kx * dw * in.pix;
                t[1] = __sxtb16((int32_t)wv);
                t[2] = (int32_t)tm_sxtb16_odd(wv);
            }
        }
    }
#else
    (void)use_table; /* the tap table is the assembly loop's */
#endif
    for (oy = 0; oy < out.h; ++oy) {
        const int32_t iy0 = oy * sh - pad_top;
        int8_t *dst = tm_at(out, oy, 0) + oc;
        tm_tap_range(iy0, kh, dh, in.h, &ky0, &ky1);
        for (ox = 0; ox < out.w; ++ox, dst += out.pix) {
            const int32_t ix0 = ox * sw - pad_left;
            int32_t a0 = b0, a1 = b1, a2 = b2, a3 = b3;
            int8_t y0, y1, y2, y3;
#if TM_ASM
            if (table && ky0 == 0 && ky1 == kh && ix0 >= 0 && ix0 + (kw - 1) * dw < in.w) {
                tm_dw_taps(tm_at(in, iy0, ix0) + ic, tab, kh * kw, nzp, &a0, &a1, &a2, &a3);
            } else
#endif
            if (full3 && ky0 == 0 && ky1 == 3 && ix0 >= 0 && ix0 + 3 <= in.w) {
                /* a 3x3 window inside the box: 9 taps unrolled */
                const int8_t *x = tm_at(in, iy0, ix0) + ic;
                const int8_t *w = fw;
                for (ky = 0; ky < 3; ++ky, x += in.row, w += 3 * fc) {
                    tm_dw_tap(bcast, x, w, nzp, zp, &a0, &a1, &a2, &a3);
                    tm_dw_tap(bcast, x + in.pix, w + fc, nzp, zp, &a0, &a1, &a2, &a3);
                    tm_dw_tap(bcast, x + 2 * in.pix, w + 2 * fc, nzp, zp, &a0, &a1, &a2, &a3);
                }
            } else {
                const int32_t xstep = dw * in.pix;
                tm_tap_range(ix0, kw, dw, in.w, &kx0, &kx1);
                for (ky = ky0; ky < ky1; ++ky) { /* the valid taps, walked by pointer */
                    const int8_t *x = tm_at(in, iy0 + ky * dh, ix0 + kx0 * dw) + ic;
                    const int8_t *w = fw + (ky * kw + kx0) * fc;
                    for (kx = kx0; kx < kx1; ++kx, x += xstep, w += fc) {
                        tm_dw_tap(bcast, x, w, nzp, zp, &a0, &a1, &a2, &a3);
                    }
                }
            }
            if (p->fast_rq) {
                y0 = tm_rq_out_fast(r0, cl, a0);
                y1 = tm_rq_out_fast(r1, cl, a1);
                y2 = tm_rq_out_fast(r2, cl, a2);
                y3 = tm_rq_out_fast(r3, cl, a3);
            } else {
                y0 = tm_rq_out(r0, cl, a0);
                y1 = tm_rq_out(r1, cl, a1);
                y2 = tm_rq_out(r2, cl, a2);
                y3 = tm_rq_out(r3, cl, a3);
            }
            tm_store32(dst, (uint32_t)(uint8_t)y0 | (uint32_t)(uint8_t)y1 << 8 |
                            (uint32_t)(uint8_t)y2 << 16 | (uint32_t)(uint8_t)y3 << 24);
        }
    }
}

#if TM_ASM
/* tm_dw_group4 for the common case, cut to its core: multiplier 1, every window inside the
 * box (the padded planes of the in-place kernel, or a conv that does not pad), a `fast_rq`
 * op with the whole int8 range as its clamp. Per output pixel: the tap table's assembly
 * loop, then for each of the 4 channels the short requantization and one SSAT, packed into
 * one word store; no range test, no per-pixel branch. */
static inline void tm_dw_group4_inside(const tm_conv_params *p, tm_box in, int32_t ic,
                                       tm_box out, int32_t oc) {
    const int32_t fc = out.c, kh = p->kh, kw = p->kw, taps = kh * kw, zp = p->out_zp;
    const int32_t xstep = p->sw * in.pix;
    const uint32_t nzp = ((uint32_t)(-p->in_zp) & 0xffffu) * 0x10001u;
    const int8_t *fw = p->filter + oc;
    int32_t tab[3 * TM_DW_TABLE_TAPS], m[4], r[4], h[4], b[4];
    int32_t oy, ox, ky, kx, j;
    int32_t *t = tab;
    for (ky = 0; ky < kh; ++ky) {
        for (kx = 0; kx < kw; ++kx, t += 3) {
            const uint32_t wv = tm_load32(fw + (ky * kw + kx) * fc);
            t[0] = ky * p->dh * in.row + kx * p->dw * in.pix;
            t[1] = __sxtb16((int32_t)wv);
            t[2] = (int32_t)tm_sxtb16_odd(wv);
        }
    }
    for (j = 0; j < 4; ++j) {
        m[j] = p->mult[oc + j];
        r[j] = -p->shift[oc + j];
        h[j] = 1 << (r[j] - 1);
        b[j] = p->bias ? p->bias[oc + j] : 0;
    }
    for (oy = 0; oy < out.h; ++oy) {
        const int8_t *x = tm_at(in, oy * p->sh, 0) + ic;
        int8_t *dst = tm_at(out, oy, 0) + oc;
        for (ox = 0; ox < out.w; ++ox, x += xstep, dst += out.pix) {
            int32_t a0 = b[0], a1 = b[1], a2 = b[2], a3 = b[3];
            uint32_t y0, y1, y2, y3;
            if (taps == 9) {
                tm_dw_taps9(x, tab, nzp, &a0, &a1, &a2, &a3);
            } else {
                tm_dw_taps(x, tab, taps, nzp, &a0, &a1, &a2, &a3);
            }
            y0 = (uint32_t)__ssat(tm_rqf(a0, m[0], r[0], h[0], zp), 8) & 0xffu;
            y1 = (uint32_t)__ssat(tm_rqf(a1, m[1], r[1], h[1], zp), 8) & 0xffu;
            y2 = (uint32_t)__ssat(tm_rqf(a2, m[2], r[2], h[2], zp), 8) & 0xffu;
            y3 = (uint32_t)__ssat(tm_rqf(a3, m[3], r[3], h[3], zp), 8);
            tm_store32(dst, y0 | y1 << 8 | y2 << 16 | y3 << 24);
        }
    }
}
#endif

/* Output channel oc of a dense multiplier-1 depthwise from channel ic (the channel tail, and
 * the fused expand + depthwise's one-channel planes). Every parameter is read into a local
 * first: the int8 output stores may alias anything, and re-reading the parameter struct
 * after each store cost more than the taps. */
static inline void tm_dw_group1(const tm_conv_params *p, tm_box in, int32_t ic, tm_box out,
                                int32_t oc, int32_t pad_top, int32_t pad_left) {
    const int32_t fc = out.c, kh = p->kh, kw = p->kw, sh = p->sh, sw = p->sw, dh = p->dh;
    const int32_t dw = p->dw, zp = p->in_zp, fast = p->fast_rq;
    const int32_t bias = p->bias ? p->bias[oc] : 0, xstep = dw * in.pix;
    const int32_t ystep = dh * in.row, wstep = kw * fc;
    const int8_t *fw = p->filter + oc;
    const tm_rq r = tm_rq_of(p->mult[oc], p->shift[oc]);
    const tm_clamp cl = tm_clamp_of(p->out_zp, p->act_min, p->act_max);
    int32_t oy, ox, ky, kx, ky0, ky1, kx0, kx1;
    for (oy = 0; oy < out.h; ++oy) {
        const int32_t iy0 = oy * sh - pad_top;
        int8_t *dst = tm_at(out, oy, 0) + oc;
        tm_tap_range(iy0, kh, dh, in.h, &ky0, &ky1);
        for (ox = 0; ox < out.w; ++ox, dst += out.pix) {
            const int32_t ix0 = ox * sw - pad_left;
            int32_t acc = bias;
            tm_tap_range(ix0, kw, dw, in.w, &kx0, &kx1);
            if (kx1 - kx0 == 1 && ky1 > ky0) { /* one valid column (kw 1: audio models) */
                const int8_t *x = tm_at(in, iy0 + ky0 * dh, ix0 + kx0 * dw) + ic;
                const int8_t *w = fw + (ky0 * kw + kx0) * fc;
                for (ky = ky0; ky < ky1; ++ky, x += ystep, w += wstep) {
                    acc += (*x - zp) * *w;
                }
            } else {
                for (ky = ky0; ky < ky1; ++ky) { /* the valid taps, walked by pointer */
                    const int8_t *x = tm_at(in, iy0 + ky * dh, ix0 + kx0 * dw) + ic;
                    const int8_t *w = fw + (ky * kw + kx0) * fc;
                    for (kx = kx0; kx < kx1; ++kx, x += xstep, w += fc) {
                        acc += (*x - zp) * *w;
                    }
                }
            }
            *dst = fast ? tm_rq_out_fast(r, cl, acc) : tm_rq_out(r, cl, acc);
        }
    }
}

/* Output channels [oc0, oc0 + n) from input channels [ic0, ic0 + n): groups of 4, then the
 * tail one channel at a time. */
static inline void tm_dw_channels(const tm_conv_params *p, tm_box in, int32_t ic0, tm_box out,
                                  int32_t oc0, int32_t n, int32_t pad_top, int32_t pad_left) {
    int32_t c = 0;
#if TM_ASM
    if (p->fast_rq && p->act_min == -128 && p->act_max == 127 && pad_top == 0 &&
        pad_left == 0 && p->kh * p->kw <= TM_DW_TABLE_TAPS &&
        (out.h - 1) * p->sh + (p->kh - 1) * p->dh < in.h &&
        (out.w - 1) * p->sw + (p->kw - 1) * p->dw < in.w) {
        for (; c + 4 <= n; c += 4) {
            tm_dw_group4_inside(p, in, ic0 + c, out, oc0 + c);
        }
    }
#endif
    for (; c + 4 <= n; c += 4) {
        if (p->kh == 3 && p->kw == 3 && p->dh == 1 && p->dw == 1) { /* unrolled 3x3 */
            tm_dw_group4(p, in, ic0 + c, out, oc0 + c, pad_top, pad_left, 0, 0);
        } else { /* the tap table (DSP) */
            tm_dw_group4(p, in, ic0 + c, out, oc0 + c, pad_top, pad_left, 0, 1);
        }
    }
    for (; c < n; ++c) {
        tm_dw_group1(p, in, ic0 + c, out, oc0 + c, pad_top, pad_left);
    }
}

/* Output channel `oc` of a depthwise conv from channel `ic` of box `in`. Sparse filters:
 * `values` points at channel oc's first non-zero weight; returns where channel oc + 1's
 * start (callers walk the channels in order). */
static inline const int8_t *tm_depthwise_channel(const tm_conv_params *p, tm_box in,
                                                 int32_t ic, tm_box out, int32_t oc,
                                                 int32_t pad_top, int32_t pad_left,
                                                 const int8_t *values) {
    int32_t oy, ox, ky, kx;
    const int32_t oc_total = out.c;
    const int32_t taps = p->kh * p->kw;
    if (p->mask) {
        for (oy = 0; oy < out.h; ++oy) {
            for (ox = 0; ox < out.w; ++ox) {
                const int8_t *v = values;
                int32_t acc = 0, bit = oc * taps;
                for (ky = 0; ky < p->kh; ++ky) {
                    const int32_t iy = oy * p->sh - pad_top + ky * p->dh;
                    for (kx = 0; kx < p->kw; ++kx, ++bit) {
                        const int32_t ix = ox * p->sw - pad_left + kx * p->dw;
                        if (tm_bit(p->mask, bit)) {
                            const int32_t w = *v++;
                            if (iy >= 0 && iy < in.h && ix >= 0 && ix < in.w) {
                                acc += ((int32_t)tm_at(in, iy, ix)[ic] - p->in_zp) * w;
                            }
                        }
                    }
                }
                tm_at(out, oy, ox)[oc] = tm_conv_out(p, acc, oc);
            }
        }
        return values + tm_bits_set(p->mask, oc * taps, taps);
    }
    for (oy = 0; oy < out.h; ++oy) {
        for (ox = 0; ox < out.w; ++ox) {
            int32_t acc = 0;
            for (ky = 0; ky < p->kh; ++ky) {
                const int32_t iy = oy * p->sh - pad_top + ky * p->dh;
                if (iy < 0 || iy >= in.h) {
                    continue;
                }
                for (kx = 0; kx < p->kw; ++kx) {
                    const int32_t ix = ox * p->sw - pad_left + kx * p->dw;
                    if (ix < 0 || ix >= in.w) {
                        continue;
                    }
                    acc += ((int32_t)tm_at(in, iy, ix)[ic] - p->in_zp) *
                           (int32_t)p->filter[(ky * p->kw + kx) * oc_total + oc];
                }
            }
            tm_at(out, oy, ox)[oc] = tm_conv_out(p, acc, oc);
        }
    }
    return values;
}

/* Direct depthwise (any depth multiplier): output and input must not share memory. */
static inline void tm_depthwise(const tm_conv_params *p, tm_box in, tm_box out,
                                int32_t pad_top, int32_t pad_left) {
    int32_t c, m;
    const int8_t *values = p->filter;
    if (!p->mask && p->depth_multiplier == 1) {
        tm_dw_channels(p, in, 0, out, 0, out.c, pad_top, pad_left);
        return;
    }
    if (!p->mask && p->depth_multiplier % 4 == 0) { /* 4 output channels per input channel */
        for (c = 0; c < out.c; c += 4) {
            tm_dw_group4(p, in, c / p->depth_multiplier, out, c, pad_top, pad_left, 1, 0);
        }
        return;
    }
    for (c = 0; c < in.c; ++c) {
        for (m = 0; m < p->depth_multiplier; ++m) {
            values = tm_depthwise_channel(p, in, c, out, c * p->depth_multiplier + m, pad_top,
                                          pad_left, values);
        }
    }
}

/* In-place depthwise (multiplier 1, TinyEngine): a group of `group` input channels is copied
 * into `scratch` before the output channels of the group overwrite their slots, so the
 * output may occupy the input's memory (slot p * C + c only ever holds channel c).
 *
 * group 4 (planned for speed): the copy is the group's padded plane — the window's whole
 * reach, (out.h - 1) * sh + (kh - 1) * dh + 1 rows by the same in columns, border taps set to
 * the input zero point (they then add exactly 0) — and the SIMD kernel runs on it with no
 * padding left, so every 3x3 window takes the unrolled path. group 1 (--optimize memory):
 * one in.h x in.w channel plane, the smallest scratch, and the per-channel loop. */
static inline void tm_depthwise_inplace(const tm_conv_params *p, tm_box in, tm_box out,
                                        int32_t pad_top, int32_t pad_left, int8_t *scratch,
                                        int32_t group) {
    const int8_t *values = p->filter;
    int32_t c, y, x, j;
    if (group == 1 || p->mask) {
        const tm_box plane = tm_box_make(scratch, in.h, in.w, 1, 1, in.w);
        for (c = 0; c < in.c; ++c) {
            for (y = 0; y < in.h; ++y) {
                for (x = 0; x < in.w; ++x) {
                    scratch[y * in.w + x] = tm_at(in, y, x)[c];
                }
            }
            values = tm_depthwise_channel(p, plane, 0, out, c, pad_top, pad_left, values);
        }
        return;
    }
    {
        const int32_t ph = (out.h - 1) * p->sh + (p->kh - 1) * p->dh + 1;
        const int32_t pw = (out.w - 1) * p->sw + (p->kw - 1) * p->dw + 1;
        const int8_t zp = (int8_t)p->in_zp;
        for (c = 0; c < in.c; c += group) {
            const int32_t g = in.c - c < group ? in.c - c : group;
            const tm_box plane = tm_box_make(scratch, ph, pw, g, g, pw * g);
            int8_t *dst = scratch;
            for (y = 0; y < ph; ++y) {
                const int32_t iy = y - pad_top;
                for (x = 0; x < pw; ++x, dst += g) {
                    const int32_t ix = x - pad_left;
                    if (iy < 0 || iy >= in.h || ix < 0 || ix >= in.w) {
                        for (j = 0; j < g; ++j) {
                            dst[j] = zp;
                        }
                    } else if (g == 4) {
                        tm_store32(dst, tm_load32(tm_at(in, iy, ix) + c));
                    } else {
                        for (j = 0; j < g; ++j) {
                            dst[j] = tm_at(in, iy, ix)[c + j];
                        }
                    }
                }
            }
            tm_dw_channels(p, plane, 0, out, c, g, 0, 0);
        }
    }
}

/* ---- sparse depthwise (bitmask filters) ---------------------------------------------------
 * A pruned depthwise channel has a handful of non-zero taps among its KH*KW (at 10 %
 * density under one of 9). The generator calls these entry points only for bitmask
 * filters, so a dense build links none of it. Each channel's non-zero taps are read once
 * from its bits of the channel-major mask into a tap table (tm_conv.h), which runs the
 * channel's output pixels; a channel of more than TM_TAPS non-zero taps takes the
 * per-weight walk of tm_depthwise_channel. */

/* Channel oc's table (offsets for the strides of box `in`); *values points at its first
 * non-zero weight and is moved past its last. */
static inline void tm_dws_of(const tm_conv_params *p, tm_box in, tm_box out, int32_t oc,
                             int32_t pad_top, int32_t pad_left, const int8_t **values,
                             tm_taps *t) {
    const int8_t *v = *values;
    const int32_t taps = p->kh * p->kw, bytes = (out.c * taps + 7) / 8;
    int32_t j, n = 0, sum = 0, bit = oc * taps, ext[4] = {0, 0, 0, 0};
    for (j = 0; j < taps; j += 24, bit += 24) { /* the set bits, 24 at a time */
        const int32_t span = taps - j < 24 ? taps - j : 24;
        uint32_t m = tm_mask_bits(p->mask, bytes, bit) & ((1u << span) - 1u);
        for (; m; m &= m - 1u) {
            const int32_t k = j + tm_ctz(m), ky = k / p->kw, kx = k - ky * p->kw;
            const int32_t dy = ky * p->dh, dx = kx * p->dw, w = *v++;
            tm_taps_add(t, n++, dy * in.row + dx * in.pix, w, dy, dx, ext);
            sum += w;
        }
    }
    *values = v;
    t->n = n;
    t->kb = tm_wrap_sub(p->bias ? p->bias[oc] : 0, p->in_zp * sum);
    tm_taps_rect(t, p, in, out, pad_top, pad_left, ext[0], ext[1], ext[2], ext[3]);
}

/* Output channel oc of a sparse depthwise channel of more than TM_TAPS non-zero taps
 * (from channel ic of box `in`; values: its first non-zero weight), pixel by pixel: each
 * output walks the channel's bits, a tap outside the box adds nothing. */
TM_COLD void tm_dws_walk(const tm_conv_params *p, tm_box in, int32_t ic, tm_box out,
                         int32_t oc, int32_t pad_top, int32_t pad_left, const int8_t *values) {
    const int32_t taps = p->kh * p->kw;
    int32_t oy, ox, ky, kx;
    for (oy = 0; oy < out.h; ++oy) {
        for (ox = 0; ox < out.w; ++ox) {
            const int8_t *v = values;
            int32_t acc = 0, bit = oc * taps;
            for (ky = 0; ky < p->kh; ++ky) {
                const int32_t iy = oy * p->sh - pad_top + ky * p->dh;
                for (kx = 0; kx < p->kw; ++kx, ++bit) {
                    const int32_t ix = ox * p->sw - pad_left + kx * p->dw;
                    if (tm_bit(p->mask, bit)) {
                        const int32_t w = *v++;
                        if (iy >= 0 && iy < in.h && ix >= 0 && ix < in.w) {
                            acc += ((int32_t)tm_at(in, iy, ix)[ic] - p->in_zp) * w;
                        }
                    }
                }
            }
            tm_at(out, oy, ox)[oc] = tm_conv_out(p, acc, oc);
        }
    }
}

/* Output channel oc of a sparse depthwise from channel ic of box `in`, its table t made
 * for that box (values: the channel's first non-zero weight, for the untabled walk). */
TM_NOINLINE void tm_dws_channel(const tm_conv_params *p, const tm_taps *t, tm_box in,
                                int32_t ic, tm_box out, int32_t oc, int32_t pad_top,
                                int32_t pad_left, const int8_t *values) {
    if (t->n == 0) {
        tm_taps_fill(out, oc, tm_conv_out(p, 0, oc));
    } else if (TM_SPARSE_LONG && t->n > TM_TAPS) {
        tm_dws_walk(p, in, ic, out, oc, pad_top, pad_left, values);
    } else {
        tm_taps_rows(p, t, in, ic, out, oc, pad_top, pad_left);
    }
}

/* Sparse depthwise (bitmask filter, any depth multiplier): output and input do not share
 * memory. */
TM_NOINLINE void tm_depthwise_masked(const tm_conv_params *p, tm_box in, tm_box out,
                                       int32_t pad_top, int32_t pad_left) {
    const int8_t *values = p->filter;
    tm_taps t;
    int32_t c, m;
    for (c = 0; c < in.c; ++c) {
        for (m = 0; m < p->depth_multiplier; ++m) {
            const int32_t oc = c * p->depth_multiplier + m;
            const int8_t *first = values;
            tm_dws_of(p, in, out, oc, pad_top, pad_left, &values, &t);
            tm_dws_channel(p, &t, in, c, out, oc, pad_top, pad_left, first);
        }
    }
}

/* Copies channels [c, c + g) of box `in` into `plane` (ph x pw pixels of g channels) with
 * the window's padding around them (pad_top rows above, pad_left columns left): the
 * border bytes hold the input zero point, so every window read from the plane lies
 * inside it and a tap there adds exactly what padding adds (kb folds zp * w). */
TM_NOINLINE void tm_dw_pad_plane(tm_box in, int32_t c, int32_t g, int32_t ph, int32_t pw,
                                   int32_t pad_top, int32_t pad_left, int8_t zp,
                                   int8_t *plane) {
    /* per row: columns [0, lo) and [hi, pw) are border, [lo, hi) come from the box */
    const int32_t lo = pad_left < pw ? pad_left : pw;
    const int32_t hi = in.w + pad_left < pw ? in.w + pad_left : pw;
    const uint32_t zp4 = (uint32_t)(uint8_t)zp * 0x01010101u;
    int32_t y, x, j;
    for (y = 0; y < ph; ++y) {
        const int32_t iy = y - pad_top;
        const int32_t inside = iy >= 0 && iy < in.h;
        const int32_t a = inside ? lo : pw, b = inside ? hi : pw;
        const int8_t *s = inside ? tm_at(in, iy, a - pad_left) + c : in.p;
        if (g == 4) {
            for (x = 0; x < a; ++x, plane += 4) {
                tm_store32(plane, zp4);
            }
            for (; x < b; ++x, plane += 4, s += in.pix) {
                tm_store32(plane, tm_load32(s));
            }
            for (; x < pw; ++x, plane += 4) {
                tm_store32(plane, zp4);
            }
        } else {
            for (x = 0; x < pw; ++x, plane += g) {
                const int32_t from = x >= a && x < b;
                for (j = 0; j < g; ++j) {
                    plane[j] = from ? s[j] : zp;
                }
                s += from ? in.pix : 0;
            }
        }
    }
}

/* Sparse in-place depthwise (multiplier 1; tm_depthwise_inplace's contract: scratch holds
 * `group` channel planes, 4 planned for speed — padded by the op's padding — and 1 of
 * in.h x in.w for memory). Each group of channels is copied into the scratch before
 * their outputs overwrite it (group 4: with the zero-point border, so every channel's
 * taps run without a bounds test), then every channel runs on the copy; a group whose
 * channels have no non-zero tap reads nothing and is filled in. */
TM_NOINLINE void tm_depthwise_masked_inplace(const tm_conv_params *p, tm_box in,
                                             tm_box out, int32_t pad_top, int32_t pad_left,
                                             int8_t *scratch, int32_t group) {
    const int8_t *values = p->filter;
    const int32_t taps = p->kh * p->kw;
    const int32_t padded = group > 1;
    const int32_t ph = padded ? (out.h - 1) * p->sh + (p->kh - 1) * p->dh + 1 : in.h;
    const int32_t pw = padded ? (out.w - 1) * p->sw + (p->kw - 1) * p->dw + 1 : in.w;
    const int32_t top = padded ? pad_top : 0, left = padded ? pad_left : 0;
    tm_taps t;
    int32_t c, j;
    for (c = 0; c < in.c; c += group) {
        const int32_t g = in.c - c < group ? in.c - c : group;
        const tm_box plane = tm_box_make(scratch, ph, pw, g, g, g * pw);
        if (tm_bits_set(p->mask, c * taps, g * taps) > 0) {
            tm_dw_pad_plane(in, c, g, ph, pw, top, left, (int8_t)p->in_zp, scratch);
        }
        for (j = 0; j < g; ++j) {
            const int8_t *first = values;
            tm_dws_of(p, plane, out, c + j, pad_top - top, pad_left - left, &values, &t);
            tm_dws_channel(p, &t, plane, j, out, c + j, pad_top - top, pad_left - left,
                           first);
        }
    }
}

#endif /* TM_DEPTHWISE_H */
