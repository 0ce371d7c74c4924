import CCrypto
import CShims
import CXXHash
#if canImport(Glibc)
import Glibc
#endif

/// SHA-256 content identity of bytes (tensors, headers, objects).
///
/// The corresponding C functions are OpenSSL's `SHA256_Init`/`SHA256_Update`/`SHA256_Final`
/// (SHA-NI accelerated; see the CCrypto shim for why not `EVP_Digest`).
public struct SHA256Digest: Hashable, Sendable, CustomStringConvertible, Comparable {
    public var bytes: [UInt8]

    public init(bytes: [UInt8]) {
        precondition(bytes.count == 32, "SHA-256 digest must be 32 bytes")
        self.bytes = bytes
    }

    /// Parses 64 lowercase or uppercase hex characters.
    public init?(hex: String) {
        guard let b = hexDecode(hex), b.count == 32 else { return nil }
        bytes = b
    }

    /// Hashes `data`.
    public static func hash(_ data: UnsafeRawBufferPointer) -> SHA256Digest {
        var out = [UInt8](repeating: 0, count: 32)
        out.withUnsafeMutableBufferPointer { wl_sha256_oneshot(data.baseAddress, data.count, $0.baseAddress) }
        return SHA256Digest(bytes: out)
    }

    /// Hashes a byte array.
    public static func hash(_ data: [UInt8]) -> SHA256Digest {
        data.withUnsafeBytes { hash($0) }
    }

    /// Hashes the UTF-8 bytes of a string.
    public static func hash(_ string: String) -> SHA256Digest {
        hash(Array(string.utf8))
    }

    public var hex: String { hexEncode(bytes) }
    public var description: String { hex }
    public static func < (a: SHA256Digest, b: SHA256Digest) -> Bool { a.bytes.lexicographicallyPrecedes(b.bytes) }
}

/// Incremental SHA-256 over several buffers (e.g. a whole file written piecewise).
public final class SHA256Hasher {
    private let ctx: OpaquePointer

    public init() {
        guard let c = wl_sha256_new() else { fatalError("SHA-256 context: out of memory") }
        ctx = c
    }

    deinit { wl_sha256_free(ctx) }

    public func update(_ data: UnsafeRawBufferPointer) {
        if data.count > 0 { wl_sha256_update(ctx, data.baseAddress, data.count) }
    }

    public func update(_ data: [UInt8]) { data.withUnsafeBytes { update($0) } }

    public func finalize() -> SHA256Digest {
        var out = [UInt8](repeating: 0, count: 32)
        out.withUnsafeMutableBufferPointer { wl_sha256_final(ctx, $0.baseAddress) }
        return SHA256Digest(bytes: out)
    }
}

/// A few bytes sampled from a tensor, hashed: XXH3-64 of `windows` windows of `width` bytes at
/// evenly spaced offsets (first and last included), or of the whole tensor when it is shorter
/// than the windows together. Stored with each tensor version (schema 0004), it lets a scan of
/// the work tree find a tensor that an edit rewrote (ROME, MEMIT or fine-tuning change nearly
/// every element) from a few pages of it, before hashing everything. A different probe proves
/// the bytes changed; an equal one proves nothing, and the fingerprint decides.
///
/// The corresponding C function is `XXH3_64bits`.
public enum Probe {
    public static let windows = 4
    public static let width = 64

    /// The byte ranges a probe samples from `n` bytes: `windows` windows of `width` bytes evenly
    /// spaced (first and last included), or all of them when they are fewer.
    static func sampled(_ n: Int) -> [Range<Int>] {
        guard n > windows * width else { return [0..<n] }
        return (0..<windows).map { k in let o = k * (n - width) / (windows - 1); return o..<(o + width) }
    }

    public static func of(_ data: UnsafeRawBufferPointer) -> Int64 {
        guard let base = data.baseAddress else { return Int64(bitPattern: XXH3_64bits(nil, 0)) }
        let sample = sampled(data.count).flatMap { UnsafeRawBufferPointer(start: base + $0.lowerBound, count: $0.count) }
        return Int64(bitPattern: sample.withUnsafeBytes { XXH3_64bits($0.baseAddress, $0.count) })
    }

    public static func of(_ data: [UInt8]) -> Int64 { data.withUnsafeBytes { of($0) } }

    /// The probe of the tensor at `range` of `file`, its windows read with `pread` rather than
    /// through the map: a scan reads the probes of every tensor, and faulting one page of each
    /// window into the map costs several times the read (≈ 1,100 windows on SmolLM2).
    /// - Throws: `TensorIOError.io` naming the file when a read fails or the file ends early.
    public static func of(_ file: MappedFile, range: Range<Int>) throws -> Int64 {
        precondition(range.lowerBound >= 0 && range.upperBound <= file.size, "range outside mapped file")
        var sample: [UInt8] = []
        for r in sampled(range.count) {
            var window = [UInt8](repeating: 0, count: r.count)
            guard try window.withUnsafeMutableBytes({ try readFully(file.descriptor, into: $0, at: range.lowerBound + r.lowerBound, path: file.path) }) else {
                throw TensorIOError.io(path: file.path, operation: "read",
                                       reason: "the file ends before byte \(range.lowerBound + r.upperBound) (it shrank after it was mapped)")
            }
            sample += window
        }
        return Int64(bitPattern: sample.withUnsafeBytes { XXH3_64bits($0.baseAddress, $0.count) })
    }
}

