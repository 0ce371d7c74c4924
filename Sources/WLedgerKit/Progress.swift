import Foundation

/// Progress and notices on stderr. Progress bars appear only on a TTY and never with `quiet`;
/// notices (like "waiting for lock") appear unless `quiet`.
public final class ProgressReporter: @unchecked Sendable {
    public let quiet: Bool
    public let isTTY: Bool
    private let lock = NSLock()
    private var label = ""
    private var total = 0
    private var done = 0
    private var lastDraw: UInt64 = 0
    private var drawn = false

    public init(quiet: Bool, isTTY: Bool = isatty(2) != 0) {
        self.quiet = quiet
        self.isTTY = isTTY
    }

    /// A reporter that prints nothing.
    public static let silent = ProgressReporter(quiet: true, isTTY: false)

    public var showsBars: Bool { !quiet && isTTY }

    /// Starts a counted phase.
    public func start(_ label: String, total: Int) {
        lock.lock(); defer { lock.unlock() }
        self.label = label; self.total = total; done = 0; lastDraw = 0
        draw(force: true)
    }

    /// Adds `n` to the current phase.
    public func advance(_ n: Int = 1) {
        lock.lock(); defer { lock.unlock() }
        done += n
        draw(force: done >= total)
    }

    /// Ends the current phase.
    public func finish() {
        lock.lock(); defer { lock.unlock() }
        if drawn && showsBars { FileHandle.standardError.write("\n".data(using: .utf8)!) }
        drawn = false
    }

    /// A one-line notice on stderr (unless quiet).
    public func message(_ text: String) {
        guard !quiet else { return }
        lock.lock(); defer { lock.unlock() }
        if drawn && showsBars { FileHandle.standardError.write("\n".data(using: .utf8)!); drawn = false }
        FileHandle.standardError.write((text + "\n").data(using: .utf8)!)
    }

    /// A line naming a long step about to start, shown where progress bars are (a TTY, not
    /// quiet): progress, not a notice.
    public func phase(_ text: String) {
        if showsBars { message(text) }
    }

    private func draw(force: Bool) {
        guard showsBars else { return }
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        let now = UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
        guard force || now - lastDraw > 100_000_000 else { return }
        lastDraw = now
        let pct = total > 0 ? done * 100 / total : 100
        FileHandle.standardError.write("\r\(label): \(pct)% (\(done)/\(total))\u{1B}[K".data(using: .utf8)!)
        drawn = true
    }
}
