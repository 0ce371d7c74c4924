import ArgumentParser
import Foundation
import WLedgerKit

struct Config: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Get, set and list settings in .wledger/config (suites, tasks, thresholds, evaluators, gates).",
        discussion: "Keys:\n" + ConfigFile.schema.map { "  \($0.pattern): \($0.help)" }.joined(separator: "\n")
            + "\n'*' is a name of your choice (a task, suite, evaluator, or TASK.METRIC for thresholds).\n"
            + "Examples: wledger config set threshold.addition.exact_match.min 0.3; wledger config get health.suite; wledger config list",
        subcommands: [Get.self, Set.self, Unset.self, List.self])

    struct Get: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "get", abstract: "Print a key's value (exit 1 when unset).")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "section[.name].key") var key: String
        @Flag(help: "Print the result as JSON.") var json = false

        func run() throws {
            let repo = try global.openRepository(forWriting: false)
            let config = try ConfigFile.load(repo.configPath)
            guard ConfigFile.schemaKey(for: key) != nil else {
                throw KitError.usage("unknown key '\(key)' (see 'wledger config --help' for the documented keys)")
            }
            let value = config.get(key)
            // An unset key exits 1, as git (with --json too, after printing its null).
            if json { try printJSON(["key": key, "value": value]) } else if let value { print(value) }
            if value == nil { throw ExitCode(1) }
        }
    }

    struct Set: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "set", abstract: "Set a key (checked against the documented keys).")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "section[.name].key") var key: String
        @Argument(help: "The value.") var value: String

        func run() throws {
            let repo = try global.openRepository(forWriting: true)
            var config = try ConfigFile.load(repo.configPath)
            try config.set(key, value)
            try config.save()
            // The value is of its kind; entries that do not fit together yet (a suite naming a
            // task not defined so far) are set, with a warning, as a config is built up in steps.
            for why in HealthSettings.problems(config) { warn("'\(repo.configPath)': \(why)") }
        }
    }

    struct Unset: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "unset", abstract: "Remove a key (exit 1 when it was not set).")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "section[.name].key") var key: String

        func run() throws {
            let repo = try global.openRepository(forWriting: true)
            var config = try ConfigFile.load(repo.configPath)
            guard config.unset(key) else { throw ExitCode(1) }
            try config.save()
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List every key that is set, in file order.")
        @OptionGroup var global: GlobalOptions
        @Flag(help: "Print the result as JSON.") var json = false

        func run() throws {
            let repo = try global.openRepository(forWriting: false)
            let config = try ConfigFile.load(repo.configPath)
            let entries = config.list()
            if json { try printJSON(entries.map { ["key": $0.key, "value": $0.value] }) } else {
                for e in entries { print("\(e.key)=\(e.value)") }
            }
            // As git lists a config it would refuse to use: every entry, with a warning for each
            // value the commands that read it would refuse ('config unset' or 'set' fixes it).
            for why in HealthSettings.problems(config) { warn("'\(repo.configPath)': \(why)") }
        }
    }
}
