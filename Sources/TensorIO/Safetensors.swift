/// One tensor's entry in a safetensors header.
public struct TensorInfo: Sendable, Equatable {
    public var name: String
    public var dtype: DType
    public var shape: [Int]
    /// Byte range inside the data buffer (after the 8-byte length and the header).
    public var begin: Int
    public var end: Int

    public init(name: String, dtype: DType, shape: [Int], begin: Int, end: Int) {
        self.name = name; self.dtype = dtype; self.shape = shape; self.begin = begin; self.end = end
    }

    public var byteCount: Int { end - begin }
    public var elementCount: Int { byteCount / dtype.size }
    public var shapeDescription: String { "[" + shape.map(String.init).joined(separator: ", ") + "]" }
}

/// A parsed and fully validated safetensors header.
public struct SafetensorsHeader: Sendable, Equatable {
    /// Limits that keep hostile files from exhausting memory and time: a header of at most
    /// 100 MB and at most 100,000 tensors per file (far more than real checkpoint files hold:
    /// even mixture-of-experts models split their tensors over many shards).
    public static let maxHeaderBytes = 100_000_000
    public static let maxTensors = 100_000

    /// The exact header JSON bytes as stored in the file (padding included).
    public var json: [UInt8]
    /// Tensors in data-offset order.
    public var tensors: [TensorInfo]
    /// `__metadata__` string pairs, in file order.
    public var metadata: [(String, String)]
    /// Size of the data buffer following the header.
    public var dataSize: Int

    /// Offset of the data buffer from the start of the file.
    public var dataStart: Int { 8 + json.count }
    public var fileSize: Int { dataStart + dataSize }

    public static func == (a: SafetensorsHeader, b: SafetensorsHeader) -> Bool {
        a.json == b.json && a.dataSize == b.dataSize
    }

    /// Validates a complete safetensors file held in memory (or memory-mapped).
    ///
    /// Checks: 8-byte length present, header length ≤ 100 MB and inside the file, JSON object with
    /// no duplicate names, known dtypes, shapes of non-negative integers whose product does not
    /// overflow, shape × dtype size = byte length, offsets that tile the data buffer exactly (no
    /// holes, no overlaps, nothing past the end, no trailing bytes).
    /// - Parameter path: used in error messages only.
    /// - Throws: `TensorIOError.notWeights` for git-lfs pointers, pickles and GGUF files;
    ///   `TensorIOError.invalidSafetensors` for everything else.
    public static func parse(file: UnsafeRawBufferPointer, path: String) throws -> SafetensorsHeader {
        if let (what, hint) = sniffForeignFormat(file) {
            throw TensorIOError.notWeights(path: path, what: what, hint: hint)
        }
        func bad(_ reason: String) -> TensorIOError { .invalidSafetensors(path: path, reason: reason) }
        guard file.count >= 8 else {
            throw bad("truncated: \(file.count) bytes, shorter than the 8-byte header length")
        }
        var n64: UInt64 = 0
        for i in 0..<8 { n64 |= UInt64(file[i]) << (8 * UInt64(i)) }
        guard n64 <= UInt64(maxHeaderBytes) else {
            throw bad("header length \(n64) exceeds the \(maxHeaderBytes / 1_000_000) MB limit")
        }
        let n = Int(n64)
        guard 8 + n <= file.count else {
            throw bad("truncated: header length \(n) reaches beyond the end of the \(file.count)-byte file")
        }
        let json = Array(file[8..<(8 + n)])
        let header = try parse(json: json, dataSize: file.count - 8 - n, path: path)
        return header
    }

