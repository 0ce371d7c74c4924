import Engine
import Foundation
import TensorIO

/// One task of a health suite: where its examples come from and how it is asked.
public struct HealthTask: Sendable, Equatable {
    public var name: String
    public var source: TaskSource
    public var mode: TaskMode
    public var shots: Int
    public var limit: Int?
    public var seed: UInt64
    /// The metric shown first and used by default in thresholds and bisect.
    public var metric: String?
    /// External tasks: the evaluator's task names, substituted for {tasks}.
    public var externalTasks: String?

    public init(name: String, source: TaskSource, mode: TaskMode = .automatic, shots: Int = 0, limit: Int? = nil, seed: UInt64 = 42,
                metric: String? = nil, externalTasks: String? = nil) {
        self.name = name; self.source = source; self.mode = mode; self.shots = shots; self.limit = limit; self.seed = seed
        self.metric = metric; self.externalTasks = externalTasks
    }

    /// The headline metric: the configured one, else `acc` / `exact_match` / `efficacy` /
    /// `perplexity` by kind.
    public func headlineMetric(kind: String?) -> String {
        if let metric { return metric }
        switch source {
        case .edits: return "efficacy"
        case .perplexity: return "perplexity"
        case .external: return "acc"
        default: return kind == TaskMode.exactMatch.rawValue || mode == .exactMatch ? "exact_match" : "acc"
        }
    }
}

/// The built-in default suite, chosen by measuring SmolLM2-135M-Instruct (see the README's
/// "Health" section): tasks where the model is far above chance and whose scores fall when the
/// weights are damaged. BIG-bench's 2-digit addition (exact match), and four sections of the
/// Google word-analogy test set as 4-way multiple choice (`scripts/wordtasks.py` writes them
/// into the task data directory, `health.tasks`): world knowledge (capitals), relations (family)
/// and grammar (comparatives, opposites). About 28 seconds per evaluated commit on two threads.
public enum BuiltinSuite {
    public static let name = "default"

    /// The analogy sections of the suite: task name and the file below `analogies/`.
    public static let analogies: [(name: String, section: String)] = [
        ("capitals", "capital-world"), ("family", "family"),
        ("comparative", "gram3-comparative"), ("opposite", "gram2-opposite"),
    ]

    /// The suite's tasks, with the analogy files in `dataDirectory`.
    public static func tasks(dataDirectory: String) -> [HealthTask] {
        [HealthTask(name: "addition", source: .bigbench("arithmetic/2_digit_addition"), mode: .exactMatch, shots: 2, limit: 40)]
            + analogies.map { HealthTask(name: $0.name, source: .jsonl(dataDirectory + "/analogies/" + $0.section + ".jsonl"), limit: 100) }
            + [HealthTask(name: "edits", source: .edits)]
    }
}

/// Suites, tasks, thresholds and evaluators: the built-ins overlaid with `.wledger/config`.
public struct HealthSettings: Sendable {
    public var tasks: [String: HealthTask]
    public var suites: [String: [String]]
    public var thresholds: [String: Threshold]
    public var evaluators: [String: String]
    public var defaultSuite: String
    public var threads: Int?
    public var bigbenchDirectory: String
    /// wledger's own task data (`analogies/*.jsonl`, `corpus/lee_background.txt`).
    public var dataDirectory: String
    public let configPath: String

    /// Reads the repository's config (validated key by key).
    /// - Throws: `KitError.usage` naming the config file and the bad key or reference.
    public static func load(_ repo: Repository) throws -> HealthSettings {
        try load(config: try ConfigFile.load(repo.configPath))
    }

    public static func load(config: ConfigFile) throws -> HealthSettings {
        let (settings, problems) = analyze(config)
        if let why = problems.first { throw KitError.usage("'\(config.path)': \(why)") }
        return settings!
    }

    /// Why the commands that read the config would refuse it, each with its line: a value of
    /// the wrong kind (`ConfigFile.problems`), then entries that do not fit together (a suite
    /// naming a task no entry defines, a task without a source, a threshold of an unknown task,
    /// an evaluator without a command, `health.suite` naming no suite).
    public static func problems(_ config: ConfigFile) -> [String] { analyze(config).problems }

