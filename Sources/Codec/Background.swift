import Foundation

/// A value computed on a global-queue thread while the caller does other work; `wait` returns it
/// (or rethrows its error).
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
        DispatchQueue.global().async {
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
