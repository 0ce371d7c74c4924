import Foundation
import Ledger
import LinAlg
import TensorIO

/// A commit as shown by `log` and `show`.
public struct CommitInfo: Encodable, Sendable {
    public var id: String
    public var parent: String?
    public var kind: String
    public var message: String
    public var author: String
    public var time: Int64
    public var date: String
    public var method: String?
    public var request: JSONText?
    public var parameters: JSONText?
    /// Branches and tags pointing here ("HEAD -> main", "tag: v1").
    public var refs: [String]
    public var summary: ChangeSummary
    /// Per-tensor changes (show only).
    public var tensors: [TensorChange]?
    public var files: [String]?
    /// The same files with what the commit did to each (show only).
    public var sideFiles: [StatusReport.SideFileChange]?
    /// Weight files whose header (metadata, tensor order, padding) the commit changed (show only).
    public var headers: [String]?
    /// Condition number κ of each edited 2-D tensor before and after the commit (show, log --stat).
    public var kappa: [KappaChange]?

    public struct KappaChange: Encodable, Sendable {
        public var name: String
        public var before: Double?
        public var after: Double?
    }

    public struct ChangeSummary: Encodable, Sendable {
        public var tensors: Int
        public var changedElements: Int
        public var l1: Double
        public var frobenius: Double
        public var storedBytes: Int
    }

    public struct TensorChange: Encodable, Sendable {
        public var name: String
        public var file: String
        public var dtype: String
        public var shape: [Int]
        public var changed: Int
        public var count: Int
        public var l1: Double
        public var frobenius: Double
        public var relativeFrobenius: Double
        public var maxAbs: Double
        public var encoding: String
        public var storedBytes: Int
    }
}

/// JSON text embedded verbatim in JSON output (and printed as-is in text).
public struct JSONText: Encodable, Sendable {
    public var text: String
    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(JSONAny(try JSONParser.parse(Array(text.utf8))))
    }
}

/// Encodes a `JSONValue` through Codable.
struct JSONAny: Encodable {
    let value: JSONValue
    init(_ v: JSONValue) { value = v }
    struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }
    func encode(to encoder: Encoder) throws {
        switch value {
        case .null: var c = encoder.singleValueContainer(); try c.encodeNil()
        case let .bool(b): var c = encoder.singleValueContainer(); try c.encode(b)
        case let .int(i): var c = encoder.singleValueContainer(); try c.encode(i)
        case let .double(d): var c = encoder.singleValueContainer(); try c.encode(d)
        case let .string(s): var c = encoder.singleValueContainer(); try c.encode(s)
        case let .array(a):
            var c = encoder.unkeyedContainer()
            for v in a { try c.encode(JSONAny(v)) }
        case let .object(o):
            var c = encoder.container(keyedBy: Key.self)
            for (k, v) in o { try c.encode(JSONAny(v), forKey: Key(stringValue: k)) }
        }
    }
}

extension Repository {
    /// Ref decorations per commit id.
    func decorations() throws -> [String: [String]] {
        var out: [String: [String]] = [:]
        let head = try ledger.head()
        for (name, target) in try ledger.refs(prefix: "refs/heads/") {
            let short = String(name.dropFirst(11))
            out[target, default: []].append(head.branchName == short ? "HEAD -> \(short)" : short)
        }
        if case let .detached(c) = head { out[c, default: []].insert("HEAD", at: 0) }
        for (name, target) in try ledger.refs(prefix: "refs/tags/") { out[target, default: []].append("tag: " + name.dropFirst(10)) }
        return out
    }

