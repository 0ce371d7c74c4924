import Foundation

/// What an editing method needs of one request: the prompt (which contains the subject), the
/// subject, and the new target.
public struct EditTarget: Sendable, Equatable {
    public var prompt: String
    public var subject: String
    public var targetNew: String

    public init(prompt: String, subject: String, targetNew: String) {
        self.prompt = prompt; self.subject = subject; self.targetNew = targetNew
    }
}

/// Tokenized prompts for locate-then-edit methods (ROME, MEMIT): context templates, the position
/// of the subject's last token, target tokens.
public struct EditPrompts {
    public let tokenizer: Tokenizer

    public init(tokenizer: Tokenizer) { self.tokenizer = tokenizer }

    /// A prompt with its subject's last token located: `tokens`, and `subjectLast` the index in
    /// `tokens` of the last token that covers the subject.
    public struct Located: Sendable, Equatable {
        public var tokens: [Int]
        public var subjectLast: Int
    }

    /// Fills `template` ("… {}") with `prompt` and locates the last token of the last occurrence
    /// of `subject` in the prompt: the length of the tokenized text up to the end of the subject,
    /// minus one (as the original ROME code does; BPE splits at the spaces around the subject).
    /// - Throws: `ModelError.invalidInput` when the subject does not occur in the prompt.
    public func locate(template: String, prompt: String, subject: String) throws -> Located {
        guard let r = prompt.range(of: subject, options: .backwards) else {
            throw ModelError.invalidInput(path: "request", reason: "subject \"\(subject)\" does not occur in prompt \"\(prompt)\"")
        }
        let parts = template.components(separatedBy: "{}")
        let before = parts.first ?? "", after = parts.count > 1 ? parts[1...].joined(separator: "{}") : ""
        let text = before + prompt + after
        let upToSubject = before + String(prompt[..<r.upperBound])
        let tokens = tokenizer.encode(text)
        let last = tokenizer.encode(upToSubject).count - 1
        guard last >= 0, last < tokens.count else {
            throw ModelError.invalidInput(path: "request", reason: "subject \"\(subject)\" has no token in \"\(text)\"")
        }
        return Located(tokens: tokens, subjectLast: last)
    }

    /// The token ids of the new target as it follows the prompt (with a leading space, as
    /// EasyEdit adds one when the target has none).
    public func targetTokens(_ targetNew: String) -> [Int] {
        tokenizer.encode(targetNew.first?.isWhitespace == true ? targetNew : " " + targetNew)
    }

    /// Context templates: "{}" and `counts[i]` texts of `lengths[i]` tokens sampled from the
    /// model (top-5, seeded) after the starters "The", "Therefore", "Because", "I", "You", each
    /// followed by ". {}" (the construction of the original ROME code, with braces removed from
    /// the generated text).
    public func contextTemplates(model: Model, lengths: [(length: Int, count: Int)], seed: UInt64 = 0) throws -> [String] {
        let starters = ["The", "Therefore", "Because", "I", "You"]
        var rng = TaskRandom(seed: seed)
        var out = ["{}"]
        for (length, count) in lengths where length > 0 {
            for i in 0..<count {
                var tokens = tokenizer.encode(starters[i % starters.count])
                let promptCount = tokens.count
                while tokens.count - promptCount < length {
                    let t = try model.trace([tokens], logProbsAt: [TokenPosition(sequence: 0, position: tokens.count - 1)])
                    let lp = t.logProbs[0]
                    // Top 5, then sample in proportion to probability.
                    let top = lp.indices.sorted { lp[$0] > lp[$1] }.prefix(5)
                    let weights = top.map { exp(Double(lp[$0])) }
                    let total = weights.reduce(0, +)
                    var u = Double(rng.next() >> 11) / Double(1 << 53) * total
                    var pick = top.last!
                    for (j, w) in zip(top, weights) {
                        if u < w { pick = j; break }
                        u -= w
                    }
                    tokens.append(pick)
                }
                let text = tokenizer.decode(tokens, skipSpecialTokens: true)
                    .replacingOccurrences(of: "{", with: "").replacingOccurrences(of: "}", with: "")
                out.append(text + ". {}")
            }
        }
        return out
    }
}
