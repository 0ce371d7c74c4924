import Foundation
import TensorIO
import TestSupport
import WLedgerKit
import XCTest

/// The library's own checks of `edit`'s options, for callers that do not go through the CLI's
/// parsing: refused before anything is scanned or recorded.
final class EditOptionsTests: XCTestCase {
    func testRepeatedOrOutOfRangeMEMITLayersAreRefusedByTheLibrary() throws {
        let tmp = try TemporaryDirectory("edit-options")
        let dir = tmp.path + "/m"
        try writeTinyModel(dir, tensors: [("w", .f32, [2, 2], [Float](repeating: 1, count: 4).withUnsafeBytes { Array($0) })])
        // The real model's config (30 layers); the weights do not matter for these checks.
        try FileManager.default.removeItem(atPath: dir + "/config.json")
        try FileManager.default.copyItem(atPath: try Fixtures.smolLM2("f32") + "/config.json", toPath: dir + "/config.json")
        _ = try Repository.initialize(at: dir)
        let repo = try Repository.open(at: dir, forWriting: true)
        let request = Array(#"{"prompt": "The capital of France is", "subject": "France", "target_new": "Rome", "ground_truth": "Paris"}"#.utf8)
        let before = try directoryDigest(dir)
        for (layers, expected) in [([4, 5, 4], "--layers '4,5,4': layer 4 is given twice"),
                                   ([4, 30], "--layers: layer 30 is outside the model's 30 layers")] {
            var o = EditOptions()
            o.method = .memit
            o.memitLayers = layers
            XCTAssertThrowsError(try repo.edit(requestBytes: request, source: "r.json", options: o)) { error in
                XCTAssertEqual((error as? KitError)?.description, expected)
            }
        }
        XCTAssertEqual(try directoryDigest(dir), before)
    }
}
