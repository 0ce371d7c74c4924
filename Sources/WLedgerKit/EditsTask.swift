import Engine
import Foundation
import Ledger
import TensorIO

/// One edit request in force at a commit, reduced to what the `edits` task asks.
struct EditProbe: Sendable, Equatable {
    var commit: String
    var prompt: String
    var targetNew: String
    var groundTruth: String
    var rephrases: [String]
    var locality: [(prompt: String, answer: String)]
    /// Canonical text (cache key).
    var canonical: String

    static func == (a: EditProbe, b: EditProbe) -> Bool { a.canonical == b.canonical }

    /// The requests of `history` (newest first, as `Ledger.history` returns it) that are still in
    /// force: every request of an edit commit, minus edits undone by a later `revert` (a revert
    /// of that revert brings the edit back).
    static func active(in history: [CommitRecord]) throws -> [EditProbe] {
        let oldestFirst = history.reversed()
        let byID = Dictionary(uniqueKeysWithValues: history.map { ($0.id, $0) })
        var active: [String: Bool] = [:]
        /// The edit a chain of reverts ultimately targets.
        func root(_ id: String) -> String? {
            var cur = id
            var hops = 0
            while let c = byID[cur], c.kind == .revert, hops < 10_000 {
                guard let p = c.parameters.flatMap({ try? JSONParser.parse(Array($0.utf8)) })?["reverts"]?.stringValue else { return nil }
                cur = p
                hops += 1
            }
            return byID[cur]?.request != nil ? cur : nil
        }
        for c in oldestFirst {
            if c.kind == .revert {
                if let target = c.parameters.flatMap({ try? JSONParser.parse(Array($0.utf8)) })?["reverts"]?.stringValue, let edit = root(target) {
                    active[edit] = !(active[edit] ?? true)
                }
            } else if c.request != nil {
                active[c.id] = true
            }
        }
        var out: [EditProbe] = []
        for c in oldestFirst where c.kind != .revert && active[c.id] == true {
            guard let text = c.request else { continue }
            out += try parse(text, commit: c.id)
        }
        return out
    }

    /// The probes of one stored request (a JSON object or an array of them).
    static func parse(_ text: String, commit: String) throws -> [EditProbe] {
        var out: [EditProbe] = []
        let json = try JSONParser.parse(Array(text.utf8))
        let items: [JSONValue]
        if case let .array(a) = json { items = a } else { items = [json] }
        for item in items {
            guard let prompt = item["prompt"]?.stringValue, let tn = item["target_new"]?.stringValue,
                  let gt = item["ground_truth"]?.stringValue else { continue }
            var rephrases: [String] = []
            if let r = item["rephrase_prompt"] {
                if let s = r.stringValue { rephrases = [s] } else { rephrases = r.arrayValue?.compactMap(\.stringValue) ?? [] }
            }
            var locality: [(String, String)] = []
            if case let .object(sets)? = item["locality"] {
                for (_, set) in sets {
                    let ps = set["prompt"].map { $0.stringValue.map { [$0] } ?? ($0.arrayValue?.compactMap(\.stringValue) ?? []) } ?? []
                    let gs = set["ground_truth"].map { $0.stringValue.map { [$0] } ?? ($0.arrayValue?.compactMap(\.stringValue) ?? []) } ?? []
                    for (p, g) in zip(ps, gs) { locality.append((p, g)) }
                }
            }
            out.append(EditProbe(commit: commit, prompt: prompt, targetNew: tn, groundTruth: gt, rephrases: rephrases,
                                 locality: locality, canonical: commit + "\u{0}" + item.serialized()))
        }
        return out
    }

    /// The continuation as it follows a prompt: a space is put between them unless one side has it.
    static func continuation(_ prompt: String, _ answer: String) -> String {
        if prompt.last?.isWhitespace == true || answer.first?.isWhitespace == true { return answer }
        return " " + answer
    }

