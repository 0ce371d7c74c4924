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

/// A stored chunk: its bytes copied out of SQLite, or for a large compressed chunk the place they
/// are read from a piece at a time while it is decoded. Decodable on any thread.
public struct StoredChunk: Sendable {
    public var codec: ChunkCodec
    public var elementSize: Int
    public var rawSize: Int
    /// The stored bytes; empty when `source` reads them.
    public var data: [UInt8]
    public var source: ChunkSource?

    public init(codec: ChunkCodec, elementSize: Int, rawSize: Int, data: [UInt8], source: ChunkSource? = nil) {
        self.codec = codec; self.elementSize = elementSize; self.rawSize = rawSize; self.data = data; self.source = source
    }

    public var storedCount: Int { source?.count ?? data.count }

    /// Memory that decoding this chunk holds besides its destination: the copied stored bytes,
    /// or a streamed chunk's piece buffer and window.
    public var heldBytes: Int {
        source.map { ChunkStream.workingBytes(rawSize: rawSize, storedCount: $0.count, pieceBytes: ChunkSource.pieceBytes) } ?? data.count
    }

    /// Decodes into `dst` (exactly `rawSize` bytes).
    func decode(into dst: UnsafeMutableRawBufferPointer) throws {
        if let source {
            let blob = try source.open()
            try Chunker.decodeChunk(codec: codec, elementSize: elementSize, storedCount: source.count, pieceBytes: ChunkSource.pieceBytes,
                                    into: dst) { offset, buffer in try blob.read(offset, into: buffer) }
        } else {
            try data.withUnsafeBytes { try Chunker.decodeChunk(codec: codec, elementSize: elementSize, data: $0, into: dst) }
        }
    }
}

/// A chunk's row in the ledger, read while the chunk is decoded instead of copied out first: a
/// 7B model's 90 MB tensor has ≈ 60 MB of keyframe, which a copy would put in fresh memory.
/// The connection is serialized (`Database.serialized`), so decoding threads may read through it.
public final class ChunkSource: @unchecked Sendable {
    /// Stored chunks at least this large are read as they decode, through a buffer of this size.
    public static let pieceBytes = 1 << 20

    private let database: Database
    private let rowid: Int64
    public let count: Int

    init(database: Database, rowid: Int64, count: Int) {
        self.database = database; self.rowid = rowid; self.count = count
    }

    func open() throws -> BlobReader {
        try database.openBlob(table: "objectChunk", column: "data", rowid: rowid, count: count)
    }
}

/// An object's chunks, as `Ledger.storedObject` found them.
public struct StoredObject: Sendable {
    public var id: String
    public var size: Int
    public var chunks: [StoredChunk]

    /// What decoding the object holds besides its destination (`StoredChunk.heldBytes`).
    public var heldBytes: Int { chunks.reduce(0) { $0 + $1.heldBytes } }

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
            do {
                try c.decode(into: piece)
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
        if chunks.count == 1, chunks[0].codec == .raw, chunks[0].source == nil, chunks[0].rawSize == size, chunks[0].data.count == size {
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
