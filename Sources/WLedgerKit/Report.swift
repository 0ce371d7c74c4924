import Engine
import Foundation
import Ledger
import Ops
import TensorIO

/// What `wledger report` collects.
public struct ReportOptions: Sendable {
    /// Ranges `A..B` (`A..` = A..HEAD, `..B` = base..B) or revisions (`REV` = base..REV); one
    /// series each. Empty: base..HEAD.
    public var revisions: [String] = []
    /// Health suite whose cached results are shown (default: config health.suite).
    public var suite: String?
    /// Only these tasks instead of a suite.
    public var tasks: [String] = []
    /// Evaluate commits whose health results are not cached (slow); otherwise only the cache is read.
    public var evaluate = false
    public var threads: Int?

    public init() {}
}

/// Everything `report` shows: the commits of one or more series (ranges of first-parent
/// history), each commit's weight drift since the base (computed by `diff base C`) and its
/// health results (read from the cache by `health C`).
public struct ReportData: Encodable, Sendable {
    /// Name of the model directory.
    public var model: String
    public var base: String
    public var suite: String
    public var evaluator: String
    /// δ thresholds of the drift shares.
    public var deltaThresholds: [Double]
    public var series: [ReportSeries]
    /// Every commit of any series, once, in the order first met.
    public var commits: [ReportCommit]
    /// The health metrics charted, in suite order.
    public var metrics: [ReportMetric]
    /// Tensors that differ from the base at some commit, sorted.
    public var matrices: [String]

    public func commit(_ id: String) -> ReportCommit? { commits.first { $0.id == id } }
}

/// One line in the charts: a range of first-parent history.
public struct ReportSeries: Encodable, Sendable {
    /// As given (`main`, `base..HEAD`, …).
    public var label: String
    public var from: String
    public var to: String
    /// Commit ids, oldest first; the index is the x coordinate (commits since `from`).
    public var commits: [String]
}

/// A charted health metric.
public struct ReportMetric: Encodable, Sendable, Equatable {
    public var task: String
    public var metric: String
    public var headline: Bool
    public var threshold: Threshold?
}

/// One commit with its drift and health.
public struct ReportCommit: Encodable, Sendable {
    public var id: String
    public var parent: String?
    public var kind: String
    public var message: String
    public var method: String?
    /// subject → target_new of each edit request.
    public var requests: [Request]
    /// Tensors this commit changed (vs its parent).
    public var tensors: [String]
    /// Σ|ΔW| of this commit vs its parent (all tensors).
    public var l1: Double
    /// Per tensor that differs from the base at any commit of the report: ΔW = W_commit − W_base.
    public var drift: [Drift]
    /// Health rows as `health COMMIT` gives them (value, base, change, threshold).
    public var health: [HealthRow]
    /// Tasks of the suite with no cached result for this commit.
    public var missing: [String]

    public struct Request: Encodable, Sendable {
        public var subject: String
        public var targetNew: String
    }

    public struct Drift: Encodable, Sendable {
        public var name: String
        /// Changed elements vs the base.
        public var changed: Int
        /// Σ|ΔW| since the base.
        public var l1: Double
        /// ‖ΔW‖F / ‖W_base‖F.
        public var relativeFrobenius: Double
        /// Shares of δ = |ΔW/W_base| above the report's thresholds.
        public var shares: [RelativeChange.Summary.Share]
        /// κ of the matrix at this commit and at the base (2-D float tensors).
        public var kappa: Double?
        public var baseKappa: Double?
    }

    public func drift(_ name: String) -> Drift? { drift.first { $0.name == name } }
    public func health(_ task: String, _ metric: String) -> HealthRow? { health.first { $0.task == task && $0.metric == metric } }
}

