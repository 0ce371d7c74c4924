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

/* SIGBUS: a read through a map past the end of a file that shrank since it was mapped (another
 * program rewrote it in place). The maps are registered with their paths so the handler can say
 * which file; it only reads the table (async-signal-safe) and exits. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>

#define WL_MAPS 512
static struct {
    _Atomic(uintptr_t) start;
    _Atomic(size_t) length;
    char path[1024];
} wl_maps[WL_MAPS];
static pthread_mutex_t wl_maps_lock = PTHREAD_MUTEX_INITIALIZER;

void wl_register_map(const void *start, size_t length, const char *path) {
    pthread_mutex_lock(&wl_maps_lock);
    for (int i = 0; i < WL_MAPS; i++) {
        if (atomic_load(&wl_maps[i].start) != 0) continue;
        strncpy(wl_maps[i].path, path, sizeof wl_maps[i].path - 1);
        wl_maps[i].path[sizeof wl_maps[i].path - 1] = 0;
        atomic_store(&wl_maps[i].length, length);
        atomic_store(&wl_maps[i].start, (uintptr_t)start);
        break;
    }
    pthread_mutex_unlock(&wl_maps_lock);
}

void wl_unregister_map(const void *start) {
    pthread_mutex_lock(&wl_maps_lock);
    for (int i = 0; i < WL_MAPS; i++) {
        if (atomic_load(&wl_maps[i].start) == (uintptr_t)start) { atomic_store(&wl_maps[i].start, 0); break; }
    }
    pthread_mutex_unlock(&wl_maps_lock);
}

static void wl_say(const char *s) { (void)!write(2, s, strlen(s)); }

static void wl_on_sigbus(int sig, siginfo_t *info, void *context) {
    (void)sig; (void)context;
    uintptr_t a = (uintptr_t)info->si_addr;
    for (int i = 0; i < WL_MAPS; i++) {
        uintptr_t s = atomic_load(&wl_maps[i].start);
        size_t n = atomic_load(&wl_maps[i].length);
        if (s != 0 && a >= s && a - s < n) {
            wl_say("error: '");
            wl_say(wl_maps[i].path);
            wl_say("' shrank while wledger read it (another program rewrote it in place, or the disk failed to read it); run the command again once it is written\n");
            _exit(2);
        }
    }
    wl_say("error: bus error (SIGBUS) reading a mapped file: it shrank, or the disk failed to read it; run the command again\n");
    _exit(2);
}

uint8_t wl_read_byte(const void *p) { return *(const volatile uint8_t *)p; }

void wl_exit_on_sigbus(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = wl_on_sigbus;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, NULL);
}
