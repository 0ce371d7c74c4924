import Engine
import Foundation
import Ledger
import LinAlg
import TensorIO

/// What `wledger health` evaluates.
public enum HealthTarget: Sendable {
    /// A revision (its weights are materialized outside the work tree unless the clean work tree
    /// already holds them).
    case revision(String)
    /// Weights in a directory that are not (yet) a commit: the work tree, or a hook's
    /// WLEDGER_CANDIDATE.
    case candidate(directory: String?)
}

/// How `wledger health` runs.
public struct HealthOptions: Sendable {
    public var target: HealthTarget = .revision("HEAD")
    public var suite: String?
    /// Run only these tasks (names from the config or the built-ins) instead of a suite.
    public var tasks: [String] = []
    /// Evaluate again even when a cached result exists (and replace it).
    public var refresh = false
    /// Do not evaluate the base for the change column (thresholds with max-drop then fail).
    public var compareWithBase = true
    public var threads: Int?
    /// Only report cached results: tasks without one are left out (listed in `missing`) and
    /// nothing is evaluated or materialized (used by `report`).
    public var cachedOnly = false

    public init() {}
}

/// One metric of one task in the health table.
public struct HealthRow: Encodable, Sendable {
    public var task: String
    public var metric: String
    public var base: MetricValue?
    public var value: MetricValue
    /// value − base.
    public var change: Double?
    public var headline: Bool
    public var threshold: Threshold?
    /// nil: no threshold; true/false: it passed/failed.
    public var passed: Bool?
    /// Why it failed, in words.
    public var failure: String?
}

/// One task's outcome with where it came from.
public struct HealthTaskOutcome: Encodable, Sendable {
    public var task: String
    public var spec: String
    public var result: TaskResult
    public var baseResult: TaskResult?
    public var cached: Bool
    public var baseCached: Bool?
}

/// `wledger health`'s answer.
public struct HealthReport: Encodable, Sendable {
    /// The evaluated commit (nil for a candidate).
    public var commit: String?
    /// Its tree hash (nil for a candidate).
    public var tree: String?
    /// Candidate directory, when one was evaluated.
    public var candidate: String?
    public var base: String
    public var suite: String
    public var evaluator: String
    public var tasks: [HealthTaskOutcome]
    public var rows: [HealthRow]
    /// Failed thresholds as "TASK.METRIC: why".
    public var failures: [String]
    /// Tasks left out because they have no cached result (`cachedOnly` only).
    public var missing: [String]? = nil
    public var elapsedSeconds: Double
    /// The OpenBLAS kernel set this process ran (see `BLASKernel`).
    public var blasKernel: String = BLASKernel.coreName
}

