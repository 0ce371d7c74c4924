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
