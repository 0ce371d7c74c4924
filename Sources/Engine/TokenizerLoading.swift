import TensorIO

/// The parts of an HF tokenizer.json that a byte-level BPE tokenizer needs, validated.
///
/// Accepted: `model.type` "BPE" (no dropout, no subword prefix or suffix, no byte fallback);
/// `normalizer` null; `pre_tokenizer` a ByteLevel (`add_prefix_space: false`), optionally after a
/// Digits, alone or in a Sequence; `decoder` ByteLevel; `post_processor` null or ByteLevel (it
/// only adjusts offsets); `truncation` and `padding` null. Anything else is reported as
/// unsupported rather than silently tokenized differently from HF.
struct TokenizerDefinition {
    var vocabulary: [String: Int] = [:]
    /// (left, right, merged) ids in rank order.
    var merges: [(Int32, Int32, Int32)] = []
    var addedTokens: [AddedToken] = []
    var unknownID: Int32?
    var fuseUnknown = false
    var ignoreMerges = false
    var preTokenizer = PreTokenizer(digits: .none, useRegex: true)

    /// Reads and validates `path`.
    /// - Throws: `TokenizerError` for an unreadable file, invalid JSON, a malformed field or an
    ///   unsupported component.
    init(path: String) throws {
        let root = try Self.parseFile(path)
        let f = TokenizerFieldReader(path: path)
        guard case .object = root else { throw f.invalid("(root)", "expected an object") }

        for field in ["truncation", "padding", "normalizer"] {
            if let v = root[field], v != .null { throw f.unsupported(field, v) }
        }
        let model = try f.object(root["model"], "model")
        guard let type = model["type"]?.stringValue else { throw f.invalid("model.type", "missing or not a string") }
        guard type == "BPE" else { throw f.unsupported("model.type", .string(type)) }
        if let d = model["dropout"], d != .null, d != .int(0), d != .double(0) {
            throw f.unsupported("model.dropout", d)
        }
        for field in ["continuing_subword_prefix", "end_of_word_suffix"] {
            if let v = model[field], v != .null, v != .string("") { throw f.unsupported("model." + field, v) }
        }
        if try f.bool(model["byte_fallback"], "model.byte_fallback", default: false) {
            throw f.unsupported("model.byte_fallback", .bool(true))
        }
        fuseUnknown = try f.bool(model["fuse_unk"], "model.fuse_unk", default: false)
        ignoreMerges = try f.bool(model["ignore_merges"], "model.ignore_merges", default: false)

        // Vocabulary: token → id, ids unique.
        var seenIDs = Set<Int>()
        let vocab = try f.members(model["vocab"], "model.vocab")
        vocabulary.reserveCapacity(vocab.count)
        for (token, value) in vocab {
            let id = try f.tokenID(value, "model.vocab[\"\(token)\"]")
            guard seenIDs.insert(id).inserted else {
                throw f.invalid("model.vocab[\"\(token)\"]", "id \(id) is used by another token")
            }
            vocabulary[token] = id
        }

        if let unk = model["unk_token"], unk != .null {
            guard let name = unk.stringValue else { throw f.invalid("model.unk_token", "expected a string or null") }
            guard let id = vocabulary[name] else { throw f.invalid("model.unk_token", "'\(name)' is not in the vocabulary") }
            unknownID = Int32(id)
        }

        // Merges: "left right" strings or [left, right] pairs, in rank order.
        guard let mergeList = model["merges"]?.arrayValue else { throw f.invalid("model.merges", "missing or not an array") }
        merges.reserveCapacity(mergeList.count)
        for (rank, entry) in mergeList.enumerated() {
            let field = "model.merges[\(rank)]"
            let parts: [String]
            if let s = entry.stringValue {
                parts = s.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
            } else if let a = entry.arrayValue {
                parts = a.compactMap(\.stringValue)
                guard parts.count == a.count else { throw f.invalid(field, "expected two strings") }
            } else {
                throw f.invalid(field, "expected a string or an array of two strings")
            }
            guard parts.count == 2 else { throw f.invalid(field, "expected two tokens") }
            guard let left = vocabulary[parts[0]] else { throw f.invalid(field, "'\(parts[0])' is not in the vocabulary") }
            guard let right = vocabulary[parts[1]] else { throw f.invalid(field, "'\(parts[1])' is not in the vocabulary") }
            guard let merged = vocabulary[parts[0] + parts[1]] else {
                throw f.invalid(field, "'\(parts[0] + parts[1])' is not in the vocabulary")
            }
            merges.append((Int32(left), Int32(right), Int32(merged)))
        }

        // Added tokens. HF does not take their ids from the file: it registers them in file order,
        // giving each the vocabulary's id for its content, or else the next id after the
        // vocabulary and the added tokens so far. The file's `id` is checked to be well formed and
        // then replaced the same way (HF only logs a warning when they differ).
        if let list = root["added_tokens"], list != .null {
            guard let items = list.arrayValue else { throw f.invalid("added_tokens", "expected an array") }
            var contents = Set<String>()
            var maxAddedID = -1
            for (i, item) in items.enumerated() {
                let field = "added_tokens[\(i)]"
                _ = try f.object(item, field)
                _ = try f.tokenID(item["id"] ?? .null, field + ".id")
                guard let content = item["content"]?.stringValue, !content.isEmpty else {
                    throw f.invalid(field + ".content", "missing, empty or not a string")
                }
                guard contents.insert(content).inserted else { throw f.invalid(field + ".content", "duplicate token '\(content)'") }
                let id = vocabulary[content] ?? (maxAddedID >= vocabulary.count ? maxAddedID + 1 : vocabulary.count)
                maxAddedID = max(maxAddedID, id)
                addedTokens.append(AddedToken(
                    id: id, content: content,
                    isSpecial: try f.bool(item["special"], field + ".special", default: false),
                    singleWord: try f.bool(item["single_word"], field + ".single_word", default: false),
                    leftStrip: try f.bool(item["lstrip"], field + ".lstrip", default: false),
                    rightStrip: try f.bool(item["rstrip"], field + ".rstrip", default: false),
                    normalized: try f.bool(item["normalized"], field + ".normalized", default: true)))
            }
        }

        preTokenizer = try Self.preTokenizer(root["pre_tokenizer"], f)

        guard let decoder = root["decoder"], decoder != .null else { throw f.unsupported("decoder", .null) }
        guard decoder["type"]?.stringValue == "ByteLevel" else { throw f.unsupported("decoder", decoder) }
        if let post = root["post_processor"], post != .null, post["type"]?.stringValue != "ByteLevel" {
            throw f.unsupported("post_processor", post)
        }
    }

