import Foundation
import CShims
import TensorIO
import TestSupport
import XCTest
@testable import Engine

/// The forward pass against known answers and an independent float64 NumPy reference
/// (scripts/reference_logprobs.py), plus the KV cache, the dtypes and the BLAS/naive kernels.
///
/// Tolerances: per-token log-probabilities within 1e-3 of the float64 reference; a cached
/// continuation within 1e-4 of a full pass; BLAS within 1e-4 of the naive kernels on a tiny model.
final class ForwardTests: XCTestCase {
    /// "The capital of France is" (SmolLM2 tokenizer).
    static let parisPrompt = [504, 3575, 282, 4649, 314]
    static let paris = 7042
    /// p(" Paris") from the float64 reference on the fixture weights.
    static let parisProbability: Float = 0.7725

    /// "The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris, France. It
    /// is named after the engineer Gustave Eiffel, whose company designed and built it." (39 ids)
    static let eiffel = [504, 414, 46682, 18669, 314, 253, 34554, 29, 1009, 27672, 11637, 335, 260, 21633, 367, 7621,
                         281, 7042, 28, 4649, 30, 657, 314, 3365, 990, 260, 10776, 26821, 1134, 414, 46682, 28, 3449,
                         2727, 2724, 284, 2837, 357, 30]

