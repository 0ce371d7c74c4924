import Foundation
import TensorIO
import TestSupport
import XCTest

/// A full disk during commit or checkout: a clear error, non-zero exit, and the ledger and work
/// tree exactly as they were. Needs permission to mount a small tmpfs (root); skipped otherwise.
final class DiskFullTests: XCTestCase {
    var mountPoint: String?

    override func tearDown() {
        if let m = mountPoint {
            _ = try? runProcess("/bin/umount", [m])
            try? FileManager.default.removeItem(atPath: m)
        }
    }

    func mountTmpfs(megabytes: Int) throws -> String {
        let dir = NSTemporaryDirectory() + "wledger-diskfull-\(getpid())-\(UUID().uuidString.prefix(6))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let r = try runProcess("/bin/mount", ["-t", "tmpfs", "-o", "size=\(megabytes)M", "tmpfs", dir])
        guard r.status == 0 else {
            try? FileManager.default.removeItem(atPath: dir)
            throw XCTSkip("cannot mount a tmpfs here (\(r.stderr.trimmingCharacters(in: .whitespacesAndNewlines))); disk-full tests need root")
        }
        mountPoint = dir
        return dir
    }

    /// Fills the filesystem holding `dir` until fewer than `leave` bytes are free.
    func fill(_ dir: String, leave: Int) throws {
        let fh = FileHandle(forWritingAtPath: dir + "/filler") ?? {
            FileManager.default.createFile(atPath: dir + "/filler", contents: nil)
            return FileHandle(forWritingAtPath: dir + "/filler")!
        }()
        defer { try? fh.close() }
        let chunk = Data(count: 1 << 20)
        while true {
            let attrs = try FileManager.default.attributesOfFileSystem(forPath: dir)
            let free = (attrs[.systemFreeSize] as? NSNumber)?.intValue ?? 0
            if free < leave { return }
            let n = min(chunk.count, max(4096, free - leave / 2))
            do { try fh.write(contentsOf: chunk.prefix(n)) } catch { return }
        }
    }

    /// One F32 tensor "w" of rows × 512 (1 MiB by default) and a config.json.
    func tinyModel(_ dir: String, rows: Int = 512) throws {
        var rng = SplitMix64(seed: 1)
        let values = (0..<(rows * 512)).map { _ in rng.nextGaussian() * 0.02 }
        let header = SafetensorsHeader.make(tensors: [("w", .f32, [rows, 512])])
        try Data(header.prefixBytes + values.withUnsafeBytes { Array($0) }).write(to: URL(fileURLWithPath: dir + "/model.safetensors"))
        try Data(#"{"architectures":["Tiny"]}"#.utf8).write(to: URL(fileURLWithPath: dir + "/config.json"))
    }

    func testCommitAndCheckoutOnAFullDiskLoseNothing() throws {
        let fs = try mountTmpfs(megabytes: 16)
        let model = fs + "/m"
        try FileManager.default.createDirectory(atPath: model, withIntermediateDirectories: true)
        try tinyModel(model)
        XCTAssertEqual(try CLI.run(["init", "-q", "-C", model]).status, 0)
        XCTAssertEqual(try CLI.run(["log", "-q", "-C", model]).status, 0)
        // A dense edit (every element) so the commit needs more space than is left.
        try SimulatedEdit.modify(file: model + "/model.safetensors", tensor: "w") { w, _ in
            var rng = SplitMix64(seed: 2)
            for i in 0..<w.count { w[i] += rng.nextGaussian() * 0.01 }
        }
        let before = try directoryDigest(model)
        try fill(fs, leave: 64 * 1024)
        let r = try CLI.run(["commit", "-C", model, "-m", "does not fit"])
        XCTAssertEqual(r.status, 2, r.stdout + r.stderr)
        XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("'\(model)/"), "names the file: \(r.stderr)")
        XCTAssertTrue(r.stderr.lowercased().contains("full") || r.stderr.contains("no space"), r.stderr)
        XCTAssertEqual(try directoryDigest(model), before, "a failed commit changed the ledger or work tree")
        // A checkout that writes the weight file anew (--no-in-place) needs a temporary copy of
        // it: it must fail the same way.
        let c = try CLI.run(["checkout", "-C", model, "--force", "--no-in-place", "base"])
        XCTAssertEqual(c.status, 2, c.stdout + c.stderr)
        XCTAssertEqual(c.stderr.split(separator: "\n").count, 1, c.stderr)
        XCTAssertTrue(c.stderr.contains("'\(model)/") && c.stderr.contains("no space left on device"), c.stderr)
        XCTAssertEqual(try directoryDigest(model), before, "a failed checkout changed the ledger or work tree")
        // With space again, the same commit succeeds and the ledger is sound.
        try FileManager.default.removeItem(atPath: fs + "/filler")
        XCTAssertEqual(try CLI.run(["commit", "-q", "-C", model, "-m", "fits now"]).status, 0)
        let fsck = try CLI.run(["fsck", "-C", model])
        XCTAssertEqual(fsck.status, 0, fsck.stdout + fsck.stderr)
        XCTAssertEqual(try CLI.run(["log", "--oneline", "-C", model]).stdout.split(separator: "\n").count, 2)
        // `checkout --output` of HEAD from a clean work tree copies the tensors inside the kernel
        // (copy_file_range): on a full disk that fails the same way, and with room it writes the
        // committed bytes.
        let clean = try directoryDigest(model)
        try fill(fs, leave: 64 * 1024)
        let o = try CLI.run(["checkout", "-C", model, "HEAD", "--output", fs + "/out"])
        XCTAssertEqual(o.status, 2, o.stdout + o.stderr)
        XCTAssertEqual(o.stderr.split(separator: "\n").count, 1, o.stderr)
        XCTAssertTrue(o.stderr.contains("'\(fs)/out/") && o.stderr.contains("no space left on device"), o.stderr)
        XCTAssertEqual(try directoryDigest(model), clean, "a failed checkout --output changed the ledger or work tree")
        XCTAssertFalse(FileManager.default.fileExists(atPath: fs + "/out"), "a failed --output leaves no directory it created")
        try FileManager.default.removeItem(atPath: fs + "/filler")
        XCTAssertEqual(try CLI.run(["checkout", "-q", "-C", model, "HEAD", "--output", fs + "/out"]).status, 0)
        XCTAssertEqual(try fileSHA256(fs + "/out/model.safetensors"), try fileSHA256(model + "/model.safetensors"))
    }

