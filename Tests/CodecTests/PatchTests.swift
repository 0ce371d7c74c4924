import Codec
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
        var scratch = [UInt8]()
        for c in chunks {
            var piece = [UInt8](repeating: 0, count: c.rawSize)
            try c.data.withUnsafeBytes { d in try piece.withUnsafeMutableBytes { try Chunker.decodeChunk(codec: c.codec, elementSize: c.elementSize, data: d, into: $0, scratch: &scratch) } }
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
}
