import Foundation
import TensorIO
import TestSupport
import XCTest

/// `MappedFile.dropPages`: the page-table entries of the map go (the mapping's resident size in
/// /proc/self/smaps falls to zero once every slice is dropped) and the map reads the same bytes
/// afterwards. The file is not a whole number of pages, so the last slice ends mid-page.
final class MappedFileTests: XCTestCase {
    func testDroppedSlicesLeaveNothingResidentAndReadTheSame() throws {
        let tmp = try TemporaryDirectory("mapped")
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let bytes = (0..<(37 * page + 123)).map { UInt8(truncatingIfNeeded: $0 &* 2654435761 >> 7) }
        let path = tmp.path + "/data.bin"
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let map = try MappedFile(path: path)
        XCTAssertEqual(Array(map.bytes), bytes)   // every page is now mapped
        let full = try residentKiB(of: map)
        XCTAssertEqual(full, (38 * page) / 1024)
        map.dropPages(part: 1, of: 3)
        let afterOne = try residentKiB(of: map)
        XCTAssertLessThan(afterOne, full)
        XCTAssertGreaterThan(afterOne, 0)
        map.dropPages(part: 0, of: 3)
        map.dropPages(part: 2, of: 3)
        XCTAssertEqual(try residentKiB(of: map), 0)
        XCTAssertEqual(Array(map.bytes), bytes)
        XCTAssertEqual(try residentKiB(of: map), full)
        map.dropPages()
        XCTAssertEqual(try residentKiB(of: map), 0)
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