    /// `gc` on a full disk: the removal of a small edit (a small transaction) stands and the
    /// compaction, which needs a WAL as large as the ledger, fails with one line saying so; the ledger stays whole
    /// and the work tree untouched, and `gc` with room again compacts it.
    func testGCOnAFullDiskRemovesAndSaysTheCompactionFailed() throws {
        let fs = try mountTmpfs(megabytes: 16)
        let model = fs + "/m"
        try FileManager.default.createDirectory(atPath: model, withIntermediateDirectories: true)
        // 4 MiB of weights: compacting the ledger needs several MiB of WAL, removing a small
        // commit about one MiB (a 64 KiB page of each table it touches).
        try tinyModel(model, rows: 2048)
        func wl(_ args: [String]) throws -> ProcessOutput { try CLI.run(args + ["-C", model]) }
        XCTAssertEqual(try wl(["init", "-q"]).status, 0)
        XCTAssertEqual(try wl(["checkout", "-q", "-b", "side"]).status, 0)
        _ = try SimulatedEdit.columns(file: model + "/model.safetensors", tensor: "w", seed: 3, count: 8)
        XCTAssertEqual(try wl(["commit", "-q", "-m", "eight columns"]).status, 0)
        XCTAssertEqual(try wl(["checkout", "-q", "main"]).status, 0)
        XCTAssertEqual(try wl(["branch", "-q", "-D", "side"]).status, 0)
        let tree = try directoryDigest(model).filter { !$0.key.hasPrefix(".wledger/") }
        let ledgerSize = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: model + "/.wledger/ledger")[.size] as? Int)
        try fill(fs, leave: 2816 * 1024)   // removing needs < 1.8 MiB, compacting > 4 MiB
        let r = try wl(["gc", "--expire-unreachable"])
        XCTAssertEqual(r.status, 1, r.stdout + r.stderr)
        XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
        XCTAssertTrue(r.stderr.hasPrefix("error: removed 1 commit(s) and 1 object(s), but compacting '\(model)/.wledger/ledger' failed: no space left on device"), r.stderr)
        XCTAssertEqual(try directoryDigest(model).filter { !$0.key.hasPrefix(".wledger/") }, tree)
        XCTAssertEqual(try wl(["fsck", "-q"]).status, 0)
        let counts = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(try wl(["fsck", "--json"]).stdout.utf8)) as? [String: Any])
        XCTAssertEqual(counts["commits"] as? Int, 1, "the removal stands")
        try FileManager.default.removeItem(atPath: fs + "/filler")
        let again = try wl(["gc", "--json"])
        XCTAssertEqual(again.status, 0, again.stderr)
        let o = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(again.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(o["removedCommits"] as? [String], [])
        XCTAssertLessThan(try XCTUnwrap(o["ledgerBytesAfter"] as? Int), ledgerSize, "compacted now")
        XCTAssertEqual(try wl(["fsck", "-q", "--full"]).status, 0)
    }
}
