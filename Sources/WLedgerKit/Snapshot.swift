import Codec
import Foundation
import Ledger
import LinAlg
import TensorIO

/// Who and when, for new commits.
public struct Signature: Sendable {
    public var author: String
    public var time: Int64

    public init(author: String, time: Int64) { self.author = author; self.time = time }

    /// `--author`, else $WLEDGER_AUTHOR, else $USER; time from $WLEDGER_TIME (unix seconds) or now.
    public static func current(author: String?) -> Signature {
        let env = ProcessInfo.processInfo.environment
        let name = author ?? env["WLEDGER_AUTHOR"] ?? env["USER"] ?? "unknown"
        let time = env["WLEDGER_TIME"].flatMap { Int64($0) } ?? Int64(Date().timeIntervalSince1970)
        return Signature(author: name, time: time)
    }
}

/// A tensor of the work tree prepared for storage off the database thread.
struct PreparedTensor: Sendable {
    var name: String
    var hash: String
    var fingerprint: String
    var version: TensorVersion?
    var object: PreparedObject?
    var stats: DeltaStatistics?
}

/// Limits applied while snapshotting.
public struct SnapshotPolicy: Sendable {
    /// Longest patch chain before a new keyframe is stored.
    public var maxPatchDepth = 16
    /// zstd level for keyframes and patches.
    public var level: Int32 = Zstd.defaultLevel
    /// Accept NaN/±Inf in changed tensors.
    public var allowNonFinite = false

    public init() {}
}

enum Snapshot {
    /// Encodes tensors as keyframes in parallel (used by init and when a chain gets too long).
    static func keyframe(name: String, bytes: UnsafeRawBufferPointer, dtype: DType, policy: SnapshotPolicy) throws -> PreparedTensor {
        let hash = SHA256Digest.hash(bytes).hex
        let fp = Fingerprint.of(bytes).hex
        let obj = try PreparedObject.encode(bytes, elementSize: dtype.size, compress: true, level: policy.level, knownHash: hash)
        let v = TensorVersion(hash: hash, fingerprint: fp, byteCount: bytes.count, elementSize: dtype.size, base: nil,
                              object: hash, encoding: "keyframe", depth: 0, probe: Probe.of(bytes))
        return PreparedTensor(name: name, hash: hash, fingerprint: fp, version: v, object: obj, stats: nil)
    }

    /// Object for a small blob (header prefix or side file): zstd, content-addressed.
    static func blob(_ bytes: [UInt8], hash: String? = nil) throws -> PreparedObject {
        try bytes.withUnsafeBytes { try PreparedObject.encode($0, elementSize: 1, compress: true, knownHash: hash) }
    }
}
