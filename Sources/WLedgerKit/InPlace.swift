import Foundation
import Ledger
import TensorIO

/// A weight file that `checkout` (or revert, prune, restrain) updates by writing its changed
/// tensors into the existing file instead of writing the whole file anew: the journal names the
/// file and those tensors, so a killed operation is finished by writing them again
/// (`Repository.recoverInterruptedOperation`).
struct InPlacePatch: Codable, Equatable {
    /// Relative to the work tree.
    var path: String
    /// The tensors written, all of the target commit.
    var tensors: [String]
}

extension Repository {
    /// `core.in-place` of `.wledger/config` (true when unset): whether commands that write the work
    /// tree write changed tensors into weight files in place where the files allow it.
    /// - Throws: `KitError.usage` naming the config file when the value is not true or false.
    public func inPlaceByDefault() throws -> Bool {
        guard let v = try ConfigFile.load(configPath).get("core.in-place") else { return true }
        guard v == "true" || v == "false" else { throw KitError.usage("'\(configPath)': core.in-place must be true or false, got '\(v)'") }
        return v == "true"
    }

    /// Most bytes one command holds in memory to write tensors in place, over all its files: the
    /// rebuilt tensors, the stored objects of their recipes and the patches each build decodes
    /// (`inPlaceMemoryLimit`, this by default). Beyond it, or when the tensors are more than half
    /// a file, the file is written anew.
    static let inPlaceLimit = 1 << 30

    /// Where in work-tree weight file `path` the `changed` tensors go, when writing `entry` can
    /// write only them into it: the file is a regular file with no other hard link (a symlink into
    /// a Hugging Face cache, or a file shared with another directory, is replaced instead, never
    /// written through) that the user may read and write, its header is byte-identical to the
    /// target's (every tensor keeps its offset), its size is the target's, and the changed
    /// tensors are at most `limit` bytes and half the file. Nil otherwise.
    func inPlaceTarget(_ path: String, entry: FileEntry, cmp: WorkTreeComparison, changed: [String],
                       limit: Int = Repository.inPlaceLimit) -> (header: SafetensorsHeader, tensors: [TensorInfo], bytes: Int)? {
        guard entry.kind == .safetensors, cmp.report.structural.isEmpty, let file = cmp.weights.files[path],
              cmp.headerHashes[path] == entry.object, file.header.fileSize == entry.size else { return nil }
        var st = Glibc.stat()
        guard lstat(root + "/" + path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, st.st_nlink == 1, Int(st.st_size) == entry.size,
              access(root + "/" + path, R_OK | W_OK) == 0 else { return nil }
        let byName = Dictionary(uniqueKeysWithValues: file.header.tensors.map { ($0.name, $0) })
        let tensors = changed.compactMap { byName[$0] }
        let bytes = tensors.reduce(0) { $0 + $1.byteCount }
        guard tensors.count == changed.count, bytes <= limit, 2 * bytes <= entry.size else { return nil }
        return (file.header, tensors, bytes)
    }

    /// Rebuilds the target versions of a patch's tensors from the ledger (verified against their
    /// fingerprints, and sha256 with `verifySHA256`), in parallel, before anything is written; with
    /// the bytes that holds at its peak (the tensors, their recipes' stored objects, the patches
    /// the builds decode). Nil, having built nothing, when that would exceed `limit`.
    /// - Parameters:
    ///   - current: a clean work tree's tensors, with the versions they hold.
    ///   - tally: records where each rebuild began (`TensorRecipe.Origin`).
    func rebuildForPatch(_ patch: InPlacePatch, header: SafetensorsHeader, manifest: [String: ManifestEntry],
                         verifySHA256: Bool, limit: Int = .max, current: [String: WorkTreeTensor] = [:], tally: RebuildTally = RebuildTally())
        throws -> (tensors: [(info: TensorInfo, bytes: [UInt8])], held: Int)? {
        let byName = Dictionary(uniqueKeysWithValues: header.tensors.map { ($0.name, $0) })
        var items: [(TensorInfo, TensorRecipe)] = []
        for name in patch.tensors {
            guard let info = byName[name], let e = manifest[name], e.dtype == info.dtype, e.shape == info.shape, e.file == patch.path else {
                throw LedgerError.invalid("'\(root)/\(patch.path)': stored header and manifest disagree on tensor '\(name)'")
            }
            items.append((info, try ledger.recipe(for: e.hash, current: current[name])))
        }
        let held = items.reduce(0) { total, item in
            let (sum, overflow) = total.addingReportingOverflow(item.0.byteCount + item.1.heldBytes + item.1.decodedPatchBytes)
            return overflow ? Int.max : sum
        }
        guard held <= limit else { return nil }
        let out = Slots<[UInt8]>(items.count), recipes = items.map(\.1), names = items.map(\.0.name)
        try parallelFor(recipes.count) { i in
            let (bytes, origin) = try LedgerError.naming(tensor: names[i]) { try recipes[i].buildReportingOrigin(verifySHA256: verifySHA256) }
            tally.record(origin)
            out[i] = bytes
        }
        let built = out.values.map { $0! }
        return (items.indices.map { (items[$0].0, built[$0]) }, held)
    }

    /// Recovery of a killed in-place checkout or update: writes every tensor the journal lists (of
    /// commit `commit`) into its file again. Tensors it does not list were already the target's. A file
    /// that no longer has the target's size and header bytes (replaced or truncated since) is
    /// written anew from the ledger instead, so recovery always ends at the target.
    func redoInPlacePatches(_ patches: [InPlacePatch], commit: String) throws {
        guard !patches.isEmpty else { return }
        let manifest = try ledger.manifest(of: commit)
        let files = try ledger.files(of: commit)
        for p in patches {
            guard let entry = files[p.path], entry.kind == .safetensors, let object = entry.object else {
                throw LedgerError.invalid("'\(journalPath)': journal names '\(p.path)', which is not a weight file of \(commit.prefix(12))")
            }
            let full = root + "/" + p.path
            let prefix = try LedgerError.naming(file: p.path) { try ledger.readObject(object) }
            if let file = try? InPlaceFile(full), file.hasPrefix(prefix, size: entry.size) {
                let header = try SafetensorsHeader.parse(json: Array(prefix.dropFirst(8)), dataSize: entry.size - prefix.count, path: full)
                // Recovery finishes the job whatever it holds (the command that wrote the journal
                // checked the limit).
                try InPlaceWrite(patch: p, file: file, header: header,
                                 tensors: try rebuildForPatch(p, header: header, manifest: manifest, verifySHA256: false)!.tensors).write()
            } else {
                let (w, _) = try stageWeightFile(full, prefix: prefix, size: entry.size, manifest: manifest, verifySHA256: false,
                                                 progress: .silent) { .ledger(manifest[$0.name]!.hash) }
                try w.sync()
                try w.commit(sync: false)
            }
        }
    }
}

/// Tensors ready to be written into a weight file in place, with the file opened for it.
struct InPlaceWrite {
    let patch: InPlacePatch
    let file: InPlaceFile
    let header: SafetensorsHeader
    let tensors: [(info: TensorInfo, bytes: [UInt8])]

