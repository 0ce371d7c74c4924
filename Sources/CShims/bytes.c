#include "cshims.h"
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the patch formats are little-endian and these kernels copy integers in host order"
#endif
#include <string.h>
#include <math.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* Byte planes of 2- and 4-byte elements, 16 elements per step with SSE2 (x86-64's baseline):
 * unpacking interleaves planes, and packing the masked / shifted words separates them. The
 * scalar loops finish the tail and serve other sizes and targets. */
void wl_shuffle(const uint8_t *src, uint8_t *dst, size_t n, size_t elem) {
    if (elem == 1) { memcpy(dst, src, n); return; }
    size_t i = 0;
    if (elem == 2) {
        uint8_t *p0 = dst, *p1 = dst + n;
#if defined(__SSE2__)
        const __m128i lo = _mm_set1_epi16(0x00ff);
        for (; i + 16 <= n; i += 16) {
            __m128i a = _mm_loadu_si128((const __m128i *)(const void *)(src + 2 * i));
            __m128i b = _mm_loadu_si128((const __m128i *)(const void *)(src + 2 * i + 16));
            _mm_storeu_si128((__m128i *)(void *)(p0 + i), _mm_packus_epi16(_mm_and_si128(a, lo), _mm_and_si128(b, lo)));
            _mm_storeu_si128((__m128i *)(void *)(p1 + i), _mm_packus_epi16(_mm_srli_epi16(a, 8), _mm_srli_epi16(b, 8)));
        }
#endif
        for (; i < n; i++) { p0[i] = src[2 * i]; p1[i] = src[2 * i + 1]; }
        return;
    }
    if (elem == 4) {
        uint8_t *p0 = dst, *p1 = dst + n, *p2 = dst + 2 * n, *p3 = dst + 3 * n;
#if defined(__SSE2__)
        const __m128i lo8 = _mm_set1_epi16(0x00ff), lo16 = _mm_set1_epi32(0x0000ffff);
        for (; i + 16 <= n; i += 16) {
            __m128i v[4], even[2], odd[2];
            for (int k = 0; k < 4; k++) v[k] = _mm_loadu_si128((const __m128i *)(const void *)(src + 4 * i + 16 * k));
            /* Low and high 16 bits of each element (as unsigned 16-bit values, so packs does not saturate). */
            for (int k = 0; k < 2; k++) {
                __m128i l0 = _mm_and_si128(v[2 * k], lo16), l1 = _mm_and_si128(v[2 * k + 1], lo16);
                __m128i h0 = _mm_srli_epi32(v[2 * k], 16), h1 = _mm_srli_epi32(v[2 * k + 1], 16);
                /* _mm_packus_epi32 is SSE4.1: pack through signed 16-bit with a bias instead. */
                l0 = _mm_sub_epi32(l0, _mm_set1_epi32(0x8000)); l1 = _mm_sub_epi32(l1, _mm_set1_epi32(0x8000));
                h0 = _mm_sub_epi32(h0, _mm_set1_epi32(0x8000)); h1 = _mm_sub_epi32(h1, _mm_set1_epi32(0x8000));
                even[k] = _mm_xor_si128(_mm_packs_epi32(l0, l1), _mm_set1_epi16((short)0x8000));
                odd[k] = _mm_xor_si128(_mm_packs_epi32(h0, h1), _mm_set1_epi16((short)0x8000));
            }
            _mm_storeu_si128((__m128i *)(void *)(p0 + i), _mm_packus_epi16(_mm_and_si128(even[0], lo8), _mm_and_si128(even[1], lo8)));
            _mm_storeu_si128((__m128i *)(void *)(p1 + i), _mm_packus_epi16(_mm_srli_epi16(even[0], 8), _mm_srli_epi16(even[1], 8)));
            _mm_storeu_si128((__m128i *)(void *)(p2 + i), _mm_packus_epi16(_mm_and_si128(odd[0], lo8), _mm_and_si128(odd[1], lo8)));
            _mm_storeu_si128((__m128i *)(void *)(p3 + i), _mm_packus_epi16(_mm_srli_epi16(odd[0], 8), _mm_srli_epi16(odd[1], 8)));
        }
#endif
        for (; i < n; i++) {
            const uint8_t *s = src + 4 * i;
            p0[i] = s[0]; p1[i] = s[1]; p2[i] = s[2]; p3[i] = s[3];
        }
        return;
    }
    for (i = 0; i < n; i++)
        for (size_t p = 0; p < elem; p++) dst[p * n + i] = src[i * elem + p];
}

