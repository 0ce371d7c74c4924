import Foundation
import Ledger
import TensorIO

/// Where a tensor's bytes come from when a weight file is written.
enum TensorSource {
    /// A view into a memory-mapped work-tree file that stays alive while staging.
    case view(RawView)
    /// Bytes computed in memory (revert, prune, restrain).
    case bytes([UInt8])
    /// A version rebuilt from the ledger; from `current` on when that holds an earlier version of
    /// its chain (`TensorRecipe.start`).
    case ledger(String, current: WorkTreeTensor? = nil)
}

/// `@unchecked Sendable` wrapper for raw views into memory maps that outlive the parallel loop.
/// A view of a tensor in a mapped file also names the file and the range, so staging can copy it
/// inside the kernel.
struct RawView: @unchecked Sendable {
    let bytes: UnsafeRawBufferPointer
    var file: MappedFile? = nil
    var offset = 0

    /// The bytes of tensor `name` in `weights`, with their file and offset.
    static func tensor(_ name: String, in weights: ModelWeights) -> RawView? {
        guard let loc = weights.location(name) else { return nil }
        return RawView(bytes: loc.map.bytes(loc.range), file: loc.map, offset: loc.range.lowerBound)
    }
}
private struct WriterBox: @unchecked Sendable { let writer: AtomicFileWriter }
private enum ReadySource: @unchecked Sendable {
    case view(UnsafeRawBufferPointer)
    case bytes([UInt8])
    case recipe(TensorRecipe)
}

extension Repository {
    /// Writes a weight file to a temporary file next to `path` (not yet renamed into place):
    /// the stored header prefix, then every tensor from its source, rebuilt in parallel in batches
    /// of at most ~512 MiB so memory stays bounded. Call `commit()` on the result to publish it,
    /// or `abort()` to drop it.
    /// - Parameters:
    ///   - tally: records where each tensor rebuilt from the ledger began (`TensorRecipe.Origin`).
    ///   - source: called serially, in offset order, for every tensor of the header.
    func stageWeightFile(_ path: String, prefix: [UInt8], size: Int, manifest: [String: ManifestEntry], verifySHA256: Bool,
                         tally: RebuildTally = RebuildTally(), progress: ProgressReporter, source: (TensorInfo) -> TensorSource)
        throws -> (writer: AtomicFileWriter, rebuilt: Int) {
        let header = try SafetensorsHeader.parse(json: Array(prefix.dropFirst(8)), dataSize: size - prefix.count, path: path)
        let writer = WriterBox(writer: try AtomicFileWriter(path: path, size: size))
        let dataStart = header.dataStart
        var rebuilt = 0
        // Every source first (the callback is cheap): views of mapped files join into runs of
        // adjacent tensors, copied inside the kernel by one background thread while the ledger is
        // read and the other tensors are rebuilt; each written range starts its writeback at once.
        var runs: [(begin: Int, view: RawView, tensors: Int)] = []
        var others: [(TensorInfo, TensorSource)] = []
        for t in header.tensors {
            guard let entry = manifest[t.name], entry.dtype == t.dtype, entry.shape == t.shape else {
                writer.writer.abort()
                throw LedgerError.invalid("'\(path)': stored header and manifest disagree on tensor '\(t.name)'")
            }
            let src = source(t)
            // Unless the copy must be hashed on the way, a view is copied in the kernel.
            if case let .view(v) = src, !verifySHA256, let file = v.file {
                if let last = runs.last, last.view.file === file, last.view.offset + last.view.bytes.count == v.offset,
                   last.begin + last.view.bytes.count == t.begin {
                    let joined = UnsafeRawBufferPointer(start: last.view.bytes.baseAddress, count: last.view.bytes.count + v.bytes.count)
                    runs[runs.count - 1] = (last.begin, RawView(bytes: joined, file: file, offset: last.view.offset), last.tensors + 1)
                } else {
                    runs.append((t.begin, v, 1))
                }
            } else {
                others.append((t, src))
            }
        }
        let copyFailure = FirstError()
        let copies = DispatchGroup()
        let runList = runs
        DispatchQueue.global().async(group: copies) {
            for r in runList where !copyFailure.isSet {
                do {
                    // In pieces of 32 MiB, so writeback of one overlaps the copy of the next.
                    var done = 0
                    while done < r.view.bytes.count {
                        let n = min(32 << 20, r.view.bytes.count - done), at = dataStart + r.begin + done
                        if try !writer.writer.copy(from: r.view.file!, at: r.view.offset + done, count: n, to: at) {
                            try writer.writer.write(UnsafeRawBufferPointer(rebasing: r.view.bytes[done..<(done + n)]), at: at)
                        }
                        writer.writer.startWriteback(at: at, count: n)
                        done += n
                    }
                    progress.advance(r.tensors)
                } catch {
                    copyFailure.set(error)
                }
            }
        }
        do {
            try writer.writer.write(prefix, at: 0)
            var pending = others[...]
            while !pending.isEmpty {
                var batch: [(TensorInfo, ReadySource)] = []
                var batchBytes = 0
                while let (t, src) = pending.first, batch.isEmpty || batchBytes < 512 << 20 {
                    pending = pending.dropFirst()
                    switch src {
                    case let .view(v): batch.append((t, .view(v.bytes)))
                    case let .bytes(b):
                        batchBytes += b.count
                        batch.append((t, .bytes(b)))
                    case let .ledger(hash, current):
                        let r = try ledger.recipe(for: hash, current: current)
                        batchBytes += r.heldBytes + t.byteCount + r.decodedPatchBytes
                        batch.append((t, .recipe(r)))
                        rebuilt += 1
                    }
                }
                let items = batch
                try parallelFor(items.count) { i in
                    guard !copyFailure.isSet else { return }
                    let (t, src) = items[i]
                    switch src {
                    case let .view(v):
                        // Bytes copied from the work tree are checked against the manifest too.
                        if verifySHA256, SHA256Digest.hash(v).hex != manifest[t.name]!.hash {
                            throw LedgerError.corruptObject(id: manifest[t.name]!.hash, reason: "work-tree copy of '\(t.name)' changed while checking out")
                        }
                        try writer.writer.write(v, at: dataStart + t.begin)
                    case let .bytes(b): try writer.writer.write(b, at: dataStart + t.begin)
                    case let .recipe(r):
                        let (bytes, origin) = try LedgerError.naming(tensor: t.name) { try r.buildReportingOrigin(verifySHA256: verifySHA256) }
                        tally.record(origin)
                        try bytes.withUnsafeBytes { try writer.writer.write($0, at: dataStart + t.begin) }
                    }
                    writer.writer.startWriteback(at: dataStart + t.begin, count: t.byteCount)
                    progress.advance()
                }
            }
            copies.wait()
            if let e = copyFailure.error { throw e }
        } catch {
            copies.wait()   // the copying thread uses the file: let it stop first
            writer.writer.abort()
            throw error
        }
        return (writer.writer, rebuilt)
    }
}
