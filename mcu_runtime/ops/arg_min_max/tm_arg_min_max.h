/* tinymcu runtime: ARG_MAX / ARG_MIN of an int8 tensor over one axis (TFLM
 * reference_ops::ArgMinMax: strict comparison, the first extreme index wins). The indices
 * are written as int32 or int64 (out_bytes), little-endian like the host. */
#ifndef TM_ARG_MIN_MAX_H
#define TM_ARG_MIN_MAX_H

#include "tm_common.h"

typedef struct {
    int32_t outer, axis_size, inner;
    int32_t is_max;     /* 1: ARG_MAX, 0: ARG_MIN */
    int32_t out_bytes;  /* 4: int32 indices, 8: int64 */
} tm_arg_params;

static inline void tm_arg_min_max(const tm_arg_params *p, const int8_t *in, uint8_t *out) {
    int32_t o, j, i;
    for (o = 0; o < p->outer; ++o) {
        for (j = 0; j < p->inner; ++j) {
            const int8_t *v = in + (int32_t)o * p->axis_size * p->inner + j;
            int8_t best = v[0];
            int32_t at = 0;
            for (i = 1; i < p->axis_size; ++i) {
                const int8_t x = v[i * p->inner];
                if (p->is_max ? x > best : x < best) {
                    best = x;
                    at = i;
                }
            }
            if (p->out_bytes == 8) {
                int64_t w = at;
                memcpy(out, &w, 8);
            } else {
                memcpy(out, &at, 4);
            }
            out += p->out_bytes;
        }
    }
}

#endif /* TM_ARG_MIN_MAX_H */
