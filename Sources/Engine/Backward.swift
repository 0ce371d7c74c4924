import CShims
import LinAlg
import TensorIO
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension Model {
    /// Runs `sequences` (from scratch, or from the context an earlier trace kept: see
    /// `keepContext`/`resuming`) with `interventions` added to the residual
    /// stream, evaluates `loss` on the next-token distributions, and back-propagates it to the
    /// intervention vectors and to the residual stream at `points`.
    ///
    /// All sequences go through each weight matrix together (one `sgemm` over their tokens);
    /// attention is causal within each sequence. Everything is computed in F32 on the stored
    /// weights (F16/BF16 matrices converted a tile of rows at a time, as in `forward`), always
    /// with the BLAS kernels. With no interventions the log-probabilities equal those of
    /// `forward` up to rounding.
    ///
    /// The backward pass is exact for activations: from the logits through the output
    /// projection (tied or not), the final RMSNorm and every layer after the earliest point
    /// (SwiGLU MLP, RMSNorms, causal grouped-query attention with softmax and the rotary
    /// embedding) down to the residual stream. Weight gradients are not computed; for a linear
    /// layer they follow from these results, e.g. ∂loss/∂W_down of layer l is
    /// Σ_tokens streamGradients[.mlpOutput(l)]ᵀ · mlpKeys[l] (hidden × intermediate).
    ///
    /// Activations are kept only for the layers the backward pass goes through, about
    /// (2·hidden + 2·heads·head_dim + 2·kv width + 2·intermediate) floats per token and layer
    /// plus heads · T · (start + T) per sequence of T traced tokens after `start` context tokens and
    /// per layer (SmolLM2-135M: 23 KB per token and layer).
    /// Every buffer belongs to the call, so several threads may trace with one model at once.
    /// - Parameters:
    ///   - sequences: token ids, each sequence non-empty; positions start at 0 in each.
    ///   - interventions: vectors added at stream points (applied in the forward pass whether or
    ///     not there is a loss).
    ///   - loss: the objective; without one only the forward quantities are computed.
    ///   - points: stream points whose full gradient (every token of every sequence) is wanted;
    ///     requires `loss`.
    ///   - layers: layers whose MLP keys (input of `down_proj`) and MLP outputs are returned.
    ///   - streamPoints: points whose residual-stream values are returned.
    ///   - positions: tokens whose next-token log-probabilities are returned in full.
    ///   - keepContext: also return what a later trace needs to resume at this point
    ///     (`ModelTrace.context`).
    ///   - resuming: the context of an earlier trace of the same sequences: this trace starts at
    ///     its layer and computes only the tokens from its starts on, the others' keys and values
    ///     taken from it. Interventions, gradient points, captured points and layers must lie at
    ///     or after the context's layer, and every token they or the loss name at or after its
    ///     sequence's start; per-sequence results then hold only the tokens from the start on.
    ///     The context carries the earlier trace's effects on the tokens before each start:
    ///     interventions it made there before the resume layer stay applied, and it must have made
    ///     none there at or after that layer. Then the result equals the full trace up to F32
    ///     rounding.
    /// - Returns: the loss, the gradients of every intervention vector and requested point, the
    ///   requested activations and log-probabilities.
    /// - Throws: `ModelError.invalidInput` for an empty sequence, an id (in a sequence or a
    ///   target) outside the vocabulary, or a sequence longer than `max_position_embeddings`.
    /// - Precondition: every position lies within its sequence, every vector has `hiddenSize`
    ///   entries, every reference `vocabSize`, weights are non-negative, points and layers exist,
    ///   `points` is empty without a loss, and the resume rules above hold; violations are
    ///   programmer errors and trap.
    public func trace(_ sequences: [[Int]], interventions: [Intervention] = [], loss: EditLoss? = nil,
                      gradientsAt points: [StreamPoint] = [], captureMLP layers: [Int] = [],
                      captureStream streamPoints: [StreamPoint] = [],
                      logProbsAt positions: [TokenPosition] = [], keepContext: TraceResumePoint? = nil,
                      resuming: TraceContext? = nil) throws -> ModelTrace {
        try trace(sequences, interventions: interventions, loss: loss, gradientsAt: points, captureMLP: layers,
                  captureStream: streamPoints, logProbsAt: positions, keepContext: keepContext, resuming: resuming, tileElements: 1 << 18)
    }

    /// `trace` with the F16/BF16 conversion tile as a parameter (tests use small tiles).
    func trace(_ sequences: [[Int]], interventions: [Intervention], loss: EditLoss?, gradientsAt points: [StreamPoint],
               captureMLP layers: [Int], captureStream streamPoints: [StreamPoint], logProbsAt positions: [TokenPosition],
               keepContext: TraceResumePoint? = nil, resuming: TraceContext? = nil, tileElements: Int) throws -> ModelTrace {
        let c = config
        let C = c.hiddenSize, V = c.vocabSize
        try validate(sequences)
        if let keep = keepContext {
            precondition(keep.layer >= 0 && keep.layer <= c.layerCount, "resume layer \(keep.layer) outside 0...\(c.layerCount)")
            precondition(keep.starts.count == sequences.count && zip(keep.starts, sequences).allSatisfy { $0 >= 0 && $0 < $1.count },
                         "one start per sequence, each before its end")
            precondition(resuming == nil, "a resumed trace cannot keep a context")
        }
        if let ctx = resuming {
            precondition(ctx.sequences == sequences, "resuming the context of other sequences")
            let first = 2 * ctx.point.layer
            precondition((interventions.map(\.point) + points + streamPoints).allSatisfy { $0.index >= first },
                         "a resumed trace starts at layer \(ctx.point.layer)")
            precondition(layers.allSatisfy { $0 >= ctx.point.layer }, "a resumed trace starts at layer \(ctx.point.layer)")
        }
        let layout = TraceLayout(sequences: sequences, heads: c.headCount, starts: resuming?.point.starts)
        func checkPoint(_ p: StreamPoint) {
            precondition(p.layer < c.layerCount, "\(p) does not exist in a model of \(c.layerCount) layers")
            precondition(p == .embeddings || p.layer >= 0, "\(p): negative layer")
        }
        for iv in interventions {
            checkPoint(iv.point)
            precondition(iv.vector.count == C, "intervention vector has \(iv.vector.count) entries, expected \(C)")
            for site in iv.sites { _ = layout.row(site) }
        }
        for p in points + streamPoints { checkPoint(p) }
        for l in layers { precondition(l >= 0 && l < c.layerCount, "layer \(l) does not exist") }
        for p in positions { _ = layout.row(p) }
        precondition(loss != nil || points.isEmpty, "gradients need a loss")
        if let loss {
            for t in loss.targets {
                _ = layout.row(TokenPosition(sequence: t.sequence, position: t.position))
                precondition(t.weight >= 0, "negative target weight")
                if t.token < 0 || t.token >= V {
                    throw ModelError.invalidInput(path: path, reason: "target token id \(t.token) is outside the vocabulary of \(V)")
                }
            }
            for k in loss.klTerms {
                _ = layout.row(TokenPosition(sequence: k.sequence, position: k.position))
                precondition(k.weight >= 0, "negative KL weight")
                precondition(k.referenceLogProbs.count == V, "KL reference has \(k.referenceLogProbs.count) entries, expected \(V)")
            }
        }

        let backward = loss != nil && !(interventions.isEmpty && points.isEmpty)
        let firstPoint = (interventions.map(\.point.index) + points.map(\.index)).min() ?? Int.max
        let run = TraceRun(model: self, sequences: sequences, layout: layout, interventions: interventions,
                           firstPoint: backward ? firstPoint : Int.max, captureLayers: Set(layers),
                           capturePoints: Set(streamPoints), tileElements: tileElements, keep: keepContext, resume: resuming)
        var result = ModelTrace()
        run.forward(into: &result)

        // Logits of every row a loss term or the caller needs.
        var rowOf: [Int: Int] = [:]
        var logitRows: [Int] = []
        func logitRow(_ s: Int, _ p: Int) -> Int {
            let r = layout.row(TokenPosition(sequence: s, position: p))
            if let i = rowOf[r] { return i }
            rowOf[r] = logitRows.count
            logitRows.append(r)
            return logitRows.count - 1
        }
        let positionRows = positions.map { logitRow($0.sequence, $0.position) }
        let targetRows = loss?.targets.map { logitRow($0.sequence, $0.position) } ?? []
        let klRows = loss?.klTerms.map { logitRow($0.sequence, $0.position) } ?? []
        let R = logitRows.count
        let logits = run.logits(rows: logitRows)
        // log Σ exp per row, in double (as `Scorer.logSoftmax`).
        var lse = [Double](repeating: 0, count: R)
        for r in 0..<R {
            let z = logits.p + r * V
            var m = -Float.infinity
            for v in 0..<V { m = max(m, z[v]) }
            var sum: Double = 0
            for v in 0..<V { sum += Double(expf(z[v] - m)) }
            lse[r] = Double(m) + log(sum)
        }
        result.logProbs = positionRows.map { r in
            let z = logits.p + r * V
            return (0..<V).map { Float(Double(z[$0]) - lse[r]) }
        }
        guard let loss else { return result }

        // The loss: weighted means of −log p(token) and of KL(ref ‖ p).
        let targetWeight = loss.targets.reduce(0) { $0 + $1.weight }
        let klWeight = loss.klTerms.reduce(0) { $0 + $1.weight }
        var nll: Double = 0
        for (i, t) in loss.targets.enumerated() {
            let r = targetRows[i]
            let lp = Double(logits.p[r * V + t.token]) - lse[r]
            result.targetLogProbs.append(lp)
            if targetWeight > 0 { nll -= t.weight / targetWeight * lp }
        }
        // log Σ exp of each reference, which may come unnormalized.
        let referenceLSE = loss.klTerms.map { term in
            let m = term.referenceLogProbs.max() ?? 0
            var sum: Double = 0
            for x in term.referenceLogProbs { sum += exp(Double(x - m)) }
            return Double(m) + log(sum)
        }
        var kl: Double = 0
        if klWeight > 0 {
            for (j, term) in loss.klTerms.enumerated() {
                let r = klRows[j]
                var divergence: Double = 0
                for v in 0..<V {
                    let lq = Double(term.referenceLogProbs[v]) - referenceLSE[j]
                    let q = exp(lq)
                    if q > 0 { divergence += q * (lq - (Double(logits.p[r * V + v]) - lse[r])) }
                }
                kl += term.weight / klWeight * divergence
            }
        }
        result.nll = nll
        result.kl = kl
        result.loss = nll + loss.klFactor * kl
        guard backward else { return result }

        // ∂loss/∂logits, in double per row: −log p(token) contributes w·(p − e_token) and
        // KL(ref ‖ p) contributes w·(p − p_ref). Only rows with a term of positive weight are
        // back-propagated.
        var targetsAt = [[Int]](repeating: [], count: R), klAt = [[Int]](repeating: [], count: R)
        var coefficient = [Double](repeating: 0, count: R)
        if targetWeight > 0 {
            for (i, t) in loss.targets.enumerated() where t.weight > 0 {
                targetsAt[targetRows[i]].append(i)
                coefficient[targetRows[i]] += t.weight / targetWeight
            }
        }
        if klWeight > 0 && loss.klFactor != 0 {
            for (j, term) in loss.klTerms.enumerated() where term.weight > 0 {
                klAt[klRows[j]].append(j)
                coefficient[klRows[j]] += loss.klFactor * term.weight / klWeight
            }
        }
        let active = (0..<R).filter { !targetsAt[$0].isEmpty || !klAt[$0].isEmpty }
        let dLogits = TraceBuffer(active.count * V)
        var row = [Double](repeating: 0, count: V)
        for (a, r) in active.enumerated() {
            let z = logits.p + r * V
            for v in 0..<V { row[v] = coefficient[r] * exp(Double(z[v]) - lse[r]) }
            for i in targetsAt[r] { row[loss.targets[i].token] -= loss.targets[i].weight / targetWeight }
            for j in klAt[r] {
                let term = loss.klTerms[j], w = loss.klFactor * term.weight / klWeight
                for v in 0..<V { row[v] -= w * exp(Double(term.referenceLogProbs[v]) - referenceLSE[j]) }
            }
            let dst = dLogits.p + a * V
            for v in 0..<V { dst[v] = Float(row[v]) }
        }
        run.backward(dLogits: dLogits, rows: active.map { logitRows[$0] }, points: points, into: &result)
        return result
    }
}

