import TensorIO
import XCTest

final class JSONParserTests: XCTestCase {
    func p(_ s: String) throws -> JSONValue { try JSONParser.parse(Array(s.utf8)) }

    func testParsesValuesKeepingKeyOrder() throws {
        let v = try p(#" {"b": [1, -2.5e3, true, null], "a": "x\u00e9\n\ud83d\ude00"} "#)
        XCTAssertEqual(v.objectValue?.map(\.0), ["b", "a"])
        XCTAssertEqual(v["b"], .array([.int(1), .double(-2500), .bool(true), .null]))
        XCTAssertEqual(v["a"]?.stringValue, "xé\n😀")
    }

    func testRejectsMalformedDocuments() {
        for bad in ["", "{", #"{"a":1,}"#, "[1 2]", "01", "1.", "-", #"{"a":1}x"#, #""\ud800""#, "tru", #"{"a" 1}"#, "\"a\u{1}\""] {
            XCTAssertThrowsError(try p(bad), bad)
        }
        XCTAssertThrowsError(try p(String(repeating: "[", count: 100) + String(repeating: "]", count: 100))) { e in
            XCTAssertTrue("\(e)".contains("nested deeper"))
        }
    }

    func testSerializationRoundTrips() throws {
        let text = #"{"x":[1,2.5,"q\"uote"],"y":{"z":null}}"#
        XCTAssertEqual(try p(text).serialized(), text)
    }
}
