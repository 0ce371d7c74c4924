/// How a continuation (a choice or an answer) is tokenized after its prompt.
public enum ContinuationTokenization: String, Codable, Sendable, CaseIterable {
    /// Prompt and continuation are tokenized separately and the ids concatenated, as BIG-bench's
    /// reference models do (`_gpt_batch_tokenize`). A prompt ending in a space ("\nA: ") then ends
    /// in a lone space token, which byte-level BPE models rarely saw in training.
    case separate
    /// lm-evaluation-harness style: trailing whitespace of the prompt moves to the front of the
    /// continuation, the prompt + continuation text is tokenized whole, and the continuation's ids
    /// are those after the prompt's (or, should the tokenizer merge across that boundary, the
    /// continuation tokenized on its own). Text is unchanged; only the split point moves.
    case joined
}

/// One multiple-choice question: a context, the choices that may follow it, and which are right.
public struct MultipleChoiceQuestion: Sendable, Equatable {
    /// The prompt the choices continue (few-shot examples included).
    public var context: String
    /// The candidate continuations, in the order scored.
    public var choices: [String]
    /// The index of the reference answer, whose log-probability `gold_logprob` reports.
    public var gold: Int
    /// Indices of every choice counted correct (the gold one and any with the same top score),
    /// ascending.
    public var correct: [Int]

    /// - Parameters:
    ///   - context: the prompt.
    ///   - choices: at least one continuation.
    ///   - gold: the reference answer's index.
    ///   - correct: choices counted correct; default `[gold]`.
    /// - Precondition: `gold` and every `correct` index lie in `choices.indices` (a programmer error).
    public init(context: String, choices: [String], gold: Int, correct: [Int]? = nil) {
        precondition(choices.indices.contains(gold), "gold \(gold) outside \(choices.count) choices")
        let correct = (correct ?? [gold]).sorted()
        precondition(correct.allSatisfy { choices.indices.contains($0) }, "correct index outside the choices")
        self.context = context
        self.choices = choices
        self.gold = gold
        self.correct = correct
    }

    /// Expected accuracy of picking a choice uniformly at random.
    public var chance: Double { Double(correct.count) / Double(choices.count) }

    /// The worked example this question makes when shown before another: context + gold answer.
    public var solvedText: String { context + choices[gold] }
}

/// The scores of one multiple-choice question.
public struct MultipleChoiceOutcome: Sendable, Equatable, Codable {
    /// The question's index in its task.
    public var example: Int
    /// Σ log p (natural log) of each choice's tokens after the context.
    public var logProbs: [Double]
    /// UTF-8 bytes of each choice as written (at least 1), the `acc_norm` denominators.
    public var byteCounts: [Int]
    /// The reference answer.
    public var gold: Int
    /// Choices counted correct.
    public var correct: [Int]
    /// argmax of `logProbs` (the first on ties).
    public var predicted: Int
    /// argmax of `logProbs[i] / byteCounts[i]` (the first on ties).
    public var predictedNormalized: Int

    /// Whether `predicted` is a correct choice (`acc`).
    public var isCorrect: Bool { correct.contains(predicted) }
    /// Whether `predictedNormalized` is a correct choice (`acc_norm`).
    public var isCorrectNormalized: Bool { correct.contains(predictedNormalized) }
    /// log p of the gold choice.
    public var goldLogProb: Double { logProbs[gold] }
    /// log p of the gold choice per byte of it.
    public var goldLogProbPerByte: Double { logProbs[gold] / Double(byteCounts[gold]) }

    /// Builds the outcome from per-choice log-probabilities.
    public init(example: Int, logProbs: [Double], byteCounts: [Int], gold: Int, correct: [Int]) {
        self.example = example
        self.logProbs = logProbs
        self.byteCounts = byteCounts
        self.gold = gold
        self.correct = correct
        predicted = Self.argmax(logProbs)
        predictedNormalized = Self.argmax(zip(logProbs, byteCounts).map { $0 / Double($1) })
    }

    static func argmax(_ values: [Double]) -> Int {
        var best = 0
        for i in values.indices.dropFirst() where values[i] > values[best] { best = i }
        return best
    }
}

/// The four multiple-choice metrics over a set of outcomes.
func multipleChoiceMetrics(_ outcomes: [MultipleChoiceOutcome]) -> [String: MetricValue] {
    let n = outcomes.count
    return [
        "acc": .proportion(successes: outcomes.filter(\.isCorrect).count, of: n),
        "acc_norm": .proportion(successes: outcomes.filter(\.isCorrectNormalized).count, of: n),
        "gold_logprob": .mean(outcomes.map(\.goldLogProb)),
        "gold_logprob_per_byte": .mean(outcomes.map(\.goldLogProbPerByte)),
    ]
}
