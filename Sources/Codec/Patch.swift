import CShims
import Foundation

/// How a patch encodes the change from parent bytes to child bytes.
public enum PatchEncoding: UInt8, Sendable, CustomStringConvertible {
    /// Changed positions (delta-encoded, shuffled, zstd) + XOR of old and new bits.
    case sparseXor = 1
    /// Changed positions + the new values.
    case sparseValues = 2
    /// XOR of every element, byte-plane shuffled, zstd.
    case denseXor = 3
    /// Low-rank factors A·Bᵀ predicting the child from the parent, plus an exact residual patch
    /// from the prediction to the child (ROME edits are rank one, MEMIT rank ≤ batch).
    case lowRank = 4

    public var description: String {
        switch self {
        case .sparseXor: return "sparse-xor"
        case .sparseValues: return "sparse-values"
        case .denseXor: return "dense-xor"
        case .lowRank: return "low-rank"
        }
    }
}

/// An exact, self-describing transform from a parent tensor's bytes to a child's.
///
/// Layout (little-endian): "WLP1" · encoding u8 · element size u8 · 2 reserved · element count u64 ·
/// changed count u64 · body. Sparse body: index width u8 (4 or 8) · 7 reserved · compressed
/// index length u64 · compressed value length u64 · zstd(shuffle(delta indices)) ·
/// zstd(shuffle(values)). Dense body: zstd(shuffle(parent XOR child)).
public struct Patch: Sendable {
    public static let magic: [UInt8] = Array("WLP1".utf8)

    public var bytes: [UInt8]
    public var encoding: PatchEncoding
    /// Number of elements whose bytes differ.
    public var changed: Int

    /// Builds the smallest patch turning `parent` into `child`.
    ///
    /// Sparse encodings are tried when at most a quarter of the elements changed, the dense one
    /// when at least 1/8 changed; the smallest candidate wins. (Below 1/8 the dense candidate
    /// lost every time it was measured: on the residuals of rank-one edits, 4% changed on SmolLM2
    /// F32 and 11% on a 7B-shaped BF16 `down_proj`, it was 1.65× and 1.5× the sparse-xor size.)
    /// - Parameter tryChildValues: also try sparse-values (the child's bytes at the changed
    ///   positions). Off for a low-rank residual, whose parent is the prediction: there the XOR
    ///   holds only the few low bits the prediction missed, the child's values all of theirs.
    /// - Precondition: equal sizes, a multiple of `elementSize`.
    public static func make(parent: UnsafeRawBufferPointer, child: UnsafeRawBufferPointer, elementSize: Int,
                            level: Int32 = Zstd.defaultLevel, tryChildValues: Bool = true) throws -> Patch {
        precondition(parent.count == child.count && parent.count % elementSize == 0, "patch operands differ in size")
        var xor = uninitializedBytes(parent.count)   // wl_xor_count writes every byte
        let changed = xor.withUnsafeMutableBytes { x -> Int in
            guard parent.count > 0 else { return 0 }
            return wl_xor_count(parent.baseAddress!.assumingMemoryBound(to: UInt8.self), child.baseAddress!.assumingMemoryBound(to: UInt8.self),
                                x.baseAddress!.assumingMemoryBound(to: UInt8.self), parent.count, elementSize)
        }
        return try make(xor: xor, changed: changed, child: child, elementSize: elementSize, level: level, tryChildValues: tryChildValues)
    }

