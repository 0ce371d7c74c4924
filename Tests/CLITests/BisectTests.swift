import Foundation
import TensorIO
import TestSupport
import XCTest

/// `wledger bisect` and hooks on the real SmolLM2-135M (F32): a 64-commit history (base + 63
/// simulated edits) in which commit 41 plants a damaging rank-one change in
/// `model.layers.1.mlp.down_proj` (scale 2: measured, it drops the mean gold log-probability of
/// four fact completions far below twice the base value, the threshold used here);
/// every other commit is a KN-like edit of three columns of a later layer's `down_proj`. The
/// history is built once for the class.
final class BisectTests: XCTestCase {
    /// Four short fact completions: a health task that takes about 2 s of CPU in a debug build.
    static let facts = [
        #"{"context": "The capital of France is", "choices": [" Paris", " London", " Berlin"], "gold": 0}"#,
        #"{"context": "The capital of Japan is", "choices": [" Seoul", " Tokyo", " Beijing"], "gold": 1}"#,
        #"{"context": "Water is made of hydrogen and", "choices": [" oxygen", " nitrogen", " carbon"], "gold": 0}"#,
        #"{"context": "One, two, three, four,", "choices": [" five", " nine", " seven"], "gold": 0}"#,
    ].joined(separator: "\n") + "\n"

    static let damagedTensor = "model.layers.1.mlp.down_proj.weight"
    static let request = #"{"prompt": "The capital of France is", "subject": "France", "target_new": "Rome", "ground_truth": "Paris"}"#

    /// The shared history: the model directory and the commit ids, ids[0] = base.
    struct History {
        let tmp: TemporaryDirectory
        let dir: String
        let ids: [String]
        let source: String
    }

    nonisolated(unsafe) static var shared: History?
    nonisolated(unsafe) static var setupFailure: String?

    static func damage(_ file: String) throws {
        try SimulatedEdit.rankOne(file: file, tensor: damagedTensor, seed: 41, scale: 2)
    }

    /// A harmless edit: three columns of a `down_proj` in layers 2…29 scaled by 1.5.
    static func harmless(_ file: String, _ i: Int) throws {
        try SimulatedEdit.columns(file: file, tensor: "model.layers.\(2 + i % 28).mlp.down_proj.weight", seed: UInt64(1000 + i))
    }

    func history() throws -> History {
        if let h = Self.shared { return h }
        if let f = Self.setupFailure { throw XCTSkip(f) }
        let source = try Fixtures.smolLM2("f32")
        let tmp = try TemporaryDirectory("bisect")
        let dir = (try tmp.copyModel(from: source) as NSString).standardizingPath
        try Self.facts.write(toFile: tmp.path + "/facts.jsonl", atomically: true, encoding: .utf8)
        try Self.request.write(toFile: tmp.path + "/request.json", atomically: true, encoding: .utf8)
        try wl(["init", "-q"], in: dir)
        try wl(["config", "set", "task.facts.source", "jsonl:" + tmp.path + "/facts.jsonl"], in: dir)
        try wl(["config", "set", "health.threads", "1"], in: dir)
        try wl(["config", "set", "suite.gate.tasks", "facts"], in: dir)
        try wl(["config", "set", "health.suite", "gate"], in: dir)
        try wl(["config", "set", "threshold.facts.gold_logprob.max-drop", "100%"], in: dir)
        var ids = [try log(dir).last!]
        let file = dir + "/model.safetensors"
        for i in 1...63 {
            var args = ["commit", "--json", "-m", "edit \(i)"]
            if i == 41 {
                try Self.damage(file)
                args += ["--method", "ROME", "--request", tmp.path + "/request.json"]
            } else {
                try Self.harmless(file, i)
                args += ["--method", "KN"]
            }
            let r = try CLI.run(args, in: dir)
            guard r.status == 0 else {
                Self.setupFailure = "commit \(i) failed: \(r.stderr)"
                XCTFail(Self.setupFailure!)
                throw XCTSkip(Self.setupFailure!)
            }
            struct C: Decodable { var commit: String }
            ids.append(try JSONDecoder().decode(C.self, from: Data(r.stdout.utf8)).commit)
        }
        let h = History(tmp: tmp, dir: dir, ids: ids, source: source)
        Self.shared = h
        return h
    }

    override class func tearDown() {
        shared = nil
        super.tearDown()
    }

    @discardableResult
    func wl(_ args: [String], in dir: String, env: [String: String] = [:], expect status: Int32 = 0,
            file: StaticString = #filePath, line: UInt = #line) throws -> ProcessOutput {
        let r = try CLI.run(args, in: dir, environment: env)
        XCTAssertEqual(r.status, status, "wledger \(args.joined(separator: " ")): \(r.stdout)\n\(r.stderr)", file: file, line: line)
        return r
    }

