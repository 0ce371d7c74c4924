import Foundation
import Ledger
import TensorIO

/// What `checkout` did.
public struct CheckoutResult: Encodable, Sendable {
    public var commit: String
    /// Branch HEAD now points to (nil: detached, or --output).
    public var branch: String?
    public var directory: String
    public var written: [String]
    public var unchanged: [String]
    public var removed: [String]
    public var tensorsRebuilt: Int
    public var bytesWritten: Int
    /// Weight files updated in place: only their changed tensors were written (a subset of `written`).
    public var patchedInPlace: [String] = []
    /// Of `tensorsRebuilt`, those continued from the version the work tree held (only the patches
    /// after it applied, its keyframe not decoded): checking out a commit that descends from HEAD.
    public var tensorsContinued = 0
    /// Of `tensorsRebuilt`, those the work tree was taken to hold at a version of their chain
    /// (clean by its scan) whose bytes did not rebuild the target: rebuilt from the keyframe
    /// instead. Nonzero only when a write since the scan, or one its file's stat hid, changed them.
    public var workTreeMismatches = 0
    /// `branch` was created by this checkout (`checkout -b`).
    public var branchCreated = false
    /// Uncommitted changes kept in the work tree: modified tensors, and side files changed, added
    /// or deleted, that the target has as HEAD had them, so the switch left them alone (as git does).
    public var carriedTensors: [String] = []
    public var carriedSideFiles: [StatusReport.SideFileChange] = []

    mutating func count(_ tally: RebuildTally) {
        tensorsContinued += tally.continued
        workTreeMismatches += tally.mismatches
    }
}


extension Repository {
    /// `wledger checkout <rev>`: rewrites the work tree to `revision` and moves HEAD; or, with
    /// `output`, materializes the revision into another directory and leaves HEAD and the work
    /// tree alone.
    ///
    /// A weight file whose header the target shares, a regular file with no other hard link, gets
    /// only its changed tensors written, in place (`inPlace`, see `inPlaceTarget`); every other
    /// changed file is written to a temporary file and renamed into place. Either way the journal
    /// lets a killed checkout be finished by the next command.
    ///
    /// Uncommitted changes the switch leaves alone are kept, as git keeps them (`carriedTensors`,
    /// `carriedSideFiles`): a modified tensor whose version the target shares with HEAD, in a
    /// file that gets the target's other tensors in place or is not written; a side file
    /// changed, added or deleted where HEAD and the target agree. Any other uncommitted change
    /// (a tensor or side file the switch writes, a header, a structural change, a carried tensor
    /// whose file would be rewritten whole) refuses (`KitError.refused`) before anything is
    /// written, unless `force` discards them all. At HEAD's own commit under another name
    /// (another branch, `-b`, detached) only HEAD moves, without a scan.
    /// A changed tensor whose target version descends from the one the clean work tree holds is
    /// continued from those bytes (`TensorRecipe.start`). Every rebuilt tensor is verified against
    /// its fingerprint (and sha256 with `verifySHA256`).
    ///
    /// With `newBranch` (`checkout -b NAME [REV]`), creates that branch at the revision and leaves
    /// HEAD on it, in the same transaction that moves HEAD: a checkout refused, or failing before
    /// its journal is written, creates no branch (one killed or failing after that is finished,
    /// branch included, by the next command).
    /// - Parameters:
    ///   - inPlace: nil: `core.in-place` of `.wledger/config` (true when unset).
    ///   - alsoRemoving: side files to remove besides those HEAD tracks and the target does not
    ///     (`reset --hard`, whose HEAD already is the target), when the target does not have them.
    ///   - keepHead: write the revision's files into the work tree and leave HEAD where it is
    ///     (`stash apply`): what differs from HEAD then shows as uncommitted changes.
    ///   - discard: overwrite uncommitted changes as `force` does, but write only what differs
    ///     (in place where possible) instead of whole files (`stash` push, once they are saved).
    ///   - removeDigests: files of `alsoRemoving` removed only while their SHA-256 is this, also
    ///     by the journal's recovery (`stash -u`: an untracked file edited since it was stashed stays).
    ///   - displayName: how refusals name the revision (`stash@{0}` for the commit `stash apply`
    ///     writes onto another HEAD).
    ///   - scan: the work tree already compared with HEAD by the caller (`stash apply` onto
    ///     another HEAD), so that a dirty weight file is not hashed twice.
    public func checkout(_ revision: String, newBranch: String? = nil, output: String? = nil, force: Bool = false,
                         verifySHA256: Bool = false, inPlace: Bool? = nil, alsoRemoving: [String] = [], keepHead: Bool = false,
                         discard: Bool = false, removeDigests: [String: String] = [:], displayName: String? = nil,
                         progress: ProgressReporter = .silent) throws -> CheckoutResult {
        try checkout(revision, newBranch: newBranch, output: output, force: force, verifySHA256: verifySHA256, inPlace: inPlace,
                     alsoRemoving: alsoRemoving, keepHead: keepHead, discard: discard, removeDigests: removeDigests,
                     displayName: displayName, scan: nil, progress: progress)
    }

