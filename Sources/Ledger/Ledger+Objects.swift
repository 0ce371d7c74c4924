import Codec
import TensorIO

extension Ledger {
    public func hasObject(_ id: String) throws -> Bool {
        try db.queryOne("SELECT 1 FROM object WHERE id = ?", [.text(id)]) { _ in true } ?? false
    }

    /// Inserts an object unless one with the same id exists. Call inside a transaction.
    /// - Returns: bytes added to the ledger (0 when it existed).
    @discardableResult
    public func insert(_ object: PreparedObject) throws -> Int {
        if try hasObject(object.id) { return 0 }
        try db.run("INSERT INTO object(id, size, storedSize) VALUES(?, ?, ?)",
                   [.text(object.id), .int(Int64(object.size)), .int(Int64(object.storedSize))])
        let stmt = try db.prepare("INSERT INTO objectChunk(object, seq, codec, elementSize, rawSize, data) VALUES(?, ?, ?, ?, ?, ?)")
        for (i, c) in object.chunks.enumerated() {
            try stmt.bind([.text(object.id), .int(Int64(i)), .int(Int64(c.codec.rawValue)), .int(Int64(c.elementSize)), .int(Int64(c.rawSize))])
            try c.data.withUnsafeBytes { b in
                try stmt.bindBlobNoCopy(6, b)
                try stmt.step()
            }
        }
        return object.storedSize
    }

    /// An object's chunks (decode them with `StoredObject.decode`): copied out of SQLite, except
    /// compressed chunks of `ChunkSource.pieceBytes` and more, which decoding reads a piece at a time.
    public func storedObject(_ id: String) throws -> StoredObject {
        guard let size = try db.queryOne("SELECT size FROM object WHERE id = ?", [.text(id)], { Int($0.int(0)) }) else {
            throw LedgerError.corruptObject(id: id, reason: "missing from the ledger")
        }
        // A copied chunk's data is read by incremental blob I/O straight into its array.
        let rows = try db.query("SELECT codec, elementSize, rawSize, rowid, length(data) FROM objectChunk WHERE object = ? ORDER BY seq",
                                [.text(id)]) { s -> (ChunkCodec, Int, Int, Int64, Int) in
            guard let codec = ChunkCodec(rawValue: Int(s.int(0))) else {
                throw LedgerError.corruptObject(id: id, reason: "unknown chunk codec \(s.int(0))")
            }
            return (codec, Int(s.int(1)), Int(s.int(2)), s.int(3), Int(s.int(4)))
        }
        let chunks = try rows.map { codec, elementSize, rawSize, rowid, length in
            if codec != .raw, length >= ChunkSource.pieceBytes, db.serialized {
                return StoredChunk(codec: codec, elementSize: elementSize, rawSize: rawSize, data: [],
                                   source: ChunkSource(database: db, rowid: rowid, count: length))
            }
            return StoredChunk(codec: codec, elementSize: elementSize, rawSize: rawSize,
                               data: try db.readBlob(table: "objectChunk", column: "data", rowid: rowid, count: length))
        }
        return StoredObject(id: id, size: size, chunks: chunks)
    }

    /// Reads and decodes a whole object, verifying its sha256.
    public func readObject(_ id: String) throws -> [UInt8] {
        try storedObject(id).decoded(verify: true)
    }

    /// Bytes stored for an object (compressed chunk data).
    public func storedSize(of id: String) throws -> Int {
        try db.queryOne("SELECT storedSize FROM object WHERE id = ?", [.text(id)]) { Int($0.int(0)) } ?? 0
    }

    /// All object ids (for fsck).
    public func allObjectIDs() throws -> [String] {
        try db.query("SELECT id FROM object ORDER BY id") { $0.text(0) }
    }

    /// Stored bytes of the objects a snapshot commit (the base) keeps: its tensors' versions
    /// and its files' objects (side files, safetensors headers), each object once.
    public func snapshotStoredBytes(of commit: String) throws -> Int {
        try db.queryOne("""
            SELECT coalesce(sum(storedSize), 0) FROM object WHERE id IN (
                SELECT v.object FROM commitTensor t JOIN tensorVersion v ON v.hash = t.hash WHERE t."commit" = ?1
                UNION SELECT object FROM commitFile WHERE "commit" = ?1 AND object IS NOT NULL)
            """, [.text(commit)]) { Int($0.int(0)) } ?? 0
    }

    /// Total stored bytes of all objects and the page-level size of the ledger file.
    public func storageTotals() throws -> (objects: Int, storedBytes: Int, payloadBytes: Int) {
        try db.queryOne("SELECT count(*), coalesce(sum(storedSize), 0), coalesce(sum(size), 0) FROM object") {
            (Int($0.int(0)), Int($0.int(1)), Int($0.int(2)))
        } ?? (0, 0, 0)
    }