/* Byte p of elements k .. k+count-1, from src (one run of plane p), into dst (the elements).
 * Plane 0 comes first in a shuffled stream, so its pass writes whole elements (its byte, the rest
 * zero: no read of the fresh destination) and the later planes OR their bytes in. */
static void unshuffle_run(const uint8_t *src, size_t count, uint8_t *dst, size_t elem, size_t p) {
    size_t i = 0;
#if defined(__SSE2__)
    const __m128i z = _mm_setzero_si128();
    if (elem == 2) {
        for (; i + 16 <= count; i += 16) {
            __m128i a = _mm_loadu_si128((const __m128i *)(const void *)(src + i));
            __m128i lo = _mm_unpacklo_epi8(a, z), hi = _mm_unpackhi_epi8(a, z);
            __m128i *d = (__m128i *)(void *)(dst + 2 * i);
            if (p == 0) {
                _mm_storeu_si128(d, lo); _mm_storeu_si128(d + 1, hi);
            } else {
                _mm_storeu_si128(d, _mm_or_si128(_mm_loadu_si128(d), _mm_slli_epi16(lo, 8)));
                _mm_storeu_si128(d + 1, _mm_or_si128(_mm_loadu_si128(d + 1), _mm_slli_epi16(hi, 8)));
            }
        }
    } else if (elem == 4) {
        for (; i + 16 <= count; i += 16) {
            __m128i a = _mm_loadu_si128((const __m128i *)(const void *)(src + i));
            __m128i w0 = _mm_unpacklo_epi8(a, z), w1 = _mm_unpackhi_epi8(a, z);
            __m128i v[4] = { _mm_unpacklo_epi16(w0, z), _mm_unpackhi_epi16(w0, z), _mm_unpacklo_epi16(w1, z), _mm_unpackhi_epi16(w1, z) };
            __m128i *d = (__m128i *)(void *)(dst + 4 * i);
            for (int k = 0; k < 4; k++) {
                if (p == 0) { _mm_storeu_si128(d + k, v[k]); continue; }
                __m128i x = p == 1 ? _mm_slli_epi32(v[k], 8) : p == 2 ? _mm_slli_epi32(v[k], 16) : _mm_slli_epi32(v[k], 24);
                _mm_storeu_si128(d + k, _mm_or_si128(_mm_loadu_si128(d + k), x));
            }
        }
    }
#endif
    for (; i < count; i++) {
        uint8_t *e = dst + i * elem;
        if (p == 0) { memset(e + 1, 0, elem - 1); e[0] = src[i]; } else { e[p] = src[i]; }
    }
}

void wl_unshuffle_part(const uint8_t *src, size_t count, size_t start, uint8_t *dst, size_t n, size_t elem) {
    size_t planes = n * elem;
    while (count > 0) {
        if (start >= planes) { memcpy(dst + start, src, count); return; }   /* the trailing partial element */
        size_t p = start / n, k = start % n, run = n - k;
        if (run > count) run = count;
        if (run > planes - start) run = planes - start;
        unshuffle_run(src, run, dst + k * elem, elem, p);
        src += run; count -= run; start += run;
    }
}

