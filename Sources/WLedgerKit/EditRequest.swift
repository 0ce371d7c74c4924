import TensorIO

/// Validation of edit requests in EasyEdit's format.
///
/// A request is a JSON object (or an array of them, for batch methods) with `prompt`, `subject`
/// (which must occur in `prompt`), `target_new`, `ground_truth`, optional `rephrase_prompt`
/// (string or array of strings) and optional `locality` / `portability` (objects mapping a name
/// to `{"prompt": …, "ground_truth": …}`, each a string or an equally long array of strings).
public enum EditRequest {
    static let allowedKeys: Set<String> = ["prompt", "subject", "target_new", "ground_truth", "rephrase_prompt", "locality", "portability"]

    /// Parses and validates request JSON.
    /// - Parameter source: the file name, for messages.
    /// - Returns: the canonical (compact) JSON text to store.
    /// - Throws: `KitError.usage` naming the file and the first problem.
    public static func validate(_ bytes: [UInt8], source: String) throws -> String {
        let value: JSONValue
        do {
            value = try JSONParser.parse(bytes)
        } catch let e as JSONParseError {
            throw KitError.usage("'\(source)': invalid JSON: \(e)")
        }
        switch value {
        case .object:
            try validateOne(value, source: source, label: "request")
        case let .array(items):
            guard !items.isEmpty else { throw KitError.usage("'\(source)': empty request list") }
            for (i, item) in items.enumerated() { try validateOne(item, source: source, label: "request \(i)") }
        default:
            throw KitError.usage("'\(source)': an edit request must be a JSON object or an array of objects")
        }
        return value.serialized()
    }

    private static func validateOne(_ v: JSONValue, source: String, label: String) throws {
        func bad(_ why: String) -> KitError { .usage("'\(source)': \(label): \(why)") }
        guard case let .object(members) = v else { throw bad("not a JSON object") }
        for (k, _) in members where !allowedKeys.contains(k) {
            throw bad("unknown field \"\(k)\" (allowed: \(allowedKeys.sorted().joined(separator: ", ")))")
        }
        // A NUL would go into commit messages (edit's default names the subject), which git
        // refuses too, and through `log` to the terminal.
        func holdsNUL(_ v: JSONValue) -> Bool {
            switch v {
            case let .string(s): return s.unicodeScalars.contains("\u{0}")
            case let .array(a): return a.contains(where: holdsNUL)
            case let .object(o): return o.contains { $0.0.unicodeScalars.contains("\u{0}") || holdsNUL($0.1) }
            default: return false
            }
        }
        for (k, value) in members where holdsNUL(value) { throw bad("\"\(k)\" contains a NUL character (U+0000)") }
        func requiredString(_ key: String) throws -> String {
            guard let item = v[key] else { throw bad("missing \"\(key)\"") }
            guard let s = item.stringValue else { throw bad("\"\(key)\" must be a string") }
            guard !s.trimmingWhitespace().isEmpty else { throw bad("\"\(key)\" is empty") }
            return s
        }
        let prompt = try requiredString("prompt")
        let subject = try requiredString("subject")
        let target = try requiredString("target_new")
        let truth = try requiredString("ground_truth")
        guard prompt.contains(subject) else { throw bad("subject \"\(subject)\" does not occur in prompt \"\(prompt)\"") }
        guard target != truth else { throw bad("target_new equals ground_truth (\"\(target)\"): nothing to edit") }
        if let r = v["rephrase_prompt"] {
            switch r {
            case let .string(s) where !s.isEmpty: break
            case let .array(items) where !items.isEmpty && items.allSatisfy({ $0.stringValue?.isEmpty == false }): break
            default: throw bad("\"rephrase_prompt\" must be a non-empty string or a non-empty array of them")
            }
        }
        for key in ["locality", "portability"] {
            guard let group = v[key] else { continue }
            guard case let .object(sets) = group else { throw bad("\"\(key)\" must be an object of named prompt sets") }
            for (name, set) in sets {
                guard case .object = set, let p = set["prompt"], let g = set["ground_truth"] else {
                    throw bad("\"\(key)\".\"\(name)\" needs \"prompt\" and \"ground_truth\"")
                }
                func count(_ x: JSONValue) -> Int? {
                    if let s = x.stringValue { return s.isEmpty ? nil : 1 }
                    if let a = x.arrayValue, !a.isEmpty, a.allSatisfy({ $0.stringValue != nil }) { return a.count }
                    return nil
                }
                guard let np = count(p), let ng = count(g) else {
                    throw bad("\"\(key)\".\"\(name)\": prompt and ground_truth must be non-empty strings or arrays of strings")
                }
                guard np == ng else { throw bad("\"\(key)\".\"\(name)\": \(np) prompts but \(ng) ground truths") }
            }
        }
    }
}

extension String {
    func trimmingWhitespace() -> String {
        var s = Substring(self)
        while let f = s.first, f.isWhitespace { s = s.dropFirst() }
        while let l = s.last, l.isWhitespace { s = s.dropLast() }
        return String(s)
    }
}
