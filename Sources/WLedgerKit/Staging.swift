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
struct RawView: @unchecked Sendable { let bytes: UnsafeRawBufferPointer }
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
                    case let .view(v): batch.append((t, .view(v.bytes)))
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
