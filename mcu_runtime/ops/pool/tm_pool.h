/* tinymcu runtime: AVERAGE_POOL_2D and MAX_POOL_2D on int8. Average pooling divides by the
 * number of real pixels under the window with rounding away from zero (TFLite). */
#ifndef TM_POOL_H
#define TM_POOL_H

#include "tm_common.h"

typedef struct {
    int32_t kh, kw, sh, sw;
    int32_t act_min, act_max;
} tm_pool_params;

static inline void tm_avg_pool(const tm_pool_params *p, tm_box in, tm_box out,
                               int32_t pad_top, int32_t pad_left) {
    int32_t oy, ox, c, ky, kx;
    for (oy = 0; oy < out.h; ++oy) {
        for (ox = 0; ox < out.w; ++ox) {
            for (c = 0; c < out.c; ++c) {
                int32_t sum = 0, count = 0, avg;
                for (ky = 0; ky < p->kh; ++ky) {
                    const int32_t iy = oy * p->sh - pad_top + ky;
                    if (iy < 0 || iy >= in.h) {
                        continue;
                    }
                    for (kx = 0; kx < p->kw; ++kx) {
                        const int32_t ix = ox * p->sw - pad_left + kx;
                        if (ix < 0 || ix >= in.w) {
                            continue;
                        }
                        sum += tm_at(in, iy, ix)[c];
                        ++count;
                    }
                }
                if (count == 0) {
                    count = 1; /* no real pixel under the window: cannot happen for SAME */
                }
                avg = sum > 0 ? (sum + count / 2) / count : (sum - count / 2) / count;
                tm_at(out, oy, ox)[c] = tm_clamp8(avg, p->act_min, p->act_max);
            }
        }
    }
}

static inline void tm_max_pool(const tm_pool_params *p, tm_box in, tm_box out,
                               int32_t pad_top, int32_t pad_left) {
    int32_t oy, ox, c, ky, kx;
    for (oy = 0; oy < out.h; ++oy) {
        for (ox = 0; ox < out.w; ++ox) {
            for (c = 0; c < out.c; ++c) {
                int32_t m = -(1 << 20);
                for (ky = 0; ky < p->kh; ++ky) {
                    const int32_t iy = oy * p->sh - pad_top + ky;
                    if (iy < 0 || iy >= in.h) {
                        continue;
                    }
                    for (kx = 0; kx < p->kw; ++kx) {
                        const int32_t ix = ox * p->sw - pad_left + kx;
                        int32_t v;
                        if (ix < 0 || ix >= in.w) {
                            continue;
                        }
                        v = tm_at(in, iy, ix)[c];
                        m = v > m ? v : m;
                    }
                }
                tm_at(out, oy, ox)[c] = tm_clamp8(m, p->act_min, p->act_max);
            }
        }
    }
}

#endif /* TM_POOL_H */
