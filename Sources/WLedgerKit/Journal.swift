import Foundation
import Ledger
import TensorIO

/// A journal that makes "move HEAD and rename files into the work tree" crash-safe.
///
/// The ledger (SQLite) and the work tree (files) cannot change in one atomic step. Operations
/// that do both — checkout, and revert/prune/restrain/cherry-pick/`commit --prune` — first stage every new
/// file completely (written and fsynced as a temporary file next to its destination), then
/// write `.wledger/pending.json` naming the temporary files, the destinations and the commit,
/// then make their ledger change and rename the files, and finally remove the journal. If the
/// process dies in between, the next wledger command that opens the repository finishes the
/// job before doing anything else:
///
/// - `update` (a new commit whose files are being renamed in, or whose tensors are being written
///   in place): if HEAD is no longer the commit the operation started from, its transaction was
///   recorded, the tensors it writes in place are written again, the remaining temporary files
///   are renamed into place and the side files it deletes (`cherry-pick`) removed (roll forward); otherwise the transaction never happened, nothing was
///   written in place, and the temporary files are deleted (roll back).
/// - `checkout`: the staged files are complete, so the tensors it writes in place are written
///   again, the remaining renames and removals are done and HEAD is moved to the target (roll
///   forward).
///
/// - `stash-push` (a stash's entry about to be recorded, its checkout's journal not yet
///   written): if the entry was recorded and the work tree still holds what it saved, HEAD's
///   bytes are written back (roll forward); otherwise nothing is done.
///
/// Either way the work tree ends up exactly at the old or the new commit, matching HEAD.
struct PendingOperation: Codable {
    enum Kind: String, Codable {
        case update, checkout
        /// The same operations with tensors to write in place. Their own names make a wledger
        /// from before in-place writes, which would ignore `patches` and leave the weight file
        /// half written under the new HEAD, refuse the journal as unreadable instead.
        case updateInPlace = "update-in-place", checkoutInPlace = "checkout-in-place"
        /// A stash push between recording its entry and its checkout's journal (which replaces
        /// this one): `commit` is HEAD, `stashTop` the newest entry before the push.
        case stashPush = "stash-push"

        /// update or checkout (a stash push is its own).
        var operation: Kind {
            switch self {
            case .update, .updateInPlace: return .update
            case .checkout, .checkoutInPlace: return .checkout
            case .stashPush: return .stashPush
            }
        }
    }
    var kind: Kind
    /// Update: HEAD before the operation (if HEAD has moved, the commit was recorded);
    /// checkout: the target.
    var commit: String
    /// Checkout: the branch HEAD will follow (nil: detached); created at `commit` when it does not
    /// exist (`checkout -b`).
    var branch: String?
    /// (temporary file, destination), paths relative to the work tree.
    var renames: [[String]]
    /// Side files to remove, relative to the work tree (checkout; an update rolled forward:
    /// `cherry-pick` of a deletion).
    var removes: [String]
    /// Weight files whose changed tensors are written in place (absent in journals of older
    /// versions, which had none).
    var patches: [InPlacePatch]? = nil
    /// Checkout: HEAD stays where it is (`stash apply` writes a stash's files under it).
    var keepHead: Bool? = nil
    /// Side files of `removes` removed only while their SHA-256 is this (`stash -u`: an untracked
    /// file edited after the stash recorded it stays; `cherry-pick`: one edited after a killed pick).
    var removeDigests: [String: String]? = nil
    /// Stash push: the newest stash entry's commit before it (nil: the stash was empty).
    var stashTop: String? = nil

    /// Whether the side file at `path` may go: no digest is required, or it still has it.
    static func removable(_ path: String, relative: String, digests: [String: String]?) -> Bool {
        guard let want = digests?[relative] else { return true }
        guard let bytes = try? readFile(path) else { return true }
        return SHA256Digest.hash(bytes).hex == want
    }
}

extension Repository {
    static let journalName = "pending.json"

    var journalPath: String { wledgerDirectory + "/" + Repository.journalName }

    /// Records an operation about to change ledger and work tree (durably). One with tensors to
    /// write in place is recorded under its in-place kind.
    func writeJournal(_ op: PendingOperation) throws {
        var op = op
        if !(op.patches ?? []).isEmpty { op.kind = op.kind.operation == .checkout ? .checkoutInPlace : .updateInPlace }
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        try writeFileAtomically(journalPath, Array(try enc.encode(op)), sync: true)
    }

    /// The kind of operation the journal records, or nil when there is none.
    func pendingKind() throws -> PendingOperation.Kind? {
        guard FileManager.default.fileExists(atPath: journalPath) else { return nil }
        return try JSONDecoder().decode(PendingOperation.self, from: Data(try readFile(journalPath))).kind
    }

    /// Removes the journal once the operation is complete.
    func clearJournal() {
        unlink(journalPath)
        syncDirectory(wledgerDirectory)
    }

    /// The relative name of a path inside the work tree.
    func relativeToRoot(_ path: String) -> String {
        path.hasPrefix(root + "/") ? String(path.dropFirst(root.count + 1)) : path
    }

