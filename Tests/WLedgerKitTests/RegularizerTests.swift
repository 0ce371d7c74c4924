import Foundation
import Ledger
import LinAlg
import Ops
import TensorIO
import TestSupport
@testable import WLedgerKit
import XCTest

/// revert, prune (RECT) and restrain (PRUNE) with known answers on small matrices, then on the
/// real SmolLM2 after 20 rank-one edits.
final class RegularizerTests: XCTestCase {
    func f64Bytes(_ v: [Double]) -> [UInt8] { v.withUnsafeBytes { Array($0) } }
    func f32Bytes(_ v: [Double]) -> [UInt8] { v.map { Float($0) }.withUnsafeBytes { Array($0) } }

    /// Rewrites one tensor of a tiny model in place with new bytes.
    func overwrite(_ dir: String, _ name: String, _ bytes: [UInt8]) throws {
        let file = dir + "/model.safetensors"
        let (info, start) = try SimulatedEdit.locate(file: file, tensor: name)
        XCTAssertEqual(info.byteCount, bytes.count)
        let fh = FileHandle(forUpdatingAtPath: file)!
        try fh.seek(toOffset: UInt64(start + info.begin))
        fh.write(Data(bytes))
        try fh.close()
    }

    func read(_ dir: String, _ name: String, _ dtype: String) throws -> [Double] {
        ReferenceDecode.doubles(try readTensorBytes(file: dir + "/model.safetensors", tensor: name), dtype: dtype)
    }

    /// W_base with singular values 4, 3, 2, 1 (orthogonal factors), ΔW = σ·u·vᵀ with σ = 40:
    /// restrain leaves the accumulated update with singular value ln 40 − ln 4 + 4.
    func testRestrainOfRankOneUpdateFollowsTheFormula() throws {
        let m = 12, n = 8
        let q = try BLAS.orthonormalColumns(Matrix.gaussian(rows: m, cols: 5, seed: 11))
        let p = try BLAS.orthonormalColumns(Matrix.gaussian(rows: n, cols: 5, seed: 12))
        var base = Matrix(zeros: m, n)
        for (k, s) in [4.0, 3, 2, 1].enumerated() { for i in 0..<m { for j in 0..<n { base[i, j] += s * q[i, k] * p[j, k] } } }
        var dw = Matrix(zeros: m, n)
        for i in 0..<m { for j in 0..<n { dw[i, j] = 40 * q[i, 4] * p[j, 4] } }
        for alpha in [("e", M_E), ("2", 2.0), ("1.2", 1.2)] {
            let tmp = try TemporaryDirectory("restrain-analytic")
            let dir = tmp.path + "/m"
            try writeTinyModel(dir, tensors: [("w", .f64, [m, n], f64Bytes(base.data)), ("norm", .f64, [n], f64Bytes([Double](repeating: 1, count: n)))])
            _ = try Repository.initialize(at: dir)
            let repo = try Repository.open(at: dir, forWriting: true)
            try overwrite(dir, "w", f64Bytes(zip(base.data, dw.data).map(+)))
            _ = try repo.commit(CommitOptions(message: "rank-one edit"))
            let r = try repo.restrain(method: .prune(alpha: alpha.1))
            let after = try read(dir, "w", "F64")
            let accumulated = zip(after, base.data).map { $0 - $1 }
            let s = try BLAS.singularValues(accumulated, rows: m, cols: n)
            let expected = log(40.0) / log(alpha.1) - log(4.0) / log(alpha.1) + 4
            XCTAssertEqual(s[0], expected, accuracy: 1e-9, "α = \(alpha.0)")
            XCTAssertLessThan(s[1], 1e-9)
            XCTAssertEqual(r.restrained?.first?.sigmaMaxBase ?? 0, 4, accuracy: 1e-12)
            XCTAssertEqual(r.commit.kind, "restrain")
            // The untouched 1-D tensor is not part of a restrain.
            XCTAssertEqual(r.commit.tensors.map(\.name), ["w"])
        }
    }