    /// Commit ids from HEAD back to base.
    func log(_ dir: String, _ rev: String = "HEAD") throws -> [String] {
        struct Entry: Decodable { var id: String }
        let r = try CLI.run(["log", rev, "--json"], in: dir)
        XCTAssertEqual(r.status, 0, r.stderr)
        return try JSONDecoder().decode([Entry].self, from: Data(r.stdout.utf8)).map(\.id)
    }

    struct Head: Decodable { var head: String?; var branch: String?; var clean: Bool }

    /// Back to branch main with no bisect in progress.
    func resetToMain(_ h: History) throws {
        try wl(["bisect", "reset", "-q"], in: h.dir)
        // Without --force, files that already match are not rewritten.
        if try CLI.run(["checkout", "-q", "main"], in: h.dir).status != 0 {
            try wl(["checkout", "-q", "--force", "main"], in: h.dir)
        }
    }

    /// The first bad commit's edit request is printed (canonical JSON of request.json).
    func assertRequestPrinted(_ out: String, file: StaticString = #filePath, line: UInt = #line) {
        let req = out.split(separator: "\n").first { $0.hasPrefix("request: {") }
        XCTAssertNotNil(req, out, file: file, line: line)
        XCTAssertTrue(req?.contains("Rome") == true && req?.contains("target_new") == true, out, file: file, line: line)
    }

    /// `.wledger/` without its lock file (which names the last holder).
    func ledgerDigest(_ h: History) throws -> [String: String] {
        var d = try directoryDigest(h.dir + "/.wledger")
        d["lock"] = nil
        return d
    }

    /// git's estimate of the remaining bisect steps for `all` candidates (bisect.c).
    func gitSteps(_ all: Int) -> Int {
        if all < 3 { return 0 }
        let n = Int(log2(Double(all)))
        let e = 1 << n, x = all - e
        return e < 3 * x ? n : n - 1
    }

    // MARK: - Automatic bisect

    struct MetricResult: Decodable {
        struct Eval: Decodable { var commit: String; var value: Double; var bad: Bool; var cached: Bool }
        /// The request is an object, as `show --json` gives it.
        struct Request: Decodable { var subject: String; var target_new: String }
        struct C: Decodable { var id: String; var method: String?; var request: Request? }
        var evaluations: [Eval]
        var maxEvaluations: Int
        var commitCount: Int
        var limit: Double
        var baseValue: Double?
        var firstBad: C
        var lastGood: C
        var firstBadValue: Double
        var lastGoodValue: Double
    }

    func testAutomaticBisectOnAMetricNamesTheDamagingCommit() throws {
        let h = try history()
        try resetToMain(h)
        let before = try fileSHA256(h.dir + "/model.safetensors")
        let r = try wl(["bisect", "--metric", "facts.gold_logprob", "--drop", "100%", "--json", "HEAD", "base"], in: h.dir)
        let m = try JSONDecoder().decode(MetricResult.self, from: Data(r.stdout.utf8))
        XCTAssertEqual(m.firstBad.id, h.ids[41])
        XCTAssertEqual(m.lastGood.id, h.ids[40])
        XCTAssertEqual(m.firstBad.method, "ROME")
        XCTAssertEqual(m.firstBad.request?.subject, "France")
        XCTAssertEqual(m.firstBad.request?.target_new, "Rome")
        XCTAssertNil(m.lastGood.request)
        XCTAssertEqual(m.commitCount, 64)
        XCTAssertEqual(m.maxEvaluations, 7)  // ceil(log2 64) + 1
        XCTAssertLessThanOrEqual(m.evaluations.count, 7, "\(m.evaluations.map(\.commit))")
        XCTAssertEqual(Set(m.evaluations.map(\.commit)).count, m.evaluations.count, "a commit was evaluated twice")
        // The verdicts agree with the criterion and with where the damage is.
        let base = try XCTUnwrap(m.baseValue)
        XCTAssertEqual(m.limit, base - abs(base), accuracy: 1e-9)
        for e in m.evaluations {
            let index = try XCTUnwrap(h.ids.firstIndex(of: e.commit))
            XCTAssertEqual(e.bad, index >= 41, "commit \(index): \(e.value) vs limit \(m.limit)")
            XCTAssertEqual(e.bad, e.value < m.limit)
        }
        XCTAssertLessThan(m.firstBadValue, m.limit)
        XCTAssertGreaterThanOrEqual(m.lastGoodValue, m.limit)

        // Again with --below, as text: every answer comes from the health cache.
        let t = try wl(["bisect", "--metric", "facts.gold_logprob", "--below=\(m.limit)", "HEAD", "base"], in: h.dir)
        XCTAssertTrue(t.stdout.contains("\(h.ids[41]) is the first bad commit"), t.stdout)
        XCTAssertTrue(t.stdout.contains("method: ROME"), t.stdout)
        assertRequestPrinted(t.stdout)
        XCTAssertTrue(t.stdout.contains("from cache"), t.stdout)
        XCTAssertTrue(t.stdout.contains("(0 computed,"), t.stdout)
        // The work tree was not touched.
        XCTAssertEqual(try fileSHA256(h.dir + "/model.safetensors"), before)
        XCTAssertEqual(try log(h.dir).first, h.ids[63])

        // Bad input: a malformed metric, an unknown metric, both criteria.
        let e1 = try wl(["bisect", "--metric", "facts", "--below", "1"], in: h.dir, expect: 2)
        XCTAssertTrue(e1.stderr.contains("TASK.METRIC"), e1.stderr)
        let e2 = try wl(["bisect", "--metric", "facts.gold_logprob", "--below", "1", "--drop", "5%"], in: h.dir, expect: 2)
        XCTAssertEqual(e2.stderr.split(separator: "\n").count, 1, e2.stderr)
        // A good end that is already bad is refused.
        try wl(["bisect", "--metric", "facts.gold_logprob", "--below=\(m.limit)", "HEAD", h.ids[41]], in: h.dir, expect: 1)
    }

