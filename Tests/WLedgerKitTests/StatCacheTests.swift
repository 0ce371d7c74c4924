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

    /// revert, cherry-pick, prune and restrain check the work tree clean before computing their
    /// update and again when they commit it. The second scan trusts what the first found clean
    /// where the stat has not changed since (so a stale stat cache costs one hashing, not two),
    /// without recording anything in the ledger, and still sees a write made in between.
    func testACleanScanVouchesForUnchangedFilesOnly() throws {
        let tmp = try TemporaryDirectory("stat-cache-vouch")
        let model = try tmp.copyModel(from: try Fixtures.smolLM2("bf16"))
        let file = "model.safetensors", tensor = "model.layers.7.mlp.down_proj.weight"
        usleep(150_000)
        _ = try Repository.initialize(at: model)
        let repo = try Repository.open(at: model, forWriting: true)
        let (parent, _) = try SimulatedEdit.rankOne(file: model + "/" + file, tensor: tensor, seed: 11)
        let edit = try repo.commit(CommitOptions(message: "edit")).commit
        usleep(150_000)
        try repo.ledger.clearWorktreeStats()   // stale: every file would be hashed
        XCTAssertTrue(try trusted(repo).isEmpty)

        let clean = try repo.refuseUncommittedChanges(progress: .silent)
        XCTAssertEqual(clean.commit, edit)
        XCTAssertNil(try repo.ledger.worktreeStat(file), "the check records nothing in the ledger")
        let side = try ModelDirectory.scan(model).sideFiles
        XCTAssertEqual(Set(clean.stats.keys), Set(side + [file]))
        func scan(_ vouched: CleanScan) throws -> WorkTreeComparison {
            try WorkTreeComparison.compare(root: repo.root, ledger: repo.ledger, commit: edit, branch: "main", rehash: false,
                                           progress: .silent, vouched: vouched)
        }
        let again = try scan(clean)
        XCTAssertEqual(again.statClean, Set(side + [file]))
        XCTAssertTrue(again.fingerprints.isEmpty, "no tensor hashed a second time: \(again.fingerprints.count)")
        XCTAssertTrue(again.report.clean)

        // Not for another commit, nor for a scan begun within the racy window after the write.
        let st = try XCTUnwrap(clean.stats[file])
        XCTAssertFalse(try scan(CleanScan(commit: "base", stats: clean.stats, scannedAt: clean.scannedAt)).statClean.contains(file))
        XCTAssertFalse(try scan(CleanScan(commit: edit, stats: clean.stats, scannedAt: st.mtimeNs + 50_000_000)).statClean.contains(file))

        // A write after the first scan is seen: commitUpdates refuses and leaves the ledger as it was.
        _ = try SimulatedEdit.rankOne(file: model + "/" + file, tensor: "model.layers.2.mlp.down_proj.weight", seed: 12)
        XCTAssertFalse(try scan(clean).statClean.contains(file))
        let log = try repo.ledger.head()
        XCTAssertThrowsError(try repo.commitUpdates([tensor: parent], options: CommitOptions(message: "x"), clean: clean, progress: .silent)) {
            guard case KitError.refused(let why) = $0 else { return XCTFail("\($0)") }
            XCTAssertEqual(why, Repository.uncommittedChanges)
        }
        XCTAssertEqual(try repo.ledger.head().commit, log.commit)

        // On a clean tree with a stale cache, revert goes through the vouched scan and restores
        // the edited tensor's bytes exactly.
        _ = try repo.checkout("HEAD", force: true)
        usleep(150_000)
        try repo.ledger.clearWorktreeStats()
        _ = try repo.revert(edit)
        XCTAssertTrue(try repo.status().clean)
        let weights = try ModelDirectory.scan(model).open()
        XCTAssertEqual(Array(try XCTUnwrap(weights.bytes(tensor))), parent)
    }
}
