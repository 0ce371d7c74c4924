#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Scores token sequences with a model, keeping a KV cache between calls: each call reuses the
/// longest prefix it shares with the previous one, so multiple-choice questions pay for their
/// shared context once.
///
/// A scorer holds mutable state (its cache and workspace); use one per thread.
public final class Scorer {
    public let model: Model
    public let cache: KVCache
    public let workspace: ForwardWorkspace
    /// Positions the last call took from the cache instead of recomputing them.
    public private(set) var lastReusedPositions = 0

    /// - Parameter maxTokens: batch size for prompt processing (see `ForwardWorkspace`).
    public init(model: Model, maxTokens: Int = 128) {
        self.model = model
        cache = model.makeCache()
        workspace = model.makeWorkspace(maxTokens: maxTokens)
    }

    /// log p(tokens[i] | tokens[..<i]) for i = 1 ..< T, natural log.
    /// - Returns: T − 1 values (none for fewer than two tokens).
    /// - Throws: `ModelError.invalidInput` for ids outside the vocabulary or too many positions.
    public func logProbabilities(tokens: [Int]) throws -> [Float] {
        guard tokens.count >= 2 else { return [] }
        var out = [Float](repeating: 0, count: tokens.count - 1)
        try run(tokens, logitPositions: 0..<(tokens.count - 1)) { pos, logits in
            out[pos] = Float(Self.logSoftmax(logits, at: tokens[pos + 1]))
        }
        return out
    }

    /// The log-probability of `continuation` after `prefix`, and whether every continuation token
    /// is the model's most likely next token (greedy decoding would produce it).
    ///
    /// The prefix's keys and values are reused from the previous call when it had the same prefix.
    /// - Returns: Σ log p(continuation[i] | prefix + continuation[..<i]) in double, and the greedy flag.
    /// - Throws: `ModelError.invalidInput` for an empty prefix or continuation, ids outside the
    ///   vocabulary or too many positions.
    public func scoreContinuation(prefix: [Int], continuation: [Int]) throws -> (sumLogProb: Double, isGreedy: Bool) {
        guard !prefix.isEmpty, !continuation.isEmpty else {
            throw ModelError.invalidInput(path: model.path, reason: "scoring needs a non-empty prefix and continuation")
        }
        let tokens = prefix + continuation
        var sum: Double = 0
        var greedy = true
        try run(tokens, logitPositions: (prefix.count - 1)..<(tokens.count - 1)) { pos, logits in
            let next = tokens[pos + 1]
            sum += Self.logSoftmax(logits, at: next)
            if Self.argmax(logits) != next { greedy = false }
        }
        return (sum, greedy)
    }

