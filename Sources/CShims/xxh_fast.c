/* XXH3-128 compiled here with AVX2 (the distribution's libxxhash is built for baseline x86-64,
 * SSE2): the same function, so the same hashes, at about twice the speed. Used only after a
 * run-time check that the CPU has AVX2. */
#if defined(__x86_64__) && defined(__clang__)
#include <immintrin.h>
#pragma clang attribute push(__attribute__((target("avx2"))), apply_to = function)
#define XXH_INLINE_ALL
#define XXH_VECTOR XXH_AVX2
#include <xxhash.h>
#include "hash_read.h"
#pragma clang attribute pop
#include "cshims.h"

int wl_xxh3_avx2_available(void) { return __builtin_cpu_supports("avx2"); }

void wl_xxh3_128_avx2(const void *data, size_t n, uint64_t *high, uint64_t *low) {
    XXH128_hash_t h = XXH3_128bits(data, n);
    *high = h.high64;
    *low = h.low64;
}

int wl_xxh3_128_read_avx2(int fd, const void *map, int pagemap, int64_t offset, size_t n, const int *stop, uint64_t *high,
                          uint64_t *low) {
    return wl_hash_read_body(fd, map, pagemap, offset, n, stop, high, low);
}
#else
#include "cshims.h"
#include <stdlib.h>
int wl_xxh3_avx2_available(void) { return 0; }
void wl_xxh3_128_avx2(const void *data, size_t n, uint64_t *high, uint64_t *low) { (void)data; (void)n; (void)high; (void)low; abort(); }
int wl_xxh3_128_read_avx2(int fd, const void *map, int pagemap, int64_t offset, size_t n, const int *stop, uint64_t *high,
                          uint64_t *low) {
    (void)fd; (void)map; (void)pagemap; (void)offset; (void)n; (void)stop; (void)high; (void)low; abort();
}
#endif
