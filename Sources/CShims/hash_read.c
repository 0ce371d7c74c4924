/* wl_xxh3_128_read for CPUs without AVX2 (xxh_fast.c has the AVX2 build). */
#define XXH_INLINE_ALL
#include <xxhash.h>
#include "cshims.h"
#include "hash_read.h"

int wl_xxh3_128_read(int fd, const void *map, int pagemap, int64_t offset, size_t n, const int *stop, uint64_t *high,
                     uint64_t *low) {
    return wl_hash_read_body(fd, map, pagemap, offset, n, stop, high, low);
}

void wl_set_flag(int *flag, int value) { __atomic_store_n(flag, value, __ATOMIC_RELAXED); }
