#ifndef WLEDGER_BLASLOADER_H
#define WLEDGER_BLASLOADER_H

/// OpenBLAS (with its LAPACK), opened with dlopen on first use instead of linked: a process that
/// never multiplies a matrix (status, log, checkout) does not load it or start its threads, and
/// the kernel set can be chosen before the library's constructor runs (see LinAlg's BLASKernel).
/// Every wl_blas_* call below needs a successful wl_blas_open first; LinAlg guarantees that.

/// Opens libopenblas.so.0 (then libopenblas.so) and resolves every routine below. Returns 0, or
/// -1 with the reason in wl_blas_error(). Opening an open library does nothing.
int wl_blas_open(void);
/// wl_blas_open with `extra` ("NAME=VALUE" strings, NULL-terminated; names the environment does
/// not already have) added to the environment the library's constructor reads. No setenv: for
/// the duration of the open, `environ` points at a copy with the extra entries first, then back
/// at the original, so a thread reading the environment meanwhile sees one complete array or the
/// other (the copy and its strings are never freed, for that reason: a few hundred bytes).
int wl_blas_open_with(const char *const *extra);
/// Closes the library (OpenBLAS stops its threads), so the next open runs its constructor again.
void wl_blas_close(void);
/// dlerror's text for the last failed open, or "".
const char *wl_blas_error(void);

/// openblas_get_corename: the kernel set the library runs, e.g. "Cooperlake".
const char *wl_blas_corename(void);
int wl_blas_get_num_threads(void);
void wl_blas_set_num_threads(int n);

/// Row-major cblas_sgemm / cblas_dgemm / cblas_sgemv; `trans` flags are 0 or 1.
void wl_sgemm(int transA, int transB, int m, int n, int k, float alpha, const float *a, int lda, const float *b, int ldb,
              float beta, float *c, int ldc);
void wl_dgemm(int transA, int transB, int m, int n, int k, double alpha, const double *a, int lda, const double *b, int ldb,
              double beta, double *c, int ldc);
void wl_sgemv(int trans, int m, int n, float alpha, const float *a, int lda, const float *x, float beta, float *y);

/// LAPACK (column-major, Fortran conventions) with the character options passed by value.
void wl_dgesdd(char jobz, int m, int n, double *a, int lda, double *s, double *u, int ldu, double *vt, int ldvt,
               double *work, int lwork, int *iwork, int *info);
void wl_dposv(char uplo, int n, int nrhs, double *a, int lda, double *b, int ldb, int *info);
void wl_dgeqrf(int m, int n, double *a, int lda, double *tau, double *work, int lwork, int *info);
void wl_dorgqr(int m, int n, int k, double *a, int lda, double *tau, double *work, int lwork, int *info);

#endif