    func checkout(_ revision: String, newBranch: String? = nil, output: String? = nil, force: Bool = false,
                  verifySHA256: Bool = false, inPlace: Bool? = nil, alsoRemoving: [String] = [], keepHead: Bool = false,
                  discard: Bool = false, removeDigests: [String: String] = [:], displayName: String? = nil,
                  scan: WorkTreeComparison?, progress: ProgressReporter = .silent) throws -> CheckoutResult {
        // `-`: where the last checkout that moved HEAD came from, as with git.
        let revision = revision == "-" ? try previousCheckout() : revision
        if let newBranch {
            guard output == nil else { throw KitError.usage("a new branch (-b) cannot be created with --output") }
            try Ledger.validateRefName(newBranch)
            if try ledger.refTarget(RefKind.branch.prefix + newBranch) != nil {
                throw KitError.refused("a branch named '\(newBranch)' already exists")
            }
        }
        let resolver = RevisionResolver(ledger: ledger)
        // `checkout HEAD` (e.g. with --force to discard changes) stays on the current branch.
        let branch = try newBranch ?? (["HEAD", "@"].contains(revision) ? ledger.head().branchName : resolver.branchName(revision))
        // A branch name checks out that branch, as git's checkout takes it first, even where the
        // name as a revision means something else (`stash` is stash@{0} in `show stash`).
        let target = try newBranch == nil ? branch.flatMap { try ledger.refTarget(RefKind.branch.prefix + $0) } ?? resolver.resolve(revision)
            : resolver.resolve(revision)
        let shown = displayName ?? (revision == "HEAD" ? String(target.prefix(12)) : revision)
        let manifest = try ledger.manifest(of: target)
        let files = try ledger.files(of: target)
        let extraRemovals = alsoRemoving.filter { files[$0] == nil }
        /// The result of a checkout of the work tree, before anything is written.
        func workTreeResult(unchanged: [String] = []) -> CheckoutResult {
            var r = CheckoutResult(commit: target, branch: branch, directory: root, written: [], unchanged: unchanged, removed: [],
                                   tensorsRebuilt: 0, bytesWritten: 0)
            r.branchCreated = newBranch != nil
            return r
        }
        // Another branch at HEAD's own commit, `-b`, or detaching: only HEAD moves, and
        // uncommitted changes stay, as with git (`--force` rewrites the files to discard them; a
        // checkout that leaves HEAD as it is keeps them below). They are listed from a scan that
        // hashes only what its stat cache cannot vouch for; a tree too broken to scan lists none.
        let head = try ledger.head()
        let moved: HeadState = branch.map { .branch(name: $0, commit: target) } ?? .detached(commit: target)
        if output == nil, !force, !keepHead, head.commit == target, head != moved {
            try moveHead(to: target, branch: branch, create: newBranch != nil)
            var result = workTreeResult(unchanged: files.keys.sorted())
            if let report = try? WorkTreeComparison.compare(root: root, ledger: ledger, commit: target, branch: branch,
                                                             rehash: false, progress: .silent).report {
                result.carriedTensors = report.modifiedTensors.map(\.name)
                result.carriedSideFiles = report.sideFiles
            }
            return result
        }
        if let output {
            let dir = absolutePath(output)
            let created = try prepareOutputDirectory(dir)
            var result = CheckoutResult(commit: target, branch: nil, directory: dir, written: [], unchanged: [], removed: [],
                                        tensorsRebuilt: 0, bytesWritten: 0)
            // Tensors the target shares with a clean work tree are copied from it (as fast as cp);
            // the rest are rebuilt from the ledger. An unreadable or dirty work tree is not used.
            let cmp = try? WorkTreeComparison.compare(root: root, ledger: ledger, commit: head.commit, branch: head.branchName,
                                                      rehash: false, progress: .silent)
            let workTree = cmp.map(workTreeVersions) ?? [:]
            do {
                try writeFiles(Array(files.values), into: dir, manifest: manifest, sources: Self.unchanged(manifest, in: workTree),
                               current: workTree, verifySHA256: verifySHA256, progress: progress, result: &result)
            } catch {
                // Nothing is left behind: the directory as it was (gone, or empty).
                let fm = FileManager.default
                if let created { try? fm.removeItem(atPath: created) } else {
                    for entry in (try? fm.contentsOfDirectory(atPath: dir)) ?? [] { try? fm.removeItem(atPath: dir + "/" + entry) }
                }
                throw error
            }
            withExtendedLifetime(cmp) {}
            return result
        }

        try refuseDirectories(at: files, shown: shown)
        let scanned: WorkTreeComparison?
        do {
            scanned = try scan ?? WorkTreeComparison.compare(root: root, ledger: ledger, commit: head.commit, branch: head.branchName,
                                                             rehash: false, progress: progress)
        } catch where force {
            // A work tree too broken to scan (truncated or deleted weights) is rebuilt from the ledger.
            scanned = nil
        }
        guard let cmp = scanned else {
            var result = workTreeResult()
            // Without a scan, the side files HEAD tracks and the target does not go too, as they
            // would after one (unlink: a directory in their place stays).
            let headOnly = try ledger.files(of: head.commit).filter { $0.value.kind == .side && files[$0.key] == nil }.keys.sorted()
            let removals = extraRemovals + headOnly.filter { !extraRemovals.contains($0) }
            try writeFiles(Array(files.values), into: root, manifest: manifest, sources: [:], verifySHA256: verifySHA256,
                           progress: progress, result: &result) { staged in
                try self.writeJournal(PendingOperation(kind: .checkout, commit: target, branch: branch,
                                                       renames: staged.map { [self.relativeToRoot($0.tempPath), self.relativeToRoot($0.path)] },
                                                       removes: removals, keepHead: keepHead ? true : nil))
                FaultInjection.point("checkout-journaled")
            }
            removeSideFiles(removals, result: &result)
            if !keepHead { try moveHead(to: target, branch: branch, create: newBranch != nil) }
            clearJournal()
            var written: [String: FileStat] = [:]
            for p in result.written { written[p] = FileStat.of(root + "/" + p) }
            if !keepHead { try recordStats(result.written, commit: target, scanned: written) }
            return result
        }
        // Uncommitted changes the switch leaves alone are carried over, as git does: a modified
        // tensor the target has as HEAD has it (its file gets the target's other tensors in place,
        // or is not written), a side file changed, added or deleted where HEAD and the target agree.
        // Any other change refuses the checkout before anything is written.
        var carried = Set<String>()
        if !cmp.report.clean && !force && !discard {
            let check = Self.carryCheck(cmp, manifest: manifest, files: files)
            carried = check.carried
            if !check.overwritten.isEmpty { throw Self.overwritten(check.overwritten, untracked: check.untracked, keepingHead: keepHead ? shown : nil) }
        }
        if !force { try refuseUnlistedEntries(at: files, cmp: cmp, shown: shown, keepHead: keepHead) }
        let carriedFiles = Set(cmp.report.modifiedTensors.filter { carried.contains($0.name) }.map(\.file)
            + cmp.report.sideFiles.map(\.path).filter(carried.contains))
        var result = workTreeResult()
        result.carriedTensors = cmp.report.modifiedTensors.map(\.name).filter(carried.contains)
        result.carriedSideFiles = cmp.report.sideFiles.filter { carried.contains($0.path) }
        // Decide which files must be written; unchanged tensors are copied from the (clean) work
        // tree, and changed ones of a later version of what it holds continue from its bytes (not
        // with --force, which rewrites whole files from the ledger: a repair must not trust the
        // stat cache).
        var toWrite: [FileEntry] = []
        let workTree = force ? [:] : workTreeVersions(cmp)
        let sources = Self.unchanged(manifest, in: workTree)
        let dirty = Set(cmp.report.modifiedTensors.map(\.name))
        /// Whether the work tree holds tensor `t` of the target unmodified.
        func clean(_ t: ManifestEntry) -> Bool { cmp.manifest[t.name]?.hash == t.hash && !dirty.contains(t.name) }
        for (path, f) in files.sorted(by: { $0.key < $1.key }) {
            let current = cmp.files[path]
            switch f.kind {
            case .side:
                if !force, cmp.sideHashes[path] == f.object || carried.contains(path) { result.unchanged.append(path); continue }
                toWrite.append(f)
            case .safetensors:
                let tensorsHere = manifest.values.filter { $0.file == path }
                let sameTensors = tensorsHere.allSatisfy { clean($0) || carried.contains($0.name) }
                let exists = cmp.weights.files[path] != nil
                if !force, exists, current?.object == f.object, cmp.headerHashes[path] == f.object, sameTensors, cmp.report.structural.isEmpty {
                    result.unchanged.append(path)
                    continue
                }
                toWrite.append(f)
            }
        }
        let removals = Set(cmp.files.filter { $0.value.kind == .side && files[$0.key] == nil }.map(\.key) + extraRemovals).sorted()
        // Weight files that only need some tensors written get them in place: rebuilt (and
        // verified) now, listed in the journal with the staged files, written after the renames
        // (a failure from there on leaves the journal, and the next command finishes the job).
        // Not with --force, which rewrites whole files from the ledger (a repair must not trust
        // the stat cache), and at most `inPlaceMemoryLimit` bytes held in memory over all files
        // (the rebuilt tensors with what their rebuilding holds).
        var patches: [InPlaceWrite] = []
        if try !force && (inPlace ?? inPlaceByDefault()) {
            // Files holding carried changes take the memory budget first: they cannot go whole.
            toWrite = toWrite.filter { carriedFiles.contains($0.path) } + toWrite.filter { !carriedFiles.contains($0.path) }
            var held = 0
            toWrite = try toWrite.filter { f in
                let changed = manifest.values.filter { $0.file == f.path && !clean($0) && !carried.contains($0.name) }
                    .map(\.name).sorted()
                guard let target = inPlaceTarget(f.path, entry: f, cmp: cmp, changed: changed, limit: inPlaceMemoryLimit - held),
                      let file = try? InPlaceFile(root + "/" + f.path) else { return true }
                let patch = InPlacePatch(path: f.path, tensors: changed)
                let tally = RebuildTally()
                guard let rebuilt = try rebuildForPatch(patch, header: target.header, manifest: manifest, verifySHA256: verifySHA256,
                                                        limit: inPlaceMemoryLimit - held, current: workTree, tally: tally) else { return true }
                held += rebuilt.held
                result.count(tally)
                patches.append(InPlaceWrite(patch: patch, file: file, header: target.header, tensors: rebuilt.tensors))
                return false
            }
        }
        // A file holding carried changes must keep them: one that would be rewritten whole instead
        // of patched in place (in-place writing off or not possible for it) refuses the checkout.
        if let whole = toWrite.first(where: { carriedFiles.contains($0.path) }) {
            let kept = cmp.report.modifiedTensors.filter { $0.file == whole.path && carried.contains($0.name) }.prefix(3).map { "'\($0.name)'" }
            throw KitError.refused("checkout would rewrite '\(whole.path)' whole and lose your uncommitted changes to \(kept.joined(separator: ", ")) (it can only keep them writing in place): commit them, or use --force to discard them")
        }
        try writeFiles(toWrite, into: root, manifest: manifest, sources: sources, current: workTree, verifySHA256: verifySHA256,
                       progress: progress, result: &result) { staged in
            try self.writeJournal(PendingOperation(kind: .checkout, commit: target, branch: branch,
                                                   renames: staged.map { [self.relativeToRoot($0.tempPath), self.relativeToRoot($0.path)] },
                                                   removes: removals, patches: patches.map(\.patch), keepHead: keepHead ? true : nil,
                                                   removeDigests: removeDigests.isEmpty ? nil : removeDigests))
            FaultInjection.point("checkout-journaled")
        }
        for p in patches {
            try p.write()
            result.written.append(p.patch.path)
            result.patchedInPlace.append(p.patch.path)
            result.tensorsRebuilt += p.tensors.count
            result.bytesWritten += p.bytes
        }
        result.written.sort()
        FaultInjection.point("checkout-renamed")
        // Side files tracked at HEAD but not in the target are removed (those with a required
        // digest only while they have it).
        removeSideFiles(removals.filter { PendingOperation.removable(root + "/" + $0, relative: $0, digests: removeDigests) }, result: &result)
        if !keepHead { try moveHead(to: target, branch: branch, create: newBranch != nil) }
        clearJournal()
        // Files with carried changes do not hold the target's bytes: their stats are not recorded.
        var written: [String: FileStat] = [:]
        for p in result.written { written[p] = FileStat.of(root + "/" + p) }
        for p in result.unchanged { written[p] = cmp.stats[p] }
        if !keepHead { try recordStats((result.written + result.unchanged).filter { !carriedFiles.contains($0) }, commit: target, scanned: written) }
        return result
    }

