import LinAlg
import Ops
import TensorIO
import XCTest

final class RestrainTests: XCTestCase {
    /// A matrix σ1·u1·v1ᵀ + σ2·u2·v2ᵀ with orthonormal u's and v's.
    func rankTwo(m: Int, n: Int, s1: Double, s2: Double) -> Matrix {
        let q = try! BLAS.orthonormalColumns(Matrix.gaussian(rows: m, cols: 2, seed: 1))
        let p = try! BLAS.orthonormalColumns(Matrix.gaussian(rows: n, cols: 2, seed: 2))
        var a = Matrix(zeros: m, n)
        for i in 0..<m { for j in 0..<n { a[i, j] = s1 * q[i, 0] * p[j, 0] + s2 * q[i, 1] * p[j, 1] } }
        return a
    }

    func testRestrainedSingularValuesFollowTheFormula() throws {
        for alpha in [M_E, 2, 1.5, 1.2] {
            let dw = rankTwo(m: 60, n: 45, s1: 10, s2: 1.5)
            let r = try Restrain.correction(delta: dw, sigmaMaxBase: 2, alpha: alpha)
            var out = dw
            for i in 0..<out.data.count { out.data[i] += r.correction.data[i] }
            let s = try BLAS.singularValues(out.data, rows: 60, cols: 45)
            // α = 1.2 with σmax(W_base) = 2 (2·ln 1.2 < 1): the formula gives 10.83, above σ = 10,
            // which stays.
            let expected = min(10, log(10.0) / log(alpha) - log(2.0) / log(alpha) + 2)
            XCTAssertEqual(s[0], expected, accuracy: 1e-10, "alpha \(alpha)")
            if alpha == 1.2 { XCTAssertEqual(s[0], 10, accuracy: 1e-10) } else { XCTAssertLessThan(s[0], 9) }
            XCTAssertEqual(s[1], 1.5, accuracy: 1e-10)       // below σmax(W_base): unchanged
            XCTAssertEqual(s[2], 0, accuracy: 1e-10)
            // α = 1.2 lowers nothing here, so nothing is reported as restrained.
            XCTAssertEqual(r.before.count, alpha == 1.2 ? 0 : 1)
            if alpha != 1.2 { XCTAssertEqual(r.before[0], 10, accuracy: 1e-10) }
            XCTAssertEqual(r.method, "randomized")
        }
        XCTAssertEqual(Restrain.restrained(1.9, sigmaMaxBase: 2, alpha: M_E), 1.9)
        XCTAssertEqual(Restrain.restrained(2, sigmaMaxBase: 2, alpha: M_E), 2)   // σ = σmax maps to itself
        // Where σmax·ln α < 1 the formula exceeds σ just above σmax: σ stays (it is never raised).
        XCTAssertGreaterThan(log(4 / 3.443) / log(1.2) + 3.443, 4.2)
        XCTAssertEqual(Restrain.restrained(4, sigmaMaxBase: 3.443, alpha: 1.2), 4)
        XCTAssertEqual(Restrain.restrained(4, sigmaMaxBase: 3.443, alpha: 1 + 0x1p-52), 4)
        XCTAssertEqual(Restrain.restrained(40, sigmaMaxBase: 3.443, alpha: 1.2), log(40 / 3.443) / log(1.2) + 3.443, accuracy: 1e-12)
        XCTAssertLessThan(Restrain.restrained(40, sigmaMaxBase: 3.443, alpha: 1.2), 40)
    }

    func testFastPathMatchesFullSVD() throws {
        var a = Matrix(zeros: 300, 200)
        for k in 0..<5 {
            let u = Matrix.gaussian(rows: 300, cols: 1, seed: UInt64(10 + k)), v = Matrix.gaussian(rows: 200, cols: 1, seed: UInt64(20 + k))
            for i in 0..<300 { for j in 0..<200 { a[i, j] += Double(k + 1) * u.data[i] * v.data[j] } }
        }
        let fast = try BLAS.lowRankSVD(a, tolerance: 1e-9)
        let full = try BLAS.lowRankSVD(a, tolerance: 1e-9, forceFull: true)
        XCTAssertEqual(fast.method, "randomized")
        XCTAssertEqual(full.method, "full")
        XCTAssertLessThanOrEqual(fast.residual, 1e-9)
        for i in 0..<5 { XCTAssertEqual(fast.s[i], full.s[i], accuracy: 1e-9 * full.s[0]) }
        XCTAssertLessThan(fast.s[5], 1e-9)
        // A full-rank matrix falls back to the full SVD.
        let noise = Matrix.gaussian(rows: 80, cols: 60, seed: 3)
        XCTAssertEqual(try BLAS.lowRankSVD(noise, tolerance: 1e-6).method, "full")
    }
}