    /// The settings a config gives, or nil with why not (`problems`).
    /// - Parameter blanked: keys whose malformed values `config` has as blank lines; a task whose
    ///   source is one of them counts as defined, so that the one problem is reported once (not
    ///   also as "has no source", nor a suite naming it as "unknown task").
    static func analyze(_ config: ConfigFile, blanked: Set<String> = []) -> (settings: HealthSettings?, problems: [String]) {
        let malformed = config.malformedEntries()
        if !malformed.isEmpty {
            // The reads below trust each value's kind: the entries that fit together are checked
            // without the malformed ones (as blank lines), so every problem is reported at once.
            let rest = analyze(config.blanking(malformed.map(\.index)), blanked: Set(malformed.map(\.key))).problems
            return (nil, malformed.map { "line \($0.index + 1): \($0.problem)" } + rest)
        }
        var problems: [String] = []
        func bad(_ line: Int?, _ m: String) { problems.append((line.map { "line \($0): " } ?? "") + m) }
        let env = ProcessInfo.processInfo.environment
        let cache = env["WLEDGER_CACHE"] ?? (NSHomeDirectory() + "/.cache/wledger")
        let bb = config.get("health.bigbench") ?? env["WLEDGER_BIGBENCH"] ?? (cache + "/bigbench/benchmark_tasks")
        let data = config.get("health.tasks") ?? env["WLEDGER_TASKS"] ?? (cache + "/tasks")
        let builtin = BuiltinSuite.tasks(dataDirectory: data)
        var tasks: [String: HealthTask] = [:]
        for t in builtin { tasks[t.name] = t }
        // A task whose only entry was a malformed source has no entry left, but is defined.
        let named = config.subsections(of: "task")
        let onlySource = blanked.filter { $0.hasPrefix("task.") && $0.hasSuffix(".source") }.map { String($0.dropFirst(5).dropLast(7)) }
        for name in named + onlySource.filter({ !named.contains($0) }).sorted() {
            let line = config.line(of: "task", name)
            guard ConfigFile.isValidName(name) else { bad(line, "task name '\(name)' must be letters, digits, '-' or '_'"); continue }
            var t = tasks[name] ?? HealthTask(name: name, source: .edits)
            if tasks[name] == nil {
                if let s = config.get("task.\(name).source") {
                    t.source = TaskSource(s)!
                } else if !blanked.contains("task.\(name).source") {
                    bad(line, "task '\(name)' has no source"); continue
                }
            } else if let s = config.get("task.\(name).source") {
                t.source = TaskSource(s)!
            }
            if let m = config.get("task.\(name).mode") { t.mode = TaskMode(rawValue: m)! }
            if let s = config.get("task.\(name).shots") { t.shots = Int(s)! }
            if let l = config.get("task.\(name).limit") { t.limit = Int(l)! }
            if let s = config.get("task.\(name).seed") { t.seed = UInt64(s)! }
            if let m = config.get("task.\(name).metric") { t.metric = m }
            if let x = config.get("task.\(name).tasks") { t.externalTasks = x }
            tasks[name] = t
        }
        var suites: [String: [String]] = [BuiltinSuite.name: builtin.map(\.name)]
        for name in config.subsections(of: "suite") {
            let line = config.line(of: "suite.\(name).tasks") ?? config.line(of: "suite", name)
            let list = (config.get("suite.\(name).tasks") ?? "").split(whereSeparator: { $0 == " " || $0 == "," || $0 == "\t" }).map(String.init)
            guard !list.isEmpty else { bad(line, "suite '\(name)' has no tasks"); continue }
            if let t = list.first(where: { tasks[$0] == nil }) { bad(line, "suite '\(name)' names unknown task '\(t)'"); continue }
            suites[name] = list
        }
        var evaluators: [String: String] = [:]
        for name in config.subsections(of: "evaluator") {
            if let c = config.get("evaluator.\(name).command") { evaluators[name] = c }
        }
        for t in tasks.values.sorted(by: { $0.name < $1.name }) {
            if case let .external(e) = t.source, evaluators[e] == nil {
                bad(config.line(of: "task.\(t.name).source"), "task '\(t.name)' uses evaluator '\(e)', which has no [evaluator \"\(e)\"] command")
            }
        }
        var thresholds: [String: Threshold] = [:]
        for sub in config.subsections(of: "threshold") {
            let parts = sub.split(separator: ".")
            guard parts.count == 2, tasks[String(parts[0])] != nil else {
                bad(config.line(of: "threshold", sub), "threshold '\(sub)' must name TASK.METRIC of a known task"); continue
            }
            thresholds[sub] = Threshold(metric: sub, min: config.get("threshold.\(sub).min").flatMap(Double.init),
                                        max: config.get("threshold.\(sub).max").flatMap(Double.init),
                                        maxDrop: config.get("threshold.\(sub).max-drop").flatMap(Threshold.Amount.init))
        }
        let defaultSuite = config.get("health.suite") ?? BuiltinSuite.name
        if suites[defaultSuite] == nil, !config.subsections(of: "suite").contains(defaultSuite) {
            bad(config.line(of: "health.suite"), "health.suite names unknown suite '\(defaultSuite)'")
        }
        if !problems.isEmpty { return (nil, problems) }
        return (HealthSettings(tasks: tasks, suites: suites, thresholds: thresholds, evaluators: evaluators, defaultSuite: defaultSuite,
                               threads: config.get("health.threads").flatMap(Int.init), bigbenchDirectory: bb, dataDirectory: data,
                               configPath: config.path), [])
    }

    /// The tasks of a suite, in order.
    public func suite(_ name: String?) throws -> [HealthTask] {
        let n = name ?? defaultSuite
        guard let list = suites[n] else {
            throw KitError.usage("unknown suite '\(n)' (known: \(suites.keys.sorted().joined(separator: ", ")); define one with 'wledger config set suite.\(n).tasks ...')")
        }
        return list.map { tasks[$0]! }
    }

    /// The tasks named (for --task), in order, each once (`--task a --task a` evaluates `a` once).
    public func tasks(named names: [String]) throws -> [HealthTask] {
        var seen = Set<String>()
        return try names.filter { seen.insert($0).inserted }.map { n in
            guard let t = tasks[n] else {
                throw KitError.usage("unknown task '\(n)' (known: \(tasks.keys.sorted().joined(separator: ", ")))")
            }
            return t
        }
    }
}

extension Repository {
    /// `.wledger/config`.
    public var configPath: String { wledgerDirectory + "/config" }
}
