/// One entry of tokenizer.json's `added_tokens`: a string matched verbatim in the input before
/// pre-tokenization and replaced by its id (`<|im_start|>` and the like).
public struct AddedToken: Sendable, Equatable {
    /// The token's id.
    public var id: Int
    /// The exact text matched.
    public var content: String
    /// Whether `decode(_:skipSpecialTokens:)` may drop it.
    public var isSpecial: Bool
    /// Match only when not glued to word characters (`\w`) on either side.
    public var singleWord: Bool
    /// Absorb the whitespace before the match.
    public var leftStrip: Bool
    /// Absorb the whitespace after the match.
    public var rightStrip: Bool
    /// Matched against normalized text (a second pass) rather than the raw input.
    public var normalized: Bool

    /// Creates an added token.
    /// - Parameters:
    ///   - id: the token's id.
    ///   - content: the exact text matched; not empty.
    ///   - isSpecial: whether decoding may skip it.
    ///   - singleWord: match only between non-word characters.
    ///   - leftStrip: absorb whitespace before the match.
    ///   - rightStrip: absorb whitespace after the match.
    ///   - normalized: match in the second, normalized pass.
    public init(id: Int, content: String, isSpecial: Bool, singleWord: Bool = false, leftStrip: Bool = false,
                rightStrip: Bool = false, normalized: Bool = false) {
        self.id = id
        self.content = content
        self.isSpecial = isSpecial
        self.singleWord = singleWord
        self.leftStrip = leftStrip
        self.rightStrip = rightStrip
        self.normalized = normalized
    }
}

/// Finds added tokens in text the way HF `tokenizers`' `AddedVocabulary` does: a non-overlapping
/// leftmost-longest scan (its Aho-Corasick automaton in `LeftmostLongest` mode), then the
/// `single_word`, `lstrip` and `rstrip` rules applied to each match.
///
/// HF runs two such scans: tokens with `normalized: false` over the raw input, then tokens with
/// `normalized: true` over each remaining stretch (after the normalizer, which this tokenizer
/// requires to be absent). `split(_:_:_:)` does both.
struct AddedTokenMatcher: Sendable {
    /// One scan's patterns, bucketed by first byte, longest first within a bucket.
    private struct PatternSet: Sendable {
        let patterns: [(bytes: [UInt8], token: Int)]
        let buckets: [[Int]]

        init(_ tokens: [AddedToken], indices: [Int]) {
            let patterns = indices.filter { !tokens[$0].content.isEmpty }.map { (bytes: Array(tokens[$0].content.utf8), token: $0) }
            var buckets = [[Int]](repeating: [], count: 256)
            for p in patterns.indices { buckets[Int(patterns[p].bytes[0])].append(p) }
            for b in 0..<256 { buckets[b].sort { patterns[$0].bytes.count > patterns[$1].bytes.count } }
            self.patterns = patterns
            self.buckets = buckets
        }

        var isEmpty: Bool { patterns.isEmpty }
    }

    let tokens: [AddedToken]
    private let raw: PatternSet
    private let normalized: PatternSet

    init(_ tokens: [AddedToken]) {
        self.tokens = tokens
        raw = PatternSet(tokens, indices: tokens.indices.filter { !tokens[$0].normalized })
        normalized = PatternSet(tokens, indices: tokens.indices.filter { tokens[$0].normalized })
    }

    /// Splits `bytes[range]` into stretches of ordinary text and added tokens, in order.
    /// - Parameters:
    ///   - bytes: valid UTF-8 text.
    ///   - range: the part of `bytes` to split.
    ///   - body: receives each stretch and, for an added token, its id; ordinary stretches may
    ///     be empty and are then not reported.
    func split(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>, _ body: (Range<Int>, Int?) -> Void) {
        scan(raw, bytes, range) { outer, id in
            if id != nil || normalized.isEmpty {
                body(outer, id)
            } else {
                scan(normalized, bytes, outer, body)
            }
        }
    }

