import Foundation

/// One move of a ref, as `reflog` lists it.
public struct ReflogEntry: Equatable, Sendable {
    /// Where the ref pointed before (nil: it did not exist).
    public var old: String?
    /// Where it pointed after.
    public var new: String
    /// Unix seconds.
    public var time: Int64
    public var message: String
    /// The entry's place among every reflog entry of the ledger (later entries are larger),
    /// which orders entries made within the same second.
    public var seq: Int64 = 0
}

/// What a ref must point to before it moves (git's "old value" check).
public enum RefExpectation: Sendable {
    case any
    case absent
    case value(String)
}

extension Ledger {
    public static let defaultBranch = "main"

    /// Validates a branch or tag short name (rules in the spirit of `git check-ref-format`).
    public static func validateRefName(_ name: String) throws {
        func bad(_ why: String) -> LedgerError { .ref(name: name, reason: why) }
        if name.isEmpty { throw bad("empty name") }
        if name == "HEAD" || name == "base" || name == "@" { throw bad("reserved name") }
        if name.hasPrefix("-") || name.hasPrefix("/") || name.hasSuffix("/") || name.hasSuffix(".") || name.hasSuffix(".lock") {
            throw bad("not a valid ref name")
        }
        if name.contains("..") || name.contains("//") || name.contains("@{") || name.contains("/.") || name.hasPrefix(".") {
            throw bad("not a valid ref name")
        }
        for u in name.unicodeScalars where u.value < 0x21 || u.value == 0x7F || "~^:?*[\\".unicodeScalars.contains(u) {
            throw bad("not a valid ref name")
        }
        // As git: no component may end in ".lock".
        if name.split(separator: "/").contains(where: { $0.hasSuffix(".lock") }) { throw bad("not a valid ref name") }
        // Names are stored byte for byte, but Swift compares text by canonical equivalence: a
        // decomposed 'café' beside a composed one would be two branches that compare equal
        // (which is current, which HEAD follows). Only the composed form (NFC) is taken.
        let composed = name.precomposedStringWithCanonicalMapping
        if !composed.utf8.elementsEqual(name.utf8) {
            throw bad("not in Unicode normal form C (NFC), as which wledger keeps names; write it in that form")
        }
    }

    /// Where HEAD points.
    public func head() throws -> HeadState {
        guard let row = try db.queryOne("SELECT target, symbolic FROM ref WHERE name = 'HEAD'", [], { ($0.optionalText(0), $0.optionalText(1)) }) else {
            throw LedgerError.invalid("ledger has no HEAD")
        }
        if let sym = row.1 {
            guard let target = try refTarget(sym) else { throw LedgerError.ref(name: sym, reason: "HEAD points to a branch that does not exist") }
            return .branch(name: String(sym.dropFirst("refs/heads/".count)), commit: target)
        }
        return .detached(commit: row.0!)
    }

    /// The commit a full ref name ("refs/heads/x", "refs/tags/y") points to.
    public func refTarget(_ fullName: String) throws -> String? {
        try db.queryOne("SELECT target FROM ref WHERE name = ?", [.text(fullName)]) { $0.optionalText(0) } ?? nil
    }

    /// Refs under a prefix, sorted by name: (full name, commit).
    public func refs(prefix: String) throws -> [(name: String, target: String)] {
        try db.query("SELECT name, target FROM ref WHERE name GLOB ? AND target IS NOT NULL ORDER BY name", [.text(prefix + "*")]) { ($0.text(0), $0.text(1)) }
    }

    private func check(_ fullName: String, _ expected: RefExpectation) throws {
        let current = try refTarget(fullName)
        switch expected {
        case .any: return
        case .absent:
            if current != nil { throw LedgerError.ref(name: fullName, reason: "already exists") }
        case let .value(v):
            if current != v { throw LedgerError.ref(name: fullName, reason: "moved concurrently (expected \(v.prefix(12)), found \(current?.prefix(12) ?? "nothing"))") }
        }
    }

    /// Creates or moves a ref after checking its old value, logging the move (branches and HEAD,
    /// when it points to the branch) with `message`. Call inside a transaction.
    /// `loggedOld` is what the log records as the old value when it is not the ref's (a rename).
    public func updateRef(_ fullName: String, to commit: String, expected: RefExpectation, message: String, loggedOld: String? = nil) throws {
        try check(fullName, expected)
        let old = try loggedOld ?? refTarget(fullName)
        try db.run("INSERT INTO ref(name, target) VALUES(?, ?) ON CONFLICT(name) DO UPDATE SET target = excluded.target, symbolic = NULL",
                   [.text(fullName), .text(commit)])
        if fullName.hasPrefix("refs/heads/") {
            try appendReflog(fullName, old: old, new: commit, message: message)
            if try symbolicHead() == fullName { try appendReflog("HEAD", old: old, new: commit, message: message) }
        }
    }

    /// Deletes a ref, and a branch's reflog with it, after checking its old value. Call inside a
    /// transaction.
    public func deleteRef(_ fullName: String, expected: RefExpectation) throws {
        try check(fullName, expected)
        try db.run("DELETE FROM ref WHERE name = ?", [.text(fullName)])
        try db.run("DELETE FROM reflog WHERE ref = ?", [.text(fullName)])
    }

    /// Gives branch `from`'s reflog to branch `to` (a rename), dropping what `to` had. Call inside
    /// a transaction, before the rename's `updateRef`.
    public func moveReflog(from: String, to: String) throws {
        try db.run("DELETE FROM reflog WHERE ref = ?", [.text(to)])
        try db.run("UPDATE reflog SET ref = ? WHERE ref = ?", [.text(to), .text(from)])
    }

