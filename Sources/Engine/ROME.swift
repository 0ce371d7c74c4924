import Foundation
import LinAlg

/// Hyperparameters of ROME (Meng et al., 2022), after EasyEdit's LLaMA-7B defaults (layer 5 of
/// 32, 25 steps at lr 0.5, weight decay 1e-3, clamp 4, KL factor 0.0625, context templates
/// [[5, 10], [10, 10]]) scaled to a small model on a CPU: the layer is placed at the same depth
/// (5/32 of the layers), the step count and the number of templates are lower, and the
/// optimization stops early once the loss is under 0.05 as in the original.
public struct ROMEOptions: Sendable, Codable, Equatable {
    /// The layer whose `mlp.down_proj` is edited.
    public var layer: Int
    /// Adam steps on the value vector (at most).
    public var steps = 20
    public var learningRate = 0.5
    /// Weight decay on the vector: `weightDecay · ‖δ‖ / ‖v₀‖²`.
    public var weightDecay = 1e-3
    /// ‖δ‖ is clamped to `clampNormFactor · ‖v₀‖` after each step.
    public var clampNormFactor = 4.0
    /// Weight of KL(original ‖ edited) on the "{subject} is a" prompt.
    public var klFactor = 0.0625
    /// The optimization stops once the loss is below this.
    public var stopLoss = 0.05
    /// Context templates: `[length, count]` pairs of generated prefixes (plus the bare prompt).
    public var templates: [[Int]] = [[5, 3], [10, 3]]
    /// Use the keys' second moment C (`u = C⁻¹k*`); false uses the identity.
    public var mom2 = true

    /// The default layer for a model with `layerCount` layers: EasyEdit's layer 5 of 32 at the
    /// same relative depth.
    public static func defaultLayer(layerCount: Int) -> Int {
        max(0, min(layerCount - 1, Int((5.0 * Double(layerCount) / 32.0).rounded())))
    }

    public init(layer: Int) { self.layer = layer }
}

/// The outcome of one ROME edit: the rank-one ΔW = δ·uᵀ / (k·u) for `mlp.down_proj` of the layer
/// (u = C⁻¹k*), and the trace of the optimization.
public struct ROMEResult: Sendable {
    /// k*: the mean key (input of `down_proj`) at the subject's last token over the templates.
    public var key: [Double]
    /// δ: what the MLP output at the subject's last token must gain (hidden size).
    public var delta: [Double]
    /// ‖v₀‖, the norm of the MLP output before the edit there.
    public var outputNorm: Double
    /// ΔW, (hidden, intermediate) like the weight.
    public var update: Matrix
    /// Loss (NLL + KL + weight decay) before each step, and after the last.
    public var losses: [Double]
    /// Mean probability of the target tokens over the rewriting prompts, before and after the
    /// optimization (with δ added in the forward pass).
    public var targetProbabilityBefore: Double
    public var targetProbabilityAfter: Double
}

