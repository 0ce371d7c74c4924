import Foundation
import Ledger
import TensorIO

/// The hooks wledger runs from `.wledger/hooks/`.
public enum HookName: String, CaseIterable, Sendable {
    /// Before a commit is recorded (commit, revert, prune, restrain); non-zero aborts it.
    case preCommit = "pre-commit"
    /// With the path of a file holding the message (which it may edit); non-zero aborts.
    case commitMsg = "commit-msg"
    /// After a commit is recorded; its exit status is ignored.
    case postCommit = "post-commit"
    /// Before a revert is recorded (then pre-commit runs too); non-zero aborts it.
    case preRevert = "pre-revert"
}

/// One hook or sample in `.wledger/hooks/`.
public struct HookInfo: Encodable, Sendable {
    public var name: String
    public var path: String
    /// Runs (executable, and named after a hook).
    public var active: Bool
    /// A `*.sample` file that `hooks enable` can install.
    public var sample: Bool
}

/// What the candidate of a commit is, for hooks.
struct HookContext {
    /// Directory holding the candidate weights.
    var candidate: String
    /// The commit the new one goes on top of.
    var parent: String
    var message: String
    var extra: [String: String] = [:]
}

extension Repository {
    public var hooksDirectory: String { wledgerDirectory + "/hooks" }

