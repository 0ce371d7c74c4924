import Foundation
import TestSupport
import XCTest

/// `checkout` keeps uncommitted changes the switch leaves alone, as git does, on the real SmolLM2
/// BF16: a modified tensor the target has as HEAD has it stays byte for byte while the file gets
/// the target's other tensors in place; a changed tracked side file and an untracked one stay;
/// the result is exactly the target plus those changes, they stay uncommitted (status, commit),
/// and switching back restores the first branch with them. A change the switch would overwrite
/// (a tensor or side file that differs between HEAD and the target), or a carried tensor whose
/// file would be rewritten whole (`--no-in-place`), refuses the checkout and changes no byte.
final class CheckoutCarryTests: XCTestCase {
    func testCheckoutKeepsChangesItDoesNotTouch() throws {
        let tmp = try TemporaryDirectory("checkout-carry")
        let dir = (try tmp.copyModel(from: try Fixtures.smolLM2("bf16")) as NSString).standardizingPath
        let weights = dir + "/model.safetensors"
        func wl(_ args: [String]) throws -> ProcessOutput { try CLI.run(args, in: dir) }
        func files() throws -> [String: String] { try directoryDigest(dir).filter { !$0.key.hasPrefix(".wledger/") } }
        func status() throws -> (tensors: [String], side: [String]) {
            let r = try wl(["status", "--json"])
            XCTAssertEqual(r.status, 0, r.stderr)
            let o = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
            return ((o["modifiedTensors"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }.sorted(),
                    (o["sideFiles"] as? [[String: Any]] ?? []).map { "\($0["change"]!) \($0["path"]!)" }.sorted())
        }
        /// The file `rev` has, from `checkout --output`.
        func committed(_ rev: String, _ path: String) throws -> Data {
            let out = tmp.path + "/out-" + rev
            if !FileManager.default.fileExists(atPath: out) { XCTAssertEqual(try wl(["checkout", "-q", rev, "--output", out]).status, 0) }
            return try Data(contentsOf: URL(fileURLWithPath: out + "/" + path))
        }
        let l4 = "model.layers.4.mlp.down_proj.weight", l6 = "model.layers.6.mlp.down_proj.weight", l9 = "model.layers.9.mlp.down_proj.weight"

        XCTAssertEqual(try wl(["init", "-q"]).status, 0)
        _ = try SimulatedEdit.rankOne(file: weights, tensor: l4, seed: 1)
        XCTAssertEqual(try wl(["commit", "-q", "-m", "one"]).status, 0)
        XCTAssertEqual(try wl(["branch", "side"]).status, 0)
        _ = try SimulatedEdit.rankOne(file: weights, tensor: l9, seed: 2)
        XCTAssertEqual(try wl(["commit", "-q", "-m", "two"]).status, 0)

        // Uncommitted: layer 6 (the same in both commits), generation_config.json changed, NOTES.md new.
        let dirty6 = try SimulatedEdit.rankOne(file: weights, tensor: l6, seed: 5).child
        let genConfig = "{\n  \"do_sample\": false\n}\n"
        try genConfig.write(toFile: dir + "/generation_config.json", atomically: true, encoding: .utf8)
        try "notes\n".write(toFile: dir + "/NOTES.md", atomically: true, encoding: .utf8)
        let carried = (tensors: [l6], side: ["added NOTES.md", "modified generation_config.json"])
        XCTAssertEqual(try status().tensors, carried.tensors)
        XCTAssertEqual(try status().side, carried.side)
        var r = try wl(["status", "-sb"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout.split(separator: "\n").first, "## main")
        XCTAssertEqual(Set(r.stdout.split(separator: "\n").dropFirst()), [" M \(l6)", " M generation_config.json", "?? NOTES.md"])
        XCTAssertEqual(try wl(["status", "-b"]).status, 2, "-b goes with --short")

        /// The work tree is `rev`'s files with layer 6 and the two side files as changed here.
        func assertCarried(over rev: String, line: UInt = #line) throws {
            var expected = try committed(rev, "model.safetensors")
            let (info, dataStart) = try SimulatedEdit.locate(file: weights, tensor: l6)
            expected.replaceSubrange((dataStart + info.begin)..<(dataStart + info.begin + info.byteCount), with: dirty6)
            XCTAssertTrue(try Data(contentsOf: URL(fileURLWithPath: weights)) == expected, "weights are \(rev)'s plus layer 6", line: line)
            for f in ["config.json", "tokenizer.json", "tokenizer_config.json"] {
                XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: dir + "/" + f)), try committed(rev, f), f, line: line)
            }
            XCTAssertEqual(try String(contentsOfFile: dir + "/generation_config.json", encoding: .utf8), genConfig, line: line)
            XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/NOTES.md"), line: line)
            XCTAssertEqual(try status().tensors, carried.tensors, line: line)
            XCTAssertEqual(try status().side, carried.side, line: line)
        }

