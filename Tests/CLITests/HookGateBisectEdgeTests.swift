import Foundation
import TensorIO
import TestSupport
import XCTest

/// Hooks, gate, config, bisect and revert at their edges, on small synthetic models (findings of
/// an adversarial audit): a pre-commit hook that rewrites a weight file stops the commit; a CRLF
/// config is read; the gate reads only its own keys and says by how much a limit is exceeded;
/// hooks read /dev/null and run by /bin/sh without a #! line; `hooks disable SAMPLE` leaves
/// another hook alone; `bisect good` marks HEAD; `bisect run` stops on a command that is not
/// there; revert restores a −0.0 the edit changed.
final class HookGateBisectEdgeTests: XCTestCase {
    /// A model whose tensor "w" ([8, 8] F32) starts with −0.0, then 1, 2, …
    func model(_ tmp: TemporaryDirectory) throws -> String {
        let dir = tmp.path + "/m"
        let values = [-0.0 as Float] + (1..<64).map(Float.init)
        try writeTinyModel(dir, tensors: [("w", .f32, [8, 8], values.withUnsafeBytes { Array($0) })])
        return dir
    }
    func setElements(_ dir: String, _ changes: [Int: Float]) throws {
        _ = try SimulatedEdit.modify(file: dir + "/model.safetensors", tensor: "w") { w, _ in for (i, v) in changes { w[i] = v } }
    }
    func hook(_ dir: String, _ name: String, _ text: String) throws {
        let path = dir + "/.wledger/hooks/" + name
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o755)
    }

    func testAHookThatRewritesAWeightFileStopsTheCommit() throws {
        let tmp = try TemporaryDirectory("hook-rewrite")
        let dir = try model(tmp)
        func wl(_ args: [String], stdin: String? = nil) throws -> ProcessOutput { try CLI.run(args, in: dir, stdin: stdin) }
        XCTAssertEqual(try wl(["init", "-q"]).status, 0)
        try setElements(dir, [5: 50])
        // Cut inside the last page: read through the map as zeros, with no SIGBUS.
        try hook(dir, "pre-commit", "#!/bin/sh\ntruncate -s 100 model.safetensors\n")
        let r = try wl(["commit", "-m", "t"])
        XCTAssertEqual(r.status, 2, r.stderr)
        XCTAssertTrue(r.stderr.contains("model.safetensors': ") && r.stderr.contains("changed while it was being committed"), r.stderr)
        XCTAssertEqual(try wl(["log", "--oneline"]).stdout.split(separator: "\n").count, 1, "nothing recorded")

        // Hooks read /dev/null, not wledger's stdin; one without #! runs by /bin/sh (as git).
        try "".write(toFile: dir + "/model.safetensors", atomically: true, encoding: .utf8)
        XCTAssertEqual(try wl(["checkout", "-q", "--force", "HEAD"]).status, 0)
        try setElements(dir, [5: 50])
        try hook(dir, "pre-commit", "cat > stdin.txt\necho from-sh-hook >&2\nexit 0\n")
        let ok = try wl(["commit", "-q", "-m", "t"], stdin: "piped\n")
        XCTAssertEqual(ok.status, 0, ok.stderr)
        XCTAssertTrue(ok.stderr.contains("from-sh-hook"), ok.stderr)
        XCTAssertEqual(try String(contentsOfFile: dir + "/stdin.txt", encoding: .utf8), "")
        // A missing interpreter is named.
        try setElements(dir, [6: 60])
        try hook(dir, "pre-commit", "#!/nonexistent/sh\nexit 0\n")
        let bad = try wl(["commit", "-m", "t2"])
        XCTAssertEqual(bad.status, 2, bad.stderr)
        XCTAssertTrue(bad.stderr.contains("its interpreter '/nonexistent/sh' (the #! line) does not exist"), bad.stderr)
    }

    func testConfigGateHooksDisableBisectAndRevertEdges() throws {
        let tmp = try TemporaryDirectory("edges")
        let dir = try model(tmp)
        func wl(_ args: [String]) throws -> ProcessOutput { try CLI.run(args, in: dir) }
        func commitID(_ rev: String) throws -> String {
            let r = try wl(["show", rev, "--json"])
            return try XCTUnwrap((JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])?["id"] as? String)
        }
        XCTAssertEqual(try wl(["init", "-q"]).status, 0)

        // A config written with CRLF line ends is read (it read as one comment: no limit).
        try "# limits\r\n[gate]\r\n\tmax-l1 = 5\r\n".write(toFile: dir + "/.wledger/config", atomically: true, encoding: .utf8)
        XCTAssertEqual(try wl(["config", "get", "gate.max-l1"]).stdout, "5\n")
        try setElements(dir, [0: 10, 7: 70])   // −0.0 → 10: Σ|ΔW| 73
        var r = try wl(["gate"])
        XCTAssertEqual(r.status, 1, r.stdout + r.stderr)
        XCTAssertTrue(r.stderr.contains("Σ|ΔW| 73 > gate.max-l1 5"), r.stderr)
        // The gate reads only gate.*: a bad health key does not stop it; a limit it exceeds by
        // little is printed with the digits that show it.
        try "[health]\n\tthreads = 0\n[gate]\n\tmax-l1 = 72.99\n".write(toFile: dir + "/.wledger/config", atomically: true, encoding: .utf8)
        r = try wl(["gate"])
        XCTAssertEqual(r.status, 1, r.stdout + r.stderr)
        XCTAssertTrue(r.stderr.contains("Σ|ΔW| 73 > gate.max-l1 72.99"), r.stderr)
        try "".write(toFile: dir + "/.wledger/config", atomically: true, encoding: .utf8)

        // Two edits of w; reverting the first (not HEAD) gives back −0.0 exactly where the
        // second left its element alone (x + (−x) is +0 in float64).
        XCTAssertEqual(try wl(["commit", "-q", "-m", "one"]).status, 0)
        try setElements(dir, [9: 90])
        XCTAssertEqual(try wl(["commit", "-q", "-m", "two"]).status, 0)
        XCTAssertEqual(try wl(["revert", "-q", "HEAD~1"]).status, 0)
        let bytes = try readTensorBytes(file: dir + "/model.safetensors", tensor: "w")
        XCTAssertEqual(Array(bytes[0..<4]), [0, 0, 0, 0x80], "−0.0's bits")
        XCTAssertEqual(bytes[28..<32].withUnsafeBytes { $0.loadUnaligned(as: Float.self) }, 7)

        // `hooks disable SAMPLE` removes that sample only, not the user's own hook there, nor a directory.
        try hook(dir, "pre-commit", "#!/bin/sh\n# mine\nexit 0\n")
        r = try wl(["hooks", "disable", "pre-commit-gate"])
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("is not the pre-commit-gate sample"), r.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/.wledger/hooks/pre-commit"))
        XCTAssertEqual(try wl(["hooks", "enable", "--force", "pre-commit-gate"]).status, 0)
        XCTAssertEqual(try wl(["hooks", "disable", "pre-commit-gate"]).status, 0)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/.wledger/hooks/pre-commit"))
        try FileManager.default.createDirectory(atPath: dir + "/.wledger/hooks/pre-commit", withIntermediateDirectories: false)
        r = try wl(["hooks", "disable", "pre-commit"])
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/.wledger/hooks/pre-commit"), "the directory stays")
        try FileManager.default.removeItem(atPath: dir + "/.wledger/hooks/pre-commit")

        // bisect: with no revision, good/bad mark HEAD (as git), not the candidate; bisect run
        // stops on a command that is not there (exit 127 read as "bad" named a wrong commit).
        let head = try commitID("HEAD"), one = try commitID("HEAD~2")
        XCTAssertEqual(try wl(["bisect", "start", "HEAD", "base"]).status, 0)
        XCTAssertEqual(try wl(["checkout", "-q", one]).status, 0)
        XCTAssertEqual(try wl(["bisect", "good"]).status, 0)
        let marked = try wl(["bisect", "log"]).stdout
        XCTAssertTrue(marked.contains("bisect good \(one)"), marked)
        r = try wl(["bisect", "run", "no-such-command-here"])
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("exited with 127 (command not found)"), r.stderr)
        XCTAssertFalse(try wl(["bisect", "log"]).stdout.contains("first bad"), "no verdict recorded")
        XCTAssertEqual(try wl(["bisect", "reset", "-q"]).status, 0)
        XCTAssertEqual(try commitID("HEAD"), head)
        // A bisect log written with CRLF replays.
        XCTAssertEqual(try wl(["bisect", "start", "HEAD", "base"]).status, 0)
        let log = try wl(["bisect", "log"]).stdout.replacingOccurrences(of: "\n", with: "\r\n")
        XCTAssertEqual(try wl(["bisect", "reset", "-q"]).status, 0)
        try log.write(toFile: tmp.path + "/bisect.log", atomically: true, encoding: .utf8)
        r = try wl(["bisect", "replay", tmp.path + "/bisect.log"])
        XCTAssertEqual(r.status, 0, r.stderr)
    }
}
