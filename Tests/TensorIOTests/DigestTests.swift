import CXXHash
import Foundation
import TensorIO
import XCTest

final class DigestTests: XCTestCase {
    /// `data` written to a new temporary file (the caller removes it).
    private func temporaryFile(_ data: [UInt8]) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("wledger-digest-\(UUID().uuidString).bin").path
        try Data(data).write(to: URL(fileURLWithPath: path))
        return path
    }

    func testSHA256KnownVectors() {
        XCTAssertEqual(SHA256Digest.hash([UInt8]()).hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(SHA256Digest.hash("abc").hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        let h = SHA256Hasher()
        h.update(Array("a".utf8)); h.update(Array("bc".utf8))
        XCTAssertEqual(h.finalize().hex, SHA256Digest.hash("abc").hex)
        // FIPS 180-2's long vector (many blocks), one-shot and in uneven pieces.
        let million = [UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000)
        XCTAssertEqual(SHA256Digest.hash(million).hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
        let pieces = SHA256Hasher()
        for r in [0..<1, 1..<64, 64..<65, 65..<999_999, 999_999..<1_000_000] { pieces.update(Array(million[r])) }
        XCTAssertEqual(pieces.finalize().hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    /// The fingerprint (AVX2 build where the CPU has it) equals
    /// the distribution's libxxhash XXH3-128 on every input-length regime of XXH3 (0, 1–3, 4–8,
    /// 9–16, 17–128, 129–240, long with a partial stripe and block).
    func testFingerprintEqualsLibraryXXH3() throws {
        XCTAssertEqual(Fingerprint.of([UInt8]()).hex, "99aa06d3014798d86001c324468d497f")
        var state: UInt64 = 0x1234_5678
        let data = (0..<(3 << 20) + 77).map { _ -> UInt8 in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return UInt8(truncatingIfNeeded: state >> 56)
        }
        for n in [1, 3, 4, 8, 9, 16, 17, 128, 129, 240, 241, 1024, 1025, 65_536 + 5, data.count - 13] {
            for offset in [0, 7] {
                let slice = Array(data[offset..<(offset + n)])
                let ref = slice.withUnsafeBytes { XXH3_128bits($0.baseAddress, $0.count) }
                let expected = Fingerprint(high: ref.high64, low: ref.low64)
                XCTAssertEqual(Fingerprint.of(slice), expected, "n \(n), offset \(offset)")
            }
        }
    }

    /// Hashing a mapped file's byte range gives libxxhash's XXH3-128 of those bytes, read with
    /// `pread`, through the map (every page present) or whichever the page cache favours: empty,
    /// small, unaligned, exactly one and one byte over the read buffer (256 KiB), across a 2 MiB
    /// window, several buffers; none once its stop flag is set; with `pread`, a file that shrank
    /// after it was mapped is an error naming it.
    func testFingerprintReadFromTheFileEqualsLibraryXXH3() throws {
        var state: UInt64 = 0x9e37_79b9
        let data = (0..<(3 << 20) + 77).map { _ -> UInt8 in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return UInt8(truncatingIfNeeded: state >> 56)
        }
        let path = try temporaryFile(data)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let map = try MappedFile(path: path)
        // Populated, every page is present, so each window is hashed through the map.
        let populated = try MappedFile(path: path, populate: true)
        for n in [0, 1, 17, 4095, 262_144, 262_145, 1 << 20, (2 << 20) + 1, data.count - 13] {
            for offset in [0, 13] where offset + n <= data.count {
                let ref = data.withUnsafeBytes { XXH3_128bits($0.baseAddress! + offset, n) }
                let expected = Fingerprint(high: ref.high64, low: ref.low64), range = offset..<(offset + n)
                XCTAssertEqual(try Fingerprint.of(map, range: range, throughMap: false), expected, "pread, n \(n), offset \(offset)")
                XCTAssertEqual(try Fingerprint.of(populated, range: range), expected, "map, n \(n), offset \(offset)")
                XCTAssertEqual(try Fingerprint.of(map, range: range), expected, "either, n \(n), offset \(offset)")
            }
        }
        // A stop flag set before (or while) a range is read: no fingerprint.
        let stop = StopFlag()
        XCTAssertNotNil(try Fingerprint.of(map, range: 0..<1000, stop: stop))
        stop.set()
        XCTAssertNil(try Fingerprint.of(map, range: 0..<1000, stop: stop))
        XCTAssertEqual(truncate(path, 1000), 0)
        XCTAssertThrowsError(try Fingerprint.of(map, range: 0..<4096, throughMap: false)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains(path) && text.contains("ends before byte 4096"), text)
        }
    }

    /// The probe is XXH3-64 (the distribution's libxxhash) of four 64-byte windows at offsets
    /// 0, (n−64)/3, 2(n−64)/3 and n−64, written out here; of the whole input up to 256 bytes. A
    /// byte changed inside a window changes it, one between windows does not. Read from a file,
    /// it is the same; a file that shrank after it was mapped is an error naming it.
    func testProbeHashesFourWindows() throws {
        var state: UInt64 = 99
        let data = (0..<10_007).map { _ -> UInt8 in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return UInt8(truncatingIfNeeded: state >> 56)
        }
        func xxh64(_ b: [UInt8]) -> Int64 { Int64(bitPattern: b.withUnsafeBytes { XXH3_64bits($0.baseAddress, $0.count) }) }
        for n in [0, 1, 255, 256] { XCTAssertEqual(Probe.of(Array(data[0..<n])), xxh64(Array(data[0..<n])), "n \(n)") }
        for n in [257, 4096, data.count] {
            let d = Array(data[0..<n]), step = n - 64
            let windows = [0, step / 3, 2 * step / 3, step].flatMap { d[$0..<($0 + 64)] }
            XCTAssertEqual(Probe.of(d), xxh64(windows), "n \(n)")
        }
        var inside = data, between = data
        inside[(data.count - 64) / 3 + 10] ^= 1
        between[(data.count - 64) / 3 + 100] ^= 1
        XCTAssertNotEqual(Probe.of(inside), Probe.of(data))
        XCTAssertEqual(Probe.of(between), Probe.of(data))

        // Read from the file with pread (as scans do): the same probe for every tensor range.
        let path = try temporaryFile(data)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let map = try MappedFile(path: path)
        for n in [0, 1, 255, 256, 257, 4096, 9_000] {
            for offset in [0, 7, data.count - n] where offset + n <= data.count {
                XCTAssertEqual(try Probe.of(map, range: offset..<(offset + n)), Probe.of(Array(data[offset..<(offset + n)])), "n \(n), offset \(offset)")
            }
        }
        XCTAssertEqual(truncate(path, 5000), 0)
        XCTAssertThrowsError(try Probe.of(map, range: 0..<data.count)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains(path) && text.contains("shrank"), text)
        }
    }

    func testFingerprintDistinguishesAndRoundTripsHex() {
        let a = Fingerprint.of([UInt8](repeating: 0, count: 1000))
        var bytes = [UInt8](repeating: 0, count: 1000)
        bytes[999] = 1
        XCTAssertNotEqual(a, Fingerprint.of(bytes))
        XCTAssertEqual(Fingerprint(hex: a.hex), a)
        XCTAssertEqual(a.hex.count, 32)
    }
}
