import Foundation
import TestSupport
import XCTest

/// A short run of bench/crash_harness.py: wledger is SIGKILLed at random moments during commit,
/// checkout, revert, prune and restrain on the real SmolLM2; after each kill fsck passes, the
/// next command runs, and the work tree is exactly the old or the new state. The standalone run
/// (200 trials, release build) is in BENCHMARKS.md.
final class CrashTests: XCTestCase {
    func testSIGKILLAtRandomMomentsLosesNothing() throws {
        let model = try Fixtures.smolLM2("f32")
        let python = Fixtures.cacheRoot + "/venv/bin/python"
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        let tmp = try TemporaryDirectory("crash")
        let trials = Int(ProcessInfo.processInfo.environment["WLEDGER_CRASH_TRIALS"] ?? "") ?? 6
        let r = try runProcess(python, [repo + "/bench/crash_harness.py", "--wledger", CLI.binary, "--model", model,
                                        "--trials", String(trials), "--seed", "11", "--work", tmp.path + "/work", "--json", tmp.path + "/out.json"])
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        struct Out: Decodable {
            struct Summary: Decodable { var trials: Int; var killed: Int; var failures: Int }
            var summary: Summary
        }
        let out = try JSONDecoder().decode(Out.self, from: Data(contentsOf: URL(fileURLWithPath: tmp.path + "/out.json")))
        XCTAssertEqual(out.summary.trials, trials)
        XCTAssertEqual(out.summary.failures, 0, r.stdout)
        XCTAssertGreaterThan(out.summary.killed, 0, "some runs must actually be killed: \(r.stdout)")
    }
}

