/* tinymcu runtime: RESIZE_BILINEAR and RESIZE_NEAREST_NEIGHBOR on int8 maps.
 *
 * Source rows/columns and Q10 weights come from per-row and per-column tables made at
 * code-generation time (TFLM's ResizeBilinearInteger and GetNearestNeighbor), so the
 * kernel is integer only. */
#ifndef TM_RESIZE_H
#define TM_RESIZE_H

#include "tm_common.h"

typedef struct {
    int32_t bilinear;
    const int32_t *y0, *y1, *wy; /* per output row: source rows, Q10 weight of row y1 */
    const int32_t *x0, *x1, *wx; /* per output column */
} tm_resize_params;

static inline void tm_resize(const tm_resize_params *p, tm_box in, tm_box out) {
    int32_t y, x, k;
    for (y = 0; y < out.h; ++y) {
        for (x = 0; x < out.w; ++x) {
            int8_t *po = tm_at(out, y, x);
            const int8_t *p00 = tm_at(in, p->y0[y], p->x0[x]);
            if (!p->bilinear) {
                memcpy(po, p00, (size_t)out.c);
                continue;
            } else {
                const int8_t *p10 = tm_at(in, p->y1[y], p->x0[x]);
                const int8_t *p01 = tm_at(in, p->y0[y], p->x1[x]);
                const int8_t *p11 = tm_at(in, p->y1[y], p->x1[x]);
                const int64_t wy = p->wy[y], wx = p->wx[x];
                const int64_t w00 = (1024 - wy) * (1024 - wx), w10 = wy * (1024 - wx);
                const int64_t w01 = (1024 - wy) * wx, w11 = wy * wx;
                for (k = 0; k < out.c; ++k) {
                    const int64_t s = p00[k] * w00 + p10[k] * w10 + p01[k] * w01 + p11[k] * w11;
                    /* round half away from zero, C division truncating, as TFLM */
                    po[k] = (int8_t)((s + (s > 0 ? (1 << 19) : -(1 << 19))) / (1 << 20));
                }
            }
        }
    }
}

#endif /* TM_RESIZE_H */
