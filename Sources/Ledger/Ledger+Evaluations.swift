import Foundation

/// A cached health result: one task on one set of weights (identified by tree hash).
public struct EvaluationRecord: Sendable, Equatable {
    public var tree: String
    public var task: String
    public var spec: String
    public var evaluator: String
    /// TaskResult JSON.
    public var result: String
    public var createdAt: Int64

    public init(tree: String, task: String, spec: String, evaluator: String, result: String, createdAt: Int64) {
        self.tree = tree; self.task = task; self.spec = spec; self.evaluator = evaluator; self.result = result; self.createdAt = createdAt
    }
}

extension Ledger {
    /// The cached result of task `spec` by `evaluator` on weights `tree`, if any.
    public func evaluation(tree: String, spec: String, evaluator: String) throws -> EvaluationRecord? {
        try db.queryOne("SELECT tree, task, spec, evaluator, result, createdAt FROM evaluation WHERE tree = ? AND spec = ? AND evaluator = ?",
                        [.text(tree), .text(spec), .text(evaluator)], Self.evaluationRow)
    }

    /// Every cached result on weights `tree`, oldest first.
    public func evaluations(tree: String) throws -> [EvaluationRecord] {
        try db.query("SELECT tree, task, spec, evaluator, result, createdAt FROM evaluation WHERE tree = ? ORDER BY createdAt, task",
                     [.text(tree)], Self.evaluationRow)
    }

    /// Records (or replaces) a result.
    public func storeEvaluation(_ r: EvaluationRecord) throws {
        guard !readOnly else { return }   // a cache: left as it is on a read-only ledger
        try db.run("""
            INSERT INTO evaluation(tree, task, spec, evaluator, result, createdAt) VALUES(?, ?, ?, ?, ?, ?)
            ON CONFLICT(tree, spec, evaluator) DO UPDATE SET task = excluded.task, result = excluded.result, createdAt = excluded.createdAt
            """, [.text(r.tree), .text(r.task), .text(r.spec), .text(r.evaluator), .text(r.result), .int(r.createdAt)])
    }

    /// Forgets cached results (all, or those of one tree); returns how many.
    @discardableResult
    public func clearEvaluations(tree: String? = nil) throws -> Int {
        let before = try db.queryOne("SELECT count(*) FROM evaluation") { Int($0.int(0)) } ?? 0
        if let tree { try db.run("DELETE FROM evaluation WHERE tree = ?", [.text(tree)]) } else { try db.run("DELETE FROM evaluation") }
        let after = try db.queryOne("SELECT count(*) FROM evaluation") { Int($0.int(0)) } ?? 0
        return before - after
    }

    private static func evaluationRow(_ s: Statement) -> EvaluationRecord {
        EvaluationRecord(tree: s.text(0), task: s.text(1), spec: s.text(2), evaluator: s.text(3), result: s.text(4), createdAt: s.int(5))
    }
}
