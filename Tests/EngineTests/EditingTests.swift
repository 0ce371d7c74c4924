import Foundation
import LinAlg
import TensorIO
import TestSupport
import XCTest
@testable import Engine

/// ROME and MEMIT on the real SmolLM2-135M (F32).
///
/// What is checked, independently of the code under test where possible:
/// - the ROME update is rank one and maps the prompt's key to δ exactly (ΔW·k = δ within 1e-6
///   relative, computed here in double), so the edited model's MLP output at the subject is v₀ + δ
///   (checked by a trace of the edited model within 1e-3 relative — F32 products);
/// - the edited model (weights replaced, not an intervention) makes target_new more likely than
///   ground_truth on the prompt, and it was not before;
/// - MEMIT's update of each layer (C = I here) satisfies ΔW·(λI + KKᵀ) = R·Kᵀ: nothing of it is
///   left outside span(K) (≤ 1e-6 relative), with K recomputed here from the model as updated so
///   far; ΔW has rank ≤ the batch size; and the batch's targets win afterwards.
/// - `ROME.secondMoments` equals a direct double sum of the traced keys (1e-4 relative).
final class EditingTests: XCTestCase {
    /// The model and tokenizer, shared with the backward-pass tests.
    static func smolLM2() throws -> (Model, Tokenizer) { try BackwardTests.smolLM2() }

    /// log p(continuation | prompt) summed, with the model's own scorer.
    func logProb(_ model: Model, _ tok: Tokenizer, _ prompt: String, _ answer: String) throws -> Double {
        try Scorer(model: model).scoreContinuation(prefix: tok.encode(prompt), continuation: tok.encode(" " + answer)).sumLogProb
    }

    func testLocateFindsTheSubjectsLastToken() throws {
        let (_, tok) = try Self.smolLM2()
        let p = EditPrompts(tokenizer: tok)
        let a = try p.locate(template: "{}", prompt: "The capital of France is", subject: "France")
        XCTAssertEqual(a.tokens, [504, 3575, 282, 4649, 314])
        XCTAssertEqual(a.subjectLast, 3)
        let b = try p.locate(template: "I like it. {}", prompt: "The Statue of Liberty is in", subject: "Statue of Liberty")
        XCTAssertEqual(tok.decode(Array(b.tokens[...b.subjectLast])), "I like it. The Statue of Liberty")
        XCTAssertEqual(b.tokens, tok.encode("I like it. The Statue of Liberty is in"))
        XCTAssertThrowsError(try p.locate(template: "{}", prompt: "The capital of France is", subject: "Spain"))
        XCTAssertEqual(p.targetTokens("London"), tok.encode(" London"))
    }

    func testSolvePositiveDefiniteAgainstProduct() throws {
        var rng = SystemRandomNumberGenerator()
        let n = 40, k = 3
        let g = Matrix(rows: n, cols: n, data: (0..<(n * n)).map { _ in Double.random(in: -1...1, using: &rng) })
        var a = BLAS.multiply(g, g, transB: true)
        for i in 0..<n { a[i, i] += 0.1 }
        let b = Matrix(rows: n, cols: k, data: (0..<(n * k)).map { _ in Double.random(in: -1...1, using: &rng) })
        let x = try BLAS.solvePositiveDefinite(a, b)
        let ax = BLAS.multiply(a, x)
        for i in 0..<(n * k) { XCTAssertEqual(ax.data[i], b.data[i], accuracy: 1e-9) }
        var notPD = a
        notPD[0, 0] = -1
        XCTAssertThrowsError(try BLAS.solvePositiveDefinite(notPD, b))
    }

