import LinAlg
import TensorIO

/// Conversions between stored tensor bytes and float64 values, the precision all ΔW arithmetic
/// uses.
public enum TensorMath {
    /// Decodes stored bytes to doubles (exact for every float dtype wledger computes with).
    public static func doubles(_ bytes: UnsafeRawBufferPointer, dtype: DType) -> [Double] {
        let n = bytes.count / dtype.size
        switch dtype {
        case .f32, .f16, .bf16:
            var f = [Float](repeating: 0, count: n)
            f.withUnsafeMutableBufferPointer { decodeToFloat(bytes, dtype: dtype, into: $0) }
            return f.map(Double.init)
        default:
            return (0..<n).map { loadDouble(bytes, $0, dtype) }
        }
    }

    public static func doubles(_ bytes: [UInt8], dtype: DType) -> [Double] {
        bytes.withUnsafeBytes { doubles($0, dtype: dtype) }
    }

    /// Rounds doubles to the stored representation of `dtype` (F64, F32, F16, BF16), once, to
    /// nearest even. F16 and BF16 go through float32 rounded to odd (`roundedToOdd`), which
    /// keeps the one rounding to F16/BF16 exact; rounding to nearest twice put an element just
    /// past a rounding midpoint of the narrow type on the wrong side of it (13 elements of a BF16
    /// restrain, 62 of an F16 one, one ulp off).
    public static func bytes(_ values: [Double], dtype: DType) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: values.count * dtype.size)
        if dtype == .f64 {
            out.withUnsafeMutableBytes { o in for (i, v) in values.enumerated() { o.storeBytes(of: v, toByteOffset: 8 * i, as: Double.self) } }
            return out
        }
        precondition(dtype == .f32 || dtype == .f16 || dtype == .bf16, "cannot round to \(dtype.rawValue)")
        let f = dtype == .f32 ? values.map { Float($0) } : values.map(roundedToOdd)
        f.withUnsafeBufferPointer { fp in out.withUnsafeMutableBytes { encodeFromFloat(fp, dtype: dtype, into: $0) } }
        return out
    }

    /// `v` rounded to float32 to odd: toward zero, with the last bit set when that was inexact.
    /// Rounding that to a format of at most 22 significant bits (F16, BF16) to nearest gives the
    /// same result as rounding `v` there directly (Boldo and Melquiond, 2008): no value lands on
    /// a midpoint of the narrow format that it was not on. ±∞ and NaN stay.
    public static func roundedToOdd(_ v: Double) -> Float {
        let nearest = Float(v)
        guard nearest.isFinite, Double(nearest) != v else { return nearest }
        // One step toward zero when to-nearest went away from it (same sign: the magnitude's
        // bit pattern one less).
        let towardZero = abs(Double(nearest)) > abs(v) ? Float(bitPattern: nearest.bitPattern - 1) : nearest
        return Float(bitPattern: towardZero.bitPattern | 1)
    }

    /// The (rows, cols) of a 2-D tensor, or nil.
    public static func matrixShape(_ shape: [Int]) -> (Int, Int)? {
        shape.count == 2 ? (shape[0], shape[1]) : nil
    }

    /// An estimate of the spectral norm of elementwise rounding noise in a stored matrix W:
    /// 2·u·(max_i ‖W_i,:‖ + max_j ‖W_:,j‖), u the dtype's unit roundoff. Each element's error is at
    /// most u·|W_ij|, so the noise's rows and columns are at most u times W's; for independent
    /// errors the spectral norm is of the order of the largest row plus the largest column
    /// (Bandeira and van Handel, 2016). Singular values of a ΔW below this are taken for rounding.
    /// It is never above the bound 2·u·max|W|·(√m + √n), which a few outlier weights inflate:
    /// on SmolLM2 BF16 `down_proj` matrices with weights up to 4.7 that bound reached 1.9–2.3,
    /// above a whole rank-one edit of 1% of ‖W‖F (1.85–1.91), while this estimate is 0.17–0.22
    /// and the rounding noise's largest singular value 0.06 (measured with numpy).
    public static func roundingNoise(dtype: DType, maxRowNorm: Double, maxColumnNorm: Double) -> Double {
        2 * unitRoundoff(dtype) * (maxRowNorm + maxColumnNorm)
    }

    /// The largest row norm and the largest column norm of a row-major matrix. The squares are
    /// summed scaled by the largest |value| where they would overflow or underflow a double
    /// (F64 weights of 1e300 or 1e-300), so the norms are finite and not 0 when the values are.
    public static func largestRowAndColumnNorms(_ values: [Double], rows: Int, cols: Int) -> (row: Double, column: Double) {
        precondition(values.count == rows * cols, "matrix shape")
        let largest = values.reduce(0.0) { max($0, abs($1)) }
        let scale = largest > 0x1p500 || (largest > 0 && largest < 0x1p-500) ? largest : 1
        var maxRow = 0.0, columns = [Double](repeating: 0, count: cols)
        for i in 0..<rows {
            var row = 0.0
            for j in 0..<cols {
                let v = values[i * cols + j] / scale
                row += v * v
                columns[j] += v * v
            }
            maxRow = max(maxRow, row)
        }
        return (maxRow.squareRoot() * scale, (columns.max() ?? 0).squareRoot() * scale)
    }


    /// Unit roundoff of a dtype (half an ulp at 1): the relative size of storage rounding noise.
    public static func unitRoundoff(_ dtype: DType) -> Double {
        switch dtype {
        case .f64: return 0x1p-53
        case .f32: return 0x1p-24
        case .f16: return 0x1p-11
        case .bf16: return 0x1p-8
        default: return 0
        }
    }
}