void wl_unshuffle(const uint8_t *src, uint8_t *dst, size_t n, size_t elem) {
    if (elem == 1) { memcpy(dst, src, n); return; }
    size_t i = 0;
    if (elem == 2) {
        const uint8_t *p0 = src, *p1 = src + n;
#if defined(__SSE2__)
        for (; i + 16 <= n; i += 16) {
            __m128i a = _mm_loadu_si128((const __m128i *)(const void *)(p0 + i)), b = _mm_loadu_si128((const __m128i *)(const void *)(p1 + i));
            _mm_storeu_si128((__m128i *)(void *)(dst + 2 * i), _mm_unpacklo_epi8(a, b));
            _mm_storeu_si128((__m128i *)(void *)(dst + 2 * i + 16), _mm_unpackhi_epi8(a, b));
        }
#endif
        for (; i < n; i++) { dst[2 * i] = p0[i]; dst[2 * i + 1] = p1[i]; }
        return;
    }
    if (elem == 4) {
        const uint8_t *p0 = src, *p1 = src + n, *p2 = src + 2 * n, *p3 = src + 3 * n;
#if defined(__SSE2__)
        for (; i + 16 <= n; i += 16) {
            __m128i a = _mm_loadu_si128((const __m128i *)(const void *)(p0 + i)), b = _mm_loadu_si128((const __m128i *)(const void *)(p1 + i));
            __m128i c = _mm_loadu_si128((const __m128i *)(const void *)(p2 + i)), d = _mm_loadu_si128((const __m128i *)(const void *)(p3 + i));
            __m128i ab0 = _mm_unpacklo_epi8(a, b), ab1 = _mm_unpackhi_epi8(a, b);
            __m128i cd0 = _mm_unpacklo_epi8(c, d), cd1 = _mm_unpackhi_epi8(c, d);
            _mm_storeu_si128((__m128i *)(void *)(dst + 4 * i), _mm_unpacklo_epi16(ab0, cd0));
            _mm_storeu_si128((__m128i *)(void *)(dst + 4 * i + 16), _mm_unpackhi_epi16(ab0, cd0));
            _mm_storeu_si128((__m128i *)(void *)(dst + 4 * i + 32), _mm_unpacklo_epi16(ab1, cd1));
            _mm_storeu_si128((__m128i *)(void *)(dst + 4 * i + 48), _mm_unpackhi_epi16(ab1, cd1));
        }
#endif
        for (; i < n; i++) {
            uint8_t *d = dst + 4 * i;
            d[0] = p0[i]; d[1] = p1[i]; d[2] = p2[i]; d[3] = p3[i];
        }
        return;
    }
    for (i = 0; i < n; i++)
        for (size_t p = 0; p < elem; p++) dst[i * elem + p] = src[p * n + i];
}

/* dst may be a: every element is read before it is written. Inlined into both entry points, so
   the compiler sees when dst is a and vectorizes without an overlap check. */
static inline size_t xor_count(const uint8_t *a, const uint8_t *b, uint8_t *dst, size_t bytes, size_t elem) {
    size_t count = 0;
    if (elem == 4) {
        size_t n = bytes / 4;
        const uint32_t *x = (const uint32_t *)a, *y = (const uint32_t *)b;
        uint32_t *d = (uint32_t *)dst;
        for (size_t i = 0; i < n; i++) {
            uint32_t v; uint32_t u;
            memcpy(&v, x + i, 4); memcpy(&u, y + i, 4);
            v ^= u;
            memcpy(d + i, &v, 4);
            count += (v != 0);
        }
        return count;
    }
    if (elem == 2) {
        size_t n = bytes / 2;
        for (size_t i = 0; i < n; i++) {
            uint16_t v, u;
            memcpy(&v, a + 2 * i, 2); memcpy(&u, b + 2 * i, 2);
            v ^= u;
            memcpy(dst + 2 * i, &v, 2);
            count += (v != 0);
        }
        return count;
    }
    size_t n = bytes / elem;
    for (size_t i = 0; i < n; i++) {
        uint8_t any = 0;
        for (size_t p = 0; p < elem; p++) {
            uint8_t v = a[i * elem + p] ^ b[i * elem + p];
            dst[i * elem + p] = v;
            any |= v;
        }
        count += (any != 0);
    }
    return count;
}