/// Rank-One Model Editing on the CPU engine.
///
/// 1. k* = mean over the context templates of the key at the subject's last token.
/// 2. δ is optimized with Adam so that adding it to layer L's MLP output at the subject's last
///    token (in every rewriting prompt and in the KL prompt) makes the target likely:
///    mean over prompts of the per-token NLL of the target, plus `klFactor` · KL(original ‖
///    edited) of the next-token distribution after the subject in "{subject} is a", plus
///    `weightDecay · ‖δ‖ / ‖v₀‖²`; ‖δ‖ is clamped to `clampNormFactor · ‖v₀‖`.
/// 3. ΔW = δ·(C⁻¹k*)ᵀ / (k·C⁻¹k*), with k the key of the bare prompt, so ΔW·k = δ: the edited
///    MLP returns v₀ + δ on the prompt itself.
public enum ROME {
    /// Edits one fact. The model is not changed; the caller applies `update`.
    /// - Parameters:
    ///   - secondMoment: C = E[k kᵀ] of the layer's keys (intermediate²), or nil for the identity.
    /// - Throws: `ModelError.invalidInput` for a subject not in its prompt or overlong prompts;
    ///   `LinAlgError` when C is singular.
    public static func edit(model: Model, prompts: EditPrompts, target: EditTarget, templates: [String],
                            secondMoment: Matrix?, options o: ROMEOptions,
                            progress: ((Int, Double) -> Void)? = nil) throws -> ROMEResult {
        let L = o.layer
        precondition(L >= 0 && L < model.config.layerCount, "layer \(L) does not exist")
        let problem = try RewriteProblem(prompts: prompts, target: target, templates: templates)
        let v = try problem.optimize(model: model, point: .mlpOutput(layer: L), reference: .mlpOutput, options: o, progress: progress)
        let I = model.config.intermediateSize, H = model.config.hiddenSize
        let keys = v.base.mlpKeys[L]!
        var kStar = [Double](repeating: 0, count: I)
        for p in problem.sites.prefix(problem.rewriting) {
            let k = RewriteProblem.row(keys, p, width: I)
            for j in 0..<I { kStar[j] += k[j] / Double(problem.rewriting) }
        }
        let kPrompt = RewriteProblem.row(keys, problem.sites[0], width: I)

        // u = C⁻¹k*, ΔW = δ·uᵀ / (k·u).
        var u = kStar
        if let C = secondMoment {
            precondition(C.rows == I && C.cols == I, "second moment is \(C.rows)×\(C.cols), expected \(I)×\(I)")
            u = try ROME.solve(C, Matrix(rows: I, cols: 1, data: kStar)).data
        }
        let ku = zip(kPrompt, u).reduce(0) { $0 + $1.0 * $1.1 }
        guard ku.isFinite, ku != 0 else {
            throw ModelError.invalidInput(path: "request", reason: "the subject's key is orthogonal to C⁻¹k* (k·u = \(ku)); no rank-one update exists")
        }
        var update = Matrix(zeros: H, I)
        for i in 0..<H {
            let a = v.delta[i] / ku
            for j in 0..<I { update.data[i * I + j] = a * u[j] }
        }
        return ROMEResult(key: kStar, delta: v.delta, outputNorm: v.referenceNorm, update: update, losses: v.losses,
                          targetProbabilityBefore: v.probabilityBefore, targetProbabilityAfter: v.probabilityAfter)
    }

    /// Solves A·X = B for a symmetric positive semi-definite A. When A is singular to working
    /// precision (C estimated from fewer tokens than key dimensions, or keys that never vary), a
    /// ridge ε·tr(A)/n·I is added with ε = 1e-8, 1e-7, … until the Cholesky factorization works.
    public static func solve(_ a: Matrix, _ b: Matrix) throws -> Matrix {
        do {
            return try BLAS.solvePositiveDefinite(a, b)
        } catch {
            let n = a.rows
            let mean = (0..<n).reduce(0.0) { $0 + a[$1, $1] } / Double(max(n, 1))
            var eps = 1e-8
            while true {
                var r = a
                for i in 0..<n { r[i, i] += eps * max(mean, 1e-30) }
                if let x = try? BLAS.solvePositiveDefinite(r, b) { return x }
                eps *= 10
                if eps > 1 { throw error }
            }
        }
    }

