import Foundation
import Ledger
import TensorIO
import TestSupport
@testable import WLedgerKit
import XCTest

/// Checking out a commit that descends from HEAD continues each changed tensor from the version
/// the clean work tree holds (only the later patches of its chain applied, its keyframe not
/// decoded); every other rebuild starts from the keyframe. Either way the files are byte-identical
/// to the committed ones, and bytes that turn out not to be the version they were taken for are
/// never trusted: the rebuild starts again from the keyframe.
final class ForwardCheckoutTests: XCTestCase {
    static let a = "model.layers.3.mlp.down_proj.weight", b = "model.layers.7.mlp.down_proj.weight"

    /// SmolLM2 F32 with five rank-one edits (a, b, a, a, b): the commits and the weight file's
    /// sha256 at each.
    func history(_ tmp: TemporaryDirectory) throws -> (repo: Repository, weights: String, base: String, commits: [String], sha: [String]) {
        let model = try tmp.copyModel(from: try Fixtures.smolLM2("f32"))
        let weights = model + "/model.safetensors"
        let base = try Repository.initialize(at: model, message: "base").commit
        let repo = try Repository.open(at: model, forWriting: true)
        var commits: [String] = [], sha: [String] = []
        for (k, t) in [Self.a, Self.b, Self.a, Self.a, Self.b].enumerated() {
            _ = try SimulatedEdit.rankOne(file: weights, tensor: t, seed: UInt64(k + 11))
            commits.append(try repo.commit(CommitOptions(message: "edit \(k)")).commit)
            sha.append(try fileSHA256(weights))
        }
        return (repo, weights, base, commits, sha)
    }

    func testCheckoutContinuesForwardFromTheWorkTreeAndBackwardFromKeyframes() throws {
        let tmp = try TemporaryDirectory("forward-checkout")
        let (repo, weights, base, commits, sha) = try history(tmp)

        // Back to the first edit: a's version there (one patch after its keyframe) is an ancestor
        // of what the work tree holds, b's is the keyframe itself; neither continues.
        var r = try repo.checkout(commits[0])
        XCTAssertEqual(r.patchedInPlace, ["model.safetensors"])
        XCTAssertEqual(r.tensorsRebuilt, 2)
        XCTAssertEqual(r.tensorsContinued, 0)
        XCTAssertEqual(try fileSHA256(weights), sha[0])

        // Forward to the last edit, in place: a continues from its version at the first edit (two
        // more patches), b from the base's bytes (two patches).
        r = try repo.checkout(commits[4])
        XCTAssertEqual(r.patchedInPlace, ["model.safetensors"])
        XCTAssertEqual(r.tensorsRebuilt, 2)
        XCTAssertEqual(r.tensorsContinued, 2)
        XCTAssertEqual(try fileSHA256(weights), sha[4])
        XCTAssertTrue(try repo.status().clean)

        // The same from the whole-file path (`--no-in-place`) and into another directory (`--output`).
        _ = try repo.checkout(commits[0])
        r = try repo.checkout(commits[3], inPlace: false)
        XCTAssertEqual(r.patchedInPlace, [])
        XCTAssertEqual(r.tensorsContinued, 2)
        XCTAssertEqual(try fileSHA256(weights), sha[3])
        let out = tmp.path + "/out"
        r = try repo.checkout(commits[4], output: out)
        XCTAssertEqual(r.tensorsContinued, 1, "b differs; a is the work tree's and is copied")
        XCTAssertEqual(try fileSHA256(out + "/model.safetensors"), sha[4])
        XCTAssertEqual(try repo.ledger.head().commit, commits[3], "--output leaves HEAD alone")

        // To the base: its versions are the keyframes, rebuilt from the ledger.
        r = try repo.checkout(base)
        XCTAssertEqual(r.tensorsContinued, 0)
        XCTAssertEqual(r.tensorsRebuilt, 2)
    }

    /// `revert` (like prune, restrain and edit) encodes against HEAD's version of each changed
    /// tensor, which a clean work tree holds: it is taken from there, not rebuilt from the ledger.
    func testRevertTakesHeadsVersionFromTheWorkTree() throws {
        let tmp = try TemporaryDirectory("forward-revert")
        let (repo, weights, _, commits, sha) = try history(tmp)
        let r = try repo.revert(commits[4])
        XCTAssertEqual(r.commit.tensors.map(\.name), [Self.b])
        XCTAssertEqual(r.commit.parentsFromWorkTree, 1)
        XCTAssertEqual(try fileSHA256(weights), sha[3], "reverting HEAD restores its parent's bytes exactly")
        XCTAssertTrue(try repo.status().clean)
        // A plain commit's work tree holds the child, so its parents come from the ledger.
        _ = try SimulatedEdit.rankOne(file: weights, tensor: Self.a, seed: 99)
        XCTAssertEqual(try repo.commit(CommitOptions(message: "one more")).parentsFromWorkTree, 0)
    }

