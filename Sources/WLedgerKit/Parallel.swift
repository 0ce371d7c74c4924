import Foundation

/// Runs `body(0..<count)` on all cores; rethrows the first error (remaining items are skipped).
func parallelFor(_ count: Int, _ body: @Sendable (Int) throws -> Void) throws {
    let failure = FirstError()
    DispatchQueue.concurrentPerform(iterations: count) { i in
        guard !failure.isSet else { return }
        do { try body(i) } catch { failure.set(error) }
    }
    if let e = failure.error { throw e }
}

/// The first error reported by any thread.
final class FirstError: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: Error?
    var isSet: Bool { lock.lock(); defer { lock.unlock() }; return stored != nil }
    var error: Error? { lock.lock(); defer { lock.unlock() }; return stored }
    func set(_ e: Error) { lock.lock(); if stored == nil { stored = e }; lock.unlock() }
}

/// One result slot per work item, filled from any thread.
final class Slots<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [T?]
    init(_ count: Int) { items = Array(repeating: nil, count: count) }
    subscript(i: Int) -> T? {
        get { lock.lock(); defer { lock.unlock() }; return items[i] }
        set { lock.lock(); items[i] = newValue; lock.unlock() }
    }
    var values: [T?] { lock.lock(); defer { lock.unlock() }; return items }
}

/// A counter shared by threads: each `next()` returns the following integer, from 0.
final class SharedCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0
    func next() -> Int { lock.lock(); defer { lock.unlock() }; value += 1; return value - 1 }
}

/// How many threads a `threadedFor` loop may use at the moment; waiting workers are woken when
/// it changes, and let go for good once the loop has handed out its last item.
final class Throttle: @unchecked Sendable {
    private let condition = NSCondition()
    private var allowed: Int
    private var open = false

    init(_ allowed: Int) { self.allowed = max(1, allowed) }

    /// For a hashing that starts while the committing thread is still scanning: every core but
    /// that thread's.
    static func besideScan() -> Throttle { Throttle(ProcessInfo.processInfo.activeProcessorCount - 1) }

    /// How many threads are allowed now.
    var current: Int { condition.lock(); defer { condition.unlock() }; return allowed }

    func set(_ n: Int) {
        condition.lock()
        allowed = max(1, n)
        condition.broadcast()
        condition.unlock()
    }

    /// Lets every waiting and later worker through (nothing is left for them to take).
    func release() {
        condition.lock()
        open = true
        condition.broadcast()
        condition.unlock()
    }

    /// Blocks worker `k` (0-based) while fewer than k + 1 threads are allowed.
    func waitTurn(_ k: Int) {
        condition.lock()
        while k >= allowed && !open { condition.wait() }
        condition.unlock()
    }
}

/// Runs `body(0..<count)` on `threads` threads of its own (the calling one and new ones, not the
/// Dispatch pool, which stays free for other parallel loops), taking items in order; before each
/// item, worker k waits while `throttle` allows fewer than k + 1 threads. Rethrows the first
/// error (remaining items are skipped).
func threadedFor(_ count: Int, threads: Int, throttle: Throttle? = nil, _ body: @escaping @Sendable (Int) throws -> Void) throws {
    let failure = FirstError(), items = SharedCounter(), finished = DispatchGroup()
    let work: @Sendable (Int) -> Void = { k in
        while !failure.isSet {
            throttle?.waitTurn(k)
            let i = items.next()
            // The items are gone: a worker the throttle holds back has nothing to wait for (it
            // would otherwise keep the loop from returning until the throttle opened).
            guard i < count else { throttle?.release(); return }
            do { try body(i) } catch { failure.set(error) }
        }
    }
    let helpers = max(0, min(threads, count) - 1)
    for k in 0..<helpers {
        finished.enter()
        Thread.detachNewThread { work(k + 1); finished.leave() }
    }
    work(0)
    finished.wait()
    if let e = failure.error { throw e }
}
