/// Text decoded greedily after a prompt.
public struct Generation: Sendable, Equatable {
    /// The ids decoded (the stop string's tokens included, a special token that ended decoding not).
    public var tokens: [Int]
    /// The decoded text, cut before the stop string that ended decoding.
    public var text: String
    /// The stop string that ended decoding; nil when `maxTokens` ran out or a special token
    /// (end of sequence) was produced.
    public var stop: String?
}

/// The answer of one exact-match example.
public struct ExactMatchOutcome: Sendable, Equatable, Codable {
    /// The example's index in its task.
    public var example: Int
    /// What the model decoded, up to and including the stop string that ended decoding.
    public var generated: String
    /// The answer extracted from it (BIG-bench's stop string and regex rules, whitespace trimmed).
    public var answer: String
    /// The accepted answers, whitespace trimmed.
    public var targets: [String]
    /// Whether `answer` equals one of `targets`.
    public var isCorrect: Bool
    /// log p (natural log) of the first target as a continuation of the prompt.
    public var goldLogProb: Double
    /// UTF-8 bytes of the first target (at least 1).
    public var goldBytes: Int
}

extension TaskEvaluator {
    /// Decodes greedily after `prefix` until a stop string appears, a special token (such as end
    /// of sequence) is produced, or `maxTokens` tokens have been decoded.
    ///
    /// Stop strings are looked for in the decoded text after its leading whitespace, so an answer
    /// that begins with a newline runs on. Each step reuses the cached keys and values of
    /// everything before it (`Scorer.greedyNext`).
    /// - Parameters:
    ///   - prefix: the prompt's ids (not empty).
    ///   - maxTokens: most tokens to decode.
    ///   - stop: strings that end decoding, e.g. `["\n"]`.
    /// - Returns: the ids and text decoded, and which stop string ended decoding.
    /// - Throws: `ModelError.invalidInput` for an empty prefix, ids outside the vocabulary or
    ///   too many positions.
    public func generate(prefix: [Int], maxTokens: Int, stop: [String]) throws -> Generation {
        var tokens: [Int] = []
        var sequence = prefix
        let stops = stop.filter { !$0.isEmpty }
        while tokens.count < maxTokens {
            let (id, _) = try scorer.greedyNext(tokens: sequence)
            if tokenizer.isSpecialToken(id) { break }
            tokens.append(id)
            sequence.append(id)
            if let g = stopped(tokens, stops: stops) { return g }
        }
        return Generation(tokens: tokens, text: tokenizer.decode(tokens), stop: nil)
    }

    /// The generation `tokens` make if one of `stops` occurs in their text after its leading
    /// whitespace (the earliest occurrence wins), else nil.
    func stopped(_ tokens: [Int], stops: [String]) -> Generation? {
        let text = tokenizer.decode(tokens)
        let body = text.drop { $0.isWhitespace }
        var first: (Range<String.Index>, String)?
        for s in stops {
            guard let r = body.firstRange(of: s) else { continue }
            if let f = first, f.0.lowerBound <= r.lowerBound { continue }
            first = (r, s)
        }
        guard let (r, s) = first else { return nil }
        return Generation(tokens: tokens, text: String(text[..<r.lowerBound]), stop: s)
    }

    /// How many prompts `answers` decodes together.
    static let sequencesPerBatch = 8

