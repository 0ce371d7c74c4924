import Foundation
import TestSupport
import XCTest

/// Revision and ref-name edge cases from an adversarial audit, on the real SmolLM2 BF16: a
/// decomposed (NFD) branch name beside its composed twin, a `~N` past an Int, renames within one
/// second followed by `@{-1}`, a branch named like a full commit id, messages cleaned as git
/// cleans them, `-q` of branch and tag, and what `show` reports for the base snapshot and for a
/// tensor changed from all zeros.
final class RevisionEdgeTests: XCTestCase {
    func testRefNamesRevisionsAndShowNumbers() throws {
        let tmp = try TemporaryDirectory("revision-edge")
        let dir = (try tmp.copyModel(from: try Fixtures.smolLM2("bf16")) as NSString).standardizingPath
        let weights = dir + "/model.safetensors"
        func wl(_ args: [String]) throws -> ProcessOutput { try CLI.run(args, in: dir) }
        func json(_ args: [String]) throws -> [String: Any] {
            let r = try wl(args + ["--json"])
            XCTAssertEqual(r.status, 0, r.stderr)
            return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        }
        func commitID(_ rev: String) throws -> String { try XCTUnwrap(try json(["show", rev])["id"] as? String) }
        func status() throws -> String { try wl(["status", "-sb"]).stdout }
        func ledgerState() throws -> [String] { [try wl(["log", "--oneline"]).stdout, try wl(["branch"]).stdout, try wl(["reflog"]).stdout] }

        XCTAssertEqual(try wl(["init", "-q"]).status, 0)
        let base = try commitID("HEAD")

        // The base snapshot's stored bytes are its own, not the ledger's: the same before and
        // after a commit that stores more.
        func baseStored() throws -> Int {
            try XCTUnwrap((try json(["show", "base"])["summary"] as? [String: Any])?["storedBytes"] as? Int)
        }
        let stored0 = try baseStored()
        XCTAssertGreaterThan(stored0, 0)
        _ = try SimulatedEdit.rankOne(file: weights, tensor: "model.layers.3.mlp.down_proj.weight", seed: 1)
        XCTAssertEqual(try wl(["commit", "-q", "-m", "e1"]).status, 0)
        let e1 = try commitID("HEAD")
        XCTAssertEqual(try baseStored(), stored0)

        // A -m message is cleaned as git cleans one: its first line is the subject.
        _ = try SimulatedEdit.rankOne(file: weights, tensor: "model.layers.4.mlp.down_proj.weight", seed: 4)
        let committed = try wl(["commit", "-m", "\n \n  subject  \n\n\n\tbody\t\n\n"])
        XCTAssertEqual(committed.status, 0, committed.stderr)
        XCTAssertTrue(committed.stdout.hasPrefix("[main \(try commitID("HEAD").prefix(12))]   subject\n"), committed.stdout)
        XCTAssertEqual(try json(["show", "HEAD"])["message"] as? String, "  subject\n\n\tbody")
        let reflog = try wl(["reflog", "-n", "1"]).stdout
        XCTAssertTrue(reflog.hasSuffix("commit:   subject\n"), reflog)
        XCTAssertEqual(try wl(["commit", "-m", " \n\t\n"]).status, 2, "only white space: aborted, as git")
        // -q: branch and tag say nothing on success, as git's.
        for args in [["branch", "-q", "quiet"], ["branch", "-q", "-m", "quiet", "quieter"], ["branch", "-q", "-D", "quieter"],
                     ["tag", "-q", "t1"], ["tag", "-q", "-d", "t1"]] {
            let r = try wl(args)
            XCTAssertEqual(r.status, 0, "\(args): \(r.stderr)")
            XCTAssertEqual(r.stdout + r.stderr, "", "\(args)")
        }

        // A ~N past an Int: an error, not a crash (it trapped on the overflow: exit 132).
        for rev in ["HEAD~9223372036854775807~1", "HEAD~1~9223372036854775807", "HEAD^~9223372036854775807", "HEAD^1~9223372036854775807"] {
            let r = try wl(["log", rev])
            XCTAssertEqual(r.status, 2, "\(rev): \(r.stderr)")
            XCTAssertEqual(r.stderr, "error: revision '\(rev)' goes past the base commit\n")
        }

        // A decomposed name is refused (it compared equal to the composed branch: both were
        // current, and a rename of one moved HEAD); the composed one works.
        let nfc = "caf\u{E9}", nfd = "cafe\u{301}"
        XCTAssertEqual(try wl(["branch", nfc]).status, 0)
        let before = try ledgerState()
        for args in [["branch", nfd], ["tag", nfd], ["checkout", "-b", nfd], ["branch", "-m", nfc, nfd]] {
            let r = try wl(args)
            XCTAssertEqual(r.status, 2, "\(args): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains("not in Unicode normal form C (NFC)"), r.stderr)
        }
        // As git: no component may end in ".lock".
        XCTAssertEqual(try wl(["branch", "a.lock/b"]).status, 2)
        XCTAssertEqual(try ledgerState(), before, "refusals change nothing")
        XCTAssertEqual(try wl(["branch", "-d", nfc]).status, 0)

        // A branch named like a full commit id does not hide that commit (git takes a full
        // object name as the object).
        XCTAssertEqual(try wl(["branch", e1, "base"]).status, 0)
        XCTAssertEqual(try commitID(e1), e1)
        XCTAssertEqual(try commitID(e1.uppercased()), e1)
        XCTAssertEqual(try wl(["branch", "-D", e1]).status, 0)

        // Renames within one second: @{-1} follows them in the order they were made, as
        // `checkout -` does (it compared their times, a second apart at best).
        XCTAssertEqual(try wl(["branch", "qa", "base"]).status, 0)
        XCTAssertEqual(try wl(["checkout", "-q", "-b", "A"]).status, 0)
        XCTAssertEqual(try wl(["branch", "-m", "A", "Z"]).status, 0)
        XCTAssertEqual(try wl(["checkout", "-q", "qa"]).status, 0)
        XCTAssertEqual(try wl(["branch", "-m", "qa", "A"]).status, 0)
        XCTAssertEqual(try wl(["checkout", "-q", "main"]).status, 0)
        XCTAssertEqual(try commitID("@{-1}"), base, "A (was qa), the branch the last checkout left")
        XCTAssertEqual(try wl(["checkout", "-q", "-"]).status, 0)
        XCTAssertEqual(try status(), "## A\n")
        XCTAssertEqual(try wl(["checkout", "-q", "main"]).status, 0)

        // A tensor changed from all zeros: ‖ΔW‖/‖W‖ is infinite in show as in diff (show said 0).
        let name = "model.layers.10.mlp.down_proj.weight"
        _ = try SimulatedEdit.modify(file: weights, tensor: name) { values, _ in
            for i in values.indices { values[i] = 0 }
        }
        XCTAssertEqual(try wl(["commit", "-q", "-m", "zero"]).status, 0)
        _ = try SimulatedEdit.rankOne(file: weights, tensor: name, seed: 3)
        XCTAssertEqual(try wl(["commit", "-q", "-m", "from zero"]).status, 0)
        func relative(_ object: [String: Any]) throws -> String {
            let tensors = try XCTUnwrap(object["tensors"] as? [[String: Any]])
            let t = try XCTUnwrap(tensors.first { $0["name"] as? String == name })
            return "\(try XCTUnwrap(t["relativeFrobenius"]))"
        }
        let shown = try relative(try json(["show", "HEAD"]))
        XCTAssertEqual(shown, try relative(try json(["diff", "HEAD~1", "HEAD"])))
        XCTAssertEqual(shown, "Infinity")
    }
}