    /// A perplexity worsens by rising: --drop bisects on the rise, --above on a ceiling, and a
    /// threshold's max-drop fails on the rise (they used to count only falls, so the damaging
    /// commit passed and the bisect called it good).
    func testPerplexityRiseIsTheWorseningForBisectAndThresholds() throws {
        let h = try history()
        try resetToMain(h)
        let page = h.tmp.path + "/page.txt"
        try """
            The river rises in the hills north of the town and runs south for about forty miles before it \
            reaches the sea. In the eighteenth century mills were built along its banks, and the town grew \
            around them; by 1850 it had a railway station, three churches and a market held every Thursday.
            """.write(toFile: page, atomically: true, encoding: .utf8)
        try wl(["config", "set", "task.page.source", "perplexity:" + page], in: h.dir)
        defer {
            for key in ["task.page.source", "threshold.page.perplexity.max-drop", "threshold.page.perplexity.max"] {
                _ = try? CLI.run(["config", "unset", key], in: h.dir)
            }
        }
        struct Health: Decodable {
            struct Row: Decodable { struct V: Decodable { var value: Double }; var metric: String; var value: V; var base: V? }
            var rows: [Row]
        }
        func perplexity(_ rev: String) throws -> (value: Double, base: Double) {
            let r = try wl(["health", rev, "--task", "page", "--all", "--json"], in: h.dir)
            let row = try XCTUnwrap(try JSONDecoder().decode(Health.self, from: Data(r.stdout.utf8)).rows.first { $0.metric == "perplexity" })
            return (row.value.value, try XCTUnwrap(row.base?.value))
        }
        let before = try perplexity(h.ids[40]), after = try perplexity(h.ids[41])
        XCTAssertGreaterThan(after.value, before.value * 1.5, "the damage raises perplexity")
        // --drop P% with P halfway between the two commits' rises over base.
        let midway = (before.value + after.value) / 2
        let percent = 100 * (midway - before.base) / before.base
        var r = try wl(["bisect", "--metric", "page.perplexity", "--drop", String(format: "%.6f%%", percent), "--json", "HEAD", "base"], in: h.dir)
        struct Found: Decodable {
            struct Eval: Decodable { var commit: String; var value: Double; var bad: Bool }
            struct C: Decodable { var id: String }
            var firstBad: C; var limit: Double; var badAbove: Bool; var evaluations: [Eval]; var criterion: String
        }
        let m = try JSONDecoder().decode(Found.self, from: Data(r.stdout.utf8))
        XCTAssertEqual(m.firstBad.id, h.ids[41])
        XCTAssertTrue(m.badAbove)
        XCTAssertEqual(m.limit, midway, accuracy: 1e-3 * midway)
        XCTAssertTrue(m.criterion.hasPrefix("more than") && m.criterion.contains("above base"), m.criterion)
        for e in m.evaluations { XCTAssertEqual(e.bad, e.value > m.limit, "\(e.commit.prefix(12)): \(e.value) vs \(m.limit)") }
        r = try wl(["bisect", "--metric", "page.perplexity", "--above", String(midway), "HEAD", "base"], in: h.dir)
        XCTAssertTrue(r.stdout.contains("\(h.ids[41]) is the first bad commit"), r.stdout)
        XCTAssertTrue(r.stdout.contains("(bad: above "), r.stdout)
        // A threshold: max-drop fails on the rise, max on the ceiling; the commit before passes.
        try wl(["config", "set", "threshold.page.perplexity.max-drop", String(format: "%.6f%%", percent)], in: h.dir)
        r = try wl(["health", h.ids[41], "--task", "page", "--check"], in: h.dir, expect: 1)
        XCTAssertTrue(r.stdout.contains("rose ") || r.stderr.contains("rose "), r.stdout + r.stderr)
        try wl(["health", h.ids[40], "--task", "page", "--check"], in: h.dir)
        try wl(["config", "unset", "threshold.page.perplexity.max-drop"], in: h.dir)
        try wl(["config", "set", "threshold.page.perplexity.max", String(midway)], in: h.dir)
        r = try wl(["health", h.ids[41], "--task", "page", "--check", "--json"], in: h.dir, expect: 1)
        XCTAssertTrue(r.stderr.contains("page.perplexity: ") && r.stderr.contains(" > max "), r.stderr)
        try wl(["health", h.ids[40], "--task", "page", "--check"], in: h.dir)
        // One criterion only.
        r = try wl(["bisect", "--metric", "page.perplexity", "--above", "1", "--below", "2"], in: h.dir, expect: 2)
        XCTAssertTrue(r.stderr.contains("give one of --below X, --above X or --drop P%"), r.stderr)
    }

