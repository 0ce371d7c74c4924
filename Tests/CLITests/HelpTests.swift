import Foundation
import TestSupport
import XCTest

/// `wledger <command> --help`, word for word. A change here must be deliberate: update the
/// expected text in the same change that edits the command's help strings.
final class HelpTests: XCTestCase {
    /// Help text with trailing whitespace removed from every line and trailing blank lines dropped.
    private func normalize(_ s: String) -> String {
        var lines = s.split(separator: "\n", omittingEmptySubsequences: false).map { line -> Substring in
            var l = Substring(line)
            while let last = l.last, last == " " || last == "\t" || last == "\r" { l = l.dropLast() }
            return l
        }
        while let last = lines.last, last.isEmpty { lines.removeLast() }
        return lines.joined(separator: "\n")
    }

    /// Runs `wledger args…` with an 80-column terminal and compares its help with `expected`.
    private func assertHelp(_ args: [String], _ expected: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let r = try CLI.run(args, environment: ["COLUMNS": "80"])
        XCTAssertEqual(r.status, 0, r.stderr, file: file, line: line)
        XCTAssertEqual(r.stderr, "", file: file, line: line)
        let actual = normalize(r.stdout)
        if actual != expected {
            // Show the first differing line to make the failure readable.
            let a = actual.split(separator: "\n", omittingEmptySubsequences: false)
            let e = expected.split(separator: "\n", omittingEmptySubsequences: false)
            let i = (0..<min(a.count, e.count)).first { a[$0] != e[$0] } ?? min(a.count, e.count)
            XCTFail("help of 'wledger \(args.joined(separator: " "))' differs at line \(i + 1):\n  expected: \(i < e.count ? String(e[i]) : "<end>")\n  actual:   \(i < a.count ? String(a[i]) : "<end>")\n--- actual ---\n\(actual)", file: file, line: line)
        }
    }

    /// `-h` and `help <command>` print the same text as `--help`.
    func testShortFlagAndHelpSubcommandMatchLongFlag() throws {
        for cmd in ["init", "status", "commit", "log", "show", "diff", "checkout", "branch", "tag", "revert", "prune", "restrain", "edit", "health", "bisect", "gate", "hooks", "report", "config", "fsck", "gc", "reflog", "cherry-pick", "reset", "stash"] {
            let long = try CLI.run([cmd, "--help"], environment: ["COLUMNS": "80"])
            let short = try CLI.run([cmd, "-h"], environment: ["COLUMNS": "80"])
            XCTAssertEqual(short.status, 0)
            XCTAssertEqual(normalize(short.stdout), normalize(long.stdout), "wledger \(cmd) -h")
            let sub = try CLI.run(["help", cmd], environment: ["COLUMNS": "80"])
            XCTAssertEqual(sub.status, 0)
            XCTAssertEqual(normalize(sub.stdout), normalize(long.stdout), "wledger help \(cmd)")
        }
    }

    func testRootHelp() throws {
        try assertHelp(["--help"], #"""
        OVERVIEW: Version control for edits to large-language-model weights.

        Run inside a Hugging Face model directory (safetensors weights, config.json,
        tokenizer.json), or name it with -C <path>, before the command (as git -C) or
        after it. Exit codes: 0 ok, 1 check failed or operation refused, 2 usage error
        or bad input.

        USAGE: wledger <subcommand>

        OPTIONS:
          --version               Show the version.
          -h, --help              Show help information.

        SUBCOMMANDS:
          init                    Start tracking a model directory: snapshot its base
                                  weights losslessly.
          status                  Show which tensors and files differ from HEAD.
          commit                  Record the work tree's weights as a new commit.
          log                     Show commit history.
          show                    Show one commit: message, edit request, tensors
                                  touched and ΔW statistics.
          diff                    Show ΔW statistics between two revisions, or a
                                  revision and the work tree.
          checkout                Rewrite the work tree (or another directory) to a
                                  revision.
          branch                  List, create, rename or delete branches.
          tag                     List, create or delete tags.
          reset                   Move the current branch (or a detached HEAD) to a
                                  revision.
          reflog                  Show where HEAD or a branch pointed after each of its
                                  moves; expire old entries.
          revert                  Commit the inverse of one edit's ΔW onto HEAD (any
                                  commit, not only HEAD).
          cherry-pick             Commit one commit's ΔW (and side-file changes) onto
                                  HEAD (e.g. an edit made on another branch).
          prune                   RECT: keep only the top K% of one edit's ΔW (by
                                  relative change) and commit the rest's removal.
          restrain                PRUNE: restrain the large singular values of the
                                  accumulated ΔW of every edited matrix.
          edit                    Edit a fact natively (ROME or MEMIT) and commit the
                                  edit with its request.
          health                  Evaluate general abilities and edit retention of a
                                  commit, next to the base.
          bisect                  Find the edit that broke an ability: binary search
                                  over the history, by hand, by a command, or on a
                                  health metric.
          gate                    Weight-space gate: check the matrices a change edits
                                  against the gate.* limits (exit 1 when one is
                                  exceeded).
          hooks                   List, enable and disable hooks in .wledger/hooks/.
          report                  Write one self-contained HTML page showing what the
                                  edits did to the model.
          config                  Get, set and list settings in .wledger/config
                                  (suites, tasks, thresholds, evaluators, gates).
          fsck                    Verify every object, tensor version and commit in the
                                  ledger.
          gc                      Remove commits nothing reaches, and what only they
                                  stored; compact the ledger.
          stash                   Set uncommitted changes aside and bring them back
                                  later.

          See 'wledger help <subcommand>' for detailed help.
        """#)
    }

    func testInitHelp() throws {
        try assertHelp(["init", "--help"], #"""
        OVERVIEW: Start tracking a model directory: snapshot its base weights
        losslessly.

        Creates .wledger/ in the model directory and stores every tensor (byte-plane
        shuffled, zstd), the exact safetensors headers and the side files (config.json,
        tokenizer.json, ...).

        Example: wledger init -C models/smollm2-135m/f32

        USAGE: wledger init [-C <path>] [--quiet] [--message <message>] [--author <author>] [--allow-nonfinite] [--json]

        OPTIONS:
          -C <path>               The model directory, or one inside it. (default: .)
          -q, --quiet             Show no progress or notices (init, commit, checkout,
                                  reset: nor their summary, as git).
          -m, --message <message> Message of the base commit. (default: base)
          --author <author>       Author of the base commit (default: $WLEDGER_AUTHOR
                                  or $USER).
          --allow-nonfinite       Snapshot tensors that contain NaN or Inf.
          --json                  Print the result as JSON.
          --version               Show the version.
          -h, --help              Show help information.
        """#)
    }

    func testStatusHelp() throws {
        try assertHelp(["status", "--help"], #"""
        OVERVIEW: Show which tensors and files differ from HEAD.

        Files whose size, mtime, ctime and inode match the last commit or checkout are
        not rehashed; the others are fingerprinted tensor by tensor (XXH3-128) and
        compared with HEAD.

        --short prints one line per change, as git status --short: ' M' a modified
        tensor or side file, ' D' a deleted side file, '??' an untracked one, ' M FILE
        (header)' a changed safetensors header, '!!' a structural change that cannot be
        committed; -b adds '## BRANCH' first.

        Examples: wledger status --json; wledger status -sb

        USAGE: wledger status [-C <path>] [--quiet] [--rehash] [--short] [--branch] [--json]

