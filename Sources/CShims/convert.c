#include "cshims.h"
#include <string.h>
#include <math.h>
#include <immintrin.h>

static int wl_has_f16c(void) {
    static int cached = -1;
    if (cached < 0) {
        __builtin_cpu_init();
        cached = __builtin_cpu_supports("f16c") && __builtin_cpu_supports("avx2");
    }
    return cached;
}

static float half_to_float_scalar(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1F;
    uint32_t mant = h & 0x3FF;
    uint32_t bits;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else { /* subnormal: normalise */
            int e = -1;
            do { e++; mant <<= 1; } while ((mant & 0x400) == 0);
            mant &= 0x3FF;
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | (mant << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7F800000u | (mant << 13);
    } else {
        bits = sign | ((exp + 112) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static uint16_t float_to_half_scalar(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t absx = x & 0x7FFFFFFFu;
    if (absx >= 0x7F800000u) { /* Inf or NaN */
        uint32_t mant = absx > 0x7F800000u ? (0x200 | ((absx >> 13) & 0x3FF)) : 0;
        return (uint16_t)(sign | 0x7C00 | mant);
    }
    if (absx >= 0x477FF000u) return (uint16_t)(sign | 0x7C00); /* overflow after rounding */
    if (absx < 0x38800000u) { /* subnormal or zero in half */
        if (absx < 0x33000000u) return (uint16_t)sign; /* rounds to zero (<= 2^-25) */
        uint32_t e = absx >> 23;
        uint32_t m = (absx & 0x7FFFFF) | 0x800000;
        uint32_t shift = 126 - e; /* value / 2^-24 = m * 2^(e - 126) */
        uint32_t r = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1);
        uint32_t half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1))) r++;
        return (uint16_t)(sign | r);
    }
    uint32_t r = absx - 0x38000000u; /* rebias exponent 127 → 15 */
    uint32_t lsb = (r >> 13) & 1;
    r += 0x0FFF + lsb;
    return (uint16_t)(sign | (r >> 13));
}

__attribute__((target("f16c,avx2")))
static void f16_to_f32_f16c(const uint16_t *src, float *dst, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm_loadu_si128((const __m128i *)(src + i));
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
    }
    for (; i < n; i++) dst[i] = half_to_float_scalar(src[i]);
}

__attribute__((target("f16c,avx2")))
static void f32_to_f16_f16c(const float *src, uint16_t *dst, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 f = _mm256_loadu_ps(src + i);
        _mm_storeu_si128((__m128i *)(dst + i), _mm256_cvtps_ph(f, _MM_FROUND_TO_NEAREST_INT));
    }
    for (; i < n; i++) dst[i] = float_to_half_scalar(src[i]);
}

void wl_f16_to_f32(const uint16_t *src, float *dst, size_t n) {
    if (wl_has_f16c()) { f16_to_f32_f16c(src, dst, n); return; }
    for (size_t i = 0; i < n; i++) dst[i] = half_to_float_scalar(src[i]);
}

void wl_f32_to_f16(const float *src, uint16_t *dst, size_t n) {
    if (wl_has_f16c()) { f32_to_f16_f16c(src, dst, n); return; }
    for (size_t i = 0; i < n; i++) dst[i] = float_to_half_scalar(src[i]);
}

void wl_bf16_to_f32(const uint16_t *src, float *dst, size_t n) {
    uint32_t *out = (uint32_t *)dst;
    for (size_t i = 0; i < n; i++) out[i] = (uint32_t)src[i] << 16;
}

void wl_f32_to_bf16(const float *src, uint16_t *dst, size_t n) {
    const uint32_t *in = (const uint32_t *)src;
    for (size_t i = 0; i < n; i++) {
        uint32_t b = in[i];
        if ((b & 0x7FFFFFFFu) > 0x7F800000u) { /* NaN: keep sign, force quiet bit */
            dst[i] = (uint16_t)((b >> 16) | 0x0040);
        } else {
            b += 0x7FFFu + ((b >> 16) & 1u);
            dst[i] = (uint16_t)(b >> 16);
        }
    }
}