    /// Path of an active hook, or nil when there is none (missing or not executable).
    func hookPath(_ hook: HookName) -> String? {
        let p = hooksDirectory + "/" + hook.rawValue
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: p, isDirectory: &isDir), !isDir.boolValue, access(p, X_OK) == 0 else { return nil }
        return p
    }

    /// Runs `hook` if it is active: in the work tree, with WLEDGER_CANDIDATE, WLEDGER_LEDGER,
    /// WLEDGER_COMMIT (and `environment`) set, its stdout and stderr sent to our stderr.
    /// - Returns: nil when there is no such hook, else its exit status.
    func runHook(_ hook: HookName, arguments: [String] = [], environment: [String: String]) throws -> Int32? {
        guard let path = hookPath(hook) else { return nil }
        var env = environment
        env["WLEDGER_LEDGER"] = ledgerPath
        return try runExternal([path] + arguments, environment: env, stdoutToStderr: true, nullInput: true)
    }

    /// Runs pre-revert (for reverts), pre-commit and commit-msg for a commit about to be recorded,
    /// unless `verifyHooks` is off. Returns the message, as commit-msg may have edited it.
    /// - Throws: `KitError.refused` naming the hook when one exits non-zero.
    func runPreCommitHooks(_ context: HookContext, kind: CommitKind, what: String) throws -> String {
        guard verifyHooks else { return context.message }
        var env = context.extra
        env["WLEDGER_CANDIDATE"] = context.candidate
        env["WLEDGER_COMMIT"] = context.parent
        func check(_ hook: HookName, _ code: Int32?) throws {
            if let code, code != 0 {
                throw KitError.refused("\(hook.rawValue) hook '\(hooksDirectory)/\(hook.rawValue)' failed (exit status \(code)); nothing was \(what) (use --no-verify to skip hooks)")
            }
        }
        if kind == .revert { try check(.preRevert, try runHook(.preRevert, environment: env)) }
        try check(.preCommit, try runHook(.preCommit, environment: env))
        guard hookPath(.commitMsg) != nil else { return context.message }
        let file = wledgerDirectory + "/COMMIT_EDITMSG"
        do {
            try Data((context.message + "\n").utf8).write(to: URL(fileURLWithPath: file))
        } catch {
            throw TensorIOError.io(path: file, operation: "write", reason: error.localizedDescription)
        }
        defer { try? FileManager.default.removeItem(atPath: file) }
        try check(.commitMsg, try runHook(.commitMsg, arguments: [file], environment: env))
        guard let data = FileManager.default.contents(atPath: file), let text = String(data: data, encoding: .utf8) else {
            throw KitError.refused("commit-msg hook removed or garbled '\(file)'; nothing was \(what)")
        }
        // Cleaned as a -m message is (git cleans the message after its commit-msg hook too).
        let message = CommitMessage.cleaned(text)
        if message.isEmpty {
            throw KitError.refused("commit-msg hook left an empty message; nothing was \(what)")
        }
        return message
    }

    /// Runs post-commit (exit status ignored) after `commit` was recorded.
    func runPostCommitHook(commit: String, candidate: String) {
        guard verifyHooks else { return }
        _ = try? runHook(.postCommit, environment: ["WLEDGER_COMMIT": commit, "WLEDGER_CANDIDATE": candidate])
    }

    /// A directory that looks like the work tree with the staged files in place of the files they
    /// replace, made of hard links inside `.wledger/` (no weights are copied). The caller removes it.
    func candidateDirectory(files: [String], staged: [String: String]) throws -> String {
        var template = Array((wledgerDirectory + "/candidate-XXXXXX").utf8CString)
        guard let p = mkdtemp(&template) else {
            throw TensorIOError.io(path: wledgerDirectory, operation: "create candidate directory", reason: errnoText())
        }
        let dir = String(cString: p)
        do {
            for f in files {
                let source = staged[f] ?? (root + "/" + f)
                let dest = dir + "/" + f
                if link(source, dest) != 0 {
                    try FileManager.default.copyItem(atPath: source, toPath: dest)
                }
            }
        } catch {
            try? FileManager.default.removeItem(atPath: dir)
            throw error
        }
        return dir
    }

    // MARK: - Samples

    /// The hooks and samples in `.wledger/hooks/`.
    public func listHooks() throws -> [HookInfo] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: hooksDirectory)) ?? []
        return names.sorted().map { n in
            let isSample = n.hasSuffix(".sample")
            let active = !isSample && HookName(rawValue: n) != nil && hookPath(HookName(rawValue: n)!) != nil
            return HookInfo(name: n, path: hooksDirectory + "/" + n, active: active, sample: isSample)
        }
    }

    /// The hook a sample installs as: the longest hook name the sample's name starts with.
    public static func hookName(forSample name: String) -> HookName? {
        HookName.allCases.filter { name == $0.rawValue || name.hasPrefix($0.rawValue + "-") }.max { $0.rawValue.count < $1.rawValue.count }
    }

    /// `wledger hooks enable NAME`: installs `.wledger/hooks/NAME.sample` as the hook its name
    /// starts with (e.g. pre-commit-health → pre-commit), executable. Refuses to replace a
    /// different active hook unless `force`. Returns the installed path.
    @discardableResult
    public func enableHook(_ name: String, force: Bool = false) throws -> String {
        let base = name.hasSuffix(".sample") ? String(name.dropLast(7)) : name
        let sample = hooksDirectory + "/" + base + ".sample"
        guard let hook = Self.hookName(forSample: base) else {
            throw KitError.usage("'\(base)': not a hook sample name (it must start with \(HookName.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        guard let bytes = FileManager.default.contents(atPath: sample) else {
            let known = try listHooks().filter(\.sample).map { String($0.name.dropLast(7)) }
            throw KitError.usage("'\(sample)': no such sample\(known.isEmpty ? "" : " (samples: \(known.joined(separator: ", ")))")")
        }
        let dest = hooksDirectory + "/" + hook.rawValue
        if let existing = FileManager.default.contents(atPath: dest), existing != bytes, !force {
            throw KitError.refused("'\(dest)' already exists with other content; use --force to replace it")
        }
        let w = try AtomicFileWriter(path: dest, size: bytes.count, mode: 0o755)
        do {
            try [UInt8](bytes).withUnsafeBytes { try w.write($0, at: 0) }
            try w.commit()
        } catch {
            w.abort()
            throw error
        }
        chmod(dest, 0o755)
        return dest
    }

    /// `wledger hooks disable HOOK`: removes the active hook (its sample stays). Returns whether there was one.
    @discardableResult
    public func disableHook(_ name: String) throws -> Bool {
        guard let hook = HookName(rawValue: name) ?? Self.hookName(forSample: name) else {
            throw KitError.usage("'\(name)': not a hook name (\(HookName.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        let p = hooksDirectory + "/" + hook.rawValue
        guard FileManager.default.fileExists(atPath: p) else { return false }
        if let what = ModelDirectory.nonFileEntry(p) { throw KitError.refused("'\(p)' is \(what), not a hook; remove it yourself") }
        // By a sample's name, only that sample as `enable` installed it: another hook in its
        // place (the user's own, or the sample edited) stays, as `enable` does not replace one.
        let base = name.hasSuffix(".sample") ? String(name.dropLast(7)) : name
        if HookName(rawValue: name) == nil, let sample = FileManager.default.contents(atPath: hooksDirectory + "/" + base + ".sample"),
           FileManager.default.contents(atPath: p) != sample {
            throw KitError.refused("'\(p)' is not the \(base) sample (another hook, or the sample edited); 'wledger hooks disable \(hook.rawValue)' removes whatever hook is there")
        }
        try FileManager.default.removeItem(atPath: p)
        return true
    }

    /// Writes the sample hooks (`HookSamples.embedded`, from the project's hooks/) into a
    /// `.wledger/hooks` directory as `NAME.sample`, not executable.
    static func writeSampleHooks(into wledgerDir: String) throws {
        let dir = wledgerDir + "/hooks"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        for s in HookSamples.embedded {
            let path = dir + "/" + s.name + ".sample"
            guard FileManager.default.createFile(atPath: path, contents: Data((s.text + "\n").utf8), attributes: [.posixPermissions: 0o644]) else {
                throw TensorIOError.io(path: path, operation: "create", reason: "cannot write")
            }
        }
    }
}

/// Commit messages as git cleans them (`--cleanup=whitespace`): white space at the end of each
/// line (space, tab, CR, VT, FF), blank lines at the start and end, and all but one of
/// consecutive blank lines removed, so that the first line is the subject (a message starting
/// with a blank line had an empty subject in `log --oneline` and the reflog). Lines end at LF
/// only, as in git.
public enum CommitMessage {
    public static func cleaned(_ message: String) -> String {
        let trailing: Set<Unicode.Scalar> = [" ", "\t", "\r", "\u{0B}", "\u{0C}"]
        var lines: [[Unicode.Scalar]] = [[]]
        for scalar in message.unicodeScalars {
            if scalar == "\n" { lines.append([]) } else { lines[lines.count - 1].append(scalar) }
        }
        var out: [[Unicode.Scalar]] = []
        for var line in lines {
            while let last = line.last, trailing.contains(last) { line.removeLast() }
            if line.isEmpty, out.last?.isEmpty ?? true { continue }
            out.append(line)
        }
        while out.last?.isEmpty == true { out.removeLast() }
        return out.map { line in
            var view = String.UnicodeScalarView()
            view.append(contentsOf: line)
            return String(view)
        }.joined(separator: "\n")
    }
}
