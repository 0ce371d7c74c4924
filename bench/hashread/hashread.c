/* Microbenchmark behind the hashing's choice between the map and pread (Sources/CShims/hash_read.h):
 * XXH3-128 of a whole file, one thread, three ways, CPU time of the process (getrusage):
 *   map    - mmap the file and hash it in place (page faults map the page cache's folios)
 *   pread  - pread through a 256 KiB buffer and hash the buffer
 *   adapt  - wledger's kernel: per 2 MiB window, the map when one touch mapped half the window
 * Usage: hashread FILE map|pread|adapt   (prints "<mode> <cpu ms> <wall ms> [map/pread windows]") */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

static double ms(struct timeval t) { return t.tv_sec * 1e3 + t.tv_usec / 1e3; }
static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: hashread FILE map|pread|adapt\n"); return 2; }
    const char *mode = argv[2];
    struct rusage u0, u1;
    double t0 = now();
    getrusage(RUSAGE_SELF, &u0);
    int fd = open(argv[1], O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) { perror(argv[1]); return 1; }
    size_t size = (size_t)st.st_size, chunk = 256 * 1024, window = 2 * 1024 * 1024;
    unsigned char *map = strcmp(mode, "pread") ? mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0) : NULL;
    unsigned char *buf = malloc(chunk);
    int pagemap = open("/proc/self/pagemap", O_RDONLY);
    XXH3_state_t *s = XXH3_createState();
    XXH3_128bits_reset(s);
    long mapped = 0, read = 0;
    for (size_t o = 0; o < size;) {
        size_t n = strcmp(mode, "pread") ? window - ((uintptr_t)(map + o) % window) : chunk;
        if (n > size - o) n = size - o;
        int viaMap = !strcmp(mode, "map");
        if (!strcmp(mode, "adapt")) {
            volatile unsigned char touch = map[o];
            (void)touch;
            uintptr_t first = (uintptr_t)(map + o) / 4096, last = ((uintptr_t)(map + o) + n - 1) / 4096;
            uint64_t e[512];
            size_t pages = last - first + 1, present = 0;
            if (pread(pagemap, e, pages * 8, (off_t)(first * 8)) == (ssize_t)(pages * 8))
                for (size_t i = 0; i < pages; i++) present += e[i] >> 63;
            viaMap = present * 2 >= pages;
        }
        if (viaMap) {
            XXH3_128bits_update(s, map + o, n);
            mapped++;
        } else {
            for (size_t q = 0; q < n; q += chunk) {
                size_t m = n - q < chunk ? n - q : chunk;
                if (pread(fd, buf, m, (off_t)(o + q)) != (ssize_t)m) { perror("pread"); return 1; }
                XXH3_128bits_update(s, buf, m);
            }
            read++;
        }
        o += n;
    }
    XXH128_hash_t h = XXH3_128bits_digest(s);
    if (map) munmap(map, size);
    getrusage(RUSAGE_SELF, &u1);
    double cpu = ms(u1.ru_utime) - ms(u0.ru_utime) + ms(u1.ru_stime) - ms(u0.ru_stime);
    printf("%s %.1f %.1f %ld/%ld %016llx\n", mode, cpu, now() - t0, mapped, read, (unsigned long long)h.low64);
    return 0;
}
