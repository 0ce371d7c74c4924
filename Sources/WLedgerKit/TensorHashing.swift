import Codec
import Foundation
import Ledger
import TensorIO

/// The weight files of a work tree, mapped and fingerprinted (XXH3-128) tensor by tensor on
/// threads of their own: the most recently modified file first, and in each file largest
/// first, so the last tensors to finish are small ones (the embedding alone can be a fifth of a
/// model). Each 2 MiB window is read the cheaper way for how the page cache holds it
/// (`Fingerprint.of(_:range:)`: through the map where a fault maps a large folio, else with
/// `pread`, which leaves the map's pages to the probes and the edited tensors); the Dispatch pool
/// stays free for the encodings' parallel loops.
///
/// A scan starts one once it knows which files to trust from their stat; `commit` starts one
/// before it opens the repository (`prefetch`), which the scan takes over when the directory
/// lists the same files and no weight file's stat changed meanwhile.
final class TensorHashing: @unchecked Sendable {
    let root: String
    /// Wall-clock time before the files were stat'ed and mapped (see `racyWindow`).
    let scannedAt: Int64
    let directory: ModelDirectory
    /// Stat of each weight file, taken before it was mapped.
    let stats: [String: FileStat]
    let weights: ModelWeights
    /// Every tensor of every weight file, sorted by name.
    let names: [String]
    let slots: Slots<Fingerprint>
    let skipped: Slots<Bool>
    /// Set for a file whose tensors are no longer wanted: stops the hashing of one mid-way.
    let stops: [String: StopFlag]
    let hashed = Handoff()
    let throttle: Throttle?
    private var hashing: Background<Void>?

    /// Maps `directory`'s weight files and starts hashing every tensor outside `skipFiles`.
    init(root: String, directory: ModelDirectory, scannedAt: Int64, stats: [String: FileStat], skipFiles: Set<String>,
         throttle: Throttle?, progress: ProgressReporter) throws {
        self.root = root
        self.directory = directory
        self.scannedAt = scannedAt
        self.stats = stats
        self.throttle = throttle
        let weights = try directory.open()
        let names = weights.tensors.keys.sorted()
        let slots = Slots<Fingerprint>(names.count), skipped = Slots<Bool>(names.count), hashed = hashed
        self.weights = weights
        self.names = names
        self.slots = slots
        self.skipped = skipped
        let stops = Dictionary(uniqueKeysWithValues: directory.weightFiles.map { ($0, StopFlag()) })
        self.stops = stops
        skip(files: skipFiles)
        // The most recently modified file first (a prefetch does not know yet which files the scan
        // will trust from their stat: an edit's file is the newest), then largest first.
        let key = names.map { n -> (Int64, Int) in
            let loc = weights.tensors[n]!
            return (stats[loc.file]?.mtimeNs ?? 0, loc.info.byteCount)
        }
        let order = names.indices.sorted { key[$0].0 != key[$1].0 ? key[$0].0 > key[$1].0 : key[$0].1 > key[$1].1 }
        progress.start("hashing tensors", total: names.count)
        hashing = Background {
            defer { hashed.finish() }
            try threadedFor(order.count, threads: ProcessInfo.processInfo.activeProcessorCount, throttle: throttle) { k in
                let i = order[k]
                if skipped[i] != true, let loc = weights.location(names[i]) {
                    slots[i] = try Fingerprint.of(loc.map, range: loc.range, stop: stops[weights.tensors[names[i]]!.file])
                }
                hashed.push(i)
                progress.advance()
            }
        }
    }

    /// Started before the repository is opened: the model directory at `root` scanned, its weight
    /// files stat'ed and mapped, and all of their tensors hashing. Nil when the directory cannot
    /// be read as a model (the scan that follows reports why).
    static func prefetch(root: String, throttle: Throttle?, progress: ProgressReporter) -> TensorHashing? {
        let scannedAt = wallClockNanoseconds()
        guard let dir = try? ModelDirectory.scan(root) else { return nil }
        var stats: [String: FileStat] = [:]
        for f in dir.weightFiles {
            guard let st = FileStat.of(root + "/" + f) else { return nil }
            stats[f] = st
        }
        return try? TensorHashing(root: root, directory: dir, scannedAt: scannedAt, stats: stats, skipFiles: [], throttle: throttle,
                                  progress: progress)
    }

    /// Whether this hashing still describes the work tree that `directory` lists, whose weight
    /// files now have `stats`: the same files, none of them changed since it mapped them.
    func matches(root: String, directory: ModelDirectory, stats now: [String: FileStat]) -> Bool {
        root == self.root && directory.weightFiles == self.directory.weightFiles && directory.sideFiles == self.directory.sideFiles
            && directory.weightFiles.allSatisfy { now[$0] != nil && now[$0] == stats[$0] }
    }

    /// Tensors of these files are not hashed from now on: those already hashed stay, one being
    /// hashed stops at its next read (every 256 KiB, or 2 MiB through the map) and has no
    /// fingerprint.
    func skip(files: Set<String>) {
        guard !files.isEmpty else { return }
        for f in files { stops[f]?.set() }
        for (i, n) in names.enumerated() where files.contains(weights.tensors[n]!.file) { skipped[i] = true }
    }

    /// Stops hashing and waits for the threads.
    func cancel() {
        skip(files: Set(directory.weightFiles))
        _ = try? wait()
    }

    func wait() throws { try hashing?.wait() }
}

/// Indices of hashed tensors, handed from the hashing threads to the comparing one.
final class Handoff: @unchecked Sendable {
    private let lock = NSLock()
    private let ready = DispatchSemaphore(value: 0)
    private var items: [Int] = []
    private var finished = false

    func push(_ i: Int) {
        lock.lock(); items.append(i); lock.unlock()
        ready.signal()
    }

    /// Called once, when hashing stops.
    func finish() {
        lock.lock(); finished = true; lock.unlock()
        ready.signal()
    }

    /// The next index, blocking until one arrives; nil once hashing has stopped and all were taken.
    func next() -> Int? {
        while true {
            lock.lock()
            if !items.isEmpty { let i = items.removeFirst(); lock.unlock(); return i }
            if finished { lock.unlock(); return nil }
            lock.unlock()
            ready.wait()
        }
    }
}
