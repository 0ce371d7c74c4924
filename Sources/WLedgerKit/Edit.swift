import Engine
import Foundation
import Ledger
import LinAlg
import TensorIO

/// A native editing method.
public enum EditMethod: String, Sendable, Codable, CaseIterable {
    case rome, memit
}

/// Options of `wledger edit`.
public struct EditOptions: Sendable {
    public var method: EditMethod = .rome
    /// ROME's hyperparameters; `layer` nil picks the default depth.
    public var layer: Int?
    public var rome = ROMEOptions(layer: 0)
    /// MEMIT's layers (nil: the default range) and covariance weight λ.
    public var memitLayers: [Int]?
    public var memitLambda = 15_000.0
    /// Text for the key statistics C (nil: the Lee news corpus in the task data directory).
    public var mom2Corpus: String?
    /// Tokens over which C is estimated.
    public var mom2Tokens = 16_384
    public var message: String?
    public var author: String?

    public init() {}
}

/// What one edit did, for the command's report.
public struct EditReport: Encodable, Sendable {
    public var commit: String
    public var method: String
    public var subject: String
    public var targetNew: String
    public var groundTruth: String
    public var layers: [Int]
    public var tensors: [String]
    /// Optimization: loss before each step, and the target's mean probability before/after.
    public var losses: [Double]
    public var targetProbabilityBefore: Double
    public var targetProbabilityAfter: Double
    /// target_new preferred over ground_truth on the prompt (1 or 0), on the rephrasings (share),
    /// and locality: share of the locality prompts' teacher-forced top-1 predictions unchanged by
    /// the edit (nil when the request has none).
    public var efficacy: Double
    public var generalization: Double?
    public var locality: Double?
    /// Log-probability margin of target_new over ground_truth on the prompt, before and after.
    public var marginBefore: Double
    public var marginAfter: Double
    public var seconds: Double
    /// The commit's `CommitResult.workTreeMismatches` (the same in every report of one MEMIT commit).
    public var workTreeMismatches = 0
}

/// The keys' second moment of one layer, as cached in the ledger.
struct SecondMoment {
    var matrix: Matrix
    var tokens: Int
}

/// A ROME request of an array failed after earlier ones were committed: those commits stay.
public struct PartialEditError: Error, CustomStringConvertible {
    /// Reports of the commits made before the failure.
    public let committed: [EditReport]
    /// The failed request's place (1-based) and how many the array held.
    public let failedRequest: Int, requests: Int
    public let underlying: Error

    public var description: String {
        let ids = committed.map { String($0.commit.prefix(12)) }.joined(separator: ", ")
        return "request \(failedRequest) of \(requests): \(underlying); the \(committed.count == 1 ? "request" : "requests") before it \(committed.count == 1 ? "was" : "were") committed (\(ids)) and \(committed.count == 1 ? "stays" : "stay"): 'wledger reset --hard HEAD~\(committed.count)' undoes \(committed.count == 1 ? "it" : "them")"
    }
}

