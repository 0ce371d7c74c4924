import Foundation
import Codec
import Ledger
import TensorIO

/// Everything needed to rebuild one tensor version, copied out of the ledger so it can be built
/// on any thread: the keyframe and the patches leading to the version, and where they allow it
/// bytes that hold an earlier version of the same chain (`start`).
struct TensorRecipe: Sendable {
    let version: TensorVersion
    let keyframe: StoredObject
    let patches: [StoredObject]
    /// Bytes believed to hold the version the first `applied` patches lead to: a clean work
    /// tree's tensor when the target descends from it (checking out a later commit), set by
    /// `Ledger.recipe(for:current:)`. The rebuild then copies them and applies only the patches
    /// after it, instead of decoding the keyframe and applying them all; when that result fails
    /// verification (the bytes were not that version after all) it starts again from the keyframe.
    var start: Start? = nil

    struct Start: Sendable {
        let bytes: RawView
        /// Patches of the chain already applied to them.
        let applied: Int
    }

    /// Where a rebuild began.
    enum Origin: Sendable {
        /// Its keyframe: no `start`, or one that is not on the chain.
        case keyframe
        /// `start`: only the patches after it were applied.
        case workTree
        /// The keyframe, after the result from `start` failed verification: those bytes were not
        /// the version the work tree's scan took them for (changed since, or a stat that hid a write).
        case keyframeAfterMismatch
    }

    /// What the recipe's stored objects hold, copied out or while they decode (`StoredObject.heldBytes`).
    var heldBytes: Int { ([keyframe] + patches).reduce(0) { $0 + $1.heldBytes } }

    /// Bytes the rebuild holds beside the tensor: its decoded patches, estimated from their
    /// headers (the tensor's size for a patch whose header is not stored as is).
    var decodedPatchBytes: Int {
        let n = version.byteCount
        var total = 0, largest = 0
        for p in patches {
            let estimate = p.chunks.first.flatMap { c in
                c.codec == .raw ? c.data.withUnsafeBytes { PatchChain.decodedSize(of: $0, tensorBytes: n) } : nil
            } ?? n
            total = total.addingReportingOverflow(estimate).overflow ? Int.max : total + estimate
            largest = max(largest, estimate)
        }
        // The chain applies what it holds before a patch would take it past its budget, so it
        // holds at most the budget, or one patch larger than that.
        return min(total, max(PatchChain.defaultBudget, largest))
    }

    /// Rebuilds the tensor into `dst` (exactly `version.byteCount` bytes) and verifies it against
    /// the stored XXH3-128 fingerprint and probe, and the sha256 too when `verifySHA256`.
    /// - Returns: where the rebuild began.
    @discardableResult
    func build(into dst: UnsafeMutableRawBufferPointer, verifySHA256: Bool) throws -> Origin {
        let n = version.byteCount
        guard dst.count == n else { throw LedgerError.corruptObject(id: version.hash, reason: "size mismatch") }
        var origin = Origin.keyframe
        if let s = start, s.bytes.bytes.count == n, s.applied <= patches.count {
            if n > 0 { dst.copyMemory(from: s.bytes.bytes) }
            if (try? applyPatches(patches[s.applied...], to: dst)) != nil, (try? verify(dst, verifySHA256: verifySHA256)) != nil {
                return .workTree
            }
            origin = .keyframeAfterMismatch
        }
        // The keyframe is decoded straight into `dst` and every patch applied there in place.
        try keyframe.decode(into: dst, verify: false)
        try applyPatches(patches[...], to: dst)
        try verify(dst, verifySHA256: verifySHA256)
        return origin
    }

    /// Applies `patches` to `dst` in place, a block of rows at a time (`PatchChain`).
    private func applyPatches(_ patches: ArraySlice<StoredObject>, to dst: UnsafeMutableRawBufferPointer) throws {
        var chain = PatchChain(buffer: dst)
        for p in patches {
            try p.withPayload { pb in
                do {
                    try chain.append(pb)
                } catch {
                    throw LedgerError.corruptObject(id: p.id, reason: "\(error)")
                }
            }
        }
        chain.finish()
    }