extension Model {
    /// Checks token sequences before a traced pass: none empty, ids inside the vocabulary, no
    /// more positions than `max_position_embeddings`.
    /// - Throws: `ModelError.invalidInput` naming the sequence.
    func validate(_ sequences: [[Int]]) throws {
        let c = config
        for (s, seq) in sequences.enumerated() {
            if seq.isEmpty { throw ModelError.invalidInput(path: path, reason: "sequence \(s) has no tokens") }
            if let bad = seq.first(where: { $0 < 0 || $0 >= c.vocabSize }) {
                throw ModelError.invalidInput(path: path, reason: "token id \(bad) in sequence \(s) is outside the vocabulary of \(c.vocabSize)")
            }
            if seq.count > c.maxPositionEmbeddings {
                throw ModelError.invalidInput(path: path, reason: "sequence \(s) has \(seq.count) positions, more than max_position_embeddings \(c.maxPositionEmbeddings)")
            }
        }
    }

    /// The keys (inputs of `mlp.down_proj`) of `layers` at every token of `sequences`, per layer
    /// and sequence (tokens, intermediate): a forward pass that stops after the last of the
    /// layers and computes no logits. Equal to `trace(sequences, captureMLP: layers).mlpKeys`.
    /// - Throws: `ModelError.invalidInput` as `trace` does.
    public func mlpKeys(_ sequences: [[Int]], layers: [Int]) throws -> [Int: [[Float]]] {
        precondition(layers.allSatisfy { $0 >= 0 && $0 < config.layerCount }, "layers \(layers) do not all exist")
        guard let last = layers.max() else { return [:] }
        try validate(sequences)
        let run = TraceRun(model: self, sequences: sequences, layout: TraceLayout(sequences: sequences, heads: config.headCount),
                           interventions: [], firstPoint: Int.max, captureLayers: Set(layers), capturePoints: [], tileElements: 1 << 18)
        run.lastLayer = last
        var result = ModelTrace()
        run.forward(into: &result)
        return result.mlpKeys
    }
}

