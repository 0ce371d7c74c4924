import Foundation
import Ledger
import TensorIO
import TestSupport
import WLedgerKit
import XCTest

/// A sharded model (two safetensors shards + model.safetensors.index.json) and side files that
/// come and go: the mechanics a single-file model does not exercise.
final class ShardedModelTests: XCTestCase {
    func shard(_ path: String, _ tensors: [(String, [Float])]) throws {
        let h = SafetensorsHeader.make(tensors: tensors.map { ($0.0, DType.f32, [$0.1.count]) })
        var bytes = h.prefixBytes
        for t in h.tensors { bytes += tensors.first { $0.0 == t.name }!.1.withUnsafeBytes { Array($0) } }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    func hashes(_ dir: String) throws -> [String: String] {
        var out: [String: String] = [:]
        for f in try FileManager.default.contentsOfDirectory(atPath: dir) where !f.hasPrefix(".") { out[f] = try fileSHA256(dir + "/" + f) }
        return out
    }

    func testShardedCommitCheckoutAndSideFiles() throws {
        let tmp = try TemporaryDirectory("sharded")
        let dir = tmp.path + "/m"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let a = (0..<64).map { Float($0) * 0.5 }, b = (0..<32).map { Float($0) - 3 }, c = (0..<16).map { Float($0) * 0.25 }
        try shard(dir + "/model-00001-of-00002.safetensors", [("a", a), ("b", b)])
        try shard(dir + "/model-00002-of-00002.safetensors", [("c", c)])
        let index = #"{"metadata":{"total_size":448},"weight_map":{"a":"model-00001-of-00002.safetensors","b":"model-00001-of-00002.safetensors","c":"model-00002-of-00002.safetensors"}}"#
        try Data(index.utf8).write(to: URL(fileURLWithPath: dir + "/model.safetensors.index.json"))
        try Data(#"{"architectures":["Tiny"]}"#.utf8).write(to: URL(fileURLWithPath: dir + "/config.json"))
        let base = try hashes(dir)

        let r = try Repository.initialize(at: dir)
        XCTAssertEqual(r.tensors, 3)
        XCTAssertEqual(r.files, 4)  // two shards, the index, config.json
        let repo = try Repository.open(at: dir, forWriting: true)
        // Edit a tensor in the second shard and add a side file in the same commit.
        try shard(dir + "/model-00002-of-00002.safetensors", [("c", c.map { $0 + 1 })])
        try Data("notes".utf8).write(to: URL(fileURLWithPath: dir + "/README.md"))
        let st = try repo.status()
        XCTAssertEqual(st.modifiedTensors.map(\.name), ["c"])
        XCTAssertEqual(st.sideFiles.map(\.path), ["README.md"])
        let c1 = try repo.commit(CommitOptions(message: "edit c, add readme"))
        XCTAssertEqual(c1.tensors.map(\.name), ["c"])
        let edited = try hashes(dir)
        // Remove the side file in the next commit.
        try FileManager.default.removeItem(atPath: dir + "/README.md")
        XCTAssertEqual(try repo.status().sideFiles.map(\.change), [.deleted])
        _ = try repo.commit(CommitOptions(message: "drop readme"))

        // Back to base: shard 2 and the side files return; shard 1 is untouched.
        let co = try repo.checkout("base")
        XCTAssertEqual(co.written, ["model-00002-of-00002.safetensors"])
        XCTAssertEqual(try hashes(dir), base)
        _ = try repo.checkout(c1.commit)
        XCTAssertEqual(try hashes(dir), edited)
        _ = try repo.checkout("main")
        XCTAssertNil(FileManager.default.contents(atPath: dir + "/README.md"))
        // Materialize elsewhere straight from the ledger: identical to the original files.
        let out = tmp.path + "/out"
        _ = try repo.checkout("base", output: out, verifySHA256: true)
        XCTAssertEqual(try hashes(out), base)
        XCTAssertEqual(try repo.fsck(full: true).problems, [])
    }
}
