import TensorIO

/// What a commit did.
public enum CommitKind: String, Sendable, Codable, CaseIterable {
    case base, edit, revert, prune, restrain
}

/// A commit as stored in the ledger.
public struct CommitRecord: Sendable, Equatable {
    public var id: String
    public var parent: String?
    public var generation: Int
    public var kind: CommitKind
    public var message: String
    public var author: String
    public var time: Int64
    public var method: String?
    /// The edit request (EasyEdit fields) as JSON text.
    public var request: String?
    /// Operation parameters (prune k, restrain α, ...) as JSON text.
    public var parameters: String?
    public var tree: String
    public var fullManifest: Bool

    public init(id: String, parent: String?, generation: Int, kind: CommitKind, message: String, author: String,
                time: Int64, method: String?, request: String?, parameters: String?, tree: String, fullManifest: Bool) {
        self.id = id; self.parent = parent; self.generation = generation; self.kind = kind; self.message = message
        self.author = author; self.time = time; self.method = method; self.request = request
        self.parameters = parameters; self.tree = tree; self.fullManifest = fullManifest
    }

    /// The commit id: sha256 of a canonical text of everything but the id.
    public static func computeID(parent: String?, kind: CommitKind, message: String, author: String, time: Int64,
                                 method: String?, request: String?, parameters: String?, tree: String) -> String {
        var s = "tree \(tree)\n"
        if let parent { s += "parent \(parent)\n" }
        s += "kind \(kind.rawValue)\nauthor \(author)\ntime \(time)\n"
        if let method { s += "method \(method)\n" }
        if let request { s += "request \(request)\n" }
        if let parameters { s += "parameters \(parameters)\n" }
        s += "\n" + message
        return SHA256Digest.hash(s).hex
    }
}

/// One tensor of a commit's manifest.
public struct ManifestEntry: Sendable, Equatable {
    public var name: String
    public var file: String
    public var dtype: DType
    public var shape: [Int]
    /// sha256 of the tensor bytes (the tensorVersion key).
    public var hash: String

    public init(name: String, file: String, dtype: DType, shape: [Int], hash: String) {
        self.name = name; self.file = file; self.dtype = dtype; self.shape = shape; self.hash = hash
    }

    public var shapeJSON: String { "[" + shape.map(String.init).joined(separator: ",") + "]" }
}

/// ΔW statistics of one tensor changed by a commit, against the commit's parent.
public struct ChangeStats: Sendable, Equatable, Codable {
    public var changed: Int
    public var l1: Double
    public var frobenius: Double
    public var maxAbs: Double
    public var baseNorm: Double
    public var storedBytes: Int

    public init(changed: Int, l1: Double, frobenius: Double, maxAbs: Double, baseNorm: Double, storedBytes: Int) {
        self.changed = changed; self.l1 = l1; self.frobenius = frobenius; self.maxAbs = maxAbs
        self.baseNorm = baseNorm; self.storedBytes = storedBytes
    }
}

/// Whether a tracked file holds weights (header stored, tensors tracked individually) or is a side file.
public enum FileKind: String, Sendable {
    case safetensors, side
}

/// One file of a commit.
public struct FileEntry: Sendable, Equatable {
    public var path: String
    public var kind: FileKind
    /// Header prefix object (safetensors) or content object (side); nil: removed.
    public var object: String?
    public var size: Int

    public init(path: String, kind: FileKind, object: String?, size: Int) {
        self.path = path; self.kind = kind; self.object = object; self.size = size
    }
}

/// How to rebuild one tensor content.
public struct TensorVersion: Sendable, Equatable {
    public var hash: String
    public var fingerprint: String
    public var byteCount: Int
    public var elementSize: Int
    /// nil for a keyframe.
    public var base: String?
    public var object: String
    /// "keyframe" or a `PatchEncoding` description.
    public var encoding: String
    public var depth: Int
    /// `Probe.of` the bytes; nil for versions recorded before schema 0004.
    public var probe: Int64?

    public init(hash: String, fingerprint: String, byteCount: Int, elementSize: Int, base: String?, object: String, encoding: String, depth: Int,
                probe: Int64?) {
        self.hash = hash; self.fingerprint = fingerprint; self.byteCount = byteCount; self.elementSize = elementSize
        self.base = base; self.object = object; self.encoding = encoding; self.depth = depth; self.probe = probe
    }
}

/// Where HEAD points.
public enum HeadState: Sendable, Equatable {
    case branch(name: String, commit: String)
    case detached(commit: String)

    public var commit: String {
        switch self {
        case let .branch(_, c), let .detached(c): return c
        }
    }
    public var branchName: String? { if case let .branch(n, _) = self { return n }; return nil }
}
