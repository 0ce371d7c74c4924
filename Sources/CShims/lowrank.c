#pragma STDC FP_CONTRACT OFF
#include "cshims.h"
#include <string.h>
#include <stdlib.h>

static double load_value(const uint8_t *p, size_t i, int dtype) {
    switch (dtype) {
    case 1: { float f; memcpy(&f, p + 4 * i, 4); return f; }
    case 2: { uint16_t h; float f; memcpy(&h, p + 2 * i, 2); wl_f16_to_f32(&h, &f, 1); return f; }
    case 3: { uint16_t h; memcpy(&h, p + 2 * i, 2); uint32_t u = (uint32_t)h << 16; float f; memcpy(&f, &u, 4); return f; }
    default: { double d; memcpy(&d, p + 8 * i, 8); return d; }
    }
}

void wl_lowrank_predict(const uint8_t *parent, uint8_t *out, int dtype, size_t rows, size_t cols,
                        size_t rank, const double *a, const double *b) {
    double *acc = malloc(cols * sizeof(double));
    float *f32 = malloc(cols * sizeof(float));
    if (!acc || !f32) { free(acc); free(f32); abort(); }
    for (size_t i = 0; i < rows; i++) {
        for (size_t j = 0; j < cols; j++) acc[j] = load_value(parent, i * cols + j, dtype);
        /* Sum the rank terms separately, then add to the parent value: fixed order. */
        for (size_t j = 0; j < cols; j++) {
            double d = 0.0;
            const double *ai = a + i * rank, *bj = b + j * rank;
            for (size_t k = 0; k < rank; k++) d += ai[k] * bj[k];
            acc[j] = acc[j] + d;
        }
        size_t base = i * cols;
        switch (dtype) {
        case 1:
            for (size_t j = 0; j < cols; j++) { float f = (float)acc[j]; memcpy(out + 4 * (base + j), &f, 4); }
            break;
        case 2:
            for (size_t j = 0; j < cols; j++) f32[j] = (float)acc[j];
            wl_f32_to_f16(f32, (uint16_t *)(void *)(out + 2 * base), cols);
            break;
        case 3:
            for (size_t j = 0; j < cols; j++) f32[j] = (float)acc[j];
            wl_f32_to_bf16(f32, (uint16_t *)(void *)(out + 2 * base), cols);
            break;
        default:
            memcpy(out + 8 * base, acc, cols * sizeof(double));
        }
    }
    free(acc);
    free(f32);
}