    /// No file can be renamed over a directory: one where the target (`files`) has a file refuses
    /// the checkout before its journal (even with --force), which would otherwise fail halfway and
    /// leave the next command's recovery failing on the same rename.
    func refuseDirectories(at files: [String: FileEntry], shown: String) throws {
        for path in files.keys.sorted() where WorkTreeComparison.fileType(root + "/" + path) == .typeDirectory {
            throw KitError.refused("'\(root)/\(path)' is a directory where \(shown) has a file; move it away first")
        }
    }

    /// A file the target has and HEAD does not, where the work tree holds something its scan does
    /// not list (a side file past the size limit, a symbolic link that leads nowhere or to a
    /// directory, a FIFO or socket): as git's "untracked working tree file would be overwritten",
    /// refused before a byte is written (`checkout --force` replaces it, as git's; `keepHead`:
    /// `stash apply`, which has no --force).
    func refuseUnlistedEntries(at files: [String: FileEntry], cmp: WorkTreeComparison, shown: String, keepHead: Bool) throws {
        for (path, f) in files.sorted(by: { $0.key < $1.key })
        where cmp.files[path] == nil && cmp.sideHashes[path] == nil && cmp.weights.files[path] == nil {
            let full = root + "/" + path
            if f.kind == .side, let what = WorkTreeComparison.oversizedSideFile(full) {
                throw KitError.refused("'\(full)' is \(what) that \(shown) would overwrite with its tracked file; move it away first")
            }
            if let what = WorkTreeComparison.unlistedEntry(full) {
                throw KitError.refused("'\(full)' is \(what), untracked, that \(shown) would replace with its tracked file; move it away first\(keepHead ? "" : ", or use --force")")
            }
        }
    }

