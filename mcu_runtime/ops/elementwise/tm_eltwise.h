/* tinymcu runtime: ADD, SUB and MUL on int8 (same shapes). ADD/SUB bring both inputs onto
 * a common scale with a 2^20 left shift, as TFLite's reference integer kernels.
 * Broadcast operands (constants, smaller shapes) go through tm_eltwise_bcast. */
#ifndef TM_ELTWISE_H
#define TM_ELTWISE_H

#include "tm_binary.h"

enum { TM_ADD = 0, TM_SUB = 1, TM_MUL = 2 };

typedef struct {
    int32_t kind;
    int32_t a_zp, b_zp, out_zp;
    int32_t a_mult, a_shift, b_mult, b_shift; /* ADD/SUB: inputs onto the common scale */
    int32_t out_mult, out_shift;
    int32_t act_min, act_max;
} tm_eltwise_params;

/* One output element from two raw input codes. */
static inline int8_t tm_eltwise_one(const tm_eltwise_params *p, int8_t qa, int8_t qb) {
    const int32_t va = (int32_t)qa - p->a_zp;
    const int32_t vb = (int32_t)qb - p->b_zp;
    int32_t raw;
    if (p->kind == TM_MUL) {
        raw = va * vb;
    } else {
        const int32_t sa = tm_requant(va * (1 << 20), p->a_mult, p->a_shift);
        const int32_t sb = tm_requant(vb * (1 << 20), p->b_mult, p->b_shift);
        raw = p->kind == TM_ADD ? tm_wrap_add(sa, sb) : tm_wrap_sub(sa, sb);
    }
    return tm_out8(tm_requant(raw, p->out_mult, p->out_shift), p->out_zp, p->act_min,
                   p->act_max);
}

/* Element by element, row-major and forward, so `out` may be `a`'s memory (in place). */
static inline void tm_eltwise(const tm_eltwise_params *p, tm_box a, tm_box b, tm_box out) {
    int32_t y, x, k;
    for (y = 0; y < out.h; ++y) {
        for (x = 0; x < out.w; ++x) {
            const int8_t *pa = tm_at(a, y, x);
            const int8_t *pb = tm_at(b, y, x);
            int8_t *po = tm_at(out, y, x);
            for (k = 0; k < out.c; ++k) {
                po[k] = tm_eltwise_one(p, pa[k], pb[k]);
            }
        }
    }
}

/* The same with broadcasting (a constant or smaller operand): a strided 4-D walk. */
static inline void tm_eltwise_bcast(const tm_eltwise_params *p, const tm_bcast *g,
                                    const int8_t *a, const int8_t *b, int8_t *out) {
    int32_t i0, i1, i2, i3;
    for (i0 = 0; i0 < g->dims[0]; ++i0) {
        for (i1 = 0; i1 < g->dims[1]; ++i1) {
            for (i2 = 0; i2 < g->dims[2]; ++i2) {
                const int8_t *pa = a + i0 * g->a[0] + i1 * g->a[1] + i2 * g->a[2];
                const int8_t *pb = b + i0 * g->b[0] + i1 * g->b[1] + i2 * g->b[2];
                int8_t *po = out + i0 * g->o[0] + i1 * g->o[1] + i2 * g->o[2];
                for (i3 = 0; i3 < g->dims[3]; ++i3) {
                    po[i3 * g->o[3]] = tm_eltwise_one(p, pa[i3 * g->a[3]], pb[i3 * g->b[3]]);
                }
            }
        }
    }
}

#endif /* TM_ELTWISE_H */
