import CShims
#if canImport(Glibc)
import Glibc
#endif

/// Writes a file atomically: a temporary file in the same directory, filled, fsynced, then
/// renamed over the destination (and the directory fsynced), so readers see the old file or the
/// new one, never a mix.
///
/// The corresponding C functions are `open`, `ftruncate`, `pwrite`, `fsync` and `rename`.
public final class AtomicFileWriter {
    public let path: String
    public let tempPath: String
    private var fd: Int32
    private var committed = false

    /// Creates the temporary file, sized to `size` bytes, with permission bits `mode`; nil: the
    /// read/write/execute bits of the regular file it replaces (not setuid, setgid or sticky, as
    /// cp and git), else 0644 less the umask (also where it replaces a symbolic link, whose
    /// target's bits belong to another file, such as a read-only blob of a Hugging Face cache).
    public init(path: String, size: Int, mode: mode_t? = nil) throws {
        self.path = path
        let dir = parentDirectory(of: path)
        let base = String(path.split(separator: "/").last ?? "")
        tempPath = dir + "/.\(base).wledger-tmp-\(getpid())"
        var st = stat()
        let kept: mode_t? = mode == nil && lstat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG ? st.st_mode & 0o777 : nil
        fd = open(tempPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode ?? 0o644)
        guard fd >= 0 else {
            // Name the file being written (the temporary name means nothing to the user).
            throw TensorIOError.io(path: path, operation: "write", reason: "\(errnoText()) (creating a temporary file in '\(dir)')")
        }
        // A rewritten file keeps its permissions, as an editor's save does (a read-only weight
        // file stays read-only).
        if let kept, fchmod(fd, kept) != 0 {
            let reason = errnoText()
            abort()
            throw TensorIOError.io(path: path, operation: "write", reason: "\(reason) (setting the permissions of a temporary file in '\(dir)')")
        }
        if ftruncate(fd, off_t(size)) != 0 {
            let reason = errnoText()
            abort()
            throw TensorIOError.io(path: tempPath, operation: "resize", reason: reason)
        }
    }

    deinit { if !committed { abort() } }

    /// Writes `bytes` at `offset`.
    public func write(_ bytes: UnsafeRawBufferPointer, at offset: Int) throws {
        try writeFully(fd, bytes, at: offset, path: tempPath)
    }

    /// Copies `count` bytes of `source` from `sourceOffset` to `offset` inside the kernel
    /// (copy_file_range: no pass through user memory).
    /// - Returns: false when this filesystem pair cannot copy that way (nothing was written that
    ///   the caller's own write of the same range would not replace).
    public func copy(from source: MappedFile, at sourceOffset: Int, count: Int, to offset: Int) throws -> Bool {
        guard count > 0 else { return true }
        guard source.descriptor >= 0, sourceOffset >= 0, sourceOffset + count <= source.size else { return false }
        let r = wl_copy_range(source.descriptor, Int64(sourceOffset), fd, Int64(offset), count)
        switch r {
        case 0: return true
        case -1: throw TensorIOError.io(path: source.path, operation: "read", reason: "the file shrank while it was being copied")
        case EXDEV, EINVAL, EOPNOTSUPP, ENOSYS, EBADF, ETXTBSY, EPERM: return false
        default:
            throw TensorIOError.io(path: tempPath, operation: "write", reason: errnoText(r))
        }
    }

    /// Asks the kernel to start writing `count` bytes at `offset` to disk now (a hint; `sync()` or
    /// `commit()` still make the file durable), so writeback overlaps the rest of the work.
    public func startWriteback(at offset: Int, count: Int) {
        if fd >= 0, count > 0 { wl_start_writeback(fd, Int64(offset), Int64(count)) }
    }

    public func write(_ bytes: [UInt8], at offset: Int) throws {
        try bytes.withUnsafeBytes { try write($0, at: offset) }
    }

    /// fsyncs and renames the temporary file over `path`.
    /// - Parameter keepOnFailure: leave the temporary file when the rename fails (a journal names
    ///   it, and the next command renames it in); otherwise it is removed.
    public func commit(sync: Bool = true, keepOnFailure: Bool = false) throws {
        if sync, fsync(fd) != 0 { throw TensorIOError.io(path: tempPath, operation: "fsync", reason: errnoText()) }
        close(fd)
        fd = -1
        guard rename(tempPath, path) == 0 else {
            let reason = errnoText()
            if !keepOnFailure { unlink(tempPath) }
            committed = true
            throw TensorIOError.io(path: path, operation: "rename into place", reason: reason)
        }
        committed = true
        if sync { syncDirectory(parentDirectory(of: path)) }
    }

