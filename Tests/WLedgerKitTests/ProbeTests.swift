import Foundation
@testable import Ledger
import TensorIO
import TestSupport
@testable import WLedgerKit
import XCTest

/// Probes (schema 0004) on the real SmolLM2 F32: a scan compares a few windows of each tensor
/// with its version's probe while the hashing starts. A rank-one edit rewrites every window and
/// is handed over at once, without a fingerprint; an edit of one element between windows is
/// found by hashing, with its fingerprint. Both are reported, and committed with the probes of
/// their new bytes.
final class ProbeTests: XCTestCase {
    func testRewrittenTensorsAreFoundByTheirProbe() throws {
        let fixture = try initializedModel("probe")
        defer { withExtendedLifetime(fixture) {} }
        let (model, file, repo) = (fixture.model, fixture.file, fixture.repo)
        let rewritten = "model.layers.5.mlp.down_proj.weight", poked = "model.layers.6.self_attn.q_proj.weight"
        try SimulatedEdit.rankOne(file: file, tensor: rewritten, seed: 1)
        // Element 1000 of the 576×576 q_proj: byte 4000, past the first 64-byte window and far
        // before the second (at (4·576·576 − 64)/3).
        _ = try SimulatedEdit.modify(file: file, tensor: poked) { w, _ in w[1000] += 0.5 }

        let head = try repo.ledger.head()
        // What the scan hands over, in order: the probe's finding, then the end of the scanning
        // thread's own work, then what the hashing found.
        var events: [String] = [], byHash: [String: String] = [:]
        let scan = try WorkTreeComparison.compare(root: repo.root, ledger: repo.ledger, commit: head.commit, branch: head.branchName,
                                                  rehash: false, progress: .silent, onScanned: { events.append("scanned") }) { name, _, fingerprint, _ in
            if let fingerprint { byHash[name] = fingerprint; events.append("hash " + name) } else { events.append("probe " + name) }
        }
        XCTAssertEqual(events, ["probe " + rewritten, "scanned", "hash " + poked])
        XCTAssertEqual(byHash[poked], Fingerprint.of(try XCTUnwrap(scan.weights.bytes(poked))).hex)
        XCTAssertEqual(scan.report.modifiedTensors.map(\.name).sorted(), [rewritten, poked].sorted())
        // The hashing starts before the probes are read, so a worker may have reached the
        // rewritten tensor first; then its fingerprint is that of its new bytes.
        if let fp = scan.fingerprints[rewritten] {
            XCTAssertEqual(fp, Fingerprint.of(try XCTUnwrap(scan.weights.bytes(rewritten))))
        }

        let result = try repo.commit(CommitOptions(message: "two edits"))
        XCTAssertEqual(result.tensors.map(\.name).sorted(), [rewritten, poked].sorted())
        let manifest = try repo.ledger.manifest(of: result.commit)
        let weights = try ModelDirectory.scan(model).open()
        for name in [rewritten, poked] {
            let v = try XCTUnwrap(try repo.ledger.version(try XCTUnwrap(manifest[name]).hash))
            let bytes = try XCTUnwrap(weights.bytes(name))
            XCTAssertEqual(v.probe, Probe.of(bytes), name)
            XCTAssertEqual(v.fingerprint, Fingerprint.of(bytes).hex, name)
        }
        XCTAssertTrue(try repo.status().clean)
    }

