import Foundation
import TensorIO

/// One example of a BIG-bench JSON task.
public struct BigBenchExample: Sendable, Equatable {
    /// The question text (`input`).
    public var input: String
    /// Accepted answers (`target`, a string or a list); empty when the example has none.
    public var targets: [String]
    /// The keys of `target_scores`, in file order; empty when the example has none.
    public var choices: [String]
    /// The values of `target_scores`, parallel to `choices`.
    public var scores: [Double]

    /// An example from its parts (`choices` and `scores` parallel, both empty without
    /// `target_scores`).
    public init(input: String, targets: [String], choices: [String], scores: [Double]) {
        self.input = input; self.targets = targets; self.choices = choices; self.scores = scores
    }

    /// Whether the example can be asked as multiple choice.
    public var isMultipleChoice: Bool { !choices.isEmpty }

    /// Indices of the choices with the highest score, ascending (empty without choices).
    public var correctChoices: [Int] {
        guard let top = scores.max() else { return [] }
        return scores.indices.filter { scores[$0] == top }
    }

    /// The reference choice: the first with the highest score (BIG-bench's rule), nil without choices.
    public var goldChoice: Int? { correctChoices.first }

    /// The answers a worked example may show: `targets`, or the gold choice when there are none.
    public var answers: [String] {
        if !targets.isEmpty { return targets }
        if let g = goldChoice { return [choices[g]] }
        return []
    }
}

/// How a task is asked.
public enum TaskMode: String, Codable, Sendable {
    /// Multiple choice when the task's preferred score is a multiple-choice metric (or it has no
    /// targets) and every example has `target_scores`; exact match otherwise.
    case automatic
    /// Score every choice as a continuation of the prompt.
    case multipleChoice = "multiple_choice"
    /// Decode greedily and compare the answer with the targets.
    case exactMatch = "exact_match"
}

/// A BIG-bench JSON task (one task.json with examples), with BIG-bench's prompt conventions.
///
/// The prompt of example i, as `bigbench/api/json_task.py` builds it:
///
///     formatted(i) = example_input_prefix + input
///                    [+ choice_prefix + choice_prefix.join(choices in a seeded order)]   (MC, append_choices_to_input)
///                    + example_output_prefix
///     prompt(i)    = task_prefix + formatted(s₁) + answer(s₁) + sep + … + formatted(s_k) + answer(s_k) + sep + formatted(i)
///
/// with defaults `"\nQ: "`, `"\nA: "`, `"\n  choice: "`, append_choices_to_input true and sep
/// (`few_shot_example_separator`) `"\n"`. The k shots s₁…s_k are other examples of the task,
/// drawn with `TaskRandom` from the seed and i alone, so an example's prompt does not depend on
/// which other examples are evaluated. Choices are listed as a seeded permutation of their
/// sorted spellings (the same permutation for every example with that many choices, as in
/// BIG-bench, whose numpy permutation this does not reproduce bit for bit). Duplicate examples
/// are removed as BIG-bench does. Fields BIG-bench ignores (`prefix`, `canary`, …) are ignored.
///
/// Scoring follows BIG-bench except where noted: `acc` counts a question right when the argmax
/// choice has the top target score (BIG-bench's `multiple_choice_grade` averages the chosen
/// choice's score, the same for the usual 0/1 scores); ties go to the first choice (BIG-bench
/// breaks them pseudo-randomly); choices are tokenized as `TaskEvaluator.tokenization` says
/// (BIG-bench: `.separate`); exact-match answers stop at the first newline and are compared
/// with the targets after trimming whitespace (BIG-bench compares untrimmed).
public struct BigBenchTask: Sendable {
    /// `name`, prefixed with the parent's name and a colon for a subtask (`arithmetic:1_digit_addition`).
    public var name: String
    /// The task.json read.
    public var path: String
    /// `description`.
    public var description: String
    /// `keywords`.
    public var keywords: [String]
    /// `metrics` BIG-bench computes for the task (e.g. `multiple_choice_grade`, `exact_str_match`).
    public var metrics: [String]
    /// `preferred_score`: which of `metrics` BIG-bench reports first; decides `TaskMode.automatic`.
    public var preferredScore: String
    /// `task_prefix`, put once before the whole prompt.
    public var taskPrefix: String
    /// `example_input_prefix` (default "\nQ: ").
    public var inputPrefix: String
    /// `example_output_prefix` (default "\nA: ").
    public var outputPrefix: String
    /// `choice_prefix` (default "\n  choice: ").
    public var choicePrefix: String
    /// `append_choices_to_input` (default true). Like BIG-bench, a string value counts as true
    /// unless empty (seven tasks write "false" and BIG-bench appends their choices).
    public var appendChoicesToInput: Bool
    /// `few_shot_example_separator` (default "\n", BIG-bench's).
    public var fewShotSeparator: String
    /// `output_regex`: the first match is the model's answer (with one capture group, the group).
    public var outputRegex: String?
    /// `stop_string`: the answer is cut after its first occurrence.
    public var stopString: String?
    /// The distinct examples, in file order.
    public var examples: [BigBenchExample]
    /// Exact duplicates dropped while loading.
    public var duplicatesRemoved: Int

