import ArgumentParser
import Ops

/// A percentage written "40%" or "40".
struct Percent: ExpressibleByArgument {
    var value: Double

    init?(argument: String) {
        let s = argument.hasSuffix("%") ? String(argument.dropLast()) : argument
        guard let v = Double(s), v >= 0, v <= 100 else { return nil }
        value = v
    }
}

extension RECT.Ranking: ExpressibleByArgument {}