    /// `make` from the parent's and child's bits already XORed: `xor` has `changed` non-zero
    /// elements (the low-rank encoder XORs its prediction with the child block by block, without
    /// a buffer for the prediction).
    static func make(xor: [UInt8], changed: Int, child: UnsafeRawBufferPointer, elementSize: Int, level: Int32,
                     tryChildValues: Bool) throws -> Patch {
        precondition(xor.count == child.count && xor.count % elementSize == 0, "patch operands differ in size")
        let count = xor.count / elementSize
        var best: Patch? = nil
        func consider(_ p: Patch) { if best == nil || p.bytes.count < best!.bytes.count { best = p } }
        let trySparse = changed <= count / 4 || count < 64, tryDense = changed >= count / 8
        // The dense candidate is one long compression: for a large tensor that also gets sparse
        // candidates it runs on another thread meanwhile (the winner does not depend on timing).
        let xorDone = xor
        func makeDense() throws -> Patch {
            var out = header(.denseXor, elementSize: elementSize, count: count, changed: changed)
            out.append(contentsOf: try compressShuffled(xorDone, elementSize: elementSize, level: level))
            return Patch(bytes: out, encoding: .denseXor, changed: changed)
        }
        let background = trySparse && tryDense && xor.count >= Zstd.parallelThreshold ? Background(makeDense) : nil
        if trySparse {
            // One pass gathers the delta-coded positions and both value arrays (wl_sparse_gather).
            let width = count <= Int(UInt32.max) ? 4 : 8
            var rawIndices = uninitializedBytes((changed + 1) * width)
            var xorValues = uninitializedBytes((changed + 1) * elementSize), childValues = uninitializedBytes((changed + 1) * elementSize)
            let gathered = xor.withUnsafeBytes { x in
                rawIndices.withUnsafeMutableBytes { ip in
                    xorValues.withUnsafeMutableBytes { xv in
                        childValues.withUnsafeMutableBytes { cv in
                            wl_sparse_gather(x.baseAddress?.assumingMemoryBound(to: UInt8.self), child.baseAddress?.assumingMemoryBound(to: UInt8.self),
                                             count, elementSize, Int32(width), ip.baseAddress?.assumingMemoryBound(to: UInt8.self),
                                             xv.baseAddress?.assumingMemoryBound(to: UInt8.self), cv.baseAddress?.assumingMemoryBound(to: UInt8.self))
                        }
                    }
                }
            }
            precondition(gathered == changed, "sparse gather found \(gathered) changed elements, XOR counted \(changed)")
            rawIndices.removeLast(width)
            xorValues.removeLast(elementSize)
            childValues.removeLast(elementSize)
            let values = tryChildValues ? [(PatchEncoding.sparseXor, xorValues), (.sparseValues, childValues)] : [(.sparseXor, xorValues)]
            for p in try sparse(rawIndices: rawIndices, width: width, values: values, count: count, changed: changed, elementSize: elementSize,
                                level: level) {
                consider(p)
            }
        }
        if let background {
            consider(try background.wait())
        } else if tryDense {
            consider(try makeDense())
        }
        return best!
    }

    /// The sparse patches of `changed` elements of `count`: their positions delta-coded in
    /// `rawIndices` (`width` bytes each, as wl_sparse_gather writes them) and, per encoding, their
    /// values.
    static func sparse(rawIndices: [UInt8], width: Int, values: [(PatchEncoding, [UInt8])], count: Int, changed: Int, elementSize: Int,
                       level: Int32) throws -> [Patch] {
        let indexBlob = try compressShuffled(rawIndices, elementSize: width, level: Zstd.defaultLevel)
        return try values.map { enc, values in
            let valueBlob = try compressShuffled(values, elementSize: elementSize, level: level)
            var out = header(enc, elementSize: elementSize, count: count, changed: changed)
            out.append(UInt8(width))
            out.append(contentsOf: [UInt8](repeating: 0, count: 7))
            appendU64(&out, UInt64(indexBlob.count))
            appendU64(&out, UInt64(valueBlob.count))
            out.append(contentsOf: indexBlob)
            out.append(contentsOf: valueBlob)
            return Patch(bytes: out, encoding: enc, changed: changed)
        }
    }

