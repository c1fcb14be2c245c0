/* tinymcu runtime: binary int8 ops with broadcasting (MINIMUM, MAXIMUM,
 * SQUARED_DIFFERENCE, PRELU, DIV), integer arithmetic as TFLM's reference kernels.
 *
 * The output is walked as a 4-D strided view; each input has its own element strides,
 * zero on every axis it is broadcast along, so whole tensors, patch tiles and constant
 * per-channel or scalar operands all go through one loop. */
#ifndef TM_BINARY_H
#define TM_BINARY_H

#include "tm_common.h"
#include "tm_softmax.h" /* tm_one_over_one_plus_x, tm_clz32 */

enum { TM_MINIMUM = 0, TM_MAXIMUM = 1, TM_SQUARED_DIFFERENCE = 2, TM_PRELU = 3, TM_DIV = 4 };

/* Output dims (outermost first) and the element stride of each axis in a, b and out. */
typedef struct {
    int32_t dims[4];
    int32_t a[4], b[4], o[4];
} tm_bcast;

/* SQUARED_DIFFERENCE: a_/b_ bring the inputs onto the common scale, out_ rescales the
 * square; PRELU: a_ rescales non-negative inputs, out_ the products with alpha; DIV:
 * out_ rescales the quotient. Results are clamped to [act_min, act_max]. */
typedef struct {
    int32_t kind;
    int32_t a_zp, b_zp, out_zp;
    int32_t a_mult, a_shift, b_mult, b_shift;
    int32_t out_mult, out_shift;
    int32_t act_min, act_max;
} tm_binary_params;

/* TFLite CountLeadingSignBits of an int32 (31 for 0 and -1). */
static inline int32_t tm_clsb32(int32_t x) {
    return tm_clz32(x >= 0 ? (uint32_t)x : ~(uint32_t)x) - 1;
}

/* TFLite DivElementwise on offset-corrected codes (vb != 0). */
static inline int32_t tm_div_raw(const tm_binary_params *p, int32_t va, int32_t vb) {
    int32_t clz, inv, headroom, quotient, shift;
    if (vb < 0) {
        va = -va;
        vb = -vb;
    }
    clz = tm_clz32((uint32_t)vb);
    inv = tm_one_over_one_plus_x((int32_t)(((uint32_t)vb << clz) - 0x80000000u));
    headroom = tm_clsb32(va);
    quotient = tm_srdhm(tm_wrap_shl(va, headroom), inv);
    /* right shift = headroom + (31 - clz) - out_shift, past 31 for tiny dividends: there
     * TFLM's RoundingDivideByPOT is undefined; its x86-64 build (our oracle) gives
     * (x >> (shift mod 32)) + (x >= 0), reproduced here without undefined behaviour */
    shift = headroom + (31 - clz) - p->out_shift;
    quotient = tm_srdhm(quotient, p->out_mult);
    if (shift > 31) {
        return (quotient >> (shift & 31)) + (quotient >= 0 ? 1 : 0);
    }
    return tm_rdbpot(quotient, shift);
}

static inline int8_t tm_binary_one(const tm_binary_params *p, int8_t qa, int8_t qb) {
    const int32_t va = (int32_t)qa - p->a_zp;
    const int32_t vb = (int32_t)qb - p->b_zp;
    int32_t r;
    if (p->kind == TM_MINIMUM) {
        return qa < qb ? qa : qb;
    }
    if (p->kind == TM_MAXIMUM) {
        return qa > qb ? qa : qb;
    }
    if (p->kind == TM_DIV) {
        if (vb == 0) { /* undefined in TFLM: saturate by the dividend's sign */
            return (int8_t)(va >= 0 ? p->act_max : p->act_min);
        }
        return tm_out8(tm_div_raw(p, va, vb), p->out_zp, p->act_min, p->act_max);
    }
    if (p->kind == TM_PRELU) {
        r = va >= 0 ? tm_requant(va, p->a_mult, p->a_shift)
                    : tm_requant(va * vb, p->out_mult, p->out_shift);
    } else {
        const int32_t d = tm_requant(va * (1 << 7), p->a_mult, p->a_shift) -
                          tm_requant(vb * (1 << 7), p->b_mult, p->b_shift);
        r = tm_requant(d * d, p->out_mult, p->out_shift);
    }
    return tm_out8(r, p->out_zp, p->act_min, p->act_max);
}

/* Row-major and forward, so `out` may be `a`'s memory when a has the output's shape. */
static inline void tm_binary(const tm_binary_params *p, const tm_bcast *g, const int8_t *a,
                             const int8_t *b, int8_t *out) {
    int32_t i0, i1, i2, i3;
    for (i0 = 0; i0 < g->dims[0]; ++i0) {
        for (i1 = 0; i1 < g->dims[1]; ++i1) {
            for (i2 = 0; i2 < g->dims[2]; ++i2) {
                const int8_t *pa = a + i0 * g->a[0] + i1 * g->a[1] + i2 * g->a[2];
                const int8_t *pb = b + i0 * g->b[0] + i1 * g->b[1] + i2 * g->b[2];
                int8_t *po = out + i0 * g->o[0] + i1 * g->o[1] + i2 * g->o[2];
                for (i3 = 0; i3 < g->dims[3]; ++i3) {
                    po[i3 * g->o[3]] = tm_binary_one(p, pa[i3 * g->a[3]], pb[i3 * g->b[3]]);
                }
            }
        }
    }
}

/* Unquantized int32 ADD/SUB/MUL/DIV/MINIMUM/MAXIMUM (TFLM's reference templates on plain
 * int32, shared with the elementwise folder): the C operation with wrap-around (formed in
 * uint32 so the C stays defined), DIV truncating toward zero (a zero divisor, undefined in
 * TFLM, gives 0), then the fused activation's clamp. An operand of one element is
 * broadcast; buffers are raw bytes read with memcpy. */
enum { TM_I32_ADD = 0, TM_I32_SUB = 1, TM_I32_MUL = 2, TM_I32_DIV = 3, TM_I32_MIN = 4,
       TM_I32_MAX = 5 };

static inline void tm_int32_binary(int32_t kind, const uint8_t *a, int32_t a_n,
                                   const uint8_t *b, int32_t b_n, uint8_t *out, int32_t n,
                                   int32_t lo, int32_t hi) {
    int32_t i;
    for (i = 0; i < n; ++i) {
        int32_t x, y, r;
        memcpy(&x, a + 4 * (size_t)(a_n == 1 ? 0 : i), 4);
        memcpy(&y, b + 4 * (size_t)(b_n == 1 ? 0 : i), 4);
        switch (kind) {
        case TM_I32_ADD: r = (int32_t)((uint32_t)x + (uint32_t)y); break;
        case TM_I32_SUB: r = (int32_t)((uint32_t)x - (uint32_t)y); break;
        case TM_I32_MUL: r = (int32_t)((uint32_t)x * (uint32_t)y); break;
        case TM_I32_DIV:
            r = y == 0 ? 0 : y == -1 ? (int32_t)(0u - (uint32_t)x) : x / y;
            break;
        case TM_I32_MIN: r = x < y ? x : y; break;
        default: r = x > y ? x : y; break;
        }
        r = r < lo ? lo : r > hi ? hi : r;
        memcpy(out + 4 * (size_t)i, &r, 4);
    }
}

#endif /* TM_BINARY_H */
