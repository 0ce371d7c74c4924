import ArgumentParser
import Ops
import WLedgerKit

struct Prune: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prune",
        abstract: "RECT: keep only the top K% of one edit's ΔW (by relative change) and commit the rest's removal.",
        discussion: """
            For every tensor the commit changed, δ = |ΔW / W| is computed against the commit's parent (where W = 0 \
            the denominator is 2^-126, so δ is finite); the ⌈K·N/100⌉ elements with the largest δ keep their exact \
            values (ties: lower index first) and the others return to their pre-edit values. The paper's default \
            keeps 40%.

            Example: wledger prune HEAD --keep 40%
            """)

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The edit to prune.") var revision: String
    @Option(parsing: .unconditional, help: "Share of ΔW's elements to keep, e.g. 40%.") var keep: Percent
    @Option(help: "Ranking: relative (|ΔW/W|, RECT) or magnitude (|ΔW|).") var by: RECT.Ranking = .relative
    @Option(name: .shortAndLong, help: "Message.") var message: String?
    @Option(help: "Author (default: $WLEDGER_AUTHOR or $USER).") var author: String?
    @Flag(help: "Skip the hooks in .wledger/hooks/.") var noVerify = false
    @Flag(help: "Print the result as JSON.") var json = false

    func run() throws {
        let message = try cleanedMessage(self.message)
        try refuseEmptyField(author, option: "--author")
        try recordCommit(global, noVerify: noVerify, json: json) { repo in
            try repo.prune(revision, keepPercent: keep.value, by: by, message: message, author: author, progress: global.progress)
        } details: { r in
            for p in r.pruned ?? [] {
                print("   kept \(p.kept) of \(p.changed) changed elements of \(p.name) (\(String(format: "%.1f", 100 * p.keptFrobeniusShare))% of ‖ΔW‖F)")
            }
        }
    }
}
