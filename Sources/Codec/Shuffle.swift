import CShims

/// Byte-plane shuffle: groups byte p of every element together so exponents and high mantissa
/// bytes of floats form long, compressible runs.
///
/// The corresponding C functions are `wl_shuffle` and `wl_unshuffle`.
public enum Shuffle {
    /// Shuffles `src` (elements of `elementSize` bytes) into `dst`; a trailing partial element is copied.
    public static func shuffle(_ src: UnsafeRawBufferPointer, into dst: UnsafeMutableRawBufferPointer, elementSize: Int) {
        precondition(src.count == dst.count, "shuffle size mismatch")
        let n = src.count / elementSize
        guard src.count > 0 else { return }
        wl_shuffle(src.baseAddress!.assumingMemoryBound(to: UInt8.self), dst.baseAddress!.assumingMemoryBound(to: UInt8.self), n, elementSize)
        let tail = n * elementSize
        if tail < src.count { dst.baseAddress!.advanced(by: tail).copyMemory(from: src.baseAddress!.advanced(by: tail), byteCount: src.count - tail) }
    }

    /// Inverse of `shuffle`.
    public static func unshuffle(_ src: UnsafeRawBufferPointer, into dst: UnsafeMutableRawBufferPointer, elementSize: Int) {
        precondition(src.count == dst.count, "unshuffle size mismatch")
        let n = src.count / elementSize
        guard src.count > 0 else { return }
        wl_unshuffle(src.baseAddress!.assumingMemoryBound(to: UInt8.self), dst.baseAddress!.assumingMemoryBound(to: UInt8.self), n, elementSize)
        let tail = n * elementSize
        if tail < src.count { dst.baseAddress!.advanced(by: tail).copyMemory(from: src.baseAddress!.advanced(by: tail), byteCount: src.count - tail) }
    }
}