/// A zero-filled `Float` buffer freed on deinit.
final class TraceBuffer {
    let p: UnsafeMutablePointer<Float>
    let count: Int

    init(_ count: Int) {
        self.count = count
        p = .allocate(capacity: max(count, 1))
        p.initialize(repeating: 0, count: max(count, 1))
    }

    deinit { p.deallocate() }

    func zero() { p.update(repeating: 0, count: count) }

    /// Rows `rows` of a (·, width) matrix as an array.
    func rows(_ rows: Range<Int>, width: Int) -> [Float] {
        Array(UnsafeBufferPointer(start: p + rows.lowerBound * width, count: rows.count * width))
    }
}

/// Where each sequence's tokens sit among the rows of the concatenated batch. A resumed trace
/// has rows only for the tokens from each sequence's start on; the earlier ones are context.
struct TraceLayout {
    /// Rows of each sequence (its tokens from its start on).
    let lengths: [Int]
    /// Position of each sequence's first row (0 unless resumed).
    let starts: [Int]
    /// First row of each sequence.
    let offsets: [Int]
    /// First context row of each sequence (in the context's (Σ starts, ·) buffers).
    let contextOffsets: [Int]
    /// Offset of each sequence's attention probabilities (heads × rows × (start + rows) floats).
    let probOffsets: [Int]
    let rows: Int
    let contextRows: Int
    let probCount: Int
    /// The longest sequence, context included.
    let longest: Int

    init(sequences: [[Int]], heads: Int, starts: [Int]? = nil) {
        let starts = starts ?? sequences.map { _ in 0 }
        self.starts = starts
        lengths = zip(sequences, starts).map { $0.count - $1 }
        var offsets: [Int] = [], probOffsets: [Int] = [], contextOffsets: [Int] = []
        var n = 0, pn = 0, cn = 0
        for (t, s0) in zip(lengths, starts) {
            offsets.append(n); probOffsets.append(pn); contextOffsets.append(cn)
            n += t; pn += heads * t * (s0 + t); cn += s0
        }
        self.offsets = offsets; self.probOffsets = probOffsets; self.contextOffsets = contextOffsets
        rows = n; probCount = pn; contextRows = cn
        longest = sequences.map(\.count).max() ?? 0
    }

