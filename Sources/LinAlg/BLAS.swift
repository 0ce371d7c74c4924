import CBLASLoader

/// The one wrapper around OpenBLAS and LAPACK. Matrices are row-major; LAPACK (column-major) is
/// handed the transpose where that gives the answer directly, as documented per routine.
///
/// The library is opened by the first call here (`BLASKernel.load`), not at process start.
public enum BLAS {
    /// C = alpha·A·B + beta·C for row-major matrices: A is (m, k), B is (k, n), C is (m, n).
    ///
    /// The corresponding C function is `cblas_sgemm`.
    public static func sgemm(m: Int, n: Int, k: Int, alpha: Float = 1, a: UnsafePointer<Float>, b: UnsafePointer<Float>,
                             beta: Float = 0, c: UnsafeMutablePointer<Float>) {
        BLASKernel.load()
        wl_sgemm(0, 0, Int32(m), Int32(n), Int32(k), alpha, a, Int32(k), b, Int32(n), beta, c, Int32(n))
    }

    /// C = alpha·op(A)·op(B) + beta·C for row-major matrices with explicit leading dimensions
    /// (row strides): op(A) is (m, k), op(B) is (k, n), C is (m, n). A stored untransposed is
    /// (m, k) with stride `lda`; transposed it is stored (k, m). Likewise B: (k, n) or (n, k).
    ///
    /// The corresponding C function is `cblas_sgemm`.
    public static func sgemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                             a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                             beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        if m == 0 || n == 0 { return }
        BLASKernel.load()
        wl_sgemm(transA ? 1 : 0, transB ? 1 : 0, Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// y = alpha·op(A)·x + beta·y for a row-major A of (m, n) with row stride `lda`: untransposed,
    /// x has n entries and y has m; transposed (Aᵀ·x), x has m entries and y has n.
    ///
    /// For a single vector this is several times faster than `sgemm` with m = 1.
    /// The corresponding C function is `cblas_sgemv`.
    public static func sgemv(trans: Bool, m: Int, n: Int, alpha: Float, a: UnsafePointer<Float>, lda: Int,
                             x: UnsafePointer<Float>, beta: Float, y: UnsafeMutablePointer<Float>) {
        if m == 0 || n == 0 { return }
        BLASKernel.load()
        wl_sgemv(trans ? 1 : 0, Int32(m), Int32(n), alpha, a, Int32(lda), x, beta, y)
    }

    /// The most threads wledger asks OpenBLAS for (`--threads`, `health.threads`); OpenBLAS
    /// itself caps the count at the threads it was built for.
    public static let maxThreads = 1024

    /// Sets how many threads OpenBLAS uses for every later call in this process (a setting of the
    /// C library, shared by all callers).
    ///
    /// The corresponding C function is `openblas_set_num_threads`.
    public static func setThreadCount(_ count: Int) {
        precondition(count >= 1, "thread count must be positive")
        BLASKernel.load()
        wl_blas_set_num_threads(Int32(min(count, maxThreads)))
    }

    /// How many threads OpenBLAS currently uses.
    ///
    /// The corresponding C function is `openblas_get_num_threads`.
    public static var threadCount: Int {
        BLASKernel.load()
        return Int(wl_blas_get_num_threads())
    }

    /// op(A)·op(B) in double, row-major; `transA`/`transB` transpose the operands.
    ///
    /// The corresponding C function is `cblas_dgemm`.
    public static func multiply(_ a: Matrix, _ b: Matrix, transA: Bool = false, transB: Bool = false) -> Matrix {
        let m = transA ? a.cols : a.rows, k = transA ? a.rows : a.cols
        let kb = transB ? b.cols : b.rows, n = transB ? b.rows : b.cols
        precondition(k == kb, "inner dimensions differ: \(k) vs \(kb)")
        var c = Matrix(zeros: m, n)
        if m == 0 || n == 0 || k == 0 { return c }
        BLASKernel.load()
        a.data.withUnsafeBufferPointer { ap in
            b.data.withUnsafeBufferPointer { bp in
                c.data.withUnsafeMutableBufferPointer { cp in
                    wl_dgemm(transA ? 1 : 0, transB ? 1 : 0, Int32(m), Int32(n), Int32(k), 1, ap.baseAddress, Int32(a.cols),
                             bp.baseAddress, Int32(b.cols), 0, cp.baseAddress, Int32(n))
                }
            }
        }
        return c
    }

    /// Singular values (descending) of a row-major (m, n) matrix, in double precision.
    ///
    /// The corresponding C function is LAPACK's `dgesdd` (jobz = "N"); the row-major input is
    /// passed as its column-major transpose, which has the same singular values.
    /// - Throws: `LinAlgError.lapack` when LAPACK reports failure.
    public static func singularValues(_ a: [Double], rows m: Int, cols n: Int) throws -> [Double] {
        precondition(a.count == m * n, "matrix size mismatch")
        if m == 0 || n == 0 { return [] }
        return try gesdd(a, rows: m, cols: n, vectors: false).s
    }

    /// Thin SVD A = U·diag(s)·Vt of a row-major (m, n) matrix: U is (m, k), Vt is (k, n), k = min(m, n).
    ///
    /// The corresponding C function is LAPACK's `dgesdd` (jobz = "S") on the column-major view
    /// Aᵀ = V·S·Uᵀ: LAPACK's column-major U of Aᵀ read row-major is our Vt, and its VT is our U.
    public static func svd(_ a: Matrix) throws -> (u: Matrix, s: [Double], vt: Matrix) {
        let r = try gesdd(a.data, rows: a.rows, cols: a.cols, vectors: true)
        let k = min(a.rows, a.cols)
        return (Matrix(rows: a.rows, cols: k, data: r.vtT), r.s, Matrix(rows: k, cols: a.cols, data: r.uT))
    }

    private static func gesdd(_ a: [Double], rows m: Int, cols n: Int, vectors: Bool) throws -> (s: [Double], uT: [Double], vtT: [Double]) {
        var work = a
        // Column-major view of the row-major input is Aᵀ: M = n rows, N = m columns.
        let M = Int32(n), N = Int32(m), lda = Int32(n)
        let k = min(m, n)
        var s = [Double](repeating: 0, count: k)
        var uT = [Double](repeating: 0, count: vectors ? n * k : 1)
        var vtT = [Double](repeating: 0, count: vectors ? k * m : 1)
        let ldu = Int32(vectors ? n : 1), ldvt = Int32(vectors ? k : 1)
        var info: Int32 = 0
        var lwork: Int32 = -1
        var query = 0.0
        var iwork = [Int32](repeating: 0, count: 8 * k)
        let jobz = CChar(UInt8(ascii: vectors ? "S" : "N"))
        BLASKernel.load()
        wl_dgesdd(jobz, M, N, &work, lda, &s, &uT, ldu, &vtT, ldvt, &query, lwork, &iwork, &info)
        guard info == 0 else { throw LinAlgError.lapack(routine: "dgesdd", info: Int(info)) }
        lwork = Int32(query)
        var buffer = [Double](repeating: 0, count: Int(lwork))
        wl_dgesdd(jobz, M, N, &work, lda, &s, &uT, ldu, &vtT, ldvt, &buffer, lwork, &iwork, &info)
        guard info == 0 else { throw LinAlgError.lapack(routine: "dgesdd", info: Int(info)) }
        return (s, uT, vtT)
    }

    /// Solves A·X = B for a symmetric positive definite (n, n) matrix A and a row-major (n, k)
    /// right-hand side B, by Cholesky factorization.
    ///
    /// The corresponding C function is LAPACK's `dposv` (uplo = "L"); A is symmetric, so its
    /// row-major and column-major views agree, and B is passed as its column-major copy.
    /// - Throws: `LinAlgError.lapack` when A is not positive definite (info > 0) or the call fails.
    public static func solvePositiveDefinite(_ a: Matrix, _ b: Matrix) throws -> Matrix {
        precondition(a.rows == a.cols && b.rows == a.rows, "solve: A is \(a.rows)×\(a.cols), B is \(b.rows)×\(b.cols)")
        if b.cols == 0 || a.rows == 0 { return b }
        var factor = a.data
        var rhs = b.transposed.data  // row-major (k, n) = column-major (n, k)
        var info: Int32 = 0
        BLASKernel.load()
        wl_dposv(CChar(UInt8(ascii: "L")), Int32(a.rows), Int32(b.cols), &factor, Int32(a.rows), &rhs, Int32(a.rows), &info)
        guard info == 0 else { throw LinAlgError.lapack(routine: "dposv", info: Int(info)) }
        return Matrix(rows: b.cols, cols: b.rows, data: rhs).transposed
    }

    /// Orthonormal basis Q (m, k) of the columns of a row-major (m, k) matrix, k ≤ m.
    ///
    /// The corresponding C functions are LAPACK's `dgeqrf` and `dorgqr` (on a column-major copy).
    public static func orthonormalColumns(_ y: Matrix) throws -> Matrix {
        let m = y.rows, k = y.cols
        precondition(k <= m, "more columns than rows")
        if k == 0 { return y }
        var a = y.transposed.data  // row-major (k, m) = column-major (m, k)
        let M = Int32(m), N = Int32(k), K = Int32(k), lda = Int32(m)
        var tau = [Double](repeating: 0, count: k)
        var info: Int32 = 0
        var lwork: Int32 = -1
        var query = 0.0
        BLASKernel.load()
        wl_dgeqrf(M, N, &a, lda, &tau, &query, lwork, &info)
        guard info == 0 else { throw LinAlgError.lapack(routine: "dgeqrf", info: Int(info)) }
        lwork = Int32(query)
        var buffer = [Double](repeating: 0, count: max(1, Int(lwork)))
        wl_dgeqrf(M, N, &a, lda, &tau, &buffer, lwork, &info)
        guard info == 0 else { throw LinAlgError.lapack(routine: "dgeqrf", info: Int(info)) }
        lwork = -1
        wl_dorgqr(M, N, K, &a, lda, &tau, &query, lwork, &info)
        guard info == 0 else { throw LinAlgError.lapack(routine: "dorgqr", info: Int(info)) }
        lwork = Int32(query)
        buffer = [Double](repeating: 0, count: max(1, Int(lwork)))
        wl_dorgqr(M, N, K, &a, lda, &tau, &buffer, lwork, &info)
        guard info == 0 else { throw LinAlgError.lapack(routine: "dorgqr", info: Int(info)) }
        return Matrix(rows: k, cols: m, data: a).transposed
    }
}

/// Errors from numerical routines.
public enum LinAlgError: Error, CustomStringConvertible {
    case lapack(routine: String, info: Int)

    public var description: String {
        switch self {
        case let .lapack(routine, info): return "LAPACK \(routine) failed (info \(info))"
        }
    }
}
