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

    /// Rounds doubles to the stored representation of `dtype` (F64, F32, F16, BF16): to float32
    /// with round-to-nearest-even, then (F16/BF16) to nearest even again.
    public static func bytes(_ values: [Double], dtype: DType) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: values.count * dtype.size)
        if dtype == .f64 {
            out.withUnsafeMutableBytes { o in for (i, v) in values.enumerated() { o.storeBytes(of: v, toByteOffset: 8 * i, as: Double.self) } }
            return out
        }
        precondition(dtype == .f32 || dtype == .f16 || dtype == .bf16, "cannot round to \(dtype.rawValue)")
        let f = values.map { Float($0) }
        f.withUnsafeBufferPointer { fp in out.withUnsafeMutableBytes { encodeFromFloat(fp, dtype: dtype, into: $0) } }
        return out
    }

    /// The (rows, cols) of a 2-D tensor, or nil.
    public static func matrixShape(_ shape: [Int]) -> (Int, Int)? {
        shape.count == 2 ? (shape[0], shape[1]) : nil
    }

    /// An upper estimate of the spectral norm of elementwise rounding noise in a stored matrix:
    /// 2·u·max|W|·(√m + √n), u the dtype's unit roundoff. Singular values of a ΔW below this are
    /// indistinguishable from rounding.
    public static func roundingNoise(dtype: DType, maxAbs: Double, rows: Int, cols: Int) -> Double {
        2 * unitRoundoff(dtype) * maxAbs * (Double(rows).squareRoot() + Double(cols).squareRoot())
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
