import Codec
import Foundation
import Ledger
import TensorIO

/// The state of one changed side file.
public enum FileChange: String, Encodable, Sendable {
    case added, modified, deleted
}

/// How the work tree differs from a commit.
public struct StatusReport: Encodable, Sendable {
    public var branch: String?
    public var head: String
    /// Tensors whose bytes differ (name, file).
    public var modifiedTensors: [TensorRef]
    /// Weight files whose header bytes differ (metadata, order or padding).
    public var modifiedHeaders: [String]
    public var sideFiles: [SideFileChange]
    /// Differences that cannot be committed (missing, new or reshaped tensors, changed shard set).
    public var structural: [String]
    public var clean: Bool { modifiedTensors.isEmpty && modifiedHeaders.isEmpty && sideFiles.isEmpty && structural.isEmpty }

    public struct TensorRef: Encodable, Sendable, Equatable {
        public var name: String
        public var file: String
    }
    public struct SideFileChange: Encodable, Sendable, Equatable {
        public var path: String
        public var change: FileChange
    }

    enum CodingKeys: String, CodingKey { case branch, head, modifiedTensors, modifiedHeaders, sideFiles, structural, clean }
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(branch, forKey: .branch)
        try c.encode(head, forKey: .head)
        try c.encode(modifiedTensors, forKey: .modifiedTensors)
        try c.encode(modifiedHeaders, forKey: .modifiedHeaders)
        try c.encode(sideFiles, forKey: .sideFiles)
        try c.encode(structural, forKey: .structural)
        try c.encode(clean, forKey: .clean)
    }
}