extension Repository {
    /// `wledger health`: evaluates a suite of tasks on a commit's weights (or a candidate's), next
    /// to the base commit's, with thresholds from `.wledger/config`.
    ///
    /// Results of built-in tasks are cached in the ledger per tree × task spec × evaluator; a
    /// commit's weights are materialized into a temporary directory (in /dev/shm when it has
    /// room) only when some task is not cached, and never by rewriting the work tree.
    public func health(_ options: HealthOptions, progress: ProgressReporter = .silent) throws -> HealthReport {
        let clock = ContinuousClock()
        let start = clock.now
        let settings = try HealthSettings.load(self)
        let tasks = options.tasks.isEmpty ? try settings.suite(options.suite) : try settings.tasks(named: options.tasks)
        let suiteName = options.tasks.isEmpty ? (options.suite ?? settings.defaultSuite) : "(tasks)"
        if let t = options.threads ?? settings.threads { BLAS.setThreadCount(t) }

        let resolver = RevisionResolver(ledger: ledger)
        let baseID = try resolver.resolve("base")
        guard let baseCommit = try ledger.commit(baseID) else { throw LedgerError.unknownRevision("base") }

        let subject: WeightsSubject
        switch options.target {
        case let .revision(rev):
            let id = try resolver.resolve(rev)
            guard let c = try ledger.commit(id) else { throw LedgerError.unknownRevision(rev) }
            subject = .commit(c)
        case let .candidate(dir):
            let d = absolutePath(dir ?? root)
            guard FileManager.default.fileExists(atPath: d + "/config.json") else {
                throw KitError.usage("'\(d)': no config.json: not a model directory")
            }
            subject = .directory(d)
        }
        let thisWeights = WeightsProvider(repository: self, subject: subject, progress: progress)
        let baseWeights = WeightsProvider(repository: self, subject: .commit(baseCommit), progress: progress)
        defer { thisWeights.close(); baseWeights.close() }

        var outcomes: [HealthTaskOutcome] = []
        var rows: [HealthRow] = []
        var failures: [String] = []
        var missing: [String] = []
        for task in tasks {
            let runner = try TaskRunner(task: task, settings: settings, repository: self, subject: subject, base: baseCommit)
            if options.cachedOnly, try !runner.isCached(tree: subject.tree) {
                missing.append(task.name)
                continue
            }
            let (result, cached) = try runner.run(on: thisWeights, tree: subject.tree, baseWeights: baseWeights,
                                                  refresh: options.refresh, progress: progress)
            var baseResult: TaskResult?
            var baseCached: Bool?
            if options.compareWithBase {
                if case let .commit(c) = subject, c.tree == baseCommit.tree {
                    baseResult = result
                    baseCached = cached
                } else {
                    // The edits task asks the base the same requests, to show what the edits changed.
                    let baseRunner = try TaskRunner(task: task, settings: settings, repository: self, subject: .commit(baseCommit), base: baseCommit,
                                                    probes: runner.requests)
                    if try !options.cachedOnly || baseRunner.isCached(tree: baseCommit.tree) {
                        let (r, c) = try baseRunner.run(on: baseWeights, tree: baseCommit.tree, baseWeights: baseWeights,
                                                        refresh: false, progress: progress, label: "base")
                        baseResult = r
                        baseCached = c
                    }
                }
            }
            outcomes.append(HealthTaskOutcome(task: task.name, spec: runner.spec, result: result, baseResult: baseResult,
                                              cached: cached, baseCached: baseCached))
            let headline = task.headlineMetric(kind: result.kind)
            let names = result.metrics.keys.sorted { a, b in
                if (a == headline) != (b == headline) { return a == headline }
                return a < b
            }
            for m in names {
                let v = result.metrics[m]!
                let b = baseResult?.metrics[m]
                var row = HealthRow(task: task.name, metric: m, base: b, value: v, change: b.map { v.value - $0.value },
                                    headline: m == headline, threshold: settings.thresholds["\(task.name).\(m)"], passed: nil, failure: nil)
                if let th = row.threshold {
                    var why: [String] = []
                    if let min = th.min, !(v.value >= min) { why.append(String(format: "%.4g < min %.4g", v.value, min)) }
                    if let max = th.max, !(v.value <= max) { why.append(String(format: "%.4g > max %.4g", v.value, max)) }
                    if let drop = th.maxDrop {
                        if let b {
                            // Worsening: a fall, or a rise where lower is better (perplexity).
                            let lower = Threshold.lowerIsBetter(m)
                            let worse = lower ? v.value - b.value : b.value - v.value
                            if !(worse <= drop.allowed(base: b.value) + 1e-12) {
                                why.append(String(format: "%@ %.4g from base %.4g (max-drop %@)", lower ? "rose" : "dropped", worse, b.value, drop.description))
                            }
                        } else {
                            why.append("max-drop needs the base result")
                        }
                    }
                    row.passed = why.isEmpty
                    if !why.isEmpty {
                        row.failure = why.joined(separator: "; ")
                        failures.append("\(task.name).\(m): \(row.failure!)")
                    }
                }
                rows.append(row)
            }
            // A threshold on a metric the task did not produce fails loudly.
            for (key, th) in settings.thresholds where key.hasPrefix(task.name + ".") && result.metrics[String(key.dropFirst(task.name.count + 1))] == nil {
                let why = result.metrics.isEmpty ? "no result (nothing to evaluate)" : "task has no metric '\(th.metric.dropFirst(task.name.count + 1))'"
                if !(task.source == .edits && result.metrics.isEmpty) { failures.append("\(key): \(why)") }
            }
        }
        let commitID: String?
        let tree: String?
        let candidate: String?
        switch subject {
        case let .commit(c): commitID = c.id; tree = c.tree; candidate = nil
        case let .directory(d): commitID = nil; tree = nil; candidate = d
        }
        return HealthReport(commit: commitID, tree: tree, candidate: candidate, base: baseID, suite: suiteName, evaluator: TaskEvaluator.version,
                            tasks: outcomes, rows: rows, failures: failures, missing: options.cachedOnly ? missing : nil,
                            elapsedSeconds: TaskEvaluator.secondsOf(clock.now - start))
    }
}

