import Foundation
import Ledger

/// `wledger bisect --metric TASK.METRIC (--below X | --above X | --drop P%) [<bad> [<good>]]`.
public struct MetricBisectOptions: Sendable {
    /// "TASK.METRIC".
    public var metric: String
    /// A commit is bad when the metric is below this.
    public var below: Double?
    /// A commit is bad when the metric is above this (a perplexity, say).
    public var above: Double?
    /// A commit is bad when the metric worsened by more than this percentage of the base value:
    /// fell below base, or rose above it where lower is better (`Threshold.lowerIsBetter`).
    public var dropPercent: Double?
    public var bad = "HEAD"
    public var good = "base"
    public var threads: Int?

    public init(metric: String) { self.metric = metric }
}

/// One evaluation during a metric bisect.
public struct MetricEvaluation: Encodable, Sendable {
    public var commit: String
    public var value: Double
    public var stderr: Double
    public var n: Int
    public var bad: Bool
    /// Served from the health cache.
    public var cached: Bool
}

/// What a metric bisect found.
public struct MetricBisectResult: Encodable, Sendable {
    public var task: String
    public var metric: String
    /// In words, e.g. "below 0.5" or "more than 25% below base 0.45 (below 0.3375)".
    public var criterion: String
    /// A commit is bad when its value is beyond this: below it, or above it (`badAbove`).
    public var limit: Double
    /// Bad values lie above `limit` (--above, or --drop on a metric where lower is better).
    public var badAbove: Bool
    /// The base commit's value of the metric (with --drop).
    public var baseValue: Double?
    /// Commits in good..bad, both ends included.
    public var commitCount: Int
    /// The bound on evaluations: ceil(log2 commits) + 1 (+ 1 for the base with --drop and a good end other than base).
    public var maxEvaluations: Int
    /// Every commit whose metric was asked, in order (the base first with --drop).
    public var evaluations: [MetricEvaluation]
    public var firstBad: BisectCommit
    public var firstBadValue: Double
    public var lastGood: BisectCommit
    public var lastGoodValue: Double
}

