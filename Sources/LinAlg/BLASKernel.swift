import CBLASLoader
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Which OpenBLAS kernel set this process runs, and the one correction wledger makes to it.
///
/// A DYNAMIC_ARCH OpenBLAS picks its kernels once, when the library loads, from the CPU model
/// number. Builds older than the CPU (Debian 12's 0.3.21 on a 2023 Xeon, family 6 model 207) do
/// not know the model and fall back to the SSE3 "Prescott" kernels, which run sgemm 3–4× slower
/// than the AVX-512 ones the CPU supports. The choice can only be changed through the
/// environment before the library's constructor runs, so OpenBLAS is not linked but opened at
/// the first BLAS call (`load`): when OpenBLAS's own choice is an SSE-only fallback, the library
/// is closed and opened again with `OPENBLAS_CORETYPE` set, the new kernels are checked against a
/// double-precision reference, and OpenBLAS's own choice comes back if they disagree.
///
/// It changes nothing when `OPENBLAS_CORETYPE` is already set (the machine's owner chose), when
/// `WLEDGER_BLAS_KERNEL=openblas` asks for OpenBLAS's own choice, or when OpenBLAS picked
/// anything better than an SSE-only fallback. The variables it gives OpenBLAS never enter the
/// process's environment (see `load`), so programs this one starts (hooks, an external
/// evaluator, numpy) see the environment the user gave.
public enum BLASKernel {
    /// The kernel set OpenBLAS runs in this process, e.g. "Cooperlake" or "Prescott" (opens the
    /// library if no BLAS call has yet).
    ///
    /// The corresponding C function is `openblas_get_corename`.
    public static var coreName: String { selection.inUse }

    /// The kernel set OpenBLAS chose by itself on this machine, before any override (the one
    /// `WLEDGER_BLAS_KERNEL=openblas` runs).
    public static var openBLASChoice: String { selection.own }

    /// Whether this process makes only small BLAS calls: a few factorizations between wledger's
    /// own parallel loops (encoding a commit's patches: the QR and SVD of a range finder's few
    /// columns). Set it in `main` before anything else runs. OpenBLAS then runs on the calling
    /// thread only (`OPENBLAS_NUM_THREADS=1`, unless the user set it) and keeps the kernels it
    /// chose itself (no second open, no self-check; with them a SmolLM2 commit took 109.6
    /// instead of 114.4 ms in alternating runs).
    /// With worker threads, such a call handed a sliver of work to a thread that had to wait for
    /// a core those loops held: an 8×1536 SVD inside a commit took 1–10 ms instead of 0.3–0.7 ms;
    /// an idle worker also spins in sched_yield for ~0.1 s after every parallel call. The second
    /// open and the self-check cost ≈ 6 ms of CPU beside a SmolLM2 commit's hashing.
    nonisolated(unsafe) public static var smallCalls = false

    /// Opens OpenBLAS with the kernels described above, once per process; every BLAS wrapper
    /// calls it, and a call made while the library is being opened waits for it.
    ///
    /// The variables OpenBLAS reads are given to it in a copy of the environment that `environ`
    /// points at only while the library opens (`wl_blas_open_with`), so the process's own
    /// environment never changes. A thread that reads the environment during an open sees the
    /// added variables too: code that starts another program calls `load()` first, so the
    /// program inherits the environment the user gave.
    public static func load() { _ = selection }

    /// Starts `load()` on a thread of its own and returns at once (≈ 15 ms on the development
    /// machine, most of it the dynamic linker, with a second open on CPUs OpenBLAS does not know).
    /// Commands that will multiply matrices call it first thing in `main`, so the library is
    /// ready by the time they need it; their first BLAS call waits for it otherwise.
    ///
    /// A process that exits meanwhile (a usage error a few ms in) first waits for the open to
    /// finish, in an `atexit` handler: glibc runs the libraries' destructors at exit without the
    /// loader lock, and OpenBLAS's, racing the open or the close of the first library on the
    /// loading thread, could wait forever for a worker thread.
    ///
    /// The loading thread itself may exit (OpenBLAS missing: message, exit 1); the handler then
    /// returns at once rather than wait for the open it is in.
    public static func loadInBackground() {
        atexit {
            if let loader = BLASKernel.loaderThread.value, pthread_equal(loader, pthread_self()) != 0 { return }
            BLASKernel.load()
        }
        Thread.detachNewThread {
            loaderThread.value = pthread_self()
            load()
        }
    }

