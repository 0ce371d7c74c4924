import ArgumentParser
import Foundation
import WLedgerKit

struct Diff: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff",
        abstract: "Show ΔW statistics between two revisions, or a revision and the work tree.",
        discussion: """
            With no revision: HEAD vs the work tree. With one: that revision vs the work tree (a range A..B: A vs B; A...B: B vs the merge base of A and B, what B did since it forked from A). With two: a vs b. \
            Per tensor: changed elements, Σ|ΔW| (L1), ‖ΔW‖F, ‖ΔW‖F/‖W‖F and max|ΔW|, computed in float64; the \
            relative change δ = |ΔW/W| (W of the older side; where W = 0 the denominator is 2^-126 so δ stays \
            finite) as shares above thresholds and median/p90/p99; for 2-D tensors σmax, σmin and κ of both \
            sides and the numerical rank and top singular values of ΔW.

            Example: wledger diff base HEAD --stat
            """)

    @OptionGroup var global: GlobalOptions
    @Argument(help: "Older revision (default HEAD), or a range A..B or A...B.") var a: String?
    @Argument(help: "Newer revision (default: the work tree).") var b: String?
    @Flag(help: "Per-tensor statistics table (the default output).") var stat = false
    @Option(help: "Only this tensor.") var tensor: String?
    @Option(parsing: .unconditional, help: "Comma-separated δ thresholds for the shares of relative change (default 0.077,0.171).") var deltaThresholds: String?
    @Flag(help: "Skip the SVD-based statistics (σmax, σmin, κ, rank of ΔW).") var noSpectrum = false
    @Flag(help: "Print the result as JSON.") var json = false

    func run() throws {
        let repo = try global.openRepository(forWriting: false)
        var options = DiffOptions()
        options.tensor = tensor
        options.spectrum = !noSpectrum
        if let deltaThresholds {
            // (empty items kept: "0.1,,0.2" is refused, not read as two thresholds)
            let values = deltaThresholds.split(separator: ",", omittingEmptySubsequences: false).map { Double($0.trimmingCharacters(in: .whitespaces)) }
            guard !values.isEmpty, values.allSatisfy({ $0 != nil && $0! >= 0 && $0!.isFinite }) else {
                throw ValidationError("--delta-thresholds must be comma-separated finite non-negative numbers, e.g. 0.077,0.171")
            }
            options.thresholds = values.map { $0! }
        }
        let d = try repo.diff(a, b, options: options, progress: global.progress)
        if json { return try printJSON(d) }
        printDiffTables(d)
    }
}

/// `diff`'s tables: the per-tensor statistics, then δ shares and spectra, then totals.
func printDiffTables(_ d: DiffReport) {
    let toLabel = d.to == "worktree" ? "work tree" : short(d.to)
    print("diff \(short(d.from))..\(toLabel)")
    // Side files first, as `git diff --name-status` lists them (A, M, D).
    for f in d.sideFiles { print("\(f.change.rawValue.prefix(1).uppercased())\t\(quotedName(f.path))") }
    for h in d.headers { print("M\t\(quotedName(h)) (header)") }
    if d.tensors.isEmpty { print("no tensor differs"); return }
    print("tensor".padding(toLength: 48, withPad: " ", startingAt: 0) + "  changed/total        Σ|ΔW|     ‖ΔW‖F  ‖ΔW‖/‖W‖    max|ΔW|")
    for t in d.tensors {
        print(t.name.padding(toLength: 48, withPad: " ", startingAt: 0)
              + "  " + "\(t.changed)/\(t.count)".padding(toLength: 18, withPad: " ", startingAt: 0)
              + " " + pad(sci(t.l1)) + " " + pad(sci(t.frobenius)) + " " + pad(sci(t.relativeFrobenius)) + " " + pad(sci(t.maxAbs)))
    }
    let th = d.thresholds.map { String(format: "%g", $0) }
    print("")
    print("tensor".padding(toLength: 48, withPad: " ", startingAt: 0) + "  " + th.map { pad("δ>\($0)", 9) }.joined(separator: " ")
          + "  δ median       p90       p99    κ from →     κ to  rank(ΔW)  top σ(ΔW)")
    for t in d.tensors {
        guard let delta = t.delta else { continue }
        let shares = delta.shares.map { pad($0.fraction.isNaN ? "nan" : String(format: "%.2f%%", 100 * $0.fraction), 9) }.joined(separator: " ")
        let kf = t.fromSpectrum?.kappa.map(kappa) ?? "-"
        let kt = t.toSpectrum?.kappa.map(kappa) ?? "-"
        let sv = (t.deltaSingularValues ?? []).prefix(3).map(sci).joined(separator: ", ")
        print(t.name.padding(toLength: 48, withPad: " ", startingAt: 0) + "  " + shares + "  " + pad(sci(delta.median), 8) + " "
              + pad(sci(delta.p90), 9) + " " + pad(sci(delta.p99), 9) + " " + pad(kf, 9) + " → " + pad(kt, 8)
              + "  " + pad(t.deltaRank.map(String.init) ?? "-", 8) + "  " + sv)
    }
    print(" \(d.totals.tensors) tensor(s) changed, \(d.totals.changed) elements, Σ|ΔW| \(sci(d.totals.l1)), ‖ΔW‖F \(sci(d.totals.frobenius))")
}
