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
        let prediction = DecodedPatch.Prediction(code: code, cols: cols, rank: rank, a: qa, b: qb)
        let residual = try residual(prediction: prediction, parent: parent, child: child, rows: rows, cols: cols, elementSize: dtype.size, level: level)
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

    /// The exact patch from the prediction of `parent` to `child`: what `Patch.make` builds from
    /// their XOR (without child values). Each block of rows is predicted into a buffer of its own,
    /// XORed with the child's rows and its changed elements gathered while it is in cache, so no
    /// buffer of the tensor's size is touched (the fresh pages of one cost more than the work on
    /// them; see `uninitializedBytes`). Once 1/8 of the elements miss, `Patch.make` would try the
    /// dense XOR as well: then the whole XOR is built and handed to it.
    static func residual(prediction: DecodedPatch.Prediction, parent: UnsafeRawBufferPointer, child: UnsafeRawBufferPointer, rows: Int,
                         cols: Int, elementSize e: Int, level: Int32) throws -> Patch {
        let count = rows * cols, dense = count / 8
        if count >= 64 {
            let width = count <= Int(UInt32.max) ? 4 : 8
            let missed = Tally(), blocks = GatheredBlocks()
            let views = ReadViews(parent: parent.baseAddress!, child: child.baseAddress!)
            DecodedPatch.forEachBlock(count: count, rowElements: cols, elementSize: e, blockBytes: PatchChain.blockBytes) { lo, hi in
                guard missed.total < dense else { return }
                let n = hi - lo
                var block = uninitializedBytes(n * e)
                let changed = block.withUnsafeMutableBytes { b -> Int in
                    prediction.predict(parent: views.parent + lo * e, into: b.baseAddress!, row0: lo / cols, rowCount: n / cols)
                    return wl_xor_count_inplace(b.baseAddress!.assumingMemoryBound(to: UInt8.self),
                                                (views.child + lo * e).assumingMemoryBound(to: UInt8.self), n * e, e)
                }
                guard missed.add(changed) < dense, changed > 0 else { return }
                // Gaps from the block's first element; the first is rebased when the blocks are joined.
                var gaps = uninitializedBytes((changed + 1) * width), values = uninitializedBytes((changed + 1) * e)
                var childValues = uninitializedBytes((changed + 1) * e)
                let found = block.withUnsafeBytes { x in
                    gaps.withUnsafeMutableBytes { g in
                        values.withUnsafeMutableBytes { v in
                            childValues.withUnsafeMutableBytes { c in
                                wl_sparse_gather(x.baseAddress!.assumingMemoryBound(to: UInt8.self), (views.child + lo * e).assumingMemoryBound(to: UInt8.self),
                                                 n, e, Int32(width), g.baseAddress!.assumingMemoryBound(to: UInt8.self),
                                                 v.baseAddress!.assumingMemoryBound(to: UInt8.self), c.baseAddress!.assumingMemoryBound(to: UInt8.self))
                            }
                        }
                    }
                }
                precondition(found == changed, "sparse gather found \(found) changed elements, XOR counted \(changed)")
                gaps.removeLast(width)
                values.removeLast(e)
                blocks.append((lo, gaps, values))
            }
            if missed.total < dense {
                var rawIndices = [UInt8](), xorValues = [UInt8]()
                rawIndices.reserveCapacity(missed.total * width)
                xorValues.reserveCapacity(missed.total * e)
                var previous = 0   // the last changed position so far; the first gap is from 0
                for (lo, blockGaps, values) in blocks.sorted() {
                    var gaps = blockGaps
                    let first = lo + gap(gaps, 0, width)
                    var last = first
                    for k in 1..<(gaps.count / width) { last += gap(gaps, k, width) }
                    setGap(&gaps, 0, width, first - previous)
                    previous = last
                    rawIndices.append(contentsOf: gaps)
                    xorValues.append(contentsOf: values)
                }
                return try Patch.sparse(rawIndices: rawIndices, width: width, values: [(.sparseXor, xorValues)], count: count, changed: missed.total,
                                        elementSize: e, level: level)[0]
            }
        }
        // The whole XOR: each block predicted into it and XORed with the child in place.
        var xor = uninitializedBytes(count * e)
        let missed = Tally()
        if count > 0 {
            xor.withUnsafeMutableBytes { x in
                let views = BufferViews(parent: parent.baseAddress!, out: x.baseAddress!), childBase = ReadViews(parent: parent.baseAddress!, child: child.baseAddress!)
                DecodedPatch.forEachBlock(count: count, rowElements: cols, elementSize: e, blockBytes: PatchChain.blockBytes) { lo, hi in
                    prediction.predict(parent: views.parent, into: views.out, elements: lo, hi)
                    missed.add(wl_xor_count_inplace((views.out + lo * e).assumingMemoryBound(to: UInt8.self),
                                                    (childBase.child + lo * e).assumingMemoryBound(to: UInt8.self), (hi - lo) * e, e))
                }
            }
        }
        return try Patch.make(xor: xor, changed: missed.total, child: child, elementSize: e, level: level, tryChildValues: false)
    }

    /// Gap k of little-endian gaps of `width` bytes.
    private static func gap(_ gaps: [UInt8], _ k: Int, _ width: Int) -> Int {
        gaps.withUnsafeBytes { width == 4 ? Int($0.loadUnaligned(fromByteOffset: 4 * k, as: UInt32.self).littleEndian)
                                          : Int($0.loadUnaligned(fromByteOffset: 8 * k, as: UInt64.self).littleEndian) }
    }

    private static func setGap(_ gaps: inout [UInt8], _ k: Int, _ width: Int, _ value: Int) {
        gaps.withUnsafeMutableBytes {
            if width == 4 { $0.storeBytes(of: UInt32(value).littleEndian, toByteOffset: 4 * k, as: UInt32.self) }
            else { $0.storeBytes(of: UInt64(value).littleEndian, toByteOffset: 8 * k, as: UInt64.self) }
        }
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
        if factorCount > 0 {
            try raw.withUnsafeMutableBytes {
                try Chunker.decodeChunk(codec: .shuffledZstd, elementSize: precision, data: UnsafeRawBufferPointer(rebasing: body[48..<(48 + Int(fLen))]), into: $0)
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

/// The operands of the residual's blocks, read by several threads.
private struct ReadViews: @unchecked Sendable {
    let parent: UnsafeRawPointer
    let child: UnsafeRawPointer
}

/// The changed elements of the residual's blocks, gathered by several threads: each block's first
/// element, its gaps and XOR values.
private final class GatheredBlocks: @unchecked Sendable {
    private let lock = NSLock()
    private var blocks: [(lo: Int, gaps: [UInt8], values: [UInt8])] = []
    func append(_ b: (lo: Int, gaps: [UInt8], values: [UInt8])) { lock.lock(); blocks.append(b); lock.unlock() }
    /// In position order.
    func sorted() -> [(lo: Int, gaps: [UInt8], values: [UInt8])] { lock.lock(); defer { lock.unlock() }; return blocks.sorted { $0.lo < $1.lo } }
}
