#ifndef WLEDGER_CSHIMS_H
#define WLEDGER_CSHIMS_H

#include <stddef.h>
#include <stdint.h>

/// IEEE half → float, n elements. Uses F16C when the CPU has it, else a portable path.
void wl_f16_to_f32(const uint16_t *src, float *dst, size_t n);
/// float → IEEE half with round-to-nearest-even, n elements (F16C when available).
void wl_f32_to_f16(const float *src, uint16_t *dst, size_t n);
/// bfloat16 → float (exact), n elements.
void wl_bf16_to_f32(const uint16_t *src, float *dst, size_t n);
/// float → bfloat16 with round-to-nearest-even; NaN stays a quiet NaN.
void wl_f32_to_bf16(const float *src, uint16_t *dst, size_t n);

/// Byte-plane shuffle: element i byte p → dst[p*n + i]. `elem` in 1...16.
void wl_shuffle(const uint8_t *src, uint8_t *dst, size_t n, size_t elem);
/// Inverse of wl_shuffle.
void wl_unshuffle(const uint8_t *src, uint8_t *dst, size_t n, size_t elem);
/// Bytes [start, start + count) of a buffer that wl_shuffle made from n elements of elem bytes
/// (followed by a trailing partial element's bytes), written to their places in dst: a
/// shuffled stream unshuffled as it is decoded, front to back. Plane 0's bytes write whole
/// elements (the other bytes zero) and later planes' bytes are ORed in, so the pieces must
/// come in order (each element's plane 0 before its other planes).
void wl_unshuffle_part(const uint8_t *src, size_t count, size_t start, uint8_t *dst, size_t n, size_t elem);

/// dst[i] = a[i] ^ b[i] over `bytes` bytes; returns the number of elements of size `elem` whose
/// bytes differ (elem in {1,2,4,8} or any size ≥ 1).
size_t wl_xor_count(const uint8_t *a, const uint8_t *b, uint8_t *dst, size_t bytes, size_t elem);
/// wl_xor_count with dst = a: dst[i] ^= b[i], returning the number of elements now non-zero.
size_t wl_xor_count_inplace(uint8_t *dst, const uint8_t *b, size_t bytes, size_t elem);
/// dst[i] ^= x[i] over `bytes` bytes.
void wl_xor_inplace(uint8_t *dst, const uint8_t *x, size_t bytes);

/// Decodes `changed` delta-coded positions of a sparse patch (`idx`, little-endian, `width` 4 or 8
/// bytes each; the first is absolute, the rest strictly positive) into absolute positions `pos`.
/// Returns 0, or -1 at the first position that is out of range (≥ `count`) or not increasing.
int wl_sparse_positions(const uint8_t *idx, int width, size_t changed, size_t count, uint64_t *pos);

/// Applies `n` sparse changes at the absolute element positions `pos` (validated) of `out`
/// (elements of `elem` bytes): `values` holds the new bytes (`xor_mode` 0) or the bits to flip (1).
void wl_sparse_apply_at(uint8_t *out, size_t elem, const uint64_t *pos, const uint8_t *values, size_t n, int xor_mode);

/// Number of elements (of size `elem`) whose bytes differ between a and b.
size_t wl_count_diff(const uint8_t *a, const uint8_t *b, size_t bytes, size_t elem);

/// Statistics of d = b - a computed in double for float arrays.
typedef struct {
    uint64_t changed;      ///< elements with a[i] != b[i] as bits
    double l1;             ///< Σ|d|
    double sum_sq;         ///< Σ d²
    double max_abs;        ///< max |d|
    double base_sum_sq;    ///< Σ a²
    uint64_t nonfinite;    ///< elements of b that are NaN or ±Inf
} wl_delta_stats;

/// Accumulates statistics of b − a (float32 inputs, double accumulation) into *s.
void wl_delta_stats_f32(const float *a, const float *b, size_t n, wl_delta_stats *s);

/// Number of non-finite values (NaN, ±Inf) in a float array.
size_t wl_count_nonfinite_f32(const float *x, size_t n);

/// One pass over x = parent XOR child (n elements of `elem` bytes) for a sparse patch: for each
/// element whose bytes are not all zero, appends its position to idx delta-coded (the first
/// absolute, then the gap from the previous one) as a little-endian integer of `width` (4 or 8)
/// bytes, its XOR bytes to xor_values and the child's bytes to child_values. Returns how many
/// elements it found; every output needs room for that many plus one (for 2- and 4-byte
/// elements the loop is branchless and writes one slot past the last kept element).
size_t wl_sparse_gather(const uint8_t *x, const uint8_t *child, size_t n, size_t elem, int width, uint8_t *idx,
                        uint8_t *xor_values, uint8_t *child_values);

/// Low-rank prediction used by the low-rank patch encoding: for a (rows, cols) tensor,
/// out[i,j] = round_dtype(parent[i,j] + sum_k a[i*rank+k] * b[j*rank+k]), with the sum taken in
/// double in fixed k order and no FMA contraction, so every machine rebuilds the same bits.
/// dtype: 1 = F32, 2 = F16, 3 = BF16, 4 = F64. `out` may be `parent` (each row is read whole
/// before it is written).
void wl_lowrank_predict(const uint8_t *parent, uint8_t *out, int dtype, size_t rows, size_t cols,
                        size_t rank, const double *a, const double *b);
/// `wl_lowrank_predict` for rows [row0, row1) only (same bits; for splitting across threads).
void wl_lowrank_predict_rows(const uint8_t *parent, uint8_t *out, int dtype, size_t row0, size_t row1, size_t cols,
                             size_t rank, const double *a, const double *b);