    /// Whether the model prefers `targetNew` to `groundTruth` after `prompt`, and by how much
    /// (difference of summed log-probabilities).
    static func preference(_ ev: TaskEvaluator, prompt: String, targetNew: String, groundTruth: String) throws -> Double {
        let a = ev.encode(context: prompt, continuation: continuation(prompt, targetNew))
        let b = ev.encode(context: prompt, continuation: continuation(prompt, groundTruth))
        let lp = try ev.scorer.scoreContinuations([(a.context, a.continuation), (b.context, b.continuation)])
        return lp[0].sumLogProb - lp[1].sumLogProb
    }

    /// The model's top-1 prediction at each position of `answer` after `prompt`, teacher-forced.
    static func topPredictions(_ ev: TaskEvaluator, prompt: String, answer: String) throws -> [Int] {
        let e = ev.encode(context: prompt, continuation: continuation(prompt, answer))
        var out: [Int] = []
        var prefix = e.context
        for t in e.continuation {
            out.append(try ev.scorer.greedyNext(tokens: prefix).id)
            prefix.append(t)
        }
        return out
    }

    /// Runs the `edits` task: efficacy (target_new more likely than ground_truth on the prompt),
    /// generalization (the same on the rephrasings), locality (share of teacher-forced top-1
    /// predictions on the locality prompts that equal the base model's), and the mean log-
    /// probability margin of target_new over ground_truth.
    static func evaluate(_ probes: [EditProbe], weights: WeightsProvider, baseWeights: WeightsProvider, progress: ProgressReporter,
                         title: String) throws -> TaskResult {
        let clock = ContinuousClock()
        let start = clock.now
        var metrics: [String: MetricValue] = [:]
        if !probes.isEmpty {
            let ev = try weights.evaluator()
            let localityCount = probes.reduce(0) { $0 + $1.locality.count }
            let total = probes.reduce(0) { $0 + 1 + $1.rephrases.count + $1.locality.count }
            progress.start(title, total: total)
            var efficacy = 0, general = 0, generalN = 0
            var margins: [Double] = []
            var locality: [Double] = []
            var ours: [[Int]] = []
            for p in probes {
                let m = try preference(ev, prompt: p.prompt, targetNew: p.targetNew, groundTruth: p.groundTruth)
                margins.append(m)
                if m > 0 { efficacy += 1 }
                progress.advance()
                for r in p.rephrases {
                    if try preference(ev, prompt: r, targetNew: p.targetNew, groundTruth: p.groundTruth) > 0 { general += 1 }
                    generalN += 1
                    progress.advance()
                }
                for l in p.locality {
                    ours.append(try topPredictions(ev, prompt: l.prompt, answer: l.answer))
                    progress.advance()
                }
            }
            if localityCount > 0 {
                // Base predictions (same weights when this is the base: no second model).
                let baseEv = weights.subject.tree != nil && weights.subject.tree == baseWeights.subject.tree ? ev : try baseWeights.evaluator()
                var i = 0
                for p in probes {
                    for l in p.locality {
                        let theirs = try topPredictions(baseEv, prompt: l.prompt, answer: l.answer)
                        let same = zip(ours[i], theirs).filter { $0 == $1 }.count
                        locality.append(Double(same) / Double(max(theirs.count, 1)))
                        i += 1
                    }
                }
                metrics["locality"] = MetricValue.mean(locality)
            }
            metrics["efficacy"] = MetricValue.proportion(successes: efficacy, of: probes.count)
            metrics["margin"] = MetricValue.mean(margins)
            if generalN > 0 { metrics["generalization"] = MetricValue.proportion(successes: general, of: generalN) }
            progress.finish()
        }
        return TaskResult(task: "edits", kind: "edits", shots: 0, seed: 0, tokenization: ContinuationTokenization.joined.rawValue, chance: nil,
                          metrics: metrics, evaluator: TaskEvaluator.version, elapsedSeconds: TaskEvaluator.secondsOf(clock.now - start))
    }
}
