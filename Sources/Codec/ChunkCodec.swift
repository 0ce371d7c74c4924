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

    /// Decodes one chunk into `dst` (exactly `rawSize` bytes).
    public static func decodeChunk(codec: ChunkCodec, elementSize: Int, data: UnsafeRawBufferPointer,
                                   into dst: UnsafeMutableRawBufferPointer, scratch: inout [UInt8]) throws {
        switch codec {
        case .raw:
            guard data.count == dst.count else {
                throw CodecError.corrupt(what: "chunk", reason: "stored \(data.count) bytes, expected \(dst.count)")
            }
            if dst.count > 0 { dst.baseAddress!.copyMemory(from: data.baseAddress!, byteCount: dst.count) }
        case .zstd:
            try Zstd.decompress(data, into: dst)
        case .shuffledZstd:
            guard elementSize >= 1 else { throw CodecError.corrupt(what: "chunk", reason: "element size \(elementSize)") }
            if scratch.count < dst.count { scratch = uninitializedBytes(dst.count) }
            try scratch.withUnsafeMutableBytes { s in
                let tmp = UnsafeMutableRawBufferPointer(rebasing: s[0..<dst.count])
                try Zstd.decompress(data, into: tmp)
                Shuffle.unshuffle(UnsafeRawBufferPointer(tmp), into: dst, elementSize: elementSize)
            }
        }
    }
}