    /// Applies a stored patch to `parent`, writing the child into `out`. `out` may be `parent`
    /// itself (the same memory): every encoding reads an element (a low-rank prediction, a row)
    /// before it writes it.
    /// - Throws: `CodecError.corrupt` when the patch is malformed or does not fit the parent.
    public static func apply(_ patch: UnsafeRawBufferPointer, to parent: UnsafeRawBufferPointer,
                             into out: UnsafeMutableRawBufferPointer) throws {
        guard out.count == parent.count else {
            throw CodecError.corrupt(what: "patch", reason: "output has \(out.count) bytes, parent has \(parent.count)")
        }
        let decoded = try decode(patch, parentBytes: parent.count)
        guard parent.count > 0 else { return }
        decoded.apply(parent: parent.baseAddress!, into: out.baseAddress!)
    }

    /// Parses and decompresses a stored patch for a parent of `parentBytes` bytes, checking
    /// everything `apply` relies on: header, sizes, and that sparse positions increase and stay in range.
    /// - Throws: `CodecError.corrupt` when the patch is malformed or does not fit the parent.
    public static func decode(_ patch: UnsafeRawBufferPointer, parentBytes: Int) throws -> DecodedPatch {
        func bad(_ r: String) -> CodecError { .corrupt(what: "patch", reason: r) }
        guard patch.count >= 24, Array(patch[0..<4]) == magic else { throw bad("bad magic or truncated header") }
        guard let enc = PatchEncoding(rawValue: patch[4]) else { throw bad("unknown encoding \(patch[4])") }
        let elem = Int(patch[5])
        let count64 = patch.loadUnaligned(fromByteOffset: 8, as: UInt64.self)
        let changed64 = patch.loadUnaligned(fromByteOffset: 16, as: UInt64.self)
        guard elem >= 1, let count = Int(exactly: count64), count.multipliedReportingOverflow(by: elem) == (parentBytes, false) else {
            throw bad("patch is for \(count64) elements of \(elem) bytes, parent has \(parentBytes) bytes")
        }
        guard let changed = Int(exactly: changed64), changed <= count else { throw bad("changed count \(changed64) exceeds element count \(count)") }
        let body = UnsafeRawBufferPointer(rebasing: patch[24...])
        switch enc {
        case .lowRank:
            return try LowRankPatch.decode(body: body, elementSize: elem, count: count)
        case .denseXor:
            var xor = uninitializedBytes(parentBytes)
            try xor.withUnsafeMutableBytes { x in
                try Chunker.decodeChunk(codec: .shuffledZstd, elementSize: elem, data: body, into: x)
            }
            return DecodedPatch(elementSize: elem, count: count, prediction: nil, residual: .dense(xor: xor))
        case .sparseXor, .sparseValues:
            guard body.count >= 24 else { throw bad("truncated sparse header") }
            let width = Int(body[0])
            guard width == 4 || width == 8 else { throw bad("index width \(width)") }
            let idxLen = body.loadUnaligned(fromByteOffset: 8, as: UInt64.self)
            let valLen = body.loadUnaligned(fromByteOffset: 16, as: UInt64.self)
            guard idxLen <= UInt64(body.count), valLen <= UInt64(body.count), 24 + Int(idxLen) + Int(valLen) == body.count else {
                throw bad("section lengths do not match patch size")
            }
            let idxData = UnsafeRawBufferPointer(rebasing: body[24..<(24 + Int(idxLen))])
            let valData = UnsafeRawBufferPointer(rebasing: body[(24 + Int(idxLen))...])
            var idxRaw = uninitializedBytes(changed * width)   // decoding fills both or throws
            var values = uninitializedBytes(changed * elem)
            var positions = uninitializedArray(changed, of: UInt64.self)   // every one written, or decoding throws
            if changed > 0 {
                try idxRaw.withUnsafeMutableBytes { try Chunker.decodeChunk(codec: .shuffledZstd, elementSize: width, data: idxData, into: $0) }
                try values.withUnsafeMutableBytes { try Chunker.decodeChunk(codec: .shuffledZstd, elementSize: elem, data: valData, into: $0) }
                let ok = idxRaw.withUnsafeBytes { ib in
                    positions.withUnsafeMutableBufferPointer {
                        wl_sparse_positions(ib.baseAddress!.assumingMemoryBound(to: UInt8.self), Int32(width), changed, count, $0.baseAddress!) == 0
                    }
                }
                guard ok else { throw bad("index out of range or not increasing") }
            }
            return DecodedPatch(elementSize: elem, count: count, prediction: nil,
                                residual: .sparse(positions: positions, values: values, xor: enc == .sparseXor))
        }
    }

