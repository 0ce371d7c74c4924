import Ledger

/// A branch or tag as listed by `branch` / `tag`.
public struct RefInfo: Encodable, Sendable {
    public var name: String
    public var commit: String
    public var current: Bool
}

/// Whether an operation concerns branches or tags.
public enum RefKind: String, Sendable {
    case branch, tag
    var prefix: String { self == .branch ? "refs/heads/" : "refs/tags/" }
}

extension Repository {
    /// Lists branches or tags.
    public func listRefs(_ kind: RefKind) throws -> [RefInfo] {
        let head = try ledger.head()
        return try ledger.refs(prefix: kind.prefix).map { r in
            let short = String(r.name.dropFirst(kind.prefix.count))
            return RefInfo(name: short, commit: r.target, current: kind == .branch && head.branchName == short)
        }
    }

    /// Creates a branch or tag at `revision` (default HEAD); `force` moves an existing one.
    @discardableResult
    public func createRef(_ kind: RefKind, name: String, at revision: String = "HEAD", force: Bool = false) throws -> RefInfo {
        try Ledger.validateRefName(name)
        let target = try resolve(revision)
        try ledger.transaction {
            try ledger.updateRef(kind.prefix + name, to: target, expected: force ? .any : .absent)
        }
        return RefInfo(name: name, commit: target, current: false)
    }

    /// Deletes a branch or tag. The current branch cannot be deleted.
    public func deleteRef(_ kind: RefKind, name: String) throws {
        let full = kind.prefix + name
        guard let old = try ledger.refTarget(full) else { throw KitError.usage("\(kind.rawValue) '\(name)' not found") }
        if kind == .branch, try ledger.head().branchName == name {
            throw KitError.refused("cannot delete branch '\(name)': HEAD points to it")
        }
        try ledger.transaction { try ledger.deleteRef(full, expected: .value(old)) }
    }
}
