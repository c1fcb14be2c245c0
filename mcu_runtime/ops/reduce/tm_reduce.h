/* tinymcu runtime: reductions of an int8 tensor over any axes (REDUCE_MAX, REDUCE_MIN,
 * SUM, and MEAN other than over H and W). */
#ifndef TM_REDUCE_H
#define TM_REDUCE_H

#include "tm_common.h"

enum { TM_REDUCE_MAX = 0, TM_REDUCE_MIN = 1, TM_REDUCE_RESCALE = 2 };

/* The input as 4 dims (outermost first); ostr[k] is the output element stride of input
 * axis k (0 on a reduced axis). RESCALE: the sum minus in_zp * count is requantized by
 * (mult, shift) (MEAN has 1/count folded in) and out_zp added, as TFLM's
 * QuantizedMeanOrSum. */
typedef struct {
    int32_t kind;
    int32_t dims[4];
    int32_t ostr[4];
    int32_t out_size;
    int32_t count, mult, shift, in_zp, out_zp;
} tm_reduce_params;

/* `acc` (out_size int32) is needed for RESCALE only (NULL otherwise). */
static inline void tm_reduce(const tm_reduce_params *p, const int8_t *in, int8_t *out,
                             int32_t *acc) {
    int32_t i0, i1, i2, i3, k;
    const int8_t init = p->kind == TM_REDUCE_MAX ? -128 : 127;
    for (k = 0; k < p->out_size; ++k) {
        if (p->kind == TM_REDUCE_RESCALE) {
            acc[k] = 0;
        } else {
            out[k] = init;
        }
    }
    for (i0 = 0; i0 < p->dims[0]; ++i0) {
        for (i1 = 0; i1 < p->dims[1]; ++i1) {
            for (i2 = 0; i2 < p->dims[2]; ++i2) {
                const int32_t base = i0 * p->ostr[0] + i1 * p->ostr[1] + i2 * p->ostr[2];
                for (i3 = 0; i3 < p->dims[3]; ++i3) {
                    const int32_t o = base + i3 * p->ostr[3];
                    const int8_t v = *in++;
                    if (p->kind == TM_REDUCE_RESCALE) {
                        acc[o] = tm_wrap_add(acc[o], v);
                    } else if (p->kind == TM_REDUCE_MAX ? v > out[o] : v < out[o]) {
                        out[o] = v;
                    }
                }
            }
        }
    }
    if (p->kind == TM_REDUCE_RESCALE) {
        for (k = 0; k < p->out_size; ++k) {
            out[k] = tm_out8(tm_requant(tm_wrap_sub(acc[k], p->in_zp * p->count), p->mult,
                                        p->shift), p->out_zp, -128, 127);
        }
    }
}

#endif /* TM_REDUCE_H */