extension TaskEvaluator {
    static func secondsOf(_ d: Duration) -> Double {
        let (s, atto) = d.components
        return Double(s) + Double(atto) * 1e-18
    }
}

/// The weights being evaluated.
enum WeightsSubject: Sendable {
    case commit(CommitRecord)
    case directory(String)

    var tree: String? {
        if case let .commit(c) = self { return c.tree }
        return nil
    }
}

/// Lazily materializes weights and loads the model, tokenizer and evaluator once.
final class WeightsProvider {
    let repository: Repository
    let subject: WeightsSubject
    let progress: ProgressReporter
    private var temporary: String?
    private var loaded: (dir: String, model: Model, evaluator: TaskEvaluator)?

    init(repository: Repository, subject: WeightsSubject, progress: ProgressReporter) {
        self.repository = repository
        self.subject = subject
        self.progress = progress
    }

    /// A directory holding the weights (materialized on first use).
    func directory() throws -> String {
        if let l = loaded { return l.dir }
        if let t = temporary { return t }
        switch subject {
        case let .directory(d): return d
        case let .commit(c):
            if let dir = try repository.cleanWorkTree(holding: c) { return dir }
            let tmp = try Repository.makeScratchDirectory(label: "health", bytesNeeded: try repository.ledger.files(of: c.id).values.reduce(0) { $0 + $1.size })
            temporary = tmp
            progress.phase("materializing \(String(c.id.prefix(12))) into \(tmp)")
            do {
                _ = try repository.checkout(c.id, output: tmp, progress: progress)
            } catch {
                close()
                throw error
            }
            return tmp
        }
    }

    func evaluator() throws -> TaskEvaluator {
        if let l = loaded { return l.evaluator }
        let dir = try directory()
        let model = try Model(directory: dir)
        let tokenizer = try Tokenizer(modelDirectory: dir)
        let ev = TaskEvaluator(model: model, tokenizer: tokenizer)
        loaded = (dir, model, ev)
        return ev
    }

    /// Deletes the materialized copy.
    func close() {
        loaded = nil
        if let t = temporary { try? FileManager.default.removeItem(atPath: t); temporary = nil }
    }

    deinit { close() }
}

extension Repository {
    /// The work tree's path when it is clean and at a commit with `c`'s tree (no need to
    /// materialize), else nil.
    func cleanWorkTree(holding c: CommitRecord) throws -> String? {
        let head = try ledger.head()
        guard let hc = try ledger.commit(head.commit), hc.tree == c.tree else { return nil }
        guard let cmp = try? WorkTreeComparison.compare(root: root, ledger: ledger, commit: head.commit, branch: head.branchName,
                                                        rehash: false, progress: .silent), cmp.report.clean else { return nil }
        return root
    }

