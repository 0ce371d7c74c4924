import Foundation

/// A Hugging Face model directory: safetensors weights (one file, or shards listed in
/// `model.safetensors.index.json`) plus small side files (config.json, tokenizer.json, ...).
public struct ModelDirectory: Sendable {
    public static let indexName = "model.safetensors.index.json"
    /// The single-file weights name, which transformers loads ahead of an index.
    public static let singleFileName = "model.safetensors"
    /// Side files larger than this are not tracked (they are not configuration).
    public static let maxSideFileBytes = 64 << 20
    /// Extensions of weight formats that wledger does not track as side files.
    public static let weightExtensions: Set<String> = ["safetensors", "bin", "pt", "pth", "ckpt", "gguf", "h5", "msgpack", "onnx", "pkl"]

    public let path: String
    /// Safetensors files, relative names, sorted.
    public let weightFiles: [String]
    /// Tracked side files (including the index when present), relative names, sorted.
    public let sideFiles: [String]
    /// tensor name → shard, from the index (nil for an unsharded model).
    public let weightMap: [String: String]?

    /// Lists and validates the directory layout (it does not parse the weights).
    /// - Throws: `TensorIOError` when the directory has no safetensors weights, only pickles,
    ///   or an index that is malformed or names shards outside the directory.
    /// - Parameter missingWeights: a directory with no weights at all (a tracked work tree whose
    ///   weight file was deleted), or a shard the index lists that is not there, is scanned
    ///   without those weight files, for the caller to report as missing, instead of refused; a
    ///   pickle, or a weights entry that is there but not a file, still is.
    public static func scan(_ path: String, missingWeights: Bool = false) throws -> ModelDirectory {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue else {
            throw TensorIOError.invalidModelDirectory(path: path, reason: "not a directory")
        }
        let names: [String]
        do {
            names = try fm.contentsOfDirectory(atPath: path).filter { !$0.hasPrefix(".") }.sorted()
        } catch {
            throw TensorIOError.io(path: path, operation: "list", reason: "\(error.localizedDescription)")
        }
        // A file wledger would track (a regular file: a .safetensors one, or a side file of at
        // most 64 MiB without a weights-like extension) whose name is not UTF-8 cannot be recorded as text: Foundation's
        // listing left it out, so status did not show it and commit did not record it. Refused,
        // named with octal escapes; other such entries stay ignored, as entries wledger does not
        // track are.
        if let dir = opendir(path) {
            defer { closedir(dir) }
            while let entry = readdir(dir) {
                let bytes = withUnsafeBytes(of: entry.pointee.d_name) { Array($0.prefix { $0 != 0 }) }
                guard bytes.first != UInt8(ascii: "."), String(validating: bytes, as: UTF8.self) == nil else { continue }
                var st = Glibc.stat()
                let full = Array(path.utf8) + [UInt8(ascii: "/")] + bytes + [0]
                let isFile = full.withUnsafeBufferPointer { stat(UnsafeRawPointer($0.baseAddress!).assumingMemoryBound(to: CChar.self), &st) } == 0
                    && (st.st_mode & S_IFMT) == S_IFREG
                let lossy = String(decoding: bytes, as: UTF8.self)
                let e = ext(lossy)
                let tracked = e == "safetensors" || (!weightExtensions.contains(e) && Int(st.st_size) <= maxSideFileBytes)
                guard isFile, tracked else { continue }
                let shown = bytes.map { b -> String in
                    b >= 0x20 && b < 0x7F && b != UInt8(ascii: "\\") && b != UInt8(ascii: "\"") ? String(UnicodeScalar(b))
                        : "\\" + String(repeating: "0", count: 3 - String(b, radix: 8).count) + String(b, radix: 8)
                }.joined()
                throw TensorIOError.invalidModelDirectory(path: path + "/" + shown,
                    reason: "its name is not valid UTF-8, and wledger records names as text; rename it")
            }
        }
        /// A regular file, or a link to one: not a directory, FIFO, socket or device (reading a
        /// FIFO would block the scan).
        func isRegular(_ name: String) -> Bool {
            var st = Glibc.stat()
            return stat(path + "/" + name, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG
        }
        // Swift compares strings by Unicode canonical equivalence: "café" spelled NFC and NFD
        // would be one file to wledger (one committed, the other silently left out).
        var byText: [String: String] = [:]
        for name in names {
            if let other = byText[name], Array(other.utf8) != Array(name.utf8) {
                throw TensorIOError.invalidModelDirectory(path: path + "/" + name,
                    reason: "its name and '\(other)' are the same text in different Unicode normal forms (NFC and NFD), which wledger cannot tell apart; rename one")
            }
            byText[name] = name
        }
        let files = names.filter(isRegular)
        var weightMap: [String: String]? = nil
        var weights: [String]
        if files.contains(indexName) {
            let indexPath = path + "/" + indexName
            var map = try parseIndex(at: indexPath)
            weights = Array(Set(map.values)).sorted()
            if missingWeights {   // a deleted shard is the caller's to report (its tensors go with it)
                let gone = Set(weights.filter { !names.contains($0) && nonFileEntry(path + "/" + $0) == nil })
                weights.removeAll { gone.contains($0) }
                map = map.filter { !gone.contains($0.value) }
            }
            weightMap = map
            for shard in weights where !files.contains(shard) {
                let what = nonFileEntry(path + "/" + shard).map { "is \($0), not a safetensors file" } ?? "does not exist"
                throw TensorIOError.invalidModelDirectory(path: indexPath, reason: "shard '\(shard)' listed in the index \(what)")
            }
            // transformers loads a model.safetensors ahead of the index: the weights that run
            // would not be the ones tracked.
            if names.contains(singleFileName), !weights.contains(singleFileName) {
                throw TensorIOError.invalidModelDirectory(path: path + "/" + singleFileName,
                    reason: "it stands beside \(indexName), which does not list it; transformers loads it instead of the shards the index names, so remove one of them")
            }
        } else {
            weights = files.filter { $0.hasSuffix(".safetensors") }
        }
        if weights.isEmpty {
            if let pickle = files.first(where: { ["bin", "pt", "pth", "ckpt", "pkl"].contains(ext($0)) }) {
                throw TensorIOError.notWeights(path: path + "/" + pickle, what: "a pickle checkpoint",
                                               hint: "convert it to safetensors first; wledger never unpickles")
            }
            // A weights name that is there but not a regular file is named, with what it is.
            if let odd = names.first(where: { $0.hasSuffix(".safetensors") && !isRegular($0) }) {
                let what = nonFileEntry(path + "/" + odd) ?? "unreadable"
                throw TensorIOError.invalidModelDirectory(path: path + "/" + odd, reason: "\(what), not a safetensors file")
            }
            if !missingWeights {
                throw TensorIOError.invalidModelDirectory(path: path, reason: "no safetensors weights found (expected model.safetensors or \(indexName))")
            }
        }
        let weightSet = Set(weights)
        let side = files.filter { name in
            guard !weightSet.contains(name), !weightExtensions.contains(ext(name)) else { return false }
            guard let st = FileStat.of(path + "/" + name) else { return false }
            return st.size <= maxSideFileBytes
        }
        return ModelDirectory(path: path, weightFiles: weights, sideFiles: side, weightMap: weightMap)
    }

    /// What stands at `path` when it is not a regular file or a symbolic link to one: "a
    /// directory", "a symbolic link to nothing", "a symbolic link to a directory", "a symbolic
    /// link to a special file" or "a special file (FIFO, socket or device)"; nil for nothing
    /// there (or nothing `lstat` can see) and for a regular file or a link to one.
    public static func nonFileEntry(_ path: String) -> String? {
        var st = Glibc.stat()
        guard lstat(path, &st) == 0 else { return nil }
        func kind(_ mode: mode_t) -> String? {
            switch mode & S_IFMT {
            case S_IFREG: return nil
            case S_IFDIR: return "a directory"
            default: return "a special file (FIFO, socket or device)"
            }
        }
        guard (st.st_mode & S_IFMT) == S_IFLNK else { return kind(st.st_mode) }
        guard stat(path, &st) == 0 else { return "a symbolic link to nothing" }
        return kind(st.st_mode).map { "a symbolic link to " + ($0 == "a directory" ? $0 : "a special file") }
    }

    private static func ext(_ name: String) -> String {
        guard let dot = name.lastIndex(of: ".") else { return "" }
        return String(name[name.index(after: dot)...]).lowercased()
    }

    /// Parses `model.safetensors.index.json` and validates every shard name.
    public static func parseIndex(at indexPath: String) throws -> [String: String] {
        let map = try MappedFile(path: indexPath)
        let value: JSONValue
        do {
            value = try JSONParser.parse(UnsafeBufferPointer(start: map.bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), count: map.size))
        } catch let e as JSONParseError {
            throw TensorIOError.invalidModelDirectory(path: indexPath, reason: "invalid JSON: \(e)")
        }
        guard let wm = value["weight_map"]?.objectValue else {
            throw TensorIOError.invalidModelDirectory(path: indexPath, reason: "no \"weight_map\" object")
        }
        var out: [String: String] = [:]
        for (tensor, shardValue) in wm {
            guard let shard = shardValue.stringValue else {
                throw TensorIOError.invalidModelDirectory(path: indexPath, reason: "shard of tensor '\(tensor)' is not a string")
            }
            try validateShardName(shard, indexPath: indexPath)
            out[tensor] = shard
        }
        return out
    }

