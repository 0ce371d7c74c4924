import ArgumentParser
import Foundation
import WLedgerKit

struct Restrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restrain",
        abstract: "PRUNE: restrain the large singular values of the accumulated ΔW of every edited matrix.",
        discussion: """
            For each 2-D tensor that changed in the range (default base..HEAD), ΔW = W_b − W_a is decomposed \
            (randomized low-rank SVD with a residual check, falling back to LAPACK's full SVD); every singular \
            value σ ≥ σmax(W_a) becomes log_α(σ) − log_α(σmax(W_a)) + σmax(W_a), and the difference is committed \
            onto HEAD. The condition number κ of each matrix is reported before and after. --method sphere instead \
            projects ΔW off the base matrix's dominant input directions: ΔW·(I − β·U·Uᵀ), U covering a share η of \
            the energy of Ŵᵀ·Ŵ.

            Examples: wledger restrain; wledger restrain base..HEAD --alpha 2; wledger restrain --method sphere
            """)

    enum Method: String, ExpressibleByArgument, CaseIterable { case prune, sphere }

    @OptionGroup var global: GlobalOptions
    @Argument(help: "Range <a>..<b> (default base..HEAD; '<a>' alone means <a>..HEAD).") var range: String?
    @Option(parsing: .unconditional, help: "Base α of the logarithm: e, 2, 1.5, 1.2 or any number > 1.") var alpha: String = "e"
    @Option(help: "prune (PRUNE, the default) or sphere.") var method: Method = .prune
    @Option(parsing: .unconditional, help: "Sphere: cumulative energy η of the directions kept.") var eta: Double = 0.5
    @Option(parsing: .unconditional, help: "Sphere: strength β of the projection.") var beta: Double = 0.5
    @Option(name: .shortAndLong, help: "Message.") var message: String?
    @Option(help: "Author (default: $WLEDGER_AUTHOR or $USER).") var author: String?
    @Flag(help: "Skip the hooks in .wledger/hooks/.") var noVerify = false
    @Flag(help: "Print the result as JSON.") var json = false

    func validate() throws {
        guard alphaValue != nil else { throw ValidationError("--alpha must be 'e' or a number greater than 1") }
        guard eta > 0 && eta <= 1 else { throw ValidationError("--eta must be in (0, 1]") }
        guard beta >= 0 && beta <= 1 else { throw ValidationError("--beta must be in [0, 1]") }
    }

    var alphaValue: Double? {
        if alpha == "e" { return M_E }
        guard let v = Double(alpha), v > 1, v.isFinite else { return nil }
        return v
    }

    func run() throws {
        let message = try cleanedMessage(self.message)
        try refuseEmptyField(author, option: "--author")
        let m: RestrainMethod = method == .prune ? .prune(alpha: alphaValue!) : .sphere(eta: eta, beta: beta)
        try recordCommit(global, noVerify: noVerify, json: json) { repo in
            try repo.restrain(range: range, method: m, message: message, author: author, progress: global.progress)
        } details: { r in printRestrained(r) }
    }

    private func printRestrained(_ r: RegularizerResult) {
        for x in r.restrained ?? [] {
            let k = "κ \(x.kappaBefore.map(kappa) ?? "-") → \(x.kappaAfter.map(kappa) ?? "-")"
            if method == .sphere {
                print("   \(x.name): \(x.directions ?? 0) direction(s), \(String(format: "%.0f", 100 * (x.energy ?? 0)))% energy, \(k)")
            } else if x.restrainedFrom.isEmpty {
                print("   \(x.name): no singular value ≥ σmax(W_base) = \(sci(x.sigmaMaxBase)); unchanged")
            } else {
                let pairs = zip(x.restrainedFrom, x.restrainedTo).map { "\(sci($0))→\(sci($1))" }.joined(separator: ", ")
                print("   \(x.name): σ \(pairs) (σmax(W_base) \(sci(x.sigmaMaxBase)), \(x.svd ?? "") SVD), \(k)")
            }
        }
    }
}
