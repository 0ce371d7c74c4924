import ArgumentParser
import WLedgerKit

struct Init: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Start tracking a model directory: snapshot its base weights losslessly.",
        discussion: """
            Creates .wledger/ in the model directory and stores every tensor (byte-plane shuffled, zstd), \
            the exact safetensors headers and the side files (config.json, tokenizer.json, ...).

            Example: wledger init -C models/smollm2-135m/f32
            """)

    @OptionGroup var global: GlobalOptions
    @Option(name: .shortAndLong, help: "Message of the base commit.") var message = "base"
    @Option(help: "Author of the base commit (default: $WLEDGER_AUTHOR or $USER).") var author: String?
    @Flag(help: "Snapshot tensors that contain NaN or Inf.") var allowNonfinite = false
    @Flag(help: "Print the result as JSON.") var json = false

    func run() throws {
        var policy = SnapshotPolicy()
        policy.allowNonFinite = allowNonfinite
        let message = try cleanedMessage(self.message)!
        try refuseEmptyField(author, option: "--author")
        let r = try Repository.initialize(at: global.directory, message: message, author: author, policy: policy, progress: global.progress)
        if json { return try printJSON(r) }
        if global.quiet { return }   // as git init -q
        let ratio = r.rawBytes > 0 ? Double(r.storedBytes) / Double(r.rawBytes) : 0
        print("Initialized wledger in \(r.root)/.wledger")
        print("base \(short(r.commit)): \(r.tensors) tensors, \(r.files) files, \(humanBytes(r.rawBytes)) stored as \(humanBytes(r.storedBytes)) (\(String(format: "%.3f", ratio))×)")
    }
}