    /// `answer` for several prompts at once, in the same order, with the same results up to F32
    /// rounding: each prompt runs once with its first target appended (its log-probability comes
    /// from that pass), then the prompts decode greedily together, one token per step for every
    /// unfinished one (`Model.forwardSteps`, each with its own KV cache).
    func answers(_ items: [(prompt: String, targets: [String], example: Int)], task: String, maxTokens: Int,
                 extractor: AnswerExtractor) throws -> [ExactMatchOutcome] {
        let stops = extractor.stops.filter { !$0.isEmpty }
        let model = scorer.model, ws = scorer.workspace
        struct Decoding {
            var cache: KVCache
            var tokens: [Int] = []
            var result: Generation?
            var goldLogProb = 0.0
        }
        /// Takes the greedy token `id` into `d` (as `generate` does).
        func accept(_ id: Int, into d: inout Decoding) {
            if tokenizer.isSpecialToken(id) {
                d.result = Generation(tokens: d.tokens, text: tokenizer.decode(d.tokens), stop: nil)
                return
            }
            d.tokens.append(id)
            if let g = stopped(d.tokens, stops: stops) {
                d.result = g
            } else if d.tokens.count >= maxTokens {
                d.result = Generation(tokens: d.tokens, text: tokenizer.decode(d.tokens), stop: nil)
            }
        }
        var decodings: [Decoding] = []
        for item in items {
            let prefix = encodeGenerationPrefix(item.prompt)
            guard !prefix.isEmpty else { throw TaskError.invalidRequest(task: task, reason: "example \(item.example) has an empty prompt") }
            let (context, continuation) = encode(context: item.prompt, continuation: item.targets[0])
            guard !continuation.isEmpty else {
                throw TaskError.invalidRequest(task: task, reason: "example \(item.example): target '\(item.targets[0])' has no tokens")
            }
            // Room for the prompt, its gold target and a first stretch of decoding; `forwardSteps`
            // grows the cache when an answer runs longer (maxTokens may be huge).
            let room = prefix.count + max(continuation.count, min(max(maxTokens, 0), 64)) + 1
            var d = Decoding(cache: KVCache(config: model.config, capacity: min(room, max(model.config.maxPositionEmbeddings, 1))))
            var first = 0
            if context == prefix {
                let all = prefix + continuation
                try model.forward(all, cache: d.cache, workspace: ws, logitRows: (prefix.count - 1)..<(all.count - 1)) { r, logits in
                    if r == prefix.count - 1 { first = Scorer.argmax(logits) }
                    d.goldLogProb += Scorer.logSoftmax(logits, at: all[r + 1])
                }
                d.cache.truncate(to: prefix.count)
            } else {
                try model.forward(prefix, cache: d.cache, workspace: ws, logitRows: (prefix.count - 1)..<prefix.count) { _, logits in
                    first = Scorer.argmax(logits)
                }
                d.goldLogProb = try scorer.scoreContinuation(prefix: context, continuation: continuation).sumLogProb
            }
            if maxTokens <= 0 {
                d.result = Generation(tokens: [], text: "", stop: nil)
            } else {
                accept(first, into: &d)
            }
            decodings.append(d)
        }
        while true {
            let active = decodings.indices.filter { decodings[$0].result == nil }
            if active.isEmpty { break }
            // One step for every unfinished prompt, in groups of at most the workspace's rows.
            var start = 0
            while start < active.count {
                let group = Array(active[start..<min(start + max(ws.maxTokens, 1), active.count)])
                start += group.count
                var next = [Int](repeating: 0, count: group.count)
                try model.forwardSteps(group.map { decodings[$0].tokens.last! }, caches: group.map { decodings[$0].cache }, workspace: ws) { t, logits in
                    next[t] = Scorer.argmax(logits)
                }
                for (t, k) in group.enumerated() { accept(next[t], into: &decodings[k]) }
            }
        }
        return zip(items, decodings).map { item, d in
            let generation = d.result!
            let generated = generation.text + (generation.stop ?? "")
            let answer = extractor.extract(generated)
            let trimmed = item.targets.map { $0.trimmingWhitespace() }
            return ExactMatchOutcome(example: item.example, generated: generated, answer: answer, targets: trimmed,
                                     isCorrect: trimmed.contains(answer), goldLogProb: d.goldLogProb,
                                     goldBytes: max(1, item.targets[0].utf8.count))
        }
    }

    /// `generate(prefix:maxTokens:stop:)` after the ids of `prompt` as `tokenization` splits a
    /// prompt from its answer (see `encodeGenerationPrefix`).
    public func generate(prompt: String, maxTokens: Int, stop: [String]) throws -> Generation {
        try generate(prefix: encodeGenerationPrefix(prompt), maxTokens: maxTokens, stop: stop)
    }