    /// RECT keeps exactly the ⌈k·N/100⌉ positions with the largest |ΔW/W| and restores the others
    /// to their pre-edit bits, also when later edits touched the same matrix.
    func testPruneKeepsExactlyTheExpectedPositions() throws {
        let tmp = try TemporaryDirectory("rect-analytic")
        let dir = tmp.path + "/m"
        let base: [Double] = [1, 2, 4, 8, -1, 0.5, 3, 10]
        try writeTinyModel(dir, tensors: [("w", .f32, [2, 4], f32Bytes(base))])
        _ = try Repository.initialize(at: dir)
        let repo = try Repository.open(at: dir, forWriting: true)
        let edited: [Double] = [1.5, 2.2, 4, 12, -0.5, 0.75, 3.3, 11]   // δ: .5 .1 0 .5 .5 .5 .1 .1
        try overwrite(dir, "w", f32Bytes(edited))
        let edit = try repo.commit(CommitOptions(message: "edit")).commit
        // 40% of 8 = 3.2 → 4 kept: the four δ = 0.5 positions (0, 3, 4, 5).
        let r = try repo.prune(edit, keepPercent: 40)
        XCTAssertEqual(r.pruned?.first?.kept, 4)
        XCTAssertEqual(try read(dir, "w", "F32"), [1.5, 2, 4, 12, -0.5, 0.75, 3, 10].map { Double(Float($0)) })
        // --by magnitude on a fresh edit: |ΔW| = 4 and 1 win for 25% (2 kept).
        _ = try repo.revert("HEAD")
        _ = try repo.revert("HEAD~2")
        XCTAssertEqual(try read(dir, "w", "F32"), base.map { Double(Float($0)) })
        try overwrite(dir, "w", f32Bytes(edited))
        let again = try repo.commit(CommitOptions(message: "edit again")).commit
        _ = try repo.prune(again, keepPercent: 25, by: .magnitude)
        XCTAssertEqual(try read(dir, "w", "F32"), [1, 2, 4, 12, -1, 0.5, 3, 11].map { Double(Float($0)) })
        XCTAssertEqual(try repo.fsck(full: true).problems, [])
    }

    /// Reverting a middle commit removes exactly its ΔW: later and earlier edits to the same matrix
    /// stay (within 1 ulp), tensors only it touched come back bit-exact, and reverting the revert
    /// restores it.
    func testRevertOfMiddleCommitKeepsTheOthers() throws {
        let tmp = try TemporaryDirectory("revert-analytic")
        let dir = tmp.path + "/m"
        var rng = SplitMix64(seed: 3)
        let w0 = (0..<64).map { _ in Double(rng.nextGaussian()) }
        let v0 = (0..<16).map { _ in Double(rng.nextGaussian()) }
        try writeTinyModel(dir, tensors: [("a", .f32, [8, 8], f32Bytes(w0)), ("b", .f32, [16], f32Bytes(v0))])
        _ = try Repository.initialize(at: dir)
        let repo = try Repository.open(at: dir, forWriting: true)
        let d1 = (0..<64).map { Double($0 % 7) * 0.01 }, d2 = (0..<64).map { Double($0 % 5) * -0.02 }, d3 = (0..<64).map { Double($0 % 3) * 0.03 }
        var cur = w0.map { Double(Float($0)) }
        var ids: [String] = []
        for (k, d) in [d1, d2, d3].enumerated() {
            cur = zip(cur, d).map { Double(Float($0 + $1)) }
            try overwrite(dir, "a", f32Bytes(cur))
            if k == 1 { try overwrite(dir, "b", f32Bytes(v0.map { $0 * 2 })) }
            ids.append(try repo.commit(CommitOptions(message: "edit \(k + 1)")).commit)
        }
        let before = try read(dir, "a", "F32")
        let r = try repo.revert(ids[1])
        XCTAssertEqual(Set(r.commit.tensors.map(\.name)), ["a", "b"])
        XCTAssertEqual(try readTensorBytes(file: dir + "/model.safetensors", tensor: "b"), f32Bytes(v0))   // bit-exact
        // Expected: HEAD − (edit2 − edit1) elementwise, rounded once to float32.
        let e1 = try repo.show(ids[0]).id, e2 = ids[1]
        _ = e1
        let ledgerDiff = try repo.diff(ids[0], e2)
        XCTAssertEqual(ledgerDiff.tensors.count, 2)
        let after = try read(dir, "a", "F32")
        let w1 = try ReferenceDecode.doubles(ledgerBytes(repo, ids[0], "a"), dtype: "F32")
        let w2 = try ReferenceDecode.doubles(ledgerBytes(repo, ids[1], "a"), dtype: "F32")
        for i in 0..<64 {
            let expected = Double(Float(before[i] - (w2[i] - w1[i])))
            XCTAssertLessThanOrEqual(abs(after[i] - expected), Double(Float(expected).ulp), "element \(i)")
        }
        // Reverting the revert brings edit 2 back exactly.
        _ = try repo.revert("HEAD")
        XCTAssertEqual(try read(dir, "a", "F32"), before)
        XCTAssertEqual(try read(dir, "b", "F32"), v0.map { Double(Float($0 * 2)) })
        XCTAssertThrowsError(try repo.revert("base")) { XCTAssertTrue("\($0)".contains("base snapshot"), "\($0)") }
    }