    /// Checks rebuilt bytes against the version's fingerprint and probe (and sha256).
    private func verify(_ dst: UnsafeMutableRawBufferPointer, verifySHA256: Bool) throws {
        let fp = Fingerprint.of(UnsafeRawBufferPointer(dst)).hex
        guard fp == version.fingerprint else {
            throw LedgerError.corruptObject(id: version.hash, reason: "rebuilt tensor fingerprint \(fp.prefix(12)) differs from the recorded \(version.fingerprint.prefix(12))")
        }
        // A wrong probe would make scans report the tensor changed when it is not.
        if let probe = version.probe, Probe.of(UnsafeRawBufferPointer(dst)) != probe {
            throw LedgerError.corruptObject(id: version.hash, reason: "rebuilt tensor's probe differs from the recorded one")
        }
        if verifySHA256 {
            let h = SHA256Digest.hash(UnsafeRawBufferPointer(dst)).hex
            guard h == version.hash else { throw LedgerError.corruptObject(id: version.hash, reason: "rebuilt tensor sha256 is \(h.prefix(12))") }
        }
    }

    /// Rebuilds the tensor into a new array.
    func build(verifySHA256: Bool) throws -> [UInt8] { try buildReportingOrigin(verifySHA256: verifySHA256).bytes }

    /// Rebuilds the tensor into a new array; with where the rebuild began.
    func buildReportingOrigin(verifySHA256: Bool) throws -> (bytes: [UInt8], origin: Origin) {
        var out = uninitializedBytes(version.byteCount)
        let origin = try out.withUnsafeMutableBytes { try build(into: $0, verifySHA256: verifySHA256) }
        return (out, origin)
    }
}

/// A tensor of a clean work tree with the version its scan found there, for a rebuild of a later
/// version of its chain to continue from (`Ledger.recipe(for:current:)`).
struct WorkTreeTensor: Sendable {
    let version: String
    let bytes: RawView
}

/// How the rebuilds of one operation began, recorded from any thread.
final class RebuildTally: @unchecked Sendable {
    private let lock = NSLock()
    private var fromWorkTree = 0, mismatched = 0

    func record(_ origin: TensorRecipe.Origin) {
        lock.lock(); defer { lock.unlock() }
        switch origin {
        case .keyframe: break
        case .workTree: fromWorkTree += 1
        case .keyframeAfterMismatch: mismatched += 1
        }
    }

    /// Rebuilds that continued from the work tree's bytes.
    var continued: Int { lock.lock(); defer { lock.unlock() }; return fromWorkTree }
    /// Rebuilds whose work-tree bytes were not the version the scan took them for.
    var mismatches: Int { lock.lock(); defer { lock.unlock() }; return mismatched }
}

extension Ledger {
    /// Copies out of the ledger the keyframe and patches that rebuild tensor version `hash`.
    /// - Parameter current: bytes believed to hold another version of the tensor; when that
    ///   version is on `hash`'s chain (its keyframe or a version after it), the recipe starts from
    ///   them.
    func recipe(for hash: String, current: WorkTreeTensor? = nil) throws -> TensorRecipe {
        let chain = try versionChain(hash)
        guard let first = chain.first, first.base == nil else { throw LedgerError.corruptObject(id: hash, reason: "no keyframe at the start of its chain") }
        let key = try storedObject(first.object)
        let patches = try chain.dropFirst().map { try storedObject($0.object) }
        var recipe = TensorRecipe(version: chain.last!, keyframe: key, patches: patches)
        if let held = current, let at = chain.lastIndex(where: { $0.hash == held.version }), held.bytes.bytes.count == chain.last!.byteCount {
            recipe.start = TensorRecipe.Start(bytes: held.bytes, applied: at)
        }
        return recipe
    }

    /// Rebuilds a tensor version's bytes (verified).
    func tensorBytes(_ hash: String, verifySHA256: Bool = false) throws -> [UInt8] {
        try recipe(for: hash).build(verifySHA256: verifySHA256)
    }

    /// Rebuilds a manifest entry's version (verified); a corrupt object is reported with the
    /// entry's tensor name.
    func tensorBytes(of entry: ManifestEntry, verifySHA256: Bool = false) throws -> [UInt8] {
        try LedgerError.naming(tensor: entry.name) { try tensorBytes(entry.hash, verifySHA256: verifySHA256) }
    }
}
