import CShims
import Foundation
import TensorIO

/// The low-rank patch encoding: the child is predicted as round_dtype(parent + A·Bᵀ) by the
/// deterministic C kernel `wl_lowrank_predict`, and an ordinary exact patch (sparse or dense XOR)
/// takes the prediction to the child bytes. A rank-one ROME edit of an (m, n) matrix costs
/// about (m + n)·precision bytes of factors plus whatever bits the prediction misses.
///
/// Body layout (after the common 24-byte patch header): dtype code u8 · factor precision u8
/// (4 or 8) · 6 reserved · rows u64 · cols u64 · rank u64 · compressed factor length u64 ·
/// residual length u64 · zstd(A row-major (rows, rank), then B (cols, rank), little-endian
/// floats of that precision) · residual patch.
public enum LowRankPatch {
    /// The C kernel's dtype code, or nil for dtypes the encoding does not handle.
    public static func dtypeCode(_ d: DType) -> UInt8? {
        switch d {
        case .f32: return 1
        case .f16: return 2
        case .bf16: return 3
        case .f64: return 4
        default: return nil
        }
    }

    /// Builds a low-rank patch. Factors are rounded to `precision` bytes (4 or 8) before the
    /// prediction, so the decoder predicts from exactly what is stored.
    /// - Parameters:
    ///   - a: (rows, rank) row-major; b: (cols, rank) row-major; ΔW ≈ A·Bᵀ.
    /// - Returns: nil when the dtype is not supported.
    public static func make(parent: UnsafeRawBufferPointer, child: UnsafeRawBufferPointer, dtype: DType, rows: Int, cols: Int,
                            rank: Int, a: [Double], b: [Double], precision: Int, level: Int32 = Zstd.defaultLevel) throws -> Patch? {
        guard let code = dtypeCode(dtype), rows * cols * dtype.size == parent.count, parent.count == child.count,
              a.count == rows * rank, b.count == cols * rank, precision == 4 || precision == 8 else { return nil }
        let qa = precision == 4 ? a.map { Double(Float($0)) } : a
        let qb = precision == 4 ? b.map { Double(Float($0)) } : b
        // The residual is the XOR of the prediction and the child: each block of rows is predicted
        // into the XOR buffer and XORed with the child's block while it is still in cache.
        var xor = uninitializedBytes(parent.count)   // every byte is predicted, then XORed
        let missed = Tally()
        if parent.count > 0 {
            let prediction = DecodedPatch.Prediction(code: code, cols: cols, rank: rank, a: qa, b: qb)
            let e = dtype.size
            xor.withUnsafeMutableBytes { x in
                let view = BufferViews(parent: parent.baseAddress!, out: x.baseAddress!), childView = BufferViews(parent: child.baseAddress!, out: x.baseAddress!)
                DecodedPatch.forEachBlock(count: rows * cols, rowElements: cols, elementSize: e, blockBytes: PatchChain.blockBytes) { lo, hi in
                    prediction.predict(parent: view.parent, into: view.out, elements: lo, hi)
                    let n = wl_xor_count_inplace((view.out + lo * e).assumingMemoryBound(to: UInt8.self),
                                                 (childView.parent + lo * e).assumingMemoryBound(to: UInt8.self), (hi - lo) * e, e)
                    missed.add(n)
                }
            }
        }
        let residual = try Patch.make(xor: xor, changed: missed.total, child: child, elementSize: dtype.size, level: level, tryChildValues: false)
        var factorBytes = [UInt8]()
        factorBytes.reserveCapacity((rows + cols) * rank * precision)
        for v in qa + qb {
            if precision == 4 {
                withUnsafeBytes(of: Float(v).bitPattern.littleEndian) { factorBytes.append(contentsOf: $0) }
            } else {
                withUnsafeBytes(of: v.bitPattern.littleEndian) { factorBytes.append(contentsOf: $0) }
            }
        }
        let factorsZ = try factorBytes.withUnsafeBytes { raw -> [UInt8] in
            var shuffled = uninitializedBytes(raw.count)
            shuffled.withUnsafeMutableBytes { Shuffle.shuffle(raw, into: $0, elementSize: precision) }
            return try shuffled.withUnsafeBytes { try Zstd.compress($0, level: level) }
        }
        let changed = parent.count == 0 ? 0 : wl_count_diff(parent.baseAddress!.assumingMemoryBound(to: UInt8.self),
                                                              child.baseAddress!.assumingMemoryBound(to: UInt8.self), parent.count, dtype.size)
        var out = Patch.magic
        out.append(PatchEncoding.lowRank.rawValue)
        out.append(UInt8(dtype.size))
        out.append(contentsOf: [0, 0])
        appendU64(&out, UInt64(rows * cols))
        appendU64(&out, UInt64(changed))
        out.append(code)
        out.append(UInt8(precision))
        out.append(contentsOf: [UInt8](repeating: 0, count: 6))
        for v in [rows, cols, rank, factorsZ.count, residual.bytes.count] { appendU64(&out, UInt64(v)) }
        out.append(contentsOf: factorsZ)
        out.append(contentsOf: residual.bytes)
        return Patch(bytes: out, encoding: .lowRank, changed: changed)
    }

