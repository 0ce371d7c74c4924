import Foundation
import Ledger
import LinAlg
import TensorIO

/// A commit as `bisect` names it: enough to recognise the edit.
public struct BisectCommit: Encodable, Sendable, Equatable {
    public var id: String
    public var kind: String
    public var message: String
    public var method: String?
    /// The edit request JSON, verbatim.
    public var request: String?
    public var author: String

    init(_ c: CommitRecord) {
        id = c.id; kind = c.kind.rawValue; message = c.message; method = c.method; request = c.request; author = c.author
    }

    enum CodingKeys: String, CodingKey { case id, kind, message, method, request, author }

    /// The request as a JSON object, as `show --json` gives it (not a string holding JSON).
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(kind, forKey: .kind)
        try c.encode(message, forKey: .message)
        try c.encodeIfPresent(method, forKey: .method)
        try c.encodeIfPresent(request.map(JSONText.init), forKey: .request)
        try c.encode(author, forKey: .author)
    }

    /// First line of the message.
    public var subject: String { String(message.split(separator: "\n", omittingEmptySubsequences: false).first ?? "") }
}

/// Where a bisect stands after a command.
public struct BisectStatus: Encodable, Sendable {
    public enum State: String, Encodable, Sendable {
        /// Needs a bad and/or a good commit.
        case waiting
        /// `candidate` is to be tested.
        case testing
        /// `firstBad` is the first bad commit.
        case found
        /// Only skipped commits are left: the first bad commit is one of `possible`.
        case onlySkipped = "only-skipped"
    }

    public var state: State
    /// What is missing (waiting): "good", "bad" or "good and bad".
    public var waitingFor: String?
    public var candidate: BisectCommit?
    /// Revisions left to test after this one, and roughly how many steps that takes (git's estimate).
    public var remaining: Int?
    public var steps: Int?
    public var firstBad: BisectCommit?
    public var possible: [BisectCommit]?
    /// Whether the candidate was checked out into the work tree (false with --no-checkout).
    public var checkedOut: Bool
}

/// One round of `bisect run`.
public struct BisectRunRound: Sendable {
    public var commit: String
    public var exitCode: Int32
    public var verdict: BisectVerdict
    public var status: BisectStatus
}

/// The bisect range worked out from the marks.
struct BisectAnalysis {
    var bad: String?
    var goods: [String]
    var skips: Set<String>
    /// Candidates, oldest first; the last one is the bad commit (empty while waiting).
    var candidates: [CommitRecord]
}

extension Repository {
    // MARK: - Session commands

    /// `wledger bisect start [<bad> [<good>…]]`: starts a bisect session (replacing one in
    /// progress, whose original HEAD is kept), marks the given commits and, once a bad and a good
    /// commit are known, checks out the commit to test (or only records it, with `noCheckout`).
    /// - Throws: `KitError.refused` when the work tree has uncommitted changes (checkout mode) or
    ///   the marks contradict each other; `LedgerError.unknownRevision` for a bad revision.
    public func bisectStart(bad: String?, good: [String], noCheckout: Bool, progress: ProgressReporter = .silent) throws -> BisectStatus {
        var marks: [(BisectVerdict, String)] = []
        if let bad { marks.append((.bad, try resolve(bad))) }
        for g in good { marks.append((.good, try resolve(g))) }
        if !noCheckout { try requireCleanForBisect() }
        let previous = try ledger.bisectSession()
        let head = try ledger.head()
        let orig = previous?.origHead ?? (head.branchName.map { "refs/heads/" + $0 } ?? head.commit)
        _ = try analyze(marks.map { BisectMarkRecord(seq: 0, verdict: $0.0, target: $0.1) })
        try ledger.transaction {
            try ledger.startBisect(BisectSessionRecord(origHead: orig, noCheckout: noCheckout, current: nil,
                                                       startedAt: Int64(Date().timeIntervalSince1970)))
            for (v, id) in marks { try ledger.addBisectMark(v, id) }
        }
        return try advanceBisect(progress: progress)
    }

