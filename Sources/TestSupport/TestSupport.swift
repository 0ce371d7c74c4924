import Foundation
import TensorIO
import XCTest

/// Shared helpers for the test targets: fixture locations, temporary directories, running the
/// built `wledger` binary, and simulated edits written straight into safetensors files.
public enum Fixtures {
    /// `$WLEDGER_CACHE` or `~/.cache/wledger` (filled by scripts/fetch-fixtures.sh).
    public static var cacheRoot: String {
        ProcessInfo.processInfo.environment["WLEDGER_CACHE"] ?? (NSHomeDirectory() + "/.cache/wledger")
    }

    /// The converted SmolLM2-135M directory for a dtype ("f32", "f16", "bf16").
    ///
    /// When the fixture is missing the test is skipped locally, but fails under CI
    /// (`CI` or `WLEDGER_REQUIRE_FIXTURES` set), so CI can never pass without real data.
    public static func smolLM2(_ dtype: String) throws -> String {
        let dir = cacheRoot + "/models/smollm2-135m/" + dtype
        _ = try require(dir + "/model.safetensors")
        return dir
    }

    /// A file of wledger's task data (`tasks/analogies/*.jsonl`, `tasks/corpus/…`, written by
    /// scripts/wordtasks.py); skipped locally, a failure under CI, when missing.
    public static func taskData(_ relative: String) throws -> String {
        try require(cacheRoot + "/tasks/" + relative)
    }

    /// `path` when it exists. Otherwise the test is skipped locally but fails under CI (`CI` or
    /// `WLEDGER_REQUIRE_FIXTURES` set), with `hint` saying how to get it.
    public static func require(_ path: String, hint: String = "run scripts/fetch-fixtures.sh") throws -> String {
        if FileManager.default.fileExists(atPath: path) { return path }
        let env = ProcessInfo.processInfo.environment
        if env["CI"] != nil || env["WLEDGER_REQUIRE_FIXTURES"] != nil {
            XCTFail("fixture '\(path)' missing: \(hint)")
            throw XCTSkip("fixture missing")
        }
        throw XCTSkip("fixture '\(path)' missing: \(hint)")
    }
}

/// A temporary directory removed on deinit.
public final class TemporaryDirectory {
    public let path: String

    public init(_ label: String = "wledger-test") throws {
        let base = ProcessInfo.processInfo.environment["WLEDGER_TEST_TMP"] ?? NSTemporaryDirectory()
        path = base + "/\(label)-\(getpid())-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    /// Copies the regular files of `source` (not recursive) into `path/name` and returns it.
    public func copyModel(from source: String, name: String = "model") throws -> String {
        let dst = path + "/" + name
        try FileManager.default.createDirectory(atPath: dst, withIntermediateDirectories: true)
        for f in try FileManager.default.contentsOfDirectory(atPath: source) where !f.hasPrefix(".") {
            try FileManager.default.copyItem(atPath: source + "/" + f, toPath: dst + "/" + f)
        }
        return dst
    }
}

/// Result of running a process.
public struct ProcessOutput {
    public var status: Int32
    public var stdout: String
    public var stderr: String
}

/// Runs the `wledger` binary built next to the test bundle.
public enum CLI {
    /// `.build/<config>/wledger`.
    public static var binary: String {
        let bundle = Bundle.allBundles.first { $0.bundlePath.hasSuffix(".xctest") }?.bundlePath ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: bundle).deletingLastPathComponent().appendingPathComponent("wledger").path
    }

    /// Runs `wledger args…` in `directory` with extra environment, capturing output.
    @discardableResult
    public static func run(_ args: [String], in directory: String? = nil, environment: [String: String] = [:],
                           stdin: String? = nil) throws -> ProcessOutput {
        try runProcess(binary, args, in: directory, environment: environment, stdin: stdin)
    }
}

/// Runs any executable, capturing stdout and stderr.
public func runProcess(_ executable: String, _ args: [String], in directory: String? = nil, environment: [String: String] = [:],
                       stdin: String? = nil) throws -> ProcessOutput {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = args
    if let directory { p.currentDirectoryURL = URL(fileURLWithPath: directory) }
    var env = ProcessInfo.processInfo.environment
    for (k, v) in environment { env[k] = v }
    p.environment = env
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    let inPipe = Pipe()
    p.standardInput = inPipe
    try p.run()
    if let stdin { inPipe.fileHandleForWriting.write(stdin.data(using: .utf8)!) }
    try? inPipe.fileHandleForWriting.close()
    // Read both pipes concurrently to avoid filling one while waiting on the other.
    let group = DispatchGroup()
    nonisolated(unsafe) var errData = Data()
    group.enter()
    DispatchQueue.global().async {
        errData = err.fileHandleForReading.readDataToEndOfFile()
        group.leave()
    }
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    group.wait()
    p.waitUntilExit()
    return ProcessOutput(status: p.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                         stderr: String(decoding: errData, as: UTF8.self))
}

