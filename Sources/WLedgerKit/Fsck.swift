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
            do {
                _ = try ledger.readObject(id)
            } catch let LedgerError.corruptObject(_, reason, _) {
                badObjects[id] = reason   // (the problem line names the object itself)
            } catch {
                badObjects[id] = "\(error)"
            }
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
        // Each version's root cause, walked once (every commit's manifest is looked up below).
        let damaged = badVersions.isEmpty ? [:] : Dictionary(uniqueKeysWithValues: byHash.keys.compactMap { h in rootCause(h).map { (h, $0) } })
        var reported = Set<String>()
        let commits = try ledger.allCommits()
        // A damaged version's problem line (by version), and the other commits that keep it
        // unchanged (later ones, or a branch's), which it damages too: named on that line.
        var lineOf: [String: Int] = [:], keptBy: [String: [String]] = [:]
        for c in commits {
            do {
                let manifest = try ledger.manifest(of: c.id)
                // The versions this commit introduced: all of them for the base snapshot.
                let introduced = c.parent == nil ? manifest.values.sorted { $0.name < $1.name } : try ledger.changes(of: c.id).map(\.entry)
                let introducedHashes = Set(introduced.map(\.hash))
                for entry in manifest.values where !introducedHashes.contains(entry.hash) && damaged[entry.hash] != nil {
                    keptBy[entry.hash, default: []].append(c.id)
                }
                for entry in introduced {
                    if let (cause, why) = damaged[entry.hash] {
                        let via = cause == entry.hash ? "" : " (patched from damaged version \(cause.prefix(12)))"
                        problems.append("commit \(c.id.prefix(12)): tensor '\(entry.name)' version \(entry.hash.prefix(12)): \(why)\(via)")
                        if lineOf[entry.hash] == nil { lineOf[entry.hash] = problems.count - 1 }
                        reported.insert(cause)
                    } else if byHash[entry.hash] == nil {
                        problems.append("commit \(c.id.prefix(12)): tensor '\(entry.name)' version \(entry.hash.prefix(12)) is missing")
                    }
                }
                // Files (side files, weight-file headers) the same way: the commit that stored a
                // damaged object names it, and the commits that keep it unchanged are listed there.
                let rows = try ledger.fileRows(of: c.id), files = try ledger.files(of: c.id)
                let storedHere = Set(rows.compactMap(\.object))
                for f in files.values {
                    if let o = f.object, !storedHere.contains(o), badObjects[o] != nil || !known.contains(o) { keptBy[o, default: []].append(c.id) }
                }
                for f in rows {
                    guard let o = f.object else { continue }
                    if let why = badObjects[o] {
                        problems.append("commit \(c.id.prefix(12)): file '\(f.path)' object \(o.prefix(12)): \(why)")
                        reported.insert(o)
                    } else if !known.contains(o) {
                        problems.append("commit \(c.id.prefix(12)): file '\(f.path)' object \(o.prefix(12)) is missing")
                    } else {
                        continue
                    }
                    if lineOf[o] == nil { lineOf[o] = problems.count - 1 }
                }
                let tree = Ledger.treeHash(tensors: manifest, files: files)
                if tree != c.tree { problems.append("commit \(c.id.prefix(12)): tree hash \(tree.prefix(12)) differs from recorded \(c.tree.prefix(12))") }
                let id = CommitRecord.computeID(parent: c.parent, kind: c.kind, message: c.message, author: c.author, time: c.time,
                                                method: c.method, request: c.request, parameters: c.parameters, tree: c.tree)
                if id != c.id { problems.append("commit \(c.id.prefix(12)): content hashes to \(id.prefix(12))") }
            } catch {
                problems.append("commit \(c.id.prefix(12)): \(error)")
            }
        }
        let head = try? ledger.head().commit
        for (hash, line) in lineOf {
            guard let later = keptBy[hash] else { continue }
            let named = later.prefix(3).map { $0 == head ? "\($0.prefix(12)) (HEAD)" : String($0.prefix(12)) }.joined(separator: ", ")
            let more = later.count > 3 ? ", …" : ""
            let withHead = later.count > 3 && later.dropFirst(3).contains { $0 == head } ? ", HEAD among them" : ""
            problems[line] += "; also in \(later.count) other commit(s): \(named)\(more)\(withHead)"
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
