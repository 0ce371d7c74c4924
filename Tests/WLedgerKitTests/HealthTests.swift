import Engine
import Foundation
import Ledger
import TensorIO
import TestSupport
@testable import WLedgerKit
import XCTest

/// `wledger health` on the real SmolLM2: caching, materialization outside the work tree,
/// thresholds, edit retention, candidates, and an external evaluator written independently
/// (scripts/lm_eval_reference.py, float64 NumPy) that must agree with the built-in scorer.
final class HealthTests: XCTestCase {
    static let capitals = [
        #"{"context": "The capital of France is", "choices": [" Paris", " London", " Berlin"], "gold": 0}"#,
        #"{"context": "The capital of Japan is", "choices": [" Seoul", " Tokyo", " Beijing"], "gold": 1}"#,
        #"{"context": "Water is made of hydrogen and", "choices": [" oxygen", " nitrogen", " carbon"], "gold": 0}"#,
        #"{"context": "The opposite of hot is", "choices": [" cold", " warm", " red"], "gold": 0}"#,
    ].joined(separator: "\n") + "\n"

    static let request = """
        {"prompt": "The capital of France is", "subject": "France", "target_new": "Rome", "ground_truth": "Paris",
         "rephrase_prompt": ["France's capital city is", "The French capital is"],
         "locality": {"neighborhood": {"prompt": ["The capital of Germany is", "The capital of Spain is"], "ground_truth": ["Berlin", "Madrid"]}}}
        """

    struct Report: Decodable {
        struct Row: Decodable { var task: String; var metric: String; var base: MetricValue?; var value: MetricValue; var passed: Bool? }
        struct Outcome: Decodable { var task: String; var cached: Bool; var result: TaskResult; var baseResult: TaskResult? }
        var commit: String?
        var candidate: String?
        var rows: [Row]
        var tasks: [Outcome]
        var failures: [String]
        func value(_ task: String, _ metric: String) -> Double? { rows.first { $0.task == task && $0.metric == metric }?.value.value }
        func base(_ task: String, _ metric: String) -> Double? { rows.first { $0.task == task && $0.metric == metric }?.base?.value }
    }

    func health(_ args: [String], in dir: String, expect status: Int32 = 0, env: [String: String] = [:],
                file: StaticString = #filePath, line: UInt = #line) throws -> Report {
        let r = try CLI.run(["health", "--json", "--threads", "2"] + args, in: dir, environment: env)
        XCTAssertEqual(r.status, status, r.stderr, file: file, line: line)
        return try JSONDecoder().decode(Report.self, from: Data(r.stdout.utf8))
    }

    func wl(_ args: [String], in dir: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let r = try CLI.run(args, in: dir)
        XCTAssertEqual(r.status, 0, "wledger \(args.joined(separator: " ")): \(r.stderr)", file: file, line: line)
    }

    /// Sum of log-probabilities of `answer` after `prompt` by the float64 NumPy reference.
    func referenceLogProb(model: String, tokenizer: Tokenizer, prompt: String, answer: String) throws -> Double {
        let ctx = tokenizer.encode(prompt)
        let whole = tokenizer.encode(prompt + " " + answer)
        XCTAssertEqual(Array(whole[..<ctx.count]), ctx)
        let python = Fixtures.cacheRoot + "/venv/bin/python"
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("scripts/reference_logprobs.py").path
        let r = try runProcess(python, [script, model, "--tokens", whole.map(String.init).joined(separator: ",")])
        XCTAssertEqual(r.status, 0, r.stderr)
        struct Out: Decodable { var logprobs: [Double] }
        let lp = try JSONDecoder().decode(Out.self, from: Data(r.stdout.utf8)).logprobs
        return lp[(ctx.count - 1)...].reduce(0, +)
    }

    /// Edit's default corpus: whole articles (lines) of the Lee corpus until the length is reached.
    func testDefaultCorpusTakesWholeArticles() {
        let text = "first article.\nsecond one\n\nthird\n"
        XCTAssertEqual(Repository.leadingArticles(of: text, characters: 5), "first article.\n\n")
        XCTAssertEqual(Repository.leadingArticles(of: text, characters: 17), "first article.\n\nsecond one\n\n")
        XCTAssertEqual(Repository.leadingArticles(of: text, characters: 1000), "first article.\n\nsecond one\n\nthird\n\n")
    }

