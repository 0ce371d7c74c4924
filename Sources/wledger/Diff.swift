import ArgumentParser
import WLedgerKit

struct Diff: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show ΔW statistics between two revisions, or a revision and the work tree.",
        discussion: """
            With no revision: HEAD vs the work tree. With one: that revision vs the work tree. With two: a vs b.
            Per tensor: changed elements, Σ|ΔW| (L1), ‖ΔW‖F, ‖ΔW‖F/‖W‖F and max|ΔW|, computed in float64.
            Example: wledger diff base HEAD --stat
            """)

    @OptionGroup var global: GlobalOptions
    @Argument(help: "Older revision (default HEAD).") var a: String?
    @Argument(help: "Newer revision (default: the work tree).") var b: String?
    @Flag(help: "Per-tensor statistics table (the default output).") var stat = false
    @Option(help: "Only this tensor.") var tensor: String?
    @Flag(help: "Print the result as JSON.") var json = false

    func run() throws {
        let repo = try global.openRepository(forWriting: false)
        let d = try repo.diff(a, b, tensor: tensor, progress: global.progress)
        if json { return try printJSON(d) }
        let toLabel = d.to == "worktree" ? "work tree" : short(d.to)
        print("diff \(short(d.from))..\(toLabel)")
        if d.tensors.isEmpty { print("no tensor differs"); return }
        print("tensor".padding(toLength: 48, withPad: " ", startingAt: 0) + "  changed/total        Σ|ΔW|     ‖ΔW‖F  ‖ΔW‖/‖W‖    max|ΔW|")
        for t in d.tensors {
            print(t.name.padding(toLength: 48, withPad: " ", startingAt: 0)
                  + "  " + "\(t.changed)/\(t.count)".padding(toLength: 18, withPad: " ", startingAt: 0)
                  + " " + pad(sci(t.l1)) + " " + pad(sci(t.frobenius)) + " " + pad(sci(t.relativeFrobenius)) + " " + pad(sci(t.maxAbs)))
        }
        print(" \(d.totals.tensors) tensor(s) changed, \(d.totals.changed) elements, Σ|ΔW| \(sci(d.totals.l1)), ‖ΔW‖F \(sci(d.totals.frobenius))")
    }
}
