import COpenBLAS

/// The one wrapper around OpenBLAS and LAPACK.
public enum BLAS {
    /// C = alpha·A·B + beta·C for row-major matrices: A is (m, k), B is (k, n), C is (m, n).
    ///
    /// The corresponding C function is `cblas_sgemm`.
    public static func sgemm(m: Int, n: Int, k: Int, alpha: Float = 1, a: UnsafePointer<Float>, b: UnsafePointer<Float>,
                             beta: Float = 0, c: UnsafeMutablePointer<Float>) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(m), Int32(n), Int32(k), alpha, a, Int32(k), b, Int32(n), beta, c, Int32(n))
    }

    /// Singular values (descending) of a row-major (m, n) matrix, in double precision.
    ///
    /// The corresponding C function is LAPACK's `dgesdd_` (jobz = "N"); the row-major input is
    /// passed as its column-major transpose, which has the same singular values.
    /// - Throws: `LinAlgError.lapack` when LAPACK reports failure.
    public static func singularValues(_ a: [Double], rows m: Int, cols n: Int) throws -> [Double] {
        precondition(a.count == m * n, "matrix size mismatch")
        if m == 0 || n == 0 { return [] }
        var work = a
        var M = Int32(n), N = Int32(m), lda = Int32(n)
        var s = [Double](repeating: 0, count: min(m, n))
        var ldu: Int32 = 1, ldvt: Int32 = 1
        var info: Int32 = 0
        var lwork: Int32 = -1
        var query = 0.0
        var iwork = [Int32](repeating: 0, count: 8 * min(m, n))
        var jobz = CChar(UInt8(ascii: "N"))
        var u = 0.0, vt = 0.0
        dgesdd_(&jobz, &M, &N, &work, &lda, &s, &u, &ldu, &vt, &ldvt, &query, &lwork, &iwork, &info, 1)
        guard info == 0 else { throw LinAlgError.lapack(routine: "dgesdd", info: Int(info)) }
        lwork = Int32(query)
        var buffer = [Double](repeating: 0, count: Int(lwork))
        dgesdd_(&jobz, &M, &N, &work, &lda, &s, &u, &ldu, &vt, &ldvt, &buffer, &lwork, &iwork, &info, 1)
        guard info == 0 else { throw LinAlgError.lapack(routine: "dgesdd", info: Int(info)) }
        return s
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
