import TensorIO

/// The hyperparameters of a LLaMA-family decoder (LLaMA, SmolLM, Qwen2), read from a Hugging Face
/// `config.json`.
///
/// Only variants the engine computes exactly are accepted: SiLU-gated MLPs without bias, RMSNorm,
/// rotary embeddings in the Hugging Face (rotate-half) layout with no scaling or linear scaling,
/// full causal attention (no sliding window).
public struct ModelConfig: Sendable, Equatable {
    /// Architectures (the `architectures[0]` of config.json) and their `model_type`.
    public static let supportedArchitectures: [String: String] = [
        "LlamaForCausalLM": "llama",
        "Qwen2ForCausalLM": "qwen2",
    ]

    /// `architectures[0]`, e.g. "LlamaForCausalLM".
    public var architecture: String
    /// `model_type`, e.g. "llama".
    public var modelType: String
    /// C: width of the residual stream.
    public var hiddenSize: Int
    /// Width of the MLP's hidden layer.
    public var intermediateSize: Int
    public var layerCount: Int
    /// Query heads.
    public var headCount: Int
    /// Key/value heads (grouped-query attention); divides `headCount`.
    public var kvHeadCount: Int
    /// Width of one head (`head_dim`, default hidden / heads); even.
    public var headDim: Int
    /// θ of the rotary embedding.
    public var ropeTheta: Double
    /// Positions are divided by this before rotation (`rope_scaling` of type "linear"); 1 otherwise.
    public var ropeLinearFactor: Double
    public var rmsNormEps: Double
    public var vocabSize: Int
    /// The output projection reuses the token embedding (no `lm_head.weight`).
    public var tieWordEmbeddings: Bool
    /// q, k and v projections carry biases (always for Qwen2; `attention_bias` for LLaMA, where o
    /// carries one too).
    public var attentionBias: Bool
    /// Positions beyond this are refused.
    public var maxPositionEmbeddings: Int

    /// Width of all query heads together (heads × head_dim).
    public var queryWidth: Int { headCount * headDim }
    /// Width of all key (or value) heads together (kv heads × head_dim).
    public var kvWidth: Int { kvHeadCount * headDim }

    /// A configuration from explicit values (tests, synthetic models).
    public init(architecture: String = "LlamaForCausalLM", modelType: String = "llama", hiddenSize: Int, intermediateSize: Int,
                layerCount: Int, headCount: Int, kvHeadCount: Int, headDim: Int? = nil, ropeTheta: Double = 10000,
                ropeLinearFactor: Double = 1, rmsNormEps: Double = 1e-5, vocabSize: Int, tieWordEmbeddings: Bool = true,
                attentionBias: Bool = false, maxPositionEmbeddings: Int = 2048) {
        self.architecture = architecture; self.modelType = modelType
        self.hiddenSize = hiddenSize; self.intermediateSize = intermediateSize; self.layerCount = layerCount
        self.headCount = headCount; self.kvHeadCount = kvHeadCount; self.headDim = headDim ?? hiddenSize / headCount
        self.ropeTheta = ropeTheta; self.ropeLinearFactor = ropeLinearFactor; self.rmsNormEps = rmsNormEps
        self.vocabSize = vocabSize; self.tieWordEmbeddings = tieWordEmbeddings; self.attentionBias = attentionBias
        self.maxPositionEmbeddings = maxPositionEmbeddings
    }

    /// Reads `directory/config.json`.
    /// - Throws: `ModelError.invalidConfig` when the file is missing or malformed,
    ///   `ModelError.unsupportedModel` for architectures or variants the engine does not implement.
    public static func load(directory: String) throws -> ModelConfig {
        let path = directory + "/config.json"
        let map: MappedFile
        do {
            map = try MappedFile(path: path)
        } catch {
            throw ModelError.invalidConfig(path: path, reason: "cannot read: \(error)")
        }
        let value: JSONValue
        do {
            value = try JSONParser.parse(map.bytes.bindMemory(to: UInt8.self))
        } catch {
            throw ModelError.invalidConfig(path: path, reason: "not valid JSON: \(error)")
        }
        return try ModelConfig(json: value, path: path)
    }

