import TensorIO
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The token statistics behind a perplexity result.
public struct PerplexityOutcome: Sendable, Equatable {
    /// log p (natural log) of every predicted token, in text order.
    public var tokenLogProbs: [Float]
    /// Ids of the text (without the prefix token).
    public var tokenCount: Int
    /// UTF-8 bytes the predicted tokens cover (the `bits_per_byte` denominator).
    public var byteCount: Int
    /// Windows scored.
    public var windowCount: Int
}

extension TaskEvaluator {
    /// Perplexity of a text: the ids are scored in windows of at most `windowTokens` tokens, each
    /// window starting afresh (no cache carried over) at the last token of the one before, so
    /// every token after the first is predicted exactly once, from at most `windowTokens − 1`
    /// tokens of context.
    ///
    /// Metrics (n = predicted tokens): `nll_per_token` (mean −log p, stderr s/√n over tokens,
    /// which ignores their correlation), `perplexity` = exp(nll_per_token) (stderr by the delta
    /// method), `bits_per_byte` = Σ −log₂ p / bytes covered by the predicted tokens.
    /// - Parameters:
    ///   - text: the text (at least two tokens, or one with `prefixToken`).
    ///   - name: the task name recorded.
    ///   - windowTokens: window length L ≥ 2 (default 512).
    ///   - prefixToken: an id put before the text (e.g. a document separator) so that the first
    ///     token is predicted too; nil leaves the first token unpredicted.
    /// - Returns: the result (`perplexity`) and the per-token log-probabilities.
    /// - Throws: `TaskError.invalidRequest` for a text with nothing to predict or L < 2;
    ///   `ModelError` from the forward pass.
    public func perplexity(text: String, name: String, windowTokens: Int = 512, prefixToken: Int? = nil) throws -> TaskReport {
        guard windowTokens >= 2 else { throw TaskError.invalidRequest(task: name, reason: "window of \(windowTokens) tokens predicts nothing") }
        let clock = ContinuousClock()
        let start = clock.now
        let ids = tokenizer.encode(text)
        let sequence = (prefixToken.map { [$0] } ?? []) + ids
        guard sequence.count >= 2 else {
            throw TaskError.invalidRequest(task: name, reason: "text of \(ids.count) token\(ids.count == 1 ? "" : "s") has nothing to predict")
        }
        var logProbs: [Float] = []
        logProbs.reserveCapacity(sequence.count - 1)
        var first = 0, windows = 0
        while first < sequence.count - 1 {
            let end = min(first + windowTokens, sequence.count)
            logProbs += try scorer.logProbabilities(tokens: Array(sequence[first..<end]))
            windows += 1
            first = end - 1
        }
        var bytes = text.utf8.count
        if prefixToken == nil { bytes -= tokenByteCount(ids[0]) }
        bytes = max(bytes, 1)

        let nll = MetricValue.mean(logProbs.map { -Double($0) })
        let ppl = exp(nll.value)
        let totalBits = nll.value * Double(nll.n) / log(2.0)
        let bitsScale = Double(nll.n) / (log(2.0) * Double(bytes))
        let metrics: [String: MetricValue] = [
            "nll_per_token": nll,
            "perplexity": MetricValue(value: ppl, n: nll.n, stderr: ppl * nll.stderr),
            "bits_per_byte": MetricValue(value: totalBits / Double(bytes), n: nll.n, stderr: nll.stderr * bitsScale),
        ]
        let result = TaskResult(task: name, kind: "perplexity", shots: 0, seed: 0, tokenization: "whole", chance: nil,
                                metrics: metrics, evaluator: Self.version, elapsedSeconds: Self.seconds(clock.now - start))
        return TaskReport(result: result, perplexity: PerplexityOutcome(tokenLogProbs: logProbs, tokenCount: ids.count,
                                                                         byteCount: bytes, windowCount: windows))
    }

    /// `perplexity(text:…)` of a UTF-8 text file; the task name is the file name.
    /// - Throws: `TaskError.io` when the file cannot be read, `TaskError.invalidFile` when it
    ///   is not UTF-8 or has nothing to predict, and what `perplexity(text:…)` throws otherwise.
    public func perplexity(file: String, windowTokens: Int = 512, prefixToken: Int? = nil) throws -> TaskReport {
        let map = try mapTaskFile(file)
        guard let text = String(validating: map.bytes.bindMemory(to: UInt8.self), as: UTF8.self) else {
            throw TaskError.invalidFile(path: file, reason: "not valid UTF-8 text")
        }
        let name = file.split(separator: "/").last.map(String.init) ?? file
        do {
            return try perplexity(text: text, name: name, windowTokens: windowTokens, prefixToken: prefixToken)
        } catch TaskError.invalidRequest(_, let reason) {
            throw TaskError.invalidFile(path: file, reason: reason)   // the file is what to fix
        }
    }

    /// Bytes of text token `id` decodes to (its byte-alphabet spelling mapped back to bytes, or
    /// its own UTF-8 for added tokens), as `Tokenizer.decode` counts them.
    func tokenByteCount(_ id: Int) -> Int {
        guard let spelling = tokenizer.tokenString(id) else { return 0 }
        let alphabet = Set(ByteLevelAlphabet.scalarForByte())
        if spelling.unicodeScalars.allSatisfy({ alphabet.contains($0.value) }) { return spelling.unicodeScalars.count }
        return spelling.utf8.count
    }
}