    func ledgerBytes(_ repo: Repository, _ commit: String, _ tensor: String) throws -> [UInt8] {
        let tmp = try TemporaryDirectory("materialize")
        _ = try repo.checkout(commit, output: tmp.path + "/out")
        return try readTensorBytes(file: tmp.path + "/out/model.safetensors", tensor: tensor)
    }

    /// revert is ΔW algebra: reverting an edit whose RECT prune is on HEAD subtracts the whole
    /// ΔW, so the elements the prune already returned go past their pre-edit values (HEAD − ΔW,
    /// checked here in float64); reverting the prune first, then the edit, gives the pre-edit
    /// bytes back exactly.
    func testRevertOfAPrunedEdit() throws {
        let tmp = try TemporaryDirectory("revert-pruned")
        let model = try tmp.copyModel(from: try Fixtures.smolLM2("bf16"))
        let file = model + "/model.safetensors", tensor = "model.layers.7.mlp.down_proj.weight"
        _ = try Repository.initialize(at: model)
        let repo = try Repository.open(at: model, forWriting: true)
        let base = try readTensorBytes(file: file, tensor: tensor)
        try SimulatedEdit.rankOne(file: file, tensor: tensor, seed: 71, scale: 0.05)
        let edit = try repo.commit(CommitOptions(message: "edit")).commit
        let edited = try readTensorBytes(file: file, tensor: tensor)
        let prune = try repo.prune(edit, keepPercent: 40).commit.commit
        let pruned = try readTensorBytes(file: file, tensor: tensor)
        XCTAssertNotEqual(pruned, edited)
        _ = try repo.revert(edit)
        let got = ReferenceDecode.doubles(try readTensorBytes(file: file, tensor: tensor), dtype: "BF16")
        let p = ReferenceDecode.doubles(base, dtype: "BF16"), c = ReferenceDecode.doubles(edited, dtype: "BF16")
        let h = ReferenceDecode.doubles(pruned, dtype: "BF16")
        for i in 0..<p.count where c[i] != p[i] {
            let exact = h[i] - (c[i] - p[i])
            XCTAssertLessThanOrEqual(abs(got[i] - exact), abs(exact) / 256, "element \(i) within half a BF16 ulp of HEAD − ΔW")
        }
        // Undo that, then the prune, then the edit: the pre-edit bytes, every element.
        _ = try repo.revert("HEAD")
        XCTAssertEqual(try readTensorBytes(file: file, tensor: tensor), pruned)
        _ = try repo.revert(prune)
        XCTAssertEqual(try readTensorBytes(file: file, tensor: tensor), edited)
        _ = try repo.revert(edit)
        XCTAssertEqual(try readTensorBytes(file: file, tensor: tensor), base)
    }

