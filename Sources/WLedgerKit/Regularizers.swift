import Foundation
import Ledger
import LinAlg
import Ops
import TensorIO

/// What prune did to one tensor.
public struct PrunedTensor: Encodable, Sendable {
    public var name: String
    public var total: Int
    public var changed: Int
    public var kept: Int
    /// ‖ΔW_kept‖F / ‖ΔW‖F.
    public var keptFrobeniusShare: Double
}

/// What restrain did to one matrix.
public struct RestrainedMatrix: Encodable, Sendable {
    public var name: String
    public var sigmaMaxBase: Double
    /// Singular values of the accumulated ΔW that were restrained, before and after.
    public var restrainedFrom: [Double]
    public var restrainedTo: [Double]
    /// Sphere: directions kept and their energy share.
    public var directions: Int?
    public var energy: Double?
    public var kappaBefore: Double?
    public var kappaAfter: Double?
    /// "randomized" (low-rank fast path) or "full" SVD.
    public var svd: String?
}

/// Result of revert, prune and restrain: the new commit plus what the operation did.
public struct RegularizerResult: Encodable, Sendable {
    public var commit: CommitResult
    public var pruned: [PrunedTensor]?
    public var restrained: [RestrainedMatrix]?
}

/// How `restrain` changes the accumulated ΔW.
public enum RestrainMethod: Sendable {
    /// PRUNE with logarithm base α.
    case prune(alpha: Double)
    /// ΔW′ = ΔW·(I − β·U·Uᵀ).
    case sphere(eta: Double, beta: Double)
}

extension Repository {
    /// The tensors a commit changed, with its parent's version (hash and bytes) and its own bytes.
    private func edges(of commitID: String) throws -> (CommitRecord, [(entry: ManifestEntry, parentHash: String, parent: [UInt8], child: [UInt8])]) {
        guard let c = try ledger.commit(commitID) else { throw LedgerError.unknownRevision(commitID) }
        guard let parentID = c.parent else { throw KitError.usage("commit '\(commitID.prefix(12))' is the base snapshot; it has no ΔW") }
        let parentManifest = try ledger.manifest(of: parentID)
        return (c, try ledger.changes(of: commitID).map { e, _ in
            guard let pe = parentManifest[e.name] else { throw LedgerError.invalid("tensor '\(e.name)' missing from the parent of '\(commitID.prefix(12))'") }
            return (e, pe.hash, try ledger.tensorBytes(of: pe), try ledger.tensorBytes(of: e))
        })
    }

    /// `to` − `from` per element in float64, 0 where the two elements' bytes are equal, so an
    /// element a change left alone is no change even where it is NaN or infinite (whose
    /// difference with itself is NaN).
    static func delta(from: [UInt8], to: [UInt8], dtype: DType) -> [Double] {
        let a = TensorMath.doubles(from, dtype: dtype), b = TensorMath.doubles(to, dtype: dtype)
        let e = dtype.size
        var d = [Double](repeating: 0, count: a.count)
        from.withUnsafeBytes { pa in
            to.withUnsafeBytes { pb in
                func differ<T: FixedWidthInteger>(_: T.Type) {
                    for i in 0..<a.count where pa.loadUnaligned(fromByteOffset: i * e, as: T.self) != pb.loadUnaligned(fromByteOffset: i * e, as: T.self) {
                        d[i] = b[i] - a[i]
                    }
                }
                switch e {
                case 2: differ(UInt16.self)
                case 4: differ(UInt32.self)
                default: differ(UInt64.self)   // F64 (the float dtypes are 2, 4 or 8 bytes)
                }
            }
        }
        return d
    }

    /// `head` + `delta` rounded to the dtype; elements where delta is exactly 0 keep head's bytes.
    static func apply(delta: [Double], to head: [UInt8], dtype: DType) -> [UInt8] {
        let h = TensorMath.doubles(head, dtype: dtype)
        var sum = h
        for i in 0..<sum.count where delta[i] != 0 { sum[i] += delta[i] }
        var out = TensorMath.bytes(sum, dtype: dtype)
        let e = dtype.size
        for i in 0..<delta.count where delta[i] == 0 {
            for b in 0..<e { out[i * e + b] = head[i * e + b] }
        }
        return out
    }

