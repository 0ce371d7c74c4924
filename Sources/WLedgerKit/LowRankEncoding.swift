import CShims
import Codec
import LinAlg
import Ops
import TensorIO

/// Tries the low-rank + exact residual patch for a changed 2-D float tensor.
enum LowRankEncoding {
    /// Largest rank stored as factors.
    static let maxRank = 64

    /// Most alternating-projection rounds that pull A·Bᵀ into every element's rounding box: 12
    /// for small matrices, fewer for large ones so a commit of a 4096×11008 edit stays quick
    /// (each round is a few passes over the matrix). Refinement stops earlier when a round
    /// removes less than `minimumGain` of the misses left.
    static func refinementRounds(elements: Int, rank: Int) -> Int {
        max(2, min(12, Int(4e8 / Double(max(elements * max(rank, 4), 1)))))
    }

    /// The least share of the remaining misses a round must remove for another to run. Measured
    /// on rank-one SmolLM2 `down_proj` edits (F32 and BF16), the misses per round fall like
    /// 15.4%, 7.0%, 4.0%, 2.7%, 2.1%, 1.9%, 1.8%, 1.7% of the elements: the eighth round is the
    /// first to remove less than 5%, and the next four would remove ~3% more of them together.
    static let minimumGain = 0.05

    /// The C kernels' dtype code (F32 1, F16 2, BF16 3, F64 4).
    static func kernelCode(_ d: DType) -> Int32? {
        LowRankPatch.dtypeCode(d).map(Int32.init)
    }

    /// A low-rank patch when ΔW is numerically low-rank (up to storage rounding noise) and the
    /// factors are smaller than `budget` bytes; nil otherwise.
    static func attempt(parent: UnsafeRawBufferPointer, child: UnsafeRawBufferPointer, dtype: DType, shape: [Int], budget: Int,
                        level: Int32) throws -> Patch? {
        guard let code = kernelCode(dtype), let (rows, cols) = TensorMath.matrixShape(shape), rows > 1, cols > 1,
              parent.count == rows * cols * dtype.size, child.count == parent.count else { return nil }
        let precision = dtype == .f32 || dtype == .f64 ? 8 : 4
        guard (rows + cols) * precision < budget else { return nil }
        // Rounding the child to its dtype leaves noise of at most u·|W| per element.
        let u = TensorMath.unitRoundoff(dtype)
        let delta = DeltaOperand(parent: parent, child: child, code: code, rows: rows, cols: cols)
        guard let svd = try BLAS.lowRankApproximation(delta, tolerance: 2 * u * delta.childSquares.squareRoot(), maxSampled: 2 * maxRank)
        else { return nil }
        let noise = TensorMath.roundingNoise(dtype: dtype, maxRowNorm: delta.maxRowNorm, maxColumnNorm: delta.maxColumnNorm)
        let rank = svd.s.prefix { $0 > noise }.count
        guard rank > 0, rank <= maxRank, (rows + cols) * rank * precision < budget else { return nil }
        var a = Matrix(zeros: rows, rank), b = Matrix(zeros: cols, rank)
        for i in 0..<rows { for k in 0..<rank { a[i, k] = svd.u[i, k] * svd.s[k] } }
        for j in 0..<cols { for k in 0..<rank { b[j, k] = svd.vt[k, j] } }
        try refine(a: &a, b: &b, parent: parent, child: child, code: code, rows: rows, cols: cols)
        return try LowRankPatch.make(parent: parent, child: child, dtype: dtype, rows: rows, cols: cols, rank: rank, a: a.data, b: b.data,
                                     precision: precision, level: level)
    }

    /// ΔW = child − parent for the range finder, never materialized: each product recomputes
    /// ΔW's rows from the stored bytes (`wl_delta_range_pass`) in fixed row blocks combined in
    /// block order, so the result does not depend on the thread count. The first product also
    /// records the child's largest row and column norms, ‖child‖² and ‖ΔW‖² (so that the range
    /// finder can skip its residual pass; `BLAS.residualSquared`).
    final class DeltaOperand: RangeFinderOperand {
        let rows: Int, cols: Int
        private let views: (RawView, RawView)
        private let code: Int32
        private(set) var maxRowNorm = 0.0, maxColumnNorm = 0.0, childSquares = 0.0
        /// ‖ΔW‖F², summed by the first product in block order.
        private(set) var deltaSquares: Double?
        var squaredNorm: Double? { deltaSquares }