    /// `diff`'s numerical rank and top singular values of ΔW on BF16 edits, where the storage
    /// rounding of the child adds a full-rank noise tail, against LAPACK's full SVD of the same
    /// float64 ΔW and the noise threshold 2·2⁻⁸·(max row norm + max column norm) of the child
    /// computed here: the same rank and every top singular value within 0.5% (a range finder
    /// without power iterations read the smaller ones up to 40% low and the rank one short).
    func testDiffRankAndSingularValuesOfBF16EditsMatchAFullSVD() throws {
        let tmp = try TemporaryDirectory("diff-rank-bf16")
        let model = try tmp.copyModel(from: try Fixtures.smolLM2("bf16"))
        let file = model + "/model.safetensors", tensor = "model.layers.3.mlp.down_proj.weight"
        _ = try Repository.initialize(at: model)
        let repo = try Repository.open(at: model, forWriting: true)
        let base = try readTensorBytes(file: file, tensor: tensor)
        try SimulatedEdit.rankOne(file: file, tensor: tensor, seed: 31, scale: 0.3)
        try SimulatedEdit.rankOne(file: file, tensor: tensor, seed: 32, scale: 0.02)
        try SimulatedEdit.columns(file: file, tensor: tensor, seed: 33)
        _ = try repo.commit(CommitOptions(message: "three edits"))
        let child = try readTensorBytes(file: file, tensor: tensor)
        let d = try repo.diff("base", "HEAD")
        let t = try XCTUnwrap(d.tensors.first { $0.name == tensor })
        let rows = 576, cols = 1536
        let p = ReferenceDecode.doubles(base, dtype: "BF16"), c = ReferenceDecode.doubles(child, dtype: "BF16")
        XCTAssertEqual(c.count, rows * cols)
        let full = try BLAS.singularValues(zip(c, p).map { $0 - $1 }, rows: rows, cols: cols)
        var rowNorm = 0.0, colNorm = 0.0
        for i in 0..<rows { rowNorm = max(rowNorm, (0..<cols).reduce(0.0) { $0 + c[i * cols + $1] * c[i * cols + $1] }.squareRoot()) }
        for j in 0..<cols { colNorm = max(colNorm, (0..<rows).reduce(0.0) { $0 + c[$1 * cols + j] * c[$1 * cols + j] }.squareRoot()) }
        let noise = 2 * 0x1p-8 * (rowNorm + colNorm)
        let rank = full.filter { $0 > noise }.count
        XCTAssertGreaterThanOrEqual(rank, 3, "\(full.prefix(8)) vs noise \(noise)")
        XCTAssertEqual(t.deltaRank, rank, "\(full.prefix(8)) vs noise \(noise)")
        let top = try XCTUnwrap(t.deltaSingularValues)
        XCTAssertFalse(top.isEmpty)
        for (i, (got, want)) in zip(top, full).enumerated() {
            XCTAssertEqual(got, want, accuracy: 5e-3 * want, "σ\(i + 1) of ΔW (noise \(noise))")
        }
    }

