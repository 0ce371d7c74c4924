import Codec
import CSQLite
import Foundation
@testable import Ledger
import TensorIO
import TestSupport
import XCTest

final class LedgerTests: XCTestCase {
    /// SQLite's "attempt to write a readonly database" names the ledger and what to check, as a
    /// full disk does (a read-only -shm file left by a read of a read-only ledger is one cause);
    /// a ledger moved or deleted while open (READONLY_DBMOVED) is not a permission problem.
    func testReadOnlyAndFullFailuresNameTheLedger() throws {
        for rc in [SQLITE_READONLY, SQLITE_READONLY | (6 << 8)] {   // plain, READONLY_DIRECTORY
            let readOnly = Database.failure(rc, "attempt to write a readonly database", "BEGIN IMMEDIATE", path: "/m/.wledger/ledger")
            guard case .readOnly(path: "/m/.wledger/ledger", reason: nil) = readOnly else { return XCTFail("\(readOnly)") }
            XCTAssertEqual(readOnly.description, "cannot write the ledger '/m/.wledger/ledger': it, its -wal or -shm file, or its directory is read-only "
                           + "(check their permissions and owner)")
        }
        guard case .sqlite = Database.failure(SQLITE_READONLY | (4 << 8), "attempt to write a readonly database", nil, path: "p") else { return XCTFail() }
        guard case .diskFull = Database.failure(SQLITE_FULL, "database or disk is full", nil, path: "/m/.wledger/ledger") else { return XCTFail() }
        guard case .sqlite(code: SQLITE_BUSY, _, _) = Database.failure(SQLITE_BUSY, "busy", nil, path: "p") else { return XCTFail() }
    }

    /// The migrations embedded in the binary are exactly the files in schema/.
    func testEmbeddedSchemaMatchesSchemaDirectory() throws {
        let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        let files = try FileManager.default.contentsOfDirectory(atPath: repoRoot + "/schema").filter { $0.hasSuffix(".sql") }.sorted()
        XCTAssertFalse(files.isEmpty)
        let generated = try String(contentsOfFile: repoRoot + "/Sources/Ledger/SchemaMigrations+Generated.swift", encoding: .utf8)
        for f in files {
            let sql = try String(contentsOfFile: repoRoot + "/schema/" + f, encoding: .utf8)
            XCTAssertTrue(generated.contains("\"\(f)\", #\"\"\"\n" + sql + "\"\"\"#"), "\(f) is not embedded verbatim: run scripts/gen-schema.sh")
        }
        XCTAssertEqual(SchemaMigrations.latestVersion, files.count)
    }

    /// A ledger of schema 3 (made here by undoing migration 4 on a new one, with a version row
    /// written the way the older binary did) opens migrated: the version reads back with no
    /// probe, and new versions store theirs.
    func testSchema3LedgerGainsProbeColumn() throws {
        let dir = try TemporaryDirectory("ledger-migrate")
        let path = dir.path + "/ledger"
        do {
            let ledger = try Ledger.create(at: path)
            XCTAssertEqual(try ledger.schemaVersion(), SchemaMigrations.latestVersion)
            try ledger.db.execute("DROP TABLE reflog")
            try ledger.db.execute("ALTER TABLE tensorVersion DROP COLUMN probe")
            try ledger.db.execute("PRAGMA user_version = 3")
            let obj = try [UInt8](repeating: 7, count: 64).withUnsafeBytes { try PreparedObject.encode($0, elementSize: 4, compress: true) }
            try ledger.transaction {
                _ = try ledger.insert(obj)
                try ledger.db.run("INSERT INTO tensorVersion(hash, fingerprint, byteCount, elementSize, base, object, encoding, depth) VALUES(?, ?, 64, 4, NULL, ?, 'keyframe', 0)",
                                  [.text(obj.id), .text(String(repeating: "0", count: 32)), .text(obj.id)])
            }
        }
        let ledger = try Ledger.open(at: path)
        XCTAssertEqual(try ledger.schemaVersion(), SchemaMigrations.latestVersion)
        let old = try XCTUnwrap(try ledger.allVersions().first)
        XCTAssertNil(old.probe)
        var v = old
        v.hash = String(repeating: "a", count: 64)
        v.probe = -42
        try ledger.transaction { try ledger.insert(v) }
        XCTAssertEqual(try ledger.version(v.hash)?.probe, -42)
    }

