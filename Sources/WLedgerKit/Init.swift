import Foundation
import Ledger
import TensorIO

/// What `init` did.
public struct InitResult: Encodable, Sendable {
    public var root: String
    public var commit: String
    public var tensors: Int
    public var files: Int
    public var rawBytes: Int
    public var storedBytes: Int
}

extension Repository {
    /// `wledger init`: creates `.wledger/` in a model directory and snapshots the base losslessly
    /// (every tensor as a keyframe, safetensors headers and side files as they are).
    ///
    /// Everything is validated before anything is written; the ledger is built in a temporary
    /// directory renamed into place at the end, so a failure leaves the directory as it was.
    public static func initialize(at path: String, message: String = "base", author: String? = nil,
                                  policy: SnapshotPolicy = SnapshotPolicy(), progress: ProgressReporter = .silent) throws -> InitResult {
        let root = absolutePath(path)
        let final = root + "/" + directoryName
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: final, isDirectory: &isDir) {
            guard isDir.boolValue else { throw KitError.usage("'\(final)' is a file, not a wledger directory; move it away first") }
            throw LedgerError.alreadyInitialized(path: root)
        }
        let dir = try ModelDirectory.scan(root)
        let scannedAt = wallClockNanoseconds()
        var scanned: [String: FileStat] = [:]
        for f in dir.weightFiles + dir.sideFiles { scanned[f] = FileStat.of(root + "/" + f) }
        let weights = try dir.open(populate: Set(dir.weightFiles))
        var nonFinite: [String] = []
        for (name, loc) in weights.tensors.sorted(by: { $0.key < $1.key }) {   // 0 for dtypes without NaN
            if countNonFinite(weights.bytes(name)!, dtype: loc.info.dtype) > 0 { nonFinite.append(name) }
        }
        if !nonFinite.isEmpty && !policy.allowNonFinite {
            throw KitError.usage("'\(root)/\(weights.tensors[nonFinite[0]]!.file)': tensor '\(nonFinite[0])' contains NaN or Inf (\(nonFinite.count) tensor(s) affected); use --allow-nonfinite to snapshot anyway")
        }