final class RECTTests: XCTestCase {
    func testKeepsTopElementsByRelativeChangeWithDeterministicTies() {
        let base: [Double] = [1, 2, 0, 4, 1, 1, -1, 10]
        let dw: [Double] = [0.5, 0.5, 0.01, 0, 0.5, -0.2, 0.1, 5]
        // δ: 0.5, 0.25, huge (W = 0), 0, 0.5, 0.2, 0.1, 0.5
        XCTAssertEqual(RECT.keep(base: base, delta: dw, percent: 25, by: .relative), [0, 2])           // ⌈2⌉: huge, then 0.5 at lowest index
        XCTAssertEqual(RECT.keep(base: base, delta: dw, percent: 50, by: .relative), [0, 2, 4, 7])
        XCTAssertEqual(RECT.keep(base: base, delta: dw, percent: 30, by: .relative), [0, 2, 4])       // ⌈2.4⌉ = 3
        XCTAssertEqual(RECT.keep(base: base, delta: dw, percent: 100, by: .relative).count, 7)        // unchanged element never kept
        XCTAssertEqual(RECT.keep(base: base, delta: dw, percent: 25, by: .magnitude), [0, 7])         // 5, then 0.5 at index 0
        XCTAssertEqual(RECT.keptCount(total: 10, changed: 10, percent: 40), 4)
        XCTAssertEqual(RECT.keptCount(total: 11, changed: 11, percent: 40), 5)
        XCTAssertEqual(RECT.keptCount(total: 100, changed: 3, percent: 40), 3)
        // A NaN on either side ranks first (with the infinite scores, ties by index), wherever it is.
        let nanBase: [Double] = [1, .nan, 1, 1, 0], nanDelta: [Double] = [0.5, 0.1, 0.9, .nan, 1e-30]
        XCTAssertEqual(RECT.keep(base: nanBase, delta: nanDelta, percent: 60, by: .relative), [1, 3, 4])
        XCTAssertEqual(RECT.keep(base: nanBase, delta: nanDelta, percent: 40, by: .magnitude), [2, 3])
    }

    /// The row and column norms that set the rounding-noise floor stay finite and nonzero for
    /// F64 values whose squares leave a double's range (1e300, 1e-300).
    func testLargestRowAndColumnNormsOfHugeAndTinyValues() {
        for magnitude in [1e300, 1e-300, 1.0] {
            // Rows [3, 4] and [0, 12] times the magnitude: row norms 5 and 12, columns 3 and 12.65.
            let norms = TensorMath.largestRowAndColumnNorms([3, 4, 0, 12].map { $0 * magnitude }, rows: 2, cols: 2)
            XCTAssertEqual(norms.row / magnitude, 12, accuracy: 1e-12, "\(magnitude)")
            XCTAssertEqual(norms.column / magnitude, (16.0 + 144).squareRoot(), accuracy: 1e-12, "\(magnitude)")
        }
    }

    func testRelativeChangeIsNeverNaN() {
        XCTAssertEqual(RelativeChange.delta(0, base: 0), 0)
        XCTAssertTrue(RelativeChange.delta(1e-30, base: 0).isFinite)
        XCTAssertGreaterThan(RelativeChange.delta(1e-30, base: 0), 1e6)
        let s = RelativeChange.summarize(base: [1, 1, 1, 0, 2, 1, 1, 1, 1, 1], delta: [0.1, 0.2, 0, 0, 0.1, 0, 0, 0, 0, 0.05])
        XCTAssertEqual(s.shares.map(\.fraction), [0.2, 0.1])    // δ > 0.077: 0.1, 0.2 ; > 0.171: 0.2
        XCTAssertEqual(s.median, 0)
        XCTAssertEqual(s.p90, 0.1)
        XCTAssertEqual(s.p99, 0.2)
    }

    func testRelativeChangeSummaryOfNonFiniteWeightsIsNaN() {
        // A NaN or Inf on either side makes those δ NaN: the summary says NaN, not "unchanged".
        for (base, dw) in [([1, .nan, 1], [0.5, 0.5, 0]), ([1, 1, 1], [0.5, .nan, 0]), ([1, .infinity, 1], [0.5, -.infinity, 0]),
                          ([1, 2], [0, .infinity])] as [([Double], [Double])] {   // the new side +Inf: δ = inf/2, not NaN, before
            let s = RelativeChange.summarize(base: base, delta: dw)
            XCTAssertTrue(s.shares.allSatisfy { $0.fraction.isNaN }, "\(base) \(dw): \(s)")
            XCTAssertEqual(s.shares.map(\.threshold), RelativeChange.defaultThresholds)
            XCTAssertTrue(s.median.isNaN && s.p90.isNaN && s.p99.isNaN)
        }
        // An infinite δ is not NaN: a finite change of a finite weight keeps its shares.
        XCTAssertEqual(RelativeChange.summarize(base: [1, 2], delta: [1, 0]).shares.map(\.fraction), [0.5, 0.5])
    }
}

