@testable import Codec
import Foundation
import XCTest

final class PatchTests: XCTestCase {
    func roundTrip(_ parent: [UInt8], _ child: [UInt8], elem: Int, file: StaticString = #filePath, line: UInt = #line) throws -> Patch {
        let patch = try parent.withUnsafeBytes { p in try child.withUnsafeBytes { try Patch.make(parent: p, child: $0, elementSize: elem) } }
        var out = [UInt8](repeating: 0xAA, count: parent.count)
        try patch.bytes.withUnsafeBytes { pb in try parent.withUnsafeBytes { p in try out.withUnsafeMutableBytes { try Patch.apply(pb, to: p, into: $0) } } }
        XCTAssertEqual(out, child, file: file, line: line)
        // Applied in place (the parent's own memory is the output), the result is the same.
        var inPlace = parent
        try patch.bytes.withUnsafeBytes { pb in try inPlace.withUnsafeMutableBytes { try Patch.apply(pb, to: UnsafeRawBufferPointer($0), into: $0) } }
        XCTAssertEqual(inPlace, child, "in place", file: file, line: line)
        return patch
    }

    func testSparseAndDenseChangesRebuildExactly() throws {
        var rng = SystemRandomNumberGenerator()
        for elem in [1, 2, 4, 8] {
            let n = 4096 * elem
            let parent = (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
            var sparse = parent
            for _ in 0..<20 { sparse[Int.random(in: 0..<n, using: &rng)] ^= 0x5A }
            let ps = try roundTrip(parent, sparse, elem: elem)
            XCTAssertNotEqual(ps.encoding, .denseXor)
            XCTAssertLessThan(ps.bytes.count, n / 4)
            var dense = parent
            for i in 0..<n where i % 3 != 0 { dense[i] = UInt8.random(in: 0...255, using: &rng) }
            XCTAssertEqual(try roundTrip(parent, dense, elem: elem).encoding, .denseXor)
            XCTAssertEqual(try roundTrip(parent, parent, elem: elem).changed, 0)
        }
        XCTAssertEqual(try roundTrip([], [], elem: 4).changed, 0)
    }

    /// Changed elements whose new values are all zero while their XOR is random: sparse-values
    /// wins, unless the caller (a low-rank residual) leaves it out; either patch is exact.
    func testSparseValuesCanBeLeftOut() throws {
        var rng = SystemRandomNumberGenerator()
        let n = 4096 * 4
        let parent = (0..<n).map { _ in UInt8.random(in: 1...255, using: &rng) }
        var child = parent
        for e in stride(from: 0, to: n / 4, by: 37) { for b in 0..<4 { child[4 * e + b] = 0 } }
        XCTAssertEqual(try roundTrip(parent, child, elem: 4).encoding, .sparseValues)
        let p = try parent.withUnsafeBytes { pb in
            try child.withUnsafeBytes { try Patch.make(parent: pb, child: $0, elementSize: 4, tryChildValues: false) }
        }
        XCTAssertEqual(p.encoding, .sparseXor)
        var out = [UInt8](repeating: 0, count: n)
        try p.bytes.withUnsafeBytes { pb in try parent.withUnsafeBytes { par in try out.withUnsafeMutableBytes { try Patch.apply(pb, to: par, into: $0) } } }
        XCTAssertEqual(out, child)
    }

    /// The sparse layout, read back by hand: the index section holds each changed position as the
    /// gap from the previous one (the first from 0), 4-byte little-endian; the value section the
    /// XOR (sparse-xor) or the child's bytes (sparse-values) of those elements, in order.
    func testSparseSectionsHoldGapsAndValues() throws {
        for elem in [1, 2, 3, 4, 8] {
            let n = 1000
            var rng = SplitMix(seed: UInt64(elem))
            let parent = (0..<(n * elem)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            let positions = [0, 1, 7, 8, 9, 63, 64, 500, 998, 999]
            var child = parent
            for p in positions { child[p * elem + Int(rng.next() % UInt64(elem))] ^= UInt8(1 + rng.next() % 255) }
            let patch = try roundTrip(parent, child, elem: elem)
            XCTAssertTrue(patch.encoding == .sparseXor || patch.encoding == .sparseValues, "\(patch.encoding)")
            let body = Array(patch.bytes[24...])
            XCTAssertEqual(body[0], 4)
            let idxLen = Int(body[8..<16].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) })
            let section = { (range: Range<Int>, size: Int, count: Int) -> [UInt8] in
                let shuffled = try Zstd.decompress(UnsafeRawBufferPointer(rebasing: body.withUnsafeBytes { $0 }[range]), size: size * count)
                var raw = [UInt8](repeating: 0, count: size * count)
                shuffled.withUnsafeBytes { s in raw.withUnsafeMutableBytes { Shuffle.unshuffle(s, into: $0, elementSize: size) } }
                return raw
            }
            let gaps = try section(24..<(24 + idxLen), 4, positions.count)
            let decoded = (0..<positions.count).map { k in (0..<4).reduce(0) { $0 | Int(gaps[4 * k + $1]) << (8 * $1) } }
            XCTAssertEqual(decoded, zip(positions, [0] + positions.dropLast()).map { $0 - $1 }, "elem \(elem)")
            let values = try section((24 + idxLen)..<body.count, elem, positions.count)
            let expected = positions.flatMap { p in (0..<elem).map { b in
                patch.encoding == .sparseXor ? parent[p * elem + b] ^ child[p * elem + b] : child[p * elem + b] } }
            XCTAssertEqual(values, expected, "elem \(elem)")
        }
    }

