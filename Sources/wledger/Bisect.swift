import ArgumentParser
import Foundation
import Ledger
import WLedgerKit

struct Bisect: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bisect",
        abstract: "Find the edit that broke an ability: binary search over the history, by hand, by a command, or on a health metric.",
        discussion: """
            By hand or by a command (git's semantics): 'bisect start <bad> <good>' checks out the commit halfway \
            (detached HEAD), 'bisect good|bad|skip' marks it and checks out the next, until the first bad commit \
            is printed with its message, method and edit request; 'bisect run <cmd>' does the marking by the \
            command's exit code (0 good, 125 skip, 1-124 bad; 126, 127 and the rest stop); 'bisect reset' returns to where you \
            started. With 'start --no-checkout' the work tree is left alone and 'run' gives the command the \
            candidate's weights, materialized in a temporary directory, as $WLEDGER_CANDIDATE. The session is \
            kept in the ledger.
            On a metric: 'bisect --metric TASK.METRIC (--below X | --above X | --drop P%) [<bad> [<good>]]' (default HEAD \
            and base) evaluates the health task through its cache, at most ceil(log2 N)+1 evaluations over N \
            commits, without touching the work tree.
            Examples: wledger bisect start HEAD base; wledger bisect run ./check.sh; wledger bisect --metric addition.exact_match --drop 25%
            """,
        subcommands: [Metric.self, Start.self, Good.self, Bad.self, Skip.self, Reset.self, Log.self, Replay.self, Run.self],
        defaultSubcommand: Metric.self)


    struct Metric: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "metric",
            abstract: "Bisect automatically on a health metric (the default: 'wledger bisect --metric ...').",
            discussion: """
                A commit is bad when TASK.METRIC is below X (--below), above X (--above, for a perplexity), or \
                worsened by more than P% of the base value (--drop): fell below base, or rose above it for metrics \
                where lower is better (perplexity, bits_per_byte, nll_*, *loss). The good end is evaluated first, then a binary search in which the bad end is \
                evaluated only if every commit before it is good: at most ceil(log2 N)+1 evaluations over N commits \
                (one more for the base with --drop and a good end other than base). Results come from and go to the \
                health cache; the work tree is not touched.
                Example: wledger bisect --metric addition.exact_match --below 0.3 HEAD base
                """)
        @OptionGroup var global: GlobalOptions
        @Option(help: ArgumentHelp("Bisect automatically on this health metric.", valueName: "task.metric")) var metric: String?
        @Option(parsing: .unconditional, help: "A commit is bad when the metric is below this.") var below: Double?
        @Option(parsing: .unconditional, help: "A commit is bad when the metric is above this.") var above: Double?
        @Option(parsing: .unconditional, help: "A commit is bad when the metric worsened (fell; rose where lower is better) by more than this share of the base value, e.g. 25% (past 100% for a rise).") var drop: GrowthPercent?
        @Option(parsing: .unconditional, help: "BLAS threads (default: config health.threads, else every core).") var threads: Int?
        @Flag(help: "Print the result as JSON.") var json = false
        @Argument(help: ArgumentHelp("With --metric: the bad commit (default HEAD), then the good one (default base).", valueName: "rev"))
        var revisions: [String] = []

        func validate() throws {
            guard metric != nil else {
                throw ValidationError("give --metric TASK.METRIC, or a subcommand (start, good, bad, skip, reset, log, replay, run)")
            }
            if [below, above, drop?.value].compactMap({ $0 }).count != 1 { throw ValidationError("give one of --below X, --above X or --drop P% with --metric") }
            if let b = below, !b.isFinite { throw ValidationError("--below must be a finite number") }
            if let a = above, !a.isFinite { throw ValidationError("--above must be a finite number") }
            if revisions.count > 2 { throw ValidationError("at most two revisions: <bad> [<good>]") }
            try validateThreads(threads)
        }

        func run() throws {
            let repo = try global.openRepository(forWriting: false)
            var options = MetricBisectOptions(metric: metric!)
            options.below = below
            options.above = above
            options.dropPercent = drop?.value
            if let b = revisions.first { options.bad = b }
            if revisions.count > 1 { options.good = revisions[1] }
            options.threads = threads
            let r = try repo.bisectMetric(options, progress: global.progress) { e in
                if !json {
                    print("\(short(e.commit))  \(fmt(e.value)) ± \(fmt(e.stderr)) (n=\(e.n))  \(e.bad ? "bad" : "good")\(e.cached ? "  (cached)" : "")")
                }
            }
            if json { return try printJSON(r) }
            print("")
            printFirstBad(r.firstBad)
            print("")
            print("\(r.task).\(r.metric): last good \(short(r.lastGood.id)) \(fmt(r.lastGoodValue)), first bad \(short(r.firstBad.id)) \(fmt(r.firstBadValue)) (bad: \(r.criterion))")
            let fresh = r.evaluations.filter { !$0.cached }.count
            print("\(r.evaluations.count) evaluations (\(fresh) computed, \(r.evaluations.count - fresh) from cache) over \(r.commitCount) commits; at most \(r.maxEvaluations)")
        }

        func fmt(_ x: Double) -> String { String(format: abs(x) >= 100 ? "%.1f" : "%.3f", x) }
    }

    struct Start: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "start", abstract: "Start bisecting: mark a bad commit and good ones, and check out the commit to test.")
        @OptionGroup var global: GlobalOptions
        @Flag(help: "Leave the work tree alone; 'bisect run' gets the candidate in $WLEDGER_CANDIDATE.") var noCheckout = false
        @Flag(help: "Print the result as JSON.") var json = false
        @Argument(help: ArgumentHelp("The bad commit, then good ones.", valueName: "rev")) var revisions: [String] = []

        func run() throws {
            let repo = try global.openRepository(forWriting: true)
            let s = try repo.bisectStart(bad: revisions.first, good: Array(revisions.dropFirst()), noCheckout: noCheckout, progress: global.progress)
            try printStatus(s, json: json)
        }
    }

    struct Good: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "good", abstract: "Mark commits good (default: HEAD, or the one being tested with --no-checkout).")
        @OptionGroup var global: GlobalOptions
        @Flag(help: "Print the result as JSON.") var json = false
        @Argument(help: ArgumentHelp("Commits to mark.", valueName: "rev")) var revisions: [String] = []

        func run() throws { try mark(.good, revisions, global, json) }
    }

    struct Bad: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "bad", abstract: "Mark a commit bad (default: HEAD, or the one being tested with --no-checkout).")
        @OptionGroup var global: GlobalOptions
        @Flag(help: "Print the result as JSON.") var json = false
        @Argument(help: ArgumentHelp("The commit to mark.", valueName: "rev")) var revision: String?

        func run() throws { try mark(.bad, revision.map { [$0] } ?? [], global, json) }
    }

    struct Skip: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "skip", abstract: "Skip commits that cannot be tested (default: HEAD, or the one being tested with --no-checkout).")
        @OptionGroup var global: GlobalOptions
        @Flag(help: "Print the result as JSON.") var json = false
        @Argument(help: ArgumentHelp("Commits to skip.", valueName: "rev")) var revisions: [String] = []

        func run() throws { try mark(.skip, revisions, global, json) }
    }

    struct Reset: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "reset", abstract: "End the bisect and check out the original HEAD (or <rev>).")
        @OptionGroup var global: GlobalOptions
        @Argument(help: ArgumentHelp("Check out this instead of the original HEAD.", valueName: "rev")) var revision: String?

        func run() throws {
            let repo = try global.openRepository(forWriting: true)
            guard try repo.ledger.bisectSession() != nil else {
                if !global.quiet { print("not bisecting") }
                return
            }
            if let target = try repo.bisectReset(to: revision, progress: global.progress), !global.quiet {
                print("bisect ended; checked out \(target.count == 64 ? short(target) : target)")
            } else if !global.quiet {
                print("bisect ended")
            }
        }
    }

    struct Log: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "log", abstract: "Print the session as commands 'bisect replay' can run again.")
        @OptionGroup var global: GlobalOptions
        @Flag(help: "Print the result as JSON.") var json = false

        func run() throws {
            let repo = try global.openRepository(forWriting: false)
            let log = try repo.bisectLog()
            if json {
                return try printJSON(["lines": log.split(separator: "\n").map(String.init)])
            }
            print(log, terminator: "")
        }
    }

    struct Replay: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "replay", abstract: "Start over from a file written by 'bisect log'.")
        @OptionGroup var global: GlobalOptions
        @Flag(help: "Print the result as JSON.") var json = false
        @Argument(help: "The log file.") var file: String

        func run() throws {
            let repo = try global.openRepository(forWriting: true)
            try printStatus(try repo.bisectReplay(file, progress: global.progress), json: json)
        }
    }

    struct Run: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "run",
            abstract: "Mark commits by running a command on each: exit 0 good, 125 skip, 1-124 bad, anything else (126, 127: not run) stops.",
            discussion: """
                The command runs in the work tree with WLEDGER_CANDIDATE (the candidate's weights: the work tree, \
                or a temporary directory with --no-checkout), WLEDGER_LEDGER and WLEDGER_COMMIT (the candidate's id).
                Example: wledger bisect run wledger health --candidate --check
                """)
        @OptionGroup var global: GlobalOptions
        @Argument(parsing: .captureForPassthrough, help: ArgumentHelp("The command and its arguments.", valueName: "cmd"))
        var command: [String] = []

        func run() throws {
            if command.first == "--help" || command.first == "-h" { throw CleanExit.helpRequest(self) }
            let repo = try global.openRepository(forWriting: true)
            let cmd = command.first == "--" ? Array(command.dropFirst()) : command
            guard !cmd.isEmpty else { throw ValidationError("missing the command to run") }
            let s = try repo.bisectRun(cmd, progress: global.progress) { r in
                print("running '\(cmd.joined(separator: " "))' on \(short(r.commit)): exit \(r.exitCode), \(r.verdict.rawValue)")
                try? printStatus(r.status, json: false)
            }
            if s.state == .onlySkipped { throw ExitCode(1) }
        }
    }
}