        init(parent: UnsafeRawBufferPointer, child: UnsafeRawBufferPointer, code: Int32, rows: Int, cols: Int) {
            views = (RawView(bytes: parent), RawView(bytes: child))
            self.code = code; self.rows = rows; self.cols = cols
        }

        /// Runs one mode of the kernel over every row block; each block's return value, in order.
        private func pass(_ mode: Int32, l: Int, q: [Double], m: [Double], out: Buffer?, partials: [Buffer], stats: Buffer?,
                          columns: [Buffer] = []) throws -> [Double] {
            let blocks = min(passBlocks, rows), sums = Slots<Double>(blocks)
            let (views, code, rows, cols) = (views, code, rows, cols)
            try parallelFor(blocks) { blk in
                let r0 = rows * blk / blocks, r1 = rows * (blk + 1) / blocks
                sums[blk] = q.withUnsafeBufferPointer { qp in
                    m.withUnsafeBufferPointer { mp in
                        wl_delta_range_pass(views.0.bytes.baseAddress!.assumingMemoryBound(to: UInt8.self),
                                            views.1.bytes.baseAddress!.assumingMemoryBound(to: UInt8.self), code, cols, r0, r1, l, mode,
                                            qp.baseAddress, mp.baseAddress, mode == 1 ? partials[blk].pointer : out?.pointer,
                                            stats.map { $0.pointer + 2 * blk }, columns.isEmpty ? nil : columns[blk].pointer)
                    }
                }
            }
            return (0..<blocks).map { sums[$0]! }
        }

        func times(_ omega: Matrix) throws -> Matrix {
            let l = omega.cols, blocks = min(passBlocks, rows)
            let y = Buffer(count: rows * l), stats = Buffer(count: 2 * blocks), columns = (0..<blocks).map { _ in Buffer(count: cols) }
            deltaSquares = try pass(0, l: l, q: [], m: omega.transposed.data, out: y, partials: [], stats: stats, columns: columns).reduce(0, +)
            maxRowNorm = (0..<blocks).reduce(0.0) { max($0, stats.pointer[2 * $1]) }.squareRoot()
            maxColumnNorm = (0..<cols).reduce(0.0) { best, j in max(best, columns.reduce(0.0) { $0 + $1.pointer[j] }) }.squareRoot()
            childSquares = (0..<blocks).reduce(0.0) { $0 + stats.pointer[2 * $1 + 1] }
            return Matrix(rows: rows, cols: l, data: Array(UnsafeBufferPointer(start: y.pointer, count: rows * l)))
        }

        func transposedTimes(_ q: Matrix) throws -> Matrix {
            let l = q.cols, partials = (0..<min(passBlocks, rows)).map { _ in Buffer(count: l * cols) }
            _ = try pass(1, l: l, q: q.data, m: [], out: nil, partials: partials, stats: nil)
            var b = Matrix(zeros: l, cols)
            for p in partials { for i in 0..<(l * cols) { b.data[i] += p.pointer[i] } }
            return b
        }

        func residualSquared(q: Matrix, b: Matrix) throws -> Double {
            try pass(2, l: q.cols, q: q.data, m: b.data, out: nil, partials: [], stats: nil).reduce(0, +)
        }
    }

    /// Row blocks of one refinement pass. Fixed, so the sums (and the stored patch) do not depend
    /// on how many threads run them.
    static let passBlocks = 8

