import ArgumentParser
import WLedgerKit

struct Show: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract: "Show one commit: message, edit request, tensors touched and ΔW statistics.",
        discussion: "Example: wledger show HEAD~2 --json")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "Revision to show.") var revision = "HEAD"
    @Flag(help: "Print the result as JSON.") var json = false

    func run() throws {
        let repo = try global.openRepository(forWriting: false)
        let c = try repo.show(revision)
        if json { return try printJSON(c) }
        print("commit \(c.id)\(c.refs.isEmpty ? "" : " (\(c.refs.joined(separator: ", ")))")")
        if let p = c.parent { print("Parent: \(p)") }
        print("Kind:   \(c.kind)\(c.method.map { " (\($0))" } ?? "")")
        print("Author: \(c.author)")
        print("Date:   \(c.date)")
        print("")
        for line in c.message.split(separator: "\n", omittingEmptySubsequences: false) { print("    \(line)") }
        if let r = c.request { print("\nRequest: \(r.text)") }
        if let p = c.parameters { print("Parameters: \(p.text)") }
        if let tensors = c.tensors, !tensors.isEmpty, c.kind != "base" {
            print("\n" + statLine(c))
            print("")
            print("tensor".padding(toLength: 48, withPad: " ", startingAt: 0) + "  changed/total        Σ|ΔW|     ‖ΔW‖F  ‖ΔW‖/‖W‖    max|ΔW|  encoding  stored")
            for t in tensors {
                print(t.name.padding(toLength: 48, withPad: " ", startingAt: 0)
                      + "  " + "\(t.changed)/\(t.count)".padding(toLength: 18, withPad: " ", startingAt: 0)
                      + " " + pad(sci(t.l1)) + " " + pad(sci(t.frobenius)) + " " + pad(sci(t.relativeFrobenius)) + " " + pad(sci(t.maxAbs))
                      + "  \(t.encoding)  \(humanBytes(t.storedBytes))")
            }
        } else if c.kind == "base" {
            print("\nbase snapshot: \(humanBytes(c.summary.storedBytes)) stored in the ledger")
        }
        // Side files (config.json, tokenizer.json, …) the commit added, changed or removed.
        if c.kind != "base", let files = c.sideFiles, !files.isEmpty {
            print("\nside files changed:")
            for f in files { print("    \(f.change.rawValue.prefix(1).uppercased()) \(quotedName(f.path))") }
        }
        // Weight files whose header alone the commit changed (metadata, tensor order, padding).
        if let headers = c.headers, !headers.isEmpty {
            print("\nheaders changed:")
            for h in headers { print("    M \(quotedName(h)) (header)") }
        }
    }
}

func pad(_ s: String, _ n: Int = 10) -> String { String(repeating: " ", count: max(0, n - s.count)) + s }
