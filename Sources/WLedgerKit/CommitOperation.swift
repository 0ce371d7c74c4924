import Codec
import Foundation
import Ledger
import LinAlg
import Ops
import TensorIO

/// What to record with a new commit.
public struct CommitOptions: Sendable {
    public var message: String
    public var kind: CommitKind = .edit
    public var author: String?
    public var method: String?
    /// Validated request JSON (see `EditRequest.validate`).
    public var request: String?
    /// Operation parameters as JSON.
    public var parameters: String?
    public var policy = SnapshotPolicy()
    /// RECT applied to the edit being committed: keep this percentage of its ΔW, ranked this way.
    public var prune: (percent: Double, ranking: RECT.Ranking)?
    /// The request's file, given to hooks as WLEDGER_REQUEST.
    public var requestFile: String?
    /// More environment for the hooks (e.g. WLEDGER_REVERT).
    var hookEnvironment: [String: String] = [:]
    /// What the reflog names as the action ("cherry-pick"); nil: the kind ("commit" for an edit).
    var reflogAction: String?
    /// Push the commit onto the stash instead of moving HEAD (`stash`).
    var stash = false
    /// With `stash`: record untracked side files too (`stash -u`).
    var stashUntracked = false
    /// Record the commit and move no ref, push no stash entry (`stash apply` onto another commit
    /// writes such a commit into the work tree under HEAD; `gc` removes it).
    var recordOnly = false

    public init(message: String) { self.message = message }
}

/// A changed tensor ready to be recorded.
struct TensorChange: Sendable {
    var entry: ManifestEntry
    var prepared: PreparedTensor
}

/// Encodings started while the work tree is still being hashed (`commit`), each on its own
/// background thread; nil results are tensors left for the caller to refuse.
///
/// While encodings run, the hashing gets the cores they leave (`throttle`, at least one): an
/// encoding is a chain of steps that must run in order, the hashing is any number of
/// independent tensors, so giving the chain its core first finishes both soonest. The
/// committing thread's own scan (structure, ledger lookups, probes) is such a chain too, and
/// holds a core until it has started the encodings it found (`scanned`).
final class EarlyEncodings: @unchecked Sendable {
    private let limit: Int
    private var tasks: [String: Background<PreparedTensor?>] = [:]   // touched by the committing thread only
    let throttle: Throttle
    private let cores = ProcessInfo.processInfo.activeProcessorCount
    private let lock = NSLock()
    private var running = 1
    private var scanning = true

    /// - Parameter throttle: the one a hashing started before uses (`TensorHashing.prefetch`,
    ///   made with `Throttle.besideScan()`), or a new one.
    init(limit: Int, throttle: Throttle? = nil) {
        self.limit = limit
        self.throttle = throttle ?? .besideScan()
    }

    /// The committing thread has handed over what its scan found and now only waits for the hashing.
    func scanned() {
        guard scanning else { return }
        scanning = false
        changeRunning(by: -1)
    }

    var hasRoom: Bool { tasks.count < limit }

    func start(_ name: String, _ work: @escaping () throws -> PreparedTensor?) {
        changeRunning(by: 1)
        tasks[name] = Background { [self] in
            defer { changeRunning(by: -1) }
            return try work()
        }
    }

    private func changeRunning(by n: Int) {
        lock.lock()
        running += n
        throttle.set(cores - running)
        lock.unlock()
    }

    func started(_ name: String) -> Bool { tasks[name] != nil }

    func result(_ name: String) throws -> PreparedTensor? { try tasks[name]?.wait() ?? nil }

    /// Waits for every encoding (on every path out: they read the mapped work tree).
    func waitAll() {
        for t in tasks.values { _ = try? t.wait() }
    }
}

/// The hashing of a work tree that `commit` starts before it opens the repository, so that it
/// runs while the repository is opened and locked (`Repository.startHashing`).
public final class WorkTreeHashing: @unchecked Sendable {
    let hashing: TensorHashing
    init(_ hashing: TensorHashing) { self.hashing = hashing }
    deinit { hashing.cancel() }
}