    /// A ledger of schema 4 with a branch and HEAD (made by undoing migration 5 on a new one)
    /// opens migrated with an empty reflog, and logs the moves after that.
    func testSchema4LedgerGainsEmptyReflog() throws {
        let dir = try TemporaryDirectory("ledger-migrate-reflog")
        let path = dir.path + "/ledger"
        let tree = String(repeating: "b", count: 64)
        let (a, b) = Self.baseAndChildIDs(tree: tree)
        do {
            let ledger = try Ledger.create(at: path)
            try ledger.db.execute("DROP TABLE reflog")
            try ledger.db.execute("PRAGMA user_version = 4")
            try ledger.transaction {
                try insertBaseAndChild(a, b, tree: tree, into: ledger)
            }
        }
        let ledger = try Ledger.open(at: path)
        XCTAssertEqual(try ledger.schemaVersion(), SchemaMigrations.latestVersion)
        XCTAssertEqual(try ledger.reflog("HEAD"), [])
        XCTAssertEqual(try ledger.head(), .branch(name: "main", commit: a))
        try ledger.transaction { try ledger.advanceHead(from: a, to: b, message: "commit: b") }
        XCTAssertEqual(try ledger.reflog("HEAD").map(\.old), [a])
        XCTAssertEqual(try ledger.reflog("refs/heads/main").map(\.new), [b])
    }

    /// A ledger of schema 5 (its reflog rebuilt with migration 5's CHECK, which has no room for
    /// the stash) opens migrated: the reflog rows keep their order, and the stash takes entries.
    func testSchema5LedgerKeepsItsReflogAndTakesTheStash() throws {
        let dir = try TemporaryDirectory("ledger-migrate-stash")
        let path = dir.path + "/ledger"
        let tree = String(repeating: "d", count: 64)
        let (a, b) = Self.baseAndChildIDs(tree: tree)
        do {
            let ledger = try Ledger.create(at: path)
            let v5 = try XCTUnwrap(SchemaMigrations.embedded.first { $0.version == 5 }?.sql)
            try ledger.db.execute("DROP TABLE reflog")
            try ledger.db.execute(v5)
            try ledger.db.execute("PRAGMA user_version = 5")
            try ledger.transaction {
                try insertBaseAndChild(a, b, tree: tree, into: ledger)
                try ledger.advanceHead(from: a, to: b, message: "commit: b")
            }
            XCTAssertThrowsError(try ledger.transaction { try ledger.pushStash(b, message: "WIP") }, "schema 5 has no stash")
        }
        let ledger = try Ledger.open(at: path)
        XCTAssertEqual(try ledger.schemaVersion(), SchemaMigrations.latestVersion)
        XCTAssertEqual(try ledger.reflog("HEAD").map(\.new), [b])
        XCTAssertEqual(try ledger.reflog("refs/heads/main").map(\.old), [a])
        try ledger.transaction { try ledger.pushStash(a, message: "one"); try ledger.pushStash(b, message: "two") }
        XCTAssertEqual(try ledger.reflog(Ledger.stashLog).map(\.message), ["two", "one"])
        XCTAssertEqual(try ledger.reflog(Ledger.stashLog).map(\.old), [a, nil])
        XCTAssertTrue(try ledger.transaction { try ledger.dropStash(1) })
        XCTAssertEqual(try ledger.reflog(Ledger.stashLog).map(\.message), ["two"])
        XCTAssertFalse(try ledger.transaction { try ledger.dropStash(1) })
        XCTAssertEqual(try ledger.transaction { try ledger.clearStash() }, 1)
        XCTAssertEqual(try ledger.integrityCheck(), [])
    }

