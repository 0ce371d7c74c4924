/// How an evaluation task is run.
public struct TaskOptions: Sendable, Equatable {
    /// Worked examples (other examples of the task) put before each question.
    public var shots: Int
    /// Evaluate a subsample of this many examples (drawn with `seed`); nil for all.
    public var limit: Int?
    /// Seed of the subsample, the shots and the BIG-bench choice order.
    public var seed: UInt64
    /// Multiple choice or exact match (BIG-bench tasks; JSONL tasks are always multiple choice).
    public var mode: TaskMode
    /// Most tokens decoded per answer in exact-match mode.
    public var maxGeneratedTokens: Int

    /// Options with BIG-bench's seed (42), zero shots, every example, the mode the task prefers.
    public init(shots: Int = 0, limit: Int? = nil, seed: UInt64 = 42, mode: TaskMode = .automatic, maxGeneratedTokens: Int = 32) {
        self.shots = shots
        self.limit = limit
        self.seed = seed
        self.mode = mode
        self.maxGeneratedTokens = maxGeneratedTokens
    }
}

/// A task's result with the per-example details behind it.
public struct TaskReport: Sendable {
    /// The summary recorded by `wledger health`.
    public var result: TaskResult
    /// Per-question scores (multiple choice), in evaluation order.
    public var multipleChoice: [MultipleChoiceOutcome] = []
    /// Per-example answers (exact match), in evaluation order.
    public var exactMatch: [ExactMatchOutcome] = []
    /// Token statistics (perplexity).
    public var perplexity: PerplexityOutcome?
}

/// Runs evaluation tasks on a model: multiple-choice scoring, greedy generation with exact
/// match, and perplexity.
///
/// ```swift
/// let model = try Model(directory: dir)
/// let evaluator = TaskEvaluator(model: model, tokenizer: try Tokenizer(modelDirectory: dir))
/// let task = try BigBenchTask.load(tasks + "/arithmetic/1_digit_addition")[0]
/// let report = try evaluator.evaluate(task, options: TaskOptions(shots: 2, limit: 50, mode: .multipleChoice))
/// print(report.result.metrics["acc"]!)   // value, n, stderr
/// ```
///
/// An evaluator owns a `Scorer` (a KV cache and workspace): use one per thread.
public final class TaskEvaluator {
    /// Evaluator id and version recorded in every `TaskResult`. Bump it when prompts, tokenization
    /// or metrics change, so that results of different versions are not compared.
    public static let version = "wledger-tasks/1"

    /// Scores and decodes; its KV cache carries shared prompt prefixes between calls.
    public let scorer: Scorer
    /// The model's tokenizer.
    public let tokenizer: Tokenizer
    /// How choices and answers are tokenized after their prompt.
    public let tokenization: ContinuationTokenization
    /// The context used when a prompt has no tokens (some BIG-bench tasks score bare sentences):
    /// lm-evaluation-harness conditions on the end-of-text token. Default: the tokenizer's
    /// `<|endoftext|>` when it has one, else its EOS id; nil makes an empty prompt an error.
    public var emptyPromptToken: Int?

    /// - Parameters:
    ///   - model: the model to evaluate.
    ///   - tokenizer: its tokenizer.
    ///   - tokenization: see `ContinuationTokenization` (default `.joined`).
    ///   - batchTokens: prompt-processing batch size of the scorer's workspace.
    public convenience init(model: Model, tokenizer: Tokenizer, tokenization: ContinuationTokenization = .joined, batchTokens: Int = 256) {
        self.init(scorer: Scorer(model: model, maxTokens: batchTokens), tokenizer: tokenizer, tokenization: tokenization)
    }

    /// An evaluator over an existing scorer (whose cache it will use and change).
    public init(scorer: Scorer, tokenizer: Tokenizer, tokenization: ContinuationTokenization = .joined) {
        self.scorer = scorer
        self.tokenizer = tokenizer
        self.tokenization = tokenization
        emptyPromptToken = tokenizer.id(of: "<|endoftext|>") ?? tokenizer.eosTokenID
    }

    // MARK: Tokenization

    /// The ids of `context` and of `continuation` after it, split as `tokenization` says.
    /// A context without tokens becomes `[emptyPromptToken]` when that is set.
    /// - Returns: (context ids, continuation ids); with `.joined`, `context + continuation`
    ///   equals the ids of the whole text whenever the tokenizer does not merge across the split.
    public func encode(context: String, continuation: String) -> (context: [Int], continuation: [Int]) {
        let (c, k) = split(context: context, continuation: continuation)
        if c.isEmpty, let t = emptyPromptToken { return ([t], k) }
        return (c, k)
    }

