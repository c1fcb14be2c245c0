/* tinymcu runtime: every int8 kernel the generated model.c calls (header-only C99).
 *
 * tm_common.h  boxes (strided views of arena buffers), fixed-point requantization, copies
 * tm_conv.h    CONV_2D, DEPTHWISE_CONV_2D (direct and in place), EXPAND_DEPTHWISE, FULLY_CONNECTED,
 *              with dense or sparse (bitmask + non-zero values) filters
 * tm_ops.h     AVERAGE/MAX_POOL_2D, MEAN, ADD/SUB/MUL, SOFTMAX
 * Unary int8 ops (RELU, RELU6, LOGISTIC, HARD_SWISH, requantizing QUANTIZE/CONCATENATION)
 * run as 256-entry look-up tables computed at code-generation time (tm_copy_box).
 */
#ifndef TINYMCU_KERNELS_H
#define TINYMCU_KERNELS_H

#include "tm_common.h"
#include "tm_conv.h"
#include "tm_ops.h"

#endif /* TINYMCU_KERNELS_H */