extension Repository {
    /// `wledger edit`: edits the model natively (ROME one request at a time, MEMIT a batch), and
    /// commits each edit with its method, hyperparameters and request. Nothing is written unless
    /// the optimization produced a finite update; the work tree must be clean.
    /// - Parameters:
    ///   - requestBytes: EasyEdit request JSON (an object or an array).
    ///   - source: the request file's name, for messages.
    /// - Returns: one report per commit made.
    public func edit(requestBytes: [UInt8], source: String, options: EditOptions, progress: ProgressReporter = .silent,
                     onEdit: ((EditReport) -> Void)? = nil) throws -> [EditReport] {
        let canonical = try EditRequest.validate(requestBytes, source: source)
        let json = try JSONParser.parse(Array(canonical.utf8))
        let items: [JSONValue]
        if case let .array(a) = json { items = a } else { items = [json] }
        // Options are checked against config.json before the work tree is scanned: the scan may
        // record file stats, and a refused command must leave the ledger as it was.
        let layerCount = try ModelConfig.load(directory: root).layerCount
        if let l = options.layer, options.method == .rome, l < 0 || l >= layerCount {
            throw KitError.usage("--layer \(l) is outside the model's \(layerCount) layers")
        }
        if let bad = options.memitLayers?.first(where: { $0 < 0 || $0 >= layerCount }), options.method == .memit {
            throw KitError.usage("--layers: layer \(bad) is outside the model's \(layerCount) layers")
        }
        if let layers = options.memitLayers, let twice = layers.enumerated().first(where: { i, l in layers[..<i].contains(l) })?.element {
            throw KitError.usage("--layers '\(layers.map(String.init).joined(separator: ","))': layer \(twice) is given twice")
        }
        if options.rome.mom2 {   // readable, and long enough where C is still to compute, before anything is recorded
            let (corpus, text) = try keyStatisticsCorpus(options)
            let layers = options.method == .rome ? [options.layer ?? ROMEOptions.defaultLayer(layerCount: layerCount)]
                : options.memitLayers ?? MEMIT.defaultLayers(layerCount: layerCount)
            let baseID = try RevisionResolver(ledger: ledger).resolve("base")
            let corpusID = Self.keyStatisticsCorpusID(text, options: options)
            if try layers.contains(where: { try ledger.meta(Self.secondMomentKey(layer: $0, baseID: baseID, corpusID: corpusID, options: options)) == nil }) {
                _ = try Self.keyStatisticsSequences(corpus: corpus, text: text, tokenizer: try Tokenizer(modelDirectory: root), options: options)
            }
        }
        let status = try self.status(cacheStats: false, progress: progress)
        guard status.clean else {
            throw KitError.refused(Repository.uncommittedChanges)
        }
        let resolver = RevisionResolver(ledger: ledger)
        let baseID = try resolver.resolve("base")
        // Hooks see the pending request (as for `commit --request`) when the commit carries the
        // whole file: MEMIT, or ROME with a single request.
        let requestFile = (options.method == .memit || items.count == 1) ? absolutePath(source) : nil
        var reports: [EditReport] = []
        switch options.method {
        case .rome:
            for (i, item) in items.enumerated() {
                do {
                    let r = try romeEdit(item, baseID: baseID, requestFile: requestFile, options: options, progress: progress)
                    onEdit?(r)
                    reports.append(r)
                } catch where !reports.isEmpty {
                    // The requests before it stay committed (as `git am` keeps the patches it
                    // applied); the error says which, so that a script can tell.
                    throw PartialEditError(committed: reports, failedRequest: i + 1, requests: items.count, underlying: error)
                }
            }
        case .memit:
            let r = try memitEdit(items, baseID: baseID, requestFile: requestFile, options: options, progress: progress)
            for x in r { onEdit?(x) }
            reports += r
        }
        return reports
    }