    /// Validates header JSON bytes against a data buffer of `dataSize` bytes.
    public static func parse(json: [UInt8], dataSize: Int, path: String) throws -> SafetensorsHeader {
        func bad(_ reason: String) -> TensorIOError { .invalidSafetensors(path: path, reason: reason) }
        guard json.first == UInt8(ascii: "{") else { throw bad("header does not start with '{'") }
        let value: JSONValue
        do {
            // Counted while parsing: one member more than the limit may be __metadata__.
            value = try JSONParser.parse(json, maxTopLevelMembers: maxTensors + 1)
        } catch let e as JSONParseError {
            if e.tooManyMembers { throw bad("more than the limit of \(maxTensors) tensors in one file") }
            throw bad("header JSON: \(e.reason) at byte \(e.offset + 8)")
        }
        guard case let .object(members) = value else { throw bad("header is not a JSON object") }
        guard members.count <= maxTensors + (members.contains { $0.0 == "__metadata__" } ? 1 : 0) else {
            throw bad("more than the limit of \(maxTensors) tensors in one file")
        }
        var tensors: [TensorInfo] = []
        tensors.reserveCapacity(members.count)
        var metadata: [(String, String)] = []
        for (name, entry) in members {
            if name == "__metadata__" {
                guard case let .object(pairs) = entry else { throw bad("__metadata__ is not an object") }
                for (k, v) in pairs {
                    guard case let .string(s) = v else { throw bad("__metadata__ value for \"\(k)\" is not a string") }
                    metadata.append((k, s))
                }
                continue
            }
            guard case .object = entry else { throw bad("entry \"\(name)\" is not an object") }
            guard let dtypeName = entry["dtype"]?.stringValue else { throw bad("tensor \"\(name)\" has no dtype string") }
            guard let dtype = DType(rawValue: dtypeName) else {
                throw bad("tensor \"\(name)\" has unknown dtype \"\(dtypeName)\"")
            }
            guard let dims = entry["shape"]?.arrayValue else { throw bad("tensor \"\(name)\" has no shape array") }
            var shape: [Int] = []
            var elements = 1
            for d in dims {
                guard let v = d.intValue, v >= 0 else {
                    throw bad("tensor \"\(name)\" has a shape entry that is not a non-negative integer")
                }
                shape.append(Int(v))
                let (p, overflow) = elements.multipliedReportingOverflow(by: Int(v))
                guard !overflow else { throw bad("tensor \"\(name)\" shape \(dims.count)-d product overflows") }
                elements = p
            }
            let (bytes, overflow) = elements.multipliedReportingOverflow(by: dtype.size)
            guard !overflow else { throw bad("tensor \"\(name)\" byte size overflows") }
            guard let offs = entry["data_offsets"]?.arrayValue, offs.count == 2,
                  let b = offs[0].intValue, let e = offs[1].intValue, b >= 0, e >= b else {
                throw bad("tensor \"\(name)\" has invalid data_offsets")
            }
            guard e - b == Int64(bytes) else {
                throw bad("tensor \"\(name)\" \(dtypeName) \(shape) needs \(bytes) bytes but data_offsets span \(e - b)")
            }
            tensors.append(TensorInfo(name: name, dtype: dtype, shape: shape, begin: Int(b), end: Int(e)))
        }
        tensors.sort { ($0.begin, $0.end) < ($1.begin, $1.end) }
        var expected = 0
        for t in tensors {
            if t.end > dataSize {
                throw bad("truncated or out of range: tensor \"\(t.name)\" ends at data offset \(t.end) but the data buffer has \(dataSize) bytes")
            }
            if t.begin < expected { throw bad("tensor \"\(t.name)\" overlaps the previous tensor (offset \(t.begin) < \(expected))") }
            if t.begin > expected { throw bad("hole in data buffer before tensor \"\(t.name)\" (bytes \(expected)..<\(t.begin))") }
            expected = t.end
        }
        if expected != dataSize {
            throw bad("data buffer has \(dataSize - expected) bytes not covered by any tensor")
        }
        return SafetensorsHeader(json: json, tensors: tensors, metadata: metadata, dataSize: dataSize)
    }

