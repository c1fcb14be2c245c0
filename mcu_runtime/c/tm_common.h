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

/* Host builds with GCC (x86-64, AArch64): the portable GEMM loops (4 taps x 2 rows per
 * step, written out) vectorize only with the dynamic cost model; GCC's -O2 default
 * ("very cheap") refuses any loop that needs an epilogue. Set for the whole generated
 * translation unit, so every function keeps the same options and inlines as before. */
#if defined(__GNUC__) && !defined(__clang__) && (defined(__x86_64__) || defined(__aarch64__))
#pragma GCC optimize("vect-cost-model=dynamic")
#endif

#if defined(__GNUC__) || defined(__clang__) || defined(__CC_ARM) || defined(__ICCARM__)
#define TM_ALIGNED(n) __attribute__((aligned(n)))
#else
#define TM_ALIGNED(n)
#endif

/* Inner-loop helpers must be inlined even at -Os (a call per tap or per output would cost
 * more than the work, and their accumulators would live on the stack). */
#if defined(__GNUC__) || defined(__clang__)
#define TM_INLINE static inline __attribute__((always_inline))
#else
#define TM_INLINE static inline
#endif

/* The sparse kernels' entry points are called once per op with different constant
 * parameters; inlined at each call (as -O2 would) they would take their code once per
 * op, which a pruned model's flash cannot afford (unused: a model without the op never
 * calls it). */
#if defined(__GNUC__) || defined(__clang__)
#define TM_NOINLINE static __attribute__((noinline, unused))
#else
#define TM_NOINLINE static inline
#endif

/* The sparse kernels' rare paths (a window's border, rows of many taps): out of line and
 * compiled for size, so the flash a pruned model saves is not spent on them. */
#if defined(__GNUC__) || defined(__clang__)
#define TM_COLD static __attribute__((noinline, unused, cold))
#else
#define TM_COLD static inline
#endif

/* The requantization forms (tm_conv.h's TM_RQ_HAS_* bits) the sparse kernels compile in:
 * all three unless a generated model defines the ones its sparse filters take (flash: each
 * form is its own copy of a kernel's loops). Dense kernels do not read it. */
#ifndef TM_SPARSE_FORMS
#define TM_SPARSE_FORMS 7
#endif

/* The rare paths of the sparse tap tables (tm_conv.h) a model needs: bit 0, outputs whose
 * taps may fall outside the box (a depthwise not run on a padded plane, a list conv's tap
 * tables without im2col buffer); bit 1, rows of more than TM_TAPS non-zero taps, walked
 * pixel by pixel. All unless a generated model defines the ones its ops take
 * (CUnit.note_sparse_paths); the others are not compiled in. */
#ifndef TM_SPARSE_PATHS
#define TM_SPARSE_PATHS 3
#endif
#define TM_SPARSE_BORDER ((TM_SPARSE_PATHS & 1) != 0)
#define TM_SPARSE_LONG ((TM_SPARSE_PATHS & 2) != 0)

/* Kernel layer selection, at compile time: TM_DSP is 1 on cores with the DSP extension
 * (Cortex-M4/M7/M33/M55: 16-bit SIMD multiply-accumulate, __smlad and friends from the
 * compiler's <arm_acle.h>), 0 elsewhere (host builds, Cortex-M0/M0+/M3), where every
 * kernel runs its portable C99 loop. Both paths compute the same int32 sums and share the
 * requantization below, so they are bit-exact with each other and with the emulator.
 * Define TM_PORTABLE to force the C99 path on a DSP core (tests compare the two). */
#if defined(__ARM_FEATURE_DSP) && defined(__ARM_FEATURE_SIMD32) && !defined(TM_PORTABLE)
#define TM_DSP 1
#include <arm_acle.h>
/* sxtb16 / sxtab16 of the odd bytes (bytes 1 and 3): one instruction with the rotate
 * operand, which the ACLE intrinsics do not expose (GCC emits a separate ror). */
TM_INLINE uint32_t tm_sxtb16_odd(uint32_t x) {
    uint32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return r;
}
TM_INLINE uint32_t tm_sxtab16_odd(uint32_t a, uint32_t x) {
    uint32_t r;
    __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(a), "r"(x));
    return r;
}
#else
#define TM_DSP 0
#endif

/* TM_ASM: the DSP inner loops that need 12-14 registers are inline assembly (GCC spills the
 * same C at -Os). They need an optimizing build that frees the frame pointer (GCC's -O1 and
 * up do); unoptimized builds (-O0, e.g. a CMake build without a build type) or
 * -DTM_NO_ASM run the same DSP arithmetic as C intrinsics instead. */
#if TM_DSP && defined(__OPTIMIZE__) && !defined(TM_NO_ASM)
#define TM_ASM 1
#else
#define TM_ASM 0
#endif

