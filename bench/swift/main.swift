// wledger-bench: micro-benchmarks for issue targets that need more than the CLI.
//
//   wledger-bench restrain [--rows 4096] [--cols 11008] [--rank 50]
//       PRUNE correction of a rank-50 accumulated ΔW on a BF16-stored 4096×11008 matrix:
//       randomized fast path vs LAPACK's full SVD, same run, with the max difference.
//   wledger-bench lowrank-bytes [--rows 4096] [--cols 11008]
//       Ledger bytes of one rank-one edit of a BF16 matrix committed through the real ledger.
//   wledger-bench prompt --model DIR [--tokens 128] [--threads 1] [--repeat 5] [--batch N] [--all-logits]
//       Prompt-processing throughput of the Engine: one `Model.forward` over a fresh KV cache of
//       `tokens` ids (a fixed pseudo-random sequence), logits for the last position only (as
//       llama-bench's pp test) or for every position (`--all-logits`, as scoring does). Best of
//       `repeat` timed runs after one warm-up run.
// Prints one JSON object per run on stdout.
import Engine
import Foundation
import Ledger
import LinAlg
import Ops
import TensorIO
import WLedgerKit

// OpenBLAS opened now, before any thread starts (see BLASKernel.load).
BLASKernel.load()

func arg(_ name: String, _ def: Int) -> Int {
    let a = CommandLine.arguments
    if let i = a.firstIndex(of: "--" + name), i + 1 < a.count, let v = Int(a[i + 1]) { return v }
    return def
}

func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

/// CPU seconds of the whole process (all threads): on a loaded machine, a 1-thread run's CPU time
/// is close to its wall time on an idle one.
func cpuNow() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

func bf16Round(_ x: [Double]) -> [Double] {
    let bytes = TensorMath.bytes(x, dtype: .bf16)
    return TensorMath.doubles(bytes, dtype: .bf16)
}

/// W_base ~ N(0, 0.02²) and ΔW = Σ_k s_k·u_k·v_kᵀ with s_k from 30 down to 0.5 (geometric).
func syntheticPair(rows m: Int, cols n: Int, rank r: Int) throws -> (base: [Double], edited: [Double]) {
    let base = bf16Round(Matrix.gaussian(rows: m, cols: n, seed: 1).data.map { 0.02 * $0 })
    let u = try BLAS.orthonormalColumns(Matrix.gaussian(rows: m, cols: r, seed: 2))
    let v = try BLAS.orthonormalColumns(Matrix.gaussian(rows: n, cols: r, seed: 3))
    var us = u
    for i in 0..<m { for k in 0..<r { us[i, k] *= 30 * pow(0.5 / 30, Double(k) / Double(max(r - 1, 1))) } }
    let dw = BLAS.multiply(us, v, transB: true)
    return (base, bf16Round(zip(base, dw.data).map(+)))
}

func restrainBench() throws {
    let m = arg("rows", 4096), n = arg("cols", 11008), r = arg("rank", 50)
    let (base, edited) = try syntheticPair(rows: m, cols: n, rank: r)
    let dw = Matrix(rows: m, cols: n, data: zip(edited, base).map { $0 - $1 })
    let sigmaMaxBase = try BLAS.lowRankSVD(Matrix(rows: m, cols: n, data: base), tolerance: 0, forceFull: true).s[0]
    let na = TensorMath.largestRowAndColumnNorms(base, rows: m, cols: n), nb = TensorMath.largestRowAndColumnNorms(edited, rows: m, cols: n)
    let noise = TensorMath.roundingNoise(dtype: .bf16, maxRowNorm: max(na.row, nb.row), maxColumnNorm: max(na.column, nb.column))
    var t = now()
    let fast = try Restrain.correction(delta: dw, sigmaMaxBase: sigmaMaxBase, alpha: M_E, noiseFloor: noise)
    let fastSeconds = now() - t
    t = now()
    let full = try Restrain.correction(delta: dw, sigmaMaxBase: sigmaMaxBase, alpha: M_E, noiseFloor: noise, forceFull: true)
    let fullSeconds = now() - t
    var maxDiff = 0.0, maxCorr = 0.0
    for i in 0..<fast.correction.data.count {
        maxDiff = max(maxDiff, abs(fast.correction.data[i] - full.correction.data[i]))
        maxCorr = max(maxCorr, abs(full.correction.data[i]))
    }
    // Largest difference after rounding both results to BF16, in units of the result's ulp.
    let a = TensorMath.bytes(zip(edited, fast.correction.data).map(+), dtype: .bf16)
    let b = TensorMath.bytes(zip(edited, full.correction.data).map(+), dtype: .bf16)
    var differing = 0
    for i in stride(from: 0, to: a.count, by: 2) where a[i] != b[i] || a[i + 1] != b[i + 1] { differing += 1 }
    let out: [String: Any] = [
        "benchmark": "restrain", "rows": m, "cols": n, "rank": r, "dtype": "BF16",
        "sigmaMaxBase": sigmaMaxBase, "restrained": fast.before.count, "restrainedFull": full.before.count,
        "fastMethod": fast.method, "fastSeconds": fastSeconds, "fullSeconds": fullSeconds, "speedup": fullSeconds / fastSeconds,
        "maxAbsDifference": maxDiff, "maxAbsCorrection": maxCorr, "bf16ElementsDiffering": differing,
        "residualSpectralBound": fast.residual, "noiseFloor": noise,
    ]
    print(String(decoding: try JSONSerialization.data(withJSONObject: out, options: [.sortedKeys]), as: UTF8.self))
}