    private func headBytes(_ name: String, _ headManifest: [String: ManifestEntry]) throws -> (ManifestEntry, [UInt8]) {
        guard let e = headManifest[name] else { throw KitError.usage("tensor '\(name)' does not exist at HEAD") }
        return (e, try ledger.tensorBytes(of: e))
    }

    private static func requireFloat(_ e: ManifestEntry, _ op: String) throws {
        guard e.dtype.isFloat else { throw KitError.usage("cannot \(op) tensor '\(e.name)': dtype \(e.dtype.rawValue) is not F64/F32/F16/BF16") }
    }

    /// The side-file changes that carry the step `from` → `to` (two commits' files) onto HEAD's
    /// files `onto`, for `commitUpdates`: a file HEAD has as `from` had it takes `to`'s version
    /// (written, or deleted where `to` has none); one HEAD has as `to` has it stays. A file HEAD
    /// has otherwise, and a weight file whose header entry differs, refuse with
    /// `refusal(isHeader, path)`.
    func sideFileChanges(from: [String: FileEntry], to: [String: FileEntry], onto head: [String: FileEntry],
                                 refusal: (Bool, String) -> KitError) throws -> [String: FileEntry?] {
        var changes: [String: FileEntry?] = [:]
        for path in Set(from.keys).union(to.keys).sorted() {
            let a = from[path], b = to[path], h = head[path]
            if a?.object == b?.object && a?.kind == b?.kind { continue }
            if a?.kind == .safetensors || b?.kind == .safetensors { throw refusal(true, path) }
            if h?.object == b?.object && h?.kind == b?.kind { continue }
            guard h?.object == a?.object && h?.kind == a?.kind else { throw refusal(false, path) }
            changes[path] = .some(b)
        }
        return changes
    }

    /// The file rows that record `changes` (from `sideFileChanges`): a deletion as a row without
    /// an object.
    static func fileRows(_ changes: [String: FileEntry?]) -> [FileEntry] {
        changes.keys.sorted().map { changes[$0]! ?? FileEntry(path: $0, kind: .side, object: nil, size: 0) }
    }