    private func split(context: String, continuation: String) -> (context: [Int], continuation: [Int]) {
        switch tokenization {
        case .separate:
            return (tokenizer.encode(context), tokenizer.encode(continuation))
        case .joined:
            let (head, tail) = Self.splitTrailingWhitespace(context)
            let contextIDs = tokenizer.encode(head)
            let whole = tokenizer.encode(head + tail + continuation)
            if whole.count > contextIDs.count, Array(whole[..<contextIDs.count]) == contextIDs {
                return (contextIDs, Array(whole[contextIDs.count...]))
            }
            return (contextIDs, tokenizer.encode(tail + continuation))
        }
    }

    /// The ids a generated answer continues: the whole prompt (`.separate`) or the prompt without
    /// its trailing whitespace, which the model is left to produce (`.joined`); `[emptyPromptToken]`
    /// when that has no tokens and the token is set.
    public func encodeGenerationPrefix(_ prompt: String) -> [Int] {
        let ids: [Int]
        switch tokenization {
        case .separate: ids = tokenizer.encode(prompt)
        case .joined: ids = tokenizer.encode(Self.splitTrailingWhitespace(prompt).head)
        }
        if ids.isEmpty, let t = emptyPromptToken { return [t] }
        return ids
    }

    static func splitTrailingWhitespace(_ text: String) -> (head: String, tail: String) {
        var end = text.endIndex
        while end > text.startIndex {
            let before = text.index(before: end)
            guard text[before].isWhitespace else { break }
            end = before
        }
        return (String(text[..<end]), String(text[end...]))
    }

    // MARK: Multiple choice

    /// Scores every choice of `question` as a continuation of its context: the context runs once and
    /// the choices run together as branches of one batch (`Scorer.scoreContinuations`).
    /// - Parameters:
    ///   - question: the context and choices.
    ///   - example: the index recorded in the outcome.
    ///   - task: the task name, for messages.
    /// - Returns: per-choice log-probabilities and the predictions.
    /// - Throws: `TaskError.invalidRequest` when a choice (or the context, without
    ///   `emptyPromptToken`) has no tokens;
    ///   `ModelError.invalidInput` when the prompt is longer than the model allows.
    public func score(_ question: MultipleChoiceQuestion, example: Int = 0, task: String = "") throws -> MultipleChoiceOutcome {
        try score([(question, example)], task: task)[0]
    }

    /// `score` for several questions, run together in as few batches as fit
    /// (`Scorer.scoreQuestions`); outcomes in the same order.
    /// - Throws: as `score`, before anything runs when a choice or context has no tokens.
    public func score(_ questions: [(question: MultipleChoiceQuestion, example: Int)], task: String = "") throws -> [MultipleChoiceOutcome] {
        var encoded: [[(prefix: [Int], continuation: [Int])]] = [], bytes: [[Int]] = []
        for (question, example) in questions {
            var pairs: [(prefix: [Int], continuation: [Int])] = [], counts: [Int] = []
            for (c, choice) in question.choices.enumerated() {
                let (context, continuation) = encode(context: question.context, continuation: choice)
                guard !context.isEmpty else {
                    throw TaskError.invalidRequest(task: task, reason: "example \(example) has an empty prompt")
                }
                guard !continuation.isEmpty else {
                    throw TaskError.invalidRequest(task: task, reason: "example \(example): choice \(c) '\(choice)' has no tokens")
                }
                pairs.append((context, continuation))
                counts.append(max(1, choice.utf8.count))
            }
            encoded.append(pairs)
            bytes.append(counts)
        }
        let logProbs = try scorer.scoreQuestions(encoded)
        return questions.indices.map { k in
            MultipleChoiceOutcome(example: questions[k].example, logProbs: logProbs[k].map(\.sumLogProb), byteCounts: bytes[k],
                                  gold: questions[k].question.gold, correct: questions[k].question.correct)
        }
    }

    /// How many multiple-choice questions `evaluate` scores together.
    static let questionsPerBatch = 8

    /// Scores the questions `question(i)` for `indices` in groups of `questionsPerBatch`,
    /// reporting progress after each group.
    func scoreInGroups(_ indices: [Int], task: String, progress: ((Int, Int) -> Void)?,
                       question: (Int) throws -> MultipleChoiceQuestion) throws -> (outcomes: [MultipleChoiceOutcome], chance: Double) {
        var outcomes: [MultipleChoiceOutcome] = []
        var chance = 0.0
        var start = 0
        while start < indices.count {
            let group = indices[start..<min(start + Self.questionsPerBatch, indices.count)]
            let questions = try group.map { (question: try question($0), example: $0) }
            outcomes += try score(questions, task: task)
            chance += questions.reduce(0) { $0 + $1.question.chance }
            start += group.count
            progress?(start, indices.count)
        }
        return (outcomes, chance)
    }

