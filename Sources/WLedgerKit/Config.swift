import Foundation
import LinAlg
import TensorIO

/// `.wledger/config`: suites, tasks, thresholds, evaluators and hook settings, in git-config syntax.
///
/// ```
/// [health]
///     suite = default
/// [task "addition"]
///     source = bigbench:arithmetic/2_digit_addition
///     mode = exact_match
///     shots = 2
///     limit = 40
/// [suite "quick"]
///     tasks = addition edits
/// [threshold "addition.exact_match"]
///     min = 0.3
///     max-drop = 25%
/// ```
///
/// A key is written `section.key` or `section.subsection.key` (the subsection may contain dots:
/// the key is the last component). Later lines override earlier ones. Comments start with `#` or
/// `;`; values may be double-quoted (escapes `\"`, `\\`, `\n`, `\t`). Only the keys in
/// `ConfigFile.schema` are accepted by `set`, so a typo is an error, not a silent no-op; the file
/// itself is parsed strictly (a malformed line is an error naming the file and line).
public struct ConfigFile: Sendable {
    /// Documented keys: pattern (`*` = a subsection name) and what a value must look like.
    public struct Key: Sendable {
        public let pattern: String
        public let kind: ValueKind
        public let help: String
    }

    public enum ValueKind: Sendable {
        case string, word, count, positiveCount, threads, number, numberOrPercent, mode, source, command, boolean, expiry
        /// A gate limit: a finite number ≥ 0 (the measures it bounds are never negative).
        case limit
        /// A share: a number from 0 to 1, or a percentage from 0% to 100%.
        case share
    }

    public static let schema: [Key] = [
        Key(pattern: "health.suite", kind: .word, help: "suite `wledger health` runs when no --suite is given (default: default)"),
        Key(pattern: "health.threads", kind: .threads, help: "BLAS threads for evaluation (default: every core)"),
        Key(pattern: "health.bigbench", kind: .string, help: "directory of BIG-bench tasks (default: $WLEDGER_BIGBENCH, then ~/.cache/wledger/bigbench/benchmark_tasks)"),
        Key(pattern: "health.tasks", kind: .string, help: "directory of the default suite's analogy tasks and edit's default text corpus (default: $WLEDGER_TASKS, then ~/.cache/wledger/tasks)"),
        Key(pattern: "suite.*.tasks", kind: .string, help: "task names of a suite, separated by spaces or commas"),
        Key(pattern: "task.*.source", kind: .source, help: "bigbench:DIR[/SUBTASK], jsonl:FILE, perplexity:FILE, edits, or external:EVALUATOR"),
        Key(pattern: "task.*.mode", kind: .mode, help: "automatic, multiple_choice or exact_match (BIG-bench tasks)"),
        Key(pattern: "task.*.shots", kind: .count, help: "worked examples before each question"),
        Key(pattern: "task.*.limit", kind: .positiveCount, help: "evaluate a seeded subsample of this many examples"),
        Key(pattern: "task.*.seed", kind: .count, help: "seed of the subsample, shots and choice order (default 42)"),
        Key(pattern: "task.*.metric", kind: .word, help: "headline metric of the task, shown first"),
        Key(pattern: "task.*.tasks", kind: .string, help: "external tasks: the evaluator's task names (its {tasks})"),
        Key(pattern: "threshold.*.min", kind: .number, help: "TASK.METRIC must be at least this"),
        Key(pattern: "threshold.*.max", kind: .number, help: "TASK.METRIC must be at most this (e.g. a perplexity)"),
        Key(pattern: "threshold.*.max-drop", kind: .numberOrPercent, help: "TASK.METRIC may worsen at most this much from base (absolute, or N% of base): fall, or rise for perplexity, bits_per_byte, nll_*, *loss"),
        Key(pattern: "evaluator.*.command", kind: .command, help: "external evaluator command template with {weights}, {out} and {tasks}"),
        Key(pattern: "gate.max-l1", kind: .limit, help: "weight gate: largest Σ|ΔW| vs base allowed in one matrix"),
        Key(pattern: "gate.max-delta-share", kind: .share, help: "weight gate: largest share of elements with δ = |ΔW/W| > 0.171 vs base"),
        Key(pattern: "gate.max-kappa-growth", kind: .limit, help: "weight gate: largest κ(W)/κ(W_base) allowed"),
        Key(pattern: "gc.reflogExpire", kind: .expiry, help: "gc and reflog expire drop reflog entries older than this (default: 90.days.ago; never, now, 2.weeks.ago, 2026-01-31, @UNIX)"),
        Key(pattern: "gc.reflogExpireUnreachable", kind: .expiry, help: "gc and reflog expire drop reflog entries older than this whose commit no branch, tag, HEAD, stash entry or bisect session reaches, so gc removes the commit (default: 30.days.ago)"),
        Key(pattern: "core.in-place", kind: .boolean, help: "write changed tensors into weight files in place where they allow it: checkout, revert, prune, restrain, edit, commit --prune (default: true)"),
    ]

