import Codec
import LinAlg
import Ops
import TensorIO

/// Tries the low-rank + exact residual patch for a changed 2-D float tensor.
enum LowRankEncoding {
    /// Largest rank stored as factors.
    static let maxRank = 64
    /// Over-relaxation of the box projection.
    static let relaxation = 1.0

    /// Alternating-projection rounds that pull A·Bᵀ into every element's rounding box: 12 for
    /// small matrices, fewer for large ones so a commit of a 4096×11008 edit stays quick (each
    /// round is a few passes over the matrix). Measured on a rank-one SmolLM2 BF16 edit: the
    /// share of mispredicted elements falls from 13.5% to ~4% over the first dozen rounds.
    static func refinementRounds(elements: Int, rank: Int) -> Int {
        max(2, min(12, Int(4e8 / Double(max(elements * max(rank, 4), 1)))))
    }

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
        guard let svd = try BLAS.lowRankApproximation(dw, tolerance: 2 * u * childSq.squareRoot(), maxSampled: 2 * maxRank) else { return nil }
        let rank = svd.s.prefix { $0 > TensorMath.roundingNoise(dtype: dtype, maxAbs: maxAbs, rows: rows, cols: cols) }.count
        guard rank > 0, rank <= maxRank, (rows + cols) * rank * precision < budget else { return nil }
        var a = Matrix(zeros: rows, rank), b = Matrix(zeros: cols, rank)
        for i in 0..<rows { for k in 0..<rank { a[i, k] = svd.u[i, k] * svd.s[k] } }
        for j in 0..<cols { for k in 0..<rank { b[j, k] = svd.vt[k, j] } }
        try refine(a: &a, b: &b, box: roundingBoxes(parent: p, child: c, dtype: dtype), rows: rows, cols: cols)
        return try LowRankPatch.make(parent: parent, child: child, dtype: dtype, rows: rows, cols: cols, rank: rank, a: a.data, b: b.data,
                                     precision: precision, level: level)
    }

    /// For each element, the interval of ΔW values x with round(parent + x) = child: child ± h − parent,
    /// h = (1/2 − 2⁻¹⁴) × the smaller spacing of the child's dtype around it: just under half an
    /// ulp, so the predictor's float32 intermediate rounding (2⁻¹⁶ of a BF16 spacing) cannot
    /// leave the box.
    static func roundingBoxes(parent p: [Double], child c: [Double], dtype: DType) -> (lo: [Double], hi: [Double]) {
        let mantissaBits: Int
        switch dtype {
        case .f64: mantissaBits = 52
        case .f32: mantissaBits = 23
        case .f16: mantissaBits = 10
        default: mantissaBits = 7
        }
        let minExponent = dtype == .f16 ? -14 : (dtype == .f64 ? -1022 : -126)
        var lo = [Double](repeating: 0, count: c.count), hi = lo
        for i in 0..<c.count {
            let v = abs(c[i])
            let e = v == 0 ? minExponent : max(Int(v.exponent), minExponent)
            var spacing = Double(sign: .plus, exponent: e - mantissaBits, significand: 1)
            // Just below a power of two the spacing halves.
            if v != 0, v.significand == 1, e > minExponent { spacing /= 2 }
            let h = (0.5 - 0x1p-14) * spacing
            lo[i] = c[i] - h - p[i]
            hi[i] = c[i] + h - p[i]
        }
        return (lo, hi)
    }

    /// Alternating projections between rank-r matrices and the rounding boxes: pull A·Bᵀ into
    /// the boxes (over-relaxed), then refit A and B by least squares. Keeps the factors that
    /// leave the fewest elements outside their box; the exact residual patch fixes the rest.
    static func refine(a: inout Matrix, b: inout Matrix, box: (lo: [Double], hi: [Double]), rows: Int, cols: Int) throws {
        func misses(_ d: Matrix) -> Int {
            var n = 0
            for i in 0..<d.data.count where d.data[i] < box.lo[i] || d.data[i] > box.hi[i] { n += 1 }
            return n
        }
        var d = BLAS.multiply(a, b, transB: true)
        var best = (misses(d), a, b)
        for _ in 0..<refinementRounds(elements: rows * cols, rank: a.cols) where best.0 > 0 {
            // Over-relaxed projection: a violating element is pushed past its nearer bound into the box
            // by as much as it violated (kept inside the box), which converges far faster than clamping.
            for i in 0..<d.data.count {
                let x = d.data[i], lo = box.lo[i], hi = box.hi[i]
                if x < lo { d.data[i] = min(lo + relaxation * (lo - x), 0.5 * (lo + hi)) } else if x > hi { d.data[i] = max(hi - relaxation * (x - hi), 0.5 * (lo + hi)) }
            }
            // A = D·B·(BᵀB)⁻¹, then B = Dᵀ·A·(AᵀA)⁻¹.
            a = BLAS.multiply(BLAS.multiply(d, b), try pseudoInverse(BLAS.multiply(b, b, transA: true)))
            b = BLAS.multiply(BLAS.multiply(d, a, transA: true), try pseudoInverse(BLAS.multiply(a, a, transA: true)))
            d = BLAS.multiply(a, b, transB: true)
            let m = misses(d)
            if m < best.0 { best = (m, a, b) }
        }
        (a, b) = (best.1, best.2)
    }

    /// Pseudo-inverse V·S⁺·Uᵀ of a small matrix via its SVD.
    static func pseudoInverse(_ g: Matrix) throws -> Matrix {
        let svd = try BLAS.svd(g)
        let tol = (svd.s.first ?? 0) * 1e-12
        var vs = svd.vt.transposed
        for i in 0..<vs.rows { for k in 0..<vs.cols { vs[i, k] *= svd.s[k] > tol ? 1 / svd.s[k] : 0 } }
        return BLAS.multiply(vs, svd.u, transB: true)
    }
}