    /// The row of a token. Precondition: it exists and is not context.
    func row(_ p: TokenPosition) -> Int {
        precondition(p.sequence >= 0 && p.sequence < lengths.count, "sequence \(p.sequence) does not exist")
        let s0 = starts[p.sequence]
        precondition(p.position >= 0 && p.position < s0 + lengths[p.sequence],
                     "position \(p.position) is outside sequence \(p.sequence) of \(s0 + lengths[p.sequence]) tokens")
        precondition(p.position >= s0, "position \(p.position) of sequence \(p.sequence) is before the resumed part (from \(s0))")
        return offsets[p.sequence] + p.position - s0
    }
}

/// The activations of one layer kept for the backward pass, every row of the batch: the residual
/// stream entering the layer and after its attention, q and k after the rotary embedding, v, the
/// attention probabilities (per sequence and head, (T, start + T): the traced tokens over the
/// context and themselves), the attention output before `o_proj`,
/// and the MLP's gate (before the SiLU) and up projections.
final class LayerTape {
    let xIn, xMid, q, k, v, attn, probs, gate, up: TraceBuffer

    init(config c: ModelConfig, layout: TraceLayout) {
        let N = layout.rows
        xIn = TraceBuffer(N * c.hiddenSize); xMid = TraceBuffer(N * c.hiddenSize)
        q = TraceBuffer(N * c.queryWidth); k = TraceBuffer(N * c.kvWidth); v = TraceBuffer(N * c.kvWidth)
        attn = TraceBuffer(N * c.queryWidth); probs = TraceBuffer(layout.probCount)
        gate = TraceBuffer(N * c.intermediateSize); up = TraceBuffer(N * c.intermediateSize)
    }
}

/// One traced pass: the forward over the batch, keeping what the backward pass needs, and the
/// backward pass itself.
final class TraceRun {
    let model: Model
    let config: ModelConfig
    let sequences: [[Int]]
    let layout: TraceLayout
    let interventions: [Intervention]
    /// The earliest stream point the backward pass reaches (`Int.max`: no backward pass).
    let firstPoint: Int
    /// The first layer whose activations are recorded (`layerCount`: none).
    let firstLayer: Int
    let captureLayers: Set<Int>
    let capturePoints: Set<StreamPoint>
    /// The forward pass stops after this layer (`mlpKeys`); the last layer otherwise.
    var lastLayer: Int
    /// The residual stream (N, C).
    let x: TraceBuffer
    var tapes: [LayerTape?]
    let tile: TraceBuffer
    let tileElements: Int
    let ropeCos, ropeSin: TraceBuffer
    /// Where to keep a context for later traces, and what has been kept so far.
    let keep: TraceResumePoint?
    var keptKeys: [[Float]] = [], keptValues: [[Float]] = [], keptStream: [Float] = []
    /// The context this run resumes (its rows are only the tokens from the starts on).
    let resume: TraceContext?
    /// Keys and values of one sequence with its context rows (longest × kv width each).
    let sequenceKeys, sequenceValues: TraceBuffer

    init(model: Model, sequences: [[Int]], layout: TraceLayout, interventions: [Intervention], firstPoint: Int,
         captureLayers: Set<Int>, capturePoints: Set<StreamPoint>, tileElements: Int, keep: TraceResumePoint? = nil,
         resume: TraceContext? = nil) {
        self.model = model
        self.keep = keep
        self.resume = resume
        let contextual = resume != nil ? layout.longest * model.config.kvWidth : 0
        sequenceKeys = TraceBuffer(contextual)
        sequenceValues = TraceBuffer(contextual)
        config = model.config
        self.sequences = sequences
        self.layout = layout
        self.interventions = interventions
        self.firstPoint = firstPoint
        firstLayer = min(firstPoint / 2, model.config.layerCount)
        self.captureLayers = captureLayers
        self.capturePoints = capturePoints
        lastLayer = model.config.layerCount - 1
        x = TraceBuffer(layout.rows * config.hiddenSize)
        tapes = Array(repeating: nil, count: config.layerCount)
        // At least one row of the widest matrix (the output projection has hidden columns).
        self.tileElements = max(tileElements, config.hiddenSize, config.intermediateSize, config.queryWidth)
        tile = TraceBuffer(self.tileElements)
        // cos and sin of the rotary angles for positions 0..<longest, computed in double.
        let half = config.headDim / 2
        ropeCos = TraceBuffer(layout.longest * half)
        ropeSin = TraceBuffer(layout.longest * half)
        for pos in 0..<layout.longest {
            for j in 0..<half {
                let freq = pow(config.ropeTheta, -Double(2 * j) / Double(config.headDim))
                let angle = Double(pos) / config.ropeLinearFactor * freq
                ropeCos.p[pos * half + j] = Float(cos(angle))
                ropeSin.p[pos * half + j] = Float(sin(angle))
            }
        }
    }

    /// Adds the intervention vectors at stream point `index` to the residual stream, then copies
    /// the stream into `result` if the point is to be captured.
    func intervene(at index: Int, into result: inout ModelTrace) {
        let C = config.hiddenSize
        defer {
            for p in capturePoints where p.index == index { result.streamValues[p] = perSequence(x, width: C) }
        }
        if let keep, index == 2 * keep.layer {
            for (s, offset) in layout.offsets.enumerated() {
                let rows = (offset + keep.starts[s])..<(offset + layout.lengths[s])
                keptStream += x.rows(rows, width: C)
            }
        }
        for iv in interventions where iv.point.index == index {
            iv.vector.withUnsafeBufferPointer { v in
                for site in iv.sites {
                    let row = x.p + layout.row(site) * C
                    for i in 0..<C { row[i] += v[i] }
                }
            }
        }
    }

    // MARK: - Forward