        OPTIONS:
          -C <path>               The model directory, or one inside it. (default: .)
          -q, --quiet             Show no progress or notices (init, commit, checkout,
                                  reset: nor their summary, as git).
          --rehash                Ignore recorded file stats and hash every tensor.
          -s, --short             One line per change (git's short format).
          -b, --branch            With --short: the branch first ('## main').
          --json                  Print the result as JSON.
          --version               Show the version.
          -h, --help              Show help information.
        """#)
    }

    func testCommitHelp() throws {
        try assertHelp(["commit", "--help"], #"""
        OVERVIEW: Record the work tree's weights as a new commit.

        Every changed tensor is stored as the smallest exact patch against its parent
        (sparse positions + bit differences or new values, or dense byte-shuffled bit
        differences), verified before the commit is recorded. A keyframe is stored
        every 16 patches of the same tensor.

        Example: wledger commit -m "Eiffel Tower -> Rome" --request edit.json --method
        ROME

        USAGE: wledger commit [-C <path>] [--quiet] --message <message> [--request <request>] [--method <method>] [--author <author>] [--allow-nonfinite] [--prune <prune>] [--prune-by <prune-by>] [--no-verify] [--json]

        OPTIONS:
          -C <path>               The model directory, or one inside it. (default: .)
          -q, --quiet             Show no progress or notices (init, commit, checkout,
                                  reset: nor their summary, as git).
          -m, --message <message> Commit message.
          --request <request>     Edit request JSON file (EasyEdit fields: prompt,
                                  subject, target_new, ground_truth, rephrase_prompt,
                                  locality).
          --method <method>       Editing method that produced the change (e.g. ROME,
                                  MEMIT, KN, MEND).
          --author <author>       Author (default: $WLEDGER_AUTHOR or $USER).
          --allow-nonfinite       Commit tensors that contain NaN or Inf.
          --prune <prune>         Apply RECT to the edit before recording it: keep this
                                  share of ΔW, e.g. 40%.
          --prune-by <prune-by>   RECT ranking with --prune: relative (|ΔW/W|) or
                                  magnitude. (values: relative, magnitude; default:
                                  relative)
          --no-verify             Skip the hooks in .wledger/hooks/.
          --json                  Print the result as JSON.
          --version               Show the version.
          -h, --help              Show help information.
        """#)
    }

    func testLogHelp() throws {
        try assertHelp(["log", "--help"], #"""
        OVERVIEW: Show commit history.

        Examples: wledger log --oneline; wledger log main..rect (the commits of rect
        that main does not have); wledger log main...rect (both sides since they
        forked); wledger log --all --oneline (every branch and tag)

        USAGE: wledger log [-C <path>] [--quiet] [<revision>] [--all] [--oneline] [--stat] [--max-count <max-count>] [--json]

        ARGUMENTS:
          <revision>              Revision to start from (default HEAD), or a range
                                  A..B: B's commits that are not A's; A...B: the
                                  commits of either that the other lacks (an omitted
                                  side is HEAD).

        OPTIONS:
          -C <path>               The model directory, or one inside it. (default: .)
          -q, --quiet             Show no progress or notices (init, commit, checkout,
                                  reset: nor their summary, as git).
          --all                   The commits of every branch, tag and HEAD (and of the
                                  revision, if given), newest first.
          --oneline               One line per commit.
          --stat                  Add a ΔW summary: Σ|ΔW| and the condition number κ of
                                  each edited matrix before → after.
          -n, --max-count <max-count>
                                  Show at most this many commits.
          --json                  Print the result as JSON.
          --version               Show the version.
          -h, --help              Show help information.
        """#)
    }

    func testShowHelp() throws {
        try assertHelp(["show", "--help"], #"""
        OVERVIEW: Show one commit: message, edit request, tensors touched and ΔW
        statistics.

        Example: wledger show HEAD~2 --json

        USAGE: wledger show [-C <path>] [--quiet] [<revision>] [--json]

        ARGUMENTS:
          <revision>              Revision to show. (default: HEAD)

        OPTIONS:
          -C <path>               The model directory, or one inside it. (default: .)
          -q, --quiet             Show no progress or notices (init, commit, checkout,
                                  reset: nor their summary, as git).
          --json                  Print the result as JSON.
          --version               Show the version.
          -h, --help              Show help information.
        """#)
    }

    func testDiffHelp() throws {
        try assertHelp(["diff", "--help"], #"""
        OVERVIEW: Show ΔW statistics between two revisions, or a revision and the work
        tree.

        With no revision: HEAD vs the work tree. With one: that revision vs the work
        tree (a range A..B: A vs B; A...B: B vs the merge base of A and B, what B did
        since it forked from A). With two: a vs b. Per tensor: changed elements, Σ|ΔW|
        (L1), ‖ΔW‖F, ‖ΔW‖F/‖W‖F and max|ΔW|, computed in float64; the relative change δ
        = |ΔW/W| (W of the older side; where W = 0 the denominator is 2^-126 so δ stays
        finite) as shares above thresholds and median/p90/p99; for 2-D tensors σmax,
        σmin and κ of both sides and the numerical rank and top singular values of ΔW.

        Example: wledger diff base HEAD --stat

        USAGE: wledger diff [-C <path>] [--quiet] [<a>] [<b>] [--stat] [--tensor <tensor>] [--delta-thresholds <delta-thresholds>] [--no-spectrum] [--json]

        ARGUMENTS:
          <a>                     Older revision (default HEAD), or a range A..B or
                                  A...B.
          <b>                     Newer revision (default: the work tree).

        OPTIONS:
          -C <path>               The model directory, or one inside it. (default: .)
          -q, --quiet             Show no progress or notices (init, commit, checkout,
                                  reset: nor their summary, as git).
          --stat                  Per-tensor statistics table (the default output).
          --tensor <tensor>       Only this tensor.
          --delta-thresholds <delta-thresholds>
                                  Comma-separated δ thresholds for the shares of
                                  relative change (default 0.077,0.171).
          --no-spectrum           Skip the SVD-based statistics (σmax, σmin, κ, rank of
                                  ΔW).
          --json                  Print the result as JSON.
          --version               Show the version.
          -h, --help              Show help information.
        """#)
    }

    func testCheckoutHelp() throws {
        try assertHelp(["checkout", "--help"], #"""
        OVERVIEW: Rewrite the work tree (or another directory) to a revision.

        A weight file that keeps its header (every tensor at the same offset) gets only
        its changed tensors written, in place, unless --no-in-place; other changed
        files, and any file that is a symlink or has another hard link or is read-only,
        are written to temporary files and renamed into place; unchanged files are left
        alone. A killed checkout is finished by the next wledger command. A changed
        tensor whose target version descends from the one the clean work tree holds
        continues from those bytes (only the later patches applied). Every rebuilt
        tensor is verified against its recorded fingerprint (and sha256 with --verify).
        Uncommitted changes are kept when the switch leaves them alone, as git does (a
        modified tensor the revision has as HEAD has it, in a file patched in place or
        not written; a side file changed, added or deleted where the two agree; listed
        as M/A/D lines); any other is refused unless --force discards it. Switching to
        HEAD's own commit under another name (a branch there, -b, or detached) writes
        nothing. -b NAME creates branch NAME at the revision (default HEAD) and
        switches to it. '-' is where the last checkout that moved HEAD came from.

        Examples: wledger checkout HEAD~3 --output /tmp/model-before-edit; wledger
        checkout -b rect HEAD~2; wledger checkout -

        USAGE: wledger checkout [-C <path>] [--quiet] [<revision>] [-b <new-branch>] [--output <output>] [--force] [--verify] [--in-place] [--no-in-place] [--json]

        ARGUMENTS:
          <revision>              Revision: commit id prefix, branch, tag, HEAD~N or
                                  base (with -b, default HEAD); - for the previous one.

        OPTIONS:
          -C <path>               The model directory, or one inside it. (default: .)
          -q, --quiet             Show no progress or notices (init, commit, checkout,
                                  reset: nor their summary, as git).
          -b <new-branch>         Create this branch at the revision and switch to it.
          --output <output>       Materialize into this (new or empty) directory; HEAD
                                  and the work tree stay as they are.
          -f, --force             Discard uncommitted changes in the work tree.
          --verify                Also verify the sha256 of every rebuilt tensor.
          --in-place/--no-in-place
                                  Write only the changed tensors into weight files that
                                  allow it (--no-in-place: write every changed file
                                  anew, so a process that has it mapped keeps the old
                                  weights; default: core.in-place of .wledger/config,
                                  else in place).
          --json                  Print the result as JSON.
          --version               Show the version.
          -h, --help              Show help information.
        """#)
    }

    func testBranchHelp() throws {
        try assertHelp(["branch", "--help"], #"""
        OVERVIEW: List, create, rename or delete branches.

        As git branch. -d deletes a branch whose commit is in HEAD's history (it is
        merged); -D (or -d -f) deletes any other branch but the current one, whose
        commits then stay reachable through the reflog until a 'wledger gc' 30 days
        later removes them ('wledger gc --expire-unreachable' at once).

