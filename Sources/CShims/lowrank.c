#pragma STDC FP_CONTRACT OFF
#include "cshims.h"
#include <string.h>
#include <stdlib.h>

/* AVX2 and baseline builds of the hot kernels, picked at load time (ifunc). Vectorizing across
 * elements keeps each element's arithmetic (order, no FMA) as written, so both builds give the
 * same bits. */
#if defined(__x86_64__) && defined(__clang__) && defined(__linux__)
#define WL_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define WL_CLONES
#endif

/* wl_f32_to_bf16 (round to nearest even, NaN kept quiet), inlined so that each clone of the
 * kernels below vectorizes it for its own instruction set; integer operations, the same bits. */
static inline void f32_to_bf16_row(const float *src, uint16_t *dst, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint32_t b;
        memcpy(&b, src + i, 4);   /* the float's bits (no aliasing of the float stores before) */
        uint32_t rounded = (b + 0x7FFFu + ((b >> 16) & 1u)) >> 16;
        uint32_t nan = (b >> 16) | 0x0040u;
        dst[i] = (uint16_t)((b & 0x7FFFFFFFu) > 0x7F800000u ? nan : rounded);
    }
}

/* Row i of a (rows, cols) tensor of `dtype` as doubles. */
static inline void load_row(const uint8_t *p, size_t i, size_t cols, int dtype, double *out, float *tmp) {
    const uint8_t *row = p + i * cols * (dtype == 1 ? 4 : dtype == 4 ? 8 : 2);
    switch (dtype) {
    case 1: { const float *f = (const float *)(const void *)row; for (size_t j = 0; j < cols; j++) out[j] = f[j]; break; }
    case 2: wl_f16_to_f32((const uint16_t *)(const void *)row, tmp, cols); for (size_t j = 0; j < cols; j++) out[j] = tmp[j]; break;
    case 3: {
        const uint16_t *h = (const uint16_t *)(const void *)row;
        for (size_t j = 0; j < cols; j++) { uint32_t u = (uint32_t)h[j] << 16; float f; memcpy(&f, &u, 4); out[j] = f; }
        break;
    }
    default: memcpy(out, row, cols * sizeof(double));
    }
}

void wl_lowrank_transpose(const double *b, size_t cols, size_t rank, double *bt) {
    for (size_t j = 0; j < cols; j++)
        for (size_t k = 0; k < rank; k++) bt[k * cols + j] = b[j * rank + k];
}

WL_CLONES
void wl_lowrank_predict_rows_bt(const uint8_t *parent, uint8_t *out, int dtype, size_t row0, size_t row1, size_t cols,
                                size_t rank, const double *a, const double *bt) {
    double *acc = malloc(cols * sizeof(double)), *d = malloc(cols * sizeof(double));
    float *f32 = malloc(cols * sizeof(float));
    if (!acc || !d || !f32) { free(acc); free(d); free(f32); abort(); }
    for (size_t i = row0; i < row1; i++) {
        const double *ai = a + i * rank;
        size_t base = i * cols;
        /* Rank one, F32 or BF16 (ROME's case, and most stored patches): the same operations per
         * element — (0.0 + a·b), added to the parent value in double, rounded to float — in one
         * pass. Each element is read before it is written, so `out` may be `parent`. */
        if (rank == 1 && dtype == 1) {
            const float *pr = (const float *)(const void *)(parent + 4 * base);
            float *o = (float *)(void *)(out + 4 * base);
            const double a0 = ai[0];
            /* Element j is read and written by iteration j only: safe to vectorize in place. */
#pragma clang loop vectorize(assume_safety)
            for (size_t j = 0; j < cols; j++) o[j] = (float)((double)pr[j] + (0.0 + a0 * bt[j]));
            continue;
        }
        if (rank == 1 && dtype == 3) {
            const uint16_t *pr = (const uint16_t *)(const void *)(parent + 2 * base);
            const double a0 = ai[0];
            for (size_t j = 0; j < cols; j++) {
                uint32_t u = (uint32_t)pr[j] << 16; float f; memcpy(&f, &u, 4);
                f32[j] = (float)((double)f + (0.0 + a0 * bt[j]));
            }
            f32_to_bf16_row(f32, (uint16_t *)(void *)(out + 2 * base), cols);
            continue;
        }
        load_row(parent, i, cols, dtype, acc, f32);   /* the whole row, before `out` (maybe == parent) is written */
        /* Sum the rank terms separately (k ascending from 0.0), then add to the parent value. */
        for (size_t j = 0; j < cols; j++) d[j] = 0.0;
        for (size_t k = 0; k < rank; k++) {
            const double aik = a[i * rank + k], *bk = bt + k * cols;
            for (size_t j = 0; j < cols; j++) d[j] += aik * bk[j];
        }
        for (size_t j = 0; j < cols; j++) acc[j] = acc[j] + d[j];
        switch (dtype) {
        case 1: {
            float *o = (float *)(void *)(out + 4 * base);
            for (size_t j = 0; j < cols; j++) o[j] = (float)acc[j];
            break;
        }
        case 2:
            for (size_t j = 0; j < cols; j++) f32[j] = (float)acc[j];
            wl_f32_to_f16(f32, (uint16_t *)(void *)(out + 2 * base), cols);
            break;
        case 3:
            for (size_t j = 0; j < cols; j++) f32[j] = (float)acc[j];
            f32_to_bf16_row(f32, (uint16_t *)(void *)(out + 2 * base), cols);
            break;
        default:
            memcpy(out + 8 * base, acc, cols * sizeof(double));
        }
    }
    free(acc); free(d); free(f32);
}

