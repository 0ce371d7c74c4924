import Foundation
import TestSupport
import XCTest

/// `wledger cherry-pick REV` on the real SmolLM2 BF16: an edit made on main is applied onto a
/// branch that forked before it. Where the branch holds the tensor as the edit's parent did, the
/// result is the edit's bytes exactly, with its kind, method, request and message carried over;
/// where the branch changed the tensor too, the result is HEAD + ΔW (checked element by element
/// against a float64 computation here, within half a BF16 ulp; untouched elements bit-exact).
/// Refusals (in HEAD's history, picked before, already applied, the base, a dirty work tree, an
/// unknown revision) change no byte.
final class CherryPickTests: XCTestCase {
    func testCherryPickAppliesAnEditFromAnotherBranch() throws {
        let tmp = try TemporaryDirectory("cherry-pick")
        let dir = (try tmp.copyModel(from: try Fixtures.smolLM2("bf16")) as NSString).standardizingPath
        let weights = dir + "/model.safetensors"
        func wl(_ args: [String]) throws -> ProcessOutput { try CLI.run(args, in: dir) }
        func show(_ rev: String) throws -> [String: Any] {
            let r = try wl(["show", rev, "--json"])
            XCTAssertEqual(r.status, 0, r.stderr)
            return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        }
        let l4 = "model.layers.4.mlp.down_proj.weight", l9 = "model.layers.9.mlp.down_proj.weight"
        let request = tmp.path + "/edit.json"
        try #"{"prompt": "The Eiffel Tower is in", "subject": "Eiffel Tower", "target_new": "Rome", "ground_truth": "Paris"}"#
            .write(toFile: request, atomically: true, encoding: .utf8)

        XCTAssertEqual(try wl(["init", "-q"]).status, 0)
        let one = try SimulatedEdit.rankOne(file: weights, tensor: l4, seed: 1)
        XCTAssertEqual(try wl(["commit", "-q", "-m", "Eiffel Tower → Rome", "--request", request, "--method", "ROME", "--author", "Ada <ada@example.com>"]).status, 0)
        let oneID = try XCTUnwrap(show("HEAD")["id"] as? String)
        let two = try SimulatedEdit.rankOne(file: weights, tensor: l9, seed: 2)
        XCTAssertEqual(try wl(["commit", "-q", "-m", "two"]).status, 0)
        let twoID = try XCTUnwrap(show("HEAD")["id"] as? String)
        XCTAssertEqual(try wl(["checkout", "-q", "-b", "side", "base"]).status, 0)
        let side = try SimulatedEdit.rankOne(file: weights, tensor: l9, seed: 3)
        XCTAssertEqual(try wl(["commit", "-q", "-m", "side's own edit of layer 9"]).status, 0)

        // Exact: side holds layer 4 as the edit's parent did.
        var r = try wl(["cherry-pick", "main~1"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.hasPrefix("[side "), r.stdout)
        let picked = try show("HEAD"), original = try show(oneID)
        XCTAssertEqual(picked["message"] as? String, "Eiffel Tower → Rome\n\n(cherry picked from commit \(oneID))")
        XCTAssertEqual(picked["kind"] as? String, "edit")
        XCTAssertEqual(picked["method"] as? String, "ROME")
        XCTAssertEqual(picked["author"] as? String, "Ada <ada@example.com>", "git keeps the author")
        XCTAssertEqual(picked["request"] as? NSDictionary, original["request"] as? NSDictionary)
        XCTAssertNotNil(picked["request"] as? NSDictionary)
        XCTAssertEqual((picked["parameters"] as? [String: Any])?["cherryPickedFrom"] as? String, oneID)
        XCTAssertEqual((picked["tensors"] as? [[String: Any]])?.compactMap { $0["name"] as? String }, [l4])
        XCTAssertEqual(try readTensorBytes(file: weights, tensor: l4), one.child)
        XCTAssertEqual(try readTensorBytes(file: weights, tensor: l9), side.child)
        XCTAssertEqual(try wl(["reflog", "-n", "1"]).stdout, "\(String((picked["id"] as! String).prefix(12))) HEAD@{0}: cherry-pick: Eiffel Tower → Rome\n")

        // HEAD + ΔW: side changed layer 9 too; check every element against float64 here.
        r = try wl(["cherry-pick", "main", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let got = try readTensorBytes(file: weights, tensor: l9)
        let check = ReferenceDecode.headPlusDelta(got: got, head: side.child, parent: two.parent, child: two.child, dtype: "BF16")
        XCTAssertNil(check.keptMismatch, "an element changed where ΔW is 0")
        XCTAssertGreaterThan(check.moved, got.count / 4, "a rank-one ΔW moves most elements")
        XCTAssertLessThanOrEqual(check.worst, 1.0 / 256, "within half a BF16 ulp of HEAD + ΔW")
        XCTAssertNotEqual(got, two.child, "not simply the picked commit's bytes")

        // Refusals: one line, the right exit code, no byte changed.
        let headID = try XCTUnwrap(show("HEAD")["id"] as? String)
        for (args, code, needle) in [(["cherry-pick", "HEAD~1"], Int32(1), "already in HEAD's history"),
                                     (["cherry-pick", twoID], 1, "already on this history as"),
                                     (["cherry-pick", "base"], 2, "base snapshot"),
                                     (["cherry-pick", "nope"], 2, "unknown revision 'nope'")] {
            let before = try directoryDigest(dir)
            r = try wl(args)
            XCTAssertEqual(r.status, code, "\(args): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains(needle), "\(args): \(r.stderr)")
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
            XCTAssertEqual(try directoryDigest(dir), before, "\(args)")
        }
        // On main: revert the edit, and change a side file alone.
        let pickID = try XCTUnwrap(picked["id"] as? String)
        XCTAssertEqual(try wl(["checkout", "-q", "main"]).status, 0)
        r = try wl(["cherry-pick", pickID])
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("already on this history as \(oneID.prefix(12))"), "a pick of a pick is the same edit: \(r.stderr)")
        XCTAssertEqual(try wl(["revert", "-q", oneID]).status, 0)
        try "{\"do_sample\": false}\n".write(toFile: dir + "/generation_config.json", atomically: true, encoding: .utf8)
        XCTAssertEqual(try wl(["commit", "-q", "-m", "config"]).status, 0)
        XCTAssertEqual(try wl(["checkout", "-q", "side"]).status, 0)
        // The picked revert reverts side's copy of the edit (health's edits task follows that link).
        r = try wl(["cherry-pick", "main~1"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let pickedRevert = try show("HEAD")
        XCTAssertEqual(pickedRevert["kind"] as? String, "revert")
        XCTAssertEqual((pickedRevert["parameters"] as? [String: Any])?["reverts"] as? String, pickID)
        XCTAssertEqual(try readTensorBytes(file: weights, tensor: l4), one.parent)
        // A side file the commit changed is carried where HEAD has it as the commit's parent did.
        let gen = dir + "/generation_config.json"
        let mainID = try XCTUnwrap(show("main")["id"] as? String)
        r = try wl(["cherry-pick", "main"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("edit: 0 tensor(s) changed, 1 file(s), stored ") && r.stdout.hasSuffix("\n   generation_config.json\n"), r.stdout)
        XCTAssertEqual(try String(contentsOfFile: gen, encoding: .utf8), "{\"do_sample\": false}\n")
        XCTAssertEqual(try wl(["status", "-s"]).stdout, "")
        XCTAssertEqual(try show("HEAD")["files"] as? [String], ["generation_config.json"])
        // Undone, and side changes the file its own way: the pick refuses with no byte changed.
        XCTAssertEqual(try wl(["reset", "-q", "--hard", "HEAD~1"]).status, 0)
        try "{\"do_sample\": true}\n".write(toFile: gen, atomically: true, encoding: .utf8)
        XCTAssertEqual(try wl(["commit", "-q", "-m", "side's config"]).status, 0)
        let conflicted = try directoryDigest(dir)
        r = try wl(["cherry-pick", "main"])
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertEqual(r.stderr, "error: cannot cherry-pick \(mainID.prefix(12)): 'generation_config.json' changed on HEAD's side too\n")
        XCTAssertEqual(try directoryDigest(dir), conflicted)
        let headID2 = try XCTUnwrap(show("HEAD")["id"] as? String)

        // A branch that already holds what the commit wrote (the same edit made by hand): nothing
        // to pick. Then, back on side with uncommitted changes, a pick is refused.
        XCTAssertEqual(try wl(["checkout", "-q", "-b", "holds", "base"]).status, 0)
        XCTAssertEqual(try SimulatedEdit.rankOne(file: weights, tensor: l4, seed: 1).child, one.child)
        XCTAssertEqual(try wl(["commit", "-q", "-m", "the same edit"]).status, 0)
        var before = try directoryDigest(dir)
        r = try wl(["cherry-pick", oneID])
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("nothing to cherry-pick"), r.stderr)
        XCTAssertEqual(try directoryDigest(dir), before)
        _ = try SimulatedEdit.rankOne(file: weights, tensor: "model.layers.2.mlp.down_proj.weight", seed: 9)
        XCTAssertEqual(try wl(["commit", "-q", "-m", "layer 2"]).status, 0)
        XCTAssertEqual(try wl(["checkout", "-q", "side"]).status, 0)
        _ = try SimulatedEdit.rankOne(file: weights, tensor: "model.layers.6.mlp.down_proj.weight", seed: 4)
        before = try directoryDigest(dir)
        r = try wl(["cherry-pick", "holds"])
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("uncommitted changes"), r.stderr)
        XCTAssertEqual(try directoryDigest(dir), before)
        XCTAssertEqual(try XCTUnwrap(show("HEAD")["id"] as? String), headID2)
        XCTAssertNotEqual(headID, headID2)
        // Clean again, the pick of layer 2 goes through.
        XCTAssertEqual(try wl(["checkout", "-q", "--force", "HEAD"]).status, 0)
        XCTAssertEqual(try wl(["cherry-pick", "-q", "holds"]).status, 0)
        XCTAssertEqual(try wl(["fsck", "-q"]).status, 0)

        // A file added, then deleted, on main; each picked onto side. The deletion's pick killed
        // right after its commit was recorded is finished by the next command, file removed.
        XCTAssertEqual(try wl(["checkout", "-q", "main"]).status, 0)
        try "notes\n".write(toFile: dir + "/NOTES.md", atomically: true, encoding: .utf8)
        XCTAssertEqual(try wl(["commit", "-q", "-m", "notes"]).status, 0)
        try FileManager.default.removeItem(atPath: dir + "/NOTES.md")
        XCTAssertEqual(try wl(["commit", "-q", "-m", "no notes"]).status, 0)
        XCTAssertEqual(try wl(["checkout", "-q", "side"]).status, 0)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/NOTES.md"))
        // Not over an untracked file, nor over what the scan does not list (a link to nothing):
        // refused, the file or link stays, nothing is recorded.
        let sideHead = try XCTUnwrap(show("HEAD")["id"] as? String)
        try "mine\n".write(toFile: dir + "/NOTES.md", atomically: true, encoding: .utf8)
        r = try wl(["cherry-pick", "main~1"])
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertEqual(r.stderr, "error: the untracked file '\(dir)/NOTES.md' would be overwritten; move it away first\n")
        XCTAssertEqual(try String(contentsOfFile: dir + "/NOTES.md", encoding: .utf8), "mine\n")
        XCTAssertEqual(try XCTUnwrap(show("HEAD")["id"] as? String), sideHead)
        try FileManager.default.removeItem(atPath: dir + "/NOTES.md")
        try FileManager.default.createSymbolicLink(atPath: dir + "/NOTES.md", withDestinationPath: "missing")
        r = try wl(["cherry-pick", "main~1"])
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertEqual(r.stderr, "error: '\(dir)/NOTES.md' is a symbolic link to nothing, untracked, where the commit has a file; move it away first\n")
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: dir + "/NOTES.md"), "missing")
        XCTAssertEqual(try XCTUnwrap(show("HEAD")["id"] as? String), sideHead)
        try FileManager.default.removeItem(atPath: dir + "/NOTES.md")
        // A pre-commit hook sees the added file in its candidate directory.
        let hook = dir + "/.wledger/hooks/pre-commit"
        try FileManager.default.createDirectory(atPath: dir + "/.wledger/hooks", withIntermediateDirectories: true)
        try "#!/bin/sh\ntest \"$(cat \"$WLEDGER_CANDIDATE/NOTES.md\")\" = notes || { echo 'no NOTES.md in the candidate' >&2; exit 1; }\n"
            .write(toFile: hook, atomically: true, encoding: .utf8)
        XCTAssertEqual(chmod(hook, 0o755), 0)
        r = try wl(["cherry-pick", "-q", "main~1"])
        XCTAssertEqual(r.status, 0, r.stderr)
        try FileManager.default.removeItem(atPath: hook)
        XCTAssertEqual(try String(contentsOfFile: dir + "/NOTES.md", encoding: .utf8), "notes\n")
        let beforeDeletion = try XCTUnwrap(show("HEAD")["id"] as? String)
        // The deletion's pick killed after its journal, before its commit: rolled back, file kept.
        r = try CLI.run(["cherry-pick", "-q", "main"], in: dir, environment: ["WLEDGER_FAULT": "update-journaled"])
        XCTAssertEqual(r.status, 9, r.stderr)
        r = try wl(["status", "-s"])
        XCTAssertTrue(r.stderr.contains("rolled back an interrupted update"), r.stderr)
        XCTAssertEqual(r.stdout, "")
        XCTAssertEqual(try String(contentsOfFile: dir + "/NOTES.md", encoding: .utf8), "notes\n")
        XCTAssertEqual(try XCTUnwrap(show("HEAD")["id"] as? String), beforeDeletion)
        r = try CLI.run(["cherry-pick", "-q", "main"], in: dir, environment: ["WLEDGER_FAULT": "update-recorded"])
        XCTAssertEqual(r.status, 9, r.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/NOTES.md"), "killed before the removal")
        r = try wl(["status", "-s"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("completed an interrupted update"), r.stderr)
        XCTAssertEqual(r.stdout, "")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/NOTES.md"))
        XCTAssertEqual(try show("HEAD")["parent"] as? String, beforeDeletion)
        XCTAssertEqual(try wl(["fsck", "-q", "--full"]).status, 0)
        // revert takes side files back too, as git's: reverting the deletion gives the file back;
        // an untracked file the operation does not touch stays.
        try "scratch\n".write(toFile: dir + "/scratch.txt", atomically: true, encoding: .utf8)
        r = try wl(["revert", "HEAD"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("revert: 0 tensor(s) changed, 1 file(s)"), r.stdout)
        XCTAssertEqual(try String(contentsOfFile: dir + "/NOTES.md", encoding: .utf8), "notes\n", "the deletion reverted")
        XCTAssertEqual(try wl(["status", "-s"]).stdout, "?? scratch.txt\n")
        // Changed since: reverting the revert refuses, nothing changed.
        try FileManager.default.removeItem(atPath: dir + "/scratch.txt")
        try "changed\n".write(toFile: dir + "/NOTES.md", atomically: true, encoding: .utf8)
        XCTAssertEqual(try wl(["commit", "-q", "-m", "notes changed"]).status, 0)
        let reverted = try directoryDigest(dir), revertID = try XCTUnwrap(show("HEAD~1")["id"] as? String)
        r = try wl(["revert", "HEAD~1"])
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertEqual(r.stderr, "error: cannot revert \(revertID.prefix(12)): 'NOTES.md' changed since\n")
        XCTAssertEqual(try directoryDigest(dir), reverted)
        XCTAssertEqual(try wl(["fsck", "-q", "--full"]).status, 0)
    }
}
