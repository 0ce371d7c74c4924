import Foundation
import Ledger
import TensorIO

/// Where a tensor's bytes come from when a weight file is written.
enum TensorSource {
    /// A view into a memory-mapped work-tree file that stays alive while staging.
    case view(RawView)
    /// Bytes computed in memory (revert, prune, restrain).
    case bytes([UInt8])
    /// A version rebuilt from the ledger.
    case ledger(String)
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
    /// Consecutive tensors copied from one mapped file, where they are consecutive too.
    case run(RawView, tensors: Int)
}

extension Repository {
    /// Writes a weight file to a temporary file next to `path` (not yet renamed into place):
    /// the stored header prefix, then every tensor from its source, rebuilt in parallel in batches
    /// of at most ~512 MiB so memory stays bounded. Call `commit()` on the result to publish it,
    /// or `abort()` to drop it.
    /// - Parameter source: called serially, in offset order, for every tensor of the header.
    func stageWeightFile(_ path: String, prefix: [UInt8], size: Int, manifest: [String: ManifestEntry], verifySHA256: Bool,
                         progress: ProgressReporter, source: (TensorInfo) -> TensorSource) throws -> (writer: AtomicFileWriter, rebuilt: Int) {
        let header = try SafetensorsHeader.parse(json: Array(prefix.dropFirst(8)), dataSize: size - prefix.count, path: path)
        let writer = WriterBox(writer: try AtomicFileWriter(path: path, size: size))
        var rebuilt = 0
        do {
            try writer.writer.write(prefix, at: 0)
            let dataStart = header.dataStart
            var pending = header.tensors[...]
            while !pending.isEmpty {
                var batch: [(TensorInfo, ReadySource)] = []
                var batchBytes = 0
                while let t = pending.first, batch.isEmpty || batchBytes < 512 << 20 {
                    pending = pending.dropFirst()
                    guard let entry = manifest[t.name], entry.dtype == t.dtype, entry.shape == t.shape else {
                        throw LedgerError.invalid("'\(path)': stored header and manifest disagree on tensor '\(t.name)'")
                    }
                    switch source(t) {
                    case let .view(v):
                        // Unless the copy must be hashed on the way, a view extends the run before
                        // it when both sides are contiguous; runs are copied in the kernel.
                        if !verifySHA256, let file = v.file {
                            if case let .run(r, n)? = batch.last?.1, r.file === file, r.offset + r.bytes.count == v.offset,
                               batch.last!.0.begin + r.bytes.count == t.begin {
                                let joined = UnsafeRawBufferPointer(start: r.bytes.baseAddress, count: r.bytes.count + v.bytes.count)
                                batch[batch.count - 1].1 = .run(RawView(bytes: joined, file: file, offset: r.offset), tensors: n + 1)
                            } else {
                                batch.append((t, .run(v, tensors: 1)))
                            }
                        } else {
                            batch.append((t, .view(v.bytes)))
                        }
                    case let .bytes(b):
                        batchBytes += b.count
                        batch.append((t, .bytes(b)))
                    case let .ledger(hash):
                        let r = try ledger.recipe(for: hash)
                        batchBytes += r.storedBytes + t.byteCount
                        batch.append((t, .recipe(r)))
                        rebuilt += 1
                    }
                }
                let items = batch
                try parallelFor(items.count) { i in
                    let (t, src) = items[i]
                    switch src {
                    case let .view(v):
                        // Bytes copied from the work tree are checked against the manifest too.
                        if verifySHA256, SHA256Digest.hash(v).hex != manifest[t.name]!.hash {
                            throw LedgerError.corruptObject(id: manifest[t.name]!.hash, reason: "work-tree copy of '\(t.name)' changed while checking out")
                        }
                        try writer.writer.write(v, at: dataStart + t.begin)
                    case let .run(r, n):
                        if try !writer.writer.copy(from: r.file!, at: r.offset, count: r.bytes.count, to: dataStart + t.begin) {
                            try writer.writer.write(r.bytes, at: dataStart + t.begin)
                        }
                        progress.advance(n)
                        return
                    case let .bytes(b): try writer.writer.write(b, at: dataStart + t.begin)
                    case let .recipe(r):
                        let bytes = try r.build(verifySHA256: verifySHA256)
                        try bytes.withUnsafeBytes { try writer.writer.write($0, at: dataStart + t.begin) }
                    }
                    progress.advance()
                }
            }
        } catch {
            writer.writer.abort()
            throw error
        }
        return (writer.writer, rebuilt)
    }
}
