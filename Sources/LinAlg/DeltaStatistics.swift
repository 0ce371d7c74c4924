import CShims
import Foundation
import TensorIO

/// Statistics of ΔW = child − parent for one tensor, computed in float64 from the stored bytes.
public struct DeltaStatistics: Sendable, Equatable, Codable {
    /// Elements whose stored bits differ.
    public var changed: Int
    /// Σ|ΔW| (Manhattan distance).
    public var l1: Double
    /// ‖ΔW‖F.
    public var frobenius: Double
    /// max |ΔW|.
    public var maxAbs: Double
    /// ‖W_parent‖F.
    public var baseNorm: Double
    /// NaN or ±Inf values in the child.
    public var nonFinite: Int
    /// Elements in the tensor.
    public var count: Int

    public init(changed: Int, l1: Double, frobenius: Double, maxAbs: Double, baseNorm: Double, nonFinite: Int, count: Int) {
        self.changed = changed; self.l1 = l1; self.frobenius = frobenius; self.maxAbs = maxAbs
        self.baseNorm = baseNorm; self.nonFinite = nonFinite; self.count = count
    }

    /// ‖ΔW‖F / ‖W_parent‖F (0 when the parent is all zeros and nothing changed, +∞ when only it is zero).
    public var relativeFrobenius: Double {
        if baseNorm > 0 { return frobenius / baseNorm }
        return frobenius == 0 ? 0 : .infinity
    }

    /// √(Σ xᵢ²) of per-tensor norms (the ‖ΔW‖F of several tensors together), scaled by the
    /// largest so that finite norms never add up to +∞ (two of 1e200) or 0.
    public static func combinedNorm(_ norms: [Double]) -> Double {
        let sum = norms.reduce(0) { $0 + $1 * $1 }
        let largest = norms.reduce(0.0) { max($0, abs($1)) }
        return scaledNorm(count: norms.count, largest: norms.contains(where: \.isNaN) ? .nan : largest, sumOfSquares: sum) { norms[$0] }
    }

    /// ‖x‖₂ of `count` values read by `value`, summed as Σx² where that stays within a double's
    /// range and scaled by max |x| where it does not (values near 1e±154 and beyond); NaN when
    /// a value is NaN, +∞ when one is infinite.
    static func scaledNorm(count: Int, largest: Double, sumOfSquares: Double, value: (Int) -> Double) -> Double {
        guard largest.isFinite, largest > 0, !sumOfSquares.isNaN, !sumOfSquares.isFinite || sumOfSquares < 0x1p-900 else {
            return sumOfSquares.squareRoot()
        }
        var sum = 0.0
        for i in 0..<count {
            let v = value(i) / largest
            sum += v * v
        }
        return sum.squareRoot() * largest
    }