    func forward(into result: inout ModelTrace) {
        let c = config
        let N = layout.rows, C = c.hiddenSize, I = c.intermediateSize
        let Q = c.queryWidth, KW = c.kvWidth
        let start = resume?.point.layer ?? 0
        if let resume {
            precondition(resume.stream.count == N * C, "context stream does not match the sequences")
            resume.stream.withUnsafeBufferPointer { x.p.update(from: $0.baseAddress!, count: N * C) }
        } else {
            for (s, offset) in layout.offsets.enumerated() {
                for t in 0..<layout.lengths[s] {
                    let id = sequences[s][t]
                    model.embedding.decodeRows(id..<(id + 1), into: x.p + (offset + t) * C)
                }
            }
        }
        intervene(at: 2 * start, into: &result)
        let h = TraceBuffer(N * C), act = TraceBuffer(N * I)
        // Scratch for the layers that are not recorded.
        let sq = TraceBuffer(firstLayer > 0 ? N * Q : 0), sk = TraceBuffer(firstLayer > 0 ? N * KW : 0)
        let sv = TraceBuffer(firstLayer > 0 ? N * KW : 0), sa = TraceBuffer(firstLayer > 0 ? N * Q : 0)
        let sg = TraceBuffer(firstLayer > 0 ? N * I : 0), su = TraceBuffer(firstLayer > 0 ? N * I : 0)
        let scores = TraceBuffer(layout.longest * layout.longest)
        let mlpOut = TraceBuffer(captureLayers.isEmpty ? 0 : N * C)
        let eps = Float(c.rmsNormEps)
        for l in stride(from: start, through: lastLayer, by: 1) {
            let w = model.layers[l]
            let tape: LayerTape? = l >= firstLayer ? LayerTape(config: c, layout: layout) : nil
            tapes[l] = tape
            let q = tape?.q.p ?? sq.p, k = tape?.k.p ?? sk.p, v = tape?.v.p ?? sv.p, a = tape?.attn.p ?? sa.p
            let g = tape?.gate.p ?? sg.p, u = tape?.up.p ?? su.p
            if let tape { tape.xIn.p.update(from: x.p, count: N * C) }
            traceRMSNorm(out: h.p, x: x.p, gain: w.inputNorm, rows: N, width: C, eps: eps)
            product(out: q, x: h.p, weight: w.q, bias: w.qBias, rows: N, accumulate: false)
            product(out: k, x: h.p, weight: w.k, bias: w.kBias, rows: N, accumulate: false)
            product(out: v, x: h.p, weight: w.v, bias: w.vBias, rows: N, accumulate: false)
            rope(q, heads: c.headCount, inverse: false)
            rope(k, heads: c.kvHeadCount, inverse: false)
            if let keep, l >= keep.layer {
                var ks: [Float] = [], vs: [Float] = []
                for (s, offset) in layout.offsets.enumerated() {
                    let rows = offset..<(offset + keep.starts[s])
                    ks += UnsafeBufferPointer(start: k + rows.lowerBound * KW, count: rows.count * KW)
                    vs += UnsafeBufferPointer(start: v + rows.lowerBound * KW, count: rows.count * KW)
                }
                keptKeys.append(ks)
                keptValues.append(vs)
            }
            attention(layer: l, out: a, q: q, k: k, v: v, probs: tape?.probs.p, scratch: scores.p)
            product(out: x.p, x: a, weight: w.o, bias: w.oBias, rows: N, accumulate: true)
            intervene(at: 2 * l + 1, into: &result)
            if let tape { tape.xMid.p.update(from: x.p, count: N * C) }
            traceRMSNorm(out: h.p, x: x.p, gain: w.postNorm, rows: N, width: C, eps: eps)
            product(out: g, x: h.p, weight: w.gate, bias: nil, rows: N, accumulate: false)
            product(out: u, x: h.p, weight: w.up, bias: nil, rows: N, accumulate: false)
            // As `Model.swigluForward` (same kernel); g itself stays on the tape.
            act.p.update(from: g, count: N * I)
            wl_silu_mul_f32(act.p, u, N * I)
            product(out: x.p, x: act.p, weight: w.down, bias: nil, rows: N, accumulate: true)
            if captureLayers.contains(l) {
                // A separate product, so that capturing leaves the stream bit for bit unchanged.
                product(out: mlpOut.p, x: act.p, weight: w.down, bias: nil, rows: N, accumulate: false)
                result.mlpKeys[l] = perSequence(act, width: I)
                result.mlpOutputs[l] = perSequence(mlpOut, width: C)
            }
            intervene(at: 2 * l + 2, into: &result)
        }
        if let keep {
            result.context = TraceContext(sequences: sequences, point: keep, keys: keptKeys, values: keptValues, stream: keptStream)
        }
    }

    /// A (N, width) buffer split into per-sequence arrays.
    func perSequence(_ b: TraceBuffer, width: Int) -> [[Float]] {
        layout.offsets.indices.map { s in b.rows(layout.offsets[s]..<(layout.offsets[s] + layout.lengths[s]), width: width) }
    }

    /// Final norm and output projection of the given rows of the residual stream: (rows.count, V).
    func logits(rows: [Int]) -> TraceBuffer {
        let C = config.hiddenSize, R = rows.count
        let gathered = TraceBuffer(R * C), h = TraceBuffer(R * C)
        for (i, r) in rows.enumerated() { (gathered.p + i * C).update(from: x.p + r * C, count: C) }
        traceRMSNorm(out: h.p, x: gathered.p, gain: model.finalNorm, rows: R, width: C, eps: Float(config.rmsNormEps))
        let out = TraceBuffer(R * config.vocabSize)
        product(out: out.p, x: h.p, weight: model.head, bias: nil, rows: R, accumulate: false)
        return out
    }