extension Repository {
    /// `wledger report`: collects drift and health for every commit of the given series.
    public func report(_ options: ReportOptions, progress: ProgressReporter = .silent) throws -> ReportData {
        let settings = try HealthSettings.load(self)
        let tasks = options.tasks.isEmpty ? try settings.suite(options.suite) : try settings.tasks(named: options.tasks)
        let baseID = try resolve("base")
        let specs = options.revisions.isEmpty ? ["base..HEAD"] : options.revisions
        var series: [ReportSeries] = []
        for spec in specs { series.append(try reportSeries(spec, baseID: baseID)) }

        var order: [String] = []
        var seen = Set<String>()
        for s in series { for c in s.commits where seen.insert(c).inserted { order.append(c) } }

        // Drift: `diff base C` for every commit, the same computation as `wledger diff --json`.
        var diffs: [String: DiffReport] = [:]
        var diffOptions = DiffOptions()
        diffOptions.thresholds = RelativeChange.defaultThresholds
        // Tensor versions shared by several commits are compared with the base once.
        let memo = DiffMemo()
        progress.start("weight drift", total: order.count)
        for id in order {
            diffs[id] = try diff(baseID, id, options: diffOptions, memo: memo)
            progress.advance()
        }
        progress.finish()
        let matrices = Set(diffs.values.flatMap { $0.tensors.map(\.name) }).sorted()
        let baseManifest = try ledger.manifest(of: baseID)
        var baseKappa: [String: Double?] = [:]
        for name in matrices {
            if let t = diffs.values.lazy.compactMap({ $0.tensors.first { $0.name == name } }).first, let s = t.fromSpectrum {
                baseKappa[name] = s.kappa
            } else if let e = baseManifest[name] {
                baseKappa[name] = try spectrum(of: e)?.kappa
            }
        }

        // Health: `health C` restricted to the cache (unless evaluating).
        var healthOptions = HealthOptions()
        healthOptions.suite = options.suite
        healthOptions.tasks = options.tasks
        healthOptions.threads = options.threads
        healthOptions.cachedOnly = !options.evaluate
        var suiteName = options.suite ?? settings.defaultSuite
        if !options.tasks.isEmpty { suiteName = "(tasks)" }
        var commits: [ReportCommit] = []
        if options.evaluate { progress.phase("evaluating \(order.count) commit(s) where not cached") }
        for id in order {
            guard let c = try ledger.commit(id) else { throw LedgerError.unknownRevision(id) }
            healthOptions.target = .revision(id)
            let h = try health(healthOptions, progress: progress)
            suiteName = h.suite
            let d = diffs[id]!
            var drift: [ReportCommit.Drift] = []
            let noShares = RelativeChange.summarize(base: [], delta: [], thresholds: d.thresholds).shares  // all 0
            for name in matrices {
                if let t = d.tensors.first(where: { $0.name == name }) {
                    drift.append(.init(name: name, changed: t.changed, l1: t.l1, relativeFrobenius: t.relativeFrobenius,
                                       shares: t.delta?.shares ?? noShares,
                                       kappa: t.toSpectrum?.kappa, baseKappa: t.fromSpectrum?.kappa))
                } else {
                    // Equal to the base here.
                    let k = baseKappa[name] ?? nil
                    drift.append(.init(name: name, changed: 0, l1: 0, relativeFrobenius: 0, shares: noShares, kappa: k, baseKappa: k))
                }
            }
            let changes = try ledger.changes(of: id)
            commits.append(ReportCommit(id: id, parent: c.parent, kind: c.kind.rawValue, message: c.message, method: c.method,
                                        requests: Self.requestSummaries(c.request), tensors: changes.map(\.entry.name),
                                        l1: changes.reduce(0) { $0 + $1.stats.l1 }, drift: drift, health: h.rows, missing: h.missing ?? []))
        }

        // Charted metrics: each task's headline, thresholded metrics, and edit retention.
        var metrics: [ReportMetric] = []
        for task in tasks {
            var names: [String] = []
            var headline: String?
            var threshold: [String: Threshold] = [:]
            for c in commits {
                for r in c.health where r.task == task.name {
                    let wanted = r.headline || r.threshold != nil
                        || (task.source == .edits && ["efficacy", "generalization", "locality"].contains(r.metric))
                    if wanted && !names.contains(r.metric) { names.append(r.metric) }
                    if r.headline { headline = r.metric }
                    if let t = r.threshold { threshold[r.metric] = t }
                }
            }
            names.sort { a, b in
                if (a == headline) != (b == headline) { return a == headline }
                return a < b
            }
            for n in names { metrics.append(ReportMetric(task: task.name, metric: n, headline: n == headline, threshold: threshold[n])) }
        }
        return ReportData(model: URL(fileURLWithPath: root).lastPathComponent, base: baseID, suite: suiteName, evaluator: TaskEvaluator.version,
                          deltaThresholds: diffOptions.thresholds, series: series, commits: commits, metrics: metrics, matrices: matrices)
    }

