#if canImport(Glibc)
import Glibc
#endif

/// A dense row-major matrix of doubles: (rows, cols), element (i, j) at `i * cols + j`.
public struct Matrix: Sendable, Equatable {
    public var rows: Int
    public var cols: Int
    public var data: [Double]

    public init(rows: Int, cols: Int, data: [Double]) {
        precondition(data.count == rows * cols, "matrix data has \(data.count) values, expected \(rows)×\(cols)")
        self.rows = rows; self.cols = cols; self.data = data
    }

    public init(zeros rows: Int, _ cols: Int) { self.init(rows: rows, cols: cols, data: [Double](repeating: 0, count: rows * cols)) }

    public subscript(i: Int, j: Int) -> Double {
        get { data[i * cols + j] }
        set { data[i * cols + j] = newValue }
    }

    public var transposed: Matrix {
        var t = Matrix(zeros: cols, rows)
        for i in 0..<rows { for j in 0..<cols { t.data[j * rows + i] = data[i * cols + j] } }
        return t
    }

    /// ‖A‖F.
    public var frobeniusNorm: Double { data.reduce(0) { $0 + $1 * $1 }.squareRoot() }

    /// Column `j` as an array.
    public func column(_ j: Int) -> [Double] { (0..<rows).map { data[$0 * cols + j] } }

    /// The first `k` columns.
    public func leadingColumns(_ k: Int) -> Matrix {
        var out = Matrix(zeros: rows, k)
        for i in 0..<rows { for j in 0..<k { out.data[i * k + j] = data[i * cols + j] } }
        return out
    }

    /// The first `k` rows.
    public func leadingRows(_ k: Int) -> Matrix { Matrix(rows: k, cols: cols, data: Array(data[0..<(k * cols)])) }

    /// Deterministic standard-normal matrix (for range finders), from a SplitMix64 stream.
    public static func gaussian(rows: Int, cols: Int, seed: UInt64) -> Matrix {
        var state = seed
        func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        var out = [Double](repeating: 0, count: rows * cols)
        var i = 0
        while i < out.count {
            let u1 = max(Double(next() >> 11) / Double(1 << 53), 1e-300), u2 = Double(next() >> 11) / Double(1 << 53)
            let r = (-2 * _log(u1)).squareRoot()
            out[i] = r * _cos(2 * .pi * u2)
            if i + 1 < out.count { out[i + 1] = r * _sin(2 * .pi * u2) }
            i += 2
        }
        return Matrix(rows: rows, cols: cols, data: out)
    }
}

@inline(__always) func _log(_ x: Double) -> Double { log(x) }
@inline(__always) func _cos(_ x: Double) -> Double { cos(x) }
@inline(__always) func _sin(_ x: Double) -> Double { sin(x) }
