import Foundation
import Ledger
import TensorIO

/// One stash entry, as `stash list` shows it.
public struct StashItem: Encodable, Sendable {
    /// `stash@{N}`.
    public var selector: String
    public var commit: String
    /// The commit it was made on (HEAD then).
    public var base: String
    public var message: String
    public var date: String
}

/// What `stash show` reports.
public struct StashShowResult: Encodable, Sendable {
    public var stash: StashItem
    /// ΔW per changed tensor, the commit it was made on to the stash.
    public var diff: DiffReport
    /// Files whose bytes the stash changed (side files, and weight files whose header changed).
    public var files: [StatusReport.SideFileChange]
}

/// What `stash push` did.
public struct StashPushResult: Encodable, Sendable {
    /// Nil when there was nothing to save.
    public var stash: StashItem?
    public var commit: CommitResult?
    /// The work tree's rewrite back to HEAD.
    public var checkout: CheckoutResult?

    enum CodingKeys: String, CodingKey { case saved, stash, commit, checkout }

    /// As the synthesized encoding, plus `saved` (false, and nothing else, when there was nothing
    /// to save: `{}` said nothing).
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(stash != nil, forKey: .saved)
        try c.encodeIfPresent(stash, forKey: .stash)
        try c.encodeIfPresent(commit, forKey: .commit)
        try c.encodeIfPresent(checkout, forKey: .checkout)
    }
}

/// What `stash apply` / `stash pop` did.
public struct StashApplyResult: Encodable, Sendable {
    public var stash: StashItem
    public var checkout: CheckoutResult
    /// `pop`: the entry was dropped.
    public var dropped: Bool
    /// Applied onto a HEAD other than the commit the stash was made on: the commit holding HEAD
    /// with the stash's changes that was written into the work tree (no ref points to it, `gc`
    /// removes it); nil there when HEAD already had every change.
    public var onto: String? = nil
    /// Tensors HEAD also changed since the stash's base: HEAD + the stash's ΔW, in float64
    /// rounded to the dtype (the others are the stash's bytes exactly).
    public var mergedTensors: [String] = []
}

extension Repository {
    /// `wledger stash [push] [-m MSG] [-u]`: records the work tree's uncommitted changes (tensors,
    /// headers, tracked side files; untracked ones stay, as with git, unless `includeUntracked`
    /// records them too and removes them from the work tree) as a commit on HEAD that no
    /// ref points to, pushed onto the stash (`stash@{0}`), then writes HEAD's bytes back where the
    /// work tree differs (`checkout` with `discard`). Hooks do not run. Nothing to save: a result
    /// with no stash.
    public func stashPush(message: String? = nil, includeUntracked: Bool = false, progress: ProgressReporter = .silent) throws -> StashPushResult {
        let head = try ledger.head()
        let subject = (try ledger.commit(head.commit)?.message ?? "").split(separator: "\n", omittingEmptySubsequences: false).first.map(String.init) ?? ""
        let on = head.branchName ?? "(no branch)"
        var options = CommitOptions(message: message.map { "On \(on): \($0)" } ?? "WIP on \(on): \(head.commit.prefix(12)) \(subject)")
        options.stash = true
        options.stashUntracked = includeUntracked
        options.policy.allowNonFinite = true   // a stash saves whatever the work tree holds
        // Recorded in the commit, so that it stays known as a stash once dropped (`isStash`).
        options.parameters = JSONValue.object([("stash", .bool(true))]).serialized()
        let hooks = verifyHooks
        verifyHooks = false
        defer { verifyHooks = hooks }
        // What writing HEAD back refuses before it writes, refused before the stash is recorded.
        try refuseDirectories(at: try ledger.files(of: head.commit), shown: String(head.commit.prefix(12)))
        // Recording the entry and writing HEAD's bytes back are two steps: this journal lets the
        // next command finish a push killed between them (`finishInterruptedStashPush`); the
        // checkout's own journal replaces it once written.
        try writeJournal(PendingOperation(kind: .stashPush, commit: head.commit, renames: [], removes: [],
                                          stashTop: try ledger.reflog(Ledger.stashLog, limit: 1).first?.new))
        let committed: CommitResult
        do {
            committed = try commit(options, progress: progress)
        } catch {
            clearJournal()
            if case KitError.refused(let why) = error, why == Repository.nothingToCommit { return StashPushResult(stash: nil, commit: nil, checkout: nil) }
            throw error
        }
        FaultInjection.point("stash-recorded")
        // The saved changes are overwritten with HEAD's bytes, only where they differ. If that
        // fails before its journal is written the work tree is as it was: the entry is dropped
        // again, so a retry does not stash twice (the commit is left for gc).
        let restored: CheckoutResult
        do {
            restored = try restoreHeadAfterStash(committed.commit, includeUntracked: includeUntracked, progress: progress)
        } catch {
            if (try? pendingKind()) == .stashPush {
                try? ledger.transaction { _ = try ledger.dropStash(0) }
                clearJournal()
            }
            throw error
        }
        clearJournal()   // (the checkout's cleared it where it wrote one)
        return StashPushResult(stash: try stashList().first, commit: committed, checkout: restored)
    }

