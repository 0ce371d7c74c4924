import Foundation
import Ledger
import LinAlg
import Ops
import TensorIO

/// Extreme singular values and condition number of a matrix.
public struct SpectrumInfo: Encodable, Sendable, Equatable {
    public var sigmaMax: Double
    public var sigmaMin: Double
    /// σmax/σmin; nil when σmin = 0 (singular).
    public var kappa: Double?

    public init(sigmaMax: Double, sigmaMin: Double) {
        self.sigmaMax = sigmaMax
        self.sigmaMin = sigmaMin
        kappa = sigmaMin > 0 ? sigmaMax / sigmaMin : nil
    }

    /// Singular values of a row-major matrix given as doubles (LAPACK dgesdd, values only).
    static func of(_ values: [Double], rows: Int, cols: Int) throws -> SpectrumInfo {
        let s = try BLAS.singularValues(values, rows: rows, cols: cols)
        return SpectrumInfo(sigmaMax: s.first ?? 0, sigmaMin: s.last ?? 0)
    }
}

extension Repository {
    /// σmax, σmin of a stored 2-D tensor version, from the ledger's cache or computed (and cached);
    /// nil for other tensors and for those holding NaN or Inf.
    /// - Parameter deferred: where given, a computed spectrum is added to it instead of being
    ///   cached at once (`cacheSpectra`), for a command that may still be refused.
    func spectrum(of entry: ManifestEntry, values: [Double]? = nil, deferred: DeferredSpectra? = nil) throws -> SpectrumInfo? {
        guard entry.dtype.isFloat, let (rows, cols) = TensorMath.matrixShape(entry.shape) else { return nil }
        if let s = try ledger.spectrum(entry.hash) { return SpectrumInfo(sigmaMax: s.sigmaMax, sigmaMin: s.sigmaMin) }
        let v = try values ?? TensorMath.doubles(ledger.tensorBytes(of: entry), dtype: entry.dtype)
        // Weights with NaN or Inf (committed with --allow-nonfinite, or stashed) have no spectrum.
        guard v.allSatisfy(\.isFinite) else { return nil }
        let s = try SpectrumInfo.of(v, rows: rows, cols: cols)
        if let deferred {
            deferred.items.append((entry.hash, rows, cols, s))
        } else {
            // A read-only command may race a writer; the cache is derived data, so failing to store it is harmless.
            try? ledger.setSpectrum(entry.hash, rows: rows, cols: cols, sigmaMax: s.sigmaMax, sigmaMin: s.sigmaMin)
        }
        return s
    }

    /// Caches the spectra a command computed with `deferred`, once it goes ahead.
    func cacheSpectra(_ deferred: DeferredSpectra) {
        for (hash, rows, cols, s) in deferred.items {
            try? ledger.setSpectrum(hash, rows: rows, cols: cols, sigmaMax: s.sigmaMax, sigmaMin: s.sigmaMin)
        }
    }
}

/// Spectra computed by a command that may still be refused (which must leave the ledger as it
/// was), cached only when it goes ahead.
final class DeferredSpectra {
    var items: [(hash: String, rows: Int, cols: Int, info: SpectrumInfo)] = []
}
