import ArgumentParser
import WLedgerKit

struct CherryPick: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cherry-pick",
        abstract: "Commit one commit's ΔW (and side-file changes) onto HEAD (e.g. an edit made on another branch).",
        discussion: """
            As git cherry-pick: the new commit has the picked one's kind, author, method, edit request (so \
            health's edit retention follows it) and message, with "(cherry picked from commit <id>)" added. Where HEAD \
            holds a tensor as the picked commit's parent did, the result is the picked commit's bytes exactly; \
            elsewhere HEAD + ΔW is computed in float64 and rounded to the tensor's dtype. A side file it added, \
            modified or deleted is carried where HEAD has it as the picked commit's parent did. Refused when its \
            change is already on HEAD's history (the commit, or a pick of the same edit), when HEAD already holds \
            what it wrote, when HEAD changed one of its side files too or it changed a weight file's header, and \
            with uncommitted changes.

            Example: wledger cherry-pick rect~2
            """)

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The commit to apply.") var revision: String
    @Option(name: .shortAndLong, help: "Message (default: the picked commit's, with where it came from).") var message: String?
    @Option(help: "Author (default: the picked commit's, as git).") var author: String?
    @Flag(help: "Skip the hooks in .wledger/hooks/.") var noVerify = false
    @Flag(help: "Print the result as JSON.") var json = false

    func run() throws {
        let message = try cleanedMessage(self.message)
        try refuseEmptyField(author, option: "--author")
        try recordCommit(global, noVerify: noVerify, json: json) { repo in
            try repo.cherryPick(revision, message: message, author: author, progress: global.progress)
        }
    }
}
