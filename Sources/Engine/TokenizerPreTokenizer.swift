/// The classes of Unicode scalars that the GPT-2 split pattern tells apart.
///
/// `letter` is `\p{L}` (general categories Lu, Ll, Lt, Lm, Lo), `number` is `\p{N}` (Nd, Nl,
/// No), `whitespace` is Oniguruma's `\s` (the Unicode White_Space property) and `other` is
/// everything else, combining marks and format characters included.
///
/// The reference runs the pattern in Oniguruma, whose tables are Unicode 16.0, but its `Digits`
/// pre-tokenizer is Rust's `char::is_numeric`, whose tables are Unicode 17.0, like Swift 6.3's.
/// So a scalar assigned after 16.0 is `other` to the pattern (it is unassigned there), except
/// that a number assigned after 16.0 is still a digit to `Digits`: that is `otherNumeric`.
enum ScalarClass: UInt8, Sendable {
    case letter, number, whitespace, other, otherNumeric

    /// The Unicode version of the reference's Oniguruma tables (HF `tokenizers` 0.23).
    static let patternUnicodeVersion = (16, 0)

    /// The class of one scalar; ASCII is decided without a property lookup.
    init(_ value: UInt32) {
        switch value {
        case 0x61...0x7A, 0x41...0x5A: self = .letter
        case 0x30...0x39: self = .number
        case 0x09...0x0D, 0x20: self = .whitespace
        case 0..<0x80: self = .other
        default:
            guard let scalar = Unicode.Scalar(value) else { self = .other; return }
            let properties = scalar.properties
            if properties.isWhitespace { self = .whitespace; return }
            let isLetter: Bool
            switch properties.generalCategory {
            case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
                isLetter = true
            case .decimalNumber, .letterNumber, .otherNumber:
                isLetter = false
            default:
                self = .other
                return
            }
            if let age = properties.age, (age.major, age.minor) > Self.patternUnicodeVersion {
                self = isLetter ? .other : .otherNumeric
            } else {
                self = isLetter ? .letter : .number
            }
        }
    }

    /// A number to the `Digits` pre-tokenizer.
    var isNumeric: Bool { self == .number || self == .otherNumeric }

    /// The class as the split pattern sees it.
    var patternClass: ScalarClass { self == .otherNumeric ? .other : self }
}

/// GPT-2's reversible map from bytes to printable Unicode scalars (`bytes_to_unicode`).
///
/// Bytes 0x21–0x7E, 0xA1–0xAC and 0xAE–0xFF stand for themselves; the other 68 bytes, in
/// increasing order, become U+0100, U+0101, …, so a space is `Ġ` (U+0120) and a newline `Ċ`.
enum ByteLevelAlphabet {
    /// The scalar value standing for each byte.
    static func scalarForByte() -> [UInt32] {
        var map = [UInt32](repeating: 0, count: 256)
        var next: UInt32 = 256
        for byte in 0..<256 {
            switch byte {
            case 0x21...0x7E, 0xA1...0xAC, 0xAE...0xFF:
                map[byte] = UInt32(byte)
            default:
                map[byte] = next
                next += 1
            }
        }
        return map
    }

    /// The vocabulary spelling of a byte string: one alphabet scalar per byte.
    static func spelling(_ bytes: some Sequence<UInt8>, map: [UInt32]) -> String {
        var s = String.UnicodeScalarView()
        for b in bytes { s.append(Unicode.Scalar(map[Int(b)])!) }
        return String(s)
    }
}

/// Splits ordinary text (text between added tokens) into the pieces that BPE encodes
/// separately: the `Digits` pre-tokenizer (optional) followed by the `ByteLevel` one.
///
/// The ByteLevel split uses GPT-2's pattern
/// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`, matched here
/// by a hand-written scanner over Unicode scalars with the leftmost-first semantics of
/// Oniguruma (the engine HF `tokenizers` uses): at each position the alternatives are tried
/// in order. Every scalar falls in one of the classes, so the matches tile the text.
struct PreTokenizer: Sendable {
    /// How the `Digits` pre-tokenizer splits numbers before the ByteLevel split.
    enum DigitSplit: Sendable, Equatable {
        /// No `Digits` pre-tokenizer.
        case none
        /// `individual_digits: true`: every numeric scalar is a piece of its own.
        case individual
        /// `individual_digits: false`: every maximal run of numeric scalars is one piece.
        case grouped
    }

    var digits: DigitSplit
    /// `use_regex` of the ByteLevel pre-tokenizer; when false the text is not split further.
    var useRegex: Bool

    /// Per-scalar buffers for one stretch of text, reused between calls.
    struct Scratch {
        var scalars: [UInt32] = []
        var classes: [ScalarClass] = []
        /// Byte offset of each scalar, plus the end offset.
        var offsets: [Int] = []
    }