        // To side: layer 9 goes back to one's version in place, the changes stay and are listed.
        r = try wl(["checkout", "side"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(Set(r.stdout.split(separator: "\n").filter { $0.contains("\t") }), ["M\t\(l6)", "M\tgeneration_config.json"],
                       "untracked files are not listed: \(r.stdout)")
        XCTAssertTrue(r.stdout.contains("Switched to branch 'side'"), r.stdout)
        try assertCarried(over: "side")
        // Back to main, as JSON; then HEAD itself (nothing to write, everything kept).
        r = try wl(["checkout", "main", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(json["carriedTensors"] as? [String], [l6])
        XCTAssertEqual(json["patchedInPlace"] as? [String], ["model.safetensors"])
        try assertCarried(over: "main")
        r = try wl(["checkout", "HEAD"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("M\t\(l6)") && r.stdout.contains("(0 file(s) written"), r.stdout)
        try assertCarried(over: "main")

        // Refused, no byte changed: a change to a tensor the switch writes (layer 9 differs between
        // main and side), a side file the target has otherwise, and layer 6 with --no-in-place.
        let kept = try directoryDigest(dir)
        r = try wl(["checkout", "side", "--no-in-place"])
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("would rewrite 'model.safetensors' whole and lose your uncommitted changes to '\(l6)'"), r.stderr)
        XCTAssertEqual(try directoryDigest(dir), kept)
        _ = try SimulatedEdit.rankOne(file: weights, tensor: l9, seed: 8)
        let conflicted = try directoryDigest(dir)
        r = try wl(["checkout", "side"])
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("your local changes would be overwritten by checkout: '\(l9)'"), r.stderr)
        XCTAssertEqual(try directoryDigest(dir), conflicted)
        XCTAssertEqual(try wl(["reflog", "-n", "1"]).stdout.contains("moving from side to main"), true, "no HEAD move logged")

        // Committing takes the carried changes (and the conflicting one) onto main.
        XCTAssertEqual(try wl(["commit", "-q", "-m", "three"]).status, 0)
        XCTAssertEqual(try status().tensors, [])
        XCTAssertEqual(try status().side, [])

        // A tracked side file deleted here that the target does not have (NOTES.md, committed in
        // three): already as the target has it, so neither kept nor refused.
        XCTAssertEqual(unlink(dir + "/NOTES.md"), 0)
        r = try wl(["checkout", "side"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertFalse(r.stdout.contains("\t"), r.stdout)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/NOTES.md"))
        XCTAssertTrue(try Data(contentsOf: URL(fileURLWithPath: weights)) == (try committed("side", "model.safetensors")))
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: dir + "/generation_config.json")), try committed("side", "generation_config.json"))
        XCTAssertEqual(try status().tensors, [])
        XCTAssertEqual(try status().side, [])
        XCTAssertEqual(try wl(["fsck", "-q"]).status, 0)
    }
}