    /// On SmolLM2 F32: 20 rank-one edits of one down_proj grow its condition number; each is
    /// stored as a low-rank patch; restrain (fast path) brings κ back to at most twice the base κ;
    /// RECT keeps the top 40% by an independently computed δ; diff matches float64.
    func testTwentyRankOneEditsOnSmolLM2() throws {
        let fixture = try Fixtures.smolLM2("f32")
        let tmp = try TemporaryDirectory("regularizers-smollm2")
        let model = try tmp.copyModel(from: fixture)
        let file = model + "/model.safetensors"
        let tensor = "model.layers.6.mlp.down_proj.weight"
        _ = try Repository.initialize(at: model)
        let repo = try Repository.open(at: model, forWriting: true)
        let baseBytes = try readTensorBytes(file: file, tensor: tensor)
        let dense = baseBytes.count
        var ids: [String] = []
        for i in 1...20 {
            try SimulatedEdit.rankOne(file: file, tensor: tensor, seed: UInt64(100 + i), scale: 0.1)
            let r = try repo.commit(CommitOptions(message: "rank-one \(i)"))
            // Every 17th version of a tensor is a keyframe (patch chains stop at depth 16).
            if i == 17 {
                XCTAssertEqual(r.tensors.first?.encoding, "keyframe")
            } else {
                XCTAssertEqual(r.tensors.first?.encoding, "low-rank", "edit \(i)")
                XCTAssertLessThan(r.storedBytes, dense / 4)
            }
            ids.append(r.commit)
        }
        let headBytes = try readTensorBytes(file: file, tensor: tensor)
        let d = try repo.diff("base", "HEAD")
        let t = try XCTUnwrap(d.tensors.first { $0.name == tensor })
        let ref = ReferenceDecode.deltaStats(parent: baseBytes, child: headBytes, dtype: "F32")
        XCTAssertEqual(t.changed, ref.changed)
        XCTAssertEqual(t.l1, ref.l1, accuracy: 1e-9 * ref.l1)
        XCTAssertEqual(t.frobenius, ref.frobenius, accuracy: 1e-9 * ref.frobenius)
        let kappaBase = try XCTUnwrap(t.fromSpectrum?.kappa), kappaEdited = try XCTUnwrap(t.toSpectrum?.kappa)
        XCTAssertGreaterThan(kappaEdited, 3 * kappaBase, "20 rank-one edits should inflate κ")
        XCTAssertEqual(t.deltaRank, 20, "accumulated ΔW of 20 rank-one edits has numerical rank 20")

        // RECT on the last edit: kept positions are the top 40% by δ computed here.
        let parentBytes = try ledgerBytes(repo, ids[18], tensor)
        let p = ReferenceDecode.doubles(parentBytes, dtype: "F32"), c = ReferenceDecode.doubles(headBytes, dtype: "F32")
        var scored = (0..<p.count).filter { c[$0] != p[$0] }.map { i in (abs(c[i] - p[i]) / max(abs(p[i]), 0x1p-126), i) }
        scored.sort { $0.0 != $1.0 ? $0.0 > $1.0 : $0.1 < $1.1 }
        let k = Int((0.4 * Double(p.count)).rounded(.up))
        let keep = Set(scored.prefix(k).map(\.1))
        let pr = try repo.prune("HEAD", keepPercent: 40)
        XCTAssertEqual(pr.pruned?.first?.kept, k)
        XCTAssertGreaterThan(pr.pruned?.first?.keptFrobeniusShare ?? 0, 0.9)
        let pruned = try readTensorBytes(file: file, tensor: tensor)
        for i in stride(from: 0, to: p.count, by: 97) {
            let bytes = Array(pruned[(4 * i)..<(4 * i + 4)])
            XCTAssertEqual(bytes, keep.contains(i) ? Array(headBytes[(4 * i)..<(4 * i + 4)]) : Array(parentBytes[(4 * i)..<(4 * i + 4)]), "element \(i)")
        }

        // Reverting the prune restores the 20-edit weights bit for bit.
        _ = try repo.revert("HEAD")
        XCTAssertEqual(try readTensorBytes(file: file, tensor: tensor), headBytes)

        // restrain base..HEAD: ΔW is 20 rank-one edits (plus rounding noise), so the fast path applies.
        let rs = try repo.restrain()
        let m = try XCTUnwrap(rs.restrained?.first { $0.name == tensor })
        XCTAssertEqual(m.svd, "randomized")
        XCTAssertFalse(m.restrainedFrom.isEmpty)
        for (s, t) in zip(m.restrainedFrom, m.restrainedTo) {
            XCTAssertEqual(t, log(s) - log(m.sigmaMaxBase) + m.sigmaMaxBase, accuracy: 1e-9 * t)
        }
        let kappaAfter = try XCTUnwrap(m.kappaAfter)
        XCTAssertLessThanOrEqual(kappaAfter, 2 * kappaBase, "restrain must bring κ under 2·κ(base) = \(2 * kappaBase); got \(kappaAfter)")
        // The restrained accumulated ΔW, measured independently: its top singular value is the formula's.
        let restrained = ReferenceDecode.doubles(try readTensorBytes(file: file, tensor: tensor), dtype: "F32")
        let base = ReferenceDecode.doubles(baseBytes, dtype: "F32")
        let s = try BLAS.singularValues(zip(restrained, base).map { $0 - $1 }, rows: 576, cols: 1536)
        let top = log(m.restrainedFrom[0]) - log(m.sigmaMaxBase) + m.sigmaMaxBase
        XCTAssertEqual(s[0], top, accuracy: 1e-3 * top)
        XCTAssertEqual(try repo.fsck(full: true).problems, [])
        XCTAssertTrue(try repo.status().clean)
    }

