import CShims
import Foundation

/// A stored patch parsed, checked and decompressed once (`Patch.decode`), ready to be applied to
/// any range of whole rows. Every encoding changes each element on its own (a prediction from the
/// parent element and its row's and column's factors, then a sparse or dense change of its bits),
/// so applying a patch range by range gives the bytes of applying it at once.
public struct DecodedPatch: Sendable {
    /// Low-rank factors: element (i, j) is predicted as round(parent + Σₖ a[i,k]·b[j,k]).
    struct Prediction: Sendable {
        let code: UInt8
        let cols: Int, rank: Int
        /// (rows, rank) row-major.
        let a: [Double]
        /// b transposed: (rank, cols) row-major, as the kernel reads it.
        let bt: [Double]

        /// - Parameter b: (cols, rank) row-major.
        init(code: UInt8, cols: Int, rank: Int, a: [Double], b: [Double]) {
            self.code = code; self.cols = cols; self.rank = rank; self.a = a
            var t = [Double](repeating: 0, count: rank * cols)
            if rank > 0 && cols > 0 {
                b.withUnsafeBufferPointer { bp in t.withUnsafeMutableBufferPointer { wl_lowrank_transpose(bp.baseAddress!, cols, rank, $0.baseAddress!) } }
            }
            bt = t
        }

        /// Predicts the elements [lo, hi) (whole rows) of `out` from those of `parent` (which may
        /// be the same memory).
        func predict(parent: UnsafeRawPointer, into out: UnsafeMutableRawPointer, elements lo: Int, _ hi: Int) {
            kernel(parent, out, rows: (lo / cols)..<(hi / cols), factorsFrom: 0)
        }

        /// Predicts `rowCount` rows from `row0` on into `out`, which holds just those rows;
        /// `parent` points at the first of them.
        func predict(parent: UnsafeRawPointer, into out: UnsafeMutableRawPointer, row0: Int, rowCount: Int) {
            kernel(parent, out, rows: 0..<rowCount, factorsFrom: row0)
        }

        /// wl_lowrank_predict_rows_bt over `rows` of `parent` and `out`, whose row i takes the
        /// factors of row `factorRow0 + i`.
        private func kernel(_ parent: UnsafeRawPointer, _ out: UnsafeMutableRawPointer, rows: Range<Int>, factorsFrom factorRow0: Int) {
            a.withUnsafeBufferPointer { a in
                bt.withUnsafeBufferPointer { bt in
                    // rank 0 reads no factor: any valid pointer will do.
                    withUnsafePointer(to: 0.0) { zero in
                        wl_lowrank_predict_rows_bt(parent.assumingMemoryBound(to: UInt8.self), out.assumingMemoryBound(to: UInt8.self), Int32(code),
                                                   rows.lowerBound, rows.upperBound, cols, rank,
                                                   rank > 0 ? a.baseAddress! + factorRow0 * rank : zero, bt.baseAddress ?? zero)
                    }
                }
            }
        }

        /// Predicts every element of a tensor of `count` elements of `elementSize` bytes, split
        /// into row ranges across cores for a large one (the bits do not depend on the split).
        func predict(parent: UnsafeRawPointer, into out: UnsafeMutableRawPointer, count: Int, elementSize: Int) {
            let view = BufferViews(parent: parent, out: out)
            DecodedPatch.forEachBlock(count: count, rowElements: max(cols, 1), elementSize: elementSize, blockBytes: Int.max) { lo, hi in
                predict(parent: view.parent, into: view.out, elements: lo, hi)
            }
        }
    }

    /// The exact change applied after the prediction (or to the parent without one).
    enum Residual: Sendable {
        /// Absolute element positions, increasing and in range (checked when decoded), with the
        /// new bytes (`xor` false) or the bits to flip.
        case sparse(positions: [UInt64], values: [UInt8], xor: Bool)
        /// Bits to flip in every byte.
        case dense(xor: [UInt8])
    }

    let elementSize: Int
    /// Elements of the tensor.
    let count: Int
    let prediction: Prediction?
    let residual: Residual

    /// Bytes of decoded data held.
    var heldBytes: Int {
        let p = prediction.map { ($0.a.count + $0.bt.count) * 8 } ?? 0
        switch residual {
        case .sparse(let positions, let values, _): return p + positions.count * 8 + values.count
        case .dense(let xor): return p + xor.count
        }
    }

