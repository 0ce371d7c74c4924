import CShims
import Dispatch
import LinAlg
import TensorIO
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Scratch buffers of the forward pass, owned by the caller and reused across calls (one per
/// thread). Sized for batches of up to `maxTokens` tokens; the attention scores grow with the
/// context and the logits buffer is allocated on first use.
///
/// Buffers, with T ≤ maxTokens, C = hidden, Q = heads × head_dim, I = intermediate, V = vocab:
/// `x` (T, C) residual stream, `h` (T, C) normalized input, `q` (T, Q), `o` (T, Q) attention
/// output, `g`, `u` (T, I) MLP gate and up, `scores` (T, S) one head's attention weights,
/// `logits` (T, V), `tile` converted weight rows, `ropeCos`/`ropeSin` (T, head_dim/2).
public final class ForwardWorkspace {
    /// The largest batch one pass runs; longer inputs are processed in batches of this size.
    public let maxTokens: Int
    /// Weight elements converted to F32 at a time for F16/BF16 matrices.
    public let tileElements: Int
    let config: ModelConfig
    let x, h, q, o, g, u, ropeCos, ropeSin, tile: UnsafeMutablePointer<Float>
    private(set) var scores: UnsafeMutablePointer<Float>
    private(set) var scoresContext: Int
    private var logitsStorage: UnsafeMutablePointer<Float>?
    /// Query rows per causal block of the BLAS attention (tests make it small to cross blocks).
    var attentionBlockRows = 64

    /// - Parameters:
    ///   - maxTokens: batch size of prompt processing (memory grows linearly with it).
    ///   - tileElements: size of the F16/BF16 conversion tile (default 256 Ki floats, 1 MiB, sized
    ///     to stay in L2 while `sgemm` reads it); raised to at least one matrix row.
    public init(config: ModelConfig, maxTokens: Int = 128, tileElements: Int = 1 << 18) {
        precondition(maxTokens >= 1, "maxTokens must be positive")
        self.config = config
        self.maxTokens = maxTokens
        let widest = max(config.hiddenSize, config.intermediateSize, config.queryWidth)
        self.tileElements = max(tileElements, widest)
        func alloc(_ n: Int) -> UnsafeMutablePointer<Float> {
            let p = UnsafeMutablePointer<Float>.allocate(capacity: max(n, 1))
            p.initialize(repeating: 0, count: max(n, 1))
            return p
        }
        let T = maxTokens
        x = alloc(T * config.hiddenSize)
        h = alloc(T * config.hiddenSize)
        q = alloc(T * config.queryWidth)
        o = alloc(T * config.queryWidth)
        g = alloc(T * config.intermediateSize)
        u = alloc(T * config.intermediateSize)
        ropeCos = alloc(T * config.headDim / 2)
        ropeSin = alloc(T * config.headDim / 2)
        tile = alloc(self.tileElements)
        scoresContext = 256
        scores = alloc(Self.scoreSlots * T * scoresContext)
    }

    deinit {
        for p in [x, h, q, o, g, u, ropeCos, ropeSin, tile, scores] { p.deallocate() }
        logitsStorage?.deallocate()
    }

    /// Attention heads that run at once (each needs its own scores).
    static let scoreSlots = 2

    /// Makes `scores` hold `scoreSlots` × (maxTokens, context).
    func reserveScores(context: Int) {
        guard context > scoresContext else { return }
        scores.deallocate()
        scoresContext = max(context, 2 * scoresContext)
        scores = .allocate(capacity: Self.scoreSlots * maxTokens * scoresContext)
    }

    /// The scores of slot `k` (< scoreSlots).
    func scores(slot k: Int) -> UnsafeMutablePointer<Float> { scores + k * maxTokens * scoresContext }

    /// The (maxTokens, vocab) logits buffer.
    var logits: UnsafeMutablePointer<Float> {
        if let p = logitsStorage { return p }
        let p = UnsafeMutablePointer<Float>.allocate(capacity: maxTokens * config.vocabSize)
        logitsStorage = p
        return p
    }
}

extension Model {
    /// Runs `tokens` at the positions after those already in `cache`, appends their keys and
    /// values to it, and hands the logits of the positions in `logitRows` to `visit`.
    ///
    /// Inputs longer than `workspace.maxTokens` are processed in batches (with the cache, the
    /// result is the same up to rounding). A batch of several tokens multiplies by each weight
    /// matrix with `sgemm`; a single token uses `sgemv`.
    /// - Parameters:
    ///   - tokens: ids to append, each below `config.vocabSize`.
    ///   - logitRows: indices into `tokens` whose next-token logits are wanted (default none).
    ///   - visit: called in order with (index into `tokens`, logits of length vocab); the buffer is
    ///     valid only during the call.
    /// - Throws: `ModelError.invalidInput` for an id outside the vocabulary or positions beyond
    ///   `max_position_embeddings` (the cache is then unchanged); whatever `visit` throws (the cache
    ///   then holds the batches run so far).
    /// - Precondition: `cache` and `workspace` were made for this model's config, and `logitRows`
    ///   lies within `tokens.indices`; violations are programmer errors and trap.
    public func forward(_ tokens: [Int], cache: KVCache, workspace: ForwardWorkspace, logitRows: Range<Int> = 0..<0,
                        _ visit: (Int, UnsafeBufferPointer<Float>) throws -> Void = { _, _ in }) throws {
        precondition(workspace.config == config && cache.layerCount == config.layerCount && cache.kvWidth == config.kvWidth,
                     "cache or workspace made for another model")
        precondition(logitRows.isEmpty || (logitRows.lowerBound >= 0 && logitRows.upperBound <= tokens.count),
                     "logitRows outside the tokens")
        if let bad = tokens.first(where: { $0 < 0 || $0 >= config.vocabSize }) {
            throw ModelError.invalidInput(path: path, reason: "token id \(bad) is outside the vocabulary of \(config.vocabSize)")
        }
        let end = cache.count + tokens.count
        guard end <= config.maxPositionEmbeddings else {
            throw ModelError.invalidInput(path: path, reason: "\(end) positions exceed max_position_embeddings \(config.maxPositionEmbeddings)")
        }
        cache.reserve(end)
        workspace.reserveScores(context: end)
        var start = 0
        while start < tokens.count {
            let stop = min(start + workspace.maxTokens, tokens.count)
            forwardBatch(tokens[start..<stop], cache: cache, workspace: workspace)
            let rows = logitRows.clamped(to: start..<stop)
            if !rows.isEmpty {
                let V = config.vocabSize
                logitsForward(rows: (rows.lowerBound - start)..<(rows.upperBound - start), workspace: workspace)
                for r in rows {
                    try visit(r, UnsafeBufferPointer(start: workspace.logits + (r - rows.lowerBound) * V, count: V))
                }
            }
            start = stop
        }
    }

    /// Runs several continuations ("branches") of the cached context in one batch: each branch is
    /// placed at the positions right after the cache and attends to the cached positions and to its
    /// own earlier tokens only, exactly as if it ran alone after the cache. The cache is unchanged
    /// afterwards. The logits of every branch position are visited.
    ///
    /// One batch reads every weight matrix once for all branches, where separate calls read it once
    /// per branch; multiple-choice scoring, whose choices share a context, spends most of its time
    /// there.
    /// - Parameters:
    ///   - branches: non-empty token lists whose lengths sum to at most `workspace.maxTokens`.
    ///   - visit: called for every branch b and index i in it with the logits after branch[...i].
    /// - Throws: `ModelError.invalidInput` for ids outside the vocabulary or too many positions;
    ///   whatever `visit` throws. The cache is unchanged in every case.
    /// - Precondition: as `forward`, and the lengths fit the workspace (a programmer error).
    public func forwardBranches(_ branches: [[Int]], cache: KVCache, workspace ws: ForwardWorkspace,
                                _ visit: (_ branch: Int, _ index: Int, UnsafeBufferPointer<Float>) throws -> Void) throws {
        try forwardTree(branches.map { BranchNode(tokens: $0) }, cache: cache, workspace: ws, visit)
    }

    /// One node of a `forwardTree` batch: tokens that continue the cached context directly
    /// (`parent` nil) or continue an earlier root node.
    public struct BranchNode: Sendable {
        public var tokens: [Int]
        /// Index of the node these tokens follow; that node must itself have no parent.
        public var parent: Int?
        /// Indices of this node whose logits are visited (clamped to the tokens).
        public var logits: Range<Int>

        /// - Parameter logits: default every index.
        public init(tokens: [Int], parent: Int? = nil, logits: Range<Int>? = nil) {
            self.tokens = tokens
            self.parent = parent
            self.logits = (logits ?? tokens.indices).clamped(to: tokens.indices)
        }
    }

    /// `forwardBranches` with two levels: root nodes continue the cache and see only it and
    /// themselves; a child node continues its root and sees the cache, that root and itself.
    /// Several multiple-choice questions (a root per context, a child per choice) thus run in one
    /// batch, each as if alone after the cache.
    /// - Parameters:
    ///   - nodes: non-empty token lists, lengths summing to at most `workspace.maxTokens`; a parent
    ///     comes before its children and has no parent itself.
    ///   - visit: called with (node, index in node, logits after node[...index]) for the indices
    ///     each node asks for, in node order.
    /// - Throws: as `forwardBranches`. The cache is unchanged in every case.
    /// - Precondition: as `forwardBranches`, and the parent rules above (programmer errors).
    public func forwardTree(_ nodes: [BranchNode], cache: KVCache, workspace ws: ForwardWorkspace,
                            _ visit: (_ node: Int, _ index: Int, UnsafeBufferPointer<Float>) throws -> Void) throws {
        precondition(ws.config == config && cache.layerCount == config.layerCount && cache.kvWidth == config.kvWidth,
                     "cache or workspace made for another model")
        let ids = nodes.flatMap(\.tokens)
        precondition(!nodes.contains { $0.tokens.isEmpty } && ids.count <= ws.maxTokens, "nodes must be non-empty and fit the workspace")
        if let bad = ids.first(where: { $0 < 0 || $0 >= config.vocabSize }) {
            throw ModelError.invalidInput(path: path, reason: "token id \(bad) is outside the vocabulary of \(config.vocabSize)")
        }
        let P = cache.count
        var offsets: [Int] = [], starts: [Int] = [], parents: [Range<Int>] = []
        var rowsOf: [Range<Int>] = []
        var longest = 0
        for (k, node) in nodes.enumerated() {
            var base = 0
            var parentRows = 0..<0
            if let p = node.parent {
                precondition(p < k && nodes[p].parent == nil, "a node's parent must be an earlier root node")
                base = nodes[p].tokens.count
                parentRows = rowsOf[p]
            }
            let first = offsets.count
            for j in node.tokens.indices {
                offsets.append(base + j)
                starts.append(first)
                parents.append(parentRows)
            }
            rowsOf.append(first..<offsets.count)
            longest = max(longest, base + node.tokens.count)
        }
        guard P + longest <= config.maxPositionEmbeddings else {
            throw ModelError.invalidInput(path: path, reason: "\(P + longest) positions exceed max_position_embeddings \(config.maxPositionEmbeddings)")
        }
        cache.reserve(P + ids.count)
        ws.reserveScores(context: P + ids.count)
        defer { cache.truncate(to: P) }
        forwardBatch(ids[...], cache: cache, workspace: ws, layout: BranchLayout(offsets: offsets, segmentStarts: starts, parents: parents))
        var wanted: [Int] = []
        for (k, node) in nodes.enumerated() {
            wanted += node.logits.map { rowsOf[k].lowerBound + $0 }
        }
        logitsForward(rowList: wanted, workspace: ws)
        let V = config.vocabSize
        var slot = 0
        for (k, node) in nodes.enumerated() {
            for i in node.logits {
                try visit(k, i, UnsafeBufferPointer(start: ws.logits + slot * V, count: V))
                slot += 1
            }
        }
    }

    /// Appends one token to each of several independent sequences, each continuing its own
    /// cache, in one batch, and visits every row's next-token logits.
    ///
    /// Row t is `ids[t]` at position `caches[t].count`; it attends to `caches[t]` and itself only,
    /// exactly as `forward([ids[t]], cache: caches[t], …)` would (up to F32 rounding of the
    /// batched products), and its keys and values are appended to `caches[t]`. Greedy decoding of
    /// several prompts runs a batch per step this way: each weight matrix is read once per step
    /// rather than once per sequence.
    /// - Parameters:
    ///   - ids: one id per sequence, each below `config.vocabSize`.
    ///   - caches: distinct caches, one per id, made for this model.
    ///   - visit: called for every row t in order with its logits (valid only during the call).
    /// - Throws: `ModelError.invalidInput` for an id outside the vocabulary or a sequence at
    ///   `max_position_embeddings` (every cache is then unchanged); whatever `visit` throws (the
    ///   caches then hold the new positions).
    /// - Precondition: as `forward`, `ids.count == caches.count`, at most `workspace.maxTokens`
    ///   rows, and no cache given twice (programmer errors).
    public func forwardSteps(_ ids: [Int], caches: [KVCache], workspace ws: ForwardWorkspace,
                             _ visit: (Int, UnsafeBufferPointer<Float>) throws -> Void) throws {
        precondition(ids.count == caches.count && ids.count <= ws.maxTokens, "one id per cache, at most maxTokens rows")
        precondition(Set(caches.map(ObjectIdentifier.init)).count == caches.count, "a cache given twice")
        precondition(config.kvWidth <= config.intermediateSize, "new keys and values are parked in the MLP buffers")
        precondition(ws.config == config && caches.allSatisfy { $0.layerCount == config.layerCount && $0.kvWidth == config.kvWidth },
                     "cache or workspace made for another model")
        guard !ids.isEmpty else { return }
        if let bad = ids.first(where: { $0 < 0 || $0 >= config.vocabSize }) {
            throw ModelError.invalidInput(path: path, reason: "token id \(bad) is outside the vocabulary of \(config.vocabSize)")
        }
        let positions = caches.map(\.count)
        let longest = positions.max()! + 1
        guard longest <= config.maxPositionEmbeddings else {
            throw ModelError.invalidInput(path: path, reason: "\(longest) positions exceed max_position_embeddings \(config.maxPositionEmbeddings)")
        }
        for (t, cache) in caches.enumerated() { cache.reserve(positions[t] + 1) }
        ws.reserveScores(context: longest)
        let c = config
        let T = ids.count, C = c.hiddenSize, QW = c.queryWidth, KW = c.kvWidth
        for (t, id) in ids.enumerated() {
            embedding.decodeRows(id..<(id + 1), into: ws.x + t * C)
        }
        ropeTables(positions: positions, cos: ws.ropeCos, sin: ws.ropeSin)
        // The new keys and values go to g and u (free until the MLP), then to each row's cache.
        let newKeys = ws.g, newValues = ws.u
        for (l, w) in layers.enumerated() {
            attentionInputs(w, tokens: T, keys: newKeys, values: newValues, workspace: ws)
            for (t, cache) in caches.enumerated() {
                let P = positions[t]
                (cache.keys(l) + P * KW).update(from: newKeys + t * KW, count: KW)
                (cache.values(l) + P * KW).update(from: newValues + t * KW, count: KW)
                attentionForward(out: ws.o + t * QW, q: ws.q + t * QW, keys: cache.keys(l), values: cache.values(l), past: P, tokens: 1,
                                 workspace: ws)
            }
            matmulForward(out: ws.x, x: ws.o, weight: w.o, bias: w.oBias, tokens: T, accumulate: true, workspace: ws)
            mlpBlock(w, tokens: T, workspace: ws)
        }
        for (t, cache) in caches.enumerated() { cache.commit(ids[t...t]) }
        logitsForward(rows: 0..<T, workspace: ws)
        let V = c.vocabSize
        for t in 0..<T {
            try visit(t, UnsafeBufferPointer(start: ws.logits + t * V, count: V))
        }
    }

    /// Where the rows of a batch of branches sit: row t is at position cache.count + offsets[t]
    /// and sees the cached positions, the batch rows parents[t] and the batch rows
    /// segmentStarts[t]...t.
    struct BranchLayout {
        var offsets: [Int]
        var segmentStarts: [Int]
        var parents: [Range<Int>]
    }

    /// With a `layout`, the rows are branches (see `forwardBranches`) instead of one sequence.
    func forwardBatch(_ ids: ArraySlice<Int>, cache: KVCache, workspace ws: ForwardWorkspace, layout: BranchLayout? = nil) {
        let c = config
        let T = ids.count, P = cache.count, C = c.hiddenSize
        for (t, id) in ids.enumerated() {
            embedding.decodeRows(id..<(id + 1), into: ws.x + t * C)
        }
        if let layout {
            ropeTables(positions: layout.offsets.map { P + $0 }, cos: ws.ropeCos, sin: ws.ropeSin)
        } else {
            ropeTables(positions: P..<(P + T), cos: ws.ropeCos, sin: ws.ropeSin)
        }
        for (l, w) in layers.enumerated() {
            // Attention block: x += o_proj(attention(rope(q), rope(k), v)).
            attentionInputs(w, tokens: T, keys: cache.keys(l) + P * c.kvWidth, values: cache.values(l) + P * c.kvWidth, workspace: ws)
            attentionForward(out: ws.o, q: ws.q, keys: cache.keys(l), values: cache.values(l), past: P, tokens: T,
                             layout: layout, workspace: ws)
            matmulForward(out: ws.x, x: ws.o, weight: w.o, bias: w.oBias, tokens: T, accumulate: true, workspace: ws)
            mlpBlock(w, tokens: T, workspace: ws)
        }
        cache.commit(ids)
    }

    /// The inputs of a layer's attention for the T rows of `ws.x`: h = norm(x), q = rope(q_proj(h))
    /// into `ws.q`, rope(k_proj(h)) into `keys` and v_proj(h) into `values` ((T, kv width) each).
    func attentionInputs(_ w: LayerWeights, tokens T: Int, keys: UnsafeMutablePointer<Float>, values: UnsafeMutablePointer<Float>,
                         workspace ws: ForwardWorkspace) {
        let c = config
        rmsnormForward(out: ws.h, x: ws.x, gain: w.inputNorm, tokens: T, width: c.hiddenSize, eps: Float(c.rmsNormEps))
        matmulForward(out: ws.q, x: ws.h, weight: w.q, bias: w.qBias, tokens: T, accumulate: false, workspace: ws)
        matmulForward(out: keys, x: ws.h, weight: w.k, bias: w.kBias, tokens: T, accumulate: false, workspace: ws)
        matmulForward(out: values, x: ws.h, weight: w.v, bias: w.vBias, tokens: T, accumulate: false, workspace: ws)
        ropeForward(ws.q, tokens: T, heads: c.headCount, headDim: c.headDim, cos: ws.ropeCos, sin: ws.ropeSin)
        ropeForward(keys, tokens: T, heads: c.kvHeadCount, headDim: c.headDim, cos: ws.ropeCos, sin: ws.ropeSin)
    }

    /// The MLP block on the T rows of `ws.x`: x += down(silu(gate(h)) · up(h)), h = norm(x).
    func mlpBlock(_ w: LayerWeights, tokens T: Int, workspace ws: ForwardWorkspace) {
        let c = config
        rmsnormForward(out: ws.h, x: ws.x, gain: w.postNorm, tokens: T, width: c.hiddenSize, eps: Float(c.rmsNormEps))
        matmulForward(out: ws.g, x: ws.h, weight: w.gate, bias: nil, tokens: T, accumulate: false, workspace: ws)
        matmulForward(out: ws.u, x: ws.h, weight: w.up, bias: nil, tokens: T, accumulate: false, workspace: ws)
        swigluForward(gate: ws.g, up: ws.u, count: T * c.intermediateSize)
        matmulForward(out: ws.x, x: ws.g, weight: w.down, bias: nil, tokens: T, accumulate: true, workspace: ws)
    }

    /// Final norm and output projection of the rows `rowList` of `workspace.x` (any order) into
    /// `workspace.logits` (rowList.count, V).
    func logitsForward(rowList: [Int], workspace ws: ForwardWorkspace) {
        guard !rowList.isEmpty else { return }
        let C = config.hiddenSize
        for (i, r) in rowList.enumerated() {
            rmsnormForward(out: ws.h + i * C, x: ws.x + r * C, gain: finalNorm, tokens: 1, width: C, eps: Float(config.rmsNormEps))
        }
        matmulForward(out: ws.logits, x: ws.h, weight: head, bias: nil, tokens: rowList.count, accumulate: false, workspace: ws)
    }

    /// Final norm and output projection of rows `rows` of `workspace.x` into `workspace.logits`
    /// (rows.count, V).
    func logitsForward(rows: Range<Int>, workspace ws: ForwardWorkspace) {
        let C = config.hiddenSize
        rmsnormForward(out: ws.h, x: ws.x + rows.lowerBound * C, gain: finalNorm, tokens: rows.count, width: C,
                       eps: Float(config.rmsNormEps))
        matmulForward(out: ws.logits, x: ws.h, weight: head, bias: nil, tokens: rows.count, accumulate: false, workspace: ws)
    }

    // MARK: - Layers

    /// cos and sin of the rotary angles, (T, head_dim/2): entry (t, j) is for position
    /// positions[t] / factor · θ^(−2j/head_dim), computed in double.
    func ropeTables<S: Sequence<Int>>(positions: S, cos cosOut: UnsafeMutablePointer<Float>, sin sinOut: UnsafeMutablePointer<Float>) {
        let half = config.headDim / 2
        for (t, pos) in positions.enumerated() {
            for j in 0..<half {
                let freq = pow(config.ropeTheta, -Double(2 * j) / Double(config.headDim))
                let angle = Double(pos) / config.ropeLinearFactor * freq
                cosOut[t * half + j] = Float(cos(angle))
                sinOut[t * half + j] = Float(sin(angle))
            }
        }
    }

    /// out = x · gain / sqrt(mean(x²) + eps), per row: x and out are (T, C) (may not alias).
    func rmsnormForward(out: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>, gain: [Float], tokens T: Int, width C: Int, eps: Float) {
        gain.withUnsafeBufferPointer { w in
            for t in 0..<T {
                let row = x + t * C, dst = out + t * C
                var sum: Double = 0
                for i in 0..<C { sum += Double(row[i]) * Double(row[i]) }
                let scale = Float(1 / (sum / Double(C) + Double(eps)).squareRoot())
                for i in 0..<C { dst[i] = w[i] * (row[i] * scale) }
            }
        }
    }

    /// Rotates x in place, (T, heads × head_dim): in each head, the pair (j, j + head_dim/2) of
    /// token t turns by the angle in the tables (the Hugging Face rotate-half layout).
    func ropeForward(_ x: UnsafeMutablePointer<Float>, tokens T: Int, heads: Int, headDim: Int,
                     cos: UnsafePointer<Float>, sin: UnsafePointer<Float>) {
        let half = headDim / 2
        for t in 0..<T {
            let cs = cos + t * half, sn = sin + t * half
            for hd in 0..<heads {
                let v = x + (t * heads + hd) * headDim
                for j in 0..<half {
                    let a = v[j], b = v[j + half]
                    v[j] = a * cs[j] - b * sn[j]
                    v[j + half] = b * cs[j] + a * sn[j]
                }
            }
        }
    }

    /// gate = silu(gate) · up, elementwise over `count` values.
    func swigluForward(gate: UnsafeMutablePointer<Float>, up: UnsafePointer<Float>, count: Int) {
        wl_silu_mul_f32(gate, up, count)
    }

    /// out = x · Wᵀ (+ bias) (+ out when `accumulate`): x is (T, K), the stored W is (N, K), out is (T, N).
    func matmulForward(out: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>, weight w: StoredMatrix, bias: [Float]?,
                       tokens T: Int, accumulate: Bool, workspace ws: ForwardWorkspace) {
        switch kernels {
        case .blas: matmulForwardBLAS(out: out, x: x, weight: w, tokens: T, accumulate: accumulate, workspace: ws)
        case .naive: matmulForwardNaive(out: out, x: x, weight: w, tokens: T, accumulate: accumulate, workspace: ws)
        }
        if let bias {
            bias.withUnsafeBufferPointer { b in
                for t in 0..<T {
                    let row = out + t * w.rows
                    for n in 0..<w.rows { row[n] += b[n] }
                }
            }
        }
    }

    /// BLAS path of `matmulForward`: F32 weights are used in place; F16/BF16 ones are converted in
    /// tiles of whole rows, each multiplied as soon as it is converted. One token takes `sgemv`,
    /// several take `sgemm` with the weight transposed.
    func matmulForwardBLAS(out: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>, weight w: StoredMatrix,
                           tokens T: Int, accumulate: Bool, workspace ws: ForwardWorkspace) {
        let N = w.rows, K = w.cols
        let beta: Float = accumulate ? 1 : 0
        func product(_ weights: UnsafePointer<Float>, rows: Range<Int>) {
            if T == 1 {
                BLAS.sgemv(trans: false, m: rows.count, n: K, alpha: 1, a: weights, lda: K, x: x, beta: beta, y: out + rows.lowerBound)
            } else {
                BLAS.sgemm(transA: false, transB: true, m: T, n: rows.count, k: K, alpha: 1, a: x, lda: K, b: weights, ldb: K,
                           beta: beta, c: out + rows.lowerBound, ldc: N)
            }
        }
        if let f32 = w.f32 {
            product(f32, rows: 0..<N)
            return
        }
        let tileRows = max(1, ws.tileElements / K)
        var r0 = 0
        while r0 < N {
            let r1 = min(r0 + tileRows, N)
            w.decodeRows(r0..<r1, into: ws.tile)
            product(ws.tile, rows: r0..<r1)
            r0 = r1
        }
    }

    /// Reference path of `matmulForward`: one converted weight row at a time, dot products in plain
    /// loops with double accumulation.
    func matmulForwardNaive(out: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>, weight w: StoredMatrix,
                            tokens T: Int, accumulate: Bool, workspace ws: ForwardWorkspace) {
        let N = w.rows, K = w.cols
        for n in 0..<N {
            w.decodeRows(n..<(n + 1), into: ws.tile)
            for t in 0..<T {
                var sum: Double = 0
                for k in 0..<K { sum += Double(x[t * K + k]) * Double(ws.tile[k]) }
                out[t * N + n] = Float(sum) + (accumulate ? out[t * N + n] : 0)
            }
        }
    }

    /// Causal grouped-query attention for T new tokens after `past` cached positions.
    ///
    /// q is (T, heads × head_dim); keys and values are the layer's cache, (past + T, kv heads ×
    /// head_dim) with the new rows already written; out is (T, heads × head_dim). Query head h
    /// reads key/value head h / (heads / kv heads); token t sees positions 0...past + t, or, with
    /// a branch `layout`, the positions `Model.visible` names.
    func attentionForward(out: UnsafeMutablePointer<Float>, q: UnsafePointer<Float>, keys: UnsafePointer<Float>,
                          values: UnsafePointer<Float>, past P: Int, tokens T: Int, layout: BranchLayout? = nil,
                          workspace ws: ForwardWorkspace) {
        switch kernels {
        case .blas: attentionForwardBLAS(out: out, q: q, keys: keys, values: values, past: P, tokens: T, layout: layout, workspace: ws)
        case .naive: attentionForwardNaive(out: out, q: q, keys: keys, values: values, past: P, tokens: T, layout: layout, workspace: ws)
        }
    }

    /// The positions row t of a batch attends to, as three ascending, disjoint ranges: the cache,
    /// the row's parent rows (usually empty) and its own segment up to itself.
    @inline(__always)
    static func visible(row t: Int, past P: Int, layout: BranchLayout?) -> (Range<Int>, Range<Int>, ClosedRange<Int>) {
        guard let layout else { return (0..<P, P..<P, P...(P + t)) }
        let parent = layout.parents[t]
        return (0..<P, (P + parent.lowerBound)..<(P + parent.upperBound), (P + layout.segmentStarts[t])...(P + t))
    }

    /// BLAS path of `attentionForward`: per head, scores = q·Kᵀ/√d with `sgemm` (`sgemv` for one
    /// token), a masked softmax per row, then out = scores·V.
    func attentionForwardBLAS(out: UnsafeMutablePointer<Float>, q: UnsafePointer<Float>, keys: UnsafePointer<Float>,
                              values: UnsafePointer<Float>, past P: Int, tokens T: Int, layout: BranchLayout?,
                              workspace ws: ForwardWorkspace) {
        let c = config
        let S = P + T, d = c.headDim, QW = c.queryWidth, KW = c.kvWidth
        let group = c.headCount / c.kvHeadCount
        let scale = 1 / Float(d).squareRoot()
        // With several BLAS threads and a batch, heads are split between that many workers (at
        // most `scoreSlots`), each running single-threaded BLAS on its own scores: the products
        // are small and the softmax between them is serial, so this scales where BLAS does not.
        let workers = T > 1 ? min(BLAS.threadCount, ForwardWorkspace.scoreSlots, c.headCount) : 1
        func heads(_ worker: Int) {
            let scores = ws.scores(slot: worker)
            for head in stride(from: worker, to: c.headCount, by: workers) {
                let kv = head / group
                let qh = q + head * d, kh = keys + kv * d, vh = values + kv * d, oh = out + head * d
                if T == 1 {
                    BLAS.sgemv(trans: false, m: S, n: d, alpha: scale, a: kh, lda: KW, x: qh, beta: 0, y: scores)
                    softmaxRows(scores, rows: 0..<1, stride: S, width: S, past: P)
                    BLAS.sgemv(trans: true, m: S, n: d, alpha: 1, a: vh, lda: KW, x: scores, beta: 0, y: oh)
                    continue
                }
                // Causal blocks: rows r0..<r1 see no position past P + r1 - 1, so their scores
                // and the product with V stop there (about half the work of the full square for
                // a prompt on an empty cache).
                var r0 = 0
                while r0 < T {
                    let r1 = min(T, r0 + ws.attentionBlockRows)
                    let width = P + r1
                    BLAS.sgemm(transA: false, transB: true, m: r1 - r0, n: width, k: d, alpha: scale, a: qh + r0 * QW, lda: QW,
                               b: kh, ldb: KW, beta: 0, c: scores + r0 * S, ldc: S)
                    softmaxRows(scores + r0 * S, rows: r0..<r1, stride: S, width: width, past: P, layout: layout)
                    BLAS.sgemm(transA: false, transB: false, m: r1 - r0, n: d, k: width, alpha: 1, a: scores + r0 * S, lda: S,
                               b: vh, ldb: KW, beta: 0, c: oh + r0 * QW, ldc: QW)
                    r0 = r1
                }
            }
        }
        if workers > 1 {
            let threads = BLAS.threadCount
            BLAS.setThreadCount(1)
            // Each worker writes its own heads' columns of `out` and its own scores slot.
            let work = UncheckedSendable(heads)
            DispatchQueue.concurrentPerform(iterations: workers) { work.value($0) }
            BLAS.setThreadCount(threads)
        } else {
            heads(0)
        }
    }

    /// For batch rows `rows` (their scores start at `scores`, `stride` apart, `width` columns
    /// computed), row t becomes the softmax of its first past + t + 1 entries (with a branch
    /// `layout`, of the entries `Model.visible` names); its other entries below `width` become 0.
    func softmaxRows(_ scores: UnsafeMutablePointer<Float>, rows: Range<Int>, stride: Int, width: Int, past P: Int,
                     layout: BranchLayout? = nil) {
        for t in rows {
            let row = scores + (t - rows.lowerBound) * stride
            let (shared, parent, own) = Self.visible(row: t, past: P, layout: layout)
            let mine = own.lowerBound..<(own.upperBound + 1)
            var m = max(wl_max_f32(row + shared.lowerBound, shared.count), wl_max_f32(row + parent.lowerBound, parent.count))
            m = max(m, wl_max_f32(row + mine.lowerBound, mine.count))
            let sum = wl_expsum_f32(row + shared.lowerBound, shared.count, m) + wl_expsum_f32(row + parent.lowerBound, parent.count, m)
                + wl_expsum_f32(row + mine.lowerBound, mine.count, m)
            let inv = 1 / sum
            wl_scale_f32(row + shared.lowerBound, shared.count, inv)
            wl_scale_f32(row + parent.lowerBound, parent.count, inv)
            wl_scale_f32(row + mine.lowerBound, mine.count, inv)
            for s in shared.upperBound..<parent.lowerBound { row[s] = 0 }
            for s in parent.upperBound..<own.lowerBound { row[s] = 0 }
            for s in (own.upperBound + 1)..<max(width, own.upperBound + 1) { row[s] = 0 }
        }
    }

    /// Reference path of `attentionForward`: explicit loops, double accumulation.
    func attentionForwardNaive(out: UnsafeMutablePointer<Float>, q: UnsafePointer<Float>, keys: UnsafePointer<Float>,
                               values: UnsafePointer<Float>, past P: Int, tokens T: Int, layout: BranchLayout?,
                               workspace ws: ForwardWorkspace) {
        let c = config
        let d = c.headDim, QW = c.queryWidth, KW = c.kvWidth
        let group = c.headCount / c.kvHeadCount
        var weights = [Double](repeating: 0, count: P + T)
        for t in 0..<T {
            for head in 0..<c.headCount {
                let kv = head / group
                let qv = q + t * QW + head * d
                let (shared, parent, own) = Self.visible(row: t, past: P, layout: layout)
                let visible = Array(shared) + Array(parent) + Array(own)
                var m = -Double.infinity
                for s in visible {
                    var dot: Double = 0
                    for i in 0..<d { dot += Double(qv[i]) * Double(keys[s * KW + kv * d + i]) }
                    weights[s] = dot / Double(d).squareRoot()
                    m = max(m, weights[s])
                }
                var sum: Double = 0
                for s in visible {
                    weights[s] = exp(weights[s] - m)
                    sum += weights[s]
                }
                for i in 0..<d {
                    var acc: Double = 0
                    for s in visible { acc += weights[s] * Double(values[s * KW + kv * d + i]) }
                    out[t * QW + head * d + i] = Float(acc / sum)
                }
            }
        }
    }
}

/// A value handed to concurrently running workers that touch disjoint memory (checked by the
/// caller, not the compiler).
struct UncheckedSendable<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
