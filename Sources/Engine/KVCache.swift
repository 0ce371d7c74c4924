/// The keys and values of every processed position, per layer, so that a sequence can be
/// continued without recomputing its prefix.
///
/// Layer l keeps keys (S, kvWidth) and values (S, kvWidth), row-major, where S is `count` and
/// kvWidth = kv heads × head_dim; keys are stored after the rotary embedding. `tokens` records the
/// ids the rows belong to, so callers can find how much of a new sequence is already cached.
/// Storage grows by doubling; `truncate(to:)` forgets a suffix without freeing memory.
public final class KVCache {
    public let layerCount: Int
    /// kv heads × head_dim: the width of one position's keys (or values) in one layer.
    public let kvWidth: Int
    /// The token ids whose keys and values are cached, in position order.
    public private(set) var tokens: [Int] = []
    /// Positions allocated per layer.
    public private(set) var capacity: Int
    private var keyStorage: [UnsafeMutablePointer<Float>]
    private var valueStorage: [UnsafeMutablePointer<Float>]

    /// Cached positions.
    public var count: Int { tokens.count }

    /// An empty cache for `config`'s layers and heads with room for `capacity` positions.
    public init(config: ModelConfig, capacity: Int = 256) {
        layerCount = config.layerCount
        kvWidth = config.kvWidth
        self.capacity = max(1, capacity)
        let n = self.capacity * kvWidth
        keyStorage = (0..<layerCount).map { _ in .allocate(capacity: n) }
        valueStorage = (0..<layerCount).map { _ in .allocate(capacity: n) }
    }

    deinit {
        for p in keyStorage { p.deallocate() }
        for p in valueStorage { p.deallocate() }
    }

    /// Keys of `layer`: (capacity, kvWidth), rows 0..<count valid.
    func keys(_ layer: Int) -> UnsafeMutablePointer<Float> { keyStorage[layer] }
    /// Values of `layer`: (capacity, kvWidth), rows 0..<count valid.
    func values(_ layer: Int) -> UnsafeMutablePointer<Float> { valueStorage[layer] }

    /// Makes room for `positions` positions, keeping the cached rows.
    public func reserve(_ positions: Int) {
        guard positions > capacity else { return }
        let newCapacity = max(positions, 2 * capacity)
        func grow(_ old: UnsafeMutablePointer<Float>) -> UnsafeMutablePointer<Float> {
            let p = UnsafeMutablePointer<Float>.allocate(capacity: newCapacity * kvWidth)
            p.update(from: old, count: count * kvWidth)
            old.deallocate()
            return p
        }
        keyStorage = keyStorage.map(grow)
        valueStorage = valueStorage.map(grow)
        capacity = newCapacity
    }

    /// Forgets every position from `count` on (a cheap rollback to a shared prefix).
    /// - Precondition: `0 <= count <= self.count`.
    public func truncate(to count: Int) {
        precondition(count >= 0 && count <= tokens.count, "truncate(to: \(count)) outside 0...\(tokens.count)")
        tokens.removeSubrange(count...)
    }

    /// Forgets everything.
    public func removeAll() { tokens.removeAll(keepingCapacity: true) }

    /// Records that rows count..<count + ids.count have been written for `ids` (by the forward pass).
    func commit(_ ids: ArraySlice<Int>) {
        precondition(tokens.count + ids.count <= capacity, "KV cache overflow")
        tokens.append(contentsOf: ids)
    }

    /// The length of the longest common prefix of the cached tokens and `ids`.
    public func sharedPrefixLength<C: Collection>(with ids: C) -> Int where C.Element == Int {
        var n = 0
        for (a, b) in zip(tokens, ids) {
            guard a == b else { break }
            n += 1
        }
        return n
    }
}
