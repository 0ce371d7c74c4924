import CXXHash
import Foundation
import TensorIO
import XCTest

final class DigestTests: XCTestCase {
    func testSHA256KnownVectors() {
        XCTAssertEqual(SHA256Digest.hash([UInt8]()).hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(SHA256Digest.hash("abc").hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        let h = SHA256Hasher()
        h.update(Array("a".utf8)); h.update(Array("bc".utf8))
        XCTAssertEqual(h.finalize().hex, SHA256Digest.hash("abc").hex)
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

    func testFingerprintDistinguishesAndRoundTripsHex() {
        let a = Fingerprint.of([UInt8](repeating: 0, count: 1000))
        var bytes = [UInt8](repeating: 0, count: 1000)
        bytes[999] = 1
        XCTAssertNotEqual(a, Fingerprint.of(bytes))
        XCTAssertEqual(Fingerprint(hex: a.hex), a)
        XCTAssertEqual(a.hex.count, 32)
    }
}