    // MARK: tensor versions

    public func version(_ hash: String) throws -> TensorVersion? {
        try db.queryOne("SELECT hash, fingerprint, byteCount, elementSize, base, object, encoding, depth, probe FROM tensorVersion WHERE hash = ?", [.text(hash)]) { s in
            TensorVersion(hash: s.text(0), fingerprint: s.text(1), byteCount: Int(s.int(2)), elementSize: Int(s.int(3)),
                          base: s.optionalText(4), object: s.text(5), encoding: s.text(6), depth: Int(s.int(7)), probe: s.optionalInt(8))
        }
    }

    /// The fingerprint and probe of each version in `hashes` that the ledger holds, in one query
    /// (a scan of the work tree needs them for every tensor before it hashes anything).
    public func fingerprintsAndProbes(_ hashes: [String]) throws -> [String: (fingerprint: String, probe: Int64?)] {
        let list = JSONValue.array(hashes.map { .string($0) }).serialized()
        var out: [String: (fingerprint: String, probe: Int64?)] = [:]
        for (h, fp, probe) in try db.query("SELECT hash, fingerprint, probe FROM tensorVersion WHERE hash IN (SELECT value FROM json_each(?))",
                                           [.text(list)], { ($0.text(0), $0.text(1), $0.optionalInt(2)) }) {
            out[h] = (fp, probe)
        }
        return out
    }

    /// Stores probes for versions that have none (recorded before schema 0004), computed by the
    /// caller from bytes whose fingerprint matched the version's; a version's existing probe is
    /// never changed. Call inside a transaction.
    public func fillMissingProbes(_ probes: [String: Int64]) throws {
        guard !readOnly else { return }   // a cache: left as it is on a read-only ledger
        for (hash, probe) in probes.sorted(by: { $0.key < $1.key }) {
            try db.run("UPDATE tensorVersion SET probe = ? WHERE hash = ? AND probe IS NULL", [.int(probe), .text(hash)])
        }
    }

    /// Inserts a tensor version unless it exists. Call inside a transaction.
    public func insert(_ v: TensorVersion) throws {
        try db.run("""
            INSERT INTO tensorVersion(hash, fingerprint, byteCount, elementSize, base, object, encoding, depth, probe)
            VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(hash) DO NOTHING
            """, [.text(v.hash), .text(v.fingerprint), .int(Int64(v.byteCount)), .int(Int64(v.elementSize)),
                  v.base.sqlValue, .text(v.object), .text(v.encoding), .int(Int64(v.depth)), v.probe.sqlValue])
    }

    /// The chain of versions to rebuild `hash`: keyframe first, `hash` last.
    public func versionChain(_ hash: String) throws -> [TensorVersion] {
        var chain: [TensorVersion] = []
        var h: String? = hash
        while let cur = h {
            guard let v = try version(cur) else { throw LedgerError.corruptObject(id: cur, reason: "tensor version missing from the ledger") }
            chain.append(v)
            guard chain.count <= 100_000 else { throw LedgerError.corruptObject(id: hash, reason: "patch chain does not end") }
            h = v.base
        }
        return chain.reversed()
    }

    /// All tensor versions (for fsck).
    public func allVersions() throws -> [TensorVersion] {
        try db.query("SELECT hash, fingerprint, byteCount, elementSize, base, object, encoding, depth, probe FROM tensorVersion ORDER BY depth, hash") { s in
            TensorVersion(hash: s.text(0), fingerprint: s.text(1), byteCount: Int(s.int(2)), elementSize: Int(s.int(3)),
                          base: s.optionalText(4), object: s.text(5), encoding: s.text(6), depth: Int(s.int(7)), probe: s.optionalInt(8))
        }
    }
}

extension Ledger {
    /// Cached (σmax, σmin) of a 2-D tensor version.
    public func spectrum(_ hash: String) throws -> (sigmaMax: Double, sigmaMin: Double)? {
        try db.queryOne("SELECT sigmaMax, sigmaMin FROM tensorSpectrum WHERE hash = ?", [.text(hash)]) { ($0.double(0), $0.double(1)) }
    }

    /// Caches (σmax, σmin) of a 2-D tensor version (derived data; ignored if present).
    public func setSpectrum(_ hash: String, rows: Int, cols: Int, sigmaMax: Double, sigmaMin: Double) throws {
        guard !readOnly else { return }   // a cache: left as it is on a read-only ledger
        try db.run("INSERT INTO tensorSpectrum(hash, rows, cols, sigmaMax, sigmaMin) VALUES(?, ?, ?, ?, ?) ON CONFLICT(hash) DO NOTHING",
                   [.text(hash), .int(Int64(rows)), .int(Int64(cols)), .double(sigmaMax), .double(sigmaMin)])
    }
}
