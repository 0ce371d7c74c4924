/// A truncated SVD A ≈ U·diag(s)·Vt with the Frobenius norm of what it leaves out.
public struct TruncatedSVD: Sendable {
    /// (m, r) with orthonormal columns.
    public var u: Matrix
    /// r singular values, descending.
    public var s: [Double]
    /// (r, n) with orthonormal rows.
    public var vt: Matrix
    /// ‖A − U·diag(s)·Vt‖F (0 for a full SVD).
    public var residual: Double
    /// "randomized" (range finder) or "full" (LAPACK dgesdd of the whole matrix).
    public var method: String
    /// Columns the range finder sampled in its last round (0 for full).
    public var sampled: Int
}

extension BLAS {
    /// SVD of a numerically low-rank matrix without a full decomposition.
    ///
    /// Randomized range finder: Y = A·Ω with ℓ Gaussian columns, Q = orth(Y), B = Qᵀ·A, SVD of the
    /// small B. The residual ‖A − Q·B‖F is computed explicitly; if it exceeds `tolerance`, ℓ
    /// doubles, and once ℓ would pass min(m, n)/2 the full `dgesdd` SVD is used instead. So the
    /// result always satisfies ‖A − U·S·Vt‖F ≤ tolerance (or is exact).
    /// - Parameters:
    ///   - initialRank: first ℓ (default 16).
    ///   - forceFull: skip the fast path (for benchmarks and tests).
    public static func lowRankSVD(_ a: Matrix, tolerance: Double, initialRank: Int = 16, forceFull: Bool = false,
                                  seed: UInt64 = 0x5EED) throws -> TruncatedSVD {
        let m = a.rows, n = a.cols, k = min(m, n)
        if k == 0 || a.data.allSatisfy({ $0 == 0 }) {
            return TruncatedSVD(u: Matrix(zeros: m, 0), s: [], vt: Matrix(zeros: 0, n), residual: 0, method: "randomized", sampled: 0)
        }
        var l = min(max(initialRank, 1), k)
        while !forceFull && l <= max(k / 2, 1) {
            let omega = Matrix.gaussian(rows: n, cols: l, seed: seed &+ UInt64(l))
            let y = multiply(a, omega)
            let q = try orthonormalColumns(y)
            let b = multiply(q, a, transA: true)                     // (l, n)
            var r = a
            let qb = multiply(q, b)
            for i in 0..<r.data.count { r.data[i] -= qb.data[i] }
            let residual = r.frobeniusNorm
            if residual <= tolerance {
                let small = try svd(b)                                // b = Ub·S·Vt
                let u = multiply(q, small.u)                          // (m, l)
                return TruncatedSVD(u: u, s: small.s, vt: small.vt, residual: residual, method: "randomized", sampled: l)
            }
            if l == k { break }
            l = min(2 * l, k)
        }
        let full = try svd(a)
        return TruncatedSVD(u: full.u, s: full.s, vt: full.vt, residual: 0, method: "full", sampled: 0)
    }
}

extension BLAS {
    /// A low-rank approximation with ‖A − U·S·Vt‖F ≤ tolerance found by the range finder with at
    /// most `maxSampled` columns, or nil when A is not that low-rank (no full SVD is attempted).
    public static func lowRankApproximation(_ a: Matrix, tolerance: Double, maxSampled: Int, seed: UInt64 = 0x5EED) throws -> TruncatedSVD? {
        let k = min(a.rows, a.cols)
        guard k > 0 else { return nil }
        var l = min(8, k)
        while l <= min(maxSampled, k) {
            let y = multiply(a, Matrix.gaussian(rows: a.cols, cols: l, seed: seed &+ UInt64(l)))
            let q = try orthonormalColumns(y)
            let b = multiply(q, a, transA: true)
            let qb = multiply(q, b)
            var sq = 0.0
            for i in 0..<a.data.count { let d = a.data[i] - qb.data[i]; sq += d * d }
            if sq.squareRoot() <= tolerance {
                let small = try svd(b)
                return TruncatedSVD(u: multiply(q, small.u), s: small.s, vt: small.vt, residual: sq.squareRoot(), method: "randomized", sampled: l)
            }
            if l == k { break }
            l = min(2 * l, k)
        }
        return nil
    }
}
