import Foundation
import TensorIO
import TestSupport
import XCTest

/// A work tree the user may not write to: commands that must write it (init, in-place checkout,
/// revert) fail with one line naming the file and the problem, exit 2, and change nothing;
/// commands that only read it or only write the ledger (status, commit, fsck) still work.
///
/// Root ignores permission bits, so when the tests run as root wledger runs as `nobody`
/// (`setpriv`) on a model directory that `nobody` owns.
final class UnwritableWorkTreeTests: XCTestCase {
    private var temps: [TemporaryDirectory] = []
    override func tearDown() {
        for t in temps { chmodTree(t.path, 0o755) }
        temps.removeAll()
        super.tearDown()
    }

    private let nobody: uid_t = 65534

    private func chmodTree(_ dir: String, _ mode: mode_t) {
        chmod(dir, mode)
        if let e = FileManager.default.enumerator(atPath: dir) {
            while let rel = e.nextObject() as? String {
                var isDir: ObjCBool = false
                if FileManager.default.fileExists(atPath: dir + "/" + rel, isDirectory: &isDir), isDir.boolValue { chmod(dir + "/" + rel, mode) }
            }
        }
    }

    /// Runs wledger as the test user, or as `nobody` when that is root.
    private func wledger(_ args: [String], in dir: String) throws -> ProcessOutput {
        guard getuid() == 0 else { return try CLI.run(args + ["-C", dir]) }
        return try runProcess("/usr/bin/setpriv", ["--reuid=\(nobody)", "--regid=\(nobody)", "--clear-groups", "--", CLI.binary] + args + ["-C", dir])
    }

