import Foundation
import Ledger
import LinAlg
import TensorIO

extension Repository {
    /// The changes that record new bytes (`updates`) for the tensors `names` of `manifest`, each
    /// encoded against the version its recipe rebuilds, in parallel.
    static func encodeUpdates(_ updates: [String: [UInt8]], names: [String], manifest: [String: ManifestEntry], recipes: [TensorRecipe],
                              policy: SnapshotPolicy, tally: RebuildTally, progress: ProgressReporter) throws -> [TensorChange] {
        let slots = Slots<PreparedTensor>(names.count)
        progress.start("encoding changed tensors", total: names.count)
        try parallelFor(names.count) { i in
            let e = manifest[names[i]]!
            var parent: [UInt8], origin: TensorRecipe.Origin
            (parent, origin) = try LedgerError.naming(tensor: e.name) { try recipes[i].buildReportingOrigin(verifySHA256: false) }
            tally.record(origin)
            slots[i] = try parent.withUnsafeMutableBytes { pb in
                try updates[names[i]]!.withUnsafeBytes { cb in
                    try Repository.prepareChange(name: e.name, parent: pb, parentVersion: recipes[i].version, child: cb, dtype: e.dtype,
                                                 shape: e.shape, policy: policy)
                }
            }
            progress.advance()
        }
        progress.finish()
        return names.enumerated().map { i, name -> TensorChange in
            var e = manifest[name]!
            e.hash = slots[i]!.hash
            return TensorChange(entry: e, prepared: slots[i]!)
        }
    }

    /// The refusal of an operation that commits onto HEAD where the work tree has uncommitted changes.
    static let uncommittedChanges = "the work tree has uncommitted changes; commit them or run 'wledger checkout --force HEAD' first"

    /// Whether a scan found changes an update onto HEAD would lose: anything but untracked side
    /// files and the tensors in `except`.
    static func hasUncommittedChanges(_ report: StatusReport, except: Set<String>) -> Bool {
        !report.structural.isEmpty || !report.modifiedHeaders.isEmpty
            || report.sideFiles.contains { $0.change != .added }
            || report.modifiedTensors.contains { !except.contains($0.name) }
    }

    /// Refuses before any work where the work tree has uncommitted changes (revert, cherry-pick,
    /// prune and restrain compute their update first; `commitUpdates` checks again, trusting the
    /// files this scan found clean whose stat has not changed since, so they are hashed once).
    func refuseUncommittedChanges(progress: ProgressReporter) throws -> CleanScan {
        let head = try ledger.head()
        let cmp = try WorkTreeComparison.compare(root: root, ledger: ledger, commit: head.commit, branch: head.branchName,
                                                 rehash: false, progress: progress)
        guard let clean = cmp.cleanScan else { throw KitError.refused(Repository.uncommittedChanges) }
        return clean
    }

    /// `commitUpdates`' refusal when no tensor or file would change.
    static let nothingChanges = "nothing to commit: the operation leaves every tensor as HEAD has it"

