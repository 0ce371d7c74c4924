import Codec
import Engine
import Foundation
import TensorIO
import WLedgerKit

/// The parsers and decoders that read untrusted bytes, each as a function of one input.
///
/// Built two ways (see README "Fuzzing"):
/// - with `-DFUZZING -sanitize=fuzzer,address`: libFuzzer calls `LLVMFuzzerTestOneInput`, and
///   `WLEDGER_FUZZ_TARGET` picks the target;
/// - normally: `wledger-fuzz TARGET FILE…` runs each file through the target once (used to
///   replay the corpus and found crashers in the tests).
///
/// A target may throw (bad input is expected and must be an error, not a crash); it must never
/// trap, hang or touch memory it does not own.
enum FuzzTargets {
    static let names = ["safetensors", "index", "tokenizer", "bigbench", "request", "patch", "chunk"]

    /// A scratch file for targets whose entry point reads a path (the real code path).
    static let scratch: String = {
        let base = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
        return base + "/wledger-fuzz-\(getpid())"
    }()

    static func writeScratch(_ data: UnsafeRawBufferPointer, name: String) -> String {
        try? FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        let path = scratch + "/" + name
        _ = FileManager.default.createFile(atPath: path, contents: Data(data))
        return path
    }

    /// Runs one input through `target`; true if it was accepted (parsed or decoded without error).
    @discardableResult
    static func run(_ target: String, _ data: UnsafeRawBufferPointer) -> Bool {
        switch target {
        case "safetensors":
            // The header parser on the whole file, as SafetensorsFile does after mapping it.
            _ = SafetensorsHeader.sniffForeignFormat(data)
            return (try? SafetensorsHeader.parse(file: data, path: "fuzz.safetensors")) != nil
        case "index":
            return (try? ModelDirectory.parseIndex(at: writeScratch(data, name: "model.safetensors.index.json"))) != nil
        case "tokenizer":
            guard let t = try? Tokenizer(path: writeScratch(data, name: "tokenizer.json")) else { return false }
            let ids = t.encode("The capital of France is 1, 2, 3 — ünïcödé 🙂 <|endoftext|>")
            _ = t.decode(ids)
            return true
        case "bigbench":
            guard let tasks = try? BigBenchTask.load(writeScratch(data, name: "task.json")) else { return false }
            for task in tasks {
                for i in task.examples.indices.prefix(4) {
                    _ = try? task.prompt(for: i, shots: min(2, task.examples.count - 1), seed: 42)
                    if task.examples[i].isMultipleChoice { _ = try? task.multipleChoiceQuestion(i, shots: 1, seed: 42) }
                }
            }
            return true
        case "request":
            return (try? EditRequest.validate(Array(data), source: "request.json")) != nil
        case "patch":
            // The parent's size comes from the patch header, so decoding gets past the size check.
            var parentSize = 64
            if data.count >= 24 {
                let count = Int(truncatingIfNeeded: data.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
                let elem = Int(data[5])
                let (n, overflow) = count.multipliedReportingOverflow(by: max(elem, 1))
                if !overflow && n >= 0 && n <= 1 << 20 { parentSize = n }
            }
            var parent = [UInt8](repeating: 0, count: parentSize)
            for i in parent.indices { parent[i] = UInt8(truncatingIfNeeded: i &* 31) }
            var out = [UInt8](repeating: 0, count: parentSize)
            return parent.withUnsafeBytes { p in
                out.withUnsafeMutableBytes { o in (try? Patch.apply(data, to: p, into: o)) != nil }
            }
        case "chunk":
            // codec byte, element-size byte, 3 bytes of raw size (low 20 bits: < 1 MiB, so an
            // execution does not spend its time clearing a 16 MiB buffer), then the stored data.
            guard data.count >= 5, let codec = ChunkCodec(rawValue: Int(data[0] % 3)) else { return false }
            let elem = Int(data[1] % 16) + 1
            let raw = (Int(data[2]) | Int(data[3]) << 8 | Int(data[4]) << 16) & 0xFFFFF
            // Decoded from memory, and again from pieces read by offset (the ledger's streamed
            // chunks; piece size from the raw-size byte's high bits): the same bytes or both fail.
            var dst = [UInt8](repeating: 0, count: raw), pieced = [UInt8](repeating: 0, count: raw)
            let stored = Array(data[5...]), pieceBytes = Int(data[4] >> 4) * 97 + 1
            let whole = dst.withUnsafeMutableBytes { d in
                stored.withUnsafeBytes { (try? Chunker.decodeChunk(codec: codec, elementSize: elem, data: $0, into: d)) != nil }
            }
            let inPieces = pieced.withUnsafeMutableBytes { d in
                (try? Chunker.decodeChunk(codec: codec, elementSize: elem, storedCount: stored.count, pieceBytes: pieceBytes, into: d) { offset, buffer in
                    stored.withUnsafeBytes { buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[offset..<(offset + buffer.count)])) }
                }) != nil
            }
            precondition(whole == inPieces && (!whole || dst == pieced), "chunk decoded from pieces differs from the chunk decoded whole")
            return whole
        default:
            fatalError("unknown fuzz target '\(target)' (known: \(names.joined(separator: ", ")))")
        }
    }
}