    /// Parses a low-rank body (after the common header) for a tensor of `count` elements of
    /// `elementSize` bytes: the factors and the decoded residual patch.
    static func decode(body: UnsafeRawBufferPointer, elementSize: Int, count: Int) throws -> DecodedPatch {
        func bad(_ r: String) -> CodecError { .corrupt(what: "low-rank patch", reason: r) }
        guard body.count >= 48 else { throw bad("truncated header") }
        let code = body[0], precision = Int(body[1])
        guard (1...4).contains(code), precision == 4 || precision == 8 else { throw bad("bad dtype code or precision") }
        // Each dimension fits in an Int (a larger stored value is corruption, not a trap); the
        // rank of a factorization is at most min(rows, cols), which also bounds the factors'
        // size by twice the tensor's.
        guard let rows = Int(exactly: body.loadUnaligned(fromByteOffset: 8, as: UInt64.self)),
              let cols = Int(exactly: body.loadUnaligned(fromByteOffset: 16, as: UInt64.self)),
              let rank = Int(exactly: body.loadUnaligned(fromByteOffset: 24, as: UInt64.self)) else {
            throw bad("dimensions out of range")
        }
        let fLen = body.loadUnaligned(fromByteOffset: 32, as: UInt64.self)
        let rLen = body.loadUnaligned(fromByteOffset: 40, as: UInt64.self)
        let sizes: [UInt8: Int] = [1: 4, 2: 2, 3: 2, 4: 8]
        guard sizes[code] == elementSize, rows.multipliedReportingOverflow(by: cols) == (count, false),
              rank <= min(rows, cols), rank <= 4096, fLen <= UInt64(body.count), rLen <= UInt64(body.count), 48 + Int(fLen) + Int(rLen) == body.count else {
            throw bad("dimensions or section lengths do not fit the parent")
        }
        let factorCount = (rows + cols) * rank
        var raw = [UInt8](repeating: 0, count: factorCount * precision)
        var scratch = [UInt8]()
        if factorCount > 0 {
            try raw.withUnsafeMutableBytes {
                try Chunker.decodeChunk(codec: .shuffledZstd, elementSize: precision, data: UnsafeRawBufferPointer(rebasing: body[48..<(48 + Int(fLen))]), into: $0, scratch: &scratch)
            }
        }
        let values: [Double] = raw.withUnsafeBytes { r in
            (0..<factorCount).map { i in
                precision == 4 ? Double(Float(bitPattern: r.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
                               : Double(bitPattern: r.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self))
            }
        }
        let residual = UnsafeRawBufferPointer(rebasing: body[(48 + Int(fLen))...])
        guard let inner = Patch.peek(residual), inner.encoding != .lowRank, Int(residual[5]) == elementSize else {
            throw bad("residual is not a plain patch of the tensor's elements")
        }
        // The prediction writes every element; the residual is applied to it.
        let plain = try Patch.decode(residual, parentBytes: count * elementSize)
        let prediction = DecodedPatch.Prediction(code: code, cols: cols, rank: rank,
                                                 a: Array(values[0..<(rows * rank)]), b: Array(values[(rows * rank)...]))
        return DecodedPatch(elementSize: elementSize, count: count, prediction: prediction, residual: plain.residual)
    }
}