    /// Garbage collection's roots beyond the refs (two of them on one commit): a bisect mark, an
    /// extra id (`checkout -`'s detached commit) and the cherry-pick, prune and revert links of a kept
    /// commit keep their commits, and a meta value keeps the object it names (the
    /// editors' key statistics); a commit nothing names and an object nothing refers to go, in a
    /// dry run only counted.
    func testGarbageCollectionKeepsEveryRootAndMetaObjects() throws {
        let (_, ledger) = try makeLedger()
        let tree = String(repeating: "c", count: 64)
        let a = CommitRecord.computeID(parent: nil, kind: .base, message: "a", author: "t", time: 1, method: nil, request: nil, parameters: nil, tree: tree)
        var children: [String] = []
        try ledger.transaction {
            try ledger.insert(CommitRecord(id: a, parent: nil, generation: 0, kind: .base, message: "a", author: "t", time: 1, method: nil,
                                           request: nil, parameters: nil, tree: tree, fullManifest: true), tensors: [], files: [])
            for m in ["b", "c", "d", "e"] {
                let id = CommitRecord.computeID(parent: a, kind: .edit, message: m, author: "t", time: 2, method: nil, request: nil, parameters: nil, tree: tree)
                try ledger.insert(CommitRecord(id: id, parent: a, generation: 1, kind: .edit, message: m, author: "t", time: 2, method: nil,
                                               request: nil, parameters: nil, tree: tree, fullManifest: false), tensors: [], files: [])
                children.append(id)
            }
            try ledger.db.run("INSERT INTO ref(name, target) VALUES('refs/heads/main', ?)", [.text(children[0])])
            try ledger.db.run("INSERT INTO ref(name, target) VALUES('refs/tags/same', ?)", [.text(children[0])])
            try ledger.db.run("INSERT INTO ref(name, symbolic) VALUES('HEAD', 'refs/heads/main')", [])
            try ledger.addBisectMark(.bad, children[1])
            // A tagged pick of a prune of a revert of i: the chain of links keeps h, g and i.
            var link: String? = nil
            for m in ["i", "g", "h", "f"] {
                let key = ["g": "reverts", "h": "prunes"][m] ?? "cherryPickedFrom"
                let params = link.map { "{\"\(key)\":\"\($0)\"}" }
                let id = CommitRecord.computeID(parent: a, kind: .edit, message: m, author: "t", time: 3, method: nil, request: nil, parameters: params, tree: tree)
                try ledger.insert(CommitRecord(id: id, parent: a, generation: 1, kind: .edit, message: m, author: "t", time: 3, method: nil,
                                               request: nil, parameters: params, tree: tree, fullManifest: false), tensors: [], files: [])
                link = id
            }
            try ledger.db.run("INSERT INTO ref(name, target) VALUES('refs/tags/picked', ?)", [.text(link!)])
        }
        let (b, c, d, e) = (children[0], children[1], children[2], children[3])
        let named = try [UInt8](repeating: 1, count: 4096).withUnsafeBytes { try PreparedObject.encode($0, elementSize: 4, compress: true) }
        let orphan = try [UInt8](repeating: 2, count: 4096).withUnsafeBytes { try PreparedObject.encode($0, elementSize: 4, compress: true) }
        try ledger.transaction {
            _ = try ledger.insert(named)
            _ = try ledger.insert(orphan)
            try ledger.setMeta("mom2/x/layer3/y/1000", "\(named.id) 1000")
        }
        let plan = try ledger.collectGarbage(otherRoots: [d], expiry: .never, dryRun: true)
        XCTAssertEqual(plan.commits, [e])
        XCTAssertEqual(plan.objects, 1)
        XCTAssertEqual(plan.storedBytes, try ledger.storedSize(of: orphan.id))
        XCTAssertEqual(plan.keptByReflog, 4, "d (extra root), and h, g, i (links of the tagged f: cherry-pick, prune, revert); c is a bisect mark, reached as a ref")
        XCTAssertTrue(try ledger.hasObject(orphan.id), "a dry run removes nothing")
        XCTAssertNotNil(try ledger.commit(e))
        XCTAssertEqual(try ledger.collectGarbage(otherRoots: [d], expiry: .never, dryRun: false), plan)
        XCTAssertNil(try ledger.commit(e))
        for id in [a, b, c, d] { XCTAssertNotNil(try ledger.commit(id), id) }
        XCTAssertTrue(try ledger.hasObject(named.id))
        XCTAssertFalse(try ledger.hasObject(orphan.id))
        XCTAssertEqual(try ledger.integrityCheck(), [])
        // Without the extra root, d goes next.
        XCTAssertEqual(try ledger.collectGarbage(otherRoots: [], expiry: ReflogExpiry(before: nil, unreachableBefore: .max), dryRun: false).commits, [d])
    }