/// A scan of the work tree compared with a commit, with what later steps need (mapped weights,
/// fingerprints of tensors that were hashed, side file contents).
struct WorkTreeComparison {
    /// A file at `path` the scan does not read as a side file because of its size ("70.0 MB, over
    /// the 64 MiB limit for side files"), or nil.
    static func oversizedSideFile(_ path: String) -> String? {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir), !isDir.boolValue,
              let size = FileStat.of(path)?.size, size > ModelDirectory.maxSideFileBytes else { return nil }
        return String(format: "%.1f MB, over the %d MiB limit for side files", Double(size) / 1e6, ModelDirectory.maxSideFileBytes >> 20)
    }

    /// What stands at `path` that a scan does not list and a rename would replace: a symbolic
    /// link that leads nowhere, to a directory or to a special file (one to a regular file is
    /// listed as its file), or a FIFO, socket or device; nil for nothing, a directory or a
    /// regular file.
    static func unlistedEntry(_ path: String) -> String? {
        fileType(path) == .typeDirectory ? nil : ModelDirectory.nonFileEntry(path)
    }

    /// The type of `path` itself, not of a link's target (nil when nothing is there).
    static func fileType(_ path: String) -> FileAttributeType? {
        (try? FileManager.default.attributesOfItem(atPath: path)[.type]) as? FileAttributeType
    }

    let directory: ModelDirectory
    let weights: ModelWeights
    let commit: String
    let manifest: [String: ManifestEntry]
    let files: [String: FileEntry]
    var report: StatusReport
    /// Weight and side files trusted unchanged from their recorded stat (not hashed).
    var statClean: Set<String>
    /// Fingerprints of the work tree tensors that were hashed (not those their probe found changed).
    var fingerprints: [String: Fingerprint]
    /// Side files present in the work tree: sha256 (for stat-clean ones, the committed object's).
    var sideHashes: [String: String]
    /// Contents of the side files that were read (all but the stat-clean ones).
    var sideContents: [String: [UInt8]]
    /// Header prefix sha256 per weight file.
    var headerHashes: [String: String]
    /// Stat of each weight and side file at scan time.
    var stats: [String: FileStat]
    /// Probes of unchanged tensors whose committed version has none (a ledger from before schema
    /// 0004), by version hash: the scan read them from the work tree for `fillMissingProbes`.
    var missingProbes: [String: Int64] = [:]
    /// Wall-clock time before any file was stat'ed or read (CLOCK_REALTIME ns).
    var scannedAt: Int64

    /// Files that were hashed this time and found equal to the commit (a weight file's header and
    /// every tensor, a side file's bytes): their stat can be recorded so the next scan skips them.
    var verifiedCleanFiles: [String] {
        let dirtyFiles = Set(report.modifiedTensors.map(\.file)).union(report.modifiedHeaders).union(report.sideFiles.map(\.path))
        return (directory.weightFiles + directory.sideFiles).filter { !statClean.contains($0) && !dirtyFiles.contains($0) && files[$0] != nil }
    }

    /// What this scan found clean, for a later scan of the same process (`compare(vouched:)`):
    /// the stats of the committed files it hashed or trusted, none of them changed. Nil when
    /// anything but untracked side files differs from the commit.
    var cleanScan: CleanScan? {
        guard !Repository.hasUncommittedChanges(report, except: []) else { return nil }
        let clean = Set(verifiedCleanFiles).union(statClean)
        return CleanScan(commit: commit, stats: stats.filter { clean.contains($0.key) }, scannedAt: scannedAt)
    }

    /// Scans `root` and compares it with `commit`.
    /// - Parameter rehash: ignore recorded stats and hash everything.
    /// - Parameter onModified: called on this thread with each tensor found changed (name, the
    ///   committed entry, its new fingerprint or nil when its probe told, the mapped work tree),
    ///   while the others are still being hashed, in no particular order.
    /// - Parameter throttle: how many threads the hashing may use at the moment (all cores by
    ///   default); a commit lends cores to the encodings `onModified` starts.
    /// - Parameter prefetched: a hashing of the work tree started before (`TensorHashing.prefetch`),
    ///   used when it still matches; stopped otherwise.
    /// - Parameter onScanned: called on this thread once the tensors the probes found changed
    ///   were handed to `onModified`; from then on this thread mostly waits for the hashing.
    /// - Parameter vouched: an earlier scan of this process that found the work tree clean; its
    ///   files whose stat has not changed since are trusted as the ledger's stat cache would be.
    static func compare(root: String, ledger: Ledger, commit: String, branch: String?, rehash: Bool, progress: ProgressReporter,
                        throttle: Throttle? = nil, prefetched: TensorHashing? = nil, vouched: CleanScan? = nil, onScanned: (() -> Void)? = nil,
                        onModified: ((String, ManifestEntry, String?, ModelWeights) throws -> Void)? = nil) throws -> WorkTreeComparison {
        // A hashing started earlier is taken over below if the work tree is still what it mapped;
        // otherwise it stops here, on every path out.
        var prefetched = prefetched
        defer { prefetched?.cancel() }
        // Everything hashed below is read after this instant (see `racyWindow`).
        var scannedAt = wallClockNanoseconds()
        let dir = try ModelDirectory.scan(root, missingWeights: true)   // reported below as "missing weight file"
        let files = try ledger.files(of: commit)
        var stats: [String: FileStat] = [:]
        var statClean = Set<String>()
        for f in dir.weightFiles + dir.sideFiles {
            guard let st = FileStat.of(root + "/" + f) else { continue }
            stats[f] = st
            let kind: FileKind = dir.weightFiles.contains(f) ? .safetensors : .side
            guard !rehash, files[f]?.kind == kind else { continue }
            if let v = vouched, v.commit == commit, v.stats[f] == st, st.mtimeNs + racyWindow(mtimeNs: st.mtimeNs) < v.scannedAt {
                statClean.insert(f)
            } else if let rec = try ledger.worktreeStat(f), rec.commit == commit, rec.stat == st,
                      st.mtimeNs + racyWindow(mtimeNs: st.mtimeNs) < rec.recordedNs {
                statClean.insert(f)
            }
        }
        let toHash = Set(dir.weightFiles).subtracting(statClean)
        // Tensors: every tensor of a file that was not stat-clean is fingerprinted, in parallel,
        // from here on (or since before the repository was opened), while this thread checks the
        // structure, looks up the committed fingerprints and reads the probes.
        let scan: TensorHashing
        if let p = prefetched, p.matches(root: root, directory: dir, stats: stats) {
            scan = p
            scan.skip(files: statClean)
            scannedAt = p.scannedAt
        } else {
            prefetched?.cancel()
            scan = try TensorHashing(root: root, directory: dir, scannedAt: scannedAt, stats: stats, skipFiles: statClean,
                                     throttle: throttle, progress: progress)
        }
        prefetched = scan   // stopped on a throw below
        let weights = scan.weights, names = scan.names, slots = scan.slots, skipped = scan.skipped, hashed = scan.hashed
        let considered = names.map { toHash.contains(weights.tensors[$0]!.file) }
        var manifest: [String: ManifestEntry] = [:]
        var sideHashes: [String: String] = [:], sideContents: [String: [UInt8]] = [:]
        var report = StatusReport(branch: branch, head: commit, modifiedTensors: [], modifiedHeaders: [], sideFiles: [], structural: [])
        var headerHashes: [String: String] = [:]
        var expected = [(fingerprint: String, probe: Int64?)?](repeating: nil, count: names.count)
        var changedByProbe = Set<Int>()
        do {
            defer { _ = try? scan.wait() }   // it reads the mapped files
            // The committed manifest (tensor names, shapes, versions), read while the hashing starts.
            manifest = try ledger.manifest(of: commit)
            // First the probes, so that an edited tensor starts encoding as early as possible: the
            // committed versions' fingerprints and probes, for tensors of the same dtype and shape.
            let comparable = names.indices.filter { i in
                guard considered[i], let e = manifest[names[i]], let loc = weights.tensors[names[i]] else { return false }
                return e.dtype == loc.info.dtype && e.shape == loc.info.shape
            }
            let versions = try ledger.fingerprintsAndProbes(Array(Set(comparable.map { manifest[names[$0]]!.hash })))
            for i in comparable {
                let hash = manifest[names[i]]!.hash
                guard let v = versions[hash] else { throw LedgerError.corruptObject(id: hash, reason: "tensor version missing") }
                expected[i] = v
            }
            // Probes (a few pages of each tensor): a tensor whose probe differs from its version's
            // changed, and is handed to `onModified` at once. It is not hashed unless a worker got
            // to it first (no fingerprint then: whoever stores it hashes it).
            for i in names.indices {
                guard let want = expected[i]?.probe, let loc = weights.location(names[i]), try Probe.of(loc.map, range: loc.range) != want
                else { continue }
                skipped[i] = true
                changedByProbe.insert(i)
            }
            for i in changedByProbe.sorted() { try onModified?(names[i], manifest[names[i]]!, nil, weights) }
            // Structure: same weight files, tensor names, dtypes and shapes as the commit.
            let committedWeightFiles = Set(files.values.filter { $0.kind == .safetensors }.map(\.path))
            for f in Set(dir.weightFiles).subtracting(committedWeightFiles).sorted() { report.structural.append("new weight file '\(f)'") }
            let missingFiles = committedWeightFiles.subtracting(dir.weightFiles)
            for f in missingFiles.sorted() {
                let count = manifest.values.filter { $0.file == f && weights.tensors[$0.name] == nil }.count
                report.structural.append("missing weight file '\(f)'" + (count > 0 ? " (\(count) tensor\(count == 1 ? "" : "s"))" : ""))
            }
            for (name, loc) in weights.tensors.sorted(by: { $0.key < $1.key }) {
                guard let e = manifest[name] else { report.structural.append("new tensor '\(name)' in '\(loc.file)'"); continue }
                if e.dtype != loc.info.dtype || e.shape != loc.info.shape {
                    report.structural.append("tensor '\(name)' changed from \(e.dtype.rawValue) \(e.shapeJSON) to \(loc.info.dtype.rawValue) \(loc.info.shapeDescription.replacingOccurrences(of: " ", with: ""))")
                } else if e.file != loc.file {
                    report.structural.append("tensor '\(name)' moved from '\(e.file)' to '\(loc.file)'")
                }
            }
            // (A missing weight file's tensors are counted on its line, not listed.)
            for (name, e) in manifest.sorted(by: { $0.key < $1.key }) where weights.tensors[name] == nil && !missingFiles.contains(e.file) {
                report.structural.append("missing tensor '\(name)'")
            }

            // Headers.
            for f in dir.weightFiles {
                guard let sf = weights.files[f] else { continue }
                let h = SHA256Digest.hash(sf.header.prefixBytes).hex
                headerHashes[f] = h
                if !statClean.contains(f), let committed = files[f], committed.object != h { report.modifiedHeaders.append(f) }
            }

            onScanned?()
            // Side files, read and hashed meanwhile (those whose recorded stat holds are not read).
            for f in dir.sideFiles {
                if statClean.contains(f), let committed = files[f]?.object {
                    sideHashes[f] = committed
                    continue
                }
                let bytes = try readFile(root + "/" + f)
                let h = SHA256Digest.hash(bytes).hex
                sideHashes[f] = h
                sideContents[f] = bytes
                if let committed = files[f], committed.kind == .side {
                    if committed.object != h { report.sideFiles.append(.init(path: f, change: .modified)) }
                } else if files[f] == nil {
                    report.sideFiles.append(.init(path: f, change: .added))
                }
            }
            for (path, f) in files where f.kind == .side && sideHashes[path] == nil {
                // Gone (or a directory now, which nothing writes over), or still there but past the
                // size limit the scan reads: the latter is not a deletion, which a stash or
                // checkout would carry out over the file.
                if let what = Self.oversizedSideFile(root + "/" + path) {
                    throw KitError.usage("'\(root)/\(path)': the tracked side file is now \(what); move it away or shrink it "
                        + "('wledger checkout --force HEAD' writes the committed one back)")
                }
                report.sideFiles.append(.init(path: path, change: .deleted))
            }
            report.sideFiles.sort { $0.path < $1.path }
            // Each tensor hashed so far and from now on, against its committed fingerprint.
            while let i = hashed.next() {
                guard !changedByProbe.contains(i), let fp = slots[i], let want = expected[i]?.fingerprint, fp.hex != want else { continue }
                try onModified?(names[i], manifest[names[i]]!, fp.hex, weights)
            }
        }
        try scan.wait()
        progress.finish()
        var fingerprints: [String: Fingerprint] = [:], missingProbes: [String: Int64] = [:]
        for (i, n) in names.enumerated() where considered[i] {
            fingerprints[n] = slots[i]
            if changedByProbe.contains(i) || (expected[i].map { slots[i]?.hex != $0.fingerprint } ?? false) {
                report.modifiedTensors.append(.init(name: n, file: weights.tensors[n]!.file))
            } else if let e = expected[i], e.probe == nil, slots[i]?.hex == e.fingerprint {
                missingProbes[manifest[n]!.hash] = Probe.of(weights.bytes(n)!)
            }
        }

        return WorkTreeComparison(directory: dir, weights: weights, commit: commit, manifest: manifest, files: files, report: report,
                                  statClean: statClean, fingerprints: fingerprints, sideHashes: sideHashes, sideContents: sideContents,
                                  headerHashes: headerHashes, stats: stats, missingProbes: missingProbes, scannedAt: scannedAt)
    }
}