/// Deterministic kills at the points between ledger change and work-tree change
/// (`WLEDGER_FAULT`): the next command finishes or undoes the operation from the journal, so the
/// work tree matches HEAD and fsck is clean. Checkout is killed both writing tensors into the
/// weight file in place (also with half of them written) and renaming a rewritten file in.
final class JournalRecoveryTests: XCTestCase {
    func testKillsBetweenLedgerAndWorkTreeAreRecovered() throws {
        let source = try Fixtures.smolLM2("f32")
        let tmp = try TemporaryDirectory("journal")
        let dir = (try tmp.copyModel(from: source) as NSString).standardizingPath
        func wl(_ args: [String], env: [String: String] = [:]) throws -> ProcessOutput { try CLI.run(args, in: dir, environment: env) }
        func head() throws -> String { String(try wl(["log", "-n", "1", "--oneline"]).stdout.prefix(12)) }
        func files() throws -> [String: String] { try directoryDigest(dir).filter { !$0.key.hasPrefix(".wledger/") } }
        XCTAssertEqual(try wl(["init", "-q"]).status, 0)
        // Two tensors, so an in-place checkout can be killed between them.
        _ = try SimulatedEdit.rankOne(file: dir + "/model.safetensors", tensor: "model.layers.4.mlp.down_proj.weight", seed: 3, scale: 0.3)
        _ = try SimulatedEdit.rankOne(file: dir + "/model.safetensors", tensor: "model.layers.5.mlp.down_proj.weight", seed: 4, scale: 0.3)
        XCTAssertEqual(try wl(["commit", "-q", "-m", "edit"]).status, 0)
        let editHead = try head()
        let editFiles = try files()

        // update-journaled: killed before the commit was recorded → rolled back.
        var r = try wl(["revert", "-q", "HEAD"], env: ["WLEDGER_FAULT": "update-journaled"])
        XCTAssertEqual(r.status, 9, "killed by SIGKILL: \(r.stderr)")
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/.wledger/pending.json"))
        r = try wl(["status", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("rolled back an interrupted update"), r.stderr)
        XCTAssertTrue(r.stdout.contains("\"clean\" : true"), r.stdout)
        XCTAssertEqual(try head(), editHead)
        XCTAssertEqual(try files(), editFiles)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/.wledger/pending.json"))

        // update-recorded: killed after the commit, before the rename → rolled forward.
        r = try wl(["revert", "-q", "HEAD"], env: ["WLEDGER_FAULT": "update-recorded"])
        XCTAssertEqual(r.status, 9, r.stderr)
        r = try wl(["status", "--rehash", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("completed an interrupted update"), r.stderr)
        XCTAssertNotEqual(try head(), editHead, "the revert commit was recorded")
        XCTAssertTrue(r.stdout.contains("\"clean\" : true"), "work tree equals the revert commit: \(r.stdout)")
        let revertHead = try head()
        let revertFiles = try files()
        XCTAssertNotEqual(revertFiles, editFiles)
        // The next command (a status) finishes an interrupted checkout of the edit commit; then
        // HEAD goes back to main, whose files are `mainFiles`.
        func expectCheckoutFinished(_ what: String, backTo mainFiles: [String: String]) throws {
            let r = try wl(["status", "--rehash", "--json"])
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertTrue(r.stderr.contains("completed an interrupted checkout"), "\(what): \(r.stderr)")
            XCTAssertTrue(r.stdout.contains("\"clean\" : true"), "\(what): \(r.stdout)")
            XCTAssertEqual(try head(), editHead, what)
            XCTAssertEqual(try files(), editFiles, what)
            XCTAssertEqual(try wl(["checkout", "-q", "main"]).status, 0)
            XCTAssertEqual(try files(), mainFiles, what)
        }

        // checkout-journaled, checkout-patching and checkout-renamed: rolled forward to the target,
        // in place (the weight file keeps its inode) and written anew (--no-in-place).
        func inode() throws -> UInt64 {
            (try FileManager.default.attributesOfItem(atPath: dir + "/model.safetensors")[.systemFileNumber] as? NSNumber)?.uint64Value ?? 0
        }
        let modes: [(flags: [String], faults: [String])] = [([], ["checkout-journaled", "checkout-patching", "checkout-renamed"]),
                                                            (["--no-in-place"], ["checkout-journaled", "checkout-renamed"])]
        for (flags, fault) in modes.flatMap({ m in m.faults.map { (m.flags, $0) } }) {
            let before = try inode()
            r = try wl(["checkout", "-q", "HEAD~1"] + flags, env: ["WLEDGER_FAULT": fault])
            XCTAssertEqual(r.status, 9, "\(fault): \(r.stderr)")
            r = try wl(["status", "--rehash", "--json"])
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertEqual(try inode() == before, flags.isEmpty, "\(fault) \(flags): in place keeps the file, --no-in-place replaces it")
            XCTAssertTrue(r.stderr.contains("completed an interrupted checkout"), "\(fault): \(r.stderr)")
            XCTAssertTrue(r.stdout.contains("\"clean\" : true"), "\(fault): \(r.stdout)")
            XCTAssertEqual(try head(), editHead, fault)
            XCTAssertEqual(try files(), editFiles, fault)
            XCTAssertEqual(try wl(["checkout", "-q", "main"]).status, 0)
            XCTAssertEqual(try head(), revertHead)
            XCTAssertEqual(try files(), revertFiles)
        }
        // A weight file damaged after an in-place checkout was killed (here truncated) is written
        // anew from the ledger by the recovery.
        r = try wl(["checkout", "-q", "HEAD~1"], env: ["WLEDGER_FAULT": "checkout-patching"])
        XCTAssertEqual(r.status, 9, r.stderr)
        // The journal names the operation "checkout-in-place": the journal format of wledger
        // before in-place writes (kind "update" or "checkout", no tensors) cannot read it, so
        // such a binary refuses it rather than finishing the checkout without its tensors.
        struct OldJournal: Decodable {
            enum Kind: String, Decodable { case update, checkout }
            var kind: Kind, commit: String, renames: [[String]], removes: [String]
        }
        let journal = try Data(contentsOf: URL(fileURLWithPath: dir + "/.wledger/pending.json"))
        let fields = try XCTUnwrap(JSONSerialization.jsonObject(with: journal) as? [String: Any])
        XCTAssertEqual(fields["kind"] as? String, "checkout-in-place")
        XCTAssertEqual((fields["patches"] as? [Any])?.count, 1)
        XCTAssertThrowsError(try JSONDecoder().decode(OldJournal.self, from: journal))
        XCTAssertEqual(truncate(dir + "/model.safetensors", 1000), 0)
        try expectCheckoutFinished("truncated after checkout-patching", backTo: revertFiles)
        // update-patching: a revert killed with half of its tensors written into the weight file
        // is rolled forward; the file keeps its inode. With core.in-place false a revert writes the
        // file anew.
        var before = try inode()
        r = try wl(["revert", "-q", "HEAD"], env: ["WLEDGER_FAULT": "update-patching"])
        XCTAssertEqual(r.status, 9, r.stderr)
        r = try wl(["status", "--rehash", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("completed an interrupted update"), r.stderr)
        XCTAssertTrue(r.stdout.contains("\"clean\" : true"), "work tree equals the new revert commit: \(r.stdout)")
        XCTAssertNotEqual(try head(), revertHead)
        XCTAssertEqual(try inode(), before)
        XCTAssertEqual(try wl(["config", "set", "core.in-place", "false"]).status, 0)
        before = try inode()
        r = try wl(["revert", "-q", "HEAD"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertNotEqual(try inode(), before, "core.in-place false: the file is written anew")
        XCTAssertTrue(try wl(["status", "--rehash", "--json"]).stdout.contains("\"clean\" : true"))
        XCTAssertEqual(try wl(["config", "unset", "core.in-place"]).status, 0)

        // A rename that fails after the journal (an injected I/O error) fails the command but
        // keeps the staged file the journal names; the next command renames it in.
        func tempFiles() throws -> [String] { try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.contains("wledger-tmp") } }
        let mainHead = try head(), mainFiles = try files()
        r = try wl(["checkout", "-q", "--no-in-place", editHead], env: ["WLEDGER_FAULT": "checkout-rename-error"])
        XCTAssertEqual(r.status, 2, "an I/O error: \(r.stderr)")
        XCTAssertTrue(r.stderr.contains("injected fault"), r.stderr)
        XCTAssertEqual(try tempFiles().count, 1, "the staged weight file is kept")
        try expectCheckoutFinished("checkout-rename-error", backTo: mainFiles)
        XCTAssertEqual(try wl(["config", "set", "core.in-place", "false"]).status, 0)
        r = try wl(["revert", "-q", "HEAD"], env: ["WLEDGER_FAULT": "update-rename-error"])
        XCTAssertEqual(r.status, 2, "an I/O error: \(r.stderr)")
        XCTAssertEqual(try tempFiles().count, 1, "the staged weight file is kept")
        r = try wl(["status", "--rehash", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("completed an interrupted update"), r.stderr)
        XCTAssertTrue(r.stdout.contains("\"clean\" : true"), "work tree equals the recorded revert: \(r.stdout)")
        XCTAssertNotEqual(try head(), mainHead)
        XCTAssertEqual(try wl(["config", "unset", "core.in-place"]).status, 0)

        r = try wl(["fsck", "-q", "--full"])
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        XCTAssertFalse(try FileManager.default.contentsOfDirectory(atPath: dir).contains { $0.contains("wledger-tmp") }, "no temporary files left")
    }
}