    /// `[Digits] ByteLevel`, alone or in a Sequence.
    private static func preTokenizer(_ value: JSONValue?, _ f: TokenizerFieldReader) throws -> PreTokenizer {
        guard let value, value != .null else { throw f.unsupported("pre_tokenizer", .null) }
        var steps: [JSONValue] = [value]
        if value["type"]?.stringValue == "Sequence" {
            guard let list = value["pretokenizers"]?.arrayValue else {
                throw f.invalid("pre_tokenizer.pretokenizers", "missing or not an array")
            }
            steps = list
        }
        var result = PreTokenizer(digits: .none, useRegex: true)
        var sawByteLevel = false
        for (i, step) in steps.enumerated() {
            let field = steps.count == 1 && step == value ? "pre_tokenizer" : "pre_tokenizer.pretokenizers[\(i)]"
            switch step["type"]?.stringValue {
            case "Digits" where !sawByteLevel && result.digits == .none:
                let individual = try f.bool(step["individual_digits"], field + ".individual_digits", default: false)
                result.digits = individual ? .individual : .grouped
            case "ByteLevel" where !sawByteLevel:
                if try f.bool(step["add_prefix_space"], field + ".add_prefix_space", default: true) {
                    throw f.unsupported(field + ".add_prefix_space", .bool(true))
                }
                result.useRegex = try f.bool(step["use_regex"], field + ".use_regex", default: true)
                sawByteLevel = true
            default:
                throw f.unsupported(field, step)
            }
        }
        guard sawByteLevel else { throw f.unsupported("pre_tokenizer", value) }
        return result
    }

    /// Maps the file and parses it with the strict parser.
    static func parseFile(_ path: String) throws -> JSONValue {
        let file: MappedFile
        do {
            file = try MappedFile(path: path)
        } catch let TensorIOError.io(_, operation, reason) {
            throw TokenizerError.io(path: path, operation: operation, reason: reason)
        }
        do {
            return try JSONParser.parse(file.bytes.bindMemory(to: UInt8.self))
        } catch let e as JSONParseError {
            throw TokenizerError.invalidJSON(path: path, reason: e.description)
        }
    }
}

/// Typed access to JSON fields with errors that name the file and field.
struct TokenizerFieldReader {
    let path: String

    func invalid(_ field: String, _ reason: String) -> TokenizerError {
        .invalidField(path: path, field: field, reason: reason)
    }

    func unsupported(_ field: String, _ value: JSONValue) -> TokenizerError {
        var text = value.serialized()
        if text.count > 80 { text = String(text.prefix(77)) + "..." }
        return .unsupported(path: path, field: field, value: text)
    }

    /// `value`, checked to be an object.
    func object(_ value: JSONValue?, _ field: String) throws -> JSONValue {
        guard let value, case .object = value else { throw invalid(field, "missing or not an object") }
        return value
    }

    /// The members of an object.
    func members(_ value: JSONValue?, _ field: String) throws -> [(String, JSONValue)] {
        guard let members = value?.objectValue else { throw invalid(field, "missing or not an object") }
        return members
    }

    func bool(_ value: JSONValue?, _ field: String, default fallback: Bool) throws -> Bool {
        switch value {
        case nil, .null?: return fallback
        case let .bool(b)?: return b
        default: throw invalid(field, "expected true or false")
        }
    }

    /// A token id: an integer in 0..<2³¹.
    func tokenID(_ value: JSONValue, _ field: String) throws -> Int {
        guard let i = value.intValue, i >= 0, i < Int64(Int32.max) else {
            throw invalid(field, "expected a token id (an integer from 0 to \(Int32.max - 1))")
        }
        return Int(i)
    }
}