    /// One line of the file, kept verbatim so that `set` changes only what it must.
    enum Line: Sendable {
        case other(String)
        case section(String, String?, raw: String)
        case entry(section: String, subsection: String?, key: String, value: String, raw: String)
    }

    var lines: [Line]
    /// The file it came from (for messages).
    public let path: String

    /// Reads `path`; a missing file is an empty configuration.
    /// - Throws: `KitError.usage` naming the file and line of a malformed line.
    public static func load(_ path: String) throws -> ConfigFile {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { return ConfigFile(lines: [], path: path) }
        if isDir.boolValue {
            throw TensorIOError.io(path: path, operation: "read", reason: "it is a directory, not a config file")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TensorIOError.io(path: path, operation: "read", reason: access(path, R_OK) != 0 ? errnoText() : "unreadable")
        }
        guard let text = String(data: data, encoding: .utf8) else { throw KitError.usage("'\(path)': not UTF-8 text") }
        return try ConfigFile(text: text, path: path)
    }

    /// Parses config text.
    public init(text: String, path: String) throws {
        self.path = path
        var lines: [Line] = []
        var section: String?
        var subsection: String?
        for (i, raw) in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }).enumerated() {
            let line = String(raw)
            let t = line.trimmingWhitespace()
            func bad(_ why: String) -> KitError { .usage("'\(path)': line \(i + 1): \(why)") }
            if t.isEmpty || t.hasPrefix("#") || t.hasPrefix(";") { lines.append(.other(line)); continue }
            if t.hasPrefix("[") {
                guard let close = t.lastIndex(of: "]") else { throw bad("section header without ']'") }
                let rest = String(t[t.index(after: close)...]).trimmingWhitespace()
                guard rest.isEmpty || rest.hasPrefix("#") || rest.hasPrefix(";") else { throw bad("text after section header") }
                let inner = String(t[t.index(after: t.startIndex)..<close]).trimmingWhitespace()
                var name = inner
                var sub: String?
                if let q = inner.firstIndex(of: "\"") {
                    name = String(inner[..<q]).trimmingWhitespace()
                    let quoted = String(inner[q...])
                    guard quoted.count >= 2, quoted.hasSuffix("\"") else { throw bad("unterminated subsection name") }
                    sub = String(quoted.dropFirst().dropLast())
                    guard Self.isValidSubsection(sub!) else { throw bad("invalid subsection name '\(sub!)'") }
                }
                guard Self.isValidName(name) else { throw bad("invalid section name '\(name)'") }
                section = name.lowercased()
                subsection = sub
                lines.append(.section(section!, sub, raw: line))
                continue
            }
            guard let s = section else { throw bad("key outside any [section]") }
            guard let eq = t.firstIndex(of: "=") else { throw bad("expected 'key = value'") }
            let key = String(t[..<eq]).trimmingWhitespace()
            guard Self.isValidName(key) else { throw bad("invalid key name '\(key)'") }
            let value = try Self.parseValue(String(t[t.index(after: eq)...]), bad: bad)
            lines.append(.entry(section: s, subsection: subsection, key: key.lowercased(), value: value, raw: line))
        }
        if case .other("") = lines.last { lines.removeLast() }
        self.lines = lines
    }

    private init(lines: [Line], path: String) {
        self.lines = lines
        self.path = path
    }

    static func isValidName(_ s: String) -> Bool {
        guard let f = s.unicodeScalars.first, f.isASCII, CharacterSet.letters.contains(f) else { return false }
        return s.unicodeScalars.allSatisfy { ($0.isASCII && CharacterSet.alphanumerics.contains($0)) || $0 == "-" || $0 == "_" }
    }

    static func isValidSubsection(_ s: String) -> Bool {
        !s.isEmpty && !s.contains("\"") && !s.contains("\\") && !s.contains("\n")
    }

    static func parseValue(_ text: String, bad: (String) -> KitError) throws -> String {
        var out = ""
        var inQuote = false
        let chars = Array(text.trimmingWhitespace())
        var i = 0
        var trailingSpace = ""
        while i < chars.count {
            let c = chars[i]
            if c == "\\" {
                guard i + 1 < chars.count else { throw bad("value ends with a backslash") }
                switch chars[i + 1] {
                case "\"": out += trailingSpace + "\""
                case "\\": out += trailingSpace + "\\"
                case "n": out += trailingSpace + "\n"
                case "t": out += trailingSpace + "\t"
                default: throw bad("unknown escape '\\\(chars[i + 1])'")
                }
                trailingSpace = ""
                i += 2
                continue
            }
            if c == "\"" { inQuote.toggle(); out += trailingSpace; trailingSpace = ""; i += 1; continue }
            if !inQuote && (c == "#" || c == ";") { break }
            if !inQuote && (c == " " || c == "\t") { trailingSpace.append(c); i += 1; continue }
            out += trailingSpace
            trailingSpace = ""
            out.append(c)
            i += 1
        }
        if inQuote { throw bad("unterminated quoted value") }
        return out
    }

    /// Splits `section[.subsection].key`.
    static func splitKey(_ key: String) -> (section: String, subsection: String?, name: String)? {
        let parts = key.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard parts.count >= 2, let first = parts.first, let last = parts.last, isValidName(first), isValidName(last) else { return nil }
        let sub = parts.count > 2 ? parts[1..<(parts.count - 1)].joined(separator: ".") : nil
        if let sub, !isValidSubsection(sub) { return nil }
        return (first.lowercased(), sub, last.lowercased())
    }

    /// The value of `key` (the last one set), or nil.
    public func get(_ key: String) -> String? {
        guard let k = Self.splitKey(key) else { return nil }
        var found: String?
        for case let .entry(s, sub, name, value, _) in lines where s == k.section && sub == k.subsection && name == k.name {
            found = value
        }
        return found
    }

    /// Every key and value in file order, keys in canonical `section.subsection.key` form.
    public func list() -> [(key: String, value: String)] {
        lines.compactMap {
            guard case let .entry(s, sub, name, value, _) = $0 else { return nil }
            return (Self.fullKey(s, sub, name), value)
        }
    }

    static func fullKey(_ section: String, _ subsection: String?, _ name: String) -> String {
        ([section] + (subsection.map { [$0] } ?? []) + [name]).joined(separator: ".")
    }

    /// The line (1-based) of the entry that gives `key` its value (the last one), or nil.
    public func line(of key: String) -> Int? {
        guard let k = Self.splitKey(key) else { return nil }
        return lines.lastIndex {
            if case let .entry(s, sub, name, _, _) = $0 { return s == k.section && sub == k.subsection && name == k.name }
            return false
        }.map { $0 + 1 }
    }

    /// The line of the first entry of `[section "subsection"]` (or of a `section.subsection.key`
    /// entry of a dotted subsection), or nil.
    public func line(of section: String, _ subsection: String) -> Int? {
        lines.firstIndex {
            if case let .entry(s, sub, _, _, _) = $0 { return s == section && sub == subsection }
            return false
        }.map { $0 + 1 }
    }

    /// Subsection names used with `section` (e.g. every `[task "…"]`), in file order, unique.
    public func subsections(of section: String) -> [String] {
        var seen: [String] = []
        for case let .entry(s, sub?, _, _, _) in lines where s == section && !seen.contains(sub) { seen.append(sub) }
        return seen
    }

    /// The documented key a key matches, or nil.
    public static func schemaKey(for key: String) -> Key? {
        guard let k = splitKey(key) else { return nil }
        return schema.first { entry in
            guard let p = splitKey(entry.pattern) else { return false }
            return p.section == k.section && p.name == k.name && ((p.subsection == nil) == (k.subsection == nil))
        }
    }

    /// Checks a value against its documented kind; returns an error message or nil.
    public static func validate(key: String, value: String) -> String? {
        guard let spec = schemaKey(for: key) else {
            return "unknown key '\(key)' (see 'wledger config --help' for the documented keys)"
        }
        switch spec.kind {
        case .string, .command:
            if spec.kind == .command && !value.contains("{weights}") { return "'\(key)' must contain {weights}" }
            return nil
        case .word:
            return isValidName(value) ? nil : "'\(key)' must be a name (letters, digits, '-', '_'), got '\(value)'"
        case .threads:
            guard let n = Int(value), (1...BLAS.maxThreads).contains(n) else {
                return "'\(key)' must be a thread count from 1 to \(BLAS.maxThreads), got '\(value)'"
            }
            return nil
        case .count, .positiveCount:
            guard let n = Int(value), n >= (spec.kind == .count ? 0 : 1) else {
                return "'\(key)' must be a \(spec.kind == .count ? "non-negative" : "positive") integer, got '\(value)'"
            }
            return nil
        case .number:
            return Double(value).map { $0.isFinite ? nil : "'\(key)' must be finite" } ?? "'\(key)' must be a number, got '\(value)'"
        case .limit:
            guard let v = Double(value) else { return "'\(key)' must be a number, got '\(value)'" }
            return v.isFinite && v >= 0 ? nil : "'\(key)' must be a finite number ≥ 0 (what it limits is never negative), got '\(value)'"
        case .share:
            switch Threshold.Amount(value) {
            case let .absolute(a)? where a <= 1: return nil
            case let .percent(p)? where p <= 100: return nil
            default: return "'\(key)' must be a share from 0 to 1 or a percentage from 0% to 100%, got '\(value)'"
            }
        case .numberOrPercent:
            return Threshold.Amount(value) == nil ? "'\(key)' must be a number or a percentage like 10%, got '\(value)'" : nil
        case .mode:
            return ["automatic", "multiple_choice", "exact_match"].contains(value) ? nil
                : "'\(key)' must be automatic, multiple_choice or exact_match, got '\(value)'"
        case .source:
            return TaskSource(value) == nil ? "'\(key)': unknown task source '\(value)' (bigbench:DIR, jsonl:FILE, perplexity:FILE, edits, external:NAME)" : nil
        case .boolean:
            return ["true", "false"].contains(value) ? nil : "'\(key)' must be true or false"
        case .expiry:
            return ExpiryTime(value, now: 0) == nil ? "'\(key)' must be a time (now, never, 90.days.ago, 2026-01-31, @UNIX), got '\(value)'" : nil
        }
    }

    /// Sets `key` (replacing its last occurrence, or adding it under its section).
    /// - Throws: `KitError.usage` for an undocumented key or an ill-formed value.
    public mutating func set(_ key: String, _ value: String) throws {
        if let why = Self.validate(key: key, value: value) { throw KitError.usage(why) }
        let k = Self.splitKey(key)!
        let rendered = "\t\(k.name) = \(Self.quote(value))"
        if let i = lines.lastIndex(where: {
            if case let .entry(s, sub, name, _, _) = $0 { return s == k.section && sub == k.subsection && name == k.name }
            return false
        }) {
            lines[i] = .entry(section: k.section, subsection: k.subsection, key: k.name, value: value, raw: rendered)
            return
        }
        let entry = Line.entry(section: k.section, subsection: k.subsection, key: k.name, value: value, raw: rendered)
        if let h = lines.lastIndex(where: {
            if case let .section(s, sub, _) = $0 { return s == k.section && sub == k.subsection }
            return false
        }) {
            var end = h + 1
            while end < lines.count, case .entry = lines[end] { end += 1 }
            lines.insert(entry, at: end)
        } else {
            let header = k.subsection.map { "[\(k.section) \"\($0)\"]" } ?? "[\(k.section)]"
            lines.append(.section(k.section, k.subsection, raw: header))
            lines.append(entry)
        }
    }

    /// Removes every occurrence of `key`; returns whether there was one.
    @discardableResult
    public mutating func unset(_ key: String) -> Bool {
        guard let k = Self.splitKey(key) else { return false }
        let before = lines.count
        lines.removeAll {
            if case let .entry(s, sub, name, _, _) = $0 { return s == k.section && sub == k.subsection && name == k.name }
            return false
        }
        return lines.count != before
    }

    static func quote(_ v: String) -> String {
        let needs = v.isEmpty || v.first == " " || v.last == " " || v.contains(where: { "#;\"\\\n\t".contains($0) })
        guard needs else { return v }
        let escaped = v.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n").replacingOccurrences(of: "\t", with: "\\t")
        return "\"\(escaped)\""
    }

    /// The file's text.
    public var text: String {
        lines.map {
            switch $0 {
            case let .other(s): return s
            case let .section(_, _, raw): return raw
            case let .entry(_, _, _, _, raw): return raw
            }
        }.joined(separator: "\n") + "\n"
    }

    /// Writes the file atomically.
    public func save() throws {
        let bytes = Array(text.utf8)
        let w = try AtomicFileWriter(path: path, size: bytes.count)
        do {
            try w.write(bytes, at: 0)
            try w.commit()
        } catch {
            w.abort()
            throw error
        }
    }

    /// Checks every documented key's value (used before running anything configured).
    /// - Throws: `KitError.usage` naming the file and the first bad key.
    public func validateAll() throws {
        if let why = problems().first { throw KitError.usage("'\(path)': \(why)") }
    }

    /// `validateAll` for the keys of one section only (`gate`): what a command does not read
    /// does not stop it, as the README says of the commands reading the config.
    public func validate(section: String) throws {
        if let bad = malformedEntries().first(where: { $0.key.hasPrefix(section + ".") }) {
            throw KitError.usage("'\(path)': line \(bad.index + 1): \(bad.problem)")
        }
    }

    /// Why each set value the commands reading it would refuse, in file order, each with its
    /// line (`line 7: 'health.threads' must be …`), as a malformed line is named.
    public func problems() -> [String] { malformedEntries().map { "line \($0.index + 1): \($0.problem)" } }

    /// The entries whose value its key refuses: line index, key and why.
    func malformedEntries() -> [(index: Int, key: String, problem: String)] {
        lines.enumerated().compactMap { i, line in
            guard case let .entry(s, sub, name, value, _) = line else { return nil }
            let key = Self.fullKey(s, sub, name)
            return Self.validate(key: key, value: value).map { (i, key, $0) }
        }
    }

    /// This config with the lines at `indices` blank (for checks that trust each value's kind).
    func blanking(_ indices: [Int]) -> ConfigFile {
        var out = self
        for i in indices { out.lines[i] = .other("") }
        return out
    }

    /// The starting config `init` writes: comments that document the keys.
    public static let initialText = """
        # wledger configuration (git-config syntax); see 'wledger config --help'.
        # The built-in default suite is used unless [health] suite names another.
        #
        # [health]
        #     suite = default
        #     threads = 2
        # [task "addition"]
        #     source = bigbench:arithmetic/2_digit_addition
        #     mode = exact_match
        #     shots = 2
        #     limit = 40
        # [suite "quick"]
        #     tasks = addition edits
        # [threshold "addition.exact_match"]
        #     min = 0.3
        #     max-drop = 25%
        # [evaluator "lm-eval"]
        #     command = lm_eval --model hf --model_args pretrained={weights} --tasks {tasks} --output_path {out}
        # [task "hellaswag"]
        #     source = external:lm-eval
        #     tasks = hellaswag

        """
}

