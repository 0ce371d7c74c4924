import Foundation
import TensorIO
import TestSupport
import XCTest

/// Names a safetensors header or a directory may hold that strings compare loosely: a tensor
/// name with U+0000 in it is stored and restored exactly (it was cut at the NUL, so a fresh
/// init could not be checked out); names that differ only in Unicode normalization (café as
/// NFC and NFD) are refused with both named, since wledger would take them for one.
final class UnusualNamesTests: XCTestCase {
    func testTensorNamesWithNULRoundTrip() throws {
        let tmp = try TemporaryDirectory("nul-names")
        let dir = tmp.path + "/m"
        func wl(_ args: [String]) throws -> ProcessOutput { try CLI.run(args, in: dir) }
        let one = [UInt8]([0, 0, 0x80, 0x3f]), two = [UInt8]([0, 0, 0, 0x40])
        try writeTinyModel(dir, tensors: [("a\u{0}b", .f32, [1], one), ("w\u{0}", .f32, [1], two), ("w", .f32, [1], one)])
        let before = try directoryDigest(dir)
        var r = try wl(["init", "-q"])
        XCTAssertEqual(r.status, 0, r.stderr)
        r = try wl(["status", "-s"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, "")
        r = try wl(["fsck"])
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        r = try wl(["checkout", "HEAD", "--output", tmp.path + "/out"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try directoryDigest(tmp.path + "/out"), before.filter { !$0.key.hasPrefix(".wledger/") })
        // A change to the NUL-named tensor is that tensor's.
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: dir + "/model.safetensors")))
        let (info, start) = try SimulatedEdit.locate(file: dir + "/model.safetensors", tensor: "a\u{0}b")
        bytes[start + info.begin + 3] = 0x40   // 1.0 → 3.0
        try Data(bytes).write(to: URL(fileURLWithPath: dir + "/model.safetensors"))
        r = try wl(["status", "--json"])
        let report = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        XCTAssertEqual((report["modifiedTensors"] as? [[String: Any]])?.compactMap { $0["name"] as? String }, ["a\u{0}b"])
        XCTAssertEqual(try wl(["commit", "-q", "-m", "nul"]).status, 0)
        r = try wl(["checkout", "HEAD~1", "--output", tmp.path + "/back"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try directoryDigest(tmp.path + "/back"), before.filter { !$0.key.hasPrefix(".wledger/") })
    }

    func testFileNamesThatDifferOnlyInUnicodeNormalizationAreRefused() throws {
        let tmp = try TemporaryDirectory("nfc-nfd")
        let dir = tmp.path + "/m"
        func wl(_ args: [String]) throws -> ProcessOutput { try CLI.run(args, in: dir) }
        try writeTinyModel(dir, tensors: [("w", .f32, [1], [0, 0, 0x80, 0x3f])])
        XCTAssertEqual(try wl(["init", "-q"]).status, 0)
        try "NFC\n".write(toFile: dir + "/caf\u{e9}.txt", atomically: true, encoding: .utf8)
        try "NFD\n".write(toFile: dir + "/cafe\u{301}.txt", atomically: true, encoding: .utf8)
        let before = try directoryDigest(dir)
        for args in [["status"], ["commit", "-m", "two"]] {
            let r = try wl(args)
            XCTAssertEqual(r.status, 2, "\(args): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains("different Unicode normal forms") && r.stderr.contains("caf"), r.stderr)
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
            XCTAssertEqual(try directoryDigest(dir), before, "\(args) changed something")
        }
        // With one of them gone, both spellings' owner commits as usual.
        try FileManager.default.removeItem(atPath: dir + "/cafe\u{301}.txt")
        XCTAssertEqual(try wl(["commit", "-q", "-m", "one"]).status, 0)
        XCTAssertEqual(try wl(["status", "-s"]).stdout, "")
    }

    /// A file name that is not UTF-8 is refused, named with an octal escape (it was left out of
    /// the listing: status did not show it and commit did not record it).
    func testFileNamesThatAreNotUTF8AreRefused() throws {
        let tmp = try TemporaryDirectory("not-utf8")
        let dir = (tmp.path + "/m" as NSString).standardizingPath
        func wl(_ args: [String]) throws -> ProcessOutput { try CLI.run(args, in: dir) }
        try writeTinyModel(dir, tensors: [("w", .f32, [1], [0, 0, 0x80, 0x3f])])
        XCTAssertEqual(try wl(["init", "-q"]).status, 0)
        let raw = Array((dir + "/bad").utf8) + [0xFF] + Array(".txt".utf8) + [0]
        let fd = raw.withUnsafeBufferPointer { open(UnsafeRawPointer($0.baseAddress!).assumingMemoryBound(to: CChar.self), O_CREAT | O_WRONLY, 0o644) }
        XCTAssertGreaterThanOrEqual(fd, 0)
        close(fd)
        let before = try directoryDigest(dir)
        for args in [["status"], ["commit", "-m", "bad"]] {
            let r = try wl(args)
            XCTAssertEqual(r.status, 2, "\(args): \(r.stderr)")
            XCTAssertEqual(r.stderr, "error: '\(dir)/bad\\377.txt': its name is not valid UTF-8, and wledger records names as text; rename it\n")
            XCTAssertEqual(try directoryDigest(dir), before, "\(args) changed something")
        }
        XCTAssertEqual(raw.withUnsafeBufferPointer { unlink(UnsafeRawPointer($0.baseAddress!).assumingMemoryBound(to: CChar.self)) }, 0)
        XCTAssertEqual(try wl(["status", "-s"]).stdout, "")
        // What wledger does not track stays ignored whatever its name: a directory.
        let rawDir = Array((dir + "/scratch").utf8) + [0xE9, 0]
        XCTAssertEqual(rawDir.withUnsafeBufferPointer { mkdir(UnsafeRawPointer($0.baseAddress!).assumingMemoryBound(to: CChar.self), 0o755) }, 0)
        let r = try wl(["status", "-s"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, "")
    }

    /// A file name with a newline, a tab or a quote is printed quoted with C escapes, as git
    /// quotes such paths, so `status -s` keeps one line per entry; JSON holds the name itself.
    func testNamesWithControlCharactersArePrintedQuoted() throws {
        let tmp = try TemporaryDirectory("quoted-names")
        let dir = tmp.path + "/m"
        func wl(_ args: [String]) throws -> ProcessOutput { try CLI.run(args, in: dir) }
        try writeTinyModel(dir, tensors: [("w", .f32, [1], [0, 0, 0x80, 0x3f])])
        XCTAssertEqual(try wl(["init", "-q"]).status, 0)
        for name in ["new\nline", "tab\there", "say \"hi\""] {
            try "x\n".write(toFile: dir + "/" + name, atomically: true, encoding: .utf8)
        }
        XCTAssertEqual(try wl(["status", "-s"]).stdout, "?? \"new\\nline\"\n?? \"say \\\"hi\\\"\"\n?? \"tab\\there\"\n")
        let r = try wl(["status", "--json"])
        let report = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        XCTAssertEqual((report["sideFiles"] as? [[String: String]])?.compactMap { $0["path"] }, ["new\nline", "say \"hi\"", "tab\there"])
        XCTAssertEqual(try wl(["commit", "-q", "-m", "odd names"]).status, 0)
        XCTAssertTrue(try wl(["show"]).stdout.contains("\n    A \"new\\nline\"\n"))
        XCTAssertTrue(try wl(["diff", "HEAD~1", "HEAD"]).stdout.contains("\nA\t\"tab\\there\"\n"))
    }
}