    /// Parses a config.json document.
    /// - Parameter path: used in error messages only.
    /// - Throws: `ModelError.invalidConfig` for missing or ill-typed fields,
    ///   `ModelError.unsupportedModel` for other architectures or unsupported variants.
    public init(json: JSONValue, path: String) throws {
        guard json.objectValue != nil else { throw ModelError.invalidConfig(path: path, reason: "not a JSON object") }
        func bad(_ reason: String) -> ModelError { .invalidConfig(path: path, reason: reason) }
        func unsupported(_ reason: String) -> ModelError { .unsupportedModel(path: path, reason: reason) }
        func isNull(_ key: String) -> Bool { json[key] == nil || json[key] == .null }
        func int(_ key: String) throws -> Int {
            guard let v = json[key] else { throw bad("missing \"\(key)\"") }
            guard let i = v.intValue, i > 0, i <= Int64(Int32.max) else { throw bad("\"\(key)\" is not a positive integer") }
            return Int(i)
        }
        func number(_ key: String) throws -> Double {
            guard let v = json[key] else { throw bad("missing \"\(key)\"") }
            guard let d = numeric(v) else { throw bad("\"\(key)\" is not a number") }
            return d
        }
        func bool(_ key: String, default value: Bool) throws -> Bool {
            switch json[key] {
            case nil, .null?: return value
            case let .bool(b)?: return b
            default: throw bad("\"\(key)\" is not a boolean")
            }
        }

        let supported = Self.supportedArchitectures.keys.sorted().joined(separator: ", ")
        guard let archs = json["architectures"]?.arrayValue, let arch = archs.first?.stringValue else {
            throw unsupported("no \"architectures\" entry (supported: \(supported))")
        }
        guard let expectedType = Self.supportedArchitectures[arch] else {
            throw unsupported("architecture '\(arch)' is not supported (supported: \(supported))")
        }
        let type = json["model_type"]?.stringValue ?? expectedType
        guard type == expectedType else {
            throw unsupported("model_type '\(type)' does not match architecture '\(arch)' (expected '\(expectedType)')")
        }
        architecture = arch
        modelType = type

        hiddenSize = try int("hidden_size")
        intermediateSize = try int("intermediate_size")
        layerCount = try int("num_hidden_layers")
        headCount = try int("num_attention_heads")
        kvHeadCount = isNull("num_key_value_heads") ? headCount : try int("num_key_value_heads")
        headDim = isNull("head_dim") ? hiddenSize / headCount : try int("head_dim")
        vocabSize = try int("vocab_size")
        maxPositionEmbeddings = isNull("max_position_embeddings") ? 2048 : try int("max_position_embeddings")
        ropeTheta = isNull("rope_theta") ? 10000 : try number("rope_theta")
        rmsNormEps = try number("rms_norm_eps")
        tieWordEmbeddings = try bool("tie_word_embeddings", default: false)
        attentionBias = type == "qwen2" ? true : try bool("attention_bias", default: false)

        guard headCount % kvHeadCount == 0 else {
            throw bad("num_attention_heads \(headCount) is not a multiple of num_key_value_heads \(kvHeadCount)")
        }
        guard headDim % 2 == 0 else { throw bad("head_dim \(headDim) is odd") }
        guard ropeTheta > 0 else { throw bad("rope_theta must be positive") }
        guard rmsNormEps >= 0 else { throw bad("rms_norm_eps must not be negative") }

        if let act = json["hidden_act"]?.stringValue, act != "silu" {
            throw unsupported("hidden_act '\(act)' (only 'silu' is implemented)")
        }
        if try bool("mlp_bias", default: false) { throw unsupported("mlp_bias is not implemented") }
        if type == "qwen2", try bool("use_sliding_window", default: false) {
            throw unsupported("sliding-window attention is not implemented")
        }
        ropeLinearFactor = 1
        if let scaling = json["rope_scaling"], scaling != .null {
            let kind = scaling["rope_type"]?.stringValue ?? scaling["type"]?.stringValue ?? "?"
            switch kind {
            case "default":
                break
            case "linear":
                guard let factor = scaling["factor"].flatMap(numeric), factor > 0 else {
                    throw bad("rope_scaling factor is not a positive number")
                }
                ropeLinearFactor = factor
            default:
                throw unsupported("rope_scaling type '\(kind)' (only 'default' and 'linear' are implemented)")
            }
        }
    }
}

/// A finite JSON number as `Double`, or nil.
private func numeric(_ value: JSONValue) -> Double? {
    switch value {
    case let .int(i): return Double(i)
    case let .double(d) where d.isFinite: return d
    default: return nil
    }
}