/// Seed inputs for every target, made by the real encoders (so the fuzzer starts from valid
/// structures): `wledger-fuzz seeds DIR` writes DIR/TARGET/seed-N.
enum FuzzSeeds {
    static func make() throws -> [String: [[UInt8]]] {
        var out: [String: [[UInt8]]] = [:]
        // safetensors: two tiny files, with data.
        for specs in [[("a", DType.f32, [2, 3]), ("b", DType.bf16, [4])], [("w", DType.f16, [1, 8]), ("x", DType.i64, [2])]] {
            let h = SafetensorsHeader.make(tensors: specs)
            out["safetensors", default: []].append(h.prefixBytes + [UInt8](repeating: 7, count: h.dataSize))
        }
        out["index"] = [Array(#"{"metadata": {"total_size": 16}, "weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}"#.utf8)]
        out["tokenizer"] = [Array(#"""
            {"version": "1.0", "truncation": null, "padding": null,
             "added_tokens": [{"id": 0, "content": "<|endoftext|>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}],
             "normalizer": null,
             "pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": true}, {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}]},
             "post_processor": null, "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
             "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null, "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
                       "vocab": {"<|endoftext|>": 0, "T": 1, "h": 2, "e": 3, "Th": 4, "The": 5, "Ġ": 6, "c": 7, "a": 8, "Ġc": 9, "1": 10},
                       "merges": ["T h", "Th e", "Ġ c"]}}
            """#.utf8)]
        out["bigbench"] = [Array(#"""
            {"name": "seed", "description": "d", "keywords": ["k"], "metrics": ["multiple_choice_grade", "exact_str_match"],
             "preferred_score": "multiple_choice_grade", "task_prefix": "Answer.\n", "example_input_prefix": "\nQ: ", "example_output_prefix": "\nA: ",
             "examples": [{"input": "1 + 1", "target": "2", "target_scores": {"2": 1, "3": 0}},
                          {"input": "2 + 2", "target": "4", "target_scores": {"4": 1, "5": 0}},
                          {"input": "3 + 3", "target": ["6", "six"], "target_scores": {"6": 1, "7": 0}}]}
            """#.utf8)]
        out["request"] = [Array(#"""
            [{"prompt": "The capital of France is", "subject": "France", "target_new": "Rome", "ground_truth": "Paris",
              "rephrase_prompt": ["France's capital is"], "locality": {"n": {"prompt": ["a", "b"], "ground_truth": ["c", "d"]}}}]
            """#.utf8)]
        // Patches over the same parent pattern the patch target builds: sparse and dense.
        for (n, elem, every) in [(64, 4, 9), (256, 2, 1), (48, 1, 3)] {
            var parent = [UInt8](repeating: 0, count: n * elem)
            for i in parent.indices { parent[i] = UInt8(truncatingIfNeeded: i &* 31) }
            var child = parent
            for i in stride(from: 0, to: child.count, by: every * elem) { child[i] ^= 0x5A }
            let p = try parent.withUnsafeBytes { pb in try child.withUnsafeBytes { try Patch.make(parent: pb, child: $0, elementSize: elem) } }
            out["patch", default: []].append(p.bytes)
        }
        for (elem, compress) in [(4, true), (2, true), (1, false)] {
            let piece = (0..<1024).map { UInt8(truncatingIfNeeded: $0 % 7 == 0 ? $0 : 3) }
            var scratch: [UInt8] = []
            let c: EncodedChunk = try piece.withUnsafeBytes {
                try Chunker.encodeChunk($0, elementSize: elem, compress: compress, level: 3, scratch: &scratch)
            }
            let size = c.rawSize
            let header: [UInt8] = [UInt8(c.codec.rawValue), UInt8(c.elementSize - 1),
                                   UInt8(size & 255), UInt8((size >> 8) & 255), UInt8(size >> 16)]
            out["chunk", default: []].append(header + c.data)
        }
        return out
    }
}

#if FUZZING
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ bytes: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    FuzzTargets.run(fuzzTarget, UnsafeRawBufferPointer(start: bytes, count: size))
    return 0
}

/// Read once: the environment lookup is not part of what is fuzzed.
let fuzzTarget: String = {
    let t = ProcessInfo.processInfo.environment["WLEDGER_FUZZ_TARGET"] ?? "safetensors"
    guard FuzzTargets.names.contains(t) else { fatalError("unknown fuzz target '\(t)' (known: \(FuzzTargets.names.joined(separator: ", ")))") }
    return t
}()

/// libFuzzer's driver (in the runtime that `-sanitize=fuzzer` links). SwiftPM renames an
/// executable's entry point and points `main` at it, so libFuzzer's own `main` is not linked;
/// this `@main` hands control to the driver instead.
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<Int32>,
                         _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Int32

@main
struct FuzzDriver {
    static func main() {
        var argc = CommandLine.argc
        var argv = CommandLine.unsafeArgv
        _ = fuzzTarget
        exit(LLVMFuzzerRunDriver(&argc, &argv, { fuzzOne($0, $1) }))
    }
}
#else
@main
struct FuzzReplay {
    static func main() {
        let args = CommandLine.arguments.dropFirst()
        if args.first == "seeds", let dir = args.dropFirst().first {
            do {
                for (target, inputs) in try FuzzSeeds.make() {
                    try FileManager.default.createDirectory(atPath: dir + "/" + target, withIntermediateDirectories: true)
                    for (i, bytes) in inputs.enumerated() {
                        _ = FileManager.default.createFile(atPath: "\(dir)/\(target)/seed-\(i)", contents: Data(bytes))
                    }
                }
            } catch {
                FileHandle.standardError.write(Data("error: \(error)\n".utf8))
                exit(1)
            }
            return
        }
        guard let target = args.first, FuzzTargets.names.contains(target) else {
            FileHandle.standardError.write(Data("usage: wledger-fuzz TARGET FILE… (targets: \(FuzzTargets.names.joined(separator: ", ")))\n".utf8))
            exit(2)
        }
        var count = 0, accepted = 0
        for file in args.dropFirst() {
            guard let data = FileManager.default.contents(atPath: file) else {
                FileHandle.standardError.write(Data("'\(file)': cannot read\n".utf8))
                exit(2)
            }
            if data.withUnsafeBytes({ FuzzTargets.run(target, $0) }) { accepted += 1 }
            count += 1
        }
        try? FileManager.default.removeItem(atPath: FuzzTargets.scratch)
        print("\(target): \(count) inputs, \(accepted) accepted, no crash")
    }
}
#endif