void wl_lowrank_predict_rows(const uint8_t *parent, uint8_t *out, int dtype, size_t row0, size_t row1, size_t cols,
                             size_t rank, const double *a, const double *b) {
    double *bt = malloc((rank ? rank : 1) * cols * sizeof(double));
    if (!bt) abort();
    wl_lowrank_transpose(b, cols, rank, bt);
    wl_lowrank_predict_rows_bt(parent, out, dtype, row0, row1, cols, rank, a, bt);
    free(bt);
}

void wl_lowrank_predict(const uint8_t *parent, uint8_t *out, int dtype, size_t rows, size_t cols,
                        size_t rank, const double *a, const double *b) {
    wl_lowrank_predict_rows(parent, out, dtype, 0, rows, cols, rank, a, b);
}

/* ---- Encoder kernels (their results only steer the encoding; the patch is verified exactly). */

/* A double from its exponent e (-1022 <= e <= 1023) with a zero mantissa: 2^e. */
static inline double pow2_normal(int64_t e) {
    uint64_t u = (uint64_t)(e + 1023) << 52; double d; memcpy(&d, &u, 8); return d;
}

/* Half-widths of the rounding boxes of row i: h = (1/2 - 2^-14) x the smaller spacing of the
 * dtype around the child value (0 for non-finite values). Branch-free per dtype so the loops
 * vectorize. */
static inline void half_widths(const uint8_t *c, size_t i, size_t cols, int dtype, double *h) {
    const double k = 0.5 - 0x1p-14;
    switch (dtype) {
    case 1: {
        const uint32_t *u = (const uint32_t *)(const void *)(c + 4 * i * cols);
        for (size_t j = 0; j < cols; j++) {
            int64_t be = (u[j] >> 23) & 0xff;
            /* Spacing 2^(e - 23), e = max(be, 1) - 127, halved just below a power of two. */
            int64_t halve = ((u[j] & 0x7fffff) == 0) & (be > 1);
            int64_t e = (be == 0 ? 1 : be) - 150 - halve;
            double v = k * pow2_normal(e);
            h[j] = be == 0xff ? 0.0 : v;
        }
        break;
    }
    case 3: {
        const uint16_t *u = (const uint16_t *)(const void *)(c + 2 * i * cols);
        for (size_t j = 0; j < cols; j++) {
            int64_t be = (u[j] >> 7) & 0xff;
            int64_t halve = ((u[j] & 0x7f) == 0) & (be > 1);
            int64_t e = (be == 0 ? 1 : be) - 134 - halve;
            double v = k * pow2_normal(e);
            h[j] = be == 0xff ? 0.0 : v;
        }
        break;
    }
    case 2: {
        const uint16_t *u = (const uint16_t *)(const void *)(c + 2 * i * cols);
        for (size_t j = 0; j < cols; j++) {
            int64_t be = (u[j] >> 10) & 0x1f;
            int64_t halve = ((u[j] & 0x3ff) == 0) & (be > 1);
            int64_t e = (be == 0 ? 1 : be) - 25 - halve;
            double v = k * pow2_normal(e);
            h[j] = be == 0x1f ? 0.0 : v;
        }
        break;
    }
    default: {
        const uint64_t *u = (const uint64_t *)(const void *)(c + 8 * i * cols);
        for (size_t j = 0; j < cols; j++) {
            int64_t be = (int64_t)((u[j] >> 52) & 0x7ff);
            int64_t halve = ((u[j] & 0xfffffffffffffULL) == 0) & (be > 1);
            int64_t e = (be == 0 ? 1 : be) - 1075 - halve;
            /* Below 2^-1022 the spacing is subnormal: scale in two steps. */
            double v = e >= -1022 ? k * pow2_normal(e) : k * pow2_normal(e + 64) * 0x1p-64;
            h[j] = be == 0x7ff ? 0.0 : v;
        }
    }
    }
}