/// `b` (cols, rank) row-major transposed into `bt` (rank, cols) row-major.
void wl_lowrank_transpose(const double *b, size_t cols, size_t rank, double *bt);
/// `wl_lowrank_predict_rows` with b already transposed (`wl_lowrank_transpose`), for callers
/// that predict many row ranges with the same factors.
void wl_lowrank_predict_rows_bt(const uint8_t *parent, uint8_t *out, int dtype, size_t row0, size_t row1, size_t cols,
                                size_t rank, const double *a, const double *bt);
/// One pass of the randomized range finder over ΔW = child − parent, rows [row0, row1), a row at
/// a time (mode 0: y = ΔW·mᵀ, and into stats the largest row ‖child_i‖² and Σchild², and, when
/// col_squares is not NULL, each column's Σchild² of these rows added to col_squares[j];
/// mode 1: out += qᵀ·ΔW; mode 2: returns ‖ΔW − q·m‖²). See lowrank.c.
double wl_delta_range_pass(const uint8_t *parent, const uint8_t *child, int dtype, size_t cols, size_t row0, size_t row1,
                           size_t l, int mode, const double *q, const double *m, double *out, double *stats, double *col_squares);

/// One round of the low-rank encoder's alternating projection over rows [row0, row1) of a
/// (rows, cols) tensor: X = A·Bᵀ, each element counted as a miss when outside its rounding box
/// [child − h − parent, child + h − parent] (h just under half the child's spacing) and moved
/// to the box's centre; then, when a_new is not NULL,
/// a_new_i = (X_i·B)·gram_b_inv and dta_t += a_new_iᵀ·X_i. Layouts: a and a_new (rows, rank),
/// bt = Bᵀ and dta_t = (XᵀA_new)ᵀ (rank, cols), gram_b_inv (rank, rank), all row-major.
/// Returns the misses of (A, B) in these rows. rank ≤ 64.
size_t wl_lowrank_pass(const uint8_t *parent, const uint8_t *child, int dtype, size_t cols, size_t row0, size_t row1,
                       size_t rank, const double *a, const double *bt, const double *gram_b_inv, double *a_new, double *dta_t);

/// Whether `wl_xxh3_128_avx2` may run on this CPU.
int wl_xxh3_avx2_available(void);
/// XXH3-128 of n bytes (the AVX2 build of the reference implementation).
void wl_xxh3_128_avx2(const void *data, size_t n, uint64_t *high, uint64_t *low);
/// XXH3-128 of the n bytes of file `fd` at `offset` (the same hash as of those bytes in memory).
/// Each 2 MiB window of the address space is read through `map` (the whole file mapped, or NULL)
/// when touching its first byte mapped at least half of its pages (a large page-cache folio;
/// `pagemap` is an open /proc/self/pagemap, or −1), else with pread through a 256 KiB buffer.
/// Returns 0, an errno, −1 when the file ends before offset + n, or −2 when `stop` (may be NULL)
/// was found nonzero before a window or buffer was read.
int wl_xxh3_128_read(int fd, const void *map, int pagemap, int64_t offset, size_t n, const int *stop, uint64_t *high,
                     uint64_t *low);
/// `wl_xxh3_128_read` with the AVX2 build; only where `wl_xxh3_avx2_available`.
int wl_xxh3_128_read_avx2(int fd, const void *map, int pagemap, int64_t offset, size_t n, const int *stop, uint64_t *high,
                          uint64_t *low);
/// Atomic (relaxed) store of a stop flag read by `wl_xxh3_128_read`.
void wl_set_flag(int *flag, int value);

// Engine row kernels (vmath.c). exp is Cephes' polynomial on [-87, 88] (inputs clamped).
/// max of x[0..<n] (−inf for n = 0).
float wl_max_f32(const float *x, long n);
/// x[i] = exp(x[i] − m) for i < n; returns the sum of the new values.
float wl_expsum_f32(float *x, long n, float m);
/// x[i] *= a.
void wl_scale_f32(float *x, long n, float a);
/// gate[i] = silu(gate[i]) · up[i] = gate[i] / (1 + exp(−gate[i])) · up[i].
void wl_silu_mul_f32(float *gate, const float *up, long n);
/// The scalar exp the kernels use (for tests).
float wl_exp_f32(float x);

/// Has glibc keep freed memory for reuse in this process (mallopt: no mmap per allocation, one
/// arena, no trimming); call before other threads start. Returns 1 when every option was taken.
int wl_keep_freed_memory(void);

/// Copies `len` bytes from fd_in at off_in to fd_out at off_out inside the kernel
/// (copy_file_range(2)). Returns 0, or the errno of
/// the failing call (EXDEV, EINVAL, EOPNOTSUPP, ENOSYS: not supported here), or -1 when the
/// source ended early.
int wl_copy_range(int fd_in, int64_t off_in, int fd_out, int64_t off_out, size_t len);

/// Starts writeback of a written range (sync_file_range SYNC_FILE_RANGE_WRITE), so the disk works
/// while the rest is still being produced; no durability guarantee (fsync still does that).
void wl_start_writeback(int fd, int64_t off, int64_t len);

/// Records a file map (its path) for the SIGBUS handler of `wl_exit_on_sigbus`.
void wl_register_map(const void *start, size_t length, const char *path);
/// Forgets a map recorded by `wl_register_map` (before it is unmapped).
void wl_unregister_map(const void *start);
/// Installs a SIGBUS handler that exits with status 2 after one line on stderr naming the
/// registered file whose map was read past its (shrunk) end; for the CLI.
void wl_exit_on_sigbus(void);
/// One byte read through a volatile pointer (a read the compiler keeps, for fault injection).
uint8_t wl_read_byte(const void *p);

#endif