    /// A new empty directory for materialized weights: in /dev/shm (memory) when it has room for
    /// `bytesNeeded` plus 10%, else in $TMPDIR. The caller removes it.
    static func makeScratchDirectory(label: String, bytesNeeded: Int) throws -> String {
        var candidates: [String] = []
        if let forced = ProcessInfo.processInfo.environment["WLEDGER_SCRATCH"] { candidates.append(forced) }
        var st = statvfs()
        if statvfs("/dev/shm", &st) == 0, Int(st.f_bavail) * Int(st.f_frsize) > bytesNeeded + bytesNeeded / 10 { candidates.append("/dev/shm") }
        candidates.append(NSTemporaryDirectory())
        var lastError = "no scratch directory"
        for base in candidates {
            var template = Array((base.hasSuffix("/") ? base : base + "/").utf8CString.dropLast()) + Array("wledger-\(label)-XXXXXX".utf8CString)
            if let p = mkdtemp(&template) { return String(cString: p) }
            lastError = "\(base): \(String(cString: strerror(errno)))"
        }
        throw TensorIOError.io(path: candidates.last ?? "/tmp", operation: "create scratch directory", reason: lastError)
    }
}

/// Runs one health task on one set of weights, through the cache.
struct TaskRunner {
    let task: HealthTask
    let settings: HealthSettings
    let repository: Repository
    let subject: WeightsSubject
    let base: CommitRecord
    /// The task's canonical spec (cache key part).
    let spec: String
    /// Evaluator id (cache key part).
    let evaluatorID: String
    /// Edit requests in force (edits task).
    let requests: [EditProbe]

    /// - Parameter probes: for `edits`, the requests to ask (default: those in force at `subject`).
    init(task: HealthTask, settings: HealthSettings, repository: Repository, subject: WeightsSubject, base: CommitRecord,
         probes: [EditProbe]? = nil) throws {
        self.task = task
        self.settings = settings
        self.repository = repository
        self.subject = subject
        self.base = base
        var requests: [EditProbe] = []
        var spec: String
        var evaluatorID = TaskEvaluator.version
        switch task.source {
        case let .bigbench(p):
            let path = p.hasPrefix("/") ? p : settings.bigbenchDirectory + "/" + p
            spec = "bigbench:\(p) mode=\(task.mode.rawValue) shots=\(task.shots) limit=\(task.limit.map(String.init) ?? "all") seed=\(task.seed)"
            spec += " sha256=\(try Self.fileHash(Self.bigbenchFile(path), task: task.name))"
        case let .jsonl(p):
            spec = "jsonl:\(p) shots=\(task.shots) limit=\(task.limit.map(String.init) ?? "all") seed=\(task.seed) sha256=\(try Self.fileHash(repository.resolvePath(p), task: task.name))"
        case let .perplexity(p):
            spec = "perplexity:\(p) sha256=\(try Self.fileHash(repository.resolvePath(p), task: task.name))"
        case .edits:
            if let probes {
                requests = probes
            } else {
                let history: [CommitRecord]
                switch subject {
                case let .commit(c): history = try repository.ledger.history(from: c.id)
                case .directory: history = try repository.ledger.history(from: try repository.ledger.head().commit)
                }
                requests = try EditProbe.active(in: history)
                // A candidate about to be committed with a request (pre-commit hooks set
                // WLEDGER_REQUEST to the request file) is asked that request too.
                if case .directory = subject, let file = ProcessInfo.processInfo.environment["WLEDGER_REQUEST"], !file.isEmpty {
                    guard let data = FileManager.default.contents(atPath: file) else {
                        throw KitError.usage("'\(file)': cannot read the edit request (WLEDGER_REQUEST)")
                    }
                    let canonical = try EditRequest.validate(Array(data), source: file)
                    requests += try EditProbe.parse(canonical, commit: "candidate")
                }
            }
            let h = SHA256Hasher()
            for r in requests { h.update(Array(r.canonical.utf8)); h.update([0]) }
            spec = "edits base=\(base.tree) requests=\(requests.count) sha256=\(h.finalize().hex)"
        case let .external(e):
            let command = settings.evaluators[e]!
            spec = "external:\(e) tasks=\(task.externalTasks ?? task.name)"
            evaluatorID = "external:\(e)@" + SHA256Digest.hash(Array(command.utf8)).hex.prefix(16)
        }
        self.spec = spec
        self.evaluatorID = evaluatorID
        self.requests = requests
    }