    /// Recognizes files that people mistake for safetensors weights.
    ///
    /// A file that starts as safetensors does (a header length within the limit and the file,
    /// then `{`) is never taken for another format: a header length such as 640 (bytes 80 02)
    /// begins as a pickle does.
    /// - Returns: what the file is and what to do, or nil if it looks like nothing known.
    public static func sniffForeignFormat(_ file: UnsafeRawBufferPointer) -> (String, String)? {
        if file.count > 8 {
            var n: UInt64 = 0
            for i in 0..<8 { n |= UInt64(file[i]) << (8 * UInt64(i)) }
            if n <= UInt64(maxHeaderBytes), n >= 1, 8 + Int(n) <= file.count, file[8] == UInt8(ascii: "{") { return nil }
        }
        let prefix = Array(file.prefix(64))
        func starts(_ s: String) -> Bool { prefix.starts(with: Array(s.utf8)) }
        if starts("version https://git-lfs") {
            return ("a git-lfs pointer", "run 'git lfs pull' to fetch the real file")
        }
        if prefix.starts(with: [0x50, 0x4B, 0x03, 0x04]) {
            return ("a zip archive (a PyTorch pickle checkpoint)", "convert it to safetensors first; wledger never unpickles")
        }
        if prefix.count >= 2, prefix[0] == 0x80, (2...5).contains(prefix[1]) {
            return ("a Python pickle", "convert it to safetensors first; wledger never unpickles")
        }
        if starts("GGUF") {
            return ("a GGUF file", "convert it to a Hugging Face safetensors directory (see scripts/convert_smollm2.py)")
        }
        return nil
    }

    /// Builds a header for tensors laid out in name order (as Hugging Face writes them), padded
    /// with spaces to a multiple of 8 bytes.
    /// - Returns: the header and the tensors with their assigned offsets.
    public static func make(tensors specs: [(name: String, dtype: DType, shape: [Int])],
                            metadata: [(String, String)] = [("format", "pt")]) -> SafetensorsHeader {
        let sorted = specs.sorted { $0.name < $1.name }
        var infos: [TensorInfo] = []
        var offset = 0
        for s in sorted {
            let bytes = s.shape.reduce(1, *) * s.dtype.size
            infos.append(TensorInfo(name: s.name, dtype: s.dtype, shape: s.shape, begin: offset, end: offset + bytes))
            offset += bytes
        }
        var members: [(String, JSONValue)] = []
        if !metadata.isEmpty {
            members.append(("__metadata__", .object(metadata.map { ($0.0, .string($0.1)) })))
        }
        for t in infos {
            members.append((t.name, .object([
                ("dtype", .string(t.dtype.rawValue)),
                ("shape", .array(t.shape.map { .int(Int64($0)) })),
                ("data_offsets", .array([.int(Int64(t.begin)), .int(Int64(t.end))])),
            ])))
        }
        var json = Array(JSONValue.object(members).serialized().utf8)
        while json.count % 8 != 0 { json.append(0x20) }
        return SafetensorsHeader(json: json, tensors: infos, metadata: metadata, dataSize: offset)
    }

    /// The 8-byte little-endian header length followed by the header JSON: the file's first bytes.
    public var prefixBytes: [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(8 + json.count)
        let n = UInt64(json.count)
        for i in 0..<8 { out.append(UInt8(truncatingIfNeeded: n >> (8 * UInt64(i)))) }
        out.append(contentsOf: json)
        return out
    }
}

/// A memory-mapped, validated safetensors file. Tensor bytes are zero-copy views into the map.
public final class SafetensorsFile: @unchecked Sendable {
    public let path: String
    public let map: MappedFile
    public let header: SafetensorsHeader
    private let index: [String: Int]

    /// Maps and validates `path`.
    /// - Throws: `TensorIOError` naming the file and the problem.
    public init(path: String, populate: Bool = false) throws {
        self.path = path
        map = try MappedFile(path: path, populate: populate)
        header = try SafetensorsHeader.parse(file: map.bytes, path: path)
        var idx: [String: Int] = [:]
        for (i, t) in header.tensors.enumerated() { idx[t.name] = i }
        index = idx
    }

    public var tensors: [TensorInfo] { header.tensors }

    public func info(_ name: String) -> TensorInfo? { index[name].map { header.tensors[$0] } }

    /// The byte range of `tensor` in the file.
    public func range(_ tensor: TensorInfo) -> Range<Int> { (header.dataStart + tensor.begin)..<(header.dataStart + tensor.end) }

    /// The raw bytes of `tensor` (a view into the memory map).
    public func bytes(_ tensor: TensorInfo) -> UnsafeRawBufferPointer { map.bytes(range(tensor)) }
}
