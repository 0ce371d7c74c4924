import Foundation
import TensorIO
import TestSupport
import XCTest
@testable import Engine

/// Evaluation tasks: BIG-bench JSON tasks (parsing, prompts, few-shot sampling), JSONL
/// multiple choice, greedy generation with exact match, perplexity, and the statistics.
///
/// The model tests use SmolLM2-135M (F32) and check the cached scoring path against full
/// forward passes (`Scorer.logProbabilities` over prompt + choice, one fresh scorer each) within
/// 2e-3 nats per choice.
final class TaskTests: XCTestCase {
    // MARK: - Fixtures

    static var bigBench: String { Fixtures.cacheRoot + "/bigbench/benchmark_tasks" }

    /// A BIG-bench task directory; skipped locally, a failure under CI, when missing. A cache
    /// that holds only the regenerated arithmetic task (`bigbench/SOURCE` says so: the sdist
    /// with every task.json, bigbench==1.0.0, is no longer on PyPI) skips the other tasks.
    static func bigBenchTask(_ relative: String) throws -> String {
        let path = bigBench + "/" + relative
        if FileManager.default.fileExists(atPath: path + "/task.json") { return path }
        if let source = try? String(contentsOfFile: Fixtures.cacheRoot + "/bigbench/SOURCE", encoding: .utf8), source.contains("regenerated") {
            throw XCTSkip("BIG-bench task '\(relative)' is not in this cache, which holds \(source.trimmingCharacters(in: .whitespacesAndNewlines)) (bigbench==1.0.0 is no longer on PyPI)")
        }
        _ = try Fixtures.require(path + "/task.json")
        return path
    }

    /// Loaded once per process: the tests share the memory map and the tokenizer.
    nonisolated(unsafe) static var shared: (Model, Tokenizer)?
    static func smolLM2() throws -> (Model, Tokenizer) {
        if let s = shared { return s }
        let dir = try Fixtures.smolLM2("f32")
        let s = (try Model(directory: dir), try Tokenizer(modelDirectory: dir))
        shared = s
        return s
    }

    static func evaluator(_ tokenization: ContinuationTokenization = .joined) throws -> TaskEvaluator {
        let (model, tokenizer) = try smolLM2()
        return TaskEvaluator(model: model, tokenizer: tokenizer, tokenization: tokenization)
    }

    /// The message of the error `body` throws.
    func message(_ body: () throws -> Void) -> String {
        do {
            try body()
            return "(no error)"
        } catch {
            return "\(error)"
        }
    }

    // MARK: - Random numbers and statistics

    func testTaskRandomIsSplitMix64() throws {
        // Same sequence as the independent SplitMix64 of TestSupport, and the published first
        // output for seed 0.
        var a = TaskRandom(seed: 0)
        XCTAssertEqual(a.next(), 0xE220_A839_7B1D_CDAF)
        var b = TaskRandom(seed: 12345), reference = SplitMix64(seed: 12345)
        for _ in 0..<100 { XCTAssertEqual(b.next(), reference.next()) }
        // Streams differ from each other and from the plain seed.
        var s0 = TaskRandom(seed: 42), s1 = TaskRandom(seed: 42, stream: 1), s2 = TaskRandom(seed: 42, stream: 2)
        XCTAssertEqual(Set([s0.next(), s1.next(), s2.next()]).count, 3)

        var r = TaskRandom(seed: 7)
        var counts = [Int](repeating: 0, count: 6)
        for _ in 0..<6000 { counts[r.next(below: 6)] += 1 }
        XCTAssertTrue(counts.allSatisfy { (850...1150).contains($0) }, "\(counts)")
        let sample = r.sample(10, from: 20)
        XCTAssertEqual(Set(sample).count, 10)
        XCTAssertTrue(sample.allSatisfy { (0..<20).contains($0) })
        var values = Array(0..<50)
        r.shuffle(&values)
        XCTAssertEqual(values.sorted(), Array(0..<50))
        XCTAssertNotEqual(values, Array(0..<50))
        // Fixed: the subsample and shots of every seed must never change across versions (values
        // from an independent Python reimplementation).
        var fixed = TaskRandom(seed: 42, stream: 3)
        XCTAssertEqual(fixed.sample(5, from: 100), [0, 40, 9, 37, 82])
    }

    func testMetricValueStatistics() {
        let p = MetricValue.proportion(successes: 3, of: 12)
        XCTAssertEqual(p.value, 0.25)
        XCTAssertEqual(p.n, 12)
        XCTAssertEqual(p.stderr, (0.25 * 0.75 / 12).squareRoot(), accuracy: 1e-15)
        XCTAssertEqual(MetricValue.proportion(successes: 0, of: 0), MetricValue(value: 0, n: 0, stderr: 0))
        let m = MetricValue.mean([1, 2, 3, 4])
        XCTAssertEqual(m.value, 2.5)
        // Sample standard deviation √(5/3), over √4.
        XCTAssertEqual(m.stderr, (5.0 / 3).squareRoot() / 2, accuracy: 1e-15)
        XCTAssertEqual(MetricValue.mean([-2]), MetricValue(value: -2, n: 1, stderr: 0))
    }

