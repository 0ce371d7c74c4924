@testable import Engine
import Foundation
import TensorIO
import TestSupport
import XCTest

/// The tokenizer against HF `tokenizers`: literal examples, the reference file written by
/// scripts/tokenizer_cases.py (encode ids, decode text, the pre-tokenizer's class of every
/// Unicode scalar, variant tokenizer.json files), plus loading errors on small synthetic files.
final class TokenizerTests: XCTestCase {
    // MARK: Fixtures

    private static func smolLM2() throws -> Tokenizer {
        try Tokenizer(path: Fixtures.smolLM2("f32") + "/tokenizer.json")
    }

    /// The reference file, skipped locally and failing under CI when missing (like
    /// `Fixtures.smolLM2`).
    private static func reference() throws -> (root: JSONValue, directory: String) {
        let directory = Fixtures.cacheRoot + "/fixtures"
        let path = directory + "/tokenizer_cases.json"
        guard FileManager.default.fileExists(atPath: path) else {
            let env = ProcessInfo.processInfo.environment
            if env["CI"] != nil || env["WLEDGER_REQUIRE_FIXTURES"] != nil {
                XCTFail("fixture '\(path)' missing: run scripts/fetch-fixtures.sh")
                throw XCTSkip("fixture missing")
            }
            throw XCTSkip("fixture '\(path)' missing: run scripts/fetch-fixtures.sh")
        }
        let data = try XCTUnwrap(FileManager.default.contents(atPath: path))
        return (try JSONParser.parse([UInt8](data)), directory)
    }

    private struct EncodeCase {
        var text: String
        var ids: [Int]
        var decoded: String
    }

    private static func encodeCases(_ list: JSONValue?) throws -> [EncodeCase] {
        try XCTUnwrap(list?.arrayValue).map { c in
            EncodeCase(text: try XCTUnwrap(c["text"]?.stringValue),
                       ids: try ints(c["ids"]),
                       decoded: try XCTUnwrap(c["decoded"]?.stringValue))
        }
    }

    private static func ints(_ value: JSONValue?) throws -> [Int] {
        try XCTUnwrap(value?.arrayValue).map { Int(try XCTUnwrap($0.intValue)) }
    }

    /// Fails once, listing the first mismatches with their token spellings.
    private static func checkEncoding(_ tokenizer: Tokenizer, _ cases: [EncodeCase], label: String,
                                      file: StaticString = #filePath, line: UInt = #line) {
        var mismatches: [String] = []
        for c in cases {
            let got = tokenizer.encode(c.text)
            guard got != c.ids else { continue }
            if mismatches.count < 8 {
                let spell = { (ids: [Int]) in ids.map { tokenizer.tokenString($0) ?? "?" } }
                let at = zip(got, c.ids).prefix { $0 == $1 }.count
                mismatches.append("""
                      text \(String(reflecting: String(c.text.prefix(200))))
                        first difference at token \(at)
                        expected \(c.ids.prefix(at + 8)) \(spell(Array(c.ids.dropFirst(at).prefix(8))))
                        got      \(got.prefix(at + 8)) \(spell(Array(got.dropFirst(at).prefix(8))))
                    """)
            } else {
                mismatches.append("")
            }
        }
        if !mismatches.isEmpty {
            XCTFail("\(label): \(mismatches.count) of \(cases.count) cases differ from HF tokenizers; first ones:\n"
                    + mismatches.filter { !$0.isEmpty }.joined(separator: "\n"), file: file, line: line)
        }
    }

    // MARK: SmolLM2 against HF

    func testRequiredExamples() throws {
        let tokenizer = try Self.smolLM2()
        XCTAssertEqual(tokenizer.encode("The capital of France is"), [504, 3575, 282, 4649, 314])
        XCTAssertEqual(tokenizer.encode("1, 2, 3, 4,"), [33, 28, 216, 34, 28, 216, 35, 28, 216, 36, 28])
        XCTAssertEqual(tokenizer.decode([504, 3575, 282, 4649, 314]), "The capital of France is")
        XCTAssertEqual(tokenizer.encode(""), [])
        XCTAssertEqual(tokenizer.encode("<|im_start|>user\nhi<|im_end|>"), [1, 4093, 198, 6004, 2])
    }

