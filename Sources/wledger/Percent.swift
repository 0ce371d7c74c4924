import ArgumentParser
import Ops

/// A percentage written "40%" or "40". A bare number between 0 and 1 ("0.4") is refused: it
/// reads as a fraction (40%) as often as a percentage (0.4%); "0.4%" says the latter.
struct Percent: ExpressibleByArgument {
    var value: Double

    init?(argument: String) {
        guard let v = Percent.parse(argument), v <= 100 else { return nil }
        value = v
    }

    /// The percentage `argument` gives (any finite non-negative amount), or nil.
    static func parse(_ argument: String) -> Double? {
        let s = argument.hasSuffix("%") ? String(argument.dropLast()) : argument
        // Decimal only: Double also reads hexadecimal ("0x10" was 16%).
        guard s.allSatisfy({ $0.isASCII && ($0.isNumber || ".eE+-".contains($0)) }) else { return nil }
        guard let v = Double(s), v >= 0, v.isFinite else { return nil }
        if !argument.hasSuffix("%"), v > 0, v < 1 { return nil }
        return v
    }
}

/// A percentage that may exceed 100% ("250%"): a worsening of a metric such as perplexity,
/// which can rise to many times its base value.
struct GrowthPercent: ExpressibleByArgument {
    var value: Double

    init?(argument: String) {
        guard let v = Percent.parse(argument) else { return nil }
        value = v
    }
}

extension RECT.Ranking: ExpressibleByArgument {}