    /// A 24 MiB tensor (above the size where the dense candidate is compressed on another thread
    /// while the sparse ones are built, with libzstd's workers) with 12 % of its 2-byte elements
    /// changed: every candidate is built, the smallest wins, and it rebuilds the child exactly.
    func testLargeTensorCandidatesRebuildExactly() throws {
        let n = 12 << 20
        var rng = SplitMix(seed: 7)
        let parent = (0..<(2 * n)).map { _ in UInt8(truncatingIfNeeded: rng.next() >> 40) }
        var child = parent
        for i in 0..<n where rng.next() % 100 < 12 { child[2 * i] ^= 1 }
        let patch = try roundTrip(parent, child, elem: 2)
        XCTAssertNotEqual(patch.encoding, .lowRank)
        XCTAssertLessThan(patch.bytes.count, 2 * n / 4)
    }

    func testChangedCountsElementsNotBytes() throws {
        let parent = [UInt8](repeating: 0, count: 64)
        var child = parent
        child[0] = 1; child[1] = 1; child[5] = 1  // elements 0 and 1 of size 4
        XCTAssertEqual(try roundTrip(parent, child, elem: 4).changed, 2)
    }

    func testCorruptPatchesAreRejected() throws {
        let parent = [UInt8](repeating: 3, count: 400)
        var child = parent
        child[8] = 9
        let patch = try roundTrip(parent, child, elem: 4)
        var out = [UInt8](repeating: 0, count: 400)
        func apply(_ bytes: [UInt8], parent p: [UInt8]) throws {
            try bytes.withUnsafeBytes { pb in try p.withUnsafeBytes { pp in try out.withUnsafeMutableBytes { try Patch.apply(pb, to: pp, into: $0) } } }
        }
        var badMagic = patch.bytes; badMagic[0] = 0
        XCTAssertThrowsError(try apply(badMagic, parent: parent))
        XCTAssertThrowsError(try apply(Array(patch.bytes.dropLast(3)), parent: parent))
        XCTAssertThrowsError(try apply(patch.bytes, parent: Array(parent.dropLast(4)))) // wrong parent size
        var flipped = patch.bytes; flipped[flipped.count - 2] ^= 0xFF
        XCTAssertThrowsError(try apply(flipped, parent: parent))
        // Element or changed counts of 2⁶³ and more do not fit an Int: an error, not a trap
        // (found by fuzzing: Fuzz/regressions/patch-count-over-int-max).
        for offset in [8, 16] {
            var huge = patch.bytes
            for b in 0..<8 { huge[offset + b] = 0xFF }
            XCTAssertThrowsError(try apply(huge, parent: parent)) { XCTAssertTrue("\($0)".contains("patch"), "\($0)") }
            if offset == 16 { XCTAssertNil(huge.withUnsafeBytes { Patch.peek($0) }) }
        }
        // Low-rank headers with dimensions beyond Int, or a rank above min(rows, cols) (which
        // would make the factors far larger than the tensor), are corrupt too.
        func lowRank(rows: UInt64, cols: UInt64, rank: UInt64) -> [UInt8] {
            var b = Patch.magic + [4, 4, 0, 0]
            for v in [UInt64(100), 0, 0x0801, rows, cols, rank, 0, 0] { withUnsafeBytes(of: v.littleEndian) { b += $0 } }
            return b
        }
        XCTAssertThrowsError(try apply(lowRank(rows: 10, cols: 10, rank: 1), parent: parent))   // empty sections
        XCTAssertThrowsError(try apply(lowRank(rows: 1 << 63, cols: 0, rank: 0), parent: parent))
        XCTAssertThrowsError(try apply(lowRank(rows: 100, cols: 1, rank: 2), parent: parent))
        XCTAssertThrowsError(try apply(lowRank(rows: 0, cols: 0, rank: UInt64.max), parent: parent))
    }