    /// `wledger revert <rev>`: commits −ΔW_rev onto HEAD (rounded to each tensor's dtype), for any
    /// commit, not only HEAD. Where HEAD still holds exactly what `rev` wrote, the result is the
    /// parent's bytes exactly. Side files `rev` changed go back to its parent's version where HEAD
    /// has them as `rev` left them (one changed since refuses), as git's revert.
    public func revert(_ revision: String, message: String? = nil, author: String? = nil, progress: ProgressReporter = .silent) throws -> RegularizerResult {
        let id = try resolve(revision)
        let clean = try refuseUncommittedChanges(progress: progress)
        let (c, edges) = try edges(of: id)
        let head = try ledger.head().commit
        // Side files go back to the parent's version where HEAD has the commit's.
        let sideFiles = try sideFileChanges(from: try ledger.files(of: id), to: try ledger.files(of: c.parent!), onto: try ledger.files(of: head)) {
            KitError.refused("cannot revert \(id.prefix(12)): " + ($0 ? "it changed the header of '\($1)'" : "'\($1)' changed since"))
        }
        // The edit's applications and reverts on HEAD's history, picks included: reverting takes
        // it off once more, which is refused where it is not on (as git's revert of a change
        // already reverted finds nothing to undo), and a revert of a revert where it is on.
        let effect = try revertEffect(c)
        if let (net, latest) = try effectTally(effect.edit, history: try ledger.history(from: head)),
           effect.sign > 0 ? net <= 0 : net >= 1 {
            throw KitError.refused(effect.sign > 0
                ? "the change of \(id.prefix(12)) is already reverted on HEAD's history (last by \(latest.prefix(12))); revert that revert to bring it back"
                : "the change \(id.prefix(12)) reverted is already back on HEAD's history (last by \(latest.prefix(12)))")
        }
        // Bytes of a version the ledger holds, written back exactly, may hold NaN or Inf where
        // that version was committed with them allowed (not a stash's, saved as found, even one
        // dropped since).
        let headManifest = try ledger.manifest(of: head)
        var updates: [String: [UInt8]] = [:], recorded = Set<String>()
        for (e, parentHash, parent, child) in edges {
            let (h, head) = try headBytes(e.name, headManifest)
            if h.hash == parentHash { continue }  // already as before the commit: nothing to undo (git's merge)
            if h.hash == e.hash {   // HEAD holds what the commit wrote: its parent's bytes back, in any dtype
                updates[e.name] = parent
                // Only bytes with NaN or Inf need their history looked up.
                if parent.withUnsafeBytes({ countNonFinite($0, dtype: e.dtype) }) > 0,
                   try !versionIsStashed(e.name, at: c.parent!) { recorded.insert(e.name) }
                continue
            }
            try Repository.requireFloat(e, "revert")
            var out = Repository.apply(delta: Repository.delta(from: child, to: parent, dtype: e.dtype), to: head, dtype: e.dtype)
            // Element by element, where HEAD still holds what the commit wrote, its parent's
            // bits exactly (x + (p − x) in float64 can round, and gives +0 for a −0 parent).
            let size = e.dtype.size
            out.withUnsafeMutableBytes { o in
                head.withUnsafeBytes { h in
                    child.withUnsafeBytes { c in
                        parent.withUnsafeBytes { p in
                            for at in stride(from: 0, to: o.count, by: size) where memcmp(h.baseAddress! + at, c.baseAddress! + at, size) == 0 {
                                memcpy(o.baseAddress! + at, p.baseAddress! + at, size)
                            }
                        }
                    }
                }
            }
            updates[e.name] = out
        }
        var options = CommitOptions(message: message ?? "Revert \"\(c.message.split(separator: "\n").first ?? "")\"\n\nThis reverts commit \(c.id).")
        options.kind = .revert
        options.author = author
        options.parameters = JSONValue.object([("reverts", .string(c.id))]).serialized()
        options.hookEnvironment["WLEDGER_REVERT"] = c.id
        return RegularizerResult(commit: try commitUpdates(updates, sideFiles: sideFiles, options: options, recorded: recorded, clean: clean,
                                                           progress: progress))
    }

    /// What commit `c` does to one edit: the edit (the pick origin of the commit at the root of
    /// its chain of reverts) and +1 where `c` applies it, −1 where it takes it off (a revert of
    /// a commit that applies it, a revert of a revert of one that takes it off, …).
    private func revertEffect(_ c: CommitRecord) throws -> (edit: String, sign: Int) {
        var sign = 1, current = c, seen: Set<String> = [c.id]
        while current.kind == .revert, let text = current.parameters, case let .object(pairs) = try JSONParser.parse(Array(text.utf8)),
              case let .string(target)? = pairs.first(where: { $0.0 == "reverts" })?.1, seen.insert(target).inserted,
              let next = try ledger.commit(target) {
            sign = -sign
            current = next
        }
        return (try pickOrigin(current.id, record: current), sign)
    }

    /// The sum of the effects on `edit` of the commits on `history` (HEAD's, newest first), and
    /// the newest of them; nil when none touches it.
    private func effectTally(_ edit: String, history: [CommitRecord]) throws -> (net: Int, latest: String)? {
        var net = 0, latest: String?
        for h in history {
            let e = try revertEffect(h)
            guard e.edit == edit else { continue }
            net += e.sign
            if latest == nil { latest = h.id }
        }
        return latest.map { (net, $0) }
    }

