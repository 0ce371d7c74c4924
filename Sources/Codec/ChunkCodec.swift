import CShims
import CZstd
/// How one stored chunk of an object is encoded.
public enum ChunkCodec: Int, Sendable {
    /// Bytes stored as they are (already compressed or incompressible).
    case raw = 0
    /// zstd of the bytes.
    case zstd = 1
    /// zstd of the byte-plane shuffled bytes (element size stored beside the chunk).
    case shuffledZstd = 2
}

/// One encoded chunk of an object: `rawSize` bytes of payload once decoded.
public struct EncodedChunk: Sendable {
    public var codec: ChunkCodec
    public var elementSize: Int
    public var rawSize: Int
    public var data: [UInt8]

    public init(codec: ChunkCodec, elementSize: Int, rawSize: Int, data: [UInt8]) {
        self.codec = codec; self.elementSize = elementSize; self.rawSize = rawSize; self.data = data
    }
}

/// Splits a payload into chunks of at most `chunkBytes` and compresses each independently, so
/// large tensors are encoded and decoded in parallel and no SQLite blob exceeds 64 MiB.
public enum Chunker {
    public static let defaultChunkBytes = 64 << 20

    /// Encodes `payload`. `elementSize` > 1 enables byte-plane shuffling; `compress` false stores raw.
    /// Falls back to raw for any chunk that zstd does not shrink.
    public static func encode(_ payload: UnsafeRawBufferPointer, elementSize: Int, compress: Bool = true,
                              level: Int32 = Zstd.defaultLevel, chunkBytes: Int = defaultChunkBytes) throws -> [EncodedChunk] {
        let step = max(elementSize, chunkBytes - chunkBytes % max(elementSize, 1))
        var chunks: [EncodedChunk] = []
        var start = 0
        var scratch = [UInt8]()
        repeat {
            let end = min(payload.count, start + step)
            let piece = UnsafeRawBufferPointer(rebasing: payload[start..<end])
            chunks.append(try encodeChunk(piece, elementSize: elementSize, compress: compress, level: level, scratch: &scratch))
            start = end
        } while start < payload.count
        return chunks
    }

    /// Encodes one chunk (used directly by callers that parallelise over chunks).
    public static func encodeChunk(_ piece: UnsafeRawBufferPointer, elementSize: Int, compress: Bool,
                                   level: Int32, scratch: inout [UInt8]) throws -> EncodedChunk {
        guard compress, piece.count > 0 else {
            return EncodedChunk(codec: .raw, elementSize: 1, rawSize: piece.count, data: Array(piece))
        }
        var data: [UInt8]
        var codec = ChunkCodec.zstd
        if elementSize > 1 {
            if scratch.count < piece.count { scratch = uninitializedBytes(piece.count) }
            data = try scratch.withUnsafeMutableBytes { s in
                let dst = UnsafeMutableRawBufferPointer(rebasing: s[0..<piece.count])
                Shuffle.shuffle(piece, into: dst, elementSize: elementSize)
                return try Zstd.compress(UnsafeRawBufferPointer(dst), level: level)
            }
            codec = .shuffledZstd
        } else {
            data = try Zstd.compress(piece, level: level)
        }
        if data.count >= piece.count {
            return EncodedChunk(codec: .raw, elementSize: 1, rawSize: piece.count, data: Array(piece))
        }
        return EncodedChunk(codec: codec, elementSize: elementSize, rawSize: piece.count, data: data)
    }

    /// Decodes one chunk held in memory into `dst` (exactly `rawSize` bytes).
    public static func decodeChunk(codec: ChunkCodec, elementSize: Int, data: UnsafeRawBufferPointer,
                                   into dst: UnsafeMutableRawBufferPointer) throws {
        switch codec {
        case .raw:
            guard data.count == dst.count else {
                throw CodecError.corrupt(what: "chunk", reason: "stored \(data.count) bytes, expected \(dst.count)")
            }
            if dst.count > 0 { dst.baseAddress!.copyMemory(from: data.baseAddress!, byteCount: dst.count) }
        case .zstd:
            try Zstd.decompress(data, into: dst)
        case .shuffledZstd:
            let decoder = try ChunkStream(codec: codec, elementSize: elementSize, into: dst)
            try decoder.feed(data)
            try decoder.finish()
        }
    }

    /// Decodes one chunk whose `storedCount` stored bytes `read(offset, buffer)` copies out a piece
    /// at a time (`pieceBytes` at most), into `dst`: a raw chunk is read straight into `dst`, a
    /// compressed one through one reused piece buffer and `ChunkStream`, so decoding holds no copy
    /// of the stored chunk.
    public static func decodeChunk(codec: ChunkCodec, elementSize: Int, storedCount: Int, pieceBytes: Int = 1 << 20,
                                   into dst: UnsafeMutableRawBufferPointer,
                                   read: (_ offset: Int, _ buffer: UnsafeMutableRawBufferPointer) throws -> Void) throws {
        if codec == .raw {
            guard storedCount == dst.count else {
                throw CodecError.corrupt(what: "chunk", reason: "stored \(storedCount) bytes, expected \(dst.count)")
            }
            if dst.count > 0 { try read(0, dst) }
            return
        }
        let decoder = try ChunkStream(codec: codec, elementSize: elementSize, into: dst)
        var piece = uninitializedBytes(min(max(pieceBytes, 1), max(storedCount, 1)))
        try piece.withUnsafeMutableBytes { buf in
            var offset = 0
            while offset < storedCount {
                let n = min(buf.count, storedCount - offset)
                let part = UnsafeMutableRawBufferPointer(rebasing: buf[0..<n])
                try read(offset, part)
                try decoder.feed(UnsafeRawBufferPointer(part))
                offset += n
            }
        }
        try decoder.finish()
    }
}

