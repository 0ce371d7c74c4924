/// Types of the traced forward pass with interventions and its backward pass (`Model.trace`),
/// the foundation of gradient-based editing (ROME and MEMIT optimize a vector added to one
/// layer's MLP output, then solve for the weight change that produces it).
///
/// ROME's target value for one request, in outline (L the edited layer, `prompts` the context
/// templates filled with the prompt and followed by the target's tokens but its last,
/// `subjectLast` the last subject token of each, `targets` the target tokens at the positions
/// predicting them, `kl` terms on "{subject} is a" prompts against an unedited trace):
///
///     var delta = [Float](repeating: 0, count: model.config.hiddenSize)
///     for _ in 0..<steps {
///         let t = try model.trace(prompts,
///                                 interventions: [Intervention(point: .mlpOutput(layer: L), vector: delta, sites: subjectLast)],
///                                 loss: EditLoss(targets: targets, klTerms: kl, klFactor: 0.0625))
///         adam.step(&delta, gradient: t.interventionGradients[0])  // plus weight decay, norm clamp
///     }
///     // k*: mean of trace(prompts, captureMLP: [L]).mlpKeys[L] at subjectLast;
///     // v*: the MLP output there (mlpOutputs[L]) + delta.

/// A point of the residual stream: where an intervention adds a vector and where gradients are
/// taken.
///
/// Along one token's residual stream the points are, in order: the embeddings (the input of layer
/// 0), then for each layer l its attention output and its MLP output. Adding a vector to a block's
/// output is adding it to the residual stream right after that block, so the gradient with respect
/// to `.mlpOutput(layer: l)` is also the gradient with respect to the input of layer l + 1 (or of
/// the final norm after the last layer).
public enum StreamPoint: Hashable, Sendable, CustomStringConvertible {
    /// The token embeddings: the residual stream entering layer 0.
    case embeddings
    /// The output of layer `layer`'s attention block (after `o_proj` and its bias).
    case attentionOutput(layer: Int)
    /// The output of layer `layer`'s MLP (`mlp.down_proj`).
    case mlpOutput(layer: Int)

    /// Position along the stream: 0 for the embeddings, 2l + 1 after layer l's attention,
    /// 2l + 2 after its MLP.
    var index: Int {
        switch self {
        case .embeddings: return 0
        case let .attentionOutput(l): return 2 * l + 1
        case let .mlpOutput(l): return 2 * l + 2
        }
    }

    /// The layer a point belongs to (-1 for the embeddings).
    var layer: Int {
        switch self {
        case .embeddings: return -1
        case let .attentionOutput(l), let .mlpOutput(l): return l
        }
    }

    public var description: String {
        switch self {
        case .embeddings: return "embeddings"
        case let .attentionOutput(l): return "layer \(l) attention output"
        case let .mlpOutput(l): return "layer \(l) mlp output"
        }
    }
}

/// A token of one of the sequences of a trace: `position` indexes `sequences[sequence]`.
public struct TokenPosition: Hashable, Sendable {
    public var sequence: Int
    public var position: Int

    public init(sequence: Int, position: Int) {
        self.sequence = sequence; self.position = position
    }
}

/// An additive intervention: `vector` (hidden size) is added to the residual stream at `point`
/// for every token in `sites` (a site listed twice gets it twice).
///
/// ROME uses one intervention at `.mlpOutput(layer: L)` on the last subject token of every
/// prompt; MEMIT one per request.
public struct Intervention: Sendable {
    public var point: StreamPoint
    public var vector: [Float]
    public var sites: [TokenPosition]

    public init(point: StreamPoint, vector: [Float], sites: [TokenPosition]) {
        self.point = point; self.vector = vector; self.sites = sites
    }
}

/// A token to predict: the logits at `position` (the next-token prediction after the token
/// there) score `token`, and −log p(token) enters the loss with `weight`.
public struct TargetToken: Sendable {
    public var sequence: Int
    public var position: Int
    public var token: Int
    public var weight: Double

    public init(sequence: Int, position: Int, token: Int, weight: Double = 1) {
        self.sequence = sequence; self.position = position; self.token = token; self.weight = weight
    }
}

/// A next-token distribution to stay close to: KL(reference ‖ model) of the distributions at
/// `position` enters the loss with `weight`.
public struct KLTerm: Sendable {
    public var sequence: Int
    public var position: Int
    /// log p_ref over the whole vocabulary (normalized again on use), e.g. `ModelTrace.logProbs`
    /// of an unedited pass.
    public var referenceLogProbs: [Float]
    public var weight: Double

