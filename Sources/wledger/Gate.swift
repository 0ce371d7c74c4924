import ArgumentParser
import Foundation
import WLedgerKit

struct Gate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gate",
        abstract: "Weight-space gate: check the matrices a change edits against the gate.* limits (exit 1 when one is exceeded).",
        discussion: """
            Every floating-point matrix whose weights differ from HEAD is compared with the base commit: Σ|ΔW| \
            (gate.max-l1), the share of elements with δ = |ΔW/W| > 0.171 (gate.max-delta-share) and κ(W)/κ(W_base) \
            (gate.max-kappa-growth, the only one that needs an SVD). Unset limits are not checked. The sample hook \
            pre-commit-gate runs this.
            Example: wledger config set gate.max-l1 5000; wledger gate
            """)

    @OptionGroup var global: GlobalOptions
    @Argument(help: "Weights to check (default: $WLEDGER_CANDIDATE when set, else the work tree).") var directory: String?
    @Flag(help: "Print the result as JSON.") var json = false

    func run() throws {
        let repo = try global.openRepository(forWriting: false)
        let env = ProcessInfo.processInfo.environment["WLEDGER_CANDIDATE"].flatMap { $0.isEmpty ? nil : $0 }
        let r = try repo.gate(candidate: directory ?? env)
        if json {
            try printJSON(r)
        } else {
            print("gate: \(r.tensors.count) edited matrix(es) of \(r.candidate) vs base \(short(r.base)), \(String(format: "%.2f", r.elapsedSeconds)) s")
            for t in r.tensors {
                var parts = ["Σ|ΔW| \(sci(t.l1))", "δ>0.171 \(String(format: "%.4g", 100 * t.deltaShare))%"]
                if let g = t.kappaGrowth { parts.append("κ ×\(String(format: "%.3g", g))") }
                print("   \(t.name): \(parts.joined(separator: ", "))\(t.failures.isEmpty ? "" : "  FAIL")")
            }
        }
        // Why it failed goes to stderr, with or without --json.
        if !r.failures.isEmpty {
            for f in r.failures { FileHandle.standardError.write(Data("gate failed: \(f)\n".utf8)) }
            throw ExitCode(1)
        }
    }
}
