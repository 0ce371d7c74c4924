import Foundation
import TestSupport
import XCTest

/// `wledger edit` on the real SmolLM2 (F32): ROME and MEMIT commit their edits with method,
/// hyperparameters and request; the committed ΔW has the method's rank; bad input and a dirty
/// work tree change nothing. (The algorithms' numerics are checked in EngineTests/EditingTests.)
final class EditCommandTests: XCTestCase {
    func testEditCommitsROMEAndMEMITAndRefusesBadInput() throws {
        let source = try Fixtures.smolLM2("f32")
        _ = try Fixtures.taskData("corpus/lee_background.txt")   // the default corpus of C
        let tmp = try TemporaryDirectory("edit")
        let dir = (try tmp.copyModel(from: source) as NSString).standardizingPath
        func wl(_ args: [String]) throws -> ProcessOutput { try CLI.run(args, in: dir) }
        func json(_ r: ProcessOutput) throws -> Any { try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) }
        XCTAssertEqual(try wl(["init", "-q"]).status, 0)

        let france = tmp.path + "/france.json"
        try #"{"prompt": "The capital of France is", "subject": "France", "target_new": "London", "ground_truth": "Paris", "rephrase_prompt": "France's capital city is", "locality": {"neighborhood": {"prompt": "The Eiffel Tower is located in the city of", "ground_truth": "Paris"}}}"#
            .write(toFile: france, atomically: true, encoding: .utf8)
        let two = tmp.path + "/two.json"
        try #"[{"prompt": "The capital of Japan is", "subject": "Japan", "target_new": "Seoul", "ground_truth": "Tokyo"}, {"prompt": "The Colosseum is located in the city of", "subject": "Colosseum", "target_new": "Athens", "ground_truth": "Rome"}]"#
            .write(toFile: two, atomically: true, encoding: .utf8)
        let badSubject = tmp.path + "/bad.json"
        try #"{"prompt": "The capital of France is", "subject": "Spain", "target_new": "London", "ground_truth": "Paris"}"#
            .write(toFile: badSubject, atomically: true, encoding: .utf8)