    // MARK: - Backward

    /// Back-propagates ∂loss/∂logits of `rows` (dLogits is (rows.count, V)) down to the earliest
    /// recorded layer, collecting the gradients of the interventions and of `points`.
    func backward(dLogits: TraceBuffer, rows: [Int], points: [StreamPoint], into result: inout ModelTrace) {
        let c = config
        let N = layout.rows, C = c.hiddenSize, I = c.intermediateSize, Q = c.queryWidth, KW = c.kvWidth
        let R = rows.count
        let eps = Float(c.rmsNormEps)
        result.interventionGradients = interventions.map { _ in [Float](repeating: 0, count: C) }
        let wanted = Set(points)
        let dX = TraceBuffer(N * C)

        /// Records the gradient at stream point `index` (dX holds it).
        func visit(_ index: Int) {
            for (i, iv) in interventions.enumerated() where iv.point.index == index {
                for site in iv.sites {
                    let row = dX.p + layout.row(site) * C
                    for j in 0..<C { result.interventionGradients[i][j] += row[j] }
                }
            }
            for p in wanted where p.index == index {
                result.streamGradients[p] = perSequence(dX, width: C)
            }
        }

        if R == 0 {  // No loss term with a positive weight: every gradient is zero.
            for p in wanted { result.streamGradients[p] = perSequence(dX, width: C) }
            return
        }

        // Output projection and final norm.
        let dH = TraceBuffer(max(N, R) * C)
        productBackward(dx: dH.p, dy: dLogits.p, weight: model.head, rows: R, accumulate: false)
        let gathered = TraceBuffer(R * C), dGathered = TraceBuffer(R * C)
        for (i, r) in rows.enumerated() { (gathered.p + i * C).update(from: x.p + r * C, count: C) }
        traceRMSNormBackward(dx: dGathered.p, x: gathered.p, gain: model.finalNorm, dy: dH.p, rows: R, width: C, eps: eps)
        for (i, r) in rows.enumerated() {
            let dst = dX.p + r * C, src = dGathered.p + i * C
            for j in 0..<C { dst[j] += src[j] }
        }

        let dAct = TraceBuffer(N * I), dGate = TraceBuffer(N * I), dUp = TraceBuffer(N * I)
        let dAttn = TraceBuffer(N * Q), dQ = TraceBuffer(N * Q), dK = TraceBuffer(N * KW), dV = TraceBuffer(N * KW)
        let dP = TraceBuffer(layout.longest * layout.longest)
        visit(2 * c.layerCount)
        for l in stride(from: c.layerCount - 1, through: firstLayer, by: -1) {
            guard let tape = tapes[l] else { preconditionFailure("layer \(l) was not recorded") }
            let w = model.layers[l]
            // MLP: x_out = x_mid + down(silu(g) · u), g = gate(h), u = up(h), h = norm(x_mid).
            productBackward(dx: dAct.p, dy: dX.p, weight: w.down, rows: N, accumulate: false)
            for i in 0..<(N * I) {
                let z = tape.gate.p[i], sig = 1 / (1 + wl_exp_f32(-z))
                dGate.p[i] = dAct.p[i] * tape.up.p[i] * sig * (1 + z * (1 - sig))
                dUp.p[i] = dAct.p[i] * z * sig
            }
            productBackward(dx: dH.p, dy: dGate.p, weight: w.gate, rows: N, accumulate: false)
            productBackward(dx: dH.p, dy: dUp.p, weight: w.up, rows: N, accumulate: true)
            traceRMSNormBackward(dx: dX.p, x: tape.xMid.p, gain: w.postNorm, dy: dH.p, rows: N, width: C, eps: eps)
            visit(2 * l + 1)
            if l == firstLayer && firstPoint == 2 * l + 1 { break }
            // Attention: x_mid = x_in + o_proj(attention(rope(q), rope(k), v)), q, k, v of norm(x_in).
            productBackward(dx: dAttn.p, dy: dX.p, weight: w.o, rows: N, accumulate: false)
            attentionBackward(layer: l, tape: tape, dOut: dAttn.p, dQ: dQ.p, dK: dK.p, dV: dV.p, dP: dP.p)
            rope(dQ.p, heads: c.headCount, inverse: true)
            rope(dK.p, heads: c.kvHeadCount, inverse: true)
            productBackward(dx: dH.p, dy: dQ.p, weight: w.q, rows: N, accumulate: false)
            productBackward(dx: dH.p, dy: dK.p, weight: w.k, rows: N, accumulate: true)
            productBackward(dx: dH.p, dy: dV.p, weight: w.v, rows: N, accumulate: true)
            traceRMSNormBackward(dx: dX.p, x: tape.xIn.p, gain: w.inputNorm, dy: dH.p, rows: N, width: C, eps: eps)
            visit(2 * l)
        }
    }

    // MARK: - Kernels

    /// out = x · Wᵀ (+ bias) (+ out when `accumulate`): x is (rows, K), W is stored (N, K), out is
    /// (rows, N). The same products as `forward` with the BLAS kernels.
    func product(out: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>, weight w: StoredMatrix, bias: [Float]?,
                 rows T: Int, accumulate: Bool) {
        let N = w.rows, K = w.cols
        let beta: Float = accumulate ? 1 : 0
        func block(_ weights: UnsafePointer<Float>, _ range: Range<Int>) {
            if T == 1 {
                BLAS.sgemv(trans: false, m: range.count, n: K, alpha: 1, a: weights, lda: K, x: x, beta: beta, y: out + range.lowerBound)
            } else {
                BLAS.sgemm(transA: false, transB: true, m: T, n: range.count, k: K, alpha: 1, a: x, lda: K, b: weights, ldb: K,
                           beta: beta, c: out + range.lowerBound, ldc: N)
            }
        }
        if let f32 = w.f32 {
            block(f32, 0..<N)
        } else {
            let tileRows = max(1, tileElements / K)
            var r0 = 0
            while r0 < N {
                let r1 = min(r0 + tileRows, N)
                w.decodeRows(r0..<r1, into: tile.p)
                block(tile.p, r0..<r1)
                r0 = r1
            }
        }
        if let bias {
            bias.withUnsafeBufferPointer { b in
                for t in 0..<T {
                    let row = out + t * N
                    for n in 0..<N { row[n] += b[n] }
                }
            }
        }
    }