    func testVocabularyAndSpecialTokens() throws {
        let tokenizer = try Self.smolLM2()
        XCTAssertEqual(tokenizer.vocabularySize, 49152)
        XCTAssertEqual(tokenizer.bosTokenID, 1)
        XCTAssertEqual(tokenizer.eosTokenID, 2)
        XCTAssertEqual(tokenizer.id(of: "<|endoftext|>"), 0)
        XCTAssertEqual(tokenizer.id(of: "<|im_end|>"), 2)
        XCTAssertEqual(tokenizer.id(of: "Ġcapital"), 3575)
        XCTAssertNil(tokenizer.id(of: " capital"))
        XCTAssertEqual(tokenizer.tokenString(504), "The")
        XCTAssertEqual(tokenizer.tokenString(1), "<|im_start|>")
        XCTAssertNil(tokenizer.tokenString(49152))
        XCTAssertNil(tokenizer.tokenString(-1))
        XCTAssertEqual(tokenizer.specialTokenIDs, Set(0...16))
        XCTAssertTrue(tokenizer.isSpecialToken(2))
        XCTAssertFalse(tokenizer.isSpecialToken(504))
        XCTAssertEqual(tokenizer.addedTokens.count, 17)
    }

    func testEncodingMatchesReference() throws {
        let (root, _) = try Self.reference()
        let tokenizer = try Self.smolLM2()
        let cases = try Self.encodeCases(root["cases"])
        XCTAssertGreaterThan(cases.count, 300)
        Self.checkEncoding(tokenizer, cases, label: "smollm2")
    }

    func testDecodingMatchesReferenceAndRoundTrips() throws {
        let (root, _) = try Self.reference()
        let tokenizer = try Self.smolLM2()
        var lossy: [String] = []
        for c in try Self.encodeCases(root["cases"]) {
            XCTAssertEqual(tokenizer.decode(c.ids), c.decoded, "decode of the ids of \(String(reflecting: c.text))")
            let roundTrip = tokenizer.decode(tokenizer.encode(c.text))
            XCTAssertEqual(roundTrip, c.decoded, "decode(encode(\(String(reflecting: c.text))))")
            if c.decoded != c.text { lossy.append(c.text) }
        }
        // HF loses only the bytes whose alphabet scalar SmolLM2's vocabulary lacks (0x04, 0x1D …):
        // every other case must come back unchanged.
        let missing: Set<UInt8> = [4, 6, 19, 20, 22, 29]
        for text in lossy {
            XCTAssertTrue(text.utf8.contains { missing.contains($0) }, "HF does not round-trip \(String(reflecting: text))")
        }
        XCTAssertFalse(lossy.isEmpty, "the cases should include bytes missing from the vocabulary")
    }

    func testDecodeCasesMatchReference() throws {
        let (root, _) = try Self.reference()
        let tokenizer = try Self.smolLM2()
        let cases = try XCTUnwrap(root["decode_cases"]?.arrayValue)
        XCTAssertGreaterThan(cases.count, 100)
        var failures = 0
        for c in cases {
            let ids = try Self.ints(c["ids"])
            let text = try XCTUnwrap(c["text"]?.stringValue)
            let skipping = try XCTUnwrap(c["text_skipping_special"]?.stringValue)
            if tokenizer.decode(ids) != text || tokenizer.decode(ids, skipSpecialTokens: true) != skipping {
                failures += 1
                if failures <= 5 {
                    XCTFail("decode(\(ids)): expected \(String(reflecting: text)) / \(String(reflecting: skipping)), got "
                            + "\(String(reflecting: tokenizer.decode(ids))) / "
                            + "\(String(reflecting: tokenizer.decode(ids, skipSpecialTokens: true)))")
                }
            }
        }
        XCTAssertEqual(failures, 0)
    }