/// A work-tree scan that found every committed file equal to `commit`: the files' stats then, and
/// the instant before they were read. A later scan in the same process trusts a file whose stat
/// is still the same (and not within the racy window of that instant) without hashing it again,
/// as it trusts the ledger's stat cache; unlike that cache, it leaves the ledger as it was, so a
/// command that refuses later has changed nothing.
struct CleanScan {
    let commit: String
    let stats: [String: FileStat]
    let scannedAt: Int64
}

extension Repository {
    /// `wledger status`: how the work tree differs from HEAD.
    /// - Parameters:
    ///   - rehash: ignore the recorded file stats and hash every tensor.
    ///   - cacheStats: record the stats of files found clean (off for the clean-tree checks of
    ///     `edit` and `bisect`, which must leave the ledger untouched when they refuse).
    public func status(rehash: Bool = false, cacheStats: Bool = true, progress: ProgressReporter = .silent) throws -> StatusReport {
        let head = try ledger.head()
        let cmp = try WorkTreeComparison.compare(root: root, ledger: ledger, commit: head.commit, branch: head.branchName,
                                                 rehash: rehash, progress: progress)
        // Files just proven clean get their stat recorded, so the next status does not rehash them
        // (a read command may race a writer; the cache is only an optimization, so failures are ignored).
        if !cacheStats || !cmp.report.structural.isEmpty { return cmp.report }
        try? recordStats(cmp.verifiedCleanFiles, commit: head.commit, scanned: cmp.stats, readAt: cmp.scannedAt)
        try? fillMissingProbes(cmp)
        return cmp.report
    }