    var bytes: Int { tensors.reduce(0) { $0 + $1.bytes.count } }

    /// Writes the tensors at their offsets and flushes them to disk (fdatasync) before returning.
    /// - Parameter fault: the crash tests' fault point, reached with half of the tensors written.
    func write(fault: String = "checkout-patching") throws {
        for (k, t) in tensors.enumerated() {
            if k == tensors.count / 2 && k > 0 { FaultInjection.point(fault) }
            try t.bytes.withUnsafeBytes { try writeFully(file.fd, $0, at: header.dataStart + t.info.begin, path: file.path) }
        }
        guard fdatasync(file.fd) == 0 else { throw TensorIOError.io(path: file.path, operation: "fdatasync", reason: errnoText()) }
    }
}

/// A weight file opened for writing in place, opened before the journal is written so that a
/// file the user may not write is refused before anything changes. Only a regular file with no
/// other hard link, opened without following a symlink (checked on the open descriptor, so a
/// link that appears after `inPlaceTarget` looked is never written through).
final class InPlaceFile {
    let path: String
    let fd: Int32

    init(_ path: String) throws {
        self.path = path
        let fd = Glibc.open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { throw TensorIOError.io(path: path, operation: "open for writing", reason: errnoText()) }
        var st = Glibc.stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, st.st_nlink == 1 else {
            close(fd)
            throw TensorIOError.io(path: path, operation: "open for writing", reason: "not a regular file with a single link")
        }
        self.fd = fd
    }

    /// Whether the file is `size` bytes long and starts with `prefix` (a safetensors header).
    func hasPrefix(_ prefix: [UInt8], size: Int) -> Bool {
        var st = Glibc.stat()
        guard fstat(fd, &st) == 0, Int(st.st_size) == size else { return false }
        var head = [UInt8](repeating: 0, count: prefix.count)
        guard (try? head.withUnsafeMutableBytes { try readFully(fd, into: $0, at: 0, path: path) }) == true else { return false }
        return head == prefix
    }

    deinit { close(fd) }
}