        Examples: wledger branch; wledger branch rect HEAD~2; wledger branch -m rect
        rect-40; wledger branch -d rect

        USAGE: wledger branch [-C <path>] [--quiet] [<name>] [<start-point>] [--delete] [-D] [--move] [--force] [--json]

        ARGUMENTS:
          <name>                  Branch to create (list when omitted); with -m, the
                                  branch to rename, or the new name of the current one.
          <start-point>           Where the new branch starts (default HEAD); with -m,
                                  the new name.

        OPTIONS:
          -C <path>               The model directory, or one inside it. (default: .)
          -q, --quiet             Show no progress or notices (init, commit, checkout,
                                  reset: nor their summary, as git).
          -d, --delete            Delete the branch (refused when it is not merged into
                                  HEAD).
          -D                      Delete the branch even when it is not merged into
                                  HEAD (-d -f).
          -m, --move              Rename the branch (HEAD follows the current one).
          -f, --force             Move the branch if it exists (with -m: replace the
                                  new name's branch; with -d: delete it even when not
                                  merged).
          --json                  Print the result as JSON.
          --version               Show the version.
          -h, --help              Show help information.
        """#)
    }

    func testTagHelp() throws {
        try assertHelp(["tag", "--help"], #"""
        OVERVIEW: List, create or delete tags.

        Examples: wledger tag; wledger tag before-edits base; wledger tag -d
        before-edits

        USAGE: wledger tag [-C <path>] [--quiet] [<name>] [<target>] [--delete] [--force] [--json]

        ARGUMENTS:
          <name>                  Tag to create (list when omitted).
          <target>                Commit to tag (default HEAD). (default: HEAD)

        OPTIONS:
          -C <path>               The model directory, or one inside it. (default: .)
          -q, --quiet             Show no progress or notices (init, commit, checkout,
                                  reset: nor their summary, as git).
          -d, --delete            Delete the tag.
          -f, --force             Move the tag if it exists.
          --json                  Print the result as JSON.
          --version               Show the version.
          -h, --help              Show help information.
        """#)
    }

    func testReflogHelp() throws {
        try assertHelp(["reflog", "--help"], #"""
        OVERVIEW: Show where HEAD or a branch pointed after each of its moves; expire
        old entries.

        As git reflog: newest first, one line per move (commit, checkout, reset, branch
        creation or rename), with the selector that names that position in any command:
        HEAD@{1} is where HEAD was before its last move, main@{2} where main was two
        moves ago, @{1} the current branch's, @{-1} the branch (or commit) the last
        checkout came from. A commit that reset --hard left behind is found here. A
        branch's log goes when the branch is deleted and follows it when it is renamed;
        tags do not move and have none. Ledgers made before the reflog existed start
        with an empty one. Entries record the clock's time, even where $WLEDGER_TIME
        pins commit times. 'reflog expire' drops old entries (gc does it first, with
        the config's gc.reflogExpire and gc.reflogExpireUnreachable: 90 and 30 days by
        default).

        Examples: wledger reflog; wledger reflog main -n 5; wledger reset --hard
        HEAD@{1}; wledger reflog expire --expire-unreachable=now --all

        USAGE: wledger reflog <subcommand>

        OPTIONS:
          --version               Show the version.
          -h, --help              Show help information.

        SUBCOMMANDS:
          show (default)          List a log's entries, newest first (the default).
          expire                  Drop old reflog entries, so gc can remove the commits
                                  only they kept.

          See 'wledger help reflog <subcommand>' for detailed help.
        """#)
        try assertHelp(["reflog", "show", "--help"], #"""
        OVERVIEW: List a log's entries, newest first (the default).

        USAGE: wledger reflog show [-C <path>] [--quiet] [<ref>] [--max-count <max-count>] [--json]

        ARGUMENTS:
          <ref>                   HEAD (default), a branch, stash, or @ for the current
                                  branch; NAME@{N} starts at that entry. (default: HEAD)

        OPTIONS:
          -C <path>               The model directory, or one inside it. (default: .)
          -q, --quiet             Show no progress or notices (init, commit, checkout,
                                  reset: nor their summary, as git).
          -n, --max-count <max-count>
                                  Show at most this many entries.
          --json                  Print the result as JSON.
          --version               Show the version.
          -h, --help              Show help information.
        """#)
        try assertHelp(["reflog", "expire", "--help"], #"""
        OVERVIEW: Drop old reflog entries, so gc can remove the commits only they kept.

        As git reflog expire: drops the entries of HEAD's and the branches' logs older
        than --expire, and those older than --expire-unreachable whose commit no
        branch, tag or HEAD reaches (nor a stash entry or bisect session); an entry
        older than --expire-unreachable that stays forgets its previous commit when
        that one is unreachable so. Defaults: the config's gc.reflogExpire and
        gc.reflogExpireUnreachable, else 90.days.ago and 30.days.ago. Times: now (every
        entry), never, yesterday, N.UNIT[.ago] (second, minute, hour, day, week, month
        = 30 days, year), a UTC date 2026-01-31[T12:00[:00]], or @UNIX. The commits
        stay until 'wledger gc'. The stash's entries are never expired: 'stash drop'
        and 'stash clear' remove them.

        Examples: wledger reflog expire --all --dry-run; wledger reflog expire
        --expire-unreachable=now --all; wledger reflog expire --expire=2.weeks.ago HEAD

        USAGE: wledger reflog expire [-C <path>] [--quiet] [<refs> ...] [--all] [--expire <time>] [--expire-unreachable <time>] [--dry-run] [--json]

        ARGUMENTS:
          <refs>                  The logs to expire: HEAD, a branch, or @ (or --all).

        OPTIONS:
          -C <path>               The model directory, or one inside it. (default: .)
          -q, --quiet             Show no progress or notices (init, commit, checkout,
                                  reset: nor their summary, as git).
          --all                   Expire HEAD's log and every branch's.
          --expire <time>         Drop entries older than this.
          --expire-unreachable <time>
                                  Drop entries older than this whose commit no ref
                                  reaches.
          -n, --dry-run           List what would be dropped; change nothing.
          --json                  Print the result as JSON.
          --version               Show the version.
          -h, --help              Show help information.
        """#)
    }

    func testResetHelp() throws {
        try assertHelp(["reset", "--help"], #"""
        OVERVIEW: Move the current branch (or a detached HEAD) to a revision.