    /// `wledger cherry-pick <rev>`: commits ΔW_rev onto HEAD, as git's cherry-pick, with the
    /// commit's kind, method, edit request (so `health`'s edit retention follows it) and message
    /// (plus "(cherry picked from commit …)"). Where HEAD holds a tensor as the commit's parent
    /// did, the result is the commit's bytes exactly; elsewhere HEAD + ΔW is computed in float64
    /// and rounded to the dtype (elements ΔW leaves alone keep HEAD's bytes). Refused when the
    /// commit is HEAD's or an ancestor of it or was picked onto HEAD's history before, when HEAD
    /// already holds every tensor and file as the commit left it, for a non-float tensor HEAD holds
    /// otherwise than the commit's parent, and for a side file HEAD changed too. Side files the
    /// commit added, modified or deleted are carried where HEAD has them as its parent did.
    public func cherryPick(_ revision: String, message: String? = nil, author: String? = nil,
                           progress: ProgressReporter = .silent) throws -> RegularizerResult {
        let id = try resolve(revision)
        let clean = try refuseUncommittedChanges(progress: progress)
        let (c, edges) = try edges(of: id)
        let head = try ledger.head().commit
        let history = try ledger.history(from: head)
        // The edit a commit carries is its first origin's: a pick of a pick is the same edit. One
        // already on HEAD's history (itself, or picked) would be applied twice.
        let origin = try pickOrigin(id)
        for h in history where try pickOrigin(h.id, record: h) == origin {
            throw KitError.refused(h.id == id ? "commit \(id.prefix(12)) is already in HEAD's history (wledger revert undoes it)"
                : "the change of \(id.prefix(12)) is already on this history as \(h.id.prefix(12)) (if it was reverted since, revert that revert)")
        }
        // A picked revert (or revert of a revert) moves its edit as revert does: refused where
        // that would take it off HEAD's history twice or put it on twice.
        if c.kind == .revert {
            let effect = try revertEffect(c)
            if let (net, latest) = try effectTally(effect.edit, history: history), net + effect.sign < 0 || net + effect.sign > 1 {
                throw KitError.refused("the change of \(effect.edit.prefix(12)) is already \(effect.sign < 0 ? "off" : "on") HEAD's history (last moved by \(latest.prefix(12))); picking \(id.prefix(12)) would \(effect.sign < 0 ? "take it off" : "apply it") twice")
            }
        }
        let sideFiles = try sideFileChanges(from: try ledger.files(of: c.parent!), to: try ledger.files(of: id), onto: try ledger.files(of: head)) {
            KitError.refused("cannot cherry-pick \(id.prefix(12)): " + ($0 ? "it changed the header of '\($1)'" : "'\($1)' changed on HEAD's side too"))
        }
        let headManifest = try ledger.manifest(of: head)
        var updates: [String: [UInt8]] = [:]
        for (e, parentHash, parent, child) in edges {
            let (h, headNow) = try headBytes(e.name, headManifest)
            if h.hash == e.hash { continue }  // already as the commit left it
            if parentHash == h.hash { updates[e.name] = child; continue }
            guard e.dtype.isFloat else {
                throw KitError.refused("cannot cherry-pick \(id.prefix(12)): tensor '\(e.name)' (\(e.dtype.rawValue)) changed since its parent and is not a float tensor to add ΔW to")
            }
            updates[e.name] = Repository.apply(delta: Repository.delta(from: parent, to: child, dtype: e.dtype), to: headNow, dtype: e.dtype)
        }
        if updates.isEmpty && sideFiles.isEmpty {
            throw KitError.refused("nothing to cherry-pick: HEAD already holds every tensor and file as \(id.prefix(12)) left it")
        }
        var options = CommitOptions(message: message ?? c.message + "\n\n(cherry picked from commit \(c.id))")
        options.kind = c.kind
        options.author = author ?? c.author
        options.method = c.method
        options.request = c.request
        // Parameters as the commit had them, with `reverts`/`prunes` naming the copy of that edit
        // on HEAD's history where there is one (health's edits task follows those links), and
        // `cherryPickedFrom` this commit.
        var params: [(String, JSONValue)] = []
        if let text = c.parameters, case let .object(pairs) = try JSONParser.parse(Array(text.utf8)) {
            for (key, value) in pairs where key != "cherryPickedFrom" {
                if ["reverts", "prunes"].contains(key), case let .string(target) = value {
                    let o = try pickOrigin(target)
                    let local = try history.first { try pickOrigin($0.id, record: $0) == o }
                    params.append((key, .string(local?.id ?? target)))
                } else {
                    params.append((key, value))
                }
            }
        }
        params.append(("cherryPickedFrom", .string(c.id)))
        options.parameters = JSONValue.object(params).serialized()
        options.hookEnvironment["WLEDGER_CHERRY_PICK"] = c.id
        // A picked revert is a revert (pre-revert runs): of what it reverts here.
        for case let ("reverts", .string(r)) in params { options.hookEnvironment["WLEDGER_REVERT"] = r }
        // Hooks that ask the edit (pre-commit-health) get its request as a file, as with commit --request.
        let requestFile = wledgerDirectory + "/CHERRY_PICK_REQUEST.json"
        if let request = c.request {
            try writeFileAtomically(requestFile, Array(request.utf8))
            options.hookEnvironment["WLEDGER_REQUEST"] = requestFile
        }
        defer { unlink(requestFile) }
        options.reflogAction = "cherry-pick"
        return RegularizerResult(commit: try commitUpdates(updates, sideFiles: sideFiles, options: options, clean: clean, progress: progress))
    }