    /// Runs a BIG-bench task.
    /// - Parameters:
    ///   - task: a task with examples (a subtask of a composite).
    ///   - options: shots, subsample, seed, mode.
    ///   - progress: called with (done, total) after each group of examples scored or decoded
    ///     together.
    /// - Returns: the result (`multiple_choice` or `exact_match`) and per-example details.
    /// - Throws: `TaskError.invalidRequest` when the task cannot be asked in the requested mode,
    ///   has too few examples for the shots, or an example has an empty prompt or choice;
    ///   `TaskError.invalidField` for an `output_regex` Swift cannot compile; `ModelError` from
    ///   the forward pass.
    public func evaluate(_ task: BigBenchTask, options: TaskOptions = TaskOptions(),
                         progress: ((Int, Int) -> Void)? = nil) throws -> TaskReport {
        guard let mode = task.resolvedMode(options.mode) else {
            let reason: String
            switch options.mode {
            case .multipleChoice: reason = "cannot be asked as multiple choice: some examples lack 'target_scores'"
            case .exactMatch: reason = "cannot be asked as exact match: some examples lack 'target'"
            case .automatic: reason = "cannot be asked: some examples lack 'target_scores', some lack 'target'"
            }
            throw TaskError.invalidRequest(task: task.name, reason: reason)
        }
        let clock = ContinuousClock()
        let start = clock.now
        let indices = task.sampleIndices(limit: options.limit, seed: options.seed)
        if mode == .multipleChoice {
            let (outcomes, chance) = try scoreInGroups(indices, task: task.name, progress: progress) {
                try task.multipleChoiceQuestion($0, shots: options.shots, seed: options.seed)
            }
            let result = makeResult(task: task.name, kind: TaskMode.multipleChoice.rawValue, options: options,
                                    chance: chance / Double(max(indices.count, 1)), metrics: multipleChoiceMetrics(outcomes),
                                    elapsed: clock.now - start)
            return TaskReport(result: result, multipleChoice: outcomes)
        }
        let extractor = try AnswerExtractor(task: task)
        var outcomes: [ExactMatchOutcome] = []
        var done = 0
        while done < indices.count {
            let group = indices[done..<min(done + Self.sequencesPerBatch, indices.count)]
            let items = try group.map { i in
                (prompt: try task.prompt(for: i, shots: options.shots, seed: options.seed), targets: task.examples[i].targets, example: i)
            }
            outcomes += try answers(items, task: task.name, maxTokens: options.maxGeneratedTokens, extractor: extractor)
            done += group.count
            progress?(done, indices.count)
        }
        let result = makeResult(task: task.name, kind: TaskMode.exactMatch.rawValue, options: options, chance: nil,
                                metrics: exactMatchMetrics(outcomes), elapsed: clock.now - start)
        return TaskReport(result: result, exactMatch: outcomes)
    }

    /// Runs a JSONL multiple-choice task (`options.mode` and `maxGeneratedTokens` are ignored).
    /// - Throws: `TaskError.invalidRequest` for too few questions for the shots, an empty prompt
    ///   or choice; `ModelError` from the forward pass.
    public func evaluate(_ task: JSONLTask, options: TaskOptions = TaskOptions(),
                         progress: ((Int, Int) -> Void)? = nil) throws -> TaskReport {
        let clock = ContinuousClock()
        let start = clock.now
        let indices = sampleExampleIndices(count: task.questions.count, limit: options.limit, seed: options.seed)
        let (outcomes, chance) = try scoreInGroups(indices, task: task.name, progress: progress) {
            try task.question($0, shots: options.shots, seed: options.seed)
        }
        let result = makeResult(task: task.name, kind: TaskMode.multipleChoice.rawValue, options: options,
                                chance: chance / Double(max(indices.count, 1)), metrics: multipleChoiceMetrics(outcomes),
                                elapsed: clock.now - start)
        return TaskReport(result: result, multipleChoice: outcomes)
    }

    func makeResult(task: String, kind: String, options: TaskOptions, chance: Double?, metrics: [String: MetricValue],
                    elapsed: Duration) -> TaskResult {
        TaskResult(task: task, kind: kind, shots: options.shots, seed: options.seed, tokenization: tokenization.rawValue,
                   chance: chance, metrics: metrics, evaluator: Self.version, elapsedSeconds: Self.seconds(elapsed))
    }

    static func seconds(_ d: Duration) -> Double {
        let (s, attoseconds) = d.components
        return Double(s) + Double(attoseconds) * 1e-18
    }
}
