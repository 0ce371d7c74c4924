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

    func testFingerprintDistinguishesAndRoundTripsHex() {
        let a = Fingerprint.of([UInt8](repeating: 0, count: 1000))
        var bytes = [UInt8](repeating: 0, count: 1000)
        bytes[999] = 1
        XCTAssertNotEqual(a, Fingerprint.of(bytes))
        XCTAssertEqual(Fingerprint(hex: a.hex), a)
        XCTAssertEqual(a.hex.count, 32)
    }
}