    // MARK: - bisect run

    func testManualBisectRunWithAHealthScriptFindsTheSameCommit() throws {
        let h = try history()
        try resetToMain(h)
        let script = h.tmp.path + "/check.sh"
        // The candidate is checked out: HEAD is the commit to test, so `health` (cached per tree) judges it.
        try #"""
            #!/bin/sh
            echo "testing $WLEDGER_COMMIT in $WLEDGER_CANDIDATE" >> "$(dirname "$0")/run.log"
            exec "$WLEDGER" health --check -q > /dev/null
            """#.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.joined(separator: "\n")
            .write(toFile: script, atomically: true, encoding: .utf8)
        chmod(script, 0o755)
        let start = try wl(["bisect", "start", "HEAD", "base"], in: h.dir)
        // 63 candidates: git picks the one with 31 below it and leaves 31 to test.
        XCTAssertTrue(start.stdout.contains("Bisecting: 31 revisions left to test after this (roughly \(gitSteps(63)) steps)"), start.stdout)
        XCTAssertTrue(start.stdout.contains("[\(h.ids[31])] edit 31"), start.stdout)
        XCTAssertEqual(try log(h.dir).first, h.ids[31], "the candidate is checked out")
        let r = try wl(["bisect", "run", script], in: h.dir)
        XCTAssertTrue(r.stdout.contains("\(h.ids[41]) is the first bad commit"), r.stdout)
        assertRequestPrinted(r.stdout)
        let tested = try String(contentsOfFile: h.tmp.path + "/run.log", encoding: .utf8).split(separator: "\n")
        XCTAssertLessThanOrEqual(tested.count, 7)
        XCTAssertTrue(tested.allSatisfy { $0.hasSuffix(" in " + h.dir) }, "\(tested)")

        // The log replays to the same answer.
        let log = try wl(["bisect", "log"], in: h.dir).stdout
        XCTAssertTrue(log.hasPrefix("wledger bisect start\n"), log)
        XCTAssertTrue(log.contains("wledger bisect bad \(h.ids[41])\n"), log)
        XCTAssertTrue(log.contains("# first bad commit: [\(h.ids[41])] edit 41"), log)
        // status says a bisect is in progress, as git; not once it is reset (below).
        XCTAssertTrue(try wl(["status"], in: h.dir).stdout.contains("\nYou are currently bisecting, started from branch 'main'"))
        try log.write(toFile: h.tmp.path + "/bisect.log", atomically: true, encoding: .utf8)
        try wl(["bisect", "reset"], in: h.dir)
        XCTAssertEqual(try self.log(h.dir).first, h.ids[63])
        let replay = try wl(["bisect", "replay", h.tmp.path + "/bisect.log"], in: h.dir)
        XCTAssertTrue(replay.stdout.contains("\(h.ids[41]) is the first bad commit"), replay.stdout)
        // reset returns to the branch: a new commit would land on main.
        try wl(["bisect", "reset"], in: h.dir)
        let status = try wl(["status", "--json"], in: h.dir).stdout
        XCTAssertTrue(status.contains("\"main\""), status)
        XCTAssertFalse(try wl(["status"], in: h.dir).stdout.contains("bisecting"))
        XCTAssertEqual(try self.log(h.dir).first, h.ids[63])
        try wl(["bisect", "good"], in: h.dir, expect: 1)  // not bisecting
    }

    func testSkipInTheMiddleIsHonouredWithNoCheckout() throws {
        let h = try history()
        try resetToMain(h)
        let before = try fileSHA256(h.dir + "/model.safetensors")
        // Marks by hand first: the messages while waiting.
        XCTAssertTrue(try wl(["bisect", "start", "--no-checkout"], in: h.dir).stdout.contains("waiting for both good and bad"))
        XCTAssertTrue(try wl(["bisect", "bad", "HEAD"], in: h.dir).stdout.contains("waiting for good commit(s), bad commit known"))
        let first = try wl(["bisect", "good", "base"], in: h.dir).stdout
        XCTAssertTrue(first.contains("[\(h.ids[31])] edit 31 (not checked out)"), first)
        // The script skips the first candidate and judges the others by their weights: a commit is
        // bad when the damaged tensor's bytes in $WLEDGER_CANDIDATE differ from the base model's.
        let (info, dataStart) = try SimulatedEdit.locate(file: h.source + "/model.safetensors", tensor: Self.damagedTensor)
        let offset = dataStart + info.begin
        let script = h.tmp.path + "/weights.sh"
        try """
            #!/bin/sh
            echo "$WLEDGER_COMMIT $WLEDGER_CANDIDATE" >> "$(dirname "$0")/skip.log"
            [ "$WLEDGER_COMMIT" = "\(h.ids[31])" ] && exit 125
            [ "$WLEDGER_CANDIDATE" = "\(h.dir)" ] && exit 200
            cmp -s -i \(offset):\(offset) -n \(info.byteCount) "\(h.source)/model.safetensors" "$WLEDGER_CANDIDATE/model.safetensors"
            """.write(toFile: script, atomically: true, encoding: .utf8)
        chmod(script, 0o755)
        let r = try wl(["bisect", "run", script], in: h.dir)
        XCTAssertTrue(r.stdout.contains("\(h.ids[41]) is the first bad commit"), r.stdout)
        XCTAssertTrue(r.stdout.contains("on \(String(h.ids[31].prefix(12))): exit 125, skip"), r.stdout)
        let runs = try String(contentsOfFile: h.tmp.path + "/skip.log", encoding: .utf8).split(separator: "\n").map { $0.split(separator: " ") }
        XCTAssertEqual(runs.filter { $0[0] == h.ids[31] }.count, 1, "the skipped commit is not tested again")
        for run in runs {
            XCTAssertFalse(FileManager.default.fileExists(atPath: String(run[1])), "the materialized candidate \(run[1]) was removed")
        }
        let log = try wl(["bisect", "log"], in: h.dir).stdout
        XCTAssertTrue(log.hasPrefix("wledger bisect start --no-checkout\n"), log)
        XCTAssertTrue(log.contains("wledger bisect skip \(h.ids[31])\n"), log)
        XCTAssertFalse(log.contains("good \(h.ids[31])") || log.contains("bad \(h.ids[31])"), log)
        // A bare `bisect bad` after the answer names the first bad commit again (it used to mark
        // HEAD, the bad end, and restart the search).
        let again = try wl(["bisect", "bad"], in: h.dir).stdout
        XCTAssertTrue(again.contains("\(h.ids[41]) is the first bad commit"), again)
        XCTAssertTrue(try wl(["bisect", "log"], in: h.dir).stdout.contains("# first bad commit: [\(h.ids[41])]"))
        // --no-checkout leaves HEAD and the work tree alone.
        XCTAssertEqual(try self.log(h.dir).first, h.ids[63])
        XCTAssertEqual(try fileSHA256(h.dir + "/model.safetensors"), before)

        // Skipping every candidate but the bad end: wledger says which commits remain.
        try wl(["bisect", "start", "--no-checkout", h.ids[44], h.ids[40]], in: h.dir)
        let only = try wl(["bisect", "skip", h.ids[41], h.ids[42], h.ids[43]], in: h.dir).stdout
        XCTAssertTrue(only.contains("There are only 'skip'ped commits left to test."), only)
        for i in 41...44 { XCTAssertTrue(only.contains(h.ids[i]), only) }
        // Contradicting marks are refused and change nothing.
        try wl(["bisect", "start", "--no-checkout", h.ids[40], h.ids[44]], in: h.dir, expect: 1)
        try wl(["bisect", "reset"], in: h.dir)
    }

    /// Bad input: one line, exit 2 (1 for refusals), and the ledger stays as it was.
    func testBisectBadInputChangesNothing() throws {
        let h = try history()
        try resetToMain(h)
        let before = try ledgerDigest(h)
        func refused(_ args: [String], _ status: Int32, _ text: String, file: StaticString = #filePath, line: UInt = #line) throws {
            let r = try wl(args, in: h.dir, expect: status, file: file, line: line)
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr, file: file, line: line)
            XCTAssertTrue(r.stderr.contains(text), r.stderr, file: file, line: line)
            XCTAssertEqual(try ledgerDigest(h), before, "wledger \(args.joined(separator: " ")) changed the ledger", file: file, line: line)
        }
        try refused(["bisect", "start", "HEAD", "no-such-rev"], 2, "no-such-rev")
        try refused(["bisect", "log"], 1, "not bisecting")
        try refused(["bisect", "run", "true"], 1, "not bisecting")
        try "wledger bisect start\nwledger bisect maybe HEAD\n".write(toFile: h.tmp.path + "/bad.log", atomically: true, encoding: .utf8)
        try refused(["bisect", "replay", h.tmp.path + "/bad.log"], 2, "line 2: unknown bisect command 'maybe'")
        try refused(["bisect", "replay", h.tmp.path + "/missing.log"], 2, "missing.log")
        try refused(["hooks", "enable", "post-commit-none"], 2, "no such sample")
        try refused(["hooks", "disable", "post-commit"], 1, "no post-commit hook is installed in '")
        try refused(["bisect", "--metric", "nosuchtask.acc", "--below", "1"], 2, "nosuchtask")
        // The edits task has no result where no edit is in force (the base): said so, not "no metric".
        try refused(["bisect", "--metric", "edits.efficacy", "--below", "0.5"], 2,
                    "task 'edits' gives no result at \(h.ids[0].prefix(12)) ('base'): no edit request is in force there; give a good end after the first edit")
        // A dirty work tree is not overwritten by a bisect checkout.
        try Self.harmless(h.dir + "/model.safetensors", 300)
        try refused(["bisect", "start", "HEAD", "base"], 1, "uncommitted changes")
        try wl(["checkout", "-q", "--force", "HEAD"], in: h.dir)
    }

    // MARK: - Hooks

    func testHealthHookRejectsTheDamagingCommitAndAcceptsAHarmlessOne() throws {
        let h = try history()
        try resetToMain(h)
        defer { try? resetToMain(h) }
        let file = h.dir + "/model.safetensors"
        try wl(["branch", "hooked", h.ids[40]], in: h.dir)
        try wl(["checkout", "-q", "hooked"], in: h.dir)
        // init copied the samples, not executable; enabling installs one as pre-commit.
        let hooks = h.dir + "/.wledger/hooks"
        XCTAssertNotEqual(access(hooks + "/pre-commit-health.sample", X_OK), 0)
        try wl(["hooks", "enable", "pre-commit-health"], in: h.dir)
        XCTAssertEqual(access(hooks + "/pre-commit", X_OK), 0)
        // The base result is cached first, so a rejected commit cannot even add a cache row.
        try wl(["health", "-q"], in: h.dir)

        // A harmless edit passes the hook and is committed.
        try Self.harmless(file, 100)
        let ok = try wl(["commit", "-m", "harmless"], in: h.dir)
        XCTAssertTrue(ok.stderr.contains("health of candidate"), "the hook ran: \(ok.stderr)")
        let afterHarmless = try log(h.dir)
        XCTAssertEqual(afterHarmless.count, 42)

        // The damaging edit is rejected; the hook's output is shown; nothing changes.
        try Self.damage(file)
        let ledgerBefore = try ledgerDigest(h)
        let workBefore = try fileSHA256(file)
        let rejected = try wl(["commit", "-m", "damaging", "--request", h.tmp.path + "/request.json"], in: h.dir, expect: 1)
        XCTAssertTrue(rejected.stderr.contains("threshold failed: facts.gold_logprob"), rejected.stderr)
        XCTAssertTrue(rejected.stderr.contains("pre-commit hook"), rejected.stderr)
        XCTAssertTrue(rejected.stderr.hasSuffix("(use --no-verify to skip hooks)\n"), rejected.stderr)
        XCTAssertEqual(try ledgerDigest(h), ledgerBefore, "the rejected commit left a trace in .wledger")
        XCTAssertEqual(try fileSHA256(file), workBefore)
        XCTAssertEqual(try log(h.dir), afterHarmless)
        let status = try wl(["status", "--json"], in: h.dir).stdout
        XCTAssertTrue(status.contains(Self.damagedTensor), status)

        // --no-verify bypasses it.
        try wl(["commit", "--no-verify", "-m", "damaging anyway"], in: h.dir)
        XCTAssertEqual(try log(h.dir).count, 43)
        try wl(["hooks", "disable", "pre-commit"], in: h.dir)
        XCTAssertFalse(FileManager.default.fileExists(atPath: hooks + "/pre-commit"))
    }

    func testGateCommitMsgAndPreRevertHooks() throws {
        let h = try history()
        try resetToMain(h)
        defer { try? resetToMain(h) }
        let file = h.dir + "/model.safetensors"
        let hooks = h.dir + "/.wledger/hooks"
        // On top of HEAD (which already holds the damage): the gate looks only at what a change edits.
        try wl(["branch", "gated", "HEAD"], in: h.dir)
        try wl(["checkout", "-q", "gated"], in: h.dir)
        try wl(["hooks", "enable", "pre-commit-gate"], in: h.dir)
        // Enabling another sample over a different pre-commit needs --force.
        try wl(["hooks", "enable", "pre-commit-health"], in: h.dir, expect: 1)
        try wl(["config", "set", "gate.max-l1", "10000"], in: h.dir)
        defer { try? wl(["config", "unset", "gate.max-l1"], in: h.dir); try? wl(["config", "unset", "gate.max-kappa-growth"], in: h.dir) }

        // commit-msg gets the message file and may edit it.
        try "#!/bin/sh\necho \"Checked-by: commit-msg\" >> \"$1\"\n".write(toFile: hooks + "/commit-msg", atomically: true, encoding: .utf8)
        chmod(hooks + "/commit-msg", 0o755)
        try "#!/bin/sh\necho \"$WLEDGER_COMMIT\" > \"$(dirname \"$0\")/../post.txt\"\n".write(toFile: hooks + "/post-commit", atomically: true, encoding: .utf8)
        chmod(hooks + "/post-commit", 0o755)

        try Self.harmless(file, 200)
        try wl(["commit", "-m", "small"], in: h.dir)
        let head = try log(h.dir).first!
        let show = try wl(["show", "--json"], in: h.dir).stdout
        XCTAssertTrue(show.contains("small\\nChecked-by: commit-msg"), show)
        XCTAssertEqual(try String(contentsOfFile: h.dir + "/.wledger/post.txt", encoding: .utf8), head + "\n")
        try FileManager.default.removeItem(atPath: h.dir + "/.wledger/post.txt")

        // The gate refuses the damaging edit in well under a second, naming the limit.
        try Self.damage(file)
        struct GateReport: Decodable {
            struct T: Decodable { var name: String; var l1: Double; var kappaGrowth: Double? }
            var tensors: [T]; var failures: [String]; var cpuSeconds: Double
        }
        let g = try wl(["gate", "--json"], in: h.dir, expect: 1)
        let report = try JSONDecoder().decode(GateReport.self, from: Data(g.stdout.utf8))
        XCTAssertEqual(report.tensors.map(\.name), [Self.damagedTensor])
        XCTAssertLessThan(report.cpuSeconds, 1.0, "CPU time of the gate on SmolLM2 (debug build)")
        XCTAssertTrue(report.failures.contains { $0.contains("gate.max-l1") }, "\(report.failures)")
        // Why it failed is on stderr, with or without --json.
        let text = try wl(["gate"], in: h.dir, expect: 1)
        XCTAssertFalse(text.stdout.contains("gate failed"), text.stdout)
        XCTAssertEqual(text.stderr, g.stderr)
        // Σ|ΔW| vs base, computed independently.
        let base = ReferenceDecode.doubles(try readTensorBytes(file: h.source + "/model.safetensors", tensor: Self.damagedTensor), dtype: "F32")
        let now = ReferenceDecode.doubles(try readTensorBytes(file: file, tensor: Self.damagedTensor), dtype: "F32")
        let l1 = zip(base, now).reduce(0.0) { $0 + abs($1.1 - $1.0) }
        XCTAssertEqual(report.tensors[0].l1, l1, accuracy: 1e-9 * l1)
        // κ growth needs an SVD of the edited matrix; the rank-one damage makes it ill-conditioned.
        try wl(["config", "set", "gate.max-kappa-growth", "3"], in: h.dir)
        let k = try JSONDecoder().decode(GateReport.self, from: Data(try wl(["gate", "--json"], in: h.dir, expect: 1).stdout.utf8))
        XCTAssertGreaterThan(try XCTUnwrap(k.tensors.first?.kappaGrowth), 3)
        XCTAssertTrue(k.failures.contains { $0.contains("gate.max-kappa-growth") }, "\(k.failures)")
        let ledgerBefore = try ledgerDigest(h)
        let rejected = try wl(["commit", "-m", "damaging"], in: h.dir, expect: 1)
        XCTAssertTrue(rejected.stderr.contains("gate failed: \(Self.damagedTensor)"), rejected.stderr)
        XCTAssertEqual(try ledgerDigest(h), ledgerBefore)
        try wl(["checkout", "-q", "--force", "HEAD"], in: h.dir)

        // pre-revert: a failing one stops the revert and changes nothing.
        try wl(["hooks", "disable", "pre-commit"], in: h.dir)
        try "#!/bin/sh\necho \"no reverts of $WLEDGER_REVERT\"\nexit 3\n".write(toFile: hooks + "/pre-revert", atomically: true, encoding: .utf8)
        chmod(hooks + "/pre-revert", 0o755)
        let digest = try directoryDigest(h.dir)
        let r = try wl(["revert", h.ids[38]], in: h.dir, expect: 1)
        XCTAssertTrue(r.stderr.contains("no reverts of \(h.ids[38])"), r.stderr)
        XCTAssertTrue(r.stderr.contains("pre-revert hook"), r.stderr)
        XCTAssertEqual(try directoryDigest(h.dir), digest, "the refused revert changed something")
        // A non-executable hook is ignored. pre-commit sees the staged result of the revert (not
        // the work tree, which still holds HEAD) in $WLEDGER_CANDIDATE.
        chmod(hooks + "/pre-revert", 0o644)
        try "#!/bin/sh\necho \"$WLEDGER_CANDIDATE\" > ../cand.txt\nsha256sum \"$WLEDGER_CANDIDATE/model.safetensors\" >> ../cand.txt\n"
            .write(toFile: hooks + "/pre-commit", atomically: true, encoding: .utf8)
        chmod(hooks + "/pre-commit", 0o755)
        let headFile = try fileSHA256(file)
        try wl(["revert", h.ids[38]], in: h.dir)
        XCTAssertEqual(try log(h.dir).count, 66)
        let seen = try String(contentsOfFile: h.tmp.path + "/cand.txt", encoding: .utf8).split(separator: "\n")
        XCTAssertNotEqual(String(seen[0]), h.dir)
        XCTAssertFalse(FileManager.default.fileExists(atPath: String(seen[0])), "the candidate directory was removed")
        let reverted = try fileSHA256(file)
        XCTAssertNotEqual(reverted, headFile)
        XCTAssertEqual(String(seen[1].prefix(64)), reverted)
        for f in ["pre-commit", "commit-msg", "post-commit", "pre-revert"] { try FileManager.default.removeItem(atPath: hooks + "/" + f) }
    }

    /// The sample hooks in hooks/ are embedded verbatim and copied by init.
    func testSampleHooksAreEmbeddedAndCopied() throws {
        let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        let names = try FileManager.default.contentsOfDirectory(atPath: repoRoot + "/hooks").sorted()
        XCTAssertEqual(names, ["pre-commit-gate", "pre-commit-health"])
        let generated = try String(contentsOfFile: repoRoot + "/Sources/WLedgerKit/HookSamples+Generated.swift", encoding: .utf8)
        for n in names {
            let text = try String(contentsOfFile: repoRoot + "/hooks/" + n, encoding: .utf8)
            XCTAssertTrue(generated.contains("(\"\(n)\", #\"\"\"\n" + text + "\"\"\"#)"), "\(n) is not embedded verbatim: run scripts/gen-hooks.sh")
        }
        let h = try history()
        for n in names {
            let copied = try String(contentsOfFile: h.dir + "/.wledger/hooks/\(n).sample", encoding: .utf8)
            XCTAssertEqual(copied, try String(contentsOfFile: repoRoot + "/hooks/" + n, encoding: .utf8))
        }
        let list = try wl(["hooks", "list"], in: h.dir).stdout
        XCTAssertTrue(list.contains("pre-commit-health.sample  (sample)"), list)
        try wl(["hooks", "enable", "no-such-hook"], in: h.dir, expect: 2)
        try wl(["hooks", "enable", "pre-commit-nothing"], in: h.dir, expect: 2)
    }
}