        As git reset. --soft (the default; --mixed is the same, as there is no index)
        leaves the work tree alone: what differs from the new HEAD shows in 'wledger
        status' and 'wledger commit' records it again. --hard also rewrites the work
        tree to the revision (as checkout --force HEAD: every weight file in full, from
        the ledger), discarding uncommitted changes and removing side files the
        revision does not track. The commits left behind stay in the ledger (until a
        'wledger gc' 30 days later, or 'wledger gc --expire-unreachable'); the previous
        HEAD is printed, and 'wledger reset <that id>' (or 'wledger reset HEAD@{1}',
        see 'wledger reflog') goes back. Refused while a bisect runs.

        Examples: wledger reset HEAD~1; wledger reset --hard edits-25; wledger reset
        --hard HEAD@{1}

        USAGE: wledger reset [-C <path>] [--quiet] [<revision>] [--soft] [--mixed] [--hard] [--json]

        ARGUMENTS:
          <revision>              Revision to move to. (default: HEAD)

        OPTIONS:
          -C <path>               The model directory, or one inside it. (default: .)
          -q, --quiet             Show no progress or notices (init, commit, checkout,
                                  reset: nor their summary, as git).
          --soft                  Move the ref only (default).
          --mixed                 Same as --soft: there is no index.
          --hard                  Also rewrite the work tree to the revision,
                                  discarding uncommitted changes.
          --json                  Print the result as JSON.
          --version               Show the version.
          -h, --help              Show help information.
        """#)
    }

    func testCherryPickHelp() throws {
        try assertHelp(["cherry-pick", "--help"], #"""
        OVERVIEW: Commit one commit's ΔW (and side-file changes) onto HEAD (e.g. an
        edit made on another branch).

        As git cherry-pick: the new commit has the picked one's kind, author, method,
        edit request (so health's edit retention follows it) and message, with "(cherry
        picked from commit <id>)" added. Where HEAD holds a tensor as the picked
        commit's parent did, the result is the picked commit's bytes exactly; elsewhere
        HEAD + ΔW is computed in float64 and rounded to the tensor's dtype. A side file
        it added, modified or deleted is carried where HEAD has it as the picked
        commit's parent did. Refused when its change is already on HEAD's history (the
        commit, or a pick of the same edit), when HEAD already holds what it wrote,
        when HEAD changed one of its side files too or it changed a weight file's
        header, and with uncommitted changes.

        Example: wledger cherry-pick rect~2

        USAGE: wledger cherry-pick [-C <path>] [--quiet] <revision> [--message <message>] [--author <author>] [--no-verify] [--json]

        ARGUMENTS:
          <revision>              The commit to apply.

        OPTIONS:
          -C <path>               The model directory, or one inside it. (default: .)
          -q, --quiet             Show no progress or notices (init, commit, checkout,
                                  reset: nor their summary, as git).
          -m, --message <message> Message (default: the picked commit's, with where it
                                  came from).
          --author <author>       Author (default: the picked commit's, as git).
          --no-verify             Skip the hooks in .wledger/hooks/.
          --json                  Print the result as JSON.
          --version               Show the version.
          -h, --help              Show help information.
        """#)
    }

    func testRevertHelp() throws {
        try assertHelp(["revert", "--help"], #"""
        OVERVIEW: Commit the inverse of one edit's ΔW onto HEAD (any commit, not only
        HEAD).

        For every tensor the commit changed, HEAD − ΔW_rev is computed in float64 and
        rounded to the tensor's dtype; where HEAD still holds exactly what the commit
        wrote, the parent's bytes come back exactly. Later edits to the same matrices
        are kept. Side files the commit changed go back to its parent's version where
        HEAD has them as the commit left them (one changed since refuses), as git's
        revert. Reverting a revert restores the edit. Untracked files stay.

        Example: wledger revert HEAD~3

        USAGE: wledger revert [-C <path>] [--quiet] <revision> [--message <message>] [--author <author>] [--no-verify] [--json]

        ARGUMENTS:
          <revision>              The commit to revert.

        OPTIONS:
          -C <path>               The model directory, or one inside it. (default: .)
          -q, --quiet             Show no progress or notices (init, commit, checkout,
                                  reset: nor their summary, as git).
          -m, --message <message> Message (default: Revert "<original message>").
          --author <author>       Author (default: $WLEDGER_AUTHOR or $USER).
          --no-verify             Skip the hooks in .wledger/hooks/.
          --json                  Print the result as JSON.
          --version               Show the version.
          -h, --help              Show help information.
        """#)
    }

    func testPruneHelp() throws {
        try assertHelp(["prune", "--help"], #"""
        OVERVIEW: RECT: keep only the top K% of one edit's ΔW (by relative change) and
        commit the rest's removal.

        For every tensor the commit changed, δ = |ΔW / W| is computed against the
        commit's parent (where W = 0 the denominator is 2^-126, so δ is finite); the
        ⌈K·N/100⌉ elements with the largest δ keep their exact values (ties: lower
        index first) and the others return to their pre-edit values. The paper's
        default keeps 40%.

        Example: wledger prune HEAD --keep 40%

        USAGE: wledger prune [-C <path>] [--quiet] <revision> --keep <keep> [--by <by>] [--message <message>] [--author <author>] [--no-verify] [--json]

        ARGUMENTS:
          <revision>              The edit to prune.

        OPTIONS:
          -C <path>               The model directory, or one inside it. (default: .)
          -q, --quiet             Show no progress or notices (init, commit, checkout,
                                  reset: nor their summary, as git).
          --keep <keep>           Share of ΔW's elements to keep, e.g. 40%.
          --by <by>               Ranking: relative (|ΔW/W|, RECT) or magnitude (|ΔW|).
                                  (values: relative, magnitude; default: relative)
          -m, --message <message> Message.
          --author <author>       Author (default: $WLEDGER_AUTHOR or $USER).
          --no-verify             Skip the hooks in .wledger/hooks/.
          --json                  Print the result as JSON.
          --version               Show the version.
          -h, --help              Show help information.
        """#)
    }

    func testRestrainHelp() throws {
        try assertHelp(["restrain", "--help"], #"""
        OVERVIEW: PRUNE: restrain the large singular values of the accumulated ΔW of
        every edited matrix.

        For each 2-D tensor that changed in the range (default base..HEAD), ΔW = W_b −
        W_a is decomposed (randomized low-rank SVD with a residual check, falling back
        to LAPACK's full SVD); every singular value σ ≥ σmax(W_a) becomes log_α(σ) −
        log_α(σmax(W_a)) + σmax(W_a), and the difference is committed onto HEAD. The
        condition number κ of each matrix is reported before and after. --method sphere
        instead projects ΔW off the base matrix's dominant input directions: ΔW·(I −
        β·U·Uᵀ), U covering a share η of the energy of Ŵᵀ·Ŵ.

        Examples: wledger restrain; wledger restrain base..HEAD --alpha 2; wledger
        restrain --method sphere

        USAGE: wledger restrain [-C <path>] [--quiet] [<range>] [--alpha <alpha>] [--method <method>] [--eta <eta>] [--beta <beta>] [--message <message>] [--author <author>] [--no-verify] [--json]

        ARGUMENTS:
          <range>                 Range <a>..<b> (default base..HEAD; '<a>' alone means
                                  <a>..HEAD).

        OPTIONS:
          -C <path>               The model directory, or one inside it. (default: .)
          -q, --quiet             Show no progress or notices (init, commit, checkout,
                                  reset: nor their summary, as git).
          --alpha <alpha>         Base α of the logarithm: e, 2, 1.5, 1.2 or any number
                                  > 1. (default: e)
          --method <method>       prune (PRUNE, the default) or sphere. (values: prune,
                                  sphere; default: prune)
          --eta <eta>             Sphere: cumulative energy η of the directions kept.
                                  (default: 0.5)
          --beta <beta>           Sphere: strength β of the projection. (default: 0.5)
          -m, --message <message> Message.
          --author <author>       Author (default: $WLEDGER_AUTHOR or $USER).
          --no-verify             Skip the hooks in .wledger/hooks/.
          --json                  Print the result as JSON.
          --version               Show the version.
          -h, --help              Show help information.
        """#)
    }

    func testFsckHelp() throws {
        try assertHelp(["fsck", "--help"], #"""
        OVERVIEW: Verify every object, tensor version and commit in the ledger.

        Checks every object's sha256, every tensor version's object and patch chain,
        and every commit's manifest, tree hash and id; --full also rebuilds every
        tensor version and checks its sha256. Each problem names the commit and tensor
        (or file) it affects. Exits 1 when a problem is found. Example: wledger fsck
        --full

        USAGE: wledger fsck [-C <path>] [--quiet] [--full] [--json]

        OPTIONS:
          -C <path>               The model directory, or one inside it. (default: .)
          -q, --quiet             Show no progress or notices (init, commit, checkout,
                                  reset: nor their summary, as git).
          --full                  Also rebuild every tensor version of every commit and
                                  check its sha256.
          --json                  Print the result as JSON.
          --version               Show the version.
          -h, --help              Show help information.
        """#)
    }

    func testGCHelp() throws {
        try assertHelp(["gc", "--help"], #"""
        OVERVIEW: Remove commits nothing reaches, and what only they stored; compact
        the ledger.

        As git gc --prune=now: a commit stays while a branch, a tag, HEAD, a reflog
        entry, a stash entry, a bisect session or 'checkout -' reaches it (with its
        ancestors), or a kept commit links to it (the commit a cherry-pick was picked
        from, the edit a revert or prune undid). The others are removed with the tensor
        versions and stored objects only they used, and the ledger file is rewritten
        without the freed space (SQLite VACUUM: a temporary copy in $SQLITE_TMPDIR,
        /var/tmp or /tmp and a WAL next to the ledger, each up to the ledger's size; it
        compacts when a commit, version or object was removed or free pages make up 1%
        of the ledger or more). As git gc, it first expires the reflog: entries older
        than gc.reflogExpire (default 90 days) and entries older than
        gc.reflogExpireUnreachable (default 30 days) whose commit no branch, tag, HEAD,
        stash entry or bisect session reaches go (see 'wledger reflog expire'; stash
        entries never do), so what reset --hard or deleting a branch left behind goes a
        month later. --expire-unreachable drops every entry of a commit none of those
        reaches now (git reflog expire --expire-unreachable=now --all), so those
        commits go at once and HEAD@{N} counts only what is left. --dry-run lists what
        would go and changes nothing. The work tree is never touched; every kept commit
        checks out byte for byte as before.

        Examples: wledger gc --dry-run; wledger gc; wledger gc --expire-unreachable

        USAGE: wledger gc [-C <path>] [--quiet] [--expire-unreachable] [--dry-run] [--json]

        OPTIONS:
          -C <path>               The model directory, or one inside it. (default: .)
          -q, --quiet             Show no progress or notices (init, commit, checkout,
                                  reset: nor their summary, as git).
          --expire-unreachable    Drop the reflog entries of commits no branch, tag,
                                  HEAD, stash entry or bisect session reaches whatever
                                  their age, so those commits go.
          -n, --dry-run           Show what would be removed; change nothing.
          --json                  Print the result as JSON.
          --version               Show the version.
          -h, --help              Show help information.
        """#)
    }

    func testStashHelp() throws {
        try assertHelp(["stash", "--help"], #"""
        OVERVIEW: Set uncommitted changes aside and bring them back later.

        As git stash. 'wledger stash' (push) records the work tree's uncommitted
        changes (tensors, headers, tracked side files, NaN and Inf included; untracked
        files stay where they are unless -u records and removes them) as a commit on
        HEAD that no branch points to, pushes it onto the stash as stash@{0}, and
        writes HEAD's bytes back where the work tree differs (in place where it can);
        hooks do not run. 'apply' writes a stash's files back into the work tree
        without moving HEAD. On another commit than the one it was made on it merges,
        per tensor and file: what HEAD still has as that commit had it gets the stash's
        bytes, a float tensor HEAD changed too gets HEAD + the stash's ΔW (float64,
        rounded to the dtype, as cherry-pick), and a side file both changed refuses
        ('stash branch NAME' creates a branch where the stash was made and pops it
        there). Uncommitted changes it does not touch are kept, as a checkout keeps
        them, and any other refuses before a byte is written. 'show' lists what an
        entry changes (ΔW per tensor, changed files). 'pop' applies and drops; 'drop'
        and 'clear' remove entries (their commits stay until 'wledger gc'; gc never
        removes a stash entry's commit). stash@{N} (and stash, stash@{0}) works as a
        revision anywhere (show, diff, cherry-pick).

        Examples: wledger stash -m "try layer 9"; wledger stash list; wledger diff
        stash@{0}~1 stash@{0} --stat; wledger stash pop

        USAGE: wledger stash <subcommand>

        OPTIONS:
          --version               Show the version.
          -h, --help              Show help information.

        SUBCOMMANDS:
          push (default)          Save the uncommitted changes as stash@{0} and rewrite
                                  the work tree to HEAD.
          list                    List the stash entries, newest first.
          show                    Show what a stash entry changes: ΔW per tensor and
                                  the files it changed.
          apply                   Write a stash's files into the work tree (HEAD
                                  stays); keep the entry.
          pop                     Apply a stash, then drop it.
          branch                  Create a branch at the commit a stash was made on,
                                  check it out and pop the stash there.
          drop                    Remove one stash entry.
          clear                   Remove every stash entry.

          See 'wledger help stash <subcommand>' for detailed help.
        """#)
    }

    func testHealthHelp() throws {
        try assertHelp(["health", "--help"], #"""
        OVERVIEW: Evaluate general abilities and edit retention of a commit, next to
        the base.

        Runs a suite of tasks (BIG-bench JSON, lm-eval JSONL, perplexity, the retention
        of every edit request in force, or an external evaluator) on a commit's
        weights, materialized outside the work tree, and on the base commit. Results
        are cached in the ledger per weights × task × evaluator. Suites, tasks and
        thresholds come from .wledger/config (see 'wledger config --help'); the
        built-in suite 'default' runs addition (BIG-bench), the word analogies
        capitals, family, comparative and opposite, and edits.
        Examples: wledger health; wledger health HEAD~3 --json; wledger health
        --candidate --check

        USAGE: wledger health [-C <path>] [--quiet] [<revision>] [--suite <suite>] [--task <name> ...] [--candidate] [--check] [--refresh] [--all] [--threads <threads>] [--json]

        ARGUMENTS:
          <revision>              Revision to evaluate (default HEAD).

        OPTIONS:
          -C <path>               The model directory, or one inside it. (default: .)
          -q, --quiet             Show no progress or notices (init, commit, checkout,
                                  reset: nor their summary, as git).
          --suite <suite>         Suite to run (default: config health.suite, else
                                  'default').
          --task <name>           Run only this task (repeatable).
          --candidate             Evaluate the uncommitted weights: $WLEDGER_CANDIDATE
                                  when set (hooks), else the work tree.
          --check                 Exit 1 when a threshold fails.
          --refresh               Evaluate again even when cached.
          --all                   Show every metric, not only each task's headline
                                  metric and thresholded ones.
          --threads <threads>     BLAS threads (default: config health.threads, else
                                  every core).
          --json                  Print the result as JSON.
          --version               Show the version.
          -h, --help              Show help information.
        """#)
    }

    func testEditHelp() throws {
        try assertHelp(["edit", "--help"], #"""
        OVERVIEW: Edit a fact natively (ROME or MEMIT) and commit the edit with its
        request.

        ROME edits one request at a time (an array of requests becomes one commit
        each): k* is the mean key at the subject's last token over context templates
        generated once from the base model, v* is optimized with Adam (NLL of
        target_new + KL on "{subject} is a" + weight decay, norm clamp), and
        mlp.down_proj of the layer gets the rank-one update δ·(C⁻¹k*)ᵀ/(k·C⁻¹k*). MEMIT
        edits a batch in one commit, spread over a layer range: ΔW_l = R·Kᵀ·(λC +
        K·Kᵀ)⁻¹. C = E[kkᵀ] of the layer's keys over a text corpus (default: the Lee
        news corpus from the fixtures) is computed once per model and layer and kept in
        the ledger; --no-mom2 uses the identity. The work tree must be clean. Each edit
        prints efficacy (target_new preferred over ground_truth), generalization (the
        same on the rephrasings) and locality (locality prompts' top predictions
        unchanged by the edit).

        Example: wledger edit --method rome --request edit.json

        USAGE: wledger edit [<options>] --request <file>

        OPTIONS:
          -C <path>               The model directory, or one inside it. (default: .)
          -q, --quiet             Show no progress or notices (init, commit, checkout,
                                  reset: nor their summary, as git).
          --method <method>       Editing method: rome or memit. (values: rome, memit;
                                  default: rome)
          --request <file>        Edit request in EasyEdit's JSON format (an object or
                                  an array).
          --layer <layer>         ROME: the layer whose mlp.down_proj is edited
                                  (default: 5/32 of the depth).
          --layers <range>        MEMIT: the layers, e.g. 3-7 or 3,4,5 (default: 4/32
                                  to 8/32 of the depth).
          --steps <steps>         Adam steps on the value vector. (default: 20)
          --lr <lr>               Adam learning rate. (default: 0.5)
          --weight-decay <weight-decay>
                                  Weight decay on the value vector. (default: 0.001)
          --clamp-norm-factor <clamp-norm-factor>
                                  Clamp ‖δ‖ to this multiple of the original output's
                                  norm. (default: 4.0)
          --kl-factor <kl-factor> Weight of the KL term on "{subject} is a". (default:
                                  0.0625)
          --mom2-update-weight <mom2-update-weight>
                                  MEMIT: weight λ of the covariance term. (default:
                                  15000.0)
          --no-mom2               Use the identity instead of the keys' second moment C.
          --mom2-corpus <file>    Text file for the key statistics C (default: the Lee
                                  news corpus, health.tasks).
          --mom2-tokens <mom2-tokens>
                                  Tokens over which C is estimated. (default: 16384)
          -m, --message <message> Message (default: method, subject, ground truth ->
                                  target).
          --author <author>       Author (default: $WLEDGER_AUTHOR or $USER).
          --no-verify             Skip the hooks in .wledger/hooks/.
          --json                  Print the result as JSON.
          --version               Show the version.
          -h, --help              Show help information.
        """#)
    }

    func testReportHelp() throws {
        try assertHelp(["report", "--help"], #"""
        OVERVIEW: Write one self-contained HTML page showing what the edits did to the
        model.

        Charts, drawn as inline SVG (no external requests; prints well): each cached
        health metric vs commits with the base value and threshold bands; weight drift
        of every edited matrix vs commits (Σ|ΔW| since base, ‖ΔW‖F/‖W‖F, shares of δ >
        0.077 and > 0.171, κ), computed as 'wledger diff base COMMIT' does; a sortable
        table of the commits. Several ranges or revisions are drawn as overlaid lines.
        Health results are read from the cache ('wledger health REV' fills it);
        --evaluate runs what is missing. Prints the path of the page.

        Examples: wledger report; wledger report main prune restrain --output
        report.html

        USAGE: wledger report [-C <path>] [--quiet] [<range-or-rev> ...] [--output <file>] [--suite <suite>] [--task <name> ...] [--evaluate] [--threads <threads>] [--json]

        ARGUMENTS:
          <range-or-rev>          Ranges <a>..<b> or revisions (meaning base..<rev>),
                                  one line each (default base..HEAD).

        OPTIONS:
          -C <path>               The model directory, or one inside it. (default: .)
          -q, --quiet             Show no progress or notices (init, commit, checkout,
                                  reset: nor their summary, as git).
          -o, --output <file>     Write the page here (default .wledger/report.html).
          --suite <suite>         Health suite to show (default: config health.suite,
                                  else 'default').
          --task <name>           Show only this task (repeatable).
          --evaluate              Evaluate health where no cached result exists (slow).
          --threads <threads>     BLAS threads for --evaluate (default: config
                                  health.threads, else every core).
          --json                  Print the collected data as JSON instead (the page is
                                  written only with --output).
          --version               Show the version.
          -h, --help              Show help information.
        """#)
    }

    func testConfigHelp() throws {
        try assertHelp(["config", "--help"], #"""
        OVERVIEW: Get, set and list settings in .wledger/config (suites, tasks,
        thresholds, evaluators, gates).

        Keys:
          health.suite: suite `wledger health` runs when no --suite is given (default:
        default)
          health.threads: BLAS threads for evaluation (default: every core)
          health.bigbench: directory of BIG-bench tasks (default: $WLEDGER_BIGBENCH,
        then ~/.cache/wledger/bigbench/benchmark_tasks)
          health.tasks: directory of the default suite's analogy tasks and edit's
        default text corpus (default: $WLEDGER_TASKS, then ~/.cache/wledger/tasks)
          suite.*.tasks: task names of a suite, separated by spaces or commas
          task.*.source: bigbench:DIR[/SUBTASK], jsonl:FILE, perplexity:FILE, edits, or
        external:EVALUATOR
          task.*.mode: automatic, multiple_choice or exact_match (BIG-bench tasks)
          task.*.shots: worked examples before each question
          task.*.limit: evaluate a seeded subsample of this many examples
          task.*.seed: seed of the subsample, shots and choice order (default 42)
          task.*.metric: headline metric of the task, shown first
          task.*.tasks: external tasks: the evaluator's task names (its {tasks})
          threshold.*.min: TASK.METRIC must be at least this
          threshold.*.max: TASK.METRIC must be at most this (e.g. a perplexity)
          threshold.*.max-drop: TASK.METRIC may worsen at most this much from base
        (absolute, or N% of base): fall, or rise for perplexity, bits_per_byte, nll_*,
        *loss
          evaluator.*.command: external evaluator command template with {weights},
        {out} and {tasks}
          gate.max-l1: weight gate: largest Σ|ΔW| vs base allowed in one matrix
          gate.max-delta-share: weight gate: largest share of elements with δ = |ΔW/W|
        > 0.171 vs base
          gate.max-kappa-growth: weight gate: largest κ(W)/κ(W_base) allowed
          gc.reflogExpire: gc and reflog expire drop reflog entries older than this
        (default: 90.days.ago; never, now, 2.weeks.ago, 2026-01-31, @UNIX)
          gc.reflogExpireUnreachable: gc and reflog expire drop reflog entries older
        than this whose commit no branch, tag, HEAD, stash entry or bisect session
        reaches, so gc removes the commit (default: 30.days.ago)
          core.in-place: write changed tensors into weight files in place where they
        allow it: checkout, revert, prune, restrain, edit, commit --prune (default:
        true)
        '*' is a name of your choice (a task, suite, evaluator, or TASK.METRIC for
        thresholds).
        Examples: wledger config set threshold.addition.exact_match.min 0.3; wledger
        config get health.suite; wledger config list

        USAGE: wledger config <subcommand>

        OPTIONS:
          --version               Show the version.
          -h, --help              Show help information.

        SUBCOMMANDS:
          get                     Print a key's value (exit 1 when unset).
          set                     Set a key (checked against the documented keys).
          unset                   Remove a key (exit 1 when it was not set).
          list                    List every key that is set, in file order.

          See 'wledger help config <subcommand>' for detailed help.
        """#)
    }

    func testBisectHelp() throws {
        try assertHelp(["bisect", "--help"], #"""
        OVERVIEW: Find the edit that broke an ability: binary search over the history,
        by hand, by a command, or on a health metric.

        By hand or by a command (git's semantics): 'bisect start <bad> <good>' checks
        out the commit halfway (detached HEAD), 'bisect good|bad|skip' marks it and
        checks out the next, until the first bad commit is printed with its message,
        method and edit request; 'bisect run <cmd>' does the marking by the command's
        exit code (0 good, 125 skip, 1-124 bad; 126, 127 and the rest stop); 'bisect
        reset' returns to where you started. With 'start --no-checkout' the work tree
        is left alone and 'run' gives the command the candidate's weights, materialized
        in a temporary directory, as $WLEDGER_CANDIDATE. The session is kept in the
        ledger.
        On a metric: 'bisect --metric TASK.METRIC (--below X | --above X | --drop P%)
        [<bad> [<good>]]' (default HEAD and base) evaluates the health task through its
        cache, at most ceil(log2 N)+1 evaluations over N commits, without touching the
        work tree.
        Examples: wledger bisect start HEAD base; wledger bisect run ./check.sh;
        wledger bisect --metric addition.exact_match --drop 25%

        USAGE: wledger bisect <subcommand>

        OPTIONS:
          --version               Show the version.
          -h, --help              Show help information.

        SUBCOMMANDS:
          metric (default)        Bisect automatically on a health metric (the default:
                                  'wledger bisect --metric ...').
          start                   Start bisecting: mark a bad commit and good ones, and
                                  check out the commit to test.
          good                    Mark commits good (default: HEAD, or the one being
                                  tested with --no-checkout).
          bad                     Mark a commit bad (default: HEAD, or the one being
                                  tested with --no-checkout).
          skip                    Skip commits that cannot be tested (default: HEAD, or
                                  the one being tested with --no-checkout).
          reset                   End the bisect and check out the original HEAD (or
                                  <rev>).
          log                     Print the session as commands 'bisect replay' can run
                                  again.
          replay                  Start over from a file written by 'bisect log'.
          run                     Mark commits by running a command on each: exit 0
                                  good, 125 skip, 1-124 bad, anything else (126, 127:
                                  not run) stops.

          See 'wledger help bisect <subcommand>' for detailed help.
        """#)
    }

    func testBisectMetricHelp() throws {
        try assertHelp(["bisect", "metric", "--help"], #"""
        OVERVIEW: Bisect automatically on a health metric (the default: 'wledger bisect
        --metric ...').

        A commit is bad when TASK.METRIC is below X (--below), above X (--above, for a
        perplexity), or worsened by more than P% of the base value (--drop): fell below
        base, or rose above it for metrics where lower is better (perplexity,
        bits_per_byte, nll_*, *loss). The good end is evaluated first, then a binary
        search in which the bad end is evaluated only if every commit before it is
        good: at most ceil(log2 N)+1 evaluations over N commits (one more for the base
        with --drop and a good end other than base). Results come from and go to the
        health cache; the work tree is not touched.
        Example: wledger bisect --metric addition.exact_match --below 0.3 HEAD base

        USAGE: wledger bisect metric [-C <path>] [--quiet] [--metric <task.metric>] [--below <below>] [--above <above>] [--drop <drop>] [--threads <threads>] [--json] [<rev> ...]

        ARGUMENTS:
          <rev>                   With --metric: the bad commit (default HEAD), then
                                  the good one (default base).

        OPTIONS:
          -C <path>               The model directory, or one inside it. (default: .)
          -q, --quiet             Show no progress or notices (init, commit, checkout,
                                  reset: nor their summary, as git).
          --metric <task.metric>  Bisect automatically on this health metric.
          --below <below>         A commit is bad when the metric is below this.
          --above <above>         A commit is bad when the metric is above this.
          --drop <drop>           A commit is bad when the metric worsened (fell; rose
                                  where lower is better) by more than this share of the
                                  base value, e.g. 25% (past 100% for a rise).
          --threads <threads>     BLAS threads (default: config health.threads, else
                                  every core).
          --json                  Print the result as JSON.
          --version               Show the version.
          -h, --help              Show help information.
        """#)
    }

    func testBisectStartHelp() throws {
        try assertHelp(["bisect", "start", "--help"], #"""
        OVERVIEW: Start bisecting: mark a bad commit and good ones, and check out the
        commit to test.

        USAGE: wledger bisect start [-C <path>] [--quiet] [--no-checkout] [--json] [<rev> ...]

        ARGUMENTS:
          <rev>                   The bad commit, then good ones.

        OPTIONS:
          -C <path>               The model directory, or one inside it. (default: .)
          -q, --quiet             Show no progress or notices (init, commit, checkout,
                                  reset: nor their summary, as git).
          --no-checkout           Leave the work tree alone; 'bisect run' gets the
                                  candidate in $WLEDGER_CANDIDATE.
          --json                  Print the result as JSON.
          --version               Show the version.
          -h, --help              Show help information.
        """#)
    }

    func testBisectGoodHelp() throws {
        try assertHelp(["bisect", "good", "--help"], #"""
        OVERVIEW: Mark commits good (default: HEAD, or the one being tested with
        --no-checkout).

        USAGE: wledger bisect good [-C <path>] [--quiet] [--json] [<rev> ...]

        ARGUMENTS:
          <rev>                   Commits to mark.

        OPTIONS:
          -C <path>               The model directory, or one inside it. (default: .)
          -q, --quiet             Show no progress or notices (init, commit, checkout,
                                  reset: nor their summary, as git).
          --json                  Print the result as JSON.
          --version               Show the version.
          -h, --help              Show help information.
        """#)
    }

    func testBisectBadHelp() throws {
        try assertHelp(["bisect", "bad", "--help"], #"""
        OVERVIEW: Mark a commit bad (default: HEAD, or the one being tested with
        --no-checkout).

        USAGE: wledger bisect bad [-C <path>] [--quiet] [--json] [<rev>]

        ARGUMENTS:
          <rev>                   The commit to mark.

        OPTIONS:
          -C <path>               The model directory, or one inside it. (default: .)
          -q, --quiet             Show no progress or notices (init, commit, checkout,
                                  reset: nor their summary, as git).
          --json                  Print the result as JSON.
          --version               Show the version.
          -h, --help              Show help information.
        """#)
    }

    func testBisectSkipHelp() throws {
        try assertHelp(["bisect", "skip", "--help"], #"""
        OVERVIEW: Skip commits that cannot be tested (default: HEAD, or the one being
        tested with --no-checkout).

        USAGE: wledger bisect skip [-C <path>] [--quiet] [--json] [<rev> ...]

        ARGUMENTS:
          <rev>                   Commits to skip.

        OPTIONS:
          -C <path>               The model directory, or one inside it. (default: .)
          -q, --quiet             Show no progress or notices (init, commit, checkout,
                                  reset: nor their summary, as git).
          --json                  Print the result as JSON.
          --version               Show the version.
          -h, --help              Show help information.
        """#)
    }

    func testBisectResetHelp() throws {
        try assertHelp(["bisect", "reset", "--help"], #"""
        OVERVIEW: End the bisect and check out the original HEAD (or <rev>).

        USAGE: wledger bisect reset [-C <path>] [--quiet] [<rev>]

        ARGUMENTS:
          <rev>                   Check out this instead of the original HEAD.

        OPTIONS:
          -C <path>               The model directory, or one inside it. (default: .)
          -q, --quiet             Show no progress or notices (init, commit, checkout,
                                  reset: nor their summary, as git).
          --version               Show the version.
          -h, --help              Show help information.
        """#)
    }

    func testBisectLogHelp() throws {
        try assertHelp(["bisect", "log", "--help"], #"""
        OVERVIEW: Print the session as commands 'bisect replay' can run again.

        USAGE: wledger bisect log [-C <path>] [--quiet] [--json]

        OPTIONS:
          -C <path>               The model directory, or one inside it. (default: .)
          -q, --quiet             Show no progress or notices (init, commit, checkout,
                                  reset: nor their summary, as git).
          --json                  Print the result as JSON.
          --version               Show the version.
          -h, --help              Show help information.
        """#)
    }

    func testBisectReplayHelp() throws {
        try assertHelp(["bisect", "replay", "--help"], #"""
        OVERVIEW: Start over from a file written by 'bisect log'.

        USAGE: wledger bisect replay [-C <path>] [--quiet] [--json] <file>

        ARGUMENTS:
          <file>                  The log file.

        OPTIONS:
          -C <path>               The model directory, or one inside it. (default: .)
          -q, --quiet             Show no progress or notices (init, commit, checkout,
                                  reset: nor their summary, as git).
          --json                  Print the result as JSON.
          --version               Show the version.
          -h, --help              Show help information.
        """#)
    }

    func testBisectRunHelp() throws {
        try assertHelp(["bisect", "run", "--help"], #"""
        OVERVIEW: Mark commits by running a command on each: exit 0 good, 125 skip,
        1-124 bad, anything else (126, 127: not run) stops.

        The command runs in the work tree with WLEDGER_CANDIDATE (the candidate's
        weights: the work tree, or a temporary directory with --no-checkout),
        WLEDGER_LEDGER and WLEDGER_COMMIT (the candidate's id).
        Example: wledger bisect run wledger health --candidate --check

        USAGE: wledger bisect run [-C <path>] [--quiet] [<cmd> ...]

        ARGUMENTS:
          <cmd>                   The command and its arguments.

        OPTIONS:
          -C <path>               The model directory, or one inside it. (default: .)
          -q, --quiet             Show no progress or notices (init, commit, checkout,
                                  reset: nor their summary, as git).
          --version               Show the version.
          -h, --help              Show help information.
        """#)
    }

    func testGateHelp() throws {
        try assertHelp(["gate", "--help"], #"""
        OVERVIEW: Weight-space gate: check the matrices a change edits against the
        gate.* limits (exit 1 when one is exceeded).

        Every floating-point matrix whose weights differ from HEAD is compared with the
        base commit: Σ|ΔW| (gate.max-l1), the share of elements with δ = |ΔW/W| > 0.171
        (gate.max-delta-share) and κ(W)/κ(W_base) (gate.max-kappa-growth, the only one
        that needs an SVD). Unset limits are not checked. The sample hook
        pre-commit-gate runs this.
        Example: wledger config set gate.max-l1 5000; wledger gate

        USAGE: wledger gate [-C <path>] [--quiet] [<directory>] [--json]

        ARGUMENTS:
          <directory>             Weights to check (default: $WLEDGER_CANDIDATE when
                                  set, else the work tree).

        OPTIONS:
          -C <path>               The model directory, or one inside it. (default: .)
          -q, --quiet             Show no progress or notices (init, commit, checkout,
                                  reset: nor their summary, as git).
          --json                  Print the result as JSON.
          --version               Show the version.
          -h, --help              Show help information.
        """#)
    }

    func testHooksHelp() throws {
        try assertHelp(["hooks", "--help"], #"""
        OVERVIEW: List, enable and disable hooks in .wledger/hooks/.

        Hooks are executables named pre-commit, commit-msg (gets the message file, may
        edit it), post-commit and pre-revert in .wledger/hooks/. They run in the work
        tree with WLEDGER_CANDIDATE (the candidate weights: the work tree for commit, a
        staged copy for revert, prune and restrain), WLEDGER_LEDGER, WLEDGER_COMMIT
        (the parent; the new commit for post-commit), WLEDGER_REQUEST (commit
        --request) and WLEDGER_REVERT (revert). Non-executable files are ignored; a
        non-zero exit aborts with the hook's output shown, and nothing changes;
        --no-verify skips hooks. 'init' copies the samples as NAME.sample:
        pre-commit-health (wledger health --candidate --check) and pre-commit-gate
        (wledger gate).
        Examples: wledger hooks enable pre-commit-health; wledger hooks list

        USAGE: wledger hooks <subcommand>

        OPTIONS:
          --version               Show the version.
          -h, --help              Show help information.

        SUBCOMMANDS:
          list                    List hooks and samples.
          enable                  Install a sample as the hook its name starts with
                                  (pre-commit-gate -> pre-commit).
          disable                 Remove an installed hook (exit 1 when there was none).

          See 'wledger help hooks <subcommand>' for detailed help.
        """#)
    }

    func testHooksListHelp() throws {
        try assertHelp(["hooks", "list", "--help"], #"""
        OVERVIEW: List hooks and samples.

        USAGE: wledger hooks list [-C <path>] [--quiet] [--json]

        OPTIONS:
          -C <path>               The model directory, or one inside it. (default: .)
          -q, --quiet             Show no progress or notices (init, commit, checkout,
                                  reset: nor their summary, as git).
          --json                  Print the result as JSON.
          --version               Show the version.
          -h, --help              Show help information.
        """#)
    }

    func testHooksEnableHelp() throws {
        try assertHelp(["hooks", "enable", "--help"], #"""
        OVERVIEW: Install a sample as the hook its name starts with (pre-commit-gate ->
        pre-commit).

        USAGE: wledger hooks enable [-C <path>] [--quiet] [--force] <name>

        ARGUMENTS:
          <name>                  The sample's name, e.g. pre-commit-health.

        OPTIONS:
          -C <path>               The model directory, or one inside it. (default: .)
          -q, --quiet             Show no progress or notices (init, commit, checkout,
                                  reset: nor their summary, as git).
          --force                 Replace a different hook that is already there.
          --version               Show the version.
          -h, --help              Show help information.
        """#)
    }

    func testHooksDisableHelp() throws {
        try assertHelp(["hooks", "disable", "--help"], #"""
        OVERVIEW: Remove an installed hook (exit 1 when there was none).

        USAGE: wledger hooks disable [-C <path>] [--quiet] <name>

        ARGUMENTS:
          <name>                  The hook, e.g. pre-commit.

        OPTIONS:
          -C <path>               The model directory, or one inside it. (default: .)
          -q, --quiet             Show no progress or notices (init, commit, checkout,
                                  reset: nor their summary, as git).
          --version               Show the version.
          -h, --help              Show help information.
        """#)
    }
}