    /// Alternating projections between rank-r matrices and the rounding boxes (for each element,
    /// the interval of ΔW values x with round(parent + x) = child: child ± h − parent, h just
    /// under half the child's spacing, so the predictor's float32 intermediate rounding cannot
    /// leave the box): move each element of A·Bᵀ outside its box to the box's centre, then refit
    /// A and B by least squares. Keeps the factors that leave the fewest elements outside their
    /// box; the exact residual patch fixes the rest. (Moving a miss only as far past the nearer
    /// edge as it missed converges far more slowly: on rank-one SmolLM2 edits, twelve such rounds
    /// left 4–5% of the elements outside, against 1.7% after eight here.)
    ///
    /// Each round is one fused pass of the C kernel `wl_lowrank_pass` over the stored bytes (row
    /// blocks in parallel): the boxes are derived on the fly, A·Bᵀ is never materialized, and
    /// A_new = X·B·(BᵀB)⁻¹ row by row feeds Xᵀ·A_new, from which B_new = Xᵀ·A_new·(A_newᵀA_new)⁻¹.
    static func refine(a: inout Matrix, b: inout Matrix, parent: UnsafeRawBufferPointer, child: UnsafeRawBufferPointer, code: Int32,
                       rows: Int, cols: Int) throws {
        let rank = a.cols
        precondition(rank <= 64 && b.cols == rank && a.rows == rows && b.rows == cols, "factor shapes")
        let blocks = min(passBlocks, rows)
        let views = (RawView(bytes: parent), RawView(bytes: child))
        /// Misses of (a, b); with `gramInverse`, also A_new and Xᵀ·A_new.
        func pass(_ a: Matrix, _ b: Matrix, gramInverse: Matrix?) throws -> (misses: Int, aNew: Matrix, dta: Matrix) {
            let misses = Slots<Int>(blocks)
            let aNew = Buffer(count: gramInverse == nil ? 0 : rows * rank)
            let partials = (0..<blocks).map { _ in Buffer(count: gramInverse == nil ? 0 : cols * rank) }
            let bt = b.transposed
            try parallelFor(blocks) { k in
                let r0 = rows * k / blocks, r1 = rows * (k + 1) / blocks
                let m = a.data.withUnsafeBufferPointer { ap in
                    bt.data.withUnsafeBufferPointer { bp in
                        (gramInverse?.data ?? []).withUnsafeBufferPointer { gp in
                            wl_lowrank_pass(views.0.bytes.baseAddress!.assumingMemoryBound(to: UInt8.self),
                                            views.1.bytes.baseAddress!.assumingMemoryBound(to: UInt8.self), code, cols, r0, r1, rank,
                                            ap.baseAddress!, bp.baseAddress!, gp.baseAddress,
                                            gramInverse == nil ? nil : aNew.pointer, gramInverse == nil ? nil : partials[k].pointer)
                        }
                    }
                }
                misses[k] = m
            }
            let total = misses.values.reduce(0) { $0 + $1! }
            guard gramInverse != nil else { return (total, a, b) }
            var dtaT = Matrix(zeros: rank, cols)
            for p in partials { for i in 0..<(cols * rank) { dtaT.data[i] += p.pointer[i] } }
            let dta = dtaT.transposed
            return (total, Matrix(rows: rows, cols: rank, data: Array(UnsafeBufferPointer(start: aNew.pointer, count: rows * rank))), dta)
        }
        var best: (misses: Int, a: Matrix, b: Matrix)? = nil
        var previous = Int.max, evaluated = false
        for _ in 0..<refinementRounds(elements: rows * cols, rank: rank) {
            let step = try pass(a, b, gramInverse: try pseudoInverse(BLAS.multiply(b, b, transA: true)))
            if best == nil || step.misses < best!.misses { best = (step.misses, a, b) }
            // Done when nothing misses or the last round removed too few misses to pay for another.
            if step.misses == 0 || Double(step.misses) > (1 - minimumGain) * Double(previous) { evaluated = true; break }
            previous = step.misses
            a = step.aNew
            b = BLAS.multiply(step.dta, try pseudoInverse(BLAS.multiply(a, a, transA: true)))
        }
        if !evaluated && best!.misses > 0 {
            let last = try pass(a, b, gramInverse: nil).misses
            if last < best!.misses { best = (last, a, b) }
        }
        (a, b) = (best!.a, best!.b)
    }

    /// A zero-filled double buffer written by the parallel passes.
    final class Buffer: @unchecked Sendable {
        let pointer: UnsafeMutablePointer<Double>
        init(count: Int) {
            pointer = .allocate(capacity: max(count, 1))
            adviseHugePages(pointer, max(count, 1) * MemoryLayout<Double>.stride)
            pointer.initialize(repeating: 0, count: max(count, 1))
        }
        deinit { pointer.deallocate() }
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
