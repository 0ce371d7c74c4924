import Foundation
import TensorIO
import XCTest

final class ConversionTests: XCTestCase {
    /// Every one of the 65,536 half-precision bit patterns decodes exactly as Swift's Float16 does.
    func testF16DecodeMatchesSwiftForAllBitPatterns() {
        let bits = (0...UInt16.max).map { $0 }
        var out = [Float](repeating: 0, count: bits.count)
        bits.withUnsafeBytes { b in out.withUnsafeMutableBufferPointer { decodeToFloat(b, dtype: .f16, into: $0) } }
        for (i, b) in bits.enumerated() {
            let ref = Float(Float16(bitPattern: b))
            if ref.isNaN { XCTAssertTrue(out[i].isNaN, "bits \(b)") } else { XCTAssertEqual(out[i].bitPattern, ref.bitPattern, "bits \(b)") }
        }
    }

    /// Encoding to half rounds to nearest even exactly like Swift's Float16(Float), including
    /// subnormals, overflow to infinity and values exactly halfway between two halves.
    func testF16EncodeMatchesSwift() {
        var rng = SystemRandomNumberGenerator()
        var values: [Float] = [0, -0, 1, -1, 65504, 65519.99, 65520, 1e-8, 5.96e-8, 2.98e-8, 2.9802322e-8, 6.1e-5, .infinity, -.infinity, 1 / 3]
        // Halfway cases between consecutive halves.
        for b in stride(from: UInt16(0), to: 0x7BFF, by: 97) {
            let lo = Float(Float16(bitPattern: b)), hi = Float(Float16(bitPattern: b + 1))
            values.append((lo + hi) / 2)
        }
        for _ in 0..<20000 { values.append(Float(bitPattern: UInt32.random(in: 0...UInt32.max, using: &rng))) }
        values = values.filter { !$0.isNaN }
        var out = [UInt8](repeating: 0, count: values.count * 2)
        values.withUnsafeBufferPointer { v in out.withUnsafeMutableBytes { encodeFromFloat(v, dtype: .f16, into: $0) } }
        for (i, v) in values.enumerated() {
            let got = UInt16(out[2 * i]) | UInt16(out[2 * i + 1]) << 8
            XCTAssertEqual(got, Float16(v).bitPattern, "value \(v)")
        }
    }

    /// BF16 encode is round-to-nearest-even of the top 16 bits (reference written separately in
    /// double arithmetic) and decode is exact.
    func testBF16RoundTripAndRounding() {
        var rng = SystemRandomNumberGenerator()
        var values: [Float] = [1, -2.5, 3.0e38, Float(bitPattern: 0x0001_2345), .infinity]
        for _ in 0..<20000 { values.append(Float.random(in: -10...10, using: &rng)) }
        var out = [UInt8](repeating: 0, count: values.count * 2)
        values.withUnsafeBufferPointer { v in out.withUnsafeMutableBytes { encodeFromFloat(v, dtype: .bf16, into: $0) } }
        var back = [Float](repeating: 0, count: values.count)
        out.withUnsafeBytes { o in back.withUnsafeMutableBufferPointer { decodeToFloat(o, dtype: .bf16, into: $0) } }
        for (i, v) in values.enumerated() where v.isFinite && abs(v) < 3e38 {
            // Reference: the two bf16 neighbours of v, pick the nearer (even on ties).
            let down = Float(bitPattern: v.bitPattern & 0xFFFF_0000)
            let up = Float(bitPattern: (v.bitPattern & 0xFFFF_0000) &+ 0x1_0000)
            let dd = abs(Double(v) - Double(down)), du = abs(Double(up) - Double(v))
            let expect = dd < du ? down : (du < dd ? up : ((down.bitPattern >> 16) & 1 == 0 ? down : up))
            XCTAssertEqual(back[i].bitPattern, expect.bitPattern, "value \(v)")
        }
        // NaN stays NaN (quiet).
        var nan: [Float] = [Float(bitPattern: 0x7F80_0001)]
        var nb = [UInt8](repeating: 0, count: 2)
        nan.withUnsafeBufferPointer { v in nb.withUnsafeMutableBytes { encodeFromFloat(v, dtype: .bf16, into: $0) } }
        nb.withUnsafeBytes { o in nan.withUnsafeMutableBufferPointer { decodeToFloat(o, dtype: .bf16, into: $0) } }
        XCTAssertTrue(nan[0].isNaN)
    }