/* Σ_j x[j]·y[j] (reassociated: the compiler's fixed vector order). */
static inline double dot(const double *x, const double *y, size_t n) {
#pragma clang fp reassociate(on)
    double s = 0;
    for (size_t j = 0; j < n; j++) s += x[j] * y[j];
    return s;
}

/* Projects x[j] (= A·Bᵀ of the row) into its rounding box, element by element, reading the
 * row's parent and child values straight from their bytes: a value outside its box (a miss) moves
 * to the box's centre. One loop per dtype so each vectorizes; the half-width is computed as
 * half_widths does. */
#define WL_PROJECT_ROW(TYPE, LOAD, BIASED, MANT_ZERO, EMAX, OFFSET)                                \
    do {                                                                                           \
        const TYPE *pr = (const TYPE *)(const void *)(parent + i * cols * sizeof(TYPE));           \
        const TYPE *cr = (const TYPE *)(const void *)(child + i * cols * sizeof(TYPE));            \
        for (size_t j = 0; j < cols; j++) {                                                        \
            TYPE pb = pr[j], cb = cr[j];                                                           \
            double pv = LOAD(pb), cv = LOAD(cb);                                                   \
            int64_t be = BIASED(cb);                                                               \
            int64_t halve = (MANT_ZERO(cb)) & (be > 1);                                            \
            double hw = k_half * pow2_normal((be == 0 ? 1 : be) - (OFFSET) - halve);               \
            double h = be == (EMAX) ? 0.0 : hw;                                                    \
            double v = x[j];                                                                       \
            double lo = cv - h - pv, hi = cv + h - pv, mid = 0.5 * (lo + hi);                      \
            int out = (v < lo) | (v > hi);                                                         \
            m += (size_t)out;                                                                      \
            x[j] = out ? mid : v;                                                                  \
        }                                                                                          \
    } while (0)