    /// The thread `loadInBackground` started.
    static let loaderThread = LockedThreadID()

    final class LockedThreadID: @unchecked Sendable {
        private let lock = NSLock()
        private var id: pthread_t?
        var value: pthread_t? {
            get { lock.lock(); defer { lock.unlock() }; return id }
            set { lock.lock(); id = newValue; lock.unlock() }
        }
    }

    struct Selection { var own: String; var inUse: String }

    static let selection: Selection = select()

    static func currentCore() -> String {
        guard let p = wl_blas_corename() else { return "unknown" }
        return String(cString: p)
    }

    /// Opens the library with `variables` (only those the user has not set) in the environment
    /// its constructor reads; the process's environment stays as it is (`wl_blas_open_with`).
    static func open(with variables: [String: String]) {
        let entries = variables.sorted(by: { $0.key < $1.key }).filter { getenv($0.key) == nil }.map { "\($0.key)=\($0.value)" }
        var pointers = entries.map { strdup($0) }
        defer { pointers.forEach { free($0) } }
        pointers.append(nil)
        let status = pointers.withUnsafeBufferPointer { p in
            p.baseAddress!.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: p.count) { wl_blas_open_with($0) }
        }
        if status != 0 {
            let message = "wledger: cannot open OpenBLAS (\(String(cString: wl_blas_error()))); install libopenblas0\n"
            _ = message.withCString { write(2, $0, strlen($0)) }
            exit(1)
        }
    }

    /// The variables OpenBLAS is opened with, before any kernel override (those the user set
    /// are left out when it opens).
    public static func openingVariables(smallCalls: Bool) -> [String: String] {
        smallCalls ? ["OPENBLAS_NUM_THREADS": "1"] : [:]
    }

    static func select() -> Selection {
        var variables = openingVariables(smallCalls: smallCalls)
        open(with: variables)
        let own = currentCore()
        let environment = { (name: String) in getenv(name).map { String(cString: $0) } }
        guard let core = reopenCore(own: own, smallCalls: smallCalls, environment: environment, cpuFlags: self.cpuFlags()) else {
            return Selection(own: own, inUse: own)
        }
        wl_blas_close()
        variables["OPENBLAS_CORETYPE"] = core
        open(with: variables)
        let chosen = currentCore()
        let error = kernelError()
        if error > 1e-4 {
            let message = "wledger: OpenBLAS \(chosen) kernels disagree with a double-precision product (relative error \(error)); using OpenBLAS's own choice\n"
            _ = message.withCString { write(2, $0, strlen($0)) }
            wl_blas_close()
            variables["OPENBLAS_CORETYPE"] = nil
            open(with: variables)
            return Selection(own: own, inUse: currentCore())
        }
        return Selection(own: own, inUse: chosen)
    }

    /// The core type to open OpenBLAS again with after it chose `own`, or nil to keep its choice:
    /// nil for a process of small calls, when `WLEDGER_BLAS_KERNEL=openblas` asks for OpenBLAS's
    /// choice or the user set `OPENBLAS_CORETYPE`; otherwise `override`. The CPU flags are read
    /// only in that last case (a small-call process does not read /proc/cpuinfo).
    public static func reopenCore(own: String, smallCalls: Bool, environment: (String) -> String?,
                                  cpuFlags: @autoclosure () -> Set<String>) -> String? {
        if smallCalls || environment("WLEDGER_BLAS_KERNEL") == "openblas" || environment("OPENBLAS_CORETYPE") != nil { return nil }
        return override(current: own, cpuFlags: cpuFlags())
    }

    /// Kernel sets OpenBLAS falls back to on a CPU it does not recognize: SSE-only code.
    static let fallbackCores: Set<String> = ["prescott", "core2", "penryn", "dunnington", "nehalem", "atom",
                                             "katmai", "coppermine", "northwood", "banias", "unknown"]

    /// The OpenBLAS core type to force for a CPU with these /proc/cpuinfo flags when OpenBLAS chose
    /// `current`, or nil to keep OpenBLAS's choice.
    ///
    /// Only an SSE-only fallback is overridden, and only with a kernel set whose instructions the
    /// flags show: Cooperlake (AVX-512 with BF16), SkylakeX (AVX-512 F/BW/DQ/VL/CD), Haswell (AVX2 and FMA).
    public static func override(current: String, cpuFlags flags: Set<String>) -> String? {
        guard fallbackCores.contains(current.lowercased()) else { return nil }
        let avx512 = ["avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512cd"].allSatisfy(flags.contains)
        if avx512 && flags.contains("avx512_bf16") { return "Cooperlake" }
        if avx512 { return "SkylakeX" }
        if flags.contains("avx2") && flags.contains("fma") { return "Haswell" }
        return nil
    }

    /// The flags of the first processor in /proc/cpuinfo (empty where there is none).
    public static func cpuFlags(cpuinfo path: String = "/proc/cpuinfo") -> Set<String> {
        guard let f = fopen(path, "r") else { return [] }
        defer { fclose(f) }
        var line: UnsafeMutablePointer<CChar>? = nil
        var capacity = 0
        defer { free(line) }
        while getline(&line, &capacity, f) > 0, let line {
            let text = String(cString: line)
            guard text.hasPrefix("flags") || text.hasPrefix("Features"), let colon = text.firstIndex(of: ":") else { continue }
            return Set(text[text.index(after: colon)...].split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" }).map(String.init))
        }
        return []
    }

    /// The largest relative error of the open library's sgemm against a double-precision product, over
    /// shapes that reach OpenBLAS's small-matrix, single-vector and blocked paths with both
    /// transposes. Correct kernels give about 1e-6.
    public static func selfCheckError() -> Double {
        load()
        return kernelError()
    }

    /// `selfCheckError` of the library as it is open now, without opening it.
    static func kernelError() -> Double {
        var worst = 0.0
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> Float {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int64(bitPattern: state >> 11) % 2001 - 1000) / 1000
        }
        for (m, n, k) in [(1, 96, 80), (5, 17, 33), (16, 64, 48), (40, 96, 72)] {
            for (ta, tb) in [(false, true), (false, false), (true, false)] {
                let a = (0..<(m * k)).map { _ in next() }, b = (0..<(k * n)).map { _ in next() }
                var c = [Float](repeating: 0, count: m * n)
                a.withUnsafeBufferPointer { ap in
                    b.withUnsafeBufferPointer { bp in
                        c.withUnsafeMutableBufferPointer { cp in
                            // The library directly: this runs while `selection` is being made.
                            wl_sgemm(ta ? 1 : 0, tb ? 1 : 0, Int32(m), Int32(n), Int32(k), 1, ap.baseAddress!, Int32(ta ? m : k),
                                     bp.baseAddress!, Int32(tb ? k : n), 0, cp.baseAddress!, Int32(n))
                        }
                    }
                }
                for i in 0..<m {
                    for j in 0..<n {
                        var exact = 0.0, scale = 0.0
                        for p in 0..<k {
                            let x = Double(ta ? a[p * m + i] : a[i * k + p]), y = Double(tb ? b[j * k + p] : b[p * n + j])
                            exact += x * y
                            scale += abs(x * y)
                        }
                        worst = max(worst, abs(Double(c[i * n + j]) - exact) / max(scale, 1e-30))
                    }
                }
            }
        }
        return worst
    }
}
