import CZstd
import Foundation

/// The one wrapper around libzstd.
///
/// The corresponding C functions are `ZSTD_compress2` (with a content checksum) and `ZSTD_decompress`.
public enum Zstd {
    /// Default level: fast (≈1 GB/s) and within a few percent of higher levels on weights.
    public static let defaultLevel: Int32 = 3

    /// Inputs at least this large are compressed by libzstd's worker threads when the caller
    /// allows it (`parallel`): one frame either way, decoded by the same `ZSTD_decompress`.
    public static let parallelThreshold = 16 << 20

    /// Compresses `src` at `level`. With `parallel`, an input of at least `parallelThreshold`
    /// bytes is split among one libzstd worker per core (for callers not already running one
    /// compression per core).
    public static func compress(_ src: UnsafeRawBufferPointer, level: Int32 = defaultLevel, parallel: Bool = false) throws -> [UInt8] {
        let bound = ZSTD_compressBound(src.count)
        var out = uninitializedBytes(bound)
        guard let cctx = ZSTD_createCCtx() else { throw CodecError.zstd(operation: "compress", reason: "out of memory") }
        defer { ZSTD_freeCCtx(cctx) }
        // Every frame carries a content checksum (XXH64), so corruption fails decoding.
        ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level)
        ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1)
        if parallel && src.count >= parallelThreshold {
            // Without multithreading support in libzstd this fails and compression stays serial.
            ZSTD_CCtx_setParameter(cctx, ZSTD_c_nbWorkers, Int32(min(ProcessInfo.processInfo.activeProcessorCount, 8)))
        }
        let n = out.withUnsafeMutableBytes { o in
            ZSTD_compress2(cctx, o.baseAddress, bound, src.baseAddress, src.count)
        }
        if ZSTD_isError(n) != 0 { throw CodecError.zstd(operation: "compress", reason: String(cString: ZSTD_getErrorName(n))) }
        out.removeSubrange(n...)
        return out
    }

    /// Decompresses `src`, which must be exactly one frame, into exactly `dst.count` bytes.
    /// - Throws: `CodecError` when the frame is corrupt or its size differs.
    public static func decompress(_ src: UnsafeRawBufferPointer, into dst: UnsafeMutableRawBufferPointer) throws {
        // Exactly one frame: `ZSTD_decompressDCtx` would also decode frames concatenated after
        // it, which no encoder here writes and `ChunkStream` rejects (found by fuzzing:
        // Fuzz/regressions/chunk-two-empty-frames). No bytes at all stand for nothing.
        if src.count > 0 {
            let frame = ZSTD_findFrameCompressedSize(src.baseAddress, src.count)
            if ZSTD_isError(frame) != 0 { throw CodecError.zstd(operation: "decompress", reason: String(cString: ZSTD_getErrorName(frame))) }
            guard frame == src.count else {
                throw CodecError.corrupt(what: "zstd frame", reason: "stored bytes continue after the frame ends")
            }
        }
        // One decompression context per thread, kept: `ZSTD_decompress` would allocate and clear
        // a new one (~160 KB) for every frame, which cost ~40 µs per small frame (a patch's
        // three sections) in page faults and heap growth.
        guard let (dctx, kept) = threadContext() else { throw CodecError.zstd(operation: "decompress", reason: "out of memory") }
        defer { if !kept { ZSTD_freeDCtx(dctx) } }
        let n = ZSTD_decompressDCtx(dctx, dst.baseAddress, dst.count, src.baseAddress, src.count)
        if ZSTD_isError(n) != 0 { throw CodecError.zstd(operation: "decompress", reason: String(cString: ZSTD_getErrorName(n))) }
        guard n == dst.count else {
            throw CodecError.corrupt(what: "zstd frame", reason: "decoded \(n) bytes, expected \(dst.count)")
        }
    }

    /// This thread's decompression context, created on first use and freed when the thread ends
    /// (`kept`); if it cannot be stored for the thread, a context for this call only.
    static func threadContext() -> (OpaquePointer, kept: Bool)? {
        if let p = pthread_getspecific(contextKey) { return (OpaquePointer(p), true) }
        guard let d = ZSTD_createDCtx() else { return nil }
        return (d, pthread_setspecific(contextKey, UnsafeRawPointer(d)) == 0)
    }

    private static let contextKey: pthread_key_t = {
        var key = pthread_key_t()
        let rc = pthread_key_create(&key) { p in ZSTD_freeDCtx(OpaquePointer(p)) }
        precondition(rc == 0, "pthread_key_create failed")
        return key
    }()

    /// Decompresses into a new array of `size` bytes.
    public static func decompress(_ src: UnsafeRawBufferPointer, size: Int) throws -> [UInt8] {
        var out = uninitializedBytes(size)
        try out.withUnsafeMutableBytes { try decompress(src, into: $0) }
        return out
    }
}
