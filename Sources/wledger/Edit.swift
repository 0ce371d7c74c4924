import ArgumentParser
import Foundation
import Engine
import TensorIO
import WLedgerKit

struct Edit: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "edit",
        abstract: "Edit a fact natively (ROME or MEMIT) and commit the edit with its request.",
        discussion: """
            ROME edits one request at a time (an array of requests becomes one commit each): k* is the \
            mean key at the subject's last token over context templates generated once from the base \
            model, v* is optimized with Adam (NLL of target_new + KL on "{subject} is a" + weight decay, \
            norm clamp), and mlp.down_proj of the layer gets the rank-one update δ·(C⁻¹k*)ᵀ/(k·C⁻¹k*). \
            MEMIT edits a batch in one commit, spread over a layer range: ΔW_l = R·Kᵀ·(λC + K·Kᵀ)⁻¹. \
            C = E[kkᵀ] of the layer's keys over a text corpus (default: the Lee news corpus from the fixtures) is \
            computed once per model and layer and kept in the ledger; --no-mom2 uses the identity. \
            The work tree must be clean. Each edit prints efficacy (target_new preferred over \
            ground_truth), generalization (the same on the rephrasings) and locality (locality prompts' \
            top predictions unchanged by the edit).

            Example: wledger edit --method rome --request edit.json
            """)

    @OptionGroup var global: GlobalOptions
    @Option(help: "Editing method: rome or memit.") var method: EditMethod = .rome
    @Option(help: ArgumentHelp("Edit request in EasyEdit's JSON format (an object or an array).", valueName: "file")) var request: String
    @Option(parsing: .unconditional, help: "ROME: the layer whose mlp.down_proj is edited (default: 5/32 of the depth).") var layer: Int?
    @Option(help: ArgumentHelp("MEMIT: the layers, e.g. 3-7 or 3,4,5 (default: 4/32 to 8/32 of the depth).", valueName: "range")) var layers: String?
    @Option(parsing: .unconditional, help: "Adam steps on the value vector.") var steps: Int = 20
    @Option(parsing: .unconditional, help: "Adam learning rate.") var lr: Double = 0.5
    @Option(parsing: .unconditional, help: "Weight decay on the value vector.") var weightDecay: Double = 1e-3
    @Option(parsing: .unconditional, help: "Clamp ‖δ‖ to this multiple of the original output's norm.") var clampNormFactor: Double = 4
    @Option(parsing: .unconditional, help: "Weight of the KL term on \"{subject} is a\".") var klFactor: Double = 0.0625
    @Option(parsing: .unconditional, help: "MEMIT: weight λ of the covariance term.") var mom2UpdateWeight: Double = 15_000
    @Flag(help: "Use the identity instead of the keys' second moment C.") var noMom2 = false
    @Option(help: ArgumentHelp("Text file for the key statistics C (default: the Lee news corpus, health.tasks).", valueName: "file")) var mom2Corpus: String?
    @Option(parsing: .unconditional, help: "Tokens over which C is estimated.") var mom2Tokens: Int = 16_384
    @Option(name: .shortAndLong, help: "Message (default: method, subject, ground truth -> target).") var message: String?
    @Option(help: "Author (default: $WLEDGER_AUTHOR or $USER).") var author: String?
    @Flag(help: "Skip the hooks in .wledger/hooks/.") var noVerify = false
    @Flag(help: "Print the result as JSON.") var json = false

    func validate() throws {
        guard steps >= 0 else { throw ValidationError("--steps must not be negative") }
        guard lr > 0, weightDecay >= 0, clampNormFactor > 0, klFactor >= 0, mom2UpdateWeight >= 0,
              [lr, weightDecay, clampNormFactor, klFactor, mom2UpdateWeight].allSatisfy(\.isFinite) else {
            throw ValidationError("--lr and --clamp-norm-factor must be positive; --weight-decay, --kl-factor and --mom2-update-weight not negative; all finite")
        }
        guard mom2Tokens >= 128 else { throw ValidationError("--mom2-tokens must be at least 128") }
        // Each method's layer option, not the other's (it would be ignored).
        if method == .rome, layers != nil { throw ValidationError("--layers is for --method memit; ROME edits one layer (--layer)") }
        if method == .memit, layer != nil { throw ValidationError("--layer is for --method rome; MEMIT spreads over --layers") }
        if let layers { _ = try Edit.parseLayers(layers) }
    }

    func run() throws {
        let message = try cleanedMessage(self.message)
        try refuseEmptyField(author, option: "--author")
        let bytes: [UInt8]
        do { bytes = try readFile(request) } catch { throw ValidationError("'\(request)': cannot read the edit request") }
        var o = EditOptions()
        o.method = method
        o.layer = layer
        o.memitLayers = try layers.map(Edit.parseLayers)
        o.memitLambda = mom2UpdateWeight
        o.rome.steps = steps
        o.rome.learningRate = lr
        o.rome.weightDecay = weightDecay
        o.rome.clampNormFactor = clampNormFactor
        o.rome.klFactor = klFactor
        o.rome.mom2 = !noMom2
        o.mom2Corpus = mom2Corpus
        o.mom2Tokens = mom2Tokens
        o.message = message
        o.author = author
        let repo = try global.openRepository(forWriting: true)
        repo.verifyHooks = !noVerify
        var warned: String? = nil
        let reports: [EditReport]
        do {
            reports = try repo.edit(requestBytes: bytes, source: request, options: o, progress: global.progress) { r in
                // Once per commit (a MEMIT commit reports each of its requests).
                if warned != r.commit { warnWorkTreeMismatches(r.workTreeMismatches) }
                warned = r.commit
                if !json { Edit.printReport(r) }
            }
        } catch let e as PartialEditError {
            // With --json the commits that were made are still printed (the error goes to stderr).
            if json { try printJSON(e.committed) }
            throw e
        }
        if json { try printJSON(reports) }
    }

    static func parseLayers(_ text: String) throws -> [Int] {
        let parts = text.split(separator: "-")
        if parts.count == 2, let a = Int(parts[0]), let b = Int(parts[1]), a <= b { return Array(a...b) }
        let list = text.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !list.isEmpty, list.count == text.split(separator: ",").count else {
            throw ValidationError("--layers '\(text)': expected a range like 3-7 or a list like 3,4,5")
        }
        if let twice = list.enumerated().first(where: { i, l in list[..<i].contains(l) })?.element {
            throw ValidationError("--layers '\(text)': layer \(twice) is given twice")
        }
        return list
    }

    static func printReport(_ r: EditReport) {
        func pct(_ x: Double?) -> String { x.map { String(format: "%.0f%%", 100 * $0) } ?? "n/a" }
        print("[\(r.commit.prefix(12))] \(r.method) \(r.subject): \(r.groundTruth) -> \(r.targetNew) (layers \(r.layers.map(String.init).joined(separator: ",")), \(String(format: "%.1f", r.seconds)) s)")
        print(String(format: "   p(target) %.3f -> %.3f in %d steps; margin log p(new) - log p(old) %+.2f -> %+.2f",
                     r.targetProbabilityBefore, r.targetProbabilityAfter, max(0, r.losses.count - 1), r.marginBefore, r.marginAfter))
        print("   efficacy \(pct(r.efficacy)), generalization \(pct(r.generalization)), locality \(pct(r.locality))")
    }
}

extension EditMethod: ExpressibleByArgument {}