    /// Gives the versions of a ledger from before schema 0004 the probes a scan read for them, so
    /// that later scans find rewritten tensors by probe.
    func fillMissingProbes(_ cmp: WorkTreeComparison) throws {
        guard !cmp.missingProbes.isEmpty else { return }
        try ledger.transaction { try ledger.fillMissingProbes(cmp.missingProbes) }
    }

    /// Records the current stat of work-tree files that equal `commit`, so the next scan can skip them.
    /// - Parameter readAt: a time before the files' contents were read (hashed) or after they
    ///   were written; now by default (for files this command wrote and then stat'ed).
    func recordStats(_ paths: [String], commit: String, scanned: [String: FileStat], readAt: Int64? = nil) throws {
        try ledger.transaction { try recordStatsInTransaction(paths, commit: commit, scanned: scanned, readAt: readAt) }
    }

    /// `recordStats` inside the caller's transaction.
    func recordStatsInTransaction(_ paths: [String], commit: String, scanned: [String: FileStat], readAt: Int64? = nil) throws {
        let now = readAt ?? wallClockNanoseconds()
        for p in paths {
            guard let st = FileStat.of(root + "/" + p) else { continue }
            // Only record when the file did not change since it was scanned or written.
            if let s = scanned[p], s != st { continue }
            try ledger.recordWorktreeStat(p, commit: commit, stat: st, recordedNs: now)
        }
    }
}

/// How long after a file's mtime a recorded stat must have been taken for the file to be
/// trusted without hashing (git's "racily clean" rule). A write that lands after the content
/// was read carries an mtime no earlier than that read minus the filesystem's timestamp
/// granularity, so a stat recorded more than one granule after the mtime cannot hide one.
/// Nanosecond filesystems (ext4, xfs, btrfs) stamp with the kernel's coarse clock (a few ms):
/// 100 ms. An mtime with no sub-second part suggests a coarse filesystem (FAT: 2 s): 2 s.
func racyWindow(mtimeNs: Int64) -> Int64 {
    mtimeNs % 1_000_000_000 == 0 ? 2_000_000_000 : 100_000_000
}
