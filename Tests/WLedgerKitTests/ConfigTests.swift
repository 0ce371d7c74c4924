import Engine
import Foundation
@testable import WLedgerKit
import XCTest

/// `.wledger/config` parsing and editing, settings resolution, and lm-eval results parsing.
final class ConfigTests: XCTestCase {
    let sample = """
        # a comment
        [health]
        \tsuite = quick   ; trailing comment
        [task "add10"]
        \tsource = bigbench:arithmetic/2_digit_addition
        \tmode = exact_match
        \tshots = 2
        \tlimit = 10
        [suite "quick"]
        \ttasks = add10, edits
        [threshold "add10.exact_match"]
        \tmin = 0.2
        \tmax-drop = "25%"
        [evaluator "ext"]
        \tcommand = "run {weights} > {out} # not a comment"
        """

    func testParsesSectionsSubsectionsQuotesAndComments() throws {
        let c = try ConfigFile(text: sample, path: "cfg")
        XCTAssertEqual(c.get("health.suite"), "quick")
        XCTAssertEqual(c.get("task.add10.limit"), "10")
        XCTAssertEqual(c.get("suite.quick.tasks"), "add10, edits")
        XCTAssertEqual(c.get("threshold.add10.exact_match.max-drop"), "25%")
        XCTAssertEqual(c.get("evaluator.ext.command"), "run {weights} > {out} # not a comment")
        XCTAssertNil(c.get("task.add10.seed"))
        XCTAssertEqual(c.subsections(of: "task"), ["add10"])
        XCTAssertEqual(c.list().map(\.key), ["health.suite", "task.add10.source", "task.add10.mode", "task.add10.shots", "task.add10.limit",
                                              "suite.quick.tasks", "threshold.add10.exact_match.min", "threshold.add10.exact_match.max-drop",
                                              "evaluator.ext.command"])
        let s = try HealthSettings.load(config: c)
        XCTAssertEqual(s.defaultSuite, "quick")
        XCTAssertEqual(try s.suite(nil).map(\.name), ["add10", "edits"])
        let t = try s.suite(nil)[0]
        XCTAssertEqual(t.source, .bigbench("arithmetic/2_digit_addition"))
        XCTAssertEqual(t.mode, .exactMatch)
        XCTAssertEqual(t.shots, 2)
        XCTAssertEqual(t.limit, 10)
        XCTAssertEqual(t.headlineMetric(kind: nil), "exact_match")
        XCTAssertEqual(s.thresholds["add10.exact_match"], Threshold(metric: "add10.exact_match", min: 0.2, maxDrop: .percent(25)))
        XCTAssertEqual(Threshold.Amount.percent(25).allowed(base: 0.4), 0.1, accuracy: 1e-15)
        // Built-ins stay available next to the configured suite.
        XCTAssertEqual(try s.suite("default").map(\.name), ["addition", "capitals", "family", "comparative", "opposite", "edits"])
    }

    func testSetKeepsCommentsAndOrderAndRoundTrips() throws {
        var c = try ConfigFile(text: sample, path: "cfg")
        try c.set("task.add10.limit", "20")
        try c.set("task.new.source", "jsonl:data/q.jsonl")
        try c.set("health.threads", "2")
        try c.set("evaluator.ext.command", "say \"hi\"; x {weights}")
        let text = c.text
        XCTAssertTrue(text.hasPrefix("# a comment\n[health]\n\tsuite = quick   ; trailing comment\n\tthreads = 2\n"), text)
        XCTAssertTrue(text.contains("\tlimit = 20\n"))
        XCTAssertTrue(text.contains("[task \"new\"]\n\tsource = jsonl:data/q.jsonl\n"))
        let again = try ConfigFile(text: text, path: "cfg")
        XCTAssertEqual(again.get("task.add10.limit"), "20")
        XCTAssertEqual(again.get("task.new.source"), "jsonl:data/q.jsonl")
        XCTAssertEqual(again.get("evaluator.ext.command"), "say \"hi\"; x {weights}")
        XCTAssertEqual(again.list().count, c.list().count)
        var d = again
        XCTAssertTrue(d.unset("task.add10.limit"))
        XCTAssertFalse(d.unset("task.add10.limit"))
        XCTAssertNil(try ConfigFile(text: d.text, path: "cfg").get("task.add10.limit"))
    }

