import Foundation

/// A value computed on a thread of its own while the caller does other work; `wait` returns it
/// (or rethrows its error).
///
/// Not a global-queue job: Dispatch runs as many of those at once as there are cores, so one
/// queued behind a `concurrentPerform` (the work-tree hashing) would not start until that ended,
/// which is exactly what a commit's early encodings must not wait for. A thread of its own
/// shares the cores with whatever runs.
///
/// The closure must only read values the caller leaves unchanged until `wait` returns (buffers
/// it borrowed, copies of arrays); that is what makes the unchecked `Sendable` safe.
public final class Background<T>: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private let lock = NSLock()
    private var result: Result<T, Error>?
    private var waited = false

    public init(_ work: @escaping () throws -> T) {
        let job = Job(work: work)
        Thread.detachNewThread {
            self.result = Result { try job.work() }
            self.done.signal()
        }
    }

    /// Blocks until the value is ready; later calls return it at once. A caller whose closure
    /// borrowed memory waits (`defer { _ = try? task.wait() }`) before that memory goes away,
    /// on every path out.
    public func wait() throws -> T {
        lock.lock()
        defer { lock.unlock() }
        if !waited {
            done.wait()
            waited = true
        }
        return try result!.get()
    }

    private struct Job: @unchecked Sendable {
        let work: () throws -> T
    }
}