    /// `wledger bisect good|bad|skip [<rev>…]`: marks commits (default: HEAD, as git, or the
    /// commit being tested with --no-checkout, which leaves HEAD alone) and moves to the next one.
    public func bisectMark(_ verdict: BisectVerdict, _ revisions: [String], progress: ProgressReporter = .silent) throws -> BisectStatus {
        let session = try requireBisectSession()
        if verdict == .bad && revisions.count > 1 { throw KitError.usage("'bisect bad' takes at most one revision") }
        let targets: [String]
        if revisions.isEmpty {
            targets = [try session.noCheckout ? session.current ?? ledger.head().commit : ledger.head().commit]
        } else {
            targets = try revisions.map { try resolve($0) }
        }
        if !session.noCheckout { try requireCleanForBisect() }
        let existing = try ledger.bisectMarks()
        _ = try analyze(existing + targets.map { BisectMarkRecord(seq: 0, verdict: verdict, target: $0) })
        try ledger.transaction {
            for t in targets { try ledger.addBisectMark(verdict, t) }
        }
        return try advanceBisect(progress: progress)
    }

    /// Where the session stands, without changing anything.
    public func bisectStatus() throws -> BisectStatus {
        let session = try requireBisectSession()
        var s = try decide(try analyze(try ledger.bisectMarks()))
        s.checkedOut = !session.noCheckout
        return s
    }

    /// `wledger bisect reset [<rev>]`: ends the session and, unless it ran with --no-checkout,
    /// checks out the original HEAD (or `revision`). Returns what was checked out, or nil when
    /// nothing was (no session, or --no-checkout without a revision).
    @discardableResult
    public func bisectReset(to revision: String? = nil, progress: ProgressReporter = .silent) throws -> String? {
        guard let session = try ledger.bisectSession() else { return nil }
        var target: String?
        if let revision {
            _ = try resolve(revision)
            target = revision
        } else if !session.noCheckout {
            if session.origHead.hasPrefix("refs/heads/"), try ledger.refTarget(session.origHead) != nil {
                target = String(session.origHead.dropFirst("refs/heads/".count))
            } else if session.origHead.hasPrefix("refs/heads/") {
                throw KitError.refused("cannot return to branch '\(session.origHead.dropFirst(11))': it no longer exists; use 'wledger bisect reset <rev>'")
            } else {
                target = session.origHead
            }
        }
        if let target { _ = try checkout(target, progress: progress) }
        try ledger.transaction { try ledger.endBisect() }
        return target
    }

    /// `wledger bisect log`: the session as replayable commands, with each commit's message as a comment.
    public func bisectLog() throws -> String {
        let session = try requireBisectSession()
        var out = "wledger bisect start" + (session.noCheckout ? " --no-checkout" : "") + "\n"
        for m in try ledger.bisectMarks() {
            let subject = try ledger.commit(m.target).map { BisectCommit($0).subject } ?? ""
            out += "# \(m.verdict.rawValue): [\(m.target)] \(subject)\n"
            out += "wledger bisect \(m.verdict.rawValue) \(m.target)\n"
        }
        let status = try decide(try analyze(try ledger.bisectMarks()))
        if status.state == .found, let f = status.firstBad { out += "# first bad commit: [\(f.id)] \(f.subject)\n" }
        return out
    }