    /// Every Unicode scalar is classed as HF's pre-tokenizer treats it (L, N, S, O as probed by
    /// the script); a Swift toolchain with other Unicode tables shows up here first.
    func testScalarClassesMatchReference() throws {
        let (root, _) = try Self.reference()
        let ranges = try XCTUnwrap(root["scalar_classes"]?.arrayValue)
        var mismatches: [String] = []
        var covered = 0
        for r in ranges {
            let items = try XCTUnwrap(r.arrayValue)
            let first = UInt32(try XCTUnwrap(items[0].intValue)), last = UInt32(try XCTUnwrap(items[1].intValue))
            let expected = try XCTUnwrap(items[2].stringValue)
            for v in first...last where !(0xD800...0xDFFF).contains(v) {
                covered += 1
                let got: String
                switch ScalarClass(v) {
                case .letter: got = "L"
                case .number, .otherNumeric: got = "N"
                case .whitespace: got = "S"
                case .other: got = "O"
                }
                if got != expected, mismatches.count < 20 {
                    mismatches.append("U+\(String(v, radix: 16, uppercase: true)) expected \(expected) got \(got)")
                }
            }
        }
        XCTAssertEqual(covered, 0x110000 - 0x800)
        XCTAssertEqual(mismatches, [])
    }

    func testVariantTokenizersMatchReference() throws {
        let (root, directory) = try Self.reference()
        let variants = try XCTUnwrap(root["variants"]?.arrayValue)
        XCTAssertGreaterThanOrEqual(variants.count, 4)
        for v in variants {
            let name = try XCTUnwrap(v["name"]?.stringValue)
            let tokenizer = try Tokenizer(path: directory + "/" + XCTUnwrap(v["tokenizer"]?.stringValue))
            let cases = try Self.encodeCases(v["cases"])
            Self.checkEncoding(tokenizer, cases, label: "variant '\(name)'")
            for c in cases where tokenizer.decode(c.ids) != c.decoded {
                XCTFail("variant '\(name)': decode of the ids of \(String(reflecting: c.text))")
                break
            }
        }
    }

    func testConcurrentEncodingMatchesSerial() throws {
        let (root, _) = try Self.reference()
        let tokenizer = try Self.smolLM2()
        let texts = try Self.encodeCases(root["cases"]).map(\.text)
        let serial = texts.map { tokenizer.encode($0) }
        let fresh = try Self.smolLM2()
        let results = ResultBox(count: texts.count)
        DispatchQueue.concurrentPerform(iterations: texts.count) { i in results.set(i, fresh.encode(texts[i])) }
        XCTAssertEqual(results.values, serial)
        XCTAssertGreaterThan(fresh.cachedPieceCount, 0)
    }

    // MARK: Synthetic tokenizers (no fixtures)

    /// A byte-level tokenizer.json: the 256 alphabet scalars, then the merged tokens.
    private static func syntheticJSON(merges: [String], addMergedTokens: Bool = true, added: String = "[]", model extra: String = "",
                                      normalizer: String = "null",
                                      preTokenizer: String = #"{"type":"ByteLevel","add_prefix_space":false,"use_regex":true}"#,
                                      decoder: String = #"{"type":"ByteLevel"}"#) -> String {
        let alphabet = ByteLevelAlphabet.scalarForByte()
        var vocab: [String] = (0..<256).map { String(Unicode.Scalar(alphabet[$0])!) }
        for m in merges where addMergedTokens {
            let merged = m.replacingOccurrences(of: " ", with: "")
            if !vocab.contains(merged) { vocab.append(merged) }
        }
        var vocabJSON = "{"
        for (i, t) in vocab.enumerated() {
            if i > 0 { vocabJSON += "," }
            JSONValue.writeString(t, to: &vocabJSON)
            vocabJSON += ":\(i)"
        }
        vocabJSON += "}"
        let mergesJSON = JSONValue.array(merges.map { .string($0) }).serialized()
        return """
            {"version":"1.0","truncation":null,"padding":null,"added_tokens":\(added),"normalizer":\(normalizer),
             "pre_tokenizer":\(preTokenizer),"post_processor":null,"decoder":\(decoder),
             "model":{"type":"BPE","dropout":null,"unk_token":null\(extra),"vocab":\(vocabJSON),"merges":\(mergesJSON)}}
            """
    }