func lowRankBytesBench() throws {
    let m = arg("rows", 4096), n = arg("cols", 11008)
    let dir = NSTemporaryDirectory() + "/wledger-lowrank-\(getpid())"
    defer { try? FileManager.default.removeItem(atPath: dir) }
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    let base = Matrix.gaussian(rows: m, cols: n, seed: 5).data.map { 0.02 * $0 }
    let header = SafetensorsHeader.make(tensors: [("model.layers.0.mlp.down_proj.weight", .bf16, [m, n])])
    try Data(header.prefixBytes + TensorMath.bytes(base, dtype: .bf16)).write(to: URL(fileURLWithPath: dir + "/model.safetensors"))
    _ = try Repository.initialize(at: dir)
    // A ROME-like rank-one update W += u·vᵀ with ‖u‖·‖v‖ ≈ 5.
    let u = Matrix.gaussian(rows: m, cols: 1, seed: 6).data, v = Matrix.gaussian(rows: n, cols: 1, seed: 7).data
    let scale = 5 / (u.reduce(0) { $0 + $1 * $1 }.squareRoot() * v.reduce(0) { $0 + $1 * $1 }.squareRoot())
    let stored = TensorMath.doubles(TensorMath.bytes(base, dtype: .bf16), dtype: .bf16)
    var edited = stored
    for i in 0..<m { for j in 0..<n { edited[i * n + j] += scale * u[i] * v[j] } }
    let fh = FileHandle(forUpdatingAtPath: dir + "/model.safetensors")!
    try fh.seek(toOffset: UInt64(header.dataStart))
    fh.write(Data(TensorMath.bytes(edited, dtype: .bf16)))
    try fh.close()
    let repo = try Repository.open(at: dir, forWriting: true)
    let r = try repo.commit(CommitOptions(message: "rank-one"))
    let dense = m * n * 2
    let target = 4 * (m + n) * 2
    let out: [String: Any] = [
        "benchmark": "lowrank-bytes", "rows": m, "cols": n, "dtype": "BF16", "encoding": r.tensors.first?.encoding ?? "?",
        "storedBytes": r.storedBytes, "denseBytes": dense, "factorBudget": target, "factorBytesRaw": (m + n) * 4,
        "residualBytesAtMost": max(0, r.storedBytes - (m + n) * 4), "ratioToDense": Double(r.storedBytes) / Double(dense),
    ]
    print(String(decoding: try JSONSerialization.data(withJSONObject: out, options: [.sortedKeys]), as: UTF8.self))
}

func stringArg(_ name: String) -> String? {
    let a = CommandLine.arguments
    if let i = a.firstIndex(of: "--" + name), i + 1 < a.count { return a[i + 1] }
    return nil
}

func promptBench() throws {
    guard let dir = stringArg("model") else { throw ModelError.invalidInput(path: "", reason: "--model DIR is required") }
    let n = arg("tokens", 128), threads = arg("threads", 1), repeats = arg("repeat", 5)
    let batch = arg("batch", n)
    let allLogits = CommandLine.arguments.contains("--all-logits")
    BLAS.setThreadCount(threads)
    var t = now()
    let model = try Model(directory: dir)
    let loadSeconds = now() - t
    // A fixed sequence of ordinary (non-special) ids; throughput does not depend on the values.
    var state: UInt64 = 0x9E37_79B9_7F4A_7C15
    let ids = (0..<n).map { _ -> Int in
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return 100 + Int((state >> 33) % UInt64(model.config.vocabSize - 200))
    }
    let workspace = model.makeWorkspace(maxTokens: batch)
    let rows = allLogits ? 0..<n : (n - 1)..<n
    var times: [Double] = [], cpuTimes: [Double] = []
    var checksum: Float = 0
    for r in 0...repeats {
        let cache = model.makeCache(capacity: n)
        t = now()
        let c = cpuNow()
        try model.forward(ids, cache: cache, workspace: workspace, logitRows: rows) { _, logits in checksum += logits[0] }
        if r > 0 { times.append(now() - t); cpuTimes.append(cpuNow() - c) }
    }
    let best = times.min()!
    let out: [String: Any] = [
        "benchmark": "prompt", "blas": BLASKernel.coreName, "model": dir, "dtype": "\(model.storageDType)", "tokens": n, "threads": threads,
        "batch": batch, "logitRows": rows.count, "repeats": repeats, "loadSeconds": loadSeconds,
        "bestSeconds": best, "medianSeconds": times.sorted()[times.count / 2],
        "tokensPerSecond": Double(n) / best, "bestCPUSeconds": cpuTimes.min()!, "checksum": Double(checksum),
    ]
    print(String(decoding: try JSONSerialization.data(withJSONObject: out, options: [.sortedKeys]), as: UTF8.self))
}

do {
    switch CommandLine.arguments.dropFirst().first {
    case "restrain": try restrainBench()
    case "lowrank-bytes": try lowRankBytesBench()
    case "prompt": try promptBench()
    default:
        FileHandle.standardError.write("usage: wledger-bench restrain|lowrank-bytes|prompt [options] (see bench/swift/main.swift)\n".data(using: .utf8)!)
        exit(2)
    }
} catch {
    FileHandle.standardError.write("error: \(error)\n".data(using: .utf8)!)
    exit(1)
}