    /// diff's rank of ΔW for F64 weights whose squares overflow or underflow a double: a rank-two
    /// change of a 48×40 matrix reads rank 2 with its singular values at any magnitude (at 1e300
    /// the noise floor was +∞ and the rank 0).
    func testDeltaRankOfF64WeightsAtTheEndsOfTheRange() throws {
        var rng = SplitMix64(seed: 5)
        let rows = 48, cols = 40
        let base = (0..<(rows * cols)).map { _ in Double(rng.next() % 2001) / 1000 - 1 }
        let u1 = (0..<rows).map { Double($0 % 5) - 2 }, v1 = (0..<cols).map { Double($0 % 3) - 1 }
        let u2 = (0..<rows).map { Double($0 % 7 == 0 ? 1 : 0) }, v2 = (0..<cols).map { Double($0 % 4 == 1 ? 1 : 0) }
        let unit = (0..<(rows * cols)).map { k in 0.25 * u1[k / cols] * v1[k % cols] + 0.5 * u2[k / cols] * v2[k % cols] }
        let reference = try BLAS.svd(Matrix(rows: rows, cols: cols, data: unit)).s
        for magnitude in [1e300, 1e-300, 1.0] {
            let child = zip(base, unit).map { ($0 + $1) * magnitude }
            let dw = zip(child, base).map { $0 - $1 * magnitude }
            let (rank, top) = try Repository.deltaRank(dw, rows: rows, cols: cols, child: child, dtype: .f64, top: 3)
            XCTAssertEqual(rank, 2, "\(magnitude)")
            XCTAssertEqual(top.count, 3)
            for k in 0..<2 { XCTAssertEqual(top[k] / magnitude, reference[k], accuracy: 1e-9 * reference[0], "\(magnitude) σ\(k)") }
        }
    }
}

/// RECT of one tensor (`Repository.rect`) where the edit left a NaN and an ∞ alone: they are
/// unchanged (ΔW 0), so they are neither counted nor ranked, and the one kept slot goes to the
/// largest relative change (NaN − NaN took it, and the prune had nothing left to commit).
final class RECTNonFiniteTests: XCTestCase {
    func testUnchangedNaNAndInfAreNotRankedOrCounted() throws {
        var parent: [Float] = (0..<40).map { Float($0 + 1) }
        parent[0] = .nan
        parent[1] = .infinity
        var child = parent
        for i in 30..<40 { child[i] = parent[i] * (1.1 + Float(i - 30) * 0.2) }   // element 39 changes most, relatively
        func bytes(_ v: [Float]) -> [UInt8] { v.withUnsafeBytes { Array($0) } }
        let entry = ManifestEntry(name: "w", file: "model.safetensors", dtype: .f32, shape: [40], hash: String(repeating: "0", count: 64))
        let (out, info) = Repository.rect(parent: bytes(parent), child: bytes(child), head: bytes(child), headIsChild: true,
                                          entry: entry, percent: 2.5, ranking: .relative)   // ⌈2.5% of 40⌉ = 1 kept
        XCTAssertEqual(info.changed, 10)
        XCTAssertEqual(info.kept, 1)
        var expected = parent
        expected[39] = child[39]
        XCTAssertEqual(out, bytes(expected), "the largest δ kept, every other element back to the parent's bytes")
        XCTAssertGreaterThan(info.keptFrobeniusShare, 0)
        XCTAssertTrue(info.keptFrobeniusShare.isFinite)
    }
}