    /// C = E[k kᵀ] over every token of `sequences` for each of `layers`: the second moment of the
    /// keys (inputs of `mlp.down_proj`), ROME's and MEMIT's mom2 statistic, accumulated in double
    /// from single-precision products of each batch. One forward pass, stopped after the last
    /// layer, serves every layer.
    /// - Parameter batch: sequences per forward pass.
    public static func secondMoments(model: Model, sequences: [[Int]], layers: [Int], batch: Int = 8,
                                     progress: ((Int) -> Void)? = nil) throws -> (moments: [Int: Matrix], tokens: Int) {
        let I = model.config.intermediateSize
        var acc: [Int: [Double]] = Dictionary(uniqueKeysWithValues: layers.map { ($0, [Double](repeating: 0, count: I * I)) })
        var count = 0
        var start = 0
        var g = [Float](repeating: 0, count: I * I)
        while start < sequences.count {
            let chunk = Array(sequences[start..<min(sequences.count, start + batch)])
            let keys = try model.mlpKeys(chunk, layers: layers)
            let rows = chunk.reduce(0) { $0 + $1.count }
            for l in layers {
                let k = keys[l]!.flatMap { $0 }
                k.withUnsafeBufferPointer { kp in
                    g.withUnsafeMutableBufferPointer { gp in
                        BLAS.sgemm(transA: true, transB: false, m: I, n: I, k: rows, alpha: 1, a: kp.baseAddress!, lda: I,
                                   b: kp.baseAddress!, ldb: I, beta: 0, c: gp.baseAddress!, ldc: I)
                    }
                }
                acc[l]!.withUnsafeMutableBufferPointer { a in for i in 0..<(I * I) { a[i] += Double(g[i]) } }
            }
            count += rows
            start += chunk.count
            progress?(start)
        }
        var out: [Int: Matrix] = [:]
        for (l, var a) in acc {
            for i in 0..<(I * I) { a[i] /= Double(max(count, 1)) }
            // Exactly symmetric (the single-precision products may differ in the last bit).
            for i in 0..<I { for j in 0..<i { let s = (a[i * I + j] + a[j * I + i]) / 2; a[i * I + j] = s; a[j * I + i] = s } }
            out[l] = Matrix(rows: I, cols: I, data: a)
        }
        return (out, count)
    }
}

/// The prompts of one request for value optimization: the rewriting prompts (each template
/// filled with the prompt, followed by the target's tokens but the last) and the KL prompt
/// "{subject} is a" last, with the subject's last token of each and the target tokens.
struct RewriteProblem {
    var sequences: [[Int]] = []
    /// The subject's last token in every sequence (the KL prompt's last).
    var sites: [TokenPosition] = []
    var targets: [TargetToken] = []
    /// How many sequences are rewriting prompts (the first is the bare prompt).
    var rewriting = 0
    var targetCount = 0

    init(prompts: EditPrompts, target: EditTarget, templates: [String]) throws {
        let ids = prompts.targetTokens(target.targetNew)
        guard !ids.isEmpty else { throw ModelError.invalidInput(path: "request", reason: "empty target_new") }
        targetCount = ids.count
        for (s, t) in templates.enumerated() {
            let loc = try prompts.locate(template: t, prompt: target.prompt, subject: target.subject)
            sequences.append(loc.tokens + ids.dropLast())
            sites.append(TokenPosition(sequence: s, position: loc.subjectLast))
            for (j, id) in ids.enumerated() {
                targets.append(TargetToken(sequence: s, position: loc.tokens.count - 1 + j, token: id, weight: 1 / Double(ids.count)))
            }
        }
        rewriting = sequences.count
        let kl = try prompts.locate(template: "{} is a", prompt: target.subject, subject: target.subject)
        sequences.append(kl.tokens)
        sites.append(TokenPosition(sequence: rewriting, position: kl.subjectLast))
    }

    /// Row `p.position` of a per-sequence (tokens, width) capture, in double.
    static func row(_ rows: [[Float]], _ p: TokenPosition, width: Int) -> [Double] {
        let r = rows[p.sequence]
        return (0..<width).map { Double(r[p.position * width + $0]) }
    }

    /// What the norm clamp and the weight decay are relative to: the MLP output (ROME) or the
    /// residual stream after the layer (MEMIT's z), at the bare prompt's subject token.
    enum Reference { case mlpOutput, stream }

    struct Outcome {
        var delta: [Double]
        /// The reference vector (before any δ) and its norm.
        var reference: [Double]
        var referenceNorm: Double
        var losses: [Double]
        var probabilityBefore: Double
        var probabilityAfter: Double
        /// The unedited trace (keys and MLP outputs of the point's layer, the stream there).
        var base: ModelTrace
    }