    /// The first-parent commits from A to B (both included), oldest first.
    func reportSeries(_ spec: String, baseID: String) throws -> ReportSeries {
        let (fromRev, toRev) = try Self.baseRange(spec, command: "report") ?? ("base", spec)
        let from = try resolve(fromRev), to = try resolve(toRev)
        var ids: [String] = []
        for c in try ledger.history(from: to) {
            ids.append(c.id)
            if c.id == from { return ReportSeries(label: spec, from: from, to: to, commits: ids.reversed()) }
        }
        throw KitError.usage("'\(spec)': '\(fromRev)' is not an ancestor of '\(toRev)'")
    }

    /// subject → target_new of a stored request (an object or an array of them).
    static func requestSummaries(_ json: String?) -> [ReportCommit.Request] {
        guard let json, let v = try? JSONParser.parse(Array(json.utf8)) else { return [] }
        let items: [JSONValue]
        if case let .array(a) = v { items = a } else { items = [v] }
        return items.compactMap { item in
            guard let s = item["subject"]?.stringValue, let t = item["target_new"]?.stringValue else { return nil }
            return ReportCommit.Request(subject: s, targetNew: t)
        }
    }
}

extension Repository {
    /// Where `report` writes its page: `output` (relative to the current directory), else
    /// `.wledger/report.html` (inside the ledger directory, so the work tree stays clean).
    /// - Throws: `KitError.usage` naming the path when its directory is missing or it is a directory.
    public func reportOutputPath(_ output: String?) throws -> String {
        let path = output.map(absolutePath) ?? (wledgerDirectory + "/report.html")
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue {
            throw KitError.usage("'\(path)': is a directory; give a file name for the report")
        }
        // Never over the ledger or a file wledger tracks (it replaced them: `-o .wledger/ledger`
        // lost the history): inside .wledger/ only the default report.html, and in the work tree
        // no file HEAD holds (a weight file, config.json, …). Compared with links resolved.
        let real = resolvedPath(path), realRoot = resolvedPath(root)
        if real.hasPrefix(realRoot + "/" + Self.directoryName + "/"), real != realRoot + "/" + Self.directoryName + "/report.html" {
            throw KitError.usage("'\(path)': is inside \(Self.directoryName)/, which holds the ledger; write the report elsewhere (the default is \(Self.directoryName)/report.html)")
        }
        if real.hasPrefix(realRoot + "/"), try ledger.files(of: try ledger.head().commit)[String(real.dropFirst(realRoot.count + 1))] != nil {
            throw KitError.usage("'\(path)': is a file of the model directory that wledger tracks; write the report elsewhere")
        }
        let dir = parentDirectory(of: path)
        guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDir), isDir.boolValue else {
            throw KitError.usage("'\(path)': cannot write the report: no such directory '\(dir)'")
        }
        guard FileManager.default.isWritableFile(atPath: dir) else {
            throw KitError.usage("'\(path)': cannot write the report: directory '\(dir)' is not writable")
        }
        return path
    }

    /// Renders `data` and writes it to `path` (temporary file + rename).
    public func writeReport(_ data: ReportData, to path: String) throws {
        try writeFileAtomically(path, Array(ReportHTML.render(data).utf8))
    }
}