    /// One ROME edit of the current HEAD, committed.
    private func romeEdit(_ item: JSONValue, baseID: String, requestFile: String?, options: EditOptions, progress: ProgressReporter) throws -> EditReport {
        let clock = ContinuousClock()
        let start = clock.now
        let request = EditTarget(prompt: item["prompt"]!.stringValue!, subject: item["subject"]!.stringValue!,
                                 targetNew: item["target_new"]!.stringValue!)
        let model = try Model(directory: root)
        let tokenizer = try Tokenizer(modelDirectory: root)
        let prompts = EditPrompts(tokenizer: tokenizer)
        var o = options.rome
        o.layer = options.layer ?? ROMEOptions.defaultLayer(layerCount: model.config.layerCount)   // checked in edit()
        let templates = try contextTemplates(model: model, prompts: prompts, lengths: o.templates, baseID: baseID, progress: progress)
        let C = o.mom2 ? try secondMoments(layers: [o.layer], baseID: baseID, options: options, progress: progress)[o.layer] : nil
        let probe = try EditProbe.parse(item.serialized(), commit: "")[0]
        let before = try ProbeSnapshot(model: model, tokenizer: tokenizer, probe: probe)

        progress.start("ROME on layer \(o.layer): optimizing v*", total: o.steps + 1)
        let r = try ROME.edit(model: model, prompts: prompts, target: request, templates: templates, secondMoment: C?.matrix,
                              options: o) { _, _ in progress.advance() }
        progress.finish()
        guard r.update.data.allSatisfy(\.isFinite) else {
            throw KitError.refused("ROME produced a non-finite update for \"\(request.subject)\"; nothing was committed")
        }
        let name = "model.layers.\(o.layer).mlp.down_proj.weight"
        let newBytes = try updatedBytes(name, delta: r.update)
        var co = CommitOptions(message: options.message ?? "ROME: \(request.subject): \(probe.groundTruth) -> \(request.targetNew)")
        co.kind = .edit
        co.method = "ROME"
        co.author = options.author
        co.request = item.serialized()
        if let requestFile { co.hookEnvironment["WLEDGER_REQUEST"] = requestFile }
        co.parameters = JSONValue.object([
            ("layer", .double(Double(o.layer))), ("steps", .double(Double(o.steps))), ("lr", .double(o.learningRate)),
            ("weight_decay", .double(o.weightDecay)), ("clamp_norm_factor", .double(o.clampNormFactor)),
            ("kl_factor", .double(o.klFactor)), ("stop_loss", .double(o.stopLoss)),
            ("context_templates", .array(o.templates.map { .array($0.map { .double(Double($0)) }) })),
            ("mom2", .bool(o.mom2)), ("mom2_tokens", .double(Double(C?.tokens ?? 0))),
            ("steps_run", .double(Double(r.losses.count - 1))), ("final_loss", .double(r.losses.last ?? 0)),
        ]).serialized()
        let result = try commitEdit([name: newBytes], options: co, progress: progress)
        let after = try ProbeSnapshot(model: try Model(directory: root), tokenizer: tokenizer, probe: probe)
        return EditReport(commit: result.commit, method: "ROME", subject: request.subject, targetNew: request.targetNew,
                          groundTruth: probe.groundTruth, layers: [o.layer], tensors: [name], losses: r.losses,
                          targetProbabilityBefore: r.targetProbabilityBefore, targetProbabilityAfter: r.targetProbabilityAfter,
                          efficacy: after.margin > 0 ? 1 : 0, generalization: after.generalization,
                          locality: after.locality(comparedTo: before), marginBefore: before.margin, marginAfter: after.margin,
                          seconds: Self.seconds(clock.now - start), workTreeMismatches: result.workTreeMismatches)
    }

    /// One MEMIT edit of a batch of requests on the current HEAD, committed as one commit.
    private func memitEdit(_ items: [JSONValue], baseID: String, requestFile: String?, options: EditOptions, progress: ProgressReporter) throws -> [EditReport] {
        let clock = ContinuousClock()
        let start = clock.now
        let requests = items.map {
            EditTarget(prompt: $0["prompt"]!.stringValue!, subject: $0["subject"]!.stringValue!, targetNew: $0["target_new"]!.stringValue!)
        }
        let model = try Model(directory: root)
        let tokenizer = try Tokenizer(modelDirectory: root)
        let prompts = EditPrompts(tokenizer: tokenizer)
        let layers = (options.memitLayers ?? MEMIT.defaultLayers(layerCount: model.config.layerCount)).sorted()   // checked in edit()
        return try memitEdit(requests, items: items, layers: layers, model: model, tokenizer: tokenizer, prompts: prompts, baseID: baseID,
                             requestFile: requestFile, options: options, progress: progress, start: start)
    }

