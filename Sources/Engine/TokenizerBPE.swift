import Foundation

/// Byte-level BPE over vocabulary ids: a piece's bytes become the ids of their alphabet
/// scalars, then adjacent pairs are merged, always the pair of lowest merge rank first and the
/// leftmost of equal ranks, until no listed merge applies.
///
/// That order is what HF `tokenizers` produces with its priority queue keyed by (rank,
/// position); this implementation uses the same kind of queue over a linked list of symbols, so
/// long pieces (a run of 10,000 `=`) cost O(n log n), not O(n²).
struct BytePairEncoder: Sendable {
    /// The id of each byte's alphabet scalar, or -1 when the vocabulary lacks it (the byte is
    /// then dropped, or becomes the unknown token when there is one, as in HF).
    let byteSymbol: [Int32]
    /// (left id << 32 | right id) → (rank << 32 | merged id).
    let merges: [UInt64: UInt64]
    /// `unk_token`'s id.
    let unknownID: Int32?
    /// `fuse_unk`: consecutive unknown bytes become one unknown token.
    let fuseUnknown: Bool
    /// With `ignore_merges`, a piece whose whole spelling is in the vocabulary is that token.
    let wholePieceVocabulary: [String: Int]?
    /// GPT-2 byte → scalar map (for `wholePieceVocabulary` lookups).
    let alphabet: [UInt32]

    /// Buffers for one merge run, reused between pieces.
    struct Scratch {
        var symbols: [Int32] = []
        var next: [Int32] = []
        var prev: [Int32] = []
        var heap: [UInt64] = []
    }

    /// Appends the ids of one piece to `out`.
    /// - Parameters:
    ///   - piece: the piece's UTF-8 bytes.
    ///   - scratch: buffers reused between calls.
    ///   - out: receives the ids, in order.
    func encode(_ piece: UnsafeBufferPointer<UInt8>, scratch: inout Scratch, into out: inout [Int32]) {
        if let vocabulary = wholePieceVocabulary,
           let id = vocabulary[ByteLevelAlphabet.spelling(piece, map: alphabet)] {
            out.append(Int32(id))
            return
        }
        scratch.symbols.removeAll(keepingCapacity: true)
        var lastWasUnknown = false
        for b in piece {
            let s = byteSymbol[Int(b)]
            if s >= 0 {
                scratch.symbols.append(s)
                lastWasUnknown = false
            } else if let unknownID {
                if !(fuseUnknown && lastWasUnknown) { scratch.symbols.append(unknownID) }
                lastWasUnknown = true
            }
        }
        let n = scratch.symbols.count
        if n <= 1 {
            out.append(contentsOf: scratch.symbols)
            return
        }
        scratch.next.removeAll(keepingCapacity: true)
        scratch.prev.removeAll(keepingCapacity: true)
        scratch.heap.removeAll(keepingCapacity: true)
        for i in 0..<n {
            scratch.next.append(i + 1 < n ? Int32(i + 1) : -1)
            scratch.prev.append(Int32(i - 1))
        }
        for i in 0..<(n - 1) {
            if let m = merges[Self.pairKey(scratch.symbols[i], scratch.symbols[i + 1])] {
                Self.push(&scratch.heap, (m & 0xFFFF_FFFF_0000_0000) | UInt64(i))
            }
        }
        while let top = Self.pop(&scratch.heap) {
            let rank = top >> 32
            let pos = Int(top & 0xFFFF_FFFF)
            let left = scratch.symbols[pos]
            let right = scratch.next[pos]
            // Skip entries made stale by an earlier merge: the symbol was absorbed, or the pair
            // at `pos` is no longer the one this entry was queued for.
            guard left >= 0, right >= 0 else { continue }
            guard let m = merges[Self.pairKey(left, scratch.symbols[Int(right)])], m >> 32 == rank else { continue }
            scratch.symbols[pos] = Int32(truncatingIfNeeded: m & 0xFFFF_FFFF)
            scratch.symbols[Int(right)] = -1
            let after = scratch.next[Int(right)]
            scratch.next[pos] = after
            if after >= 0 { scratch.prev[Int(after)] = Int32(pos) }
            let before = scratch.prev[pos]
            if before >= 0, let m = merges[Self.pairKey(scratch.symbols[Int(before)], scratch.symbols[pos])] {
                Self.push(&scratch.heap, (m & 0xFFFF_FFFF_0000_0000) | UInt64(before))
            }
            if after >= 0, let m = merges[Self.pairKey(scratch.symbols[pos], scratch.symbols[Int(after)])] {
                Self.push(&scratch.heap, (m & 0xFFFF_FFFF_0000_0000) | UInt64(pos))
            }
        }
        var i: Int32 = 0
        while i >= 0 {
            out.append(scratch.symbols[Int(i)])
            i = scratch.next[Int(i)]
        }
    }

    static func pairKey(_ left: Int32, _ right: Int32) -> UInt64 {
        UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right))
    }

    /// Min-heap insert.
    private static func push(_ heap: inout [UInt64], _ value: UInt64) {
        heap.append(value)
        var i = heap.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard heap[parent] > heap[i] else { break }
            heap.swapAt(parent, i)
            i = parent
        }
    }

    /// Min-heap removal of the smallest entry.
    private static func pop(_ heap: inout [UInt64]) -> UInt64? {
        guard let last = heap.popLast() else { return nil }
        if heap.isEmpty { return last }
        let top = heap[0]
        heap[0] = last
        var i = 0
        let n = heap.count
        while true {
            let l = 2 * i + 1, r = l + 1
            var smallest = i
            if l < n, heap[l] < heap[smallest] { smallest = l }
            if r < n, heap[r] < heap[smallest] { smallest = r }
            if smallest == i { break }
            heap.swapAt(i, smallest)
            i = smallest
        }
        return top
    }
}

/// Memoized BPE results per piece, shared by all `encode` calls of one tokenizer.
///
/// Pieces longer than `maxPieceBytes` are not cached (they are rare and would crowd the table);
/// when the table holds `capacity` entries it is emptied. Access is serialized by a lock.
final class BPECache: @unchecked Sendable {
    private let lock = NSLock()
    private var entries: [[UInt8]: [Int32]] = [:]
    let capacity: Int
    let maxPieceBytes: Int

    init(capacity: Int = 1 << 16, maxPieceBytes: Int = 256) {
        self.capacity = capacity
        self.maxPieceBytes = maxPieceBytes
    }

    func lookup(_ key: [UInt8]) -> [Int32]? {
        lock.lock()
        defer { lock.unlock() }
        return entries[key]
    }

    func insert(_ key: [UInt8], _ ids: [Int32]) {
        lock.lock()
        defer { lock.unlock() }
        if entries.count >= capacity { entries.removeAll(keepingCapacity: true) }
        entries[key] = ids
    }

    var count: Int {
        lock.lock()
        defer { lock.unlock() }
        return entries.count
    }
}