/// sha256 (hex) of a whole file, computed independently of wledger's own code paths.
public func fileSHA256(_ path: String) throws -> String {
    let h = SHA256Hasher()
    let fd = FileHandle(forReadingAtPath: path)!
    defer { try? fd.close() }
    while true {
        let d = fd.readData(ofLength: 8 << 20)
        if d.isEmpty { break }
        d.withUnsafeBytes { h.update($0) }
    }
    return h.finalize().hex
}

/// sha256 of every regular file in a directory (recursively, including `.wledger/` but not its
/// lock file, SQLite's `-shm` index or an empty `-wal`), for asserting that a failed command
/// changed nothing.
public func directoryDigest(_ dir: String) throws -> [String: String] {
    var out: [String: String] = [:]
    let fm = FileManager.default
    guard let e = fm.enumerator(atPath: dir) else { return out }
    while let rel = e.nextObject() as? String {
        var isDir: ObjCBool = false
        let p = dir + "/" + rel
        if fm.fileExists(atPath: p, isDirectory: &isDir), !isDir.boolValue {
            // The lock file, SQLite's shared-memory WAL index and an empty WAL appear or change on any
            // open of the ledger; they hold no ledger content.
            if rel == ".wledger/lock" || rel.hasSuffix("-shm") { continue }
            if rel.hasSuffix("-wal"), (try? fm.attributesOfItem(atPath: p)[.size] as? Int) == 0 { continue }
            out[rel] = try fileSHA256(p)
        }
    }
    return out
}

/// Simulated weight edits applied in place to a safetensors file (the tensor must be F32, F16 or BF16).
public enum SimulatedEdit {
    /// Reads a tensor as Float, lets `body` change it, writes it back rounded to the dtype.
    /// - Returns: (parent bytes, child bytes) of the tensor.
    @discardableResult
    public static func modify(file: String, tensor: String, _ body: (inout [Float], [Int]) -> Void) throws -> (parent: [UInt8], child: [UInt8]) {
        let (info, dataStart) = try locate(file: file, tensor: tensor)
        let fh = FileHandle(forUpdatingAtPath: file)!
        defer { try? fh.close() }
        try fh.seek(toOffset: UInt64(dataStart + info.begin))
        let parent = [UInt8](fh.readData(ofLength: info.byteCount))
        var values = [Float](repeating: 0, count: info.elementCount)
        parent.withUnsafeBytes { p in values.withUnsafeMutableBufferPointer { decodeToFloat(p, dtype: info.dtype, into: $0) } }
        body(&values, info.shape)
        var child = [UInt8](repeating: 0, count: info.byteCount)
        values.withUnsafeBufferPointer { v in child.withUnsafeMutableBytes { encodeFromFloat(v, dtype: info.dtype, into: $0) } }
        try fh.seek(toOffset: UInt64(dataStart + info.begin))
        fh.write(Data(child))
        return (parent, child)
    }

    /// A ROME-like rank-one update W += scale · u vᵀ with deterministic pseudo-random u, v.
    @discardableResult
    public static func rankOne(file: String, tensor: String, seed: UInt64, scale: Float = 0.01) throws -> (parent: [UInt8], child: [UInt8]) {
        try modify(file: file, tensor: tensor) { w, shape in
            var rng = SplitMix64(seed: seed)
            let rows = shape[0], cols = shape.count > 1 ? shape[1] : 1
            let u = (0..<rows).map { _ in rng.nextGaussian() }
            let v = (0..<cols).map { _ in rng.nextGaussian() }
            for i in 0..<rows { for j in 0..<cols { w[i * cols + j] += scale * u[i] * v[j] } }
        }
    }

    /// A KN-like sparse update: a few whole columns scaled and shifted.
    @discardableResult
    public static func columns(file: String, tensor: String, seed: UInt64, count: Int = 3) throws -> (parent: [UInt8], child: [UInt8]) {
        try modify(file: file, tensor: tensor) { w, shape in
            var rng = SplitMix64(seed: seed)
            let rows = shape[0], cols = shape[1]
            for _ in 0..<count {
                let j = Int(rng.next() % UInt64(cols))
                for i in 0..<rows { w[i * cols + j] = w[i * cols + j] * 1.5 + 0.001 * rng.nextGaussian() }
            }
        }
    }

    /// The tensor's header entry and the data buffer's offset in the file.
    public static func locate(file: String, tensor: String) throws -> (TensorInfo, Int) {
        let sf = try SafetensorsFile(path: file)
        guard let info = sf.info(tensor) else { throw TensorIOError.invalidTensor(path: file, tensor: tensor, reason: "not found") }
        return (info, sf.header.dataStart)
    }
}