    func testRejectsMalformedFilesKeysAndValues() {
        func parseError(_ text: String) -> String {
            do { _ = try ConfigFile(text: text, path: "/r/.wledger/config"); return "parsed" } catch { return "\(error)" }
        }
        XCTAssertEqual(parseError("suite = x"), "'/r/.wledger/config': line 1: key outside any [section]")
        XCTAssertEqual(parseError("[health\nsuite = x"), "'/r/.wledger/config': line 1: section header without ']'")
        XCTAssertEqual(parseError("[health]\nsuite x"), "'/r/.wledger/config': line 2: expected 'key = value'")
        XCTAssertEqual(parseError("[health]\nsuite = \"x"), "'/r/.wledger/config': line 2: unterminated quoted value")
        XCTAssertEqual(parseError("[task \"a\"b]"), "'/r/.wledger/config': line 1: unterminated subsection name")
        var c = try! ConfigFile(text: "", path: "cfg")
        func setError(_ k: String, _ v: String) -> String {
            do { try c.set(k, v); return "set" } catch { return "\(error)" }
        }
        XCTAssertEqual(setError("health.suit", "x"), "unknown key 'health.suit' (see 'wledger config --help' for the documented keys)")
        XCTAssertEqual(setError("task.a.shots", "-1"), "'task.a.shots' must be a non-negative integer, got '-1'")
        XCTAssertEqual(setError("task.a.limit", "0"), "'task.a.limit' must be a positive integer, got '0'")
        XCTAssertEqual(setError("task.a.mode", "mc"), "'task.a.mode' must be automatic, multiple_choice or exact_match, got 'mc'")
        XCTAssertEqual(setError("task.a.source", "hf:x"),
                       "'task.a.source': unknown task source 'hf:x' (bigbench:DIR, jsonl:FILE, perplexity:FILE, edits, external:NAME)")
        XCTAssertEqual(setError("threshold.a.acc.max-drop", "ten"), "'threshold.a.acc.max-drop' must be a number or a percentage like 10%, got 'ten'")
        XCTAssertEqual(setError("evaluator.e.command", "lm_eval"), "'evaluator.e.command' must contain {weights}")
        // Gate limits nothing could pass (a negative Σ|ΔW|) or that could never fail (a share
        // above 1) are refused; limits at the edges are not.
        XCTAssertEqual(setError("gate.max-l1", "-5"), "'gate.max-l1' must be a finite number ≥ 0 (what it limits is never negative), got '-5'")
        XCTAssertEqual(setError("gate.max-l1", "inf"), "'gate.max-l1' must be a finite number ≥ 0 (what it limits is never negative), got 'inf'")
        XCTAssertEqual(setError("gate.max-l1", "abc"), "'gate.max-l1' must be a number, got 'abc'")
        XCTAssertEqual(setError("gate.max-kappa-growth", "-1"),
                       "'gate.max-kappa-growth' must be a finite number ≥ 0 (what it limits is never negative), got '-1'")
        XCTAssertEqual(setError("gate.max-delta-share", "1.5"), "'gate.max-delta-share' must be a share from 0 to 1 or a percentage from 0% to 100%, got '1.5'")
        XCTAssertEqual(setError("gate.max-delta-share", "101%"), "'gate.max-delta-share' must be a share from 0 to 1 or a percentage from 0% to 100%, got '101%'")
        XCTAssertEqual(setError("gate.max-delta-share", "-0.1"), "'gate.max-delta-share' must be a share from 0 to 1 or a percentage from 0% to 100%, got '-0.1'")
        XCTAssertEqual(c.list().count, 0, "failed sets change nothing")
        for (k, v) in [("gate.max-l1", "0"), ("gate.max-kappa-growth", "1.5"), ("gate.max-delta-share", "1"), ("gate.max-delta-share", "100%"),
                       ("gate.max-delta-share", "0%")] {
            XCTAssertEqual(setError(k, v), "set", "\(k) = \(v)")
        }
        c = try! ConfigFile(text: "", path: "cfg")
        // Settings: references must resolve.
        func settingsError(_ text: String) -> String {
            do { _ = try HealthSettings.load(config: try ConfigFile(text: text, path: "cfg")); return "loaded" } catch { return "\(error)" }
        }
        XCTAssertEqual(settingsError("[suite \"s\"]\ntasks = nope"), "'cfg': line 2: suite 's' names unknown task 'nope'")
        XCTAssertEqual(settingsError("[task \"t\"]\nshots = 1"), "'cfg': line 2: task 't' has no source")
        XCTAssertEqual(settingsError("[task \"t\"]\nsource = external:e"), "'cfg': line 2: task 't' uses evaluator 'e', which has no [evaluator \"e\"] command")
        XCTAssertEqual(settingsError("[threshold \"nope.acc\"]\nmin = 1"), "'cfg': line 2: threshold 'nope.acc' must name TASK.METRIC of a known task")
        XCTAssertEqual(settingsError("[health]\nsuite = s"), "'cfg': line 2: health.suite names unknown suite 's'")
        XCTAssertEqual(settingsError("# x\n[health]\nthreads = 0"), "'cfg': line 3: 'health.threads' must be a thread count from 1 to 1024, got '0'")
        // Every problem, each at its line (config list and set warn about them all).
        let several = try! ConfigFile(text: """
            [suite "empty"]
            \ttasks = ""
            [threshold "addition"]
            \tmax-drop = 0.1
            [task "t3"]
            \tshots = 2
            [suite "s2"]
            \ttasks = t3 edits
            [health]
            \tsuite = empty
            """, path: "cfg")
        XCTAssertEqual(HealthSettings.problems(several), [
            "line 6: task 't3' has no source",
            "line 2: suite 'empty' has no tasks",
            "line 8: suite 's2' names unknown task 't3'",
            "line 4: threshold 'addition' must name TASK.METRIC of a known task",
        ])
        // A malformed source is reported once: not also as a task without a source, nor as an
        // unknown task in the suite that names it.
        let badSource = try! ConfigFile(text: """
            [task "t4"]
            \tsource = nowhere:x
            [suite "s4"]
            \ttasks = t4 edits
            """, path: "cfg")
        XCTAssertEqual(HealthSettings.problems(badSource), [
            "line 2: 'task.t4.source': unknown task source 'nowhere:x' (bigbench:DIR, jsonl:FILE, perplexity:FILE, edits, external:NAME)",
        ])
        let badSourceWithShots = try! ConfigFile(text: "[task \"t5\"]\n\tsource = nowhere:x\n\tshots = 2\n", path: "cfg")
        XCTAssertEqual(HealthSettings.problems(badSourceWithShots), [
            "line 2: 'task.t5.source': unknown task source 'nowhere:x' (bigbench:DIR, jsonl:FILE, perplexity:FILE, edits, external:NAME)",
        ])
        XCTAssertEqual(HealthSettings.problems(try! ConfigFile(text: sample, path: "cfg")), [])
        // A task named twice is evaluated once.
        let settings = try! HealthSettings.load(config: try! ConfigFile(text: sample, path: "cfg"))
        XCTAssertEqual(try settings.tasks(named: ["add10", "edits", "add10"]).map(\.name), ["add10", "edits"])
    }

