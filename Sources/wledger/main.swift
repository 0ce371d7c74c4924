import ArgumentParser
import Codec
import Engine
import Foundation
import Ledger
import LinAlg
import TensorIO
import WLedgerKit

/// The documented exit code of a runtime error: 2 for bad input or usage, 1 for failed checks,
/// refusals, corruption and I/O trouble inside the ledger.
func exitCode(for error: Error) -> Int32 {
    switch error {
    case let e as KitError: return e.exitCode
    case let e as PartialEditError: return exitCode(for: e.underlying)
    case is TensorIOError: return 2
    // A task file, model config or tokenizer that cannot serve is bad input.
    case is TaskError, is ModelError, is TokenizerError: return 2
    case is CodecError: return 1
    case let e as LedgerError:
        switch e {
        case .corruptObject, .sqlite, .locked, .readOnly: return 1
        default: return 2
        }
    default: return 1
    }
}

func fail(_ message: String, _ code: Int32) -> Never {
    FileHandle.standardError.write((message + "\n").data(using: .utf8)!)
    exit(code)
}

/// A usage error as one line: ArgumentParser's first message line and where to find help.
func usageLine(_ error: Error) -> String {
    let first = WLedger.message(for: error).split(separator: "\n").first.map(String.init) ?? "invalid arguments"
    let words = Array(arguments.prefix { !$0.hasPrefix("-") })
    var command = ""
    if let name = words.first, let type = WLedger.commandsByName[name] {
        command = " " + name
        // A subcommand's help (`reflog expire`), or the default one's where its options are
        // (`reflog main -n -1` is `reflog show`).
        let subcommands = type.configuration.subcommands
        if let sub = words.dropFirst().first.flatMap({ w in subcommands.first { $0._commandName == w } }) ?? type.configuration.defaultSubcommand {
            command += " " + sub._commandName
        }
    }
    var body = first.hasPrefix("Error: ") ? String(first.dropFirst(7)) : first
    // A percentage option given a bare 0 < x < 1 (Percent refuses it): say why.
    if let value = percentageRefused(body) {
        body += ": a bare number between 0 and 1 is ambiguous; write \(value)% or a whole percentage such as 40%"
    }
    return "error: \(body) (see 'wledger\(command) --help')"
}

/// The value of ArgumentParser's "The value 'X' is invalid for '--keep <keep>'" (or --drop,
/// --prune) when X is a bare number between 0 and 1, which `Percent` refuses as ambiguous.
func percentageRefused(_ message: String) -> String? {
    let prefix = "The value '"
    guard message.hasPrefix(prefix), let end = message.dropFirst(prefix.count).firstIndex(of: "'") else { return nil }
    let value = String(message[message.index(message.startIndex, offsetBy: prefix.count)..<end])
    guard ["--keep <", "--drop <", "--prune <"].contains(where: { message.contains("for '" + $0) }),
          let v = Double(value), v > 0, v < 1 else { return nil }
    return value
}

// `wledger -C <path> <command> …`, as `git -C`: the process changes to <path> (each further -C
// relative to the one before) before anything else reads the command line, so relative paths
// in the command's arguments are relative to it. A command's own `-C <path>` (after its name)
// names the model directory only. `arguments` is the command line after those pairs, without
// the program's name.
let arguments: [String] = {
    var args = Array(CommandLine.arguments.dropFirst())
    while args.first == "-C" {
        guard args.count >= 2 else { fail("error: no directory given for '-C' (see 'wledger --help')", 2) }
        if !args[1].isEmpty, chdir(args[1]) != 0 {
            fail("error: cannot change to '\(args[1])': \(String(cString: strerror(errno)))", 2)
        }
        args.removeFirst(2)
    }
    // As git: `log -3` and `log -n3` are `log -n 3` (ArgumentParser takes no value attached to a
    // short option); so in `reflog` and `reflog show`, not `reflog expire`, whose -n is --dry-run.
    if let name = args.first, name == "log" || (name == "reflog" && args.dropFirst().first != "expire") {
        var out = [name], previous = ""
        for a in args.dropFirst() {
            let digits = a.hasPrefix("-n") ? a.dropFirst(2) : a.dropFirst()
            if a.hasPrefix("-"), !digits.isEmpty, digits.allSatisfy({ ("0"..."9").contains($0) }),
               previous != "-n", previous != "--max-count", !out.contains("--") {
                out += ["-n", String(digits)]
            } else {
                out.append(a)
            }
            previous = a
        }
        args = out
    }
    // `config -C DIR set …`, `hooks -C DIR list`, `bisect -C DIR log`: the directory given between
    // a command and its subcommand is the subcommand's (-C is an option of the subcommands only;
    // ArgumentParser named it unknown there, or took the subcommand for an argument).
    if args.count >= 4, args[1] == "-C", let group = WLedger.commandsByName[args[0]],
       group.configuration.subcommands.contains(where: { $0.configuration.commandName == args[3] }) {
        args = [args[0], args[3], "-C", args[2]] + args.dropFirst(4)
    }
    // `config set KEY -6` (a negative threshold, `-5%`, `-inf`): the value is not an option; as if
    // after `--` (so `-inf` gets the key's own message, not "Missing expected argument").
    if args.count > 2, args[0] == "config", args[1] == "set", !args.contains("--") {
        func negative(_ a: String) -> Bool {
            a.count > 1 && a.hasPrefix("-") && ((a.dropFirst().first.map { $0.isNumber || $0 == "." } ?? false) || Double(a) != nil)
        }
        let values = args.dropFirst(2).filter(negative)
        if !values.isEmpty { args = args.filter { !negative($0) } + ["--"] + values }
    }
    return args
}()