    /// Commits new contents for some tensors onto HEAD and writes them into the work tree: the
    /// path shared by revert, prune, restrain and `commit --prune`.
    ///
    /// Order: the changed weight files are staged as temporary files (or, where a file allows it
    /// and no hook needs a candidate directory, opened to have their changed tensors written in
    /// place, see `inPlaceTarget`), the commit is recorded in one ledger transaction, then the
    /// staged files are renamed into place and the in-place tensors written. If anything fails
    /// before the commit is recorded, the ledger and the work tree are left as they were; after,
    /// the journal stays and the next command finishes the update.
    /// - Parameters:
    ///   - updates: tensor name → new bytes (same dtype and shape as HEAD). Updates equal to
    ///     HEAD are dropped.
    ///   - recorded: tensors whose new bytes are a version the ledger already holds, committed
    ///     (not stashed) with any NaN or Inf allowed then (revert's exact restores).
    ///   - allowDirty: tensors named in `updates` may differ from HEAD in the work tree (used by
    ///     `commit --prune`); everything else must be clean.
    ///   - sideFiles: side files to commit too (`cherry-pick`): path → its new entry, whose
    ///     object the ledger holds, or nil to delete it. Staged and renamed in (or removed) with
    ///     the weight files, under the same journal.
    ///   - clean: the caller's `refuseUncommittedChanges` scan; files unchanged since are not
    ///     hashed again.
    /// - Throws: `KitError.refused` when the work tree has other uncommitted changes or nothing
    ///   would change.
    func commitUpdates(_ updates: [String: [UInt8]], sideFiles: [String: FileEntry?] = [:], options: CommitOptions, allowDirty: Bool = false,
                       recorded: Set<String> = [], clean: CleanScan? = nil, progress: ProgressReporter) throws -> CommitResult {
        var options = options
        let head = try ledger.head()
        let cmp = try WorkTreeComparison.compare(root: root, ledger: ledger, commit: head.commit, branch: head.branchName,
                                                 rehash: false, progress: progress, vouched: clean)
        let dirtyTensors = Set(cmp.report.modifiedTensors.map(\.name))
        // Untracked side files stay, as git's do, unless the update writes one at their path.
        let untracked = Set(cmp.report.sideFiles.filter { $0.change == .added }.map(\.path))
        if let path = untracked.sorted().first(where: { sideFiles[$0] != nil }) {
            throw KitError.refused("the untracked file '\(root)/\(path)' would be overwritten; move it away first")
        }
        if Repository.hasUncommittedChanges(cmp.report, except: allowDirty ? Set(updates.keys) : []) {
            throw KitError.refused(Repository.uncommittedChanges)
        }
        // Drop updates that leave a tensor as HEAD has it.
        var changedNames: [String] = []
        for (name, bytes) in updates.sorted(by: { $0.key < $1.key }) {
            guard let e = cmp.manifest[name] else { throw KitError.usage("no tensor named '\(name)' at HEAD") }
            guard bytes.count == e.shape.reduce(1, *) * e.dtype.size else {
                throw KitError.usage("new bytes for '\(name)' do not match its \(e.dtype.rawValue) \(e.shapeJSON) shape")
            }
            if SHA256Digest.hash(bytes).hex != e.hash { changedNames.append(name) }
        }
        let names = changedNames
        let sideChanges = sideFiles.filter { $0.value?.object != cmp.files[$0.key]?.object }
        if names.isEmpty && sideChanges.isEmpty { throw KitError.refused(Repository.nothingChanges) }
        // A side file HEAD does not track goes where the scan found nothing; something it does not
        // list (past the side-file limit, a link to nothing or to a directory, a directory) is
        // not replaced, as checkout refuses.
        for (path, entry) in sideChanges.sorted(by: { $0.key < $1.key }) where entry != nil && cmp.files[path] == nil {
            let full = root + "/" + path
            if let what = WorkTreeComparison.oversizedSideFile(full) ?? ModelDirectory.nonFileEntry(full) {
                throw KitError.refused("'\(full)' is \(what), untracked, where the commit has a file; move it away first")
            }
        }
        if !options.policy.allowNonFinite {
            for name in names where !recorded.contains(name) {
                if updates[name]!.withUnsafeBytes({ countNonFinite($0, dtype: cmp.manifest[name]!.dtype) }) > 0 {
                    throw KitError.usage("the result for tensor '\(name)' contains NaN or Inf; nothing was committed")
                }
            }
        }
        // The parents are HEAD's versions: a clean work tree holds them (copied, and verified like
        // any rebuild; a tensor that fails is rebuilt from its keyframe).
        let recipes = try names.map { name -> TensorRecipe in
            let hash = cmp.manifest[name]!.hash
            let held = dirtyTensors.contains(name) ? nil : RawView.tensor(name, in: cmp.weights).map { WorkTreeTensor(version: hash, bytes: $0) }
            return try ledger.recipe(for: hash, current: held)
        }
        let manifest = cmp.manifest, tally = RebuildTally()
        let changes = try Repository.encodeUpdates(updates, names: names, manifest: manifest, recipes: recipes, policy: options.policy,
                                                   tally: tally, progress: progress)
        // Stage the weight files that hold changed tensors; everything else is copied from the work tree.
        var newManifest = manifest
        for c in changes { newManifest[c.entry.name] = c.entry }
        var touched = Set(changes.map(\.entry.file))
        var staged: [(path: String, writer: AtomicFileWriter)] = []
        var committed = false   // the commit is recorded: staged files are the journal's from then on
        // Files whose changed tensors can be written into them in place (hooks need every new
        // file staged for their candidate directory, so not when one will run).
        let hooked = verifyHooks && (hookPath(.preCommit) != nil || hookPath(.commitMsg) != nil
            || (options.kind == .revert && hookPath(.preRevert) != nil))
        var patches: [InPlaceWrite] = []
        if try inPlaceByDefault(), !hooked {
            for file in touched.sorted() {
                guard let f = cmp.files[file] else { continue }
                let here = names.filter { manifest[$0]!.file == file }
                guard let target = inPlaceTarget(file, entry: f, cmp: cmp, changed: here), let handle = try? InPlaceFile(root + "/" + file)
                else { continue }
                patches.append(InPlaceWrite(patch: InPlacePatch(path: file, tensors: here), file: handle, header: target.header,
                                            tensors: target.tensors.map { ($0, updates[$0.name]!) }))
                touched.remove(file)
            }
        }
        progress.start("writing tensors", total: newManifest.values.filter { touched.contains($0.file) }.count)
        do {
            for file in touched.sorted() {
                guard let f = cmp.files[file], let prefixID = f.object else { throw LedgerError.invalid("file '\(file)' missing at HEAD") }
                let prefix = try LedgerError.naming(file: file) { try ledger.readObject(prefixID) }
                let (w, _) = try stageWeightFile(root + "/" + file, prefix: prefix, size: f.size, manifest: newManifest, verifySHA256: false,
                                                 progress: progress) { t in
                    if let b = updates[t.name], names.contains(t.name) { return .bytes(b) }
                    return .view(RawView.tensor(t.name, in: cmp.weights)!)
                }
                staged.append((file, w))
            }
            progress.finish()
            for (path, entry) in sideChanges.sorted(by: { $0.key < $1.key }) {
                guard let object = entry?.object else { continue }
                let bytes = try LedgerError.naming(file: path) { try ledger.readObject(object) }
                let w = try AtomicFileWriter(path: root + "/" + path, size: bytes.count)
                staged.append((path, w))
                try w.write(bytes, at: 0)
            }
            let removals = sideChanges.filter { $0.value?.object == nil }.keys.sorted()
            // Removed only while they hold HEAD's bytes, also by the journal's recovery (a file
            // edited after a killed update stays).
            let removeDigests = Dictionary(uniqueKeysWithValues: removals.map { ($0, cmp.sideHashes[$0] ?? "") })
            let fileRows = Repository.fileRows(sideChanges)
            // Durable staged files and a journal first, so a crash from here on is finished or
            // undone by the next command (see Journal.swift).
            for s in staged { try s.writer.sync() }
            // Hooks see a candidate directory: hard links to the staged files and the rest of the
            // work tree, removed before anything is renamed. A failing hook aborts here.
            if hooked {
                let present = (cmp.directory.weightFiles + cmp.directory.sideFiles).filter { !removals.contains($0) }
                let candidate = try candidateDirectory(files: present + staged.map(\.path).filter { !present.contains($0) },
                                                       staged: Dictionary(uniqueKeysWithValues: staged.map { ($0.path, $0.writer.tempPath) }))
                defer { try? FileManager.default.removeItem(atPath: candidate) }
                options.message = try runPreCommitHooks(HookContext(candidate: candidate, parent: head.commit, message: options.message,
                                                                    extra: options.hookEnvironment),
                                                        kind: options.kind, what: "committed")
            }
            try writeJournal(PendingOperation(kind: .update, commit: head.commit, branch: nil,
                                              renames: staged.map { [relativeToRoot($0.writer.tempPath), $0.path] }, removes: removals,
                                              patches: patches.map(\.patch),
                                              removeDigests: removals.isEmpty ? nil : removeDigests))
            FaultInjection.point("update-journaled")
            let recorded: (id: String, tensors: [CommitResult.ChangedTensor], storedBytes: Int)
            do {
                recorded = try recordCommit(head: head, manifest: manifest, files: cmp.files, changes: changes, fileRows: fileRows, objects: [],
                                            options: options)
            } catch {
                clearJournal()
                throw error
            }
            committed = true
            FaultInjection.point("update-recorded")
            // The commit is recorded: the staged files go in first, then the in-place tensors. A
            // failure from here on leaves the journal and the staged files, so the next command
            // rolls the update forward.
            for (i, s) in staged.enumerated() {
                if i == 0 { try FaultInjection.error("update-rename-error", path: root + "/" + s.path) }
                try s.writer.commit(sync: false, keepOnFailure: true)
            }
            for path in removals where PendingOperation.removable(root + "/" + path, relative: path, digests: removeDigests) { unlink(root + "/" + path) }
            syncDirectory(root)
            for p in patches { try p.write(fault: "update-patching") }
            clearJournal()
            // Files this command wrote are recorded as written now; the others as read at the scan.
            var written: [String: FileStat] = [:]
            let paths = staged.map(\.path) + patches.map(\.patch.path)
            for p in paths { written[p] = FileStat.of(root + "/" + p) }
            try recordStats(paths, commit: recorded.id, scanned: written)
            try recordStats((cmp.directory.weightFiles + cmp.directory.sideFiles).filter { written[$0] == nil && !removals.contains($0) && !untracked.contains($0) },
                            commit: recorded.id,
                            scanned: cmp.stats, readAt: cmp.scannedAt)
            runPostCommitHook(commit: recorded.id, candidate: root)
            var result = CommitResult(commit: recorded.id, parent: head.commit, branch: head.branchName, kind: options.kind.rawValue,
                                      tensors: recorded.tensors, files: fileRows.map(\.path), storedBytes: recorded.storedBytes)
            result.parentsFromWorkTree = tally.continued
            result.workTreeMismatches = tally.mismatches
            return result
        } catch {
            for s in staged { if committed { s.writer.keep() } else { s.writer.abort() } }
            throw error
        }
    }
}