/* Four bytes as one word from any address (one unaligned LDR on ARMv7E-M). */
TM_INLINE uint32_t tm_load32(const int8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

TM_INLINE void tm_store32(int8_t *p, uint32_t v) {
    memcpy(p, &v, 4);
}

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

TM_INLINE int32_t tm_wrap_shl(int32_t a, int32_t n) {
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

/* The requantization tail every conv-like kernel shares: TFLite MultiplyByQuantizedMultiplier
 * (double rounding) for a multiplier m >= 0, as quantize_multiplier produces (Q31 in
 * [2^30, 2^31) or 0). With m >= 0 the INT32_MIN * INT32_MIN saturation of tm_srdhm cannot
 * occur, and gemmlowp's sign-dependent nudge with truncating division equals adding 2^30
 * and shifting right arithmetically (floor): for ab = -n both give -floor((n + 2^30 - 1) /
 * 2^31). RoundingDivideByPOT keeps its remainder test. tests/test_c_kernels.py checks it
 * against quant.py on every edge. */
TM_INLINE int32_t tm_requant_pos(int32_t x, int32_t m, int32_t shift) {
    const int32_t left = shift > 0 ? shift : 0;
    const int32_t right = shift > 0 ? 0 : -shift;
    const int64_t ab = (int64_t)tm_wrap_shl(x, left) * m + ((int64_t)1 << 30);
    const int32_t hi = (int32_t)(ab >> 31);
    const int32_t mask = (int32_t)(((uint32_t)1 << right) - 1u);
    const int32_t threshold = (mask >> 1) + (int32_t)((uint32_t)hi >> 31);
    return (hi >> right) + ((hi & mask) > threshold ? 1 : 0);
}

/* acc (bias included) → int8: requantize, add the output zero point, clamp to [lo, hi].
 * The clamp is applied before the zero point so no int32 sum can overflow. */
TM_INLINE int8_t tm_requant_out(int32_t acc, int32_t m, int32_t shift, int32_t zp,
                                int32_t lo, int32_t hi) {
    const int32_t v = tm_requant_pos(acc, m, shift);
    const int32_t vlo = lo - zp, vhi = hi - zp;
    return (int8_t)((v < vlo ? vlo : (v > vhi ? vhi : v)) + zp);
}

/* The same split in two, for kernels that requantize many outputs of one channel: the
 * channel's constants once (tm_rq_of), then each output (tm_rq_out, ~20 instructions). */
typedef struct {
    int32_t m, left, right, mask, half;
} tm_rq;

TM_INLINE tm_rq tm_rq_of(int32_t m, int32_t shift) {
    tm_rq c;
    c.m = m;
    c.left = shift > 0 ? shift : 0;
    c.right = shift > 0 ? 0 : -shift;
    c.mask = (int32_t)(((uint32_t)1 << c.right) - 1u);
    c.half = c.right > 0 ? (int32_t)((uint32_t)1 << (c.right - 1)) : 0;
    return c;
}

/* The output clamp relative to the zero point: [lo - zp, hi - zp], then + zp. */
typedef struct {
    int32_t zp, vlo, vhi;
} tm_clamp;

TM_INLINE tm_clamp tm_clamp_of(int32_t zp, int32_t lo, int32_t hi) {
    tm_clamp k;
    k.zp = zp;
    k.vlo = lo - zp;
    k.vhi = hi - zp;
    return k;
}

TM_INLINE int8_t tm_rq_out(tm_rq c, tm_clamp k, int32_t acc) {
    const int64_t ab = (int64_t)tm_wrap_shl(acc, c.left) * c.m + ((int64_t)1 << 30);
    const int32_t hi = (int32_t)(ab >> 31);
    const int32_t threshold = (c.mask >> 1) + (int32_t)((uint32_t)hi >> 31);
    const int32_t v = (hi >> c.right) + ((hi & c.mask) > threshold ? 1 : 0);
    return (int8_t)((v < k.vlo ? k.vlo : (v > k.vhi ? k.vhi : v)) + k.zp);
}

/* tm_rq_out for an op the code generator proved bounded (`fast_rq`): every accumulator
 * |acc| < 2^29 (sum of |weights| * 255 + |bias| per channel) and every shift <= -1. Then
 * the high multiply is one rounding SMMULR of 2 * acc ((2 acc m + 2^31) >> 32 equals
 * (acc m + 2^30) >> 31), and RoundingDivideByPOT is (hi + 2^(r-1) - [hi < 0]) >> r, which
 * cannot overflow: 5 instructions instead of 12, same result. */
TM_INLINE int8_t tm_rq_out_fast(tm_rq c, tm_clamp k, int32_t acc) {
    int32_t hi, v;
#if TM_DSP
    __asm__("smmulr %0, %1, %2" : "=r"(hi) : "r"(acc << 1), "r"(c.m));
#else
    hi = (int32_t)(((int64_t)acc * 2 * c.m + ((int64_t)1 << 31)) >> 32);
#endif
    v = (hi + c.half - (int32_t)((uint32_t)hi >> 31)) >> c.right;
    return (int8_t)((v < k.vlo ? k.vlo : (v > k.vhi ? k.vhi : v)) + k.zp);
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

/* Sparse filters (pruned models): bit i of a row-major filter is mask[i / 8] >> (i % 8);
 * only the non-zero values are stored, in order. */
static inline int32_t tm_bit(const uint8_t *mask, int32_t i) {
    return (mask[i >> 3] >> (i & 7)) & 1;
}

/* Non-zero weights among bits [start, start + n) of a mask: how far a sparse row reaches. */
static inline int32_t tm_bits_set(const uint8_t *mask, int32_t start, int32_t n) {
    int32_t i, count = 0;
    for (i = start; i < start + n; ++i) {
        count += tm_bit(mask, i);
    }
    return count;
}

#endif /* TM_COMMON_H */