    private func memitEdit(_ requests: [EditTarget], items: [JSONValue], layers: [Int], model: Model, tokenizer: Tokenizer, prompts: EditPrompts,
                           baseID: String, requestFile: String?, options: EditOptions, progress: ProgressReporter,
                           start: ContinuousClock.Instant) throws -> [EditReport] {
        let o = options.rome
        let templates = try contextTemplates(model: model, prompts: prompts, lengths: o.templates, baseID: baseID, progress: progress)
        var moments: [Int: Matrix]? = nil
        var momentTokens = 0
        if o.mom2 {
            let m = try secondMoments(layers: layers, baseID: baseID, options: options, progress: progress)
            moments = m.mapValues(\.matrix)
            momentTokens = m.values.first?.tokens ?? 0
        }
        let probes = try items.map { try EditProbe.parse($0.serialized(), commit: "")[0] }
        let before = try probes.map { try ProbeSnapshot(model: model, tokenizer: tokenizer, probe: $0) }
        progress.start("MEMIT on layers \(layers.first!)-\(layers.last!): optimizing z", total: requests.count * (o.steps + 1))
        let r = try MEMIT.edit(model: model, prompts: prompts, targets: requests, templates: templates, layers: layers,
                               secondMoments: moments, lambda: options.memitLambda, options: o) { _, _, _ in progress.advance() }
        progress.finish()
        var updates: [String: [UInt8]] = [:]
        var names: [String] = []
        for (l, u) in r.updates {
            guard u.data.allSatisfy(\.isFinite) else {
                throw KitError.refused("MEMIT produced a non-finite update for layer \(l); nothing was committed")
            }
            let name = "model.layers.\(l).mlp.down_proj.weight"
            updates[name] = try updatedBytes(name, delta: u)
            names.append(name)
        }
        let summary = requests.count == 1 ? "\(requests[0].subject): \(probes[0].groundTruth) -> \(requests[0].targetNew)" : "\(requests.count) requests"
        var co = CommitOptions(message: options.message ?? "MEMIT: \(summary)")
        co.kind = .edit
        co.method = "MEMIT"
        co.author = options.author
        co.request = JSONValue.array(items).serialized()
        if let requestFile { co.hookEnvironment["WLEDGER_REQUEST"] = requestFile }
        co.parameters = JSONValue.object([
            ("layers", .array(layers.map { .double(Double($0)) })), ("mom2_update_weight", .double(options.memitLambda)),
            ("steps", .double(Double(o.steps))), ("lr", .double(o.learningRate)), ("weight_decay", .double(o.weightDecay)),
            ("clamp_norm_factor", .double(o.clampNormFactor)), ("kl_factor", .double(o.klFactor)), ("stop_loss", .double(o.stopLoss)),
            ("context_templates", .array(o.templates.map { .array($0.map { .double(Double($0)) }) })),
            ("mom2", .bool(o.mom2)), ("mom2_tokens", .double(Double(momentTokens))),
        ]).serialized()
        let result = try commitEdit(updates, options: co, progress: progress)
        let edited = try Model(directory: root)
        let seconds = Self.seconds(ContinuousClock().now - start)
        return try requests.indices.map { i in
            let after = try ProbeSnapshot(model: edited, tokenizer: tokenizer, probe: probes[i])
            return EditReport(commit: result.commit, method: "MEMIT", subject: requests[i].subject, targetNew: requests[i].targetNew,
                              groundTruth: probes[i].groundTruth, layers: layers, tensors: names, losses: r.losses[i],
                              targetProbabilityBefore: r.probabilitiesBefore[i], targetProbabilityAfter: r.probabilitiesAfter[i],
                              efficacy: after.margin > 0 ? 1 : 0, generalization: after.generalization,
                              locality: after.locality(comparedTo: before[i]), marginBefore: before[i].margin, marginAfter: after.margin,
                              seconds: seconds, workTreeMismatches: result.workTreeMismatches)
        }
    }

    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
    }

    /// HEAD's bytes of `name` plus `delta` (row-major, the tensor's shape), rounded to its dtype.
    func updatedBytes(_ name: String, delta: Matrix) throws -> [UInt8] {
        let manifest = try ledger.manifest(of: try ledger.head().commit)
        guard let e = manifest[name] else { throw KitError.usage("no tensor named '\(name)' at HEAD") }
        guard e.dtype.isFloat, e.shape == [delta.rows, delta.cols] else {
            throw KitError.usage("tensor '\(name)' is \(e.dtype.rawValue) \(e.shapeJSON), expected a float (\(delta.rows), \(delta.cols)) matrix")
        }
        return Repository.apply(delta: delta.data, to: try ledger.tensorBytes(of: e), dtype: e.dtype)
    }

    /// ROME's context templates, generated once from the base model and kept in the ledger.
    func contextTemplates(model: Model, prompts: EditPrompts, lengths: [[Int]], baseID: String, progress: ProgressReporter) throws -> [String] {
        let key = "edit.templates/\(baseID)/" + lengths.map { $0.map(String.init).joined(separator: "x") }.joined(separator: ",")
        if let text = try ledger.meta(key), let arr = try? JSONParser.parse(Array(text.utf8)).arrayValue {
            return arr.compactMap(\.stringValue)
        }
        progress.phase("generating context templates")
        let pairs = lengths.filter { $0.count == 2 }.map { (length: $0[0], count: $0[1]) }
        let templates = try prompts.contextTemplates(model: model, lengths: pairs)
        try ledger.transaction { try ledger.setMeta(key, JSONValue.array(templates.map { .string($0) }).serialized()) }
        return templates
    }

    /// The text of the key statistics: `--mom2-corpus`, else the Lee news corpus in the task data
    /// directory (path and bytes). Either is named in C's cache key by its content.
    func keyStatisticsCorpus(_ options: EditOptions) throws -> (path: String, bytes: [UInt8]) {
        let corpus = try options.mom2Corpus ?? (resolvePath(HealthSettings.load(self).dataDirectory) + "/corpus/lee_background.txt")
        do { return (corpus, try readFile(corpus)) } catch {
            throw KitError.usage(options.mom2Corpus != nil ? "'\(corpus)': cannot read the text corpus for the key statistics"
                : "'\(corpus)': the default text corpus of the key statistics is missing (run scripts/fetch-fixtures.sh, set health.tasks, pass --mom2-corpus FILE or --no-mom2)")
        }
    }

    /// `commitUpdates` for an edit, whose "nothing to commit" says why an edit can change nothing.
    private func commitEdit(_ updates: [String: [UInt8]], options: CommitOptions, progress: ProgressReporter) throws -> CommitResult {
        do {
            return try commitUpdates(updates, options: options, progress: progress)
        } catch KitError.refused(let why) where why == Repository.nothingChanges {
            throw KitError.refused("nothing to commit: the edit's update rounds away in the weights' dtype, so every weight stays as HEAD has it "
                + "(the target may already be reached, --steps may be 0, or the weights may have grown too large for it to register)")
        }
    }

    /// Tokens per sequence of the key statistics.
    static let keyStatisticsLength = 128

    /// The corpus cut into sequences of `keyStatisticsLength` tokens, up to `options.mom2Tokens`.
    /// - Throws: `KitError.usage` naming the corpus when it is not UTF-8 or too short for one.
    static func keyStatisticsSequences(corpus: String, text corpusText: [UInt8], tokenizer: Tokenizer, options: EditOptions) throws -> [[Int]] {
        guard let whole = String(bytes: corpusText, encoding: .utf8) else {
            throw KitError.usage("'\(corpus)': the text corpus for the key statistics is not UTF-8")
        }
        let text = options.mom2Corpus != nil ? whole : Repository.leadingArticles(of: whole, characters: options.mom2Tokens * 6)
        let ids = tokenizer.encode(text)
        let length = keyStatisticsLength
        var sequences: [[Int]] = []
        var i = 0
        while i + length <= ids.count && sequences.count * length < options.mom2Tokens {
            sequences.append(Array(ids[i..<(i + length)]))
            i += length
        }
        guard !sequences.isEmpty else { throw KitError.usage("'\(corpus)': the text corpus for the key statistics has fewer than \(length) tokens") }
        return sequences
    }

    /// C = E[k kᵀ] of each layer's keys on the base model, over `options.mom2Tokens` tokens of
    /// the corpus; computed once per model, layer and corpus (the missing layers in one pass)
    /// and kept in the ledger: an object of F64 values, named in `meta`.
    func secondMoments(layers: [Int], baseID: String, options: EditOptions, progress: ProgressReporter) throws -> [Int: SecondMoment] {
        let (corpus, corpusText) = try keyStatisticsCorpus(options)
        let corpusID = Self.keyStatisticsCorpusID(corpusText, options: options)
        func key(_ l: Int) -> String { Self.secondMomentKey(layer: l, baseID: baseID, corpusID: corpusID, options: options) }
        var out: [Int: SecondMoment] = [:]
        for l in layers {
            guard let text = try ledger.meta(key(l)) else { continue }
            let parts = text.split(separator: " ")
            guard parts.count == 2, let tokens = Int(parts[1]) else { continue }
            let bytes = try ledger.readObject(String(parts[0]))
            let n = Int(Double(bytes.count / 8).squareRoot())
            guard n * n * 8 == bytes.count else { throw LedgerError.invalid("key statistics of layer \(l): \(bytes.count) bytes is not a square F64 matrix") }
            let data = bytes.withUnsafeBytes { Array($0.bindMemory(to: Double.self)) }
            out[l] = SecondMoment(matrix: Matrix(rows: n, cols: n, data: data), tokens: tokens)
        }
        let missing = layers.filter { out[$0] == nil }
        if missing.isEmpty { return out }

        // The base model's weights: the work tree when it holds base, else materialized.
        guard let baseCommit = try ledger.commit(baseID) else { throw LedgerError.unknownRevision("base") }
        let base = WeightsProvider(repository: self, subject: .commit(baseCommit), progress: progress)
        defer { base.close() }
        let dir = try base.directory()
        let model = try Model(directory: dir)
        let tokenizer = try Tokenizer(modelDirectory: dir)
        let sequences = try Self.keyStatisticsSequences(corpus: corpus, text: corpusText, tokenizer: tokenizer, options: options)
        let length = Self.keyStatisticsLength
        progress.start("key statistics C of layer(s) \(missing.map(String.init).joined(separator: ",")) over \(sequences.count * length) tokens",
                       total: sequences.count)
        var last = 0
        let (moments, tokens) = try ROME.secondMoments(model: model, sequences: sequences, layers: missing) { done in
            progress.advance(done - last)
            last = done
        }
        progress.finish()
        try ledger.transaction {
            for l in missing {
                let bytes = moments[l]!.data.withUnsafeBytes { Array($0) }
                let object = try bytes.withUnsafeBytes { try PreparedObject.encode($0, elementSize: 8, compress: true) }
                try ledger.insert(object)
                try ledger.setMeta(key(l), "\(object.id) \(tokens)")
            }
        }
        for l in missing { out[l] = SecondMoment(matrix: moments[l]!, tokens: tokens) }
        return out
    }

    /// What names a key-statistics corpus in the keys of C: where it came from and its digest.
    static func keyStatisticsCorpusID(_ corpus: [UInt8], options: EditOptions) -> String {
        (options.mom2Corpus != nil ? "file:" : "lee:") + SHA256Digest.hash(corpus).hex.prefix(16)
    }

    /// The ledger's `meta` key of layer `layer`'s C on the base `baseID` over the corpus `corpusID`.
    static func secondMomentKey(layer: Int, baseID: String, corpusID: String, options: EditOptions) -> String {
        "mom2/\(baseID)/layer\(layer)/\(corpusID)/\(options.mom2Tokens)"
    }

    /// The default corpus of the key statistics: the first articles of the Lee news corpus (one
    /// article per line), whole articles until `characters` is reached.
    static func leadingArticles(of text: String, characters: Int) -> String {
        var out = ""
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            out += line + "\n\n"
            if out.count >= characters { break }
        }
        return out
    }
}

