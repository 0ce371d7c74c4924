/* The body of wl_xxh3_128_read, compiled twice (xxh_fast.c with AVX2, hash_read.c for any
 * x86-64 or other CPU) against an XXH_INLINE_ALL xxhash.h. Not a public header. */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

/* Read through a buffer of this size: it stays in L2, so the hash reads it from cache; the
 * copy out of the page cache costs less than faulting the same pages into a map (538 MB:
 * ≈ 28 against ≈ 42 CPU-ms here, XXH3 included). */
#define WL_HASH_READ_BUFFER (256 * 1024)

static int wl_hash_read_body(int fd, int64_t offset, size_t n, const int *stop, uint64_t *high, uint64_t *low) {
    XXH3_state_t state;
    if (XXH3_128bits_reset(&state) != XXH_OK) return EINVAL;
    unsigned char *buffer = NULL;
    if (n > 0) {
        buffer = malloc(n < WL_HASH_READ_BUFFER ? n : WL_HASH_READ_BUFFER);
        if (!buffer) return ENOMEM;
    }
    size_t done = 0;
    while (done < n) {
        if (stop && __atomic_load_n(stop, __ATOMIC_RELAXED)) {
            free(buffer);
            return -2;
        }
        size_t want = n - done < WL_HASH_READ_BUFFER ? n - done : WL_HASH_READ_BUFFER;
        size_t have = 0;
        while (have < want) {
            ssize_t got = pread(fd, buffer + have, want - have, (off_t)(offset + (int64_t)(done + have)));
            if (got < 0 && errno == EINTR) continue;
            if (got <= 0) {
                int code = got < 0 ? errno : -1;
                free(buffer);
                return code;
            }
            have += (size_t)got;
        }
        XXH3_128bits_update(&state, buffer, want);
        done += want;
    }
    free(buffer);
    XXH128_hash_t h = XXH3_128bits_digest(&state);
    *high = h.high64;
    *low = h.low64;
    return 0;
}
