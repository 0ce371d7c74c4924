/// Errors raised by wledger operations (on top of `TensorIOError`, `CodecError`, `LedgerError`).
public enum KitError: Error, CustomStringConvertible {
    /// Bad input from the user: exit code 2.
    case usage(String)
    /// A check failed or an operation was refused (dirty work tree, nothing to commit): exit code 1.
    case refused(String)

    public var description: String {
        switch self {
        case let .usage(m), let .refused(m): return m
        }
    }

    /// The process exit code for this error.
    public var exitCode: Int32 {
        switch self {
        case .usage: return 2
        case .refused: return 1
        }
    }
}