    /// Points HEAD at a branch (symbolic) or detaches it at a commit, logging HEAD's move with
    /// `message`. Call inside a transaction.
    public func setHead(_ state: HeadState, message: String) throws {
        let old = try? head().commit
        switch state {
        case let .branch(name, _):
            try db.run("INSERT INTO ref(name, symbolic) VALUES('HEAD', ?) ON CONFLICT(name) DO UPDATE SET symbolic = excluded.symbolic, target = NULL",
                       [.text("refs/heads/" + name)])
        case let .detached(commit):
            try db.run("INSERT INTO ref(name, target) VALUES('HEAD', ?) ON CONFLICT(name) DO UPDATE SET target = excluded.target, symbolic = NULL",
                       [.text(commit)])
        }
        try appendReflog("HEAD", old: old, new: try head().commit, message: message)
    }

    /// Moves the current branch (or detached HEAD) from `old` to `new`. Call inside a transaction.
    public func advanceHead(from old: String, to new: String, message: String) throws {
        switch try head() {
        case let .branch(name, _):
            try updateRef("refs/heads/" + name, to: new, expected: .value(old), message: message)
        case let .detached(c):
            guard c == old else { throw LedgerError.ref(name: "HEAD", reason: "moved concurrently") }
            try setHead(.detached(commit: new), message: message)
        }
    }

    /// The branch HEAD points to ("refs/heads/x"), nil when detached or absent.
    private func symbolicHead() throws -> String? {
        try db.queryOne("SELECT symbolic FROM ref WHERE name = 'HEAD'", []) { $0.optionalText(0) } ?? nil
    }

    /// Logs a move of `ref` ("HEAD" or "refs/heads/x") that left it where it was (git logs
    /// `reset --hard` to HEAD too). Call inside a transaction.
    public func logStay(_ ref: String, at commit: String, message: String) throws {
        try appendReflog(ref, old: commit, new: commit, message: message)
    }

    /// The stash: git's `refs/stash` is a log with no ref, newest entry first (`stash@{0}`).
    public static let stashLog = "refs/stash"

    /// "no entries", "only 1 entry", "only N entries": how far a stash of `count` entries goes.
    public static func stashSizeText(_ count: Int) -> String {
        count == 0 ? "no entries" : "only \(count) entr\(count == 1 ? "y" : "ies")"
    }

    /// Pushes `commit` onto the stash (call inside a transaction).
    public func pushStash(_ commit: String, message: String) throws {
        try appendReflog(Self.stashLog, old: try reflog(Self.stashLog, limit: 1).first?.new, new: commit, message: message)
    }

    /// Removes stash entry `index` (0 = newest); false when there is none.
    @discardableResult
    public func dropStash(_ index: Int) throws -> Bool {
        guard let (seq, old) = try db.queryOne("SELECT seq, old FROM reflog WHERE ref = ? ORDER BY seq DESC LIMIT 1 OFFSET ?",
                                               [.text(Self.stashLog), .int(Int64(index))], { ($0.int(0), $0.optionalText(1)) }) else { return false }
        // The next newer entry's old value was the dropped one: it takes the dropped entry's
        // (git rewrites the log the same way), so nothing names the dropped commit any more.
        try db.run("""
            UPDATE reflog SET old = ? WHERE seq = (SELECT min(seq) FROM reflog WHERE ref = ? AND seq > ?)
            """, [old.map { .text($0) } ?? .null, .text(Self.stashLog), .int(seq)])
        try db.run("DELETE FROM reflog WHERE seq = ?", [.int(seq)])
        return true
    }

    /// Removes every stash entry; returns how many there were.
    public func clearStash() throws -> Int {
        let n = Int(try db.queryOne("SELECT count(*) FROM reflog WHERE ref = ?", [.text(Self.stashLog)]) { $0.int(0) } ?? 0)
        try db.run("DELETE FROM reflog WHERE ref = ?", [.text(Self.stashLog)])
        return n
    }

    /// The time a reflog entry records, and reflog expiry measures ages from: the clock's, even
    /// where $WLEDGER_TIME pins commit times (git's reflog takes GIT_COMMITTER_DATE, so a pinned
    /// past date makes every entry look old to its gc at once). The reflog says when refs moved.
    public static func reflogNow() -> Int64 { Int64(Date().timeIntervalSince1970) }

    private func appendReflog(_ ref: String, old: String?, new: String, message: String) throws {
        try db.run("INSERT INTO reflog(ref, old, new, time, message) VALUES(?, ?, ?, ?, ?)",
                   [.text(ref), old.map { .text($0) } ?? .null, .text(new), .int(Self.reflogNow()),
                    .text(message.split(separator: "\n", omittingEmptySubsequences: false).first.map(String.init) ?? "")])
    }

    /// `ref`'s log ("HEAD" or "refs/heads/x"), newest first; at most `limit` entries.
    public func reflog(_ ref: String, limit: Int? = nil) throws -> [ReflogEntry] {
        try db.query("SELECT old, new, time, message, seq FROM reflog WHERE ref = ? ORDER BY seq DESC LIMIT ?",
                     [.text(ref), .int(Int64(limit ?? -1))]) {
            ReflogEntry(old: $0.optionalText(0), new: $0.text(1), time: $0.int(2), message: $0.text(3), seq: $0.int(4))
        }
    }
}