    /// The uncommitted changes of a scanned work tree that a switch to a tree (`manifest`, `files`)
    /// leaves alone (`carried`: modified tensors the target has as HEAD has them, side files
    /// changed where HEAD and the target agree) and those it would overwrite, as a refusal names
    /// them (structural changes, headers, the other tensors and side files).
    static func carryCheck(_ cmp: WorkTreeComparison, manifest: [String: ManifestEntry], files: [String: FileEntry])
        -> (carried: Set<String>, overwritten: [String], untracked: [String]) {
        var carried = Set<String>(), untracked: [String] = []
        var what = Array(cmp.report.structural.prefix(2)) + cmp.report.modifiedHeaders.map { "the header of '\($0)'" }
        for t in cmp.report.modifiedTensors {
            if manifest[t.name]?.hash == cmp.manifest[t.name]?.hash { carried.insert(t.name) } else { what.append("'\(t.name)'") }
        }
        for s in cmp.report.sideFiles {
            if files[s.path]?.object == cmp.files[s.path]?.object {
                carried.insert(s.path)
            } else if !(s.change == .deleted && files[s.path] == nil) {
                // (a file deleted here that the target does not have is already as the target has it)
                what.append("'\(s.path)'")
                if s.change == .added { untracked.append(s.path) }
            }
        }
        return (carried, what, untracked)
    }