/// What `commit` did.
public struct CommitResult: Encodable, Sendable {
    public var commit: String
    public var parent: String
    public var branch: String?
    public var kind: String
    public var tensors: [ChangedTensor]
    public var files: [String]
    public var storedBytes: Int
    /// Changed tensors whose parent (HEAD's version) was taken from the clean work tree rather
    /// than rebuilt from the ledger (`revert`, `prune`, `restrain`, `edit`; 0 for `commit`, whose
    /// work tree holds the child).
    public var parentsFromWorkTree = 0
    /// Changed tensors the work tree was taken to hold at HEAD's version (clean by its scan) whose
    /// bytes were not that version: their parents were rebuilt from the ledger instead. Nonzero
    /// only when a write since the scan, or one its file's stat hid, changed them.
    public var workTreeMismatches = 0

    public struct ChangedTensor: Encodable, Sendable {
        public var name: String
        public var encoding: String
        public var changed: Int
        public var count: Int
        public var l1: Double
        public var frobenius: Double
        public var storedBytes: Int
    }
}

extension Repository {
    /// What `commit` refuses with on a clean work tree (and `status` says of one).
    public static let nothingToCommit = "nothing to commit, work tree clean"

    /// `wledger commit`: records the work tree as a new commit on HEAD. Each changed tensor is
    /// stored as the smallest exact patch from its parent version (verified by applying it before
    /// the commit is recorded), or as a keyframe when its patch chain reaches the depth limit.
    /// - Throws: `KitError.refused` when nothing changed; `KitError.usage` when the work tree's
    ///   tensor set or shapes differ from HEAD, or a changed tensor holds NaN/Inf.
    /// - Parameter prefetched: the work tree's hashing, started before the repository was opened
    ///   (`startHashing`); used if the work tree did not change since, stopped otherwise.
    public func commit(_ options: CommitOptions, progress: ProgressReporter = .silent, prefetched: WorkTreeHashing? = nil) throws -> CommitResult {
        var options = options
        if let f = options.requestFile { options.hookEnvironment["WLEDGER_REQUEST"] = absolutePath(f) }
        let head = try ledger.head()
        // Changed tensors start encoding as soon as hashing finds them, beside the hashing of the
        // rest; not when the work tree may still change (a pre-commit hook runs first) or when
        // --prune rewrites the edit.
        let hooked = verifyHooks && (hookPath(.preCommit) != nil || hookPath(.commitMsg) != nil)
        let early = EarlyEncodings(limit: options.prune == nil && !hooked ? Repository.earlyEncodings : 0, throttle: prefetched?.hashing.throttle)
        defer { early.waitAll() }   // they read the mapped work tree
        let cmp = try WorkTreeComparison.compare(root: root, ledger: ledger, commit: head.commit, branch: head.branchName,
                                                 rehash: false, progress: progress, throttle: early.throttle, prefetched: prefetched?.hashing,
                                                 onScanned: early.scanned) { name, entry, fingerprint, weights in
            guard early.hasRoom, let loc = weights.tensors[name] else { return }
            let recipe = try self.ledger.recipe(for: entry.hash)
            let policy = options.policy
            early.start(name) {
                let child = weights.bytes(name)!
                // A tensor with NaN/Inf is not encoded: nil, and the commit is refused.
                if !policy.allowNonFinite, countNonFinite(child, dtype: loc.info.dtype) > 0 { return nil }
                return try Repository.encodeChange(name: name, recipe: recipe, child: child, fingerprint: fingerprint, info: loc.info,
                                                   policy: policy)
            }
        }
        var report = cmp.report
        // Untracked side files stay out of a stash (and in the work tree), as with git's default;
        // `stash -u` records them.
        if options.stash {
            // `-u` takes untracked regular files; a symbolic link stays where it is (the stash
            // would record its target's bytes and give back a plain file).
            report.sideFiles.removeAll { s in
                s.change == .added && (!options.stashUntracked
                    || WorkTreeComparison.fileType(root + "/" + s.path) == .typeSymbolicLink)
            }
        }
        if !report.structural.isEmpty {
            throw KitError.usage("'\(root)': work tree tensors differ from HEAD in structure: \(report.structural.prefix(3).joined(separator: "; "))\(report.structural.count > 3 ? "; …" : "")")
        }
        // A tracked side file whose path now holds what the scan does not list (a directory, a
        // link to nothing or to a directory, a FIFO) reads as deleted, but something is there:
        // wledger tracks regular files only, so that is refused rather than recorded as a deletion.
        for f in report.sideFiles where f.change == .deleted {
            let full = root + "/" + f.path
            if let what = ModelDirectory.nonFileEntry(full) {
                throw KitError.refused("'\(full)' is \(what) where HEAD has a file (wledger tracks regular files only): remove it to record the deletion, or put the file back")
            }
        }
        if report.clean { throw KitError.refused(Repository.nothingToCommit) }
        let changedNames = report.modifiedTensors.map(\.name)
        let weights = cmp.weights
        if let prune = options.prune { return try commitPruned(cmp, changedNames, prune, options, progress) }
        // Refuse NaN/Inf in changed tensors before doing any work (those encoding already checked
        // themselves: a nil result below).
        func nonFinite(_ name: String) -> KitError {
            KitError.usage("'\(root)/\(weights.tensors[name]!.file)': tensor '\(name)' contains NaN or Inf; use --allow-nonfinite to commit anyway")
        }
        if !options.policy.allowNonFinite {
            for name in changedNames where !early.started(name) {
                let loc = weights.tensors[name]!
                if countNonFinite(weights.bytes(name)!, dtype: loc.info.dtype) > 0 { throw nonFinite(name) }
            }
        }
        // Hooks see the work tree itself as the candidate; a failing one stops the commit here.
        options.message = try runPreCommitHooks(HookContext(candidate: root, parent: head.commit, message: options.message,
                                                            extra: options.hookEnvironment), kind: options.kind, what: "committed")
        // Parent bytes come from the ledger (the work tree has the child).
        progress.start("encoding changed tensors", total: changedNames.count)
        let policy = options.policy
        let slots = Slots<PreparedTensor>(changedNames.count)
        let rest = changedNames.indices.filter { !early.started(changedNames[$0]) }
        let recipes = try rest.map { try ledger.recipe(for: cmp.manifest[changedNames[$0]]!.hash) }
        try parallelFor(rest.count) { k in
            let i = rest[k], name = changedNames[i]
            let loc = weights.tensors[name]!
            slots[i] = try Repository.encodeChange(name: name, recipe: recipes[k], child: weights.bytes(name)!,
                                                   fingerprint: cmp.fingerprints[name]?.hex, info: loc.info, policy: policy)
            progress.advance()
        }
        for (i, name) in changedNames.enumerated() where slots[i] == nil {
            guard let prepared = try early.result(name) else { throw nonFinite(name) }
            slots[i] = prepared
            progress.advance()
        }
        progress.finish()
        var fileRows: [FileEntry] = []
        var objects: [PreparedObject] = []
        for f in cmp.report.modifiedHeaders {
            let obj = try Snapshot.blob(weights.files[f]!.header.prefixBytes)
            objects.append(obj)
            fileRows.append(FileEntry(path: f, kind: .safetensors, object: obj.id, size: weights.files[f]!.header.fileSize))
        }
        for change in report.sideFiles {
            switch change.change {
            case .added, .modified:
                let content = cmp.sideContents[change.path]!
                let obj = try Snapshot.blob(content, hash: cmp.sideHashes[change.path]!)
                objects.append(obj)
                fileRows.append(FileEntry(path: change.path, kind: .side, object: obj.id, size: content.count))
            case .deleted:
                fileRows.append(FileEntry(path: change.path, kind: .side, object: nil, size: 0))
            }
        }
        let changes = changedNames.enumerated().map { i, name -> TensorChange in
            let loc = weights.tensors[name]!
            return TensorChange(entry: ManifestEntry(name: name, file: loc.file, dtype: loc.info.dtype, shape: loc.info.shape, hash: slots[i]!.hash),
                                prepared: slots[i]!)
        }
        // Every byte recorded was read from the weight files as the scan found them: one written
        // since (by a pre-commit hook, or another program; a file cut short inside its last page
        // reads as zeros through the map, with no SIGBUS) is refused, not recorded.
        for f in cmp.directory.weightFiles where FileStat.of(root + "/" + f) != cmp.stats[f] {
            throw TensorIOError.io(path: root + "/" + f, operation: "read",
                                   reason: "it changed while it was being committed (a pre-commit hook or another program wrote it); nothing was committed")
        }
        // The work tree's stats (and probes a ledger from before schema 0004 lacks) go in with the
        // commit: one transaction, one set of WAL frames for the pages they share.
        let recorded = try recordCommit(head: head, manifest: cmp.manifest, files: cmp.files, changes: changes, fileRows: fileRows,
                                        objects: objects, options: options) { id in
            try self.recordStatsInTransaction(cmp.directory.weightFiles + cmp.directory.sideFiles, commit: id, scanned: cmp.stats,
                                              readAt: cmp.scannedAt)
            try self.ledger.fillMissingProbes(cmp.missingProbes)
        }
        // The WAL is copied into the ledger file now rather than when the ledger closes (a
        // failure here leaves it for later).
        try? ledger.checkpoint(mode: "PASSIVE")
        runPostCommitHook(commit: recorded.id, candidate: root)
        return CommitResult(commit: recorded.id, parent: head.commit, branch: head.branchName, kind: options.kind.rawValue,
                            tensors: recorded.tensors, files: fileRows.map(\.path), storedBytes: recorded.storedBytes)
    }

