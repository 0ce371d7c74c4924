// Vectorizable exp-based row kernels for the engine (softmax rows, SwiGLU). The bodies are
// plain loops written so compilers vectorize them; each is compiled twice, for AVX-512 and for
// the baseline, and the AVX-512 copy is chosen at run time when the CPU has it.
#include "cshims.h"
#include <stdint.h>
#include <string.h>

// exp(x) for x in [-87, 88] (clamped), Cephes' single-precision polynomial: about 1 ulp
// from the correctly rounded value over that range.
static inline float wl_exp(float x) {
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    float fx = x * 1.44269504088896341f + 0.5f;
    float n = __builtin_floorf(fx);
    x = x - n * 0.693359375f - n * -2.12194440e-4f;
    float z = x * x;
    float y = ((((1.9875691500e-4f * x + 1.3981999507e-3f) * x + 8.3334519073e-3f) * x + 4.1665795894e-2f) * x
               + 1.6666665459e-1f) * x + 5.0000001201e-1f;
    y = y * z + x + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return y * scale;
}

#define LANES 16

#define DEFINE_KERNELS(SUFFIX, ATTR)                                                             \
    ATTR static float max_##SUFFIX(const float *x, long n) {                                     \
        float acc[LANES];                                                                        \
        for (int j = 0; j < LANES; j++) acc[j] = -__builtin_inff();                               \
        long i = 0;                                                                              \
        for (; i + LANES <= n; i += LANES)                                                       \
            for (int j = 0; j < LANES; j++) acc[j] = acc[j] > x[i + j] ? acc[j] : x[i + j];     \
        float m = -__builtin_inff();                                                             \
        for (int j = 0; j < LANES; j++) m = m > acc[j] ? m : acc[j];                             \
        for (; i < n; i++) m = m > x[i] ? m : x[i];                                              \
        return m;                                                                                \
    }                                                                                            \
    ATTR static float expsum_##SUFFIX(float *x, long n, float m) {                               \
        float acc[LANES] = {0};                                                                  \
        long i = 0;                                                                              \
        for (; i + LANES <= n; i += LANES)                                                       \
            for (int j = 0; j < LANES; j++) {                                                    \
                float e = wl_exp(x[i + j] - m);                                                  \
                x[i + j] = e;                                                                    \
                acc[j] += e;                                                                     \
            }                                                                                    \
        float s = 0;                                                                             \
        for (int j = 0; j < LANES; j++) s += acc[j];                                             \
        for (; i < n; i++) {                                                                     \
            x[i] = wl_exp(x[i] - m);                                                             \
            s += x[i];                                                                           \
        }                                                                                        \
        return s;                                                                                \
    }                                                                                            \
    ATTR static void scale_##SUFFIX(float *x, long n, float a) {                                 \
        for (long i = 0; i < n; i++) x[i] *= a;                                                  \
    }                                                                                            \
    ATTR static void silu_mul_##SUFFIX(float *gate, const float *up, long n) {                   \
        for (long i = 0; i < n; i++) {                                                           \
            float z = gate[i];                                                                   \
            gate[i] = z / (1.0f + wl_exp(-z)) * up[i];                                           \
        }                                                                                        \
    }

DEFINE_KERNELS(base, )
DEFINE_KERNELS(avx512, __attribute__((target("avx512f,avx512dq,avx512vl"))))

static int wl_has_avx512(void) {
    static int cached = -1;
    if (cached < 0) {
        __builtin_cpu_init();
        cached = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
    }
    return cached;
}

float wl_max_f32(const float *x, long n) { return wl_has_avx512() ? max_avx512(x, n) : max_base(x, n); }
float wl_expsum_f32(float *x, long n, float m) { return wl_has_avx512() ? expsum_avx512(x, n, m) : expsum_base(x, n, m); }
void wl_scale_f32(float *x, long n, float a) { if (wl_has_avx512()) scale_avx512(x, n, a); else scale_base(x, n, a); }
void wl_silu_mul_f32(float *gate, const float *up, long n) {
    if (wl_has_avx512()) silu_mul_avx512(gate, up, n); else silu_mul_base(gate, up, n);
}
float wl_exp_f32(float x) { return wl_exp(x); }
