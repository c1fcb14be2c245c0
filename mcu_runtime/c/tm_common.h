/* tinymcu runtime: common types and TFLite's int8 fixed-point requantization.
 *
 * Header-only C99, no malloc, no floating point. Every function mirrors one helper of
 * TFLite's reference kernels (gemmlowp's double rounding) exactly as the Python emulator
 * (mcu_runtime/kernels/quant.py) does, including saturation and rounding of negative values,
 * so the generated firmware is bit-exact with TFLM. Multipliers and shifts are computed at
 * code-generation time by the same Python functions the emulator uses.
 *
 * Assumes two's-complement int32 with arithmetic right shift of negative values (every
 * compiler for Cortex-M and x86 does this; TFLM assumes it too).
 */
#ifndef TM_COMMON_H
#define TM_COMMON_H

#include <stdint.h>
#include <string.h>

#if defined(__GNUC__) || defined(__clang__) || defined(__CC_ARM) || defined(__ICCARM__)
#define TM_ALIGNED(n) __attribute__((aligned(n)))
#else
#define TM_ALIGNED(n)
#endif

/* A box of an NHWC int8 tensor held somewhere in the arena: `p` points at the box's first
 * element; channel k of pixel (y, x) is p[y * row + x * pix + k]. A whole tensor, a tile
 * buffer, the part of a tile a step reads, or a channel slice of a concatenation are all
 * boxes; pix and row are the strides of the buffer that holds the box. */
typedef struct {
    int8_t *p;
    int32_t h, w, c;
    int32_t pix, row;
} tm_box;

static inline tm_box tm_box_make(int8_t *p, int32_t h, int32_t w, int32_t c, int32_t pix,
                                 int32_t row) {
    tm_box b;
    b.p = p;
    b.h = h;
    b.w = w;
    b.c = c;
    b.pix = pix;
    b.row = row;
    return b;
}

static inline int8_t *tm_at(tm_box b, int32_t y, int32_t x) {
    return b.p + y * b.row + x * b.pix;
}

static inline int8_t tm_clamp8(int32_t v, int32_t lo, int32_t hi) {
    return (int8_t)(v < lo ? lo : (v > hi ? hi : v));
}

/* A requantized int32 plus the output zero point, clamped to [lo, hi] (no int32 overflow). */
static inline int8_t tm_out8(int32_t v, int32_t zp, int32_t lo, int32_t hi) {
    const int64_t s = (int64_t)v + zp;
    return (int8_t)(s < lo ? lo : (s > hi ? hi : s));
}

/* int32 addition and left shift with two's-complement wrap-around (what the emulator's
 * wrap32 models); plain signed overflow would be undefined behaviour in C. */
static inline int32_t tm_wrap_add(int32_t a, int32_t b) {
    return (int32_t)((uint32_t)a + (uint32_t)b);
}

static inline int32_t tm_wrap_sub(int32_t a, int32_t b) {
    return (int32_t)((uint32_t)a - (uint32_t)b);
}

static inline int32_t tm_wrap_shl(int32_t a, int32_t n) {
    return (int32_t)((uint32_t)a << n);
}

/* gemmlowp SaturatingRoundingDoublingHighMul: round(a * b / 2^31), INT32_MIN^2 saturates. */
static inline int32_t tm_srdhm(int32_t a, int32_t b) {
    int64_t ab;
    int64_t nudge;
    if (a == b && a == INT32_MIN) {
        return INT32_MAX;
    }
    ab = (int64_t)a * (int64_t)b;
    nudge = ab >= 0 ? ((int64_t)1 << 30) : (1 - ((int64_t)1 << 30));
    return (int32_t)((ab + nudge) / ((int64_t)1 << 31)); /* C division truncates, as gemmlowp */
}

/* gemmlowp RoundingDivideByPOT: x / 2^e rounded to nearest, ties away from zero (0 <= e <= 31). */
static inline int32_t tm_rdbpot(int32_t x, int32_t e) {
    int32_t mask = (int32_t)(((uint32_t)1 << e) - 1u);
    int32_t remainder = x & mask;
    int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> e) + (remainder > threshold ? 1 : 0);
}

/* The same for exponents past 31 (SOFTMAX's reciprocal scaling may need up to 34). */
static inline int32_t tm_rdbpot_wide(int32_t x, int32_t e) {
    int64_t mask = ((int64_t)1 << e) - 1;
    int64_t remainder = (int64_t)x & mask;
    int64_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (int32_t)(((int64_t)x >> e) + (remainder > threshold ? 1 : 0));
}

/* TFLite MultiplyByQuantizedMultiplier (double rounding): x * m * 2^(shift - 31). */
static inline int32_t tm_requant(int32_t x, int32_t m, int32_t shift) {
    int32_t left = shift > 0 ? shift : 0;
    int32_t right = shift > 0 ? 0 : -shift;
    return tm_rdbpot(tm_srdhm(tm_wrap_shl(x, left), m), right);
}

/* gemmlowp SaturatingRoundingMultiplyByPOT for a compile-time-known exponent. */
static inline int32_t tm_sat_mul_pot(int32_t x, int32_t exponent) {
    int32_t threshold;
    if (exponent == 0) {
        return x;
    }
    if (exponent < 0) {
        return tm_rdbpot(x, -exponent);
    }
    threshold = (int32_t)(((uint32_t)1 << (31 - exponent)) - 1u);
    if (x > threshold) {
        return INT32_MAX;
    }
    if (x < -threshold) {
        return INT32_MIN;
    }
    return tm_wrap_shl(x, exponent);
}

/* Copy a box into a box of the same h, w, c (row by row, forward: safe when the
 * destination is the source's memory with the same or smaller strides, as in place). When
 * `lut` is given each byte goes through the 256-entry table (index value + 128). */
static inline void tm_copy_box(tm_box in, tm_box out, const int8_t *lut) {
    int32_t y, x, k;
    for (y = 0; y < in.h; ++y) {
        for (x = 0; x < in.w; ++x) {
            const int8_t *src = tm_at(in, y, x);
            int8_t *dst = tm_at(out, y, x);
            if (lut) {
                for (k = 0; k < in.c; ++k) {
                    dst[k] = lut[src[k] + 128];
                }
            } else if (dst != src) {
                memmove(dst, src, (size_t)in.c);
            }
        }
    }
}

/* Fill a box with one value (PAD's border). */
static inline void tm_fill_box(tm_box out, int8_t value) {
    int32_t y, x;
    for (y = 0; y < out.h; ++y) {
        for (x = 0; x < out.w; ++x) {
            memset(tm_at(out, y, x), value, (size_t)out.c);
        }
    }
}

#endif /* TM_COMMON_H */
