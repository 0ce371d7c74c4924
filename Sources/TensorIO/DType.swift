/// A safetensors element type.
///
/// F32, F16 and BF16 are converted to and from `Float` (see `Conversions.swift`); every other
/// dtype is carried byte-exact and compared bitwise.
public enum DType: String, CaseIterable, Sendable, Codable {
    case bool = "BOOL"
    case u8 = "U8", i8 = "I8"
    case f8e5m2 = "F8_E5M2", f8e4m3 = "F8_E4M3", f8e8m0 = "F8_E8M0"
    case u16 = "U16", i16 = "I16", f16 = "F16", bf16 = "BF16"
    case u32 = "U32", i32 = "I32", f32 = "F32"
    case u64 = "U64", i64 = "I64", f64 = "F64"
    case c64 = "C64"

    /// Bytes per element.
    public var size: Int {
        switch self {
        case .bool, .u8, .i8, .f8e5m2, .f8e4m3, .f8e8m0: return 1
        case .u16, .i16, .f16, .bf16: return 2
        case .u32, .i32, .f32: return 4
        case .u64, .i64, .f64, .c64: return 8
        }
    }

    /// Whether values of this dtype can be converted to `Float`/`Double` for ΔW statistics (a
    /// BOOL as 0 or 1; the 8-bit floats by `decodeF8`).
    public var isArithmetic: Bool {
        switch self {
        case .f32, .f16, .bf16, .f64, .bool, .u8, .i8, .u16, .i16, .u32, .i32, .u64, .i64, .f8e4m3, .f8e5m2, .f8e8m0: return true
        default: return false
        }
    }

    /// Whether this is one of the floating-point types wledger computes with (F64, F32, F16, BF16).
    public var isFloat: Bool {
        switch self {
        case .f32, .f16, .bf16, .f64: return true
        default: return false
        }
    }
}