static inline double f32_bits_value(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static inline double bf16_bits_value(uint16_t u) { uint32_t w = (uint32_t)u << 16; float f; memcpy(&f, &w, 4); return f; }
#define F32_LOAD(b) f32_bits_value(b)
#define F32_BIASED(b) ((int64_t)(((b) >> 23) & 0xff))
#define F32_MZERO(b) (((b) & 0x7fffff) == 0)
#define BF16_LOAD(b) bf16_bits_value(b)
#define BF16_BIASED(b) ((int64_t)(((b) >> 7) & 0xff))
#define BF16_MZERO(b) (((b) & 0x7f) == 0)

WL_CLONES
size_t wl_lowrank_pass(const uint8_t *parent, const uint8_t *child, int dtype, size_t cols, size_t row0, size_t row1,
                       size_t rank, const double *a, const double *bt, const double *gram_b_inv, double *a_new, double *dta_t) {
    const double k_half = 0.5 - 0x1p-14;
    double *p = malloc(cols * sizeof(double)), *c = malloc(cols * sizeof(double));
    double *h = malloc(cols * sizeof(double)), *x = malloc(cols * sizeof(double));
    float *tmp = malloc(cols * sizeof(float));
    double db[64], an[64];
    if (!p || !c || !h || !x || !tmp || rank > 64) { free(p); free(c); free(h); free(x); free(tmp); abort(); }
    size_t misses = 0;
    for (size_t i = row0; i < row1; i++) {
        const double *ai = a + i * rank;
        for (size_t j = 0; j < cols; j++) x[j] = 0;
        for (size_t k = 0; k < rank; k++) {
            const double aik = ai[k], *bk = bt + k * cols;
            for (size_t j = 0; j < cols; j++) x[j] += aik * bk[j];
        }
        size_t m = 0;
        if (dtype == 1) {
            WL_PROJECT_ROW(uint32_t, F32_LOAD, F32_BIASED, F32_MZERO, 0xff, 150);
        } else if (dtype == 3) {
            WL_PROJECT_ROW(uint16_t, BF16_LOAD, BF16_BIASED, BF16_MZERO, 0xff, 134);
        } else {
            load_row(parent, i, cols, dtype, p, tmp);
            load_row(child, i, cols, dtype, c, tmp);
            half_widths(child, i, cols, dtype, h);
            for (size_t j = 0; j < cols; j++) {
                double v = x[j];
                double lo = c[j] - h[j] - p[j], hi = c[j] + h[j] - p[j], mid = 0.5 * (lo + hi);
                int out = (v < lo) | (v > hi);
                m += (size_t)out;
                x[j] = out ? mid : v;
            }
        }
        misses += m;
        if (!a_new) continue;
        /* a_new_i = (x_i . B) (B^T B)^-1, then dta += a_new_i^T x_i (rank, cols). */
        for (size_t k = 0; k < rank; k++) db[k] = dot(x, bt + k * cols, cols);
        for (size_t k = 0; k < rank; k++) {
            double s = 0;
            for (size_t q = 0; q < rank; q++) s += db[q] * gram_b_inv[q * rank + k];
            an[k] = s;
            a_new[i * rank + k] = s;
        }
        for (size_t k = 0; k < rank; k++) {
            const double ak = an[k];
            double *dk = dta_t + k * cols;
            for (size_t j = 0; j < cols; j++) dk[j] += ak * x[j];
        }
    }
    free(p); free(c); free(h); free(x); free(tmp);
    return misses;
}

/* One pass of the randomized range finder over ΔW = child − parent (rows row0..<row1, shape
 * (rows, cols)), a row at a time from the stored bytes: ΔW itself is never held in memory.
 *   mode 0: y[i, k] = ΔW_i · m[k, :]       (m = Ωᵀ: l × cols; y: rows × l)
 *           and the largest row ‖child_i‖² and Σ child² of the rows into stats[0], stats[1];
 *           each column's Σ child² of the rows added to col_squares[j] (when not NULL);
 *           returns Σ_i ‖ΔW_i‖²
 *   mode 1: out[k, :] += q[i, k] · ΔW_i   (q: rows × l; out: l × cols, this block's partial)
 *   mode 2: returns Σ_i ‖ΔW_i − q_i · m‖²  (m: l × cols)
 * Each row's sums are the same fixed-order vector sums whatever the row split. */
WL_CLONES
double wl_delta_range_pass(const uint8_t *parent, const uint8_t *child, int dtype, size_t cols, size_t row0, size_t row1,
                           size_t l, int mode, const double *q, const double *m, double *out, double *stats, double *col_squares) {
    double *p = malloc(cols * sizeof(double)), *c = malloc(cols * sizeof(double));
    float *tmp = malloc(cols * sizeof(float));
    if (!p || !c || !tmp) { free(p); free(c); free(tmp); abort(); }
    double total = 0, mx = 0, sq = 0;
    for (size_t i = row0; i < row1; i++) {
        load_row(parent, i, cols, dtype, p, tmp);
        load_row(child, i, cols, dtype, c, tmp);
        if (mode == 0) {
            for (size_t j = 0; j < cols; j++) p[j] = c[j] - p[j];
            if (col_squares)
                for (size_t j = 0; j < cols; j++) col_squares[j] += c[j] * c[j];
            double row = dot(c, c, cols);
            mx = row > mx ? row : mx;
            sq += row;
            total += dot(p, p, cols);
            for (size_t k = 0; k < l; k++) out[i * l + k] = dot(p, m + k * cols, cols);
        } else if (mode == 1) {
            for (size_t j = 0; j < cols; j++) p[j] = c[j] - p[j];
            for (size_t k = 0; k < l; k++) {
                const double qk = q[i * l + k];
                double *ok = out + k * cols;
                for (size_t j = 0; j < cols; j++) ok[j] += qk * p[j];
            }
        } else {
            for (size_t j = 0; j < cols; j++) p[j] = c[j] - p[j];
            for (size_t k = 0; k < l; k++) {
                const double qk = q[i * l + k], *mk = m + k * cols;
                for (size_t j = 0; j < cols; j++) p[j] -= qk * mk[j];
            }
            total += dot(p, p, cols);
        }
    }
    if (mode == 0 && stats) { stats[0] = mx; stats[1] = sq; }
    free(p); free(c); free(tmp);
    return total;
}