    func testChunkerSplitsAndRestores() throws {
        let payload = (0..<10_000).map { UInt8(truncatingIfNeeded: $0 * 7 / 13) }
        let chunks = try payload.withUnsafeBytes { try Chunker.encode($0, elementSize: 4, chunkBytes: 4096) }
        XCTAssertEqual(chunks.count, 3)
        var out = [UInt8]()
        for c in chunks {
            var piece = [UInt8](repeating: 0, count: c.rawSize)
            try c.data.withUnsafeBytes { d in try piece.withUnsafeMutableBytes { try Chunker.decodeChunk(codec: c.codec, elementSize: c.elementSize, data: d, into: $0) } }
            out += piece
        }
        XCTAssertEqual(out, payload)
    }

    func testShuffleIsInvertible() {
        let src = (0..<1003).map { UInt8(truncatingIfNeeded: $0) }
        for e in [1, 2, 3, 4, 8] {
            var s = [UInt8](repeating: 0, count: src.count), back = s
            src.withUnsafeBytes { a in s.withUnsafeMutableBytes { Shuffle.shuffle(a, into: $0, elementSize: e) } }
            s.withUnsafeBytes { a in back.withUnsafeMutableBytes { Shuffle.unshuffle(a, into: $0, elementSize: e) } }
            XCTAssertEqual(back, src)
            if e == 2 { XCTAssertEqual(Array(s.prefix(3)), [0, 2, 4]) }
        }
    }

    /// The stored layout, byte for byte, against its definition (plane p holds byte p of every
    /// element, in order) for the vectorized sizes, at lengths around the 16-element steps: a
    /// shuffle that only inverted itself would still change every stored keyframe.
    func testShuffleLayoutMatchesDefinition() {
        var rng = SplitMix(seed: 3)
        for e in [2, 4] {
            for n in [0, 1, 15, 16, 17, 31, 32, 33, 100, 4099] {
                let src = (0..<(n * e)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
                var s = [UInt8](repeating: 0, count: src.count), back = s
                src.withUnsafeBytes { a in s.withUnsafeMutableBytes { Shuffle.shuffle(a, into: $0, elementSize: e) } }
                var expected = [UInt8](repeating: 0, count: src.count)
                for i in 0..<n { for p in 0..<e { expected[p * n + i] = src[i * e + p] } }
                XCTAssertEqual(s, expected, "element size \(e), \(n) elements")
                s.withUnsafeBytes { a in back.withUnsafeMutableBytes { Shuffle.unshuffle(a, into: $0, elementSize: e) } }
                XCTAssertEqual(back, src, "element size \(e), \(n) elements")
            }
        }
    }

    /// Decompression keeps one context per thread: after a corrupt frame fails, the next frame
    /// on the same thread still decodes.
    func testDecompressionAfterACorruptFrame() throws {
        let data = (0..<200_000).map { UInt8(truncatingIfNeeded: ($0 * 7) / 3 ^ ($0 >> 9)) }
        let frame = try data.withUnsafeBytes { try Zstd.compress($0) }
        func decode(_ f: [UInt8]) throws -> [UInt8] {
            var out = [UInt8](repeating: 0, count: data.count)
            try f.withUnsafeBytes { fb in try out.withUnsafeMutableBytes { try Zstd.decompress(fb, into: $0) } }
            return out
        }
        XCTAssertEqual(try decode(frame), data)
        var bad = frame
        bad[bad.count / 2] ^= 0xFF
        XCTAssertThrowsError(try decode(bad))
        XCTAssertThrowsError(try decode(Array(frame.prefix(frame.count - 7))))
        XCTAssertEqual(try decode(frame), data)
    }

    /// The row blocks a patch chain goes through: they tile [0, count) exactly, each a whole
    /// number of rows and at most one block long (or one row when a row is larger), including
    /// when a tensor of 2^20 elements or more is split across threads.
    func testBlocksTileTheTensorInWholeRows() {
        for (count, row, elem, blockBytes) in [(0, 1, 4, 256 << 10), (7, 1, 1, 3), (576 * 1536, 1536, 4, 256 << 10),
                                               (3 << 20, 1024, 2, 256 << 10), (5 * 209_718, 5, 4, 64), (4096, 4096, 4, 16)] {
            let lock = NSLock()
            nonisolated(unsafe) var ranges: [(Int, Int)] = []
            DecodedPatch.forEachBlock(count: count, rowElements: row, elementSize: elem, blockBytes: blockBytes) { lo, hi in
                lock.lock(); ranges.append((lo, hi)); lock.unlock()
            }
            ranges.sort { $0.0 < $1.0 }
            var next = 0
            for (lo, hi) in ranges {
                XCTAssertEqual(lo, next, "count \(count)")
                XCTAssertGreaterThan(hi, lo)
                XCTAssertEqual(lo % row, 0)
                XCTAssertEqual(hi % row, 0)
                XCTAssertLessThanOrEqual((hi - lo) * elem, max(row * elem, blockBytes))
                next = hi
            }
            XCTAssertEqual(next, count)
        }
    }
}

/// A small deterministic generator (SplitMix64) for reproducible test bytes.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

}
