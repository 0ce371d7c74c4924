import Foundation
import TestSupport
import XCTest

/// `wledger gc` on the real SmolLM2 BF16: commits a deleted branch left behind stay while the
/// reflog names them and go with `--expire-unreachable`, with the tensor versions and objects
/// only they used; a version a kept commit shares with a removed one (the same edit made twice)
/// stays; every kept commit still checks out byte for byte, `fsck --full` passes, the ledger file
/// shrinks by what was removed, and the work tree is never touched. `--dry-run` changes nothing.
final class GCTests: XCTestCase {
    func testGCRemovesWhatNothingReachesAndKeepsEveryReachableCommitExact() throws {
        let tmp = try TemporaryDirectory("gc")
        let dir = (try tmp.copyModel(from: try Fixtures.smolLM2("bf16")) as NSString).standardizingPath
        let weights = dir + "/model.safetensors"
        func wl(_ args: [String]) throws -> ProcessOutput { try CLI.run(args, in: dir) }
        func files() throws -> [String: String] { try directoryDigest(dir).filter { !$0.key.hasPrefix(".wledger/") } }
        func json(_ args: [String]) throws -> [String: Any] {
            let r = try wl(args)
            XCTAssertEqual(r.status, 0, r.stderr)
            return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], r.stdout)
        }
        func commitID(_ rev: String) throws -> String { try XCTUnwrap(try json(["show", rev, "--json"])["id"] as? String) }
        /// The ledger and its WAL (the lock file records each writer's pid).
        func ledgerDigest() throws -> [String: String] {
            try directoryDigest(dir + "/.wledger").filter { $0.key.hasPrefix("ledger") }
        }
        func fsckCounts() throws -> (objects: Int, versions: Int, commits: Int) {
            let o = try json(["fsck", "--json"])
            XCTAssertEqual(o["problems"] as? [String], [])
            return (try XCTUnwrap(o["objects"] as? Int), try XCTUnwrap(o["tensorVersions"] as? Int), try XCTUnwrap(o["commits"] as? Int))
        }

        // main: base, one, two. side (from two): s1 (rank one), s2 (dense noise on a whole matrix).
        XCTAssertEqual(try wl(["init", "-q"]).status, 0)
        var kept: [String: [String: String]] = [try commitID("HEAD"): try files()]
        _ = try SimulatedEdit.rankOne(file: weights, tensor: "model.layers.4.mlp.down_proj.weight", seed: 1)
        XCTAssertEqual(try wl(["commit", "-q", "-m", "one"]).status, 0)
        kept[try commitID("HEAD")] = try files()
        _ = try SimulatedEdit.rankOne(file: weights, tensor: "model.layers.9.mlp.down_proj.weight", seed: 2)
        XCTAssertEqual(try wl(["commit", "-q", "-m", "two"]).status, 0)
        kept[try commitID("HEAD")] = try files()
        XCTAssertEqual(try wl(["checkout", "-q", "-b", "side"]).status, 0)
        _ = try SimulatedEdit.rankOne(file: weights, tensor: "model.layers.12.mlp.down_proj.weight", seed: 3)
        XCTAssertEqual(try wl(["commit", "-q", "-m", "s1"]).status, 0)
        let s1 = try commitID("HEAD")
        _ = try SimulatedEdit.modify(file: weights, tensor: "model.layers.20.mlp.up_proj.weight") { w, _ in
            var rng = SplitMix64(seed: 4)
            for i in w.indices { w[i] += Float(Double(rng.next() >> 11) / Double(1 << 53) - 0.5) * 0.02 }
        }
        XCTAssertEqual(try wl(["commit", "-q", "-m", "s2"]).status, 0)
        let s2 = try commitID("HEAD"), s2Files = try files()
        let s2Tensors = try XCTUnwrap(try json(["show", "HEAD", "--json"])["tensors"] as? [[String: Any]])
        let s2Stored = s2Tensors.reduce(0) { $0 + (($1["storedBytes"] as? Int) ?? 0) }
        XCTAssertGreaterThan(s2Stored, 1 << 19, "the dense edit stores over 512 KiB")
        // s1's edit made again on main (same bytes from the same parent, no link between the two):
        // main's commit stores no new version but names s1's, which gc must keep when s1 goes.
        XCTAssertEqual(try wl(["checkout", "-q", "main"]).status, 0)
        _ = try SimulatedEdit.rankOne(file: weights, tensor: "model.layers.12.mlp.down_proj.weight", seed: 3)
        let committedAgain = try XCTUnwrap(try json(["commit", "-q", "-m", "s1 again", "--json"])["tensors"] as? [[String: Any]])
        XCTAssertEqual(committedAgain.map { $0["encoding"] as? String }, ["existing"], "s1's version, stored before")
        XCTAssertEqual(committedAgain.map { $0["storedBytes"] as? Int }, [0])
        let again = try commitID("HEAD")
        kept[again] = try files()
        let againTensors = try XCTUnwrap(try json(["show", "HEAD", "--json"])["tensors"] as? [[String: Any]])
        XCTAssertEqual(againTensors.map { $0["storedBytes"] as? Int }, [0], "the version is s1's")
        XCTAssertEqual(try wl(["tag", "again"]).status, 0, "two refs on one commit")
        /// `log --all --json` (with `extra` arguments): the commit ids, newest first.
        func logAll(_ extra: [String] = []) throws -> [String] {
            let r = try wl(["log", "--all", "--json"] + extra)
            XCTAssertEqual(r.status, 0, r.stderr)
            let list = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]])
            let dates = list.compactMap { $0["time"] as? Int }
            XCTAssertEqual(dates, dates.sorted(by: >), "newest first")
            let ids = list.compactMap { $0["id"] as? String }
            XCTAssertEqual(ids.count, Set(ids).count, "each commit once")
            return ids
        }
        XCTAssertEqual(Set(try logAll()), Set(kept.keys).union([s1, s2]), "every branch and tag")
        var r = try wl(["branch", "-d", "side"])
        XCTAssertEqual(r.status, 1, "side is not merged into main")
        XCTAssertTrue(r.stderr.contains("not fully merged"), r.stderr)
        XCTAssertEqual(try logAll(["-n", "2"]).count, 2)
        r = try wl(["log", "--all", "--max-count=-1"])
        XCTAssertEqual(r.status, 2, r.stderr)
        XCTAssertTrue(r.stderr.contains("-n must be 0 or more"), r.stderr)
        r = try wl(["branch", "-D", "side", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let deleted = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: String])
        XCTAssertEqual(deleted, ["deleted": "side", "kind": "branch", "commit": s2], "names the commit it pointed to")
        XCTAssertEqual(Set(try logAll()), Set(kept.keys), "side's commits are on no ref now")
        XCTAssertEqual(Set(try logAll([s2])), Set(kept.keys).union([s1, s2]), "and a revision adds its history")
        r = try wl(["log", "--all", "main..HEAD"])
        XCTAssertEqual(r.status, 2, r.stderr)
        XCTAssertTrue(r.stderr.contains("--all takes revisions, not ranges"), r.stderr)
        let tree = try files()
        let before = try fsckCounts()
        XCTAssertEqual(before.commits, 6)

        // The reflog still names s1 and s2: gc keeps them, and a dry run changes nothing.
        var ledgerBefore = try ledgerDigest()
        var o = try json(["gc", "--dry-run", "--json"])
        XCTAssertEqual(o["removedCommits"] as? [String], [])
        XCTAssertEqual(o["keptUnreachableCommits"] as? Int, 2)
        XCTAssertEqual(try ledgerDigest(), ledgerBefore)
        o = try json(["gc", "--json"])
        XCTAssertEqual(o["removedCommits"] as? [String], [])
        XCTAssertEqual(o["removedObjects"] as? Int, 0)
        XCTAssertEqual(try commitID("HEAD@{2}"), s2, "HEAD@{2} is where HEAD was before 'checkout main'")
        XCTAssertEqual(try wl(["checkout", "-q", "--output", tmp.path + "/s2", "HEAD@{2}"]).status, 0)
        XCTAssertEqual(try directoryDigest(tmp.path + "/s2"), s2Files)

        // --expire-unreachable: s1 and s2 go (dry run first, then for real).
        ledgerBefore = try ledgerDigest()
        o = try json(["gc", "--expire-unreachable", "--dry-run", "--json"])
        XCTAssertEqual(o["removedCommits"] as? [String], [s1, s2], "oldest first")
        XCTAssertEqual(try ledgerDigest(), ledgerBefore)
        let planned = o
        o = try json(["gc", "--expire-unreachable", "--json"])
        for key in ["removedCommits", "removedTensorVersions", "removedObjects", "removedStoredBytes", "removedReflogEntries"] {
            XCTAssertEqual(o[key] as? NSObject, planned[key] as? NSObject, key)
        }
        let after = try fsckCounts()
        XCTAssertEqual(after.commits, 4)
        // s2's dense version goes; s1's stays (main's commit names it), as does its object.
        XCTAssertEqual(o["removedTensorVersions"] as? Int, 1)
        XCTAssertEqual(before.versions - after.versions, 1)
        XCTAssertEqual(before.objects - after.objects, o["removedObjects"] as? Int)
        XCTAssertEqual(o["removedStoredBytes"] as? Int, s2Stored, "the object of s2's only version")
        // The entries of the moves to s1 and s2 (HEAD's commits there) are gone; the move away
        // from s2 stays without its old value.
        XCTAssertEqual(o["removedReflogEntries"] as? Int, 2)
        let log = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(try wl(["reflog", "--json"]).stdout.utf8)) as? [[String: Any]])
        XCTAssertFalse(log.contains { [s1, s2].contains($0["commit"] as? String) || [s1, s2].contains($0["previous"] as? String) }, "\(log)")
        XCTAssertEqual(log.first?["message"] as? String, "commit: s1 again")
        let shrunk = try XCTUnwrap(o["ledgerBytesBefore"] as? Int) - (try XCTUnwrap(o["ledgerBytesAfter"] as? Int))
        XCTAssertGreaterThanOrEqual(shrunk, s2Stored / 2, "the ledger file gives back the removed object's pages")
        r = try wl(["show", String(s2.prefix(12))])
        XCTAssertEqual(r.status, 2, r.stderr)
        XCTAssertTrue(r.stderr.contains("unknown revision"), r.stderr)

        // Nothing else changed: the work tree, every kept commit's bytes, the ledger's integrity.
        XCTAssertEqual(try files(), tree)
        XCTAssertEqual(try wl(["status", "-s"]).stdout, "")
        XCTAssertEqual(try json(["fsck", "--full", "--json"])["problems"] as? [String], [])
        for (id, digest) in kept {
            let out = tmp.path + "/out-" + id.prefix(12)
            XCTAssertEqual(try wl(["checkout", "-q", "--output", out, id]).status, 0)
            XCTAssertEqual(try directoryDigest(out), digest, id)
        }
        // A second gc finds nothing, and the ledger still takes commits.
        o = try json(["gc", "--expire-unreachable", "--json"])
        XCTAssertEqual(o["removedCommits"] as? [String], [])
        XCTAssertEqual(o["removedObjects"] as? Int, 0)
        XCTAssertEqual(o["ledgerBytesAfter"] as? Int, o["ledgerBytesBefore"] as? Int)
        _ = try SimulatedEdit.rankOne(file: weights, tensor: "model.layers.2.mlp.down_proj.weight", seed: 5)
        XCTAssertEqual(try wl(["commit", "-q", "-m", "after gc"]).status, 0)
        XCTAssertEqual(try fsckCounts().commits, 5)
        // Neither -d nor -D deletes the branch a running bisect returns to (HEAD is detached then).
        XCTAssertEqual(try wl(["bisect", "start", "-q", "HEAD", "base"]).status, 0)
        r = try wl(["branch", "-D", "main"])
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("a bisect started on it returns there"), r.stderr)
        XCTAssertEqual(try wl(["bisect", "reset", "-q"]).status, 0)
        XCTAssertEqual(try wl(["status", "-s", "-b"]).stdout, "## main\n")
    }

    /// Reflog expiry by age, as git's `gc.reflogExpire` (90 days) and `gc.reflogExpireUnreachable`
    /// (30 days), entries back-dated in the ledger (they record the clock's time, not a pinned
    /// $WLEDGER_TIME). A deleted branch's commits stay while a recent entry names them and go with
    /// plain gc once it is a month old; reachable commits only lose their old entries.
    func testReflogEntriesExpireByAgeAndGCThenRemovesWhatOnlyTheyKept() throws {
        let tmp = try TemporaryDirectory("gc-expire")
        let dir = (try tmp.copyModel(from: try Fixtures.smolLM2("bf16")) as NSString).standardizingPath
        let weights = dir + "/model.safetensors"
        let day = 86400
        func wl(_ args: [String]) throws -> ProcessOutput { try CLI.run(args, in: dir) }
        func ok(_ args: [String]) throws {
            let r = try wl(args)
            XCTAssertEqual(r.status, 0, "\(args): \(r.stderr)")
        }
        func json(_ args: [String]) throws -> [String: Any] {
            let r = try wl(args)
            XCTAssertEqual(r.status, 0, r.stderr)
            return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], r.stdout)
        }
        /// Moves the reflog entries with `message` (or all) `days` back in time, in the ledger.
        func backdate(_ days: Int, _ message: String? = nil) throws {
            let py = try runProcess("/usr/bin/env", ["python3", "-c", """
                import sqlite3, sys
                db = sqlite3.connect(sys.argv[1])
                n = db.execute("UPDATE reflog SET time = time - ? WHERE ? = '' OR message = ?", (int(sys.argv[2]), sys.argv[3], sys.argv[3])).rowcount
                db.commit()
                assert n > 0, n
                """, dir + "/.wledger/ledger", String(days * day), message ?? ""])
            XCTAssertEqual(py.status, 0, py.stderr)
        }
        func reflog(_ ref: String = "HEAD") throws -> [[String: Any]] {
            try XCTUnwrap(JSONSerialization.jsonObject(with: Data(try wl(["reflog", ref, "--json"]).stdout.utf8)) as? [[String: Any]])
        }
        func commitID(_ rev: String) throws -> String { try XCTUnwrap(try json(["show", rev, "--json"])["id"] as? String) }
        func files() throws -> [String: String] { try directoryDigest(dir).filter { !$0.key.hasPrefix(".wledger/") } }
        func ledgerDigest() throws -> [String: String] { try directoryDigest(dir + "/.wledger").filter { $0.key.hasPrefix("ledger") } }

        // HEAD's log, oldest first: init (200 days ago), commit m1 (100), checkout -b side (100),
        // commit s1 (100), commit s2 (10), checkout main (10), commit m2 (5); then side is deleted.
        // A pinned $WLEDGER_TIME (a past commit time) does not date them.
        try ok(["init", "-q"])
        var kept: [String: [String: String]] = [try commitID("HEAD"): try files()]
        _ = try SimulatedEdit.rankOne(file: weights, tensor: "model.layers.3.mlp.down_proj.weight", seed: 11)
        XCTAssertEqual(try CLI.run(["commit", "-q", "-m", "m1"], in: dir, environment: ["WLEDGER_TIME": "1000000000"]).status, 0)
        kept[try commitID("HEAD")] = try files()
        try ok(["checkout", "-q", "-b", "side"])
        _ = try SimulatedEdit.rankOne(file: weights, tensor: "model.layers.7.mlp.down_proj.weight", seed: 12)
        try ok(["commit", "-q", "-m", "s1"])
        let s1 = try commitID("HEAD")
        _ = try SimulatedEdit.rankOne(file: weights, tensor: "model.layers.8.mlp.down_proj.weight", seed: 13)
        try ok(["commit", "-q", "-m", "s2"])
        let s2 = try commitID("HEAD")
        try ok(["checkout", "-q", "main"])
        _ = try SimulatedEdit.rankOne(file: weights, tensor: "model.layers.9.mlp.down_proj.weight", seed: 14)
        try ok(["commit", "-q", "-m", "m2"])
        kept[try commitID("HEAD")] = try files()
        try ok(["branch", "-q", "-D", "side"])
        XCTAssertEqual(try json(["gc", "--dry-run", "--json"])["removedReflogEntries"] as? Int, 0, "every entry is recent")
        for (days, message) in [(200, "commit (initial): base"), (100, "commit: m1"), (100, "checkout: moving from main to side"),
                                (100, "commit: s1"), (10, "commit: s2"), (10, "checkout: moving from side to main"), (5, "commit: m2")] {
            try backdate(days, message)
        }
        let now = Int(Date().timeIntervalSince1970)
        let head = try reflog()
        XCTAssertEqual(head.count, 7)
        let dates = try head.map { try XCTUnwrap(ISO8601DateFormatter().date(from: try XCTUnwrap($0["date"] as? String))) }
        XCTAssertEqual(dates.map { (now - Int($0.timeIntervalSince1970) + day / 2) / day }, [5, 10, 10, 100, 100, 100, 200])
        XCTAssertEqual(try reflog("main").count, 3, "init, m1, m2")

        // Plain gc with the defaults: the six entries older than 90 days go (four of HEAD's, two
        // of main's; s1's among them, as it is older than 30 days too); s2's entry is 10 days old,
        // so s2 and its parent s1 stay. The dry run and 'reflog expire' plan the same.
        let ledgerBefore = try ledgerDigest()
        let plan = try json(["reflog", "expire", "--all", "--dry-run", "--json"])
        let dropped = try XCTUnwrap(plan["dropped"] as? [[String: Any]])
        XCTAssertEqual(dropped.map { "\($0["ref"] ?? "-") \($0["message"] ?? "-")" },
                       ["main commit (initial): base", "HEAD commit (initial): base", "main commit: m1", "HEAD commit: m1",
                        "HEAD checkout: moving from main to side", "HEAD commit: s1"], "the old entries, oldest first")
        var o = try json(["gc", "--dry-run", "--json"])
        XCTAssertEqual(o["removedReflogEntries"] as? Int, 6)
        XCTAssertEqual(o["removedCommits"] as? [String], [])
        XCTAssertEqual(try ledgerDigest(), ledgerBefore, "dry runs change nothing")
        // Config: never expiring old entries leaves only s1's (older than 30 days, on no ref).
        try ok(["config", "set", "gc.reflogExpire", "never"])
        o = try json(["gc", "--dry-run", "--json"])
        XCTAssertEqual(o["removedReflogEntries"] as? Int, 1)
        XCTAssertEqual(o["reflogExpire"] as? String, "never")
        try ok(["config", "set", "gc.reflogExpireUnreachable", "never"])
        XCTAssertEqual(try json(["gc", "--dry-run", "--json"])["removedReflogEntries"] as? Int, 0)
        // Bad times: one line naming the option or the config file, nothing changed.
        var r = try wl(["config", "set", "gc.reflogExpire", "soon"])
        XCTAssertEqual(r.status, 2, r.stderr)
        XCTAssertTrue(r.stderr.contains("'gc.reflogExpire' must be a time"), r.stderr)
        try ok(["config", "unset", "gc.reflogExpire"])
        try ok(["config", "unset", "gc.reflogExpireUnreachable"])
        let config = dir + "/.wledger/config"
        let configText = try String(contentsOfFile: config, encoding: .utf8)
        try (configText + "[gc]\n\treflogExpireUnreachable = 3.fortnights\n").write(toFile: config, atomically: true, encoding: .utf8)
        r = try wl(["gc"])
        XCTAssertEqual(r.status, 2, r.stderr)
        XCTAssertTrue(r.stderr.hasPrefix("error: '\(config)': 'gc.reflogExpireUnreachable' must be a time"), r.stderr)
        XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
        try configText.write(toFile: config, atomically: true, encoding: .utf8)
        for bad in [["reflog", "expire", "--all", "--expire", "yesterdayish"], ["reflog", "expire", "--all", "--expire=--"], ["reflog", "expire"], ["reflog", "expire", "--all", "HEAD"],
                    ["reflog", "expire", "stash"], ["reflog", "expire", "nosuchbranch"]] {
            r = try wl(bad)
            XCTAssertEqual(r.status, 2, "\(bad): \(r.stderr)")
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
        }
        XCTAssertEqual(try ledgerDigest(), ledgerBefore, "refused commands change nothing")

        // 'reflog expire' of main's log alone, then plain gc for the rest.
        o = try json(["reflog", "expire", "main", "--json"])
        XCTAssertEqual((o["dropped"] as? [[String: Any]])?.map { $0["message"] as? String }, ["commit (initial): base", "commit: m1"])
        XCTAssertEqual(try reflog("main").count, 1)
        o = try json(["gc", "--json"])
        XCTAssertEqual(o["removedReflogEntries"] as? Int, 4)
        XCTAssertEqual(o["removedCommits"] as? [String], [])
        XCTAssertEqual(try reflog().count, 3)
        XCTAssertEqual(try commitID("HEAD@{2}"), s2, "s2's entry is kept")

        // 25 days on, s2's entry is 35 days old and names a commit no ref reaches: it goes, the
        // move from s2 to main forgets s2, and gc removes s2 and s1 with what only they stored.
        try backdate(25)
        let later = try XCTUnwrap(try json(["reflog", "expire", "--all", "-n", "--json"])["dropped"] as? [[String: Any]])
        XCTAssertEqual(later.map { $0["commit"] as? String }, [s2])
        o = try json(["gc", "--json"])
        XCTAssertEqual(o["removedReflogEntries"] as? Int, 1)
        XCTAssertEqual(o["removedCommits"] as? [String], [s1, s2])
        XCTAssertEqual(o["removedTensorVersions"] as? Int, 2)
        let left = try reflog()
        XCTAssertEqual(left.map { $0["message"] as? String }, ["commit: m2", "checkout: moving from side to main"])
        XCTAssertNil(left[1]["previous"], "the move away from s2 forgets it")
        XCTAssertEqual(try json(["fsck", "--full", "--json"])["problems"] as? [String], [])
        XCTAssertEqual(try wl(["status", "-s"]).stdout, "")
        for (id, digest) in kept {
            let out = tmp.path + "/out-" + id.prefix(12)
            try ok(["checkout", "-q", "--output", out, id])
            XCTAssertEqual(try directoryDigest(out), digest, id)
        }
        // --expire=now empties the logs; the commits stay (refs reach them).
        o = try json(["reflog", "expire", "--all", "--expire=now", "--json"])
        XCTAssertEqual((o["dropped"] as? [[String: Any]])?.count, 3)
        XCTAssertEqual(try reflog().count, 0)
        XCTAssertEqual(try json(["gc", "--json"])["removedCommits"] as? [String], [])
        XCTAssertEqual(Set(try XCTUnwrap((try wl(["log", "--all", "--json"]).stdout.data(using: .utf8)).flatMap {
            try JSONSerialization.jsonObject(with: $0) as? [[String: Any]] }).compactMap { $0["id"] as? String }), Set(kept.keys))
    }
}