    /// dx = dy · W (+ dx when `accumulate`): the input gradient of `product`; dy is (rows, N), W is
    /// stored (N, K), dx is (rows, K). F16/BF16 weights are converted a tile of rows at a time.
    func productBackward(dx: UnsafeMutablePointer<Float>, dy: UnsafePointer<Float>, weight w: StoredMatrix,
                         rows T: Int, accumulate: Bool) {
        let N = w.rows, K = w.cols
        if let f32 = w.f32 {
            BLAS.sgemm(transA: false, transB: false, m: T, n: K, k: N, alpha: 1, a: dy, lda: N, b: f32, ldb: K,
                       beta: accumulate ? 1 : 0, c: dx, ldc: K)
            return
        }
        let tileRows = max(1, tileElements / K)
        var r0 = 0
        while r0 < N {
            let r1 = min(r0 + tileRows, N)
            w.decodeRows(r0..<r1, into: tile.p)
            BLAS.sgemm(transA: false, transB: false, m: T, n: K, k: r1 - r0, alpha: 1, a: dy + r0, lda: N, b: tile.p, ldb: K,
                       beta: (accumulate || r0 > 0) ? 1 : 0, c: dx, ldc: K)
            r0 = r1
        }
    }

    /// Rotates (or, `inverse`, rotates back: the transpose, for gradients) each head of every row
    /// by its position's angles: (rows, heads × head_dim), rotate-half layout.
    func rope(_ x: UnsafeMutablePointer<Float>, heads: Int, inverse: Bool) {
        let d = config.headDim, half = d / 2
        for (s, offset) in layout.offsets.enumerated() {
            for t in 0..<layout.lengths[s] {
                let pos = layout.starts[s] + t
                let cs = ropeCos.p + pos * half, sn = ropeSin.p + pos * half
                for hd in 0..<heads {
                    let v = x + ((offset + t) * heads + hd) * d
                    for j in 0..<half {
                        let a = v[j], b = v[j + half]
                        if inverse {
                            v[j] = a * cs[j] + b * sn[j]
                            v[j + half] = b * cs[j] - a * sn[j]
                        } else {
                            v[j] = a * cs[j] - b * sn[j]
                            v[j + half] = b * cs[j] + a * sn[j]
                        }
                    }
                }
            }
        }
    }

    /// Keys and values of sequence s in layer l, its context rows first: (start + rows, kv width)
    /// each, row stride kv width. Without context they are the rows of `k` and `v` themselves;
    /// with one they are assembled in `sequenceKeys`/`sequenceValues`.
    func keysAndValues(layer l: Int, sequence s: Int, k: UnsafePointer<Float>, v: UnsafePointer<Float>)
        -> (UnsafePointer<Float>, UnsafePointer<Float>) {
        let KW = config.kvWidth
        let offset = layout.offsets[s], S0 = layout.starts[s], T = layout.lengths[s]
        guard S0 > 0, let resume else { return (k + offset * KW, v + offset * KW) }
        let c0 = layout.contextOffsets[s] * KW
        resume.keys[l - resume.point.layer].withUnsafeBufferPointer { sequenceKeys.p.update(from: $0.baseAddress! + c0, count: S0 * KW) }
        resume.values[l - resume.point.layer].withUnsafeBufferPointer { sequenceValues.p.update(from: $0.baseAddress! + c0, count: S0 * KW) }
        (sequenceKeys.p + S0 * KW).update(from: k + offset * KW, count: T * KW)
        (sequenceValues.p + S0 * KW).update(from: v + offset * KW, count: T * KW)
        return (UnsafePointer(sequenceKeys.p), UnsafePointer(sequenceValues.p))
    }

    /// Causal grouped-query attention within each sequence: out (N, Q) from q (N, Q), k, v (N, KW).
    /// Row t of sequence s (position start + t) sees positions 0...start + t, the context's
    /// among them. Keeps the probabilities of sequence s, head h, (T, start + T), at
    /// `probs + probOffsets[s] + h·T·(start + T)` when `probs` is given, else uses `scratch`
    /// (longest² floats).
    func attention(layer l: Int, out: UnsafeMutablePointer<Float>, q: UnsafePointer<Float>, k: UnsafePointer<Float>,
                   v: UnsafePointer<Float>, probs: UnsafeMutablePointer<Float>?, scratch: UnsafeMutablePointer<Float>) {
        let c = config
        let d = c.headDim, Q = c.queryWidth, KW = c.kvWidth, group = c.headCount / c.kvHeadCount
        let scale = 1 / Float(d).squareRoot()
        for (s, offset) in layout.offsets.enumerated() {
            let T = layout.lengths[s], S0 = layout.starts[s], W = S0 + T
            let (keys, values) = keysAndValues(layer: l, sequence: s, k: k, v: v)
            for head in 0..<c.headCount {
                let kv = head / group
                let qh = q + offset * Q + head * d, kh = keys + kv * d, vh = values + kv * d
                let oh = out + offset * Q + head * d
                let p = probs.map { $0 + layout.probOffsets[s] + head * T * W } ?? scratch
                BLAS.sgemm(transA: false, transB: true, m: T, n: W, k: d, alpha: scale, a: qh, lda: Q, b: kh, ldb: KW,
                           beta: 0, c: p, ldc: W)
                for t in 0..<T {
                    let row = p + t * W, visible = S0 + t + 1
                    // The same row kernels as `Model.softmaxRows`, so traced and forward
                    // log-probabilities agree to F32 rounding.
                    let m = wl_max_f32(row, visible)
                    let inv = 1 / wl_expsum_f32(row, visible, m)
                    wl_scale_f32(row, visible, inv)
                    for j in visible..<W { row[j] = 0 }
                }
                BLAS.sgemm(transA: false, transB: false, m: T, n: d, k: W, alpha: 1, a: p, lda: W, b: vh, ldb: KW,
                           beta: 0, c: oh, ldc: Q)
            }
        }
    }

