/* tinymcu runtime: BATCH_MATMUL int8 (TFLM reference_ops::BatchMatMul).
 *
 * out[b][a][c] = requant(sum_k (lhs[b][a][k] - lhs_zp) * (rhs[b][k][c] - rhs_zp)) + out_zp,
 * clamped to int8. Operands are walked with element strides, so adj_x / adj_y (transposed
 * last two axes) and broadcast batch axes (stride 0) need no copies. The output is dense
 * and must not overlap either operand.
 */
#ifndef TM_BATCH_MATMUL_H
#define TM_BATCH_MATMUL_H

#include "tm_common.h"

typedef struct {
    int32_t batch[3];        /* output batch dims, padded with 1 in front */
    int32_t lhs_bstride[3];  /* elements per batch step; 0 on a broadcast axis */
    int32_t rhs_bstride[3];
    int32_t rows, depth, cols;
    int32_t lhs_row, lhs_k;  /* element strides of lhs along (row, depth) */
    int32_t rhs_k, rhs_col;  /* element strides of rhs along (depth, col) */
    int32_t lhs_zp, rhs_zp, out_zp, mult, shift;
} tm_batch_matmul_params;

static inline void tm_batch_matmul(const tm_batch_matmul_params *p, const int8_t *lhs,
                                   const int8_t *rhs, int8_t *out) {
    int32_t b0, b1, b2, a, c, k;
    for (b0 = 0; b0 < p->batch[0]; ++b0) {
        for (b1 = 0; b1 < p->batch[1]; ++b1) {
            for (b2 = 0; b2 < p->batch[2]; ++b2) {
                const int8_t *l = lhs + b0 * p->lhs_bstride[0] + b1 * p->lhs_bstride[1]
                                  + b2 * p->lhs_bstride[2];
                const int8_t *r = rhs + b0 * p->rhs_bstride[0] + b1 * p->rhs_bstride[1]
                                  + b2 * p->rhs_bstride[2];
                for (a = 0; a < p->rows; ++a) {
                    for (c = 0; c < p->cols; ++c) {
                        int32_t acc = 0;
                        for (k = 0; k < p->depth; ++k) {
                            acc += ((int32_t)l[a * p->lhs_row + k * p->lhs_k] - p->lhs_zp)
                                   * ((int32_t)r[k * p->rhs_k + c * p->rhs_col] - p->rhs_zp);
                        }
                        acc = tm_requant(acc, p->mult, p->shift);
                        *out++ = tm_out8(acc, p->out_zp, -128, 127);
                    }
                }
            }
        }
    }
}

#endif /* TM_BATCH_MATMUL_H */
