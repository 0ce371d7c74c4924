/// The pseudo-random numbers of evaluation tasks (subsamples, few-shot examples, choice order):
/// SplitMix64, with sampling routines written out here rather than taken from the standard
/// library, so that the same seed gives the same prompts on every machine and Swift version.
///
/// ```swift
/// var rng = TaskRandom(seed: 42, stream: 7)   // example 7's own sequence
/// let shots = rng.sample(2, from: 100)        // two distinct indices below 100
/// ```
public struct TaskRandom: Sendable {
    /// The generator's state (advanced by a fixed odd constant per draw).
    public private(set) var state: UInt64

    /// A generator for `seed`; different `stream`s give unrelated sequences for the same seed
    /// (used to give every example its own sequence, independent of which others are evaluated).
    /// - Parameters:
    ///   - seed: the user's seed.
    ///   - stream: a sub-sequence number, e.g. an example index.
    public init(seed: UInt64, stream: UInt64 = 0) {
        state = seed
        if stream != 0 {
            var s = TaskRandom(seed: stream ^ 0x5851_F42D_4C95_7F2D)
            state ^= s.next()
        }
    }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A uniform integer in `0..<n`, without modulo bias (draws above the largest multiple of `n`
    /// are rejected).
    /// - Precondition: `n > 0` (a programmer error otherwise).
    public mutating func next(below n: Int) -> Int {
        precondition(n > 0, "next(below:) needs a positive bound")
        let bound = UInt64(n)
        let limit = UInt64.max - UInt64.max % bound
        while true {
            let r = next()
            if r < limit { return Int(r % bound) }
        }
    }

    /// Shuffles `values` in place (Fisher–Yates, from the back).
    public mutating func shuffle<T>(_ values: inout [T]) {
        guard values.count > 1 else { return }
        for i in stride(from: values.count - 1, to: 0, by: -1) {
            values.swapAt(i, next(below: i + 1))
        }
    }

    /// `k` distinct integers below `n`, in the order drawn (a partial Fisher–Yates shuffle).
    /// - Precondition: `0 <= k <= n`.
    public mutating func sample(_ k: Int, from n: Int) -> [Int] {
        precondition(k >= 0 && k <= n, "cannot sample \(k) of \(n)")
        var pool = Array(0..<n)
        for i in 0..<k {
            pool.swapAt(i, i + next(below: n - i))
        }
        return Array(pool[..<k])
    }
}
