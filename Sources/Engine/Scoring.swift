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

    /// `scoreContinuation` for several (prefix, continuation) pairs at once, in the same order
    /// (one question's choices: see `scoreQuestions`).
    /// - Throws: as `scoreContinuation`.
    public func scoreContinuations(_ pairs: [(prefix: [Int], continuation: [Int])]) throws -> [(sumLogProb: Double, isGreedy: Bool)] {
        try scoreQuestions([pairs])[0]
    }

    /// `scoreContinuation` for every (prefix, continuation) pair of several questions, grouped
    /// as given. Results equal `scoreContinuation`'s up to F32 rounding.
    ///
    /// The part of the prefixes that all pairs share comes from (or goes into) the cache; then
    /// as many questions as fit in one batch run together (`Model.forwardTree`): each question's
    /// common context once, as a root, and each pair's remainder as a child of it, so a weight
    /// matrix is read once per batch rather than once per pair. A question too long for one batch
    /// is split over several (repeating its context); a pair too long even alone is scored by
    /// `scoreContinuation`.
    /// - Throws: as `scoreContinuation`.
    public func scoreQuestions(_ questions: [[(prefix: [Int], continuation: [Int])]]) throws -> [[(sumLogProb: Double, isGreedy: Bool)]] {
        var results = questions.map { [(sumLogProb: Double, isGreedy: Bool)](repeating: (0, true), count: $0.count) }
        try visitQuestions(questions) { q, j, i, logits in
            let next = questions[q][j].continuation[i]
            results[q][j].sumLogProb += Self.logSoftmax(logits, at: next)
            if Self.argmax(logits) != next { results[q][j].isGreedy = false }
        }
        return results
    }

    /// For every (prefix, continuation) pair, the model's most likely token at each position of
    /// the continuation, teacher-forced: element i is the argmax after prefix + continuation[..<i].
    /// The pairs run batched as in `scoreQuestions` (one question each).
    /// - Throws: as `scoreContinuation`.
    public func greedyTokens(_ pairs: [(prefix: [Int], continuation: [Int])]) throws -> [[Int]] {
        var results = pairs.map { [Int](repeating: 0, count: $0.continuation.count) }
        try visitQuestions(pairs.map { [$0] }) { q, _, i, logits in results[q][i] = Self.argmax(logits) }
        return results
    }

    /// The batching behind `scoreQuestions`: visits, for every pair j of question q and every
    /// index i of its continuation, the logits after prefix + continuation[..<i], in some order.
    private func visitQuestions(_ questions: [[(prefix: [Int], continuation: [Int])]],
                                _ visit: (_ question: Int, _ pair: Int, _ index: Int, UnsafeBufferPointer<Float>) -> Void) throws {
        for q in questions {
            for p in q where p.prefix.isEmpty || p.continuation.isEmpty {
                throw ModelError.invalidInput(path: model.path, reason: "scoring needs a non-empty prefix and continuation")
            }
        }
        /// One pair on its own, through the cache.
        func alone(_ q: Int, _ j: Int) throws {
            let p = questions[q][j]
            let tokens = p.prefix + p.continuation
            try run(tokens, logitPositions: (p.prefix.count - 1)..<(tokens.count - 1)) { pos, logits in
                visit(q, j, pos - (p.prefix.count - 1), logits)
            }
        }
        let all = questions.flatMap { $0 }
        guard let firstPair = all.first else { return }
        if all.count == 1 { return try alone(questions.firstIndex { !$0.isEmpty }!, 0) }
        /// Length of the common prefix of `prefixes`, leaving each at least its last token.
        func common(_ prefixes: [[Int]], from: Int) -> Int {
            var n = prefixes.map { $0.count - 1 }.min()!
            let first = prefixes[0]
            for p in prefixes.dropFirst() {
                var k = from
                while k < n && p[k] == first[k] { k += 1 }
                n = k
            }
            return max(n, from)
        }
        let cached = common(all.map(\.prefix), from: 0)
        let stem = Array(firstPair.prefix[..<cached])
        // Per question: its root (context beyond the cached stem) and per pair the child tokens.
        // A question whose root and children do not fit one batch is split into several plans,
        // each repeating the root; a pair that does not fit even alone with its root is scored by
        // itself.
        struct Plan { var question: Int; var root: [Int]; var pairs: [Int]; var children: [[Int]]; var firstLogit: [Int]; var tokens: Int }
        var plans: [Plan] = []
        var lone: [(question: Int, pair: Int)] = []
        for (qi, q) in questions.enumerated() where !q.isEmpty {
            let shared = common(q.map(\.prefix), from: cached)
            let root = Array(q[0].prefix[cached..<shared])
            var plan = Plan(question: qi, root: root, pairs: [], children: [], firstLogit: [], tokens: root.count)
            for (j, p) in q.enumerated() {
                let child = Array(p.prefix[shared...]) + p.continuation
                if root.count + child.count > workspace.maxTokens {
                    lone.append((qi, j))
                    continue
                }
                if plan.tokens + child.count > workspace.maxTokens {
                    plans.append(plan)
                    plan = Plan(question: qi, root: root, pairs: [], children: [], firstLogit: [], tokens: root.count)
                }
                plan.pairs.append(j)
                plan.children.append(child)
                plan.firstLogit.append(p.prefix.count - 1 - shared)
                plan.tokens += child.count
            }
            if !plan.pairs.isEmpty { plans.append(plan) }
        }
        var batch: [Plan] = []
        var batchTokens = 0
        func flush() throws {
            guard !batch.isEmpty else { return }
            let reuse = min(cache.sharedPrefixLength(with: stem), cached)
            cache.truncate(to: reuse)
            lastReusedPositions = reuse
            if reuse < cached { try model.forward(Array(stem[reuse...]), cache: cache, workspace: workspace) }
            var nodes: [Model.BranchNode] = []
            var owner: [(plan: Int, pair: Int)?] = []
            for (k, plan) in batch.enumerated() {
                var parent: Int? = nil
                if !plan.root.isEmpty {
                    parent = nodes.count
                    nodes.append(Model.BranchNode(tokens: plan.root, logits: 0..<0))
                    owner.append(nil)
                }
                for (j, child) in plan.children.enumerated() {
                    nodes.append(Model.BranchNode(tokens: child, parent: parent, logits: plan.firstLogit[j]..<(child.count - 1)))
                    owner.append((k, j))
                }
            }
            try model.forwardTree(nodes, cache: cache, workspace: workspace) { n, i, logits in
                guard let (k, j) = owner[n] else { return }
                let plan = batch[k]
                visit(plan.question, plan.pairs[j], i - plan.firstLogit[j], logits)
            }
            batch.removeAll()
            batchTokens = 0
        }
        for plan in plans {
            if batchTokens + plan.tokens > workspace.maxTokens { try flush() }
            batch.append(plan)
            batchTokens += plan.tokens
        }
        try flush()
        for (q, j) in lone { try alone(q, j) }
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