private func mark(_ verdict: BisectVerdict, _ revisions: [String], _ global: GlobalOptions, _ json: Bool) throws {
    let repo = try global.openRepository(forWriting: true)
    try printStatus(try repo.bisectMark(verdict, revisions, progress: global.progress), json: json)
}

private func printStatus(_ s: BisectStatus, json: Bool) throws {
    if json { return try printJSON(s) }
    switch s.state {
    case .waiting:
        switch s.waitingFor {
        case "good and bad": print("status: waiting for both good and bad commits")
        case "good": print("status: waiting for good commit(s), bad commit known")
        default: print("status: waiting for bad commit, good commit(s) known")
        }
    case .testing:
        let r = s.remaining ?? 0, k = s.steps ?? 0
        print("Bisecting: \(r) revision\(r == 1 ? "" : "s") left to test after this (roughly \(k) step\(k == 1 ? "" : "s"))")
        if let c = s.candidate { print("[\(c.id)] \(c.subject)\(s.checkedOut ? "" : " (not checked out)")") }
    case .found:
        if let f = s.firstBad { printFirstBad(f) }
    case .onlySkipped:
        print("There are only 'skip'ped commits left to test.")
        print("The first bad commit could be any of:")
        for c in s.possible ?? [] { print("\(c.id) \(c.subject)") }
        print("We cannot bisect more!")
    }
}

/// The first bad commit with its message, method and edit request.
func printFirstBad(_ c: BisectCommit) {
    print("\(c.id) is the first bad commit")
    print("kind: \(c.kind)\(c.method.map { ", method: \($0)" } ?? "")")
    print("author: \(c.author)")
    print("")
    for line in c.message.split(separator: "\n", omittingEmptySubsequences: false) { print("    \(line)") }
    if let r = c.request {
        print("")
        print("request: \(r)")
    }
}
