import TensorIO

/// Which implementation computes the matrix products and attention of a forward pass.
public enum Kernels: Sendable {
    /// OpenBLAS: `sgemm` for batches of tokens, `sgemv` for one token.
    case blas
    /// Plain loops, the oracle the BLAS path is tested against (slow; for small models).
    case naive
}

/// A weight tensor kept as stored (F32, F16 or BF16) inside the memory map, viewed as a row-major
/// (rows, cols) matrix; rows are converted to `Float` on use.
struct StoredMatrix {
    let name: String
    let dtype: DType
    /// Output features (the safetensors shape's first dimension).
    let rows: Int
    /// Input features.
    let cols: Int
    let bytes: UnsafeRawBufferPointer
    /// The values themselves when stored as aligned F32 (used without any copy).
    let f32: UnsafePointer<Float>?

    init(name: String, dtype: DType, rows: Int, cols: Int, bytes: UnsafeRawBufferPointer) {
        self.name = name; self.dtype = dtype; self.rows = rows; self.cols = cols; self.bytes = bytes
        if dtype == .f32, let base = bytes.baseAddress, Int(bitPattern: base) % MemoryLayout<Float>.alignment == 0 {
            f32 = base.assumingMemoryBound(to: Float.self)
        } else {
            f32 = nil
        }
    }

    /// Converts rows `range` to `Float` into `dst`, which holds `range.count × cols` values.
    func decodeRows(_ range: Range<Int>, into dst: UnsafeMutablePointer<Float>) {
        let size = dtype.size
        let src = UnsafeRawBufferPointer(rebasing: bytes[(range.lowerBound * cols * size)..<(range.upperBound * cols * size)])
        decodeToFloat(src, dtype: dtype, into: UnsafeMutableBufferPointer(start: dst, count: range.count * cols))
    }
}

/// The weights of one decoder layer.
struct LayerWeights {
    let inputNorm: [Float]
    let q: StoredMatrix, k: StoredMatrix, v: StoredMatrix, o: StoredMatrix
    let qBias: [Float]?, kBias: [Float]?, vBias: [Float]?, oBias: [Float]?
    let postNorm: [Float]
    let gate: StoredMatrix, up: StoredMatrix, down: StoredMatrix
}

/// A LLaMA-family causal language model over memory-mapped safetensors weights.
///
/// Matrices stay in their stored dtype (F32, F16 or BF16) inside the map; F32 matrices are used in
/// place and F16/BF16 ones are converted a tile of rows at a time during each product, so resident
/// memory is about the file size plus activations and the KV cache. Only the norm gains and biases
/// (a few KB per layer) are converted up front.
///
/// A `Model` is immutable and may be shared between threads; each thread brings its own
/// `KVCache` and `ForwardWorkspace`.
public final class Model: @unchecked Sendable {
    public let config: ModelConfig
    public let weights: ModelWeights
    /// The model directory, for messages.
    public let path: String
    public let kernels: Kernels
    /// The dtype of the token embedding (the model's storage dtype).
    public var storageDType: DType { embedding.dtype }

    let embedding: StoredMatrix
    let layers: [LayerWeights]
    let finalNorm: [Float]
    let head: StoredMatrix
    /// F32 copies that replace stored matrices (`replacingMLPDown`), kept alive with the model.
    private let owned: [OwnedFloats]

    /// Opens `directory` (config.json and safetensors weights, sharded or not).
    /// - Throws: `ModelError` for an unsupported or malformed config and missing or ill-shaped
    ///   tensors; `TensorIOError` for unreadable or invalid weight files.
    public convenience init(directory: String, kernels: Kernels = .blas) throws {
        let config = try ModelConfig.load(directory: directory)
        let weights = try ModelDirectory.scan(directory).open()
        try self.init(config: config, weights: weights, kernels: kernels)
    }

