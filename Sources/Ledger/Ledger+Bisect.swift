import Foundation

/// The bisect session in progress (table `bisectSession`, schema 0003).
public struct BisectSessionRecord: Sendable, Equatable {
    /// Where `bisect reset` returns: "refs/heads/NAME" or a commit id.
    public var origHead: String
    public var noCheckout: Bool
    /// The commit being tested, if any.
    public var current: String?
    public var startedAt: Int64

    public init(origHead: String, noCheckout: Bool, current: String?, startedAt: Int64) {
        self.origHead = origHead; self.noCheckout = noCheckout; self.current = current; self.startedAt = startedAt
    }
}

/// A verdict on one commit during bisect.
public enum BisectVerdict: String, Sendable, Codable, CaseIterable {
    case bad, good, skip
}

/// One mark of the session (table `bisectMark`).
public struct BisectMarkRecord: Sendable, Equatable {
    public var seq: Int64
    public var verdict: BisectVerdict
    public var target: String

    public init(seq: Int64, verdict: BisectVerdict, target: String) {
        self.seq = seq; self.verdict = verdict; self.target = target
    }
}

extension Ledger {
    /// The session in progress, or nil.
    public func bisectSession() throws -> BisectSessionRecord? {
        try db.queryOne("SELECT origHead, noCheckout, current, startedAt FROM bisectSession WHERE id = 1") {
            BisectSessionRecord(origHead: $0.text(0), noCheckout: $0.int(1) != 0, current: $0.optionalText(2), startedAt: $0.int(3))
        }
    }

    /// The marks of the session, in order.
    public func bisectMarks() throws -> [BisectMarkRecord] {
        try db.query("SELECT seq, verdict, target FROM bisectMark ORDER BY seq") {
            BisectMarkRecord(seq: $0.int(0), verdict: BisectVerdict(rawValue: $0.text(1)) ?? .skip, target: $0.text(2))
        }
    }

    /// Starts a new session, replacing any previous one and its marks. Call inside a transaction.
    public func startBisect(_ s: BisectSessionRecord) throws {
        try db.run("DELETE FROM bisectMark")
        try db.run("DELETE FROM bisectSession")
        try db.run("INSERT INTO bisectSession(id, origHead, noCheckout, current, startedAt) VALUES(1, ?, ?, ?, ?)",
                   [.text(s.origHead), .int(s.noCheckout ? 1 : 0), s.current.map { .text($0) } ?? .null, .int(s.startedAt)])
    }

    /// Appends a mark. Call inside a transaction.
    public func addBisectMark(_ verdict: BisectVerdict, _ target: String) throws {
        try db.run("INSERT INTO bisectMark(verdict, target) VALUES(?, ?)", [.text(verdict.rawValue), .text(target)])
    }

    /// Records the commit being tested (nil: none).
    public func setBisectCurrent(_ commit: String?) throws {
        try db.run("UPDATE bisectSession SET current = ? WHERE id = 1", [commit.map { .text($0) } ?? .null])
    }

    /// Ends the session (no-op when there is none). Call inside a transaction.
    public func endBisect() throws {
        try db.run("DELETE FROM bisectMark")
        try db.run("DELETE FROM bisectSession")
    }
}