    func info(_ c: CommitRecord, decorations: [String: [String]], detailed: Bool, kappa: Bool = false) throws -> CommitInfo {
        let changes = try ledger.changes(of: c.id)
        let summary = CommitInfo.ChangeSummary(
            tensors: changes.count, changedElements: changes.reduce(0) { $0 + $1.stats.changed },
            l1: changes.reduce(0) { $0 + $1.stats.l1 },
            frobenius: DeltaStatistics.combinedNorm(changes.map(\.stats.frobenius)),
            storedBytes: c.kind == .base ? try baseStoredBytes(c.id) : changes.reduce(0) { $0 + $1.stats.storedBytes })
        var info = CommitInfo(id: c.id, parent: c.parent, kind: c.kind.rawValue, message: c.message, author: c.author, time: c.time,
                              date: isoDate(c.time), method: c.method, request: c.request.map(JSONText.init),
                              parameters: c.parameters.map(JSONText.init), refs: decorations[c.id] ?? [], summary: summary)
        if (detailed || kappa), let parent = c.parent {
            let parentManifest = try ledger.manifest(of: parent)
            info.kappa = try changes.compactMap { e, _ -> CommitInfo.KappaChange? in
                guard let pe = parentManifest[e.name], let before = try spectrum(of: pe), let after = try spectrum(of: e) else { return nil }
                return .init(name: e.name, before: before.kappa, after: after.kappa)
            }
        }
        if detailed {
            var tensors: [CommitInfo.TensorChange] = []
            for (e, st) in changes {
                let enc = try ledger.version(e.hash)?.encoding ?? "?"
                let count = e.shape.reduce(1, *)
                tensors.append(.init(name: e.name, file: e.file, dtype: e.dtype.rawValue, shape: e.shape, changed: st.changed, count: count,
                                     l1: st.l1, frobenius: st.frobenius, relativeFrobenius: st.baseNorm > 0 ? st.frobenius / st.baseNorm : st.frobenius == 0 ? 0 : .infinity,
                                     maxAbs: st.maxAbs, encoding: enc, storedBytes: st.storedBytes))
            }
            info.tensors = tensors
            // Side files whose stored version differs from the parent's, with how (as diff: a
            // weight file's header is not a side file).
            let after = try ledger.files(of: c.id), before = try c.parent.map { try ledger.files(of: $0) } ?? [:]
            let changed = Repository.fileChanges(from: before.filter { $0.value.kind != .safetensors }, to: after.filter { $0.value.kind != .safetensors })
            info.files = changed.map(\.path)
            info.sideFiles = changed
            info.headers = c.parent == nil ? [] : Repository.changedHeaders(from: before, to: after)
        }
        return info
    }

    /// What the base snapshot stored (not the whole ledger: later commits' objects are theirs).
    private func baseStoredBytes(_ id: String) throws -> Int {
        try ledger.snapshotStoredBytes(of: id)
    }

    /// `wledger log`: commits from `revision` (default HEAD) back to the base, newest first; or,
    /// for a range `A..B` (as git: an omitted side is HEAD), those of B's that are not A's
    /// (stopping at the first commit they share); for `A...B`, those of either that the other
    /// lacks (both sides since their merge base), newest first (by commit time, as git).
    /// - Parameter stat: include κ before/after of every edited matrix (computed once, then cached).
    /// With `all` (`log --all`, as git), the commits of every branch, tag and HEAD (and of
    /// `revision` when given), newest first by commit time.
    public func log(from revision: String? = nil, all: Bool = false, limit: Int = Int.max, stat: Bool = false) throws -> [CommitInfo] {
        let commits: [CommitRecord]
        /// Newest first by commit time (as git), for commits gathered from more than one line.
        func newestFirst(_ cs: [CommitRecord]) -> [CommitRecord] {
            Array(cs.sorted { ($0.time, $0.generation, $0.id) > ($1.time, $1.generation, $1.id) }.prefix(limit))
        }
        let range = try Self.splitRange(revision ?? "HEAD")
        if all {
            if let revision, range != nil { throw KitError.usage("'\(revision)': --all takes revisions, not ranges") }
            var starts = try ledger.refs(prefix: "refs/").map(\.target) + [try ledger.head().commit]
            if let revision { starts.append(try resolve(revision)) }
            var seen = Set<String>(), union: [CommitRecord] = []
            for start in starts where !seen.contains(start) {
                for c in try ledger.history(from: start) {
                    // A commit seen before brings its ancestors with it.
                    guard seen.insert(c.id).inserted else { break }
                    union.append(c)
                }
            }
            commits = newestFirst(union)
        } else if let range, range.symmetric {
            let ha = try ledger.history(from: try resolve(range.a)), hb = try ledger.history(from: try resolve(range.b))
            let ia = Set(ha.map(\.id)), ib = Set(hb.map(\.id))
            commits = newestFirst(ha.filter { !ib.contains($0.id) } + hb.filter { !ia.contains($0.id) })
        } else if let range {
            let excluded = Set(try ledger.history(from: try resolve(range.a)).map(\.id))
            commits = Array(try ledger.history(from: try resolve(range.b)).prefix { !excluded.contains($0.id) }.prefix(limit))
        } else {
            commits = try ledger.history(from: try resolve(revision ?? "HEAD"), limit: limit)
        }
        let deco = try decorations()
        return try commits.map { try info($0, decorations: deco, detailed: false, kappa: stat) }
    }