    /// Elements per row: ranges passed to `apply` are multiples of this.
    var rowElements: Int { max(prediction?.cols ?? 1, 1) }

    /// Applies the patch to the elements [lo, hi) (whole rows when there is a prediction): reads
    /// them from `parent`, writes them to `out`, which may be `parent`.
    func apply(parent: UnsafeRawPointer, into out: UnsafeMutableRawPointer, elements lo: Int, _ hi: Int) {
        guard hi > lo else { return }
        let e = elementSize
        let dst = out.assumingMemoryBound(to: UInt8.self)
        if let p = prediction {
            p.predict(parent: parent, into: out, elements: lo, hi)
        } else if parent != UnsafeRawPointer(out) {
            (out + lo * e).copyMemory(from: parent + lo * e, byteCount: (hi - lo) * e)
        }
        switch residual {
        case .sparse(let positions, let values, let xor):
            positions.withUnsafeBufferPointer { pos in
                let start = firstIndex(in: pos, notBelow: UInt64(lo)), end = firstIndex(in: pos, notBelow: UInt64(hi))
                guard end > start else { return }
                values.withUnsafeBytes { v in
                    wl_sparse_apply_at(dst, e, pos.baseAddress! + start, v.baseAddress!.assumingMemoryBound(to: UInt8.self) + start * e,
                                       end - start, xor ? 1 : 0)
                }
            }
        case .dense(let xor):
            xor.withUnsafeBytes { x in wl_xor_inplace(dst + lo * e, x.baseAddress!.assumingMemoryBound(to: UInt8.self) + lo * e, (hi - lo) * e) }
        }
    }

    /// Applies the whole patch, split into row ranges across cores for a large tensor.
    func apply(parent: UnsafeRawPointer, into out: UnsafeMutableRawPointer) {
        let view = BufferViews(parent: parent, out: out)
        DecodedPatch.forEachBlock(count: count, rowElements: rowElements, elementSize: elementSize, blockBytes: Int.max) { lo, hi in
            apply(parent: view.parent, into: view.out, elements: lo, hi)
        }
    }

    /// Calls `body` for consecutive element ranges covering [0, count), each a whole number of
    /// rows and about `blockBytes` long; ranges are spread over up to two per core when the
    /// tensor has at least 2^20 elements (each core runs its ranges in order).
    static func forEachBlock(count: Int, rowElements: Int, elementSize: Int, blockBytes: Int,
                             _ body: @Sendable (Int, Int) -> Void) {
        guard count > 0 else { return }
        let rows = count / rowElements
        let threads = max(1, min(rows, count >> 20, 2 * ProcessInfo.processInfo.activeProcessorCount))
        let rowsPerBlock = max(1, min(rows, blockBytes / max(1, rowElements * elementSize)))
        DispatchQueue.concurrentPerform(iterations: threads) { t in
            var r = rows * t / threads
            let end = rows * (t + 1) / threads
            while r < end {
                let next = min(end, r + rowsPerBlock)
                body(r * rowElements, next * rowElements)
                r = next
            }
        }
    }
}

/// The first index whose position is ≥ `bound` in increasing `positions`.
private func firstIndex(in positions: UnsafeBufferPointer<UInt64>, notBelow bound: UInt64) -> Int {
    var lo = 0, hi = positions.count
    while lo < hi {
        let mid = (lo + hi) / 2
        if positions[mid] < bound { lo = mid + 1 } else { hi = mid }
    }
    return lo
}

/// Applies a chain of patches to one buffer in place, a block of rows at a time: each block goes
/// through every patch of the chain while it is in cache, instead of each patch streaming the
/// whole tensor through memory. The bytes are those of applying the patches one after another.
/// Decoded patches are held up to `budget` bytes, then applied before the next is decoded.
public struct PatchChain {
    /// Bytes of a block of rows (about half of a core's L2 cache).
    public static let blockBytes = 256 << 10
    /// Decoded patches held before they are applied. Sparse positions take 8 bytes per changed
    /// element: a 7B `down_proj`'s rank-one residual (11% of 45M elements) holds ~50 MB, a
    /// SmolLM2 one under 0.5 MB; tensors are rebuilt one per core, each with its own chain.
    public static let defaultBudget = 64 << 20

    private let buffer: UnsafeMutableRawBufferPointer
    private let budget: Int
    private var pending: [DecodedPatch] = []
    private var held = 0