        // Bad input: one line, exit 2, nothing changed. The model file is older than the stat
        // cache's 100 ms racy window by now, so a refusal that scanned and recorded stats would
        // change the ledger's bytes.
        let tiny = tmp.path + "/tiny.txt"
        try "Too short a corpus.".write(toFile: tiny, atomically: true, encoding: .utf8)
        Thread.sleep(forTimeInterval: 0.3)
        let before = try directoryDigest(dir)
        for (args, needle) in [(["edit", "--request", tmp.path + "/missing.json"], "missing.json"),
                               (["edit", "--request", badSubject], "bad.json"),
                               (["edit", "--request", france, "--layer", "99"], "--layer 99"),
                               (["edit", "--request", france, "--method", "mend"], "mend"),
                               (["edit", "--request", two, "--method", "memit", "--layers", "4-x"], "4-x"),
                               // A layer twice trapped (MEMIT's key statistics per layer); each
                               // method's layer option refuses the other's, which was ignored.
                               (["edit", "--request", two, "--method", "memit", "--layers", "4,4", "--no-mom2"], "layer 4 is given twice"),
                               (["edit", "--request", two, "--method", "memit", "--layers", "4,5,4"], "layer 4 is given twice"),
                               (["edit", "--request", france, "--layers", "4-99", "--no-mom2"], "--layers is for --method memit"),
                               (["edit", "--request", two, "--method", "memit", "--layer", "99"], "--layer is for --method rome"),
                               (["edit", "--request", france, "--mom2-corpus", tiny], "tiny.txt': the text corpus for the key statistics has fewer than 128 tokens")] {
            let r = try wl(args)
            XCTAssertEqual(r.status, 2, "\(args): \(r.stderr)")
            let lines = r.stderr.split(separator: "\n").filter { !$0.hasPrefix("Usage:") && !$0.hasPrefix("  See") && !$0.isEmpty }
            XCTAssertEqual(lines.count, 1, "\(args): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains(needle), "\(args): \(r.stderr)")
            XCTAssertEqual(try directoryDigest(dir), before, "\(args) changed something")
        }
        // Without the default corpus of the key statistics (the task data directory is elsewhere).
        let noCorpus = try CLI.run(["edit", "--request", france], in: dir, environment: ["WLEDGER_TASKS": tmp.path + "/nowhere"])
        XCTAssertEqual(noCorpus.status, 2, noCorpus.stderr)
        XCTAssertEqual(noCorpus.stderr.split(separator: "\n").count, 1, noCorpus.stderr)
        XCTAssertTrue(noCorpus.stderr.contains("'\(tmp.path)/nowhere/corpus/lee_background.txt': the default text corpus"), noCorpus.stderr)
        XCTAssertEqual(try directoryDigest(dir), before, "a missing corpus changed something")

        // An edit whose update changes no weight says why instead of a bare "nothing to commit".
        let noSteps = try wl(["edit", "--request", france, "--steps", "0", "--no-mom2"])
        XCTAssertEqual(noSteps.status, 1, noSteps.stderr)
        XCTAssertTrue(noSteps.stderr.contains("the edit's update rounds away in the weights' dtype"), noSteps.stderr)
        XCTAssertEqual(noSteps.stderr.split(separator: "\n").count, 1, noSteps.stderr)

        // ROME, with C over a small corpus.
        var r = try wl(["edit", "-q", "--request", france, "--steps", "10", "--mom2-tokens", "2048", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let report = try XCTUnwrap((try json(r) as? [[String: Any]])?.first)
        XCTAssertEqual(report["method"] as? String, "ROME")
        XCTAssertEqual(report["layers"] as? [Int], [5])
        XCTAssertEqual(report["efficacy"] as? Double, 1, "London must beat Paris after the edit: \(r.stdout)")
        XCTAssertLessThan(try XCTUnwrap(report["marginBefore"] as? Double), 0)
        XCTAssertNotNil(report["generalization"] as? Double)
        XCTAssertNotNil(report["locality"] as? Double)
        // The report carries the count, and a clean work tree gives no warning.
        XCTAssertEqual(report["workTreeMismatches"] as? Int, 0)
        XCTAssertFalse(r.stderr.contains("warning:"), r.stderr)
        let romeCommit = try XCTUnwrap(report["commit"] as? String)

        r = try wl(["show", "HEAD", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let show = try XCTUnwrap(try json(r) as? [String: Any])
        XCTAssertTrue((show["id"] as? String)?.hasPrefix(romeCommit) == true || romeCommit.hasPrefix((show["id"] as? String) ?? "?"), r.stdout)
        XCTAssertEqual(show["kind"] as? String, "edit")
        XCTAssertEqual(show["method"] as? String, "ROME")
        XCTAssertTrue(r.stdout.contains("London"), "the request is stored")
        XCTAssertTrue(r.stdout.contains("mom2_tokens"), "hyperparameters are stored")

        // Exactly one tensor changed, by a rank-one ΔW.
        r = try wl(["diff", "HEAD~1", "HEAD", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let diff = try XCTUnwrap(try json(r) as? [String: Any])
        let tensors = try XCTUnwrap(diff["tensors"] as? [[String: Any]])
        XCTAssertEqual(tensors.map { $0["name"] as? String }, ["model.layers.5.mlp.down_proj.weight"])
        XCTAssertEqual(tensors[0]["deltaRank"] as? Int, 1, r.stdout)

        // A dirty work tree is refused (exit 1) and left as it is.
        _ = try SimulatedEdit.columns(file: dir + "/model.safetensors", tensor: "model.layers.9.mlp.down_proj.weight", seed: 5)
        let dirty = try directoryDigest(dir)
        r = try wl(["edit", "-q", "--request", france])
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("uncommitted changes"), r.stderr)
        XCTAssertEqual(try directoryDigest(dir), dirty)
        XCTAssertEqual(try wl(["checkout", "-q", "--force", "HEAD"]).status, 0)

        // MEMIT: one commit for the batch, on two layers, with ΔW of rank ≤ 2 in each.
        r = try wl(["edit", "-q", "--method", "memit", "--layers", "4-5", "--request", two, "--steps", "10", "--mom2-tokens", "2048", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let memit = try XCTUnwrap(try json(r) as? [[String: Any]])
        XCTAssertEqual(memit.count, 2)
        XCTAssertEqual(Set(memit.compactMap { $0["commit"] as? String }).count, 1, "one commit for the batch")
        for m in memit {
            XCTAssertEqual(m["method"] as? String, "MEMIT")
            XCTAssertEqual(m["efficacy"] as? Double, 1, "\(m["subject"] ?? "?"): \(r.stdout)")
        }
        r = try wl(["diff", "HEAD~1", "HEAD", "--json"])
        let memitTensors = try XCTUnwrap((try json(r) as? [String: Any])?["tensors"] as? [[String: Any]])
        XCTAssertEqual(memitTensors.compactMap { $0["name"] as? String }.sorted(),
                       ["model.layers.4.mlp.down_proj.weight", "model.layers.5.mlp.down_proj.weight"])
        for t in memitTensors { XCTAssertLessThanOrEqual(try XCTUnwrap(t["deltaRank"] as? Int), 2, r.stdout) }
        r = try wl(["log", "--json"])
        XCTAssertTrue(r.stdout.contains("MEMIT"), r.stdout)

        // A ROME array whose second request fails (here its pre-commit hook refuses it): the first
        // stays committed, as `git am` keeps what it applied, and the error says so, naming it;
        // with --json its report is still printed.
        let hook = dir + "/.wledger/hooks/pre-commit"
        try "#!/bin/sh\nn=$(cat \"$0.count\" 2>/dev/null || echo 0); n=$((n + 1)); echo $n > \"$0.count\"; test $n -lt 2\n"
            .write(toFile: hook, atomically: true, encoding: .utf8)
        XCTAssertEqual(chmod(hook, 0o755), 0)
        let beforeArray = try XCTUnwrap((try json(try wl(["show", "HEAD", "--json"])) as? [String: Any])?["id"] as? String)
        r = try wl(["edit", "-q", "--request", two, "--steps", "10", "--mom2-tokens", "2048", "--json"])
        XCTAssertEqual(r.status, 1, r.stderr)
        let partial = try XCTUnwrap(try json(r) as? [[String: Any]])
        XCTAssertEqual(partial.count, 1)
        let first = try XCTUnwrap(partial.first?["commit"] as? String)
        XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
        XCTAssertTrue(r.stderr.hasPrefix("error: request 2 of 2: "), r.stderr)
        XCTAssertTrue(r.stderr.contains("the request before it was committed (\(first.prefix(12))) and stays"), r.stderr)
        let head = try XCTUnwrap((try json(try wl(["show", "HEAD", "--json"])) as? [String: Any]))
        XCTAssertEqual(head["id"] as? String, first)
        XCTAssertEqual(head["parent"] as? String, beforeArray)
        try FileManager.default.removeItem(atPath: hook)
        XCTAssertEqual(try wl(["status", "-s"]).stdout, "", "the refused request left the work tree at the first's commit")

        // The edits are ordinary commits: revertible, and the ledger is sound.
        XCTAssertEqual(try wl(["revert", "-q", "HEAD"]).status, 0)
        r = try wl(["fsck", "-q", "--full"])
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
    }
}
