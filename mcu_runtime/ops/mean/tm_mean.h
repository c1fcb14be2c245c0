/* tinymcu runtime: MEAN over H and W of an int8 map. */
#ifndef TM_MEAN_H
#define TM_MEAN_H

#include "tm_common.h"

/* MEAN over H and W, one channel at a time in a register: TFLM's only int8 path
 * (QuantizedMeanOrSum), 1/count folded into (mult, shift) at code-generation time. */
typedef struct {
    int32_t count, mult, shift, in_zp, out_zp;
} tm_mean_params;

static inline void tm_mean_hw(const tm_mean_params *p, tm_box in, int8_t *out) {
    int32_t c, y, x;
    for (c = 0; c < in.c; ++c) {
        int32_t total = 0;
        for (y = 0; y < in.h; ++y) {
            for (x = 0; x < in.w; ++x) {
                total += tm_at(in, y, x)[c];
            }
        }
        out[c] = tm_out8(tm_requant(tm_wrap_sub(total, p->in_zp * p->count), p->mult, p->shift),
                         p->out_zp, -128, 127);
    }
}

#endif /* TM_MEAN_H */