    /// Writes HEAD's bytes back over the changes stash `stash` saved (the untracked files a `-u`
    /// stash recorded go too, as git's do, each only while it still has the recorded bytes).
    func restoreHeadAfterStash(_ stash: String, includeUntracked: Bool, progress: ProgressReporter) throws -> CheckoutResult {
        let untracked = includeUntracked ? try ledger.fileRows(of: stash) : []
        var digests: [String: String] = [:]
        for f in untracked { digests[f.path] = f.object }
        return try checkout("HEAD", alsoRemoving: untracked.map(\.path), discard: true, removeDigests: digests, progress: progress)
    }

    /// A stash push killed after recording its entry and before the checkout's journal: where
    /// the work tree still holds exactly what the entry saved, HEAD's bytes are written back (the
    /// push finished); where it changed since, it is left as it is. Nothing when the entry was
    /// never recorded. - Returns: a notice.
    func finishInterruptedStashPush(_ op: PendingOperation) throws -> String? {
        guard let top = try ledger.reflog(Ledger.stashLog, limit: 1).first?.new, top != op.stashTop,
              let c = try ledger.commit(top), c.parent == op.commit, try ledger.head().commit == op.commit else { return nil }
        // A `-u` stash recorded files HEAD does not track.
        let headFiles = try ledger.files(of: op.commit)
        let includeUntracked = try ledger.fileRows(of: top).contains { headFiles[$0.path] == nil && $0.object != nil }
        let cmp = try WorkTreeComparison.compare(root: root, ledger: ledger, commit: top, branch: nil, rehash: false, progress: .silent)
        guard !Repository.hasUncommittedChanges(cmp.report, except: []) else {
            return "an interrupted stash recorded stash@{0}; the work tree changed since, so it was left as it is"
        }
        _ = try restoreHeadAfterStash(top, includeUntracked: includeUntracked, progress: .silent)
        return "completed an interrupted stash (stash@{0}; the work tree is HEAD's again)"
    }

    /// `wledger stash list`: newest first.
    /// Whether commit `c` saved a work tree as found (a stash, or a stash merged onto another
    /// commit), NaN and Inf allowed without `--allow-nonfinite`: its parameters say so (`stash`,
    /// `stashApplied`), or, for a stash made before they did, it is still on the stash.
    func isStash(_ c: CommitRecord) throws -> Bool {
        if let text = c.parameters, case let .object(pairs) = try JSONParser.parse(Array(text.utf8)),
           pairs.contains(where: { $0.0 == "stash" || $0.0 == "stashApplied" }) {
            return true
        }
        return try ledger.reflog(Ledger.stashLog).contains { $0.new == c.id }
    }