    func testTaskResultRoundTripsThroughJSON() throws {
        let result = TaskResult(task: "arithmetic:1_digit_addition", kind: "multiple_choice", shots: 2, seed: 42,
                                tokenization: "joined", chance: 1.0 / 6,
                                metrics: ["acc": .proportion(successes: 5, of: 8), "gold_logprob": .mean([-1.5, -0.5])],
                                evaluator: TaskEvaluator.version, elapsedSeconds: 1.25)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data = try encoder.encode(result)
        XCTAssertEqual(try JSONDecoder().decode(TaskResult.self, from: data), result)
        let text = String(decoding: data, as: UTF8.self)
        XCTAssertTrue(text.contains(#""acc":{"n":8,"stderr":0.1711632992203644,"value":0.625}"#), text)
        XCTAssertTrue(text.contains(#""evaluator":"wledger-tasks\/1""#), text)
    }

    // MARK: - BIG-bench parsing and prompts

    func testLoadsCompositeTaskWithSubtasks() throws {
        let tasks = try BigBenchTask.load(try Self.bigBenchTask("arithmetic"))
        XCTAssertEqual(tasks.count, 20)
        XCTAssertEqual(tasks.prefix(4).map(\.name), ["arithmetic:1_digit_addition", "arithmetic:1_digit_division",
                                                     "arithmetic:1_digit_multiplication", "arithmetic:1_digit_subtraction"])
        let t = tasks[0]
        XCTAssertEqual(t.examples.count, 100)
        XCTAssertEqual(t.description, "1-digit addition.")
        XCTAssertEqual(t.keywords, ["mathematics", "arithmetic", "numerical response"])
        XCTAssertEqual(t.metrics, ["exact_str_match", "multiple_choice_grade"])
        XCTAssertEqual(t.preferredScore, "exact_str_match")
        XCTAssertEqual(t.outputRegex, #"[-+]?\d+"#)
        XCTAssertNil(t.stopString)
        XCTAssertEqual(t.inputPrefix, "\nQ: ")
        XCTAssertEqual(t.outputPrefix, "\nA: ")
        XCTAssertEqual(t.choicePrefix, "\n  choice: ")
        XCTAssertEqual(t.fewShotSeparator, "\n")
        XCTAssertTrue(t.appendChoicesToInput)
        XCTAssertEqual(t.examples[0], BigBenchExample(input: "What is 0 plus 0?", targets: ["0"],
                                                      choices: ["2", "1", "859", "banana", "house", "0"],
                                                      scores: [0, 0, 0, 0, 0, 1]))
        XCTAssertEqual(t.examples[0].goldChoice, 5)
        XCTAssertTrue(t.supportsMultipleChoice && t.supportsExactMatch)
        XCTAssertEqual(t.resolvedMode(.automatic), .exactMatch)   // preferred_score is exact_str_match
        XCTAssertEqual(t.resolvedMode(.multipleChoice), .multipleChoice)
        XCTAssertEqual(t.chance!, 0.15785714285714264, accuracy: 1e-12)   // mean of 1 / choices

        // A subtask directory loaded on its own keeps its parent's name.
        let alone = try BigBenchTask.load(Self.bigBench + "/arithmetic/2_digit_addition")
        XCTAssertEqual(alone.map(\.name), ["arithmetic:2_digit_addition"])
        XCTAssertEqual(alone[0].examples.count, 1000)
    }

    func testLoadsMultipleChoiceAndGenerativeTasks() throws {
        // Multiple choice only, choices appended (explicit true).
        let gk = try BigBenchTask.load(try Self.bigBenchTask("general_knowledge"))[0]
        XCTAssertEqual(gk.name, "general_knowledge")
        XCTAssertEqual(gk.examples.count, 70)
        XCTAssertTrue(gk.supportsMultipleChoice)
        XCTAssertFalse(gk.supportsExactMatch)
        XCTAssertEqual(gk.resolvedMode(.automatic), .multipleChoice)
        XCTAssertNil(gk.resolvedMode(.exactMatch))
        XCTAssertEqual(gk.examples[0].choices, ["two", "four", "six", "three", "one", "none"])
        XCTAssertEqual(gk.examples[0].correctChoices, [1])

        // Generative only, a list of accepted targets, an unknown field ("prefix") ignored.
        let oc = try BigBenchTask.load(try Self.bigBenchTask("object_counting"))[0]
        XCTAssertEqual(oc.examples.count, 1000)
        XCTAssertEqual(oc.examples[0].targets, ["three", "3"])
        XCTAssertFalse(oc.supportsMultipleChoice)
        XCTAssertEqual(oc.resolvedMode(.automatic), .exactMatch)
        XCTAssertNil(oc.chance)
        XCTAssertEqual(try oc.prompt(for: 0, shots: 0, seed: 42),
                       "\nQ: I have a clarinet, a violin, and a flute. How many musical instruments do I have?\nA: ")

        // Every prompt field set, choices not appended, "\n\n" between shots.
        let ld = try BigBenchTask.load(try Self.bigBenchTask("logical_deduction"))
        XCTAssertEqual(ld.map(\.name), ["logical_deduction:five_objects", "logical_deduction:seven_objects",
                                        "logical_deduction:three_objects"])
        let three = ld[2]
        XCTAssertFalse(three.appendChoicesToInput)
        XCTAssertEqual(three.fewShotSeparator, "\n\n")
        XCTAssertEqual(three.outputPrefix, " ")
        XCTAssertEqual(try three.prompt(for: 0, shots: 0, seed: 42),
                       "The following paragraphs each describe a set of three objects arranged in a fixed order. The statements are logically consistent within each paragraph.\n\n"
                       + "On a shelf, there are three books: a black book, an orange book, and a blue book. The blue book is to the right of the orange book. The orange book is to the right of the black book. ")
    }

    func testZeroShotPromptFollowsBigBench() throws {
        let task = try BigBenchTask.load(try Self.bigBenchTask("arithmetic") + "/1_digit_addition")[0]
        // Input prefix, input, the choices (sorted, then permuted by the seed), output prefix.
        XCTAssertEqual(task.listedChoices(0, seed: 42), ["859", "1", "0", "house", "2", "banana"])
        XCTAssertEqual(try task.prompt(for: 0, shots: 0, seed: 42),
                       "\nQ: What is 0 plus 0?\n  choice: 859\n  choice: 1\n  choice: 0\n  choice: house\n  choice: 2\n  choice: banana\nA: ")
        let q = try task.multipleChoiceQuestion(0, shots: 0, seed: 42)
        XCTAssertEqual(q.choices, ["2", "1", "859", "banana", "house", "0"])   // scored in file order
        XCTAssertEqual(q.gold, 5)
        XCTAssertEqual(q.correct, [5])
        XCTAssertEqual(q.chance, 1.0 / 6)
    }

    func testFewShotPromptsAreDeterministic() throws {
        let task = try BigBenchTask.load(try Self.bigBenchTask("arithmetic") + "/1_digit_addition")[0]
        let expected = "\nQ: What is 0 plus 3?\n  choice: 7\n  choice: 130\n  choice: 1\n  choice: house\n  choice: 3\n  choice: banana\nA: 3\n"
            + "\nQ: What is 7 plus 2?\n  choice: 9\n  choice: 532\n  choice: 3\n  choice: house\n  choice: 8\n  choice: banana\nA: 9\n"
            + "\nQ: What is 0 plus 5?\n  choice: 9\n  choice: 303\n  choice: 1\n  choice: house\n  choice: 5\n  choice: banana\nA: "
        XCTAssertEqual(try task.prompt(for: 5, shots: 2, seed: 42), expected)
        XCTAssertEqual(try task.prompt(for: 5, shots: 2, seed: 42), expected)
        XCTAssertNotEqual(try task.prompt(for: 5, shots: 2, seed: 43), expected)
        // An example's shots depend on the seed and the example only, never include it, and
        // are distinct.
        for i in 0..<task.examples.count {
            let shots = try task.shotExamples(for: i, shots: 3, seed: 42).map(\.index)
            XCTAssertFalse(shots.contains(i))
            XCTAssertEqual(Set(shots).count, 3)
        }
        // Subsamples: fixed for a seed, ascending, distinct.
        let sample = task.sampleIndices(limit: 8, seed: 42)
        XCTAssertEqual(sample, task.sampleIndices(limit: 8, seed: 42))
        XCTAssertEqual(sample, [36, 38, 56, 68, 78, 87, 98, 99])
        XCTAssertNotEqual(sample, task.sampleIndices(limit: 8, seed: 1))
        XCTAssertEqual(task.sampleIndices(limit: nil, seed: 42), Array(0..<100))
        XCTAssertEqual(task.sampleIndices(limit: 500, seed: 42), Array(0..<100))

        XCTAssertEqual(message { _ = try task.prompt(for: 0, shots: 100, seed: 42) },
                       "task 'arithmetic:1_digit_addition': 100 shots need at least 101 examples, the task has 100")
    }

    func testMalformedBigBenchTasksAreRefusedClearly() throws {
        let tmp = try TemporaryDirectory("task-bigbench")
        func write(_ json: String, _ dir: String = "t") throws -> String {
            try FileManager.default.createDirectory(atPath: tmp.path + "/" + dir, withIntermediateDirectories: true)
            try Data(json.utf8).write(to: URL(fileURLWithPath: tmp.path + "/" + dir + "/task.json"))
            return tmp.path + "/" + dir
        }
        let head = #""name": "t", "description": "d", "keywords": [], "metrics": ["multiple_choice_grade"], "preferred_score": "multiple_choice_grade""#
        var dir = try write("{" + head + #", "examples": [{"input": "q", "target_scores": {"a": 1, "b": "x"}}]}"#)
        XCTAssertEqual(message { _ = try BigBenchTask.load(dir) },
                       "'\(dir)/task.json': example 0: 'target_scores' value of 'b' is not a number")
        dir = try write("{" + head + #", "examples": [{"input": "q", "target_scores": {"a": 1}}, {"target": "x"}]}"#)
        XCTAssertEqual(message { _ = try BigBenchTask.load(dir) }, "'\(dir)/task.json': example 1: missing 'input'")
        dir = try write("{" + head + #", "examples": [{"input": "q", "target_scores": {"a": 0, "b": 0}}]}"#)
        XCTAssertEqual(message { _ = try BigBenchTask.load(dir) },
                       "'\(dir)/task.json': example 0: 'target_scores' has no choice scored above the others")
        dir = try write("{" + head + #", "examples": [{"input": "q"}]}"#)
        XCTAssertEqual(message { _ = try BigBenchTask.load(dir) },
                       "'\(dir)/task.json': example 0: has neither 'target' nor 'target_scores'")
        dir = try write(#"{"name": "t", "metrics": [], "examples": []}"#)
        XCTAssertEqual(message { _ = try BigBenchTask.load(dir) }, "'\(dir)/task.json': field 'preferred_score': missing")
        dir = try write(#"{"name": "composite", "description": "d", "keywords": []}"#, "c")
        XCTAssertEqual(message { _ = try BigBenchTask.load(dir) },
                       "'\(dir)/task.json': field 'examples': missing, and no subdirectory holds a subtask")
        dir = try write(#"{"name": "t", "name": "u"}"#)
        XCTAssertEqual(message { _ = try BigBenchTask.load(dir) },
                       "'\(dir)/task.json': not valid JSON: duplicate key \"name\" at byte 14")
        XCTAssertEqual(message { _ = try BigBenchTask.load(tmp.path + "/none") },
                       "cannot open '\(tmp.path)/none': no such file or directory")
        // A task that cannot be asked as requested.
        dir = try write("{" + head + #", "examples": [{"input": "q", "target": "x"}]}"#)
        let generative = try BigBenchTask.load(dir)[0]
        XCTAssertNil(generative.resolvedMode(.multipleChoice))
        let evaluator = try Self.evaluator()
        XCTAssertEqual(message { _ = try evaluator.evaluate(generative, options: TaskOptions(mode: .multipleChoice)) },
                       "task 't': cannot be asked as multiple choice: some examples lack 'target_scores'")
    }

    func testAnswersAreExtractedAsBigBenchDoes() throws {
        func task(regex: String?, stop: String?) throws -> BigBenchTask {
            var json = #"{"name": "t", "metrics": ["exact_str_match"], "preferred_score": "exact_str_match", "examples": [{"input": "q", "target": "x"}]"#
            if let regex { json += ", \"output_regex\": \"\(regex)\"" }
            if let stop { json += ", \"stop_string\": \"\(stop)\"" }
            return try BigBenchTask(json: try JSONParser.parse(Array((json + "}").utf8)), path: "t.json", parent: nil)
        }
        let number = try AnswerExtractor(task: try task(regex: #"[-+]?\\d+"#, stop: nil))
        XCTAssertEqual(number.extract(" 42 apples\n"), "42")
        XCTAssertEqual(number.extract(" -7"), "-7")
        XCTAssertEqual(number.extract(" none"), "")
        XCTAssertEqual(number.extract("\n\n 12\n13"), "12")            // leading newlines skipped
        XCTAssertEqual(number.stops, ["\n"])
        let group = try AnswerExtractor(task: try task(regex: "('.*?')", stop: nil))
        XCTAssertEqual(group.extract(" it is 'abc' and 'd'"), "'abc'")  // one capture group: the group
        let stop = try AnswerExtractor(task: try task(regex: nil, stop: "#"))
        XCTAssertEqual(stop.stops, ["\n", "#"])
        XCTAssertEqual(stop.extract(" Rg5# and more"), "Rg5#")          // cut after the stop string, no regex
        let plain = try AnswerExtractor(task: try task(regex: nil, stop: nil))
        XCTAssertEqual(plain.extract(" Paris. It is"), "Paris")          // BIG-bench's default regex
        XCTAssertEqual(plain.extract("  two apples\nthree"), "two apples")
        XCTAssertEqual(message { _ = try AnswerExtractor(task: try task(regex: "(", stop: nil)) }.hasPrefix(
            "'t.json': field 'output_regex': cannot compile '('"), true)
    }

    // MARK: - JSONL

    func testJSONLTaskIsParsed() throws {
        let tmp = try TemporaryDirectory("task-jsonl")
        let path = tmp.path + "/capitals.jsonl"
        try Data(("""
        {"context": "The capital of France is", "choices": [" Paris", " Lyon"], "gold": 0, "id": 7}

        {"context": "The capital of Italy is", "choices": [" Milan", " Rome", " Turin"], "gold": 1}
        {"context": "The capital of Spain is", "choices": [" Madrid", " Seville"], "gold": 0}
        """ + "\n").utf8).write(to: URL(fileURLWithPath: path))
        let task = try JSONLTask(path: path)
        XCTAssertEqual(task.name, "capitals")
        XCTAssertEqual(task.questions, [
            MultipleChoiceQuestion(context: "The capital of France is", choices: [" Paris", " Lyon"], gold: 0),
            MultipleChoiceQuestion(context: "The capital of Italy is", choices: [" Milan", " Rome", " Turin"], gold: 1),
            MultipleChoiceQuestion(context: "The capital of Spain is", choices: [" Madrid", " Seville"], gold: 0),
        ])
        XCTAssertEqual(task.chance, (0.5 + 1.0 / 3 + 0.5) / 3, accuracy: 1e-15)
        let shot = try task.question(1, shots: 2, seed: 42)
        XCTAssertEqual(shot.context, "The capital of Spain is Madrid\n\nThe capital of France is Paris\n\nThe capital of Italy is")
        XCTAssertEqual(shot, try task.question(1, shots: 2, seed: 42))
        XCTAssertEqual(message { _ = try task.question(1, shots: 3, seed: 42) },
                       "task 'capitals': 3 shots need at least 4 questions, the task has 3")
    }

    func testJSONLErrorsNameTheLine() throws {
        let tmp = try TemporaryDirectory("task-jsonl")
        func check(_ text: String, _ expected: String, file: StaticString = #filePath, line: UInt = #line) throws {
            let path = tmp.path + "/t.jsonl"
            try Data(text.utf8).write(to: URL(fileURLWithPath: path))
            XCTAssertEqual(message { _ = try JSONLTask(path: path) }, "'\(path)': " + expected, file: file, line: line)
        }
        let good = #"{"context": "c", "choices": ["a", "b"], "gold": 1}"#
        try check(good + "\n" + #"{"context": "c", "choices": ["a"], "gold": 1,}"#, "line 2: not valid JSON: expected object key at byte 45")
        try check(good + "\n\n" + #"{"context": "c", "choices": ["a", "b"]}"#, "line 3: missing 'gold'")
        try check(#"{"context": "c", "choices": ["a", "b"], "gold": 2}"#, "line 1: 'gold' 2 is outside the 2 choices")
        try check(#"{"context": "c", "choices": ["a", "b"], "gold": -1}"#, "line 1: 'gold' -1 is outside the 2 choices")
        try check(#"{"context": "c", "choices": ["a", "b"], "gold": "0"}"#, "line 1: 'gold' is not an integer")
        try check(#"{"context": "c", "choices": "a", "gold": 0}"#, "line 1: 'choices' is not a list of strings")
        try check(#"{"context": "c", "choices": ["a", 1], "gold": 0}"#, "line 1: 'choices' is not a list of strings")
        try check(#"{"context": "c", "choices": [], "gold": 0}"#, "line 1: 'choices' is empty")
        try check(#"{"choices": ["a"], "gold": 0}"#, "line 1: missing 'context'")
        try check(#"{"context": 5, "choices": ["a"], "gold": 0}"#, "line 1: 'context' is not a string")
        try check("[1, 2]", "line 1: expected an object")
        try check("\n  \n", "no questions")
        XCTAssertEqual(message { _ = try JSONLTask(path: tmp.path + "/missing.jsonl") },
                       "cannot open '\(tmp.path)/missing.jsonl': no such file or directory")
    }

    // MARK: - With the model (SmolLM2-135M F32)

    func testJoinedTokenizationMovesTheSpace() throws {
        let evaluator = try Self.evaluator()
        let tokenizer = evaluator.tokenizer
        let prompt = "\nQ: What is the opposite of hot?\nA: "
        let (context, continuation) = evaluator.encode(context: prompt, continuation: "cold")
        XCTAssertEqual(context, tokenizer.encode("\nQ: What is the opposite of hot?\nA:"))
        XCTAssertEqual(context + continuation, tokenizer.encode(prompt + "cold"))
        XCTAssertEqual(tokenizer.decode(continuation), " cold")
        XCTAssertEqual(evaluator.encodeGenerationPrefix(prompt), context)
        let separate = try Self.evaluator(.separate)
        let (c2, k2) = separate.encode(context: prompt, continuation: "cold")
        XCTAssertEqual(c2, tokenizer.encode(prompt))
        XCTAssertEqual(k2, tokenizer.encode("cold"))
    }

    func testGenerateStopsAtStopStrings() throws {
        let evaluator = try Self.evaluator()
        let prefix = evaluator.tokenizer.encode("The capital of France is")
        let g = try evaluator.generate(prefix: prefix, maxTokens: 12, stop: ["."])
        XCTAssertEqual(g.tokens.first, 7042)   // " Paris", as in ForwardTests
        XCTAssertTrue(g.text.hasPrefix(" Paris"), g.text)
        XCTAssertFalse(g.text.contains("."))
        if g.stop != nil { XCTAssertEqual(g.stop, ".") }
        let short = try evaluator.generate(prefix: prefix, maxTokens: 1, stop: [])
        XCTAssertEqual(short, Generation(tokens: [7042], text: " Paris", stop: nil))
        XCTAssertEqual(try evaluator.generate(prompt: "The capital of France is ", maxTokens: 1, stop: []), short)
    }

    func testMultipleChoiceAccuracyMatchesIndependentScoring() throws {
        let task = try BigBenchTask.load(try Self.bigBenchTask("similarities_abstraction"))[0]
        let evaluator = try Self.evaluator()
        let options = TaskOptions(shots: 0, limit: 12, seed: 42, mode: .multipleChoice)
        let report = try evaluator.evaluate(task, options: options)
        let acc = report.result.metrics["acc"]!
        print("TaskTests: \(task.name) \(options.shots)-shot acc \(acc.value) ± \(acc.stderr) (n \(acc.n), chance \(report.result.chance!)); gold log p \(report.result.metrics["gold_logprob"]!.value)")
        XCTAssertEqual(report.result.kind, "multiple_choice")
        XCTAssertEqual(report.result.evaluator, "wledger-tasks/1")
        XCTAssertEqual(acc.n, 12)
        XCTAssertEqual(report.multipleChoice.map(\.example), task.sampleIndices(limit: 12, seed: 42))
        XCTAssertGreaterThanOrEqual(acc.value, report.result.chance! + 0.2, "not well above chance")
        XCTAssertEqual(acc.value, Double(report.multipleChoice.filter(\.isCorrect).count) / Double(12))

        try Self.checkIndependently(report.multipleChoice.prefix(3), evaluator: evaluator) {
            try task.multipleChoiceQuestion($0, shots: options.shots, seed: 42)
        }
    }

    /// Each outcome's choices scored independently: log p from a full pass over prompt + choice
    /// (no cache shared between choices), summed over the choice's tokens, equal to the
    /// evaluator's within 2e-3 nats; the same argmax and correctness.
    static func checkIndependently(_ outcomes: ArraySlice<MultipleChoiceOutcome>, evaluator: TaskEvaluator,
                                   question: (Int) throws -> MultipleChoiceQuestion) throws {
        let (model, tokenizer) = try smolLM2()
        for outcome in outcomes {
            let q = try question(outcome.example)
            var logProbs: [Double] = []
            for choice in q.choices {
                let (context, continuation) = evaluator.encode(context: q.context, continuation: choice)
                XCTAssertEqual(context + continuation, tokenizer.encode(q.context + choice))
                let all = try Scorer(model: model).logProbabilities(tokens: context + continuation)
                logProbs.append(all.suffix(continuation.count).reduce(0.0) { $0 + Double($1) })
            }
            for (a, b) in zip(outcome.logProbs, logProbs) { XCTAssertEqual(a, b, accuracy: 2e-3) }
            let best = logProbs.indices.max { logProbs[$0] < logProbs[$1] }!
            XCTAssertEqual(outcome.predicted, best)
            XCTAssertEqual(outcome.isCorrect, q.correct.contains(best))
            XCTAssertEqual(outcome.byteCounts, q.choices.map { max(1, $0.utf8.count) })
        }
    }

    /// The same check on a JSONL task of real data (a section of the Google word-analogy test
    /// set, from the fixtures), two-shot, so the few-shot prompt is scored too.
    func testAnalogyTaskMatchesIndependentScoring() throws {
        let task = try JSONLTask(path: try Fixtures.taskData("analogies/capital-common-countries.jsonl"))
        XCTAssertEqual(task.questions.count, 506)
        XCTAssertEqual(task.questions[0].context, "Athens is to Greece as Baghdad is to")
        XCTAssertEqual(task.questions[0].choices[task.questions[0].gold], " Iraq")
        XCTAssertEqual(task.questions[0].choices.count, 4)
        let evaluator = try Self.evaluator()
        let options = TaskOptions(shots: 2, limit: 12, seed: 42)
        let report = try evaluator.evaluate(task, options: options)
        let acc = report.result.metrics["acc"]!
        print("TaskTests: \(task.name) 2-shot acc \(acc.value) ± \(acc.stderr) (n \(acc.n), chance \(report.result.chance!))")
        XCTAssertEqual(acc.n, 12)
        XCTAssertEqual(report.result.chance!, 0.25, accuracy: 1e-12)
        XCTAssertEqual(report.multipleChoice.map(\.example), sampleExampleIndices(count: 506, limit: 12, seed: 42))
        XCTAssertGreaterThanOrEqual(acc.value, 0.25 + 0.4, "not well above chance")
        XCTAssertEqual(acc.value, Double(report.multipleChoice.filter(\.isCorrect).count) / 12)

        try Self.checkIndependently(report.multipleChoice.prefix(3), evaluator: evaluator) { i in
            let q = try task.question(i, shots: 2, seed: 42)
            XCTAssertTrue(q.context.hasSuffix(task.questions[i].context), "the question comes last")
            XCTAssertGreaterThan(q.context.count, task.questions[i].context.count, "two worked examples before it")
            return q
        }
    }

    func testExactMatchGeneratesAndScoresTheTarget() throws {
        let task = try BigBenchTask.load(try Self.bigBenchTask("arithmetic") + "/2_digit_addition")[0]
        let evaluator = try Self.evaluator()
        let report = try evaluator.evaluate(task, options: TaskOptions(shots: 2, limit: 4, seed: 42))
        XCTAssertEqual(report.result.kind, "exact_match")
        XCTAssertNil(report.result.chance)
        let em = report.result.metrics["exact_match"]!
        XCTAssertEqual(em.n, 4)
        XCTAssertEqual(em.value, Double(report.exactMatch.filter(\.isCorrect).count) / 4)
        let (model, tokenizer) = try Self.smolLM2()
        for outcome in report.exactMatch {
            print("TaskTests: example \(outcome.example) generated \(outcome.generated.debugDescription) answer \(outcome.answer) target \(outcome.targets)")
            XCTAssertNotNil(Int(outcome.answer), outcome.generated)   // the regex keeps a number
            XCTAssertEqual(outcome.isCorrect, outcome.targets.contains(outcome.answer))
            // The target's log p from one full pass.
            let prompt = try task.prompt(for: outcome.example, shots: 2, seed: 42)
            let whole = tokenizer.encode(prompt + task.examples[outcome.example].targets[0])
            let context = tokenizer.encode(String(prompt.dropLast()))   // "…\nA:" without its space
            let all = try Scorer(model: model).logProbabilities(tokens: whole)
            let expected = all.suffix(whole.count - context.count).reduce(0.0) { $0 + Double($1) }
            XCTAssertEqual(outcome.goldLogProb, expected, accuracy: 2e-3)
        }
    }

    /// Exact match decodes its prompts together (`answers`, one KV cache each); the outcomes
    /// equal answering each prompt alone (`answer`: sequential greedy decoding and a separate
    /// scoring of the target), also when `maxTokens` cuts the answers short.
    func testBatchedAnswersEqualOneAtATime() throws {
        let task = try BigBenchTask.load(try Self.bigBenchTask("arithmetic") + "/2_digit_addition")[0]
        let evaluator = try Self.evaluator()
        let extractor = try AnswerExtractor(task: task)
        let items = try [3, 11, 25, 40].map { i in
            (prompt: try task.prompt(for: i, shots: 2, seed: 7), targets: task.examples[i].targets, example: i)
        }
        // No limit: each answer decodes until it stops (these stop within a few tokens, so the
        // same text as with 32), with the caches grown as needed rather than sized for the limit.
        let unbounded = try evaluator.answers(Array(items.prefix(2)), task: task.name, maxTokens: .max, extractor: extractor)
        let bounded = try evaluator.answers(Array(items.prefix(2)), task: task.name, maxTokens: 32, extractor: extractor)
        XCTAssertEqual(unbounded.map(\.generated), bounded.map(\.generated))
        for maxTokens in [32, 2] {
            let together = try evaluator.answers(items, task: task.name, maxTokens: maxTokens, extractor: extractor)
            XCTAssertEqual(together.map(\.example), items.map(\.example))
            for (item, got) in zip(items, together) {
                let alone = try evaluator.answer(prompt: item.prompt, targets: item.targets, example: item.example, task: task.name,
                                                 maxTokens: maxTokens, extractor: extractor)
                XCTAssertEqual(got.generated, alone.generated, "example \(item.example), maxTokens \(maxTokens)")
                XCTAssertEqual(got.answer, alone.answer)
                XCTAssertEqual(got.isCorrect, alone.isCorrect)
                XCTAssertEqual(got.goldLogProb, alone.goldLogProb, accuracy: 1e-3)
            }
            // A workspace of 3 rows steps the 4 prompts in two groups (and chunks each prompt pass).
            let (model, tokenizer) = try Self.smolLM2()
            let narrow = TaskEvaluator(model: model, tokenizer: tokenizer, batchTokens: 3)
            let grouped = try narrow.answers(items, task: task.name, maxTokens: maxTokens, extractor: extractor)
            XCTAssertEqual(grouped.map(\.generated), together.map(\.generated), "maxTokens \(maxTokens)")
            for (a, b) in zip(grouped, together) { XCTAssertEqual(a.goldLogProb, b.goldLogProb, accuracy: 1e-3) }
            if maxTokens == 2 {
                XCTAssertTrue(together.allSatisfy { evaluator.tokenizer.encode($0.generated).count <= 2 }, "\(together.map(\.generated))")
            } else {
                print("TaskTests: batched answers \(together.map(\.generated))")
            }
        }
    }

    func testJSONLEvaluationScoresEveryChoice() throws {
        let evaluator = try Self.evaluator()
        let task = JSONLTask(name: "capitals", questions: [
            MultipleChoiceQuestion(context: "The capital of France is", choices: [" Paris", " Lyon", " Marseille"], gold: 0),
            MultipleChoiceQuestion(context: "The capital of England is", choices: [" Manchester", " London"], gold: 1),
        ])
        let report = try evaluator.evaluate(task)
        XCTAssertEqual(report.result.task, "capitals")
        XCTAssertEqual(report.result.metrics["acc"], MetricValue(value: 1, n: 2, stderr: 0))
        XCTAssertEqual(report.result.chance!, (1.0 / 3 + 0.5) / 2, accuracy: 1e-15)
        XCTAssertEqual(report.multipleChoice.map(\.predicted), [0, 1])
        let gold = report.multipleChoice.map(\.goldLogProb)
        XCTAssertEqual(report.result.metrics["gold_logprob"]!.value, (gold[0] + gold[1]) / 2, accuracy: 1e-12)
        // " Paris" after the France prompt, as the forward tests measure it (p ≈ 0.7725).
        XCTAssertEqual(exp(gold[0]), 0.7725, accuracy: 0.01)

        // An empty context is conditioned on <|endoftext|> (id 0), as lm-evaluation-harness does.
        let bare = MultipleChoiceQuestion(context: "", choices: ["The sun rises in the east.", "The sun rises in the west."], gold: 0)
        let outcome = try evaluator.score(bare, task: "bare")
        let (model, tokenizer) = try Self.smolLM2()
        for (c, choice) in bare.choices.enumerated() {
            let ids = [0] + tokenizer.encode(choice)
            let expected = try Scorer(model: model).logProbabilities(tokens: ids).reduce(0.0) { $0 + Double($1) }
            XCTAssertEqual(outcome.logProbs[c], expected, accuracy: 2e-3)
        }
        let strict = try Self.evaluator()
        strict.emptyPromptToken = nil
        XCTAssertEqual(message { _ = try strict.score(bare, example: 3, task: "bare") }, "task 'bare': example 3 has an empty prompt")
    }

    func testPerplexityIsExpOfMeanNLL() throws {
        let evaluator = try Self.evaluator()
        let (model, tokenizer) = try Self.smolLM2()
        let text = "The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris, France. It is named after the engineer Gustave Eiffel, whose company designed and built it."
        let ids = tokenizer.encode(text)
        XCTAssertEqual(ids.count, 39)

        // One window: the mean NLL of logProbabilities over the whole text.
        let one = try evaluator.perplexity(text: text, name: "eiffel")
        let lp = try Scorer(model: model).logProbabilities(tokens: ids).map { -Double($0) }
        let meanNLL = lp.reduce(0, +) / Double(lp.count)
        let nll = one.result.metrics["nll_per_token"]!
        XCTAssertEqual(nll.n, 38)
        XCTAssertEqual(nll.value, meanNLL, accuracy: 1e-6)
        XCTAssertEqual(one.result.metrics["perplexity"]!.value, exp(meanNLL), accuracy: 1e-6 * exp(meanNLL))
        let bytes = text.utf8.count - tokenizer.decode([ids[0]]).utf8.count   // "The" is not predicted
        XCTAssertEqual(one.perplexity?.byteCount, bytes)
        XCTAssertEqual(one.result.metrics["bits_per_byte"]!.value, meanNLL * 38 / log(2) / Double(bytes), accuracy: 1e-9)
        XCTAssertEqual(one.perplexity?.windowCount, 1)
        XCTAssertEqual(one.result.kind, "perplexity")

        // Windows of 16 tokens overlapping by one: tokens 0–15, 15–30, 30–38.
        let windowed = try evaluator.perplexity(text: text, name: "eiffel", windowTokens: 16)
        XCTAssertEqual(windowed.perplexity?.windowCount, 3)
        var expected: [Double] = []
        for (a, b) in [(0, 16), (15, 31), (30, 39)] {
            expected += try Scorer(model: model).logProbabilities(tokens: Array(ids[a..<b])).map { -Double($0) }
        }
        XCTAssertEqual(expected.count, 38)
        XCTAssertEqual(windowed.result.metrics["nll_per_token"]!.value, expected.reduce(0, +) / 38, accuracy: 1e-6)
        XCTAssertGreaterThan(windowed.result.metrics["nll_per_token"]!.value, meanNLL)   // less context

        // A prefix token makes the first token predicted too.
        let prefixed = try evaluator.perplexity(text: text, name: "eiffel", prefixToken: 0)
        XCTAssertEqual(prefixed.result.metrics["nll_per_token"]!.n, 39)
        XCTAssertEqual(prefixed.perplexity?.byteCount, text.utf8.count)

        XCTAssertEqual(message { _ = try evaluator.perplexity(text: "The", name: "short") },
                       "task 'short': text of 1 token has nothing to predict")
        XCTAssertEqual(message { _ = try evaluator.perplexity(text: text, name: "w", windowTokens: 1) },
                       "task 'w': window of 1 tokens predicts nothing")
        // From a file, the file is named: it is what to fix.
        let empty = NSTemporaryDirectory() + "/wledger-empty-\(getpid()).txt"
        try Data().write(to: URL(fileURLWithPath: empty))
        defer { try? FileManager.default.removeItem(atPath: empty) }
        XCTAssertEqual(message { _ = try evaluator.perplexity(file: empty) }, "'\(empty)': text of 0 tokens has nothing to predict")
    }

}
