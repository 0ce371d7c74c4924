import COpenBLAS
#if canImport(Glibc)
import Glibc
#endif

/// Which OpenBLAS kernel set this process runs, and the one correction wledger makes to it.
///
/// A DYNAMIC_ARCH OpenBLAS picks its kernels once, when the library loads, from the CPU model
/// number. Builds older than the CPU (Debian 12's 0.3.21 on a 2023 Xeon, family 6 model 207) do
/// not know the model and fall back to the SSE3 "Prescott" kernels, which run sgemm 3–4× slower
/// than the AVX-512 ones the CPU supports. The choice can only be changed through the
/// environment before the library loads, so `selectAtLaunch` re-executes the program once with
/// `OPENBLAS_CORETYPE` set, checks the new kernels against a double-precision reference, and
/// falls back to OpenBLAS's own choice if they disagree.
///
/// It changes nothing when `OPENBLAS_CORETYPE` is already set (the machine's owner chose), when
/// `WLEDGER_BLAS_KERNEL=openblas` asks for OpenBLAS's own choice, or when OpenBLAS picked
/// anything better than an SSE-only fallback.
public enum BLASKernel {
    /// The kernel set OpenBLAS runs in this process, e.g. "Cooperlake" or "Prescott".
    ///
    /// The corresponding C function is `openblas_get_corename`.
    public static var coreName: String {
        guard let p = openblas_get_corename() else { return "unknown" }
        return String(cString: p)
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

    /// The largest relative error of this process's sgemm against a double-precision product, over
    /// shapes that reach OpenBLAS's small-matrix, single-vector and blocked paths with both
    /// transposes. Correct kernels give about 1e-6.
    public static func selfCheckError() -> Double {
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
                            BLAS.sgemm(transA: ta, transB: tb, m: m, n: n, k: k, alpha: 1, a: ap.baseAddress!, lda: ta ? m : k,
                                       b: bp.baseAddress!, ldb: tb ? k : n, beta: 0, c: cp.baseAddress!, ldc: n)
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

    static let marker = "WLEDGER_BLAS_SELECTED"

    /// Call first thing in `main`, before any other thread starts: may replace the process (execv)
    /// with the same program and arguments under a better `OPENBLAS_CORETYPE`. In the replaced
    /// process it checks the kernels and removes the variables again, so programs this one starts
    /// (hooks, an external evaluator, numpy) see the environment the user gave.
    public static func selectAtLaunch() {
        if let chosen = getenv(marker).map({ String(cString: $0) }) {
            unsetenv(marker)
            unsetenv("OPENBLAS_CORETYPE")
            let error = selfCheckError()
            if error > 1e-4 {
                let message = "wledger: OpenBLAS \(chosen) kernels disagree with a double-precision product (relative error \(error)); using OpenBLAS's own choice\n"
                _ = message.withCString { write(2, $0, strlen($0)) }
                setenv("WLEDGER_BLAS_KERNEL", "openblas", 1)
                reexec()
            }
            return
        }
        if let keep = getenv("WLEDGER_BLAS_KERNEL"), String(cString: keep) == "openblas" { return }
        if getenv("OPENBLAS_CORETYPE") != nil { return }
        guard let core = override(current: coreName, cpuFlags: cpuFlags()) else { return }
        setenv("OPENBLAS_CORETYPE", core, 1)
        setenv(marker, core, 1)
        reexec()
        unsetenv("OPENBLAS_CORETYPE")  // execv failed: carry on with OpenBLAS's choice
        unsetenv(marker)
    }

    private static func reexec() {
        let args = CommandLine.unsafeArgv
        execv("/proc/self/exe", args)
    }
}
