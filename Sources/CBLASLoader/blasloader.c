// OpenBLAS through dlopen. The prototypes come from the system's CBLAS and LAPACK headers
// (cblas.h, lapack.h), so every resolved pointer has exactly the declared type; the three
// OpenBLAS extensions are declared here as OpenBLAS's cblas.h declares them, so this compiles
// whichever BLAS provides /usr/include's cblas.h.
#include <dlfcn.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cblas.h>
#include <lapack.h>
#include "blasloader.h"

char *openblas_get_corename(void);
int openblas_get_num_threads(void);
void openblas_set_num_threads(int num_threads);

static void *library;
static char error_text[512];

static __typeof__(&cblas_sgemm) p_sgemm;
static __typeof__(&cblas_dgemm) p_dgemm;
static __typeof__(&cblas_sgemv) p_sgemv;
static __typeof__(&openblas_get_corename) p_corename;
static __typeof__(&openblas_get_num_threads) p_get_threads;
static __typeof__(&openblas_set_num_threads) p_set_threads;
static __typeof__(&LAPACK_dgesdd_base) p_dgesdd;
static __typeof__(&LAPACK_dposv_base) p_dposv;
static __typeof__(&LAPACK_dgeqrf) p_dgeqrf;
static __typeof__(&LAPACK_dorgqr) p_dorgqr;

static void remember(const char *what) {
    const char *e = dlerror();
    size_t i = 0;
    for (const char *p = what; *p && i + 1 < sizeof error_text; p++) error_text[i++] = *p;
    for (const char *p = e ? e : "unknown error"; *p && i + 1 < sizeof error_text; p++) error_text[i++] = *p;
    error_text[i] = 0;
}

#define RESOLVE(ptr, name)                                      \
    do {                                                        \
        *(void **)(&ptr) = dlsym(library, name);                \
        if (!ptr) { remember("dlsym " name ": "); goto fail; }  \
    } while (0)

int wl_blas_open(void) {
    if (library) return 0;
    library = dlopen("libopenblas.so.0", RTLD_LAZY | RTLD_LOCAL);
    if (!library) library = dlopen("libopenblas.so", RTLD_LAZY | RTLD_LOCAL);
    if (!library) { remember(""); return -1; }
    RESOLVE(p_sgemm, "cblas_sgemm");
    RESOLVE(p_dgemm, "cblas_dgemm");
    RESOLVE(p_sgemv, "cblas_sgemv");
    RESOLVE(p_corename, "openblas_get_corename");
    RESOLVE(p_get_threads, "openblas_get_num_threads");
    RESOLVE(p_set_threads, "openblas_set_num_threads");
    RESOLVE(p_dgesdd, "dgesdd_");
    RESOLVE(p_dposv, "dposv_");
    RESOLVE(p_dgeqrf, "dgeqrf_");
    RESOLVE(p_dorgqr, "dorgqr_");
    error_text[0] = 0;
    return 0;
fail:
    dlclose(library);
    library = NULL;
    return -1;
}

extern char **environ;

int wl_blas_open_with(const char *const *extra) {
    size_t n = 0, k = 0;
    while (environ && environ[n]) n++;
    while (extra && extra[k]) k++;
    if (k == 0) return wl_blas_open();
    char **copy = malloc((n + k + 1) * sizeof *copy);
    if (!copy) { remember("out of memory: "); return -1; }
    size_t m = 0;
    for (size_t i = 0; i < k; i++) {
        if (!(copy[m++] = strdup(extra[i]))) { remember("out of memory: "); return -1; }
    }
    for (size_t i = 0; i < n; i++) copy[m++] = environ[i];
    copy[m] = NULL;
    char **saved = environ;
    __atomic_store_n(&environ, copy, __ATOMIC_SEQ_CST);
    int status = wl_blas_open();
    __atomic_store_n(&environ, saved, __ATOMIC_SEQ_CST);
    return status;
}

void wl_blas_close(void) {
    if (library) dlclose(library);
    library = NULL;
}

const char *wl_blas_error(void) { return error_text; }
const char *wl_blas_corename(void) { return p_corename(); }
int wl_blas_get_num_threads(void) { return p_get_threads(); }
void wl_blas_set_num_threads(int n) { p_set_threads(n); }

void wl_sgemm(int transA, int transB, int m, int n, int k, float alpha, const float *a, int lda, const float *b, int ldb,
              float beta, float *c, int ldc) {
    p_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb,
            beta, c, ldc);
}

void wl_dgemm(int transA, int transB, int m, int n, int k, double alpha, const double *a, int lda, const double *b, int ldb,
              double beta, double *c, int ldc) {
    p_dgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb,
            beta, c, ldc);
}

void wl_sgemv(int trans, int m, int n, float alpha, const float *a, int lda, const float *x, float beta, float *y) {
    p_sgemv(CblasRowMajor, trans ? CblasTrans : CblasNoTrans, m, n, alpha, a, lda, x, 1, beta, y, 1);
}

// The Fortran routines take a hidden length for each character argument (1 here).
void wl_dgesdd(char jobz, int m, int n, double *a, int lda, double *s, double *u, int ldu, double *vt, int ldvt,
               double *work, int lwork, int *iwork, int *info) {
    p_dgesdd(&jobz, &m, &n, a, &lda, s, u, &ldu, vt, &ldvt, work, &lwork, iwork, info
#ifdef LAPACK_FORTRAN_STRLEN_END
             , 1
#endif
    );
}

void wl_dposv(char uplo, int n, int nrhs, double *a, int lda, double *b, int ldb, int *info) {
    p_dposv(&uplo, &n, &nrhs, a, &lda, b, &ldb, info
#ifdef LAPACK_FORTRAN_STRLEN_END
            , 1
#endif
    );
}

void wl_dgeqrf(int m, int n, double *a, int lda, double *tau, double *work, int lwork, int *info) {
    p_dgeqrf(&m, &n, a, &lda, tau, work, &lwork, info);
}

void wl_dorgqr(int m, int n, int k, double *a, int lda, double *tau, double *work, int lwork, int *info) {
    p_dorgqr(&m, &n, &k, a, &lda, tau, work, &lwork, info);
}
