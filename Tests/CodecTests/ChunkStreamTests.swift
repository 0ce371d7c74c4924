@testable import Codec
import Foundation
import TestSupport
import XCTest

/// Chunks decoded as a stream (stored bytes fed in pieces, byte planes unshuffled from a small
/// window straight into place) against an independent decode: the whole zstd frame decompressed
/// by `ZSTD_decompress` into a buffer of its own, then unshuffled by the whole-buffer kernel.
final class ChunkStreamTests: XCTestCase {
    /// The reference: one-shot decompression, then `Shuffle.unshuffle` of the whole chunk.
    func referenceDecode(_ c: EncodedChunk) throws -> [UInt8] {
        let raw = try c.data.withUnsafeBytes { try Zstd.decompress($0, size: c.rawSize) }
        guard c.codec == .shuffledZstd else { return raw }
        var out = [UInt8](repeating: 0, count: c.rawSize)
        raw.withUnsafeBytes { r in out.withUnsafeMutableBytes { Shuffle.unshuffle(r, into: $0, elementSize: c.elementSize) } }
        return out
    }

    /// Decodes from pieces of `pieceBytes` read by offset, into a destination full of 0xA5 (the
    /// first plane must write whole elements, not OR into what was there).
    func streamDecode(_ c: EncodedChunk, pieceBytes: Int) throws -> [UInt8] {
        var out = [UInt8](repeating: 0xA5, count: c.rawSize)
        try out.withUnsafeMutableBytes { d in
            try Chunker.decodeChunk(codec: c.codec, elementSize: c.elementSize, storedCount: c.data.count, pieceBytes: pieceBytes, into: d) { offset, buffer in
                c.data.withUnsafeBytes { buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[offset..<(offset + buffer.count)])) }
            }
        }
        return out
    }

    func memoryDecode(_ c: EncodedChunk) throws -> [UInt8] {
        var out = [UInt8](repeating: 0x5A, count: c.rawSize)
        try c.data.withUnsafeBytes { s in try out.withUnsafeMutableBytes { try Chunker.decodeChunk(codec: c.codec, elementSize: c.elementSize, data: s, into: $0) } }
        return out
    }

    /// Real weights: a BF16 and an F32 SmolLM2 tensor larger than the window (so planes cross
    /// window boundaries), cut so a partial element trails, and element sizes 1, 3 and 8 over
    /// the same bytes; every piece size decodes to the original bytes and to the reference.
    func testStreamedChunksEqualTheReferenceOnRealWeights() throws {
        var cases: [(bytes: [UInt8], elementSize: Int)] = []
        for (dtype, size) in [("bf16", 2), ("f32", 4)] {
            let file = try Fixtures.smolLM2(dtype) + "/model.safetensors"
            let t = try readTensorBytes(file: file, tensor: "model.layers.7.mlp.down_proj.weight")
            XCTAssertGreaterThan(t.count, 4 * ChunkStream.windowBytes)
            cases.append((t, size))
            cases.append((Array(t[0..<(t.count / 3 * 2 + 1)]), size))   // a trailing partial element
        }
        let sample = Array(cases[0].bytes[0..<(700_001)])
        for e in [1, 3, 8] { cases.append((sample, e)) }
        for (bytes, size) in cases {
            let chunks = try bytes.withUnsafeBytes { try Chunker.encode($0, elementSize: size, chunkBytes: 1 << 30) }
            XCTAssertEqual(chunks.count, 1)
            let c = chunks[0]
            XCTAssertNotEqual(c.codec, .raw)
            let reference = try referenceDecode(c)
            XCTAssertEqual(reference, bytes, "reference decode, element size \(size)")
            XCTAssertEqual(try memoryDecode(c), bytes, "from memory, element size \(size), \(bytes.count) bytes")
            for piece in [1 << 20, 65_537, 4096] {
                XCTAssertEqual(try streamDecode(c, pieceBytes: piece), bytes, "pieces of \(piece), element size \(size), \(bytes.count) bytes")
            }
        }
        // Byte-sized pieces on a smaller chunk (every call into zstd gets one byte).
        let small = Array(cases[0].bytes[0..<50_000])
        let c = try small.withUnsafeBytes { try Chunker.encode($0, elementSize: 2) }[0]
        XCTAssertEqual(try streamDecode(c, pieceBytes: 1), small)
    }

    /// Stored bytes that end early, continue after the frame, or decode to a size other than the
    /// chunk's are errors, from memory and from pieces alike; a flipped byte fails the checksum.
    func testStreamRejectsBadFrames() throws {
        let file = try Fixtures.smolLM2("bf16") + "/model.safetensors"
        let bytes = Array(try readTensorBytes(file: file, tensor: "model.layers.2.mlp.down_proj.weight")[0..<600_000])
        let good = try bytes.withUnsafeBytes { try Chunker.encode($0, elementSize: 2) }[0]
        func fails(_ c: EncodedChunk, _ what: String) {
            XCTAssertThrowsError(try memoryDecode(c), what)
            XCTAssertThrowsError(try streamDecode(c, pieceBytes: 4096), what)
        }
        var c = good
        c.data.removeLast(10)
        fails(c, "truncated")
        c = good
        c.data += good.data
        fails(c, "two frames")
        // Unshuffled zstd: two frames that together decode to the chunk's bytes (one-shot
        // decompression took them until the fuzzer found two empty frames taken from memory and
        // refused from pieces).
        let halves = try [bytes[0..<300_000], bytes[300_000...]].map { h in try Array(h).withUnsafeBytes { try Chunker.encode($0, elementSize: 1) }[0] }
        XCTAssertEqual(halves.map(\.codec), [.zstd, .zstd])
        fails(EncodedChunk(codec: .zstd, elementSize: 1, rawSize: bytes.count, data: halves[0].data + halves[1].data), "two zstd frames")
        // A skippable frame (magic 0x184D2A50, 4 bytes of payload) before or after the frame.
        let skippable: [UInt8] = [0x50, 0x2A, 0x4D, 0x18, 4, 0, 0, 0, 1, 2, 3, 4]
        let whole = try bytes.withUnsafeBytes { try Chunker.encode($0, elementSize: 1) }[0]
        XCTAssertEqual(try memoryDecode(whole), bytes)
        fails(EncodedChunk(codec: .zstd, elementSize: 1, rawSize: bytes.count, data: skippable + whole.data), "skippable frame first")
        fails(EncodedChunk(codec: .zstd, elementSize: 1, rawSize: bytes.count, data: whole.data + skippable), "skippable frame after")
        let empty = try Zstd.compress(UnsafeRawBufferPointer(start: nil, count: 0), level: 3)
        fails(EncodedChunk(codec: .zstd, elementSize: 1, rawSize: 0, data: empty + empty), "two empty zstd frames")
        XCTAssertEqual(try memoryDecode(EncodedChunk(codec: .zstd, elementSize: 1, rawSize: 0, data: empty)), [])
        XCTAssertEqual(try streamDecode(EncodedChunk(codec: .zstd, elementSize: 1, rawSize: 0, data: empty), pieceBytes: 1), [])
        c = good
        c.data.append(0)
        fails(c, "a trailing byte")
        c = good
        c.rawSize -= 2
        fails(c, "frame longer than the chunk")
        c = good
        c.rawSize += 2
        fails(c, "frame shorter than the chunk")
        c = good
        c.data[c.data.count / 2] ^= 0x40
        fails(c, "flipped byte")
        XCTAssertEqual(try streamDecode(good, pieceBytes: 4096), bytes)
    }
}