    /// The commit whose change `id` carries: following `cherryPickedFrom` back to the first.
    private func pickOrigin(_ id: String, record: CommitRecord? = nil) throws -> String {
        var current = id, seen: Set<String> = [id]
        var params = try (record ?? ledger.commit(id))?.parameters
        while let text = params, text.contains("cherryPickedFrom"),
              case let .object(pairs)? = try? JSONParser.parse(Array(text.utf8)),
              case let .string(from)? = pairs.first(where: { $0.0 == "cherryPickedFrom" })?.1, seen.insert(from).inserted {
            current = from
            params = try ledger.commit(from)?.parameters
        }
        return current
    }

    /// `wledger prune <rev> --keep K%` (RECT): for each tensor `rev` changed, keeps the top K% of
    /// ΔW_rev's elements ranked by δ = |ΔW/W_parent| (or |ΔW|) with their exact values, and
    /// commits the removal of the rest onto HEAD.
    public func prune(_ revision: String, keepPercent: Double, by ranking: RECT.Ranking = .relative, message: String? = nil,
                      author: String? = nil, progress: ProgressReporter = .silent) throws -> RegularizerResult {
        guard keepPercent >= 0 && keepPercent <= 100 else { throw KitError.usage("--keep must be between 0% and 100%") }
        let id = try resolve(revision)
        let clean = try refuseUncommittedChanges(progress: progress)
        guard let record = try ledger.commit(id) else { throw LedgerError.unknownRevision(revision) }
        try refuseUnprunable(record)   // before the commit's tensors are rebuilt
        let (c, edges) = try edges(of: id)
        let headManifest = try ledger.manifest(of: try ledger.head().commit)
        var updates: [String: [UInt8]] = [:]
        var report: [PrunedTensor] = []
        for (e, _, parent, child) in edges {
            try Repository.requireFloat(e, "prune")
            let (h, head) = try headBytes(e.name, headManifest)
            let (bytes, info) = Repository.rect(parent: parent, child: child, head: head, headIsChild: h.hash == e.hash, entry: e,
                                                percent: keepPercent, ranking: ranking)
            updates[e.name] = bytes
            report.append(info)
        }
        var options = CommitOptions(message: message ?? "Prune \"\(c.message.split(separator: "\n").first ?? "")\" to its top \(formatPercent(keepPercent)) (RECT, by \(ranking.rawValue))")
        options.kind = .prune
        options.author = author
        options.parameters = JSONValue.object([("prunes", .string(c.id)), ("keep", .double(keepPercent)), ("by", .string(ranking.rawValue))]).serialized()
        return RegularizerResult(commit: try commitUpdates(updates, options: options, clean: clean, progress: progress), pruned: report)
    }

