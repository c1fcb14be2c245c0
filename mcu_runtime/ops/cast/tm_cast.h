/* tinymcu runtime: CAST (TFLM cast.cc, a static_cast per element; no quantization).
 * Buffers are raw arena bytes; elements are read and written with memcpy, so any
 * alignment is fine. Narrowing to int8 keeps the low byte, as the cast does with GCC/Clang. */
#ifndef TM_CAST_H
#define TM_CAST_H

#include "tm_common.h"

#define TM_CAST_FN(name, src_t, dst_t)                                         \
    static inline void name(const uint8_t *in, uint8_t *out, int32_t n) {     \
        int32_t i;                                                             \
        for (i = 0; i < n; ++i) {                                              \
            src_t v;                                                           \
            dst_t w;                                                           \
            memcpy(&v, in + (size_t)i * sizeof(src_t), sizeof(src_t));         \
            w = (dst_t)v;                                                      \
            memcpy(out + (size_t)i * sizeof(dst_t), &w, sizeof(dst_t));        \
        }                                                                      \
    }

TM_CAST_FN(tm_cast_i8_u8, int8_t, uint8_t)
TM_CAST_FN(tm_cast_i8_i16, int8_t, int16_t)
TM_CAST_FN(tm_cast_i8_i32, int8_t, int32_t)
TM_CAST_FN(tm_cast_i8_f32, int8_t, float)
TM_CAST_FN(tm_cast_u8_i8, uint8_t, int8_t)
TM_CAST_FN(tm_cast_i16_i8, int16_t, int8_t)
TM_CAST_FN(tm_cast_i32_i8, int32_t, int8_t)
TM_CAST_FN(tm_cast_i16_i32, int16_t, int32_t)
TM_CAST_FN(tm_cast_u32_i32, uint32_t, int32_t)
TM_CAST_FN(tm_cast_i32_u32, int32_t, uint32_t)

#endif /* TM_CAST_H */
