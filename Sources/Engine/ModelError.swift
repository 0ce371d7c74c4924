/// Errors raised while loading a model or running it.
///
/// Every case names the file or model directory it concerns; `description` is a one-line,
/// lowercase message in the style of git (`'path': problem`).
public enum ModelError: Error, CustomStringConvertible, Equatable {
    /// config.json is missing, not JSON, or lacks a required field.
    case invalidConfig(path: String, reason: String)
    /// The model is of an architecture or variant the engine does not implement.
    case unsupportedModel(path: String, reason: String)
    /// A tensor the architecture needs is absent.
    case missingTensor(path: String, tensor: String)
    /// A tensor has the wrong shape or a dtype the engine cannot compute with.
    case invalidTensor(path: String, tensor: String, reason: String)
    /// The input cannot be run: an id outside the vocabulary, too many positions, no tokens.
    case invalidInput(path: String, reason: String)

    public var description: String {
        switch self {
        case let .invalidConfig(path, reason):
            return "'\(path)': invalid model config: \(reason)"
        case let .unsupportedModel(path, reason):
            return "'\(path)': unsupported model: \(reason)"
        case let .missingTensor(path, tensor):
            return "'\(path)': missing tensor '\(tensor)'"
        case let .invalidTensor(path, tensor, reason):
            return "'\(path)': tensor '\(tensor)': \(reason)"
        case let .invalidInput(path, reason):
            return "'\(path)': \(reason)"
        }
    }
}
