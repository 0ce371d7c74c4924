
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
            let small = try svd(b)                                    // b = Ub·S·Vt
            // If even the smallest sampled singular value is above the tolerance, the range is
            // certainly too small: grow without paying for the residual estimate.
            if let last = small.s.last, last > tolerance, l < k {
                l = min(4 * l, k)
                continue
            }
            let residual = 1.25 * residualSpectralNorm(a, q, seed: seed &+ 7)
            if residual <= tolerance {
                return TruncatedSVD(u: multiply(q, small.u), s: small.s, vt: small.vt, residual: residual, method: "randomized", sampled: l)
            }
            if l == k { break }
            l = min(2 * l, k)
        }
        let full = try svd(a)
        return TruncatedSVD(u: full.u, s: full.s, vt: full.vt, residual: 0, method: "full", sampled: 0)
    }

    /// Estimates ‖(I − Q·Qᵀ)·A‖₂ by block power iteration (4 vectors, 6 rounds) on
    /// Aᵀ·(I − Q·Qᵀ)·A. The estimate is a lower bound that converges upwards; callers apply a
    /// safety factor. Blocks make each pass over A (memory-bound) serve four vectors.
    static func residualSpectralNorm(_ a: Matrix, _ q: Matrix, seed: UInt64, block: Int = 4, iterations: Int = 6) -> Double {
        var x = Matrix.gaussian(rows: a.cols, cols: block, seed: seed)
        var estimate = 0.0
        for _ in 0..<iterations {
            // Normalize the columns of x.
            for j in 0..<block {
                var sq = 0.0
                for i in 0..<x.rows { sq += x[i, j] * x[i, j] }
                let inv = sq > 0 ? 1 / sq.squareRoot() : 0
                for i in 0..<x.rows { x[i, j] *= inv }
            }
            var y = multiply(a, x)                                   // (m, block)
            let c = multiply(q, y, transA: true)                     // (l, block)
            let qc = multiply(q, c)
            for i in 0..<y.data.count { y.data[i] -= qc.data[i] }    // (I − QQᵀ)·A·x
            for j in 0..<block {
                var sq = 0.0
                for i in 0..<y.rows { sq += y[i, j] * y[i, j] }
                estimate = max(estimate, sq.squareRoot())
            }
            x = multiply(a, y, transA: true)                          // Aᵀ(I − QQᵀ)A·x
        }
        return estimate
    }
}

/// A matrix seen only through the three products the range finder of
/// `BLAS.lowRankApproximation` needs, so it need not be held in memory (the low-rank encoder
/// recomputes ΔW's rows from the stored tensor bytes for each).
public protocol RangeFinderOperand {
    var rows: Int { get }
    var cols: Int { get }
    /// A·Ω.
    func times(_ omega: Matrix) throws -> Matrix
    /// Qᵀ·A.
    func transposedTimes(_ q: Matrix) throws -> Matrix
    /// ‖A − Q·B‖F².
    func residualSquared(q: Matrix, b: Matrix) throws -> Double
    /// ‖A‖F², when the operand learnt it computing A·Ω (nil otherwise).
    var squaredNorm: Double? { get }
}

extension RangeFinderOperand {
    public var squaredNorm: Double? { nil }
}

extension Matrix: RangeFinderOperand {
    public func times(_ omega: Matrix) throws -> Matrix { BLAS.multiply(self, omega) }

    public func transposedTimes(_ q: Matrix) throws -> Matrix { BLAS.multiply(q, self, transA: true) }

    /// A block of rows at a time (never the whole of Q·B in memory).
    public func residualSquared(q: Matrix, b: Matrix) throws -> Double {
        var sq = 0.0
        let l = q.cols, block = max(1, (1 << 16) / max(cols, 1))
        for r0 in stride(from: 0, to: rows, by: block) {
            let r1 = min(r0 + block, rows)
            let qb = BLAS.multiply(Matrix(rows: r1 - r0, cols: l, data: Array(q.data[(r0 * l)..<(r1 * l)])), b)
            data.withUnsafeBufferPointer { ap in
                for i in 0..<qb.data.count { let d = ap[r0 * cols + i] - qb.data[i]; sq += d * d }
            }
        }
        return sq
    }
}

extension BLAS {
    /// ‖A − Q·B‖F² for B = Qᵀ·A. When the operand knows ‖A‖F², as ‖A‖F² − ‖B‖F² (Q has
    /// orthonormal columns), saving a pass over A, unless that difference is within `1e-9·‖A‖F²`
    /// of tolerance²: the rounding of the two sums (≲ 1e-12 of ‖A‖F² for the sizes of a weight
    /// matrix) could then decide the comparison, and the pass is made. So the comparison with
    /// the tolerance comes out as the pass's; in practice the shortcut serves BF16 and F16, whose
    /// tolerance is far above that margin, and the pass F32, whose tolerance is below it.
    public static func residualSquared(_ a: some RangeFinderOperand, q: Matrix, b: Matrix, tolerance: Double) throws -> Double {
        if let total = a.squaredNorm {
            let estimate = max(0, total - b.data.reduce(0) { $0 + $1 * $1 })
            if abs(estimate - tolerance * tolerance) > 1e-9 * total { return estimate }
        }
        return try a.residualSquared(q: q, b: b)
    }

    /// A low-rank approximation with ‖A − U·S·Vt‖F ≤ tolerance found by the range finder with at
    /// most `maxSampled` columns, or nil when A is not that low-rank (no full SVD is attempted).
    /// `tolerance` is evaluated after the first product A·Ω (an operand may learn its scale there).
    public static func lowRankApproximation(_ a: some RangeFinderOperand, tolerance: @autoclosure () -> Double, maxSampled: Int,
                                            seed: UInt64 = 0x5EED) throws -> TruncatedSVD? {
        let k = min(a.rows, a.cols)
        guard k > 0 else { return nil }
        var l = min(8, k)
        while l <= min(maxSampled, k) {
            let q = try orthonormalColumns(try a.times(Matrix.gaussian(rows: a.cols, cols: l, seed: seed &+ UInt64(l))))
            let b = try a.transposedTimes(q)
            let sq = try residualSquared(a, q: q, b: b, tolerance: tolerance())
            if sq.squareRoot() <= tolerance() {
                let small = try svd(b)
                return TruncatedSVD(u: multiply(q, small.u), s: small.s, vt: small.vt, residual: sq.squareRoot(), method: "randomized", sampled: l)
            }
            if l == k { break }
            l = min(2 * l, k)
        }
        return nil
    }
}
