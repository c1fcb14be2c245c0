/* tinymcu runtime: strided int8 copies, the one kernel of every data-movement op (SLICE,
 * STRIDED_SLICE, SPLIT, SPLIT_V, PACK, UNPACK, GATHER, TILE, DEPTH_TO_SPACE,
 * SPACE_TO_DEPTH, BATCH_TO_SPACE_ND, SPACE_TO_BATCH_ND).
 *
 * An odometer over dims[0..rank) (last axis fastest) copies in[sum i_k * src[k]] to
 * out[sum i_k * dst[k]] (element strides, possibly 0 or negative; `in` and `out` already
 * point at the walk's first element). Elements are copied in walk order (contiguous runs by
 * memmove), which the planner's in-place proof (ops/copy/plan.py safe_in_place) relies on.
 */
#ifndef TM_COPY_H
#define TM_COPY_H

#include "tm_common.h"

typedef struct {
    int32_t rank;
    int32_t dims[8];
    int32_t src[8];
    int32_t dst[8];
} tm_copy_params;

static inline void tm_strided_copy(const tm_copy_params *p, const int8_t *in, int8_t *out) {
    int32_t idx[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int32_t outer = 1, o, i, k, si, di, n, s = 0, d = 0;
    if (p->rank == 0) {
        out[0] = in[0];
        return;
    }
    for (k = 0; k < p->rank - 1; ++k) {
        outer *= p->dims[k];
    }
    n = p->dims[p->rank - 1];
    si = p->src[p->rank - 1];
    di = p->dst[p->rank - 1];
    for (o = 0; o < outer; ++o) {
        if (si == 1 && di == 1) {
            /* a contiguous run: memmove equals the element-by-element walk whenever the
             * walk is in-place safe (every read sees the original byte) */
            memmove(out + d, in + s, (size_t)n);
        } else {
            for (i = 0; i < n; ++i) {
                out[d + i * di] = in[s + i * si];
            }
        }
        for (k = p->rank - 2; k >= 0; --k) {
            s += p->src[k];
            d += p->dst[k];
            if (++idx[k] < p->dims[k]) {
                break;
            }
            s -= p->src[k] * p->dims[k];
            d -= p->dst[k] * p->dims[k];
            idx[k] = 0;
        }
    }
}

/* GATHER with run-time indices (int32 or int64, read with memcpy from the arena):
 * out[o][i][:] = in[o][index[i]][:] for inner-sized rows; an index outside [0, axis)
 * gives a row of zeros (TFLM reads out of bounds there). */
static inline void tm_gather(const int8_t *in, const uint8_t *index, int8_t *out,
                             int32_t outer, int32_t axis, int32_t inner, int32_t count,
                             int32_t index_bytes) {
    int32_t o, i;
    for (o = 0; o < outer; ++o) {
        for (i = 0; i < count; ++i) {
            int64_t k;
            if (index_bytes == 8) {
                memcpy(&k, index + (size_t)i * 8, 8);
            } else {
                int32_t k32;
                memcpy(&k32, index + (size_t)i * 4, 4);
                k = k32;
            }
            if (k >= 0 && k < axis) {
                memcpy(out, in + ((size_t)o * (size_t)axis + (size_t)k) * (size_t)inner,
                       (size_t)inner);
            } else {
                memset(out, 0, (size_t)inner);
            }
            out += inner;
        }
    }
}

#endif /* TM_COPY_H */