extension Repository {
    /// Automatic bisect on a health metric: finds the first commit in good..bad whose TASK.METRIC
    /// is bad, evaluating through `health` and its cache (results land in the cache too). The work
    /// tree is never touched. Evaluations: the good end, then a binary search over the other
    /// commits in which the bad end is only evaluated when every commit before it was good, so at
    /// most ceil(log2 N) + 1 for N commits in the range (one more for the base when --drop is
    /// used with a good end other than base).
    /// - Throws: `KitError.usage` for a malformed metric, unknown task or metric, or a good end
    ///   that is not an ancestor of the bad end; `KitError.refused` when the good end is already
    ///   bad or the bad end is not.
    public func bisectMetric(_ options: MetricBisectOptions, progress: ProgressReporter = .silent,
                             evaluated: (MetricEvaluation) -> Void = { _ in }) throws -> MetricBisectResult {
        guard let dot = options.metric.lastIndex(of: "."), dot != options.metric.startIndex,
              dot != options.metric.index(before: options.metric.endIndex) else {
            throw KitError.usage("'\(options.metric)': expected TASK.METRIC, e.g. addition.exact_match")
        }
        let task = String(options.metric[..<dot]), metric = String(options.metric[options.metric.index(after: dot)...])
        guard [options.below, options.above, options.dropPercent].compactMap({ $0 }).count == 1 else {
            throw KitError.usage("give one of --below X, --above X or --drop P%")
        }
        if let d = options.dropPercent, !(d >= 0 && d.isFinite) { throw KitError.usage("--drop must be a non-negative percentage") }
        if let b = options.below ?? options.above, !b.isFinite { throw KitError.usage("--\(options.below != nil ? "below" : "above") must be a finite number") }
        // Which side of the limit is bad: above it for --above, and for --drop where lower is better.
        let badAbove = options.above != nil || (options.dropPercent != nil && Threshold.lowerIsBetter(metric))
        func isBad(_ v: Double, _ limit: Double) -> Bool { badAbove ? !(v <= limit) : !(v >= limit) }
        let healthTask = try HealthSettings.load(self).tasks(named: [task]).first

        let badID = try resolve(options.bad)
        let goodID = try resolve(options.good)
        let baseID = try resolve("base")
        // good..bad: bad and its ancestors down to (not including) good.
        var chain: [CommitRecord] = []
        var cur: String? = badID
        while let id = cur, id != goodID {
            guard let c = try ledger.commit(id) else { throw LedgerError.unknownRevision(id) }
            chain.append(c)
            cur = c.parent
        }
        guard cur == goodID else {
            throw KitError.usage("good commit \(goodID.prefix(12)) ('\(options.good)') is not an ancestor of bad commit \(badID.prefix(12)) ('\(options.bad)')")
        }
        // The edits task asks the edit requests in force at a commit: none at the good end (the
        // base, say) gives no result to compare; refused before anything is evaluated.
        if healthTask?.source == .edits, try EditProbe.active(in: try ledger.history(from: goodID)).isEmpty {
            throw KitError.usage("task '\(task)' gives no result at \(goodID.prefix(12)) ('\(options.good)'): no edit request is in force there; give a good end after the first edit")
        }
        let candidates = Array(chain.reversed())
        guard !candidates.isEmpty else { throw KitError.usage("the good and bad commits are the same commit \(badID.prefix(12))") }
        let commits = candidates.count + 1

        var evaluations: [MetricEvaluation] = []
        var values: [String: MetricEvaluation] = [:]
        var base: Double?
        var limit = options.below ?? options.above ?? 0
        func ask(_ id: String) throws -> MetricEvaluation {
            if let v = values[id] { return v }
            var h = HealthOptions()
            h.target = .revision(id)
            h.tasks = [task]
            h.compareWithBase = options.dropPercent != nil
            h.threads = options.threads
            let report = try health(h, progress: progress)
            guard let row = report.rows.first(where: { $0.task == task && $0.metric == metric }) else {
                let known = report.rows.filter { $0.task == task }.map(\.metric)
                if known.isEmpty { throw KitError.usage("task '\(task)' gives no result at \(id.prefix(12))") }
                throw KitError.usage("task '\(task)' has no metric '\(metric)' (it has: \(known.joined(separator: ", ")))")
            }
            if let p = options.dropPercent, base == nil {
                guard let b = row.base else { throw KitError.usage("task '\(task)': no base result to compare with") }
                base = b.value
                limit = badAbove ? b.value + abs(b.value) * p / 100 : b.value - abs(b.value) * p / 100
                if id != baseID {
                    let e = MetricEvaluation(commit: baseID, value: b.value, stderr: b.stderr, n: b.n, bad: isBad(b.value, limit),
                                             cached: report.tasks.first?.baseCached ?? false)
                    values[baseID] = e
                    evaluations.append(e)
                    evaluated(e)
                }
            }
            let e = MetricEvaluation(commit: id, value: row.value.value, stderr: row.value.stderr, n: row.value.n,
                                     bad: isBad(row.value.value, limit), cached: report.tasks.first?.cached ?? false)
            values[id] = e
            evaluations.append(e)
            evaluated(e)
            return e
        }
        func criterion() -> String {
            if let b = options.below { return String(format: "below %g", b) }
            if let a = options.above { return String(format: "above %g", a) }
            let side = badAbove ? "above" : "below"
            return String(format: "more than %g%% %@ base %.4g (%@ %.4g)", options.dropPercent!, side, base ?? .nan, side, limit)
        }

        let goodEval = try ask(goodID)
        if goodEval.bad {
            throw KitError.refused(String(format: "good commit %@ is already bad: %@ = %.4g, %@", String(goodID.prefix(12)), options.metric,
                                          goodEval.value, criterion()))
        }
        // Binary search for the first bad index in candidates (oldest first); `hi` = count means
        // "none bad yet", so the bad end is evaluated only when every probe before it was good.
        var lo = -1, hi = candidates.count
        while hi - lo > 1 {
            let mid = (lo + hi) / 2
            if try ask(candidates[mid].id).bad { hi = mid } else { lo = mid }
        }
        guard hi < candidates.count else {
            let v = values[badID]!.value
            throw KitError.refused(String(format: "bad commit %@ is not bad: %@ = %.4g, not %@", String(badID.prefix(12)), options.metric, v, criterion()))
        }
        let firstBad = candidates[hi]
        let lastGood = lo >= 0 ? candidates[lo] : try ledger.commit(goodID)!
        var bound = Int(ceil(log2(Double(commits)))) + 1
        if options.dropPercent != nil && goodID != baseID { bound += 1 }
        return MetricBisectResult(task: task, metric: metric, criterion: criterion(), limit: limit, badAbove: badAbove, baseValue: base, commitCount: commits,
                                  maxEvaluations: bound, evaluations: evaluations, firstBad: BisectCommit(firstBad),
                                  firstBadValue: values[firstBad.id]!.value, lastGood: BisectCommit(lastGood),
                                  lastGoodValue: values[lastGood.id]!.value)
    }
}