    /// The reflog expiry times of gc.reflogExpire and `reflog expire` (dates checked against
    /// Python's calendar.timegm).
    func testParsesExpiryTimesAsGitWritesThem() {
        let now: Int64 = 1_800_000_000
        XCTAssertEqual(ExpiryTime("never", now: now), .never)
        XCTAssertEqual(ExpiryTime("false", now: now), .never)
        XCTAssertEqual(ExpiryTime("now", now: now), .all)
        XCTAssertEqual(ExpiryTime("all", now: now), .all)
        XCTAssertEqual(ExpiryTime("90.days.ago", now: now), .before(now - 90 * 86400))
        XCTAssertEqual(ExpiryTime("90.days", now: now), .before(now - 90 * 86400))
        XCTAssertEqual(ExpiryTime("2 weeks ago", now: now), .before(now - 14 * 86400))
        XCTAssertEqual(ExpiryTime("1.hour.ago", now: now), .before(now - 3600))
        XCTAssertEqual(ExpiryTime("Yesterday", now: now), .before(now - 86400))
        XCTAssertEqual(ExpiryTime("3.months.ago", now: now), .before(now - 90 * 86400))
        XCTAssertEqual(ExpiryTime("1.year", now: now), .before(now - 365 * 86400))
        XCTAssertEqual(ExpiryTime("@1700000000", now: now), .before(1_700_000_000))
        XCTAssertEqual(ExpiryTime("2026-01-31", now: now), .before(1_769_817_600))
        XCTAssertEqual(ExpiryTime("2026-01-31T12:00Z", now: now), .before(1_769_860_800))
        XCTAssertEqual(ExpiryTime("2026-01-31 12:00:00", now: now), .before(1_769_860_800))
        XCTAssertEqual(ExpiryTime("2024-02-29T23:59:59", now: now), .before(1_709_251_199))
        XCTAssertEqual(ExpiryTime("99999999999999.years.ago", now: now), .never, "an overflowing age keeps everything")
        XCTAssertEqual(ExpiryTime("100000000000.days", now: now), .never)
        for bad in ["", "soon", "3.fortnights", "-1.days", "+5.days", "1.5.days", "days.ago", "2026-02-30", "2026-13-01", "26-01-31",
                    "2026-01-31T25:00", "2026-01-31T12", "2026-01-31T23:59:60", "2026-1-31", "+202-01-01", "@-5", "@+5", "@x",
                    "--", " --", "--z", "-", "t", "z"] {
            XCTAssertNil(ExpiryTime(bad, now: now), bad)
        }
        XCTAssertEqual(ExpiryTime.all.cutoff, Int64.max)
        XCTAssertNil(ExpiryTime.never.cutoff)
        XCTAssertEqual(ExpiryTime.before(1_769_817_600).description, "2026-01-31T00:00:00Z")
        XCTAssertNil(ConfigFile.validate(key: "gc.reflogExpire", value: "2.weeks.ago"))
        XCTAssertNotNil(ConfigFile.validate(key: "gc.reflogExpireUnreachable", value: "soon"))
    }

