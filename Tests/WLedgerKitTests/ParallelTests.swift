import Foundation
@testable import WLedgerKit
import XCTest

/// `threadedFor` with a `Throttle`: every item runs once, and a worker the throttle holds back
/// takes no item until it is let through.
final class ParallelTests: XCTestCase {
    func testThreadedForRunsEveryItemOnceAndHonoursTheThrottle() throws {
        let throttle = Throttle(1)
        let seen = Slots<Int>(200)
        let threads = SharedThreads()
        let release = DispatchSemaphore(value: 0)
        // Item 0 waits until the test has checked that no second thread took an item meanwhile.
        let loop = Thread {
            try? threadedFor(200, threads: 3, throttle: throttle) { i in
                if i == 0 { release.wait() }
                threads.add(Thread.current.description)
                seen[i] = (seen[i] ?? 0) + 1
            }
        }
        loop.start()
        usleep(50_000)
        XCTAssertTrue(seen.values.allSatisfy { $0 == nil }, "with one thread allowed, nothing runs while item 0 waits")
        throttle.set(3)
        usleep(50_000)
        XCTAssertGreaterThan(seen.values.compactMap { $0 }.count, 0, "the other threads start once allowed")
        release.signal()
        while !loop.isFinished { usleep(1_000) }
        XCTAssertEqual(seen.values.map { $0 ?? 0 }, Array(repeating: 1, count: 200))
        XCTAssertGreaterThan(threads.count, 1)
    }

    /// Workers the throttle holds back return once the items are gone, without the throttle
    /// opening: the hashing of a commit ends when its last tensor is hashed, not when the
    /// encodings that hold the throttle down end.
    func testHeldBackWorkersReturnWhenTheItemsAreGone() {
        let throttle = Throttle(1), done = DispatchSemaphore(value: 0), seen = Slots<Int>(5)
        Thread.detachNewThread {
            try? threadedFor(5, threads: 3, throttle: throttle) { i in seen[i] = 1 }
            done.signal()
        }
        let finished = done.wait(timeout: .now() + 5)
        if finished == .timedOut { throttle.set(3) }   // do not leave the loop stuck after a failure
        XCTAssertEqual(finished, .success, "threadedFor waited for the throttle with nothing left to do")
        XCTAssertEqual(seen.values.map { $0 ?? 0 }, [1, 1, 1, 1, 1])
    }

    /// A commit's hashing gets the cores that neither the committing thread's own scan nor a
    /// running encoding holds, and at least one.
    func testEarlyEncodingsLendTheHashingTheCoresLeft() throws {
        let cores = ProcessInfo.processInfo.activeProcessorCount
        let early = EarlyEncodings(limit: 2)
        XCTAssertEqual(early.throttle.current, max(1, cores - 1), "the scan holds a core")
        let go = DispatchSemaphore(value: 0)
        early.start("a") { go.wait(); return nil }
        XCTAssertEqual(early.throttle.current, max(1, cores - 2), "the scan and one encoding")
        early.scanned()
        early.scanned()   // once only
        XCTAssertEqual(early.throttle.current, max(1, cores - 1), "one encoding")
        go.signal()
        XCTAssertNil(try early.result("a"))
        XCTAssertEqual(early.throttle.current, cores, "nothing else runs")
    }

    func testThreadedForRethrowsTheFirstError() {
        struct Boom: Error {}
        XCTAssertThrowsError(try threadedFor(50, threads: 2) { i in if i == 7 { throw Boom() } }) { XCTAssertTrue($0 is Boom) }
    }
}

private final class SharedThreads: @unchecked Sendable {
    private let lock = NSLock()
    private var names = Set<String>()
    func add(_ n: String) { lock.lock(); names.insert(n); lock.unlock() }
    var count: Int { lock.lock(); defer { lock.unlock() }; return names.count }
}