    /// Reads the encoding and changed count from a stored patch header.
    public static func peek(_ patch: UnsafeRawBufferPointer) -> (encoding: PatchEncoding, changed: Int)? {
        guard patch.count >= 24, Array(patch[0..<4]) == magic, let e = PatchEncoding(rawValue: patch[4]) else { return nil }
        guard let changed = Int(exactly: patch.loadUnaligned(fromByteOffset: 16, as: UInt64.self)) else { return nil }
        return (e, changed)
    }

    private static func header(_ enc: PatchEncoding, elementSize: Int, count: Int, changed: Int) -> [UInt8] {
        var out = magic
        out.append(enc.rawValue)
        out.append(UInt8(elementSize))
        out.append(contentsOf: [0, 0])
        appendU64(&out, UInt64(count))
        appendU64(&out, UInt64(changed))
        return out
    }

    private static func compressShuffled(_ raw: [UInt8], elementSize: Int, level: Int32) throws -> [UInt8] {
        guard !raw.isEmpty else { return [] }
        var shuffled = uninitializedBytes(raw.count)
        raw.withUnsafeBytes { r in shuffled.withUnsafeMutableBytes { s in Shuffle.shuffle(r, into: s, elementSize: elementSize) } }
        // A large patch is one tensor's worth of work: let libzstd use every core for it.
        return try shuffled.withUnsafeBytes { try Zstd.compress($0, level: level, parallel: true) }
    }
}

func appendU64(_ out: inout [UInt8], _ v: UInt64) {
    withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) }
}

/// A byte array of `count` bytes left uninitialized, for buffers a kernel overwrites entirely
/// (saves zero-filling tensors of up to hundreds of MB before writing them).
public func uninitializedBytes(_ count: Int) -> [UInt8] { uninitializedArray(count, of: UInt8.self) }

/// An array of `count` elements left uninitialized (see `uninitializedBytes`).
public func uninitializedArray<T: BitwiseCopyable>(_ count: Int, of: T.Type) -> [T] {
    [T](unsafeUninitializedCapacity: count) { buf, n in
        if let base = buf.baseAddress { adviseHugePages(base, count * MemoryLayout<T>.stride) }
        n = count
    }
}

/// Asks for transparent huge pages over the 2 MiB regions that a fresh buffer touches, before it
/// is first written: one fault and one zeroing per 2 MiB instead of per 4 KiB. A fresh page's
/// first touch is the dearest part of a commit on a virtual machine whose page cache is full
/// (23 µs per 4 KiB page measured here, against 1.3 µs when memory is free; from 0.2 to 23 µs
/// per 4 KiB in huge pages, `bench/freshmem.c`: kept for what interleaved commits measured). A
/// region of which some page is mapped already stays in small pages; one shared with the heap's
/// next allocations gets its huge page early.
public func adviseHugePages(_ base: UnsafeMutableRawPointer, _ count: Int) {
    guard count >= 1 << 20 else { return }
    let huge = 2 << 20
    let start = Int(bitPattern: base) & ~(huge - 1), end = (Int(bitPattern: base) + count + huge - 1) & ~(huge - 1)
    _ = madvise(UnsafeMutableRawPointer(bitPattern: start), end - start, MADV_HUGEPAGE)
}