/// One zstd or shuffled-zstd chunk decoded from its stored bytes fed in pieces, front to back,
/// straight into its destination. A shuffled chunk's byte planes come out of zstd into a small
/// window and are unshuffled from there into place (`wl_unshuffle_part`), so decoding needs no
/// buffer of the chunk's size: the destination is the only memory it writes. (A 64 MiB chunk
/// decoded through a scratch copy wrote 64 MiB of fresh pages, whose first touch is a commit's
/// dearest cost on a VM whose page cache fills memory; see `uninitializedBytes`.)
public final class ChunkStream {
    public static let windowBytes = 256 << 10

    private let shuffled: Bool
    private let elementSize: Int
    private let dst: UnsafeMutableRawBufferPointer
    private var window: [UInt8]
    private let dctx: OpaquePointer
    private let kept: Bool
    private var produced = 0
    private var ended = false
    private var fed = false

    /// Bytes a decoder holds besides its destination, for callers that count memory: the window,
    /// a piece buffer and zstd's own streaming buffers, which hold up to a frame window of
    /// history (2 MiB for the level-3 frames wledger writes, less for smaller chunks) plus two
    /// blocks and the context (`ZSTD_sizeof_DCtx` after streaming a 64 MiB level-3 frame through
    /// the 256 KiB window: 2.59 MB, against 96 KB for one-shot decoding).
    public static func workingBytes(rawSize: Int, storedCount: Int, pieceBytes: Int = 1 << 20) -> Int {
        min(windowBytes, rawSize) + min(pieceBytes, storedCount) + min(rawSize, 2 << 20) + (352 << 10)
    }

    public init(codec: ChunkCodec, elementSize: Int, into dst: UnsafeMutableRawBufferPointer) throws {
        guard codec != .raw else { throw CodecError.corrupt(what: "chunk", reason: "a raw chunk has no stream") }
        guard elementSize >= 1 else { throw CodecError.corrupt(what: "chunk", reason: "element size \(elementSize)") }
        guard let (d, kept) = Zstd.threadContext() else { throw CodecError.zstd(operation: "decompress", reason: "out of memory") }
        ZSTD_DCtx_reset(d, ZSTD_reset_session_only)
        self.dctx = d; self.kept = kept
        self.shuffled = codec == .shuffledZstd && elementSize > 1
        self.elementSize = elementSize
        self.dst = dst
        self.window = shuffled ? uninitializedBytes(max(1, min(Self.windowBytes, dst.count))) : [0]
    }

    /// Decodes all of `piece`, the next stored bytes.
    public func feed(_ piece: UnsafeRawBufferPointer) throws {
        guard piece.count > 0 else { return }
        fed = true
        var input = ZSTD_inBuffer(src: piece.baseAddress, size: piece.count, pos: 0)
        let n = dst.count / elementSize
        repeat {
            guard !ended else { throw CodecError.corrupt(what: "zstd frame", reason: "stored bytes continue after the frame ends") }
            let room = dst.count - produced
            var full = false
            let rc: Int = try window.withUnsafeMutableBytes { w in
                // Past the end of `dst` one byte of the window serves to detect a frame that decodes
                // to more than the chunk's size.
                let direct = !shuffled && room > 0
                var out = ZSTD_outBuffer(dst: direct ? dst.baseAddress! + produced : w.baseAddress,
                                         size: direct ? room : min(w.count, max(room, 1)), pos: 0)
                let rc = ZSTD_decompressStream(dctx, &out, &input)
                if ZSTD_isError(rc) != 0 { throw CodecError.zstd(operation: "decompress", reason: String(cString: ZSTD_getErrorName(rc))) }
                guard out.pos <= room else {
                    throw CodecError.corrupt(what: "zstd frame", reason: "decodes to more than \(dst.count) bytes")
                }
                if shuffled && out.pos > 0 {
                    wl_unshuffle_part(w.baseAddress!.assumingMemoryBound(to: UInt8.self), out.pos, produced,
                                      dst.baseAddress!.assumingMemoryBound(to: UInt8.self), n, elementSize)
                }
                produced += out.pos
                full = out.pos == out.size
                return rc
            }
            if rc == 0 { ended = true }
            // A full output buffer may leave decoded bytes inside zstd: call again until it
            // returns less than it was given room for.
            if input.pos == input.size && !full { break }
            if input.pos == input.size && ended { break }
        } while true
    }

    /// Checks that the frame ended and filled the destination exactly.
    public func finish() throws {
        // No stored bytes at all stand for an empty chunk (as `ZSTD_decompress` takes them).
        if !fed && dst.count == 0 { return }
        guard ended else { throw CodecError.corrupt(what: "zstd frame", reason: "stored bytes end before the frame does") }
        guard produced == dst.count else {
            throw CodecError.corrupt(what: "zstd frame", reason: "decoded \(produced) bytes, expected \(dst.count)")
        }
    }

    deinit { if !kept { ZSTD_freeDCtx(dctx) } }
}