    /// The refusal of a checkout that would overwrite uncommitted changes (`what`: up to six).
    /// `keepingHead`: the revision written under HEAD (`stash apply`), which has no --force.
    /// `untracked`: those of them that are untracked files, which neither a stash nor `checkout
    /// --force HEAD` moves out of the way.
    static func overwritten(_ what: [String], untracked: [String] = [], keepingHead revision: String? = nil) -> KitError {
        let list = what.prefix(6).joined(separator: ", ")
        if let revision, untracked.count == what.count {
            let names = untracked.prefix(6).map { "'\($0)'" }.joined(separator: ", ")
            return .refused("\(revision) would overwrite the untracked file\(untracked.count == 1 ? "" : "s") \(names); move \(untracked.count == 1 ? "it" : "them") away first")
        }
        if let revision {
            return .refused("your local changes would be overwritten by \(revision): \(list); commit or stash them first, or discard them with 'wledger checkout --force HEAD'")
        }
        return .refused("your local changes would be overwritten by checkout: \(list); commit them or use --force")
    }

    /// Unlinks side files of the work tree, listing in `result` those that are gone.
    private func removeSideFiles(_ paths: [String], result: inout CheckoutResult) {
        for path in paths where unlink(root + "/" + path) == 0 || errno == ENOENT { result.removed.append(path) }
    }

