import TensorIO

/// Why an evaluation task could not be loaded or run.
///
/// Every case names the file (or task) it concerns; `description` is a one-line, lowercase message
/// in the style of git (`'path': problem`), with the offending field or line number.
public enum TaskError: Error, CustomStringConvertible, Equatable {
    /// A file or directory could not be opened, read or listed (`errno` text attached).
    case io(path: String, operation: String, reason: String)
    /// The file is not valid UTF-8 or not valid JSON (the parser's message, with its byte offset;
    /// `line` is set for JSONL files).
    case invalidJSON(path: String, line: Int?, reason: String)
    /// The file as a whole cannot serve: no questions, not UTF-8 text.
    case invalidFile(path: String, reason: String)
    /// A task field is missing or has the wrong type or an impossible value.
    case invalidField(path: String, field: String, reason: String)
    /// One example (BIG-bench: its index in `examples`; JSONL: its line number) is malformed.
    case invalidExample(path: String, example: String, reason: String)
    /// The task cannot be run as asked: too few examples for the shots, no examples of the
    /// requested kind, an empty prompt.
    case invalidRequest(task: String, reason: String)

    public var description: String {
        switch self {
        case let .io(path, operation, reason):
            return "cannot \(operation) '\(path)': \(reason)"
        case let .invalidJSON(path, line, reason):
            if let line { return "'\(path)': line \(line): not valid JSON: \(reason)" }
            return "'\(path)': not valid JSON: \(reason)"
        case let .invalidFile(path, reason):
            return "'\(path)': \(reason)"
        case let .invalidField(path, field, reason):
            return "'\(path)': field '\(field)': \(reason)"
        case let .invalidExample(path, example, reason):
            return "'\(path)': \(example): \(reason)"
        case let .invalidRequest(task, reason):
            return "task '\(task)': \(reason)"
        }
    }
}

/// Maps a task file, turning TensorIO's error into `TaskError.io` (same path, operation and
/// `errno` text).
func mapTaskFile(_ path: String) throws -> MappedFile {
    do {
        return try MappedFile(path: path)
    } catch let TensorIOError.io(_, operation, reason) {
        throw TaskError.io(path: path, operation: operation, reason: reason)
    } catch {
        throw TaskError.io(path: path, operation: "read", reason: "\(error)")
    }
}