size_t wl_xor_count(const uint8_t *a, const uint8_t *b, uint8_t *dst, size_t bytes, size_t elem) {
    return xor_count(a, b, dst, bytes, elem);
}

size_t wl_xor_count_inplace(uint8_t *dst, const uint8_t *b, size_t bytes, size_t elem) {
    return xor_count(dst, b, dst, bytes, elem);
}

void wl_xor_inplace(uint8_t *dst, const uint8_t *x, size_t bytes) {
    size_t i = 0;
    for (; i + 8 <= bytes; i += 8) {
        uint64_t u, v;
        memcpy(&u, dst + i, 8); memcpy(&v, x + i, 8);
        u ^= v;
        memcpy(dst + i, &u, 8);
    }
    for (; i < bytes; i++) dst[i] ^= x[i];
}

size_t wl_count_diff(const uint8_t *a, const uint8_t *b, size_t bytes, size_t elem) {
    size_t count = 0, n = bytes / elem;
    if (elem == 4) {
        for (size_t i = 0; i < n; i++) {
            uint32_t u, v;
            memcpy(&u, a + 4 * i, 4); memcpy(&v, b + 4 * i, 4);
            count += (u != v);
        }
        return count;
    }
    if (elem == 2) {
        for (size_t i = 0; i < n; i++) {
            uint16_t u, v;
            memcpy(&u, a + 2 * i, 2); memcpy(&v, b + 2 * i, 2);
            count += (u != v);
        }
        return count;
    }
    for (size_t i = 0; i < n; i++) count += memcmp(a + i * elem, b + i * elem, elem) != 0;
    return count;
}

/* Eight partial sums per quantity (lane j takes the elements i with i mod 8 = j), added in lane
 * order at the end: eight independent chains instead of one, so the loop runs at vector speed,
 * and the sums are the same on every machine (the order is fixed, not the compiler's). */
void wl_delta_stats_f32(const float *a, const float *b, size_t n, wl_delta_stats *s) {
    enum { L = 8 };
    uint64_t changed[L] = {0}, nonfinite[L] = {0};
    double l1[L] = {0}, sq[L] = {0}, mx[L] = {0}, bsq[L] = {0};
    const uint32_t *ab = (const uint32_t *)a, *bb = (const uint32_t *)b;
    size_t i = 0;
    for (; i + L <= n; i += L) {
        for (int j = 0; j < L; j++) {
            double x = a[i + j], y = b[i + j];
            double d = y - x, ad = fabs(d);
            changed[j] += ab[i + j] != bb[i + j];
            nonfinite[j] += (bb[i + j] & 0x7F800000u) == 0x7F800000u;
            l1[j] += ad;
            sq[j] += d * d;
            mx[j] = ad > mx[j] ? ad : mx[j];
            bsq[j] += x * x;
        }
    }
    for (int j = 0; i < n; i++, j++) {
        double x = a[i], y = b[i];
        double d = y - x, ad = fabs(d);
        changed[j] += ab[i] != bb[i];
        nonfinite[j] += (bb[i] & 0x7F800000u) == 0x7F800000u;
        l1[j] += ad;
        sq[j] += d * d;
        mx[j] = ad > mx[j] ? ad : mx[j];
        bsq[j] += x * x;
    }
    double total_l1 = 0, total_sq = 0, total_bsq = 0, m = s->max_abs;
    for (int j = 0; j < L; j++) {
        s->changed += changed[j];
        s->nonfinite += nonfinite[j];
        total_l1 += l1[j];
        total_sq += sq[j];
        total_bsq += bsq[j];
        m = mx[j] > m ? mx[j] : m;
    }
    s->l1 += total_l1;
    s->sum_sq += total_sq;
    s->max_abs = m;
    s->base_sum_sq += total_bsq;
}

size_t wl_count_nonfinite_f32(const float *x, size_t n) {
    size_t c = 0;
    const uint32_t *b = (const uint32_t *)x;
    for (size_t i = 0; i < n; i++) c += (b[i] & 0x7F800000u) == 0x7F800000u;
    return c;
}