    /// Ids of a base commit "a" and its child "b" with an empty manifest of `tree`.
    static func baseAndChildIDs(tree: String) -> (String, String) {
        let a = CommitRecord.computeID(parent: nil, kind: .base, message: "a", author: "t", time: 1, method: nil, request: nil, parameters: nil, tree: tree)
        return (a, CommitRecord.computeID(parent: a, kind: .edit, message: "b", author: "t", time: 2, method: nil, request: nil, parameters: nil, tree: tree))
    }

    /// Inserts commits `a` (base) and `b` (its child), branch main at `a` and HEAD on main, the
    /// way any schema since 1 stores them (call inside a transaction).
    func insertBaseAndChild(_ a: String, _ b: String, tree: String, into ledger: Ledger) throws {
        for (id, parent) in [(a, nil), (b, a)] as [(String, String?)] {
            try ledger.insert(CommitRecord(id: id, parent: parent, generation: parent == nil ? 0 : 1, kind: parent == nil ? .base : .edit,
                                           message: "m", author: "t", time: 1, method: nil, request: nil, parameters: nil, tree: tree,
                                           fullManifest: parent == nil), tensors: [], files: [])
        }
        try ledger.db.run("INSERT INTO ref(name, target) VALUES('refs/heads/main', ?)", [.text(a)])
        try ledger.db.run("INSERT INTO ref(name, symbolic) VALUES('HEAD', 'refs/heads/main')", [])
    }

    /// A manifest and a file list are resolved by walking from the commit to the last full
    /// manifest (one query), each name's newest row winning, a removed side file dropped; a
    /// missing parent is named, and a chain of parents that goes round is refused, not followed.
    func testManifestWalkTakesNewestRowsAndNamesABrokenChain() throws {
        let (_, ledger) = try makeLedger()
        try ledger.db.execute("PRAGMA foreign_keys = OFF")   // rows only: no tensor versions or objects
        let tree = String(repeating: "c", count: 64)
        func h(_ c: Character) -> String { String(repeating: c, count: 64) }
        func entry(_ name: String, _ hash: Character) -> (entry: ManifestEntry, stats: ChangeStats?) {
            (ManifestEntry(name: name, file: "model.safetensors", dtype: .f32, shape: [2, 3], hash: h(hash)), nil)
        }
        var ids: [String] = []
        let steps: [([(entry: ManifestEntry, stats: ChangeStats?)], [FileEntry])] = [
            ([entry("x", "1"), entry("y", "1")], [FileEntry(path: "config.json", kind: .side, object: h("a"), size: 1),
                                                  FileEntry(path: "notes.txt", kind: .side, object: h("b"), size: 1)]),
            ([entry("x", "2")], [FileEntry(path: "notes.txt", kind: .side, object: nil, size: 0)]),
            ([entry("y", "3")], [FileEntry(path: "config.json", kind: .side, object: h("d"), size: 2)]),
            ([], []),
        ]
        try ledger.transaction {
            for (g, (tensors, files)) in steps.enumerated() {
                let parent = ids.last
                let id = CommitRecord.computeID(parent: parent, kind: parent == nil ? .base : .edit, message: "\(g)", author: "t", time: Int64(g),
                                                method: nil, request: nil, parameters: nil, tree: tree)
                try ledger.insert(CommitRecord(id: id, parent: parent, generation: g, kind: parent == nil ? .base : .edit, message: "\(g)",
                                               author: "t", time: Int64(g), method: nil, request: nil, parameters: nil, tree: tree,
                                               fullManifest: parent == nil), tensors: tensors, files: files)
                ids.append(id)
            }
        }
        XCTAssertEqual(try ledger.manifest(of: ids[3]).mapValues(\.hash), ["x": h("2"), "y": h("3")])
        XCTAssertEqual(try ledger.manifest(of: ids[1]).mapValues(\.hash), ["x": h("2"), "y": h("1")])
        XCTAssertEqual(try ledger.files(of: ids[3]).mapValues { $0.object! }, ["config.json": h("d")])
        XCTAssertEqual(try ledger.files(of: ids[0]).mapValues { $0.object! }, ["config.json": h("a"), "notes.txt": h("b")])
        XCTAssertThrowsError(try ledger.manifest(of: h("9"))) {
            guard case LedgerError.unknownRevision(let id) = $0 else { return XCTFail("\($0)") }
            XCTAssertEqual(id, h("9"))
        }
        // The parent of 2 goes missing: named.
        try ledger.db.run("UPDATE \"commit\" SET parent = ? WHERE id = ?", [.text(h("7")), .text(ids[2])])
        for walk in [{ _ = try ledger.manifest(of: ids[3]) }, { _ = try ledger.files(of: ids[3]) }] {
            XCTAssertThrowsError(try walk()) {
                guard case LedgerError.unknownRevision(let id) = $0 else { return XCTFail("\($0)") }
                XCTAssertEqual(id, h("7"))
            }
        }
        // 1's parent is 2, 2's is 1: a cycle, which a walk from 3 leaves after 3 steps.
        try ledger.db.run("UPDATE \"commit\" SET parent = ? WHERE id = ?", [.text(ids[1]), .text(ids[2])])
        try ledger.db.run("UPDATE \"commit\" SET parent = ? WHERE id = ?", [.text(ids[2]), .text(ids[1])])
        XCTAssertThrowsError(try ledger.manifest(of: ids[3])) {
            guard case LedgerError.invalid(let why) = $0 else { return XCTFail("\($0)") }
            XCTAssertTrue(why.contains("longer than its generation"), why)
        }
    }

