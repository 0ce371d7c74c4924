import CBLASLoader
import Foundation
import LinAlg
import TensorIO
import XCTest

final class LinAlgTests: XCTestCase {
    func testSgemmMatchesNaiveProduct() {
        let m = 5, n = 7, k = 3
        let a = (0..<(m * k)).map { Float($0 % 5) - 2 }, b = (0..<(k * n)).map { Float($0 % 3) * 0.5 }
        var c = [Float](repeating: 0, count: m * n)
        a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in c.withUnsafeMutableBufferPointer {
            BLAS.sgemm(m: m, n: n, k: k, a: ap.baseAddress!, b: bp.baseAddress!, c: $0.baseAddress!)
        } } }
        for i in 0..<m { for j in 0..<n {
            var s: Float = 0
            for t in 0..<k { s += a[i * k + t] * b[t * n + j] }
            XCTAssertEqual(c[i * n + j], s, accuracy: 1e-5)
        } }
    }

    func testSingularValuesOfKnownMatrix() throws {
        // diag(3, 2) padded to 3×2, rotated: singular values stay 3 and 2.
        let a: [Double] = [0, 2, 3, 0, 0, 0]
        let s = try BLAS.singularValues(a, rows: 3, cols: 2)
        XCTAssertEqual(s[0], 3, accuracy: 1e-12)
        XCTAssertEqual(s[1], 2, accuracy: 1e-12)
    }

    func testDeltaStatisticsAgainstDirectFloat64() {
        var rng = SystemRandomNumberGenerator()
        let n = 200_003
        let a = (0..<n).map { _ in Float.random(in: -1...1, using: &rng) }
        var b = a
        for i in stride(from: 0, to: n, by: 7) { b[i] += Float.random(in: -0.1...0.1, using: &rng) }
        for dtype in [DType.f32, .bf16, .f16] {
            var ab = [UInt8](repeating: 0, count: n * dtype.size), bb = ab
            a.withUnsafeBufferPointer { v in ab.withUnsafeMutableBytes { encodeFromFloat(v, dtype: dtype, into: $0) } }
            b.withUnsafeBufferPointer { v in bb.withUnsafeMutableBytes { encodeFromFloat(v, dtype: dtype, into: $0) } }
            let s = ab.withUnsafeBytes { p in bb.withUnsafeBytes { DeltaStatistics.compute(parent: p, child: $0, dtype: dtype) } }
            var changed = 0, l1 = 0.0, sq = 0.0, mx = 0.0, base = 0.0
            ab.withUnsafeBytes { pa in
                bb.withUnsafeBytes { pb in
                    for i in 0..<n {
                        let x = loadDouble(pa, i, dtype), y = loadDouble(pb, i, dtype)
                        if ab[(i * dtype.size)..<((i + 1) * dtype.size)] != bb[(i * dtype.size)..<((i + 1) * dtype.size)] { changed += 1 }
                        l1 += abs(y - x); sq += (y - x) * (y - x); mx = max(mx, abs(y - x)); base += x * x
                    }
                }
            }
            XCTAssertEqual(s.changed, changed)
            XCTAssertEqual(s.l1, l1, accuracy: 1e-9 * max(1, l1))
            XCTAssertEqual(s.frobenius, sq.squareRoot(), accuracy: 1e-9 * max(1, sq))
            XCTAssertEqual(s.maxAbs, mx)
            XCTAssertEqual(s.baseNorm, base.squareRoot(), accuracy: 1e-9 * max(1, base.squareRoot()))
        }
    }

    /// A BOOL mask counts as 0/1: a flipped element is a change of 1 (it read as changed with
    /// every statistic 0), integers as themselves.
    func testDeltaStatisticsOfBoolAndIntegerTensors() {
        let parent: [UInt8] = [0, 1, 1, 0, 0], child: [UInt8] = [1, 1, 0, 0, 1]
        let s = parent.withUnsafeBytes { p in child.withUnsafeBytes { DeltaStatistics.compute(parent: p, child: $0, dtype: .bool) } }
        XCTAssertEqual(s.changed, 3)
        XCTAssertEqual(s.l1, 3)
        XCTAssertEqual(s.frobenius, 3.0.squareRoot(), accuracy: 1e-15)
        XCTAssertEqual(s.maxAbs, 1)
        XCTAssertEqual(s.baseNorm, 2.0.squareRoot(), accuracy: 1e-15)
        let ip: [Int64] = [5, -3, 7], ic: [Int64] = [5, 1, 7]
        let t = ip.withUnsafeBytes { p in ic.withUnsafeBytes { DeltaStatistics.compute(parent: p, child: $0, dtype: .i64) } }
        XCTAssertEqual([Double(t.changed), t.l1, t.maxAbs], [1, 4, 4])
        // 64-bit integers beyond 2⁵³ by their exact difference (their doubles are equal).
        let up: [UInt64] = [.max, 7], uc: [UInt64] = [.max - 1, 7]
        let u = up.withUnsafeBytes { p in uc.withUnsafeBytes { DeltaStatistics.compute(parent: p, child: $0, dtype: .u64) } }
        XCTAssertEqual([Double(u.changed), u.l1, u.frobenius, u.maxAbs], [1, 1, 1, 1])
        let sp: [Int64] = [.min, .max, 1 << 60], sc: [Int64] = [.max, .min, (1 << 60) + 3]
        let i = sp.withUnsafeBytes { p in sc.withUnsafeBytes { DeltaStatistics.compute(parent: p, child: $0, dtype: .i64) } }
        XCTAssertEqual(i.changed, 3)
        XCTAssertEqual(i.maxAbs, 0x1p64, "|max − min| = 2⁶⁴ − 1, rounded once")
        XCTAssertEqual(i.l1, 2 * 0x1p64 + 3)
        // 8-bit floats by their values (they read as changed with every statistic 0): E4M3
        // 0x38 = 1 → 0x40 = 2 and 0x7E = 448 → 0xFE = −448; E5M2 0x3C = 1 → 0x7C = +Inf.
        let e4 = [UInt8]([0x38, 0x7E, 0x00]).withUnsafeBytes { p in
            [UInt8]([0x40, 0xFE, 0x00]).withUnsafeBytes { DeltaStatistics.compute(parent: p, child: $0, dtype: .f8e4m3) }
        }
        XCTAssertEqual([Double(e4.changed), e4.l1, e4.frobenius * e4.frobenius, e4.maxAbs, e4.baseNorm * e4.baseNorm], [2, 897, 1 + 896 * 896, 896, 1 + 448 * 448])
        let e5 = [UInt8]([0x3C]).withUnsafeBytes { p in [UInt8]([0x7C]).withUnsafeBytes { DeltaStatistics.compute(parent: p, child: $0, dtype: .f8e5m2) } }
        XCTAssertEqual([e5.l1, Double(e5.nonFinite)], [.infinity, 1])
    }

    /// F64 weights near the ends of a double's range: ‖ΔW‖F and ‖W‖F of values around 1e300
    /// (whose squares overflow) and 1e-300 (whose squares underflow to 0) are finite and
    /// right, checked against the same sums in scaled form written out here.
    func testDeltaStatisticsOfF64ValuesBeyondTheSquaresRange() {
        for magnitude in [1e300, 1e-300, 1.0] {
            let parent = (0..<1000).map { Double(($0 % 13) - 6) * magnitude }
            var child = parent
            for i in stride(from: 3, to: 1000, by: 10) { child[i] += Double(i % 7 + 1) * magnitude }
            let s = parent.withUnsafeBytes { p in child.withUnsafeBytes { DeltaStatistics.compute(parent: p, child: $0, dtype: .f64) } }
            // Σ((c − p)/m)² and Σ(p/m)² are small integers here: exact in double.
            let unitDelta = zip(child, parent).reduce(0.0) { let d = ($1.0 - $1.1) / magnitude; return $0 + d * d }
            let unitBase = parent.reduce(0.0) { let v = $1 / magnitude; return $0 + v * v }
            XCTAssertEqual(s.changed, 100)
            XCTAssertEqual(s.frobenius / magnitude, unitDelta.squareRoot(), accuracy: 1e-12 * unitDelta.squareRoot(), "\(magnitude)")
            XCTAssertEqual(s.baseNorm / magnitude, unitBase.squareRoot(), accuracy: 1e-12 * unitBase.squareRoot(), "\(magnitude)")
            XCTAssertEqual(s.maxAbs, 7 * magnitude)
        }
        // Several tensors' norms together (diff's and log --stat's total ‖ΔW‖F): finite norms
        // never add up to +∞ or 0; a NaN or +∞ among them stays.
        XCTAssertEqual(DeltaStatistics.combinedNorm([1e200, 1e200]) / 1e200, 2.0.squareRoot(), accuracy: 1e-15)
        XCTAssertEqual(DeltaStatistics.combinedNorm([3e-200, 4e-200]) / 1e-200, 5, accuracy: 1e-14)
        XCTAssertEqual(DeltaStatistics.combinedNorm([3, 4]), 5)
        XCTAssertEqual(DeltaStatistics.combinedNorm([]), 0)
        XCTAssertTrue(DeltaStatistics.combinedNorm([1, .nan]).isNaN)
        XCTAssertEqual(DeltaStatistics.combinedNorm([1, .infinity]), .infinity)
        // A difference that exceeds a double (1e308 − (−1e308)) is infinite, as before.
        let s = [-1e308].withUnsafeBytes { p in [1e308].withUnsafeBytes { DeltaStatistics.compute(parent: p, child: $0, dtype: .f64) } }
        XCTAssertEqual([s.l1, s.frobenius], [.infinity, .infinity])
    }

    /// A NaN anywhere in ΔW makes Σ|ΔW|, ‖ΔW‖F and max|ΔW| NaN (the kernel's maximum alone used
    /// to skip it and report the largest finite change); an infinite change makes them +∞.
    func testDeltaStatisticsOfNonFiniteChanges() {
        let n = 3 * (1 << 20) + 5   // several blocks, and a tail
        let a = (0..<n).map { Float(($0 % 97) - 48) / 64 }
        for dtype in [DType.f32, .bf16, .f16, .f64] {
            for (position, value) in [(17, Float.nan), (n - 1, .nan), (2 * (1 << 20) + 3, .infinity), (5, -.infinity)] {
                var b = a
                b[position] = value
                b[1000] += 0.5
                let encode = { (v: [Float]) -> [UInt8] in
                    if dtype == .f64 { return v.map(Double.init).withUnsafeBytes { Array($0) } }
                    var out = [UInt8](repeating: 0, count: n * dtype.size)
                    v.withUnsafeBufferPointer { p in out.withUnsafeMutableBytes { encodeFromFloat(p, dtype: dtype, into: $0) } }
                    return out
                }
                let ab = encode(a), bb = encode(b)
                let s = ab.withUnsafeBytes { p in bb.withUnsafeBytes { DeltaStatistics.compute(parent: p, child: $0, dtype: dtype) } }
                XCTAssertEqual(s.changed, 2, "\(dtype) \(position)")
                XCTAssertEqual(s.nonFinite, 1, "\(dtype) \(position)")
                if value.isNaN {
                    XCTAssertTrue(s.maxAbs.isNaN && s.l1.isNaN && s.frobenius.isNaN, "\(dtype) \(position): \(s.maxAbs) \(s.l1) \(s.frobenius)")
                } else {
                    XCTAssertEqual(s.maxAbs, .infinity, "\(dtype) \(position)")
                    XCTAssertEqual(s.l1, .infinity, "\(dtype) \(position)")
                }
            }
        }
    }
}