    /// prune takes the dropped part of c's ΔW off HEAD, which must hold c's change whole: c (or a
    /// pick of it) on HEAD's history, not reverted since, and not pruned already by a prune still
    /// in force. Otherwise the dropped elements would go past their pre-edit values (or HEAD never
    /// had them): refused, saying which commit is in the way.
    private func refuseUnprunable(_ c: CommitRecord) throws {
        // RECT ranks an edit's own ΔW against the weights it edited. A revert's, prune's or
        // restrain's ΔW is a correction of other commits: pruning one would put part of what it
        // corrected back in force, past the checks below (a prune of a revert of a prune let the
        // same edit be pruned twice, leaving elements at W_pre − ΔW).
        if c.kind != .edit, c.kind != .base {
            throw KitError.refused("commit \(c.id.prefix(12)) is a \(c.kind.rawValue) commit; prune applies RECT to an edit's ΔW (prune that edit, or revert this commit)")
        }
        let history = try ledger.history(from: try ledger.head().commit)
        let origin = try pickOrigin(c.id, record: c)
        guard try history.contains(where: { try pickOrigin($0.id, record: $0) == origin }) else {
            throw KitError.refused("commit \(c.id.prefix(12)) is not on HEAD's history, so HEAD does not hold its change to prune (cherry-pick it first)")
        }
        let effect = try revertEffect(c)
        if let (net, latest) = try effectTally(effect.edit, history: history), effect.sign > 0 ? net <= 0 : net >= 1 {
            throw KitError.refused("the change of \(c.id.prefix(12)) is reverted on HEAD's history (last by \(latest.prefix(12))); there is nothing of it to prune")
        }
        for h in history where h.kind == .prune {
            guard let text = h.parameters, case let .object(pairs) = try JSONParser.parse(Array(text.utf8)),
                  case let .string(target)? = pairs.first(where: { $0.0 == "prunes" })?.1, try pickOrigin(target) == origin else { continue }
            // That prune is in force unless reverted since.
            if let (net, _) = try effectTally(try revertEffect(h).edit, history: history), net >= 1 {
                throw KitError.refused("the change of \(c.id.prefix(12)) is already pruned on HEAD's history by \(h.id.prefix(12)); revert that prune first to prune it to another share")
            }
        }
    }

    /// RECT of one tensor: the new HEAD bytes and what was kept.
    static func rect(parent: [UInt8], child: [UInt8], head: [UInt8], headIsChild: Bool, entry e: ManifestEntry, percent: Double,
                     ranking: RECT.Ranking) -> ([UInt8], PrunedTensor) {
        let p = TensorMath.doubles(parent, dtype: e.dtype)
        // ΔW from the bytes: an element the edit left alone is 0 even where it is NaN or ±∞
        // (NaN − NaN counted as a change and took the first place in the ranking).
        let dw = Repository.delta(from: parent, to: child, dtype: e.dtype)
        let kept = RECT.keep(base: p, delta: dw, percent: percent, by: ranking)
        var keepMask = [Bool](repeating: false, count: dw.count)
        for i in kept { keepMask[i] = true }
        var dropped = dw
        var keptSq = 0.0, totalSq = 0.0
        for i in 0..<dw.count {
            totalSq += dw[i] * dw[i]
            if keepMask[i] { dropped[i] = 0; keptSq += dw[i] * dw[i] }
        }
        let bytes: [UInt8]
        if headIsChild {
            // Exact: kept elements keep the edit's bytes, the others get the parent's bytes back.
            var out = child
            let s = e.dtype.size
            for i in 0..<dw.count where !keepMask[i] { for b in 0..<s { out[i * s + b] = parent[i * s + b] } }
            bytes = out
        } else {
            bytes = apply(delta: dropped.map { -$0 }, to: head, dtype: e.dtype)
        }
        let changed = dw.reduce(0) { $0 + ($1 != 0 ? 1 : 0) }
        return (bytes, PrunedTensor(name: e.name, total: dw.count, changed: changed, kept: kept.count,
                                    keptFrobeniusShare: totalSq > 0 ? (keptSq / totalSq).squareRoot() : 1))
    }