    func testROMEOnSmolLM2() throws {
        let (model, tok) = try Self.smolLM2()
        let prompts = EditPrompts(tokenizer: tok)
        let target = EditTarget(prompt: "The capital of France is", subject: "France", targetNew: "London")
        let templates = try prompts.contextTemplates(model: model, lengths: [(5, 2)])
        XCTAssertEqual(templates.count, 3)
        XCTAssertEqual(templates[0], "{}")
        XCTAssertTrue(templates[1].hasPrefix("The") && templates[1].hasSuffix(". {}"), templates[1])
        XCTAssertEqual(try prompts.contextTemplates(model: model, lengths: [(5, 2)]), templates, "seeded: the same templates again")

        // Second moment over a little real text (enough to be positive definite is not needed: a
        // ridge keeps the test small; the statistic itself is checked against a direct sum).
        let text = String(repeating: "The quick brown fox jumps over the lazy dog. Paris is in France; Berlin is in Germany. ", count: 6)
        let ids = tok.encode(text)
        let seqs = [Array(ids[0..<48]), Array(ids[48..<96])]
        let (moments, count) = try ROME.secondMoments(model: model, sequences: seqs, layers: [5, 7], batch: 1)
        XCTAssertEqual(count, 96)
        let C = moments[5]!
        let traced = try model.trace(seqs, captureMLP: [5, 7]).mlpKeys
        XCTAssertEqual(try model.mlpKeys(seqs, layers: [5, 7]), traced, "the truncated pass gives the traced keys")
        let direct = traced[5]!
        let I = model.config.intermediateSize
        for (i, j) in [(0, 0), (3, 17), (100, 1500), (1535, 2)] {
            var s = 0.0
            for seq in direct { for t in 0..<(seq.count / I) { s += Double(seq[t * I + i]) * Double(seq[t * I + j]) } }
            XCTAssertEqual(C[i, j], s / 96, accuracy: 1e-4 * max(abs(s / 96), 1e-3), "C[\(i), \(j)]")
        }
        var ridge = C
        let trace = (0..<I).reduce(0.0) { $0 + C[$1, $1] }
        for i in 0..<I { ridge[i, i] += 0.01 * trace / Double(I) }

        var o = ROMEOptions(layer: 5)
        o.steps = 12
        let r = try ROME.edit(model: model, prompts: prompts, target: target, templates: templates, secondMoment: ridge, options: o)
        print("EditingTests: ROME losses \(r.losses.map { String(format: "%.3f", $0) }), p(target) \(r.targetProbabilityBefore) → \(r.targetProbabilityAfter)")
        XCTAssertLessThan(r.targetProbabilityBefore, 0.05)
        XCTAssertGreaterThan(r.targetProbabilityAfter, 0.5)
        XCTAssertLessThan(r.losses.last!, r.losses.first! / 4)
        let deltaNorm = sqrt(r.delta.reduce(0) { $0 + $1 * $1 })
        XCTAssertLessThanOrEqual(deltaNorm, o.clampNormFactor * r.outputNorm * (1 + 1e-9))

        // Rank one, and ΔW·k = δ for the prompt's key (in double, here).
        let s = try BLAS.singularValues(r.update.data, rows: r.update.rows, cols: r.update.cols)
        XCTAssertLessThan(s[1], 1e-9 * s[0])
        let loc = try prompts.locate(template: "{}", prompt: target.prompt, subject: target.subject)
        let t0 = try model.trace([loc.tokens], captureMLP: [5])
        let k = RewriteProblem.row(t0.mlpKeys[5]!, TokenPosition(sequence: 0, position: loc.subjectLast), width: I)
        let H = model.config.hiddenSize
        for i in stride(from: 0, to: H, by: 37) {
            var dk = 0.0
            for j in 0..<I { dk += r.update[i, j] * k[j] }
            XCTAssertEqual(dk, r.delta[i], accuracy: 1e-6 * deltaNorm)
        }

        // The edited model: MLP output v₀ + δ at the subject, and London beats Paris.
        var w = model.mlpDown(layer: 5)
        for j in 0..<w.count { w[j] = Float(Double(w[j]) + r.update.data[j]) }
        let edited = model.replacingMLPDown(layer: 5, with: w)
        let t1 = try edited.trace([loc.tokens], captureMLP: [5])
        let v0 = RewriteProblem.row(t0.mlpOutputs[5]!, TokenPosition(sequence: 0, position: loc.subjectLast), width: H)
        let v1 = RewriteProblem.row(t1.mlpOutputs[5]!, TokenPosition(sequence: 0, position: loc.subjectLast), width: H)
        var err = 0.0
        for i in 0..<H { err = max(err, abs(v1[i] - v0[i] - r.delta[i])) }
        XCTAssertLessThan(err, 1e-3 * deltaNorm)
        let before = try logProb(model, tok, target.prompt, "London") - logProb(model, tok, target.prompt, "Paris")
        let after = try logProb(edited, tok, target.prompt, "London") - logProb(edited, tok, target.prompt, "Paris")
        // Specificity, reported: how another country's capital fares.
        let other = try logProb(edited, tok, "The capital of Germany is", "Berlin") - logProb(model, tok, "The capital of Germany is", "Berlin")
        print("EditingTests: margin London − Paris \(before) → \(after); Germany→Berlin log p change \(other)")
        XCTAssertLessThan(before, 0)
        XCTAssertGreaterThan(after, 0)
        // The original model is untouched.
        XCTAssertEqual(try logProb(model, tok, target.prompt, "London") - logProb(model, tok, target.prompt, "Paris"), before)
    }

