/* tinymcu runtime: SVDF int8 with an int16 or int8 activation state (TFLM's
 * EvalIntegerSvdfReference). The state lives in the arena and is updated in place. */
#ifndef TM_SVDF_H
#define TM_SVDF_H

#include "tm_common.h"

typedef struct {
    const int8_t *w_feature; /* (F, I) */
    const int16_t *w_time16; /* (F, M) when the state is int16, else NULL */
    const int8_t *w_time8;   /* (F, M) when the state is int8, else NULL */
    const int32_t *bias;     /* (U) */
    int32_t batches, inputs, filters, rank, units, memory;
    int32_t in_zp, state_zp, out_zp;
    int32_t mult1, shift1, mult2, shift2;
} tm_svdf_params;

static inline int32_t tm_svdf_state(const tm_svdf_params *p, const void *s, int32_t i) {
    return p->w_time16 ? (int32_t)((const int16_t *)s)[i] : (int32_t)((const int8_t *)s)[i];
}

static inline int32_t tm_svdf_time(const tm_svdf_params *p, int32_t i) {
    return p->w_time16 ? (int32_t)p->w_time16[i] : (int32_t)p->w_time8[i];
}

/* state: (batches, filters * memory) of int16_t (w_time16) or int8_t (w_time8). */
static inline void tm_svdf(const tm_svdf_params *p, const int8_t *in, void *state,
                           int8_t *out) {
    const int32_t lo = p->w_time16 ? -32768 : -128;
    const int32_t hi = p->w_time16 ? 32767 : 127;
    int32_t b, f, m, u, r, i;
    for (b = 0; b < p->batches; ++b) {
        const int8_t *x = in + b * p->inputs;
        for (f = 0; f < p->filters; ++f) {
            const int32_t base = (b * p->filters + f) * p->memory;
            const int8_t *w = p->w_feature + f * p->inputs;
            int32_t acc = 0;
            int32_t v;
            for (m = 0; m + 1 < p->memory; ++m) { /* the oldest value drops out */
                if (p->w_time16) {
                    ((int16_t *)state)[base + m] = ((int16_t *)state)[base + m + 1];
                } else {
                    ((int8_t *)state)[base + m] = ((int8_t *)state)[base + m + 1];
                }
            }
            for (i = 0; i < p->inputs; ++i) {
                acc = tm_wrap_add(acc, (int32_t)w[i] * ((int32_t)x[i] - p->in_zp));
            }
            v = tm_requant(acc, p->mult1, p->shift1);
            v = v > INT32_MAX - p->state_zp ? INT32_MAX : v + p->state_zp;
            v = v < lo ? lo : (v > hi ? hi : v);
            if (p->w_time16) {
                ((int16_t *)state)[base + p->memory - 1] = (int16_t)v;
            } else {
                ((int8_t *)state)[base + p->memory - 1] = (int8_t)v;
            }
        }
        for (u = 0; u < p->units; ++u) {
            int32_t acc = p->bias[u];
            for (r = 0; r < p->rank; ++r) {
                const int32_t filter = u * p->rank + r;
                const int32_t base = (b * p->filters + filter) * p->memory;
                int32_t dot = 0;
                for (m = 0; m < p->memory; ++m) {
                    dot = tm_wrap_add(dot, tm_svdf_time(p, filter * p->memory + m) *
                                               (tm_svdf_state(p, state, base + m) - p->state_zp));
                }
                acc = tm_wrap_add(acc, dot);
            }
            out[b * p->units + u] = tm_out8(tm_requant(acc, p->mult2, p->shift2), p->out_zp,
                                            -128, 127);
        }
    }
}

#endif /* TM_SVDF_H */
