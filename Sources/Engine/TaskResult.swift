/// One measured quantity of a task: its value, how many items it averages and its standard error.
public struct MetricValue: Codable, Sendable, Equatable {
    /// The estimate (a proportion, a mean, or a quantity derived from a mean).
    public var value: Double
    /// Items the estimate averages (examples, or predicted tokens for perplexity).
    public var n: Int
    /// Standard error of `value`: binomial √(p(1−p)/n) for proportions, the sample standard
    /// deviation over √n for means (0 when n < 2).
    public var stderr: Double

    /// A metric from explicit parts.
    public init(value: Double, n: Int, stderr: Double) {
        self.value = value
        self.n = n
        self.stderr = stderr
    }

    /// A proportion with its binomial standard error √(p(1−p)/n).
    /// - Parameters:
    ///   - successes: items counted as successes.
    ///   - n: items in all; 0 gives value 0 and stderr 0.
    public static func proportion(successes: Int, of n: Int) -> MetricValue {
        guard n > 0 else { return MetricValue(value: 0, n: 0, stderr: 0) }
        let p = Double(successes) / Double(n)
        return MetricValue(value: p, n: n, stderr: (p * (1 - p) / Double(n)).squareRoot())
    }

    /// The mean of `values` with its standard error s/√n (s with the n − 1 denominator; 0 for
    /// fewer than two values). Sums run in order, so the result is reproducible.
    public static func mean(_ values: [Double]) -> MetricValue {
        let n = values.count
        guard n > 0 else { return MetricValue(value: 0, n: 0, stderr: 0) }
        var sum = 0.0
        for v in values { sum += v }
        let m = sum / Double(n)
        guard n > 1 else { return MetricValue(value: m, n: n, stderr: 0) }
        var ss = 0.0
        for v in values { ss += (v - m) * (v - m) }
        return MetricValue(value: m, n: n, stderr: (ss / Double(n - 1)).squareRoot() / Double(n).squareRoot())
    }
}

/// The outcome of running one evaluation task on a model, as `wledger health` records it.
///
/// Metric names: multiple choice reports `acc`, `acc_norm`, `gold_logprob` and
/// `gold_logprob_per_byte`; exact match reports `exact_match`, `gold_logprob` and
/// `gold_logprob_per_byte` (of the first target); perplexity reports `nll_per_token`,
/// `perplexity` and `bits_per_byte`.
public struct TaskResult: Codable, Sendable, Equatable {
    /// The task's name (`arithmetic:1_digit_addition` for a BIG-bench subtask).
    public var task: String
    /// `multiple_choice`, `exact_match` or `perplexity`.
    public var kind: String
    /// Worked examples put before each question (0 for perplexity).
    public var shots: Int
    /// Seed of the subsample, the few-shot examples and the BIG-bench choice order.
    public var seed: UInt64
    /// How choices and answers were tokenized after the prompt (`ContinuationTokenization`).
    public var tokenization: String
    /// Expected `acc` of guessing uniformly among the choices; nil for other kinds.
    public var chance: Double?
    /// Metric name → value, n and standard error.
    public var metrics: [String: MetricValue]
    /// Which evaluator produced this, with its version (`TaskEvaluator.version`): results from
    /// different versions may differ because prompts or tokenization changed.
    public var evaluator: String
    /// Wall-clock seconds the evaluation took.
    public var elapsedSeconds: Double

    /// A result from explicit parts (the evaluator fills these in).
    public init(task: String, kind: String, shots: Int, seed: UInt64, tokenization: String, chance: Double?,
                metrics: [String: MetricValue], evaluator: String, elapsedSeconds: Double) {
        self.task = task; self.kind = kind; self.shots = shots; self.seed = seed
        self.tokenization = tokenization; self.chance = chance; self.metrics = metrics
        self.evaluator = evaluator; self.elapsedSeconds = elapsedSeconds
    }
}