    func makeLedger() throws -> (TemporaryDirectory, Ledger) {
        let dir = try TemporaryDirectory("ledger")
        return (dir, try Ledger.create(at: dir.path + "/ledger"))
    }

    /// Stores SmolLM2 BF16 tensor `name` in `ledger` as one object, split into chunks of at most
    /// `chunkBytes`; its bytes, chunks and object.
    private func storeBF16Tensor(_ name: String, in ledger: Ledger, chunkBytes: Int = Chunker.defaultChunkBytes) throws
        -> (payload: [UInt8], chunks: [EncodedChunk], object: PreparedObject) {
        let payload = try readTensorBytes(file: try Fixtures.smolLM2("bf16") + "/model.safetensors", tensor: name)
        let chunks = try payload.withUnsafeBytes { try Chunker.encode($0, elementSize: 2, chunkBytes: chunkBytes) }
        let obj = PreparedObject(id: SHA256Digest.hash(payload).hex, size: payload.count, chunks: chunks)
        _ = try ledger.transaction { try ledger.insert(obj) }
        return (payload, chunks, obj)
    }

    /// A failure's message is the connection's own while its error state is that failure, and
    /// SQLite's generic text for the code once another call (a decoding thread's blob read) has
    /// reset the state, never "not an error".
    func testFailureMessagesSurviveOtherCallsOnTheConnection() throws {
        let (dir, ledger) = try makeLedger()
        _ = dir
        XCTAssertThrowsError(try ledger.db.execute("SELECT * FROM no_such_table")) { e in
            guard case let LedgerError.sqlite(_, message, _) = e else { return XCTFail("\(e)") }
            XCTAssertTrue(message.contains("no such table: no_such_table"), message)
        }
        let rc = sqlite3_exec(ledger.db.handle, "SELECT * FROM no_such_table", nil, nil, nil)
        XCTAssertEqual(rc, SQLITE_ERROR)
        XCTAssertEqual(Database.message(ledger.db.handle, rc), "no such table: no_such_table")
        XCTAssertEqual(sqlite3_exec(ledger.db.handle, "SELECT 1", nil, nil, nil), SQLITE_OK)
        XCTAssertEqual(String(cString: sqlite3_errmsg(ledger.db.handle)), "not an error")
        XCTAssertEqual(Database.message(ledger.db.handle, rc), "SQL logic error")
    }

