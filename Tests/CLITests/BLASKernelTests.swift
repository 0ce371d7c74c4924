import Foundation
import LinAlg
import TestSupport
import XCTest

/// The binary's choice of OpenBLAS kernels (`BLASKernel.load`) on the real SmolLM2:
/// where it overrides OpenBLAS's fallback, the numbers must not move.
final class BLASKernelTests: XCTestCase {
    struct Report: Decodable {
        struct Row: Decodable {
            struct Value: Decodable { var value: Double }
            var task: String
            var metric: String
            var value: Value?
        }
        var blasKernel: String
        var rows: [Row]
        func metric(_ task: String, _ name: String) -> Double? {
            rows.first { $0.task == task && $0.metric == name }?.value?.value
        }
    }

    /// Perplexity over a page of English and three fact questions, scored by the CLI once with the
    /// kernels it picks and once with OpenBLAS's own (`WLEDGER_BLAS_KERNEL=openblas`). The two
    /// runs must name the kernels this machine implies and agree to 1e-4 in mean log-probability
    /// (F32 sums in a different order differ by about 1e-6 per token).
    func testSelectedKernelsScoreLikeOpenBLASOwnChoice() throws {
        let source = try Fixtures.smolLM2("f32")
        let tmp = try TemporaryDirectory("blaskernel")
        let dir = try tmp.copyModel(from: source)
        let facts = [
            #"{"context": "The capital of France is", "choices": [" Paris", " London", " Berlin"], "gold": 0}"#,
            #"{"context": "The capital of Japan is", "choices": [" Seoul", " Tokyo", " Beijing"], "gold": 1}"#,
            #"{"context": "Water is made of hydrogen and", "choices": [" oxygen", " nitrogen", " carbon"], "gold": 0}"#,
        ].joined(separator: "\n") + "\n"
        try facts.write(toFile: tmp.path + "/facts.jsonl", atomically: true, encoding: .utf8)
        let page = """
            The river rises in the hills north of the town and runs south for about forty miles before it \
            reaches the sea. In the eighteenth century mills were built along its banks, and the town grew \
            around them; by 1850 it had a railway station, three churches and a market held every Thursday. \
            Today most of the mills are gone, but the old bridge still carries traffic, and in summer visitors \
            walk the path beside the water from the harbour to the ruined abbey.
            """
        try page.write(toFile: tmp.path + "/page.txt", atomically: true, encoding: .utf8)
        try expectOK(CLI.run(["init", "-q"], in: dir))
        try expectOK(CLI.run(["config", "set", "task.facts.source", "jsonl:" + tmp.path + "/facts.jsonl"], in: dir))
        try expectOK(CLI.run(["config", "set", "task.page.source", "perplexity:" + tmp.path + "/page.txt"], in: dir))

        func health(_ env: [String: String]) throws -> Report {
            let r = try CLI.run(["health", "--task", "facts", "--task", "page", "--all", "--refresh", "--json"], in: dir, environment: env)
            try expectOK(r)
            return try JSONDecoder().decode(Report.self, from: Data(r.stdout.utf8))
        }
        let picked = try health([:])
        let own = try health(["WLEDGER_BLAS_KERNEL": "openblas"])

        // This test process opens OpenBLAS the same way; `openBLASChoice` is what the library picked
        // by itself here (the machine owner's OPENBLAS_CORETYPE, if set).
        let ownCore = BLASKernel.openBLASChoice
        XCTAssertEqual(own.blasKernel, ownCore)
        if ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] == nil,
           let expected = BLASKernel.override(current: ownCore, cpuFlags: BLASKernel.cpuFlags()) {
            XCTAssertEqual(picked.blasKernel, expected, "the binary should open OpenBLAS with \(expected) kernels")
            XCTAssertEqual(BLASKernel.coreName, expected, "this process too")
        } else {
            XCTAssertEqual(picked.blasKernel, ownCore)
        }

        for (task, metric) in [("facts", "gold_logprob"), ("page", "nll_per_token"), ("page", "perplexity")] {
            let a = try XCTUnwrap(picked.metric(task, metric), "\(task).\(metric) missing: \(picked.rows.map { "\($0.task).\($0.metric)" })")
            let b = try XCTUnwrap(own.metric(task, metric))
            let tolerance = metric == "perplexity" ? 1e-4 * b : 1e-4
            XCTAssertEqual(a, b, accuracy: tolerance, "\(task).\(metric): \(picked.blasKernel) \(a) vs \(own.blasKernel) \(b)")
        }
        XCTAssertEqual(picked.metric("facts", "acc"), own.metric("facts", "acc"))
    }

    /// OpenBLAS is opened only by commands that multiply matrices: the dynamic loader's own log
    /// (LD_DEBUG=files) names libopenblas for `diff --stat` and never for `status` or `log`.
    func testOnlyBLASCommandsOpenOpenBLAS() throws {
        let source = try Fixtures.smolLM2("f32")
        let tmp = try TemporaryDirectory("blasload")
        let dir = try tmp.copyModel(from: source)
        try expectOK(CLI.run(["init", "-q"], in: dir))
        func opensOpenBLAS(_ args: [String]) throws -> Bool {
            let r = try CLI.run(args, in: dir, environment: ["LD_DEBUG": "files"])
            try expectOK(r)
            XCTAssertTrue(r.stderr.contains("libswiftCore"), "LD_DEBUG output missing: \(r.stderr.prefix(200))")
            return r.stderr.contains("libopenblas")
        }
        XCTAssertFalse(try opensOpenBLAS(["status"]))
        XCTAssertFalse(try opensOpenBLAS(["log", "--oneline"]))
        XCTAssertTrue(try opensOpenBLAS(["diff", "base", "HEAD", "--stat"]))
    }

    func expectOK(_ r: ProcessOutput, file: StaticString = #filePath, line: UInt = #line) throws {
        if r.status != 0 {
            XCTFail("wledger exited \(r.status): \(r.stderr)", file: file, line: line)
            throw XCTSkip("command failed")
        }
    }
}