    private static func write(_ text: String, in dir: TemporaryDirectory, name: String = "tokenizer.json") throws -> String {
        let path = dir.path + "/" + name
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    func testSyntheticMergesApplyByRank() throws {
        let dir = try TemporaryDirectory("tokenizer")
        // "Ġ t" outranks "h e", which outranks "t h": " the" becomes "Ġt" "he", then "Ġthe";
        // "the" becomes "t" "he" although "t h" is a merge.
        let path = try Self.write(Self.syntheticJSON(merges: ["Ġ t", "h e", "t h", "Ġt he", "a a"]), in: dir)
        let tokenizer = try Tokenizer(path: path)
        XCTAssertEqual(tokenizer.vocabularySize, 256 + 5)
        let spell = { (s: String) in tokenizer.encode(s).map { tokenizer.tokenString($0)! } }
        XCTAssertEqual(spell(" the"), ["Ġthe"])
        XCTAssertEqual(spell("the"), ["t", "he"])
        XCTAssertEqual(spell("aaaaa"), ["aa", "aa", "a"])
        XCTAssertEqual(spell("  the"), ["Ġ", "Ġthe"])
        XCTAssertEqual(spell("it's 42"), ["i", "t", "'", "s", "Ġ", "4", "2"])
        XCTAssertEqual(tokenizer.decode(tokenizer.encode("it's 42\n\tok é 😀")), "it's 42\n\tok é 😀")
        XCTAssertNil(tokenizer.bosTokenID)
    }

    func testGPT2PatternSplits() {
        // Piece boundaries of the split pattern alone, as HF's pre_tokenize_str reports them.
        let cases: [(String, [String])] = [
            ("Hello world", ["Hello", " world"]),
            ("a   b", ["a", "  ", " b"]),
            ("a\t b", ["a", "\t", " b"]),
            ("a  \tb", ["a", "  ", "\t", "b"]),
            ("x   ", ["x", "   "]),
            ("I'm 'S 're", ["I", "'m", " '", "S", " '", "re"]),
            ("''s", ["''", "s"]),
            ("!!'s", ["!!'", "s"]),
            ("x'sy", ["x", "'s", "y"]),
            ("abc123 45", ["abc", "123", " 45"]),
            ("e\u{301}t", ["e", "\u{301}", "t"]),
            ("a\u{3000}\u{3000} b", ["a", "\u{3000}\u{3000}", " b"]),
        ]
        let pre = PreTokenizer(digits: .none, useRegex: true)
        for (text, expected) in cases {
            var scratch = PreTokenizer.Scratch()
            var pieces: [String] = []
            var t = text
            t.withUTF8 { bytes in
                pre.split(bytes, 0..<bytes.count, scratch: &scratch) { r in
                    pieces.append(String(decoding: UnsafeBufferPointer(rebasing: bytes[r]), as: UTF8.self))
                }
            }
            XCTAssertEqual(pieces, expected, String(reflecting: text))
        }
    }

    func testLoadingErrorsNameFileAndField() throws {
        let dir = try TemporaryDirectory("tokenizer")
        func error(_ text: String) throws -> String {
            let path = try Self.write(text, in: dir)
            do {
                _ = try Tokenizer(path: path)
                return "no error"
            } catch let e as TokenizerError {
                XCTAssertTrue(e.description.hasPrefix("'\(path)'"), e.description)
                return String(e.description.dropFirst(path.count + 4))
            }
        }
        XCTAssertEqual(try error("{"), "not valid JSON: expected object key at byte 1")
        XCTAssertEqual(try error("[]"), "field '(root)': expected an object")
        XCTAssertEqual(try error(Self.syntheticJSON(merges: ["a b"], addMergedTokens: false)), "field 'model.merges[0]': 'ab' is not in the vocabulary")
        XCTAssertEqual(try error(Self.syntheticJSON(merges: ["a b c"])), "field 'model.merges[0]': expected two tokens")
        XCTAssertEqual(try error(Self.syntheticJSON(merges: [], normalizer: #"{"type":"NFC"}"#)),
                       #"field 'normalizer': unsupported value {"type":"NFC"}"#)
        XCTAssertEqual(try error(Self.syntheticJSON(merges: [], preTokenizer: #"{"type":"Whitespace"}"#)),
                       #"field 'pre_tokenizer': unsupported value {"type":"Whitespace"}"#)
        XCTAssertEqual(try error(Self.syntheticJSON(merges: [], preTokenizer: #"{"type":"ByteLevel"}"#)),
                       "field 'pre_tokenizer.add_prefix_space': unsupported value true")
        XCTAssertEqual(try error(Self.syntheticJSON(merges: [], model: #","byte_fallback":true"#)),
                       "field 'model.byte_fallback': unsupported value true")
        XCTAssertEqual(try error(Self.syntheticJSON(merges: [], added: #"[{"id":1,"content":""}]"#)),
                       "field 'added_tokens[0].content': missing, empty or not a string")
        XCTAssertEqual(try error(Self.syntheticJSON(merges: [], decoder: "null")), "field 'decoder': unsupported value null")
        XCTAssertEqual(try error(Self.syntheticJSON(merges: []).replacingOccurrences(of: #""type":"BPE""#, with: #""type":"WordPiece""#)),
                       #"field 'model.type': unsupported value "WordPiece""#)

        let missing = dir.path + "/absent.json"
        XCTAssertThrowsError(try Tokenizer(path: missing)) { e in
            XCTAssertEqual("\(e)", "cannot open '\(missing)': no such file or directory")
        }
    }

    func testSpecialTokensFromTokenizerConfig() throws {
        let dir = try TemporaryDirectory("tokenizer")
        let added = #"[{"id":0,"content":"<s>","special":true,"normalized":false},{"id":0,"content":"</s>","special":true,"normalized":false}]"#
        let path = try Self.write(Self.syntheticJSON(merges: ["Ġ t"], added: added), in: dir)
        _ = try Self.write(#"{"bos_token":"<s>","eos_token":{"content":"</s>"}}"#, in: dir, name: "tokenizer_config.json")
        let tokenizer = try Tokenizer(path: path)
        // HF ignores the file's ids of added tokens: new ones follow the vocabulary.
        XCTAssertEqual(tokenizer.id(of: "<s>"), 257)
        XCTAssertEqual(tokenizer.id(of: "</s>"), 258)
        XCTAssertEqual(tokenizer.bosTokenID, 257)
        XCTAssertEqual(tokenizer.eosTokenID, 258)
        XCTAssertEqual(tokenizer.encode("<s> t</s>"), [257, tokenizer.id(of: "Ġt")!, 258])
        XCTAssertEqual(tokenizer.decode([257, 258, 84], skipSpecialTokens: true), "T")
    }
}

/// Results written from concurrent iterations, each index once.
private final class ResultBox: @unchecked Sendable {
    private let lock = NSLock()
    private var storage: [[Int]]
    init(count: Int) { storage = Array(repeating: [], count: count) }
    func set(_ i: Int, _ v: [Int]) { lock.lock(); storage[i] = v; lock.unlock() }
    var values: [[Int]] { lock.lock(); defer { lock.unlock() }; return storage }
}