    func testCountNonFinite() {
        let v: [Float] = [1, .nan, .infinity, -.infinity, 0]
        XCTAssertEqual(v.withUnsafeBytes { countNonFinite($0, dtype: .f32) }, 3)
    }

    /// 8-bit floats against the OCP FP8 tables (E4M3 as float8_e4m3fn: max 448, no Inf; E5M2
    /// IEEE-like: max 57344, Inf; E8M0: 2^(e−127)), and every byte against an independent
    /// decoding through the bits of a Double.
    func testEightBitFloats() {
        let known: [(UInt8, DType, Double)] = [
            (0x38, .f8e4m3, 1), (0xB8, .f8e4m3, -1), (0x7E, .f8e4m3, 448), (0x01, .f8e4m3, 0x1p-9), (0x08, .f8e4m3, 0x1p-6),
            (0x3C, .f8e5m2, 1), (0x7B, .f8e5m2, 57344), (0x01, .f8e5m2, 0x1p-16), (0x7C, .f8e5m2, .infinity), (0xFC, .f8e5m2, -.infinity),
            (0x7F, .f8e8m0, 1), (0x80, .f8e8m0, 2), (0x00, .f8e8m0, 0x1p-127),
        ]
        for (b, t, v) in known { XCTAssertEqual(decodeF8(b, t), v, "\(t.rawValue) 0x\(String(b, radix: 16))") }
        for (b, t) in [(UInt8(0x7F), DType.f8e4m3), (0xFF, .f8e4m3), (0x7D, .f8e5m2), (0xFE, .f8e5m2), (0xFF, .f8e8m0)] {
            XCTAssertTrue(decodeF8(b, t).isNaN, "\(t.rawValue) 0x\(String(b, radix: 16))")
        }
        // Normal numbers: exponent field e and mantissa m placed into a Double's bits.
        func reference(_ b: UInt8, expBits: Int, manBits: Int, bias: Int) -> Double {
            let e = Int(b >> manBits) & ((1 << expBits) - 1), m = UInt64(b) & ((1 << manBits) - 1)
            let magnitude = e == 0 ? Double(m) * pow(2, Double(1 - bias - manBits))
                : Double(bitPattern: (UInt64(e - bias + 1023) << 52) | (m << (52 - manBits)))
            return b & 0x80 != 0 ? -magnitude : magnitude
        }
        for b in UInt8.min...UInt8.max {
            if b & 0x7F != 0x7F { XCTAssertEqual(decodeF8(b, .f8e4m3), reference(b, expBits: 4, manBits: 3, bias: 7)) }
            if b & 0x7C != 0x7C { XCTAssertEqual(decodeF8(b, .f8e5m2), reference(b, expBits: 5, manBits: 2, bias: 15)) }
        }
        let bytes: [UInt8] = [0x38, 0x7F, 0xFF, 0x7E]
        XCTAssertEqual(bytes.withUnsafeBytes { countNonFinite($0, dtype: .f8e4m3) }, 2)
        XCTAssertEqual([UInt8]([0x3C, 0x7C, 0x7D, 0xFC]).withUnsafeBytes { countNonFinite($0, dtype: .f8e5m2) }, 3)
        XCTAssertEqual([UInt8]([0x7F, 0xFF]).withUnsafeBytes { countNonFinite($0, dtype: .f8e8m0) }, 1)
    }
}
