import Foundation
import Ledger
import LinAlg
import Ops
import TensorIO

/// `diff` output: per-tensor ΔW statistics between two sides, plus totals.
public struct DiffReport: Encodable, Sendable {
    public var from: String
    public var to: String
    public var thresholds: [Double]
    public var tensors: [TensorDiff]
    public var totals: Totals
    /// Side files (config.json, tokenizer.json, …) added, modified or deleted between the two
    /// sides, by path (none with `--tensor`).
    public var sideFiles: [StatusReport.SideFileChange] = []
    /// Weight files whose header bytes (metadata, tensor order, padding) differ between the two
    /// sides, by path (none with `--tensor`).
    public var headers: [String] = []

    public struct TensorDiff: Encodable, Sendable {
        public var name: String
        public var file: String
        public var dtype: String
        public var shape: [Int]
        public var count: Int
        public var changed: Int
        /// Σ|ΔW| (Manhattan distance).
        public var l1: Double
        public var frobenius: Double
        /// ‖ΔW‖F / ‖W_from‖F.
        public var relativeFrobenius: Double
        public var maxAbs: Double
        /// δ = |ΔW / W_from| over all elements (W = 0: denominator 2⁻¹²⁶).
        public var delta: RelativeChange.Summary?
        /// 2-D tensors: spectrum of both sides.
        public var fromSpectrum: SpectrumInfo?
        public var toSpectrum: SpectrumInfo?
        /// 2-D tensors: numerical rank of ΔW (singular values above storage rounding noise) and its
        /// largest singular values.
        public var deltaRank: Int?
        public var deltaSingularValues: [Double]?
    }

    public struct Totals: Encodable, Sendable {
        public var tensors: Int
        public var changed: Int
        public var l1: Double
        public var frobenius: Double
    }
}

/// Per-tensor `diff` results kept between calls (keyed by tensor name and both versions' hashes).
public final class DiffMemo {
    var tensors: [String: DiffReport.TensorDiff] = [:]
    public init() {}
}

/// What `diff` computes beyond the basic statistics.
public struct DiffOptions: Sendable {
    /// δ thresholds for the shares (default: RECT's 0.077 and 0.171).
    public var thresholds = RelativeChange.defaultThresholds
    /// Compute σmax/σmin/κ of both sides and rank/top singular values of ΔW for 2-D tensors.
    public var spectrum = true
    /// Only this tensor.
    public var tensor: String?
    /// How many singular values of ΔW to report.
    public var topSingularValues = 5

    public init() {}
}

extension Repository {
    /// `wledger diff [<a> [<b>]]`: ΔW = b − a per changed tensor. With no revisions: HEAD vs the
    /// work tree; with one: that revision vs the work tree, or with a range `a..b` (as git) a vs b,
    /// and with `a...b` b vs the merge base of a and b (what b did since it forked from a); with
    /// two: a vs b.
    /// - Parameter memo: results per (tensor, from version, to version) to reuse across calls with
    ///   the same options (`report` diffs many commits against one base).
    public func diff(_ a: String? = nil, _ b: String? = nil, options: DiffOptions = DiffOptions(),
                     progress: ProgressReporter = .silent, memo: DiffMemo? = nil) throws -> DiffReport {
        if b == nil, let a, let range = try Self.splitRange(a) {
            let from = range.symmetric ? try mergeBase(range.a, range.b) : range.a
            return try diff(from, range.b, options: options, progress: progress, memo: memo)
        }
        if b != nil, let range = [a, b].compactMap({ $0 }).first(where: { $0.contains("..") }) {
            throw KitError.usage("'\(range)': a range A..B is given alone (wledger diff A..B)")
        }
        let fromID = try resolve(a ?? "HEAD")
        let fromManifest = try ledger.manifest(of: fromID)
        var toManifest: [String: ManifestEntry]
        var workTree: WorkTreeComparison? = nil
        var toLabel: String
        var sideFiles: [StatusReport.SideFileChange] = [], headers: [String] = []
        if let b {
            let toID = try resolve(b)
            toManifest = try ledger.manifest(of: toID)
            toLabel = toID
            let fromFiles = try ledger.files(of: fromID), toFiles = try ledger.files(of: toID)
            sideFiles = Self.fileChanges(from: fromFiles.filter { $0.value.kind != .safetensors }, to: toFiles.filter { $0.value.kind != .safetensors })
            headers = Self.changedHeaders(from: fromFiles, to: toFiles)
        } else {
            let cmp = try WorkTreeComparison.compare(root: root, ledger: ledger, commit: fromID, branch: nil, rehash: false, progress: progress)
            if !cmp.report.structural.isEmpty {
                throw KitError.usage("'\(root)': work tree tensors differ from '\(fromID.prefix(12))' in structure: \(cmp.report.structural.prefix(3).joined(separator: "; "))")
            }
            toManifest = fromManifest
            for name in cmp.report.modifiedTensors.map(\.name) { toManifest[name]?.hash = "worktree" }
            workTree = cmp
            toLabel = "worktree"
            sideFiles = cmp.report.sideFiles
            headers = cmp.report.modifiedHeaders
        }
        var names = fromManifest.keys.filter { toManifest[$0] != nil && toManifest[$0]!.hash != fromManifest[$0]!.hash }.sorted()
        if let tensor = options.tensor {
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
            let key = "\(name) \(e.hash) \(workTree == nil ? toManifest[name]!.hash : "worktree")"
            if workTree == nil, let hit = memo?.tensors[key] {
                out.append(hit)
            } else {
                let d = try tensorDiff(name: name, from: e, to: toManifest[name]!, workTree: workTree, options: options)
                if workTree == nil { memo?.tensors[key] = d }
                out.append(d)
            }
            progress.advance()
        }
        progress.finish()
        let totals = DiffReport.Totals(tensors: out.count, changed: out.reduce(0) { $0 + $1.changed }, l1: out.reduce(0) { $0 + $1.l1 },
                                       frobenius: DeltaStatistics.combinedNorm(out.map(\.frobenius)))
        return DiffReport(from: fromID, to: toLabel, thresholds: options.thresholds, tensors: out, totals: totals,
                          sideFiles: options.tensor == nil ? sideFiles : [], headers: options.tensor == nil ? headers : [])
    }