    /// One leftmost-longest scan with one pattern set.
    private func scan(_ set: PatternSet, _ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>,
                      _ body: (Range<Int>, Int?) -> Void) {
        let lo = range.lowerBound, hi = range.upperBound
        if set.isEmpty {
            if !range.isEmpty { body(range, nil) }
            return
        }
        var searchFrom = lo
        var consumed = lo
        while let (matchStart, p) = leftmostLongest(set, bytes, from: searchFrom, to: hi) {
            let token = tokens[set.patterns[p].token]
            var start = matchStart
            var stop = matchStart + set.patterns[p].bytes.count
            searchFrom = stop
            if token.singleWord {
                let wordBefore = start > lo && Self.isWordScalar(Self.scalar(before: start, in: bytes))
                let wordAfter = stop < hi && Self.isWordScalar(Self.scalar(at: stop, in: bytes))
                if wordBefore || wordAfter { continue }
            }
            if token.leftStrip {
                var s = start
                while s > lo {
                    let (value, length) = Self.scalar(before: s, in: bytes)
                    guard Self.isWhitespace(value) else { break }
                    s -= length
                }
                start = max(s, consumed)
            }
            if token.rightStrip {
                while stop < hi {
                    let (value, length) = Self.scalar(at: stop, in: bytes)
                    guard Self.isWhitespace(value) else { break }
                    stop += length
                }
            }
            if consumed < start { body(consumed..<start, nil) }
            body(start..<stop, token.id)
            consumed = stop
        }
        if consumed < hi { body(consumed..<hi, nil) }
    }

    /// The leftmost position in `from..<to` where a pattern matches, with the longest pattern there.
    private func leftmostLongest(_ set: PatternSet, _ bytes: UnsafeBufferPointer<UInt8>, from: Int, to: Int) -> (Int, Int)? {
        var i = from
        while i < to {
            for p in set.buckets[Int(bytes[i])] {
                let pattern = set.patterns[p].bytes
                guard i + pattern.count <= to else { continue }
                var k = 1
                while k < pattern.count, bytes[i + k] == pattern[k] { k += 1 }
                if k == pattern.count { return (i, p) }
            }
            i += 1
        }
        return nil
    }

    /// The scalar starting at byte `i` and its UTF-8 length.
    private static func scalar(at i: Int, in bytes: UnsafeBufferPointer<UInt8>) -> (UInt32, Int) {
        let b0 = UInt32(bytes[i])
        if b0 < 0x80 { return (b0, 1) }
        if b0 < 0xE0 { return ((b0 & 0x1F) << 6 | UInt32(bytes[i + 1] & 0x3F), 2) }
        if b0 < 0xF0 {
            return ((b0 & 0x0F) << 12 | UInt32(bytes[i + 1] & 0x3F) << 6 | UInt32(bytes[i + 2] & 0x3F), 3)
        }
        return ((b0 & 0x07) << 18 | UInt32(bytes[i + 1] & 0x3F) << 12 | UInt32(bytes[i + 2] & 0x3F) << 6
                | UInt32(bytes[i + 3] & 0x3F), 4)
    }

    /// The scalar ending just before byte `i` and its UTF-8 length.
    private static func scalar(before i: Int, in bytes: UnsafeBufferPointer<UInt8>) -> (UInt32, Int) {
        var s = i - 1
        while bytes[s] & 0xC0 == 0x80 { s -= 1 }
        return (scalar(at: s, in: bytes).0, i - s)
    }

    /// Rust `regex`'s `\s`: the White_Space property.
    private static func isWhitespace(_ value: UInt32) -> Bool {
        Unicode.Scalar(value)?.properties.isWhitespace ?? false
    }

    /// Rust `regex`'s Unicode `\w`: Alphabetic, marks, decimal digits, connector punctuation and
    /// Join_Control.
    private static func isWordScalar(_ scalar: (UInt32, Int)) -> Bool {
        guard let s = Unicode.Scalar(scalar.0) else { return false }
        let p = s.properties
        if p.isAlphabetic || p.isJoinControl { return true }
        switch p.generalCategory {
        case .nonspacingMark, .spacingMark, .enclosingMark, .decimalNumber, .connectorPunctuation: return true
        default: return false
        }
    }
}