/// The request's probes measured on one model: the margin of target_new over ground_truth on
/// the prompt, the share of rephrasings where target_new wins, and the locality predictions.
struct ProbeSnapshot {
    var margin: Double
    var generalization: Double?
    var localityPredictions: [[Int]]

    init(model: Model, tokenizer: Tokenizer, probe: EditProbe) throws {
        let ev = TaskEvaluator(model: model, tokenizer: tokenizer)
        margin = try EditProbe.preference(ev, prompt: probe.prompt, targetNew: probe.targetNew, groundTruth: probe.groundTruth)
        if probe.rephrases.isEmpty {
            generalization = nil
        } else {
            var wins = 0
            for r in probe.rephrases where try EditProbe.preference(ev, prompt: r, targetNew: probe.targetNew, groundTruth: probe.groundTruth) > 0 {
                wins += 1
            }
            generalization = Double(wins) / Double(probe.rephrases.count)
        }
        localityPredictions = try probe.locality.map { try EditProbe.topPredictions(ev, prompt: $0.prompt, answer: $0.answer) }
    }

    func locality(comparedTo before: ProbeSnapshot) -> Double? {
        let pairs = zip(localityPredictions, before.localityPredictions).flatMap { zip($0, $1) }
        guard !pairs.isEmpty else { return nil }
        return Double(pairs.filter { $0 == $1 }.count) / Double(pairs.count)
    }
}
