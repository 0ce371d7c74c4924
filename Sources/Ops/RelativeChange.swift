/// The relative change δ = |ΔW / W| of RECT, against the older side W.
///
/// Where W = 0 the denominator is the smallest positive normal float (2⁻¹²⁶ ≈ 1.18e-38): an
/// unchanged zero has δ = 0, a changed zero gets a huge but finite δ (it ranks first), and δ is
/// never NaN or infinite for finite sides.
public enum RelativeChange {
    public static let zeroFloor = 0x1p-126

    @inline(__always)
    public static func delta(_ dw: Double, base w: Double) -> Double {
        abs(dw) / max(abs(w), zeroFloor)
    }

    /// Summary of δ over all elements of a tensor.
    public struct Summary: Sendable, Codable, Equatable {
        /// (threshold, share of elements with δ > threshold).
        public var shares: [Share]
        public var median: Double
        public var p90: Double
        public var p99: Double

        public struct Share: Sendable, Codable, Equatable {
            public var threshold: Double
            public var fraction: Double
        }
    }

    /// The RECT paper's thresholds.
    public static let defaultThresholds: [Double] = [0.077, 0.171]

    /// Summarizes δ over all `base.count` elements. Quantiles use the nearest-rank definition
    /// (the ⌈q·n⌉-th smallest value).
    public static func summarize(base: [Double], delta dw: [Double], thresholds: [Double] = defaultThresholds) -> Summary {
        precondition(base.count == dw.count, "δ operands differ in size")
        let n = base.count
        guard n > 0 else { return Summary(shares: thresholds.map { .init(threshold: $0, fraction: 0) }, median: 0, p90: 0, p99: 0) }
        var d = [Double](repeating: 0, count: n)
        for i in 0..<n { d[i] = delta(dw[i], base: base[i]) }
        // A side with NaN or Inf (committed with --allow-nonfinite, or stashed) gives δ = NaN
        // there: the shares and quantiles are NaN then, as the other statistics of such weights,
        // not a count that treats those elements as unchanged.
        if d.contains(where: \.isNaN) || base.contains(where: { !$0.isFinite }) || dw.contains(where: { !$0.isFinite }) {
            return Summary(shares: thresholds.map { .init(threshold: $0, fraction: .nan) }, median: .nan, p90: .nan, p99: .nan)
        }
        let shares = thresholds.map { t in Summary.Share(threshold: t, fraction: Double(d.reduce(0) { $0 + ($1 > t ? 1 : 0) }) / Double(n)) }
        d.sort()
        func q(_ p: Double) -> Double { d[max(0, min(n - 1, Int((p * Double(n)).rounded(.up)) - 1))] }
        return Summary(shares: shares, median: q(0.5), p90: q(0.9), p99: q(0.99))
    }
}
