import Engine
import Foundation
import Ledger
import LinAlg
import Ops
import TensorIO

/// One edited matrix as the weight gate sees it (vs the base commit).
public struct GateTensor: Encodable, Sendable {
    public var name: String
    /// Σ|W − W_base|.
    public var l1: Double
    /// Share of elements with δ = |ΔW / W_base| > 0.171.
    public var deltaShare: Double
    /// κ(W_base), κ(W) and their ratio (only when gate.max-kappa-growth is set; nil for a singular matrix).
    public var baseKappa: Double?
    public var kappa: Double?
    public var kappaGrowth: Double?
    public var failures: [String]
}

/// `wledger gate`'s answer.
public struct GateReport: Encodable, Sendable {
    public var candidate: String
    public var head: String
    public var base: String
    public var limits: Limits
    /// Matrices whose weights differ from HEAD (the ones this change edits).
    public var tensors: [GateTensor]
    public var failures: [String]
    public var elapsedSeconds: Double
    /// CPU time of the process while gating (all threads).
    public var cpuSeconds: Double

    public struct Limits: Encodable, Sendable {
        public var maxL1: Double?
        public var maxDeltaShare: Double?
        public var maxKappaGrowth: Double?
    }
}

extension Repository {
    /// The weight-space gate: for every floating-point matrix whose weights in `candidate`
    /// (default: $WLEDGER_CANDIDATE, else the work tree) differ from HEAD's, Σ|ΔW|, the share of
    /// δ > 0.171 and (when limited) κ growth against the base commit, checked against the gate.*
    /// limits of `.wledger/config`. Changed tensors are found by XXH3 fingerprints; only edited
    /// matrices are decoded, so this takes a fraction of a second on a small model.
    /// "WHAT value > KEY limit", with 4 significant digits or as many more as it takes for the
    /// two numbers to read differently (1.00047 against a limit of 1.0001 read "1 > 1").
    static func exceeds(_ what: String, _ value: Double, _ key: String, _ limit: Double) -> String {
        var digits = 4
        while digits < 17, String(format: "%.\(digits)g", value) == String(format: "%.\(digits)g", limit) { digits += 1 }
        return "\(what) \(String(format: "%.\(digits)g", value)) > \(key) \(String(format: "%.\(digits)g", limit))"
    }

    public func gate(candidate: String? = nil) throws -> GateReport {
        let clock = ContinuousClock()
        let start = clock.now
        let cpuStart = Self.processCPUSeconds()
        let config = try ConfigFile.load(configPath)
        try config.validate(section: "gate")
        let maxL1 = config.get("gate.max-l1").flatMap(Double.init)
        let maxShare: Double? = config.get("gate.max-delta-share").flatMap(Threshold.Amount.init).map {
            switch $0 {
            case let .absolute(a): return a
            case let .percent(p): return p / 100
            }
        }
        let maxKappa = config.get("gate.max-kappa-growth").flatMap(Double.init)

        let dir = absolutePath(candidate ?? root)
        let head = try ledger.head().commit
        let baseID = try resolve("base")
        let headManifest = try ledger.manifest(of: head)
        let baseManifest = try ledger.manifest(of: baseID)
        let scanned = try ModelDirectory.scan(dir)
        let weights = try scanned.open(populate: Set(scanned.weightFiles))
        var tensors: [GateTensor] = []
        var failures: [String] = []
        for (name, e) in headManifest.sorted(by: { $0.key < $1.key }) where e.dtype.isFloat {
            guard let loc = weights.tensors[name], let bytes = weights.bytes(name) else {
                throw KitError.usage("'\(dir)': tensor '\(name)' is missing from the candidate")
            }
            guard loc.info.dtype == e.dtype, loc.info.shape == e.shape else {
                throw KitError.usage("'\(dir)/\(loc.file)': tensor '\(name)' has another dtype or shape than at HEAD")
            }
            guard let v = try ledger.version(e.hash), Fingerprint.of(bytes).hex != v.fingerprint else { continue }
            guard let b = baseManifest[name], let (rows, cols) = TensorMath.matrixShape(e.shape) else { continue }
            let w = TensorMath.doubles(bytes, dtype: e.dtype)
            let wb = TensorMath.doubles(try ledger.tensorBytes(of: b), dtype: b.dtype)
            var l1 = 0.0
            var above = 0
            for i in 0..<w.count {
                let d = w[i] - wb[i]
                l1 += abs(d)
                if RelativeChange.delta(d, base: wb[i]) > 0.171 { above += 1 }
            }
            var t = GateTensor(name: name, l1: l1, deltaShare: w.isEmpty ? 0 : Double(above) / Double(w.count), failures: [])
            if let maxL1, !(l1 <= maxL1) { t.failures.append(Self.exceeds("Σ|ΔW|", l1, "gate.max-l1", maxL1)) }
            if let maxShare, !(t.deltaShare <= maxShare) {
                t.failures.append(Self.exceeds("share of δ > 0.171", t.deltaShare, "gate.max-delta-share", maxShare))
            }
            if let maxKappa {
                let kb = try spectrum(of: b)?.kappa
                let k = try SpectrumInfo.of(w, rows: rows, cols: cols).kappa
                t.baseKappa = kb
                t.kappa = k
                if let kb, let k { t.kappaGrowth = k / kb }
                if let g = t.kappaGrowth, !(g <= maxKappa) {
                    t.failures.append(Self.exceeds("κ growth", g, "gate.max-kappa-growth", maxKappa))
                } else if kb != nil && k == nil {
                    t.failures.append("the matrix became singular (κ = ∞)")
                }
            }
            failures += t.failures.map { "\(name): \($0)" }
            tensors.append(t)
        }
        return GateReport(candidate: dir, head: head, base: baseID,
                          limits: .init(maxL1: maxL1, maxDeltaShare: maxShare, maxKappaGrowth: maxKappa),
                          tensors: tensors, failures: failures, elapsedSeconds: TaskEvaluator.secondsOf(clock.now - start),
                          cpuSeconds: Self.processCPUSeconds() - cpuStart)
    }

    static func processCPUSeconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }
}
