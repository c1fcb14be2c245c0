/* tinymcu runtime: EXPAND_DEPTHWISE, a 1x1 CONV_2D fused with the depthwise that reads it
 * (passes.fuse_expand_depthwise), one expanded channel plane at a time. */
#ifndef TM_EXPAND_DEPTHWISE_H
#define TM_EXPAND_DEPTHWISE_H

#include "tm_depthwise.h"

typedef struct {
    tm_conv_params expand;  /* the 1x1 CONV_2D */
    tm_conv_params dw;      /* the depthwise that reads its output */
} tm_expand_dw_params;

/* EXPAND_DEPTHWISE: for each expanded channel c, the 1x1 conv's channel c over the whole
 * input box goes into `scratch` (one in.h * in.w plane, requantized to int8 exactly as the
 * unfused CONV_2D would write it), and depthwise filter c turns it into output channel c.
 * The expanded tensor never exists. Dense filters take the fast layers: the expand's dot
 * products through tm_dot1 (SIMD, input zero point folded into kbias) and the depthwise
 * through tm_dw_group1 (no per-tap bounds checks). */
static inline void tm_expand_depthwise(const tm_expand_dw_params *p, tm_box in, tm_box out,
                                       int32_t pad_top, int32_t pad_left, int8_t *scratch) {
    const tm_box plane = tm_box_make(scratch, in.h, in.w, 1, 1, in.w);
    const int8_t *f = p->expand.filter; /* row c of the 1x1 filter (dense or sparse) */
    const int8_t *dw_values = p->dw.filter;
    int32_t c, y, x, ic;
    const tm_clamp cl = tm_clamp_of(p->expand.out_zp, p->expand.act_min, p->expand.act_max);
    for (c = 0; c < out.c; ++c) {
        const tm_rq rq = tm_rq_of(p->expand.mult[c], p->expand.shift[c]);
        for (y = 0; y < in.h; ++y) {
            for (x = 0; x < in.w; ++x) {
                const int8_t *src = tm_at(in, y, x);
                int32_t acc = 0;
                if (p->expand.kbias) { /* dense: SIMD dot product, zero point folded */
                    acc = tm_dot1(src, f, in.c, p->expand.kbias[c]);
                } else if (p->expand.mask) {
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
                scratch[y * in.w + x] = p->expand.kbias ? tm_rq_out(rq, cl, acc)
                                                        : tm_conv_out(&p->expand, acc, c);
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
