/// RECT: keep only the top-k% elements of ΔW by relative change δ = |ΔW/W| (or by |ΔW|) and
/// zero the rest.
public enum RECT {
    /// How elements are ranked.
    public enum Ranking: String, Sendable, Codable, CaseIterable {
        case relative, magnitude
    }

    /// How many elements RECT keeps: ⌈k·N/100⌉ of the N elements of the matrix, but never more
    /// than the elements that actually changed.
    public static func keptCount(total: Int, changed: Int, percent: Double) -> Int {
        precondition(percent >= 0 && percent <= 100, "percent out of range")
        let k = Int((percent * Double(total) / 100).rounded(.up))
        return min(k, changed)
    }

    /// The indices RECT keeps, ascending. Elements with ΔW = 0 are never kept; ties in the score
    /// are broken by the lower index, so the result is deterministic; a NaN score (a NaN on
    /// either side) ranks with the infinite ones, first.
    public static func keep(base: [Double], delta dw: [Double], percent: Double, by ranking: Ranking) -> [Int] {
        precondition(base.count == dw.count, "RECT operands differ in size")
        var candidates: [(score: Double, index: Int)] = []
        candidates.reserveCapacity(dw.count)
        for i in 0..<dw.count where dw[i] != 0 {
            let s = ranking == .relative ? RelativeChange.delta(dw[i], base: base[i]) : abs(dw[i])
            candidates.append((s.isNaN ? .infinity : s, i))   // a change to or from NaN ranks first, so the order is total
        }
        let k = keptCount(total: dw.count, changed: candidates.count, percent: percent)
        candidates.sort { $0.score != $1.score ? $0.score > $1.score : $0.index < $1.index }
        return candidates.prefix(k).map(\.index).sorted()
    }
}
