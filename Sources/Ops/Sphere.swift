import LinAlg

/// A post-hoc projection beside PRUNE: ΔW′ = ΔW·(I − β·U·Uᵀ), where U holds the top eigenvectors
/// of Ŵᵀ·Ŵ/n (Ŵ = the base W with unit-norm rows) that together cover a share η of its energy
/// (sum of eigenvalues). It removes the part of the update that acts along the input directions
/// the base matrix already uses most.
public enum Sphere {
    public struct Result: Sendable {
        public var correction: Matrix
        /// Eigenvectors kept.
        public var directions: Int
        /// Energy share they cover.
        public var energy: Double
    }

    /// - Parameters:
    ///   - base: W_base, (m, n) row-major.
    ///   - delta: ΔW, same shape.
    public static func correction(base: Matrix, delta: Matrix, eta: Double = 0.5, beta: Double = 0.5) throws -> Result {
        precondition(eta > 0 && eta <= 1 && beta >= 0 && beta <= 1, "eta in (0, 1], beta in [0, 1]")
        var w = base
        for i in 0..<w.rows {
            var s = 0.0
            for j in 0..<w.cols { s += w[i, j] * w[i, j] }
            let inv = s > 0 ? 1 / s.squareRoot() : 0
            for j in 0..<w.cols { w[i, j] *= inv }
        }
        // Eigenvectors of ŴᵀŴ are the right singular vectors of Ŵ; eigenvalues are σ².
        let svd = try BLAS.svd(w)
        let energies = svd.s.map { $0 * $0 }
        let total = energies.reduce(0, +)
        var k = 0, covered = 0.0
        while k < energies.count && (total == 0 ? false : covered / total < eta) { covered += energies[k]; k += 1 }
        let u = svd.vt.leadingRows(k).transposed                    // (n, k)
        let du = BLAS.multiply(delta, u)                             // (m, k)
        var correction = BLAS.multiply(du, u, transB: true)          // (m, n) = ΔW·U·Uᵀ
        for i in 0..<correction.data.count { correction.data[i] *= -beta }
        return Result(correction: correction, directions: k, energy: total == 0 ? 0 : covered / total)
    }
}
