import Foundation
import LinAlg

/// The outcome of a MEMIT batch edit.
public struct MEMITResult: Sendable {
    /// ΔW of each edited layer's `mlp.down_proj`, (hidden, intermediate), in layer order.
    public var updates: [(layer: Int, update: Matrix)]
    /// Per request: the optimization's losses and the target's mean probability before/after.
    public var losses: [[Double]]
    public var probabilitiesBefore: [Double]
    public var probabilitiesAfter: [Double]
}

/// Mass-Editing Memory in a Transformer (Meng et al., 2023) on the CPU engine.
///
/// 1. For every request, z = h + δ: δ is optimized as in ROME but added to the residual stream
///    after the last edited layer (the norm clamp and weight decay are relative to that stream
///    value h).
/// 2. For each layer l of the range in order, with the layers before it already updated:
///    K = the requests' keys at l (mean over the context templates), R = (z − current h) /
///    (number of layers left), and ΔW_l = R·Kᵀ·(λC_l + K·Kᵀ)⁻¹, so the residual is spread
///    over the remaining layers.
public enum MEMIT {
    /// The default layer range for `layerCount` layers: EasyEdit's LLaMA-7B layers 4–8 of 32 at
    /// the same relative depth.
    public static func defaultLayers(layerCount: Int) -> [Int] {
        let a = Int((4.0 * Double(layerCount) / 32.0).rounded()), b = Int((8.0 * Double(layerCount) / 32.0).rounded())
        return Array(max(0, a)...min(layerCount - 1, max(a, b)))
    }

    /// Edits a batch of requests. The model is not changed; the caller applies `updates`.
    /// - Parameters:
    ///   - layers: the layers to edit, ascending.
    ///   - secondMoments: C of each layer's keys, or nil for the identity.
    ///   - lambda: the covariance weight λ (EasyEdit's mom2_update_weight).
    ///   - options: the value optimization's hyperparameters (its `layer` is ignored).
    public static func edit(model: Model, prompts: EditPrompts, targets: [EditTarget], templates: [String], layers: [Int],
                            secondMoments: [Int: Matrix]?, lambda: Double, options o: ROMEOptions,
                            progress: ((Int, Int, Double) -> Void)? = nil) throws -> MEMITResult {
        let c = model.config
        precondition(!layers.isEmpty && layers == layers.sorted() && layers.allSatisfy { $0 >= 0 && $0 < c.layerCount }, "bad layer range")
        let H = c.hiddenSize, I = c.intermediateSize, B = targets.count
        let zPoint = StreamPoint.mlpOutput(layer: layers.last!)
        let problems = try targets.map { try RewriteProblem(prompts: prompts, target: $0, templates: templates) }
        var z: [[Double]] = []
        var result = MEMITResult(updates: [], losses: [], probabilitiesBefore: [], probabilitiesAfter: [])
        for (i, p) in problems.enumerated() {
            let v = try p.optimize(model: model, point: zPoint, reference: .stream, options: o) { step, loss in progress?(i, step, loss) }
            z.append(zip(v.reference, v.delta).map { $0 + $1 })
            result.losses.append(v.losses)
            result.probabilitiesBefore.append(v.probabilityBefore)
            result.probabilitiesAfter.append(v.probabilityAfter)
        }
        var current = model
        for (index, l) in layers.enumerated() {
            // Keys at l and the stream at the z layer, with the earlier layers updated.
            var K = Matrix(zeros: I, B), R = Matrix(zeros: H, B)
            for (i, p) in problems.enumerated() {
                let t = try current.trace(Array(p.sequences.prefix(p.rewriting)), captureMLP: [l], captureStream: [zPoint])
                for s in p.sites.prefix(p.rewriting) {
                    let k = RewriteProblem.row(t.mlpKeys[l]!, s, width: I)
                    for j in 0..<I { K[j, i] += k[j] / Double(p.rewriting) }
                }
                let h = RewriteProblem.row(t.streamValues[zPoint]!, p.sites[0], width: H)
                for j in 0..<H { R[j, i] = (z[i][j] - h[j]) / Double(layers.count - index) }
            }
            var A = BLAS.multiply(K, K, transB: true)
            if let C = secondMoments?[l] {
                precondition(C.rows == I && C.cols == I, "second moment of layer \(l) is \(C.rows)×\(C.cols)")
                for j in 0..<(I * I) { A.data[j] += lambda * C.data[j] }
            } else {
                for j in 0..<I { A[j, j] += lambda }
            }
            let X = try ROME.solve(A, K)  // (I, B) = A⁻¹K
            let update = BLAS.multiply(R, X, transB: true)  // (H, I) = R·(A⁻¹K)ᵀ = R·Kᵀ·A⁻¹
            result.updates.append((l, update))
            var w = current.mlpDown(layer: l)
            for j in 0..<(H * I) { w[j] = Float(Double(w[j]) + update.data[j]) }
            current = current.replacingMLPDown(layer: l, with: w)
        }
        return result
    }
}
