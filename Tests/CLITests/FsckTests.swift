import Foundation
import TestSupport
import XCTest

/// A single flipped bit in stored data is found by fsck and reported with the commits and
/// tensors it affects; exit 1.
final class FsckTests: XCTestCase {
    /// Flips one bit in the middle of the first chunk of the object chosen by `sql` (a query
    /// returning an object id) in the SQLite ledger, with Python's sqlite3 module.
    func flipBit(ledger: String, objectQuery sql: String) throws -> String {
        let script = """
            import sqlite3, sys
            db = sqlite3.connect(sys.argv[1])
            obj = db.execute(sys.argv[2]).fetchone()[0]
            data = bytearray(db.execute("SELECT data FROM objectChunk WHERE object = ? AND seq = 0", (obj,)).fetchone()[0])
            data[len(data) // 2] ^= 0x10
            db.execute("UPDATE objectChunk SET data = ? WHERE object = ? AND seq = 0", (bytes(data), obj))
            db.commit()
            print(obj)
            """
        let r = try runProcess("/usr/bin/env", ["python3", "-c", script, ledger, sql])
        XCTAssertEqual(r.status, 0, r.stderr)
        return r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// A wrong probe (the sample a scan compares before hashing) would make status report an
    /// unchanged tensor as modified: `fsck --full`, which rebuilds every version, reports it.
    func testWrongProbeIsReported() throws {
        let tmp = try TemporaryDirectory("fsck-probe")
        let dir = try tmp.copyModel(from: try Fixtures.smolLM2("f32"))
        XCTAssertEqual(try CLI.run(["init", "-q"], in: dir).status, 0)
        _ = try SimulatedEdit.rankOne(file: dir + "/model.safetensors", tensor: "model.layers.4.mlp.down_proj.weight", seed: 1)
        XCTAssertEqual(try CLI.run(["commit", "-q", "-m", "edit"], in: dir).status, 0)
        XCTAssertEqual(try CLI.run(["fsck", "--full"], in: dir).status, 0)
        let script = """
            import sqlite3, sys
            db = sqlite3.connect(sys.argv[1])
            h = db.execute('SELECT v.hash FROM tensorVersion v JOIN commitTensor t ON t.hash = v.hash JOIN "commit" c ON c.id = t."commit" WHERE c.message = ?', ('edit',)).fetchone()[0]
            db.execute("UPDATE tensorVersion SET probe = probe + 1 WHERE hash = ?", (h,))
            db.commit()
            """
        let py = try runProcess("/usr/bin/env", ["python3", "-c", script, dir + "/.wledger/ledger"])
        XCTAssertEqual(py.status, 0, py.stderr)
        let r = try CLI.run(["fsck", "--full"], in: dir)
        XCTAssertEqual(r.status, 1, r.stdout)
        XCTAssertTrue(r.stdout.contains("probe differs"), r.stdout)
    }

    func testFlippedBitsAreReportedWithCommitAndTensor() throws {
        let source = try Fixtures.smolLM2("f32")
        let tmp = try TemporaryDirectory("fsck")
        let dir = try tmp.copyModel(from: source)
        let tensor = "model.layers.4.mlp.down_proj.weight"
        XCTAssertEqual(try CLI.run(["init", "-q"], in: dir).status, 0)
        for seed in [1, 2] as [UInt64] {
            _ = try SimulatedEdit.rankOne(file: dir + "/model.safetensors", tensor: tensor, seed: seed, scale: 0.05)
            XCTAssertEqual(try CLI.run(["commit", "-q", "-m", "edit \(seed)"], in: dir).status, 0)
        }
        // A third commit edits another tensor: it keeps the second edit's version of `tensor`.
        _ = try SimulatedEdit.rankOne(file: dir + "/model.safetensors", tensor: "model.layers.5.mlp.down_proj.weight", seed: 3, scale: 0.05)
        XCTAssertEqual(try CLI.run(["commit", "-q", "-m", "edit 3"], in: dir).status, 0)
        let log = try CLI.run(["log", "--oneline"], in: dir).stdout.split(separator: "\n").map { String($0.prefix(12)) }
        XCTAssertEqual(log.count, 4)
        let (third, second, first, base) = (log[0], log[1], log[2], log[3])
        XCTAssertEqual(try CLI.run(["fsck", "--full"], in: dir).status, 0)
        let ledger = dir + "/.wledger/ledger"

        // A bit in the second edit's patch: that commit and tensor, nothing else.
        let patch = try flipBit(ledger: ledger, objectQuery:
            "SELECT v.object FROM tensorVersion v JOIN commitTensor t ON t.hash = v.hash JOIN \"commit\" c ON c.id = t.\"commit\" WHERE c.message = 'edit 2'")
        var r = try CLI.run(["fsck"], in: dir)
        XCTAssertEqual(r.status, 1, r.stdout)
        let lines = r.stdout.split(separator: "\n").map(String.init)
        XCTAssertTrue(lines[0].hasPrefix("commit \(second): tensor '\(tensor)' version "), r.stdout)
        XCTAssertTrue(lines[0].contains("stored object \(patch.prefix(12)) is corrupt: "), r.stdout)
        XCTAssertFalse(lines[0].contains("is corrupt: object"), "the reason once: \(r.stdout)")
        XCTAssertTrue(lines[0].hasSuffix("; also in 1 other commit(s): \(third) (HEAD)"), r.stdout)
        XCTAssertEqual(lines.count, 2, "one problem and the summary: \(r.stdout)")
        XCTAssertTrue(lines[1].hasSuffix("1 problem(s)"), r.stdout)
        // Commands that rebuild that version name the tensor, and fsck.
        for args in [["diff", "--stat", "HEAD~2", "HEAD"], ["prune", "-q", "HEAD~1", "--keep", "40%"]] {
            r = try CLI.run(args, in: dir)
            XCTAssertEqual(r.status, 1, "\(args): \(r.stderr)")
            XCTAssertTrue(r.stderr.hasPrefix("error: tensor '\(tensor)': object "), "\(args): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains("object '\(patch.prefix(12))' is corrupt: "), r.stderr)
            XCTAssertTrue(r.stderr.contains("(run 'wledger fsck' for every commit it damages)"), r.stderr)
        }
        XCTAssertEqual(try CLI.run(["log", "--oneline"], in: dir).stdout.split(separator: "\n").count, 4, "nothing recorded")
        _ = try flipBit(ledger: ledger, objectQuery: "SELECT '\(patch)'")  // flip it back
        XCTAssertEqual(try CLI.run(["fsck", "--full"], in: dir).status, 0)

        // A bit in the base keyframe of that tensor: the base and both edits patched from it.
        _ = try flipBit(ledger: ledger, objectQuery:
            "SELECT v.object FROM tensorVersion v JOIN commitTensor t ON t.hash = v.hash JOIN \"commit\" c ON c.id = t.\"commit\" WHERE c.kind = 'base' AND t.name = '\(tensor)'")
        r = try CLI.run(["fsck", "--json"], in: dir)
        XCTAssertEqual(r.status, 1)
        struct Report: Decodable { var problems: [String] }
        let problems = try JSONDecoder().decode(Report.self, from: Data(r.stdout.utf8)).problems
        XCTAssertEqual(problems.count, 3, "\(problems)")
        for c in [base, first, second] {
            XCTAssertTrue(problems.contains { $0.hasPrefix("commit \(c): tensor '\(tensor)'") }, "\(c): \(problems)")
        }
        XCTAssertTrue(problems.filter { $0.contains("patched from damaged version") }.count == 2, "\(problems)")
    }

    /// A damaged side-file object is reported on the line of the commit that stored it, with the
    /// later commits that keep it (they named only tensors before), and checkout names the file.
    func testDamagedSideFileNamesTheCommitsThatKeepIt() throws {
        let tmp = try TemporaryDirectory("fsck-side")
        let dir = tmp.path + "/m"
        try writeTinyModel(dir, tensors: [("w", .f32, [2], [0, 0, 0x80, 0x3f, 0, 0, 0, 0x40])])
        try Data((0..<4000).map { UInt8($0 % 251) }).write(to: URL(fileURLWithPath: dir + "/tokenizer.json"))
        XCTAssertEqual(try CLI.run(["init", "-q"], in: dir).status, 0)
        try Data("notes".utf8).write(to: URL(fileURLWithPath: dir + "/notes.txt"))
        XCTAssertEqual(try CLI.run(["commit", "-q", "-m", "second"], in: dir).status, 0)
        let log = try CLI.run(["log", "--oneline"], in: dir).stdout.split(separator: "\n").map { String($0.prefix(12)) }
        let (second, base) = (log[0], log[1])
        let object = try flipBit(ledger: dir + "/.wledger/ledger", objectQuery:
            "SELECT f.object FROM commitFile f WHERE f.path = 'tokenizer.json'")
        var r = try CLI.run(["fsck"], in: dir)
        XCTAssertEqual(r.status, 1, r.stdout)
        let lines = r.stdout.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.count, 2, r.stdout)
        XCTAssertTrue(lines[0].hasPrefix("commit \(base): file 'tokenizer.json' object \(object.prefix(12)): "), r.stdout)
        XCTAssertTrue(lines[0].hasSuffix("; also in 1 other commit(s): \(second) (HEAD)"), r.stdout)
        r = try CLI.run(["checkout", "HEAD", "--output", tmp.path + "/out"], in: dir)
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("tokenizer.json"), r.stderr)
    }
}