    /// A range of revisions: `A..B`, or `A...B` (`symmetric`).
    struct RevisionRange {
        var a: String
        var b: String
        var symmetric: Bool
    }

    /// The two sides of a range `A..B` or `A...B` (an omitted side is HEAD); nil for a single
    /// revision. Ref names cannot contain "..", so any revision that does is a range.
    static func splitRange(_ revision: String) throws -> RevisionRange? {
        guard let r = revision.range(of: "..") else { return nil }
        var rest = revision[r.upperBound...]
        let symmetric = rest.hasPrefix(".")
        if symmetric { rest = rest.dropFirst() }
        let a = String(revision[..<r.lowerBound]), b = String(rest)
        if b.hasPrefix(".") || b.contains("..") {
            throw KitError.usage("'\(revision)': not a range (A..B or A...B)")
        }
        return RevisionRange(a: a.isEmpty ? "HEAD" : a, b: b.isEmpty ? "HEAD" : b, symmetric: symmetric)
    }

    /// A two-dot range for commands whose omitted left side is the base (`restrain`, `report`):
    /// (from, to), nil for a single revision; `A...B` is refused.
    static func baseRange(_ spec: String, command: String) throws -> (from: String, to: String)? {
        guard let r = try splitRange(spec) else { return nil }
        if r.symmetric { throw KitError.usage("'\(spec)': \(command) takes two-dot ranges A..B") }
        return (spec.hasPrefix("..") ? "base" : r.a, r.b)
    }

    /// The newest commit both revisions descend from (or are): git's merge base. Every commit of
    /// a ledger descends from its one base, so there always is one.
    func mergeBase(_ a: String, _ b: String) throws -> String {
        let ancestors = Set(try ledger.history(from: try resolve(a)).map(\.id))
        guard let common = try ledger.history(from: try resolve(b)).first(where: { ancestors.contains($0.id) }) else {
            throw LedgerError.invalid("'\(a)' and '\(b)' have no common ancestor")
        }
        return common.id
    }

    /// `wledger show`: one commit with its request and per-tensor ΔW statistics.
    public func show(_ revision: String = "HEAD") throws -> CommitInfo {
        let id = try resolve(revision)
        guard let c = try ledger.commit(id) else { throw LedgerError.unknownRevision(revision) }
        return try info(c, decorations: try decorations(), detailed: true)
    }
}

/// ISO 8601 UTC date of a unix time.
func isoDate(_ t: Int64) -> String {
    let f = ISO8601DateFormatter()
    f.formatOptions = [.withInternetDateTime]
    return f.string(from: Date(timeIntervalSince1970: TimeInterval(t)))
}