    /// The ledger's record of where HEAD was before the last checkout that moved it (`checkout -`).
    static let previousHeadKey = "checkout.previous"

    /// The branch, or the commit of a detached HEAD, that the last checkout moving HEAD left.
    func previousCheckout() throws -> String {
        guard let p = try ledger.meta(Self.previousHeadKey) else {
            throw KitError.usage("no previous checkout to return to ('-' names where the last checkout came from)")
        }
        if p.hasPrefix(RefKind.branch.prefix), try ledger.refTarget(p) == nil {
            throw KitError.usage("the previous branch '\(p.dropFirst(RefKind.branch.prefix.count))' ('-') no longer exists")
        }
        return p
    }

    /// Points HEAD at `state` (call inside a transaction) when it is not there already, recording
    /// where it was for `checkout -` (the branch, or the commit of a detached HEAD) and logging
    /// the move as git does ("checkout: moving from main to 3f2a…").
    func switchHead(to state: HeadState) throws {
        let old = try ledger.head()
        guard old != state else { return }
        try ledger.setMeta(Self.previousHeadKey, old.branchName.map { RefKind.branch.prefix + $0 } ?? old.commit)
        func name(_ h: HeadState) -> String { h.branchName ?? String(h.commit.prefix(12)) }
        try ledger.setHead(state, message: "checkout: moving from \(name(old)) to \(name(state))")
    }

    /// The reflog message of a branch created at `target`.
    static func createdMessage(_ target: String) -> String { "branch: Created from \(target.prefix(12))" }

    /// Points HEAD at `branch` (created at `target` first when `create`), or detaches it at `target`.
    private func moveHead(to target: String, branch: String?, create: Bool = false) throws {
        try ledger.transaction {
            if let branch {
                if create { try ledger.updateRef(RefKind.branch.prefix + branch, to: target, expected: .absent, message: Self.createdMessage(target)) }
                try switchHead(to: .branch(name: branch, commit: target))
            } else {
                try switchHead(to: .detached(commit: target))
            }
        }
    }

