import CShims

/// Converts stored tensor bytes to `Float` (exact for F32, F16 and BF16).
///
/// The corresponding C functions are `wl_f16_to_f32` (F16C) and `wl_bf16_to_f32`.
/// - Precondition: `dst.count == src.count / dtype.size` and the dtype is arithmetic.
public func decodeToFloat(_ src: UnsafeRawBufferPointer, dtype: DType, into dst: UnsafeMutableBufferPointer<Float>) {
    let n = src.count / dtype.size
    precondition(dst.count == n, "destination size mismatch")
    guard n > 0, let base = src.baseAddress, let out = dst.baseAddress else { return }
    switch dtype {
    case .f32:
        UnsafeMutableRawPointer(out).copyMemory(from: base, byteCount: n * 4)
    case .f16:
        wl_f16_to_f32(base.assumingMemoryBound(to: UInt16.self), out, n)
    case .bf16:
        wl_bf16_to_f32(base.assumingMemoryBound(to: UInt16.self), out, n)
    default:
        for i in 0..<n { out[i] = Float(loadDouble(src, i, dtype)) }
    }
}

/// Loads element `i` of a tensor of `dtype` as `Double` (unaligned-safe).
/// - Precondition: the dtype is arithmetic.
public func loadDouble(_ src: UnsafeRawBufferPointer, _ i: Int, _ dtype: DType) -> Double {
    let o = i * dtype.size
    switch dtype {
    case .f64: return src.loadUnaligned(fromByteOffset: o, as: Double.self)
    case .f32: return Double(src.loadUnaligned(fromByteOffset: o, as: Float.self))
    case .f16:
        var f: Float = 0
        var h = src.loadUnaligned(fromByteOffset: o, as: UInt16.self)
        wl_f16_to_f32(&h, &f, 1)
        return Double(f)
    case .bf16: return Double(Float(bitPattern: UInt32(src.loadUnaligned(fromByteOffset: o, as: UInt16.self)) << 16))
    case .bool: return src[o] != 0 ? 1 : 0
    case .u8: return Double(src[o])
    case .i8: return Double(Int8(bitPattern: src[o]))
    case .u16: return Double(src.loadUnaligned(fromByteOffset: o, as: UInt16.self))
    case .i16: return Double(src.loadUnaligned(fromByteOffset: o, as: Int16.self))
    case .u32: return Double(src.loadUnaligned(fromByteOffset: o, as: UInt32.self))
    case .i32: return Double(src.loadUnaligned(fromByteOffset: o, as: Int32.self))
    case .u64: return Double(src.loadUnaligned(fromByteOffset: o, as: UInt64.self))
    case .i64: return Double(src.loadUnaligned(fromByteOffset: o, as: Int64.self))
    case .f8e4m3, .f8e5m2, .f8e8m0: return decodeF8(src[o], dtype)
    default: preconditionFailure("dtype \(dtype.rawValue) is not arithmetic")
    }
}

/// Converts `Float` values to the stored representation of `dtype` (F32, F16 or BF16), rounding
/// to nearest even.
///
/// The corresponding C functions are `wl_f32_to_f16` (F16C) and `wl_f32_to_bf16`.
public func encodeFromFloat(_ src: UnsafeBufferPointer<Float>, dtype: DType, into dst: UnsafeMutableRawBufferPointer) {
    let n = src.count
    precondition(dst.count == n * dtype.size, "destination size mismatch")
    guard n > 0, let s = src.baseAddress, let d = dst.baseAddress else { return }
    switch dtype {
    case .f32: d.copyMemory(from: s, byteCount: n * 4)
    case .f16: wl_f32_to_f16(s, d.assumingMemoryBound(to: UInt16.self), n)
    case .bf16: wl_f32_to_bf16(s, d.assumingMemoryBound(to: UInt16.self), n)
    case .f64:
        for i in 0..<n { d.storeBytes(of: Double(s[i]), toByteOffset: i * 8, as: Double.self) }
    default: preconditionFailure("cannot encode floats as \(dtype.rawValue)")
    }
}

/// The value of one 8-bit float: F8_E4M3 as PyTorch's float8_e4m3fn (bias 7, no infinities,
/// S.1111.111 is NaN), F8_E5M2 as IEEE (bias 15, exponent 31 is Inf or NaN), F8_E8M0 an unsigned
/// power of two 2^(e − 127) (0xFF is NaN).
public func decodeF8(_ b: UInt8, _ dtype: DType) -> Double {
    let sign: Double = b & 0x80 != 0 ? -1 : 1
    switch dtype {
    case .f8e4m3:
        let e = Int((b >> 3) & 0xF), m = Double(b & 0x7)
        if e == 0xF && b & 0x7 == 0x7 { return .nan }
        return sign * (e == 0 ? m / 8 * 0x1p-6 : (1 + m / 8) * Double(sign: .plus, exponent: e - 7, significand: 1))
    case .f8e5m2:
        let e = Int((b >> 2) & 0x1F), m = Double(b & 0x3)
        if e == 0x1F { return b & 0x3 == 0 ? sign * .infinity : .nan }
        return sign * (e == 0 ? m / 4 * 0x1p-14 : (1 + m / 4) * Double(sign: .plus, exponent: e - 15, significand: 1))
    case .f8e8m0:
        return b == 0xFF ? .nan : Double(sign: .plus, exponent: Int(b) - 127, significand: 1)
    default: preconditionFailure("dtype \(dtype.rawValue) is not an 8-bit float")
    }
}

/// Number of NaN or ±Inf values in a float tensor, 8-bit floats included (0 for other dtypes).
public func countNonFinite(_ src: UnsafeRawBufferPointer, dtype: DType) -> Int {
    let n = src.count / dtype.size
    switch dtype {
    case .f32:
        return wl_count_nonfinite_f32(src.baseAddress?.assumingMemoryBound(to: Float.self), n)
    case .f16:
        var c = 0
        for i in 0..<n where src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self) & 0x7C00 == 0x7C00 { c += 1 }
        return c
    case .bf16:
        var c = 0
        for i in 0..<n where src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self) & 0x7F80 == 0x7F80 { c += 1 }
        return c
    case .f64:
        var c = 0
        for i in 0..<n where !src.loadUnaligned(fromByteOffset: 8 * i, as: Double.self).isFinite { c += 1 }
        return c
    case .f8e4m3:
        return src.reduce(0) { $0 + ($1 & 0x7F == 0x7F ? 1 : 0) }
    case .f8e5m2:
        return src.reduce(0) { $0 + ($1 & 0x7C == 0x7C ? 1 : 0) }
    case .f8e8m0:
        return src.reduce(0) { $0 + ($1 == 0xFF ? 1 : 0) }
    default:
        return 0
    }
}
