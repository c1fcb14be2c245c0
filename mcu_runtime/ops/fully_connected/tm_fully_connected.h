/* tinymcu runtime: FULLY_CONNECTED int8 (TFLite reference_integer_ops::FullyConnected),
 * dense or sparse weights (non-zero lists or bitmask, tm_conv.h). */
#ifndef TM_FULLY_CONNECTED_H
#define TM_FULLY_CONNECTED_H

#include "tm_conv.h"

typedef struct {
    const int8_t *weights;  /* (O, I) */
    const int32_t *bias;
    const int32_t *mult;    /* one per output (per-tensor weights: repeated) */
    const int8_t *shift;
    int32_t in_n, out_n, batches;
    int32_t in_zp, w_zp, out_zp, act_min, act_max;
    const uint8_t *mask;    /* NULL: dense weights; else sparse (w_zp is then 0) */
    /* dense, w_zp 0: the weights in the GEMM's paired layout (tm_conv.h; `weights` is then
     * NULL) and bias - in_zp * sum(row), computed at code-generation time */
    const int8_t *wpairs;
    const int32_t *kbias;
    int32_t fast_rq; /* as tm_conv_params.fast_rq */
    /* sparse, w_zp 0: per-row non-zero lists (tm_fully_connected_sparse; `weights`, `bias`
     * and `mask` are then NULL, `kbias` is set; a bitmask filter with a bias has `kbias`
     * instead of `bias` too) */
    const uint8_t *nz;
    const uint16_t *nz_count;
    const uint8_t *nz_count8;
} tm_fc_params;

/* Sparse weights with the bias folded (kbias): the batch rows are a 1x1 conv's pixels, so
 * non-zero lists and bitmask rows of at most TM_MASK_ROW inputs run the sparse 1x1 rows
 * (tm_conv.h: each row's entries shared by four batch rows), wider bitmask rows the bitmask
 * GEMM, two batch rows per pass; the generator calls it for them, so a model without dense
 * weights links no dense GEMM. */
static inline void tm_fully_connected_sparse(const tm_fc_params *p, const int8_t *in,
                                             int8_t *out) {
    if (p->nz || p->in_n <= TM_MASK_ROW) {
        tm_conv_params c;
        const tm_box ib = tm_box_make((int8_t *)(uintptr_t)in, 1, p->batches, p->in_n,
                                      p->in_n, p->batches * p->in_n);
        const tm_box ob = tm_box_make(out, 1, p->batches, p->out_n, p->out_n,
                                      p->batches * p->out_n);
        memset(&c, 0, sizeof c);
        c.filter = p->weights;
        c.mult = p->mult;
        c.shift = p->shift;
        c.kh = c.kw = c.sh = c.sw = c.dh = c.dw = c.depth_multiplier = 1;
        c.out_zp = p->out_zp;
        c.act_min = p->act_min;
        c.act_max = p->act_max;
        c.mask = p->mask;
        c.kbias = p->kbias;
        c.fast_rq = p->fast_rq;
        c.nz = p->nz;
        c.nz_count = p->nz_count;
        c.nz_count8 = p->nz_count8;
        if (p->nz) {
            tm_conv2d_sparse_pointwise(&c, ib, ob, 1, 1);
        } else {
            tm_conv2d_mask_pointwise(&c, ib, ob, 1, 1);
        }
    } else {
        const tm_gemm_q q = {p->kbias, p->mult, p->shift, p->out_zp, p->act_min, p->act_max,
                             p->fast_rq};
        int32_t b;
        for (b = 0; b < p->batches; b += 2) {
            const int32_t two = b + 1 < p->batches;
            tm_mask_gemm2(in + b * p->in_n, two ? in + (b + 1) * p->in_n : NULL, p->mask,
                          p->weights, p->in_n, p->out_n, &q, out + b * p->out_n,
                          two ? out + (b + 1) * p->out_n : NULL);
        }
    }
}

static inline void tm_fully_connected(const tm_fc_params *p, const int8_t *in, int8_t *out) {
    int32_t b, o, i;
    if (p->wpairs) { /* two batch rows per pass through the weights */
        const tm_gemm_q q = {p->kbias, p->mult, p->shift, p->out_zp, p->act_min, p->act_max,
                             p->fast_rq};
        for (b = 0; b < p->batches; b += 2) {
            const int32_t two = b + 1 < p->batches;
            tm_gemm2(in + b * p->in_n, two ? in + (b + 1) * p->in_n : NULL, p->wpairs, p->in_n,
                     p->out_n, &q, out + b * p->out_n, two ? out + (b + 1) * p->out_n : NULL);
        }
        return;
    }
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

#endif /* TM_FULLY_CONNECTED_H */
