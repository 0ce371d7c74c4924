import Foundation
import Ledger
import TensorIO
import TestSupport
import WLedgerKit
import XCTest

/// Two wledger processes never corrupt each other: writers serialize on `.wledger/lock`.
final class ConcurrencyTests: XCTestCase {
    func testConcurrentCommitsSerialize() throws {
        let tmp = try TemporaryDirectory("concurrency")
        let model = try tmp.copyModel(from: try Fixtures.smolLM2("bf16"))
        _ = try Repository.initialize(at: model)
        try SimulatedEdit.rankOne(file: model + "/model.safetensors", tensor: "model.layers.2.mlp.down_proj.weight", seed: 7)
        // Start two commits at once; one wins, the other waits for the lock and then finds nothing to commit.
        let results = Slots2()
        DispatchQueue.concurrentPerform(iterations: 2) { i in
            let r = try? CLI.run(["commit", "-q", "-C", model, "-m", "racer \(i)"])
            results.set(i, r)
        }
        let statuses = results.all.map { $0?.status ?? -1 }.sorted()
        XCTAssertEqual(statuses, [0, 1], "outputs: \(results.all.map { ($0?.stdout ?? "") + ($0?.stderr ?? "") })")
        let loser = results.all.first { $0?.status == 1 }!!
        XCTAssertTrue(loser.stderr.contains("nothing to commit"), loser.stderr)
        let repo = try Repository.open(at: model, forWriting: false)
        XCTAssertEqual(try repo.log().count, 2)
        XCTAssertEqual(try repo.fsck(full: true).problems, [])
        XCTAssertTrue(try repo.status().clean)
    }

    func testWriterWaitsThenFailsCleanlyWhileLockHeld() throws {
        let tmp = try TemporaryDirectory("lock")
        let model = try tmp.copyModel(from: try Fixtures.smolLM2("bf16"))
        _ = try Repository.initialize(at: model)
        try SimulatedEdit.rankOne(file: model + "/model.safetensors", tensor: "model.layers.3.mlp.down_proj.weight", seed: 8)
        let before = try directoryDigest(model)
        let held = try Repository.open(at: model, forWriting: true)
        let r = try CLI.run(["commit", "-C", model, "-m", "blocked"], environment: ["WLEDGER_LOCK_TIMEOUT": "1"])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("waiting for another wledger process"), r.stderr)
        XCTAssertTrue(r.stderr.contains("is locked by another wledger process"), r.stderr)
        XCTAssertEqual(try directoryDigest(model), before)
        held.unlock()
        XCTAssertEqual(try CLI.run(["commit", "-q", "-C", model, "-m", "now"]).status, 0)
    }

    /// A weight file another program rewrites in place while wledger reads it through its map
    /// (here cut to nothing right after the map is made, `WLEDGER_FAULT=map-shrunk`) ends the
    /// command with exit 2 and one line naming the file, not a SIGBUS (exit 135, no message);
    /// the ledger is left as it was.
    func testAFileThatShrinksUnderItsMapEndsTheCommandWithOneLine() throws {
        let tmp = try TemporaryDirectory("shrunk")
        let model = try tmp.copyModel(from: try Fixtures.smolLM2("bf16"))
        _ = try Repository.initialize(at: model)
        let ledgerBefore = try fileSHA256(model + "/.wledger/ledger")
        let r = try CLI.run(["status", "-C", model], environment: ["WLEDGER_FAULT": "map-shrunk"])
        XCTAssertEqual(r.status, 2, r.stderr)
        // One line, naming the file (the model directory as wledger resolved it: no double slash).
        XCTAssertTrue(r.stderr.hasPrefix("error: '/"), r.stderr)
        XCTAssertTrue(r.stderr.hasSuffix("/model/model.safetensors' shrank while wledger read it (another program rewrote it in place, or the disk failed to read it); "
                                         + "run the command again once it is written\n"), r.stderr)
        XCTAssertEqual(r.stderr.filter { $0 == "\n" }.count, 1, r.stderr)
        XCTAssertEqual(try fileSHA256(model + "/.wledger/ledger"), ledgerBefore)
    }
}

final class Slots2: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [ProcessOutput?] = [nil, nil]
    func set(_ i: Int, _ v: ProcessOutput?) { lock.lock(); items[i] = v; lock.unlock() }
    var all: [ProcessOutput?] { lock.lock(); defer { lock.unlock() }; return items }
}