/// Where a task's examples come from.
public enum TaskSource: Sendable, Equatable, CustomStringConvertible {
    case bigbench(String)
    case jsonl(String)
    case perplexity(String)
    case edits
    case external(String)

    public init?(_ text: String) {
        if text == "edits" { self = .edits; return }
        guard let colon = text.firstIndex(of: ":") else { return nil }
        let kind = text[..<colon]
        let arg = String(text[text.index(after: colon)...])
        guard !arg.isEmpty else { return nil }
        switch kind {
        case "bigbench": self = .bigbench(arg)
        case "jsonl": self = .jsonl(arg)
        case "perplexity": self = .perplexity(arg)
        case "external": self = .external(arg)
        default: return nil
        }
    }

    public var description: String {
        switch self {
        case let .bigbench(p): return "bigbench:" + p
        case let .jsonl(p): return "jsonl:" + p
        case let .perplexity(p): return "perplexity:" + p
        case .edits: return "edits"
        case let .external(p): return "external:" + p
        }
    }
}

/// A limit on one task metric.
public struct Threshold: Sendable, Equatable, Encodable {
    /// An absolute amount or a share of the base value.
    public enum Amount: Sendable, Equatable, Encodable, CustomStringConvertible {
        case absolute(Double)
        case percent(Double)