    /// `commit --prune K%`: RECT applied to the edit in the work tree before it is recorded; the
    /// work tree is rewritten to the pruned weights.
    private func commitPruned(_ cmp: WorkTreeComparison, _ names: [String], _ prune: (percent: Double, ranking: RECT.Ranking),
                              _ options: CommitOptions, _ progress: ProgressReporter) throws -> CommitResult {
        guard cmp.report.modifiedHeaders.isEmpty, cmp.report.sideFiles.isEmpty else {
            throw KitError.usage("commit --prune needs a work tree whose only changes are tensor values; commit the other changes first")
        }
        guard prune.percent >= 0 && prune.percent <= 100 else { throw KitError.usage("--prune must be between 0% and 100%") }
        var updates: [String: [UInt8]] = [:]
        for name in names {
            let e = cmp.manifest[name]!
            guard e.dtype.isFloat else { throw KitError.usage("cannot prune tensor '\(name)': dtype \(e.dtype.rawValue) is not a float type") }
            let parent = try ledger.tensorBytes(of: e)
            let child = Array(cmp.weights.bytes(name)!)
            updates[name] = Repository.rect(parent: parent, child: child, head: child, headIsChild: true, entry: e,
                                            percent: prune.percent, ranking: prune.ranking).0
        }
        var opts = options
        var params: [(String, JSONValue)] = []
        if let p = options.parameters, case let .object(o) = try JSONParser.parse(Array(p.utf8)) { params = o }
        params.append(("prune", .object([("keep", .double(prune.percent)), ("by", .string(prune.ranking.rawValue))])))
        opts.parameters = JSONValue.object(params).serialized()
        opts.prune = nil
        return try commitUpdates(updates, options: opts, allowDirty: true, progress: progress)
    }

