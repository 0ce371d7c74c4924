import ArgumentParser
import Foundation
import WLedgerKit

struct Hooks: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hooks",
        abstract: "List, enable and disable hooks in .wledger/hooks/.",
        discussion: """
            Hooks are executables named pre-commit, commit-msg (gets the message file, may edit it), post-commit \
            and pre-revert in .wledger/hooks/. They run in the work tree with WLEDGER_CANDIDATE (the candidate \
            weights: the work tree for commit, a staged copy for revert, prune and restrain), WLEDGER_LEDGER, \
            WLEDGER_COMMIT (the parent; the new commit for post-commit), WLEDGER_REQUEST (commit --request) and \
            WLEDGER_REVERT (revert). Non-executable files are ignored; a non-zero exit aborts with the hook's \
            output shown, and nothing changes; --no-verify skips hooks. 'init' copies the samples as NAME.sample: \
            pre-commit-health (wledger health --candidate --check) and pre-commit-gate (wledger gate).
            Examples: wledger hooks enable pre-commit-health; wledger hooks list
            """,
        subcommands: [List.self, Enable.self, Disable.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List hooks and samples.")
        @OptionGroup var global: GlobalOptions
        @Flag(help: "Print the result as JSON.") var json = false

        func run() throws {
            let repo = try global.openRepository(forWriting: false)
            let hooks = try repo.listHooks()
            if json { return try printJSON(hooks) }
            for h in hooks { print("\(h.name)\(h.sample ? "  (sample)" : h.active ? "  (active)" : "  (inactive: not executable or not a hook name)")") }
        }
    }

    struct Enable: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "enable", abstract: "Install a sample as the hook its name starts with (pre-commit-gate -> pre-commit).")
        @OptionGroup var global: GlobalOptions
        @Flag(help: "Replace a different hook that is already there.") var force = false
        @Argument(help: "The sample's name, e.g. pre-commit-health.") var name: String

        func run() throws {
            let repo = try global.openRepository(forWriting: true)
            let path = try repo.enableHook(name, force: force)
            if !global.quiet { print("enabled \(name) as \(path)") }
        }
    }

    struct Disable: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "disable", abstract: "Remove an installed hook (exit 1 when there was none).")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The hook, e.g. pre-commit.") var name: String

        func run() throws {
            let repo = try global.openRepository(forWriting: true)
            guard try repo.disableHook(name) else { throw KitError.refused("no \(name) hook is installed in '\(repo.wledgerDirectory)/hooks'") }
        }
    }
}
