import Ledger
import TensorIO

/// What `fsck` checked and found.
public struct FsckReport: Encodable, Sendable {
    public var objects: Int
    public var tensorVersions: Int
    public var commits: Int
    public var problems: [String]
    public var ok: Bool { problems.isEmpty }
}

extension Repository {
    /// `wledger fsck`: verifies SQLite integrity, every object's sha256, every tensor version
    /// rebuilt from its chain (sha256), and every commit's tree hash and id.
    public func fsck(progress: ProgressReporter = .silent) throws -> FsckReport {
        var problems = try ledger.integrityCheck().map { "sqlite: \($0)" }
        let ids = try ledger.allObjectIDs()
        progress.start("checking objects", total: ids.count)
        for id in ids {
            do { _ = try ledger.readObject(id) } catch { problems.append("\(error)") }
            progress.advance()
        }
        progress.finish()
        let versions = try ledger.allVersions()
        progress.start("rebuilding tensor versions", total: versions.count)
        for v in versions {
            do { _ = try ledger.tensorBytes(v.hash, verifySHA256: true) } catch { problems.append("tensor version \(v.hash.prefix(12)): \(error)") }
            progress.advance()
        }
        progress.finish()
        let commits = try ledger.allCommits()
        for c in commits {
            do {
                let tree = Ledger.treeHash(tensors: try ledger.manifest(of: c.id), files: try ledger.files(of: c.id))
                if tree != c.tree { problems.append("commit \(c.id.prefix(12)): tree hash \(tree.prefix(12)) differs from recorded \(c.tree.prefix(12))") }
                let id = CommitRecord.computeID(parent: c.parent, kind: c.kind, message: c.message, author: c.author, time: c.time,
                                                method: c.method, request: c.request, parameters: c.parameters, tree: c.tree)
                if id != c.id { problems.append("commit \(c.id.prefix(12)): content hashes to \(id.prefix(12))") }
            } catch {
                problems.append("commit \(c.id.prefix(12)): \(error)")
            }
        }
        return FsckReport(objects: ids.count, tensorVersions: versions.count, commits: commits.count, problems: problems)
    }
}
