import Foundation
import TestSupport
import XCTest

/// `wledger reset [--soft|--hard] REV` on the real SmolLM2 BF16: the current branch (or a
/// detached HEAD) moves to REV; --soft keeps the work tree, whose difference from the new HEAD is
/// then uncommitted and commits again to the same tree; --hard rewrites the work tree to REV and
/// discards uncommitted changes and removes side files the revision does not track; commits left
/// behind are reached again by their ids; a hard reset killed after its checkout's journal is
/// finished by the next command, and one that fails before it moves the branch back; refusals
/// change nothing.
final class ResetCommandTests: XCTestCase {
    func testResetMovesTheBranchAndSoftOrHardTheWorkTree() throws {
        let tmp = try TemporaryDirectory("reset")
        let dir = (try tmp.copyModel(from: try Fixtures.smolLM2("bf16")) as NSString).standardizingPath
        let weights = dir + "/model.safetensors"
        func wl(_ args: [String], env: [String: String] = [:]) throws -> ProcessOutput { try CLI.run(args, in: dir, environment: env) }
        func files() throws -> [String: String] { try directoryDigest(dir).filter { !$0.key.hasPrefix(".wledger/") } }
        func object(_ r: ProcessOutput) throws -> [String: Any] {
            XCTAssertEqual(r.status, 0, r.stderr)
            return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        }
        func commitID(_ rev: String) throws -> String { try XCTUnwrap(try object(wl(["show", rev, "--json"]))["id"] as? String) }
        func branchCommit(_ name: String) throws -> String? {
            let r = try wl(["branch", "--json"])
            let list = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]])
            return list.first { $0["name"] as? String == name }?["commit"] as? String
        }
        func modified() throws -> [String] {
            let s = try object(wl(["status", "--json"]))
            return (s["modifiedTensors"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }.sorted()
        }

        XCTAssertEqual(try wl(["init", "-q"]).status, 0)
        let base = try commitID("HEAD"), baseFiles = try files()
        let l4 = "model.layers.4.mlp.down_proj.weight", l9 = "model.layers.9.mlp.down_proj.weight"
        _ = try SimulatedEdit.rankOne(file: weights, tensor: l4, seed: 1)
        XCTAssertEqual(try wl(["commit", "-q", "-m", "one"]).status, 0)
        let one = try commitID("HEAD")
        _ = try SimulatedEdit.rankOne(file: weights, tensor: l9, seed: 2)
        XCTAssertEqual(try wl(["commit", "-q", "-m", "two"]).status, 0)
        let two = try commitID("HEAD"), twoFiles = try files()

        // Soft: the branch moves, the files stay, and their difference is uncommitted.
        var r = try wl(["reset", "HEAD~1"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, "Reset branch 'main' to \(one.prefix(12)), was \(two.prefix(12))\n")
        XCTAssertEqual(try branchCommit("main"), one)
        XCTAssertEqual(try files(), twoFiles)
        XCTAssertEqual(try modified(), [l9])
        // Committing again records the same weights: nothing differs from the commit left behind.
        XCTAssertEqual(try wl(["commit", "-q", "-m", "two, again"]).status, 0)
        let again = try commitID("HEAD")
        XCTAssertNotEqual(again, two)
        XCTAssertEqual(try modified(), [])
        let d = try object(wl(["diff", two, again, "--json", "--no-spectrum"]))
        XCTAssertEqual((d["tensors"] as? [Any])?.count, 0, "\(d)")
        // The same commit made twice (same parent, tree, message and second, as with a pinned
        // $WLEDGER_TIME) is the commit already stored, as in git: no duplicate-row error.
        let pinned = ["WLEDGER_TIME": "1800000000"]
        for _ in 0..<2 {
            XCTAssertEqual(try wl(["reset", "-q", "HEAD~1"]).status, 0)
            r = try wl(["commit", "-q", "-m", "pinned"], env: pinned)
            XCTAssertEqual(r.status, 0, r.stderr)
        }
        let pinnedID = try commitID("HEAD")
        XCTAssertEqual(try commitID("HEAD@{2}"), pinnedID, "the first commit, made again")
        XCTAssertEqual(try commitID("HEAD~1"), one)
        XCTAssertEqual(try wl(["fsck", "-q", "--full"]).status, 0)
        XCTAssertEqual(try wl(["reset", "-q", again]).status, 0)

        // Hard: back to base, files included; then forward again to the commit left behind, by id.
        r = try wl(["reset", "--hard", "base", "--json"])
        let hard = try object(r)
        XCTAssertEqual(hard["from"] as? String, again)
        XCTAssertEqual(hard["commit"] as? String, base)
        XCTAssertEqual(hard["mode"] as? String, "hard")
        XCTAssertEqual(try files(), baseFiles)
        XCTAssertEqual(try modified(), [])
        XCTAssertEqual(try branchCommit("main"), base)
        r = try wl(["reset", "--hard", String(two.prefix(12))])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try files(), twoFiles)
        XCTAssertEqual(try branchCommit("main"), two)

        // --hard discards uncommitted changes (as checkout --force HEAD).
        _ = try SimulatedEdit.rankOne(file: weights, tensor: l4, seed: 3)
        XCTAssertEqual(try modified(), [l4])
        XCTAssertEqual(try wl(["reset", "-q", "--hard"]).status, 0)
        XCTAssertEqual(try files(), twoFiles)
        XCTAssertEqual(try modified(), [])

        // A side file added by a commit goes with a hard reset past it; HEAD stays on the branch.
        try "notes\n".write(toFile: dir + "/NOTES.md", atomically: true, encoding: .utf8)
        XCTAssertEqual(try wl(["commit", "-q", "-m", "notes"]).status, 0)
        XCTAssertEqual(try wl(["reset", "-q", "--hard", "HEAD~1"]).status, 0)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/NOTES.md"))
        XCTAssertEqual(try files(), twoFiles)
        let status = try object(wl(["status", "--json"]))
        XCTAssertEqual(status["clean"] as? Bool, true, "\(status)")
        XCTAssertEqual(status["branch"] as? String, "main")
        XCTAssertEqual(try branchCommit("main"), two)

        // Refusals: exit code, one line, nothing changed.
        XCTAssertEqual(try wl(["bisect", "start", "HEAD", "base", "--no-checkout"]).status, 0)
        let before = try directoryDigest(dir)
        for (args, code, needle) in [(["reset", "nope"], Int32(2), "nope"),
                                     (["reset", "--soft", "--hard", "HEAD~1"], 2, "cannot be combined"),
                                     (["reset", "--hard", "HEAD~1"], 1, "a bisect is running")] {
            r = try wl(args)
            XCTAssertEqual(r.status, code, "\(args): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains(needle), "\(args): \(r.stderr)")
            XCTAssertEqual(r.stderr.split(separator: "\n").filter { !$0.hasPrefix("Usage:") && !$0.hasPrefix("  See") }.count, 1, r.stderr)
            XCTAssertEqual(try directoryDigest(dir), before, "\(args) changed something")
        }
        XCTAssertEqual(try wl(["bisect", "reset", "-q"]).status, 0)

        // Detached: HEAD moves, the branch stays.
        XCTAssertEqual(try wl(["checkout", "-q", String(one.prefix(12))]).status, 0)
        r = try wl(["reset", "base"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, "Reset HEAD (detached) to \(base.prefix(12)), was \(one.prefix(12))\n")
        XCTAssertEqual(try commitID("HEAD"), base)
        XCTAssertEqual(try branchCommit("main"), two)
        XCTAssertEqual(try modified(), [l4], "one's edit is now uncommitted")

        // A hard reset killed after its checkout's journal: the next command finishes it.
        XCTAssertEqual(try wl(["checkout", "-q", "--force", "main"]).status, 0)
        r = try wl(["reset", "-q", "--hard", "HEAD~1"], env: ["WLEDGER_FAULT": "checkout-journaled"])
        XCTAssertEqual(r.status, 9, r.stderr)
        r = try wl(["status", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("completed an interrupted checkout"), r.stderr)
        XCTAssertEqual(try branchCommit("main"), one)
        XCTAssertEqual(try modified(), [])
        XCTAssertEqual(try wl(["fsck", "-q"]).status, 0)

        // A hard reset whose rebuild fails before its journal (a corrupted ledger object, one bit
        // flipped in a base keyframe): the branch goes back and no file changes.
        let beforeCorrupt = try files()
        let script = """
            import sqlite3, sys
            db = sqlite3.connect(sys.argv[1])
            obj = db.execute('SELECT v.object FROM tensorVersion v JOIN commitTensor t ON t.hash = v.hash WHERE t."commit" = ? AND t.name = ?',
                             (sys.argv[2], sys.argv[3])).fetchone()[0]
            data = bytearray(db.execute("SELECT data FROM objectChunk WHERE object = ? AND seq = 0", (obj,)).fetchone()[0])
            data[len(data) // 2] ^= 0x10
            db.execute("UPDATE objectChunk SET data = ? WHERE object = ? AND seq = 0", (bytes(data), obj))
            db.commit()
            """
        let py = try runProcess("/usr/bin/env", ["python3", "-c", script, dir + "/.wledger/ledger", base, "model.layers.0.mlp.down_proj.weight"])
        XCTAssertEqual(py.status, 0, py.stderr)
        r = try wl(["reset", "--hard", "base"])
        XCTAssertNotEqual(r.status, 0, r.stdout)
        XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
        XCTAssertTrue(r.stderr.hasPrefix("error: tensor 'model.layers.0.mlp.down_proj.weight': object "), r.stderr)
        XCTAssertEqual(try branchCommit("main"), one, "the branch went back")
        XCTAssertEqual(try files(), beforeCorrupt)
    }
}
