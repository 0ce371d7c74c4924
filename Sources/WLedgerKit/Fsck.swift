import Ledger
import TensorIO

/// What `fsck` checked and found.
public struct FsckReport: Encodable, Sendable {
    public var objects: Int
    public var tensorVersions: Int
    public var commits: Int
    /// Whether every tensor version was rebuilt and hashed (`--full`).
    public var full: Bool
    public var problems: [String]
    public var ok: Bool { problems.isEmpty }
}

extension Repository {
    /// `wledger fsck [--full]`: verifies SQLite integrity, every object's sha256 (every chunk
    /// decoded and its zstd checksum checked), every tensor version's object and chain, and every
    /// commit's manifest, tree hash and id; with `full`, also rebuilds every tensor version from
    /// its chain and checks its sha256. Each problem names the commits and tensors (or files) it
    /// affects: a corrupt object damages the tensor versions stored in it and every version
    /// patched from them.
    public func fsck(full: Bool = false, progress: ProgressReporter = .silent) throws -> FsckReport {
        var problems = try ledger.integrityCheck().map { "sqlite: \($0)" }
        let ids = try ledger.allObjectIDs()
        let known = Set(ids)
        var badObjects: [String: String] = [:]
        progress.start("checking objects", total: ids.count)
        for id in ids {
            do { _ = try ledger.readObject(id) } catch { badObjects[id] = "\(error)" }
            progress.advance()
        }
        progress.finish()
        let versions = try ledger.allVersions()
        let byHash = Dictionary(versions.map { ($0.hash, $0) }, uniquingKeysWith: { a, _ in a })
        var badVersions: [String: String] = [:]
        for v in versions {
            if let why = badObjects[v.object] { badVersions[v.hash] = "stored object \(v.object.prefix(12)) is corrupt: \(why)" }
            else if !known.contains(v.object) { badVersions[v.hash] = "stored object \(v.object.prefix(12)) is missing" }
            else if let b = v.base, byHash[b] == nil { badVersions[v.hash] = "patch base \(b.prefix(12)) is missing" }
        }
        if full {
            progress.start("rebuilding tensor versions", total: versions.count)
            for v in versions where badVersions[v.hash] == nil {
                do { _ = try ledger.tensorBytes(v.hash, verifySHA256: true) } catch { badVersions[v.hash] = "\(error)" }
                progress.advance()
            }
            progress.finish()
        }
        // A version is damaged when it or any version on its patch chain is.
        func rootCause(_ hash: String) -> (String, String)? {
            var cur: String? = hash
            var hops = 0
            while let h = cur, hops <= versions.count {
                if let why = badVersions[h] { return (h, why) }
                cur = byHash[h]?.base
                hops += 1
            }
            return nil
        }
        var reported = Set<String>()
        let commits = try ledger.allCommits()
        for c in commits {
            do {
                let manifest = try ledger.manifest(of: c.id)
                // The versions this commit introduced: all of them for the base snapshot.
                let introduced = c.parent == nil ? manifest.values.sorted { $0.name < $1.name } : try ledger.changes(of: c.id).map(\.entry)
                for entry in introduced {
                    if let (cause, why) = rootCause(entry.hash) {
                        let via = cause == entry.hash ? "" : " (patched from damaged version \(cause.prefix(12)))"
                        problems.append("commit \(c.id.prefix(12)): tensor '\(entry.name)' version \(entry.hash.prefix(12)): \(why)\(via)")
                        reported.insert(cause)
                    } else if byHash[entry.hash] == nil {
                        problems.append("commit \(c.id.prefix(12)): tensor '\(entry.name)' version \(entry.hash.prefix(12)) is missing")
                    }
                }
                for f in try ledger.fileRows(of: c.id) {
                    guard let o = f.object else { continue }
                    if let why = badObjects[o] {
                        problems.append("commit \(c.id.prefix(12)): file '\(f.path)' object \(o.prefix(12)): \(why)")
                        reported.insert(o)
                    } else if !known.contains(o) {
                        problems.append("commit \(c.id.prefix(12)): file '\(f.path)' object \(o.prefix(12)) is missing")
                    }
                }
                let tree = Ledger.treeHash(tensors: manifest, files: try ledger.files(of: c.id))
                if tree != c.tree { problems.append("commit \(c.id.prefix(12)): tree hash \(tree.prefix(12)) differs from recorded \(c.tree.prefix(12))") }
                let id = CommitRecord.computeID(parent: c.parent, kind: c.kind, message: c.message, author: c.author, time: c.time,
                                                method: c.method, request: c.request, parameters: c.parameters, tree: c.tree)
                if id != c.id { problems.append("commit \(c.id.prefix(12)): content hashes to \(id.prefix(12))") }
            } catch {
                problems.append("commit \(c.id.prefix(12)): \(error)")
            }
        }
        // Damage no commit references (e.g. an unreferenced object) is still reported.
        for (id, why) in badObjects.sorted(by: { $0.key < $1.key }) where !reported.contains(id)
            && !versions.contains(where: { $0.object == id && reported.contains($0.hash) }) {
            problems.append("object \(id.prefix(12)): \(why)")
        }
        for (hash, why) in badVersions.sorted(by: { $0.key < $1.key }) where !reported.contains(hash) && badObjects[byHash[hash]?.object ?? ""] == nil {
            problems.append("tensor version \(hash.prefix(12)): \(why)")
        }
        return FsckReport(objects: ids.count, tensorVersions: versions.count, commits: commits.count, full: full, problems: problems)
    }
}