// $WLEDGER for hooks and `bisect run`: this binary, under whatever name it was installed.
Repository.isCommandLine = true
MappedFile.exitWithMessageOnSIGBUS()

// No command (`wledger`, `wledger -C dir`): the overview, and a usage error's exit code, as git
// (which exits 1 there; 2 is wledger's code for usage errors).
if arguments.isEmpty {
    print(WLedger.helpMessage())
    exit(2)
}

// Commands that rebuild and encode whole tensors keep freed memory for reuse (see ProcessMemory;
// measured on commit and checkout). Before any thread starts.
let tensorCommands: Set<String> = ["init", "commit", "checkout", "revert", "prune", "restrain", "diff", "show", "fsck"]
if let command = arguments.first(where: { !$0.hasPrefix("-") }), tensorCommands.contains(command) {
    ProcessMemory.keepFreedMemory()
}

// OpenBLAS is opened at the first BLAS call (see BLASKernel). Commands that will call it start
// opening it here, on a thread of its own, while they parse and read the ledger; those whose BLAS
// calls are a few factorizations between wledger's own parallel loops (encoding a commit's
// low-rank patches) run it on the calling thread alone, with the kernels OpenBLAS picked itself.
let blasCommands: Set<String> = ["commit", "revert", "diff", "prune", "restrain", "health", "edit", "gate", "bisect", "report"]
let smallBLASCommands: Set<String> = ["commit", "revert", "prune"]
if let command = arguments.first(where: { !$0.hasPrefix("-") }), blasCommands.contains(command) {
    if smallBLASCommands.contains(command) { BLASKernel.smallCalls = true }
    BLASKernel.loadInBackground()
}

/// Parses the command line. ArgumentParser's root parse first builds the whole command tree,
/// naming every subcommand through runtime reflection (≈ 7 ms at every start, a tenth of a
/// SmolLM2 commit); `wledger <command> …` is parsed by that command alone (≈ 2 ms). Help
/// requests and every parse error take the root's path, so they read the same either way (a
/// help request is never tried alone: the command would then print itself as the root).
func parseCommandLine() throws -> ParsableCommand {
    let args = arguments
    let helpFlags: Set<String> = ["-h", "--help", "-help", "--version", "--experimental-dump-help"]
    if let name = args.first, let command = WLedger.commandsByName[name],
       !args.contains(where: { helpFlags.contains($0) || $0.hasPrefix("--generate-completion") }),
       let parsed = try? command.parseAsRoot(Array(args.dropFirst())) {
        return parsed
    }
    return try WLedger.parseAsRoot(arguments)
}

#if DEBUG
// The names above must be the ones ArgumentParser gives the subcommands (every CLI test runs a
// debug build, so a wrong or missing entry fails them all).
do {
    let derived = Dictionary(uniqueKeysWithValues: WLedger.configuration.subcommands.map { ($0._commandName, ObjectIdentifier($0)) })
    precondition(derived == WLedger.commandsByName.mapValues { ObjectIdentifier($0) }, "WLedger.commandsByName differs from the subcommands")
    // Every command names itself: ArgumentParser derives a missing name from the type's name
    // through runtime reflection, a scan of every protocol conformance in the binary (≈ 1.7 ms
    // of each start, measured on `status`).
    func checkNamed(_ command: ParsableCommand.Type) {
        precondition(command.configuration.commandName != nil, "\(command) has no commandName")
        command.configuration.subcommands.forEach(checkNamed)
    }
    checkNamed(WLedger.self)
}
#endif

let parsed: ParsableCommand
do {
    parsed = try parseCommandLine()
} catch {
    if WLedger.exitCode(for: error) == .success { WLedger.exit(withError: error) }
    fail(usageLine(error), 2)
}
do {
    var command = parsed
    try command.run()
} catch let code as ExitCode {
    exit(code.rawValue)
} catch {
    if WLedger.exitCode(for: error) == .success { WLedger.exit(withError: error) }
    if error is ValidationError { fail(usageLine(error), 2) }
    // fsck names every commit and tensor a damaged object reaches.
    if case LedgerError.corruptObject = error { fail("error: \(error) (run 'wledger fsck' for every commit it damages)", 1) }
    fail("error: \(error)", exitCode(for: error))
}