/* Stores gap d as the k-th little-endian integer of `width` (4 or 8) bytes. */
static inline void put_gap(uint8_t *idx, size_t k, int width, uint64_t d) {
    if (width == 4) {
        uint32_t d32 = (uint32_t)d;
        memcpy(idx + 4 * k, &d32, 4);
    } else {
        memcpy(idx + 8 * k, &d, 8);
    }
}

#define SPARSE_GATHER_TYPED(T)                                                                          \
    do {                                                                                                \
        const T *xs = (const T *)(const void *)x, *cs = (const T *)(const void *)child;                 \
        T *xv = (T *)(void *)xor_values, *cv = (T *)(void *)child_values;                               \
        for (size_t i = 0; i < n; i++) {                                                                \
            T v;                                                                                        \
            memcpy(&v, xs + i, sizeof(T));                                                              \
            size_t nz = v != 0;                                                                         \
            put_gap(idx, k, width, (uint64_t)i - prev);                                                 \
            memcpy(xv + k, &v, sizeof(T));                                                              \
            memcpy(cv + k, cs + i, sizeof(T));                                                          \
            prev = nz ? (uint64_t)i : prev;                                                             \
            k += nz;                                                                                    \
        }                                                                                               \
    } while (0)

size_t wl_sparse_gather(const uint8_t *x, const uint8_t *child, size_t n, size_t elem, int width, uint8_t *idx,
                        uint8_t *xor_values, uint8_t *child_values) {
    // Positions are stored as gaps from the previous changed element; the first gap is from 0,
    // i.e. the first position itself.
    size_t k = 0;
    uint64_t prev = 0;
    if (elem == 2 || elem == 4) {
        // Branchless: every element is written at slot k and kept by advancing k when it changed,
        // so each output needs one slot more than the count (the caller allocates it).
        if (elem == 2) SPARSE_GATHER_TYPED(uint16_t);
        else SPARSE_GATHER_TYPED(uint32_t);
        return k;
    }
    for (size_t i = 0; i < n; i++) {
        const uint8_t *e = x + i * elem;
        uint8_t any = 0;
        for (size_t p = 0; p < elem; p++) any |= e[p];
        if (!any) continue;
        put_gap(idx, k, width, (uint64_t)i - prev);
        prev = i;
        memcpy(xor_values + k * elem, e, elem);
        memcpy(child_values + k * elem, child + i * elem, elem);
        k++;
    }
    return k;
}

int wl_sparse_positions(const uint8_t *idx, int width, size_t changed, size_t count, uint64_t *pos) {
    uint64_t position = 0;
    for (size_t k = 0; k < changed; k++) {
        uint64_t d;
        if (width == 4) { uint32_t v; memcpy(&v, idx + 4 * k, 4); d = v; } else { memcpy(&d, idx + 8 * k, 8); }
        /* Positions start at the first delta and strictly increase, all below `count`. */
        if ((k > 0 && d == 0) || (uint64_t)count == 0 || d > (uint64_t)count - 1 - position) return -1;
        position += d;
        pos[k] = position;
    }
    return 0;
}

void wl_sparse_apply_at(uint8_t *out, size_t elem, const uint64_t *pos, const uint8_t *values, size_t n, int xor_mode) {
    for (size_t k = 0; k < n; k++) {
        uint8_t *dst = out + (size_t)pos[k] * elem;
        const uint8_t *src = values + k * elem;
        if (!xor_mode) {
            memcpy(dst, src, elem);
        } else if (elem == 4) {
            uint32_t a, b; memcpy(&a, dst, 4); memcpy(&b, src, 4); a ^= b; memcpy(dst, &a, 4);
        } else if (elem == 2) {
            uint16_t a, b; memcpy(&a, dst, 2); memcpy(&b, src, 2); a ^= b; memcpy(dst, &a, 2);
        } else {
            for (size_t b = 0; b < elem; b++) dst[b] ^= src[b];
        }
    }
}