    public init(sequence: Int, position: Int, referenceLogProbs: [Float], weight: Double = 1) {
        self.sequence = sequence; self.position = position; self.referenceLogProbs = referenceLogProbs; self.weight = weight
    }
}

/// The loss of a trace, in natural-log units:
///
///     loss = Σᵢ wᵢ·(−log p(targetᵢ)) / Σᵢ wᵢ  +  klFactor · Σⱼ wⱼ·KL(refⱼ ‖ pⱼ) / Σⱼ wⱼ
///
/// (each weighted mean is 0 when its list is empty). With unit weights this is ROME's
/// objective without the weight decay on the vector: the mean negative log-likelihood of the
/// target tokens plus `klFactor` times the mean KL divergence at the "essence" prompts. Weights
/// give other normalizations, e.g. 1 / (target length) per token for a mean over prompts of
/// per-prompt means.
public struct EditLoss: Sendable {
    public var targets: [TargetToken]
    public var klTerms: [KLTerm]
    public var klFactor: Double

    public init(targets: [TargetToken], klTerms: [KLTerm] = [], klFactor: Double = 1) {
        self.targets = targets; self.klTerms = klTerms; self.klFactor = klFactor
    }
}

/// Where a later trace of the same sequences may start: at layer `layer` (the stream entering
/// it, point index 2·layer), with every token before `starts[s]` of sequence s held fixed.
///
/// A vector added at a point at or after 2·layer, on tokens at or after the starts, changes
/// nothing before them (attention is causal), so their keys and values in layers ≥ `layer` can
/// be taken from an earlier trace instead of being recomputed. ROME and MEMIT add their vector at
/// the subject's last token: the context templates and the subject before it are the fixed part.
public struct TraceResumePoint: Sendable, Equatable {
    public var layer: Int
    public var starts: [Int]
    public init(layer: Int, starts: [Int]) { self.layer = layer; self.starts = starts }
}

/// What a trace kept for `TraceResumePoint` (`ModelTrace.context`): the fixed tokens' keys
/// (after the rotary embedding) and values in every layer from `point.layer` on, and the
/// residual stream entering that layer at the other tokens (before any vector added there).
public struct TraceContext: Sendable {
    public let sequences: [[Int]]
    public let point: TraceResumePoint
    /// Per layer l ≥ point.layer (index l − point.layer): (Σ starts, kv width) keys and values,
    /// the fixed rows of each sequence in order.
    let keys: [[Float]]
    let values: [[Float]]
    /// (Σ (length − start), hidden): the stream entering `point.layer` at the resumed rows.
    let stream: [Float]
}

/// What `Model.trace` computed. Per-sequence arrays are row-major (tokens of that sequence, width).
public struct ModelTrace: Sendable {
    /// The total loss (0 without an `EditLoss`).
    public var loss: Double = 0
    /// The weighted mean negative log-likelihood of the targets.
    public var nll: Double = 0
    /// The weighted mean KL divergence of the KL terms (before `klFactor`).
    public var kl: Double = 0
    /// log p(token) of each target, in the order of `EditLoss.targets`.
    public var targetLogProbs: [Double] = []
    /// ∂loss/∂vector of each intervention (hidden size), in the order given; empty without a loss.
    public var interventionGradients: [[Float]] = []
    /// ∂loss/∂(residual stream at the point) for every requested point: per sequence, (tokens, hidden).
    public var streamGradients: [StreamPoint: [[Float]]] = [:]
    /// For each requested layer, the input of `mlp.down_proj` (silu(gate) · up, the "keys" of
    /// ROME and MEMIT): per sequence, (tokens, intermediate).
    public var mlpKeys: [Int: [[Float]]] = [:]
    /// For each requested layer, the output of `mlp.down_proj` without any intervention vector:
    /// per sequence, (tokens, hidden).
    public var mlpOutputs: [Int: [[Float]]] = [:]
    /// For each requested point, the residual stream there (including the intervention vectors
    /// added at that point): per sequence, (tokens, hidden). At `.mlpOutput(layer: l)` this is the
    /// output of the whole layer l (MEMIT's hidden state z).
    public var streamValues: [StreamPoint: [[Float]]] = [:]
    /// log-softmax of the logits at each requested position (vocabulary size), in the order given.
    public var logProbs: [[Float]] = []
    /// What a later trace needs to resume at the requested `TraceResumePoint` (nil when none was asked).
    public var context: TraceContext?
}
