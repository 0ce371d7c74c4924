import CShims
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A read-only memory map of a whole file. The mapping lives as long as this object.
///
/// The corresponding C functions are `open`, `fstat` and `mmap`.
public final class MappedFile: @unchecked Sendable {
    public let path: String
    public let size: Int
    /// Device, inode, modification time (ns) at open time: used by the work-tree stat cache.
    public let stat: FileStat
    private let base: UnsafeRawPointer?
    /// The open file (read-only) behind the map, for in-kernel copies of its ranges; -1 when empty.
    public let descriptor: Int32

    /// Maps `path` read-only.
    /// - Parameter populate: pre-fault every page (MAP_POPULATE), faster when the whole file is read.
    /// - Throws: `TensorIOError.io` when the file cannot be opened, is not a regular file or cannot be mapped.
    public init(path: String, populate: Bool = false) throws {
        self.path = path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw TensorIOError.io(path: path, operation: "open", reason: errnoText()) }
        var keep = false
        defer { if !keep { close(fd) } }
        var st = Glibc.stat()
        guard fstat(fd, &st) == 0 else { throw TensorIOError.io(path: path, operation: "stat", reason: errnoText()) }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw TensorIOError.io(path: path, operation: "read", reason: "not a regular file")
        }
        self.size = Int(st.st_size)
        self.stat = FileStat(st)
        if size == 0 {
            base = nil
            descriptor = -1
            return
        }
        var flags = MAP_PRIVATE
        if populate { flags |= MAP_POPULATE }
        let p = mmap(nil, size, PROT_READ, flags, fd, 0)
        guard let p, p != MAP_FAILED else { throw TensorIOError.io(path: path, operation: "mmap", reason: errnoText()) }
        base = UnsafeRawPointer(p)
        descriptor = fd
        keep = true
        wl_register_map(p, size, path)
        if MappedFile.shrinkFault, path.hasSuffix(".safetensors") {
            // WLEDGER_FAULT=map-shrunk: the file is cut to nothing under the map, which is then
            // read past its new end, as when another program rewrites it in place meanwhile.
            truncate(path, 0)
            _ = wl_read_byte(p + size - 1)
        }
    }

    /// For the CLI: a read through a map past the end of a file that shrank since it was mapped
    /// (another program rewrote it in place) exits with status 2 and one line naming the file,
    /// instead of dying of SIGBUS. Nothing is half-recorded: a ledger transaction in progress is
    /// rolled back, and an interrupted update's journal is finished by the next command.
    public static func exitWithMessageOnSIGBUS() { wl_exit_on_sigbus() }

    private static let shrinkFault = getenv("WLEDGER_FAULT").map { String(cString: $0) } == "map-shrunk"

    deinit {
        if let base {
            wl_unregister_map(base)
            munmap(UnsafeMutableRawPointer(mutating: base), size)
        }
        if descriptor >= 0 { close(descriptor) }
    }

    /// The whole file.
    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: size) }

    /// A byte range of the file; traps if out of range (callers validate first).
    public func bytes(_ range: Range<Int>) -> UnsafeRawBufferPointer {
        precondition(range.lowerBound >= 0 && range.upperBound <= size, "range outside mapped file")
        return UnsafeRawBufferPointer(rebasing: bytes[range])
    }
}

/// The parts of `struct stat` that tell whether a file changed since it was last hashed.
public struct FileStat: Equatable, Sendable, Codable {
    public var size: Int64
    public var mtimeNs: Int64
    public var ctimeNs: Int64
    public var inode: UInt64
    public var device: UInt64

    public init(size: Int64, mtimeNs: Int64, ctimeNs: Int64, inode: UInt64, device: UInt64) {
        self.size = size; self.mtimeNs = mtimeNs; self.ctimeNs = ctimeNs; self.inode = inode; self.device = device
    }

    init(_ st: Glibc.stat) {
        size = Int64(st.st_size)
        mtimeNs = Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec)
        ctimeNs = Int64(st.st_ctim.tv_sec) * 1_000_000_000 + Int64(st.st_ctim.tv_nsec)
        inode = UInt64(st.st_ino)
        device = UInt64(st.st_dev)
    }

    /// `stat(2)` of `path`, or nil when it does not exist.
    public static func of(_ path: String) -> FileStat? {
        var st = Glibc.stat()
        guard statPath(path, &st) == 0 else { return nil }
        return FileStat(st)
    }
}

private func statPath(_ path: String, _ st: inout Glibc.stat) -> Int32 {
    stat(path, &st)
}

/// The text of the current `errno`.
/// `strerror(errno)` with a lowercase first letter, for one-line messages ("permission denied").
public func errnoText(_ code: Int32 = errno) -> String {
    let s = String(cString: strerror(code))
    return s.prefix(1).lowercased() + s.dropFirst()
}
