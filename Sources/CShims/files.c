#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <unistd.h>

#include "cshims.h"

int wl_copy_range(int fd_in, int64_t off_in, int fd_out, int64_t off_out, size_t len) {
    off64_t a = off_in, b = off_out;
    while (len > 0) {
        size_t step = len > ((size_t)1 << 30) ? ((size_t)1 << 30) : len;
        ssize_t n = copy_file_range(fd_in, &a, fd_out, &b, step, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        if (n == 0) return -1;  /* the source ended before `len` bytes */
        len -= (size_t)n;
    }
    return 0;
}

#include <fcntl.h>

void wl_start_writeback(int fd, int64_t off, int64_t len) {
    /* Only a hint that starts writeback early; the caller's fsync still decides durability. */
    (void)sync_file_range(fd, (off64_t)off, (off64_t)len, SYNC_FILE_RANGE_WRITE);
}

int wl_keep_freed_memory(void) {
    /* Every allocation from the brk heap (no per-allocation mmap), one arena, never trimmed. */
    int ok = mallopt(M_MMAP_MAX, 0);
    ok &= mallopt(M_TRIM_THRESHOLD, INT_MAX);
    ok &= mallopt(M_ARENA_MAX, 1);
    /* The heap grows 64 MiB past each request: a buffer advised MADV_HUGEPAGE then lies in 2 MiB
     * regions that the heap covers whole, where the kernel can map huge pages; at the heap's end a
     * region still partly outside it would take small pages, and keep them for the next buffer. */
    ok &= mallopt(M_TOP_PAD, 64 << 20);
    return ok;
}
