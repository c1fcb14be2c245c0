/* tinymcu runtime: CONV_2D, DEPTHWISE_CONV_2D, the fused EXPAND_DEPTHWISE and FULLY_CONNECTED.
 *
 * Per-channel int8 convolutions as TFLite's reference_integer_ops compute them: int32
 * accumulation of (input - input zero point) * filter, int32 bias, per-output-channel
 * fixed-point requantization, output zero point, activation clamp. Padding is explicit
 * (pad_top, pad_left; bottom/right follow from the output box): window taps outside the input
 * box are skipped, which equals padding with the input zero point. A patch step passes the
 * box it reads (a tile plus halo) and pads only at the real image border.
 *
 * Sparse weights (pruned models): when `mask` is set, the filter is stored as one bit per
 * weight (bit i of the row-major filter at mask[i / 8] >> (i % 8)) plus only the non-zero
 * values, in order. Every kernel walks its filter rows in storage order, so the values are
 * read with a running pointer and no index. Depthwise filters are stored channel-major
 * (C*M rows of KH*KW taps) for that reason; dense ones keep TFLite's 1HW(C*M) layout.
 */
#ifndef TM_CONV_H
#define TM_CONV_H

#include "tm_common.h"

typedef struct {
    const int8_t *filter;   /* CONV_2D: OHWI; depthwise: 1HW(C*M) */
    const int32_t *bias;    /* NULL when the op has none */
    const int32_t *mult;    /* per output channel */
    const int32_t *shift;   /* per output channel */
    int32_t kh, kw, sh, sw, dh, dw;
    int32_t depth_multiplier;
    int32_t in_zp, out_zp, act_min, act_max;
    const uint8_t *mask;    /* NULL: dense filter; else the sparse bitmask (see above) */
} tm_conv_params;

typedef struct {
    tm_conv_params expand;  /* the 1x1 CONV_2D */
    tm_conv_params dw;      /* the depthwise that reads its output */
} tm_expand_dw_params;

typedef struct {
    const int8_t *weights;  /* (O, I) */
    const int32_t *bias;
    const int32_t *mult;    /* one per output (per-tensor weights: repeated) */
    const int32_t *shift;
    int32_t in_n, out_n, batches;
    int32_t in_zp, w_zp, out_zp, act_min, act_max;
    const uint8_t *mask;    /* NULL: dense weights; else sparse (w_zp is then 0) */
} tm_fc_params;

static inline int32_t tm_bit(const uint8_t *mask, int32_t i) {
    return (mask[i >> 3] >> (i & 7)) & 1;
}

/* Non-zero weights among bits [start, start + n) of a mask: how far a sparse row reaches. */
static inline int32_t tm_bits_set(const uint8_t *mask, int32_t start, int32_t n) {
    int32_t i, count = 0;
    for (i = start; i < start + n; ++i) {
        count += tm_bit(mask, i);
    }
    return count;
}

static inline int8_t tm_conv_out(const tm_conv_params *p, int32_t acc, int32_t oc) {
    if (p->bias) {
        acc = tm_wrap_add(acc, p->bias[oc]);
    }
    acc = tm_requant(acc, p->mult[oc], p->shift[oc]);
    return tm_out8(acc, p->out_zp, p->act_min, p->act_max);
}

static inline void tm_conv2d_sparse(const tm_conv_params *p, tm_box in, tm_box out,
                                    int32_t pad_top, int32_t pad_left) {
    int32_t oy, ox, oc, ky, kx, ic;
    for (oy = 0; oy < out.h; ++oy) {
        for (ox = 0; ox < out.w; ++ox) {
            int8_t *dst = tm_at(out, oy, ox);
            const int8_t *v = p->filter;
            int32_t bit = 0;
            for (oc = 0; oc < out.c; ++oc) {
                int32_t acc = 0;
                for (ky = 0; ky < p->kh; ++ky) {
                    const int32_t iy = oy * p->sh - pad_top + ky * p->dh;
                    for (kx = 0; kx < p->kw; ++kx) {
                        const int32_t ix = ox * p->sw - pad_left + kx * p->dw;
                        const int32_t valid = iy >= 0 && iy < in.h && ix >= 0 && ix < in.w;
                        const int8_t *src = valid ? tm_at(in, iy, ix) : 0;
                        for (ic = 0; ic < in.c; ++ic, ++bit) {
                            if (tm_bit(p->mask, bit)) {
                                const int32_t w = *v++;
                                if (valid) {
                                    acc += ((int32_t)src[ic] - p->in_zp) * w;
                                }
                            }
                        }
                    }
                }
                dst[oc] = tm_conv_out(p, acc, oc);
            }
        }
    }
}