    static func bigbenchFile(_ path: String) -> String {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue { return path + "/task.json" }
        return path
    }

    static func fileHash(_ path: String, task: String) throws -> String {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw KitError.usage("'\(path)': task '\(task)': cannot read (no such file or not readable)")
        }
        return String(SHA256Digest.hash(Array(data)).hex.prefix(16))
    }

    /// Whether the cache holds a result for these weights.
    func isCached(tree: String?) throws -> Bool {
        guard let tree, let hit = try repository.ledger.evaluation(tree: tree, spec: spec, evaluator: evaluatorID) else { return false }
        return (try? JSONDecoder().decode(TaskResult.self, from: Data(hit.result.utf8))) != nil
    }

    /// The task's result on `weights`, from the cache when it has one.
    func run(on weights: WeightsProvider, tree: String?, baseWeights: WeightsProvider, refresh: Bool, progress: ProgressReporter,
             label: String? = nil) throws -> (TaskResult, Bool) {
        if let tree, !refresh, let hit = try repository.ledger.evaluation(tree: tree, spec: spec, evaluator: evaluatorID),
           let r = try? JSONDecoder().decode(TaskResult.self, from: Data(hit.result.utf8)) {
            return (r, true)
        }
        let title = label.map { "\(task.name) (\($0))" } ?? task.name
        var result = try evaluate(weights: weights, baseWeights: baseWeights, progress: progress, title: title)
        result.task = task.name
        if let tree {
            let enc = JSONEncoder()
            enc.outputFormatting = [.sortedKeys]
            let json = String(decoding: try enc.encode(result), as: UTF8.self)
            try repository.ledger.storeEvaluation(EvaluationRecord(tree: tree, task: task.name, spec: spec, evaluator: evaluatorID, result: json,
                                                                   createdAt: Int64(Date().timeIntervalSince1970)))
        }
        return (result, false)
    }

    private func evaluate(weights: WeightsProvider, baseWeights: WeightsProvider, progress: ProgressReporter, title: String) throws -> TaskResult {
        let options = TaskOptions(shots: task.shots, limit: task.limit, seed: task.seed, mode: task.mode)
        func step(_ done: Int, _ total: Int) {
            if done == 1 { progress.start(title, total: total) } else { progress.advance() }
        }
        defer { progress.finish() }
        switch task.source {
        case let .bigbench(p):
            let path = p.hasPrefix("/") ? p : settings.bigbenchDirectory + "/" + p
            let loaded = try BigBenchTask.load(path)
            guard loaded.count == 1 else {
                throw KitError.usage("task '\(task.name)': '\(path)' is a composite of \(loaded.count) subtasks; name one, e.g. \(p)/\(URL(fileURLWithPath: loaded[0].path).deletingLastPathComponent().lastPathComponent)")
            }
            return try weights.evaluator().evaluate(loaded[0], options: options, progress: step).result
        case let .jsonl(p):
            let t = try JSONLTask(path: repository.resolvePath(p), name: task.name)
            return try weights.evaluator().evaluate(t, options: options, progress: step).result
        case let .perplexity(p):
            return try weights.evaluator().perplexity(file: repository.resolvePath(p)).result
        case .edits:
            return try EditProbe.evaluate(requests, weights: weights, baseWeights: baseWeights, progress: progress, title: title)
        case let .external(e):
            return try ExternalEvaluator(name: e, command: settings.evaluators[e]!, tasks: task.externalTasks ?? task.name)
                .run(weightsDirectory: weights.directory(), workingDirectory: repository.root, progress: progress)
        }
    }
}

extension Repository {
    /// A path from the config: absolute, or relative to the work tree.
    func resolvePath(_ p: String) -> String { p.hasPrefix("/") ? p : root + "/" + p }
}