    /// `wledger bisect replay <file>`: starts over from a log written by `bisect log` (lines
    /// `wledger bisect start|good|bad|skip …`, or `git bisect …`; `#` comments and blank lines
    /// ignored). The whole file is checked before anything changes.
    public func bisectReplay(_ file: String, progress: ProgressReporter = .silent) throws -> BisectStatus {
        guard let data = FileManager.default.contents(atPath: file), let text = String(data: data, encoding: .utf8) else {
            throw KitError.usage("'\(file)': cannot read the bisect log")
        }
        var noCheckout = false
        var started = false
        var marks: [(BisectVerdict, String)] = []
        for (i, raw) in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            let words = line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
            guard words.count >= 3, words[0] == "wledger" || words[0] == "git", words[1] == "bisect" else {
                throw KitError.usage("'\(file)': line \(i + 1): expected 'wledger bisect start|good|bad|skip …'")
            }
            let args = Array(words[3...])
            switch words[2] {
            case "start":
                if started { throw KitError.usage("'\(file)': line \(i + 1): a second 'start'") }
                started = true
                var revs: [String] = []
                for a in args {
                    if a == "--no-checkout" { noCheckout = true } else if a == "--" { continue } else if a.hasPrefix("-") {
                        throw KitError.usage("'\(file)': line \(i + 1): unknown option '\(a)'")
                    } else { revs.append(a) }
                }
                do {
                    if let b = revs.first { marks.append((.bad, try resolve(b))) }
                    for g in revs.dropFirst() { marks.append((.good, try resolve(g))) }
                } catch { throw KitError.usage("'\(file)': line \(i + 1): \(error)") }
            case let v where BisectVerdict(rawValue: v) != nil:
                guard started else { throw KitError.usage("'\(file)': line \(i + 1): '\(v)' before 'start'") }
                guard !args.isEmpty else { throw KitError.usage("'\(file)': line \(i + 1): '\(v)' without a commit") }
                do {
                    for a in args { marks.append((BisectVerdict(rawValue: v)!, try resolve(a))) }
                } catch { throw KitError.usage("'\(file)': line \(i + 1): \(error)") }
            default:
                throw KitError.usage("'\(file)': line \(i + 1): unknown bisect command '\(words[2])'")
            }
        }
        guard started else { throw KitError.usage("'\(file)': no 'wledger bisect start' line") }
        if !noCheckout { try requireCleanForBisect() }
        _ = try analyze(marks.map { BisectMarkRecord(seq: 0, verdict: $0.0, target: $0.1) })
        let previous = try ledger.bisectSession()
        let head = try ledger.head()
        let orig = previous?.origHead ?? (head.branchName.map { "refs/heads/" + $0 } ?? head.commit)
        try ledger.transaction {
            try ledger.startBisect(BisectSessionRecord(origHead: orig, noCheckout: noCheckout, current: nil,
                                                       startedAt: Int64(Date().timeIntervalSince1970)))
            for (v, id) in marks { try ledger.addBisectMark(v, id) }
        }
        return try advanceBisect(progress: progress)
    }

    /// `wledger bisect run <cmd> [args…]`: runs the command on each candidate until the first bad
    /// commit is found: exit 0 = good, 125 = skip, 1–124 = bad; 126 and 127 (the shell's "cannot
    /// execute" and "command not found") and anything else stop the run, the session kept.
    /// The command runs in the work tree with WLEDGER_CANDIDATE (the candidate's weights: the work
    /// tree, or a temporary materialization with --no-checkout), WLEDGER_LEDGER and WLEDGER_COMMIT.
    /// - Parameter round: called after every round, in order.
    public func bisectRun(_ command: [String], progress: ProgressReporter = .silent,
                          round: (BisectRunRound) -> Void = { _ in }) throws -> BisectStatus {
        guard !command.isEmpty else { throw KitError.usage("bisect run needs a command") }
        let session = try requireBisectSession()
        var status = try bisectStatus()
        guard status.state != .waiting else {
            throw KitError.refused("bisect run needs at least one good and one bad commit (waiting for \(status.waitingFor ?? "marks"))")
        }
        while status.state == .testing, let candidate = status.candidate {
            var directory = root
            var scratch: String?
            if session.noCheckout {
                let size = try ledger.files(of: candidate.id).values.reduce(0) { $0 + $1.size }
                let tmp = try Repository.makeScratchDirectory(label: "bisect", bytesNeeded: size)
                scratch = tmp
                do {
                    _ = try checkout(candidate.id, output: tmp, progress: progress)
                } catch {
                    try? FileManager.default.removeItem(atPath: tmp)
                    throw error
                }
                directory = tmp
            }
            defer { if let scratch { try? FileManager.default.removeItem(atPath: scratch) } }
            let code = try runExternal(command, environment: [
                "WLEDGER_CANDIDATE": directory, "WLEDGER_LEDGER": ledgerPath, "WLEDGER_COMMIT": candidate.id,
            ])
            let verdict: BisectVerdict
            switch code {
            case 0: verdict = .good
            case 125: verdict = .skip
            case 1...124: verdict = .bad
            case 126, 127:
                // Every candidate would read bad: a wrong answer rather than a test's verdict.
                throw KitError.refused("bisect run stopped: '\(command.joined(separator: " "))' exited with \(code) (\(code == 127 ? "command not found" : "cannot execute")); it tests nothing (exit 1 means bad)")
            default:
                throw KitError.refused("bisect run failed: exit code \(code) from '\(command.joined(separator: " "))' is < 0 or >= 128")
            }
            if let scratch { try? FileManager.default.removeItem(atPath: scratch) }
            scratch = nil
            status = try bisectMark(verdict, [candidate.id], progress: progress)
            round(BisectRunRound(commit: candidate.id, exitCode: code, verdict: verdict, status: status))
        }
        return status
    }

    // MARK: - The algorithm

    /// The marks turned into a range: the latest bad commit, every good one, the skipped ones, and
    /// the candidates — the bad commit and its ancestors that are not ancestors of a good commit.
    /// - Throws: `KitError.refused` when the bad commit is an ancestor of a good one.
    func analyze(_ marks: [BisectMarkRecord]) throws -> BisectAnalysis {
        var a = BisectAnalysis(bad: nil, goods: [], skips: [], candidates: [])
        for m in marks {
            switch m.verdict {
            case .bad: a.bad = m.target
            case .good: if !a.goods.contains(m.target) { a.goods.append(m.target) }
            case .skip: a.skips.insert(m.target)
            }
        }
        guard let bad = a.bad, !a.goods.isEmpty else { return a }
        var goodAncestors = Set<String>()
        for g in a.goods {
            var cur: String? = g
            while let id = cur, !goodAncestors.contains(id) {
                goodAncestors.insert(id)
                cur = try ledger.commit(id)?.parent
            }
        }
        if goodAncestors.contains(bad) {
            throw KitError.refused("the bad commit \(bad.prefix(12)) is an ancestor of a good commit: the good and bad marks contradict each other")
        }
        var chain: [CommitRecord] = []
        var cur: String? = bad
        while let id = cur, !goodAncestors.contains(id) {
            guard let c = try ledger.commit(id) else { throw LedgerError.unknownRevision(id) }
            chain.append(c)
            cur = c.parent
        }
        a.candidates = chain.reversed()
        return a
    }

    /// git's estimate of the remaining steps for `all` candidates.
    static func estimateBisectSteps(_ all: Int) -> Int {
        guard all >= 3 else { return 0 }
        var n = 0
        while (1 << (n + 1)) <= all { n += 1 }
        let e = 1 << n
        let x = all - e
        return e < 3 * x ? n : n - 1
    }

    /// The next step for a range: the commit that halves it (the untested one nearest the middle
    /// when that is skipped), or the answer.
    func decide(_ a: BisectAnalysis) throws -> BisectStatus {
        guard a.bad != nil, !a.goods.isEmpty else {
            let missing = a.bad == nil ? (a.goods.isEmpty ? "good and bad" : "bad") : "good"
            return BisectStatus(state: .waiting, waitingFor: missing, checkedOut: false)
        }
        let c = a.candidates
        let n = c.count
        if n == 1 { return BisectStatus(state: .found, firstBad: BisectCommit(c[0]), checkedOut: false) }
        // Candidate i (oldest first) has i + 1 candidates among its ancestors (itself included);
        // git picks the one maximising min(i + 1, n − i − 1).
        let testable = (0..<(n - 1)).filter { !a.skips.contains(c[$0].id) }
        guard !testable.isEmpty else {
            return BisectStatus(state: .onlySkipped, possible: c.map(BisectCommit.init), checkedOut: false)
        }
        let ideal = n / 2 - 1
        let best = testable.min { x, y in
            let dx = abs(x - ideal), dy = abs(y - ideal)
            if dx != dy { return dx < dy }
            return min(x + 1, n - x - 1) > min(y + 1, n - y - 1) || (min(x + 1, n - x - 1) == min(y + 1, n - y - 1) && x < y)
        }!
        let remaining = max(0, n - (best + 1) - 1)
        return BisectStatus(state: .testing, candidate: BisectCommit(c[best]), remaining: remaining,
                            steps: Self.estimateBisectSteps(n), checkedOut: false)
    }

    /// Works out the next step after the marks changed, records the candidate and checks it out.
    private func advanceBisect(progress: ProgressReporter) throws -> BisectStatus {
        let session = try requireBisectSession()
        var status = try decide(try analyze(try ledger.bisectMarks()))
        let current = status.state == .testing ? status.candidate?.id : nil
        // Once found, a --no-checkout session's bare `bisect bad`/`good` names the first bad
        // commit (as git's BISECT_HEAD stays on the last one tested), not HEAD, which never moved
        // and would restart the search from the bad end.
        let named = current ?? (status.state == .found && session.noCheckout ? status.firstBad?.id : nil)
        try ledger.transaction { try ledger.setBisectCurrent(named) }
        if let current, !session.noCheckout {
            let head = try ledger.head()
            if head.commit != current || head.branchName != nil { _ = try checkout(current, progress: progress) }
            status.checkedOut = true
        }
        return status
    }

    private func requireBisectSession() throws -> BisectSessionRecord {
        guard let s = try ledger.bisectSession() else {
            throw KitError.refused("not bisecting; start with 'wledger bisect start'")
        }
        return s
    }

    private func requireCleanForBisect() throws {
        let report = try status(cacheStats: false, progress: .silent)
        if !report.clean {
            throw KitError.refused("the work tree has uncommitted changes; commit them, run 'wledger checkout --force HEAD', or use 'bisect start --no-checkout'")
        }
    }

    /// Set by the wledger command-line binary's `main` (false in a process that only links the
    /// library, such as the tests'): hooks and `bisect run` then get this binary as $WLEDGER.
    nonisolated(unsafe) public static var isCommandLine = false

    /// The binary running this process, read from /proc/self/exe when a command is run. (Not
    /// `Bundle.main`: it lists the binary's directory, twice, at every start.)
    static var commandLineExecutable: String? {
        guard isCommandLine else { return nil }
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard n > 0 else { return nil }
        return String(decoding: buffer[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Runs a command (looked up in PATH) in the work tree with extra environment; its output goes
    /// straight to ours. Returns its exit status (128 + N when killed by signal N).
    /// - Parameter nullInput: the command reads /dev/null, not our stdin (hooks, as git's).
    func runExternal(_ command: [String], environment: [String: String], stdoutToStderr: Bool = false, nullInput: Bool = false) throws -> Int32 {
        let p = Process()
        if command[0].contains("/") {
            let path = command[0].hasPrefix("/") ? command[0] : absolutePath(command[0])
            // A script without a #! line is run by /bin/sh, as git runs such hooks (exec fails).
            let head = Self.leadingBytes(path, 4)
            if head.count >= 2, !head.starts(with: "#!".utf8), !head.starts(with: [0x7f, 0x45, 0x4c, 0x46]), access(path, X_OK) == 0,
               ModelDirectory.nonFileEntry(path) == nil {
                p.executableURL = URL(fileURLWithPath: "/bin/sh")
                p.arguments = [path] + command.dropFirst()
            } else {
                p.executableURL = URL(fileURLWithPath: path)
                p.arguments = Array(command.dropFirst())
            }
        } else {
            p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            p.arguments = command
        }
        p.currentDirectoryURL = URL(fileURLWithPath: root)
        BLASKernel.load()   // not while OpenBLAS opens, when the environment has its variables
        var env = ProcessInfo.processInfo.environment
        // $WLEDGER: this binary, so hooks and scripts run the same wledger (whatever its name).
        if let exe = Repository.commandLineExecutable { env["WLEDGER"] = exe }
        for (k, v) in environment { env[k] = v }
        p.environment = env
        if stdoutToStderr { p.standardOutput = FileHandle.standardError }
        if nullInput { p.standardInput = FileHandle.nullDevice }
        // What we printed so far comes before the command's own output.
        fflush(nil)
        do {
            try p.run()
        } catch {
            throw KitError.usage("cannot run '\(command[0])': \(Self.whyNotRunnable(p.executableURL?.path ?? command[0]) ?? error.localizedDescription)")
        }
        p.waitUntilExit()
        return p.terminationReason == .uncaughtSignal ? 128 + p.terminationStatus : p.terminationStatus
    }

    /// The first `n` bytes of the file at `path` (fewer for a shorter or unreadable file): a
    /// program's kind is told without reading all of it.
    static func leadingBytes(_ path: String, _ n: Int) -> [UInt8] {
        guard let h = FileHandle(forReadingAtPath: path) else { return [] }
        defer { try? h.close() }
        return [UInt8]((try? h.read(upToCount: n)) ?? Data())
    }

    /// Why the program at `path` cannot be started, in words, where that can be told.
    static func whyNotRunnable(_ path: String) -> String? {
        guard FileManager.default.fileExists(atPath: path) else { return "no such file" }
        if let what = ModelDirectory.nonFileEntry(path) { return "it is \(what)" }
        guard access(path, X_OK) == 0 else { return "it is not executable (chmod +x)" }
        let data = leadingBytes(path, 256)
        if data.starts(with: "#!".utf8) {
            let line = String(decoding: data.prefix { $0 != 10 }.dropFirst(2), as: UTF8.self).trimmingCharacters(in: .whitespaces)
            let interpreter = line.split(separator: " ").first.map(String.init) ?? ""
            if !interpreter.isEmpty, access(interpreter, X_OK) != 0 { return "its interpreter '\(interpreter)' (the #! line) does not exist or is not executable" }
        }
        return nil
    }
}
