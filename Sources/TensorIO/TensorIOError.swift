/// Errors raised while reading or writing tensor files and model directories.
///
/// Every case names the file it concerns; `description` is a one-line, lowercase message in the
/// style of git (`'path': problem`).
public enum TensorIOError: Error, CustomStringConvertible, Equatable {
    /// The file could not be opened, read, mapped or written (`errno` text attached).
    case io(path: String, operation: String, reason: String)
    /// The file is not a valid safetensors file.
    case invalidSafetensors(path: String, reason: String)
    /// The file is something else that users commonly mistake for weights.
    case notWeights(path: String, what: String, hint: String)
    /// The model directory is malformed (missing files, bad index, escaping shard names).
    case invalidModelDirectory(path: String, reason: String)
    /// A tensor's data cannot be used for the requested operation.
    case invalidTensor(path: String, tensor: String, reason: String)

    public var description: String {
        switch self {
        case let .io(path, operation, reason):
            return "cannot \(operation) '\(path)': \(reason)"
        case let .invalidSafetensors(path, reason):
            return "'\(path)': not a valid safetensors file: \(reason)"
        case let .notWeights(path, what, hint):
            return "'\(path)' is \(what), not safetensors weights: \(hint)"
        case let .invalidModelDirectory(path, reason):
            return "'\(path)': \(reason)"
        case let .invalidTensor(path, tensor, reason):
            return "'\(path)': tensor '\(tensor)': \(reason)"
        }
    }
}