    /// Inserts a new commit on HEAD in one transaction: new objects and tensor versions, the
    /// manifest rows (changed tensors with their ΔW statistics; every tensor on full-manifest
    /// generations), file rows, the commit, and the branch move checked against its old value.
    func recordCommit(head: HeadState, manifest base: [String: ManifestEntry], files baseFiles: [String: FileEntry],
                      changes: [TensorChange], fileRows: [FileEntry], objects: [PreparedObject], options: CommitOptions,
                      alsoRecord: ((String) throws -> Void)? = nil)
        throws -> (id: String, tensors: [CommitResult.ChangedTensor], storedBytes: Int) {
        var manifest = base
        var files = baseFiles
        var tensorRows: [(entry: ManifestEntry, stats: ChangeStats?)] = []
        var out: [CommitResult.ChangedTensor] = []
        var stored = 0
        let sig = Signature.current(author: options.author)
        let generation = (try ledger.commit(head.commit)?.generation ?? 0) + 1
        let full = generation % Ledger.fullManifestInterval == 0
        let id: String = try ledger.transaction {
            for c in changes {
                let p = c.prepared
                var bytesAdded = 0
                let existing = try ledger.version(p.hash) != nil
                if !existing {
                    if let obj = p.object { bytesAdded += try ledger.insert(obj) }
                    if let v = p.version { try ledger.insert(v) }
                }
                stored += bytesAdded
                manifest[c.entry.name] = c.entry
                let st = p.stats!
                tensorRows.append((c.entry, ChangeStats(changed: st.changed, l1: st.l1, frobenius: st.frobenius, maxAbs: st.maxAbs,
                                                        baseNorm: st.baseNorm, storedBytes: bytesAdded)))
                // A version already stored (the same bytes committed before) costs nothing new.
                out.append(.init(name: c.entry.name, encoding: existing ? "existing" : p.version?.encoding ?? "existing", changed: st.changed, count: st.count,
                                 l1: st.l1, frobenius: st.frobenius, storedBytes: bytesAdded))
            }
            for obj in objects { stored += try ledger.insert(obj) }
            for f in fileRows { files[f.path] = f.object == nil ? nil : f }
            var rows = fileRows
            if full {
                let changed = Set(changes.map(\.entry.name))
                for (name, e) in manifest where !changed.contains(name) { tensorRows.append((e, nil)) }
                let written = Set(rows.map(\.path))
                for (path, e) in files where !written.contains(path) { rows.append(e) }
            }
            let tree = Ledger.treeHash(tensors: manifest, files: files)
            let id = CommitRecord.computeID(parent: head.commit, kind: options.kind, message: options.message, author: sig.author,
                                            time: sig.time, method: options.method, request: options.request,
                                            parameters: options.parameters, tree: tree)
            let record = CommitRecord(id: id, parent: head.commit, generation: generation, kind: options.kind, message: options.message,
                                      author: sig.author, time: sig.time, method: options.method, request: options.request,
                                      parameters: options.parameters, tree: tree, fullManifest: full)
            // The same commit made again (same parent, tree, message, author and second, e.g.
            // after a reset --hard or a dropped stash, or with $WLEDGER_TIME fixed) is the commit
            // already stored, as in git: its rows are kept and the ref moves to it.
            if try ledger.commit(id) == nil { try ledger.insert(record, tensors: tensorRows, files: rows) }
            if options.stash {
                try ledger.pushStash(id, message: options.message)
            } else if !options.recordOnly {
                try ledger.advanceHead(from: head.commit, to: id,
                                       message: (options.reflogAction ?? (options.kind == .edit ? "commit" : options.kind.rawValue)) + ": " + options.message)
            }
            try alsoRecord?(id)
            return id
        }
        return (id, out, stored)
    }

