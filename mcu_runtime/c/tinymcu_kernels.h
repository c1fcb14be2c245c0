/* tinymcu runtime: every int8 kernel the generated model.c calls (header-only C99).
 *
 * tm_common.h is the shared part (boxes: strided views of arena buffers; fixed-point
 * requantization; box copies, fills and 256-entry look-up tables; sparse-mask helpers).
 * Each op family's kernels live in its folder, mcu_runtime/ops/<family>/tm_<family>.h;
 * unary int8 ops (RELU, RELU6, RELU_N1_TO_1, LOGISTIC, HARD_SWISH, requantizing QUANTIZE and
 * CONCATENATION) run as look-up tables computed at code-generation time (tm_copy_box).
 * tests/test_registry.py checks this list against the op folders.
 */
#ifndef TINYMCU_KERNELS_H
#define TINYMCU_KERNELS_H

#include "tm_common.h"
#include "tm_binary.h"
#include "tm_arg_min_max.h"
#include "tm_batch_matmul.h"
#include "tm_cast.h"
#include "tm_conv.h"
#include "tm_copy.h"
#include "tm_depthwise.h"
#include "tm_eltwise.h"
#include "tm_expand_depthwise.h"
#include "tm_fully_connected.h"
#include "tm_lstm.h"
#include "tm_l2_norm.h"
#include "tm_mean.h"
#include "tm_pool.h"
#include "tm_quantize.h"
#include "tm_reduce.h"
#include "tm_resize.h"
#include "tm_signal.h"
#include "tm_softmax.h"
#include "tm_svdf.h"
#include "tm_transpose.h"
#include "tm_transpose_conv.h"

#endif /* TINYMCU_KERNELS_H */