    /// Finishes or undoes an operation a killed process left in the journal, and removes
    /// temporary files such a process left behind. Call with the repository lock held.
    /// - Returns: a notice for the user, or nil when there was nothing to do.
    @discardableResult
    func recoverInterruptedOperation() throws -> String? {
        var notice: String?
        if FileManager.default.fileExists(atPath: journalPath) {
            let data = try readFile(journalPath)
            guard let op = try? JSONDecoder().decode(PendingOperation.self, from: Data(data)) else {
                throw LedgerError.invalid("'\(journalPath)': unreadable journal of an interrupted operation")
            }
            // A journal only wledger wrote names a commit of this ledger; one that does not was
            // edited or copied from elsewhere, and acting on it would move HEAD to nothing.
            guard try ledger.commit(op.commit) != nil else {
                throw LedgerError.invalid("'\(journalPath)': the journal of an interrupted operation names commit \(op.commit.prefix(12)), which this ledger does not hold (not written by wledger; remove it if no wledger command is running)")
            }
            if op.kind == .stashPush {
                // (A checkout it runs replaces this journal with its own, and clears that.)
                notice = try finishInterruptedStashPush(op)
                if try pendingKind() == .stashPush { clearJournal() }
            } else {
                let head = try ledger.head()
                let kind = op.kind.operation
                let rollForward = kind == .checkout || head.commit != op.commit
                // Tensors written in place: a checkout's target, or the update's recorded commit (an
                // update writes them only after recording it, so a rolled-back one wrote none).
                if kind == .checkout { try redoInPlacePatches(op.patches ?? [], commit: op.commit) }
                if kind == .update && rollForward { try redoInPlacePatches(op.patches ?? [], commit: head.commit) }
                for pair in op.renames where pair.count == 2 {
                    let temp = root + "/" + pair[0]
                    guard FileManager.default.fileExists(atPath: temp) else { continue }
                    if rollForward {
                        guard rename(temp, root + "/" + pair[1]) == 0 else {
                            throw TensorIOError.io(path: root + "/" + pair[1], operation: "rename into place (recovery)", reason: errnoText())
                        }
                    } else {
                        unlink(temp)
                    }
                }
                if kind == .checkout || (kind == .update && rollForward) {
                    for path in op.removes where PendingOperation.removable(root + "/" + path, relative: path, digests: op.removeDigests) {
                        unlink(root + "/" + path)
                    }
                }
                // A checkout moves HEAD to its target, unless it wrote a revision under HEAD (stash apply).
                if kind == .checkout, op.keepHead != true {
                    try ledger.transaction {
                        if let b = op.branch {
                            // A branch the checkout was to create (`checkout -b`) is created now; one
                            // that points elsewhere is not followed (HEAD is detached at the files).
                            let existing = try ledger.refTarget(RefKind.branch.prefix + b)
                            if existing == nil {
                                try ledger.updateRef(RefKind.branch.prefix + b, to: op.commit, expected: .absent, message: Self.createdMessage(op.commit))
                            }
                            try switchHead(to: (existing ?? op.commit) == op.commit ? .branch(name: b, commit: op.commit) : .detached(commit: op.commit))
                        } else {
                            try switchHead(to: .detached(commit: op.commit))
                        }
                    }
                }
                syncDirectory(root)
                clearJournal()
                notice = rollForward ? "completed an interrupted \(kind.rawValue) (HEAD is \(try ledger.head().commit.prefix(12)))"
                    : "rolled back an interrupted update (its commit was never recorded)"
            }
        }
        // Temporary files of killed writers (named .NAME.wledger-tmp-PID) are garbage now.
        if let entries = try? FileManager.default.contentsOfDirectory(atPath: root) {
            for e in entries where e.hasPrefix(".") && e.contains(".wledger-tmp-") { unlink(root + "/" + e) }
        }
        // So are hook candidate directories (hard links, see Hooks.swift) and a commit-msg file.
        if let entries = try? FileManager.default.contentsOfDirectory(atPath: wledgerDirectory) {
            for e in entries where e.hasPrefix("candidate-") || e == "COMMIT_EDITMSG" {
                try? FileManager.default.removeItem(atPath: wledgerDirectory + "/" + e)
            }
        }
        return notice
    }
}

/// Fault injection for crash tests: `WLEDGER_FAULT=NAME` makes the process SIGKILL itself at the
/// point called NAME (`update-journaled`, `update-recorded`, `checkout-journaled`,
/// `checkout-patching`/`update-patching` (half of a file's in-place tensors written),
/// `checkout-renamed`, `stash-recorded` (a stash push's entry recorded, nothing written)), or fail there with an error (`error(_:path:)`). Does nothing otherwise.
enum FaultInjection {
    static let target = ProcessInfo.processInfo.environment["WLEDGER_FAULT"]

    static func point(_ name: String) {
        if target == name { kill(getpid(), SIGKILL) }
    }

    /// Fails the operation at the point called NAME with an I/O error on `path`, as if renaming
    /// it into place had failed (`checkout-rename-error`, `update-rename-error`: the first staged
    /// file's rename, after the journal).
    static func error(_ name: String, path: String) throws {
        if target == name { throw TensorIOError.io(path: path, operation: "rename into place", reason: "injected fault \(name)") }
    }
}