final class SphereTests: XCTestCase {
    func testProjectionShrinksUpdatesAlongDominantInputDirections() throws {
        // 15 base rows point along input axis 0 and 5 along axis 1 (scaled; rows get normalized):
        // ŴᵀŴ has eigenvectors e0 (75% of the energy) and e1 (25%), so η = 0.5 keeps U = e0.
        var base = Matrix(zeros: 20, 6)
        for i in 0..<20 { base[i, i < 15 ? 0 : 1] = Double(i + 1) }
        var dw = Matrix(zeros: 20, 6)
        for i in 0..<20 { dw[i, 0] = 1; dw[i, 3] = 1 }
        let r = try Sphere.correction(base: base, delta: dw, eta: 0.5, beta: 0.5)
        XCTAssertEqual(r.directions, 1)
        XCTAssertEqual(r.energy, 0.75, accuracy: 1e-12)
        for i in 0..<20 {
            XCTAssertEqual(dw[i, 0] + r.correction[i, 0], 0.5, accuracy: 1e-9)   // halved along e0
            XCTAssertEqual(dw[i, 3] + r.correction[i, 3], 1, accuracy: 1e-9)     // orthogonal: untouched
        }
    }
}

/// `TensorMath.bytes` rounds a double to BF16 and F16 once, to nearest even, checked against a
/// reference written here that picks the nearer of the two neighbouring values of the narrow
/// format by exact double arithmetic (a difference of two doubles within a factor of two of each
/// other is exact), ties to the even one. The inputs sit on, just above and just below the
/// midpoints between neighbours, where rounding to float32 first and then to nearest again
/// went the wrong way.
final class RoundingTests: XCTestCase {
    func testRoundsOnceToNearestEvenAtMidpoints() {
        let formats: [(dtype: DType, decode: (UInt16) -> Double)] = [
            (.bf16, { Double(Float(bitPattern: UInt32($0) << 16)) }),
            (.f16, { Double(Float16(bitPattern: $0)) }),
        ]
        for (dtype, decode) in formats {
            var values: [Double] = []
            var rng = SystemRandomNumberGenerator()
            // Positive finite encodings below the largest (its upper neighbour is ∞), both signs,
            // normal and subnormal.
            let top: UInt16 = dtype == .bf16 ? 0x7F7E : 0x7BFE
            var encodings: [UInt16] = [0, 1, 2, 0x3F, 0x40, 0x3FF, 0x400, top]
            for _ in 0..<3000 { encodings.append(UInt16.random(in: 0...top, using: &rng)) }
            for b in encodings {
                let lo = decode(b), hi = decode(b + 1), mid = lo + (hi - lo) / 2
                for v in [mid, mid.nextUp, mid.nextDown, mid + (hi - lo) / 1e6, mid - (hi - lo) / 1e6, lo, hi] {
                    values.append(v)
                    values.append(-v)
                }
            }
            func reference(_ v: Double) -> UInt16 {
                let sign: UInt16 = v.sign == .minus ? 0x8000 : 0
                let m = abs(v)
                // The largest encoding not above m, by bisection over the ordered encodings.
                var lo: UInt16 = 0, hi: UInt16 = dtype == .bf16 ? 0x7F7F : 0x7BFF
                while lo < hi {
                    let mid = lo + (hi - lo + 1) / 2
                    if decode(mid) <= m { lo = mid } else { hi = mid - 1 }
                }
                let below = decode(lo), above = decode(lo + 1)
                if below == m { return sign | lo }
                let down = m - below, up = above - m
                if down < up || (down == up && lo & 1 == 0) { return sign | lo }
                return sign | (lo + 1)
            }
            let got = TensorMath.bytes(values, dtype: dtype)
            var wrong = 0
            for (i, v) in values.enumerated() {
                let bits = UInt16(got[2 * i]) | UInt16(got[2 * i + 1]) << 8
                if bits != reference(v) {
                    wrong += 1
                    if wrong <= 5 { XCTFail("\(dtype.rawValue) \(v): got \(String(bits, radix: 16)), expected \(String(reference(v), radix: 16))") }
                }
            }
            XCTAssertEqual(wrong, 0, "\(dtype.rawValue): \(values.count) values")
        }
        // Round to odd: exact values stay, others get the last bit set toward zero.
        XCTAssertEqual(TensorMath.roundedToOdd(1.5), 1.5)
        XCTAssertEqual(TensorMath.roundedToOdd(1 + 0x1p-30), Float(bitPattern: Float(1).bitPattern | 1))
        XCTAssertEqual(TensorMath.roundedToOdd(-(1 + 0x1p-30)), -Float(bitPattern: Float(1).bitPattern | 1))
        XCTAssertEqual(TensorMath.roundedToOdd((1 + 0x1p-23).nextDown), Float(bitPattern: Float(1).bitPattern | 1))
        XCTAssertEqual(TensorMath.roundedToOdd(0x1p-160), Float.leastNonzeroMagnitude)
        XCTAssertEqual(TensorMath.roundedToOdd(.infinity), .infinity)
        XCTAssertTrue(TensorMath.roundedToOdd(.nan).isNaN)
    }
}