    /// fsyncs the temporary file (before a journal records it as complete).
    public func sync() throws {
        if fsync(fd) != 0 { throw TensorIOError.io(path: tempPath, operation: "fsync", reason: errnoText()) }
    }

    /// Closes the temporary file and leaves it where it is, for a journal's recovery to rename in
    /// (once a journal names it, an error must not delete it).
    public func keep() {
        if fd >= 0 { close(fd); fd = -1 }
        committed = true
    }

    /// Removes the temporary file; the destination is untouched.
    public func abort() {
        if fd >= 0 { close(fd); fd = -1 }
        if !committed { unlink(tempPath); committed = true }
    }
}

/// Writes `bytes` to `path` atomically.
public func writeFileAtomically(_ path: String, _ bytes: [UInt8], sync: Bool = true) throws {
    let w = try AtomicFileWriter(path: path, size: bytes.count)
    try w.write(bytes, at: 0)
    try w.commit(sync: sync)
}

/// Writes all of `bytes` to descriptor `fd` at `offset` (pwrite, retried after EINTR and short
/// writes). - Throws: `TensorIOError.io` naming `path`.
public func writeFully(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, at offset: Int, path: String) throws {
    var done = 0
    while done < bytes.count {
        let n = pwrite(fd, bytes.baseAddress! + done, bytes.count - done, off_t(offset + done))
        if n < 0 && errno == EINTR { continue }
        guard n > 0 else { throw TensorIOError.io(path: path, operation: "write", reason: n < 0 ? errnoText() : "no progress") }
        done += n
    }
}

/// Fills `buffer` from descriptor `fd` at `offset` (pread, retried after EINTR and short reads).
/// - Returns: false when the file ends first. - Throws: `TensorIOError.io` naming `path` on a
///   read error.
public func readFully(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, at offset: Int, path: String) throws -> Bool {
    var done = 0
    while done < buffer.count {
        let n = pread(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset + done))
        if n < 0 && errno == EINTR { continue }
        if n < 0 { throw TensorIOError.io(path: path, operation: "read", reason: errnoText()) }
        if n == 0 { return false }
        done += n
    }
    return true
}

/// The directory part of a path ("." when there is none).
public func parentDirectory(of path: String) -> String {
    guard let slash = path.lastIndex(of: "/") else { return "." }
    let d = String(path[..<slash])
    return d.isEmpty ? "/" : d
}

/// fsyncs a directory so a rename inside it is durable.
public func syncDirectory(_ dir: String) {
    let dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    if dfd >= 0 { fsync(dfd); close(dfd) }
}

/// Reads a whole small file, with `read` (not a map: a file another process truncates while it
/// is read, such as the lock file, gives its shorter contents rather than a SIGBUS).
/// - Throws: `TensorIOError.io` as `MappedFile` does: the file cannot be opened or read, or is
///   not a regular file.
public func readFile(_ path: String) throws -> [UInt8] {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw TensorIOError.io(path: path, operation: "open", reason: errnoText()) }
    defer { close(fd) }
    var st = stat()
    guard fstat(fd, &st) == 0 else { throw TensorIOError.io(path: path, operation: "stat", reason: errnoText()) }
    guard (st.st_mode & S_IFMT) == S_IFREG else { throw TensorIOError.io(path: path, operation: "read", reason: "not a regular file") }
    var out = [UInt8](repeating: 0, count: max(Int(st.st_size), 0) + 1)
    var count = 0
    while true {
        if count == out.count { out += [UInt8](repeating: 0, count: max(out.count, 4096)) }   // grew since the stat
        let n = out.withUnsafeMutableBytes { read(fd, $0.baseAddress! + count, $0.count - count) }
        if n < 0 {
            if errno == EINTR { continue }
            throw TensorIOError.io(path: path, operation: "read", reason: errnoText())
        }
        if n == 0 { break }
        count += n
    }
    out.removeSubrange(count...)
    return out
}