    /// Whether tensor `name`'s version at commit `at` was written by a stash (`isStash`): the
    /// newest commit from `at` back whose changes list the tensor is the one that wrote it.
    func versionIsStashed(_ name: String, at: String) throws -> Bool {
        var cur: String? = at
        while let id = cur, let c = try ledger.commit(id) {
            if c.parent == nil { return false }
            if try ledger.changes(of: id).contains(where: { $0.entry.name == name }) { return try isStash(c) }
            cur = c.parent
        }
        return false
    }

    public func stashList() throws -> [StashItem] {
        try ledger.reflog(Ledger.stashLog).enumerated().map { i, e in
            StashItem(selector: "stash@{\(i)}", commit: e.new, base: try ledger.commit(e.new)?.parent ?? "", message: e.message,
                      date: isoDate(e.time))
        }
    }

    /// `wledger stash show [STASH]`: what a stash entry would change, as git's `stash show`: ΔW
    /// statistics of every tensor it changed against the commit it was made on (`diff
    /// stash@{N}~1 stash@{N}`), and the files whose bytes it changed (tracked side files, and
    /// weight files whose header changed).
    public func stashShow(_ selector: String?, options: DiffOptions = DiffOptions(),
                          progress: ProgressReporter = .silent) throws -> StashShowResult {
        let (_, item) = try stashEntry(selector)
        var diff = try self.diff(item.base, item.commit, options: options, progress: progress)
        diff.sideFiles = []   // listed once, in `files` (with weight files whose header changed)
        let files = Self.fileChanges(from: try ledger.files(of: item.base), to: try ledger.files(of: item.commit))
        return StashShowResult(stash: item, diff: diff, files: files)
    }

    /// The entry `selector` names ("stash@{N}", "N", or nil for the newest) with its index.
    func stashEntry(_ selector: String?) throws -> (index: Int, item: StashItem) {
        let list = try stashList()
        // (exit 1, as git: nothing to act on, not a malformed request)
        guard !list.isEmpty else { throw KitError.refused("no stash entries") }
        guard let s = selector else { return (0, list[0]) }
        let digits = s.hasPrefix("stash@{") && s.hasSuffix("}") ? String(s.dropFirst(7).dropLast()) : s
        guard let n = Int(digits), n >= 0 else { throw KitError.usage("'\(s)' is not a stash entry (stash@{N} or N)") }
        guard n < list.count else { throw KitError.usage("'\(s)': the stash has \(Ledger.stashSizeText(list.count))") }
        return (n, list[n])
    }

    /// `wledger stash apply|pop [STASH]`: writes the stash's files into the work tree, leaving HEAD
    /// where it is, so its changes are uncommitted again; `pop` then drops the entry. Uncommitted
    /// changes the stash does not touch are kept, as a checkout keeps them; any other refuses
    /// before anything is written.
    ///
    /// On a HEAD other than the commit the stash was made on, as git's merge of the stash, per
    /// tensor and file (`stashOnto`): what HEAD has as the stash's base had it takes the stash's
    /// version; a float tensor HEAD changed too gets HEAD + the stash's ΔW (as `cherry-pick`);
    /// a side file both changed, a non-float tensor both changed, a changed header or a tensor
    /// HEAD lacks refuse the apply before anything is written.
    public func stashApply(_ selector: String? = nil, pop: Bool = false, progress: ProgressReporter = .silent) throws -> StashApplyResult {
        let (index, item) = try stashEntry(selector)
        let head = try ledger.head()
        var onto: (commit: String, merged: [String], scan: WorkTreeComparison?)? = nil
        if head.commit != item.base { onto = try stashOnto(item, head: head, progress: progress) }
        // Refusals name the stash entry.
        let result = try checkout(onto?.commit ?? item.commit, keepHead: true, displayName: item.selector, scan: onto?.scan,
                                  progress: progress)
        if pop { _ = try ledger.transaction { try ledger.dropStash(index) } }
        return StashApplyResult(stash: item, checkout: result, dropped: pop, onto: onto.flatMap { $0.commit == head.commit ? nil : $0.commit },
                                mergedTensors: onto?.merged ?? [])
    }

