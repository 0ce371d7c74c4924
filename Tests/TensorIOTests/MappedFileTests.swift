import Foundation
import TensorIO
import TestSupport
import XCTest

/// Hashing a mapped file with `pread` (`Fingerprint.of(_:range:throughMap: false)`, what it does
/// wherever the page cache holds small folios) leaves the map unfaulted: its resident size in
/// /proc/self/smaps is still zero after the whole file was hashed, and every page once the map
/// is read. The file is not a whole number of pages, so the last one ends mid-page.
final class MappedFileTests: XCTestCase {
    func testHashingWithPreadLeavesTheMapUnfaulted() throws {
        let tmp = try TemporaryDirectory("mapped")
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let bytes = (0..<(137 * page + 123)).map { UInt8(truncatingIfNeeded: $0 &* 2654435761 >> 7) }
        let path = tmp.path + "/data.bin"
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let map = try MappedFile(path: path)
        XCTAssertEqual(try residentKiB(of: map), 0)
        XCTAssertEqual(try Fingerprint.of(map, range: 0..<bytes.count, throughMap: false), Fingerprint.of(bytes))
        let inner = page..<(bytes.count - 5)
        XCTAssertEqual(try Fingerprint.of(map, range: inner, throughMap: false), Fingerprint.of(Array(bytes[inner])))
        XCTAssertEqual(try residentKiB(of: map), 0)
        XCTAssertEqual(Array(map.bytes), bytes)   // every page is now mapped
        XCTAssertEqual(try residentKiB(of: map), (138 * page) / 1024)
    }

    /// `readFile` of a file another thread keeps truncating and refilling (as a writer taking
    /// the repository lock rewrites `.wledger/lock` while a waiting process reads it) returns
    /// some of its contents; it read through a map before, which died of SIGBUS when the file
    /// shrank under it.
    func testReadFileOfAFileTruncatedMeanwhileDoesNotCrash() throws {
        let tmp = try TemporaryDirectory("truncated-read")
        let path = tmp.path + "/lock"
        let record = [UInt8](repeating: UInt8(ascii: "x"), count: 256 * 1024)
        try Data(record).write(to: URL(fileURLWithPath: path))
        let fd = open(path, O_RDWR)
        XCTAssertGreaterThanOrEqual(fd, 0)
        defer { close(fd) }
        let stop = ManagedAtomicFlag(), stopped = DispatchSemaphore(value: 0)
        let writer = Thread {
            while !stop.isSet {
                ftruncate(fd, 0)
                _ = record.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
            }
            stopped.signal()
        }
        writer.start()
        defer { stop.set(); stopped.wait() }   // before the descriptor is closed
        var reads = 0
        let until = Date().addingTimeInterval(1)
        while Date() < until {
            let bytes = try readFile(path)
            XCTAssertLessThanOrEqual(bytes.count, record.count)
            XCTAssertTrue(bytes.allSatisfy { $0 == UInt8(ascii: "x") })
            reads += 1
        }
        XCTAssertGreaterThan(reads, 10)
    }

    /// The `Rss` of the mapping that starts at the map's first byte (read line by line: procfs
    /// files report size 0, which whole-file readers may take at its word).
    private func residentKiB(of map: MappedFile) throws -> Int {
        let start = UInt(bitPattern: map.bytes.baseAddress)
        guard let f = fopen("/proc/self/smaps", "r") else { throw XCTSkip("no /proc/self/smaps") }
        defer { fclose(f) }
        var line: UnsafeMutablePointer<CChar>? = nil, capacity = 0
        defer { free(line) }
        var inMapping = false
        while getline(&line, &capacity, f) > 0, let line {
            let text = String(cString: line)
            if let dash = text.firstIndex(of: "-"), let a = UInt(text[..<dash], radix: 16) {
                inMapping = a == start
            } else if inMapping, text.hasPrefix("Rss:") {
                return Int(text.split(separator: " ")[1])!
            }
        }
        throw XCTSkip("mapping at \(String(start, radix: 16)) not found in /proc/self/smaps")
    }
}

/// A flag set once by one thread and read by another.
final class ManagedAtomicFlag: @unchecked Sendable {
    private var value = false
    private let lock = NSLock()
    var isSet: Bool { lock.lock(); defer { lock.unlock() }; return value }
    func set() { lock.lock(); value = true; lock.unlock() }
}