    /// A ledger from before schema 0004 holds no probes. The next scan that hashes a tensor and
    /// finds it unchanged stores the probe of its bytes (never one of changed bytes, and never
    /// over an existing probe); after that, a rewritten tensor is found by its probe again.
    func testLedgersFromBeforeProbesGetThemFromTheNextScan() throws {
        let fixture = try initializedModel("probe-fill")
        defer { withExtendedLifetime(fixture) {} }
        let (model, file, repo) = (fixture.model, fixture.file, fixture.repo)
        try repo.ledger.db.execute("UPDATE tensorVersion SET probe = NULL")
        let edited = "model.layers.3.mlp.down_proj.weight"
        let base = try repo.ledger.manifest(of: try repo.ledger.head().commit)
        try SimulatedEdit.rankOne(file: file, tensor: edited, seed: 2)

        let report = try repo.status()
        XCTAssertEqual(report.modifiedTensors.map(\.name), [edited], "found by its hash, with no probe to compare")
        let weights = try ModelDirectory.scan(model).open()
        for (name, entry) in base {
            let v = try XCTUnwrap(try repo.ledger.version(entry.hash))
            if name == edited {
                XCTAssertNil(v.probe, "the probe of changed bytes is not the version's")
            } else {
                XCTAssertEqual(v.probe, Probe.of(try XCTUnwrap(weights.bytes(name))), name)
            }
        }
        let other = try XCTUnwrap(base.keys.sorted().first { $0 != edited })
        try repo.ledger.transaction { try repo.ledger.fillMissingProbes([base[other]!.hash: 7]) }
        XCTAssertEqual(try repo.ledger.version(base[other]!.hash)?.probe, Probe.of(try XCTUnwrap(weights.bytes(other))), "an existing probe stays")

        _ = try repo.commit(CommitOptions(message: "edit"))
        let rewritten = "model.layers.4.mlp.down_proj.weight"
        try SimulatedEdit.rankOne(file: file, tensor: rewritten, seed: 3)
        let head = try repo.ledger.head()
        var byProbe: [String] = []
        _ = try WorkTreeComparison.compare(root: repo.root, ledger: repo.ledger, commit: head.commit, branch: head.branchName,
                                           rehash: false, progress: .silent, onModified: { name, _, fingerprint, _ in
            if fingerprint == nil { byProbe.append(name) }
        })
        XCTAssertEqual(byProbe, [rewritten])
    }

    /// `commit` starts hashing the work tree before it opens the repository. The scan takes that
    /// hashing over while the weight files are as it mapped them (and is then dated from its
    /// start), and hashes afresh after a change it cannot have seen.
    func testAHashingStartedBeforeTheScanIsUsedOnlyWhileTheFilesAreUnchanged() throws {
        let fixture = try initializedModel("prefetch")
        defer { withExtendedLifetime(fixture) {} }
        let (file, repo) = (fixture.file, fixture.repo)
        let first = "model.layers.7.mlp.down_proj.weight", second = "model.layers.8.self_attn.q_proj.weight"
        try SimulatedEdit.rankOne(file: file, tensor: first, seed: 4)
        let head = try repo.ledger.head()
        func scan(_ prefetched: TensorHashing) throws -> WorkTreeComparison {
            try WorkTreeComparison.compare(root: repo.root, ledger: repo.ledger, commit: head.commit, branch: head.branchName,
                                           rehash: false, progress: .silent, prefetched: prefetched)
        }
        let current = try XCTUnwrap(TensorHashing.prefetch(root: repo.root, throttle: nil, progress: .silent))
        let taken = try scan(current)
        XCTAssertEqual(taken.scannedAt, current.scannedAt)
        XCTAssertEqual(taken.report.modifiedTensors.map(\.name), [first])

        let stale = try XCTUnwrap(TensorHashing.prefetch(root: repo.root, throttle: nil, progress: .silent))
        try stale.wait()   // it hashed the bytes before the next edit
        _ = try SimulatedEdit.modify(file: file, tensor: second) { w, _ in w[1000] += 0.5 }
        let fresh = try scan(stale)
        XCTAssertGreaterThan(fresh.scannedAt, stale.scannedAt)
        XCTAssertEqual(fresh.report.modifiedTensors.map(\.name).sorted(), [first, second].sorted())
        XCTAssertEqual(fresh.fingerprints[second], Fingerprint.of(try XCTUnwrap(fresh.weights.bytes(second))))
    }

    /// A copy of SmolLM2 F32 under wledger (base commit only), opened for writing; the copy lives
    /// as long as this value.
    private struct InitializedModel {
        let tmp: TemporaryDirectory
        let model: String, file: String
        let repo: Repository
    }

    private func initializedModel(_ label: String) throws -> InitializedModel {
        let tmp = try TemporaryDirectory(label)
        let model = try tmp.copyModel(from: try Fixtures.smolLM2("f32"))
        _ = try Repository.initialize(at: model)
        return InitializedModel(tmp: tmp, model: model, file: model + "/model.safetensors", repo: try Repository.open(at: model, forWriting: true))
    }
}