/// `BLASKernel`: which OpenBLAS fallbacks wledger overrides, and the kernel self-check.
final class BLASKernelChoiceTests: XCTestCase {
    func testOverridesOnlySSEFallbacksAndOnlyWithSupportedInstructions() {
        let skx: Set<String> = ["sse3", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512cd"]
        XCTAssertEqual(BLASKernel.override(current: "Prescott", cpuFlags: skx.union(["avx512_bf16"])), "Cooperlake")
        XCTAssertEqual(BLASKernel.override(current: "Prescott", cpuFlags: skx), "SkylakeX")
        XCTAssertEqual(BLASKernel.override(current: "Nehalem", cpuFlags: ["sse3", "avx", "avx2", "fma"]), "Haswell")
        // AVX-512 without VL (Knights Landing) is no SkylakeX.
        XCTAssertEqual(BLASKernel.override(current: "Prescott", cpuFlags: skx.subtracting(["avx512vl"])), "Haswell")
        XCTAssertNil(BLASKernel.override(current: "Prescott", cpuFlags: ["sse3", "avx"]))
        // A kernel OpenBLAS recognized is kept, even a weaker one.
        XCTAssertNil(BLASKernel.override(current: "Haswell", cpuFlags: skx))
        XCTAssertNil(BLASKernel.override(current: "Zen", cpuFlags: skx))
        XCTAssertNil(BLASKernel.override(current: "Cooperlake", cpuFlags: skx))
    }

    /// OpenBLAS is opened a second time only for processes of large calls, when neither
    /// `WLEDGER_BLAS_KERNEL=openblas` nor the user's `OPENBLAS_CORETYPE` says otherwise.
    func testReopensOnlyForLargeCallsUnlessTheUserChose() {
        let skx: Set<String> = ["sse3", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512cd"]
        let none: (String) -> String? = { _ in nil }
        XCTAssertEqual(BLASKernel.reopenCore(own: "Prescott", smallCalls: false, environment: none, cpuFlags: skx), "SkylakeX")
        XCTAssertNil(BLASKernel.reopenCore(own: "Prescott", smallCalls: true, environment: none, cpuFlags: skx))
        XCTAssertNil(BLASKernel.reopenCore(own: "Prescott", smallCalls: false, environment: { $0 == "WLEDGER_BLAS_KERNEL" ? "openblas" : nil }, cpuFlags: skx))
        XCTAssertEqual(BLASKernel.reopenCore(own: "Prescott", smallCalls: false, environment: { $0 == "WLEDGER_BLAS_KERNEL" ? "auto" : nil }, cpuFlags: skx), "SkylakeX")
        XCTAssertNil(BLASKernel.reopenCore(own: "Prescott", smallCalls: false, environment: { $0 == "OPENBLAS_CORETYPE" ? "Haswell" : nil }, cpuFlags: skx))
        XCTAssertNil(BLASKernel.reopenCore(own: "Haswell", smallCalls: false, environment: none, cpuFlags: skx))
    }

    /// `wl_blas_open_with` hands OpenBLAS's constructor a variable (here the Haswell kernels,
    /// which OpenBLAS names back) without it entering this process's environment, while another
    /// thread reads the environment all along; then the library is opened again as chosen.
    func testOpenWithVariablesLeavesTheEnvironmentAlone() throws {
        guard getenv("OPENBLAS_CORETYPE") == nil, BLASKernel.cpuFlags().isSuperset(of: ["avx2", "fma"]) else {
            throw XCTSkip("needs AVX2/FMA and no OPENBLAS_CORETYPE of the machine's owner")
        }
        let chosen = BLASKernel.coreName   // opens the library the usual way first
        let watching = StopFlag()
        let reader = Thread { while !watching.stopped { _ = getenv("OPENBLAS_CORETYPE") } }
        reader.start()
        wl_blas_close()
        var entries: [UnsafePointer<CChar>?] = [UnsafePointer(strdup("OPENBLAS_CORETYPE=Haswell")), nil]
        XCTAssertEqual(entries.withUnsafeMutableBufferPointer { wl_blas_open_with($0.baseAddress!) }, 0)
        XCTAssertEqual(String(cString: wl_blas_corename()), "Haswell")
        XCTAssertNil(getenv("OPENBLAS_CORETYPE"))
        watching.stop()
        while !reader.isFinished { usleep(1_000) }
        wl_blas_close()
        var again: [UnsafePointer<CChar>?] = [UnsafePointer(strdup("OPENBLAS_CORETYPE=\(chosen)")), nil]
        XCTAssertEqual(again.withUnsafeMutableBufferPointer { wl_blas_open_with($0.baseAddress!) }, 0)
        XCTAssertEqual(String(cString: wl_blas_corename()), chosen)
        XCTAssertNil(getenv("OPENBLAS_CORETYPE"))
    }

    /// Commands whose BLAS calls are small factorizations (`commit`, `revert`, `prune`) open
    /// OpenBLAS single-threaded: with the variables they ask for, OpenBLAS reports one thread
    /// and still factorizes (an SVD whose singular values are known); other commands leave the
    /// thread count to OpenBLAS. The library is then opened again as this process had it.
    func testSingleThreadedOpeningGivesOpenBLASOneThread() throws {
        XCTAssertEqual(BLASKernel.openingVariables(smallCalls: false), [:])
        guard getenv("OPENBLAS_NUM_THREADS") == nil, getenv("OMP_NUM_THREADS") == nil else {
            throw XCTSkip("the machine's owner set OpenBLAS's thread count")
        }
        let chosen = BLASKernel.coreName, threads = BLAS.threadCount
        func open(_ variables: [String: String]) {
            var entries = variables.map { UnsafePointer(strdup("\($0.key)=\($0.value)")) } + [nil]
            XCTAssertEqual(entries.withUnsafeMutableBufferPointer { wl_blas_open_with($0.baseAddress!) }, 0)
        }
        wl_blas_close()
        open(BLASKernel.openingVariables(smallCalls: true).merging(["OPENBLAS_CORETYPE": chosen]) { a, _ in a })
        XCTAssertEqual(wl_blas_get_num_threads(), 1)
        XCTAssertNil(getenv("OPENBLAS_NUM_THREADS"))
        // diag(3, 2, 1) with its rows permuted: singular values 3, 2, 1.
        let s = try BLAS.svd(Matrix(rows: 3, cols: 3, data: [0, 2, 0, 0, 0, 1, 3, 0, 0])).s
        XCTAssertEqual(s[0], 3, accuracy: 1e-12); XCTAssertEqual(s[1], 2, accuracy: 1e-12); XCTAssertEqual(s[2], 1, accuracy: 1e-12)
        wl_blas_close()
        open(["OPENBLAS_CORETYPE": chosen])
        XCTAssertEqual(String(cString: wl_blas_corename()), chosen)
        XCTAssertEqual(Int(wl_blas_get_num_threads()), threads)
    }

    func testCPUFlagsParsesProcCpuinfo() throws {
        let path = NSTemporaryDirectory() + "cpuinfo-\(getpid())"
        try "processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu sse3 avx2 fma avx512f\nbugs\t\t: spectre_v1\n\nprocessor\t: 1\nflags\t\t: fpu\n"
            .write(toFile: path, atomically: true, encoding: .utf8)
        defer { unlink(path) }
        XCTAssertEqual(BLASKernel.cpuFlags(cpuinfo: path), ["fpu", "sse3", "avx2", "fma", "avx512f"])
        XCTAssertEqual(BLASKernel.cpuFlags(cpuinfo: "/nonexistent/cpuinfo"), [])
    }

    /// The self-check's reference is written out in double; the process's kernels (whatever
    /// OpenBLAS picked for this test process) must meet it to F32 rounding.
    func testSelfCheckPassesOnThisProcessKernels() {
        XCTAssertLessThan(BLASKernel.selfCheckError(), 1e-5, "kernels \(BLASKernel.coreName)")
    }
}

/// A stop flag shared with a reader thread.
private final class StopFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    var stopped: Bool { lock.lock(); defer { lock.unlock() }; return value }
    func stop() { lock.lock(); value = true; lock.unlock() }
}
