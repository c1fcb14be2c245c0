/* tinymcu runtime: EXPAND_DEPTHWISE, a 1x1 CONV_2D fused with the depthwise that reads it
 * (passes.fuse_expand_depthwise), one expanded channel plane at a time. */
#ifndef TM_EXPAND_DEPTHWISE_H
#define TM_EXPAND_DEPTHWISE_H

#include "tm_depthwise.h"

typedef struct {
    tm_conv_params expand;  /* the 1x1 CONV_2D */
    tm_conv_params dw;      /* the depthwise that reads its output */
} tm_expand_dw_params;

/* Two columns against one plain filter row (K taps): the fused expand's pixel pairs share
 * each weight word's sign-extension (15 instructions per 8 MACs with the DSP extension,
 * against 2 x 8 for two tm_dot1). */
TM_INLINE void tm_dot2x1(const int8_t *c0, const int8_t *c1, const int8_t *w, int32_t k,
                         int32_t *acc) {
    int32_t s0 = acc[0], s1 = acc[1], t;
#if TM_DSP
    for (; k >= 4; k -= 4, c0 += 4, c1 += 4, w += 4) {
        const uint32_t a = tm_load32(c0), b = tm_load32(c1), x = tm_load32(w);
        const int32_t xe = __sxtb16((int32_t)x), xo = (int32_t)tm_sxtb16_odd(x);
        s0 = __smlad((int32_t)tm_sxtb16_odd(a), xo, __smlad(__sxtb16((int32_t)a), xe, s0));
        s1 = __smlad((int32_t)tm_sxtb16_odd(b), xo, __smlad(__sxtb16((int32_t)b), xe, s1));
    }
#endif
    for (; k >= 4; k -= 4, c0 += 4, c1 += 4, w += 4) { /* written out: gcc vectorizes it */
        s0 += c0[0] * w[0] + c0[1] * w[1] + c0[2] * w[2] + c0[3] * w[3];
        s1 += c1[0] * w[0] + c1[1] * w[1] + c1[2] * w[2] + c1[3] * w[3];
    }
    for (t = 0; t < k; ++t) {
        s0 += c0[t] * w[t];
        s1 += c1[t] * w[t];
    }
    acc[0] = s0;
    acc[1] = s1;
}

/* Expanded channel c of a dense expand (filter row f, bias and input zero point folded in
 * kbias) over the whole input box into the plane, in raster order: pixel pairs through
 * tm_dot2x1, the short requantization when the generator proved the op bounded. */
static inline void tm_expand_plane(const tm_conv_params *e, tm_box in, const int8_t *f,
                                   int32_t c, int8_t *plane) {
    const int32_t n = in.h * in.w, kb = e->kbias[c], lo = e->act_min, hi = e->act_max;
    const int32_t m = e->mult[c], r = -e->shift[c], h = e->fast_rq ? 1 << (r - 1) : 0;
    const tm_rq rq = tm_rq_of(e->mult[c], e->shift[c]);
    const tm_clamp cl = tm_clamp_of(e->out_zp, lo, hi);
    int32_t i, y = 0, x = 0;
    for (i = 0; i < n; i += 2) {
        const int32_t y1 = x + 1 == in.w ? y + 1 : y, x1 = x + 1 == in.w ? 0 : x + 1;
        const int8_t *c0 = tm_at(in, y, x);
        int32_t acc[2];
        acc[0] = acc[1] = kb;
        if (i + 1 < n) {
            tm_dot2x1(c0, tm_at(in, y1, x1), f, in.c, acc);
        } else {
            acc[0] = tm_dot1(c0, f, in.c, kb);
        }
        if (e->fast_rq) {
            plane[i] = tm_sat8(tm_rqf(acc[0], m, r, h, e->out_zp), lo, hi, 0);
            if (i + 1 < n) {
                plane[i + 1] = tm_sat8(tm_rqf(acc[1], m, r, h, e->out_zp), lo, hi, 0);
            }
        } else {
            plane[i] = tm_rq_out(rq, cl, acc[0]);
            if (i + 1 < n) {
                plane[i + 1] = tm_rq_out(rq, cl, acc[1]);
            }
        }
        y = x1 + 1 == in.w ? y1 + 1 : y1;
        x = x1 + 1 == in.w ? 0 : x1 + 1;
    }
}

/* EXPAND_DEPTHWISE: for each expanded channel c, the 1x1 conv's channel c over the whole
 * input box goes into `scratch` (one in.h * in.w plane, requantized to int8 exactly as the
 * unfused CONV_2D would write it), and depthwise filter c turns it into output channel c.
 * The expanded tensor never exists. Dense filters take the fast layers: the expand's dot
 * products through tm_expand_plane (SIMD pixel pairs, input zero point folded into kbias)
 * and the depthwise through tm_dw_group1 (no per-tap bounds checks). */
static inline void tm_expand_depthwise(const tm_expand_dw_params *p, tm_box in, tm_box out,
                                       int32_t pad_top, int32_t pad_left, int8_t *scratch) {
    const tm_box plane = tm_box_make(scratch, in.h, in.w, 1, 1, in.w);
    const int8_t *f = p->expand.filter; /* row c of the 1x1 filter (dense or sparse) */
    const int8_t *dw_values = p->dw.filter;
    int32_t c, y, x, ic;
    for (c = 0; c < out.c; ++c) {
        if (p->expand.kbias) { /* dense */
            tm_expand_plane(&p->expand, in, f, c, scratch);
        } else {
            for (y = 0; y < in.h; ++y) {
                for (x = 0; x < in.w; ++x) {
                    const int8_t *src = tm_at(in, y, x);
                    int32_t acc = 0;
                    if (p->expand.mask) {
                        const int8_t *v = f;
                        for (ic = 0; ic < in.c; ++ic) {
                            if (tm_bit(p->expand.mask, c * in.c + ic)) {
                                acc += ((int32_t)src[ic] - p->expand.in_zp) * (int32_t)*v++;
                            }
                        }
                    } else {
                        for (ic = 0; ic < in.c; ++ic) {
                            acc += ((int32_t)src[ic] - p->expand.in_zp) * (int32_t)f[ic];
                        }
                    }
                    scratch[y * in.w + x] = tm_conv_out(&p->expand, acc, c);
                }
            }
        }
        f += p->expand.mask ? tm_bits_set(p->expand.mask, c * in.c, in.c) : in.c;
        if (p->dw.mask) {
            dw_values = tm_depthwise_channel(&p->dw, plane, 0, out, c, pad_top, pad_left,
                                             dw_values);
        } else { /* dense: the valid taps found once per output pixel */
            tm_dw_group1(&p->dw, plane, 0, out, c, pad_top, pad_left);
        }
    }
}

#endif /* TM_EXPAND_DEPTHWISE_H */