/// A fast 128-bit fingerprint (XXH3-128) used to detect changed tensors at memory speed and to
/// verify materialized bytes on checkout. Identity and content addressing use `SHA256Digest`.
///
/// The corresponding C function is `XXH3_128bits`.
public struct Fingerprint: Hashable, Sendable, CustomStringConvertible {
    public var high: UInt64
    public var low: UInt64

    public init(high: UInt64, low: UInt64) { self.high = high; self.low = low }

    public init?(hex: String) {
        guard hex.count == 32, let h = UInt64(hex.prefix(16), radix: 16), let l = UInt64(hex.suffix(16), radix: 16) else {
            return nil
        }
        high = h; low = l
    }

    /// Whether this CPU runs the AVX2 build of XXH3 (`CShims/xxh_fast.c`).
    static let avx2 = wl_xxh3_avx2_available() != 0

    public static func of(_ data: UnsafeRawBufferPointer) -> Fingerprint {
        if avx2 {
            var high: UInt64 = 0, low: UInt64 = 0
            wl_xxh3_128_avx2(data.baseAddress, data.count, &high, &low)
            return Fingerprint(high: high, low: low)
        }
        let h = XXH3_128bits(data.baseAddress, data.count)
        return Fingerprint(high: h.high64, low: h.low64)
    }

    public static func of(_ data: [UInt8]) -> Fingerprint { data.withUnsafeBytes { of($0) } }

    /// The fingerprint of bytes `range` of a mapped file, read the cheaper way for how the page
    /// cache holds it (`wl_xxh3_128_read`): through the map where one fault maps a large folio,
    /// else with `pread` through a 256 KiB buffer, because copying small folios out of the page
    /// cache costs less CPU than faulting them into the map (538 MB of a `cp` copy: ≈ 28 against
    /// ≈ 42 ms here; in 2 MiB folios the map takes ≈ 20). `throughMap: false` reads it all with
    /// `pread`, which also notices a file that shrank. Nil when `stop` was set before the last
    /// window or buffer was read.
    /// - Throws: `TensorIOError.io` naming the file when it cannot be read or ends early.
    public static func of(_ file: MappedFile, range: Range<Int>, stop: StopFlag? = nil, throughMap: Bool = true) throws -> Fingerprint? {
        precondition(range.lowerBound >= 0 && range.upperBound <= file.size, "range outside mapped file")
        var high: UInt64 = 0, low: UInt64 = 0
        let read = avx2 ? wl_xxh3_128_read_avx2 : wl_xxh3_128_read
        let map = throughMap ? file.bytes.baseAddress : nil
        let code = read(file.descriptor, map, pagemapDescriptor, Int64(range.lowerBound), range.count, stop?.pointer, &high, &low)
        if code == -2 { return nil }
        guard code == 0 else {
            let reason = code < 0 ? "the file ends before byte \(range.upperBound) (it shrank after it was mapped)" : errnoText(code)
            throw TensorIOError.io(path: file.path, operation: "read", reason: reason)
        }
        return Fingerprint(high: high, low: low)
    }

    public var hex: String {
        let a = String(high, radix: 16), b = String(low, radix: 16)
        return String(repeating: "0", count: 16 - a.count) + a + String(repeating: "0", count: 16 - b.count) + b
    }
    public var description: String { hex }
}

/// This process's page map (which pages of its address space are present), read by
/// `Fingerprint.of(_:range:)`; −1 where /proc is missing.
private let pagemapDescriptor: Int32 = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC)

/// A flag one thread sets to stop work another is doing (`Fingerprint.of(_:range:stop:)`).
public final class StopFlag: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<Int32>

    public init() {
        pointer = .allocate(capacity: 1)
        pointer.initialize(to: 0)
    }

    deinit { pointer.deallocate() }

    public func set() { wl_set_flag(pointer, 1) }
}

private let hexDigits = Array("0123456789abcdef".utf8)

/// Lowercase hex of bytes.
public func hexEncode(_ bytes: [UInt8]) -> String {
    var out = [UInt8]()
    out.reserveCapacity(bytes.count * 2)
    for b in bytes {
        out.append(hexDigits[Int(b >> 4)])
        out.append(hexDigits[Int(b & 15)])
    }
    return String(decoding: out, as: UTF8.self)
}

/// Bytes of a hex string, or nil if it is not hex of even length.
public func hexDecode(_ s: String) -> [UInt8]? {
    let u = Array(s.utf8)
    guard u.count % 2 == 0 else { return nil }
    func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case 48...57: return c - 48
        case 97...102: return c - 87
        case 65...70: return c - 55
        default: return nil
        }
    }
    var out = [UInt8]()
    out.reserveCapacity(u.count / 2)
    var i = 0
    while i < u.count {
        guard let hi = nibble(u[i]), let lo = nibble(u[i + 1]) else { return nil }
        out.append(hi << 4 | lo)
        i += 2
    }
    return out
}
