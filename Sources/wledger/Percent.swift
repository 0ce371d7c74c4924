import ArgumentParser
import Ops

/// A percentage written "40%" or "40". A bare number between 0 and 1 ("0.4") is refused: it
/// reads as a fraction (40%) as often as a percentage (0.4%); "0.4%" says the latter.
struct Percent: ExpressibleByArgument {
    var value: Double

    init?(argument: String) {
        let s = argument.hasSuffix("%") ? String(argument.dropLast()) : argument
        guard let v = Double(s), v >= 0, v <= 100 else { return nil }
        if !argument.hasSuffix("%"), v > 0, v < 1 { return nil }
        value = v
    }
}

extension RECT.Ranking: ExpressibleByArgument {}