    private func makeModel() throws -> String {
        if getuid() == 0 {
            guard FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv") else { throw XCTSkip("running as root without setpriv") }
            let probe = try runProcess("/usr/bin/setpriv", ["--reuid=\(nobody)", "--regid=\(nobody)", "--clear-groups", "--", CLI.binary, "--version"])
            if probe.status != 0 { throw XCTSkip("user nobody cannot run \(CLI.binary): \(probe.stderr)") }
        }
        let t = try TemporaryDirectory("wledger-unwritable")
        temps.append(t)
        let dir = t.path + "/model"
        func f32(_ v: [Float]) -> [UInt8] { v.flatMap { x in withUnsafeBytes(of: x.bitPattern.littleEndian) { Array($0) } } }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try writeTinyModel(dir, tensors: [("a", .f32, [2, 2], f32([1, 2, 3, 4])), ("b", .f32, [4], f32([5, 6, 7, 8]))])
        try Data(#"{"model_type": "tiny"}"#.utf8).write(to: URL(fileURLWithPath: dir + "/config.json"))
        if getuid() == 0 {
            XCTAssertEqual(chown(t.path, nobody, nobody), 0)
            for f in [dir, dir + "/model.safetensors", dir + "/config.json"] { XCTAssertEqual(chown(f, nobody, nobody), 0) }
        }
        return dir
    }

    /// Every file (sha256) and directory under `dir`, the lock file excepted.
    private func snapshot(_ dir: String) throws -> [String: String] {
        var out = try directoryDigest(dir)
        if let e = FileManager.default.enumerator(atPath: dir) {
            while let rel = e.nextObject() as? String {
                var isDir: ObjCBool = false
                if FileManager.default.fileExists(atPath: dir + "/" + rel, isDirectory: &isDir), isDir.boolValue { out[rel] = "<dir>" }
            }
        }
        return out
    }

    private func expectRejected(_ args: [String], in dir: String, mentions: [String], file: StaticString = #filePath, line: UInt = #line) throws {
        let before = try snapshot(dir)
        let r = try wledger(args, in: dir)
        let what = "wledger \(args.joined(separator: " ")): \(r.stderr.debugDescription)"
        XCTAssertEqual(r.status, 2, what, file: file, line: line)
        let message = r.stderr.trimmingCharacters(in: .newlines)
        XCTAssertFalse(message.isEmpty || message.contains("\n"), "not one line: \(what)", file: file, line: line)
        for m in mentions { XCTAssertTrue(message.contains(m), "does not mention \(m.debugDescription): \(what)", file: file, line: line) }
        XCTAssertEqual(try snapshot(dir), before, "changed after a failed \(what)", file: file, line: line)
    }

    private func expectSuccess(_ args: [String], in dir: String, file: StaticString = #filePath, line: UInt = #line) throws -> ProcessOutput {
        let r = try wledger(args, in: dir)
        XCTAssertEqual(r.status, 0, "wledger \(args.joined(separator: " ")): \(r.stderr)", file: file, line: line)
        return r
    }

    func testUnwritableWorkTree() throws {
        let dir = try makeModel()
        let canonicalDir = (dir as NSString).standardizingPath

        // init cannot create .wledger/.
        chmod(dir, 0o555)
        try expectRejected(["init"], in: dir, mentions: ["'\(canonicalDir)/.wledger'", "permission denied"])
        chmod(dir, 0o755)

        // A ledger with two commits; then the work tree directory becomes read-only.
        _ = try expectSuccess(["init", "-q"], in: dir)
        try SimulatedEdit.modify(file: dir + "/model.safetensors", tensor: "b") { w, _ in w[2] += 1 }
        _ = try expectSuccess(["commit", "-q", "-m", "edit"], in: dir)
        _ = try expectSuccess(["log", "--oneline"], in: dir)
        // A read-only weight file in a writable directory is replaced, as git would, not written
        // through (the in-place update needs write permission on the file).
        chmod(dir + "/model.safetensors", 0o444)
        let edited = try fileSHA256(dir + "/model.safetensors")
        XCTAssertTrue(try expectSuccess(["checkout", "HEAD~1", "--json"], in: dir).stdout.contains("\"patchedInPlace\" : [\n\n  ]"))
        XCTAssertNotEqual(try fileSHA256(dir + "/model.safetensors"), edited)
        _ = try expectSuccess(["checkout", "-q", "main"], in: dir)
        XCTAssertEqual(try fileSHA256(dir + "/model.safetensors"), edited)
        // Now nothing in the work tree is writable: its directory and its weight file.
        chmod(dir + "/model.safetensors", 0o444)
        chmod(dir, 0o555)
        for args in [["checkout", "HEAD~1"], ["checkout", "--force", "HEAD~1"], ["revert", "HEAD"]] {
            try expectRejected(args, in: dir, mentions: ["'\(canonicalDir)/", "permission denied", "'\(canonicalDir)'"])
        }
        // Reading the work tree and writing only the ledger still work.
        XCTAssertTrue(try expectSuccess(["status"], in: dir).stdout.contains("nothing to commit"))
        try SimulatedEdit.modify(file: dir + "/model.safetensors", tensor: "a") { w, _ in w[0] += 1 }   // as the owner would
        _ = try expectSuccess(["commit", "-q", "-m", "recorded from a read-only tree"], in: dir)
        _ = try expectSuccess(["fsck"], in: dir)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/.wledger/pending.json"), "a journal was left behind")
        // stash records the change, then cannot write HEAD's bytes back: the write fails before
        // its journal, so the entry is dropped again (a retry does not stash twice), and the
        // work tree keeps the change.
        try SimulatedEdit.modify(file: dir + "/model.safetensors", tensor: "a") { w, _ in w[1] += 1 }
        let dirty = try snapshot(dir).filter { !$0.key.hasPrefix(".wledger") }
        var r = try wledger(["stash"], in: dir)
        XCTAssertEqual(r.status, 2, r.stderr)
        XCTAssertTrue(r.stderr.contains("permission denied") && r.stderr.split(separator: "\n").count == 1, r.stderr)
        XCTAssertEqual(try snapshot(dir).filter { !$0.key.hasPrefix(".wledger") }, dirty)
        XCTAssertEqual(try expectSuccess(["stash", "list"], in: dir).stdout, "", "the entry was dropped again")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/.wledger/pending.json"), "a journal was left behind")
        r = try wledger(["stash"], in: dir)
        XCTAssertEqual(r.status, 2, r.stderr)
        XCTAssertEqual(try expectSuccess(["stash", "list"], in: dir).stdout, "", "a retry does not stash twice")
        XCTAssertTrue(try expectSuccess(["status", "-s"], in: dir).stdout.contains(" M a"))
        _ = try expectSuccess(["fsck"], in: dir)
        // Writable again: the same checkout succeeds, and so does the stash.
        chmod(dir, 0o755)
        chmod(dir + "/model.safetensors", 0o644)
        _ = try expectSuccess(["stash", "-q"], in: dir)
        XCTAssertEqual(try expectSuccess(["stash", "list"], in: dir).stdout.split(separator: "\n").count, 1)
        XCTAssertEqual(try expectSuccess(["status", "-s"], in: dir).stdout, "")
        _ = try expectSuccess(["checkout", "-q", "HEAD~2"], in: dir)
        XCTAssertTrue(try expectSuccess(["status"], in: dir).stdout.contains("HEAD detached"))
    }
}
