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
}

/// Where a tensor's bytes come from when a weight file is written.
private enum TensorSource {
    case workTree(UnsafeRawBufferPointer)
    case ledger(String)
}

/// `@unchecked Sendable` wrapper for raw views into memory maps that outlive the parallel loop.
private struct RawView: @unchecked Sendable { let bytes: UnsafeRawBufferPointer }
private struct WriterBox: @unchecked Sendable { let writer: AtomicFileWriter }

extension Repository {
    /// `wledger checkout <rev>`: rewrites the work tree to `revision` (every changed file written to
    /// a temporary file and renamed into place) and moves HEAD; or, with `output`, materializes
    /// the revision into another directory and leaves HEAD and the work tree alone.
    ///
    /// Refuses (`KitError.refused`) when the work tree has uncommitted changes, unless `force`.
    /// Every rebuilt tensor is verified against its fingerprint (and sha256 with `verifySHA256`).
    public func checkout(_ revision: String, output: String? = nil, force: Bool = false, verifySHA256: Bool = false,
                         progress: ProgressReporter = .silent) throws -> CheckoutResult {
        let resolver = RevisionResolver(ledger: ledger)
        let target = try resolver.resolve(revision)
        let branch = try resolver.branchName(revision)
        let manifest = try ledger.manifest(of: target)
        let files = try ledger.files(of: target)
        if let output {
            let dir = absolutePath(output)
            try prepareOutputDirectory(dir)
            var result = CheckoutResult(commit: target, branch: nil, directory: dir, written: [], unchanged: [], removed: [],
                                        tensorsRebuilt: 0, bytesWritten: 0)
            try writeFiles(Array(files.values), into: dir, manifest: manifest, sources: [:], verifySHA256: verifySHA256,
                           progress: progress, result: &result)
            return result
        }

        let head = try ledger.head()
        let cmp = try WorkTreeComparison.compare(root: root, ledger: ledger, commit: head.commit, branch: head.branchName,
                                                 rehash: false, progress: progress)
        if !cmp.report.clean && !force {
            var what = cmp.report.modifiedTensors.prefix(3).map { "'\($0.name)'" }
            what += cmp.report.sideFiles.prefix(3).map { "'\($0.path)'" }
            what += cmp.report.structural.prefix(2)
            throw KitError.refused("your local changes would be overwritten by checkout: \(what.joined(separator: ", ")); commit them or use --force")
        }
        var result = CheckoutResult(commit: target, branch: branch, directory: root, written: [], unchanged: [], removed: [],
                                    tensorsRebuilt: 0, bytesWritten: 0)
        // Decide which files must be written; unchanged tensors are copied from the (clean) work tree.
        var toWrite: [FileEntry] = []
        var sources: [String: RawView] = [:]
        let dirty = Set(cmp.report.modifiedTensors.map(\.name))
        for (path, f) in files.sorted(by: { $0.key < $1.key }) {
            let current = cmp.files[path]
            switch f.kind {
            case .side:
                if !force, let c = cmp.sideContents[path], c.hash == f.object { result.unchanged.append(path); continue }
                toWrite.append(f)
            case .safetensors:
                let tensorsHere = manifest.values.filter { $0.file == path }
                let sameTensors = tensorsHere.allSatisfy { cmp.manifest[$0.name]?.hash == $0.hash && !dirty.contains($0.name) }
                let exists = cmp.weights.files[path] != nil
                if !force, exists, current?.object == f.object, cmp.headerHashes[path] == f.object, sameTensors, cmp.report.structural.isEmpty {
                    result.unchanged.append(path)
                    continue
                }
                toWrite.append(f)
                if !force && cmp.report.structural.isEmpty {
                    for t in tensorsHere where cmp.manifest[t.name]?.hash == t.hash && !dirty.contains(t.name) {
                        if let b = cmp.weights.bytes(t.name) { sources[t.name] = RawView(bytes: b) }
                    }
                }
            }
        }
        try writeFiles(toWrite, into: root, manifest: manifest, sources: sources, verifySHA256: verifySHA256, progress: progress, result: &result)
        // Side files tracked at HEAD but not in the target are removed.
        for (path, f) in cmp.files where f.kind == .side && files[path] == nil {
            if unlink(root + "/" + path) == 0 || errno == ENOENT { result.removed.append(path) }
        }
        try ledger.transaction {
            if let branch {
                try ledger.setHead(.branch(name: branch, commit: target))
            } else {
                try ledger.setHead(.detached(commit: target))
            }
        }
        var written: [String: FileStat] = [:]
        for p in result.written { written[p] = FileStat.of(root + "/" + p) }
        for p in result.unchanged { written[p] = cmp.stats[p] }
        try recordStats(result.written + result.unchanged, commit: target, scanned: written)
        return result
    }

