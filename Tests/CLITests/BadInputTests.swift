import Foundation
import TensorIO
import TestSupport
import XCTest

/// Bad input must be refused with the documented exit code (2 for usage/bad input, 1 for refusals),
/// a one-line message on stderr naming the file and the problem, and no change at all to the
/// work tree or the ledger (`.wledger/` is hashed too; only the lock file is skipped).
final class BadInputTests: XCTestCase {
    /// Temporary directories live as long as the test (ARC may otherwise free them after last use).
    private var temps: [TemporaryDirectory] = []

    override func tearDown() {
        temps.removeAll()
        super.tearDown()
    }

    // MARK: - Helpers

    private func tempDir() throws -> TemporaryDirectory {
        let t = try TemporaryDirectory("wledger-badinput")
        temps.append(t)
        return t
    }

    /// `path` absolute with "//", "/./" and ".." collapsed, as wledger prints it.
    private func canonical(_ path: String) -> String {
        var parts: [Substring] = []
        for p in path.split(separator: "/") {
            if p == "." || p.isEmpty { continue }
            if p == ".." { if !parts.isEmpty { parts.removeLast() }; continue }
            parts.append(p)
        }
        return "/" + parts.joined(separator: "/")
    }

    /// An empty model directory (not yet containing weights).
    private func emptyModelDir() throws -> String {
        let dir = try tempDir().path + "/model"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try Data(#"{"model_type": "tiny"}"#.utf8).write(to: URL(fileURLWithPath: dir + "/config.json"))
        return dir
    }

    /// A structurally valid two-tensor F32 model: "a" [2, 2] and "b" [4], values 1…8.
    private func tinyModelDir() throws -> String {
        let dir = try emptyModelDir()
        let header = SafetensorsHeader.make(tensors: [("a", .f32, [2, 2]), ("b", .f32, [4])])
        var bytes = header.prefixBytes
        for i in 1...8 { withUnsafeBytes(of: Float(i).bitPattern.littleEndian) { bytes.append(contentsOf: $0) } }
        try Data(bytes).write(to: URL(fileURLWithPath: dir + "/model.safetensors"))
        return dir
    }

    /// Writes `json` (space-padded to a multiple of 8) after an 8-byte little-endian length
    /// (`headerLength` overrides the real one), then `data`.
    private func writeSafetensors(_ path: String, json: String, data: [UInt8], headerLength: UInt64? = nil) throws {
        var j = Array(json.utf8)
        while j.count % 8 != 0 { j.append(0x20) }
        let n = headerLength ?? UInt64(j.count)
        var bytes: [UInt8] = []
        for i in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: n >> (8 * UInt64(i)))) }
        bytes += j
        bytes += data
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    /// A header JSON with tensors given as (name, dtype, shape JSON, data_offsets JSON).
    private func headerJSON(_ entries: [(String, String, String, String)]) -> String {
        let members = entries.map { #""\#($0.0)":{"dtype":"\#($0.1)","shape":\#($0.2),"data_offsets":\#($0.3)}"# }
        return "{\"__metadata__\":{\"format\":\"pt\"}," + members.joined(separator: ",") + "}"
    }

    private let goodEntries: [(String, String, String, String)] = [("a", "F32", "[2,2]", "[0,16]"), ("b", "F32", "[4]", "[16,32]")]

    /// Every file and directory under `dir` (sha256 for files, "<dir>" for directories), the
    /// lock file excepted: equal snapshots mean nothing was written, created or removed.
    private func snapshot(_ dir: String) throws -> [String: String] {
        var out = try directoryDigest(dir)
        let fm = FileManager.default
        if let e = fm.enumerator(atPath: dir) {
            while let rel = e.nextObject() as? String {
                var isDir: ObjCBool = false
                if fm.fileExists(atPath: dir + "/" + rel, isDirectory: &isDir), isDir.boolValue { out[rel] = "<dir>" }
            }
        }
        return out
    }

    /// Runs `wledger args… -C dir` and asserts: exit `code`, exactly one line on stderr containing
    /// every string of `mentions`, nothing on stdout, and `dir` (work tree and ledger) unchanged.
    @discardableResult
    private func expectRejected(_ args: [String], in dir: String, code: Int32 = 2, mentions: [String],
                                file: StaticString = #filePath, line: UInt = #line) throws -> ProcessOutput {
        let before = try snapshot(dir)
        let r = try CLI.run(args + ["-C", dir])
        let what = "wledger \(args.joined(separator: " ")): stderr=\(r.stderr.debugDescription) stdout=\(r.stdout.debugDescription)"
        XCTAssertEqual(r.status, code, "exit code of \(what)", file: file, line: line)
        let message = r.stderr.trimmingCharacters(in: .newlines)
        XCTAssertFalse(message.isEmpty, "no message: \(what)", file: file, line: line)
        XCTAssertFalse(message.contains("\n"), "message is not one line: \(what)", file: file, line: line)
        XCTAssertTrue(r.stdout.isEmpty, "stdout not empty: \(what)", file: file, line: line)
        for m in mentions {
            XCTAssertTrue(message.contains(m), "message does not mention \(m.debugDescription): \(what)", file: file, line: line)
        }
        let after = try snapshot(dir)
        XCTAssertEqual(before, after, "'\(dir)' changed after a failed \(what)", file: file, line: line)
        return r
    }

    /// Runs a command that must succeed.
    @discardableResult
    private func expectSuccess(_ args: [String], in dir: String, file: StaticString = #filePath, line: UInt = #line) throws -> ProcessOutput {
        let r = try CLI.run(args + ["-C", dir])
        XCTAssertEqual(r.status, 0, "wledger \(args.joined(separator: " ")): \(r.stderr)", file: file, line: line)
        return r
    }

    /// `wledger init` followed by one read-only command, so the ledger is settled (see
    /// `testFailedCommandRightAfterInitChangesNothing` for why that matters).
    private func initialize(_ dir: String, file: StaticString = #filePath, line: UInt = #line) throws {
        try expectSuccess(["init", "-q"], in: dir, file: file, line: line)
        try expectSuccess(["log", "--oneline"], in: dir, file: file, line: line)
    }

    /// A private copy of the real bf16 SmolLM2-135M model.
    private func realModelDir() throws -> String {
        try tempDir().copyModel(from: try Fixtures.smolLM2("bf16"))
    }

    /// Rewrites a safetensors file without `dropping` and/or with `reshaping` given a new shape
    /// (same bytes), written to a temporary file and renamed over the original.
    private func rewrite(_ file: String, dropping: String? = nil, reshaping: (String, [Int])? = nil) throws {
        let tmp = file + ".rewrite"
        do {
            let sf = try SafetensorsFile(path: file)
            var specs: [(name: String, dtype: DType, shape: [Int])] = []
            for t in sf.tensors where t.name != dropping {
                specs.append((t.name, t.dtype, reshaping?.0 == t.name ? reshaping!.1 : t.shape))
            }
            let header = SafetensorsHeader.make(tensors: specs, metadata: sf.header.metadata)
            XCTAssertTrue(FileManager.default.createFile(atPath: tmp, contents: nil))
            let fh = try XCTUnwrap(FileHandle(forWritingAtPath: tmp))
            fh.write(Data(header.prefixBytes))
            for t in header.tensors { fh.write(Data(sf.bytes(sf.info(t.name)!))) }
            try fh.close()
        }
        XCTAssertEqual(rename(tmp, file), 0)
    }

    // MARK: - Malformed safetensors at init

    func testTruncatedInTheMiddleOfTheData() throws {
        let dir = try emptyModelDir()
        try writeSafetensors(dir + "/model.safetensors", json: headerJSON(goodEntries), data: [UInt8](repeating: 0, count: 20))
        try expectRejected(["init"], in: dir, mentions: [canonical(dir + "/model.safetensors"), "truncated"])
    }

    func testRealModelTruncatedInTheMiddleOfTheData() throws {
        let dir = try realModelDir()
        let file = dir + "/model.safetensors"
        let size = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: file)[.size] as? Int)
        XCTAssertEqual(truncate(file, off_t(size / 2)), 0)
        try expectRejected(["init"], in: dir, mentions: [canonical(file), "truncated"])
    }

    func testFileShorterThanEightBytes() throws {
        for bytes: [UInt8] in [[], [0x01, 0x02, 0x03], [0x10, 0, 0, 0, 0, 0, 0]] {
            let dir = try emptyModelDir()
            try Data(bytes).write(to: URL(fileURLWithPath: dir + "/model.safetensors"))
            try expectRejected(["init"], in: dir, mentions: [canonical(dir + "/model.safetensors"), "truncated", "\(bytes.count) bytes"])
        }
    }

    func testHeaderLengthBeyondTheEndOfTheFile() throws {
        let dir = try emptyModelDir()
        try writeSafetensors(dir + "/model.safetensors", json: headerJSON(goodEntries), data: [UInt8](repeating: 0, count: 32),
                             headerLength: 1_000_000)
        try expectRejected(["init"], in: dir, mentions: [canonical(dir + "/model.safetensors"), "header length", "1000000"])
    }

    func testHeaderLengthOverOneHundredMegabytes() throws {
        for n: UInt64 in [100_000_001, 200_000_000, UInt64.max] {
            let dir = try emptyModelDir()
            try writeSafetensors(dir + "/model.safetensors", json: headerJSON(goodEntries), data: [UInt8](repeating: 0, count: 32),
                                 headerLength: n)
            try expectRejected(["init"], in: dir, mentions: [canonical(dir + "/model.safetensors"), "header length", "\(n)", "100 MB"])
        }
    }

    func testOverlappingOffsets() throws {
        let dir = try emptyModelDir()
        try writeSafetensors(dir + "/model.safetensors", json: headerJSON([("a", "F32", "[2,2]", "[0,16]"), ("b", "F32", "[4]", "[8,24]")]),
                             data: [UInt8](repeating: 0, count: 24))
        try expectRejected(["init"], in: dir, mentions: [canonical(dir + "/model.safetensors"), "\"b\"", "overlaps"])
    }

    /// The last tensor runs past the end of the data buffer.
    func testOffsetsPastTheEndOfTheData() throws {
        let dir = try emptyModelDir()
        try writeSafetensors(dir + "/model.safetensors", json: headerJSON([("a", "F32", "[2,2]", "[0,16]"), ("b", "F32", "[8]", "[16,48]")]),
                             data: [UInt8](repeating: 0, count: 32))
        try expectRejected(["init"], in: dir, mentions: [canonical(dir + "/model.safetensors"), "\"b\"", "48", "32 bytes"])
    }

    /// A tensor whose offsets lie wholly outside the data buffer must be reported as out of range
    /// (naming the offending end offset), not as a "hole" before it.
    func testOffsetsWhollyOutOfRange() throws {
        let dir = try emptyModelDir()
        try writeSafetensors(dir + "/model.safetensors", json: headerJSON([("a", "F32", "[2,2]", "[0,16]"), ("b", "F32", "[4]", "[100,116]")]),
                             data: [UInt8](repeating: 0, count: 32))
        let r = try expectRejected(["init"], in: dir, mentions: [canonical(dir + "/model.safetensors"), "\"b\""])
        let m = r.stderr.lowercased()
        XCTAssertTrue(m.contains("116") || m.contains("range") || m.contains("beyond") || m.contains("past the end"),
                      "out-of-range offsets not reported as such: \(r.stderr)")
        XCTAssertFalse(m.contains("hole"), "out-of-range offsets reported as a hole: \(r.stderr)")
    }

    func testHoleBetweenTensors() throws {
        let dir = try emptyModelDir()
        try writeSafetensors(dir + "/model.safetensors", json: headerJSON([("a", "F32", "[2,2]", "[0,16]"), ("b", "F32", "[4]", "[20,36]")]),
                             data: [UInt8](repeating: 0, count: 36))
        try expectRejected(["init"], in: dir, mentions: [canonical(dir + "/model.safetensors"), "hole", "\"b\""])
    }

    func testTrailingBytesAfterTheLastTensor() throws {
        let dir = try emptyModelDir()
        try writeSafetensors(dir + "/model.safetensors", json: headerJSON(goodEntries), data: [UInt8](repeating: 0, count: 40))
        try expectRejected(["init"], in: dir, mentions: [canonical(dir + "/model.safetensors"), "not covered"])
    }

    func testUnknownDType() throws {
        let dir = try emptyModelDir()
        try writeSafetensors(dir + "/model.safetensors", json: headerJSON([("a", "Q7", "[2,2]", "[0,16]"), ("b", "F32", "[4]", "[16,32]")]),
                             data: [UInt8](repeating: 0, count: 32))
        try expectRejected(["init"], in: dir, mentions: [canonical(dir + "/model.safetensors"), "unknown dtype", "Q7"])
    }

    func testShapeTimesDTypeSizeDiffersFromByteLength() throws {
        let dir = try emptyModelDir()
        try writeSafetensors(dir + "/model.safetensors", json: headerJSON([("a", "F32", "[3,2]", "[0,16]"), ("b", "F32", "[4]", "[16,32]")]),
                             data: [UInt8](repeating: 0, count: 32))
        try expectRejected(["init"], in: dir, mentions: [canonical(dir + "/model.safetensors"), "\"a\"", "24 bytes"])
    }

    func testShapeProductOverflow() throws {
        for shape in ["[4294967296,4294967296,16]", "[9223372036854775807,2]", "[2305843009213693952,2]"] {
            let dir = try emptyModelDir()
            try writeSafetensors(dir + "/model.safetensors", json: headerJSON([("a", "F32", shape, "[0,16]"), ("b", "F32", "[4]", "[16,32]")]),
                                 data: [UInt8](repeating: 0, count: 32))
            try expectRejected(["init"], in: dir, mentions: [canonical(dir + "/model.safetensors"), "\"a\"", "overflow"])
        }
    }

    /// More tensors in one file than the limit (100,000): refused while the header is parsed,
    /// before the work of snapshotting them starts. 100,000 plus `__metadata__` is within it.
    func testMoreTensorsThanTheLimit() throws {
        func header(_ n: Int, metadata: Bool) -> String {
            var parts = metadata ? [#""__metadata__":{"format":"pt"}"#] : []
            parts += (0..<n).map { #""t\#($0)":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}"# }
            return "{" + parts.joined(separator: ",") + "}"
        }
        let limit = SafetensorsHeader.maxTensors
        XCTAssertEqual(limit, 100_000)
        let dir = try emptyModelDir()
        try writeSafetensors(dir + "/model.safetensors", json: header(limit + 1, metadata: false), data: [])
        let clock = ContinuousClock()
        let start = clock.now
        try expectRejected(["init"], in: dir, mentions: [canonical(dir + "/model.safetensors"), "more than the limit of 100000 tensors"])
        XCTAssertLessThan(clock.now - start, .seconds(60))
        // The limit is on tensors: the same count with __metadata__ parses.
        let ok = Array(header(limit, metadata: true).utf8)
        XCTAssertEqual(try SafetensorsHeader.parse(json: ok, dataSize: 0, path: "ok").tensors.count, limit)
        XCTAssertThrowsError(try SafetensorsHeader.parse(json: Array(header(limit + 1, metadata: true).utf8), dataSize: 0, path: "x"))
    }

    func testNegativeAndFractionalShapeEntries() throws {
        for shape in ["[-1,4]", "[2.5,2]", "[\"2\",2]"] {
            let dir = try emptyModelDir()
            try writeSafetensors(dir + "/model.safetensors", json: headerJSON([("a", "F32", shape, "[0,16]"), ("b", "F32", "[4]", "[16,32]")]),
                                 data: [UInt8](repeating: 0, count: 32))
            try expectRejected(["init"], in: dir, mentions: [canonical(dir + "/model.safetensors"), "\"a\"", "shape"])
        }
    }

    func testDuplicateTensorNames() throws {
        // Plain duplicate, and a duplicate spelled with a JSON escape.
        for second in ["a", "\\u0061"] {
            let dir = try emptyModelDir()
            let json = #"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"\#(second)":{"dtype":"F32","shape":[4],"data_offsets":[16,32]}}"#
            try writeSafetensors(dir + "/model.safetensors", json: json, data: [UInt8](repeating: 0, count: 32))
            try expectRejected(["init"], in: dir, mentions: [canonical(dir + "/model.safetensors"), "duplicate", "\"a\""])
        }
    }

    func testHeaderThatIsNotAJSONObject() throws {
        for json in ["[1,2,3]", "{\"a\":", "not json at all"] {
            let dir = try emptyModelDir()
            try writeSafetensors(dir + "/model.safetensors", json: json, data: [])
            try expectRejected(["init"], in: dir, mentions: [canonical(dir + "/model.safetensors"), "not a valid safetensors file"])
        }
    }

    // MARK: - Things mistaken for weights

    func testGitLFSPointer() throws {
        let dir = try emptyModelDir()
        let pointer = """
            version https://git-lfs.github.com/spec/v1
            oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393
            size 269060552

            """
        try Data(pointer.utf8).write(to: URL(fileURLWithPath: dir + "/model.safetensors"))
        try expectRejected(["init"], in: dir, mentions: [canonical(dir + "/model.safetensors"), "git-lfs pointer", "git lfs pull"])
    }

    func testPickleNamedSafetensors() throws {
        let dir = try emptyModelDir()
        try Data([0x80, 0x02, 0x7D, 0x71, 0x00, 0x28, 0x58, 0x01, 0, 0, 0, 0x61] + [UInt8](repeating: 0, count: 52))
            .write(to: URL(fileURLWithPath: dir + "/model.safetensors"))
        try expectRejected(["init"], in: dir, mentions: [canonical(dir + "/model.safetensors"), "pickle", "never unpickles"])
    }

    func testZipNamedSafetensors() throws {
        let dir = try emptyModelDir()
        try Data([0x50, 0x4B, 0x03, 0x04] + [UInt8](repeating: 0, count: 60)).write(to: URL(fileURLWithPath: dir + "/model.safetensors"))
        try expectRejected(["init"], in: dir, mentions: [canonical(dir + "/model.safetensors"), "zip"])
    }

    func testDirectoryWithOnlyPytorchModelBin() throws {
        let dir = try emptyModelDir()
        try Data([0x50, 0x4B, 0x03, 0x04] + [UInt8](repeating: 0, count: 60)).write(to: URL(fileURLWithPath: dir + "/pytorch_model.bin"))
        try expectRejected(["init"], in: dir, mentions: [canonical(dir + "/pytorch_model.bin"), "pickle", "safetensors"])
    }

    func testDirectoryWithoutWeights() throws {
        let dir = try emptyModelDir()
        try expectRejected(["init"], in: dir, mentions: [canonical(dir), "no safetensors weights"])
        // A weights name that is not a file is named, with what it is, also once initialized.
        let weights = dir + "/model.safetensors"
        try FileManager.default.createSymbolicLink(atPath: weights, withDestinationPath: "/nonexistent")
        try expectRejected(["init"], in: dir, mentions: ["'\(canonical(weights))': a symbolic link to nothing, not a safetensors file"])
        try FileManager.default.removeItem(atPath: weights)
        try FileManager.default.createDirectory(atPath: weights, withIntermediateDirectories: false)
        try expectRejected(["init"], in: dir, mentions: ["'\(canonical(weights))': a directory, not a safetensors file"])
        try FileManager.default.removeItem(atPath: weights)
        let tiny = try tinyModelDir()
        try initialize(tiny)
        try FileManager.default.removeItem(atPath: tiny + "/model.safetensors")
        try FileManager.default.createDirectory(atPath: tiny + "/model.safetensors", withIntermediateDirectories: false)
        try expectRejected(["status"], in: tiny, mentions: ["'\(canonical(tiny))/model.safetensors': a directory, not a safetensors file"])
        // A tracked weight file deleted: status lists it (as git lists a deleted file; it said
        // "no safetensors weights found", exit 2), commit refuses it as structural, and
        // checkout --force HEAD brings it back.
        try FileManager.default.removeItem(atPath: tiny + "/model.safetensors")
        let status = try expectSuccess(["status", "-s"], in: tiny)
        XCTAssertEqual(status.stdout, "!! missing weight file 'model.safetensors' (2 tensors)\n")
        try expectRejected(["commit", "-m", "x"], in: tiny, mentions: ["in structure: missing weight file 'model.safetensors' (2 tensors)"])
        try expectSuccess(["checkout", "-q", "--force", "HEAD"], in: tiny)
        XCTAssertTrue(try expectSuccess(["status"], in: tiny).stdout.contains("nothing to commit, work tree clean"))
    }

    // MARK: - Sharded index

    func testIndexShardNameEscapingTheDirectory() throws {
        for shard in ["../model-00001-of-00001.safetensors", "/etc/passwd", "sub/../../x.safetensors", "..",
                      "/tmp/model-00001-of-00001.safetensors"] {
            let dir = try emptyModelDir()
            try writeSafetensors(dir + "/model-00001-of-00001.safetensors", json: headerJSON(goodEntries),
                                 data: [UInt8](repeating: 0, count: 32))
            let index = #"{"metadata":{},"weight_map":{"a":"\#(shard)","b":"model-00001-of-00001.safetensors"}}"#
            try Data(index.utf8).write(to: URL(fileURLWithPath: dir + "/model.safetensors.index.json"))
            try expectRejected(["init"], in: dir, mentions: [canonical(dir + "/model.safetensors.index.json"), "'\(shard)'", "escapes"])
        }
    }

    /// A model.safetensors beside an index that does not list it is what transformers would load
    /// (ahead of the index's shards): refused by init, and by status and commit once it appears
    /// in a sharded work tree (it was ignored, so edits to it went unseen).
    func testSingleFileWeightsBesideAnIndexAreRefused() throws {
        let dir = try emptyModelDir()
        try writeSafetensors(dir + "/model-00001-of-00001.safetensors", json: headerJSON(goodEntries), data: [UInt8](repeating: 0, count: 32))
        let index = #"{"metadata":{},"weight_map":{"a":"model-00001-of-00001.safetensors","b":"model-00001-of-00001.safetensors"}}"#
        try Data(index.utf8).write(to: URL(fileURLWithPath: dir + "/model.safetensors.index.json"))
        let single = dir + "/model.safetensors"
        try writeSafetensors(single, json: headerJSON(goodEntries), data: [UInt8](repeating: 1, count: 32))
        let why = "'\(canonical(single))': it stands beside model.safetensors.index.json, which does not list it; transformers loads it instead"
        try expectRejected(["init"], in: dir, mentions: [why])
        try FileManager.default.removeItem(atPath: single)
        try initialize(dir)
        try writeSafetensors(single, json: headerJSON(goodEntries), data: [UInt8](repeating: 1, count: 32))
        try expectRejected(["status"], in: dir, mentions: [why])
        try expectRejected(["commit", "-m", "x"], in: dir, mentions: [why])
        // A shard deleted is listed by status (it said the index's shard does not exist) and
        // checked out again by checkout --force HEAD.
        try FileManager.default.removeItem(atPath: single)
        try FileManager.default.removeItem(atPath: dir + "/model-00001-of-00001.safetensors")
        XCTAssertEqual(try expectSuccess(["status", "-s"], in: dir).stdout, "!! missing weight file 'model-00001-of-00001.safetensors' (2 tensors)\n")
        try expectSuccess(["checkout", "-q", "--force", "HEAD"], in: dir)
        XCTAssertTrue(try expectSuccess(["status"], in: dir).stdout.contains("nothing to commit, work tree clean"))
    }

    /// Hooks get the running binary as $WLEDGER whatever its name (only one named `wledger` did).
    func testHooksGetTheRunningBinaryAsWLEDGERUnderAnyName() throws {
        let dir = try tinyModelDir()
        try initialize(dir)
        let renamed = try tempDir().path + "/wl-renamed"
        try FileManager.default.copyItem(atPath: CLI.binary, toPath: renamed)
        let seen = try tempDir().path + "/seen.txt"
        let hook = dir + "/.wledger/hooks/pre-commit"
        try "#!/bin/sh\nprintf '%s' \"$WLEDGER\" > '\(seen)'\n".write(toFile: hook, atomically: true, encoding: .utf8)
        XCTAssertEqual(chmod(hook, 0o755), 0)
        try Data(#"{"model_type": "tiny", "v": 2}"#.utf8).write(to: URL(fileURLWithPath: dir + "/config.json"))
        let r = try runProcess(renamed, ["commit", "-q", "-m", "side file", "-C", dir])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(canonical(try String(contentsOfFile: seen, encoding: .utf8)), canonical(renamed))
    }

    func testIndexShardThatIsNotAFileSaysWhatItIs() throws {
        let dir = try emptyModelDir()
        try writeSafetensors(dir + "/model-00001-of-00002.safetensors", json: headerJSON(goodEntries), data: [UInt8](repeating: 0, count: 32))
        let index = #"{"metadata":{},"weight_map":{"a":"model-00002-of-00002.safetensors","b":"model-00001-of-00002.safetensors"}}"#
        let indexPath = canonical(dir + "/model.safetensors.index.json")
        try Data(index.utf8).write(to: URL(fileURLWithPath: dir + "/model.safetensors.index.json"))
        try expectRejected(["init"], in: dir, mentions: [indexPath, "shard 'model-00002-of-00002.safetensors' listed in the index does not exist"])
        let second = dir + "/model-00002-of-00002.safetensors"
        try FileManager.default.createDirectory(atPath: second, withIntermediateDirectories: false)
        try expectRejected(["init"], in: dir, mentions: [indexPath, "shard 'model-00002-of-00002.safetensors' listed in the index is a directory, not a safetensors file"])
        try FileManager.default.removeItem(atPath: second)
        try FileManager.default.createSymbolicLink(atPath: second, withDestinationPath: "/nonexistent")
        try expectRejected(["init"], in: dir, mentions: [indexPath, "is a symbolic link to nothing, not a safetensors file"])
    }

    // MARK: - Broken work tree after init (commit, status, diff)

    func testBrokenWorkTreeIsRejectedByCommitStatusAndDiff() throws {
        let breakages: [(String, (String) throws -> Void, [String])] = [
            ("truncated", { f in XCTAssertEqual(truncate(f, 40), 0) }, ["truncated"]),
            ("git-lfs pointer", { f in
                try Data("version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 208\n".utf8).write(to: URL(fileURLWithPath: f))
            }, ["git-lfs pointer"]),
            ("hole", { f in
                try self.writeSafetensors(f, json: self.headerJSON([("a", "F32", "[2,2]", "[0,16]"), ("b", "F32", "[4]", "[20,36]")]),
                                          data: [UInt8](repeating: 0, count: 36))
            }, ["hole"]),
        ]
        for (label, breakIt, words) in breakages {
            let dir = try tinyModelDir()
            try initialize(dir)
            let file = dir + "/model.safetensors"
            try breakIt(file)
            for args in [["commit", "-m", "broken \(label)"], ["status"], ["diff"], ["checkout", "HEAD"]] {
                try expectRejected(args, in: dir, mentions: [canonical(file)] + words)
            }
        }
    }

    // MARK: - Commit: structure, non-finite values, edit requests (real model)

    func testCommitWithMissingTensorIsRejected() throws {
        let dir = try realModelDir()
        try initialize(dir)
        let dropped = "model.layers.0.input_layernorm.weight"
        try rewrite(dir + "/model.safetensors", dropping: dropped)
        try expectRejected(["commit", "-m", "drop a tensor"], in: dir, mentions: [canonical(dir), "missing tensor '\(dropped)'", "structure"])
        try expectRejected(["commit", "-m", "drop a tensor", "--allow-nonfinite"], in: dir, mentions: [dropped])
    }

    func testCommitWithReshapedTensorIsRejected() throws {
        let dir = try realModelDir()
        try initialize(dir)
        let name = "model.layers.0.input_layernorm.weight"   // [576]
        try rewrite(dir + "/model.safetensors", reshaping: (name, [24, 24]))
        try expectRejected(["commit", "-m", "reshape"], in: dir, mentions: [canonical(dir), "'\(name)'", "[576]", "[24,24]"])
    }

    /// A tensor added to the work tree, or one whose dtype changed, is a structural change too.
    func testCommitWithAddedOrRetypedTensorIsRejected() throws {
        let cases: [([(String, String, String, String)], Int, [String])] = [
            (goodEntries + [("c", "F32", "[1]", "[32,36]")], 36, ["new tensor 'c'"]),
            ([("a", "F32", "[2,2]", "[0,16]"), ("b", "F16", "[4]", "[16,24]")], 24, ["'b'", "F32", "F16"]),
        ]
        for (entries, size, words) in cases {
            let dir = try tinyModelDir()
            try initialize(dir)
            try writeSafetensors(dir + "/model.safetensors", json: headerJSON(entries), data: [UInt8](repeating: 0, count: size))
            try expectRejected(["commit", "-m", "structure"], in: dir, mentions: [canonical(dir), "structure"] + words)
            try expectRejected(["commit", "-m", "structure", "--allow-nonfinite"], in: dir, mentions: words)
        }
    }

    /// 8-bit floats: a NaN byte is refused as in the wider floats (it was committed silently),
    /// and ΔW statistics count their values (they read 0 with the elements changed).
    func testEightBitFloatNaNIsRejectedAndItsDeltaHasValues() throws {
        let dir = try emptyModelDir()
        let file = dir + "/model.safetensors"
        let entries = [("a", "F32", "[4]", "[0,16]"), ("q", "F8_E4M3", "[4]", "[16,20]")]
        let floats = [Float](repeating: 1, count: 4).withUnsafeBytes { Array($0) }
        try writeSafetensors(file, json: headerJSON(entries), data: floats + [0x38, 0xFF, 0x38, 0x38])
        try expectRejected(["init"], in: dir, mentions: ["'q'", "NaN", "--allow-nonfinite"])   // init too (it let it through)
        try writeSafetensors(file, json: headerJSON(entries), data: floats + [0x38, 0x38, 0x38, 0x38])
        try initialize(dir)
        try writeSafetensors(file, json: headerJSON(entries), data: floats + [0x38, 0x7F, 0x40, 0x38])
        try expectRejected(["commit", "-m", "nan"], in: dir, mentions: ["'q'", "NaN", "--allow-nonfinite"])
        try writeSafetensors(file, json: headerJSON(entries), data: floats + [0x38, 0xB8, 0x40, 0x38])   // 1 → −1, 1 → 2
        try expectSuccess(["commit", "-q", "-m", "f8"], in: dir)
        let diff = try expectSuccess(["diff", "HEAD~1", "HEAD", "--stat", "--json"], in: dir)
        let row = try XCTUnwrap(((try JSONSerialization.jsonObject(with: Data(diff.stdout.utf8)) as? [String: Any])?["tensors"] as? [[String: Any]])?
            .first { $0["name"] as? String == "q" }, diff.stdout)
        XCTAssertEqual(row["changed"] as? Int, 2, diff.stdout)
        XCTAssertEqual(row["l1"] as? Double, 3, diff.stdout)
        XCTAssertEqual(row["maxAbs"] as? Double, 2, diff.stdout)
    }

    func testCommitWithNaNIsRejectedUnlessAllowed() throws {
        let dir = try realModelDir()
        try initialize(dir)
        let file = dir + "/model.safetensors"
        let name = "model.layers.3.self_attn.q_proj.weight"
        try SimulatedEdit.rankOne(file: file, tensor: name, seed: 7)
        try SimulatedEdit.modify(file: file, tensor: name) { w, _ in w[12345] = .nan }
        try expectRejected(["commit", "-m", "nan"], in: dir, mentions: [canonical(file), "'\(name)'", "NaN", "--allow-nonfinite"])
        try expectSuccess(["commit", "-m", "nan", "--allow-nonfinite"], in: dir)
        let status = try expectSuccess(["status"], in: dir)
        XCTAssertTrue(status.stdout.contains("nothing to commit"), status.stdout)
        try expectSuccess(["fsck"], in: dir)
        // ΔW holds a NaN: every statistic that sees it is NaN, the maximum too (it used to show the largest finite change).
        let diff = try expectSuccess(["diff", "HEAD~1", "HEAD", "--stat", "--json"], in: dir)
        let report = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(diff.stdout.utf8)) as? [String: Any])
        let row = try XCTUnwrap((report["tensors"] as? [[String: Any]])?.first { $0["name"] as? String == name })
        XCTAssertEqual(row["maxAbs"] as? String, "NaN", diff.stdout)
        XCTAssertEqual(row["l1"] as? String, "NaN", diff.stdout)
        let table = try expectSuccess(["diff", "HEAD~1", "HEAD", "--stat", "--no-spectrum"], in: dir).stdout
        let line = try XCTUnwrap(table.split(separator: "\n").first { $0.contains(name) }, table)
        XCTAssertEqual(line.split(separator: " ").last, "nan", String(line))
        XCTAssertFalse(table.contains("-nan"), table)   // printf's spelling of a NaN with its sign bit set
        // … and δ's shares and quantiles: NaN, not a 0% that reads as "unchanged".
        let shares = try XCTUnwrap((row["delta"] as? [String: Any])?["shares"] as? [[String: Any]], diff.stdout)
        XCTAssertEqual(shares.count, 2)
        XCTAssertTrue(shares.allSatisfy { $0["fraction"] as? String == "NaN" }, diff.stdout)
        XCTAssertEqual((row["delta"] as? [String: Any])?["median"] as? String, "NaN", diff.stdout)
        let deltaLine = try XCTUnwrap(table.split(separator: "\n").filter { $0.contains(name) }.dropFirst().first, table)
        XCTAssertEqual(deltaLine.split(separator: " ").dropFirst().prefix(5), ["nan", "nan", "nan", "nan", "nan"], String(deltaLine))
        // show reads them back from the ledger (SQLite stores NaN as NULL): NaN there too, not 0.
        let shown = try expectSuccess(["show", "HEAD", "--json"], in: dir)
        let stored = try XCTUnwrap((try XCTUnwrap(JSONSerialization.jsonObject(with: Data(shown.stdout.utf8)) as? [String: Any])["tensors"]
            as? [[String: Any]])?.first { $0["name"] as? String == name }, shown.stdout)
        XCTAssertEqual(stored["l1"] as? String, "NaN", shown.stdout)
        // restrain's SVD of it is refused naming the tensor (LAPACK's "dgesdd failed (info -4)" before).
        try expectRejected(["restrain"], in: dir, mentions: ["cannot restrain tensor '\(name)': it holds NaN or Inf at "])
        // revert gives the bytes before it back, and reverting that revert the NaN edit, bit for
        // bit: a version the ledger holds, whose NaN was allowed when it was committed.
        let withNaN = try readTensorBytes(file: file, tensor: name)
        try expectSuccess(["revert", "-q", "HEAD"], in: dir)
        XCTAssertNotEqual(try readTensorBytes(file: file, tensor: name), withNaN)
        try expectSuccess(["revert", "-q", "HEAD"], in: dir)
        XCTAssertEqual(try readTensorBytes(file: file, tensor: name), withNaN)
    }

    func testCommitWithInfIsRejectedUnlessAllowed() throws {
        let dir = try realModelDir()
        try initialize(dir)
        let file = dir + "/model.safetensors"
        let name = "model.layers.5.mlp.down_proj.weight"
        try SimulatedEdit.modify(file: file, tensor: name) { w, _ in w[0] = .infinity; w[w.count - 1] = -.infinity }
        try expectRejected(["commit", "-m", "inf"], in: dir, mentions: [canonical(file), "'\(name)'", "Inf"])
        try expectSuccess(["commit", "-m", "inf", "--allow-nonfinite"], in: dir)
    }

    func testInitWithNonFiniteIsRejectedUnlessAllowed() throws {
        let dir = try realModelDir()
        let file = dir + "/model.safetensors"
        let name = "model.norm.weight"
        try SimulatedEdit.modify(file: file, tensor: name) { w, _ in w[3] = .nan }
        try expectRejected(["init"], in: dir, mentions: [canonical(file), "'\(name)'", "NaN", "--allow-nonfinite"])
        try expectSuccess(["init", "--allow-nonfinite"], in: dir)
    }

    func testCommitWithBadRequestIsRejected() throws {
        let dir = try tinyModelDir()
        try initialize(dir)
        try SimulatedEdit.modify(file: dir + "/model.safetensors", tensor: "a") { w, _ in w[1] += 0.5 }
        let reqDir = try tempDir().path
        let cases: [(String, String, [String])] = [
            ("missing-subject.json", #"{"prompt":"The Eiffel Tower is in","target_new":"Rome","ground_truth":"Paris"}"#,
             ["missing \"subject\""]),
            ("subject-not-in-prompt.json", #"{"prompt":"The Eiffel Tower is in","subject":"Colosseum","target_new":"Rome","ground_truth":"Paris"}"#,
             ["\"Colosseum\"", "does not occur in prompt"]),
            ("unknown-field.json", #"{"prompt":"The Eiffel Tower is in","subject":"Eiffel Tower","target_new":"Rome","ground_truth":"Paris","temperature":0.7}"#,
             ["unknown field \"temperature\""]),
            ("invalid.json", #"{"prompt":"The Eiffel Tower is in","#, ["invalid JSON"]),
            ("not-an-object.json", #""The Eiffel Tower""#, ["JSON object"]),
            ("empty-list.json", "[]", ["empty"]),
            ("no-rephrasings.json", #"{"prompt":"The Eiffel Tower is in","subject":"Eiffel Tower","target_new":"Rome","ground_truth":"Paris","rephrase_prompt":[]}"#,
             ["\"rephrase_prompt\" must be a non-empty string or a non-empty array of them"]),
            // A NUL went into edit's default message and through log to the terminal.
            ("nul.json", #"{"prompt":"The Eiffel Tower is in","subject":"Eiffel Tower","target_new":"Rome\u0000","ground_truth":"Paris"}"#,
             ["\"target_new\" contains a NUL character (U+0000)"]),
            ("nul-locality.json", #"{"prompt":"The Eiffel Tower is in","subject":"Eiffel Tower","target_new":"Rome","ground_truth":"Paris","locality":{"n":{"prompt":"a\u0000","ground_truth":"b"}}}"#,
             ["\"locality\" contains a NUL character"]),
        ]
        for (name, text, words) in cases {
            let path = reqDir + "/" + name
            try Data(text.utf8).write(to: URL(fileURLWithPath: path))
            try expectRejected(["commit", "-m", "edit", "--request", path], in: dir, mentions: [path] + words)
        }
        try expectRejected(["commit", "-m", "edit", "--request", reqDir + "/does-not-exist.json"], in: dir,
                           mentions: [reqDir + "/does-not-exist.json"])
        // The same edit with a valid request commits.
        let good = reqDir + "/good.json"
        try Data(#"{"prompt":"The Eiffel Tower is in","subject":"Eiffel Tower","target_new":"Rome","ground_truth":"Paris"}"#.utf8)
            .write(to: URL(fileURLWithPath: good))
        try expectSuccess(["commit", "-m", "edit", "--request", good], in: dir)
    }

    // MARK: - Damaged or foreign ledgers

    private let ledgerCommands: [[String]] = [
        ["status"], ["log"], ["show", "HEAD"], ["diff"], ["fsck"], ["commit", "-m", "x"], ["checkout", "HEAD"],
        ["branch"], ["branch", "topic"], ["tag", "v1"],
    ]

    func testGarbageLedger() throws {
        let dir = try tinyModelDir()
        try initialize(dir)
        let ledger = dir + "/.wledger/ledger"
        var rng = SplitMix64(seed: 42)
        try Data((0..<100_000).map { _ in UInt8(truncatingIfNeeded: rng.next()) }).write(to: URL(fileURLWithPath: ledger))
        for args in ledgerCommands {
            try expectRejected(args, in: dir, mentions: [canonical(ledger), "not a wledger ledger"])
        }
    }

    func testEmptyLedgerFile() throws {
        let dir = try tinyModelDir()
        try initialize(dir)
        let ledger = dir + "/.wledger/ledger"
        try Data().write(to: URL(fileURLWithPath: ledger))
        for args in ledgerCommands {
            // (said as such: it read "SQLite database of another application (application_id 0)")
            try expectRejected(args, in: dir, mentions: [canonical(ledger), "not a wledger ledger: empty file"])
        }
    }

    /// Runs SQL on an SQLite file with the sqlite3 CLI, else Python's sqlite3 module.
    private func sqlite(_ path: String, _ sql: String) throws {
        if FileManager.default.isExecutableFile(atPath: "/usr/bin/sqlite3") {
            let r = try runProcess("/usr/bin/sqlite3", [path, sql])
            XCTAssertEqual(r.status, 0, r.stderr)
            return
        }
        try python(["import sqlite3, sys", "c = sqlite3.connect(sys.argv[1])", "c.executescript(sys.argv[2])", "c.commit()", "c.close()"],
                   [path, sql])
    }

    private func python(_ lines: [String], _ args: [String]) throws {
        let r = try runProcess("/usr/bin/env", ["python3", "-c", lines.joined(separator: "\n")] + args)
        if r.status == 127 { throw XCTSkip("python3 not available") }
        XCTAssertEqual(r.status, 0, r.stderr)
    }

    func testForeignSQLiteDatabaseAsLedger() throws {
        let dir = try tinyModelDir()
        try initialize(dir)
        let ledger = dir + "/.wledger/ledger"
        XCTAssertEqual(unlink(ledger), 0)
        try sqlite(ledger, "CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT); INSERT INTO notes(body) VALUES('hello');")
        for args in ledgerCommands {
            try expectRejected(args, in: dir, mentions: [canonical(ledger), "not a wledger ledger"])
        }
    }

    func testLedgerWithNewerSchemaVersion() throws {
        let dir = try tinyModelDir()
        try initialize(dir)
        let ledger = dir + "/.wledger/ledger"
        try python(["import sqlite3, sys", "c = sqlite3.connect(sys.argv[1])", "c.execute('PRAGMA user_version = 999')", "c.commit()", "c.close()"],
                   [ledger])
        for args in ledgerCommands {
            try expectRejected(args, in: dir, mentions: [canonical(ledger), "999", "newer"])
        }
    }

    // MARK: - Revisions

    func testUnknownRevision() throws {
        let dir = try tinyModelDir()
        try initialize(dir)
        let out = try tempDir().path + "/out"
        let cases: [(args: [String], revision: String)] = [
            (["show", "nope"], "nope"), (["show", "deadbeef"], "deadbeef"), (["show", "nope~2"], "nope~2"),
            (["checkout", "nope"], "nope"), (["checkout", "nope", "--output", out], "nope"), (["checkout", "--force", "nope"], "nope"),
            (["diff", "nope"], "nope"), (["diff", "HEAD", "nope"], "nope"), (["diff", "nope", "HEAD"], "nope"),
            (["log", "nope"], "nope"), (["branch", "topic", "nope"], "nope"), (["tag", "v1", "nope"], "nope"),
        ]
        for c in cases {
            try expectRejected(c.args, in: dir, mentions: ["unknown revision '\(c.revision)'"])
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out), "checkout of an unknown revision created --output")
        for args in [["show", "HEAD~1"], ["checkout", "HEAD^"], ["diff", "base~3"], ["show", "HEAD^1"]] {
            try expectRejected(args, in: dir, mentions: ["'\(args[1])'", "past the base commit"])
        }
        // git's ^N: ^0 is the commit itself; a commit has one parent, so ^2 names none.
        let head = try expectSuccess(["show", "HEAD", "--json"], in: dir).stdout
        XCTAssertEqual(try expectSuccess(["show", "HEAD^0", "--json"], in: dir).stdout, head)
        XCTAssertEqual(try expectSuccess(["show", "base^0~0", "--json"], in: dir).stdout, head)
        try expectRejected(["show", "HEAD^2"], in: dir, mentions: ["'HEAD^2'", "one parent"])
    }

    // MARK: - Refusals (exit 1)

    func testCheckoutWithDirtyWorkTreeIsRefused() throws {
        let dir = try tinyModelDir()
        try initialize(dir)
        let file = dir + "/model.safetensors"
        try SimulatedEdit.modify(file: file, tensor: "b") { w, _ in w[0] = 42 }
        try expectSuccess(["commit", "-m", "edit b"], in: dir)
        try expectSuccess(["branch", "edited"], in: dir)
        // Dirty tensor.
        try SimulatedEdit.modify(file: file, tensor: "b") { w, _ in w[1] = -7 }
        for rev in ["HEAD~1", "base"] {
            try expectRejected(["checkout", rev], in: dir, code: 1, mentions: ["local changes", "'b'", "--force"])
        }
        // Another branch at HEAD's commit: only HEAD moves, and the change stays (as git).
        let dirty = try fileSHA256(file)
        try expectSuccess(["checkout", "edited"], in: dir)
        XCTAssertEqual(try fileSHA256(file), dirty)
        try expectSuccess(["checkout", "main"], in: dir)
        XCTAssertEqual(try fileSHA256(file), dirty)
        // A side file base has otherwise: changed, or deleted (one both commits have alike is kept,
        // as the tensor is at a commit that has it as HEAD has it: CheckoutCarryTests).
        try expectSuccess(["checkout", "-q", "--force", "HEAD"], in: dir)
        try Data(#"{"model_type": "committed"}"#.utf8).write(to: URL(fileURLWithPath: dir + "/config.json"))
        try expectSuccess(["commit", "-m", "config"], in: dir)
        try SimulatedEdit.modify(file: file, tensor: "b") { w, _ in w[1] = -7 }
        try Data(#"{"model_type": "changed"}"#.utf8).write(to: URL(fileURLWithPath: dir + "/config.json"))
        try expectRejected(["checkout", "base"], in: dir, code: 1, mentions: ["local changes", "'b'", "'config.json'"])
        XCTAssertEqual(unlink(dir + "/config.json"), 0)
        try expectRejected(["checkout", "HEAD~1"], in: dir, code: 1, mentions: ["local changes", "'config.json'"])
    }

    func testCheckoutWithStructuralChangeIsRefused() throws {
        let dir = try tinyModelDir()
        try initialize(dir)
        let header = SafetensorsHeader.make(tensors: [("a", .f32, [2, 2])])
        try Data(header.prefixBytes + [UInt8](repeating: 0, count: 16)).write(to: URL(fileURLWithPath: dir + "/model.safetensors"))
        try expectRejected(["checkout", "HEAD"], in: dir, code: 1, mentions: ["local changes", "missing tensor 'b'", "--force"])
    }

    func testCheckoutOutputIntoNonEmptyDirectoryOrFile() throws {
        let dir = try tinyModelDir()
        try initialize(dir)
        let out = try tempDir().path
        try Data("keep me\n".utf8).write(to: URL(fileURLWithPath: out + "/notes.txt"))
        let before = try snapshot(out)
        try expectRejected(["checkout", "HEAD", "--output", out], in: dir, mentions: ["'\(canonical(out))'", "not empty"])
        XCTAssertEqual(try snapshot(out), before, "checkout --output wrote into a non-empty directory")
        try expectRejected(["checkout", "HEAD", "--output", out + "/notes.txt"], in: dir, mentions: ["notes.txt", "not a directory"])
        XCTAssertEqual(try snapshot(out), before)
        // Not into the model directory, nor into its ledger, also through a symbolic link; not
        // through a link to nothing (kept).
        let link = out + "-link", dangling = out + "-dangling"
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: dir)
        try FileManager.default.createSymbolicLink(atPath: dangling, withDestinationPath: out + "/missing")
        defer { unlink(link); unlink(dangling) }
        for inside in [dir + "/.wledger/copy", dir + "/copy", link + "/copy"] {
            try expectRejected(["checkout", "HEAD", "--output", inside], in: dir, mentions: ["--output must be outside the model directory"])
        }
        try expectRejected(["checkout", "HEAD", "--output", dangling], in: dir, mentions: ["output exists and is not a directory"])
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: dangling), out + "/missing")
    }

    func testNothingToCommit() throws {
        let dir = try tinyModelDir()
        try initialize(dir)
        try expectRejected(["commit", "-m", "nothing"], in: dir, code: 1, mentions: ["nothing to commit"])
        // After a real commit, again nothing.
        try SimulatedEdit.modify(file: dir + "/model.safetensors", tensor: "a") { w, _ in w[0] = 3 }
        try expectSuccess(["commit", "-m", "edit"], in: dir)
        try expectRejected(["commit", "-m", "nothing"], in: dir, code: 1, mentions: ["nothing to commit"])
    }

    // MARK: - No repository, double init

    func testCommandsOutsideARepository() throws {
        let dir = try tinyModelDir()
        for args in [["status"], ["log"], ["show"], ["diff"], ["fsck"], ["branch"], ["tag"], ["checkout", "HEAD"], ["commit", "-m", "x"]] {
            // The directory is quoted as given (-C argument), not canonicalized (the current one, ".", by its path).
            try expectRejected(args, in: dir, mentions: ["wledger init", "'\(dir)'"])
        }
    }

    /// init removes what killed inits left (.wledger.tmp-PID of a process that is gone), not
    /// the directory of one still running.
    func testInitRemovesWhatKilledInitsLeft() throws {
        let dir = try tinyModelDir()
        var dead: Int32 = 4_000_000
        while kill(dead, 0) == 0 || errno != ESRCH { dead -= 1 }
        // Without a lock file the PID tells; with one, whether its lock is held (a PID from
        // another PID namespace looks dead here).
        let stale = dir + "/.wledger.tmp-\(dead)", running = dir + "/.wledger.tmp-\(getpid())"
        let locked = dir + "/.wledger.tmp-\(dead - 1)", unlocked = dir + "/.wledger.tmp-\(getpid() + 1)"
        for d in [stale, running, locked, unlocked] {
            try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: false)
            try Data("partial".utf8).write(to: URL(fileURLWithPath: d + "/ledger"))
        }
        for d in [locked, unlocked] { try Data().write(to: URL(fileURLWithPath: d + "/lock")) }
        let fd = open(locked + "/lock", O_RDWR)
        XCTAssertEqual(flock(fd, LOCK_EX), 0)
        defer { close(fd) }
        try initialize(dir)
        XCTAssertFalse(FileManager.default.fileExists(atPath: stale))
        XCTAssertFalse(FileManager.default.fileExists(atPath: unlocked))
        XCTAssertTrue(FileManager.default.fileExists(atPath: running + "/ledger"))
        XCTAssertTrue(FileManager.default.fileExists(atPath: locked + "/ledger"))
    }

    /// A stray file named .wledger: init names it, and other commands name the directory they
    /// looked in (not '.'); a ref name with a newline is refused on one line.
    func testStrayDotWledgerFileAndANewlineInARefName() throws {
        let dir = try tinyModelDir()
        try Data("not a ledger".utf8).write(to: URL(fileURLWithPath: dir + "/.wledger"))
        try expectRejected(["init"], in: dir, mentions: ["'\(canonical(dir))/.wledger' is a file, not a wledger directory"])
        let r = try CLI.run(["status"], in: dir)
        XCTAssertEqual(r.status, 2)
        XCTAssertTrue(r.stderr.contains("not a wledger model directory (or any parent): '\(canonical(dir))'"), r.stderr)
        try FileManager.default.removeItem(atPath: dir + "/.wledger")
        try initialize(dir)
        try expectRejected(["branch", "two\nlines"], in: dir, mentions: ["ref 'two\\nlines': not a valid ref name"])
        try expectRejected(["show", "two\nlines"], in: dir, mentions: ["unknown revision 'two\\nlines'"])
    }

    func testInitTwice() throws {
        let dir = try tinyModelDir()
        try initialize(dir)
        try expectRejected(["init"], in: dir, mentions: [canonical(dir), "already"])
    }

    func testInitOfAMissingDirectory() throws {
        let parent = try tempDir().path
        try expectRejected(["init"], in: parent + "/does-not-exist", mentions: ["does-not-exist"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: parent + "/does-not-exist"))
    }

    // MARK: - Ledger stability

    /// A failed read-only command right after `init` must not touch `.wledger/`. (`init` must
    /// leave a settled ledger: no stray `ledger-wal`/`ledger-shm` for the next command to fold in.)
    func testFailedCommandRightAfterInitChangesNothing() throws {
        let dir = try tinyModelDir()
        try expectSuccess(["init", "-q"], in: dir)
        try expectRejected(["show", "nope"], in: dir, mentions: ["unknown revision 'nope'"])
    }

    // MARK: revert, prune, restrain

    /// Bad arguments and refusals of the regularizers change nothing.
    func testRegularizersRejectBadInputAndChangeNothing() throws {
        let dir = try realModelDir()
        try initialize(dir)
        try expectRejected(["revert", "base"], in: dir, mentions: ["base snapshot"])
        try expectRejected(["prune", "HEAD", "--keep", "40%"], in: dir, mentions: ["base snapshot"])
        try expectRejected(["restrain"], in: dir, code: 1, mentions: ["nothing to restrain"])
        try expectRejected(["revert", "nope"], in: dir, mentions: ["unknown revision 'nope'"])
        try expectRejected(["prune", "HEAD", "--keep", "140%"], in: dir, mentions: ["--keep"])
        try expectRejected(["prune", "HEAD", "--keep", "0x10"], in: dir, mentions: ["--keep"])   // read as 16% before
        try expectRejected(["restrain", "--alpha", "1"], in: dir, mentions: ["--alpha"])
        try expectRejected(["restrain", "base...HEAD"], in: dir, mentions: ["'base...HEAD'", "two-dot range"])
        try expectRejected(["restrain", "--method", "sphere", "--eta", "0"], in: dir, mentions: ["--eta"])
        // An edit, then a dirty work tree: revert and prune refuse (exit 1) and leave everything.
        try SimulatedEdit.rankOne(file: dir + "/model.safetensors", tensor: "model.layers.1.mlp.down_proj.weight", seed: 1)
        try expectSuccess(["commit", "-q", "-m", "edit"], in: dir)
        try expectSuccess(["status"], in: dir)
        // The edit is too small to restrain: refused, and σmax(W_base), computed to find that
        // out, is not cached in the ledger by the refused command.
        try expectRejected(["restrain"], in: dir, code: 1, mentions: ["nothing to restrain"])
        try SimulatedEdit.rankOne(file: dir + "/model.safetensors", tensor: "model.layers.2.mlp.down_proj.weight", seed: 2)
        try expectRejected(["revert", "HEAD"], in: dir, code: 1, mentions: ["uncommitted changes"])
        try expectRejected(["prune", "HEAD", "--keep", "40%"], in: dir, code: 1, mentions: ["uncommitted changes"])
        // restrain says so before it looks for a matrix to restrain (it found none above).
        try expectRejected(["restrain"], in: dir, code: 1, mentions: ["uncommitted changes"])
        // commit --prune refuses side-file changes alongside the tensor change.
        try Data("{}".utf8).write(to: URL(fileURLWithPath: dir + "/generation_config.json"))
        try expectRejected(["commit", "-m", "x", "--prune", "40%"], in: dir, mentions: ["--prune"])
    }

    /// The full id of a revision (`show --json`).
    private func commitID(_ rev: String, in dir: String) throws -> String {
        let r = try expectSuccess(["show", rev, "--json"], in: dir)
        return try XCTUnwrap((JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])?["id"] as? String)
    }

    /// prune takes the dropped part of an edit's ΔW off HEAD, so HEAD must hold the edit whole:
    /// an edit pruned already (while that prune is in force), reverted, or not on HEAD's history
    /// is refused with the commit in the way, and nothing changes. After the prune is reverted
    /// the edit prunes again, to the other share, exactly (kept elements the edit's bytes, the
    /// others the pre-edit bytes), never past the pre-edit values.
    func testPruneOfAnEditHEADDoesNotHoldWholeIsRefused() throws {
        let dir = try realModelDir()
        try initialize(dir)
        let file = dir + "/model.safetensors", a = "model.layers.3.mlp.down_proj.weight"
        func id(_ rev: String) throws -> String { try commitID(rev, in: dir) }
        let edit = try SimulatedEdit.rankOne(file: file, tensor: a, seed: 15)
        try expectSuccess(["commit", "-q", "-m", "edit a"], in: dir)
        let editID = try id("HEAD")
        try expectSuccess(["prune", "-q", editID, "--keep", "40%"], in: dir)
        let pruneID = try id("HEAD")
        try expectRejected(["prune", editID, "--keep", "10%"], in: dir, code: 1,
                           mentions: ["the change of \(editID.prefix(12)) is already pruned on HEAD's history by \(pruneID.prefix(12))"])
        try expectSuccess(["revert", "-q", pruneID], in: dir)
        XCTAssertEqual(try readTensorBytes(file: file, tensor: a), edit.child)
        // Only edits are pruned: a prune of that revert would put part of the first prune back
        // in force, and then the edit could be pruned twice (accepted before: elements ended at
        // W_pre − ΔW). A prune commit is refused too.
        let revertOfPrune = try id("HEAD")
        try expectRejected(["prune", revertOfPrune, "--keep", "40%"], in: dir, code: 1,
                           mentions: ["commit \(revertOfPrune.prefix(12)) is a revert commit; prune applies RECT to an edit's ΔW"])
        try expectRejected(["prune", pruneID, "--keep", "40%"], in: dir, code: 1,
                           mentions: ["commit \(pruneID.prefix(12)) is a prune commit"])
        try expectSuccess(["prune", "-q", editID, "--keep", "10%"], in: dir)
        let got = try readTensorBytes(file: file, tensor: a)
        var kept = 0, changed = 0
        for i in stride(from: 0, to: got.count, by: 2) where edit.child[i..<i + 2] != edit.parent[i..<i + 2] {
            changed += 1
            if got[i..<i + 2] == edit.child[i..<i + 2] { kept += 1 } else { XCTAssertEqual(got[i..<i + 2], edit.parent[i..<i + 2], "element \(i / 2)") }
        }
        XCTAssertEqual(kept, min(changed, Int((Double(got.count / 2) * 0.10).rounded(.up))))   // ⌈K·N/100⌉ of the tensor's N
        // Reverted: nothing of it to prune.
        try expectSuccess(["revert", "-q", "HEAD"], in: dir)
        try expectSuccess(["revert", "-q", editID], in: dir)
        let revertID = try id("HEAD")
        try expectRejected(["prune", editID, "--keep", "40%"], in: dir, code: 1,
                           mentions: ["the change of \(editID.prefix(12)) is reverted on HEAD's history (last by \(revertID.prefix(12)))"])
        // On another branch only: HEAD never had it.
        try expectSuccess(["checkout", "-q", "-b", "side", "base"], in: dir)
        try expectRejected(["prune", editID, "--keep", "40%"], in: dir, code: 1,
                           mentions: ["commit \(editID.prefix(12)) is not on HEAD's history"])
    }

    /// A commit reverted on HEAD's history is not reverted again (its ΔW would be taken off
    /// twice): refused, naming the revert, until that revert is reverted itself.
    func testRevertOfAnAlreadyRevertedCommitIsRefused() throws {
        let dir = try realModelDir()
        try initialize(dir)
        let file = dir + "/model.safetensors", a = "model.layers.3.mlp.down_proj.weight"
        func id(_ rev: String) throws -> String { try commitID(rev, in: dir) }
        let edit = try SimulatedEdit.rankOne(file: file, tensor: a, seed: 5)
        try expectSuccess(["commit", "-q", "-m", "edit a"], in: dir)
        let editID = try id("HEAD")
        try SimulatedEdit.rankOne(file: file, tensor: "model.layers.4.mlp.down_proj.weight", seed: 6)
        try expectSuccess(["commit", "-q", "-m", "edit b"], in: dir)
        try expectSuccess(["revert", "-q", editID], in: dir)
        XCTAssertEqual(try readTensorBytes(file: file, tensor: a), edit.parent)
        let firstRevert = try id("HEAD")
        try expectSuccess(["status"], in: dir)
        try expectRejected(["revert", editID], in: dir, code: 1,
                           mentions: ["the change of \(editID.prefix(12)) is already reverted on HEAD's history (last by \(firstRevert.prefix(12)))"])
        // Reverting the revert brings the edit back; then it may be reverted again.
        try expectSuccess(["revert", "-q", "HEAD"], in: dir)
        XCTAssertEqual(try readTensorBytes(file: file, tensor: a), edit.child)
        let secondRevert = try id("HEAD")
        try expectRejected(["revert", firstRevert], in: dir, code: 1,
                           mentions: ["the change \(firstRevert.prefix(12)) reverted is already back on HEAD's history (last by \(secondRevert.prefix(12)))"])
        try expectSuccess(["revert", "-q", editID], in: dir)
        XCTAssertEqual(try readTensorBytes(file: file, tensor: a), edit.parent)
        // The edit reverted twice over (its second revert came after the revert of its first):
        // reverting that revert of the revert would take it off a second time.
        try expectRejected(["revert", secondRevert], in: dir, code: 1, mentions: ["already reverted on HEAD's history"])

        // A tensor HEAD holds as before the commit (here written back by hand and committed) is
        // left alone: nothing to undo, as git's revert of a change already undone.
        let other = "model.layers.6.mlp.down_proj.weight"
        let second = try SimulatedEdit.rankOne(file: file, tensor: other, seed: 7)
        try expectSuccess(["commit", "-q", "-m", "edit c"], in: dir)
        let secondID = try id("HEAD")
        let (info, dataStart) = try SimulatedEdit.locate(file: file, tensor: other)
        let fh = try XCTUnwrap(FileHandle(forUpdatingAtPath: file))
        try fh.seek(toOffset: UInt64(dataStart + info.begin))
        fh.write(Data(second.parent))
        try fh.close()
        try expectSuccess(["commit", "-q", "-m", "undo c by hand"], in: dir)
        try expectSuccess(["status"], in: dir)
        try expectRejected(["revert", secondID], in: dir, code: 1, mentions: ["nothing to commit"])
    }

    /// A revert picked from another branch moves its edit as revert does: refused where HEAD's
    /// history already took the edit off (here reverted on both branches, and edited since on
    /// main, so no byte comparison would notice).
    func testCherryPickOfARevertAlreadyDoneIsRefused() throws {
        let dir = try realModelDir()
        try initialize(dir)
        let file = dir + "/model.safetensors", a = "model.layers.3.mlp.down_proj.weight"
        try SimulatedEdit.rankOne(file: file, tensor: a, seed: 11)
        try expectSuccess(["commit", "-q", "-m", "edit a"], in: dir)
        let edit = try XCTUnwrap((JSONSerialization.jsonObject(with: Data(try expectSuccess(["show", "HEAD", "--json"], in: dir).stdout.utf8))
            as? [String: Any])?["id"] as? String)
        try expectSuccess(["checkout", "-q", "-b", "side"], in: dir)
        // (its own message: made in the same second with the same message, the two reverts
        // would be one commit, as git gives identical commits one id)
        try expectSuccess(["revert", "-q", "HEAD", "-m", "revert on side"], in: dir)
        try expectSuccess(["checkout", "-q", "main"], in: dir)
        try expectSuccess(["revert", "-q", "HEAD"], in: dir)
        try SimulatedEdit.rankOne(file: file, tensor: a, seed: 12)
        try expectSuccess(["commit", "-q", "-m", "edit a again"], in: dir)
        try expectSuccess(["status"], in: dir)
        try expectRejected(["cherry-pick", "side"], in: dir, code: 1,
                           mentions: ["the change of \(edit.prefix(12)) is already off HEAD's history", "would take it off twice"])
    }

    /// A ledger the user may not read is named as such (it used to read "not a wledger ledger:
    /// unable to open database file"). Run as `nobody` through setpriv; skipped where that is not
    /// possible (not root).
    func testUnreadableLedgerIsNamed() throws {
        guard getuid() == 0, FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv") else { throw XCTSkip("needs root and setpriv") }
        // Under /tmp, which nobody may walk through (the test's own temporary root may not be).
        let dir = "/tmp/wledger-unreadable-\(getpid())-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try writeTinyModel(dir, tensors: [("a", .f32, [2], [0, 0, 128, 63, 0, 0, 0, 64])])
        XCTAssertEqual(chmod(dir, 0o755), 0)
        try initialize(dir)
        let ledger = dir + "/.wledger/ledger"
        XCTAssertEqual(chmod(ledger, 0o600), 0)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
        p.arguments = ["--reuid=65534", "--regid=65534", "--clear-groups", CLI.binary, "log", "-C", dir]
        let err = Pipe()
        p.standardError = err
        p.standardOutput = Pipe()
        try p.run()
        p.waitUntilExit()
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertEqual(p.terminationStatus, 2, stderr)
        XCTAssertEqual(stderr, "error: cannot read '\(canonical(ledger))': permission denied\n")
    }

    /// As git reads a repository it may not write: another user (nobody, through setpriv) runs
    /// the read commands on a model whose ledger and `.wledger/` only root may write, with the
    /// output root gets, and leaves every file as it was (no -wal or -shm, no cache rows); a
    /// write is refused in one line, and so is a read while an interrupted operation waits for
    /// a writer to finish it. Skipped where setpriv cannot be used (not root).
    func testAnotherUserReadsALedgerItMayNotWrite() throws {
        guard getuid() == 0, FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv") else { throw XCTSkip("needs root and setpriv") }
        let dir = "/tmp/wledger-readonly-\(getpid())-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try writeTinyModel(dir, tensors: [("a", .f32, [2, 2], [1, 2, 3, 4].flatMap { (f: Float) in withUnsafeBytes(of: f.bitPattern.littleEndian) { Array($0) } })])
        XCTAssertEqual(chmod(dir, 0o755), 0)
        try initialize(dir)
        _ = try SimulatedEdit.modify(file: dir + "/model.safetensors", tensor: "a") { w, _ in w[1] += 0.5 }
        try expectSuccess(["commit", "-q", "-m", "edit"], in: dir)
        func asNobody(_ args: [String]) throws -> ProcessOutput {
            try runProcess("/usr/bin/setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", CLI.binary] + args + ["-C", dir])
        }
        for args in [["log"], ["log", "--stat", "--json"], ["status"], ["show", "HEAD"], ["diff", "--stat", "HEAD~1", "HEAD"],
                     ["branch"], ["reflog"], ["fsck"], ["stash", "list"]] {
            let mine = try expectSuccess(args, in: dir)   // root first: it may fill the caches
            let before = try snapshot(dir)
            let theirs = try asNobody(args)
            XCTAssertEqual(theirs.status, 0, "\(args): \(theirs.stderr)")
            XCTAssertEqual(theirs.stdout, mine.stdout, "\(args)")
            XCTAssertEqual(try snapshot(dir), before, "\(args) as nobody changed a file")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/.wledger/ledger-shm"))
        // A write: refused in one line, nothing changed.
        _ = try SimulatedEdit.modify(file: dir + "/model.safetensors", tensor: "a") { w, _ in w[2] += 0.5 }
        XCTAssertEqual(chmod(dir + "/model.safetensors", 0o644), 0)
        let before = try snapshot(dir)
        let commit = try asNobody(["commit", "-m", "theirs"])
        XCTAssertNotEqual(commit.status, 0)
        XCTAssertEqual(commit.stderr.split(separator: "\n").count, 1, commit.stderr)
        XCTAssertTrue(commit.stderr.contains(".wledger/lock"), commit.stderr)
        XCTAssertEqual(try snapshot(dir), before)
        // An interrupted operation (killed after its journal) waits for a writer; readers say so.
        let killed = try CLI.run(["commit", "-q", "-m", "killed", "--prune", "40%", "-C", dir], environment: ["WLEDGER_FAULT": "update-journaled"])
        XCTAssertEqual(killed.status, 9, killed.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/.wledger/pending.json"))
        let log = try asNobody(["log"])
        XCTAssertEqual(log.status, 1, log.stderr)
        XCTAssertTrue(log.stderr.hasPrefix("error: cannot read the ledger '") && log.stderr.contains("pending.json') must be finished by a user who can write it"), log.stderr)
        try expectSuccess(["status"], in: dir)
        XCTAssertEqual(try asNobody(["log", "--oneline"]).stdout.split(separator: "\n").count, 2, "the killed commit rolled back")
    }

    /// A tracked side file replaced by a link to nothing or by a directory reads as deleted, but
    /// commit (and stash, which records through it) refuses to record it as a deletion; once it
    /// is gone, the deletion commits.
    func testSideFileReplacedByALinkToNothingIsNotCommittedAsADeletion() throws {
        let dir = try tinyModelDir()
        try initialize(dir)
        let config = dir + "/config.json"
        func ledger() throws -> [String: String] { try directoryDigest(dir + "/.wledger").filter { $0.key.hasPrefix("ledger") } }
        try FileManager.default.removeItem(atPath: config)
        for replace in [{ try FileManager.default.createSymbolicLink(atPath: config, withDestinationPath: "/nonexistent") },
                        { try FileManager.default.createDirectory(atPath: config, withIntermediateDirectories: false) }] {
            try replace()
            XCTAssertEqual(try CLI.run(["status", "-s", "-C", dir]).stdout, " D config.json\n")
            let before = try ledger()
            for args in [["commit", "-m", "x"], ["stash"]] {
                let r = try CLI.run(args + ["-C", dir])
                XCTAssertEqual(r.status, 1, "\(args): \(r.stderr)")
                XCTAssertTrue(r.stderr.hasPrefix("error: '\(canonical(dir))/config.json' is a ") && r.stderr.split(separator: "\n").count == 1,
                              "\(args): \(r.stderr)")
                if args[0] == "commit" {
                    XCTAssertTrue(r.stderr.hasSuffix(" where HEAD has a file (wledger tracks regular files only): remove it to record the deletion, "
                        + "or put the file back\n"), r.stderr)
                }
                XCTAssertEqual(try ledger(), before, "\(args)")
            }
            try FileManager.default.removeItem(atPath: config)
        }
        try expectSuccess(["commit", "-q", "-m", "no config"], in: dir)
    }

    /// A weight file written anew (temporary file + rename) keeps its permissions, as an
    /// editor's save does: a read-only file stays read-only.
    func testRewrittenWeightFileKeepsItsPermissions() throws {
        let dir = try realModelDir()
        try initialize(dir)
        let file = dir + "/model.safetensors"
        let edit = try SimulatedEdit.rankOne(file: file, tensor: "model.layers.3.mlp.down_proj.weight", seed: 3)
        try expectSuccess(["commit", "-q", "-m", "edit"], in: dir)
        func mode() throws -> Int { try XCTUnwrap(FileManager.default.attributesOfItem(atPath: file)[.posixPermissions] as? Int) }
        // (setuid is not kept, as cp and git do not keep it)
        for (perm, kept, rev, bytes) in [(0o600, 0o600, "HEAD~1", edit.parent), (0o444, 0o444, "main", edit.child),
                                         (0o4755, 0o755, "HEAD~1", edit.parent)] {
            XCTAssertEqual(chmod(file, mode_t(perm)), 0)
            try expectSuccess(["checkout", "-q", "--no-in-place", rev], in: dir)
            XCTAssertEqual(try mode(), kept, "after checkout --no-in-place \(rev)")
            XCTAssertEqual(try readTensorBytes(file: file, tensor: "model.layers.3.mlp.down_proj.weight"), bytes)
        }
        // A symbolic link (into a read-only cache, say) is replaced by a file of its own, with the
        // default permissions, not the target's.
        let blob = try tempDir().path + "/blob"
        try FileManager.default.moveItem(atPath: file, toPath: blob)
        XCTAssertEqual(chmod(blob, 0o444), 0)
        try FileManager.default.createSymbolicLink(atPath: file, withDestinationPath: blob)
        try expectSuccess(["checkout", "-q", "main"], in: dir)
        XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: file)[.type] as? FileAttributeType, .typeRegular)
        XCTAssertEqual(try mode() & 0o200, 0o200, "writable")
        XCTAssertEqual(try readTensorBytes(file: blob, tensor: "model.layers.3.mlp.down_proj.weight"), edit.parent, "the link's target untouched")
    }

    /// As git: an empty or blank commit message aborts the commit; a branch listing pads long
    /// names instead of cutting them.
    func testEmptyCommitMessageAndLongBranchNames() throws {
        let dir = try tinyModelDir()
        // init too (it recorded a base commit with an empty message), and an empty author.
        try expectRejected(["init", "-m", ""], in: dir, mentions: ["empty commit message"])
        try expectRejected(["init", "--author", " "], in: dir, mentions: ["empty author (--author) not allowed"])
        try initialize(dir)
        _ = try SimulatedEdit.modify(file: dir + "/model.safetensors", tensor: "a") { w, _ in w[0] += 1 }
        for m in ["", "  \n"] { try expectRejected(["commit", "-m", m], in: dir, mentions: ["empty commit message"]) }
        // As git refuses an empty ident: an empty author or method (`show` printed "edit ()").
        try expectRejected(["commit", "-m", "x", "--author", ""], in: dir, mentions: ["empty author (--author) not allowed"])
        try expectRejected(["commit", "-m", "x", "--method", " "], in: dir, mentions: ["empty method (--method) not allowed"])
        try expectSuccess(["commit", "-q", "-m", "edit"], in: dir)
        // The same for the commands that record a commit with a default message.
        for args in [["revert", "HEAD"], ["cherry-pick", "HEAD"], ["prune", "HEAD", "--keep", "40%"], ["restrain"]] {
            try expectRejected(args + ["-m", " "], in: dir, mentions: ["empty commit message"])
            try expectRejected(args + ["--author", ""], in: dir, mentions: ["empty author (--author) not allowed"])
        }
        let long = "feature/rome-edit-paris-capital-2024", longer = "feature/rome-edit-paris-capital-2025"
        try expectSuccess(["branch", long], in: dir)
        try expectSuccess(["branch", longer], in: dir)
        let listing = try expectSuccess(["branch"], in: dir).stdout
        XCTAssertTrue(listing.contains(" \(long) ") && listing.contains(" \(longer) "), listing)
    }

    /// A journal of an interrupted operation that names a commit the ledger lacks (hand-edited, or
    /// copied from another model) is named and left alone, not acted on: HEAD would point to nothing.
    func testJournalNamingAnUnknownCommit() throws {
        let dir = try tinyModelDir()
        try initialize(dir)
        let journal = dir + "/.wledger/pending.json"
        for kind in ["checkout", "update"] {
            try Data(#"{"kind":"\#(kind)","commit":"\#(String(repeating: "de", count: 32))","renames":[],"removes":[]}"#.utf8)
                .write(to: URL(fileURLWithPath: journal))
            for args in [["status"], ["log"]] {
                try expectRejected(args, in: dir, mentions: [".wledger/pending.json'", "dededededede", "does not hold"])
            }
        }
        try FileManager.default.removeItem(atPath: journal)
        try expectSuccess(["status"], in: dir)
    }

    /// Lines naming a long step (materializing a commit, running an external evaluator) are
    /// progress: shown on a terminal, never on a stderr that is a pipe or with --quiet.
    func testPhaseLinesOnlyOnATerminal() throws {
        let dir = try tinyModelDir()
        try initialize(dir)
        _ = try SimulatedEdit.modify(file: dir + "/model.safetensors", tensor: "a") { w, _ in w[0] += 1 }
        try expectSuccess(["commit", "-q", "-m", "edit"], in: dir)
        try expectSuccess(["checkout", "-q", "HEAD~1"], in: dir)
        let results = #"{"results":{"t":{"acc,none":0.5}},"n-samples":{"t":{"effective":2}}}"#
        try expectSuccess(["config", "set", "evaluator.fixed.command", "test -f {weights}/model.safetensors && printf '%s' '\(results)' > {out}"], in: dir)
        try expectSuccess(["config", "set", "task.ext.source", "external:fixed"], in: dir)
        try expectSuccess(["config", "set", "task.ext.tasks", "t"], in: dir)
        // main is not the work tree's commit, so health materializes it first.
        let phases = ["materializing ", "running evaluator 'fixed'"]
        let piped = try expectSuccess(["health", "--task", "ext", "--refresh", "main"], in: dir)
        for p in phases { XCTAssertFalse(piped.stderr.contains(p), "on a pipe: \(piped.stderr)") }
        XCTAssertTrue(piped.stdout.contains("0.5"), piped.stdout)
        // The same command on a pseudo-terminal (util-linux script), then quiet there.
        func onTerminal(_ extra: [String]) throws -> String {
            let line = ([CLI.binary, "health", "--task", "ext", "--refresh", "main", "-C", dir] + extra).map { "'\($0)'" }.joined(separator: " ")
            let r = try runProcess("/usr/bin/script", ["-qec", line, "/dev/null"])
            XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
            return r.stdout
        }
        let tty = try onTerminal([])
        for p in phases { XCTAssertTrue(tty.contains(p), "on a terminal: \(tty)") }
        let quiet = try onTerminal(["--quiet"])
        for p in phases { XCTAssertFalse(quiet.contains(p), "--quiet on a terminal: \(quiet)") }
        XCTAssertTrue(quiet.contains("0.5"), quiet)
        // An evaluator that fails, or writes results that are not JSON, is refused (exit 1) in one
        // line: the last line of its output (a traceback's exception), and the results file.
        try expectSuccess(["config", "set", "evaluator.broken.command", "echo starting {weights}; echo 'Traceback:' >&2; echo 'ValueError: no such task' >&2; exit 3"], in: dir)
        try expectSuccess(["config", "set", "task.ext.source", "external:broken"], in: dir)
        try expectRejected(["health", "--task", "ext", "--refresh"], in: dir, code: 1,
                           mentions: ["evaluator 'broken' exited with status 3: ValueError: no such task"])
        try expectSuccess(["config", "set", "evaluator.garbled.command", "printf 'not json' > {out}; test -d {weights}"], in: dir)
        try expectSuccess(["config", "set", "task.ext.source", "external:garbled"], in: dir)
        try expectRejected(["health", "--task", "ext", "--refresh"], in: dir, code: 1, mentions: ["evaluator results are not JSON"])
    }

    /// Numbers out of range are refused in one line before anything runs: a thread count past
    /// what a C int holds used to trap in the BLAS call (on the command line and from the
    /// config), an infinite α or threshold was taken as given. A task file that cannot serve
    /// exits 2 as other bad input (it exited 1, the code of a failed check).
    func testOutOfRangeNumbersAreRefused() throws {
        let dir = try tinyModelDir()
        try initialize(dir)
        for (args, mention) in [(["health", "--threads", "2147483648"], "--threads must be between 1 and 1024"),
                                (["report", "--threads", "0"], "--threads must be between 1 and 1024"),
                                (["bisect", "--metric", "a.b", "--below", "1", "--threads", "99999999999"], "--threads must be between 1 and 1024"),
                                (["config", "set", "health.threads", "3000000000"], "'health.threads' must be a thread count from 1 to 1024"),
                                (["restrain", "--alpha", "1e400"], "--alpha must be 'e' or a number greater than 1"),
                                (["prune", "HEAD", "--keep", "0.4"], "'0.4' is invalid for '--keep <keep>': a bare number between 0 and 1 is ambiguous; write 0.4% or a whole percentage such as 40%"),
                                (["bisect", "--metric", "a.b", "--drop", "0.1"], "'0.1' is invalid for '--drop <drop>': a bare number between 0 and 1 is ambiguous; write 0.1%"),
                                (["prune", "HEAD", "--keep", "140%"], "'140%' is invalid for '--keep <keep>' (see"),
                                (["diff", "--delta-thresholds", "inf"], "finite non-negative"),
                                (["diff", "--delta-thresholds", "0.1,,0.2"], "finite non-negative"),
                                (["diff", "--delta-thresholds", "-1"], "finite non-negative"),
                                (["bisect", "--metric", "a.b", "--below", "nan"], "--below must be a finite number")] {
            try expectRejected(args, in: dir, mentions: [mention])
        }
        // A task file that cannot serve is bad input (exit 2), as a missing one is.
        let tasks = try tempDir().path + "/bad.jsonl"
        try Data("{\"context\": \"2+2=\", \"choices\": [\"4\"], \"gold\": 0}\nnot json\n".utf8).write(to: URL(fileURLWithPath: tasks))
        try expectSuccess(["config", "set", "task.bad.source", "jsonl:" + tasks], in: dir)
        try expectRejected(["health", "--task", "bad", "--json"], in: dir, mentions: ["'\(tasks)': line 2: not valid JSON"])
        // A value the commands would refuse is still listed, with a warning (as git lists it).
        let configPath = dir + "/.wledger/config"
        let handle = try XCTUnwrap(FileHandle(forWritingAtPath: configPath))
        handle.seekToEndOfFile()
        handle.write(Data("[gate]\n\tmax-l1 = abc\n".utf8))
        try handle.close()
        let listed = try expectSuccess(["config", "list"], in: dir)
        XCTAssertTrue(listed.stdout.contains("gate.max-l1=abc\n"), listed.stdout)
        // The warning, and the refusal of a command that reads the config, name the value's line.
        let badLine = try XCTUnwrap(try String(contentsOfFile: configPath, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
            .firstIndex(of: "\tmax-l1 = abc")) + 1
        XCTAssertEqual(listed.stderr, "warning: '\(canonical(configPath))': line \(badLine): 'gate.max-l1' must be a number, got 'abc'\n")
        try expectRejected(["health", "--json"], in: dir, mentions: ["'\(canonical(configPath))': line \(badLine): 'gate.max-l1' must be a number"])
        try expectSuccess(["config", "unset", "gate.max-l1"], in: dir)
        // config get of an unset key exits 1 with --json too (as without it, and as git).
        let unset = try CLI.run(["config", "get", "gate.max-l1", "--json", "-C", dir])
        XCTAssertEqual(unset.status, 1, unset.stderr)
        let value = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(unset.stdout.utf8)) as? [String: Any])
        XCTAssertTrue(value["value"] is NSNull, unset.stdout)
        try expectSuccess(["config", "set", "gate.max-l1", "5"], in: dir)
        XCTAssertEqual(try expectSuccess(["config", "get", "gate.max-l1", "--json"], in: dir).stdout.contains("\"5\""), true)
        // A negative value is a value, not an option (a log-probability threshold is negative).
        try expectSuccess(["config", "set", "threshold.addition.exact_match.min", "-6"], in: dir)
        XCTAssertEqual(try expectSuccess(["config", "get", "threshold.addition.exact_match.min"], in: dir).stdout, "-6\n")
        try expectRejected(["config", "set", "threshold.addition.exact_match.max-drop", "-5%"], in: dir,
                           mentions: ["'threshold.addition.exact_match.max-drop' must be a number or a percentage like 10%, got '-5%'"])
        // `-inf` too is a value, checked by the key's own rule (it was taken for an option).
        try expectRejected(["config", "set", "threshold.addition.exact_match.min", "-inf"], in: dir,
                           mentions: ["'threshold.addition.exact_match.min' must be finite"])
        try expectRejected(["config", "set", "gate.max-l1", "-5"], in: dir,
                           mentions: ["'gate.max-l1' must be a finite number ≥ 0 (what it limits is never negative), got '-5'"])
        XCTAssertEqual(try expectSuccess(["config", "get", "gate.max-l1"], in: dir).stdout, "5\n", "a refused set keeps the value")
        // Entries that do not fit together are set with a warning naming their line, listed with
        // one, and refused by a command that reads them, with the line.
        let set = try expectSuccess(["config", "set", "suite.mine.tasks", "addition nosuch"], in: dir)
        let suiteLine = try XCTUnwrap(try String(contentsOfFile: configPath, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
            .firstIndex { $0.contains("tasks = addition nosuch") }) + 1
        let warning = "warning: '\(canonical(configPath))': line \(suiteLine): suite 'mine' names unknown task 'nosuch'\n"
        XCTAssertEqual(set.stderr, warning)
        XCTAssertEqual(try expectSuccess(["config", "list"], in: dir).stderr, warning)
        try expectRejected(["health", "--task", "edits"], in: dir, mentions: ["'\(canonical(configPath))': line \(suiteLine): suite 'mine' names unknown task 'nosuch'"])
        // A malformed value written by hand is warned about with the entries that do not fit
        // together, not instead of them.
        let text = try String(contentsOfFile: configPath, encoding: .utf8)
        try (text + "[gate]\n    max-l1 = abc\n").write(toFile: configPath, atomically: true, encoding: .utf8)
        let withMalformed = try expectSuccess(["config", "list"], in: dir).stderr
        XCTAssertTrue(withMalformed.contains("'gate.max-l1' must be a number, got 'abc'"), withMalformed)
        XCTAssertTrue(withMalformed.contains(warning), withMalformed)
    }

    /// `diff` lists side files added, modified or deleted (A/M/D, as `git diff --name-status`;
    /// `sideFiles` in JSON) between commits and against the work tree; `show` lists a commit's
    /// the same way (it listed bare paths).
    /// Both used to be silent about them while `status` showed them.
    func testDiffAndShowListSideFiles() throws {
        let dir = try tinyModelDir()
        try Data(#"{"a": 1}"#.utf8).write(to: URL(fileURLWithPath: dir + "/config.json"))
        try Data("x".utf8).write(to: URL(fileURLWithPath: dir + "/old.txt"))
        try initialize(dir)
        try Data(#"{"a": 2}"#.utf8).write(to: URL(fileURLWithPath: dir + "/config.json"))
        try Data("notes".utf8).write(to: URL(fileURLWithPath: dir + "/NOTES.md"))
        try FileManager.default.removeItem(atPath: dir + "/old.txt")
        let worktree = try expectSuccess(["diff"], in: dir).stdout
        XCTAssertTrue(worktree.contains("\nA\tNOTES.md\nM\tconfig.json\nD\told.txt\nno tensor differs\n"), worktree)
        try expectSuccess(["commit", "-q", "-m", "side files"], in: dir)
        XCTAssertEqual(try expectSuccess(["diff", "HEAD~1", "HEAD"], in: dir).stdout.split(separator: "\n").dropFirst(), worktree.split(separator: "\n").dropFirst())
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(try expectSuccess(["diff", "HEAD~1", "HEAD", "--json"], in: dir).stdout.utf8)) as? [String: Any])
        let files = try XCTUnwrap(json["sideFiles"] as? [[String: String]])
        XCTAssertEqual(files, [["path": "NOTES.md", "change": "added"], ["path": "config.json", "change": "modified"], ["path": "old.txt", "change": "deleted"]])
        XCTAssertEqual(try expectSuccess(["diff"], in: dir).stdout.components(separatedBy: "\t").count, 1, "clean: no side file listed")
        let show = try expectSuccess(["show", "HEAD"], in: dir).stdout
        XCTAssertTrue(show.contains("\nside files changed:\n    A NOTES.md\n    M config.json\n    D old.txt\n"), show)
        // show --json: `files` (the paths) and `sideFiles` (with the change, as diff's).
        let shown = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(try expectSuccess(["show", "HEAD", "--json"], in: dir).stdout.utf8)) as? [String: Any])
        XCTAssertEqual(shown["files"] as? [String], ["NOTES.md", "config.json", "old.txt"])
        XCTAssertEqual(shown["sideFiles"] as? [[String: String]], files)
        // A commit that changes only a weight file's header lists no side file (as diff), and
        // the header as such (it showed no change at all): show, diff of the two commits, and
        // diff of the work tree before the commit, text and JSON.
        let data = (1...8).map { Float($0) }.withUnsafeBytes { Array($0) }
        try writeSafetensors(dir + "/model.safetensors", json: #"{"__metadata__":{"format":"pt","note":"x"},"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[4],"data_offsets":[16,32]}}"#, data: data)
        XCTAssertTrue(try expectSuccess(["diff"], in: dir).stdout.contains("\nM\tmodel.safetensors (header)\nno tensor differs\n"))
        try expectSuccess(["commit", "-q", "-m", "header only"], in: dir)
        let headerShow = try expectSuccess(["show", "HEAD"], in: dir).stdout
        XCTAssertFalse(headerShow.contains("side files changed"))
        XCTAssertTrue(headerShow.hasSuffix("\nheaders changed:\n    M model.safetensors (header)\n"), headerShow)
        let headerOnly = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(try expectSuccess(["show", "HEAD", "--json"], in: dir).stdout.utf8)) as? [String: Any])
        XCTAssertEqual(headerOnly["sideFiles"] as? [[String: String]], [])
        XCTAssertEqual(headerOnly["headers"] as? [String], ["model.safetensors"])
        XCTAssertTrue(try expectSuccess(["diff", "HEAD~1", "HEAD"], in: dir).stdout.contains("\nM\tmodel.safetensors (header)\nno tensor differs\n"))
        let headerDiff = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(try expectSuccess(["diff", "HEAD~1", "HEAD", "--json"], in: dir).stdout.utf8)) as? [String: Any])
        XCTAssertEqual(headerDiff["headers"] as? [String], ["model.safetensors"])
        XCTAssertEqual(shown["headers"] as? [String], [], "the side-file commit changed no header")
    }

    /// As git's -q: init, commit, checkout and reset print nothing on success (they printed their
    /// summary); without -q they do.
    func testQuietCommitCheckoutAndResetPrintNothing() throws {
        let dir = try tinyModelDir()
        let r = try expectSuccess(["init", "-q"], in: dir)
        XCTAssertEqual(r.stdout + r.stderr, "", "init -q")
        let other = try tinyModelDir()
        XCTAssertTrue(try expectSuccess(["init"], in: other).stdout.hasPrefix("Initialized wledger in "), "the summary without -q")
        _ = try SimulatedEdit.modify(file: dir + "/model.safetensors", tensor: "a") { w, _ in w[0] += 1 }
        for args in [["commit", "-q", "-m", "edit"], ["checkout", "-q", "HEAD~1"], ["checkout", "-q", "main"], ["reset", "-q", "--hard", "HEAD~1"]] {
            let r = try expectSuccess(args, in: dir)
            XCTAssertEqual(r.stdout + r.stderr, "", "\(args)")
        }
        XCTAssertFalse(try expectSuccess(["checkout", "main@{1}"], in: dir).stdout.isEmpty, "the summary without -q")
    }

    /// A negative number is an option's value, not another option: it reaches the command's own
    /// check (a log-likelihood threshold below 0 is a legitimate --below).
    func testNegativeOptionValues() throws {
        let dir = try tinyModelDir()
        try initialize(dir)
        for (args, mention) in [(["log", "-n", "-1"], "-n must be 0 or more"),
                                (["restrain", "--eta", "-0.5"], "--eta must be in (0, 1]"),
                                (["prune", "HEAD", "--keep", "-5%"], "'-5%' is invalid for '--keep"),
                                (["bisect", "--metric", "addition.exact_match", "--below", "-2.5", "HEAD", "HEAD"], "the same commit")] {
            let r = try expectRejected(args, in: dir, mentions: [mention])
            XCTAssertFalse(r.stderr.contains("Missing value"), r.stderr)
        }
    }

    /// `wledger -C <path> <command>` runs as if started in <path>, as `git -C` (each -C relative
    /// to the one before); a path that is not a directory is named as such, in either position.
    func testDashCBeforeTheCommand() throws {
        let dir = try tinyModelDir()
        try initialize(dir)
        let parent = (dir as NSString).deletingLastPathComponent, name = (dir as NSString).lastPathComponent
        let direct = try CLI.run(["status", "-C", dir])
        XCTAssertEqual(direct.status, 0, direct.stderr)
        for args in [["-C", dir, "status"], ["-C", parent, "-C", name, "status"]] {
            let r = try CLI.run(args)
            XCTAssertEqual(r.status, 0, "\(args): \(r.stderr)")
            XCTAssertEqual(r.stdout, direct.stdout, "\(args)")
        }
        let missing = parent + "/no-such-dir"
        for args in [["-C", missing, "status"], ["status", "-C", missing]] {
            let r = try CLI.run(args)
            XCTAssertEqual(r.status, 2, "\(args)")
            XCTAssertEqual(r.stderr, "error: cannot change to '\(missing)': No such file or directory\n", "\(args)")
        }
        // Between a command and its subcommand, -C is the subcommand's (it was "Unknown option").
        for (group, sub) in [(["config", "-C", dir, "list"], ["config", "list", "-C", dir]), (["hooks", "-C", dir, "list"], ["hooks", "list", "-C", dir]),
                             (["bisect", "-C", dir, "log"], ["bisect", "log", "-C", dir]), (["stash", "-C", dir, "list"], ["stash", "list", "-C", dir])] {
            let a = try CLI.run(group), b = try CLI.run(sub)
            XCTAssertEqual(a.status, b.status, "\(group): \(a.stderr)")
            XCTAssertEqual(a.stdout + a.stderr, b.stdout + b.stderr, "\(group)")
            XCTAssertFalse(a.stderr.contains("Unknown option"), a.stderr)
        }
        let bare = try CLI.run(["-C"])
        XCTAssertEqual(bare.status, 2)
        XCTAssertEqual(bare.stderr, "error: no directory given for '-C' (see 'wledger --help')\n")
        // No command, with or without -C: the overview, with a usage error's exit code (as git).
        for args in [[], ["-C", dir]] {
            let r = try CLI.run(args)
            XCTAssertEqual(r.status, 2, "\(args)")
            XCTAssertTrue(r.stdout.hasPrefix("OVERVIEW: "), "\(args): \(r.stdout)")
        }
        // Relative paths after a leading -C are relative to it: `--output out` lands in the model
        // directory's parent here, as with git -C.
        let out = try CLI.run(["-C", parent, "checkout", "-q", "HEAD", "--output", "materialized", "-C", name])
        XCTAssertEqual(out.status, 0, out.stderr)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: parent + "/materialized/model.safetensors")),
                       try Data(contentsOf: URL(fileURLWithPath: dir + "/model.safetensors")))
        let notDir = try CLI.run(["status", "-C", dir + "/model.safetensors"])
        XCTAssertEqual(notDir.status, 2)
        XCTAssertEqual(notDir.stderr, "error: cannot change to '\(dir)/model.safetensors': Not a directory\n")
        // config get of an unknown key: one hint.
        let unknown = try CLI.run(["config", "get", "nosuch.key", "-C", dir])
        XCTAssertEqual(unknown.status, 2)
        XCTAssertEqual(unknown.stderr, "error: unknown key 'nosuch.key' (see 'wledger config --help' for the documented keys)\n")
        // A config file that is a directory is named as one (it read "permission denied").
        try FileManager.default.removeItem(atPath: dir + "/.wledger/config")
        try FileManager.default.createDirectory(atPath: dir + "/.wledger/config", withIntermediateDirectories: false)
        try expectRejected(["config", "get", "core.in-place"], in: dir,
                           mentions: ["cannot read '\(canonical(dir))/.wledger/config': it is a directory, not a config file"])
    }

    /// restrain and prune rewrite the tensor they change and leave an untracked file alone, as
    /// revert and cherry-pick do (CherryPickTests): they refuse only where they would write over one.
    func testRestrainAndPruneLeaveUntrackedFilesAlone() throws {
        let dir = try realModelDir()
        try initialize(dir)
        let file = dir + "/model.safetensors", tensor = "model.layers.4.mlp.down_proj.weight"
        // Large enough that the edited matrix's top singular value passes the base's.
        _ = try SimulatedEdit.rankOne(file: file, tensor: tensor, seed: 11, scale: 0.05)
        try expectSuccess(["commit", "-q", "-m", "large edit"], in: dir)
        try Data("notes\n".utf8).write(to: URL(fileURLWithPath: dir + "/NOTES.md"))
        let edited = try readTensorBytes(file: file, tensor: tensor)
        try expectSuccess(["restrain", "-q"], in: dir)
        let restrained = try readTensorBytes(file: file, tensor: tensor)
        XCTAssertNotEqual(restrained, edited, "restrain rewrote the tensor")
        try expectSuccess(["prune", "-q", "HEAD~1", "--keep", "40%"], in: dir)   // the edit (a restrain is not pruned)
        XCTAssertNotEqual(try readTensorBytes(file: file, tensor: tensor), restrained, "prune rewrote the tensor")
        XCTAssertEqual(try String(contentsOfFile: dir + "/NOTES.md", encoding: .utf8), "notes\n")
        XCTAssertEqual(try CLI.run(["status", "-s"], in: dir).stdout, "?? NOTES.md\n")
        XCTAssertEqual(try CLI.run(["log", "--oneline"], in: dir).stdout.split(separator: "\n").count, 4, "base, edit, restrain, prune")
    }

    /// A restrain in force already corrected a ΔW: restraining it again (the same range, one
    /// ending before the restrain, or one that holds it) is refused, naming the restrain (a
    /// second restrain took the top singular values of ΔW from 22 to 13); the edits since it,
    /// or the range again once it is reverted, restrain as usual.
    func testRestrainOfAnAlreadyRestrainedRangeIsRefused() throws {
        let dir = try realModelDir()
        try initialize(dir)
        let file = dir + "/model.safetensors", tensor = "model.layers.4.mlp.down_proj.weight"
        _ = try SimulatedEdit.rankOne(file: file, tensor: tensor, seed: 11, scale: 0.05)
        try expectSuccess(["commit", "-q", "-m", "large edit"], in: dir)
        let edit = try commitID("HEAD", in: dir)
        try expectSuccess(["restrain", "-q"], in: dir)
        let r1 = try commitID("HEAD", in: dir)
        for args in [["restrain"], ["restrain", "base..\(edit)"], ["restrain", "base..HEAD"]] {
            try expectRejected(args, in: dir, code: 1, mentions: ["HEAD already holds restrain \(r1.prefix(12))", "revert \(r1.prefix(12)) first"])
        }
        _ = try SimulatedEdit.rankOne(file: file, tensor: tensor, seed: 12, scale: 0.05)
        try expectSuccess(["commit", "-q", "-m", "second edit"], in: dir)
        try expectSuccess(["restrain", "-q", "\(r1)..HEAD"], in: dir)
        try expectSuccess(["revert", "-q", r1], in: dir)
        try expectSuccess(["restrain", "-q", "base..\(edit)"], in: dir)
    }

    /// commit --prune records the pruned edit and rewrites the work tree to it; revert undoes it.
    func testCommitPruneRewritesTheWorkTree() throws {
        let dir = try realModelDir()
        try initialize(dir)
        let file = dir + "/model.safetensors", tensor = "model.layers.4.mlp.down_proj.weight"
        let before = try readTensorBytes(file: file, tensor: tensor)
        let edit = try SimulatedEdit.rankOne(file: file, tensor: tensor, seed: 9)
        let r = try expectSuccess(["commit", "-m", "pruned edit", "--prune", "40%", "--json"], in: dir)
        XCTAssertTrue(r.stdout.contains("\"kind\" : \"edit\""), r.stdout)
        let after = try readTensorBytes(file: file, tensor: tensor)
        var kept = 0, restored = 0
        for i in stride(from: 0, to: after.count, by: 2) {
            let a = after[i..<(i + 2)]
            if a == edit.child[i..<(i + 2)] && a != before[i..<(i + 2)] { kept += 1 } else if a == before[i..<(i + 2)] { restored += 1 }
        }
        XCTAssertEqual(kept + restored, after.count / 2, "every element is either the edit's or the original")
        XCTAssertEqual(kept, Int((0.4 * Double(after.count / 2)).rounded(.up)))
        try expectSuccess(["status"], in: dir)
        XCTAssertTrue(try CLI.run(["status", "-C", dir]).stdout.contains("work tree clean"))
        try expectSuccess(["revert", "HEAD"], in: dir)
        XCTAssertEqual(try readTensorBytes(file: file, tensor: tensor), before)
        let show = try expectSuccess(["show", "HEAD~1", "--json"], in: dir)
        XCTAssertTrue(show.stdout.contains("\"prune\""), show.stdout)
    }
}
