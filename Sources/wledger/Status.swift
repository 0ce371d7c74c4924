import ArgumentParser
import WLedgerKit

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show which tensors and files differ from HEAD.",
        discussion: """
            Files whose size, mtime, ctime and inode match the last commit or checkout are not rehashed; \
            the others are fingerprinted tensor by tensor (XXH3-128) and compared with HEAD.

            Example: wledger status --json
            """)

    @OptionGroup var global: GlobalOptions
    @Flag(help: "Ignore recorded file stats and hash every tensor.") var rehash = false
    @Flag(help: "Print the result as JSON.") var json = false

    func run() throws {
        let repo = try global.openRepository(forWriting: false)
        let r = try repo.status(rehash: rehash, progress: global.progress)
        if json { return try printJSON(r) }
        print(r.branch.map { "On branch \($0)" } ?? "HEAD detached at \(short(r.head))")
        if r.clean { print("nothing to commit, work tree clean"); return }
        if !r.structural.isEmpty {
            print("Structural changes (cannot be committed):")
            for s in r.structural { print("  \(s)") }
        }
        if !r.modifiedTensors.isEmpty || !r.modifiedHeaders.isEmpty || !r.sideFiles.isEmpty {
            print("Changes not committed:")
            for t in r.modifiedTensors { print("  modified tensor: \(t.name)  (\(t.file))") }
            for h in r.modifiedHeaders { print("  modified header: \(h)") }
            for f in r.sideFiles { print("  \(f.change.rawValue):\(String(repeating: " ", count: max(1, 16 - f.change.rawValue.count)))\(f.path)") }
        }
    }
}
