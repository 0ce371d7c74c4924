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

    /// The two pairs whose log-probabilities `preference` compares: target_new, then
    /// ground_truth, each after `prompt`.
    static func preferencePairs(_ ev: TaskEvaluator, prompt: String, targetNew: String, groundTruth: String) -> [(prefix: [Int], continuation: [Int])] {
        let a = ev.encode(context: prompt, continuation: continuation(prompt, targetNew))
        let b = ev.encode(context: prompt, continuation: continuation(prompt, groundTruth))
        return [(a.context, a.continuation), (b.context, b.continuation)]
    }

    /// Whether the model prefers `targetNew` to `groundTruth` after `prompt`, and by how much
    /// (difference of summed log-probabilities).
    static func preference(_ ev: TaskEvaluator, prompt: String, targetNew: String, groundTruth: String) throws -> Double {
        let lp = try ev.scorer.scoreContinuations(preferencePairs(ev, prompt: prompt, targetNew: targetNew, groundTruth: groundTruth))
        return lp[0].sumLogProb - lp[1].sumLogProb
    }

    /// The (prompt, answer) pair whose teacher-forced top-1 predictions locality compares.
    static func localityPair(_ ev: TaskEvaluator, prompt: String, answer: String) -> (prefix: [Int], continuation: [Int]) {
        let e = ev.encode(context: prompt, continuation: continuation(prompt, answer))
        return (e.context, e.continuation)
    }

    /// The model's top-1 prediction at each position of `answer` after `prompt`, teacher-forced.
    static func topPredictions(_ ev: TaskEvaluator, prompt: String, answer: String) throws -> [Int] {
        try ev.scorer.greedyTokens([localityPair(ev, prompt: prompt, answer: answer)])[0]
    }

    /// Probes scored per batch call (progress is reported after each group).
    static let probesPerGroup = 16

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
            // A group of probes at a time: every preference question (prompt and rephrasings, two
            // choices each) in one batched call, every locality prompt in another.
            var first = 0
            while first < probes.count {
                let group = probes[first..<min(first + probesPerGroup, probes.count)]
                var questions: [[(prefix: [Int], continuation: [Int])]] = []
                for p in group {
                    for prompt in [p.prompt] + p.rephrases {
                        questions.append(preferencePairs(ev, prompt: prompt, targetNew: p.targetNew, groundTruth: p.groundTruth))
                    }
                }
                let lp = try ev.scorer.scoreQuestions(questions)
                var k = 0
                for p in group {
                    let m = lp[k][0].sumLogProb - lp[k][1].sumLogProb
                    k += 1
                    margins.append(m)
                    if m > 0 { efficacy += 1 }
                    for _ in p.rephrases {
                        if lp[k][0].sumLogProb - lp[k][1].sumLogProb > 0 { general += 1 }
                        generalN += 1
                        k += 1
                    }
                }
                ours += try ev.scorer.greedyTokens(group.flatMap { p in p.locality.map { localityPair(ev, prompt: $0.prompt, answer: $0.answer) } })
                progress.advance(group.reduce(0) { $0 + 1 + $1.rephrases.count + $1.locality.count })
                first += group.count
            }
            if localityCount > 0 {
                // Base predictions (same weights when this is the base: no second model).
                let baseEv = weights.subject.tree != nil && weights.subject.tree == baseWeights.subject.tree ? ev : try baseWeights.evaluator()
                let theirs = try baseEv.scorer.greedyTokens(probes.flatMap { p in
                    p.locality.map { localityPair(baseEv, prompt: $0.prompt, answer: $0.answer) }
                })
                for (a, b) in zip(ours, theirs) {
                    let same = zip(a, b).filter { $0 == $1 }.count
                    locality.append(Double(same) / Double(max(b.count, 1)))
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
