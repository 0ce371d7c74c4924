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
