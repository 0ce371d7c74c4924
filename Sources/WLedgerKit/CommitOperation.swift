import Codec
import Foundation
import Ledger
import LinAlg
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

    public init(message: String) { self.message = message }
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
    /// `wledger commit`: records the work tree as a new commit on HEAD. Each changed tensor is
    /// stored as the smallest exact patch from its parent version (verified by applying it before
    /// the commit is recorded), or as a keyframe when its patch chain reaches the depth limit.
    /// - Throws: `KitError.refused` when nothing changed; `KitError.usage` when the work tree's
    ///   tensor set or shapes differ from HEAD, or a changed tensor holds NaN/Inf.
    public func commit(_ options: CommitOptions, progress: ProgressReporter = .silent) throws -> CommitResult {
        let head = try ledger.head()
        let cmp = try WorkTreeComparison.compare(root: root, ledger: ledger, commit: head.commit, branch: head.branchName,
                                                 rehash: false, progress: progress)
        let report = cmp.report
        if !report.structural.isEmpty {
            throw KitError.usage("'\(root)': work tree tensors differ from HEAD in structure: \(report.structural.prefix(3).joined(separator: "; "))\(report.structural.count > 3 ? "; …" : "")")
        }
        if report.clean { throw KitError.refused("nothing to commit, work tree clean") }
        let changedNames = report.modifiedTensors.map(\.name)
        let weights = cmp.weights
        // Refuse NaN/Inf in changed tensors before doing any work.
        if !options.policy.allowNonFinite {
            for name in changedNames {
                let loc = weights.tensors[name]!
                if loc.info.dtype.isFloat, countNonFinite(weights.bytes(name)!, dtype: loc.info.dtype) > 0 {
                    throw KitError.usage("'\(root)/\(loc.file)': tensor '\(name)' contains NaN or Inf; use --allow-nonfinite to commit anyway")
                }
            }
        }
        // Parent bytes come from the ledger (the work tree has the child).
        progress.start("encoding changed tensors", total: changedNames.count)
        let recipes = try changedNames.map { try ledger.recipe(for: cmp.manifest[$0]!.hash) }
        let policy = options.policy
        let slots = Slots<PreparedTensor>(changedNames.count)
        try parallelFor(changedNames.count) { i in
            let name = changedNames[i]
            let loc = weights.tensors[name]!
            let child = weights.bytes(name)!
            let parentVersion = recipes[i].version
            let parent = try recipes[i].build(verifySHA256: false)
            let prepared = try parent.withUnsafeBytes { pb in
                try Repository.prepareChange(name: name, parent: pb, parentVersion: parentVersion, child: child, dtype: loc.info.dtype, policy: policy)
            }
            slots[i] = prepared
            progress.advance()
        }
        progress.finish()

        var manifest = cmp.manifest
        var files = cmp.files
        var tensorRows: [(entry: ManifestEntry, stats: ChangeStats?)] = []
        var fileRows: [FileEntry] = []
        var stored = 0
        var changedOut: [CommitResult.ChangedTensor] = []
        let sig = Signature.current(author: options.author)
        let generation = (try ledger.commit(head.commit)?.generation ?? 0) + 1
        let full = generation % Ledger.fullManifestInterval == 0
        let commitID: String = try ledger.transaction {
            for (i, name) in changedNames.enumerated() {
                let p = slots[i]!
                var bytesAdded = 0
                if try ledger.version(p.hash) == nil {
                    if let obj = p.object { bytesAdded += try ledger.insert(obj) }
                    if let v = p.version { try ledger.insert(v) }
                }
                stored += bytesAdded
                let loc = weights.tensors[name]!
                let entry = ManifestEntry(name: name, file: loc.file, dtype: loc.info.dtype, shape: loc.info.shape, hash: p.hash)
                manifest[name] = entry
                let st = p.stats!
                let cs = ChangeStats(changed: st.changed, l1: st.l1, frobenius: st.frobenius, maxAbs: st.maxAbs, baseNorm: st.baseNorm, storedBytes: bytesAdded)
                tensorRows.append((entry, cs))
                changedOut.append(.init(name: name, encoding: p.version?.encoding ?? "existing", changed: st.changed, count: st.count,
                                        l1: st.l1, frobenius: st.frobenius, storedBytes: bytesAdded))
            }
            for f in cmp.report.modifiedHeaders {
                let prefix = weights.files[f]!.header.prefixBytes
                let obj = try Snapshot.blob(prefix)
                stored += try ledger.insert(obj)
                let e = FileEntry(path: f, kind: .safetensors, object: obj.id, size: weights.files[f]!.header.fileSize)
                files[f] = e
                fileRows.append(e)
            }
            for change in cmp.report.sideFiles {
                switch change.change {
                case .added, .modified:
                    let content = cmp.sideContents[change.path]!
                    let obj = try Snapshot.blob(content.bytes, hash: content.hash)
                    stored += try ledger.insert(obj)
                    let e = FileEntry(path: change.path, kind: .side, object: obj.id, size: content.bytes.count)
                    files[change.path] = e
                    fileRows.append(e)
                case .deleted:
                    files[change.path] = nil
                    fileRows.append(FileEntry(path: change.path, kind: .side, object: nil, size: 0))
                }
            }
            if full {
                let changedSet = Set(changedNames)
                for (name, e) in manifest where !changedSet.contains(name) { tensorRows.append((e, nil)) }
                let written = Set(fileRows.map(\.path))
                for (path, e) in files where !written.contains(path) { fileRows.append(e) }
            }
            let tree = Ledger.treeHash(tensors: manifest, files: files)
            let id = CommitRecord.computeID(parent: head.commit, kind: options.kind, message: options.message, author: sig.author,
                                            time: sig.time, method: options.method, request: options.request,
                                            parameters: options.parameters, tree: tree)
            let record = CommitRecord(id: id, parent: head.commit, generation: generation, kind: options.kind, message: options.message,
                                      author: sig.author, time: sig.time, method: options.method, request: options.request,
                                      parameters: options.parameters, tree: tree, fullManifest: full)
            try ledger.insert(record, tensors: tensorRows, files: fileRows)
            try ledger.advanceHead(from: head.commit, to: id)
            return id
        }
        try recordStats(cmp.directory.weightFiles + cmp.directory.sideFiles, commit: commitID, scanned: cmp.stats)
        return CommitResult(commit: commitID, parent: head.commit, branch: head.branchName, kind: options.kind.rawValue,
                            tensors: changedOut, files: fileRows.map(\.path), storedBytes: stored)
    }

    /// Hashes a changed tensor, computes its ΔW statistics and builds its stored form: an exact
    /// patch against `parent` (verified by applying it) or a keyframe when the chain is too deep.
    static func prepareChange(name: String, parent: UnsafeRawBufferPointer, parentVersion: TensorVersion,
                              child: UnsafeRawBufferPointer, dtype: DType, policy: SnapshotPolicy) throws -> PreparedTensor {
        let stats = DeltaStatistics.compute(parent: parent, child: child, dtype: dtype)
        if parentVersion.depth + 1 > policy.maxPatchDepth {
            var k = try Snapshot.keyframe(name: name, bytes: child, dtype: dtype, policy: policy)
            k.stats = stats
            return k
        }
        let hash = SHA256Digest.hash(child).hex
        let fp = Fingerprint.of(child).hex
        let patch = try Patch.make(parent: parent, child: child, elementSize: dtype.size, level: policy.level)
        // Verify: the patch must rebuild the child exactly before it is recorded.
        var check = [UInt8](repeating: 0, count: child.count)
        try patch.bytes.withUnsafeBytes { pb in
            try check.withUnsafeMutableBytes { try Patch.apply(pb, to: parent, into: $0) }
        }
        let same = check.withUnsafeBytes { cb in child.count == 0 || memcmp(cb.baseAddress!, child.baseAddress!, child.count) == 0 }
        guard same else { throw CodecError.corrupt(what: "patch for '\(name)'", reason: "does not rebuild the committed bytes (encoder bug)") }
        let obj = try patch.bytes.withUnsafeBytes { try PreparedObject.encode($0, elementSize: 1, compress: false) }
        let v = TensorVersion(hash: hash, fingerprint: fp, byteCount: child.count, elementSize: dtype.size, base: parentVersion.hash,
                              object: obj.id, encoding: patch.encoding.description, depth: parentVersion.depth + 1)
        return PreparedTensor(name: name, hash: hash, fingerprint: fp, version: v, object: obj, stats: stats)
    }
}