    private func prepareOutputDirectory(_ dir: String) throws {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        if fm.fileExists(atPath: dir, isDirectory: &isDir) {
            guard isDir.boolValue else { throw KitError.usage("'\(dir)': output exists and is not a directory") }
            let entries = (try? fm.contentsOfDirectory(atPath: dir)) ?? []
            guard entries.isEmpty else { throw KitError.usage("'\(dir)': output directory is not empty") }
        } else {
            do {
                try fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
            } catch {
                throw TensorIOError.io(path: dir, operation: "create", reason: "\(error.localizedDescription)")
            }
        }
    }

    /// Writes `files` of a commit into `dir`, each atomically.
    private func writeFiles(_ files: [FileEntry], into dir: String, manifest: [String: ManifestEntry], sources: [String: RawView],
                            verifySHA256: Bool, progress: ProgressReporter, result: inout CheckoutResult) throws {
        let byFile = Dictionary(grouping: manifest.values, by: \.file)
        let totalTensors = files.filter { $0.kind == .safetensors }.reduce(0) { $0 + (byFile[$1.path]?.count ?? 0) }
        progress.start("writing tensors", total: totalTensors)
        for f in files.sorted(by: { $0.path < $1.path }) {
            let path = dir + "/" + f.path
            switch f.kind {
            case .side:
                let bytes = try ledger.readObject(f.object!)
                try writeFileAtomically(path, bytes)
                result.bytesWritten += bytes.count
            case .safetensors:
                let prefix = try ledger.readObject(f.object!)
                let header = try SafetensorsHeader.parse(json: Array(prefix.dropFirst(8)), dataSize: f.size - prefix.count, path: path)
                let writer = WriterBox(writer: try AtomicFileWriter(path: path, size: f.size))
                try writer.writer.write(prefix, at: 0)
                let dataStart = header.dataStart
                // Rebuild in batches of at most ~512 MiB of stored data so memory stays bounded.
                var pending = header.tensors
                while !pending.isEmpty {
                    var batch: [(TensorInfo, RawView?, TensorRecipe?)] = []
                    var batchBytes = 0
                    while let t = pending.first, batch.isEmpty || batchBytes < 512 << 20 {
                        pending.removeFirst()
                        guard let entry = manifest[t.name], entry.dtype == t.dtype, entry.shape == t.shape else {
                            throw LedgerError.invalid("'\(f.path)': stored header and manifest disagree on tensor '\(t.name)'")
                        }
                        if let src = sources[t.name] {
                            batch.append((t, src, nil))
                        } else {
                            let r = try ledger.recipe(for: entry.hash)
                            batchBytes += r.storedBytes + t.byteCount
                            batch.append((t, nil, r))
                        }
                    }
                    let items = batch
                    try parallelFor(items.count) { i in
                        let (t, src, recipe) = items[i]
                        if let src {
                            try writer.writer.write(src.bytes, at: dataStart + t.begin)
                        } else if let recipe {
                            let bytes = try recipe.build(verifySHA256: verifySHA256)
                            try bytes.withUnsafeBytes { try writer.writer.write($0, at: dataStart + t.begin) }
                        }
                        progress.advance()
                    }
                    result.tensorsRebuilt += items.filter { $0.2 != nil }.count
                }
                try writer.writer.commit()
                result.bytesWritten += f.size
            }
            result.written.append(f.path)
        }
        progress.finish()
    }
}