        // The directories of killed inits are garbage; one of a running init stays. A running
        // init holds the lock in its directory (an flock, released when its process dies, in
        // whatever PID namespace it ran); before it took the lock, its PID tells.
        for e in (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? [] where e.hasPrefix(".wledger.tmp-") {
            guard let pid = Int32(e.dropFirst(".wledger.tmp-".count)), pid > 0, pid != getpid() else { continue }
            let lockPath = "\(root)/\(e)/lock"
            let fd = Glibc.open(lockPath, O_RDWR | O_CLOEXEC)
            var abandoned: Bool
            if fd >= 0 {
                abandoned = flock(fd, LOCK_EX | LOCK_NB) == 0
                close(fd)
            } else {
                abandoned = kill(pid, 0) != 0 && errno == ESRCH
            }
            if abandoned { try? FileManager.default.removeItem(atPath: root + "/" + e) }
        }
        let temp = root + "/.wledger.tmp-\(getpid())"
        try? FileManager.default.removeItem(atPath: temp)
        guard mkdir(temp, 0o755) == 0 else {
            throw TensorIOError.io(path: final, operation: "create", reason: errnoText())
        }
        do {
            let lock = try takeLock(temp, progress: progress)
            guard FileManager.default.createFile(atPath: temp + "/config", contents: Data(ConfigFile.initialText.utf8)) else {
                throw TensorIOError.io(path: temp + "/config", operation: "create", reason: "cannot write")
            }
            try writeSampleHooks(into: temp)
            // Build the ledger in a scope of its own so its connection is closed (WAL checkpointed
            // and removed) before the directory is renamed into place.
            let (commit, tensorCount, fileCount, raw, stored) = try { () throws -> (String, Int, Int, Int, Int) in
            let ledger = try Ledger.create(at: temp + "/" + ledgerName)
            let sig = Signature.current(author: author)
            var manifest: [String: ManifestEntry] = [:]
            var files: [String: FileEntry] = [:]
            var stored = 0
            var raw = 0
            let names = weights.tensors.keys.sorted()
            progress.start("snapshotting tensors", total: names.count)
            // The ledger is private to this temporary directory until it is renamed into place, so
            // each batch is its own transaction: the WAL stays at one batch instead of holding (and
            // later copying) the whole snapshot. Refs are written last.
            do {
                // Encode in batches of ~1 GiB raw so memory stays bounded on large models.
                var start = 0
                while start < names.count {
                    var end = start
                    var batchBytes = 0
                    while end < names.count, batchBytes < 1 << 30 {
                        batchBytes += weights.tensors[names[end]]!.info.byteCount
                        end += 1
                    }
                    let batch = Array(names[start..<end])
                    let slots = Slots<PreparedTensor>(batch.count)
                    try parallelFor(batch.count) { i in
                        let loc = weights.tensors[batch[i]]!
                        slots[i] = try Snapshot.keyframe(name: batch[i], bytes: weights.bytes(batch[i])!, dtype: loc.info.dtype, policy: policy)
                        progress.advance()
                    }
                    try ledger.transaction {
                    for (i, name) in batch.enumerated() {
                        let p = slots[i]!
                        stored += try ledger.insert(p.object!)
                        try ledger.insert(p.version!)
                        let loc = weights.tensors[name]!
                        raw += loc.info.byteCount
                        manifest[name] = ManifestEntry(name: name, file: loc.file, dtype: loc.info.dtype, shape: loc.info.shape, hash: p.hash)
                    }
                    }
                    try ledger.checkpoint()
                    start = end
                }
            }
            try ledger.transaction {
                for f in dir.weightFiles {
                    let prefix = weights.files[f]!.header.prefixBytes
                    let obj = try Snapshot.blob(prefix)
                    stored += try ledger.insert(obj)
                    raw += prefix.count
                    files[f] = FileEntry(path: f, kind: .safetensors, object: obj.id, size: weights.files[f]!.header.fileSize)
                }
                for f in dir.sideFiles {
                    let bytes = try readFile(root + "/" + f)
                    let obj = try Snapshot.blob(bytes)
                    stored += try ledger.insert(obj)
                    raw += bytes.count
                    files[f] = FileEntry(path: f, kind: .side, object: obj.id, size: bytes.count)
                }
                let tree = Ledger.treeHash(tensors: manifest, files: files)
                let id = CommitRecord.computeID(parent: nil, kind: .base, message: message, author: sig.author, time: sig.time,
                                                method: nil, request: nil, parameters: nil, tree: tree)
                let record = CommitRecord(id: id, parent: nil, generation: 0, kind: .base, message: message, author: sig.author,
                                          time: sig.time, method: nil, request: nil, parameters: nil, tree: tree, fullManifest: true)
                try ledger.insert(record, tensors: manifest.values.sorted { $0.name < $1.name }.map { ($0, nil) },
                                  files: files.values.sorted { $0.path < $1.path })
                let log = "commit (initial): " + message
                try ledger.updateRef("refs/heads/" + Ledger.defaultBranch, to: id, expected: .absent, message: log)
                try ledger.setHead(.branch(name: Ledger.defaultBranch, commit: id), message: log)
            }
            progress.finish()
            try ledger.checkpoint()
            return (try ledger.head().commit, manifest.count, files.count, raw, stored)
            }()
            _ = lock
            // Publish: rename the finished ledger directory into place.
            guard rename(temp, final) == 0 else {
                throw TensorIOError.io(path: final, operation: "create", reason: errnoText())
            }
            syncDirectory(root)
            let repo = try Repository.open(at: root, forWriting: false)
            try repo.recordStats(dir.weightFiles + dir.sideFiles, commit: commit, scanned: scanned, readAt: scannedAt)
            return InitResult(root: root, commit: commit, tensors: tensorCount, files: fileCount, rawBytes: raw, storedBytes: stored)
        } catch {
            try? FileManager.default.removeItem(atPath: temp)
            throw error
        }
    }
}
