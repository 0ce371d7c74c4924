/// Why a tokenizer could not be loaded.
///
/// Every case names the file it concerns; `description` is a one-line, lowercase message in the
/// style of git (`'path': problem`), with the offending JSON field in quotes.
public enum TokenizerError: Error, CustomStringConvertible, Equatable {
    /// The file could not be opened, read or mapped (`errno` text attached).
    case io(path: String, operation: String, reason: String)
    /// The file is not valid JSON (the parser's message, with its byte offset).
    case invalidJSON(path: String, reason: String)
    /// A field is missing, has the wrong type or an inconsistent value.
    case invalidField(path: String, field: String, reason: String)
    /// The file asks for a component or option this tokenizer does not implement.
    case unsupported(path: String, field: String, value: String)

    public var description: String {
        switch self {
        case let .io(path, operation, reason):
            return "cannot \(operation) '\(path)': \(reason)"
        case let .invalidJSON(path, reason):
            return "'\(path)': not valid JSON: \(reason)"
        case let .invalidField(path, field, reason):
            return "'\(path)': field '\(field)': \(reason)"
        case let .unsupported(path, field, value):
            return "'\(path)': field '\(field)': unsupported value \(value)"
        }
    }
}
