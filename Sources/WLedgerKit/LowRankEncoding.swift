import Codec
import LinAlg
import Ops
import TensorIO

/// Tries the low-rank + exact residual patch for a changed 2-D float tensor.
enum LowRankEncoding {
    /// Largest rank stored as factors.
    static let maxRank = 64

    /// A low-rank patch when ΔW is numerically low-rank (up to storage rounding noise) and the
    /// factors are smaller than `budget` bytes; nil otherwise.
    static func attempt(parent: UnsafeRawBufferPointer, child: UnsafeRawBufferPointer, dtype: DType, shape: [Int], budget: Int,
                        level: Int32) throws -> Patch? {
        guard dtype.isFloat, let (rows, cols) = TensorMath.matrixShape(shape), rows > 1, cols > 1 else { return nil }
        let precision = dtype == .f32 || dtype == .f64 ? 8 : 4
        guard (rows + cols) * precision < budget else { return nil }
        let p = TensorMath.doubles(parent, dtype: dtype), c = TensorMath.doubles(child, dtype: dtype)
        var dw = Matrix(zeros: rows, cols)
        var maxAbs = 0.0, childSq = 0.0
        for i in 0..<dw.data.count {
            dw.data[i] = c[i] - p[i]
            maxAbs = max(maxAbs, abs(c[i]))
            childSq += c[i] * c[i]
        }
        // Rounding the child to its dtype leaves noise of at most u·|W| per element.
        let u = TensorMath.unitRoundoff(dtype)
        let frobeniusNoise = 2 * u * childSq.squareRoot()
        guard let svd = try BLAS.lowRankApproximation(dw, tolerance: frobeniusNoise, maxSampled: 2 * maxRank) else { return nil }
        let spectralNoise = TensorMath.roundingNoise(dtype: dtype, maxAbs: maxAbs, rows: rows, cols: cols)
        let rank = svd.s.prefix { $0 > spectralNoise }.count
        guard rank > 0, rank <= maxRank, (rows + cols) * rank * precision < budget else { return nil }
        var a = [Double](repeating: 0, count: rows * rank), b = [Double](repeating: 0, count: cols * rank)
        for i in 0..<rows { for k in 0..<rank { a[i * rank + k] = svd.u[i, k] * svd.s[k] } }
        for j in 0..<cols { for k in 0..<rank { b[j * rank + k] = svd.vt[k, j] } }
        return try LowRankPatch.make(parent: parent, child: child, dtype: dtype, rows: rows, cols: cols, rank: rank, a: a, b: b,
                                     precision: precision, level: level)
    }
}
