import TensorIO

/// A multiple-choice task in the lm-evaluation-harness style: a JSONL file whose lines are
///
///     {"context": "Question: …\nAnswer:", "choices": [" yes", " no"], "gold": 0}
///
/// Each choice is scored as a continuation of its context exactly as written (put any space
/// between them at the front of the choices, as lm-evaluation-harness does). Other members of a
/// line are ignored; blank lines are skipped.
///
/// ```swift
/// let task = try JSONLTask(path: "piqa-100.jsonl")
/// let report = try evaluator.evaluate(task, options: TaskOptions(shots: 2))
/// ```
public struct JSONLTask: Sendable {
    /// The file name without directory and `.jsonl`.
    public var name: String
    /// The file read.
    public var path: String
    /// The questions, in file order.
    public var questions: [MultipleChoiceQuestion]
    /// Separator between worked examples and before the question in k-shot prompts.
    public var fewShotSeparator: String

    /// Reads a JSONL file.
    /// - Parameters:
    ///   - path: the file.
    ///   - name: the task name (default: the file name without `.jsonl`).
    ///   - fewShotSeparator: see the property (default "\n\n").
    /// - Throws: `TaskError.io` when the file cannot be read; `.invalidJSON` (with the line number)
    ///   for a line that is not UTF-8 or not JSON; `.invalidExample` (naming the line) for a line
    ///   that is not an object, lacks a field, has a field of the wrong type, no choices, or a
    ///   `gold` outside them; `.invalidFile` for a file with no questions.
    public init(path: String, name: String? = nil, fewShotSeparator: String = "\n\n") throws {
        let map = try mapTaskFile(path)
        let bytes = map.bytes.bindMemory(to: UInt8.self)
        var questions: [MultipleChoiceQuestion] = []
        var start = 0, line = 1
        while start < bytes.count {
            var end = start
            while end < bytes.count, bytes[end] != 0x0A { end += 1 }
            let slice = UnsafeBufferPointer(rebasing: bytes[start..<end])
            if slice.contains(where: { $0 != 0x20 && $0 != 0x09 && $0 != 0x0D }) {
                questions.append(try Self.question(slice, line: line, path: path))
            }
            start = end + 1
            line += 1
        }
        guard !questions.isEmpty else { throw TaskError.invalidFile(path: path, reason: "no questions") }
        var base = path.split(separator: "/", omittingEmptySubsequences: false).last.map(String.init) ?? path
        if base.hasSuffix(".jsonl") { base.removeLast(6) }
        self.name = name ?? base
        self.path = path
        self.questions = questions
        self.fewShotSeparator = fewShotSeparator
    }

    /// A task from questions already in memory.
    public init(name: String, questions: [MultipleChoiceQuestion], fewShotSeparator: String = "\n\n") {
        self.name = name
        path = name
        self.questions = questions
        self.fewShotSeparator = fewShotSeparator
    }

    private static func question(_ bytes: UnsafeBufferPointer<UInt8>, line: Int, path: String) throws -> MultipleChoiceQuestion {
        let json: JSONValue
        do {
            json = try JSONParser.parse(bytes)
        } catch {
            throw TaskError.invalidJSON(path: path, line: line, reason: "\(error)")
        }
        func bad(_ reason: String) -> TaskError { .invalidExample(path: path, example: "line \(line)", reason: reason) }
        guard json.objectValue != nil else { throw bad("expected an object") }
        guard let contextValue = json["context"] else { throw bad("missing 'context'") }
        guard let context = contextValue.stringValue else { throw bad("'context' is not a string") }
        guard let choicesValue = json["choices"] else { throw bad("missing 'choices'") }
        guard let items = choicesValue.arrayValue else { throw bad("'choices' is not a list of strings") }
        let choices: [String] = try items.map {
            guard let s = $0.stringValue else { throw bad("'choices' is not a list of strings") }
            return s
        }
        guard !choices.isEmpty else { throw bad("'choices' is empty") }
        guard let goldValue = json["gold"] else { throw bad("missing 'gold'") }
        guard let gold = goldValue.intValue else { throw bad("'gold' is not an integer") }
        guard gold >= 0, gold < choices.count else {
            throw bad("'gold' \(gold) is outside the \(choices.count) choices")
        }
        return MultipleChoiceQuestion(context: context, choices: choices, gold: Int(gold))
    }

    /// Question `index` with `shots` other questions, drawn with `seed` and the index, put before
    /// it as worked examples (context + gold choice), joined by `fewShotSeparator`.
    /// - Throws: `TaskError.invalidRequest` when there are fewer than `shots + 1` questions.
    public func question(_ index: Int, shots: Int, seed: UInt64) throws -> MultipleChoiceQuestion {
        var q = questions[index]
        guard shots > 0 else { return q }
        guard questions.count > shots else {
            throw TaskError.invalidRequest(task: name, reason: "\(shots) shots need at least \(shots + 1) questions, the task has \(questions.count)")
        }
        var rng = TaskRandom(seed: seed, stream: UInt64(index) + 1)
        var chosen: [Int] = []
        while chosen.count < shots {
            let j = rng.next(below: questions.count)
            if j != index, !chosen.contains(j) { chosen.append(j) }
        }
        q.context = chosen.map { questions[$0].solvedText + fewShotSeparator }.joined() + q.context
        return q
    }

    /// Expected accuracy of uniform guessing, over all questions.
    public var chance: Double {
        var sum = 0.0
        for q in questions { sum += q.chance }
        return sum / Double(questions.count)
    }
}
