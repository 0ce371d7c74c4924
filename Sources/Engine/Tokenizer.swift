#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import TensorIO

/// A byte-level BPE tokenizer loaded from a Hugging Face tokenizer.json (GPT-2 style, as used by
/// SmolLM2), producing the same ids as HF `tokenizers`.
///
/// Encoding runs the same stages as HF:
/// 1. Added tokens (`<|im_start|>` …) are cut out of the raw text by a leftmost-longest scan.
/// 2. Each stretch between them is pre-tokenized: `Digits` (optional), then `ByteLevel`'s GPT-2
///    split pattern, matched by a hand-written scanner over Unicode scalars.
/// 3. Each piece's UTF-8 bytes are spelled in GPT-2's byte alphabet and merged by BPE rank;
///    results are cached per piece.
///
/// ```swift
/// let tokenizer = try Tokenizer(path: modelDirectory + "/tokenizer.json")
/// let ids = tokenizer.encode("The capital of France is")   // [504, 3575, 282, 4649, 314]
/// let text = tokenizer.decode(ids)                         // "The capital of France is"
/// ```
///
/// A tokenizer is immutable apart from its piece cache, which is locked, so one instance may be
/// shared between threads.
public final class Tokenizer: Sendable {
    /// The tokenizer.json this was loaded from.
    public let path: String
    /// One more than the largest id of the vocabulary and added tokens (49,152 for SmolLM2).
    public let vocabularySize: Int
    /// The added tokens, in file order.
    public let addedTokens: [AddedToken]
    /// Ids of the added tokens marked special.
    public let specialTokenIDs: Set<Int>
    /// Beginning-of-sequence id from tokenizer_config.json (`bos_token`) or config.json
    /// (`bos_token_id`) beside the tokenizer, nil when neither names one. `encode` never adds it.
    public let bosTokenID: Int?
    /// End-of-sequence id, found like `bosTokenID` (`eos_token`, `eos_token_id`).
    public let eosTokenID: Int?

    private let tokenToID: [String: Int]
    /// Spelling of each id (added token content where there is one), nil for unused ids.
    private let idToToken: [String?]
    /// For each id: -1 unused, 0 model token, 1 added token, 2 special added token.
    private let idKind: [Int8]
    /// Decoded bytes of each token: `decodeBytes[decodeOffsets[id]..<decodeOffsets[id + 1]]`.
    private let decodeBytes: [UInt8]
    private let decodeOffsets: [Int]
    private let matcher: AddedTokenMatcher
    private let preTokenizer: PreTokenizer
    private let bpe: BytePairEncoder
    private let cache = BPECache()