    /// The stash's changes carried onto HEAD, recorded as a commit on HEAD that no ref points to
    /// (`gc` removes it), for `stashApply` to write under HEAD; HEAD's own commit when HEAD
    /// already has every change. Per tensor the stash changed: HEAD's version as the stash left it
    /// stays; as the base had it, the stash's version; otherwise (a float tensor) HEAD + ΔW in
    /// float64, rounded to the dtype, elements ΔW leaves alone keeping HEAD's bytes. Per side file
    /// the same without the sum: one both changed refuses.
    /// Also returns its comparison of the work tree with HEAD, for the checkout.
    private func stashOnto(_ item: StashItem, head: HeadState, progress: ProgressReporter)
        throws -> (commit: String, merged: [String], scan: WorkTreeComparison?) {
        let base = String(item.base.prefix(12))
        func refused(_ why: String) -> KitError {
            .refused("cannot apply \(item.selector) onto HEAD \(head.commit.prefix(12)): \(why) ('wledger stash branch NAME' pops it on a new branch at \(base), the commit it was made on)")
        }
        let baseManifest = try ledger.manifest(of: item.base), stashManifest = try ledger.manifest(of: item.commit)
        let headManifest = try ledger.manifest(of: head.commit)
        guard Set(baseManifest.keys) == Set(stashManifest.keys) else { throw refused("it adds or removes tensors") }
        var updates: [String: [UInt8]] = [:], merged: [String] = []
        for name in stashManifest.keys.sorted() {
            let b = baseManifest[name]!, s = stashManifest[name]!
            if b.hash == s.hash { continue }
            guard let h = headManifest[name], h.dtype == s.dtype, h.shape == s.shape, h.file == s.file else {
                throw refused("HEAD does not have tensor '\(name)', which it changes, as \(base) had it (name, file, dtype and shape)")
            }
            if h.hash == s.hash { continue }
            if h.hash == b.hash { updates[name] = try ledger.tensorBytes(of: s); continue }
            guard s.dtype.isFloat else {
                throw refused("tensor '\(name)' (\(s.dtype.rawValue)) changed since \(base) too, and is not a float tensor to add its ΔW to")
            }
            let delta = Repository.delta(from: try ledger.tensorBytes(of: b), to: try ledger.tensorBytes(of: s), dtype: s.dtype)
            updates[name] = Repository.apply(delta: delta, to: try ledger.tensorBytes(of: h), dtype: s.dtype)
            merged.append(name)
        }
        let headFiles = try ledger.files(of: head.commit)
        let fileRows = Repository.fileRows(try sideFileChanges(from: try ledger.files(of: item.base), to: try ledger.files(of: item.commit),
                                                               onto: headFiles) {
            refused($0 ? "it changes the header of '\($1)'" : "'\($1)' changed since \(base) too")
        })
        if updates.isEmpty && fileRows.isEmpty { return (head.commit, [], nil) }
        // What the checkout that writes the result refuses, refused now, before it is recorded: a
        // directory where it has a file, uncommitted changes it would overwrite or could keep only
        // by a write in place that is not possible, something the scan does not list where it
        // adds a file. The checkout reuses this scan.
        var manifest = headManifest, files = headFiles
        for (name, bytes) in updates { manifest[name]!.hash = SHA256Digest.hash(bytes).hex }
        for f in fileRows { files[f.path] = f.object == nil ? nil : f }
        try refuseDirectories(at: files, shown: item.selector)
        let cmp = try WorkTreeComparison.compare(root: root, ledger: ledger, commit: head.commit, branch: head.branchName, rehash: false,
                                                 progress: progress)
        if !cmp.report.clean {
            let check = Repository.carryCheck(cmp, manifest: manifest, files: files)
            if !check.overwritten.isEmpty { throw Repository.overwritten(check.overwritten, untracked: check.untracked, keepingHead: item.selector) }
            try refuseWholeRewrites(of: check.carried, cmp: cmp, updated: Set(updates.keys), manifest: manifest, files: files,
                                    shown: item.selector)
        }
        try refuseUnlistedEntries(at: files, cmp: cmp, shown: item.selector, keepHead: true)
        // The changed tensors encoded against HEAD's versions (one the stash stored already is
        // found by its hash and costs nothing).
        var options = CommitOptions(message: "\(item.message)\n\n(\(item.selector) \(item.commit) applied onto \(head.commit))")
        options.recordOnly = true
        options.policy.allowNonFinite = true   // as the stash saved it
        options.parameters = JSONValue.object([("stashApplied", .string(item.commit))]).serialized()
        let names = updates.keys.sorted()
        let recipes = try names.map { try ledger.recipe(for: headManifest[$0]!.hash) }
        let changes = try Repository.encodeUpdates(updates, names: names, manifest: headManifest, recipes: recipes, policy: options.policy,
                                                   tally: RebuildTally(), progress: progress)
        let recorded = try recordCommit(head: head, manifest: headManifest, files: headFiles, changes: changes, fileRows: fileRows,
                                        objects: [], options: options)
        return (recorded.id, merged, cmp)
    }

