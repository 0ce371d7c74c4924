/* Microbenchmark behind the hashing's choice between the map and pread: XXH3-128 of a whole
 * file, one thread, CPU time of the process (getrusage):
 *   map    - mmap the file and hash it in place (page faults map the page cache's folios)
 *   pread  - wledger's kernel with no map: pread through its 256 KiB buffer
 *   adapt  - wledger's kernel as `commit` and `status` run it: per 2 MiB window, the map when one
 *            touch mapped at least half the window, else pread
 * The two last are Sources/CShims/hash_read.h itself, built as xxh_fast.c builds it (AVX2).
 * Usage: hashread FILE map|pread|adapt   (prints "<mode> <cpu ms> <wall ms> <low 64 bits>") */
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
#define XXH_VECTOR XXH_AVX2
#include <xxhash.h>
#include "../../Sources/CShims/hash_read.h"

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
    size_t size = (size_t)st.st_size;
    unsigned char *map = strcmp(mode, "pread") ? mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0) : NULL;
    uint64_t high = 0, low = 0;
    if (!strcmp(mode, "map")) {
        XXH128_hash_t h = XXH3_128bits(map, size);
        high = h.high64, low = h.low64;
    } else {
        int pagemap = map ? open("/proc/self/pagemap", O_RDONLY) : -1;
        int code = wl_hash_read_body(fd, map, pagemap, 0, size, NULL, &high, &low);
        if (code != 0) { fprintf(stderr, "%s: read failed (%d)\n", argv[1], code); return 1; }
    }
    if (map) munmap(map, size);
    getrusage(RUSAGE_SELF, &u1);
    double cpu = ms(u1.ru_utime) - ms(u0.ru_utime) + ms(u1.ru_stime) - ms(u0.ru_stime);
    printf("%s %.1f %.1f %016llx\n", mode, cpu, now() - t0, (unsigned long long)low);
    return 0;
}
