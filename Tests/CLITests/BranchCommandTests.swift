import Foundation
import TestSupport
import XCTest

/// `wledger checkout -b NAME [REV]` on the real SmolLM2 BF16: creates the branch at the revision
/// and switches to it, with the revision's bytes in the work tree; at HEAD's own commit it writes
/// nothing and keeps uncommitted changes (as git does). A refused or killed checkout creates no
/// branch, or (killed after its journal) the recovery creates it with the rest of the checkout.
/// Then `log A..B` and `diff A..B` over the branches it made.
final class BranchCommandTests: XCTestCase {
    func testCheckoutDashBCreatesTheBranchOnlyWithTheCheckout() throws {
        let tmp = try TemporaryDirectory("checkout-b")
        let dir = (try tmp.copyModel(from: try Fixtures.smolLM2("bf16")) as NSString).standardizingPath
        let weights = dir + "/model.safetensors"
        func wl(_ args: [String], env: [String: String] = [:]) throws -> ProcessOutput { try CLI.run(args, in: dir, environment: env) }
        func files() throws -> [String: String] { try directoryDigest(dir).filter { !$0.key.hasPrefix(".wledger/") } }
        /// Branch name → (commit, current).
        func branches() throws -> [String: (commit: String, current: Bool)] {
            let r = try wl(["branch", "--json"])
            XCTAssertEqual(r.status, 0, r.stderr)
            let list = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]])
            var out: [String: (commit: String, current: Bool)] = [:]
            for b in list { out[b["name"] as! String] = (b["commit"] as! String, b["current"] as! Bool) }
            return out
        }
        func commitID(_ rev: String) throws -> String {
            let r = try wl(["show", rev, "--json"])
            XCTAssertEqual(r.status, 0, r.stderr)
            return try XCTUnwrap((JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])?["id"] as? String)
        }

        XCTAssertEqual(try wl(["init", "-q"]).status, 0)
        _ = try SimulatedEdit.rankOne(file: weights, tensor: "model.layers.4.mlp.down_proj.weight", seed: 1)
        XCTAssertEqual(try wl(["commit", "-q", "-m", "one"]).status, 0)
        let one = try commitID("HEAD"), oneFiles = try files()
        _ = try SimulatedEdit.rankOne(file: weights, tensor: "model.layers.9.mlp.down_proj.weight", seed: 2)
        XCTAssertEqual(try wl(["commit", "-q", "-m", "two"]).status, 0)
        let two = try commitID("HEAD"), twoFiles = try files()

        // A new branch at an earlier commit: its bytes, HEAD on the branch, main where it was.
        var r = try wl(["checkout", "-b", "side", "HEAD~1"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.hasPrefix("Switched to a new branch 'side' at \(one.prefix(12))"), r.stdout)
        XCTAssertEqual(try files(), oneFiles)
        var b = try branches()
        XCTAssertEqual(b["side"]?.commit, one)
        XCTAssertEqual(b["side"]?.current, true)
        XCTAssertEqual(b["main"]?.commit, two)

        // Refused: the name exists, is not a valid ref name, or is combined with --output. Exit
        // code, one-line message, and nothing changed.
        for (args, code, needle) in [(["checkout", "-b", "side", "main"], Int32(1), "a branch named 'side' already exists"),
                                     (["checkout", "-b", "bad..name", "main"], 2, "'bad..name'"),
                                     (["checkout", "-b", "out", "main", "--output", tmp.path + "/out"], 2, "--output")] {
            r = try wl(args)
            XCTAssertEqual(r.status, code, "\(args): \(r.stderr)")
            XCTAssertTrue(r.stderr.hasPrefix("error: ") && r.stderr.contains(needle), "\(args): \(r.stderr)")
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
            XCTAssertEqual(try files(), oneFiles, "\(args)")
            XCTAssertEqual(Set(try branches().keys), ["main", "side"], "\(args)")
            XCTAssertEqual(try branches()["side"]?.current, true, "\(args): HEAD stays")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: tmp.path + "/out"))

        // Uncommitted changes: a new branch elsewhere is refused and not created ...
        // (layer 9, which main and side have differently: checking out main would overwrite it)
        _ = try SimulatedEdit.rankOne(file: weights, tensor: "model.layers.9.mlp.down_proj.weight", seed: 3)
        let dirtyFiles = try files()
        r = try wl(["checkout", "-b", "elsewhere", "main"])
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("your local changes would be overwritten"), r.stderr)
        XCTAssertNil(try branches()["elsewhere"])
        XCTAssertEqual(try branches()["side"]?.current, true, "HEAD stays")
        XCTAssertEqual(try files(), dirtyFiles)

        // ... and one at HEAD's commit keeps them: nothing written, the next commit goes there.
        r = try wl(["checkout", "-b", "keep", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(json["branchCreated"] as? Bool, true)
        XCTAssertEqual((json["written"] as? [String])?.count, 0)
        XCTAssertEqual(try files(), dirtyFiles)
        XCTAssertEqual(try wl(["commit", "-q", "-m", "three"]).status, 0)
        b = try branches()
        XCTAssertEqual(b["keep"]?.current, true)
        XCTAssertNotEqual(b["keep"]?.commit, one)
        XCTAssertEqual(b["side"]?.commit, one)
        XCTAssertEqual(b["main"]?.commit, two)

        // Killed once its journal is written: the next command finishes the checkout, branch included.
        r = try wl(["checkout", "-q", "-b", "crashed", "main"], env: ["WLEDGER_FAULT": "checkout-journaled"])
        XCTAssertEqual(r.status, 9, r.stderr)
        r = try wl(["status", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("completed an interrupted checkout"), r.stderr)
        b = try branches()
        XCTAssertEqual(b["crashed"]?.commit, two)
        XCTAssertEqual(b["crashed"]?.current, true)
        XCTAssertEqual(try files(), twoFiles)
        XCTAssertEqual(try wl(["fsck", "-q"]).status, 0)

        // Ranges over these branches (main: base-one-two, keep: base-one-three; HEAD is main's
        // commit): `log A..B` lists B's commits that A does not have, newest first.
        let three = try XCTUnwrap(b["keep"]?.commit), base = try commitID("base")
        func logIDs(_ range: String) throws -> [String] {
            let r = try wl(["log", "--json", range])
            XCTAssertEqual(r.status, 0, "\(range): \(r.stderr)")
            let list = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]])
            return list.compactMap { $0["id"] as? String }
        }
        XCTAssertEqual(try logIDs("main..keep"), [three])
        XCTAssertEqual(try logIDs("keep..main"), [two])
        XCTAssertEqual(try logIDs("base..main"), [two, one])
        XCTAssertEqual(try logIDs("..main"), [], "HEAD is main's commit")
        XCTAssertEqual(try logIDs("side.."), [two])
        XCTAssertEqual(try logIDs(".."), [], "HEAD..HEAD")
        XCTAssertEqual(try wl(["tag", "v1.2", "side"]).status, 0)
        // An existing name is refused (exit 1, as `checkout -b` above), -f moves it and says so.
        for (args, message) in [(["tag", "v1.2", "main"], "error: tag 'v1.2' already exists (use -f to move it)\n"),
                                (["branch", "keep", "main"], "error: a branch named 'keep' already exists (use -f to move it)\n")] {
            r = try wl(args)
            XCTAssertEqual(r.status, 1, r.stderr)
            XCTAssertEqual(r.stderr, message)
        }
        XCTAssertEqual(try commitID("v1.2"), one)
        r = try wl(["tag", "-f", "v1.2", "main"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, "Moved tag v1.2 to \(two.prefix(12)) (was \(one.prefix(12)))\n")
        r = try wl(["tag", "-f", "v1.2", "side"])
        XCTAssertEqual(r.stdout, "Moved tag v1.2 to \(one.prefix(12)) (was \(two.prefix(12)))\n")
        r = try wl(["tag", "-f", "v1.2", "side"])
        XCTAssertEqual(r.stdout, "Tag v1.2 already at \(one.prefix(12)); unchanged\n", "-f to where it is moves nothing")
        XCTAssertEqual(try logIDs("v1.2..keep"), [three], "a dotted name on the left")
        // A detached HEAD is listed first, as git does.
        XCTAssertEqual(try wl(["checkout", "-q", "v1.2"]).status, 0)
        let detached = try wl(["branch"]).stdout.split(separator: "\n")
        XCTAssertTrue(detached.first?.hasPrefix("* (HEAD detached at \(one.prefix(12))) ") == true, "\(detached)")
        XCTAssertFalse(detached.dropFirst().contains { $0.hasPrefix("*") }, "\(detached)")
        XCTAssertEqual(try wl(["checkout", "-q", "@{-1}"]).status, 0)
        XCTAssertFalse(try wl(["branch"]).stdout.contains("detached"))
        // A tag named as a branch is created with a warning; the name means the branch.
        r = try wl(["tag", "keep", "main"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stderr, "warning: a branch is named 'keep' too; 'keep' means the branch (the tag is refs/tags/keep)\n")
        XCTAssertEqual(try commitID("keep"), three)
        XCTAssertEqual(try commitID("refs/tags/keep"), two)
        // The same for a branch made by checkout -b or branch -m onto a tag's name.
        r = try wl(["checkout", "-q", "-b", "v1.2"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stderr, "warning: a tag is named 'v1.2' too; 'v1.2' means the branch (the tag is refs/tags/v1.2)\n")
        XCTAssertEqual(try wl(["checkout", "-q", "@{-1}"]).status, 0)
        XCTAssertEqual(try wl(["tag", "t-only", "main"]).status, 0)
        r = try wl(["branch", "-m", "v1.2", "t-only"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stderr, "warning: a tag is named 't-only' too; 't-only' means the branch (the tag is refs/tags/t-only)\n")
        r = try wl(["branch", "-m", "t-only", "b-only"])
        XCTAssertEqual(r.stderr, "", "no tag b-only")
        for args in [["branch", "-D", "b-only"], ["tag", "-d", "t-only"]] { XCTAssertEqual(try wl(args).status, 0, "\(args)") }
        XCTAssertEqual(try wl(["tag", "-d", "keep"]).status, 0)
        XCTAssertEqual(try logIDs("main"), [two, one, base])
        // `diff A..B` is `diff A B`.
        r = try wl(["diff", "--json", "--no-spectrum", "main..keep"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let twoArgs = try wl(["diff", "--json", "--no-spectrum", "main", "keep"]).stdout
        XCTAssertEqual(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? NSDictionary,
                       try JSONSerialization.jsonObject(with: Data(twoArgs.utf8)) as? NSDictionary)
        XCTAssertTrue(r.stdout.contains(three), r.stdout)
        // `A...B`: the commits of either that the other lacks, newest first; `diff A...B` is B
        // against their merge base (one).
        XCTAssertEqual(Set(try logIDs("main...keep")), [two, three])
        XCTAssertEqual(try logIDs("main...keep").count, 2)
        XCTAssertEqual(try logIDs("keep...main"), try logIDs("main...keep"), "symmetric")
        XCTAssertEqual(try logIDs("side...main"), [two])
        XCTAssertEqual(try logIDs("main...main"), [])
        r = try wl(["diff", "--json", "--no-spectrum", "main...keep"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let sinceFork = try wl(["diff", "--json", "--no-spectrum", String(one.prefix(12)), "keep"]).stdout
        XCTAssertEqual(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? NSDictionary,
                       try JSONSerialization.jsonObject(with: Data(sinceFork.utf8)) as? NSDictionary)
        for (args, needle) in [(["log", "main....keep"], "not a range"), (["log", "main..nope"], "'nope'"),
                               (["diff", "main..keep", "HEAD"], "given alone")] {
            r = try wl(args)
            XCTAssertEqual(r.status, 2, "\(args): \(r.stderr)")
            XCTAssertTrue(r.stderr.hasPrefix("error: ") && r.stderr.contains(needle), "\(args): \(r.stderr)")
        }
    }

    /// `wledger branch -m [OLD] NEW`: renames in one transaction, HEAD follows the current branch,
    /// files untouched; refusals (existing name without -f, HEAD's branch as the replaced one,
    /// unknown or invalid names, detached HEAD without OLD) change nothing.
    func testBranchDashMRenames() throws {
        let tmp = try TemporaryDirectory("branch-m")
        let dir = (try tmp.copyModel(from: try Fixtures.smolLM2("bf16")) as NSString).standardizingPath
        func wl(_ args: [String]) throws -> ProcessOutput { try CLI.run(args, in: dir) }
        func refs() throws -> [String: (commit: String, current: Bool)] {
            let r = try wl(["branch", "--json"])
            XCTAssertEqual(r.status, 0, r.stderr)
            var out: [String: (commit: String, current: Bool)] = [:]
            for b in try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]]) {
                out[b["name"] as! String] = (b["commit"] as! String, b["current"] as! Bool)
            }
            return out
        }
        XCTAssertEqual(try wl(["init", "-q"]).status, 0)
        _ = try SimulatedEdit.rankOne(file: dir + "/model.safetensors", tensor: "model.layers.4.mlp.down_proj.weight", seed: 1)
        XCTAssertEqual(try wl(["commit", "-q", "-m", "one"]).status, 0)
        XCTAssertEqual(try wl(["branch", "side", "base"]).status, 0)
        let start = try refs()
        let files = try directoryDigest(dir).filter { !$0.key.hasPrefix(".wledger/") }

        // The current branch, by its new name alone: HEAD follows, the commit stays.
        var r = try wl(["branch", "-m", "trunk"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, "Renamed branch main to trunk (HEAD follows it)\n")
        var b = try refs()
        XCTAssertEqual(Set(b.keys), ["trunk", "side"])
        XCTAssertEqual(b["trunk"]?.commit, start["main"]?.commit)
        XCTAssertEqual(b["trunk"]?.current, true)
        XCTAssertEqual(try wl(["status", "--json"]).status, 0)

        // Another branch by both names.
        r = try wl(["branch", "-m", "side", "seeds", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(json["from"] as? String, "side")
        XCTAssertEqual(json["to"] as? String, "seeds")
        XCTAssertEqual(json["current"] as? Bool, false)
        b = try refs()
        XCTAssertEqual(b["seeds"]?.commit, start["side"]?.commit)
        XCTAssertEqual(b["trunk"]?.current, true)

        // Refused, nothing changed.
        let before = try refs().mapValues { "\($0.commit) \($0.current)" }
        for (args, code, needle) in [(["branch", "-m", "trunk", "seeds"], Int32(1), "already exists"),
                                     (["branch", "-m", "seeds", "trunk"], 1, "HEAD points to it"),
                                     (["branch", "-m", "-f", "seeds", "trunk"], 1, "HEAD points to it"),
                                     (["branch", "-m", "nope", "x"], 2, "'nope' not found"),
                                     (["branch", "-m", "seeds", "bad..name"], 2, "'bad..name'"),
                                     (["branch", "-m", "-d", "seeds"], 2, "cannot be combined")] {
            r = try wl(args)
            XCTAssertEqual(r.status, code, "\(args): \(r.stderr)")
            XCTAssertTrue(r.stderr.hasPrefix("error: ") && r.stderr.contains(needle), "\(args): \(r.stderr)")
            XCTAssertEqual(try refs().mapValues { "\($0.commit) \($0.current)" }, before, "\(args)")
        }

        // -f replaces another branch; a detached HEAD needs the old name.
        XCTAssertEqual(try wl(["branch", "spare"]).status, 0)
        r = try wl(["branch", "-m", "-f", "seeds", "spare"])
        XCTAssertEqual(r.status, 0, r.stderr)
        b = try refs()
        XCTAssertEqual(Set(b.keys), ["trunk", "spare"])
        XCTAssertEqual(b["spare"]?.commit, start["side"]?.commit)
        XCTAssertEqual(try wl(["checkout", "-q", String(start["main"]!.commit.prefix(12))]).status, 0)
        let detachedRefs = try refs().mapValues { "\($0.commit) \($0.current)" }
        r = try wl(["branch", "-m", "lonely"])
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("HEAD is detached"), r.stderr)
        XCTAssertEqual(try refs().mapValues { "\($0.commit) \($0.current)" }, detachedRefs)

        // The current branch by both names: HEAD follows. Its own name: nothing to do.
        XCTAssertEqual(try wl(["checkout", "-q", "trunk"]).status, 0)
        XCTAssertEqual(try wl(["branch", "-m", "trunk", "stem"]).status, 0)
        XCTAssertEqual(try refs()["stem"]?.current, true)
        XCTAssertEqual(try wl(["branch", "-m", "stem", "stem"]).status, 0)
        XCTAssertEqual(Set(try refs().keys), ["stem", "spare"])
        // A bisect started on a branch keeps it: renaming it, or onto it, is refused until reset.
        XCTAssertEqual(try wl(["bisect", "start", "--no-checkout", "stem", "base"]).status, 0)
        r = try wl(["branch", "-m", "stem", "other"])
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("bisect"), r.stderr)
        XCTAssertEqual(try wl(["bisect", "reset"]).status, 0)
        XCTAssertEqual(try refs()["stem"]?.current, true)
        // -f and -d need a name.
        r = try wl(["branch", "-f"])
        XCTAssertEqual(r.status, 2, r.stderr)
        XCTAssertTrue(r.stderr.contains("branch name required"), r.stderr)
        for args in [["tag", "-d"], ["tag", "-f"]] {   // tag's too (-d alone listed the tags, exit 0)
            r = try wl(args)
            XCTAssertEqual(r.status, 2, r.stderr)
            XCTAssertTrue(r.stderr.contains("tag name required"), r.stderr)
        }
        XCTAssertEqual(try directoryDigest(dir).filter { !$0.key.hasPrefix(".wledger/") }, files, "renames never touch the files")
    }

    /// `wledger checkout -` returns to where the last checkout that moved HEAD came from (a branch,
    /// or a detached commit), also after that branch was renamed; switching to another branch at
    /// HEAD's own commit moves only HEAD and keeps uncommitted changes, as `checkout HEAD` does.
    func testCheckoutDashAndSameCommitSwitches() throws {
        let tmp = try TemporaryDirectory("checkout-dash")
        let dir = (try tmp.copyModel(from: try Fixtures.smolLM2("bf16")) as NSString).standardizingPath
        let weights = dir + "/model.safetensors"
        func wl(_ args: [String]) throws -> ProcessOutput { try CLI.run(args, in: dir) }
        func files() throws -> [String: String] { try directoryDigest(dir).filter { !$0.key.hasPrefix(".wledger/") } }
        func head() throws -> String { try wl(["status"]).stdout.split(separator: "\n").first.map(String.init) ?? "" }

        XCTAssertEqual(try wl(["init", "-q"]).status, 0)
        let baseFiles = try files()
        var r = try wl(["checkout", "-"])
        XCTAssertEqual(r.status, 2, r.stderr)
        XCTAssertTrue(r.stderr.hasPrefix("error: no previous checkout"), r.stderr)
        _ = try SimulatedEdit.rankOne(file: weights, tensor: "model.layers.4.mlp.down_proj.weight", seed: 1)
        XCTAssertEqual(try wl(["commit", "-q", "-m", "one"]).status, 0)
        let oneFiles = try files()
        XCTAssertEqual(try wl(["branch", "side"]).status, 0)

        // Uncommitted changes ride along to another branch at the same commit, back and forth, to
        // the commit detached and back; they stay reported as changes.
        let edited = "model.layers.6.mlp.down_proj.weight"
        _ = try SimulatedEdit.rankOne(file: weights, tensor: edited, seed: 2)
        let dirty = try files()
        r = try wl(["checkout", "side"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.hasPrefix("M\t\(edited)\n"), "the kept change is listed: \(r.stdout)")
        XCTAssertEqual(try head(), "On branch side")
        XCTAssertEqual(try files(), dirty)
        XCTAssertTrue(try wl(["status"]).stdout.contains("modified tensor: \(edited)"))
        for expected in ["On branch main", "On branch side", "On branch main"] {
            r = try wl(["checkout", "-"])
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertEqual(try head(), expected)
            XCTAssertEqual(try files(), dirty)
        }
        let oneID = try XCTUnwrap(try wl(["log", "-n", "1", "--oneline"]).stdout.split(separator: " ").first.map(String.init))
        XCTAssertEqual(try wl(["checkout", "-q", oneID]).status, 0)
        XCTAssertTrue(try head().hasPrefix("HEAD detached at \(oneID)"))
        XCTAssertEqual(try files(), dirty)
        XCTAssertEqual(try wl(["checkout", "-q", "-"]).status, 0)
        XCTAssertEqual(try head(), "On branch main")
        // A checkout that leaves HEAD as it is (HEAD, the current branch) keeps and lists them.
        for rev in ["HEAD", "main"] {
            r = try wl(["checkout", rev])
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertTrue(r.stdout.hasPrefix("M\t\(edited)\n"), r.stdout)
            XCTAssertEqual(try files(), dirty)
        }
        // `-b` here, then `-` back to main.
        XCTAssertEqual(try wl(["checkout", "-q", "-b", "scratch"]).status, 0)
        XCTAssertEqual(try wl(["checkout", "-q", "-"]).status, 0)
        XCTAssertEqual(try head(), "On branch main")
        XCTAssertEqual(try wl(["branch", "-d", "scratch"]).status, 0)

        // Between a branch and a detached commit, both ways.
        XCTAssertEqual(try wl(["commit", "-q", "-m", "two"]).status, 0)
        XCTAssertEqual(try wl(["checkout", "-q", "base"]).status, 0)
        XCTAssertEqual(try files(), baseFiles)
        XCTAssertEqual(try wl(["checkout", "-q", "-"]).status, 0)
        XCTAssertEqual(try head(), "On branch main")
        XCTAssertEqual(try files(), dirty)
        XCTAssertEqual(try wl(["checkout", "-q", "-"]).status, 0)
        let detached = try head()
        XCTAssertTrue(detached.hasPrefix("HEAD detached at"), detached)
        XCTAssertEqual(try files(), baseFiles)

        // A renamed branch is found under its new name.
        XCTAssertEqual(try wl(["checkout", "-q", "main"]).status, 0)
        XCTAssertEqual(try wl(["checkout", "-q", "side"]).status, 0)
        XCTAssertEqual(try files(), oneFiles)
        XCTAssertEqual(try wl(["branch", "-m", "main", "trunk"]).status, 0)
        // @{-1} names it too (HEAD's log says "moving from main"; it was unknown after the rename).
        r = try wl(["log", "-n", "1", "--oneline", "@{-1}"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, try wl(["log", "-n", "1", "--oneline", "trunk"]).stdout)
        r = try wl(["checkout", "-"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try head(), "On branch trunk")
        XCTAssertEqual(try files(), dirty)
        // A deleted previous branch is named, not looked up as a tag or commit.
        XCTAssertEqual(try wl(["checkout", "-q", "side"]).status, 0)
        XCTAssertEqual(try wl(["checkout", "-q", "trunk"]).status, 0)
        XCTAssertEqual(try wl(["tag", "side", "base"]).status, 0)
        XCTAssertEqual(try wl(["branch", "-d", "side"]).status, 0)
        r = try wl(["checkout", "-"])
        XCTAssertEqual(r.status, 2, r.stderr)
        XCTAssertTrue(r.stderr.hasPrefix("error: the previous branch 'side' ('-') no longer exists"), r.stderr)
        XCTAssertEqual(try head(), "On branch trunk")
        XCTAssertEqual(try wl(["fsck", "-q"]).status, 0)
    }
}