    func testMEMITOnSmolLM2() throws {
        let (model, tok) = try Self.smolLM2()
        let prompts = EditPrompts(tokenizer: tok)
        let targets = [EditTarget(prompt: "The capital of Japan is", subject: "Japan", targetNew: "Seoul"),
                       EditTarget(prompt: "The Eiffel Tower is located in the city of", subject: "Eiffel Tower", targetNew: "Rome")]
        let truths = ["Tokyo", "Paris"]
        var o = ROMEOptions(layer: 0)
        o.steps = 12
        let layers = [4, 5]
        let lambda = 50.0
        let r = try MEMIT.edit(model: model, prompts: prompts, targets: targets, templates: ["{}"], layers: layers,
                               secondMoments: nil, lambda: lambda, options: o)
        XCTAssertEqual(r.updates.map(\.layer), layers)
        // Normal equations of each layer with the keys of the model as updated so far.
        var current = model
        let I = model.config.intermediateSize, H = model.config.hiddenSize
        for (index, (l, u)) in r.updates.enumerated() {
            var K = Matrix(zeros: I, targets.count)
            for (i, t) in targets.enumerated() {
                let loc = try prompts.locate(template: "{}", prompt: t.prompt, subject: t.subject)
                let tr = try current.trace([loc.tokens], captureMLP: [l])
                let k = RewriteProblem.row(tr.mlpKeys[l]!, TokenPosition(sequence: 0, position: loc.subjectLast), width: I)
                for j in 0..<I { K[j, i] = k[j] }
            }
            // ΔW·(λI + KKᵀ) = R·Kᵀ: its rows lie in span(Kᵀ) (R is internal, so the check is that
            // nothing remains after projecting onto span(K)), and ΔW has rank ≤ batch size.
            let dwk = BLAS.multiply(u, K)  // (H, B)
            let s = try BLAS.singularValues(u.data, rows: H, cols: I)
            XCTAssertLessThan(s[targets.count], 1e-9 * s[0], "layer \(l): rank ≤ batch size")
            var lhs = u
            for j in 0..<(H * I) { lhs.data[j] *= lambda }
            let extra = BLAS.multiply(dwk, K, transB: true)
            for j in 0..<(H * I) { lhs.data[j] += extra.data[j] }
            let q = try BLAS.orthonormalColumns(K)
            let proj = BLAS.multiply(BLAS.multiply(lhs, q), q, transB: true)
            var resid = 0.0, norm = 0.0
            for j in 0..<(H * I) { resid += pow(lhs.data[j] - proj.data[j], 2); norm += lhs.data[j] * lhs.data[j] }
            XCTAssertLessThan(resid.squareRoot(), 1e-6 * norm.squareRoot(), "layer \(l) (step \(index))")
            var w = current.mlpDown(layer: l)
            for j in 0..<w.count { w[j] = Float(Double(w[j]) + u.data[j]) }
            current = current.replacingMLPDown(layer: l, with: w)
        }
        for (t, truth) in zip(targets, truths) {
            let before = try logProb(model, tok, t.prompt, t.targetNew) - logProb(model, tok, t.prompt, truth)
            let after = try logProb(current, tok, t.prompt, t.targetNew) - logProb(current, tok, t.prompt, truth)
            print("EditingTests: MEMIT \(t.subject): margin \(before) → \(after)")
            XCTAssertLessThan(before, 0)
            XCTAssertGreaterThan(after, 0, "\(t.subject) -> \(t.targetNew)")
        }
    }
}