    /// Results as lm-evaluation-harness 0.4 writes them (abridged from a real hellaswag run).
    func testParsesLMEvalResults() throws {
        let json = """
            {"results": {"hellaswag": {"alias": "hellaswag", "acc,none": 0.4262, "acc_stderr,none": 0.004935,
                                       "acc_norm,none": 0.5557, "acc_norm_stderr,none": 0.004959}},
             "groups": {}, "n-samples": {"hellaswag": {"original": 10042, "effective": 10042}},
             "config": {"model": "hf"}, "versions": {"hellaswag": 1.0}}
            """
        let r = try ExternalEvaluator.parse(Array(json.utf8), path: "r.json", wanted: "hellaswag")
        XCTAssertEqual(r.metrics["acc"], MetricValue(value: 0.4262, n: 10042, stderr: 0.004935))
        XCTAssertEqual(r.metrics["acc_norm"], MetricValue(value: 0.5557, n: 10042, stderr: 0.004959))
        XCTAssertEqual(r.metrics.count, 2)
        // Several tasks: prefixed; other filters: suffixed; "N/A" stderr strings are ignored.
        let two = """
            {"results": {"a": {"acc,none": 0.5, "acc_stderr,none": "N/A"}, "b": {"exact_match,strict-match": 0.25}}}
            """
        let r2 = try ExternalEvaluator.parse(Array(two.utf8), path: "r.json", wanted: "a,b")
        XCTAssertEqual(r2.metrics["a.acc"], MetricValue(value: 0.5, n: 0, stderr: 0))
        XCTAssertEqual(r2.metrics["b.exact_match@strict-match"], MetricValue(value: 0.25, n: 0, stderr: 0))
        XCTAssertThrowsError(try ExternalEvaluator.parse(Array("{\"res\": 1}".utf8), path: "r.json", wanted: "a")) {
            XCTAssertEqual("\($0)", "'r.json': evaluator results have no \"results\" object (lm-evaluation-harness format expected)")
        }
        XCTAssertThrowsError(try ExternalEvaluator.parse(Array(two.utf8), path: "r.json", wanted: "c")) {
            XCTAssertEqual("\($0)", "'r.json': evaluator results have none of the tasks c (found: a, b)")
        }
    }

    /// The gate's failure line shows as many digits as it takes for value and limit to differ
    /// (κ growth 1.00047 against 1.0001 read "1 > 1").
    func testGateFailureLinesShowTheDigitsThatDiffer() {
        XCTAssertEqual(Repository.exceeds("κ growth", 1.00047, "gate.max-kappa-growth", 1.0001), "κ growth 1.0005 > gate.max-kappa-growth 1.0001")
        XCTAssertEqual(Repository.exceeds("Σ|ΔW|", 1043.2, "gate.max-l1", 5), "Σ|ΔW| 1043 > gate.max-l1 5")
    }
}

/// Commit messages cleaned as git's `--cleanup=whitespace` cleans them.
final class CommitMessageTests: XCTestCase {
    func testCleansAsGitDoes() {
        XCTAssertEqual(CommitMessage.cleaned("\n \n  subject  \n\n\n\tbody\t\n\n"), "  subject\n\n\tbody")
        XCTAssertEqual(CommitMessage.cleaned("a\r\nb\r\n"), "a\nb", "CR at a line's end is white space")
        XCTAssertEqual(CommitMessage.cleaned("a\u{0C}b\u{0B}c"), "a\u{0C}b\u{0B}c", "lines end at LF only")
        XCTAssertEqual(CommitMessage.cleaned("a\u{2028}b\u{85}"), "a\u{2028}b\u{85}")
        XCTAssertEqual(CommitMessage.cleaned("nbsp\u{A0}"), "nbsp\u{A0}", "only ASCII white space is trimmed, as git's isspace")
        XCTAssertEqual(CommitMessage.cleaned(" \n\t\n"), "")
        XCTAssertEqual(CommitMessage.cleaned("e\u{301}\n"), "e\u{301}", "scalars kept as they are")
    }
}
