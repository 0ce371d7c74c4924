import Foundation
import TestSupport
import XCTest

/// `wledger reflog` and `REF@{N}` on the real SmolLM2 BF16: every move of HEAD and of each branch
/// (init, commit, checkout, checkout -b, reset, branch -m/-d) is logged, newest first, with git's
/// messages; `reset --hard HEAD@{1}` brings back the commits a hard reset left behind, byte for
/// byte; a branch's log follows a rename and goes with a delete; refused commands log nothing;
/// bad selectors are one-line errors.
final class ReflogCommandTests: XCTestCase {
    func testReflogRecordsEveryMoveAndRecoversAHardReset() throws {
        let tmp = try TemporaryDirectory("reflog")
        let dir = (try tmp.copyModel(from: try Fixtures.smolLM2("bf16")) as NSString).standardizingPath
        let weights = dir + "/model.safetensors"
        func wl(_ args: [String]) throws -> ProcessOutput { try CLI.run(args, in: dir) }
        func files() throws -> [String: String] { try directoryDigest(dir).filter { !$0.key.hasPrefix(".wledger/") } }
        func commitID(_ rev: String) throws -> String {
            let r = try wl(["show", rev, "--json"])
            XCTAssertEqual(r.status, 0, r.stderr)
            let o = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
            return try XCTUnwrap(o["id"] as? String)
        }
        /// `reflog REF --json` as (commit, previous, message), newest first.
        func log(_ ref: String = "HEAD") throws -> [(commit: String, previous: String?, message: String)] {
            let r = try wl(["reflog", ref, "--json"])
            XCTAssertEqual(r.status, 0, r.stderr)
            let list = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]])
            for (i, e) in list.enumerated() {
                XCTAssertTrue((e["selector"] as? String)?.hasSuffix("@{\(i)}") == true, "\(e)")
                XCTAssertNotNil(ISO8601DateFormatter().date(from: e["date"] as? String ?? ""), "\(e)")
            }
            return try list.map { (try XCTUnwrap($0["commit"] as? String), $0["previous"] as? String, try XCTUnwrap($0["message"] as? String)) }
        }

        XCTAssertEqual(try wl(["init", "-q"]).status, 0)
        let base = try commitID("HEAD"), baseFiles = try files()
        XCTAssertEqual(try log().map(\.message), ["commit (initial): base"])
        XCTAssertNil(try log()[0].previous)
        _ = try SimulatedEdit.rankOne(file: weights, tensor: "model.layers.4.mlp.down_proj.weight", seed: 1)
        XCTAssertEqual(try wl(["commit", "-q", "-m", "one\n\nbody"]).status, 0)
        let one = try commitID("HEAD")
        _ = try SimulatedEdit.rankOne(file: weights, tensor: "model.layers.9.mlp.down_proj.weight", seed: 2)
        XCTAssertEqual(try wl(["commit", "-q", "-m", "two"]).status, 0)
        let two = try commitID("HEAD"), twoFiles = try files()

        // checkout -b logs the branch's creation and HEAD's move; back on main, HEAD moves again.
        var r: ProcessOutput
        XCTAssertEqual(try wl(["checkout", "-q", "-b", "side", "HEAD~1"]).status, 0)
        XCTAssertEqual(try log("side").map(\.message), ["branch: Created from \(one.prefix(12))"])
        XCTAssertEqual(try wl(["checkout", "-q", "main"]).status, 0)
        XCTAssertEqual(try log().map(\.message), ["checkout: moving from side to main", "checkout: moving from main to side",
                                                  "commit: two", "commit: one", "commit (initial): base"])
        XCTAssertEqual(try log().map(\.commit), [two, one, two, one, base])
        XCTAssertEqual(try log().map(\.previous), [one, two, one, base, nil])
        // @{-N}: the N-th previous checkout's branch, from HEAD's log.
        XCTAssertEqual(try commitID("@{-1}"), one, "side")
        XCTAssertEqual(try commitID("@{-2}~1"), one, "main~1")
        r = try wl(["show", "@{-3}"])
        XCTAssertEqual(r.status, 2, r.stderr)
        XCTAssertTrue(r.stderr.contains("HEAD's log has only 2 checkout(s)"), r.stderr)

        // A refused command moves nothing and logs nothing (layer 9 differs between main and side).
        _ = try SimulatedEdit.rankOne(file: weights, tensor: "model.layers.9.mlp.down_proj.weight", seed: 3)
        r = try wl(["checkout", "side"])
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertEqual(try log().count, 5)
        XCTAssertEqual(try wl(["checkout", "-q", "--force", "HEAD"]).status, 0)
        XCTAssertEqual(try log().count, 5, "discarding changes does not move HEAD")

        // The classic rescue: a hard reset to base, then back to where HEAD was before it.
        XCTAssertEqual(try wl(["reset", "-q", "--hard", "HEAD~2"]).status, 0)
        XCTAssertEqual(try files(), baseFiles)
        r = try wl(["reflog", "-n", "2"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, "\(base.prefix(12)) HEAD@{0}: reset: moving to HEAD~2\n\(two.prefix(12)) HEAD@{1}: checkout: moving from side to main\n")
        // As git, the count may be attached (-n2) or given alone (-2), in log too.
        for args in [["reflog", "-n2"], ["reflog", "-2"], ["reflog", "show", "-2"]] { XCTAssertEqual(try wl(args).stdout, r.stdout, "\(args)") }
        // As git's `reflog show HEAD@{1}`: the log from that entry on, numbered as in the whole log.
        let whole = try wl(["reflog"]).stdout.split(separator: "\n")
        XCTAssertGreaterThan(whole.count, 3)
        r = try wl(["reflog", "show", "HEAD@{1}"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout.split(separator: "\n"), Array(whole.dropFirst()))
        XCTAssertEqual(try wl(["reflog", "HEAD@{1}", "-n", "2"]).stdout.split(separator: "\n"), Array(whole[1...2]))
        XCTAssertEqual(try wl(["reflog", "@{1}", "-1"]).stdout, try wl(["reflog", "main@{1}", "-1"]).stdout)
        XCTAssertTrue(try wl(["reflog", "main@{1}", "-1"]).stdout.contains(" main@{1}: "))
        XCTAssertEqual(try wl(["reflog", "HEAD@{\(whole.count)}"]).stdout, "")
        let twoLines = try wl(["log", "--oneline", "-n", "2", "HEAD@{1}"]).stdout
        XCTAssertEqual(twoLines.split(separator: "\n").count, 2, twoLines)
        for args in [["log", "--oneline", "-n2", "HEAD@{1}"], ["log", "-2", "--oneline", "HEAD@{1}"]] { XCTAssertEqual(try wl(args).stdout, twoLines, "\(args)") }
        XCTAssertEqual(try commitID("HEAD@{1}"), two)
        XCTAssertEqual(try commitID("HEAD@{1}~1"), one)
        XCTAssertEqual(try wl(["reset", "-q", "--hard", "HEAD@{1}"]).status, 0)
        XCTAssertEqual(try files(), twoFiles)
        XCTAssertEqual(try commitID("main"), two)

        // The branch's own log: init, two commits, two resets (checkouts do not move it).
        XCTAssertEqual(try log("main").map(\.commit), [two, base, two, one, base])
        XCTAssertEqual(try log("@").map(\.commit), try log("main").map(\.commit))
        for (sel, want) in [("main@{0}", two), ("main@{1}", base), ("@{2}", two), ("main@{3}", one), ("main@{4}", base)] {
            XCTAssertEqual(try commitID(sel), want, sel)
        }
        r = try wl(["show", "main@{5}"])
        XCTAssertEqual(r.status, 2, r.stderr)
        XCTAssertTrue(r.stderr.contains("goes back only 4 moves"), r.stderr)

        // Rename: the log follows the branch, with the rename appended; delete: it goes.
        XCTAssertEqual(try wl(["branch", "-m", "side", "feature"]).status, 0)
        XCTAssertEqual(try log("feature").map(\.message), ["Branch: renamed refs/heads/side to refs/heads/feature",
                                                           "branch: Created from \(one.prefix(12))"])
        XCTAssertEqual(try wl(["branch", "-d", "feature"]).status, 0)
        XCTAssertEqual(try wl(["branch", "feature", "base"]).status, 0)
        XCTAssertEqual(try log("feature").map(\.message), ["branch: Created from base"])
        XCTAssertEqual(try log("feature").map(\.commit), [base])
        // `checkout @{-1}` goes back to the branch it names, attached.
        XCTAssertEqual(try wl(["checkout", "-q", "feature"]).status, 0)
        XCTAssertEqual(try wl(["checkout", "-q", "@{-1}"]).status, 0)
        XCTAssertEqual(try wl(["status"]).stdout.split(separator: "\n").first, "On branch main")
        XCTAssertEqual(try files(), twoFiles)
        // A reset that stays (discarding changes) is logged, as git logs it: HEAD@{1} is HEAD.
        XCTAssertEqual(try wl(["reset", "-q", "--hard"]).status, 0)
        XCTAssertEqual(try log().first?.message, "reset: moving to HEAD")
        XCTAssertEqual(try log().first?.previous, two)
        XCTAssertEqual(try commitID("HEAD@{1}"), two)
        XCTAssertEqual(try log("main").first?.message, "reset: moving to HEAD")
        // Renaming the current branch: both logs record it with the commit as old and new; the
        // current branch cannot be force-moved (that is reset's job).
        XCTAssertEqual(try wl(["branch", "-m", "trunk"]).status, 0)
        for ref in ["HEAD", "trunk"] {
            XCTAssertEqual(try log(ref).first?.message, "Branch: renamed refs/heads/main to refs/heads/trunk", ref)
            XCTAssertEqual(try log(ref).first?.previous, two, ref)
        }
        XCTAssertEqual(try log("trunk").count, 7, "main's log followed the rename")
        r = try wl(["branch", "-f", "trunk", "base"])
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("HEAD points to it"), r.stderr)

        // Bad selectors and refs: one line, exit 2, nothing changed.
        XCTAssertEqual(try wl(["tag", "v1"]).status, 0)
        let before = try directoryDigest(dir)
        for (args, needle) in [(["show", "HEAD@{-1}"], "not a reflog selector"), (["show", "HEAD@{9223372036854775807}"], "goes back only"), (["show", "HEAD@{99999999999999999999}"], "goes back only"), (["show", "stash@{2147483647}"], "the stash has"), (["show", "HEAD@{x}"], "not a reflog selector"),
                               (["reflog", "v1"], "tags have no log"), (["reflog", "HEAD@{-1}"], "not a reflog selector"), (["reflog", "v1@{1}"], "tags have no log"), (["reflog", "nope"], "unknown revision 'nope'"),
                               (["show", "nope@{1}"], "unknown revision 'nope@{1}'"), (["reflog", "--max-count=-1"], "-n must be 0 or more"),
                               (["checkout", "HEAD@{99}"], "goes back only")] {
            r = try wl(args)
            XCTAssertEqual(r.status, 2, "\(args): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains(needle), "\(args): \(r.stderr)")
            XCTAssertEqual(r.stderr.split(separator: "\n").filter { !$0.hasPrefix("Usage:") && !$0.hasPrefix("  See") }.count, 1, r.stderr)
            XCTAssertEqual(try directoryDigest(dir), before, "\(args) changed something")
        }
        XCTAssertEqual(try wl(["fsck", "-q"]).status, 0)
    }
}
