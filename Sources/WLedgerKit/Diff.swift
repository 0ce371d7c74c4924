import Foundation
import Ledger
import LinAlg
import TensorIO

/// `diff` output: per-tensor ΔW statistics between two sides, plus totals.
public struct DiffReport: Encodable, Sendable {
    public var from: String
    public var to: String
    public var tensors: [TensorDiff]
    public var totals: Totals

    public struct TensorDiff: Encodable, Sendable {
        public var name: String
        public var file: String
        public var dtype: String
        public var shape: [Int]
        public var count: Int
        public var changed: Int
        public var l1: Double
        public var frobenius: Double
        public var relativeFrobenius: Double
        public var maxAbs: Double
    }

    public struct Totals: Encodable, Sendable {
        public var tensors: Int
        public var changed: Int
        public var l1: Double
        public var frobenius: Double
    }
}

extension Repository {
    /// `wledger diff [<a> [<b>]]`: ΔW = b − a per changed tensor. With no revisions: HEAD vs the
    /// work tree; with one: that revision vs the work tree; with two: a vs b.
    /// - Parameter tensor: restrict to one tensor name.
    public func diff(_ a: String? = nil, _ b: String? = nil, tensor: String? = nil, progress: ProgressReporter = .silent) throws -> DiffReport {
        let fromID = try resolve(a ?? "HEAD")
        let fromManifest = try ledger.manifest(of: fromID)
        var toManifest: [String: ManifestEntry]
        var workTree: WorkTreeComparison? = nil
        var toLabel: String
        if let b {
            let toID = try resolve(b)
            toManifest = try ledger.manifest(of: toID)
            toLabel = toID
        } else {
            // The work tree compared against `from` itself: hashes only the tensors we need.
            let cmp = try WorkTreeComparison.compare(root: root, ledger: ledger, commit: fromID, branch: nil, rehash: false, progress: progress)
            if !cmp.report.structural.isEmpty {
                throw KitError.usage("'\(root)': work tree tensors differ from '\(fromID.prefix(12))' in structure: \(cmp.report.structural.prefix(3).joined(separator: "; "))")
            }
            toManifest = fromManifest
            let modified = Set(cmp.report.modifiedTensors.map(\.name))
            for name in modified { toManifest[name]?.hash = "worktree" }
            workTree = cmp
            toLabel = "worktree"
        }
        var names = fromManifest.keys.filter { toManifest[$0] != nil && toManifest[$0]!.hash != fromManifest[$0]!.hash }.sorted()
        if let tensor {
            guard fromManifest[tensor] != nil else { throw KitError.usage("no tensor named '\(tensor)' in '\(fromID.prefix(12))'") }
            names = names.filter { $0 == tensor }
        }
        for name in names where fromManifest[name]!.dtype != toManifest[name]!.dtype || fromManifest[name]!.shape != toManifest[name]!.shape {
            throw KitError.usage("tensor '\(name)' changes dtype or shape between the two sides; ΔW is undefined")
        }
        var out: [DiffReport.TensorDiff] = []
        progress.start("comparing tensors", total: names.count)
        for name in names {
            let e = fromManifest[name]!
            let parent = try ledger.tensorBytes(e.hash)
            let st: DeltaStatistics
            if let cmp = workTree {
                st = parent.withUnsafeBytes { DeltaStatistics.compute(parent: $0, child: cmp.weights.bytes(name)!, dtype: e.dtype) }
            } else {
                let child = try ledger.tensorBytes(toManifest[name]!.hash)
                st = parent.withUnsafeBytes { p in child.withUnsafeBytes { DeltaStatistics.compute(parent: p, child: $0, dtype: e.dtype) } }
            }
            out.append(.init(name: name, file: e.file, dtype: e.dtype.rawValue, shape: e.shape, count: st.count, changed: st.changed, l1: st.l1,
                             frobenius: st.frobenius, relativeFrobenius: st.relativeFrobenius, maxAbs: st.maxAbs))
            progress.advance()
        }
        progress.finish()
        let totals = DiffReport.Totals(tensors: out.count, changed: out.reduce(0) { $0 + $1.changed }, l1: out.reduce(0) { $0 + $1.l1 },
                                       frobenius: out.reduce(0) { $0 + $1.frobenius * $1.frobenius }.squareRoot())
        return DiffReport(from: fromID, to: toLabel, tensors: out, totals: totals)
    }
}