    /// Rejects shard names that could escape the directory or hide files.
    public static func validateShardName(_ shard: String, indexPath: String) throws {
        if shard.isEmpty || shard.hasPrefix("/") || shard.split(separator: "/").contains("..") || shard.contains("\0") || shard == "." {
            throw TensorIOError.invalidModelDirectory(path: indexPath, reason: "shard name '\(shard)' escapes the model directory")
        }
        if shard.contains("/") || shard.contains("\\") || shard.hasPrefix(".") {
            throw TensorIOError.invalidModelDirectory(path: indexPath, reason: "shard name '\(shard)' is not a plain file name in the model directory")
        }
    }

    /// Opens and validates every weight file.
    /// - Parameter populate: weight files to pre-fault (MAP_POPULATE) because they will be read whole.
    public func open(populate: Set<String> = []) throws -> ModelWeights {
        try ModelWeights(directory: self, populate: populate)
    }
}

/// The validated, memory-mapped weights of a model directory.
public final class ModelWeights: @unchecked Sendable {
    public let directory: ModelDirectory
    /// Weight files by relative name.
    public let files: [String: SafetensorsFile]
    /// Every tensor name → (file, info), across shards.
    public let tensors: [String: (file: String, info: TensorInfo)]

    init(directory: ModelDirectory, populate: Set<String>) throws {
        self.directory = directory
        var files: [String: SafetensorsFile] = [:]
        var tensors: [String: (file: String, info: TensorInfo)] = [:]
        for name in directory.weightFiles {
            let f = try SafetensorsFile(path: directory.path + "/" + name, populate: populate.contains(name))
            files[name] = f
            for t in f.tensors {
                if let prior = tensors[t.name] {
                    throw TensorIOError.invalidModelDirectory(path: f.path, reason: "tensor '\(t.name)' also appears in '\(prior.file)'")
                }
                tensors[t.name] = (name, t)
            }
        }
        if let wm = directory.weightMap {
            let indexPath = directory.path + "/" + ModelDirectory.indexName
            for (tensor, shard) in wm where tensors[tensor]?.file != shard {
                throw TensorIOError.invalidModelDirectory(path: indexPath, reason: "tensor '\(tensor)' is not in shard '\(shard)'")
            }
            for (tensor, loc) in tensors where wm[tensor] == nil {
                throw TensorIOError.invalidModelDirectory(path: indexPath, reason: "tensor '\(tensor)' in '\(loc.file)' is missing from the index")
            }
        }
        self.files = files
        self.tensors = tensors
    }

    /// The bytes of a tensor by name.
    public func bytes(_ name: String) -> UnsafeRawBufferPointer? {
        guard let loc = tensors[name], let f = files[loc.file] else { return nil }
        return f.bytes(loc.info)
    }

    /// The mapped file holding a tensor and the tensor's byte range in it.
    public func location(_ name: String) -> (map: MappedFile, range: Range<Int>)? {
        guard let loc = tensors[name], let f = files[loc.file] else { return nil }
        return (f.map, f.range(loc.info))
    }
}