/// Deterministic pseudo-random numbers for reproducible simulated edits.
public struct SplitMix64 {
    var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    public mutating func nextUniform() -> Float { Float(next() >> 40) / Float(1 << 24) }
    public mutating func nextGaussian() -> Float {
        let u1 = max(nextUniform(), 1e-7), u2 = nextUniform()
        return (-2 * log(u1)).squareRoot() * cos(2 * .pi * u2)
    }
}

/// Independent reference values decoded straight from raw little-endian bytes (F32, BF16, F64),
/// without wledger's conversion kernels.
public enum ReferenceDecode {
    public static func doubles(_ bytes: [UInt8], dtype: String) -> [Double] {
        switch dtype {
        case "F32", "f32":
            return (0..<(bytes.count / 4)).map { i in
                Double(Float(bitPattern: UInt32(bytes[4 * i]) | UInt32(bytes[4 * i + 1]) << 8 | UInt32(bytes[4 * i + 2]) << 16 | UInt32(bytes[4 * i + 3]) << 24))
            }
        case "BF16", "bf16":
            return (0..<(bytes.count / 2)).map { i in Double(Float(bitPattern: (UInt32(bytes[2 * i]) | UInt32(bytes[2 * i + 1]) << 8) << 16)) }
        case "F64", "f64":
            return (0..<(bytes.count / 8)).map { i in
                var u: UInt64 = 0
                for b in 0..<8 { u |= UInt64(bytes[8 * i + b]) << (8 * UInt64(b)) }
                return Double(bitPattern: u)
            }
        default:
            preconditionFailure("reference decode of \(dtype) not supported")
        }
    }

    /// `got` against head + (child − parent) in float64, element by element: how many elements
    /// the delta moves, the largest relative error there (`worst`), the first element the delta
    /// leaves alone whose bytes differ from head's, and the first NaN among the moved ones.
    public static func headPlusDelta(got: [UInt8], head: [UInt8], parent: [UInt8], child: [UInt8], dtype: String)
        -> (moved: Int, worst: Double, keptMismatch: Int?, nan: Int?) {
        let h = doubles(head, dtype: dtype), p = doubles(parent, dtype: dtype), c = doubles(child, dtype: dtype)
        let g = doubles(got, dtype: dtype)
        let size = head.count / max(h.count, 1)
        var moved = 0, worst = 0.0, keptMismatch: Int?, nan: Int?
        for i in 0..<h.count {
            let d = c[i] - p[i]
            if d == 0 {
                if keptMismatch == nil, got[(i * size)..<((i + 1) * size)] != head[(i * size)..<((i + 1) * size)] { keptMismatch = i }
                continue
            }
            moved += 1
            if g[i].isNaN, nan == nil { nan = i }
            let exact = h[i] + d
            worst = max(worst, abs(g[i] - exact) / max(abs(exact), 1e-30))
        }
        return (moved, worst, keptMismatch, nan)
    }

    /// (changed elements, Σ|d|, ‖d‖F, max|d|) of d = child − parent.
    public static func deltaStats(parent: [UInt8], child: [UInt8], dtype: String) -> (changed: Int, l1: Double, frobenius: Double, maxAbs: Double) {
        let p = doubles(parent, dtype: dtype), c = doubles(child, dtype: dtype)
        let size = parent.count / max(p.count, 1)
        var changed = 0, l1 = 0.0, sq = 0.0, mx = 0.0
        for i in 0..<p.count {
            if parent[(i * size)..<((i + 1) * size)] != child[(i * size)..<((i + 1) * size)] { changed += 1 }
            let d = c[i] - p[i]
            l1 += abs(d); sq += d * d; mx = max(mx, abs(d))
        }
        return (changed, l1, sq.squareRoot(), mx)
    }
}

/// Reads a tensor's raw bytes from a safetensors file (independently of the ledger).
public func readTensorBytes(file: String, tensor: String) throws -> [UInt8] {
    let (info, dataStart) = try SimulatedEdit.locate(file: file, tensor: tensor)
    let fh = FileHandle(forReadingAtPath: file)!
    defer { try? fh.close() }
    try fh.seek(toOffset: UInt64(dataStart + info.begin))
    return [UInt8](fh.readData(ofLength: info.byteCount))
}

/// Writes a small model directory (model.safetensors + config.json) from named tensors.
public func writeTinyModel(_ dir: String, tensors: [(name: String, dtype: DType, shape: [Int], bytes: [UInt8])]) throws {
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    let header = SafetensorsHeader.make(tensors: tensors.map { ($0.name, $0.dtype, $0.shape) })
    var file = header.prefixBytes
    for t in header.tensors { file += tensors.first { $0.name == t.name }!.bytes }
    try Data(file).write(to: URL(fileURLWithPath: dir + "/model.safetensors"))
    try Data(#"{"architectures":["TinyTestModel"]}"#.utf8).write(to: URL(fileURLWithPath: dir + "/config.json"))
}
