import Codec
import Foundation
import TensorIO

/// An object encoded and hashed off the database thread, ready to insert.
public struct PreparedObject: Sendable {
    public var id: String
    public var size: Int
    public var chunks: [EncodedChunk]
    public var storedSize: Int { chunks.reduce(0) { $0 + $1.data.count } }

    /// Hashes (unless `knownHash` is given) and encodes `payload`.
    /// - Parameters:
    ///   - elementSize: > 1 to byte-plane shuffle before zstd (tensor bytes).
    ///   - compress: false for payloads that are compressed already (patches).
    public static func encode(_ payload: UnsafeRawBufferPointer, elementSize: Int, compress: Bool,
                              level: Int32 = Zstd.defaultLevel, knownHash: String? = nil) throws -> PreparedObject {
        let id = knownHash ?? SHA256Digest.hash(payload).hex
        let chunks = try Chunker.encode(payload, elementSize: elementSize, compress: compress, level: level)
        return PreparedObject(id: id, size: payload.count, chunks: chunks)
    }
}

/// A stored chunk copied out of SQLite, decodable on any thread.
public struct StoredChunk: Sendable {
    public var codec: ChunkCodec
    public var elementSize: Int
    public var rawSize: Int
    public var data: [UInt8]
}

/// An object's chunks copied out of SQLite.
public struct StoredObject: Sendable {
    public var id: String
    public var size: Int
    public var chunks: [StoredChunk]

    /// Decodes into `dst` (exactly `size` bytes); with `verify`, checks the sha256 of the result.
    public func decode(into dst: UnsafeMutableRawBufferPointer, verify: Bool) throws {
        guard dst.count == size else { throw LedgerError.corruptObject(id: id, reason: "size \(size), expected \(dst.count)") }
        var offsets: [Int] = []
        var offset = 0
        for c in chunks {
            guard c.rawSize >= 0, offset + c.rawSize <= size else { throw LedgerError.corruptObject(id: id, reason: "chunks exceed object size") }
            offsets.append(offset)
            offset += c.rawSize
        }
        guard offset == size else { throw LedgerError.corruptObject(id: id, reason: "chunks cover \(offset) of \(size) bytes") }
        // Chunks are independent frames: a large object's are decoded in parallel.
        let failures = ChunkFailures(count: chunks.count), out = MutableView(buffer: dst), all = chunks, starts = offsets
        DispatchQueue.concurrentPerform(iterations: chunks.count) { i in
            let c = all[i]
            let piece = UnsafeMutableRawBufferPointer(rebasing: out.buffer[starts[i]..<(starts[i] + c.rawSize)])
            var scratch = [UInt8]()
            do {
                try c.data.withUnsafeBytes { try Chunker.decodeChunk(codec: c.codec, elementSize: c.elementSize, data: $0, into: piece, scratch: &scratch) }
            } catch {
                failures.set(i, error)
            }
        }
        if let e = failures.first { throw LedgerError.corruptObject(id: id, reason: "\(e)") }
        if verify {
            let h = SHA256Digest.hash(UnsafeRawBufferPointer(dst)).hex
            guard h == id else { throw LedgerError.corruptObject(id: id, reason: "content hash is \(h.prefix(12))") }
        }
    }

    /// Calls `body` with the decoded payload (not verified): the stored bytes themselves when the
    /// object is one raw chunk (as patches are), else a decoded copy.
    public func withPayload<R>(_ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        if chunks.count == 1, chunks[0].codec == .raw, chunks[0].rawSize == size, chunks[0].data.count == size {
            return try chunks[0].data.withUnsafeBytes(body)
        }
        return try decoded(verify: false).withUnsafeBytes(body)
    }

    /// Decodes into a new array.
    public func decoded(verify: Bool) throws -> [UInt8] {
        var out = uninitializedBytes(size)
        try out.withUnsafeMutableBytes { try decode(into: $0, verify: verify) }
        return out
    }
}

/// A destination buffer written by disjoint ranges from several threads.
private struct MutableView: @unchecked Sendable { let buffer: UnsafeMutableRawBufferPointer }

/// Per-chunk decoding errors; the first chunk's in order is reported.
private final class ChunkFailures: @unchecked Sendable {
    private let lock = NSLock()
    private var errors: [Error?]
    init(count: Int) { errors = Array(repeating: nil, count: count) }
    func set(_ i: Int, _ e: Error) { lock.lock(); errors[i] = e; lock.unlock() }
    var first: Error? { lock.lock(); defer { lock.unlock() }; return errors.compactMap { $0 }.first }
}