    /// Refuses, as the checkout that writes the merged tree would (and before it is recorded),
    /// when a weight file holding uncommitted tensor changes the merge keeps (`carried`) would
    /// have to be rewritten whole to take the `updated` tensors: only a write in place keeps
    /// them. (The checkout can still refuse when rebuilding the tensors would exceed its memory
    /// budget, which it finds out only by planning the rebuild.)
    private func refuseWholeRewrites(of carried: Set<String>, cmp: WorkTreeComparison, updated: Set<String>,
                                     manifest: [String: ManifestEntry], files: [String: FileEntry], shown: String) throws {
        let kept = Dictionary(grouping: cmp.report.modifiedTensors.filter { carried.contains($0.name) }, by: \.file)
        let inPlace = try inPlaceByDefault()
        for (path, tensors) in kept.sorted(by: { $0.key < $1.key }) {
            let changed = updated.filter { manifest[$0]?.file == path }.sorted()
            if changed.isEmpty { continue }
            if inPlace, let entry = files[path], inPlaceTarget(path, entry: entry, cmp: cmp, changed: changed, limit: inPlaceMemoryLimit) != nil {
                continue
            }
            let names = tensors.map(\.name).sorted().prefix(3).map { "'\($0)'" }.joined(separator: ", ")
            throw KitError.refused("\(shown) would rewrite '\(path)' whole and lose your uncommitted changes to \(names) (it can only keep them writing in place): commit or stash them first, or discard them with 'wledger checkout --force HEAD'")
        }
    }

    /// `wledger stash branch NAME [STASH]`: creates branch NAME at the commit the stash was made on,
    /// checks it out (as `checkout -b`), and pops the stash there, where it always applies.
    public func stashBranch(_ name: String, _ selector: String? = nil, progress: ProgressReporter = .silent) throws -> StashApplyResult {
        let (_, item) = try stashEntry(selector)
        _ = try checkout(item.base, newBranch: name, progress: progress)
        return try stashApply(item.selector, pop: true, progress: progress)
    }

    /// `wledger stash drop [STASH]`: removes one entry (its commit stays until `gc`).
    public func stashDrop(_ selector: String? = nil) throws -> StashItem {
        let (index, item) = try stashEntry(selector)
        _ = try ledger.transaction { try ledger.dropStash(index) }
        return item
    }

    /// `wledger stash clear`: removes every entry; returns how many there were.
    public func stashClear() throws -> Int { try ledger.transaction { try ledger.clearStash() } }
}
