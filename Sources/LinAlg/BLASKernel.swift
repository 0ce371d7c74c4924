import CBLASLoader
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
/// anything better than an SSE-only fallback. The variables it sets are removed again once the
/// library is open, so programs this one starts (hooks, an external evaluator, numpy) see the
/// environment the user gave.
public enum BLASKernel {
    /// The kernel set OpenBLAS runs in this process, e.g. "Cooperlake" or "Prescott" (opens the
    /// library if no BLAS call has yet).
    ///
    /// The corresponding C function is `openblas_get_corename`.
    public static var coreName: String { selection.inUse }

    /// The kernel set OpenBLAS chose by itself on this machine, before any override (the one
    /// `WLEDGER_BLAS_KERNEL=openblas` runs).
    public static var openBLASChoice: String { selection.own }

    /// Whether OpenBLAS's idle worker threads should sleep at once instead of spinning
    /// (`OPENBLAS_THREAD_TIMEOUT=4`, unless the user set it). By default a worker spins in
    /// sched_yield for about 2^28 cycles (~0.1 s) after it starts and after every parallel call.
    /// Set it in `main` before anything else runs: commands whose BLAS calls are a few
    /// factorizations between wledger's own parallel loops (encoding a commit's patches) ask for
    /// it, so no idle OpenBLAS thread takes a core those loops need, while a large randomized SVD
    /// still runs on every core.
    nonisolated(unsafe) public static var quietWorkers = false

    /// Opens OpenBLAS with the kernels described above, once per process; every BLAS wrapper
    /// calls it. Call it in `main` before other threads start where the command will use BLAS
    /// anyway: opening sets environment variables for a moment, which is only safe while no
    /// other thread reads the environment.
    public static func load() { _ = selection }

    struct Selection { var own: String; var inUse: String }

    static let selection: Selection = select()

    static func currentCore() -> String {
        guard let p = wl_blas_corename() else { return "unknown" }
        return String(cString: p)
    }

    /// Opens the library with `variables` set in the environment for the duration of dlopen
    /// (only those the user has not set), then restores the environment.
    static func open(with variables: [String: String]) {
        var added: [String] = []
        for (name, value) in variables.sorted(by: { $0.key < $1.key }) where getenv(name) == nil {
            setenv(name, value, 1)
            added.append(name)
        }
        let status = wl_blas_open()
        for name in added { unsetenv(name) }
        if status != 0 {
            let message = "wledger: cannot open OpenBLAS (\(String(cString: wl_blas_error()))); install libopenblas0\n"
            _ = message.withCString { write(2, $0, strlen($0)) }
            exit(1)
        }
    }

    static func select() -> Selection {
        var variables: [String: String] = [:]
        if quietWorkers { variables["OPENBLAS_THREAD_TIMEOUT"] = "4" }
        open(with: variables)
        let own = currentCore()
        if let keep = getenv("WLEDGER_BLAS_KERNEL"), String(cString: keep) == "openblas" { return Selection(own: own, inUse: own) }
        if getenv("OPENBLAS_CORETYPE") != nil { return Selection(own: own, inUse: own) }
        guard let core = override(current: own, cpuFlags: cpuFlags()) else { return Selection(own: own, inUse: own) }
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
