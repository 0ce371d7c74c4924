import CShims
@testable import Codec
import Foundation
import LinAlg
import TensorIO
import TestSupport
@testable import WLedgerKit
import XCTest

/// The low-rank encoder on real SmolLM2 `down_proj` edits: the C pass against a reference
/// written here from the rounding rule itself (neighbouring representable values), and the
/// whole encoder's patches (exact, small, deterministic).
final class LowRankEncodingTests: XCTestCase {
    /// A rank-one edit of `model.layers.4.mlp.down_proj` in a copy of the model of `dtype`.
    func edit(_ dtype: String, seed: UInt64, scale: Float = 0.05) throws -> (parent: [UInt8], child: [UInt8], shape: [Int], dtype: DType) {
        let tmp = try TemporaryDirectory("lowrank-\(dtype)")
        let model = try tmp.copyModel(from: try Fixtures.smolLM2(dtype))
        let file = model + "/model.safetensors", tensor = "model.layers.4.mlp.down_proj.weight"
        let (parent, child) = try SimulatedEdit.rankOne(file: file, tensor: tensor, seed: seed, scale: scale)
        let (info, _) = try SimulatedEdit.locate(file: file, tensor: tensor)
        return (parent, child, info.shape, info.dtype)
    }

    /// Element i of stored bytes and its two neighbouring representable values, as doubles.
    static func neighbours(_ bytes: [UInt8], _ i: Int, dtype: DType) -> (value: Double, below: Double, above: Double) {
        switch dtype {
        case .f32:
            let v = bytes.withUnsafeBytes { Float(bitPattern: $0.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)) }
            return (Double(v), Double(v.nextDown), Double(v.nextUp))
        case .bf16:
            let bits = bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self) }
            func value(_ b: UInt16) -> Double { Double(Float(bitPattern: UInt32(b) << 16)) }
            let magnitude = bits & 0x7fff, negative = bits & 0x8000 != 0
            // Moving the magnitude one step away from / towards zero (zero's neighbours are ±the
            // smallest subnormal).
            let away = value((magnitude + 1) | (bits & 0x8000))
            let toward = magnitude == 0 ? -value(1) : value((magnitude - 1) | (bits & 0x8000))
            let v = value(bits)
            if magnitude == 0 { return (v, -value(1), value(1)) }
            return negative ? (v, away, toward) : (v, toward, away)
        case .f16:
            let v = bytes.withUnsafeBytes { Float16(bitPattern: $0.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) }
            return (Double(v), Double(v.nextDown), Double(v.nextUp))
        default:
            fatalError("not used here")
        }
    }

    /// One pass over the whole tensor against a reference: misses counted with boxes from the
    /// neighbouring values (h = (1/2 − 2⁻¹⁴)·min(gap below, gap above)), and A_new, XᵀA_new
    /// from the projected X. Factors are the exact rank-one edit, slightly scaled so that many
    /// elements leave their boxes.
    func checkPass(_ dtype: String) throws {
        let e = try edit(dtype, seed: 9)
        let rows = e.shape[0], cols = e.shape[1], code = try XCTUnwrap(LowRankEncoding.kernelCode(e.dtype))
        let p = (0..<(rows * cols)).map { Self.neighbours(e.parent, $0, dtype: e.dtype).value }
        let c = (0..<(rows * cols)).map { Self.neighbours(e.child, $0, dtype: e.dtype).value }
        // Rank-two factors: the top of ΔW's SVD times 1.001, plus a small second term.
        let dw = Matrix(rows: rows, cols: cols, data: zip(c, p).map { $0 - $1 })
        let svd = try XCTUnwrap(try BLAS.lowRankApproximation(dw, tolerance: 0.5 * dw.frobeniusNorm, maxSampled: 16))
        let rank = 2
        var a = Matrix(zeros: rows, rank), b = Matrix(zeros: cols, rank)
        for i in 0..<rows { a[i, 0] = 1.001 * svd.u[i, 0] * svd.s[0]; a[i, 1] = 1e-4 * Double(i % 7) }
        for j in 0..<cols { b[j, 0] = svd.vt[0, j]; b[j, 1] = Double(j % 5) / 5 }
        let gram = BLAS.multiply(b, b, transA: true)
        let ginv = try LowRankEncoding.pseudoInverse(gram)

        // Reference.
        var misses = 0
        var x = Matrix(zeros: rows, cols)
        for i in 0..<rows {
            for j in 0..<cols {
                let n = i * cols + j
                var v = 0.0
                for k in 0..<rank { v += a[i, k] * b[j, k] }
                let nb = Self.neighbours(e.child, n, dtype: e.dtype)
                let h = (0.5 - 0x1p-14) * min(nb.value - nb.below, nb.above - nb.value)
                let lo = nb.value - h - p[n], hi = nb.value + h - p[n], mid = 0.5 * (lo + hi)
                if v < lo || v > hi { misses += 1; v = mid }
                x[i, j] = v
            }
        }
        let aRef = BLAS.multiply(BLAS.multiply(x, b), ginv)
        let dtaRef = BLAS.multiply(x, aRef, transA: true)

        // Kernel, in two row blocks.
        var aNew = [Double](repeating: 0, count: rows * rank), dtaT = [Double](repeating: 0, count: cols * rank)
        var got = 0
        e.parent.withUnsafeBufferPointer { pp in
            e.child.withUnsafeBufferPointer { cp in
                for (r0, r1) in [(0, rows / 3), (rows / 3, rows)] {
                    got += wl_lowrank_pass(pp.baseAddress!, cp.baseAddress!, code, cols, r0, r1, rank, a.data, b.transposed.data, ginv.data,
                                           &aNew, &dtaT)
                }
            }
        }
        XCTAssertEqual(got, misses, dtype)
        XCTAssertGreaterThan(misses, rows * cols / 10, "the scaled factors should miss many boxes")
        for i in 0..<(rows * rank) { XCTAssertEqual(aNew[i], aRef.data[i], accuracy: 1e-9 * max(1, abs(aRef.data[i]))) }
        let dta = Matrix(rows: rank, cols: cols, data: dtaT).transposed
        for i in 0..<(cols * rank) { XCTAssertEqual(dta.data[i], dtaRef.data[i], accuracy: 1e-9 * max(1, abs(dtaRef.data[i]))) }
        // Count-only mode gives the same misses and touches nothing.
        let counted = e.parent.withUnsafeBufferPointer { pp in
            e.child.withUnsafeBufferPointer { cp in
                wl_lowrank_pass(pp.baseAddress!, cp.baseAddress!, code, cols, 0, rows, rank, a.data, b.transposed.data, nil, nil, nil)
            }
        }
        XCTAssertEqual(counted, misses)

        // Every element the kernel counts as inside its box rounds to the child: with the exact
        // rank-one factors in F64, p + x rounded to the dtype must equal c wherever x is inside.
        var inside = 0, roundsRight = 0
        for n in 0..<(rows * cols) {
            let nb = Self.neighbours(e.child, n, dtype: e.dtype)
            let h = (0.5 - 0x1p-14) * min(nb.value - nb.below, nb.above - nb.value)
            let xv = x.data[n]
            guard xv >= nb.value - h - p[n], xv <= nb.value + h - p[n] else { continue }
            inside += 1
            let sum = Float(p[n] + xv)
            let rounded: Double = e.dtype == .f32 ? Double(sum) : e.dtype == .f16 ? Double(Float16(sum))
                : ReferenceDecode.doubles(bf16Bytes(sum), dtype: "BF16")[0]
            if rounded == nb.value { roundsRight += 1 }
        }
        XCTAssertEqual(inside, rows * cols, "projected X lies in every box")
        XCTAssertEqual(roundsRight, inside, "a value inside its box rounds to the child")
    }

    /// Round-to-nearest-even BF16 bytes of a float (as the converters in TensorIO do).
    func bf16Bytes(_ f: Float) -> [UInt8] {
        let u = f.bitPattern
        // Round to nearest even; a NaN keeps its sign and top payload bits, made quiet.
        let r = f.isNaN ? (u >> 16) | 0x40 : (u &+ 0x7fff &+ ((u >> 16) & 1)) >> 16
        return [UInt8(r & 0xff), UInt8(r >> 8)]
    }

    func testPassMatchesReferenceF32() throws { try checkPass("f32") }
    func testPassMatchesReferenceBF16() throws { try checkPass("bf16") }
    func testPassMatchesReferenceF16() throws { try checkPass("f16") }

    /// Refinement on real rank-one edits of the size the benchmark makes (scale 0.01; F32, BF16):
    /// starting from ΔW's truncated SVD, the factors it returns leave far fewer elements outside
    /// their rounding boxes (counted by the kernel's count-only pass, checked against the
    /// reference in `checkPass`). Moving a miss to its box's centre leaves 13 k of 885 k on the
    /// BF16 edit (1.5%); moving it only as far past the nearer edge as it missed, as the encoder
    /// once did, left 40 k (4.5%). The F32 edit here is rank one only up to float32 rounding (the
    /// test computes scale·u·v in Float), so more are left either way: 5.4% against 6.6%.
    func testRefinementLeavesFewMisses() throws {
        for dtype in ["f32", "bf16"] {
            let e = try edit(dtype, seed: 21, scale: 0.01)
            let rows = e.shape[0], cols = e.shape[1], code = try XCTUnwrap(LowRankEncoding.kernelCode(e.dtype))
            try e.parent.withUnsafeBytes { pb in
                try e.child.withUnsafeBytes { cb in
                    let delta = LowRankEncoding.DeltaOperand(parent: pb, child: cb, code: code, rows: rows, cols: cols)
                    let svd = try XCTUnwrap(try BLAS.lowRankApproximation(delta, tolerance: 2 * (e.dtype == .f32 ? 0x1p-24 : 0x1p-9) * delta.childSquares.squareRoot(),
                                                                          maxSampled: 16))
                    var a = Matrix(zeros: rows, 1), b = Matrix(zeros: cols, 1)
                    for i in 0..<rows { a[i, 0] = svd.u[i, 0] * svd.s[0] }
                    for j in 0..<cols { b[j, 0] = svd.vt[0, j] }
                    func misses(_ a: Matrix, _ b: Matrix) -> Int {
                        wl_lowrank_pass(pb.baseAddress!.assumingMemoryBound(to: UInt8.self), cb.baseAddress!.assumingMemoryBound(to: UInt8.self),
                                        code, cols, 0, rows, 1, a.data, b.transposed.data, nil, nil, nil)
                    }
                    let before = misses(a, b)
                    try LowRankEncoding.refine(a: &a, b: &b, parent: pb, child: cb, code: code, rows: rows, cols: cols)
                    let after = misses(a, b)
                    XCTAssertGreaterThan(before, rows * cols / 20, "\(dtype): the truncated SVD alone misses many boxes")
                    XCTAssertLessThan(Double(after), (dtype == "f32" ? 0.06 : 0.025) * Double(rows * cols), "\(dtype): \(before) → \(after) misses")
                }
            }
        }
    }

    /// The whole encoder: a rank-one (and a rank-three) edit becomes a low-rank patch that
    /// rebuilds the child exactly, far below the dense size, the same bytes on every run.
    func testEncoderOnRealEdits() throws {
        for dtype in ["f32", "bf16", "f16"] {
            let e = try edit(dtype, seed: 21)
            let patch = try e.parent.withUnsafeBytes { pb in
                try e.child.withUnsafeBytes { cb in
                    try LowRankEncoding.attempt(parent: pb, child: cb, dtype: e.dtype, shape: e.shape, budget: cb.count, level: 3)
                }
            }
            let p = try XCTUnwrap(patch, dtype)
            XCTAssertEqual(p.encoding, .lowRank)
            XCTAssertLessThan(p.bytes.count, e.child.count / 16, dtype)
            // The output starts as garbage: applying must write every byte (nothing is copied first).
            var out = [UInt8](repeating: 0xA5, count: e.child.count)
            try p.bytes.withUnsafeBytes { pb in try e.parent.withUnsafeBytes { par in try out.withUnsafeMutableBytes { try Patch.apply(pb, to: par, into: $0) } } }
            XCTAssertEqual(out, e.child, dtype)
            // Applied in place (the parent's memory is the output, rows split over threads), the same.
            var same = e.parent
            try p.bytes.withUnsafeBytes { pb in try same.withUnsafeMutableBytes { try Patch.apply(pb, to: UnsafeRawBufferPointer($0), into: $0) } }
            XCTAssertEqual(same, e.child, "\(dtype) in place")
            let again = try e.parent.withUnsafeBytes { pb in
                try e.child.withUnsafeBytes { try LowRankEncoding.attempt(parent: pb, child: $0, dtype: e.dtype, shape: e.shape, budget: $0.count, level: 3) }
            }
            XCTAssertEqual(again?.bytes, p.bytes, "deterministic")
        }
        // A full-rank change (independent noise on every element) is not low-rank.
        let tmp = try TemporaryDirectory("lowrank-noise")
        let model = try tmp.copyModel(from: try Fixtures.smolLM2("f32"))
        let file = model + "/model.safetensors", tensor = "model.layers.4.mlp.down_proj.weight"
        var rng = SplitMix64(seed: 5)
        let (parent, child) = try SimulatedEdit.modify(file: file, tensor: tensor) { w, _ in
            for i in w.indices { w[i] += 0.01 * rng.nextGaussian() }
        }
        let (info, _) = try SimulatedEdit.locate(file: file, tensor: tensor)
        let noise = try parent.withUnsafeBytes { pb in
            try child.withUnsafeBytes { try LowRankEncoding.attempt(parent: pb, child: $0, dtype: .f32, shape: info.shape, budget: $0.count, level: 3) }
        }
        XCTAssertNil(noise)
    }

    /// A checkout rebuilds a tensor by running its chain of patches over the keyframe a block of
    /// rows at a time (`PatchChain`). On a real chain of eight edits of SmolLM2's `down_proj`
    /// (rank-one ROME-like edits stored low-rank, scattered weight edits stored sparse, one noise
    /// edit stored dense), the result equals the patches applied one after another, whatever
    /// budget splits the chain; and a patch that does not fit the buffer is an error.
    func testPatchChainEqualsPatchesAppliedOneByOne() throws {
        for dtype in ["f32", "bf16"] {
            let tmp = try TemporaryDirectory("chain-\(dtype)")
            let model = try tmp.copyModel(from: try Fixtures.smolLM2(dtype))
            let file = model + "/model.safetensors", tensor = "model.layers.7.mlp.down_proj.weight"
            let (info, _) = try SimulatedEdit.locate(file: file, tensor: tensor)
            var base: [UInt8]?
            var versions: [[UInt8]] = []
            var patches: [Patch] = []
            var rng = SplitMix64(seed: 9)
            for k in 0..<8 {
                let (parent, child): ([UInt8], [UInt8])
                switch k % 4 {
                case 2:   // a few hundred scattered weights: neither low-rank nor dense
                    (parent, child) = try SimulatedEdit.modify(file: file, tensor: tensor) { w, _ in
                        for _ in 0..<300 { w[Int(rng.next() % UInt64(w.count))] *= 1.5 }
                    }
                case 3 where k == 3:
                    (parent, child) = try SimulatedEdit.modify(file: file, tensor: tensor) { w, _ in
                        for i in w.indices where i % 3 != 0 { w[i] += 0.001 * Float(rng.nextGaussian()) }
                    }
                default: (parent, child) = try SimulatedEdit.rankOne(file: file, tensor: tensor, seed: UInt64(40 + k), scale: 0.05)
                }
                if base == nil { base = parent }
                let patch = try parent.withUnsafeBytes { pb in
                    try child.withUnsafeBytes { cb in
                        try (k % 4 == 2 ? nil : LowRankEncoding.attempt(parent: pb, child: cb, dtype: info.dtype, shape: info.shape, budget: cb.count, level: 3))
                            ?? Patch.make(parent: pb, child: cb, elementSize: info.dtype.size)
                    }
                }
                patches.append(patch)
                versions.append(child)
            }
            XCTAssertEqual(Set(patches.map(\.encoding)), [.lowRank, .sparseXor, .denseXor], dtype)
            // The size a chain expects a patch to hold, read from its headers, is what decoding holds.
            for p in patches {
                try p.bytes.withUnsafeBytes { pb in
                    XCTAssertEqual(PatchChain.decodedSize(of: pb, tensorBytes: base!.count),
                                   try Patch.decode(pb, parentBytes: base!.count).heldBytes, "\(dtype) \(p.encoding)")
                }
            }
            // One by one, each patch from the previous version.
            var previous = base!
            for (p, v) in zip(patches, versions) {
                var out = [UInt8](repeating: 0, count: v.count)
                try p.bytes.withUnsafeBytes { pb in try previous.withUnsafeBytes { par in try out.withUnsafeMutableBytes { try Patch.apply(pb, to: par, into: $0) } } }
                XCTAssertEqual(out, v, dtype)
                previous = out
            }
            // As a chain: every budget from "flush after each patch" to "hold them all".
            for budget in [1, 200_000, PatchChain.defaultBudget] {
                var buffer = base!
                try buffer.withUnsafeMutableBytes { b in
                    var chain = PatchChain(buffer: b, budget: budget)
                    for p in patches { try p.bytes.withUnsafeBytes { try chain.append($0) } }
                    chain.finish()
                }
                XCTAssertEqual(buffer, versions.last!, "\(dtype) budget \(budget)")
            }
            // A low-rank patch whose residual counts the same bytes as elements of another size
            // (half as large, twice as many) is refused, not applied with shifted positions.
            var odd = patches[0].bytes
            XCTAssertEqual(patches[0].encoding, .lowRank)
            let fLen = Int(odd.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 24 + 32, as: UInt64.self) })
            let r = 24 + 48 + fLen
            odd[r + 5] = UInt8(info.dtype.size / 2)
            let doubled = odd.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: r + 8, as: UInt64.self) } * 2
            withUnsafeBytes(of: doubled.littleEndian) { for k in 0..<8 { odd[r + 8 + k] = $0[k] } }
            var scratch = [UInt8](repeating: 0, count: base!.count)
            XCTAssertThrowsError(try odd.withUnsafeBytes { pb in
                try base!.withUnsafeBytes { par in try scratch.withUnsafeMutableBytes { try Patch.apply(pb, to: par, into: $0) } }
            }, dtype)
            // A patch for another size is refused when it is appended.
            var short = [UInt8](base!.prefix(base!.count - info.dtype.size))
            try short.withUnsafeMutableBytes { b in
                var chain = PatchChain(buffer: b)
                XCTAssertThrowsError(try patches[0].bytes.withUnsafeBytes { try chain.append($0) }, dtype)
            }
        }
    }

    /// The same on SmolLM2's BF16 `embed_tokens` (49152×576, 28M elements): a tensor of 2^20
    /// elements or more has its row blocks split across threads, so the chain's result must not
    /// depend on how the rows are shared out.
    func testPatchChainOnATensorSplitAcrossThreads() throws {
        let tmp = try TemporaryDirectory("chain-embed")
        let model = try tmp.copyModel(from: try Fixtures.smolLM2("bf16"))
        let file = model + "/model.safetensors", tensor = "model.embed_tokens.weight"
        let (info, _) = try SimulatedEdit.locate(file: file, tensor: tensor)
        XCTAssertGreaterThanOrEqual(info.shape.reduce(1, *), 1 << 20)
        var rng = SplitMix64(seed: 12)
        var base: [UInt8]?, last: [UInt8] = [], patches: [Patch] = []
        for k in 0..<3 {
            let (parent, child): ([UInt8], [UInt8])
            if k == 1 {
                (parent, child) = try SimulatedEdit.modify(file: file, tensor: tensor) { w, _ in
                    for _ in 0..<2000 { w[Int(rng.next() % UInt64(w.count))] *= 1.5 }
                }
            } else {
                (parent, child) = try SimulatedEdit.rankOne(file: file, tensor: tensor, seed: UInt64(60 + k), scale: 0.05)
            }
            if base == nil { base = parent }
            patches.append(try parent.withUnsafeBytes { pb in
                try child.withUnsafeBytes { cb in
                    try (k == 1 ? nil : LowRankEncoding.attempt(parent: pb, child: cb, dtype: info.dtype, shape: info.shape, budget: cb.count, level: 3))
                        ?? Patch.make(parent: pb, child: cb, elementSize: info.dtype.size)
                }
            })
            last = child
        }
        XCTAssertEqual(patches.map(\.encoding), [.lowRank, .sparseXor, .lowRank])
        for budget in [1, PatchChain.defaultBudget] {
            var buffer = base!
            try buffer.withUnsafeMutableBytes { b in
                var chain = PatchChain(buffer: b, budget: budget)
                for p in patches { try p.bytes.withUnsafeBytes { try chain.append($0) } }
                chain.finish()
            }
            XCTAssertTrue(buffer == last, "budget \(budget)")
        }
    }

    /// The low-rank patch's residual is gathered block by block (`LowRankPatch.residual`): on
    /// real rank-one edits (F32 and BF16 `down_proj`, and BF16 `embed_tokens`, whose 28M elements
    /// are split across threads) it is byte for byte `Patch.make` of the whole prediction and the
    /// child. With factors three times too large, most elements miss: the whole XOR is built and
    /// the result is again `Patch.make`'s.
    func testResidualGatheredByBlocksEqualsPatchOfWholePrediction() throws {
        for (dtype, tensor) in [("f32", "model.layers.4.mlp.down_proj.weight"), ("bf16", "model.layers.4.mlp.down_proj.weight"),
                                ("bf16", "model.embed_tokens.weight")] {
            let tmp = try TemporaryDirectory("residual-\(dtype)")
            let model = try tmp.copyModel(from: try Fixtures.smolLM2(dtype))
            let file = model + "/model.safetensors"
            let (parent, child) = try SimulatedEdit.rankOne(file: file, tensor: tensor, seed: 33, scale: 0.01)
            let (info, _) = try SimulatedEdit.locate(file: file, tensor: tensor)
            let (rows, cols) = (info.shape[0], info.shape[1]), e = info.dtype.size
            let stored = try parent.withUnsafeBytes { pb in
                try child.withUnsafeBytes { try LowRankEncoding.attempt(parent: pb, child: $0, dtype: info.dtype, shape: info.shape, budget: $0.count, level: 3) }
            }
            let fitted = try XCTUnwrap(try XCTUnwrap(stored).bytes.withUnsafeBytes { try Patch.decode($0, parentBytes: parent.count) }.prediction)
            // b (cols × rank) back from the kernel's transposed copy.
            var b = [Double](repeating: 0, count: cols * fitted.rank)
            for k in 0..<fitted.rank { for j in 0..<cols { b[j * fitted.rank + k] = fitted.bt[k * cols + j] } }
            for (label, scale) in [("fitted", 1.0), ("three times too large", 3.0)] {
                let prediction = DecodedPatch.Prediction(code: fitted.code, cols: cols, rank: fitted.rank, a: fitted.a.map { $0 * scale }, b: b)
                let blocks = try parent.withUnsafeBytes { pb in
                    try child.withUnsafeBytes { try LowRankPatch.residual(prediction: prediction, parent: pb, child: $0, rows: rows, cols: cols, elementSize: e, level: 3) }
                }
                var predicted = [UInt8](repeating: 0, count: parent.count)
                parent.withUnsafeBytes { pb in predicted.withUnsafeMutableBytes { prediction.predict(parent: pb.baseAddress!, into: $0.baseAddress!, count: rows * cols, elementSize: e) } }
                let whole = try predicted.withUnsafeBytes { pr in
                    try child.withUnsafeBytes { try Patch.make(parent: pr, child: $0, elementSize: e, level: 3, tryChildValues: false) }
                }
                let where_ = "\(dtype) \(tensor) \(label)"
                XCTAssertEqual(blocks.changed, whole.changed, where_)
                XCTAssertTrue(blocks.bytes == whole.bytes, where_)
                if scale == 1 {
                    XCTAssertEqual(blocks.encoding, .sparseXor, where_)
                    XCTAssertLessThan(blocks.changed, rows * cols / 8, where_)
                } else {
                    XCTAssertGreaterThanOrEqual(blocks.changed, rows * cols / 8, where_)
                }
            }
        }
    }

    /// The largest row and column norms of a row-major matrix, written out here.
    static func largestRowAndColumnNorms(_ m: [Double], rows: Int, cols: Int) -> (row: Double, column: Double) {
        let row = (0..<rows).map { i in (0..<cols).reduce(0.0) { $0 + m[i * cols + $1] * m[i * cols + $1] } }.max()!
        let column = (0..<cols).map { j in (0..<rows).reduce(0.0) { $0 + m[$1 * cols + j] * m[$1 * cols + j] } }.max()!
        return (row.squareRoot(), column.squareRoot())
    }

    /// BF16 `down_proj` matrices with outlier weights (layers 9, 24 and 27 of SmolLM2, |W| up to
    /// 4.7): a rank-one edit of 1% of ‖W‖F, the size `bench/edit.py` makes, is stored low-rank
    /// and rebuilds the child exactly. With the earlier rounding-noise bound 2·u·max|W|·(√m + √n),
    /// which those outliers lifted above the edit's own singular value, each was found to have
    /// rank 0 and stored as a 530–545 KiB dense XOR.
    func testBF16EditsOfMatricesWithOutlierWeightsAreLowRank() throws {
        let tmp = try TemporaryDirectory("lowrank-outliers")
        let model = try tmp.copyModel(from: try Fixtures.smolLM2("bf16"))
        let file = model + "/model.safetensors"
        for layer in [9, 24, 27] {
            let tensor = "model.layers.\(layer).mlp.down_proj.weight"
            let (parent, child) = try SimulatedEdit.modify(file: file, tensor: tensor) { w, shape in
                var rng = SplitMix64(seed: UInt64(100 + layer))
                let rows = shape[0], cols = shape[1]
                let u = (0..<rows).map { _ in Double(rng.nextGaussian()) }, v = (0..<cols).map { _ in Double(rng.nextGaussian()) }
                func norm(_ x: [Double]) -> Double { x.reduce(0) { $0 + $1 * $1 }.squareRoot() }
                let scale = 0.01 * norm(w.map(Double.init)) / (norm(u) * norm(v))
                for i in 0..<rows { for j in 0..<cols { w[i * cols + j] += Float(scale * u[i] * v[j]) } }
            }
            let (info, _) = try SimulatedEdit.locate(file: file, tensor: tensor)
            XCTAssertEqual(info.dtype, .bf16)
            let patch = try parent.withUnsafeBytes { pb in
                try child.withUnsafeBytes { try LowRankEncoding.attempt(parent: pb, child: $0, dtype: info.dtype, shape: info.shape, budget: $0.count, level: 3) }
            }
            let p = try XCTUnwrap(patch, "layer \(layer)")
            XCTAssertEqual(p.encoding, .lowRank)
            XCTAssertLessThan(p.bytes.count, child.count / 16, "layer \(layer)")
            var out = [UInt8](repeating: 0, count: child.count)
            try p.bytes.withUnsafeBytes { pb in try parent.withUnsafeBytes { par in try out.withUnsafeMutableBytes { try Patch.apply(pb, to: par, into: $0) } } }
            XCTAssertEqual(out, child, "layer \(layer)")
        }
    }

    /// The range finder's three passes (`wl_delta_range_pass`) against the same products done by
    /// BLAS on ΔW materialized here in float64 from the neighbouring-value decoder, the rows
    /// split at an odd place; relative tolerance 1e-12 (only the summation order differs).
    func testRangePassesMatchMaterializedDelta() throws {
        for dtype in ["f32", "bf16"] {
            let e = try edit(dtype, seed: 4)
            let rows = e.shape[0], cols = e.shape[1], l = 8, code = try XCTUnwrap(LowRankEncoding.kernelCode(e.dtype))
            let p = (0..<(rows * cols)).map { Self.neighbours(e.parent, $0, dtype: e.dtype).value }
            let c = (0..<(rows * cols)).map { Self.neighbours(e.child, $0, dtype: e.dtype).value }
            let dw = Matrix(rows: rows, cols: cols, data: zip(c, p).map { $0 - $1 })
            let omega = Matrix.gaussian(rows: cols, cols: l, seed: 3)
            let q = try BLAS.orthonormalColumns(BLAS.multiply(dw, omega))
            let bRef = BLAS.multiply(q, dw, transA: true)
            let yRef = BLAS.multiply(dw, omega)
            var residualRef = 0.0
            let qb = BLAS.multiply(q, bRef)
            for i in 0..<(rows * cols) { residualRef += (dw.data[i] - qb.data[i]) * (dw.data[i] - qb.data[i]) }

            var y = [Double](repeating: 0, count: rows * l), b = [Double](repeating: 0, count: l * cols)
            var stats = [0.0, 0.0], stats2 = [0.0, 0.0], residual = 0.0, columns = [Double](repeating: 0, count: cols), deltaSquares = 0.0
            let splits = [(0, rows / 3 + 1), (rows / 3 + 1, rows)]
            e.parent.withUnsafeBufferPointer { pp in
                e.child.withUnsafeBufferPointer { cp in
                    let omegaT = omega.transposed.data
                    for (k, (r0, r1)) in splits.enumerated() {
                        if k == 0 {
                            deltaSquares += wl_delta_range_pass(pp.baseAddress!, cp.baseAddress!, code, cols, r0, r1, l, 0, nil, omegaT, &y, &stats, &columns)
                        } else {
                            deltaSquares += wl_delta_range_pass(pp.baseAddress!, cp.baseAddress!, code, cols, r0, r1, l, 0, nil, omegaT, &y, &stats2, &columns)
                        }
                        _ = wl_delta_range_pass(pp.baseAddress!, cp.baseAddress!, code, cols, r0, r1, l, 1, q.data, nil, &b, nil, nil)
                        residual += wl_delta_range_pass(pp.baseAddress!, cp.baseAddress!, code, cols, r0, r1, l, 2, q.data, bRef.data, nil, nil, nil)
                    }
                }
            }
            for i in 0..<(rows * l) { XCTAssertEqual(y[i], yRef.data[i], accuracy: 1e-12 * max(1, abs(yRef.data[i])), "\(dtype) y[\(i)]") }
            for i in 0..<(l * cols) { XCTAssertEqual(b[i], bRef.data[i], accuracy: 1e-12 * max(1, abs(bRef.data[i])), "\(dtype) QᵀΔW[\(i)]") }
            XCTAssertEqual(residual, residualRef, accuracy: 1e-9 * residualRef, dtype)
            XCTAssertGreaterThan(residualRef, 0)
            let norms = Self.largestRowAndColumnNorms(c, rows: rows, cols: cols)
            XCTAssertEqual(max(stats[0], stats2[0]).squareRoot(), norms.row, accuracy: 1e-12 * norms.row, dtype)
            XCTAssertEqual(columns.max()!.squareRoot(), norms.column, accuracy: 1e-12 * norms.column, dtype)
            XCTAssertEqual(stats[1] + stats2[1], c.reduce(0) { $0 + $1 * $1 }, accuracy: 1e-12 * stats[1], dtype)
            // The first pass also sums ‖ΔW‖²; ‖ΔW‖² − ‖QᵀΔW‖² is the residual within the margin
            // BLAS.residualSquared allows the shortcut (1e-9·‖ΔW‖²).
            let total = dw.data.reduce(0) { $0 + $1 * $1 }
            XCTAssertEqual(deltaSquares, total, accuracy: 1e-12 * total, dtype)
            XCTAssertEqual(deltaSquares - b.reduce(0) { $0 + $1 * $1 }, residualRef, accuracy: 1e-9 * total, dtype)
        }
    }

    /// The range finder's residual: with an operand that knows ‖A‖², ‖A‖² − ‖B‖² where that is
    /// far from tolerance², and the operand's own pass where the two sums' rounding could decide
    /// the comparison (a rank-two matrix with noise; calls to the pass counted).
    func testResidualShortcutFallsBackNearTheTolerance() throws {
        final class Counted: RangeFinderOperand {
            let m: Matrix
            var passes = 0
            init(_ m: Matrix) { self.m = m }
            var rows: Int { m.rows }
            var cols: Int { m.cols }
            var squaredNorm: Double? { m.data.reduce(0) { $0 + $1 * $1 } }
            func times(_ omega: Matrix) throws -> Matrix { try m.times(omega) }
            func transposedTimes(_ q: Matrix) throws -> Matrix { try m.transposedTimes(q) }
            func residualSquared(q: Matrix, b: Matrix) throws -> Double { passes += 1; return try m.residualSquared(q: q, b: b) }
        }
        var rng = SplitMix64(seed: 9)
        let rows = 300, cols = 200
        let u = (0..<(2 * rows)).map { _ in Double(rng.nextGaussian()) }, v = (0..<(2 * cols)).map { _ in Double(rng.nextGaussian()) }
        var data = [Double](repeating: 0, count: rows * cols)
        for i in 0..<rows { for j in 0..<cols { data[i * cols + j] = u[2 * i] * v[2 * j] + 0.5 * u[2 * i + 1] * v[2 * j + 1] + 1e-3 * Double(rng.nextGaussian()) } }
        let a = Counted(Matrix(rows: rows, cols: cols, data: data))
        let q = try BLAS.orthonormalColumns(try a.times(Matrix.gaussian(rows: cols, cols: 8, seed: 1)))
        let b = try a.transposedTimes(q)
        let exact = try a.m.residualSquared(q: q, b: b), total = a.squaredNorm!
        // Far from the tolerance: no pass, and the difference is the residual.
        let far = try BLAS.residualSquared(a, q: q, b: b, tolerance: (100 * exact).squareRoot())
        XCTAssertEqual(a.passes, 0)
        XCTAssertEqual(far, exact, accuracy: 1e-9 * total)
        // Within the margin of the tolerance: the pass decides.
        let near = try BLAS.residualSquared(a, q: q, b: b, tolerance: (exact + 1e-10 * total).squareRoot())
        XCTAssertEqual(a.passes, 1)
        XCTAssertEqual(near, exact)
    }

    /// The whole range finder on a rank-three edit of real F32 weights: the singular values it
    /// returns are ΔW's own (LAPACK's full SVD of ΔW materialized here; within 1e-8·σ₁), the
    /// fourth is at the rounding-noise level, and U·diag(s)·Vt of the top three reproduces ΔW up to
    /// that noise.
    func testRangeFinderRecoversSingularValues() throws {
        let tmp = try TemporaryDirectory("lowrank-range")
        let model = try tmp.copyModel(from: try Fixtures.smolLM2("f32"))
        let file = model + "/model.safetensors", tensor = "model.layers.7.mlp.down_proj.weight"
        var rng = SplitMix64(seed: 11)
        let (info, _) = try SimulatedEdit.locate(file: file, tensor: tensor)
        let rows = info.shape[0], cols = info.shape[1]
        let us = (0..<3).map { _ in (0..<rows).map { _ in Float(rng.nextGaussian()) } }
        let vs = (0..<3).map { _ in (0..<cols).map { _ in Float(rng.nextGaussian()) } }
        let (parent, child) = try SimulatedEdit.modify(file: file, tensor: tensor) { w, _ in
            for i in 0..<rows { for j in 0..<cols { for k in 0..<3 { w[i * cols + j] += Float(3 - k) * 1e-3 * us[k][i] * vs[k][j] } } }
        }
        let p = (0..<(rows * cols)).map { Self.neighbours(parent, $0, dtype: .f32).value }
        let c = (0..<(rows * cols)).map { Self.neighbours(child, $0, dtype: .f32).value }
        let dw = Matrix(rows: rows, cols: cols, data: zip(c, p).map { $0 - $1 })
        let full = try BLAS.svd(dw)
        let got = try parent.withUnsafeBytes { pb in
            try child.withUnsafeBytes { cb -> (TruncatedSVD, norms: (row: Double, column: Double))? in
                let delta = LowRankEncoding.DeltaOperand(parent: pb, child: cb, code: 1, rows: rows, cols: cols)
                return try BLAS.lowRankApproximation(delta, tolerance: 1e-3 * delta.childSquares.squareRoot(), maxSampled: 128)
                    .map { ($0, (delta.maxRowNorm, delta.maxColumnNorm)) }
            }
        }
        let (svd, norms) = try XCTUnwrap(got)
        let r = (u: svd.u, s: svd.s, vt: svd.vt, norms: norms)
        for k in 0..<3 { XCTAssertEqual(r.s[k], full.s[k], accuracy: 1e-8 * full.s[0], "σ\(k)") }
        XCTAssertLessThan(r.s[3], 1e-3 * r.s[2], "a rank-three change (plus F32 rounding noise)")
        let expected = Self.largestRowAndColumnNorms(c, rows: rows, cols: cols)
        XCTAssertEqual(r.norms.row, expected.row, accuracy: 1e-12 * expected.row)
        XCTAssertEqual(r.norms.column, expected.column, accuracy: 1e-12 * expected.column)
        // U·diag(s)·Vt of the top three against ΔW: what is left is the rounding noise only.
        var err = 0.0, norm = 0.0
        for i in 0..<rows {
            for j in 0..<cols {
                var v = 0.0
                for k in 0..<3 { v += r.u[i, k] * r.s[k] * r.vt[k, j] }
                err += (dw[i, j] - v) * (dw[i, j] - v)
                norm += dw[i, j] * dw[i, j]
            }
        }
        XCTAssertLessThan(err.squareRoot(), 1e-3 * norm.squareRoot())
    }

    /// The decoder's prediction, bit for bit, against a reference written here from the stored
    /// format's definition (round_dtype(parent + (0.0 + Σ_k a_ik·b_jk), k ascending) in double):
    /// ranks 1 and 3, F32, BF16 and F16, out of place and in place, with ±0 parents in the mix.
    /// Stored patches depend on every bit of it.
    func testPredictionMatchesItsDefinitionBitForBit() throws {
        var rng = SplitMix64(seed: 17)
        let rows = 37, cols = 301
        for dtype in [DType.f32, .bf16, .f16] {
            let code = try XCTUnwrap(LowRankEncoding.kernelCode(dtype))
            var parent = [UInt8](repeating: 0, count: rows * cols * dtype.size)
            var values = (0..<(rows * cols)).map { _ in Float(rng.nextGaussian()) * 0.05 }
            values[3] = 0; values[4] = -0.0
            if dtype != .f16 {   // infinities, the largest finite value and a NaN (quiet, sign kept)
                values[5] = .infinity; values[6] = -.infinity; values[7] = .greatestFiniteMagnitude
                values[8] = -.greatestFiniteMagnitude; values[9] = -Float(nan: 0x123, signaling: false)
            }
            parent.withUnsafeMutableBytes { p in
                for (i, v) in values.enumerated() {
                    switch dtype {
                    case .f32: p.storeBytes(of: v.bitPattern, toByteOffset: 4 * i, as: UInt32.self)
                    case .f16: p.storeBytes(of: Float16(v).bitPattern, toByteOffset: 2 * i, as: UInt16.self)
                    default: p.storeBytes(of: UInt16(v.bitPattern >> 16), toByteOffset: 2 * i, as: UInt16.self)
                    }
                }
            }
            for rank in [1, 3] {
                var a = (0..<(rows * rank)).map { _ in Double(rng.nextGaussian()) * 1e-3 }
                var b = (0..<(cols * rank)).map { _ in Double(rng.nextGaussian()) }
                a[0] = 0; b[4 * rank] = -0.0   // sums of zeros and negative zeros
                var reference = parent
                reference.withUnsafeMutableBytes { out in
                    for i in 0..<rows {
                        for j in 0..<cols {
                            let n = i * cols + j
                            var d = 0.0
                            for k in 0..<rank { d += a[i * rank + k] * b[j * rank + k] }
                            let p = Self.neighbours(parent, n, dtype: dtype).value
                            let f = Float(p + d)
                            switch dtype {
                            case .f32: out.storeBytes(of: f.bitPattern, toByteOffset: 4 * n, as: UInt32.self)
                            case .f16: out.storeBytes(of: Float16(f).bitPattern, toByteOffset: 2 * n, as: UInt16.self)
                            default:
                                let bytes = bf16Bytes(f)
                                out[2 * n] = bytes[0]; out[2 * n + 1] = bytes[1]
                            }
                        }
                    }
                }
                var out = [UInt8](repeating: 0xA5, count: parent.count)
                parent.withUnsafeBufferPointer { pp in
                    out.withUnsafeMutableBufferPointer { op in
                        wl_lowrank_predict(pp.baseAddress!, op.baseAddress!, code, rows, cols, rank, a, b)
                    }
                }
                XCTAssertEqual(out.indices.first { out[$0] != reference[$0] }, nil, "\(dtype) rank \(rank): first differing byte")
                var inPlace = parent
                inPlace.withUnsafeMutableBufferPointer { ip in
                    wl_lowrank_predict(ip.baseAddress!, ip.baseAddress!, code, rows, cols, rank, a, b)
                }
                XCTAssertEqual(inPlace.indices.first { inPlace[$0] != reference[$0] }, nil, "\(dtype) rank \(rank) in place: first differing byte")
            }
        }
    }
}