    func testBytesThatAreNotTheClaimedVersionFallBackToTheKeyframe() throws {
        let tmp = try TemporaryDirectory("forward-fallback")
        let (repo, _, _, commits, _) = try history(tmp)
        let target = try repo.ledger.manifest(of: commits[4])[Self.a]!.hash
        let first = try repo.ledger.manifest(of: commits[0])[Self.a]!.hash
        let expected = try repo.ledger.recipe(for: target).build(verifySHA256: true)
        var held = try repo.ledger.recipe(for: first).build(verifySHA256: true)

        func rebuild(from bytes: [UInt8]) throws -> (bytes: [UInt8], origin: TensorRecipe.Origin) {
            try bytes.withUnsafeBytes { view in
                let recipe = try repo.ledger.recipe(for: target, current: WorkTreeTensor(version: first, bytes: RawView(bytes: view)))
                XCTAssertEqual(recipe.start?.applied, 1, "a's first version is one patch after its keyframe")
                XCTAssertEqual(recipe.patches.count, 3)
                return try recipe.buildReportingOrigin(verifySHA256: true)
            }
        }
        let right = try rebuild(from: held)
        XCTAssertEqual(right.origin, .workTree)
        XCTAssertEqual(right.bytes, expected)

        // One bit off: the continued result fails its fingerprint, and the keyframe path gives the
        // committed bytes.
        held[4096] ^= 0x01
        let wrong = try rebuild(from: held)
        XCTAssertEqual(wrong.origin, .keyframeAfterMismatch)
        XCTAssertEqual(wrong.bytes, expected)

        // A version that is not on the target's chain (b's) gives no start at all.
        let other = try repo.ledger.manifest(of: commits[1])[Self.b]!.hash
        try held.withUnsafeBytes { view in
            XCTAssertNil(try repo.ledger.recipe(for: target, current: WorkTreeTensor(version: other, bytes: RawView(bytes: view))).start)
        }
        XCTAssertEqual(try repo.ledger.recipe(for: target).buildReportingOrigin(verifySHA256: false).origin, .keyframe)
    }

    /// Flips one bit of tensor `name` in the weight file and records the file's new stat as seen
    /// at HEAD long after it was written: a write the stat cache missed, so the next scan trusts
    /// the file and takes the tensor for HEAD's version.
    func writeHiddenFromTheScan(_ repo: Repository, weights: String, tensor name: String) throws {
        let (info, dataStart) = try SimulatedEdit.locate(file: weights, tensor: name)
        let fd = open(weights, O_RDWR)
        XCTAssertGreaterThanOrEqual(fd, 0)
        defer { close(fd) }
        var byte: UInt8 = 0
        let at = off_t(dataStart + info.begin + 4096)
        XCTAssertEqual(pread(fd, &byte, 1, at), 1)
        byte ^= 0x01
        XCTAssertEqual(pwrite(fd, &byte, 1, at), 1)
        let stat = try XCTUnwrap(FileStat.of(weights))
        try repo.ledger.recordWorktreeStat("model.safetensors", commit: try repo.ledger.head().commit, stat: stat,
                                           recordedNs: stat.mtimeNs + 1_000_000_000)
        XCTAssertTrue(try repo.status().clean, "the scan trusts the recorded stat")
    }

    /// End to end: a checkout forward (CLI in place; library `--output` and `--no-in-place`) and a
    /// revert (library) whose work-tree tensor is not the version the scan took it for still write
    /// the committed bytes (rebuilt from the keyframe) and count it in `workTreeMismatches`; the
    /// CLI warns about it.
    func testAWriteTheScanMissedIsRebuiltFromTheLedgerAndReported() throws {
        let tmp = try TemporaryDirectory("forward-mismatch")
        let (held, weights, _, commits, sha) = try history(tmp)
        _ = try held.checkout(commits[0])
        try writeHiddenFromTheScan(held, weights: weights, tensor: Self.a)
        held.unlock()
        let out = try CLI.run(["checkout", "--json", commits[4]], in: held.root, environment: ["WLEDGER_LOCK_TIMEOUT": "5"])
        XCTAssertEqual(out.status, 0, out.stderr)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(out.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(json["tensorsRebuilt"] as? Int, 2)
        XCTAssertEqual(json["tensorsContinued"] as? Int, 1, "b continues; a does not")
        XCTAssertEqual(json["workTreeMismatches"] as? Int, 1)
        XCTAssertTrue(out.stderr.hasPrefix("warning: 1 tensor(s) in the work tree did not hold the version its scan recorded"), out.stderr)
        XCTAssertEqual(try fileSHA256(weights), sha[4])

        // The same into another directory (`--output`) and through the whole-file path
        // (`--no-in-place`).
        let repo = try Repository.open(at: held.root, forWriting: true)
        _ = try repo.checkout(commits[0])
        try writeHiddenFromTheScan(repo, weights: weights, tensor: Self.a)
        let out2 = tmp.path + "/out"
        var c = try repo.checkout(commits[4], output: out2)
        XCTAssertEqual(c.workTreeMismatches, 1)
        XCTAssertEqual(c.tensorsContinued, 1)
        XCTAssertEqual(try fileSHA256(out2 + "/model.safetensors"), sha[4])
        c = try repo.checkout(commits[4], inPlace: false)
        XCTAssertEqual(c.patchedInPlace, [])
        XCTAssertEqual(c.workTreeMismatches, 1)
        XCTAssertEqual(c.tensorsContinued, 1)
        XCTAssertEqual(try fileSHA256(weights), sha[4])

        // Reverting HEAD's edit of b, whose work-tree bytes are not HEAD's: the parent is rebuilt
        // from the ledger and the file ends at the parent commit's bytes exactly.
        try writeHiddenFromTheScan(repo, weights: weights, tensor: Self.b)
        let r = try repo.revert(commits[4])
        XCTAssertEqual(r.commit.tensors.map(\.name), [Self.b])
        XCTAssertEqual(r.commit.parentsFromWorkTree, 0)
        XCTAssertEqual(r.commit.workTreeMismatches, 1)
        XCTAssertEqual(try fileSHA256(weights), sha[3])

        // Without a hidden write nothing is reported.
        let again = try repo.checkout(commits[4])
        XCTAssertEqual(again.workTreeMismatches, 0)
        XCTAssertEqual(again.tensorsContinued, 1)
        XCTAssertEqual(try fileSHA256(weights), sha[4])
    }
}