    /// What `Database.openBlob` documents: while a streamed chunk's reader is open, the
    /// connection keeps the snapshot it read in, so after another connection's commit its
    /// `BEGIN IMMEDIATE` fails at once (SQLITE_BUSY_SNAPSHOT, no busy wait) and a checkpoint
    /// cannot run (SQLITE_LOCKED); once the reader is gone both work.
    func testAnOpenBlobReaderHoldsTheConnectionsSnapshot() throws {
        let (dir, ledger) = try makeLedger()
        let (_, _, obj) = try storeBF16Tensor("model.layers.2.mlp.down_proj.weight", in: ledger)
        guard let source = try ledger.storedObject(obj.id).chunks[0].source else { return XCTFail("the chunk is not streamed") }
        let other = try Ledger.open(at: dir.path + "/ledger")
        func code(_ body: () throws -> Void) -> Int32? {
            do { try body(); return nil } catch LedgerError.sqlite(let code, _, _) { return code } catch { XCTFail("\(error)"); return -1 }
        }
        var reader: BlobReader? = try source.open()
        try other.db.execute("BEGIN IMMEDIATE; CREATE TABLE t(x); COMMIT")
        let start = Date()
        XCTAssertEqual(code { try ledger.db.execute("BEGIN IMMEDIATE") }, 517)   // SQLITE_BUSY_SNAPSHOT
        XCTAssertLessThan(Date().timeIntervalSince(start), 5)
        XCTAssertEqual(code { try ledger.checkpoint(mode: "PASSIVE") }, 6)        // SQLITE_LOCKED
        var head = [UInt8](repeating: 0, count: 16)
        try head.withUnsafeMutableBytes { try reader!.read(0, into: $0) }
        reader = nil
        XCTAssertNil(code { try ledger.db.execute("BEGIN IMMEDIATE; ROLLBACK") })
        XCTAssertNil(code { try ledger.checkpoint(mode: "PASSIVE") })
    }