    /// Parses a restrain range: nil → base..HEAD; "a..b"; "a.." (a..HEAD); "..b" (base..b); "a" (a..HEAD).
    static func parseRange(_ range: String?) throws -> (String, String) {
        guard let range else { return ("base", "HEAD") }
        return try baseRange(range, command: "restrain") ?? (range, "HEAD")
    }

    /// `wledger restrain [<a>..<b>]` (PRUNE, or the sphere projection): for every 2-D float tensor
    /// that changed between a and b, restrains the accumulated ΔW = W_b − W_a and commits the
    /// difference onto HEAD. σmax(W_base) is σmax of W_a (the base snapshot by default).
    public func restrain(range: String? = nil, method: RestrainMethod = .prune(alpha: M_E), message: String? = nil,
                         author: String? = nil, progress: ProgressReporter = .silent) throws -> RegularizerResult {
        let (aRev, bRev) = try Repository.parseRange(range)
        let a = try resolve(aRev), b = try resolve(bRev)
        let clean = try refuseUncommittedChanges(progress: progress)
        try refuseRestrainedAgain(a: a, b: b)
        let ma = try ledger.manifest(of: a), mb = try ledger.manifest(of: b)
        let headManifest = try ledger.manifest(of: try ledger.head().commit)
        let names = mb.keys.filter { n in
            guard let ea = ma[n], let eb = mb[n] else { return false }
            return ea.hash != eb.hash && eb.dtype.isFloat && TensorMath.matrixShape(eb.shape) != nil
        }.sorted()
        var updates: [String: [UInt8]] = [:]
        var report: [RestrainedMatrix] = []
        let spectra = DeferredSpectra()
        progress.start("restraining matrices", total: names.count)
        for name in names {
            let ea = ma[name]!, eb = mb[name]!
            let (rows, cols) = TensorMath.matrixShape(eb.shape)!
            let wa = TensorMath.doubles(try ledger.tensorBytes(of: ea), dtype: ea.dtype)
            let wb = TensorMath.doubles(try ledger.tensorBytes(of: eb), dtype: eb.dtype)
            // An SVD of weights with NaN or Inf means nothing (LAPACK refuses it): say which.
            for (w, id) in [(wa, a), (wb, b)] where !w.allSatisfy(\.isFinite) {
                throw KitError.usage("cannot restrain tensor '\(name)': it holds NaN or Inf at \(id.prefix(12)) (committed with --allow-nonfinite); revert that first")
            }
            var dw = Matrix(zeros: rows, cols)
            for i in 0..<dw.data.count { dw.data[i] = wb[i] - wa[i] }
            let base = try spectrum(of: ea, values: wa, deferred: spectra)!   // finite, so it has one
            var entry = RestrainedMatrix(name: name, sigmaMaxBase: base.sigmaMax, restrainedFrom: [], restrainedTo: [])
            let correction: Matrix
            switch method {
            case let .prune(alpha):
                let na = TensorMath.largestRowAndColumnNorms(wa, rows: rows, cols: cols)
                let nb = TensorMath.largestRowAndColumnNorms(wb, rows: rows, cols: cols)
                let noise = TensorMath.roundingNoise(dtype: eb.dtype, maxRowNorm: max(na.row, nb.row), maxColumnNorm: max(na.column, nb.column))
                let r = try Restrain.correction(delta: dw, sigmaMaxBase: base.sigmaMax, alpha: alpha, noiseFloor: noise)
                entry.restrainedFrom = r.before
                entry.restrainedTo = r.after
                entry.svd = r.method
                correction = r.correction
                if r.before.isEmpty { progress.advance(); report.append(entry); continue }
            case let .sphere(eta, beta):
                let r = try Sphere.correction(base: Matrix(rows: rows, cols: cols, data: wa), delta: dw, eta: eta, beta: beta)
                entry.directions = r.directions
                entry.energy = r.energy
                correction = r.correction
            }
            guard let (h, head) = try? headBytes(name, headManifest) else { continue }
            let newBytes = Repository.apply(delta: correction.data, to: head, dtype: h.dtype)
            entry.kappaBefore = try spectrum(of: h, deferred: spectra)?.kappa
            entry.kappaAfter = try SpectrumInfo.of(TensorMath.doubles(newBytes, dtype: h.dtype), rows: rows, cols: cols).kappa
            updates[name] = newBytes
            report.append(entry)
            progress.advance()
        }
        progress.finish()
        if updates.isEmpty {
            throw KitError.refused("nothing to restrain: no matrix changed between \(aRev) and \(bRev) has a ΔW singular value ≥ σmax(W_base)")
        }
        var params: [(String, JSONValue)] = [("range", .array([.string(a), .string(b)]))]
        var label: String
        switch method {
        case let .prune(alpha):
            params.append(("method", .string("prune")))
            params.append(("alpha", .double(alpha)))
            label = "PRUNE, α = \(alpha == M_E ? "e" : String(format: "%g", alpha))"
        case let .sphere(eta, beta):
            params.append(("method", .string("sphere")))
            params.append(("eta", .double(eta)))
            params.append(("beta", .double(beta)))
            label = "sphere projection, η = \(eta), β = \(beta)"
        }
        var options = CommitOptions(message: message ?? "Restrain \(a.prefix(12))..\(b.prefix(12)) (\(label))")
        options.kind = .restrain
        options.author = author
        options.parameters = JSONValue.object(params).serialized()
        let result = RegularizerResult(commit: try commitUpdates(updates, options: options, clean: clean, progress: progress), restrained: report)
        cacheSpectra(spectra)   // only once it committed (a hook, or nothing to commit, may still refuse it)
        return result
    }
}