    /// The weight files both lists have whose stored header (length + JSON) differs, by path.
    static func changedHeaders(from before: [String: FileEntry], to after: [String: FileEntry]) -> [String] {
        after.compactMap { path, entry -> String? in
            guard entry.kind == .safetensors, let old = before[path], old.kind == .safetensors, old.object != entry.object else { return nil }
            return path
        }.sorted()
    }

    /// The files added, deleted or whose bytes changed between two commits' file lists, by path.
    static func fileChanges(from before: [String: FileEntry], to after: [String: FileEntry]) -> [StatusReport.SideFileChange] {
        Set(before.keys).union(after.keys).sorted().compactMap { path in
            switch (before[path], after[path]) {
            case (nil, _?): return .init(path: path, change: .added)
            case (_?, nil): return .init(path: path, change: .deleted)
            case let (b?, a?) where b.object != a.object: return .init(path: path, change: .modified)
            default: return nil
            }
        }
    }

    /// ΔW statistics of one tensor between two versions (`to` from the work tree when given).
    func tensorDiff(name: String, from e: ManifestEntry, to: ManifestEntry, workTree: WorkTreeComparison?,
                    options: DiffOptions) throws -> DiffReport.TensorDiff {
        let parent = try ledger.tensorBytes(of: e)
        let child: [UInt8] = try workTree.map { Array($0.weights.bytes(name)!) } ?? ledger.tensorBytes(of: to)
        let st = parent.withUnsafeBytes { p in child.withUnsafeBytes { DeltaStatistics.compute(parent: p, child: $0, dtype: e.dtype) } }
        var d = DiffReport.TensorDiff(name: name, file: e.file, dtype: e.dtype.rawValue, shape: e.shape, count: st.count, changed: st.changed,
                                      l1: st.l1, frobenius: st.frobenius, relativeFrobenius: st.relativeFrobenius, maxAbs: st.maxAbs)
        if e.dtype.isFloat {
            let p = TensorMath.doubles(parent, dtype: e.dtype), c = TensorMath.doubles(child, dtype: e.dtype)
            let dw = zip(c, p).map { $0 - $1 }
            d.delta = RelativeChange.summarize(base: p, delta: dw, thresholds: options.thresholds)
            // No spectrum or rank for weights holding NaN or Inf (SVD is undefined there).
            if options.spectrum, let (rows, cols) = TensorMath.matrixShape(e.shape), p.allSatisfy(\.isFinite), c.allSatisfy(\.isFinite) {
                d.fromSpectrum = try spectrum(of: e, values: p)
                if workTree == nil {
                    d.toSpectrum = try spectrum(of: to, values: c)
                } else {
                    d.toSpectrum = try SpectrumInfo.of(c, rows: rows, cols: cols)
                }
                let (rank, top) = try Repository.deltaRank(dw, rows: rows, cols: cols, child: c, dtype: e.dtype, top: options.topSingularValues)
                d.deltaRank = rank
                d.deltaSingularValues = top
            }
        }
        return d
    }

    /// Numerical rank of ΔW and its top singular values. Singular values count toward the rank
    /// when they exceed the storage rounding noise `TensorMath.roundingNoise` of the child. The
    /// randomized SVD (with power iterations) bounds every singular value it does not return by
    /// half that noise in spectral norm, so the rank is exact and the returned values are
    /// accurate; otherwise all singular values are computed. (A range finder that stopped at a
    /// Frobenius residual of 2u‖W‖F, far above the noise in BF16, undercounted the rank there
    /// and read the smaller singular values up to 40% low.)
    static func deltaRank(_ dw: [Double], rows: Int, cols: Int, child: [Double], dtype: DType, top: Int) throws -> (Int, [Double]) {
        let norms = TensorMath.largestRowAndColumnNorms(child, rows: rows, cols: cols)
        let noise = TensorMath.roundingNoise(dtype: dtype, maxRowNorm: norms.row, maxColumnNorm: norms.column)
        let s = try BLAS.lowRankSVD(Matrix(rows: rows, cols: cols, data: dw), tolerance: noise / 2, initialRank: 8).s
        return (s.filter { $0 > noise }.count, Array(s.prefix(top)))
    }
}