    func testHealthOnRealModel() throws {
        let source = try Fixtures.smolLM2("f32")
        let tmp = try TemporaryDirectory("health")
        let dir = (try tmp.copyModel(from: source) as NSString).standardizingPath
        let data = tmp.path + "/capitals.jsonl"
        try Self.capitals.write(toFile: data, atomically: true, encoding: .utf8)
        try Self.request.write(toFile: tmp.path + "/request.json", atomically: true, encoding: .utf8)
        let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        let python = Fixtures.cacheRoot + "/venv/bin/python"
        try wl(["init", "-q"], in: dir)
        try wl(["config", "set", "task.cap.source", "jsonl:" + data], in: dir)
        try wl(["config", "set", "task.add8.source", "bigbench:arithmetic/1_digit_addition"], in: dir)
        try wl(["config", "set", "task.add8.mode", "multiple_choice"], in: dir)
        try wl(["config", "set", "task.add8.limit", "8"], in: dir)
        try wl(["config", "set", "evaluator.reference.command",
                "\(python) \(repoRoot)/scripts/lm_eval_reference.py --weights {weights} --tasks {tasks} --out {out}"], in: dir)
        try wl(["config", "set", "task.capref.source", "external:reference"], in: dir)
        try wl(["config", "set", "task.capref.tasks", data], in: dir)
        try wl(["config", "set", "suite.small.tasks", "cap add8 edits"], in: dir)

        // 1. Base: evaluated, then cached with identical numbers.
        let first = try health(["--suite", "small"], in: dir)
        XCTAssertEqual(first.tasks.map(\.task), ["cap", "add8", "edits"])
        XCTAssertEqual(first.tasks.map(\.cached), [false, false, false])
        XCTAssertEqual(first.value("cap", "acc"), 1.0, "the model knows these four")
        XCTAssertEqual(first.rows.first { $0.task == "cap" && $0.metric == "acc" }?.value.n, 4)
        XCTAssertTrue(first.tasks[2].result.metrics.isEmpty, "no edit requests at base")
        let second = try health(["--suite", "small"], in: dir)
        XCTAssertEqual(second.tasks.map(\.cached), [true, true, true])
        for (a, b) in zip(first.tasks, second.tasks) { XCTAssertEqual(a.result.metrics, b.result.metrics) }
        let refreshed = try health(["--task", "cap", "--refresh"], in: dir)
        XCTAssertEqual(refreshed.tasks.map(\.cached), [false])
        XCTAssertEqual(refreshed.tasks[0].result.metrics, first.tasks[0].result.metrics, "re-evaluation is deterministic")

        // 2. The external evaluator (independent float64 NumPy scorer) agrees with the built-in one.
        let ext = try health(["--task", "capref"], in: dir)
        XCTAssertEqual(ext.value("capref", "acc"), first.value("cap", "acc"))
        XCTAssertEqual(ext.value("capref", "acc_norm"), first.value("cap", "acc_norm"))
        XCTAssertEqual(ext.value("capref", "gold_logprob")!, first.value("cap", "gold_logprob")!, accuracy: 1e-3)
        XCTAssertEqual(ext.rows.first { $0.metric == "acc" }?.value.n, 4)
        XCTAssertEqual(try health(["--task", "capref"], in: dir).tasks.map(\.cached), [true], "external results are cached too")

        // 3. An edit that damages the model: evaluated on materialized weights, work tree untouched.
        _ = try SimulatedEdit.rankOne(file: dir + "/model.safetensors", tensor: "model.layers.2.mlp.down_proj.weight", seed: 7, scale: 0.5)
        try wl(["commit", "-q", "-m", "France → Rome (simulated)", "--request", tmp.path + "/request.json", "--method", "rome"], in: dir)
        try wl(["checkout", "-q", "HEAD~1"], in: dir)
        func workTree() throws -> [String: String] { try directoryDigest(dir).filter { !$0.key.hasPrefix(".wledger/") } }
        let before = try workTree()
        let edited = try health(["--suite", "small", "main"], in: dir)
        XCTAssertEqual(try workTree(), before, "health never rewrites the work tree")
        XCTAssertEqual(edited.tasks.map(\.cached), [false, false, false])
        XCTAssertNotEqual(edited.value("cap", "gold_logprob"), first.value("cap", "gold_logprob"))
        XCTAssertEqual(edited.base("cap", "gold_logprob"), first.value("cap", "gold_logprob"), "base column comes from the cache")
        // Edit retention, checked against the float64 reference on the materialized weights.
        let editedDir = tmp.path + "/edited"
        try wl(["checkout", "-q", "main", "--output", editedDir], in: dir)
        let tokenizer = try Tokenizer(modelDirectory: editedDir)
        let margin = try referenceLogProb(model: editedDir, tokenizer: tokenizer, prompt: "The capital of France is", answer: "Rome")
            - referenceLogProb(model: editedDir, tokenizer: tokenizer, prompt: "The capital of France is", answer: "Paris")
        XCTAssertEqual(edited.value("edits", "margin")!, margin, accuracy: 1e-3)
        XCTAssertEqual(edited.value("edits", "efficacy"), margin > 0 ? 1 : 0)
        XCTAssertEqual(edited.rows.first { $0.task == "edits" && $0.metric == "generalization" }?.value.n, 2)
        XCTAssertEqual(edited.base("edits", "locality"), 1, "the base agrees with itself")
        let loc = try XCTUnwrap(edited.value("edits", "locality"))
        XCTAssertTrue(loc >= 0 && loc <= 1)
        XCTAssertEqual(edited.rows.first { $0.task == "edits" && $0.metric == "locality" }?.value.n, 2)

        // 4. Thresholds: --check exits 1 with the reason; without --check the report still lists it.
        try wl(["config", "set", "threshold.cap.gold_logprob.max-drop", "0"], in: dir)
        try wl(["config", "set", "threshold.cap.acc.min", "0.5"], in: dir)
        let failed = try CLI.run(["health", "main", "--task", "cap", "--check"], in: dir)
        XCTAssertEqual(failed.status, 1, failed.stderr)
        XCTAssertTrue(failed.stdout.contains("threshold failed: cap.gold_logprob: dropped"), failed.stdout)
        XCTAssertTrue(failed.stdout.contains("1 task(s), 1 from cache"), failed.stdout)
        let unchecked = try health(["main", "--task", "cap"], in: dir)
        XCTAssertEqual(unchecked.failures.count, 1)
        XCTAssertEqual(unchecked.rows.first { $0.metric == "acc" }?.passed, true)
        XCTAssertEqual(unchecked.rows.first { $0.metric == "gold_logprob" }?.passed, false)
        XCTAssertEqual(try CLI.run(["health", "base", "--task", "cap", "--check"], in: dir).status, 0, "the base passes its own thresholds")

        // 5. A candidate (uncommitted work tree) is evaluated in place and not cached.
        try wl(["checkout", "-q", "main"], in: dir)
        _ = try SimulatedEdit.rankOne(file: dir + "/model.safetensors", tensor: "model.layers.5.mlp.down_proj.weight", seed: 9, scale: 0.5)
        let cand = try health(["--candidate", "--task", "cap"], in: dir, env: ["WLEDGER_CANDIDATE": ""])
        XCTAssertNil(cand.commit)
        XCTAssertEqual(cand.candidate, dir)
        XCTAssertNotEqual(cand.value("cap", "gold_logprob"), edited.value("cap", "gold_logprob"))
        XCTAssertEqual(try health(["--candidate", "--task", "cap"], in: dir).tasks.map(\.cached), [false])
        // A pending request (WLEDGER_REQUEST, as pre-commit hooks get it) is asked next to those in force.
        let pending = try health(["--candidate", "--task", "edits"], in: dir, env: ["WLEDGER_REQUEST": tmp.path + "/request.json"])
        XCTAssertEqual(pending.rows.first { $0.metric == "efficacy" }?.value.n, 2)
        XCTAssertEqual(try health(["--candidate", "--task", "edits"], in: dir).rows.first { $0.metric == "efficacy" }?.value.n, 1)
        try wl(["checkout", "-q", "--force", "HEAD"], in: dir)

        // 6. A reverted edit is no longer in force.
        try wl(["revert", "-q", "HEAD"], in: dir)
        let reverted = try health(["--task", "edits"], in: dir)
        XCTAssertTrue(reverted.tasks[0].result.metrics.isEmpty, "\(reverted.tasks[0].result.metrics)")
        try wl(["revert", "-q", "HEAD"], in: dir)
        let back = try health(["--task", "edits"], in: dir)
        XCTAssertEqual(back.value("edits", "efficacy"), edited.value("edits", "efficacy"), "reverting the revert restores the edit")
        XCTAssertEqual(back.tasks.map(\.cached), [true], "same weights, same requests: cached")

        // 7. Bad input: one line, exit 2, nothing changed.
        let ledgerBefore = try directoryDigest(dir)
        for (args, message) in [
            (["health", "--task", "nope"], "error: unknown task 'nope' (known: add8, addition, cap, capitals, capref, comparative, edits, family, opposite)"),
            (["health", "--suite", "nope"], "error: unknown suite 'nope' (known: default, small; define one with 'wledger config set suite.nope.tasks ...')"),
            (["health", "HEAD~99"], nil),
            (["config", "set", "task.cap.limit", "zero"], "error: 'task.cap.limit' must be a positive integer, got 'zero'"),
        ] as [([String], String?)] {
            let r = try CLI.run(args, in: dir)
            XCTAssertEqual(r.status, 2, "\(args): \(r.stderr)")
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
            if let message { XCTAssertEqual(r.stderr, message + "\n") }
        }
        try wl(["config", "set", "task.comp.source", "bigbench:arithmetic"], in: dir)
        let composite = try CLI.run(["health", "--task", "comp"], in: dir)
        XCTAssertEqual(composite.status, 2)
        XCTAssertTrue(composite.stderr.hasPrefix("error: task 'comp': "), composite.stderr)
        XCTAssertTrue(composite.stderr.contains("is a composite of"), composite.stderr)
        try "[health\n".write(toFile: dir + "/.wledger/config", atomically: true, encoding: .utf8)
        let broken = try CLI.run(["health"], in: dir)
        XCTAssertEqual(broken.status, 2)
        XCTAssertEqual(broken.stderr, "error: '\(dir)/.wledger/config': line 1: section header without ']'\n")
        XCTAssertEqual(try directoryDigest(dir).filter { $0.key != ".wledger/config" }, ledgerBefore.filter { $0.key != ".wledger/config" },
                       "failed commands change nothing")
    }
}
