import COpenBLAS

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
    /// SVD of the dominant part of a matrix without a full decomposition.
    ///
    /// Randomized range finder: Y = A·Ω with ℓ Gaussian columns, Q = orth(Y), B = Qᵀ·A, SVD of
    /// the small B. The spectral norm of the residual R = (I − Q·Qᵀ)·A is estimated by power
    /// iteration on Aᵀ·(I − Q·Qᵀ)·A (with a 1.25 safety factor); if it exceeds `tolerance`, ℓ
    /// doubles, and once ℓ would pass min(m, n)/2 LAPACK's full `dgesdd` is used instead. Every
    /// singular value of A beyond the returned ones is then at most `tolerance` (Weyl), and the
    /// returned triplets are those of Q·Qᵀ·A.
    /// - Parameters:
    ///   - tolerance: bound on ‖R‖₂.
    ///   - initialRank: first ℓ (default 16).
    ///   - powerIterations: subspace iterations Q ← orth(A·orth(Aᵀ·Q)) after the first sample; each
    ///     raises the accuracy of the leading triplets from (σ_{ℓ+1}/σ_k) to (σ_{ℓ+1}/σ_k)^(2q+1).
    ///   - forceFull: skip the fast path (for benchmarks and tests).
    public static func lowRankSVD(_ a: Matrix, tolerance: Double, initialRank: Int = 16, powerIterations: Int = 2,
                                  forceFull: Bool = false, seed: UInt64 = 0x5EED) throws -> TruncatedSVD {
        let m = a.rows, n = a.cols, k = min(m, n)
        if k == 0 || a.data.allSatisfy({ $0 == 0 }) {
            return TruncatedSVD(u: Matrix(zeros: m, 0), s: [], vt: Matrix(zeros: 0, n), residual: 0, method: "randomized", sampled: 0)
        }
        var l = min(max(initialRank, 1), k)
        while !forceFull && l <= max(k / 2, 1) {
            var q = try orthonormalColumns(multiply(a, Matrix.gaussian(rows: n, cols: l, seed: seed &+ UInt64(l))))
            for _ in 0..<powerIterations {
                let z = try orthonormalColumns(multiply(a, q, transA: true))   // (n, l)
                q = try orthonormalColumns(multiply(a, z))                     // (m, l)
            }
            let b = multiply(q, a, transA: true)                     // (l, n)
            let residual = 1.25 * residualSpectralNorm(a, q, seed: seed &+ 7)
            if residual <= tolerance {
                let small = try svd(b)                                // b = Ub·S·Vt
                return TruncatedSVD(u: multiply(q, small.u), s: small.s, vt: small.vt, residual: residual, method: "randomized", sampled: l)
            }
            if l == k { break }
            l = min(2 * l, k)
        }
        let full = try svd(a)
        return TruncatedSVD(u: full.u, s: full.s, vt: full.vt, residual: 0, method: "full", sampled: 0)
    }

    /// Estimates ‖(I − Q·Qᵀ)·A‖₂ by 16 power iterations on Aᵀ·(I − Q·Qᵀ)·A.
    ///
    /// The corresponding C function is `cblas_dgemv`.
    static func residualSpectralNorm(_ a: Matrix, _ q: Matrix, seed: UInt64, iterations: Int = 16) -> Double {
        let m = a.rows, n = a.cols, l = q.cols
        var x = Matrix.gaussian(rows: n, cols: 1, seed: seed).data
        var estimate = 0.0
        var y = [Double](repeating: 0, count: m), c = [Double](repeating: 0, count: l)
        for _ in 0..<iterations {
            let norm = x.reduce(0) { $0 + $1 * $1 }.squareRoot()
            if norm == 0 { return 0 }
            for i in 0..<n { x[i] /= norm }
            a.data.withUnsafeBufferPointer { ap in
                q.data.withUnsafeBufferPointer { qp in
                    // y = A·x; c = Qᵀ·y; y −= Q·c  →  y = (I − QQᵀ)·A·x
                    cblas_dgemv(CblasRowMajor, CblasNoTrans, Int32(m), Int32(n), 1, ap.baseAddress, Int32(n), x, 1, 0, &y, 1)
                    cblas_dgemv(CblasRowMajor, CblasTrans, Int32(m), Int32(l), 1, qp.baseAddress, Int32(l), y, 1, 0, &c, 1)
                    cblas_dgemv(CblasRowMajor, CblasNoTrans, Int32(m), Int32(l), -1, qp.baseAddress, Int32(l), c, 1, 1, &y, 1)
                    // ‖R·x‖ for the unit x is a lower bound of ‖R‖₂ that converges upwards.
                    estimate = max(estimate, y.reduce(0) { $0 + $1 * $1 }.squareRoot())
                    // x = Aᵀ·y  (= Aᵀ(I − QQᵀ)A·x, since y is already orthogonal to Q)
                    cblas_dgemv(CblasRowMajor, CblasTrans, Int32(m), Int32(n), 1, ap.baseAddress, Int32(n), y, 1, 0, &x, 1)
                }
            }
        }
        return estimate
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