extension Repository {
    /// A restrain still in force on HEAD's history already corrected the ΔW of a..b when it lies
    /// after a and up to b (W_b − W_a holds its correction, whose restrained singular values
    /// would be restrained again) or when its own range overlaps a..b (its correction, on HEAD,
    /// is for the same ΔW): refused, naming it (a second `restrain base..E` after `restrain`
    /// took the top singular values of ΔW from 22 to 13). Ranges off HEAD's history are not
    /// checked.
    fileprivate func refuseRestrainedAgain(a: String, b: String) throws {
        let history = try ledger.history(from: try ledger.head().commit)
        // Newer commits have larger t (history is newest first).
        var t: [String: Int] = [:]
        for (i, c) in history.enumerated() { t[c.id] = history.count - i }
        guard let ta = t[a], let tb = t[b] else { return }
        for r in history where r.kind == .restrain {
            guard let tr = t[r.id], tr > ta else { continue }
            // In force: not reverted since (as prune counts a prune).
            if let (net, _) = try effectTally(try revertEffect(r).edit, history: history), net < 1 { continue }
            var overlaps = tr <= tb
            if !overlaps {
                if let text = r.parameters, case let .object(pairs) = try JSONParser.parse(Array(text.utf8)),
                   case let .array(ends)? = pairs.first(where: { $0.0 == "range" })?.1, ends.count == 2,
                   case let .string(ra) = ends[0], case let .string(rb) = ends[1], let tra = t[ra], let trb = t[rb] {
                    overlaps = ta < trb && tra < tb
                } else {
                    overlaps = true   // its range is off HEAD's history: it may be the same ΔW
                }
            }
            if overlaps {
                throw KitError.refused("HEAD already holds restrain \(r.id.prefix(12)), which corrected the ΔW of \(a.prefix(12))..\(b.prefix(12)) (or part of it); restraining it again would restrain its singular values twice: restrain \(r.id.prefix(12))..HEAD for the edits since, or revert \(r.id.prefix(12)) first")
            }
        }
    }
}

func formatPercent(_ p: Double) -> String {
    p == p.rounded() ? "\(Int(p))%" : String(format: "%g%%", p)
}