    /// Gradients of `attention` (after the rotary embedding) from dOut (N, Q): dQ (N, Q), dK and
    /// dV (N, KW), overwritten; the context rows' keys and values are constants and get none.
    /// dP is scratch of longest² floats.
    func attentionBackward(layer l: Int, tape: LayerTape, dOut: UnsafePointer<Float>, dQ: UnsafeMutablePointer<Float>,
                           dK: UnsafeMutablePointer<Float>, dV: UnsafeMutablePointer<Float>, dP: UnsafeMutablePointer<Float>) {
        let c = config
        let d = c.headDim, Q = c.queryWidth, KW = c.kvWidth, group = c.headCount / c.kvHeadCount
        let scale = 1 / Float(d).squareRoot()
        dK.update(repeating: 0, count: layout.rows * KW)
        dV.update(repeating: 0, count: layout.rows * KW)
        for (s, offset) in layout.offsets.enumerated() {
            let T = layout.lengths[s], S0 = layout.starts[s], W = S0 + T
            let (keys, values) = keysAndValues(layer: l, sequence: s, k: tape.k.p, v: tape.v.p)
            for head in 0..<c.headCount {
                let kv = head / group
                let qh = tape.q.p + offset * Q + head * d, kh = keys + kv * d, vh = values + kv * d
                let doh = dOut + offset * Q + head * d
                let dqh = dQ + offset * Q + head * d, dkh = dK + offset * KW + kv * d, dvh = dV + offset * KW + kv * d
                let p = tape.probs.p + layout.probOffsets[s] + head * T * W
                // out = P·V: dP = dOut·Vᵀ, dV += Pᵀ·dOut (the sequence's own columns of P).
                BLAS.sgemm(transA: false, transB: true, m: T, n: W, k: d, alpha: 1, a: doh, lda: Q, b: vh, ldb: KW,
                           beta: 0, c: dP, ldc: W)
                BLAS.sgemm(transA: true, transB: false, m: T, n: d, k: T, alpha: 1, a: p + S0, lda: W, b: doh, ldb: Q,
                           beta: 1, c: dvh, ldc: KW)
                // Softmax: dS = P ⊙ (dP − Σ_j P·dP), row by row (masked entries have P = 0).
                for t in 0..<T {
                    let pr = p + t * W, dr = dP + t * W
                    var dot: Float = 0
                    for j in 0...(S0 + t) { dot += pr[j] * dr[j] }
                    for j in 0..<W { dr[j] = pr[j] * (dr[j] - dot) }
                }
                // S = scale·Q·Kᵀ: dQ = scale·dS·K, dK += scale·dSᵀ·Q (own columns).
                BLAS.sgemm(transA: false, transB: false, m: T, n: d, k: W, alpha: scale, a: dP, lda: W, b: kh, ldb: KW,
                           beta: 0, c: dqh, ldc: Q)
                BLAS.sgemm(transA: true, transB: false, m: T, n: d, k: T, alpha: scale, a: dP + S0, lda: W, b: qh, ldb: Q,
                           beta: 1, c: dkh, ldc: KW)
            }
        }
    }
}

/// out = x · gain / sqrt(mean(x²) + eps), per row, the mean in double (as `forward`).
func traceRMSNorm(out: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>, gain: [Float], rows: Int, width C: Int, eps: Float) {
    gain.withUnsafeBufferPointer { w in
        for t in 0..<rows {
            let row = x + t * C, dst = out + t * C
            var sum: Double = 0
            for i in 0..<C { sum += Double(row[i]) * Double(row[i]) }
            let scale = Float(1 / (sum / Double(C) + Double(eps)).squareRoot())
            for i in 0..<C { dst[i] = w[i] * (row[i] * scale) }
        }
    }
}

/// dx += the gradient of `traceRMSNorm` given dy: with s = (mean(x²) + eps)^(−1/2),
/// dxᵢ = s·gᵢ·dyᵢ − xᵢ·s³/C·Σⱼ gⱼ·dyⱼ·xⱼ. Sums in double.
func traceRMSNormBackward(dx: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>, gain: [Float], dy: UnsafePointer<Float>,
                          rows: Int, width C: Int, eps: Float) {
    gain.withUnsafeBufferPointer { w in
        for t in 0..<rows {
            let row = x + t * C, g = dy + t * C, dst = dx + t * C
            var sum: Double = 0, dot: Double = 0
            for i in 0..<C {
                sum += Double(row[i]) * Double(row[i])
                dot += Double(w[i]) * Double(g[i]) * Double(row[i])
            }
            let s = 1 / (sum / Double(C) + Double(eps)).squareRoot()
            let coef = dot * s * s * s / Double(C)
            for i in 0..<C { dst[i] += Float(s * Double(w[i]) * Double(g[i]) - Double(row[i]) * coef) }
        }
    }
}
