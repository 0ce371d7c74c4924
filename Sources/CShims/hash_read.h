/* The body of wl_xxh3_128_read, compiled twice (xxh_fast.c with AVX2, hash_read.c for any
 * x86-64 or other CPU) against an XXH_INLINE_ALL xxhash.h. Not a public header. */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

/* Bytes are read with pread through a buffer of this size (it stays in L2, so the hash reads
 * it from cache) wherever the page cache holds the file in small folios: copying them out costs
 * less than faulting them into a map one 64 KiB fault-around window at a time (538 MB: ≈ 28
 * against ≈ 42 CPU-ms here, XXH3 included). Where it holds 2 MiB folios, one fault maps a whole
 * folio and hashing through the map is cheaper (≈ 20 CPU-ms). */
#define WL_HASH_READ_BUFFER (256 * 1024)
#define WL_HASH_WINDOW (2 * 1024 * 1024)
#define WL_PAGE 4096

/* Whether the window [p, p + n) (inside one 2 MiB-aligned window of the address space) is
 * better hashed through the map: touch its first byte, then count (/proc/self/pagemap, present
 * bit) how many of its pages that one fault mapped; at least half means a large folio. */
static int wl_window_is_mapped_cheaply(const unsigned char *p, size_t n, int pagemap) {
    volatile unsigned char touch = *p;
    (void)touch;
    uintptr_t first = (uintptr_t)p / WL_PAGE, last = ((uintptr_t)p + n - 1) / WL_PAGE;
    size_t pages = (size_t)(last - first + 1);
    uint64_t entries[WL_HASH_WINDOW / WL_PAGE];
    if (pages > sizeof entries / sizeof entries[0]) return 0;
    ssize_t got = pread(pagemap, entries, pages * sizeof entries[0], (off_t)(first * sizeof entries[0]));
    if (got != (ssize_t)(pages * sizeof entries[0])) return 0;
    size_t present = 0;
    for (size_t i = 0; i < pages; i++) present += (size_t)(entries[i] >> 63);
    return present * 2 >= pages;
}

static int wl_hash_read_body(int fd, const unsigned char *map, int pagemap, int64_t offset, size_t n, const int *stop,
                             uint64_t *high, uint64_t *low) {
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
        /* The rest of the current 2 MiB window of the file's address space (of the file when
         * there is no map). */
        uintptr_t at = map ? (uintptr_t)(map + offset + done) : (uintptr_t)(offset + done);
        size_t window = WL_HASH_WINDOW - (size_t)(at % WL_HASH_WINDOW);
        if (window > n - done) window = n - done;
        if (map && pagemap >= 0 && wl_window_is_mapped_cheaply(map + offset + done, window, pagemap)) {
            XXH3_128bits_update(&state, map + offset + done, window);
            done += window;
            continue;
        }
        size_t end = done + window;
        while (done < end) {
            size_t want = end - done < WL_HASH_READ_BUFFER ? end - done : WL_HASH_READ_BUFFER;
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
    }
    free(buffer);
    XXH128_hash_t h = XXH3_128bits_digest(&state);
    *high = h.high64;
    *low = h.low64;
    return 0;
}