    /// A model from a parsed config and opened weights; checks every tensor's presence, shape and dtype.
    /// - Throws: `ModelError.missingTensor` or `ModelError.invalidTensor`.
    public init(config: ModelConfig, weights: ModelWeights, kernels: Kernels = .blas) throws {
        self.config = config
        self.weights = weights
        self.kernels = kernels
        owned = []
        let path = weights.directory.path
        self.path = path
        let c = config

        func info(_ name: String) throws -> (TensorInfo, UnsafeRawBufferPointer) {
            guard let loc = weights.tensors[name], let bytes = weights.bytes(name) else {
                throw ModelError.missingTensor(path: path, tensor: name)
            }
            guard [.f32, .f16, .bf16].contains(loc.info.dtype) else {
                throw ModelError.invalidTensor(path: path, tensor: name, reason: "dtype \(loc.info.dtype.rawValue) is not F32, F16 or BF16")
            }
            return (loc.info, bytes)
        }
        func matrix(_ name: String, _ rows: Int, _ cols: Int) throws -> StoredMatrix {
            let (t, bytes) = try info(name)
            guard t.shape == [rows, cols] else {
                throw ModelError.invalidTensor(path: path, tensor: name, reason: "shape \(t.shapeDescription), expected [\(rows), \(cols)]")
            }
            return StoredMatrix(name: name, dtype: t.dtype, rows: rows, cols: cols, bytes: bytes)
        }
        func vector(_ name: String, _ n: Int) throws -> [Float] {
            let (t, bytes) = try info(name)
            guard t.shape == [n] else {
                throw ModelError.invalidTensor(path: path, tensor: name, reason: "shape \(t.shapeDescription), expected [\(n)]")
            }
            var out = [Float](repeating: 0, count: n)
            out.withUnsafeMutableBufferPointer { decodeToFloat(bytes, dtype: t.dtype, into: $0) }
            return out
        }
        func optionalVector(_ name: String, _ n: Int, required: Bool) throws -> [Float]? {
            if !required && weights.tensors[name] == nil { return nil }
            return try vector(name, n)
        }

        embedding = try matrix("model.embed_tokens.weight", c.vocabSize, c.hiddenSize)
        var layers: [LayerWeights] = []
        for i in 0..<c.layerCount {
            let p = "model.layers.\(i)."
            layers.append(LayerWeights(
                inputNorm: try vector(p + "input_layernorm.weight", c.hiddenSize),
                q: try matrix(p + "self_attn.q_proj.weight", c.queryWidth, c.hiddenSize),
                k: try matrix(p + "self_attn.k_proj.weight", c.kvWidth, c.hiddenSize),
                v: try matrix(p + "self_attn.v_proj.weight", c.kvWidth, c.hiddenSize),
                o: try matrix(p + "self_attn.o_proj.weight", c.hiddenSize, c.queryWidth),
                qBias: try optionalVector(p + "self_attn.q_proj.bias", c.queryWidth, required: c.attentionBias),
                kBias: try optionalVector(p + "self_attn.k_proj.bias", c.kvWidth, required: c.attentionBias),
                vBias: try optionalVector(p + "self_attn.v_proj.bias", c.kvWidth, required: c.attentionBias),
                oBias: try optionalVector(p + "self_attn.o_proj.bias", c.hiddenSize, required: false),
                postNorm: try vector(p + "post_attention_layernorm.weight", c.hiddenSize),
                gate: try matrix(p + "mlp.gate_proj.weight", c.intermediateSize, c.hiddenSize),
                up: try matrix(p + "mlp.up_proj.weight", c.intermediateSize, c.hiddenSize),
                down: try matrix(p + "mlp.down_proj.weight", c.hiddenSize, c.intermediateSize)))
        }
        self.layers = layers
        finalNorm = try vector("model.norm.weight", c.hiddenSize)
        if weights.tensors["lm_head.weight"] != nil {
            head = try matrix("lm_head.weight", c.vocabSize, c.hiddenSize)
        } else if c.tieWordEmbeddings {
            head = embedding
        } else {
            throw ModelError.missingTensor(path: path, tensor: "lm_head.weight")
        }
    }

    private init(_ m: Model, layers: [LayerWeights], owned: [OwnedFloats]) {
        config = m.config; weights = m.weights; kernels = m.kernels; path = m.path
        embedding = m.embedding; finalNorm = m.finalNorm; head = m.head
        self.layers = layers
        self.owned = owned
    }

    /// This model with layer `layer`'s `mlp.down_proj` replaced by `values` (row-major
    /// (hidden, intermediate), F32): how MEMIT sees the effect of the layers it has already
    /// updated. The other weights stay shared with this model.
    /// - Precondition: `values` has hidden × intermediate entries and the layer exists.
    public func replacingMLPDown(layer: Int, with values: [Float]) -> Model {
        let c = config
        precondition(layer >= 0 && layer < c.layerCount, "layer \(layer) does not exist")
        precondition(values.count == c.hiddenSize * c.intermediateSize, "down_proj needs \(c.hiddenSize)×\(c.intermediateSize) values")
        let buffer = OwnedFloats(values)
        var ls = layers
        let l = ls[layer]
        let down = StoredMatrix(name: l.down.name, dtype: .f32, rows: c.hiddenSize, cols: c.intermediateSize,
                                bytes: UnsafeRawBufferPointer(start: buffer.p, count: values.count * 4))
        ls[layer] = LayerWeights(inputNorm: l.inputNorm, q: l.q, k: l.k, v: l.v, o: l.o, qBias: l.qBias, kBias: l.kBias, vBias: l.vBias,
                                 oBias: l.oBias, postNorm: l.postNorm, gate: l.gate, up: l.up, down: down)
        return Model(self, layers: ls, owned: owned + [buffer])
    }

    /// Layer `layer`'s `mlp.down_proj` as F32, row-major (hidden, intermediate).
    public func mlpDown(layer: Int) -> [Float] {
        let d = layers[layer].down
        var out = [Float](repeating: 0, count: d.rows * d.cols)
        out.withUnsafeMutableBufferPointer { d.decodeRows(0..<d.rows, into: $0.baseAddress!) }
        return out
    }

    /// An empty cache for this model's layer and head sizes.
    /// - Parameter capacity: positions to allocate up front; the cache grows as needed.
    public func makeCache(capacity: Int = 256) -> KVCache {
        KVCache(config: config, capacity: capacity)
    }

    /// A workspace for forward passes of up to `maxTokens` tokens per batch.
    public func makeWorkspace(maxTokens: Int = 128) -> ForwardWorkspace {
        ForwardWorkspace(config: config, maxTokens: maxTokens)
    }
}

/// An aligned F32 buffer owned by a `Model`.
final class OwnedFloats: @unchecked Sendable {
    let p: UnsafeMutablePointer<Float>

    init(_ values: [Float]) {
        p = .allocate(capacity: max(values.count, 1))
        values.withUnsafeBufferPointer { p.initialize(from: $0.baseAddress!, count: values.count) }
    }

    deinit { p.deallocate() }
}