    static var repositoryRoot: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    }

    /// The fixture venv's Python; skipped locally, a failure under CI, when it is missing.
    static func referencePython() throws -> String {
        try Fixtures.require(Fixtures.cacheRoot + "/venv/bin/python", hint: "run scripts/setup.sh")
    }

    struct Reference: Decodable {
        var logprobs: [Double]
        var argmax: [Int]
        var argmax_prob: [Double]
    }

    /// Runs scripts/reference_logprobs.py on `model` and `tokens`.
    static func reference(model: String, tokens: [Int]) throws -> Reference {
        let python = try referencePython()
        let script = repositoryRoot + "/scripts/reference_logprobs.py"
        let out = try runProcess(python, [script, model, "--tokens", tokens.map(String.init).joined(separator: ",")])
        guard out.status == 0 else {
            XCTFail("reference_logprobs.py failed (\(out.status)): \(out.stderr)")
            throw XCTSkip("reference failed")
        }
        return try JSONDecoder().decode(Reference.self, from: Data(out.stdout.utf8))
    }

    /// Loaded once per process: the tests share the memory maps.
    nonisolated(unsafe) static var models: [String: Model] = [:]
    static func smolLM2(_ dtype: String) throws -> Model {
        if let m = models[dtype] { return m }
        let m = try Model(directory: try Fixtures.smolLM2(dtype))
        models[dtype] = m
        return m
    }

    /// Next-token log-probabilities of every position after the first, by a full forward pass.
    static func fullLogProbs(_ model: Model, _ tokens: [Int], maxTokens: Int = 128) throws -> [Double] {
        let cache = model.makeCache(), ws = model.makeWorkspace(maxTokens: maxTokens)
        var out = [Double](repeating: 0, count: tokens.count - 1)
        try model.forward(tokens, cache: cache, workspace: ws, logitRows: 0..<(tokens.count - 1)) { i, logits in
            out[i] = Scorer.logSoftmax(logits, at: tokens[i + 1])
        }
        return out
    }

    // MARK: - SmolLM2-135M (F32)

    func testGreedyNextTokenIsParis() throws {
        let scorer = Scorer(model: try Self.smolLM2("f32"))
        let (id, p) = try scorer.greedyNext(tokens: Self.parisPrompt)
        XCTAssertEqual(id, Self.paris)
        XCTAssertEqual(p, Self.parisProbability, accuracy: 0.01)
    }

    func testLogProbabilitiesMatchFloat64Reference() throws {
        let model = try Self.smolLM2("f32")
        let dir = try Fixtures.smolLM2("f32")
        let ref = try Self.reference(model: dir, tokens: Self.eiffel)
        let got = try Scorer(model: model).logProbabilities(tokens: Self.eiffel)
        XCTAssertEqual(got.count, Self.eiffel.count - 1)
        XCTAssertEqual(ref.logprobs.count, got.count)
        let maxDiff = zip(got, ref.logprobs).map { abs(Double($0) - $1) }.max() ?? .infinity
        print("ForwardTests: max |Δ log p| vs float64 reference over \(got.count) tokens: \(maxDiff)")
        XCTAssertLessThanOrEqual(maxDiff, 1e-3)
        // The reference's greedy predictions agree with ours where they are clear.
        let scorer = Scorer(model: model)
        for i in [4, 17, 30] {
            let (id, p) = try scorer.greedyNext(tokens: Array(Self.eiffel[...i]))
            XCTAssertEqual(id, ref.argmax[i])
            XCTAssertEqual(Double(p), ref.argmax_prob[i], accuracy: 1e-3)
        }
    }

    func testCachedContinuationMatchesFullPass() throws {
        let model = try Self.smolLM2("f32")
        let tokens = Self.eiffel
        let full = try Self.fullLogProbs(model, tokens)

        // Prefix, then the rest as a second batch continuing the cache.
        let cache = model.makeCache(capacity: 4), ws = model.makeWorkspace()
        let split = 17
        var cached = [Double](repeating: 0, count: tokens.count - 1)
        try model.forward(Array(tokens[..<split]), cache: cache, workspace: ws, logitRows: 0..<split) { i, logits in
            cached[i] = Scorer.logSoftmax(logits, at: tokens[i + 1])
        }
        try model.forward(Array(tokens[split...]), cache: cache, workspace: ws, logitRows: 0..<(tokens.count - split - 1)) { i, logits in
            cached[split + i] = Scorer.logSoftmax(logits, at: tokens[split + i + 1])
        }
        XCTAssertEqual(cache.tokens, tokens)
        XCTAssertLessThanOrEqual(zip(full, cached).map { abs($0 - $1) }.max()!, 1e-4)

        // Small batches (several sgemm calls) and one token at a time (the sgemv path).
        for batch in [8, 1] {
            let tail = 12
            let chunked = try Self.fullLogProbs(model, Array(tokens[..<tail]), maxTokens: batch)
            let diff = zip(full.prefix(tail - 1), chunked).map { abs($0 - $1) }.max()!
            XCTAssertLessThanOrEqual(diff, 1e-4, "batches of \(batch)")
        }

        // Multiple choice: two continuations after one prefix, each against the full pass.
        let scorer = Scorer(model: model)
        let prefix = Array(tokens[..<split])
        let choices = [Array(tokens[split..<(split + 4)]), [4649, 30, 657]]
        for (n, choice) in choices.enumerated() {
            let sum = try scorer.scoreContinuation(prefix: prefix, continuation: choice).sumLogProb
            // The second choice reuses the prefix (all but its last token, whose logits are needed).
            XCTAssertEqual(scorer.lastReusedPositions, n == 0 ? 0 : split - 1)
            let whole = try Self.fullLogProbs(model, prefix + choice)
            let expected = whole[(split - 1)...].reduce(0, +)
            XCTAssertEqual(sum, expected, accuracy: 1e-4)
        }
        // " Paris" is the greedy continuation of the France prompt; " Lyon" is not.
        XCTAssertTrue(try scorer.scoreContinuation(prefix: Self.parisPrompt, continuation: [Self.paris]).isGreedy)
        XCTAssertFalse(try scorer.scoreContinuation(prefix: Self.parisPrompt, continuation: [49151]).isGreedy)
    }

    /// Choices scored together as branches of one batch equal choices scored one at a time:
    /// three choices after one prompt, one pair with its own prompt (a shorter shared part), and
    /// with batches of 16 tokens a pair too long for a batch and choices split over two batches.
    func testBatchedChoicesEqualOneAtATime() throws {
        let model = try Self.smolLM2("f32")
        let prompt = Array(Self.eiffel[..<14])
        let other = Array(Self.eiffel[..<9]) + [4649, 314]
        let pairs: [(prefix: [Int], continuation: [Int])] = [
            (prompt, Array(Self.eiffel[14..<18])), (prompt, [Self.paris]), (prompt, [4649, 30, 657]),
            (other, [Self.paris, 30]), (Self.parisPrompt, [Self.paris]), (Self.parisPrompt, [49151]),
        ]
        for maxTokens in [128, 16] {
            let single = Scorer(model: model, maxTokens: maxTokens), batched = Scorer(model: model, maxTokens: maxTokens)
            let expected = try pairs.map { try single.scoreContinuation(prefix: $0.prefix, continuation: $0.continuation) }
            let got = try batched.scoreContinuations(pairs)
            for (k, (e, g)) in zip(expected, got).enumerated() {
                XCTAssertEqual(g.sumLogProb, e.sumLogProb, accuracy: 1e-4, "pair \(k), batches of \(maxTokens)")
                XCTAssertEqual(g.isGreedy, e.isGreedy, "pair \(k)")
            }
            // The France pairs: " Paris" greedy, the last vocabulary entry not.
            XCTAssertTrue(got[4].isGreedy)
            XCTAssertFalse(got[5].isGreedy)
            // Again on the same scorer: the shared part now comes from the cache.
            let again = try batched.scoreContinuations(Array(pairs[..<3]))
            XCTAssertGreaterThan(batched.lastReusedPositions, 0)
            for k in 0..<3 { XCTAssertEqual(again[k].sumLogProb, expected[k].sumLogProb, accuracy: 1e-4) }
        }
    }

    /// Several questions in one call: questions with a shared context and differing choices,
    /// one whose choices have different contexts, one too long for a batch (split) and a pair
    /// too long even alone; every score equals scoring the pair by itself.
    func testQuestionsTogetherEqualOneAtATime() throws {
        let model = try Self.smolLM2("f32")
        let e = Self.eiffel
        let questions: [[(prefix: [Int], continuation: [Int])]] = [
            [(Array(e[..<14]), Array(e[14..<18])), (Array(e[..<14]), [Self.paris]), (Array(e[..<14]), [4649, 30, 657])],
            [(Self.parisPrompt, [Self.paris]), (Self.parisPrompt, [49151])],
            [(Array(e[..<9]) + [4649, 314], [Self.paris, 30]), (Array(e[..<6]), [253, 34554])],
            [],
            [(Array(e[..<10]), Array(e[10..<16])), (Array(e[..<10]), Array(e[10..<13])), (Array(e[..<10]), [4649, 314, 7042, 30]),
             (Array(e[..<10]), Array(e[10..<20]))],
            [(Array(e[..<12]), Array(e[12...]))],
        ]
        let single = Scorer(model: model, maxTokens: 24), together = Scorer(model: model, maxTokens: 24)
        XCTAssertGreaterThan(questions[4].reduce(0) { $0 + $1.continuation.count } + 10, 24, "question 4 needs two batches")
        XCTAssertGreaterThan(e.count - 12 + 1, 24, "the last pair does not fit a batch")
        let got = try together.scoreQuestions(questions)
        XCTAssertEqual(got.map(\.count), questions.map(\.count))
        for (q, question) in questions.enumerated() {
            for (j, pair) in question.enumerated() {
                let expected = try single.scoreContinuation(prefix: pair.prefix, continuation: pair.continuation)
                XCTAssertEqual(got[q][j].sumLogProb, expected.sumLogProb, accuracy: 1e-4, "question \(q) pair \(j)")
                XCTAssertEqual(got[q][j].isGreedy, expected.isGreedy, "question \(q) pair \(j)")
            }
        }
        XCTAssertTrue(got[1][0].isGreedy)
        XCTAssertFalse(got[1][1].isGreedy)
    }

    /// `greedyTokens` (pairs batched as in `scoreQuestions`) gives, at every continuation
    /// position, the token `greedyNext` picks after the same teacher-forced prefix.
    func testGreedyTokensEqualStepByStepGreedyNext() throws {
        let model = try Self.smolLM2("f32")
        let e = Self.eiffel
        let pairs: [(prefix: [Int], continuation: [Int])] = [
            (Self.parisPrompt, [Self.paris, 30]), (Array(e[..<6]), Array(e[6..<12])), (Array(e[..<9]), [4649, 314, 7042]),
            (Array(e[..<2]), Array(e[2...])),   // too long for one batch of 24: scored alone
        ]
        let got = try Scorer(model: model, maxTokens: 24).greedyTokens(pairs)
        let single = Scorer(model: model)
        var expected: [[Int]] = []
        for p in pairs {
            expected.append(try p.continuation.indices.map { i in try single.greedyNext(tokens: p.prefix + p.continuation[..<i]).id })
        }
        XCTAssertEqual(got, expected)
        XCTAssertEqual(got[0][0], Self.paris)
        XCTAssertEqual(try Scorer(model: model).greedyTokens([]), [])
    }

    func testHalfPrecisionModelsAgreeOnGreedyToken() throws {
        for dtype in ["bf16", "f16"] {
            let model = try Self.smolLM2(dtype)
            XCTAssertEqual(model.storageDType.rawValue.lowercased(), dtype)
            let (id, p) = try Scorer(model: model).greedyNext(tokens: Self.parisPrompt)
            print("ForwardTests: \(dtype) greedy \(id) p=\(p)")
            XCTAssertEqual(id, Self.paris, dtype)
            XCTAssertEqual(p, Self.parisProbability, accuracy: 0.05, dtype)
        }
    }

    func testBadTokenIsRefusedAndCacheUnchanged() throws {
        let model = try Self.smolLM2("f32")
        let scorer = Scorer(model: model)
        _ = try scorer.greedyNext(tokens: [504, 3575])
        XCTAssertThrowsError(try scorer.greedyNext(tokens: [504, 3575, 49152])) { error in
            XCTAssertTrue("\(error)".contains("token id 49152 is outside the vocabulary of 49152"), "\(error)")
        }
        XCTAssertEqual(try scorer.logProbabilities(tokens: [504]), [])
    }

    // MARK: - Config

    func testUnsupportedArchitectureIsRefused() throws {
        let tmp = try TemporaryDirectory("fwd-config")
        let config = #"{"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "n_embd": 768}"#
        try Data(config.utf8).write(to: URL(fileURLWithPath: tmp.path + "/config.json"))
        XCTAssertThrowsError(try ModelConfig.load(directory: tmp.path)) { error in
            XCTAssertEqual("\(error)", "'\(tmp.path)/config.json': unsupported model: architecture 'GPT2LMHeadModel' is not supported (supported: LlamaForCausalLM, Qwen2ForCausalLM)")
        }
        XCTAssertThrowsError(try Model(directory: tmp.path)) { error in
            XCTAssertTrue("\(error)".contains("'GPT2LMHeadModel' is not supported"), "\(error)")
        }
        // Supported architecture, unsupported variant.
        var json = Self.tinyConfigJSON(tied: true, qwen: false)
        json = json.replacingOccurrences(of: #""hidden_act": "silu""#, with: #""hidden_act": "gelu""#)
        XCTAssertThrowsError(try ModelConfig(json: try JSONParser.parse(Array(json.utf8)), path: "c.json")) { error in
            XCTAssertEqual("\(error)", "'c.json': unsupported model: hidden_act 'gelu' (only 'silu' is implemented)")
        }
        let missing = #"{"architectures": ["LlamaForCausalLM"], "hidden_size": 8}"#
        XCTAssertThrowsError(try ModelConfig(json: try JSONParser.parse(Array(missing.utf8)), path: "c.json")) { error in
            XCTAssertEqual("\(error)", "'c.json': invalid model config: missing \"intermediate_size\"")
        }
    }

    func testSmolLM2ConfigIsParsed() throws {
        let c = try ModelConfig.load(directory: try Fixtures.smolLM2("f32"))
        XCTAssertEqual(c, ModelConfig(hiddenSize: 576, intermediateSize: 1536, layerCount: 30, headCount: 9, kvHeadCount: 3,
                                      headDim: 64, ropeTheta: 100_000, rmsNormEps: 1e-5, vocabSize: 49152,
                                      tieWordEmbeddings: true, maxPositionEmbeddings: 8192))
    }

    // MARK: - Tiny synthetic models: BLAS against naive kernels and the reference

    static func tinyConfigJSON(tied: Bool, qwen: Bool) -> String {
        """
        {"architectures": ["\(qwen ? "Qwen2ForCausalLM" : "LlamaForCausalLM")"], "model_type": "\(qwen ? "qwen2" : "llama")",
         "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4,
         "num_key_value_heads": 2, "head_dim": 8, "rope_theta": 10000.0, "rms_norm_eps": 1e-6, "vocab_size": 64,
         "tie_word_embeddings": \(tied), "max_position_embeddings": 64, "hidden_act": "silu", "rope_scaling": null}
        """
    }

    /// A random model with GQA (4 heads, 2 kv heads); Qwen2 flavour adds q/k/v biases and an
    /// untied head.
    static func writeTinyLlama(_ dir: String, dtype: DType, qwen: Bool) throws {
        let C = 32, I = 48, Q = 32, KV = 16, V = 64
        var rng = SplitMix64(seed: qwen ? 7 : 3)
        var specs: [(String, [Int])] = [("model.embed_tokens.weight", [V, C]), ("model.norm.weight", [C])]
        for l in 0..<2 {
            let p = "model.layers.\(l)."
            specs += [(p + "input_layernorm.weight", [C]), (p + "post_attention_layernorm.weight", [C]),
                      (p + "self_attn.q_proj.weight", [Q, C]), (p + "self_attn.k_proj.weight", [KV, C]),
                      (p + "self_attn.v_proj.weight", [KV, C]), (p + "self_attn.o_proj.weight", [C, Q]),
                      (p + "mlp.gate_proj.weight", [I, C]), (p + "mlp.up_proj.weight", [I, C]), (p + "mlp.down_proj.weight", [C, I])]
            if qwen {
                specs += [(p + "self_attn.q_proj.bias", [Q]), (p + "self_attn.k_proj.bias", [KV]), (p + "self_attn.v_proj.bias", [KV])]
            }
        }
        if qwen { specs.append(("lm_head.weight", [V, C])) }
        var tensors: [(name: String, dtype: DType, shape: [Int], bytes: [UInt8])] = []
        for (name, shape) in specs {
            let n = shape.reduce(1, *)
            let isNorm = name.hasSuffix("norm.weight")
            let values = (0..<n).map { _ in isNorm ? 1 + 0.2 * rng.nextGaussian() : 0.3 * rng.nextGaussian() }
            var bytes = [UInt8](repeating: 0, count: n * dtype.size)
            values.withUnsafeBufferPointer { v in bytes.withUnsafeMutableBytes { encodeFromFloat(v, dtype: dtype, into: $0) } }
            tensors.append((name, dtype, shape, bytes))
        }
        try writeTinyModel(dir, tensors: tensors)
        try Data(tinyConfigJSON(tied: !qwen, qwen: qwen).utf8).write(to: URL(fileURLWithPath: dir + "/config.json"))
    }

    /// All logits of `tokens`, (T, V) flattened, fed in batches of `batch`.
    static func allLogits(_ model: Model, _ tokens: [Int], batch: Int, blockRows: Int = 64) throws -> [Float] {
        let cache = model.makeCache(capacity: 2), ws = model.makeWorkspace(maxTokens: batch)
        ws.attentionBlockRows = blockRows
        var out: [Float] = []
        try model.forward(tokens, cache: cache, workspace: ws, logitRows: 0..<tokens.count) { _, logits in out += logits }
        return out
    }

    /// `forwardBranches` on both kernels: each branch's logits equal a full pass over the cached
    /// prefix followed by that branch alone (naive kernels), and the cache is left as it was.
    func testBranchesMatchSeparatePassesOnTinyModel() throws {
        let tmp = try TemporaryDirectory("fwd-branches")
        let dir = tmp.path + "/llama-f32"
        try Self.writeTinyLlama(dir, dtype: .f32, qwen: false)
        let prefix = [3, 17, 42, 5, 63]
        let branches = [[0, 9, 9], [28], [51, 7, 2, 11], [9, 3]]
        for kernels in [Kernels.blas, .naive] {
            let model = try Model(directory: dir, kernels: kernels)
            let naive = try Model(directory: dir, kernels: .naive)
            let cache = model.makeCache(capacity: 2), ws = model.makeWorkspace(maxTokens: 16)
            try model.forward(prefix, cache: cache, workspace: ws)
            var got = branches.map { [[Float]](repeating: [], count: $0.count) }
            try model.forwardBranches(branches, cache: cache, workspace: ws) { b, i, logits in got[b][i] = Array(logits) }
            XCTAssertEqual(cache.tokens, prefix, "the cache is unchanged")
            let V = model.config.vocabSize
            for (b, branch) in branches.enumerated() {
                let whole = try Self.allLogits(naive, prefix + branch, batch: 64)
                for i in branch.indices {
                    let expected = whole[((prefix.count + i) * V)..<((prefix.count + i + 1) * V)]
                    let diff = zip(got[b][i], expected).map { abs($0 - $1) }.max()!
                    XCTAssertLessThanOrEqual(diff, 1e-4, "\(kernels) branch \(b) token \(i)")
                }
            }
        }
    }

    /// `forwardTree` on both kernels: roots continue the cache, children continue their root, and
    /// each node's logits equal a full naive pass over cache + (root) + node; nodes only see their
    /// own ancestors, and the cache is left as it was.
    func testTreeMatchesSeparatePassesOnTinyModel() throws {
        let tmp = try TemporaryDirectory("fwd-tree")
        let dir = tmp.path + "/llama-f32"
        try Self.writeTinyLlama(dir, dtype: .f32, qwen: false)
        let prefix = [3, 17, 42]
        let nodes: [Model.BranchNode] = [
            .init(tokens: [5, 63, 8]), .init(tokens: [0, 9], parent: 0), .init(tokens: [28], parent: 0),
            .init(tokens: [51, 7, 2, 11], logits: 1..<3), .init(tokens: [9, 3, 1], parent: 3, logits: 0..<2),
            .init(tokens: [44]),
        ]
        for kernels in [Kernels.blas, .naive] {
            let model = try Model(directory: dir, kernels: kernels)
            let naive = try Model(directory: dir, kernels: .naive)
            let cache = model.makeCache(capacity: 2), ws = model.makeWorkspace(maxTokens: 16)
            ws.attentionBlockRows = 4  // blocks that split nodes
            try model.forward(prefix, cache: cache, workspace: ws)
            var got: [[Int: [Float]]] = nodes.map { _ in [:] }
            try model.forwardTree(nodes, cache: cache, workspace: ws) { n, i, logits in got[n][i] = Array(logits) }
            XCTAssertEqual(cache.tokens, prefix, "the cache is unchanged")
            let V = model.config.vocabSize
            for (n, node) in nodes.enumerated() {
                XCTAssertEqual(got[n].keys.sorted(), Array(node.logits), "node \(n) visits the indices it asks for")
                let before = prefix + (node.parent.map { nodes[$0].tokens } ?? [])
                let whole = try Self.allLogits(naive, before + node.tokens, batch: 64)
                for (i, logits) in got[n] {
                    let expected = whole[((before.count + i) * V)..<((before.count + i + 1) * V)]
                    let diff = zip(logits, expected).map { abs($0 - $1) }.max()!
                    XCTAssertLessThanOrEqual(diff, 1e-4, "\(kernels) node \(n) token \(i)")
                }
            }
        }
    }

    /// `forwardSteps`: three sequences of different lengths, each with its own cache, step
    /// twice together; every row's logits equal a naive full pass over that sequence alone, and
    /// a bad id leaves every cache as it was.
    func testStepsMatchSeparatePassesOnTinyModel() throws {
        let tmp = try TemporaryDirectory("fwd-steps")
        for qwen in [false, true] {
            let dir = tmp.path + "/\(qwen ? "qwen" : "llama")-f32"
            try Self.writeTinyLlama(dir, dtype: .f32, qwen: qwen)
            let naive = try Model(directory: dir, kernels: .naive)
            for kernels in [Kernels.blas, .naive] {
                let model = try Model(directory: dir, kernels: kernels)
                let ws = model.makeWorkspace(maxTokens: 8)
                var sequences = [[3, 17, 42, 5], [9], [51, 7, 2, 11, 0, 28, 63]]
                let caches = sequences.map { _ in model.makeCache(capacity: 2) }
                for (s, cache) in zip(sequences, caches) { try model.forward(s, cache: cache, workspace: ws) }
                for next in [[8, 44, 1], [30, 30, 12]] {
                    var got: [Int: [Float]] = [:]
                    try model.forwardSteps(next, caches: caches, workspace: ws) { t, logits in got[t] = Array(logits) }
                    XCTAssertEqual(got.keys.sorted(), [0, 1, 2])
                    let V = model.config.vocabSize
                    for t in 0..<3 {
                        sequences[t].append(next[t])
                        XCTAssertEqual(caches[t].tokens, sequences[t], "row \(t) appended to its own cache")
                        let whole = try Self.allLogits(naive, sequences[t], batch: 64)
                        let diff = zip(got[t]!, whole.suffix(V)).map { abs($0 - $1) }.max()!
                        XCTAssertLessThanOrEqual(diff, 1e-4, "\(kernels) qwen \(qwen) row \(t)")
                    }
                }
                XCTAssertThrowsError(try model.forwardSteps([1, 64, 2], caches: caches, workspace: ws) { _, _ in })
                XCTAssertEqual(caches.map(\.tokens), sequences, "a refused step changes no cache")
            }
        }
    }

    func testBLASMatchesNaiveKernelsAndReferenceOnTinyModels() throws {
        let tmp = try TemporaryDirectory("fwd-tiny")
        let tokens = [3, 17, 42, 5, 63, 0, 9, 9, 28, 51, 7]
        for qwen in [false, true] {
            for dtype in [DType.f32, .bf16, .f16] {
                let dir = tmp.path + "/\(qwen ? "qwen" : "llama")-\(dtype.rawValue)"
                try Self.writeTinyLlama(dir, dtype: dtype, qwen: qwen)
                let blas = try Model(directory: dir)
                let naive = try Model(directory: dir, kernels: .naive)
                XCTAssertEqual(blas.config.attentionBias, qwen)
                let reference = try Self.allLogits(naive, tokens, batch: 64)
                // Causal blocks of 3 query rows cross the batches' rows and the cache.
                for (batch, blockRows) in [(64, 64), (64, 3), (4, 3), (1, 64)] {
                    let got = try Self.allLogits(blas, tokens, batch: batch, blockRows: blockRows)
                    let diff = zip(got, reference).map { abs($0 - $1) }.max()!
                    XCTAssertLessThanOrEqual(diff, 1e-4, "\(dir) batch \(batch), attention blocks of \(blockRows)")
                }
                if dtype == .bf16 {
                    let ref = try Self.reference(model: dir, tokens: tokens)
                    let got = try Scorer(model: blas).logProbabilities(tokens: tokens)
                    let diff = zip(got, ref.logprobs).map { abs(Double($0) - $1) }.max()!
                    XCTAssertLessThanOrEqual(diff, 1e-4, "\(dir) vs reference_logprobs.py")
                }
            }
        }
    }
}

