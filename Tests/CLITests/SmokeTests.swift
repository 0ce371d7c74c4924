import TestSupport
import XCTest

final class SmokeTests: XCTestCase {
    func testVersionRuns() throws {
        let r = try CLI.run(["--version"])
        XCTAssertEqual(r.status, 0)
        XCTAssertEqual(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "0.1.0")
    }
}
