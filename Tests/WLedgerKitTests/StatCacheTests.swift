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
        XCTAssertTrue(try trusted(repo).contains(file))

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
        XCTAssertTrue(try trusted(repo).contains(file))

        // A write right after that is seen (size, mtime and ctime change) and reported.
        try SimulatedEdit.rankOne(file: model + "/" + file, tensor: tensor, seed: 4)
        XCTAssertFalse(try trusted(repo).contains(file))
        XCTAssertEqual(try repo.status().modifiedTensors.map(\.name), [tensor])
    }

    /// Side files (config.json, tokenizer.json, ...) are trusted from their recorded stat like
    /// weight files, so a scan does not read them; a rewrite is still seen even when it keeps the
    /// size and puts the old mtime back (the ctime changes), and is committed with its new bytes.
    func testSideFilesAreTrustedFromTheirStat() throws {
        let tmp = try TemporaryDirectory("stat-cache-side")
        let model = try tmp.copyModel(from: try Fixtures.smolLM2("bf16"))
        usleep(150_000)
        _ = try Repository.initialize(at: model)
        let repo = try Repository.open(at: model, forWriting: true)
        let side = try ModelDirectory.scan(model).sideFiles
        XCTAssertTrue(side.contains("config.json") && side.contains("tokenizer.json"), "\(side)")
        XCTAssertTrue(try trusted(repo).isSuperset(of: side))
        let head = try repo.ledger.head()
        let scan = try WorkTreeComparison.compare(root: repo.root, ledger: repo.ledger, commit: head.commit, branch: head.branchName,
                                                  rehash: false, progress: .silent)
        XCTAssertTrue(scan.sideContents.isEmpty, "trusted side files are not read: \(scan.sideContents.keys.sorted())")
        let committed = try repo.ledger.files(of: head.commit)
        for f in side { XCTAssertEqual(scan.sideHashes[f], committed[f]?.object, f) }

        // Same size, same mtime, different bytes.
        let path = model + "/config.json"
        let before = try XCTUnwrap(FileStat.of(path))
        var text = try String(contentsOfFile: path, encoding: .utf8)
        let changed = text.replacingOccurrences(of: "\"rms_norm_eps\": 1e-05", with: "\"rms_norm_eps\": 2e-05")
        XCTAssertNotEqual(changed, text, "config.json should hold rms_norm_eps 1e-05")
        text = changed
        try text.write(toFile: path, atomically: false, encoding: .utf8)
        var times = [timespec(tv_sec: Int(before.mtimeNs / 1_000_000_000), tv_nsec: Int(before.mtimeNs % 1_000_000_000)),
                     timespec(tv_sec: Int(before.mtimeNs / 1_000_000_000), tv_nsec: Int(before.mtimeNs % 1_000_000_000))]
        XCTAssertEqual(utimensat(AT_FDCWD, path, &times, 0), 0)
        let after = try XCTUnwrap(FileStat.of(path))
        XCTAssertEqual(after.size, before.size)
        XCTAssertEqual(after.mtimeNs, before.mtimeNs)
        XCTAssertFalse(try trusted(repo).contains("config.json"))
        XCTAssertEqual(try repo.status().sideFiles.map(\.path), ["config.json"])
        let result = try repo.commit(CommitOptions(message: "eps"))
        XCTAssertEqual(result.files, ["config.json"])
        let blob = try XCTUnwrap(try repo.ledger.files(of: result.commit)["config.json"]?.object)
        XCTAssertEqual(blob, SHA256Digest.hash(Array(text.utf8)).hex)
        XCTAssertTrue(try repo.status().clean)
    }
}
