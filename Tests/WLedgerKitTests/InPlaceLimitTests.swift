import Foundation
import TestSupport
@testable import WLedgerKit
import XCTest

/// What an in-place checkout holds in memory is counted with what rebuilding its tensors holds
/// (the recipes' stored objects or their decoding buffers, the decoded patches), not only the
/// rebuilt tensors: past the limit the weight file is written anew instead, with the same bytes.
final class InPlaceLimitTests: XCTestCase {
    func testCheckoutWritesTheFileAnewWhenRebuildingWouldPassTheLimit() throws {
        let tmp = try TemporaryDirectory("inplace-limit")
        let model = try tmp.copyModel(from: try Fixtures.smolLM2("f32"))
        let weights = model + "/model.safetensors"
        let base = try Repository.initialize(at: model, message: "base").commit
        let baseHash = try fileSHA256(weights)
        let repo = try Repository.open(at: model, forWriting: true)
        _ = try SimulatedEdit.rankOne(file: weights, tensor: "model.layers.3.mlp.down_proj.weight", seed: 5)
        let edited = try repo.commit(CommitOptions(message: "edit")).commit
        let editedHash = try fileSHA256(weights)
        let inode = { (try FileManager.default.attributesOfItem(atPath: weights)[.systemFileNumber] as? NSNumber)?.uint64Value }

        // Room for the changed tensor alone (576×1536 F32): rebuilding it also holds what decoding
        // its keyframe holds (a piece of the stored chunk and the unshuffling window).
        repo.inPlaceMemoryLimit = 576 * 1536 * 4
        let before = try inode()
        var r = try repo.checkout(base)
        XCTAssertEqual(r.patchedInPlace, [])
        XCTAssertEqual(r.written, ["model.safetensors"])
        XCTAssertNotEqual(try inode(), before, "written anew: a new file")
        XCTAssertEqual(try fileSHA256(weights), baseHash)

        // The default limit: the same switch back writes the one tensor into the file.
        repo.inPlaceMemoryLimit = Repository.inPlaceLimit
        let anew = try inode()
        r = try repo.checkout(edited)
        XCTAssertEqual(r.patchedInPlace, ["model.safetensors"])
        XCTAssertEqual(r.tensorsRebuilt, 1)
        XCTAssertEqual(try inode(), anew, "written in place")
        XCTAssertEqual(try fileSHA256(weights), editedHash)
        XCTAssertTrue(try repo.status().clean)
    }
}