    public init(buffer: UnsafeMutableRawBufferPointer, budget: Int = defaultBudget) {
        self.buffer = buffer
        self.budget = budget
    }

    /// Decodes the next patch of the chain (applied by a later call or `finish`).
    /// - Throws: `CodecError.corrupt` when the patch is malformed or does not fit the buffer.
    public mutating func append(_ patch: UnsafeRawBufferPointer) throws {
        // The held patches are applied first when this one, once decoded (its size read from its
        // headers), would not fit beside them.
        if !pending.isEmpty, let size = Self.decodedSize(of: patch, tensorBytes: buffer.count), size > budget - held { flush() }
        let d = try Patch.decode(patch, parentBytes: buffer.count)
        // A block must be whole rows, and whole elements, of every patch it goes through.
        if let first = pending.first, d.elementSize != first.elementSize
            || (d.prediction != nil && predictionColumns.map { $0 != d.rowElements } == true) {
            flush()
        }
        pending.append(d)
        held += d.heldBytes
    }

    /// The bytes a stored patch holds once decoded (`DecodedPatch.heldBytes` of a well-formed one),
    /// read from its headers: 8-byte positions and the values of its changed elements; for dense
    /// XOR, the tensor's size; for low-rank, its factors as doubles plus its residual's. Nil when
    /// the headers are not a patch's.
    public static func decodedSize(of patch: UnsafeRawBufferPointer, tensorBytes: Int) -> Int? {
        guard let (encoding, changed) = Patch.peek(patch) else { return nil }
        func product(_ a: Int, _ b: Int) -> Int { let (p, o) = a.multipliedReportingOverflow(by: b); return o ? Int.max : p }
        switch encoding {
        case .denseXor:
            return tensorBytes
        case .sparseXor, .sparseValues:
            return product(changed, 8 + max(Int(patch[5]), 1))
        case .lowRank:
            // Body (after the 24-byte header): codes (8 bytes), rows, cols, rank, factor length,
            // residual length (u64 each), factors, residual.
            guard patch.count >= 72 else { return nil }
            func field(_ k: Int) -> Int { Int(exactly: patch.loadUnaligned(fromByteOffset: 32 + 8 * k, as: UInt64.self)) ?? Int.max }
            let rows = field(0), cols = field(1), rank = field(2), factorLength = field(3)
            guard factorLength <= patch.count - 72 else { return nil }
            let residual = UnsafeRawBufferPointer(rebasing: patch[(72 + factorLength)...])
            guard Patch.peek(residual)?.encoding != .lowRank, let inner = decodedSize(of: residual, tensorBytes: tensorBytes) else { return nil }
            let (both, over) = rows.addingReportingOverflow(cols)
            let factors = product(product(over ? Int.max : both, rank), 8)
            let (sum, overflow) = factors.addingReportingOverflow(inner)
            return overflow ? Int.max : sum
        }
    }

    /// Applies the patches not applied yet; the buffer then holds the end of the chain.
    public mutating func finish() { flush() }

    /// Elements per row of the pending predictions (all equal); nil without one.
    private var predictionColumns: Int? { pending.first(where: { $0.prediction != nil })?.rowElements }

    private mutating func flush() {
        guard let first = pending.first, buffer.count > 0 else { pending = []; held = 0; return }
        let patches = pending, base = buffer.baseAddress!
        let view = BufferViews(parent: UnsafeRawPointer(base), out: base)
        DecodedPatch.forEachBlock(count: first.count, rowElements: predictionColumns ?? 1, elementSize: first.elementSize, blockBytes: Self.blockBytes) { lo, hi in
            for p in patches { p.apply(parent: view.parent, into: view.out, elements: lo, hi) }
        }
        pending = []
        held = 0
    }
}

/// A sum added to from several threads.
final class Tally: @unchecked Sendable {
    private let lock = NSLock()
    private var sum = 0
    /// Adds `n`; returns the new sum.
    @discardableResult func add(_ n: Int) -> Int { lock.lock(); defer { lock.unlock() }; sum += n; return sum }
    var total: Int { lock.lock(); defer { lock.unlock() }; return sum }
}

/// A patch's input and output, shared by the threads that write disjoint row ranges of the output.
struct BufferViews: @unchecked Sendable {
    let parent: UnsafeRawPointer
    let out: UnsafeMutableRawPointer
}
