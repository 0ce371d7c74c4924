import ArgumentParser
import Foundation
import LinAlg
import WLedgerKit

/// The root command.
struct WLedger: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wledger",
        abstract: "Version control for edits to large-language-model weights.",
        discussion: """
            Run inside a Hugging Face model directory (safetensors weights, config.json, tokenizer.json), \
            or name it with -C <path>, before the command (as git -C) or after it. \
            Exit codes: 0 ok, 1 check failed or operation refused, 2 usage error or bad input.
            """,
        version: "0.1.0",
        subcommands: [Init.self, Status.self, Commit.self, Log.self, Show.self, Diff.self, Checkout.self, Branch.self, Tag.self,
                      Reset.self, Reflog.self, Revert.self, CherryPick.self, Prune.self, Restrain.self, Edit.self, Health.self, Bisect.self, Gate.self, Hooks.self, Report.self,
                      Config.self, Fsck.self, GC.self, Stash.self]
    )

    /// The subcommands by the names they are invoked with, for parsing `wledger <command> …` by
    /// the command alone (see `parseCommandLine`); debug builds check it against `subcommands`.
    static let commandsByName: [String: ParsableCommand.Type] = [
        "init": Init.self, "status": Status.self, "commit": Commit.self, "log": Log.self, "show": Show.self, "diff": Diff.self,
        "checkout": Checkout.self, "branch": Branch.self, "tag": Tag.self, "reset": Reset.self, "reflog": Reflog.self, "revert": Revert.self, "cherry-pick": CherryPick.self, "prune": Prune.self,
        "restrain": Restrain.self, "edit": Edit.self, "health": Health.self, "bisect": Bisect.self, "gate": Gate.self,
        "hooks": Hooks.self, "report": Report.self, "config": Config.self, "fsck": Fsck.self, "gc": GC.self, "stash": Stash.self,
    ]
}

/// Options every command takes.
struct GlobalOptions: ParsableArguments {
    @Option(name: .customShort("C"), help: ArgumentHelp("The model directory, or one inside it.", valueName: "path"))
    var directory: String = "."

    @Flag(name: .shortAndLong, help: "Show no progress or notices (init, commit, checkout, reset: nor their summary, as git).")
    var quiet = false

    var progress: ProgressReporter { ProgressReporter(quiet: quiet) }

    func openRepository(forWriting: Bool) throws -> Repository {
        try Repository.open(at: directory, forWriting: forWriting, progress: progress)
    }
}

/// Prints an Encodable as pretty JSON on stdout.
func printJSON<T: Encodable>(_ value: T) throws {
    let enc = JSONEncoder()
    enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]   // the same bytes every run
    // Statistics of weights committed or stashed with NaN/Inf (--allow-nonfinite) are NaN/Inf
    // themselves; JSON has no such numbers, so they are written as these strings.
    enc.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
    let data = try enc.encode(value)
    FileHandle.standardOutput.write(data)
    FileHandle.standardOutput.write("\n".data(using: .utf8)!)
}

/// Prints a one-line warning on stderr (also with --json, whose output is stdout).
func warn(_ message: String) {
    FileHandle.standardError.write(Data("warning: \(message)\n".utf8))
}

/// Warns about tensors the work tree's scan took for a version they were not: the command
/// rebuilt them from the ledger instead, so its result is right, but something wrote them
/// without the scan seeing it (`CheckoutResult.workTreeMismatches`).
func warnWorkTreeMismatches(_ count: Int) {
    guard count > 0 else { return }
    warn("\(count) tensor(s) in the work tree did not hold the version its scan recorded (written since the scan, or by a write their file's stat did not show); rebuilt them from the ledger instead ('wledger status --rehash' re-reads every tensor)")
}

/// A `-m` message cleaned as git cleans one (`CommitMessage.cleaned`). As git, a message that is
/// empty (or only white space) aborts the command before the repository is opened; no message
/// (`nil`) means the command's default.
func cleanedMessage(_ message: String?) throws -> String? {
    guard let message else { return nil }
    let cleaned = CommitMessage.cleaned(message)
    guard !cleaned.isEmpty else { throw KitError.usage("aborting commit due to empty commit message (-m)") }
    return cleaned
}

/// A file or tensor name as one line of text output: as is, or, where it holds a control
/// character, a double quote or a backslash, in double quotes with C escapes (`"new\nline"`), as
/// git quotes such paths, so that `status -s` stays one line per entry. JSON has the name itself.
func quotedName(_ name: String) -> String {
    guard name.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f || $0 == "\"" || $0 == "\\" }) else { return name }
    var out = "\""
    for u in name.unicodeScalars {
        switch u {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\t": out += "\\t"
        case "\r": out += "\\r"
        default:
            if u.value < 0x20 || u.value == 0x7f { out += String(format: "\\%03o", u.value) } else { out.unicodeScalars.append(u) }
        }
    }
    return out + "\""
}

/// An empty (or all-blank) `--author` or `--method`, refused as git refuses an empty ident.
func refuseEmptyField(_ value: String?, option: String) throws {
    if let value, value.allSatisfy(\.isWhitespace) {
        throw KitError.usage("empty \(option.dropFirst(2)) (\(option)) not allowed")
    }
}

/// `--threads`: 1 to `BLAS.maxThreads`.
func validateThreads(_ threads: Int?) throws {
    if let t = threads, !(1...BLAS.maxThreads).contains(t) { throw ValidationError("--threads must be between 1 and \(BLAS.maxThreads)") }
}

/// Short commit id for display.
func short(_ id: String) -> String { String(id.prefix(12)) }

/// Human-readable byte count.
func humanBytes(_ n: Int) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var v = Double(n)
    var u = 0
    while v >= 1024 && u < units.count - 1 { v /= 1024; u += 1 }
    return u == 0 ? "\(n) B" : String(format: "%.1f %@", v, units[u])
}

/// Scientific formatting for norms.
func sci(_ x: Double) -> String { x.isNaN ? "nan" : String(format: "%.4g", x) }   // "nan" whatever its sign bit (printf writes -nan)

/// A condition number in at most 8 characters: two decimals below 10⁴, else three significant
/// digits with an exponent (a near-singular matrix's κ of 10¹² overflowed the table's column).
func kappa(_ x: Double) -> String { x.isFinite && abs(x) < 1e4 ? String(format: "%.2f", x) : String(format: "%.3g", x) }