    /// Multiple-choice metrics BIG-bench knows.
    public static let multipleChoiceMetrics: Set<String> = [
        "multiple_choice_grade", "calibration_multiple_choice_brier_score", "expected_calibration_error",
        "weighted_log_probabilities", "weighted_probabilities", "macro_f1",
    ]

    // MARK: Loading

    /// Loads a task or a composite task: `path` is a task.json, or a directory holding one. A
    /// task.json without `examples` is a composite whose subtasks are the task.json files of its
    /// subdirectories (sorted by directory name), as BIG-bench lays them out.
    /// - Parameter path: a task.json file or a task directory.
    /// - Returns: the tasks that have examples (the one task, or every subtask).
    /// - Throws: `TaskError` when a file cannot be read, is not JSON, or a field or example is
    ///   malformed; a composite with no subtasks is `invalidField(examples)`.
    public static func load(_ path: String) throws -> [BigBenchTask] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw TaskError.io(path: path, operation: "open", reason: "no such file or directory")
        }
        let file = isDirectory.boolValue ? path + "/task.json" : path
        let directory = isDirectory.boolValue ? path : String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)])
        let json = try readJSON(file)
        if json["examples"] != nil {
            return [try BigBenchTask(json: json, path: file, parent: try compositeName(above: directory))]
        }
        guard let parentName = json["name"]?.stringValue else {
            throw TaskError.invalidField(path: file, field: "name", reason: json["name"] == nil ? "missing" : "expected a string")
        }
        let entries: [String]
        do {
            entries = try FileManager.default.contentsOfDirectory(atPath: directory.isEmpty ? "." : directory).sorted()
        } catch {
            throw TaskError.io(path: directory, operation: "list", reason: "\(error.localizedDescription)")
        }
        var tasks: [BigBenchTask] = []
        for entry in entries where !entry.hasPrefix(".") {
            let sub = (directory.isEmpty ? "" : directory + "/") + entry + "/task.json"
            guard FileManager.default.fileExists(atPath: sub) else { continue }
            let subJSON = try readJSON(sub)
            guard subJSON["examples"] != nil else {
                throw TaskError.invalidField(path: sub, field: "examples", reason: "a subtask must have examples")
            }
            tasks.append(try BigBenchTask(json: subJSON, path: sub, parent: parentName))
        }
        guard !tasks.isEmpty else {
            throw TaskError.invalidField(path: file, field: "examples", reason: "missing, and no subdirectory holds a subtask")
        }
        return tasks
    }

    /// Parses one task document that has examples.
    /// - Parameters:
    ///   - json: the parsed task.json.
    ///   - path: used in messages.
    ///   - parent: the composite task's name, for subtasks.
    /// - Throws: `TaskError.invalidField` or `.invalidExample`.
    public init(json: JSONValue, path: String, parent: String?) throws {
        guard json.objectValue != nil else { throw TaskError.invalidField(path: path, field: "(root)", reason: "expected an object") }
        func string(_ key: String, default value: String?) throws -> String? {
            switch json[key] {
            case nil: return value
            case let .string(s)?: return s
            default: throw TaskError.invalidField(path: path, field: key, reason: "expected a string")
            }
        }
        func strings(_ key: String) throws -> [String] {
            guard let items = try Self.field(json, key, path).arrayValue else {
                throw TaskError.invalidField(path: path, field: key, reason: "expected a list of strings")
            }
            return try items.map {
                guard let s = $0.stringValue else { throw TaskError.invalidField(path: path, field: key, reason: "expected a list of strings") }
                return s
            }
        }
        guard let name = try string("name", default: nil) else {
            throw TaskError.invalidField(path: path, field: "name", reason: "missing")
        }
        self.name = parent.map { "\($0):\(name)" } ?? name
        self.path = path
        description = try string("description", default: "") ?? ""
        keywords = json["keywords"] == nil ? [] : try strings("keywords")
        metrics = try strings("metrics")
        guard let preferred = try string("preferred_score", default: nil) else {
            throw TaskError.invalidField(path: path, field: "preferred_score", reason: "missing")
        }
        preferredScore = preferred
        taskPrefix = try string("task_prefix", default: "") ?? ""
        inputPrefix = try string("example_input_prefix", default: "\nQ: ") ?? ""
        outputPrefix = try string("example_output_prefix", default: "\nA: ") ?? ""
        choicePrefix = try string("choice_prefix", default: "\n  choice: ") ?? ""
        fewShotSeparator = try string("few_shot_example_separator", default: "\n") ?? ""
        outputRegex = try string("output_regex", default: nil)
        stopString = try string("stop_string", default: nil)
        switch json["append_choices_to_input"] {
        case nil: appendChoicesToInput = true
        case let .bool(b)?: appendChoicesToInput = b
        case let .string(s)?: appendChoicesToInput = !s.isEmpty
        default: throw TaskError.invalidField(path: path, field: "append_choices_to_input", reason: "expected a boolean")
        }

        guard let items = try Self.field(json, "examples", path).arrayValue else {
            throw TaskError.invalidField(path: path, field: "examples", reason: "expected a list")
        }
        var seen = Set<String>()
        var examples: [BigBenchExample] = []
        for (i, item) in items.enumerated() {
            guard seen.insert(item.serialized()).inserted else { continue }
            examples.append(try Self.example(item, index: i, path: path))
        }
        guard !examples.isEmpty else { throw TaskError.invalidField(path: path, field: "examples", reason: "empty") }
        duplicatesRemoved = items.count - examples.count
        self.examples = examples
    }

    private static func example(_ item: JSONValue, index: Int, path: String) throws -> BigBenchExample {
        let label = "example \(index)"
        func bad(_ reason: String) -> TaskError { .invalidExample(path: path, example: label, reason: reason) }
        guard item.objectValue != nil else { throw bad("expected an object") }
        guard let inputValue = item["input"] else { throw bad("missing 'input'") }
        guard let input = inputValue.stringValue else { throw bad("'input' is not a string") }
        var targets: [String] = []
        switch item["target"] {
        case nil: break
        case let .string(s)?: targets = [s]
        case let .array(list)?:
            targets = try list.map {
                guard let s = $0.stringValue else { throw bad("'target' is not a string or a list of strings") }
                return s
            }
        default: throw bad("'target' is not a string or a list of strings")
        }
        var choices: [String] = [], scores: [Double] = []
        if let ts = item["target_scores"] {
            guard let members = ts.objectValue, !members.isEmpty else { throw bad("'target_scores' is not a non-empty object") }
            for (choice, value) in members {
                switch value {
                case let .int(v): scores.append(Double(v))
                case let .double(v) where v.isFinite: scores.append(v)
                default: throw bad("'target_scores' value of '\(choice)' is not a number")
                }
                choices.append(choice)
            }
            if choices.count > 1, scores.max() == scores.min() { throw bad("'target_scores' has no choice scored above the others") }
        }
        guard !targets.isEmpty || !choices.isEmpty else { throw bad("has neither 'target' nor 'target_scores'") }
        return BigBenchExample(input: input, targets: targets, choices: choices, scores: scores)
    }

    /// The name of the composite task whose subtask lives in `directory`: the `name` of
    /// `directory/../task.json` when that file exists and has no `examples`, else nil.
    private static func compositeName(above directory: String) throws -> String? {
        let components = directory.split(separator: "/", omittingEmptySubsequences: false)
        guard components.count > 1 else { return nil }
        let parentFile = components.dropLast().joined(separator: "/") + "/task.json"
        guard FileManager.default.fileExists(atPath: parentFile),
              let size = (try? FileManager.default.attributesOfItem(atPath: parentFile))?[.size] as? Int,
              size < 1 << 20 else { return nil }
        let parent = try readJSON(parentFile)
        guard parent["examples"] == nil else { return nil }
        return parent["name"]?.stringValue
    }

    private static func field(_ json: JSONValue, _ key: String, _ path: String) throws -> JSONValue {
        guard let v = json[key] else { throw TaskError.invalidField(path: path, field: key, reason: "missing") }
        return v
    }

    /// Reads and parses a JSON file with the strict parser.
    static func readJSON(_ path: String) throws -> JSONValue {
        let map = try mapTaskFile(path)
        do {
            return try JSONParser.parse(map.bytes.bindMemory(to: UInt8.self))
        } catch {
            throw TaskError.invalidJSON(path: path, line: nil, reason: "\(error)")
        }
    }

    // MARK: Kind

    /// Whether every example has `target_scores` (can be asked as multiple choice).
    public var supportsMultipleChoice: Bool { examples.allSatisfy(\.isMultipleChoice) }
    /// Whether every example has a `target` (can be asked as exact match).
    public var supportsExactMatch: Bool { examples.allSatisfy { !$0.targets.isEmpty } }

    /// The mode `.automatic` stands for in this task, nil when the task supports neither.
    public func resolvedMode(_ mode: TaskMode) -> TaskMode? {
        switch mode {
        case .multipleChoice: return supportsMultipleChoice ? .multipleChoice : nil
        case .exactMatch: return supportsExactMatch ? .exactMatch : nil
        case .automatic:
            if supportsMultipleChoice, Self.multipleChoiceMetrics.contains(preferredScore) || !supportsExactMatch {
                return .multipleChoice
            }
            return supportsExactMatch ? .exactMatch : nil
        }
    }

    /// Expected multiple-choice accuracy of uniform guessing, over all examples (BIG-bench's
    /// `low_score` for 0/1 scores); nil unless every example has choices.
    public var chance: Double? {
        guard supportsMultipleChoice else { return nil }
        var sum = 0.0
        for e in examples { sum += Double(e.correctChoices.count) / Double(e.choices.count) }
        return sum / Double(examples.count)
    }

    // MARK: Prompts

    /// The choices of example `index` in the order they are listed in its prompt: the sorted
    /// spellings (by Unicode scalar) permuted by a generator seeded with `seed` alone.
    public func listedChoices(_ index: Int, seed: UInt64) -> [String] {
        var sorted = examples[index].choices.sorted { $0.unicodeScalars.lexicographicallyPrecedes($1.unicodeScalars) }
        var rng = TaskRandom(seed: seed, stream: 0xC401CE)
        rng.shuffle(&sorted)
        return sorted
    }

    /// Example `index` as a question: input prefix, input, the listed choices (when it has choices
    /// and `appendChoicesToInput`), output prefix. No task prefix, no shots.
    public func formattedInput(_ index: Int, seed: UInt64) -> String {
        let e = examples[index]
        var text = inputPrefix + e.input
        if e.isMultipleChoice, appendChoicesToInput {
            text += choicePrefix + listedChoices(index, seed: seed).joined(separator: choicePrefix)
        }
        return text + outputPrefix
    }

    /// The examples shown before example `index` with `shots` shots, and the answer each shows.
    /// - Throws: `TaskError.invalidRequest` when the task has fewer than `shots + 1` examples.
    public func shotExamples(for index: Int, shots: Int, seed: UInt64) throws -> [(index: Int, answer: String)] {
        guard shots > 0 else { return [] }
        guard examples.count > shots else {
            throw TaskError.invalidRequest(task: name, reason: "\(shots) shots need at least \(shots + 1) examples, the task has \(examples.count)")
        }
        var rng = TaskRandom(seed: seed, stream: UInt64(index) + 1)
        var chosen: [Int] = []
        while chosen.count < shots {
            let j = rng.next(below: examples.count)
            if j != index, !chosen.contains(j) { chosen.append(j) }
        }
        return chosen.map { j in
            let answers = examples[j].answers
            return (j, answers[rng.next(below: answers.count)])
        }
    }

    /// The full prompt of example `index`: task prefix, `shots` worked examples, the question.
    /// - Throws: `TaskError.invalidRequest` when the task has too few examples for `shots`.
    public func prompt(for index: Int, shots: Int, seed: UInt64) throws -> String {
        var text = taskPrefix
        for (j, answer) in try shotExamples(for: index, shots: shots, seed: seed) {
            text += formattedInput(j, seed: seed) + answer + fewShotSeparator
        }
        return text + formattedInput(index, seed: seed)
    }

    /// Example `index` as a multiple-choice question (choices scored in file order).
    /// - Throws: `TaskError.invalidRequest` when it has no `target_scores` or too few examples for `shots`.
    public func multipleChoiceQuestion(_ index: Int, shots: Int, seed: UInt64) throws -> MultipleChoiceQuestion {
        let e = examples[index]
        guard let gold = e.goldChoice else {
            throw TaskError.invalidRequest(task: name, reason: "example \(index) has no 'target_scores'")
        }
        return MultipleChoiceQuestion(context: try prompt(for: index, shots: shots, seed: seed), choices: e.choices,
                                      gold: gold, correct: e.correctChoices)
    }

    /// `limit` example indices drawn without replacement with `seed` (ascending), or all of them
    /// when `limit` is nil or not below the example count.
    public func sampleIndices(limit: Int?, seed: UInt64) -> [Int] {
        sampleExampleIndices(count: examples.count, limit: limit, seed: seed)
    }
}

/// `limit` of `count` indices drawn with `seed` (ascending), or all when `limit` is nil or ≥ count.
func sampleExampleIndices(count: Int, limit: Int?, seed: UInt64) -> [Int] {
    guard let limit, limit < count else { return Array(0..<count) }
    var rng = TaskRandom(seed: seed, stream: 0x5AB5E7)
    return rng.sample(max(limit, 0), from: count).sorted()
}
