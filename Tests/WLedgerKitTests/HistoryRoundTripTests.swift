import Foundation
import Ledger
import TensorIO
import TestSupport
import WLedgerKit
import XCTest

/// 50 sequential simulated edits on the real SmolLM2-135M (F32 and BF16): every commit checks
/// out byte-identical, diff statistics match an independent float64 computation, fsck is clean.
final class HistoryRoundTripTests: XCTestCase {
    func testFiftyEditsF32() throws { try runHistory(dtype: "f32") }
    func testFiftyEditsBF16() throws { try runHistory(dtype: "bf16") }

    func runHistory(dtype: String) throws {
        let fixture = try Fixtures.smolLM2(dtype)
        let tmp = try TemporaryDirectory("history-\(dtype)")
        let model = try tmp.copyModel(from: fixture)
        let weights = model + "/model.safetensors"
        let initResult = try Repository.initialize(at: model, message: "SmolLM2-135M \(dtype) base")
        let repo = try Repository.open(at: model, forWriting: true)

        var commits: [String] = [initResult.commit]
        var fileHashes: [[String: String]] = [try sideAndWeightHashes(model)]
        var deltas: [Int: [(name: String, parent: [UInt8], child: [UInt8])]] = [:]
        let denseBytes = 576 * 1536 * (dtype == "f32" ? 4 : 2)
        for i in 1...50 {
            let layer = (i * 7) % 30
            let tensor = "model.layers.\(layer).mlp.down_proj.weight"
            var edits: [(String, [UInt8], [UInt8])] = []
            var method = "ROME"
            if i % 5 == 0 {
                method = "KN"
                let e = try SimulatedEdit.columns(file: weights, tensor: tensor, seed: UInt64(i))
                edits.append((tensor, e.parent, e.child))
            } else {
                let e = try SimulatedEdit.rankOne(file: weights, tensor: tensor, seed: UInt64(i))
                edits.append((tensor, e.parent, e.child))
                if i % 12 == 0 {  // MEMIT-like: more layers in the same commit (more than commit encodes while hashing)
                    method = "MEMIT"
                    for k in 1...3 {
                        let t2 = "model.layers.\((layer + k) % 30).mlp.down_proj.weight"
                        let e2 = try SimulatedEdit.rankOne(file: weights, tensor: t2, seed: UInt64(1000 * k + i))
                        edits.append((t2, e2.parent, e2.child))
                    }
                }
            }
            var opts = CommitOptions(message: "edit \(i) (\(method))")
            opts.method = method
            opts.request = #"{"prompt":"Fact \#(i) is about","subject":"Fact \#(i)","target_new":"new","ground_truth":"old"}"#
            let r = try repo.commit(opts)
            XCTAssertEqual(Set(r.tensors.map(\.name)), Set(edits.map(\.0)), "commit \(i) touched the wrong tensors")
            if method == "KN" {
                XCTAssertNotEqual(r.tensors[0].encoding, "dense-xor")
                XCTAssertLessThan(r.storedBytes, denseBytes / 20, "a 3-column edit should cost a small fraction of the dense tensor")
            }
            commits.append(r.commit)
            fileHashes.append(try sideAndWeightHashes(model))
            deltas[i] = edits.map { (name: $0.0, parent: $0.1, child: $0.2) }
        }
        XCTAssertEqual(try repo.log().count, 51)

        // diff statistics against the independent float64 reference.
        for i in [1, 5, 12, 37, 50] {
            let d = try repo.diff(commits[i - 1], commits[i])
            XCTAssertEqual(d.tensors.count, deltas[i]!.count)
            for e in deltas[i]! {
                let ref = ReferenceDecode.deltaStats(parent: e.parent, child: e.child, dtype: dtype)
                guard let got = d.tensors.first(where: { $0.name == e.name }) else { XCTFail("missing \(e.name)"); continue }
                XCTAssertEqual(got.changed, ref.changed)
                XCTAssertEqual(got.l1, ref.l1, accuracy: 1e-9 * ref.l1)
                XCTAssertEqual(got.frobenius, ref.frobenius, accuracy: 1e-9 * ref.frobenius)
                XCTAssertEqual(got.maxAbs, ref.maxAbs, accuracy: 1e-12)
            }
            // The statistics recorded at commit time (show) are the same numbers.
            let shown = try repo.show(commits[i])
            for t in shown.tensors ?? [] {
                let edit = deltas[i]!.first { $0.name == t.name }!
                let ref = ReferenceDecode.deltaStats(parent: edit.parent, child: edit.child, dtype: dtype)
                XCTAssertEqual(t.l1, ref.l1, accuracy: 1e-9 * ref.l1)
            }
        }

        // Every commit checks out in place byte-identical (sha256 of every file), newest to oldest and back.
        // Each step changes a few tensors, which are written into the weight file itself.
        func inode(_ path: String) throws -> UInt64 {
            (try FileManager.default.attributesOfItem(atPath: path)[.systemFileNumber] as? NSNumber)?.uint64Value ?? 0
        }
        let file = try inode(weights)
        for i in stride(from: 50, through: 0, by: -1) {
            let r = try repo.checkout(commits[i])
            XCTAssertEqual(try sideAndWeightHashes(model), fileHashes[i], "checkout of commit \(i) is not byte-identical")
            XCTAssertEqual(r.patchedInPlace, i == 50 ? [] : ["model.safetensors"], "commit \(i)")
            XCTAssertEqual(r.tensorsRebuilt, i == 50 ? 0 : deltas[i + 1]!.count, "commit \(i): only the tensors that differ are rebuilt")
        }
        XCTAssertEqual(try inode(weights), file, "the weight file was written in place")
        _ = try repo.checkout("main")
        XCTAssertEqual(try sideAndWeightHashes(model), fileHashes[50])
        XCTAssertTrue(try repo.status().clean)
        // Written anew on request: a new file, the same bytes. --force rewrites every file from
        // the ledger too (a repair does not trust the stat cache), never in place.
        var r = try repo.checkout(commits[25], inPlace: false)
        XCTAssertEqual(r.patchedInPlace, [])
        XCTAssertNotEqual(try inode(weights), file)
        XCTAssertEqual(try sideAndWeightHashes(model), fileHashes[25])
        let beforeForce = try inode(weights)
        r = try repo.checkout(commits[25], force: true)
        XCTAssertEqual(r.patchedInPlace, [])
        XCTAssertEqual(r.tensorsRebuilt, try repo.ledger.manifest(of: commits[25]).count)
        XCTAssertNotEqual(try inode(weights), beforeForce)
        XCTAssertEqual(try sideAndWeightHashes(model), fileHashes[25])
        // A weight file with another hard link is replaced, never written through: the other
        // name keeps the old bytes.
        let other = tmp.path + "/linked.safetensors"
        XCTAssertEqual(link(weights, other), 0)
        r = try repo.checkout(commits[26])
        XCTAssertEqual(r.patchedInPlace, [])
        XCTAssertEqual(try sideAndWeightHashes(model), fileHashes[26])
        XCTAssertEqual(try fileSHA256(other), fileHashes[25]["model.safetensors"])
        XCTAssertEqual(unlink(other), 0)
        r = try repo.checkout("main")
        XCTAssertEqual(r.patchedInPlace, ["model.safetensors"])
        XCTAssertEqual(try sideAndWeightHashes(model), fileHashes[50])
        XCTAssertTrue(try repo.status().clean)

        // Materializing into another directory straight from the ledger (sha256 verified too).
        for i in [0, 1, 26, 50] {
            let out = tmp.path + "/out\(i)"
            let r = try repo.checkout(commits[i], output: out, verifySHA256: true)
            XCTAssertEqual(r.written.count, fileHashes[i].count)
            XCTAssertEqual(try sideAndWeightHashes(out), fileHashes[i], "checkout --output of commit \(i) differs")
            try FileManager.default.removeItem(atPath: out)
        }
        let fsck = try repo.fsck(full: true)
        XCTAssertEqual(fsck.problems, [])
        XCTAssertEqual(fsck.commits, 51)
    }

    func sideAndWeightHashes(_ dir: String) throws -> [String: String] {
        var out: [String: String] = [:]
        for f in try FileManager.default.contentsOfDirectory(atPath: dir) where !f.hasPrefix(".") {
            out[f] = try fileSHA256(dir + "/" + f)
        }
        return out
    }
}
