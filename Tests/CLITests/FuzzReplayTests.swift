import Foundation
import TestSupport
import XCTest

/// Replays the fuzzing seed corpus (Fuzz/corpus/TARGET) and every input the fuzzer once crashed
/// on (Fuzz/regressions/TARGET-*) through the same target code, built normally as the
/// `wledger-fuzz` replay tool: each input must be parsed or rejected with an error, never trap.
/// The libFuzzer runs themselves are standalone (`Fuzz/run.sh`, results in BENCHMARKS.md).
final class FuzzReplayTests: XCTestCase {
    static let targets = ["safetensors", "index", "tokenizer", "bigbench", "request", "patch", "chunk"]

    var fuzzDirectory: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fuzz").path
    }

    var replayTool: String {
        URL(fileURLWithPath: CLI.binary).deletingLastPathComponent().appendingPathComponent("wledger-fuzz").path
    }

    func files(in dir: String, prefix: String = "") -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [])
            .filter { $0.hasPrefix(prefix) && !$0.hasPrefix(".") }.sorted().map { dir + "/" + $0 }
    }

    /// The seeds (written by the real encoders: `wledger-fuzz seeds Fuzz/corpus`) are valid input:
    /// every one is accepted, so the fuzzer starts from real structures and the replay tool
    /// really reaches the parsers.
    func testSeedCorpusIsAcceptedWithoutACrash() throws {
        XCTAssertTrue(FileManager.default.isExecutableFile(atPath: replayTool), "\(replayTool) not built (swift build --build-tests builds it)")
        for target in Self.targets {
            let seeds = files(in: fuzzDirectory + "/corpus/" + target)
            XCTAssertFalse(seeds.isEmpty, "no seeds in Fuzz/corpus/\(target)")
            let r = try runProcess(replayTool, [target] + seeds)
            XCTAssertEqual(r.status, 0, "\(target): \(r.stderr)")
            XCTAssertEqual(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "\(target): \(seeds.count) inputs, \(seeds.count) accepted, no crash")
        }
    }

    /// Every input a fuzzer run once crashed, hung or tripped a sanitizer on is kept as
    /// Fuzz/regressions/TARGET-NAME and must now be handled (accepted or rejected with an error).
    func testFoundCrashersStayFixed() throws {
        var total = 0
        for target in Self.targets {
            let found = files(in: fuzzDirectory + "/regressions", prefix: target + "-")
            guard !found.isEmpty else { continue }
            total += found.count
            let r = try runProcess(replayTool, [target] + found)
            XCTAssertEqual(r.status, 0, "\(target): \(r.stderr)")
            XCTAssertTrue(r.stdout.hasPrefix("\(target): \(found.count) inputs, "), r.stdout)
        }
        XCTAssertEqual(total, files(in: fuzzDirectory + "/regressions").count, "every file in Fuzz/regressions is named TARGET-…")
        XCTAssertGreaterThan(total, 0)
    }

    func testUnknownTargetIsRefused() throws {
        let r = try runProcess(replayTool, ["no-such-target", "/dev/null"])
        XCTAssertEqual(r.status, 2)
        XCTAssertTrue(r.stderr.contains("targets: safetensors, index"), r.stderr)
    }
}