    /// Generates the answer to one prompt and compares it with `targets`; also scores the first
    /// target as a continuation.
    func answer(prompt: String, targets: [String], example: Int, task: String, maxTokens: Int,
                extractor: AnswerExtractor) throws -> ExactMatchOutcome {
        let prefix = encodeGenerationPrefix(prompt)
        guard !prefix.isEmpty else { throw TaskError.invalidRequest(task: task, reason: "example \(example) has an empty prompt") }
        let generation = try generate(prefix: prefix, maxTokens: maxTokens, stop: extractor.stops)
        let generated = generation.text + (generation.stop ?? "")
        let answer = extractor.extract(generated)
        let trimmed = targets.map { $0.trimmingWhitespace() }
        let gold = targets[0]
        let (context, continuation) = encode(context: prompt, continuation: gold)
        guard !continuation.isEmpty else {
            throw TaskError.invalidRequest(task: task, reason: "example \(example): target '\(gold)' has no tokens")
        }
        let goldLogProb = try scorer.scoreContinuation(prefix: context, continuation: continuation).sumLogProb
        return ExactMatchOutcome(example: example, generated: generated, answer: answer, targets: trimmed,
                                 isCorrect: trimmed.contains(answer), goldLogProb: goldLogProb, goldBytes: max(1, gold.utf8.count))
    }
}

/// The metrics of exact-match outcomes.
func exactMatchMetrics(_ outcomes: [ExactMatchOutcome]) -> [String: MetricValue] {
    [
        "exact_match": .proportion(successes: outcomes.filter(\.isCorrect).count, of: outcomes.count),
        "gold_logprob": .mean(outcomes.map(\.goldLogProb)),
        "gold_logprob_per_byte": .mean(outcomes.map { $0.goldLogProb / Double($0.goldBytes) }),
    ]
}

/// BIG-bench's answer post-processing (`model_utils.postprocess_output`), preceded by a cut at
/// the first newline after the answer starts:
/// 1. text after the first newline that follows non-whitespace is dropped;
/// 2. with a `stop_string`, text after its first occurrence (not at position 0) is dropped;
/// 3. with an `output_regex` (or, when the task has neither, BIG-bench's default
///    `[^.?!;\n]+`), the answer is the first match (its capture group when the regex has one),
///    or empty when nothing matches;
/// 4. whitespace is trimmed.
struct AnswerExtractor {
    static let defaultPattern = #"[^\.\?\!\;\n]+"#
    let stopString: String?
    let regex: Regex<AnyRegexOutput>?
    /// Strings that end generation.
    var stops: [String] { ["\n"] + (stopString.map { [$0] } ?? []) }

    init(task: BigBenchTask) throws {
        stopString = task.stopString
        let pattern = task.outputRegex ?? (task.stopString == nil ? Self.defaultPattern : nil)
        if let pattern, !pattern.isEmpty {
            do {
                regex = try Regex(pattern)
            } catch {
                throw TaskError.invalidField(path: task.path, field: "output_regex", reason: "cannot compile '\(pattern)': \(error)")
            }
        } else {
            regex = nil
        }
    }

    func extract(_ generated: String) -> String {
        var text = Substring(generated)
        let bodyStart = text.firstIndex { !$0.isWhitespace } ?? text.endIndex
        if let newline = text[bodyStart...].firstIndex(of: "\n") { text = text[..<newline] }
        if let stopString, !stopString.isEmpty, let r = text.firstRange(of: stopString), r.lowerBound > text.startIndex {
            text = text[..<r.upperBound]
        }
        if let regex {
            guard let match = try? regex.firstMatch(in: text) else { return "" }
            let output = match.output
            if output.count > 1, let group = output[1].substring { text = group } else { text = text[match.range] }
        }
        return String(text).trimmingWhitespace()
    }
}

fileprivate extension String {
    /// The string without leading and trailing whitespace (Unicode `isWhitespace`, newlines included).
    func trimmingWhitespace() -> String {
        guard let first = firstIndex(where: { !$0.isWhitespace }) else { return "" }
        let last = lastIndex { !$0.isWhitespace }!
        return String(self[first...last])
    }
}
