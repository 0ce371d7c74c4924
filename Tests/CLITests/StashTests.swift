import Foundation
import TensorIO
import TestSupport
import XCTest

/// `wledger stash` on the real SmolLM2 BF16: push records the uncommitted tensor and side-file
/// changes (not untracked files) and rewrites the work tree to HEAD's exact bytes; apply and pop
/// bring back the exact bytes of the stashed work tree without moving HEAD, keeping uncommitted
/// changes the stash does not touch; a stash made on another commit is merged onto HEAD, or
/// refused with nothing changed where it cannot be, and `stash branch` pops it on a new branch
/// where it was made; gc keeps stashed commits; a killed apply is finished by the next command with HEAD
/// where it was; drop, clear, list, `stash@{N}` as a revision and in `reflog stash`.
final class StashTests: XCTestCase {
    func testStashPushApplyPopDropExactAndHeadStays() throws {
        let tmp = try TemporaryDirectory("stash")
        let dir = (try tmp.copyModel(from: try Fixtures.smolLM2("bf16")) as NSString).standardizingPath
        let weights = dir + "/model.safetensors"
        func wl(_ args: [String], env: [String: String] = [:]) throws -> ProcessOutput { try CLI.run(args, in: dir, environment: env) }
        /// The work tree's files but the untracked NOTES.md.
        func files() throws -> [String: String] {
            try directoryDigest(dir).filter { !$0.key.hasPrefix(".wledger/") && $0.key != "NOTES.md" }
        }
        func json(_ args: [String]) throws -> Any {
            let r = try wl(args)
            XCTAssertEqual(r.status, 0, r.stderr)
            return try JSONSerialization.jsonObject(with: Data(r.stdout.utf8))
        }
        func commitID(_ rev: String) throws -> String { try XCTUnwrap((try json(["show", rev, "--json"]) as? [String: Any])?["id"] as? String) }
        func head() throws -> String { try wl(["status", "-s", "-b"]).stdout.split(separator: "\n").first.map(String.init) ?? "" }
        func stashCount() throws -> Int { try XCTUnwrap(try json(["stash", "list", "--json"]) as? [[String: Any]]).count }

        XCTAssertEqual(try wl(["init", "-q"]).status, 0)
        _ = try SimulatedEdit.rankOne(file: weights, tensor: "model.layers.3.mlp.down_proj.weight", seed: 1)
        XCTAssertEqual(try wl(["commit", "-q", "-m", "one"]).status, 0)
        let one = try commitID("HEAD"), oneFiles = try files()

        // Uncommitted: a tensor, a tracked side file; and an untracked file, which a stash leaves.
        let edit = try SimulatedEdit.rankOne(file: weights, tensor: "model.layers.5.mlp.down_proj.weight", seed: 2)
        try "{\"do_sample\": true}\n".write(toFile: dir + "/generation_config.json", atomically: false, encoding: .utf8)
        try "notes\n".write(toFile: dir + "/NOTES.md", atomically: false, encoding: .utf8)
        let dirty = try files()
        var r = try wl(["stash"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.hasPrefix("Saved working directory state WIP on main: \(one.prefix(12)) one as stash@{0}"), r.stdout)
        XCTAssertEqual(try files(), oneFiles, "the work tree is HEAD's again, byte for byte")
        XCTAssertEqual(try wl(["status", "-s"]).stdout, "?? NOTES.md\n")
        r = try wl(["stash"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, "No local changes to save\n")
        XCTAssertEqual(try json(["stash", "--json"]) as? [String: Bool], ["saved": false])
        XCTAssertEqual(try stashCount(), 1)
        // stash@{0} is a commit on HEAD with the tensor and the side file, and a revision anywhere.
        let shown = try XCTUnwrap(try json(["show", "stash@{0}", "--json"]) as? [String: Any])
        XCTAssertEqual(shown["parent"] as? String, one)
        XCTAssertEqual((shown["tensors"] as? [[String: Any]])?.compactMap { $0["name"] as? String }, ["model.layers.5.mlp.down_proj.weight"])
        let stashed = try XCTUnwrap(shown["id"] as? String)
        XCTAssertEqual(try wl(["reflog", "stash"]).stdout, "\(stashed.prefix(12)) stash@{0}: WIP on main: \(one.prefix(12)) one\n")
        XCTAssertEqual(try wl(["log", "--all", "--oneline"]).stdout.split(separator: "\n").count, 2, "no ref points to a stash")
        // stash show: ΔW of the stashed tensor against the independent float64 reference, and
        // the side file it changed (not the untracked one).
        let show = try XCTUnwrap(try json(["stash", "show", "--json"]) as? [String: Any])
        XCTAssertEqual((show["stash"] as? [String: Any])?["commit"] as? String, stashed)
        let showDiff = try XCTUnwrap(show["diff"] as? [String: Any])
        XCTAssertEqual(showDiff["from"] as? String, one)
        let showTensors = try XCTUnwrap(showDiff["tensors"] as? [[String: Any]])
        XCTAssertEqual(showTensors.compactMap { $0["name"] as? String }, ["model.layers.5.mlp.down_proj.weight"])
        let ref = ReferenceDecode.deltaStats(parent: edit.parent, child: edit.child, dtype: "BF16")
        XCTAssertEqual(showTensors[0]["changed"] as? Int, ref.changed)
        XCTAssertEqual(try XCTUnwrap(showTensors[0]["l1"] as? Double), ref.l1, accuracy: 1e-9 * ref.l1)
        XCTAssertEqual(try XCTUnwrap(showTensors[0]["frobenius"] as? Double), ref.frobenius, accuracy: 1e-9 * ref.frobenius)
        XCTAssertEqual(show["files"] as? [[String: String]], [["path": "generation_config.json", "change": "modified"]])
        r = try wl(["stash", "show", "0", "--no-spectrum"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.hasPrefix("stash@{0} (\(stashed.prefix(12))): WIP on main: \(one.prefix(12)) one\ndiff \(one.prefix(12))..\(stashed.prefix(12))\n"), r.stdout)
        XCTAssertTrue(r.stdout.hasSuffix("\nM\tgeneration_config.json\n"), r.stdout)
        XCTAssertEqual(r.stdout.components(separatedBy: "generation_config.json").count, 2, "the file listed once: \(r.stdout)")
        r = try wl(["stash", "show", "stash@{3}"])
        XCTAssertEqual(r.status, 2, r.stderr)
        XCTAssertEqual(r.stderr, "error: 'stash@{3}': the stash has only 1 entry\n")

        // Away and back, then apply with another uncommitted change the stash does not touch.
        XCTAssertEqual(try wl(["checkout", "-q", "base"]).status, 0)
        XCTAssertEqual(try wl(["checkout", "-q", "-"]).status, 0)
        _ = try SimulatedEdit.rankOne(file: weights, tensor: "model.layers.7.mlp.down_proj.weight", seed: 3)
        let layer7 = try files()["model.safetensors"]
        r = try wl(["stash", "apply"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.hasPrefix("M\tmodel.layers.7.mlp.down_proj.weight\nApplied stash@{0}"), r.stdout)
        XCTAssertNotEqual(try files()["model.safetensors"], layer7)
        XCTAssertEqual(try head(), "## main")
        XCTAssertEqual(try commitID("HEAD"), one, "HEAD stays")
        XCTAssertEqual(Set(try wl(["status", "-s"]).stdout.split(separator: "\n").map(String.init)),
                       [" M model.layers.5.mlp.down_proj.weight", " M model.layers.7.mlp.down_proj.weight", " M generation_config.json", "?? NOTES.md"])
        XCTAssertEqual(try stashCount(), 1, "apply keeps the entry")
        // pop on a clean tree: exactly the stashed work tree, and the entry goes.
        XCTAssertEqual(try wl(["checkout", "-q", "--force", "HEAD"]).status, 0)
        XCTAssertEqual(try files(), oneFiles)
        r = try wl(["stash", "pop"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try files(), dirty)
        XCTAssertEqual(try stashCount(), 0)
        XCTAssertEqual(try commitID("HEAD"), one)

        // On another commit (base, where layer 3 is as it was before `one`) the stash's changes
        // apply as well: its layer 5 and side file, with base's layer 3 (testStashAppliesOntoAnotherCommit).
        XCTAssertEqual(try wl(["stash", "-q", "-m", "two"]).status, 0)
        XCTAssertEqual(try wl(["stash", "list"]).stdout, "stash@{0}: On main: two\n")
        XCTAssertEqual(try wl(["checkout", "-q", "base"]).status, 0)
        let atBase = try files()
        let layer3 = try readTensorBytes(file: weights, tensor: "model.layers.3.mlp.down_proj.weight")
        r = try wl(["stash", "apply"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.hasPrefix("Applied stash@{0} (\(try commitID("stash").prefix(12))) onto HEAD \(try commitID("base").prefix(12)): "), r.stdout)
        XCTAssertEqual(try readTensorBytes(file: weights, tensor: "model.layers.5.mlp.down_proj.weight"), edit.child)
        XCTAssertEqual(try readTensorBytes(file: weights, tensor: "model.layers.3.mlp.down_proj.weight"), layer3)
        XCTAssertEqual(try files()["generation_config.json"], dirty["generation_config.json"])
        XCTAssertEqual(Set(try wl(["status", "-s"]).stdout.split(separator: "\n").map(String.init)),
                       [" M model.layers.5.mlp.down_proj.weight", " M generation_config.json", "?? NOTES.md"])
        XCTAssertEqual(try stashCount(), 1)
        XCTAssertEqual(try wl(["checkout", "-q", "--force", "HEAD"]).status, 0)
        XCTAssertEqual(try files(), atBase)
        // `stash branch` makes a branch where the stash was made and pops it there.
        r = try wl(["stash", "branch", "tryit"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try head(), "## tryit")
        XCTAssertEqual(try commitID("HEAD"), one)
        XCTAssertEqual(try files(), dirty)
        XCTAssertEqual(try stashCount(), 0)
        XCTAssertEqual(try wl(["stash", "-q", "-m", "two"]).status, 0)

        // gc keeps a stash's commit, even expiring the reflog.
        XCTAssertEqual(try wl(["checkout", "-q", "main"]).status, 0)
        XCTAssertEqual(try wl(["gc", "-q", "--expire-unreachable"]).status, 0)
        // A pop killed after its journal is finished by the next command, HEAD where it was.
        r = try wl(["stash", "pop", "-q"], env: ["WLEDGER_FAULT": "checkout-journaled"])
        XCTAssertEqual(r.status, 9, r.stderr)
        r = try wl(["status", "-s", "-b"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("completed an interrupted checkout"), r.stderr)
        XCTAssertTrue(r.stdout.hasPrefix("## main\n"), r.stdout)
        XCTAssertEqual(try files(), dirty, "rolled forward to the stash's files")
        XCTAssertEqual(try commitID("HEAD"), one)
        XCTAssertEqual(try stashCount(), 1, "the killed pop did not drop it")
        XCTAssertEqual(try wl(["fsck", "-q", "--full"]).status, 0)

        // drop, clear, and bad selectors.
        r = try wl(["stash", "drop"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.hasPrefix("Dropped stash@{0} ("), r.stdout)
        for (args, needle, code) in [(["stash", "drop"], "no stash entries", 1), (["stash", "apply"], "no stash entries", 1),
                                     (["stash", "show"], "no stash entries", 1), (["show", "stash@{0}"], "the stash has no entries", 2)] {
            r = try wl(args)
            XCTAssertEqual(r.status, Int32(code), "\(args): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains(needle) && r.stderr.split(separator: "\n").count == 1, "\(args): \(r.stderr)")
        }
        XCTAssertEqual(try wl(["checkout", "-q", "--force", "HEAD"]).status, 0)

        // Push writes HEAD's bytes back only where they differ, in place; NaN is stashed as is.
        _ = try SimulatedEdit.modify(file: weights, tensor: "model.layers.9.mlp.down_proj.weight") { w, _ in w[7] = .nan }
        let nan = try files()
        let pushed = try XCTUnwrap(try json(["stash", "--json"]) as? [String: Any])
        XCTAssertEqual(pushed["saved"] as? Bool, true)
        let restore = try XCTUnwrap(pushed["checkout"] as? [String: Any])
        XCTAssertEqual(restore["tensorsRebuilt"] as? Int, 1)
        XCTAssertEqual(restore["patchedInPlace"] as? [String], ["model.safetensors"])
        XCTAssertEqual(try files(), oneFiles)
        for args in [["show", "stash"], ["diff", "stash@{0}~1", "stash@{0}", "--stat"], ["log", "--stat", "-n", "1", "stash"]] {
            r = try wl(args)
            XCTAssertEqual(r.status, 0, "\(args) on weights with a NaN: \(r.stderr)")
        }
        _ = try SimulatedEdit.rankOne(file: weights, tensor: "model.layers.11.mlp.down_proj.weight", seed: 5)
        XCTAssertEqual(try wl(["stash", "-q"]).status, 0)
        let newer = try commitID("stash")
        XCTAssertEqual(try commitID("stash@{0}"), newer, "stash alone is stash@{0}")
        // An apply that would overwrite an uncommitted change says so in stash's terms.
        _ = try SimulatedEdit.rankOne(file: weights, tensor: "model.layers.11.mlp.down_proj.weight", seed: 6)
        r = try wl(["stash", "apply"])
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertEqual(r.stderr, "error: your local changes would be overwritten by stash@{0}: 'model.layers.11.mlp.down_proj.weight'; commit or stash them first, or discard them with 'wledger checkout --force HEAD'\n")
        XCTAssertEqual(try wl(["checkout", "-q", "--force", "HEAD"]).status, 0)
        r = try wl(["stash", "pop", "stash@{2}"])
        XCTAssertEqual(r.status, 2, r.stderr)
        XCTAssertTrue(r.stderr.contains("the stash has only 2 entries"), r.stderr)
        // Dropping the older entry leaves nothing naming its commit: plain gc removes it.
        let older = try commitID("stash@{1}")
        XCTAssertEqual(try wl(["stash", "drop", "-q", "1"]).status, 0)
        let o = try XCTUnwrap(try json(["gc", "--json"]) as? [String: Any])
        let removed = try XCTUnwrap(o["removedCommits"] as? [String])
        XCTAssertTrue(removed.contains(older) && !removed.contains(newer), "\(removed)")
        XCTAssertEqual(try commitID("stash"), newer)
        XCTAssertEqual(try wl(["stash", "clear"]).stdout, "Cleared 1 stash entry\n")
        XCTAssertEqual(try stashCount(), 0)
        XCTAssertEqual(try files(), oneFiles)
        _ = nan
    }

    /// `stash apply` on another commit than the one the stash was made on merges per tensor and
    /// file, as git merges a stash: a tensor HEAD has as the stash's base had it gets the stash's
    /// bytes exactly; one HEAD changed too gets HEAD + the stash's ΔW (checked element by element
    /// against float64 here, within half a BF16 ulp, untouched elements bit-exact); a side file
    /// both changed, or an uncommitted change the result would overwrite, refuses with no byte of
    /// the work tree or the ledger changed. The commit written under HEAD is gc's to remove.
    /// A push killed between recording its entry and writing HEAD's bytes back (fault point
    /// `stash-recorded`): the next command, a read included, finishes it (HEAD's bytes, a `-u`
    /// stash's untracked file removed) where the work tree still holds what the entry saved, so a
    /// retry does not stash twice; where the work tree changed since, it is left as it is.
    func testAPushKilledAfterRecordingItsEntryIsFinishedByTheNextCommand() throws {
        let tmp = try TemporaryDirectory("stash-killed")
        let dir = (try tmp.copyModel(from: try Fixtures.smolLM2("bf16")) as NSString).standardizingPath
        let weights = dir + "/model.safetensors"
        func wl(_ args: [String], env: [String: String] = [:]) throws -> ProcessOutput { try CLI.run(args, in: dir, environment: env) }
        func files() throws -> [String: String] { try directoryDigest(dir).filter { !$0.key.hasPrefix(".wledger/") } }
        func stashCount() throws -> Int {
            let r = try wl(["stash", "list", "--json"])
            XCTAssertEqual(r.status, 0, r.stderr)
            return try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]]).count
        }
        XCTAssertEqual(try wl(["init", "-q"]).status, 0)
        let headFiles = try files()

        // Killed with an edit and an untracked file saved by `-u`: finished by a read.
        _ = try SimulatedEdit.rankOne(file: weights, tensor: "model.layers.3.mlp.down_proj.weight", seed: 1)
        try "A\n".write(toFile: dir + "/notes.txt", atomically: true, encoding: .utf8)
        let saved = try files()
        var r = try wl(["stash", "-u"], env: ["WLEDGER_FAULT": "stash-recorded"])
        XCTAssertNotEqual(r.status, 0, "killed")
        XCTAssertEqual(try files(), saved, "killed before writing anything")
        r = try wl(["status", "-s"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("completed an interrupted stash"), r.stderr)
        XCTAssertEqual(r.stdout, "", "clean: HEAD's bytes, the untracked file gone with the stash")
        XCTAssertEqual(try files(), headFiles)
        XCTAssertEqual(try stashCount(), 1)
        XCTAssertEqual(try wl(["stash", "-q"]).stdout, "")
        XCTAssertEqual(try stashCount(), 1, "a retry has nothing to stash")
        XCTAssertEqual(try wl(["stash", "pop", "-q"]).status, 0)
        XCTAssertEqual(try files(), saved, "the entry holds what was there")

        // Killed, then the work tree changed before the next command: left as it is.
        r = try wl(["stash"], env: ["WLEDGER_FAULT": "stash-recorded"])
        XCTAssertNotEqual(r.status, 0)
        _ = try SimulatedEdit.rankOne(file: weights, tensor: "model.layers.6.mlp.down_proj.weight", seed: 2)
        let changed = try files()
        r = try wl(["stash", "list"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("the work tree changed since, so it was left as it is"), r.stderr)
        XCTAssertEqual(try files(), changed)
        XCTAssertEqual(try stashCount(), 1)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/.wledger/pending.json"))
    }

    func testStashAppliesOntoAnotherCommit() throws {
        let tmp = try TemporaryDirectory("stash-onto")
        let dir = (try tmp.copyModel(from: try Fixtures.smolLM2("bf16")) as NSString).standardizingPath
        let weights = dir + "/model.safetensors", gen = dir + "/generation_config.json"
        func wl(_ args: [String]) throws -> ProcessOutput { try CLI.run(args, in: dir) }
        func files() throws -> [String: String] { try directoryDigest(dir).filter { !$0.key.hasPrefix(".wledger/") } }
        func ledgerFiles() throws -> [String: String] { try directoryDigest(dir + "/.wledger").filter { $0.key.hasPrefix("ledger") } }
        func json(_ args: [String]) throws -> [String: Any] {
            let r = try wl(args)
            XCTAssertEqual(r.status, 0, "\(args): \(r.stderr)")
            return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        }
        let l2 = "model.layers.2.mlp.down_proj.weight", l5 = "model.layers.5.mlp.down_proj.weight", l8 = "model.layers.8.mlp.down_proj.weight"
        XCTAssertEqual(try wl(["init", "-q"]).status, 0)
        let base = try XCTUnwrap(try json(["show", "HEAD", "--json"])["id"] as? String)
        // Stashed on base: layers 2 and 5 and the generation config.
        let s2 = try SimulatedEdit.rankOne(file: weights, tensor: l2, seed: 21)
        let s5 = try SimulatedEdit.rankOne(file: weights, tensor: l5, seed: 22)
        try "{\"do_sample\": true}\n".write(toFile: gen, atomically: false, encoding: .utf8)
        let stashedGen = try files()["generation_config.json"]
        XCTAssertEqual(try wl(["stash", "-q"]).status, 0)
        let stash = try XCTUnwrap(try json(["show", "stash", "--json"])["id"] as? String)
        // Meanwhile main moves on: layer 5 edited too, and layer 8.
        let h5 = try SimulatedEdit.rankOne(file: weights, tensor: l5, seed: 23)
        let h8 = try SimulatedEdit.rankOne(file: weights, tensor: l8, seed: 24)
        XCTAssertEqual(try wl(["commit", "-q", "-m", "moved on"]).status, 0)
        let head = try XCTUnwrap(try json(["show", "HEAD", "--json"])["id"] as? String)
        let moved = try files(), ledger = try ledgerFiles()

        // An uncommitted change to a tensor the stash changes refuses, before anything is recorded.
        let local = try SimulatedEdit.rankOne(file: weights, tensor: l2, seed: 25)
        let dirty = try files()
        var r = try wl(["stash", "apply"])
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertEqual(r.stderr, "error: your local changes would be overwritten by stash@{0}: '\(l2)'; commit or stash them first, or discard them with 'wledger checkout --force HEAD'\n")
        XCTAssertEqual(try files(), dirty)
        XCTAssertEqual(try ledgerFiles(), ledger, "nothing recorded")
        _ = local
        XCTAssertEqual(try wl(["checkout", "-q", "--force", "HEAD"]).status, 0)
        XCTAssertEqual(try files(), moved)

        let applied = try json(["stash", "apply", "--json"])
        let onto = try XCTUnwrap(applied["onto"] as? String)
        XCTAssertNotEqual(onto, head)
        XCTAssertEqual(applied["mergedTensors"] as? [String], [l5])
        XCTAssertEqual(try XCTUnwrap(try json(["show", "HEAD", "--json"])["id"] as? String), head, "HEAD stays")
        XCTAssertEqual(Set(try wl(["status", "-s"]).stdout.split(separator: "\n").map(String.init)),
                       [" M \(l2)", " M \(l5)", " M generation_config.json"])
        XCTAssertEqual(try readTensorBytes(file: weights, tensor: l2), s2.child, "HEAD had base's layer 2: the stash's bytes")
        XCTAssertEqual(try readTensorBytes(file: weights, tensor: l8), h8.child, "a tensor the stash left alone is HEAD's")
        XCTAssertEqual(try files()["generation_config.json"], stashedGen)
        // Layer 5, changed on both sides: HEAD + ΔW of the stash, against float64 here.
        let got = try readTensorBytes(file: weights, tensor: l5)
        let check = ReferenceDecode.headPlusDelta(got: got, head: h5.child, parent: s5.parent, child: s5.child, dtype: "BF16")
        XCTAssertNil(check.keptMismatch, "an element changed where ΔW is 0")
        XCTAssertNil(check.nan, "a NaN where ΔW moved an element")
        XCTAssertGreaterThan(check.moved, got.count / 4, "a rank-one ΔW moves most elements")
        XCTAssertLessThanOrEqual(check.worst, 1.0 / 256, "within half a BF16 ulp of HEAD + ΔW")
        XCTAssertNotEqual(got, s5.child)
        XCTAssertNotEqual(got, h5.child)
        // Committed, the result is a normal commit; the one written under HEAD is unreachable and
        // gc removes it, never the stash's.
        XCTAssertEqual(try wl(["commit", "-q", "-m", "with the stash"]).status, 0)
        let gc = try json(["gc", "--json"])
        let removed = try XCTUnwrap(gc["removedCommits"] as? [String])
        XCTAssertTrue(removed.contains(onto) && !removed.contains(stash), "\(removed)")
        XCTAssertEqual(try wl(["fsck", "-q", "--full"]).status, 0)

        // A side file both changed refuses, naming it, with nothing written or recorded.
        XCTAssertEqual(try wl(["reset", "-q", "--hard", head]).status, 0)
        try "{\"do_sample\": false}\n".write(toFile: gen, atomically: false, encoding: .utf8)
        XCTAssertEqual(try wl(["commit", "-q", "-m", "config"]).status, 0)
        let before = try files(), ledgerBefore = try ledgerFiles()
        r = try wl(["stash", "pop"])
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertEqual(r.stderr, "error: cannot apply stash@{0} onto HEAD \(try XCTUnwrap(try json(["show", "HEAD", "--json"])["id"] as? String).prefix(12)): "
                       + "'generation_config.json' changed since \(base.prefix(12)) too ('wledger stash branch NAME' pops it on a new branch at "
                       + "\(base.prefix(12)), the commit it was made on)\n")
        XCTAssertEqual(try files(), before)
        XCTAssertEqual(try ledgerFiles(), ledgerBefore)
        XCTAssertEqual(try wl(["stash", "list"]).stdout.split(separator: "\n").count, 1, "the entry stays")
        // stash branch still pops it where it was made.
        XCTAssertEqual(try wl(["stash", "branch", "-q", "where"]).status, 0)
        XCTAssertEqual(try readTensorBytes(file: weights, tensor: l5), s5.child)
        XCTAssertEqual(try files()["generation_config.json"], stashedGen)

        // A -u stash applied onto another commit: refused before anything is recorded where a
        // link to nothing stands at its untracked file's path; once it is gone, the file is back.
        let notes = dir + "/NOTES.md"
        try "notes\n".write(toFile: notes, atomically: false, encoding: .utf8)
        XCTAssertEqual(try wl(["stash", "-u", "-q"]).status, 0)
        XCTAssertEqual(try wl(["checkout", "-q", head]).status, 0)
        try FileManager.default.createSymbolicLink(atPath: notes, withDestinationPath: "missing")
        let ledgerAtLink = try ledgerFiles()
        r = try wl(["stash", "apply"])
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertEqual(r.stderr, "error: '\(notes)' is a symbolic link to nothing, untracked, that stash@{0} would replace with its tracked file; move it away first\n")
        XCTAssertEqual(try ledgerFiles(), ledgerAtLink, "nothing recorded")
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: notes), "missing")
        try FileManager.default.removeItem(atPath: notes)
        let popped = try json(["stash", "pop", "--json"])
        XCTAssertEqual(popped["mergedTensors"] as? [String], [l5])
        XCTAssertEqual(try String(contentsOfFile: notes, encoding: .utf8), "notes\n")
        XCTAssertEqual(try readTensorBytes(file: weights, tensor: l2), s2.child)
    }

    /// Merging onto another HEAD, elements the stash left alone keep HEAD's bytes even where the
    /// stash's base held NaN or Inf there (whose difference with itself is NaN): HEAD's fix of
    /// them stays. The elements the stash moved are HEAD + ΔW against float64 here.
    func testStashOntoKeepsWhatTheStashLeftAloneAtNonFiniteElements() throws {
        let tmp = try TemporaryDirectory("stash-onto-nan")
        let dir = (try tmp.copyModel(from: try Fixtures.smolLM2("bf16")) as NSString).standardizingPath
        let weights = dir + "/model.safetensors", t = "model.layers.4.mlp.down_proj.weight"
        func wl(_ args: [String]) throws -> ProcessOutput { try CLI.run(args, in: dir) }
        XCTAssertEqual(try wl(["init", "-q"]).status, 0)
        _ = try SimulatedEdit.modify(file: weights, tensor: t) { w, _ in w[7] = .nan; w[8] = .infinity }
        XCTAssertEqual(try wl(["commit", "-q", "-m", "broken", "--allow-nonfinite"]).status, 0)
        let stashed = try SimulatedEdit.modify(file: weights, tensor: t) { w, _ in for i in 100..<110 { w[i] += 0.25 } }
        XCTAssertEqual(try wl(["stash", "-q"]).status, 0)
        let fixed = try SimulatedEdit.modify(file: weights, tensor: t) { w, _ in w[7] = 0.5; w[8] = -0.5; w[200] += 1 }
        XCTAssertEqual(try wl(["commit", "-q", "-m", "fixed"]).status, 0)
        let r = try wl(["stash", "apply", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let applied = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(applied["mergedTensors"] as? [String], [t])
        let got = try readTensorBytes(file: weights, tensor: t)
        let h = ReferenceDecode.doubles(fixed.child, dtype: "BF16"), g = ReferenceDecode.doubles(got, dtype: "BF16")
        let p = ReferenceDecode.doubles(stashed.parent, dtype: "BF16"), c = ReferenceDecode.doubles(stashed.child, dtype: "BF16")
        for i in 0..<h.count where !(100..<110).contains(i) {
            if got[2 * i] != fixed.child[2 * i] || got[2 * i + 1] != fixed.child[2 * i + 1] {
                XCTFail("element \(i): \(g[i]), HEAD has \(h[i])"); break
            }
        }
        XCTAssertEqual(g[7], 0.5)
        XCTAssertEqual(g[8], -0.5)
        for i in 100..<110 {
            let exact = h[i] + (c[i] - p[i])
            XCTAssertFalse(g[i].isNaN)
            XCTAssertLessThanOrEqual(abs(g[i] - exact), abs(exact) / 256, "element \(i) within half a BF16 ulp of HEAD + ΔW")
        }
    }

    /// A stash saves NaN as found, without --allow-nonfinite: a revert that would bring such a
    /// version back is refused as a commit of it would be, also once the stash is dropped (the
    /// stash commit says it is one), while a NaN committed with --allow-nonfinite comes back.
    func testRevertDoesNotBringBackAStashedNaNWithoutItBeingAllowed() throws {
        let tmp = try TemporaryDirectory("stash-revert-nan")
        let dir = (try tmp.copyModel(from: try Fixtures.smolLM2("bf16")) as NSString).standardizingPath
        let weights = dir + "/model.safetensors", t = "model.layers.6.mlp.down_proj.weight"
        func wl(_ args: [String]) throws -> ProcessOutput { try CLI.run(args, in: dir) }
        XCTAssertEqual(try wl(["init", "-q"]).status, 0)
        _ = try SimulatedEdit.modify(file: weights, tensor: t) { w, _ in w[11] = .nan }
        XCTAssertEqual(try wl(["stash", "-q"]).status, 0)
        XCTAssertEqual(try wl(["checkout", "-q", "stash@{0}"]).status, 0)
        _ = try SimulatedEdit.modify(file: weights, tensor: t) { w, _ in w[11] = 0.5 }
        XCTAssertEqual(try wl(["commit", "-q", "-m", "finite again"]).status, 0)
        XCTAssertEqual(try wl(["stash", "drop", "-q"]).status, 0)
        XCTAssertEqual(try wl(["stash", "list"]).stdout, "")
        let before = try directoryDigest(dir)
        let r = try wl(["revert", "HEAD"])
        XCTAssertEqual(r.status, 2, r.stderr)
        XCTAssertTrue(r.stderr.contains("the result for tensor '\(t)' contains NaN or Inf; nothing was committed"), r.stderr)
        XCTAssertEqual(try directoryDigest(dir), before, "nothing changed")
        // The same NaN committed with --allow-nonfinite is a version revert may write back.
        _ = try SimulatedEdit.modify(file: weights, tensor: t) { w, _ in w[11] = .nan }
        XCTAssertEqual(try wl(["commit", "-q", "-m", "nan allowed", "--allow-nonfinite"]).status, 0)
        _ = try SimulatedEdit.modify(file: weights, tensor: t) { w, _ in w[11] = 0.25 }
        XCTAssertEqual(try wl(["commit", "-q", "-m", "finite once more"]).status, 0)
        let back = try wl(["revert", "-q", "HEAD"])
        XCTAssertEqual(back.status, 0, back.stderr)
        XCTAssertTrue(ReferenceDecode.doubles(try readTensorBytes(file: weights, tensor: t), dtype: "BF16")[11].isNaN)
    }

    /// Onto another HEAD, what cannot be merged refuses before anything is recorded, with the
    /// work tree and the ledger as they were and the entry kept: a stash that changed a weight
    /// file's header (on SmolLM2), and a non-float tensor both sides changed, which has no ΔW to
    /// add (on a small model with an I32 tensor). A non-float tensor only the stash changed comes
    /// over whole.
    func testStashOntoRefusesHeaderChangesAndNonFloatTensorsBothSidesChanged() throws {
        let tmp = try TemporaryDirectory("stash-onto-refusals")
        func wl(_ args: [String], _ dir: String) throws -> ProcessOutput { try CLI.run(args, in: dir) }
        func id(_ rev: String, _ dir: String) throws -> String {
            let r = try wl(["show", rev, "--json"], dir)
            XCTAssertEqual(r.status, 0, r.stderr)
            let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
            return try XCTUnwrap(json["id"] as? String)
        }
        func files(_ dir: String) throws -> [String: String] { try directoryDigest(dir).filter { !$0.key.hasPrefix(".wledger/") } }
        func ledgerFiles(_ dir: String) throws -> [String: String] {
            try directoryDigest(dir + "/.wledger").filter { $0.key.hasPrefix("ledger") }
        }
        /// Runs `stash apply`, which must refuse with `why`, changing nothing.
        func expectRefusal(_ dir: String, base: String, _ why: String) throws {
            let head = try id("HEAD", dir), before = try files(dir), ledger = try ledgerFiles(dir)
            let r = try wl(["stash", "apply"], dir)
            XCTAssertEqual(r.status, 1, r.stderr)
            XCTAssertEqual(r.stderr, "error: cannot apply stash@{0} onto HEAD \(head.prefix(12)): \(why) ('wledger stash branch NAME' "
                           + "pops it on a new branch at \(base.prefix(12)), the commit it was made on)\n")
            XCTAssertEqual(try files(dir), before, "work tree unchanged")
            XCTAssertEqual(try ledgerFiles(dir), ledger, "nothing recorded")
            XCTAssertEqual(try wl(["stash", "list"], dir).stdout.split(separator: "\n").count, 1, "the entry stays")
        }

        // A header change: the stash rewrote model.safetensors with another __metadata__.
        let dir = (try tmp.copyModel(from: try Fixtures.smolLM2("bf16")) as NSString).standardizingPath
        let weights = dir + "/model.safetensors"
        XCTAssertEqual(try wl(["init", "-q"], dir).status, 0)
        let base = try id("HEAD", dir), original = try files(dir)
        _ = try SimulatedEdit.rankOne(file: weights, tensor: "model.layers.2.mlp.down_proj.weight", seed: 31)
        do {
            let sf = try SafetensorsFile(path: weights)
            let header = SafetensorsHeader.make(tensors: sf.header.tensors.map { ($0.name, $0.dtype, $0.shape) },
                                                metadata: sf.header.metadata + [("note", "stashed")])
            var bytes = header.prefixBytes
            for t in header.tensors { bytes += sf.bytes(sf.info(t.name)!) }
            try Data(bytes).write(to: URL(fileURLWithPath: weights + ".tmp"))
        }
        XCTAssertEqual(rename(weights + ".tmp", weights), 0)
        XCTAssertEqual(try wl(["stash", "-q"], dir).status, 0)
        XCTAssertEqual(try files(dir), original, "stash put HEAD's file back")
        _ = try SimulatedEdit.rankOne(file: weights, tensor: "model.layers.5.mlp.down_proj.weight", seed: 32)
        XCTAssertEqual(try wl(["commit", "-q", "-m", "moved on"], dir).status, 0)
        try expectRefusal(dir, base: base, "it changes the header of 'model.safetensors'")
        // Where it was made, it applies: the header comes back.
        XCTAssertEqual(try wl(["stash", "branch", "-q", "where"], dir).status, 0)
        XCTAssertEqual(try SafetensorsFile(path: weights).header.metadata.map(\.1), ["pt", "stashed"])

        // A non-float tensor: "ids" (I32) beside a float "w".
        let tiny = tmp.path + "/tiny", tinyWeights = tiny + "/model.safetensors"
        func le<T: FixedWidthInteger>(_ values: [T]) -> [UInt8] {
            values.flatMap { v in withUnsafeBytes(of: v.littleEndian) { Array($0) } }
        }
        func put(_ tensor: String, _ bytes: [UInt8]) throws {
            let (info, dataStart) = try SimulatedEdit.locate(file: tinyWeights, tensor: tensor)
            XCTAssertEqual(info.byteCount, bytes.count)
            let fh = try XCTUnwrap(FileHandle(forUpdatingAtPath: tinyWeights))
            try fh.seek(toOffset: UInt64(dataStart + info.begin))
            fh.write(Data(bytes))
            try fh.close()
        }
        let floats = le([Float(1), 2, 3, 4].map(\.bitPattern))
        try writeTinyModel(tiny, tensors: [("w", .f32, [2, 2], floats), ("ids", .i32, [4], le([Int32(1), 2, 3, 4]))])
        XCTAssertEqual(try wl(["init", "-q"], tiny).status, 0)
        let tinyBase = try id("HEAD", tiny)
        let stashedIDs = le([Int32(1), 2, 3, 40])
        try put("ids", stashedIDs)
        XCTAssertEqual(try wl(["stash", "-q"], tiny).status, 0)
        let headW = le([Float(1), 2, 3, 5].map(\.bitPattern))
        try put("w", headW)
        XCTAssertEqual(try wl(["commit", "-q", "-m", "w moved"], tiny).status, 0)
        // Only the stash changed ids: its bytes come over, HEAD's w stays.
        var r = try wl(["stash", "apply", "--json"], tiny)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try readTensorBytes(file: tinyWeights, tensor: "ids"), stashedIDs)
        XCTAssertEqual(try readTensorBytes(file: tinyWeights, tensor: "w"), headW)
        r = try wl(["checkout", "-q", "--force", "HEAD"], tiny)
        XCTAssertEqual(r.status, 0, r.stderr)
        // ids changed on HEAD's side too: refused.
        try put("ids", le([Int32(1), 2, 30, 4]))
        XCTAssertEqual(try wl(["commit", "-q", "-m", "ids moved"], tiny).status, 0)
        try expectRefusal(tiny, base: tinyBase, "tensor 'ids' (I32) changed since \(tinyBase.prefix(12)) too, and is not a float tensor to add its ΔW to")
    }

    /// Onto another HEAD, an uncommitted change the merge keeps in a weight file it writes is kept
    /// only by writing the stash's tensors into that file in place: while the file has another
    /// hard link it would be rewritten whole, so apply refuses before anything is recorded; once
    /// the link is gone it applies, keeping the change.
    func testStashOntoRefusesToRewriteAFileWithKeptChangesWhole() throws {
        let tmp = try TemporaryDirectory("stash-onto-whole")
        let dir = (try tmp.copyModel(from: try Fixtures.smolLM2("bf16")) as NSString).standardizingPath
        let weights = dir + "/model.safetensors", link = tmp.path + "/linked.safetensors"
        func wl(_ args: [String]) throws -> ProcessOutput { try CLI.run(args, in: dir) }
        func files() throws -> [String: String] { try directoryDigest(dir).filter { !$0.key.hasPrefix(".wledger/") } }
        func ledgerFiles() throws -> [String: String] { try directoryDigest(dir + "/.wledger").filter { $0.key.hasPrefix("ledger") } }
        let l2 = "model.layers.2.mlp.down_proj.weight", l5 = "model.layers.5.mlp.down_proj.weight", l9 = "model.layers.9.mlp.down_proj.weight"
        XCTAssertEqual(try wl(["init", "-q"]).status, 0)
        let stashed = try SimulatedEdit.rankOne(file: weights, tensor: l2, seed: 41)
        XCTAssertEqual(try wl(["stash", "-q"]).status, 0)
        _ = try SimulatedEdit.rankOne(file: weights, tensor: l5, seed: 42)
        XCTAssertEqual(try wl(["commit", "-q", "-m", "moved on"]).status, 0)
        let kept = try SimulatedEdit.rankOne(file: weights, tensor: l9, seed: 43)
        try FileManager.default.linkItem(atPath: weights, toPath: link)
        let before = try files(), ledger = try ledgerFiles()
        var r = try wl(["stash", "apply"])
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertEqual(r.stderr, "error: stash@{0} would rewrite 'model.safetensors' whole and lose your uncommitted changes to '\(l9)' (it can "
                       + "only keep them writing in place): commit or stash them first, or discard them with 'wledger checkout --force HEAD'\n")
        XCTAssertEqual(try files(), before)
        XCTAssertEqual(try ledgerFiles(), ledger, "nothing recorded")
        try FileManager.default.removeItem(atPath: link)
        // With in-place writing turned off the same.
        XCTAssertEqual(try wl(["config", "set", "core.in-place", "false"]).status, 0)
        let ledgerOff = try ledgerFiles()
        r = try wl(["stash", "apply"])
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertTrue(r.stderr.hasPrefix("error: stash@{0} would rewrite 'model.safetensors' whole"), r.stderr)
        XCTAssertEqual(try ledgerFiles(), ledgerOff, "nothing recorded")
        XCTAssertEqual(try wl(["config", "unset", "core.in-place"]).status, 0)
        r = try wl(["stash", "apply"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try readTensorBytes(file: weights, tensor: l2), stashed.child)
        XCTAssertEqual(try readTensorBytes(file: weights, tensor: l9), kept.child, "the uncommitted change stays")
    }

    /// `stash -u`: untracked side files are recorded and leave the work tree, and come back with
    /// pop (not over a file that took their place); without -u an untracked file alone is nothing
    /// to save.
    func testStashIncludeUntrackedRecordsAndRemovesUntrackedFiles() throws {
        let tmp = try TemporaryDirectory("stash-u")
        let dir = (try tmp.copyModel(from: try Fixtures.smolLM2("bf16")) as NSString).standardizingPath
        let weights = dir + "/model.safetensors", notes = dir + "/NOTES.md"
        func wl(_ args: [String]) throws -> ProcessOutput { try CLI.run(args, in: dir) }
        func files() throws -> [String: String] { try directoryDigest(dir).filter { !$0.key.hasPrefix(".wledger/") } }
        XCTAssertEqual(try wl(["init", "-q"]).status, 0)
        let baseFiles = try files()
        let tensor = "model.layers.6.mlp.down_proj.weight"

        try "notes\n".write(toFile: notes, atomically: false, encoding: .utf8)
        var r = try wl(["stash"])
        XCTAssertEqual(r.stdout, "No local changes to save\n", "an untracked file alone, without -u")
        _ = try SimulatedEdit.rankOne(file: weights, tensor: tensor, seed: 7)
        let dirty = try files()
        r = try wl(["stash", "-u", "-q"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try files(), baseFiles, "HEAD's bytes, and the untracked file gone")
        XCTAssertEqual(try wl(["status", "-s"]).stdout, "")
        let shown = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(try wl(["stash", "show", "--json", "--no-spectrum"]).stdout.utf8)) as? [String: Any])
        XCTAssertEqual(shown["files"] as? [[String: String]], [["path": "NOTES.md", "change": "added"]])
        XCTAssertEqual(((shown["diff"] as? [String: Any])?["tensors"] as? [[String: Any]])?.compactMap { $0["name"] as? String }, [tensor])

        // A file that took its place is not overwritten: pop refuses with nothing changed.
        try "other\n".write(toFile: notes, atomically: false, encoding: .utf8)
        let occupied = try files()
        r = try wl(["stash", "pop"])
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("'NOTES.md'") && r.stderr.split(separator: "\n").count == 1, r.stderr)
        XCTAssertEqual(try files(), occupied)
        XCTAssertEqual(try wl(["stash", "list"]).stdout.split(separator: "\n").count, 1)
        try FileManager.default.removeItem(atPath: notes)
        r = try wl(["stash", "pop", "-q"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try files(), dirty, "the tensor and the untracked file, byte for byte")
        XCTAssertEqual(try wl(["status", "-s"]).stdout, " M \(tensor)\n?? NOTES.md\n")
        XCTAssertEqual(try wl(["stash", "list"]).stdout, "")

        // -u with only an untracked file (a symbolic link stays where it is, as itself).
        XCTAssertEqual(try wl(["checkout", "-q", "--force", "HEAD"]).status, 0)
        try FileManager.default.createSymbolicLink(atPath: dir + "/LINK.md", withDestinationPath: "config.json")
        XCTAssertEqual(try wl(["stash", "-u", "-q"]).status, 0)
        XCTAssertFalse(FileManager.default.fileExists(atPath: notes))
        XCTAssertEqual(try files().filter { $0.key != "LINK.md" }, baseFiles)
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: dir + "/LINK.md"), "config.json")
        try FileManager.default.removeItem(atPath: dir + "/LINK.md")
        // What the scan does not read cannot be overwritten either: a directory, or a file past
        // the 64 MiB side-file limit, where the stash has NOTES.md; refused with nothing written.
        try FileManager.default.createDirectory(atPath: notes, withIntermediateDirectories: false)
        let ledger = try directoryDigest(dir + "/.wledger").filter { $0.key.hasPrefix("ledger") }
        r = try wl(["stash", "apply"])
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertEqual(r.stderr, "error: '\(notes)' is a directory where stash@{0} has a file; move it away first\n")
        XCTAssertEqual(try wl(["status", "-s"]).stdout, "", "no journal left to trip over")
        try FileManager.default.removeItem(atPath: notes)
        let big = Data(repeating: 7, count: (64 << 20) + 1)
        try big.write(to: URL(fileURLWithPath: notes))
        r = try wl(["stash", "pop"])
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("is 67.1 MB, over the 64 MiB limit for side files that stash@{0} would overwrite"), r.stderr)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: notes)), big)
        XCTAssertEqual(try directoryDigest(dir + "/.wledger").filter { $0.key.hasPrefix("ledger") }, ledger, "the entry stays")
        try FileManager.default.removeItem(atPath: notes)
        // Nor a symbolic link the scan does not list (to nothing, or to a directory), as git's
        // untracked files: apply and checkout refuse, the link stays; checkout --force replaces it.
        for (destination, what) in [("missing.md", "nothing"), (".wledger", "a directory")] {
            try FileManager.default.createSymbolicLink(atPath: notes, withDestinationPath: destination)
            for args in [["stash", "apply"], ["checkout", "stash@{0}"]] {
                r = try wl(args)
                XCTAssertEqual(r.status, 1, r.stderr)
                XCTAssertEqual(r.stderr, "error: '\(notes)' is a symbolic link to \(what), untracked, that stash@{0} would replace "
                               + "with its tracked file; move it away first\(args[0] == "checkout" ? ", or use --force" : "")\n")
                XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: notes), destination)
                XCTAssertEqual(try directoryDigest(dir + "/.wledger").filter { $0.key.hasPrefix("ledger") }, ledger, "nothing recorded")
            }
            XCTAssertEqual(try wl(["status", "-s"]).stdout, "")
            try FileManager.default.removeItem(atPath: notes)
        }
        // A FIFO is no side file: the scan leaves it alone (reading it would block), and it is not
        // replaced either.
        XCTAssertEqual(mkfifo(notes, 0o644), 0)
        XCTAssertEqual(try wl(["status", "-s"]).stdout, "")
        r = try wl(["stash", "apply"])
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertEqual(r.stderr, "error: '\(notes)' is a special file (FIFO, socket or device), untracked, that stash@{0} would replace "
                       + "with its tracked file; move it away first\n")
        XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: notes)[.type] as? FileAttributeType, .typeUnknown)
        try FileManager.default.removeItem(atPath: notes)
        try FileManager.default.createSymbolicLink(atPath: notes, withDestinationPath: "missing.md")
        XCTAssertEqual(try wl(["checkout", "-q", "--force", "stash@{0}"]).status, 0)
        XCTAssertEqual((try FileManager.default.attributesOfItem(atPath: notes)[.type] as? FileAttributeType), .typeRegular)
        XCTAssertEqual(try String(contentsOfFile: notes, encoding: .utf8), "notes\n")
        XCTAssertEqual(try wl(["checkout", "-q", "main"]).status, 0)
        XCTAssertFalse(FileManager.default.fileExists(atPath: notes), "main does not track it")
        XCTAssertEqual(try wl(["stash", "apply", "-q"]).status, 0)
        XCTAssertEqual(try String(contentsOfFile: notes, encoding: .utf8), "notes\n")
        XCTAssertEqual(try wl(["fsck", "-q", "--full"]).status, 0)

        // A stash -u killed after its journal is finished by the next command, but an untracked
        // file edited in between stays: the stash holds what it was, the edit is not lost.
        _ = try SimulatedEdit.rankOne(file: weights, tensor: tensor, seed: 8)
        r = try CLI.run(["stash", "-u", "-q"], in: dir, environment: ["WLEDGER_FAULT": "checkout-journaled"])
        XCTAssertNotEqual(r.status, 0, "killed")
        try "edited after the kill\n".write(toFile: notes, atomically: false, encoding: .utf8)
        XCTAssertEqual(try wl(["status", "-s"]).stdout, "?? NOTES.md\n", "the tensor is HEAD's again")
        XCTAssertEqual(try String(contentsOfFile: notes, encoding: .utf8), "edited after the kill\n")
        XCTAssertEqual(try wl(["stash", "list"]).stdout.split(separator: "\n").count, 2)
        XCTAssertEqual((try JSONSerialization.jsonObject(with: Data(try wl(["stash", "show", "--json", "--no-spectrum"]).stdout.utf8)) as? [String: Any])?["files"] as? [[String: String]],
                       [["path": "NOTES.md", "change": "added"]])
        XCTAssertEqual(try wl(["stash", "drop", "-q"]).status, 0)
        try "notes\n".write(toFile: notes, atomically: false, encoding: .utf8)

        // A tracked side file grown past the limit is not a deletion: status, commit and stash
        // refuse with one line, and the file stays (a stash used to record it deleted and write
        // the committed one over it).
        let tokenizer = dir + "/tokenizer_config.json"
        var grown = try Data(contentsOf: URL(fileURLWithPath: tokenizer))
        grown.append(big)
        try grown.write(to: URL(fileURLWithPath: tokenizer))
        for args in [["status"], ["stash"], ["commit", "-m", "grown"], ["stash", "-u"]] {
            r = try wl(args)
            XCTAssertEqual(r.status, 2, "\(args): \(r.stderr)")
            XCTAssertEqual(r.stderr, "error: '\(dir)/tokenizer_config.json': the tracked side file is now \(String(format: "%.1f", Double(grown.count) / 1e6)) MB, "
                           + "over the 64 MiB limit for side files; move it away or shrink it ('wledger checkout --force HEAD' writes the committed one back)\n")
        }
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: tokenizer)), grown)
        XCTAssertEqual(try wl(["stash", "list"]).stdout.split(separator: "\n").count, 1)
        XCTAssertEqual(try wl(["checkout", "-q", "--force", "HEAD"]).status, 0)
        XCTAssertEqual(try files().filter { $0.key != "NOTES.md" }, baseFiles, "--force writes the committed one back")
        // ... and so is one replaced by a directory.
        try FileManager.default.removeItem(atPath: dir + "/generation_config.json")
        try FileManager.default.createDirectory(atPath: dir + "/generation_config.json", withIntermediateDirectories: false)
        // It reads as deleted, but nothing renames a file over it, not even --force (that used to
        // fail after the journal, and every later command's recovery with it): stash and checkout
        // refuse before a byte is written.
        let baseID = try XCTUnwrap((try JSONSerialization.jsonObject(with: Data(try wl(["show", "base", "--json"]).stdout.utf8)) as? [String: Any])?["id"] as? String)
        let base = String(baseID.prefix(12))
        XCTAssertTrue(try wl(["status", "-s"]).stdout.contains(" D generation_config.json"))
        let ledgerAtDirectory = try directoryDigest(dir + "/.wledger").filter { $0.key.hasPrefix("ledger") }
        for args in [["stash"], ["checkout", "--force", "HEAD"], ["reset", "--hard"]] {
            r = try wl(args)
            XCTAssertEqual(r.status, 1, "\(args): \(r.stderr)")
            XCTAssertEqual(r.stderr, "error: '\(dir)/generation_config.json' is a directory where \(base) has a file; move it away first\n")
            XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/.wledger/pending.json"), "no journal")
            // (no stash commit, no reflog entry for a reset that did not happen)
            XCTAssertEqual(try directoryDigest(dir + "/.wledger").filter { $0.key.hasPrefix("ledger") }, ledgerAtDirectory, "\(args)")
        }
        XCTAssertEqual(try wl(["stash", "list"]).stdout.split(separator: "\n").count, 1, "the failed stash dropped its entry again")
        try FileManager.default.removeItem(atPath: dir + "/generation_config.json")
        XCTAssertEqual(try wl(["checkout", "-q", "--force", "HEAD"]).status, 0)
        XCTAssertEqual(try files().filter { $0.key != "NOTES.md" }, baseFiles)

        // checkout --force past a side file too large to scan still removes the side files only
        // HEAD tracks, as a scanned checkout does.
        try "{}\n".write(toFile: dir + "/extra.json", atomically: false, encoding: .utf8)
        XCTAssertEqual(try wl(["commit", "-q", "-m", "extra"]).status, 0)
        try grown.write(to: URL(fileURLWithPath: tokenizer))
        XCTAssertEqual(try wl(["checkout", "-q", "--force", base]).status, 0)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/extra.json"))
        XCTAssertEqual(try files().filter { $0.key != "NOTES.md" }, baseFiles)
        // A directory where a side file only HEAD tracks was is already as the target has it.
        XCTAssertEqual(try wl(["checkout", "-q", "main"]).status, 0)
        try FileManager.default.removeItem(atPath: dir + "/extra.json")
        try FileManager.default.createDirectory(atPath: dir + "/extra.json", withIntermediateDirectories: false)
        r = try wl(["checkout", "-q", base])
        XCTAssertEqual(r.status, 0, r.stderr)
        var isDir: ObjCBool = false
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/extra.json", isDirectory: &isDir) && isDir.boolValue, "left alone")
    }

    /// `stash show` (and `diff`) of a change that makes a matrix singular: κ → 10¹⁶ or so, which
    /// the table prints in at most 8 characters, so its columns stay under their headers.
    func testStashShowKeepsTheTableAlignedForAHugeConditionNumber() throws {
        let tmp = try TemporaryDirectory("stash-kappa")
        let dir = (try tmp.copyModel(from: try Fixtures.smolLM2("bf16")) as NSString).standardizingPath
        let weights = dir + "/model.safetensors"
        let name = "model.layers.4.self_attn.q_proj.weight"   // 576 × 576: a zero row makes it singular
        func wl(_ args: [String]) throws -> ProcessOutput { try CLI.run(args, in: dir) }
        XCTAssertEqual(try wl(["init", "-q"]).status, 0)
        _ = try SimulatedEdit.modify(file: weights, tensor: name) { w, shape in for j in 0..<shape[1] { w[7 * shape[1] + j] = 0 } }
        XCTAssertEqual(try wl(["stash", "-q"]).status, 0)
        let r = try wl(["stash", "show"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let lines = r.stdout.split(separator: "\n").map(String.init)
        let header = try XCTUnwrap(lines.first { $0.hasPrefix("tensor") && $0.contains("κ to") }, r.stdout)
        let row = try XCTUnwrap(lines.last { $0.hasPrefix(name) }, r.stdout)
        let fields = row.split(separator: " ").map(String.init)
        let arrow = try XCTUnwrap(fields.firstIndex(of: "→"), row)
        let before = try XCTUnwrap(Double(fields[arrow - 1])), after = try XCTUnwrap(Double(fields[arrow + 1]), row)
        XCTAssertLessThan(before, 1e4, row)
        XCTAssertGreaterThan(after, 1e6, row)
        XCTAssertLessThanOrEqual(fields[arrow + 1].count, 8, row)
        // Every column ends where its header ends: κ's, and the ΔW rank's after it.
        func end(_ s: String, _ needle: String) -> Int? { s.range(of: needle).map { s.distance(from: s.startIndex, to: $0.upperBound) } }
        XCTAssertEqual(end(row, " → "), end(header, " → "), "\n\(header)\n\(row)")
        XCTAssertEqual(end(row, fields[arrow + 1]), end(header, "κ to"), "\n\(header)\n\(row)")
        let kappaEnd = try XCTUnwrap(end(row, fields[arrow + 1]))
        XCTAssertEqual(kappaEnd + 2 + 8, end(header, "rank(ΔW)"), "\n\(header)\n\(row)")
        XCTAssertEqual(String(row.dropFirst(kappaEnd).prefix(10)).trimmingCharacters(in: .whitespaces), fields[arrow + 2])
    }
}
