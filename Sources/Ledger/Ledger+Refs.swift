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

    /// Creates or moves a ref after checking its old value. Call inside a transaction.
    public func updateRef(_ fullName: String, to commit: String, expected: RefExpectation) throws {
        try check(fullName, expected)
        try db.run("INSERT INTO ref(name, target) VALUES(?, ?) ON CONFLICT(name) DO UPDATE SET target = excluded.target, symbolic = NULL",
                   [.text(fullName), .text(commit)])
    }

    /// Deletes a ref after checking its old value. Call inside a transaction.
    public func deleteRef(_ fullName: String, expected: RefExpectation) throws {
        try check(fullName, expected)
        try db.run("DELETE FROM ref WHERE name = ?", [.text(fullName)])
    }

    /// Points HEAD at a branch (symbolic) or detaches it at a commit. Call inside a transaction.
    public func setHead(_ state: HeadState) throws {
        switch state {
        case let .branch(name, _):
            try db.run("INSERT INTO ref(name, symbolic) VALUES('HEAD', ?) ON CONFLICT(name) DO UPDATE SET symbolic = excluded.symbolic, target = NULL",
                       [.text("refs/heads/" + name)])
        case let .detached(commit):
            try db.run("INSERT INTO ref(name, target) VALUES('HEAD', ?) ON CONFLICT(name) DO UPDATE SET target = excluded.target, symbolic = NULL",
                       [.text(commit)])
        }
    }

    /// Moves the current branch (or detached HEAD) from `old` to `new`. Call inside a transaction.
    public func advanceHead(from old: String, to new: String) throws {
        switch try head() {
        case let .branch(name, _):
            try updateRef("refs/heads/" + name, to: new, expected: .value(old))
        case let .detached(c):
            guard c == old else { throw LedgerError.ref(name: "HEAD", reason: "moved concurrently") }
            try setHead(.detached(commit: new))
        }
    }
}