    /// `scoreContinuation` for several (prefix, continuation) pairs at once, in the same order.
    ///
    /// The prefixes' longest common part goes through the model once (or comes from the cache);
    /// the rest of each pair runs as one branch of a batch (`Model.forwardBranches`), so the
    /// weights are read once per batch instead of once per pair. Results equal `scoreContinuation`'s
    /// up to F32 rounding. Pairs too long for one batch are scored one by one.
    /// - Throws: as `scoreContinuation`.
    public func scoreContinuations(_ pairs: [(prefix: [Int], continuation: [Int])]) throws -> [(sumLogProb: Double, isGreedy: Bool)] {
        for p in pairs where p.prefix.isEmpty || p.continuation.isEmpty {
            throw ModelError.invalidInput(path: model.path, reason: "scoring needs a non-empty prefix and continuation")
        }
        guard pairs.count > 1 else { return try pairs.map { try scoreContinuation(prefix: $0.prefix, continuation: $0.continuation) } }
        // The shared context: common to every prefix, leaving each pair at least its last prefix token.
        var shared = pairs.map { $0.prefix.count - 1 }.min()!
        let first = pairs[0].prefix
        for p in pairs.dropFirst() {
            var n = 0
            while n < shared && p.prefix[n] == first[n] { n += 1 }
            shared = n
        }
        var results = [(sumLogProb: Double, isGreedy: Bool)](repeating: (0, true), count: pairs.count)
        var pending: [Int] = []
        var pendingTokens = 0
        func flush() throws {
            guard !pending.isEmpty else { return }
            let reuse = min(cache.sharedPrefixLength(with: first[..<shared]), shared)
            cache.truncate(to: reuse)
            lastReusedPositions = reuse
            if reuse < shared {
                try model.forward(Array(first[reuse..<shared]), cache: cache, workspace: workspace)
            }
            let branches = pending.map { Array(pairs[$0].prefix[shared...]) + pairs[$0].continuation }
            try model.forwardBranches(branches, cache: cache, workspace: workspace) { b, i, logits in
                let pair = pairs[pending[b]]
                let firstLogit = pair.prefix.count - 1 - shared
                guard i >= firstLogit, i + 1 < branches[b].count else { return }
                let next = branches[b][i + 1]
                results[pending[b]].sumLogProb += Self.logSoftmax(logits, at: next)
                if Self.argmax(logits) != next { results[pending[b]].isGreedy = false }
            }
            pending.removeAll()
            pendingTokens = 0
        }
        for (k, p) in pairs.enumerated() {
            let length = p.prefix.count - shared + p.continuation.count
            if length > workspace.maxTokens {
                results[k] = try scoreContinuation(prefix: p.prefix, continuation: p.continuation)
                continue
            }
            if pendingTokens + length > workspace.maxTokens { try flush() }
            pending.append(k)
            pendingTokens += length
        }
        try flush()
        return results
    }

    /// The most likely token after `tokens` and its probability.
    /// - Throws: `ModelError.invalidInput` for no tokens, ids outside the vocabulary or too many positions.
    public func greedyNext(tokens: [Int]) throws -> (id: Int, prob: Float) {
        guard !tokens.isEmpty else { throw ModelError.invalidInput(path: model.path, reason: "no tokens to continue") }
        var result = (id: 0, prob: Float(0))
        try run(tokens, logitPositions: (tokens.count - 1)..<tokens.count) { _, logits in
            let id = Self.argmax(logits)
            result = (id, Float(exp(Self.logSoftmax(logits, at: id))))
        }
        return result
    }

    /// Brings the cache to `tokens` and visits the logits of `logitPositions` (positions in
    /// `tokens`), recomputing only from the first position that is not cached or whose logits are
    /// needed.
    private func run(_ tokens: [Int], logitPositions: Range<Int>,
                     _ visit: (Int, UnsafeBufferPointer<Float>) throws -> Void) throws {
        let reuse = min(cache.sharedPrefixLength(with: tokens), logitPositions.lowerBound)
        cache.truncate(to: reuse)
        lastReusedPositions = reuse
        let rest = Array(tokens[reuse...])
        let rows = (logitPositions.lowerBound - reuse)..<(logitPositions.upperBound - reuse)
        do {
            try model.forward(rest, cache: cache, workspace: workspace, logitRows: rows) { r, logits in
                try visit(r + reuse, logits)
            }
        } catch {
            cache.truncate(to: min(cache.count, reuse))
            throw error
        }
    }

    /// log softmax(logits)[index], with the sum of exponentials taken in double.
    static func logSoftmax(_ logits: UnsafeBufferPointer<Float>, at index: Int) -> Double {
        var m = -Float.infinity
        for z in logits { m = max(m, z) }
        var sum: Double = 0
        for z in logits { sum += Double(expf(z - m)) }
        return Double(logits[index] - m) - log(sum)
    }

    /// The index of the largest logit (the first on ties).
    static func argmax(_ logits: UnsafeBufferPointer<Float>) -> Int {
        var best = 0
        for i in 1..<logits.count where logits[i] > logits[best] { best = i }
        return best
    }
}
