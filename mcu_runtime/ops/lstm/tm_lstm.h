/* tinymcu runtime: UNIDIRECTIONAL_SEQUENCE_LSTM, int8 activations with int16 gates and cell
 * state (TFLM's EvalLstm<int8_t, int8_t, int16_t, int32_t>). Gates in the order input,
 * forget, cell, output. The hidden (int8) and cell (int16) states live in the arena and are
 * updated in place; scratch holds three int16 rows of n_state. */
#ifndef TM_LSTM_H
#define TM_LSTM_H

#include "tm_common.h"

typedef struct {
    const int8_t *w_in[4];  /* (S, I) input -> gate */
    const int8_t *w_rec[4]; /* (S, S) hidden -> gate */
    const int32_t *bias[4]; /* (S) */
    int32_t in_mult[4], in_shift[4], rec_mult[4], rec_shift[4];
    int32_t batches, steps, n_in, n_state, time_major;
    int32_t in_zp, hidden_zp;
    int32_t forget_mult, forget_shift, input_mult, input_shift, output_mult, output_shift;
    int32_t tanh_mult, tanh_shift, cell_clip;
    const uint16_t *table; /* 256 samples of sigmoid(i/24) in 0.16 */
} tm_lstm_params;

static inline int16_t tm_lstm_sat16(int32_t v) {
    return (int16_t)(v < -32768 ? -32768 : (v > 32767 ? 32767 : v));
}

/* reference_integer_ops::Logistic on int16 Q3.12 (input multiplier 3, no shift). */
static inline int16_t tm_lstm_sigmoid(const uint16_t *t, int32_t x) {
    const int32_t v = x * 3;
    const uint32_t a = (uint32_t)(v < 0 ? -v : v);
    const uint32_t uh = a >> 9;
    uint32_t r;
    if (uh >= 255u) {
        r = 0x7FFFu << 10;
    } else {
        const uint32_t ua = t[uh];
        const uint32_t ub = t[uh + 1u];
        r = (ua << 9) + (a & 0x1FFu) * (ub - ua);
    }
    r = v >= 0 ? r + (1u << 9) : (1u << 25) - r + (1u << 9) - 1u;
    return (int16_t)(r >> 10);
}

/* reference_integer_ops::Tanh on int16 with the input prescaled by (mult, shift). */
static inline int16_t tm_lstm_tanh(const uint16_t *t, int32_t x, int32_t mult, int32_t shift) {
    const int32_t rnd = shift > 0 ? ((int32_t)1 << (shift - 1)) : 0;
    const int32_t v = (x * mult + rnd) >> shift;
    const uint32_t a = (uint32_t)(v < 0 ? -v : v);
    const uint32_t uh = a >> 8;
    int32_t r;
    if (uh >= 255u) {
        r = (int32_t)(0xFFFFu << 8);
    } else {
        const uint32_t ua = t[uh];
        const uint32_t ub = t[uh + 1u];
        r = (int32_t)((ua << 8) + (a & 0xFFu) * (ub - ua));
    }
    r = v >= 0 ? r - (1 << 23) + (1 << 7) : -r + (1 << 23) + (1 << 7) - 1;
    return (int16_t)(r >> 8);
}

/* MulElementwise of two symmetric int16 values, plus zp, clamped to [lo, hi]. */
static inline int32_t tm_lstm_mul(int32_t a, int32_t b, int32_t m, int32_t s, int32_t zp,
                                  int32_t lo, int32_t hi) {
    const int32_t v = tm_requant(a * b, m, s) + zp;
    return v < lo ? lo : (v > hi ? hi : v);
}

/* One unit of an int8 x int8 (+ bias) -> int16 fully connected at scale 2^-12. */
static inline int32_t tm_lstm_fc(const int8_t *x, const int8_t *w, int32_t n, int32_t zp,
                                 int32_t bias, int32_t m, int32_t s) {
    int32_t acc = 0;
    int32_t k;
    for (k = 0; k < n; ++k) {
        acc = tm_wrap_add(acc, (int32_t)w[k] * ((int32_t)x[k] - zp));
    }
    return tm_lstm_sat16(tm_requant(tm_wrap_add(acc, bias), m, s));
}

static inline int16_t tm_lstm_gate(const tm_lstm_params *p, int32_t g, const int8_t *x,
                                   const int8_t *h, int32_t j) {
    const int32_t a = tm_lstm_fc(x, p->w_in[g] + j * p->n_in, p->n_in, p->in_zp, p->bias[g][j],
                                 p->in_mult[g], p->in_shift[g]);
    const int32_t r = tm_lstm_fc(h, p->w_rec[g] + j * p->n_state, p->n_state, p->hidden_zp, 0,
                                 p->rec_mult[g], p->rec_shift[g]);
    const int16_t z = tm_lstm_sat16(a + r);
    return g == 2 ? tm_lstm_tanh(p->table, z, 3, 0) : tm_lstm_sigmoid(p->table, z);
}

static inline void tm_lstm(const tm_lstm_params *p, const int8_t *in, int8_t *hidden,
                           int16_t *cell, int8_t *out, int16_t *scratch) {
    const int32_t s = p->n_state;
    int16_t *fg = scratch;
    int16_t *ig = scratch + s; /* reused for the output gate once the cell is updated */
    int16_t *cg = scratch + 2 * s;
    int32_t b, t, j;
    for (b = 0; b < p->batches; ++b) {
        int8_t *h = hidden + b * s;
        int16_t *c = cell + b * s;
        for (t = 0; t < p->steps; ++t) {
            const int32_t row = p->time_major ? t * p->batches + b : b * p->steps + t;
            const int8_t *x = in + row * p->n_in;
            int8_t *y = out + row * s;
            for (j = 0; j < s; ++j) {
                fg[j] = tm_lstm_gate(p, 1, x, h, j);
                ig[j] = tm_lstm_gate(p, 0, x, h, j);
                cg[j] = tm_lstm_gate(p, 2, x, h, j);
            }
            for (j = 0; j < s; ++j) {
                int32_t v = tm_lstm_mul(fg[j], c[j], p->forget_mult, p->forget_shift, 0,
                                        -32768, 32767);
                v += tm_lstm_mul(ig[j], cg[j], p->input_mult, p->input_shift, 0, -32768, 32767);
                v = v < -32768 ? -32768 : (v > 32767 ? 32767 : v);
                if (p->cell_clip > 0) {
                    v = v < -p->cell_clip ? -p->cell_clip : (v > p->cell_clip ? p->cell_clip : v);
                }
                c[j] = (int16_t)v;
            }
            for (j = 0; j < s; ++j) {
                ig[j] = tm_lstm_gate(p, 3, x, h, j); /* every gate reads the old hidden state */
            }
            for (j = 0; j < s; ++j) {
                const int32_t th = tm_lstm_tanh(p->table, c[j], p->tanh_mult, p->tanh_shift);
                h[j] = (int8_t)tm_lstm_mul(th, ig[j], p->output_mult, p->output_shift,
                                           p->hidden_zp, -128, 127);
                y[j] = h[j];
            }
        }
    }
}

#endif /* TM_LSTM_H */