    /// Changed tensors encoded while the rest of the work tree is being hashed, at most (two
    /// cores are enough to keep busy; the others wait for the hashing to end).
    static let earlyEncodings = 2

    /// Rebuilds the parent version from `recipe` and prepares the change to `child`.
    static func encodeChange(name: String, recipe: TensorRecipe, child: UnsafeRawBufferPointer, fingerprint: String?, info: TensorInfo,
                             policy: SnapshotPolicy) throws -> PreparedTensor {
        var parent = try LedgerError.naming(tensor: name) { try recipe.build(verifySHA256: false) }
        return try parent.withUnsafeMutableBytes { pb in
            try prepareChange(name: name, parent: pb, parentVersion: recipe.version, child: child, dtype: info.dtype, shape: info.shape,
                              policy: policy, fingerprint: fingerprint)
        }
    }

    /// Hashes a changed tensor, computes its ΔW statistics and builds its stored form: an exact
    /// patch against `parent` (verified by applying it) or a keyframe when the chain is too deep.
    /// - Parameters:
    ///   - parent: the parent version's bytes, a scratch copy: the patch is verified by applying
    ///     it to them in place (no second buffer of the tensor's size, whose fresh pages cost more
    ///     than the work on them), so they hold the child's bytes afterwards.
    ///   - fingerprint: the child's XXH3-128 when the caller has it (the work-tree scan).
    static func prepareChange(name: String, parent: UnsafeMutableRawBufferPointer, parentVersion: TensorVersion,
                              child: UnsafeRawBufferPointer, dtype: DType, shape: [Int], policy: SnapshotPolicy,
                              fingerprint: String? = nil) throws -> PreparedTensor {
        let parentBytes = UnsafeRawBufferPointer(parent)
        let stats = DeltaStatistics.compute(parent: parentBytes, child: child, dtype: dtype)
        if parentVersion.depth + 1 > policy.maxPatchDepth {
            var k = try Snapshot.keyframe(name: name, bytes: child, dtype: dtype, policy: policy)
            k.stats = stats
            return k
        }
        // The content hashes are serial passes over the child: they run beside the encoding (the
        // fingerprint only when the caller did not hash the child already).
        let hashes = Background { (sha256: SHA256Digest.hash(child).hex, fingerprint: fingerprint ?? Fingerprint.of(child).hex) }
        defer { _ = try? hashes.wait() }   // it reads `child`, which the caller may unmap after a throw
        // When most elements changed, try the low-rank encoding first; the exact patches (which
        // compress the whole tensor) are made only when it fails or is not already under 1/8 of
        // the raw bytes, where a dense XOR of a change to most elements rarely gets (measured on
        // rank-one edits: 1/3.2 of raw on a 7B-shaped BF16 down_proj, whose low-rank patch was
        // 1/15.4; 1/3.2 on SmolLM2 BF16).
        var lowRank: Patch? = nil
        if stats.changed > stats.count / 8 {
            lowRank = try LowRankEncoding.attempt(parent: parentBytes, child: child, dtype: dtype, shape: shape, budget: child.count, level: policy.level)
        }
        var patch: Patch
        if let l = lowRank, l.bytes.count <= child.count / 8 {
            patch = l
        } else {
            patch = try Patch.make(parent: parentBytes, child: child, elementSize: dtype.size, level: policy.level)
            if let l = lowRank, l.bytes.count < patch.bytes.count { patch = l }
        }
        // Verify: the patch must rebuild the child exactly before it is recorded (applied in
        // place: every encoding reads an element before it writes it).
        try patch.bytes.withUnsafeBytes { pb in try Patch.apply(pb, to: parentBytes, into: parent) }
        let same = child.count == 0 || memcmp(parent.baseAddress!, child.baseAddress!, child.count) == 0
        guard same else { throw CodecError.corrupt(what: "patch for '\(name)'", reason: "does not rebuild the committed bytes (encoder bug)") }
        let obj = try patch.bytes.withUnsafeBytes { try PreparedObject.encode($0, elementSize: 1, compress: false) }
        let (hash, fp) = try hashes.wait()
        let v = TensorVersion(hash: hash, fingerprint: fp, byteCount: child.count, elementSize: dtype.size, base: parentVersion.hash,
                              object: obj.id, encoding: patch.encoding.description, depth: parentVersion.depth + 1, probe: Probe.of(child))
        return PreparedTensor(name: name, hash: hash, fingerprint: fp, version: v, object: obj, stats: stats)
    }
}
