import Foundation
import Ledger
import TensorIO
import TestSupport
@testable import WLedgerKit
import XCTest

/// The stat cache on the real SmolLM2 BF16 file: a weight file is trusted without hashing once
/// its recorded stat was taken more than the racy window (100 ms on this nanosecond filesystem)
/// after its mtime, and never while a write could hide in the same timestamp granule.
final class StatCacheTests: XCTestCase {
    func trusted(_ repo: Repository) throws -> Set<String> {
        let head = try repo.ledger.head()
        return try WorkTreeComparison.compare(root: repo.root, ledger: repo.ledger, commit: head.commit, branch: head.branchName,
                                              rehash: false, progress: .silent).statClean
    }

    func testRacilyCleanFilesAreRehashedThenTrusted() throws {
        let tmp = try TemporaryDirectory("stat-cache")
        let model = try tmp.copyModel(from: try Fixtures.smolLM2("bf16"))
        let file = "model.safetensors", tensor = "model.layers.3.mlp.down_proj.weight"
        XCTAssertEqual(racyWindow(mtimeNs: FileStat.of(model + "/" + file)!.mtimeNs), 100_000_000, "expects a nanosecond filesystem")
        usleep(150_000)
        _ = try Repository.initialize(at: model)
        let repo = try Repository.open(at: model, forWriting: true)
        // init read the file more than 100 ms after it was written: trusted from the start.
        XCTAssertEqual(try trusted(repo), [file])

        // Edited and committed at once: the commit records the stat with the time its scan began
        // (before it read the file), so a record within 100 ms of the write is racy and the file
        // is hashed again.
        try SimulatedEdit.rankOne(file: model + "/" + file, tensor: tensor, seed: 3)
        let beforeCommit = wallClockNanoseconds()
        _ = try repo.commit(CommitOptions(message: "edit"))
        let rec = try XCTUnwrap(try repo.ledger.worktreeStat(file))
        XCTAssertGreaterThanOrEqual(rec.recordedNs, beforeCommit)
        XCTAssertEqual(try trusted(repo).contains(file), rec.stat.mtimeNs + 100_000_000 < rec.recordedNs)
        XCTAssertTrue(try repo.status().clean)
        // ... and a status 150 ms later that proves it clean records it for good.
        usleep(150_000)
        XCTAssertTrue(try repo.status().clean)
        XCTAssertEqual(try trusted(repo), [file])

        // A write right after that is seen (size, mtime and ctime change) and reported.
        try SimulatedEdit.rankOne(file: model + "/" + file, tensor: tensor, seed: 4)
        XCTAssertEqual(try trusted(repo), [])
        XCTAssertEqual(try repo.status().modifiedTensors.map(\.name), [tensor])
    }
}