/// The engine's vectorized row kernels (CShims/vmath.c) against libm in double.
final class RowKernelTests: XCTestCase {
    func testExpMatchesLibmWithinFewUlps() {
        var worst = 0.0
        var x: Float = -87
        while x <= 88 {
            let got = Double(wl_exp_f32(x)), want = Foundation.exp(Double(x))
            worst = max(worst, abs(got - want) / want)
            x += 0.001
        }
        XCTAssertLessThanOrEqual(worst, 3e-7, "relative error of exp over [-87, 88]")
        XCTAssertEqual(wl_exp_f32(-1000), wl_exp_f32(-87), "inputs are clamped")
    }

    func testSoftmaxPiecesAndSiLUMatchDoubleReference() {
        var rng = SystemRandomNumberGenerator()
        for n in [0, 1, 15, 16, 17, 100, 1000] {
            let xs = (0..<n).map { _ in Float.random(in: -30...30, using: &rng) }
            let m = wl_max_f32(xs, n)
            XCTAssertEqual(m, xs.max() ?? -.infinity)
            var e = xs
            let sum = wl_expsum_f32(&e, n, m)
            let want = xs.map { Foundation.exp(Double($0 - m)) }  // the kernel subtracts in F32
            XCTAssertEqual(Double(sum), want.reduce(0, +), accuracy: 1e-5 * max(1, want.reduce(0, +)), "n \(n)")
            for i in 0..<n { XCTAssertEqual(Double(e[i]), want[i], accuracy: 3e-7 * want[i] + 1e-30, "n \(n) i \(i)") }
            var scaled = e
            wl_scale_f32(&scaled, n, 0.5)
            for i in 0..<n { XCTAssertEqual(scaled[i], e[i] * 0.5) }
            var gate = xs
            let up = xs.reversed().map { $0 / 7 }
            wl_silu_mul_f32(&gate, up, n)
            for i in 0..<n {
                let z = Double(xs[i]), expected = z / (1 + Foundation.exp(-z)) * Double(up[i])
                XCTAssertEqual(Double(gate[i]), expected, accuracy: 1e-6 * max(1, abs(expected)), "silu n \(n) i \(i)")
            }
        }
    }
}