    func testObjectsRoundTripAndDetectCorruption() throws {
        let (dir, ledger) = try makeLedger()
        let payload = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 / 3) }
        let obj = try payload.withUnsafeBytes { try PreparedObject.encode($0, elementSize: 4, compress: true) }
        XCTAssertGreaterThan(try ledger.transaction { try ledger.insert(obj) }, 0)
        XCTAssertEqual(try ledger.transaction { try ledger.insert(obj) }, 0)  // dedup
        XCTAssertEqual(try ledger.readObject(obj.id), payload)
        XCTAssertThrowsError(try ledger.readObject(String(repeating: "0", count: 64)))
        // A stored object whose payload does not match its id is reported as corrupt.
        var wrong = obj
        wrong.id = SHA256Digest.hash("something else").hex
        _ = try ledger.transaction { try ledger.insert(wrong) }
        XCTAssertThrowsError(try ledger.readObject(wrong.id)) { e in XCTAssertTrue("\(e)".contains("corrupt"), "\(e)") }
        _ = dir
    }

    /// An object of several chunks (read by incremental blob I/O, decoded in parallel) comes back
    /// whole; a flipped byte in its third chunk is reported as corruption of that object.
    func testMultiChunkObjectsRoundTripAndDetectCorruption() throws {
        let (dir, ledger) = try makeLedger()
        var rng = SplitMix64(seed: 3)
        let payload = (0..<300_000).map { i in UInt8(truncatingIfNeeded: i / 7) ^ UInt8(truncatingIfNeeded: rng.next() & 3) }
        let chunks = try payload.withUnsafeBytes { try Chunker.encode($0, elementSize: 4, chunkBytes: 64 << 10) }
        XCTAssertEqual(chunks.count, 5)
        let obj = PreparedObject(id: SHA256Digest.hash(payload).hex, size: payload.count, chunks: chunks)
        _ = try ledger.transaction { try ledger.insert(obj) }
        let stored = try ledger.storedObject(obj.id)
        XCTAssertEqual(stored.chunks.map(\.data), chunks.map(\.data))
        XCTAssertEqual(try ledger.readObject(obj.id), payload)
        try ledger.db.execute("UPDATE objectChunk SET data = CAST(substr(data, 1, 40) || x'00' || substr(data, 42) AS BLOB) WHERE object = '\(obj.id)' AND seq = 2")
        XCTAssertThrowsError(try ledger.readObject(obj.id)) { e in
            XCTAssertTrue("\(e)".contains(String(obj.id.prefix(12))) || "\(e)".contains(obj.id), "\(e)")
            XCTAssertTrue("\(e)".contains("corrupt"), "\(e)")
        }
        _ = dir
    }

    /// Large compressed chunks are not copied out of SQLite: decoding reads them a piece at a time,
    /// from any thread, while the ledger's own thread goes on querying and writing. Real weights
    /// (a SmolLM2 BF16 tensor in three chunks, two of them streamed) come back byte for byte.
    func testLargeChunksAreReadWhileDecodingFromOtherThreads() throws {
        let (dir, ledger) = try makeLedger()
        let (payload, chunks, obj) = try storeBF16Tensor("model.embed_tokens.weight", in: ledger, chunkBytes: 24 << 20)   // 56.6 MB
        XCTAssertEqual(chunks.count, 3)
        let stored = try ledger.storedObject(obj.id)
        XCTAssertTrue(ledger.db.serialized)
        XCTAssertEqual(stored.chunks.map { $0.source != nil }, chunks.map { $0.data.count >= ChunkSource.pieceBytes })
        XCTAssertTrue(stored.chunks.contains { $0.source != nil })
        XCTAssertEqual(stored.chunks.map(\.storedCount), chunks.map(\.data.count))
        XCTAssertLessThanOrEqual(stored.heldBytes, 3 * ChunkStream.workingBytes(rawSize: 24 << 20, storedCount: 24 << 20))
        XCTAssertLessThan(stored.heldBytes, chunks.reduce(0) { $0 + $1.data.count } / 3)
        // Two threads decode while this one reads and writes the ledger.
        let results = Results()
        let group = DispatchGroup()
        for i in 0..<2 {
            DispatchQueue.global().async(group: group) {
                results.set(i, Result { try stored.decoded(verify: true) })
            }
        }
        for i in 0..<200 {
            _ = try ledger.hasObject(obj.id)
            try ledger.transaction { try ledger.db.run("INSERT OR REPLACE INTO meta(key, value) VALUES('test.k', ?)", [.text("\(i)")]) }
        }
        group.wait()
        for i in 0..<2 { XCTAssertTrue(try results.get(i).get() == payload, "thread \(i)") }
        _ = dir
    }

    func testRefsMoveOnlyFromTheExpectedValue() throws {
        let (dir, ledger) = try makeLedger()
        let tree = String(repeating: "a", count: 64)
        func commit(_ parent: String?, _ msg: String) throws -> String {
            let id = CommitRecord.computeID(parent: parent, kind: parent == nil ? .base : .edit, message: msg, author: "t", time: 1,
                                            method: nil, request: nil, parameters: nil, tree: tree)
            try ledger.transaction {
                try ledger.insert(CommitRecord(id: id, parent: parent, generation: parent == nil ? 0 : 1, kind: parent == nil ? .base : .edit,
                                               message: msg, author: "t", time: 1, method: nil, request: nil, parameters: nil, tree: tree,
                                               fullManifest: parent == nil), tensors: [], files: [])
            }
            return id
        }
        let a = try commit(nil, "a"), b = try commit(a, "b")
        try ledger.transaction {
            try ledger.updateRef("refs/heads/main", to: a, expected: .absent, message: "init")
            try ledger.setHead(.branch(name: "main", commit: a), message: "init")
        }
        XCTAssertEqual(try ledger.head(), .branch(name: "main", commit: a))
        XCTAssertThrowsError(try ledger.transaction { try ledger.updateRef("refs/heads/main", to: b, expected: .absent, message: "x") })
        XCTAssertThrowsError(try ledger.transaction { try ledger.updateRef("refs/heads/main", to: b, expected: .value(b), message: "x") })
        try ledger.transaction { try ledger.advanceHead(from: a, to: b, message: "commit: b\nbody") }
        XCTAssertEqual(try ledger.head().commit, b)
        XCTAssertThrowsError(try ledger.transaction { try ledger.updateRef("refs/heads/x", to: String(repeating: "f", count: 64), expected: .any, message: "x") })
        // The reflog: the refused moves left no entry; a move of the current branch is logged for
        // it and for HEAD (first line of the message only); a detached move for HEAD alone.
        XCTAssertEqual(try ledger.reflog("refs/heads/main").map(\.new), [b, a])
        XCTAssertEqual(try ledger.reflog("refs/heads/main").map(\.old), [a, nil])
        XCTAssertEqual(try ledger.reflog("HEAD").map(\.message), ["commit: b", "init"])
        try ledger.transaction { try ledger.setHead(.detached(commit: a), message: "checkout: moving from main to a") }
        XCTAssertEqual(try ledger.reflog("HEAD", limit: 1), [ReflogEntry(old: b, new: a, time: try ledger.reflog("HEAD")[0].time, message: "checkout: moving from main to a",
                                                                 seq: try ledger.reflog("HEAD")[0].seq)])
        XCTAssertEqual(try ledger.reflog("refs/heads/main").count, 2)
        try ledger.transaction { try ledger.updateRef("refs/heads/side", to: b, expected: .absent, message: "branch: Created from main") }
        XCTAssertEqual(try ledger.reflog("HEAD").count, 3, "a branch HEAD does not point to moves alone")
        try ledger.transaction { try ledger.deleteRef("refs/heads/side", expected: .value(b)) }
        XCTAssertEqual(try ledger.reflog("refs/heads/side"), [])
        for bad in ["", "a..b", "-x", "x.lock", "a b", "HEAD", "base", "x~1", "x^"] {
            XCTAssertThrowsError(try Ledger.validateRefName(bad), bad)
        }
        XCTAssertNoThrow(try Ledger.validateRefName("feature/rect-40"))
        _ = dir
    }

    func testForeignDatabaseIsRejected() throws {
        let dir = try TemporaryDirectory("ledger")
        let path = dir.path + "/ledger"
        try Array("not a database at all, just text".utf8).withUnsafeBytes { try Data($0).write(to: URL(fileURLWithPath: path)) }
        XCTAssertThrowsError(try Ledger.open(at: path)) { e in XCTAssertTrue("\(e)".contains("is not a wledger ledger"), "\(e)") }
    }

    /// Statements are prepared once per SQL text and reused: a row mapper that runs the same
    /// query gets its own statement (the outer iteration is not disturbed), and a `queryOne` that
    /// stops after the first row leaves no read transaction open (a TRUNCATE checkpoint, which
    /// needs every reader gone, empties the WAL).
    func testCachedStatementsAreReentrantAndReleaseLocks() throws {
        let dir = try TemporaryDirectory("sqlite")
        let db = try Database(path: dir.path + "/t.db", create: true)
        try db.execute("PRAGMA journal_mode = WAL")
        try db.execute("CREATE TABLE t(k INTEGER PRIMARY KEY, v TEXT)")
        for k in 1...5 { try db.run("INSERT INTO t(k, v) VALUES(?, ?)", [.int(Int64(k)), .text("v\(k)")]) }
        let sql = "SELECT k, v FROM t WHERE k >= ? ORDER BY k"
        let nested = try db.query(sql, [.int(2)]) { s -> String in
            let k = s.int(0)
            let inner = try db.query(sql, [.int(k + 2)]) { $0.text(1) }
            return "\(s.text(1)):\(inner.joined(separator: ","))"
        }
        XCTAssertEqual(nested, ["v2:v4,v5", "v3:v5", "v4:", "v5:"])
        XCTAssertEqual(try db.query(sql, [.int(4)]) { $0.int(0) }, [4, 5], "the cached statement is reset and rebound")
        XCTAssertEqual(try db.queryOne(sql, [.int(1)]) { $0.text(1) }, "v1")
        try db.run("UPDATE t SET v = 'w' WHERE k = 1")
        let busy = try XCTUnwrap(try db.queryOne("PRAGMA wal_checkpoint(TRUNCATE)") { $0.int(0) })
        XCTAssertEqual(busy, 0, "no statement holds a read transaction")
        XCTAssertEqual(FileStat.of(dir.path + "/t.db-wal")?.size, 0)
    }
}

/// Results set by other threads.
private final class Results: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [Int: Result<[UInt8], Error>] = [:]
    func set(_ i: Int, _ r: Result<[UInt8], Error>) { lock.lock(); values[i] = r; lock.unlock() }
    func get(_ i: Int) -> Result<[UInt8], Error> { lock.lock(); defer { lock.unlock() }; return values[i]! }
}