    /// Calls `body` with the byte range of each piece of `bytes[range]`, in order.
    /// - Parameters:
    ///   - bytes: valid UTF-8 text.
    ///   - range: the stretch to split; it starts and ends on scalar boundaries.
    ///   - scratch: buffers reused between calls.
    ///   - body: receives each piece's byte range (never empty).
    func split(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>, scratch: inout Scratch,
               _ body: (Range<Int>) -> Void) {
        if range.isEmpty { return }
        decodeScalars(bytes, range, into: &scratch)
        let n = scratch.scalars.count
        scratch.scalars.withUnsafeBufferPointer { scalars in
            scratch.classes.withUnsafeBufferPointer { classes in
                scratch.offsets.withUnsafeBufferPointer { offsets in
                    func emit(_ lo: Int, _ hi: Int) { body(offsets[lo]..<offsets[hi]) }
                    func rest(_ lo: Int, _ hi: Int) {
                        if useRegex {
                            Self.scanGPT2(scalars, classes, lo, hi, emit)
                        } else {
                            emit(lo, hi)
                        }
                    }
                    switch digits {
                    case .none:
                        rest(0, n)
                    case .individual, .grouped:
                        var start = 0
                        var i = 0
                        while i < n {
                            guard classes[i].isNumeric else { i += 1; continue }
                            if start < i { rest(start, i) }
                            var end = i + 1
                            if digits == .grouped {
                                while end < n, classes[end].isNumeric { end += 1 }
                            }
                            emit(i, end)
                            start = end
                            i = end
                        }
                        if start < n { rest(start, n) }
                    }
                }
            }
        }
    }

    /// Fills `scratch` with the scalars of `bytes[range]`, their classes and byte offsets.
    private func decodeScalars(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>, into scratch: inout Scratch) {
        scratch.scalars.removeAll(keepingCapacity: true)
        scratch.classes.removeAll(keepingCapacity: true)
        scratch.offsets.removeAll(keepingCapacity: true)
        var i = range.lowerBound
        let end = range.upperBound
        while i < end {
            let b0 = UInt32(bytes[i])
            let value: UInt32
            let length: Int
            if b0 < 0x80 {
                value = b0
                length = 1
            } else if b0 < 0xE0 {
                value = (b0 & 0x1F) << 6 | UInt32(bytes[i + 1] & 0x3F)
                length = 2
            } else if b0 < 0xF0 {
                value = (b0 & 0x0F) << 12 | UInt32(bytes[i + 1] & 0x3F) << 6 | UInt32(bytes[i + 2] & 0x3F)
                length = 3
            } else {
                value = (b0 & 0x07) << 18 | UInt32(bytes[i + 1] & 0x3F) << 12
                    | UInt32(bytes[i + 2] & 0x3F) << 6 | UInt32(bytes[i + 3] & 0x3F)
                length = 4
            }
            scratch.scalars.append(value)
            scratch.classes.append(ScalarClass(value))
            scratch.offsets.append(i)
            i += length
        }
        scratch.offsets.append(end)
    }

    /// GPT-2's split pattern over scalars `lo..<hi`; `emit` gets scalar index ranges.
    ///
    /// At a match start the alternatives are, in order: an ASCII contraction after `'`
    /// (lowercase only: `'S` is not one); an optional U+0020 followed by a run of letters,
    /// numbers or "other" scalars (the space joins whichever run follows it); a whitespace run
    /// that stops before its last scalar when a non-space follows (`\s+(?!\S)`, so that scalar
    /// can lead the next piece); a single whitespace scalar (`\s+` reached only when the run
    /// is one scalar long and a non-space follows).
    static func scanGPT2(_ scalars: UnsafeBufferPointer<UInt32>, _ classes: UnsafeBufferPointer<ScalarClass>,
                         _ lo: Int, _ hi: Int, _ emit: (Int, Int) -> Void) {
        let apostrophe: UInt32 = 0x27, space: UInt32 = 0x20
        var i = lo
        while i < hi {
            let c = scalars[i]
            if c == apostrophe, i + 1 < hi {
                let n1 = scalars[i + 1]
                switch n1 {
                case 0x73, 0x74, 0x6D, 0x64: // s t m d
                    emit(i, i + 2)
                    i += 2
                    continue
                default:
                    if i + 2 < hi {
                        let n2 = scalars[i + 2]
                        // re ve ll
                        if (n1 == 0x72 && n2 == 0x65) || (n1 == 0x76 && n2 == 0x65) || (n1 == 0x6C && n2 == 0x6C) {
                            emit(i, i + 3)
                            i += 3
                            continue
                        }
                    }
                }
            }
            var j = i
            if c == space, i + 1 < hi, classes[i + 1] != .whitespace { j = i + 1 }
            let k = classes[j].patternClass
            var e = j + 1
            while e < hi, classes[e].patternClass == k { e += 1 }
            if k == .whitespace, e < hi, e - i >= 2 { e -= 1 }
            emit(i, e)
            i = e
        }
    }
}
