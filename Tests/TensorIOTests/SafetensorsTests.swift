import TensorIO
import XCTest

final class SafetensorsTests: XCTestCase {
    /// A valid two-tensor file built by hand (header bytes written literally, not by our writer).
    func makeFile(header: String, data: [UInt8]) -> [UInt8] {
        var json = Array(header.utf8)
        while json.count % 8 != 0 { json.append(0x20) }
        var out = [UInt8]()
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        return out + json + data
    }

    func parse(_ bytes: [UInt8]) throws -> SafetensorsHeader {
        try bytes.withUnsafeBytes { try SafetensorsHeader.parse(file: $0, path: "x.safetensors") }
    }

    func reason(_ bytes: [UInt8]) -> String {
        do {
            _ = try parse(bytes)
            return "accepted"
        } catch {
            return "\(error)"
        }
    }

    func testParsesValidHeaderAndOrdersByOffset() throws {
        let h = #"{"__metadata__":{"format":"pt"},"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"BF16","shape":[2,2],"data_offsets":[8,16]}}"#
        let header = try parse(makeFile(header: h, data: [UInt8](repeating: 1, count: 16)))
        XCTAssertEqual(header.tensors.map(\.name), ["b", "a"])
        XCTAssertEqual(header.tensors[1].shape, [2, 2])
        XCTAssertEqual(header.tensors[1].dtype, .bf16)
        XCTAssertEqual(header.metadata.first?.1, "pt")
        XCTAssertEqual(header.dataSize, 16)
    }

    func testRejectsEveryMalformedLayout() {
        let ok = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#
        XCTAssertEqual(reason(makeFile(header: ok, data: [UInt8](repeating: 0, count: 8))), "accepted")
        XCTAssertTrue(reason([1, 2, 3]).contains("shorter than the 8-byte header length"))
        XCTAssertTrue(reason(makeFile(header: ok, data: [UInt8](repeating: 0, count: 4))).contains("truncated"))
        var huge = [UInt8](repeating: 0, count: 16)
        huge[0] = 0xFF; huge[1] = 0xFF; huge[2] = 0xFF; huge[3] = 0x7F
        XCTAssertTrue(reason(huge).contains("exceeds the 100 MB limit"))
        var beyond = makeFile(header: ok, data: [UInt8](repeating: 0, count: 8))
        beyond[0] = 200
        XCTAssertTrue(reason(beyond).contains("beyond the end"))
        let overlap = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#
        XCTAssertTrue(reason(makeFile(header: overlap, data: [UInt8](repeating: 0, count: 8))).contains("overlaps"))
        let hole = #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#
        XCTAssertTrue(reason(makeFile(header: hole, data: [UInt8](repeating: 0, count: 12))).contains("hole"))
        let trailing = makeFile(header: ok, data: [UInt8](repeating: 0, count: 12))
        XCTAssertTrue(reason(trailing).contains("not covered"))
        let dtype = #"{"a":{"dtype":"Q4_1","shape":[2],"data_offsets":[0,8]}}"#
        XCTAssertTrue(reason(makeFile(header: dtype, data: [UInt8](repeating: 0, count: 8))).contains("unknown dtype \"Q4_1\""))
        let mismatch = #"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#
        XCTAssertTrue(reason(makeFile(header: mismatch, data: [UInt8](repeating: 0, count: 8))).contains("needs 12 bytes"))
        let overflow = #"{"a":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,8]}}"#
        XCTAssertTrue(reason(makeFile(header: overflow, data: [UInt8](repeating: 0, count: 8))).contains("overflows"))
        let dup = #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#
        XCTAssertTrue(reason(makeFile(header: dup, data: [UInt8](repeating: 0, count: 8))).contains("duplicate key \"a\""))
        let negative = #"{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,8]}}"#
        XCTAssertTrue(reason(makeFile(header: negative, data: [UInt8](repeating: 0, count: 8))).contains("non-negative"))
        XCTAssertTrue(reason(makeFile(header: "[1,2]", data: [])).contains("does not start with '{'"))
    }

    func testRecognizesForeignFormats() {
        let lfs = Array("version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 12\n".utf8)
        XCTAssertTrue(reason(lfs).contains("git-lfs pointer"))
        XCTAssertTrue(reason([0x50, 0x4B, 0x03, 0x04, 0, 0, 0, 0, 0]).contains("PyTorch pickle"))
        XCTAssertTrue(reason([0x80, 0x02, 0x7D, 0x71, 0, 0, 0, 0, 0]).contains("Python pickle"))
        XCTAssertTrue(reason(Array("GGUF\u{3}\0\0\0\0\0\0\0".utf8)).contains("GGUF"))
    }

    /// Header lengths whose low bytes read as a pickle's start (0x80 then a protocol 2–5: 640,
    /// 896, 1152, 1408, 66176, …) or a zip's are valid safetensors, parsed as such.
    func testHeaderLengthsThatLookLikeOtherFormatsStillParse() throws {
        let header = #"{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#
        for length in [640, 896, 1152, 1408, 66176] {
            var json = Array(header.utf8)
            json += [UInt8](repeating: 0x20, count: length - json.count)
            var bytes = [UInt8]()
            withUnsafeBytes(of: UInt64(length).littleEndian) { bytes.append(contentsOf: $0) }
            XCTAssertEqual(bytes[0], 0x80, "length \(length)")
            let parsed = try parse(bytes + json + [UInt8](repeating: 1, count: 16))
            XCTAssertEqual(parsed.tensors.map(\.name), ["w"], "length \(length)")
        }
    }

    func testMakeRoundTripsThroughParse() throws {
        let h = SafetensorsHeader.make(tensors: [("z", .f16, [3, 5]), ("a", .i64, [2])])
        XCTAssertEqual(h.json.count % 8, 0)
        let file = h.prefixBytes + [UInt8](repeating: 7, count: h.dataSize)
        let parsed = try parse(file)
        XCTAssertEqual(parsed.tensors, h.tensors)
        XCTAssertEqual(parsed.tensors.map(\.name), ["a", "z"])
    }

    func testShardNamesMayNotEscape() {
        for bad in ["../x.safetensors", "/etc/passwd", "a/../../b", "..", ""] {
            XCTAssertThrowsError(try ModelDirectory.validateShardName(bad, indexPath: "i.json"), bad) { e in
                XCTAssertTrue("\(e)".contains("escapes the model directory"), "\(e)")
            }
        }
        XCTAssertThrowsError(try ModelDirectory.validateShardName("sub/x.safetensors", indexPath: "i.json"))
        XCTAssertNoThrow(try ModelDirectory.validateShardName("model-00001-of-00002.safetensors", indexPath: "i.json"))
    }
}
