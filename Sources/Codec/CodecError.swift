/// Errors raised while encoding or decoding stored data.
public enum CodecError: Error, CustomStringConvertible, Equatable {
    /// zstd reported an error (its text attached).
    case zstd(operation: String, reason: String)
    /// Stored bytes are not a valid patch or chunk.
    case corrupt(what: String, reason: String)

    public var description: String {
        switch self {
        case let .zstd(op, reason): return "zstd \(op) failed: \(reason)"
        case let .corrupt(what, reason): return "corrupt \(what): \(reason)"
        }
    }
}
