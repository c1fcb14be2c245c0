/* tinymcu runtime: TRANSPOSE of an int8 tensor of up to 6 dimensions. */
#ifndef TM_TRANSPOSE_H
#define TM_TRANSPOSE_H

#include "tm_common.h"

/* dims: the output's dimensions; strides: how far (in input elements) one step along each
 * output axis moves in the input. Unused trailing axes are never read (rank). */
typedef struct {
    int32_t rank;
    int32_t dims[6];
    int32_t strides[6];
} tm_transpose_params;

/* Walk the output in order with an odometer over its indices; `in` and `out` must not
 * overlap (the planner never puts a TRANSPOSE in place). */
static inline void tm_transpose(const tm_transpose_params *p, const int8_t *in, int8_t *out) {
    int32_t idx[6] = {0, 0, 0, 0, 0, 0};
    int32_t n = 1, i, k;
    for (k = 0; k < p->rank; ++k) {
        n *= p->dims[k];
    }
    for (i = 0; i < n; ++i) {
        int32_t src = 0;
        for (k = 0; k < p->rank; ++k) {
            src += idx[k] * p->strides[k];
        }
        out[i] = in[src];
        for (k = p->rank - 1; k >= 0; --k) {
            if (++idx[k] < p->dims[k]) {
                break;
            }
            idx[k] = 0;
        }
    }
}

#endif /* TM_TRANSPOSE_H */