    /// Checks that `dir` is outside the model directory (compared with symbolic links resolved)
    /// and is an empty directory or absent, creating it and missing parents when absent; the
    /// topmost directory it created (nil: none), which holds everything it made.
    private func prepareOutputDirectory(_ dir: String) throws -> String? {
        let realRoot = resolvedPath(root), realDir = resolvedPath(dir)
        if realDir == realRoot || realDir.hasPrefix(realRoot + "/") {
            throw KitError.usage("'\(dir)': --output must be outside the model directory '\(root)'")
        }
        var st = Glibc.stat()
        if lstat(dir, &st) == 0 {
            guard stat(dir, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else {
                throw KitError.usage("'\(dir)': output exists and is not a directory")
            }
            let entries = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
            guard entries.isEmpty else { throw KitError.usage("'\(dir)': output directory is not empty") }
            return nil
        }
        // mkdir -p, with the system's reason for a failure.
        var path = "", created: String?
        for part in dir.split(separator: "/", omittingEmptySubsequences: true) {
            path += "/" + part
            if mkdir(path, 0o777) == 0 {
                if created == nil { created = path }
            } else if errno != EEXIST || stat(path, &st) != 0 || (st.st_mode & S_IFMT) != S_IFDIR {
                throw TensorIOError.io(path: path, operation: "create", reason: errno == EEXIST ? "not a directory" : String(cString: strerror(errno)))
            }
        }
        return created
    }

    /// A clean work tree's tensors with the versions they hold, for rebuilds of later versions of
    /// them to continue from (`TensorRecipe.start`); none when its structure differs from HEAD's.
    private func workTreeVersions(_ cmp: WorkTreeComparison) -> [String: WorkTreeTensor] {
        guard cmp.report.structural.isEmpty else { return [:] }
        let dirty = Set(cmp.report.modifiedTensors.map(\.name))
        var out: [String: WorkTreeTensor] = [:]
        for (name, e) in cmp.manifest where !dirty.contains(name) {
            if let v = RawView.tensor(name, in: cmp.weights) { out[name] = WorkTreeTensor(version: e.hash, bytes: v) }
        }
        return out
    }

    /// The work tree's bytes of every target tensor it holds as the target has it (copied, not rebuilt).
    private static func unchanged(_ manifest: [String: ManifestEntry], in workTree: [String: WorkTreeTensor]) -> [String: RawView] {
        var out: [String: RawView] = [:]
        for (name, e) in manifest { if let w = workTree[name], w.version == e.hash { out[name] = w.bytes } }
        return out
    }

    /// Writes `files` of a commit into `dir`, each atomically (all staged first, then renamed).
    /// `beforeRename` runs once every file is staged and fsynced, before the first rename (the
    /// in-place checkout writes its journal there, then its in-place tensors).
    /// - Parameter current: what `workTreeVersions` found, for tensors rebuilt from the ledger.
    private func writeFiles(_ files: [FileEntry], into dir: String, manifest: [String: ManifestEntry], sources: [String: RawView],
                            current: [String: WorkTreeTensor] = [:], verifySHA256: Bool, progress: ProgressReporter, result: inout CheckoutResult,
                            beforeRename: (([AtomicFileWriter]) throws -> Void)? = nil) throws {
        let byFile = Dictionary(grouping: manifest.values, by: \.file)
        let totalTensors = files.filter { $0.kind == .safetensors }.reduce(0) { $0 + (byFile[$1.path]?.count ?? 0) }
        progress.start("writing tensors", total: totalTensors)
        var staged: [AtomicFileWriter] = []
        var journaled = false
        do {
            for f in files.sorted(by: { $0.path < $1.path }) {
                let path = dir + "/" + f.path
                switch f.kind {
                case .side:
                    let bytes = try LedgerError.naming(file: f.path) { try ledger.readObject(f.object!) }
                    let w = try AtomicFileWriter(path: path, size: bytes.count)
                    staged.append(w)
                    try w.write(bytes, at: 0)
                    result.bytesWritten += bytes.count
                case .safetensors:
                    let prefix = try LedgerError.naming(file: f.path) { try ledger.readObject(f.object!) }
                    let tally = RebuildTally()
                    let (w, rebuilt) = try stageWeightFile(path, prefix: prefix, size: f.size, manifest: manifest, verifySHA256: verifySHA256,
                                                           tally: tally, progress: progress) { t in
                        if let v = sources[t.name] { return .view(v) }
                        return .ledger(manifest[t.name]!.hash, current: current[t.name])
                    }
                    staged.append(w)
                    result.tensorsRebuilt += rebuilt
                    result.count(tally)
                    result.bytesWritten += f.size
                }
                result.written.append(f.path)
            }
            for w in staged { try w.sync() }
            if let beforeRename {
                try beforeRename(staged)
                journaled = true
            }
            for (i, w) in staged.enumerated() {
                if i == 0 && journaled { try FaultInjection.error("checkout-rename-error", path: w.path) }
                try w.commit(sync: false, keepOnFailure: journaled)
            }
            syncDirectory(dir)
        } catch {
            // Once the journal names the staged files, they are the next command's to rename in.
            for w in staged { if journaled { w.keep() } else { w.abort() } }
            throw error
        }
        progress.finish()
    }
}