    /// Loads a tokenizer.json, and the special token names from tokenizer_config.json (or ids from
    /// config.json) in the same directory when present.
    /// - Parameter path: the tokenizer.json file.
    /// - Throws: `TokenizerError` when a file cannot be read, is not valid JSON or is malformed, or
    ///   when tokenizer.json uses anything but byte-level BPE: a normalizer, another pre-tokenizer
    ///   than `[Digits] ByteLevel(add_prefix_space: false)`, dropout, byte fallback, a template
    ///   post-processor, truncation or padding.
    public init(path: String) throws {
        let definition = try TokenizerDefinition(path: path)
        self.path = path

        var maxID = definition.vocabulary.values.max() ?? -1
        for t in definition.addedTokens { maxID = max(maxID, t.id) }
        vocabularySize = maxID + 1

        var spelling = [String?](repeating: nil, count: vocabularySize)
        var kind = [Int8](repeating: -1, count: vocabularySize)
        for (token, id) in definition.vocabulary {
            spelling[id] = token
            kind[id] = 0
        }
        var lookup = definition.vocabulary
        for t in definition.addedTokens {
            spelling[t.id] = t.content
            kind[t.id] = t.isSpecial ? 2 : 1
            lookup[t.content] = t.id
        }
        tokenToID = lookup
        idToToken = spelling
        idKind = kind
        addedTokens = definition.addedTokens
        specialTokenIDs = Set(definition.addedTokens.filter(\.isSpecial).map(\.id))

        // Decoding: each alphabet scalar back to its byte; a token with any other scalar decodes
        // to its own UTF-8 (what HF's ByteLevel decoder does).
        let alphabet = ByteLevelAlphabet.scalarForByte()
        var byteOfScalar = [UInt32: UInt8]()
        for b in 0..<256 { byteOfScalar[alphabet[b]] = UInt8(b) }
        var bytes: [UInt8] = []
        var offsets = [0]
        offsets.reserveCapacity(vocabularySize + 1)
        for id in 0..<vocabularySize {
            if let token = spelling[id] {
                var mapped: [UInt8] = []
                var ok = true
                for u in token.unicodeScalars {
                    guard let b = byteOfScalar[u.value] else { ok = false; break }
                    mapped.append(b)
                }
                bytes.append(contentsOf: ok ? mapped : Array(token.utf8))
            }
            offsets.append(bytes.count)
        }
        decodeBytes = bytes
        decodeOffsets = offsets

        var byteSymbol = [Int32](repeating: -1, count: 256)
        for b in 0..<256 {
            if let id = definition.vocabulary[String(Unicode.Scalar(alphabet[b])!)] { byteSymbol[b] = Int32(id) }
        }
        var merges = [UInt64: UInt64](minimumCapacity: definition.merges.count)
        for (rank, m) in definition.merges.enumerated() {
            merges[BytePairEncoder.pairKey(m.0, m.1)] = UInt64(rank) << 32 | UInt64(UInt32(m.2))
        }
        bpe = BytePairEncoder(byteSymbol: byteSymbol, merges: merges, unknownID: definition.unknownID,
                              fuseUnknown: definition.fuseUnknown,
                              wholePieceVocabulary: definition.ignoreMerges ? definition.vocabulary : nil,
                              alphabet: alphabet)
        matcher = AddedTokenMatcher(definition.addedTokens)
        preTokenizer = definition.preTokenizer

        let directory = path.lastIndex(of: "/").map { String(path[..<$0]) } ?? "."
        (bosTokenID, eosTokenID) = try Self.sequenceMarkers(directory: directory, lookup: lookup, count: vocabularySize)
    }

    /// Loads `tokenizer.json` from a model directory (see `init(path:)`).
    /// - Parameter modelDirectory: a directory holding tokenizer.json.
    /// - Throws: `TokenizerError` as `init(path:)` does.
    public convenience init(modelDirectory: String) throws {
        try self.init(path: modelDirectory + "/tokenizer.json")
    }

    // MARK: Encoding

    /// The ids of `text`, exactly as HF `tokenizers`' `encode(text).ids` (no BOS or EOS is added:
    /// the post-processor is ByteLevel, which only adjusts offsets).
    ///
    /// Added tokens are recognized anywhere in `text`, so a user-supplied `"<|im_end|>"` becomes
    /// the special id, as in HF. Bytes whose alphabet scalar is missing from the vocabulary are
    /// dropped (SmolLM2 lacks 21 of the 256, e.g. 0x04 and 0xC0), also as in HF.
    /// - Parameter text: any string; the empty string gives `[]`.
    /// - Returns: token ids.
    public func encode(_ text: String) -> [Int] {
        var text = text
        return text.withUTF8 { encode(utf8: $0) }
    }

    /// `encode(_:)` for UTF-8 that is already known to be valid.
    private func encode(utf8 bytes: UnsafeBufferPointer<UInt8>) -> [Int] {
        var out: [Int32] = []
        out.reserveCapacity(bytes.count / 3 + 4)
        var splitScratch = PreTokenizer.Scratch()
        var bpeScratch = BytePairEncoder.Scratch()
        matcher.split(bytes, 0..<bytes.count) { range, id in
            if let id {
                out.append(Int32(id))
                return
            }
            preTokenizer.split(bytes, range, scratch: &splitScratch) { piece in
                let slice = UnsafeBufferPointer(rebasing: bytes[piece])
                guard slice.count <= cache.maxPieceBytes else {
                    bpe.encode(slice, scratch: &bpeScratch, into: &out)
                    return
                }
                let key = Array(slice)
                if let ids = cache.lookup(key) {
                    out.append(contentsOf: ids)
                    return
                }
                let start = out.count
                bpe.encode(slice, scratch: &bpeScratch, into: &out)
                cache.insert(key, Array(out[start...]))
            }
        }
        return out.map { Int($0) }
    }

