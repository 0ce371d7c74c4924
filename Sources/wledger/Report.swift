import ArgumentParser
import Foundation
import WLedgerKit

struct Report: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Write one self-contained HTML page showing what the edits did to the model.",
        discussion: """
            Charts, drawn as inline SVG (no external requests; prints well): each cached health metric \
            vs commits with the base value and threshold bands; weight drift of every edited matrix vs \
            commits (Σ|ΔW| since base, ‖ΔW‖F/‖W‖F, shares of δ > 0.077 and > 0.171, κ), computed as \
            'wledger diff base COMMIT' does; a sortable table of the commits. Several ranges or \
            revisions are drawn as overlaid lines. Health results are read from the cache ('wledger \
            health REV' fills it); --evaluate runs what is missing. Prints the path of the page.

            Examples: wledger report; wledger report main prune restrain --output report.html
            """)

    @OptionGroup var global: GlobalOptions
    @Argument(help: ArgumentHelp("Ranges <a>..<b> or revisions (meaning base..<rev>), one line each (default base..HEAD).",
                                 valueName: "range-or-rev")) var revisions: [String] = []
    @Option(name: .shortAndLong, help: ArgumentHelp("Write the page here (default .wledger/report.html).", valueName: "file")) var output: String?
    @Option(help: "Health suite to show (default: config health.suite, else 'default').") var suite: String?
    @Option(name: .customLong("task"), help: ArgumentHelp("Show only this task (repeatable).", valueName: "name")) var tasks: [String] = []
    @Flag(help: "Evaluate health where no cached result exists (slow).") var evaluate = false
    @Option(parsing: .unconditional, help: "BLAS threads for --evaluate (default: config health.threads, else every core).") var threads: Int?
    @Flag(help: "Print the collected data as JSON instead (the page is written only with --output).") var json = false

    func validate() throws {
        try validateThreads(threads)
    }

    func run() throws {
        let repo = try global.openRepository(forWriting: false)
        let path = json && output == nil ? nil : try repo.reportOutputPath(output)
        var options = ReportOptions()
        options.revisions = revisions
        options.suite = suite
        options.tasks = tasks
        options.evaluate = evaluate
        options.threads = threads
        let data = try repo.report(options, progress: global.progress)
        if let path { try repo.writeReport(data, to: path) }
        if json { return try printJSON(data) }
        print(path!)
    }
}