        public init?(_ text: String) {
            if text.hasSuffix("%") {
                guard let p = Double(text.dropLast()), p.isFinite, p >= 0 else { return nil }
                self = .percent(p)
            } else {
                guard let a = Double(text), a.isFinite, a >= 0 else { return nil }
                self = .absolute(a)
            }
        }

        public var description: String {
            switch self {
            case let .absolute(a): return String(format: "%g", a)
            case let .percent(p): return String(format: "%g%%", p)
            }
        }

        /// The allowed drop for a base value.
        public func allowed(base: Double) -> Double {
            switch self {
            case let .absolute(a): return a
            case let .percent(p): return abs(base) * p / 100
            }
        }

        public func encode(to encoder: Encoder) throws {
            var c = encoder.singleValueContainer()
            try c.encode(description)
        }
    }

    /// `task.metric`.
    public var metric: String
    public var min: Double?
    /// An absolute ceiling (for metrics where lower is better, such as perplexity).
    public var max: Double? = nil
    /// How far the metric may worsen from base: fall, or rise where lower is better.
    public var maxDrop: Amount?

    public init(metric: String, min: Double? = nil, max: Double? = nil, maxDrop: Amount? = nil) {
        self.metric = metric
        self.min = min
        self.max = max
        self.maxDrop = maxDrop
    }

    /// Whether lower values of `metric` (the name after the task's, or all of it) are better:
    /// perplexities, bits per byte, negative log-likelihoods and losses. Thresholds and metric
    /// bisects count a rise of these as the worsening.
    public static func lowerIsBetter(_ metric: String) -> Bool {
        let name = metric.split(separator: ".").last.map(String.init) ?? metric
        return name.contains("perplexity") || name.hasPrefix("nll") || name.hasPrefix("bits_per_") || name.hasSuffix("loss")
    }
}