    // MARK: Decoding

    /// The text of `ids`, exactly as HF `tokenizers`' `decode(ids, skip_special_tokens:)`.
    ///
    /// Every token, added ones included, goes through HF's ByteLevel decoder: a token spelled
    /// wholly in the byte alphabet stands for those bytes, any other token for its own UTF-8
    /// (`<|im_end|>` is both). The bytes of all tokens are joined and decoded as UTF-8, each
    /// invalid sequence becoming U+FFFD, so a character split over several tokens decodes whole.
    /// Ids that name no token are skipped, as in HF.
    /// - Parameters:
    ///   - ids: token ids.
    ///   - skipSpecialTokens: leave out added tokens marked special (`<|im_end|>` …).
    /// - Returns: the text.
    public func decode(_ ids: [Int], skipSpecialTokens: Bool = false) -> String {
        var bytes: [UInt8] = []
        for id in ids {
            guard id >= 0, id < vocabularySize, idKind[id] >= 0 else { continue }
            if skipSpecialTokens, idKind[id] == 2 { continue }
            bytes.append(contentsOf: decodeBytes[decodeOffsets[id]..<decodeOffsets[id + 1]])
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    // MARK: Vocabulary

    /// The vocabulary spelling of `id` (byte-alphabet form such as `"Ġcapital"`, or an added
    /// token's content), nil when no token has that id.
    /// - Parameter id: a token id.
    /// - Returns: the token's string.
    public func tokenString(_ id: Int) -> String? {
        guard id >= 0, id < vocabularySize else { return nil }
        return idToToken[id]
    }

    /// The id of a token given in its vocabulary spelling (added tokens first, as in HF).
    /// - Parameter token: e.g. `"Ġcapital"` or `"<|im_end|>"`.
    /// - Returns: the id, or nil when no token is spelled so.
    public func id(of token: String) -> Int? {
        tokenToID[token]
    }

    /// Whether `id` is an added token marked special.
    /// - Parameter id: a token id.
    /// - Returns: true for special tokens such as `<|endoftext|>`.
    public func isSpecialToken(_ id: Int) -> Bool {
        id >= 0 && id < vocabularySize && idKind[id] == 2
    }

    /// Number of distinct pieces in the BPE cache (for tests and benchmarks).
    var cachedPieceCount: Int { cache.count }

    // MARK: Loading helpers

    /// BOS and EOS ids: `bos_token`/`eos_token` of tokenizer_config.json when that file exists,
    /// else `bos_token_id`/`eos_token_id` of config.json when that exists, else nil.
    private static func sequenceMarkers(directory: String, lookup: [String: Int], count: Int) throws -> (Int?, Int?) {
        let tokenizerConfig = directory + "/tokenizer_config.json"
        if access(tokenizerConfig, F_OK) == 0 {
            let root = try TokenizerDefinition.parseFile(tokenizerConfig)
            let f = TokenizerFieldReader(path: tokenizerConfig)
            func marker(_ field: String) throws -> Int? {
                let name: String
                switch root[field] {
                case nil, .null?: return nil
                case let .string(s)?: name = s
                case let v?:
                    guard let s = v["content"]?.stringValue else { throw f.invalid(field, "expected a string or an object with 'content'") }
                    name = s
                }
                guard let id = lookup[name] else { throw f.invalid(field, "'\(name)' is not a token") }
                return id
            }
            return (try marker("bos_token"), try marker("eos_token"))
        }
        let config = directory + "/config.json"
        if access(config, F_OK) == 0 {
            let root = try TokenizerDefinition.parseFile(config)
            let f = TokenizerFieldReader(path: config)
            func marker(_ field: String) throws -> Int? {
                guard let v = root[field], v != .null else { return nil }
                let id = try f.tokenID(v, field)
                guard id < count else { throw f.invalid(field, "id \(id) is outside the vocabulary") }
                return id
            }
            return (try marker("bos_token_id"), try marker("eos_token_id"))
        }
        return (nil, nil)
    }
}
