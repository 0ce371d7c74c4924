/* First touch of fresh anonymous memory (analysis of the commit target, BENCHMARKS.md):
 *   cc -O2 -o /tmp/freshmem bench/freshmem.c && /tmp/freshmem 512 0 && /tmp/freshmem 512 1
 * maps MB megabytes, optionally advises MADV_HUGEPAGE, writes one byte per 4 KiB page (the first
 * touch: the kernel's fault and zeroing, and on a VM whose free memory was handed back to the host,
 * the host's fault too), then writes the whole buffer again (memory already in place). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: freshmem MB HUGE(0|1)\n"); return 2; }
    size_t n = (size_t)atol(argv[1]) << 20;
    int huge = atoi(argv[2]);
    double t0 = now();
    char *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) { perror("mmap"); return 1; }
    if (huge) madvise(p, n, MADV_HUGEPAGE);
    for (size_t i = 0; i < n; i += 4096) p[i] = 1;
    double t1 = now();
    memset(p, 2, n);
    double t2 = now();
    printf("%zu MB huge=%d first touch %.1f ms (%.2f us per 4 KiB), second pass %.1f ms\n", n >> 20, huge, (t1 - t0) * 1e3,
           (t1 - t0) * 1e6 / (double)(n / 4096), (t2 - t1) * 1e3);
    return 0;
}
