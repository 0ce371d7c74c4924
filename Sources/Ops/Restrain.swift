#if canImport(Glibc)
import Glibc
#endif
import LinAlg

/// PRUNE: bound the singular values of an accumulated ΔW so the edited matrix's condition number
/// stays near the base's.
///
/// Every singular value σ ≥ σmax(W_base) becomes log_α(σ) − log_α(σmax(W_base)) + σmax(W_base)
/// where that is smaller; the others stay. The result is returned as the correction C = ΔW′ − ΔW = Σ (σ′ᵢ − σᵢ)·uᵢ·vᵢᵀ,
/// which only involves the restrained triplets.
public enum Restrain {
    /// The restraint function for one singular value, never above σ itself: where
    /// σmax(W_base)·ln α < 1 (α = 1.2 with σmax(W_base) < 5.5; α just above 1) the logarithm
    /// grows faster than σ just above σmax(W_base), and "restraining" raised σ and κ (4 → 4.265
    /// at α = 1.2, σmax 3.443; ‖ΔW‖F 1.8e13 at α = 1 + 2⁻⁵²).
    public static func restrained(_ sigma: Double, sigmaMaxBase: Double, alpha: Double) -> Double {
        guard sigma >= sigmaMaxBase, sigmaMaxBase > 0 else { return sigma }
        return min(sigma, (log(sigma) - log(sigmaMaxBase)) / log(alpha) + sigmaMaxBase)
    }

    /// Outcome for one matrix.
    public struct Result: Sendable {
        /// ΔW′ − ΔW (zero matrix when nothing is restrained).
        public var correction: Matrix
        /// Singular values of ΔW that were restrained, and their new values.
        public var before: [Double]
        public var after: [Double]
        /// How the SVD was computed ("randomized" or "full") and the range finder's residual.
        public var method: String
        public var residual: Double
    }

    /// The range finder's result is accepted when the spectral norm of what it leaves out is at
    /// most max(1e-5·σmax(W_base), `noiseFloor`) (and never more than σmax(W_base)/2): every
    /// singular value it could miss is then below the restraint threshold, and the restrained
    /// triplets are perturbed far less than the storage precision of the result.
    public static let acceptedResidual = 1e-5

    /// Computes the PRUNE correction for `delta` (row-major, shape of W).
    /// - Parameters:
    ///   - noiseFloor: spectral norm of the storage rounding noise in ΔW
    ///     (`TensorMath.roundingNoise`); 0 for exact inputs.
    ///   - forceFull: use LAPACK's full SVD (benchmarks, tests).
    public static func correction(delta: Matrix, sigmaMaxBase: Double, alpha: Double, noiseFloor: Double = 0,
                                  forceFull: Bool = false) throws -> Result {
        precondition(alpha > 1, "alpha must exceed 1")
        let tol = min(max(acceptedResidual * sigmaMaxBase, noiseFloor), 0.5 * sigmaMaxBase)
        let svd = try BLAS.lowRankSVD(delta, tolerance: tol, forceFull: forceFull)
        var before: [Double] = [], after: [Double] = []
        // Only the singular values the restraint lowers: one it leaves (σ = σmax, or the formula
        // above σ) is not reported as restrained.
        for s in svd.s where s >= sigmaMaxBase {
            let r = restrained(s, sigmaMaxBase: sigmaMaxBase, alpha: alpha)
            guard r < s else { continue }
            before.append(s)
            after.append(r)
        }
        // C = U_r·diag(σ′ − σ)·Vt_r as one product.
        let r = before.count
        var scaled = Matrix(zeros: delta.rows, r)
        for i in 0..<delta.rows { for k in 0..<r { scaled[i, k] = svd.u[i, k] * (after[k] - before[k]) } }
        let correction = r == 0 ? Matrix(zeros: delta.rows, delta.cols) : BLAS.multiply(scaled, svd.vt.leadingRows(r))
        return Result(correction: correction, before: before, after: after, method: svd.method, residual: svd.residual)
    }
}