    /// Optimizes δ added at `point` on every subject token: Adam on mean target NLL +
    /// klFactor · KL + weightDecay · ‖δ‖/‖v₀‖², with ‖δ‖ clamped to clampNormFactor · ‖v₀‖ and an
    /// early stop under `stopLoss`.
    func optimize(model: Model, point: StreamPoint, reference: Reference, options o: ROMEOptions,
                  progress: ((Int, Double) -> Void)?) throws -> Outcome {
        let H = model.config.hiddenSize
        guard case let .mlpOutput(L) = point else { preconditionFailure("values are optimized at an MLP output") }
        let klSite = sites[rewriting]
        // Every step adds δ at the subject's last token (one site per sequence), which changes
        // nothing before it: the steps resume from the unedited trace at layer L + 1 with the
        // tokens before the sites as fixed context (the same loss and gradient up to rounding).
        var starts = [Int](repeating: Int.max, count: sequences.count)
        for p in sites { starts[p.sequence] = min(starts[p.sequence], p.position) }
        let resumePoint = TraceResumePoint(layer: L + 1, starts: starts)
        let base = try model.trace(sequences, captureMLP: [L], captureStream: [point], logProbsAt: [klSite], keepContext: resumePoint)
        let v0 = Self.row(reference == .mlpOutput ? base.mlpOutputs[L]! : base.streamValues[point]!, sites[0], width: H)
        let v0Norm = sqrt(v0.reduce(0) { $0 + $1 * $1 })
        let loss = EditLoss(targets: targets, klTerms: [KLTerm(sequence: rewriting, position: klSite.position, referenceLogProbs: base.logProbs[0])],
                            klFactor: o.klFactor)
        var delta = [Double](repeating: 0, count: H)
        var m = [Double](repeating: 0, count: H), v = [Double](repeating: 0, count: H)
        let beta1 = 0.9, beta2 = 0.999, eps = 1e-8
        var losses: [Double] = []
        var probBefore = 0.0, probAfter = 0.0
        func meanTargetProbability(_ t: ModelTrace) -> Double {
            // Per prompt: exp of the mean log-prob of its target tokens; then the mean.
            var total = 0.0
            let n = targetCount
            for s in 0..<rewriting {
                total += exp(t.targetLogProbs[(s * n)..<((s + 1) * n)].reduce(0, +) / Double(n))
            }
            return total / Double(rewriting)
        }
        for step in 0...o.steps {
            let iv = Intervention(point: point, vector: delta.map { Float($0) }, sites: sites)
            let t = try model.trace(sequences, interventions: [iv], loss: loss, resuming: base.context)
            let norm = sqrt(delta.reduce(0) { $0 + $1 * $1 })
            let decay = o.weightDecay * norm / (v0Norm * v0Norm)
            let total = t.loss + decay
            losses.append(total)
            progress?(step, total)
            if step == 0 { probBefore = meanTargetProbability(t) }
            probAfter = meanTargetProbability(t)
            if total < o.stopLoss || step == o.steps { break }
            let g = t.interventionGradients[0]
            let step1 = Double(step + 1)
            for i in 0..<H {
                var gi = Double(g[i])
                if norm > 0 { gi += o.weightDecay * delta[i] / norm / (v0Norm * v0Norm) }
                m[i] = beta1 * m[i] + (1 - beta1) * gi
                v[i] = beta2 * v[i] + (1 - beta2) * gi * gi
                let mHat = m[i] / (1 - pow(beta1, step1)), vHat = v[i] / (1 - pow(beta2, step1))
                delta[i] -= o.learningRate * mHat / (vHat.squareRoot() + eps)
            }
            let maxNorm = o.clampNormFactor * v0Norm
            let newNorm = sqrt(delta.reduce(0) { $0 + $1 * $1 })
            if newNorm > maxNorm { for i in 0..<H { delta[i] *= maxNorm / newNorm } }
        }
        return Outcome(delta: delta, reference: v0, referenceNorm: v0Norm, losses: losses, probabilityBefore: probBefore,
                       probabilityAfter: probAfter, base: base)
    }
}
