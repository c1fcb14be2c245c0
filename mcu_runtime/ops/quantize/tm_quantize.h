/* tinymcu runtime: QUANTIZE from float32 and DEQUANTIZE to float32 at a model's ends.
 *
 * As TFLM's reference kernels: QUANTIZE is AffineQuantize (x / scale in float32, as TFLM
 * divides, rounded half away from zero, plus the zero point, clamped to the output type); DEQUANTIZE is
 * (float)(scale * (q - zero_point)) with a double scale. Float values are read and written
 * with memcpy, so arena buffers need no float alignment. 8-bit to 8-bit QUANTIZE runs as a
 * 256-entry table (tm_copy_box).
 */
#ifndef TM_QUANTIZE_H
#define TM_QUANTIZE_H

#include "tm_common.h"

typedef struct {
    double scale;
    int32_t zero_point;
    int32_t qmin, qmax;     /* the 8-bit output type's range (int8 or uint8) */
    int32_t is_unsigned;    /* 1: 8-bit codes are uint8 */
} tm_quant_params;

/* round(v) half away from zero for |v| < 2^31, without libm. */
static inline int32_t tm_round_away(double v) {
    int32_t t;
    double frac;
    if (v >= 2147483647.0) {
        return 2147483647;
    }
    if (v <= -2147483648.0) {
        return (int32_t)(-2147483647 - 1);
    }
    t = (int32_t)v;         /* truncates toward zero */
    frac = v - (double)t;   /* exact */
    if (frac >= 0.5) {
        t += 1;
    } else if (frac <= -0.5) {
        t -= 1;
    }
    return t;
}

static inline void tm_quantize_f32(const tm_quant_params *p, const uint8_t *in, uint8_t *out,
                                   int32_t n) {
    int32_t i;
    for (i = 0; i < n; ++i) {
        float x;
        int64_t q;
        memcpy(&x, in + 4 * i, sizeof x);
        float ratio = x / (float)p->scale;   /* in float32 as TFLM divides */
        q = (int64_t)tm_round_away((double)ratio) + p->zero_point;
        q = q < p->qmin ? p->qmin : q > p->qmax ? p->qmax : q;
        out[i] = (uint8_t)(p->is_unsigned ? (uint8_t)q : (uint8_t)(int8_t)q);
    }
}

static inline void tm_dequantize_f32(const tm_quant_params *p, const uint8_t *in, uint8_t *out,
                                     int32_t n) {
    int32_t i;
    for (i = 0; i < n; ++i) {
        int32_t q = p->is_unsigned ? (int32_t)in[i] : (int32_t)(int8_t)in[i];
        float y = (float)(p->scale * (double)(q - p->zero_point));
        memcpy(out + 4 * i, &y, sizeof y);
    }
}

/* Integer QUANTIZE between int8, uint8, int16 and int32 codes (TFLM's Requantize): q_out =
 * MultiplyByQuantizedMultiplier(q_in - in_zp, mult, shift) + out_zp, clamped; a code type
 * is 1 (int8), 2 (uint8), 3 (int16) or 4 (int32). Used where a model's end is not 8-bit. */
typedef struct {
    int32_t mult, shift, in_zp, out_zp, qmin, qmax, in_type, out_type;
} tm_requant_params;

static inline int32_t tm_load_code(const uint8_t *p, int32_t type, int32_t i) {
    int16_t h;
    int32_t w;
    switch (type) {
    case 2:
        return p[i];
    case 3:
        memcpy(&h, p + 2 * i, 2);
        return h;
    case 4:
        memcpy(&w, p + 4 * i, 4);
        return w;
    default:
        return (int8_t)p[i];
    }
}

static inline void tm_store_code(uint8_t *p, int32_t type, int32_t i, int32_t v) {
    int16_t h = (int16_t)v;
    switch (type) {
    case 2:
        p[i] = (uint8_t)v;
        break;
    case 3:
        memcpy(p + 2 * i, &h, 2);
        break;
    case 4:
        memcpy(p + 4 * i, &v, 4);
        break;
    default:
        p[i] = (uint8_t)(int8_t)v;
        break;
    }
}

static inline void tm_requantize(const tm_requant_params *p, const uint8_t *in, uint8_t *out,
                                 int32_t n) {
    int32_t i;
    for (i = 0; i < n; ++i) {
        const int64_t x = (int64_t)tm_load_code(in, p->in_type, i) - p->in_zp;
        const int64_t v = (int64_t)tm_requant((int32_t)x, p->mult, p->shift) + p->out_zp;
        tm_store_code(out, p->out_type, i, (int32_t)(v < p->qmin ? p->qmin
                                                     : (v > p->qmax ? p->qmax : v)));
    }
}

#endif /* TM_QUANTIZE_H */