    /// Computes the statistics. F32/F16/BF16 are decoded tile by tile to Float (exact) and
    /// accumulated in double by the C kernel `wl_delta_stats_f32`, per block of 1M elements
    /// (blocks in parallel, their sums added in order); F64 and integer dtypes use a
    /// double loop; other dtypes report only the changed count.
    /// - Precondition: both buffers have the same size, a multiple of the dtype size.
    public static func compute(parent: UnsafeRawBufferPointer, child: UnsafeRawBufferPointer, dtype: DType) -> DeltaStatistics {
        precondition(parent.count == child.count, "ΔW operands differ in size")
        let n = parent.count / dtype.size
        switch dtype {
        case .f32, .f16, .bf16:
            // Fixed blocks of 1M elements, summed in block order, so the result does not depend
            // on how many threads ran them; large tensors use every core.
            let blockElements = 1 << 20
            let blocks = max(1, (n + blockElements - 1) / blockElements)
            let partials = UnsafeMutableBufferPointer<wl_delta_stats>.allocate(capacity: blocks)
            defer { partials.deallocate() }
            let views = StatsViews(parent: parent, child: child, partials: partials)
            @Sendable func run(_ k: Int) {
                let lo = k * blockElements, hi = min(n, lo + blockElements)
                var s = wl_delta_stats()
                let tile = 1 << 16
                var a = [Float](repeating: 0, count: min(hi - lo, tile))
                var b = [Float](repeating: 0, count: min(hi - lo, tile))
                var start = lo
                while start < hi {
                    let m = min(tile, hi - start)
                    let range = (start * dtype.size)..<((start + m) * dtype.size)
                    a.withUnsafeMutableBufferPointer { ap in
                        b.withUnsafeMutableBufferPointer { bp in
                            let ab = UnsafeMutableBufferPointer(rebasing: ap[0..<m]), bb = UnsafeMutableBufferPointer(rebasing: bp[0..<m])
                            decodeToFloat(UnsafeRawBufferPointer(rebasing: views.parent[range]), dtype: dtype, into: ab)
                            decodeToFloat(UnsafeRawBufferPointer(rebasing: views.child[range]), dtype: dtype, into: bb)
                            wl_delta_stats_f32(ab.baseAddress, bb.baseAddress, m, &s)
                        }
                    }
                    start += m
                }
                views.partials[k] = s
            }
            if blocks == 1 { run(0) } else { DispatchQueue.concurrentPerform(iterations: blocks) { run($0) } }
            var s = wl_delta_stats()
            for p in partials {
                s.changed += p.changed; s.l1 += p.l1; s.sum_sq += p.sum_sq; s.max_abs = max(s.max_abs, p.max_abs)
                s.base_sum_sq += p.base_sum_sq; s.nonfinite += p.nonfinite
            }
            // The kernel's maximum skips NaN (a comparison with NaN is false); the sum does not,
            // so a NaN in ΔW shows there and makes the maximum NaN as well.
            return DeltaStatistics(changed: Int(s.changed), l1: s.l1, frobenius: s.sum_sq.squareRoot(), maxAbs: s.l1.isNaN ? .nan : s.max_abs,
                                   baseNorm: s.base_sum_sq.squareRoot(), nonFinite: Int(s.nonfinite), count: n)
        default:
            let changed = n == 0 ? 0 : wl_count_diff(parent.baseAddress!.assumingMemoryBound(to: UInt8.self),
                                                     child.baseAddress!.assumingMemoryBound(to: UInt8.self), parent.count, dtype.size)
            guard dtype.isArithmetic else {
                return DeltaStatistics(changed: changed, l1: 0, frobenius: 0, maxAbs: 0, baseNorm: 0, nonFinite: 0, count: n)
            }
            var l1 = 0.0, sq = 0.0, mx = 0.0, bsq = 0.0, bmx = 0.0, nonFinite = 0
            for i in 0..<n {
                let x = loadDouble(parent, i, dtype), y = loadDouble(child, i, dtype)
                let d = exactDifference(parent, child, i, dtype) ?? (y - x)
                if !y.isFinite { nonFinite += 1 }
                l1 += abs(d); sq += d * d; mx = max(mx, abs(d)); bsq += x * x; bmx = max(bmx, abs(x))
            }
            // F64 squares leave a double's range beyond 1e±154: those norms are summed again, scaled.
            let frobenius = DeltaStatistics.scaledNorm(count: n, largest: mx, sumOfSquares: sq) {
                exactDifference(parent, child, $0, dtype) ?? (loadDouble(child, $0, dtype) - loadDouble(parent, $0, dtype))
            }
            let baseNorm = DeltaStatistics.scaledNorm(count: n, largest: bmx, sumOfSquares: bsq) { loadDouble(parent, $0, dtype) }
            return DeltaStatistics(changed: changed, l1: l1, frobenius: frobenius, maxAbs: l1.isNaN ? .nan : mx, baseNorm: baseNorm,
                                   nonFinite: nonFinite, count: n)
        }
    }
}

/// The buffers of one statistics pass, shared by its block threads (each writes its own slot).
private struct StatsViews: @unchecked Sendable {
    let parent: UnsafeRawBufferPointer
    let child: UnsafeRawBufferPointer
    let partials: UnsafeMutableBufferPointer<wl_delta_stats>
}

/// child − parent of element `i` of a 64-bit integer tensor, taken in integers and then rounded
/// once to a double (nil for other dtypes): the difference of two values above 2⁵³ is exact
/// where subtracting their doubles gave 0 (2⁶⁴−1 → 2⁶⁴−2 read as unchanged).
private func exactDifference(_ parent: UnsafeRawBufferPointer, _ child: UnsafeRawBufferPointer, _ i: Int, _ dtype: DType) -> Double? {
    let o = i * 8
    switch dtype {
    case .u64:
        let x = parent.loadUnaligned(fromByteOffset: o, as: UInt64.self), y = child.loadUnaligned(fromByteOffset: o, as: UInt64.self)
        return y >= x ? Double(y - x) : -Double(x - y)
    case .i64:
        // |y − x| < 2⁶⁴ always: the wrapping difference's bits are the magnitude.
        let x = parent.loadUnaligned(fromByteOffset: o, as: Int64.self), y = child.loadUnaligned(fromByteOffset: o, as: Int64.self)
        return y >= x ? Double(UInt64(bitPattern: y &- x)) : -Double(UInt64(bitPattern: x &- y))
    default:
        return nil
    }
}
