/* tinymcu runtime: TRANSPOSE_CONV (per-channel int8, TFLM reference_integer_ops).
 *
 * TFLM scatters input pixel (iy, ix) times filter tap (ky, kx) onto output pixel
 * (iy * sh - pad_top + ky, ix * sw - pad_left + kx) in an int32 buffer the size of the
 * output. Here each output pixel gathers the same products instead (the taps with
 * (oy + pad_top - ky) divisible by sh, likewise for x), so no scratch is needed; integer
 * sums are order-independent, so the result is the same. Then bias, per-channel
 * requantization, output zero point and clamp, as tm_conv_out.
 */
#ifndef TM_TRANSPOSE_CONV_H
#define TM_TRANSPOSE_CONV_H

#include "tm_common.h"

typedef struct {
    const int8_t *filter;   /* OHWI */
    const int32_t *bias;    /* NULL when the op has none */
    const int32_t *mult;    /* per output channel */
    const int8_t *shift;    /* per output channel, in [-31, 31] */
    int32_t kh, kw, sh, sw, pad_top, pad_left;
    int32_t in_zp, out_zp, act_min, act_max;
} tm_transpose_conv_params;

/* `in` and `out` are whole batch-1 maps and must not overlap. */
static inline void tm_transpose_conv(const tm_transpose_conv_params *p, tm_box in,
                                     tm_box out) {
    int32_t oy, ox, oc, ky, kx, ic;
    const int32_t taps = p->kh * p->kw * in.c;
    for (oy = 0; oy < out.h; ++oy) {
        for (ox = 0; ox < out.w; ++ox) {
            int8_t *dst = tm_at(out, oy, ox);
            for (oc = 0; oc < out.c; ++oc) {
                const int8_t *f = p->filter + oc * taps;
                int32_t acc = 0;
                for (ky = 0; ky < p->kh; ++ky) {
                    const int32_t ty = oy + p->pad_top - ky;
                    int32_t iy;
                    if (ty < 0 || ty % p->sh != 0 || (iy = ty / p->sh) >= in.h) {
                        continue;
                    }
                    for (kx = 0; kx < p->kw; ++kx) {
                        const int32_t tx = ox + p->pad_left - kx;
                        const int8_t *src;
                        const int8_t *fk;
                        int32_t ix;
                        if (tx < 0 || tx % p->sw != 0 || (ix = tx / p->sw) >= in.w) {
                            continue;
                        }
                        src = tm_at(in, iy, ix);
                        fk = f + (ky * p->kw + kx) * in.c;
                        for (ic = 0; ic < in.c; ++ic) {
                            acc += ((int32_t)src[ic] - p->in_zp) * (int32_t)fk[ic];
                        }
                    }
                }
                if (p->bias) {
                    acc = tm_wrap_add(acc, p->bias[oc]);
                }
                acc = tm_requant(acc, p->mult[oc], p->shift[oc]);
                dst[oc] = tm_out8(acc, p->out_zp, p->act_min, p->act_max);
            }
        }
    }
}

#endif /* TM_TRANSPOSE_CONV_H */