static inline void tm_conv2d(const tm_conv_params *p, tm_box in, tm_box out, int32_t pad_top,
                             int32_t pad_left) {
    int32_t oy, ox, oc, ky, kx, ic;
    const int32_t taps = p->kh * p->kw * in.c;
    if (p->mask) {
        tm_conv2d_sparse(p, in, out, pad_top, pad_left);
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
    for (c = 0; c < in.c; ++c) {
        for (m = 0; m < p->depth_multiplier; ++m) {
            values = tm_depthwise_channel(p, in, c, out, c * p->depth_multiplier + m, pad_top,
                                          pad_left, values);
        }
    }
}

/* In-place depthwise (multiplier 1, TinyEngine): channel c of the input box is copied into
 * `scratch` (in.h * in.w bytes) before output channel c overwrites its slots, so the output
 * may occupy the input's memory. */
static inline void tm_depthwise_inplace(const tm_conv_params *p, tm_box in, tm_box out,
                                        int32_t pad_top, int32_t pad_left, int8_t *scratch) {
    const tm_box plane = tm_box_make(scratch, in.h, in.w, 1, 1, in.w);
    const int8_t *values = p->filter;
    int32_t c, y, x;
    for (c = 0; c < in.c; ++c) {
        for (y = 0; y < in.h; ++y) {
            for (x = 0; x < in.w; ++x) {
                scratch[y * in.w + x] = tm_at(in, y, x)[c];
            }
        }
        values = tm_depthwise_channel(p, plane, 0, out, c, pad_top, pad_left, values);
    }
}

/* EXPAND_DEPTHWISE: for each expanded channel c, the 1x1 conv's channel c over the whole
 * input box goes into `scratch` (one in.h * in.w plane, requantized to int8 exactly as the
 * unfused CONV_2D would write it), and depthwise filter c turns it into output channel c.
 * The expanded tensor never exists. */
static inline void tm_expand_depthwise(const tm_expand_dw_params *p, tm_box in, tm_box out,
                                       int32_t pad_top, int32_t pad_left, int8_t *scratch) {
    const tm_box plane = tm_box_make(scratch, in.h, in.w, 1, 1, in.w);
    const int8_t *f = p->expand.filter; /* row c of the 1x1 filter (dense or sparse) */
    const int8_t *dw_values = p->dw.filter;
    int32_t c, y, x, ic;
    for (c = 0; c < out.c; ++c) {
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
        f += p->expand.mask ? tm_bits_set(p->expand.mask, c * in.c, in.c) : in.c;
        dw_values = tm_depthwise_channel(&p->dw, plane, 0, out, c, pad_top, pad_left,
                                         dw_values);
    }
}

static inline void tm_fully_connected(const tm_fc_params *p, const int8_t *in, int8_t *out) {
    int32_t b, o, i;
    for (b = 0; b < p->batches; ++b) {
        const int8_t *x = in + b * p->in_n;
        const int8_t *v = p->weights;
        for (o = 0; o < p->out_n; ++o) {
            int32_t acc = 0;
            if (p->mask) {
                for (i = 0; i < p->in_n; ++i) {
                    if (tm_bit(p->mask, o * p->in_n + i)) {
                        acc += ((int32_t)x[i] - p->in_zp) * (int32_t)*v++;
                    }
                }
            } else {
                const int8_t *w = p->weights + o * p->in_n;
                for (i = 0; i < p->in_n; ++i) {
                    acc += ((int32_t)x[i] - p->in_zp) * ((int32_t)w[i] - p->w_zp);
                }
            }
            if (p->bias) {
                acc = tm_wrap_add(acc, p->bias[o]);
            }
            acc = tm_requant(acc, p->mult[o], p->shift[o]);
            out[b * p->out_n + o] = tm_out8(acc, p->out_zp, p->act_min, p->act_max);
        }
    }
}

#endif /* TM_CONV_H */
