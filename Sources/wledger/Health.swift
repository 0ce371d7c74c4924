import ArgumentParser
import Engine
import Foundation
import WLedgerKit

struct Health: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "health",
        abstract: "Evaluate general abilities and edit retention of a commit, next to the base.",
        discussion: """
            Runs a suite of tasks (BIG-bench JSON, lm-eval JSONL, perplexity, the retention of every \
            edit request in force, or an external evaluator) on a commit's weights, materialized \
            outside the work tree, and on the base commit. Results are cached in the ledger per \
            weights × task × evaluator. Suites, tasks and thresholds come from .wledger/config \
            (see 'wledger config --help'); the built-in suite 'default' runs addition (BIG-bench), \
            the word analogies capitals, family, comparative and opposite, and edits.
            Examples: wledger health; wledger health HEAD~3 --json; wledger health --candidate --check
            """)

    @OptionGroup var global: GlobalOptions
    @Argument(help: "Revision to evaluate (default HEAD).") var revision: String?
    @Option(help: "Suite to run (default: config health.suite, else 'default').") var suite: String?
    @Option(name: .customLong("task"), help: ArgumentHelp("Run only this task (repeatable).", valueName: "name")) var tasks: [String] = []
    @Flag(help: "Evaluate the uncommitted weights: $WLEDGER_CANDIDATE when set (hooks), else the work tree.") var candidate = false
    @Flag(help: "Exit 1 when a threshold fails.") var check = false
    @Flag(help: "Evaluate again even when cached.") var refresh = false
    @Flag(help: "Show every metric, not only each task's headline metric and thresholded ones.") var all = false
    @Option(parsing: .unconditional, help: "BLAS threads (default: config health.threads, else every core).") var threads: Int?
    @Flag(help: "Print the result as JSON.") var json = false

    func validate() throws {
        if candidate && revision != nil { throw ValidationError("give a revision or --candidate, not both") }
        try validateThreads(threads)
    }

    func run() throws {
        let repo = try global.openRepository(forWriting: false)
        var options = HealthOptions()
        if candidate {
            options.target = .candidate(directory: ProcessInfo.processInfo.environment["WLEDGER_CANDIDATE"].flatMap { $0.isEmpty ? nil : $0 })
        } else {
            options.target = .revision(revision ?? "HEAD")
        }
        options.suite = suite
        options.tasks = tasks
        options.refresh = refresh
        options.threads = threads
        let report = try repo.health(options, progress: global.progress)
        if json {
            try printJSON(report)
        } else {
            printTable(report)
        }
        if check && !report.failures.isEmpty {
            if json { for f in report.failures { FileHandle.standardError.write(Data("threshold failed: \(f)\n".utf8)) } }
            throw ExitCode(1)
        }
    }

    func printTable(_ r: HealthReport) {
        let what = r.commit.map { "commit \(short($0))" } ?? "candidate \(r.candidate ?? "")"
        print("health of \(what) vs base \(short(r.base)) (suite \(r.suite), \(r.evaluator))")
        print("")
        let header = ["task", "metric", "base", "this", "change", "threshold"]
        var lines: [[String]] = []
        for row in r.rows where all || row.headline || row.threshold != nil {
            let th: String
            if let t = row.threshold {
                var parts: [String] = []
                if let m = t.min { parts.append("min \(fmt(m))") }
                if let m = t.max { parts.append("max \(fmt(m))") }
                if let d = t.maxDrop { parts.append("max-drop \(d)") }
                th = parts.joined(separator: ", ") + (row.passed == false ? "  FAIL" : "  ok")
            } else {
                th = "-"
            }
            lines.append([row.task, row.metric, row.base.map(value) ?? "-", value(row.value),
                          row.change.map { ($0 >= 0 ? "+" : "") + fmt($0) } ?? "-", th])
        }
        for t in r.tasks where !r.rows.contains(where: { $0.task == t.task }) {
            lines.append([t.task, "-", "-", t.task == "edits" || t.result.kind == "edits" ? "no edit requests in force" : "no items", "-", "-"])
        }
        let widths = (0..<header.count).map { i in max(header[i].count, lines.map { $0[i].count }.max() ?? 0) }
        func render(_ cells: [String]) -> String {
            cells.enumerated().map { $1.padding(toLength: widths[$0], withPad: " ", startingAt: 0) }.joined(separator: "  ")
                .replacingOccurrences(of: "\\s+$", with: "", options: .regularExpression)
        }
        print(render(header))
        for l in lines { print(render(l)) }
        let cached = r.tasks.filter(\.cached).count
        print("")
        print("\(r.tasks.count) task(s), \(cached) from cache, \(String(format: "%.1f", r.elapsedSeconds)) s; ± is one standard error")
        for f in r.failures { print("threshold failed: \(f)") }
    }

    func value(_ m: MetricValue) -> String { "\(fmt(m.value)) ± \(fmt(m.stderr)) (n=\(m.n))" }
    func fmt(_ x: Double) -> String { String(format: abs(x) >= 100 ? "%.1f" : "%.3f", x) }
}
