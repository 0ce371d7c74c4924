import Foundation
import TestSupport
import XCTest

/// Names that mean two things, on the real SmolLM2 BF16, as a git user expects them: a branch
/// named `stash` is what `checkout stash` switches to (bytes, HEAD and message agree) while
/// `show stash` is stash@{0}; `@{-1}` names the same renamed branch `checkout -` goes to, also
/// after a new branch took the old name; an untracked file in the way of `stash pop` is named
/// with the remedy that works (moving it away).
final class RefNameClashTests: XCTestCase {
    func testCheckoutOfABranchNamedStashAndAtMinusOneAfterARenameAndAnUntrackedFileInAStashsWay() throws {
        let tmp = try TemporaryDirectory("ref-clash")
        let dir = (try tmp.copyModel(from: try Fixtures.smolLM2("bf16")) as NSString).standardizingPath
        let weights = dir + "/model.safetensors"
        func wl(_ args: [String]) throws -> ProcessOutput { try CLI.run(args, in: dir) }
        func files() throws -> [String: String] { try directoryDigest(dir).filter { !$0.key.hasPrefix(".wledger/") } }
        func commitID(_ rev: String) throws -> String {
            let r = try wl(["show", rev, "--json"])
            XCTAssertEqual(r.status, 0, r.stderr)
            return try XCTUnwrap((JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])?["id"] as? String)
        }
        func status() throws -> String { try wl(["status", "-sb"]).stdout }

        XCTAssertEqual(try wl(["init", "-q"]).status, 0)
        let base = try commitID("HEAD"), baseFiles = try files()
        // A stash entry, then a branch named `stash` at base.
        _ = try SimulatedEdit.rankOne(file: weights, tensor: "model.layers.3.mlp.down_proj.weight", seed: 1)
        XCTAssertEqual(try wl(["stash", "-q"]).status, 0)
        let stashed = try commitID("stash@{0}")
        XCTAssertEqual(try commitID("stash"), stashed, "a revision: stash@{0} before the branch, as git")
        XCTAssertEqual(try wl(["branch", "stash"]).status, 0)
        XCTAssertEqual(try commitID("stash"), stashed)
        var r = try wl(["checkout", "stash"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue((r.stdout + r.stderr).contains(String(base.prefix(12))), r.stdout + r.stderr)
        XCTAssertEqual(try status(), "## stash\n", "on the branch, clean")
        XCTAssertEqual(try files(), baseFiles)
        XCTAssertEqual(try commitID("HEAD"), base)

        // @{-1} and `checkout -` after `branch -m a b` and a new `a`: both go to b.
        XCTAssertEqual(try wl(["checkout", "-q", "-b", "a"]).status, 0)
        _ = try SimulatedEdit.rankOne(file: weights, tensor: "model.layers.5.mlp.down_proj.weight", seed: 2)
        XCTAssertEqual(try wl(["commit", "-q", "-m", "a1"]).status, 0)
        let a1 = try commitID("HEAD"), a1Files = try files()
        XCTAssertEqual(try wl(["checkout", "-q", "main"]).status, 0)
        XCTAssertEqual(try wl(["branch", "-m", "a", "b"]).status, 0)
        XCTAssertEqual(try wl(["branch", "a", "base"]).status, 0)
        XCTAssertEqual(try commitID("@{-1}"), a1, "the renamed branch, not the new one of the old name")
        XCTAssertEqual(try wl(["checkout", "-q", "@{-1}"]).status, 0)
        XCTAssertEqual(try status(), "## b\n")
        XCTAssertEqual(try files(), a1Files)
        XCTAssertEqual(try wl(["checkout", "-q", "main"]).status, 0)
        XCTAssertEqual(try wl(["checkout", "-q", "-"]).status, 0)
        XCTAssertEqual(try status(), "## b\n")

        // An untracked file where the stash has one: named, with "move it away".
        XCTAssertEqual(try wl(["checkout", "-q", "main"]).status, 0)
        XCTAssertEqual(try wl(["stash", "drop", "-q"]).status, 0)
        try "A\n".write(toFile: dir + "/notes.txt", atomically: true, encoding: .utf8)
        XCTAssertEqual(try wl(["stash", "-u", "-q"]).status, 0)
        try "B\n".write(toFile: dir + "/notes.txt", atomically: true, encoding: .utf8)
        let before = try directoryDigest(dir)
        r = try wl(["stash", "pop"])
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertEqual(r.stderr, "error: stash@{0} would overwrite the untracked file 'notes.txt'; move it away first\n")
        XCTAssertEqual(try directoryDigest(dir), before, "a refused pop changes nothing")
        try FileManager.default.removeItem(atPath: dir + "/notes.txt")
        XCTAssertEqual(try wl(["stash", "pop", "-q"]).status, 0)
        XCTAssertEqual(try String(contentsOfFile: dir + "/notes.txt", encoding: .utf8), "A\n")
    }
}
