import Engine
import Foundation
import LinAlg
import TensorIO

/// An evaluator command from `.wledger/config` (`[evaluator "NAME"] command = …`), run on a
/// materialized model directory; its results are read in lm-evaluation-harness's format.
///
/// The template's `{weights}` becomes the model directory, `{out}` a path for the results
/// (a file; lm-eval may instead make it a directory of `results_*.json`), `{tasks}` the task's
/// `tasks` setting; each is shell-quoted. The command runs with `/bin/sh -c` in the work tree.
struct ExternalEvaluator {
    let name: String
    let command: String
    let tasks: String

    static func shellQuote(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" }

    func run(weightsDirectory: String, workingDirectory: String, progress: ProgressReporter) throws -> TaskResult {
        let clock = ContinuousClock()
        let start = clock.now
        let scratch = try Repository.makeScratchDirectory(label: "eval", bytesNeeded: 0)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let out = scratch + "/results.json"
        let line = command.replacingOccurrences(of: "{weights}", with: Self.shellQuote(weightsDirectory))
            .replacingOccurrences(of: "{out}", with: Self.shellQuote(out))
            .replacingOccurrences(of: "{tasks}", with: Self.shellQuote(tasks))
        progress.phase("running evaluator '\(name)'")
        BLASKernel.load()   // not while OpenBLAS opens, when the environment has its variables
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", line]
        p.currentDirectoryURL = URL(fileURLWithPath: workingDirectory)
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        do { try p.run() } catch { throw KitError.refused("evaluator '\(name)': cannot start /bin/sh: \(error.localizedDescription)") }
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            // One line: the last line of its output (a traceback's ends with the exception).
            let last = String(decoding: output.suffix(2000), as: UTF8.self).split(whereSeparator: \.isNewline)
                .last { !$0.allSatisfy(\.isWhitespace) }.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
            throw KitError.refused("evaluator '\(name)' exited with status \(p.terminationStatus)\(last.isEmpty ? "" : ": \(last)")")
        }
        let file = try Self.resultsFile(out)
        guard let data = FileManager.default.contents(atPath: file) else {
            throw KitError.refused("evaluator '\(name)': cannot read its results '\(file)'")
        }
        // Results the evaluator wrote wrong are its failure, as a missing file or a bad exit is.
        var r: TaskResult
        do { r = try Self.parse(Array(data), path: file, wanted: tasks) } catch KitError.usage(let why) { throw KitError.refused(why) }
        r.evaluator = "external:\(name)"
        r.elapsedSeconds = TaskEvaluator.secondsOf(clock.now - start)
        return r
    }

    /// The results file at `out`, or the newest `results*.json` under it when it is a directory.
    static func resultsFile(_ out: String) throws -> String {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: out, isDirectory: &isDir) else {
            throw KitError.refused("evaluator wrote no results at {out} ('\(out)')")
        }
        if !isDir.boolValue { return out }
        var best: (String, Date)?
        let e = FileManager.default.enumerator(atPath: out)
        while let rel = e?.nextObject() as? String {
            let name = (rel as NSString).lastPathComponent
            guard name.hasPrefix("results") && name.hasSuffix(".json") else { continue }
            let full = out + "/" + rel
            let m = (try? FileManager.default.attributesOfItem(atPath: full)[.modificationDate] as? Date) ?? .distantPast
            if best == nil || m > best!.1 { best = (full, m) }
        }
        guard let b = best else { throw KitError.refused("evaluator wrote no results*.json under '\(out)'") }
        return b.0
    }

    /// Reads lm-evaluation-harness results: `results.TASK."METRIC,FILTER"` with
    /// `"METRIC_stderr,FILTER"`, and sample counts from `n-samples.TASK.effective` (or
    /// `original`). With one task metrics keep their names (`acc`); with several they are
    /// prefixed (`hellaswag.acc`). Filters other than `none` are suffixed (`exact_match@strict`).
    static func parse(_ bytes: [UInt8], path: String, wanted: String) throws -> TaskResult {
        let json: JSONValue
        do { json = try JSONParser.parse(bytes) } catch { throw KitError.usage("'\(path)': evaluator results are not JSON: \(error)") }
        guard case let .object(results)? = json["results"] else {
            throw KitError.usage("'\(path)': evaluator results have no \"results\" object (lm-evaluation-harness format expected)")
        }
        // A wanted name matches a result by itself or by its file name without extension (so a
        // task given as a path, like data/capitals.jsonl, matches results for "capitals").
        let names = wanted.split(whereSeparator: { $0 == "," || $0 == " " }).flatMap { w -> [String] in
            let base = URL(fileURLWithPath: String(w)).deletingPathExtension().lastPathComponent
            return [String(w), base]
        }
        let chosen = results.filter { names.isEmpty || names.contains($0.0) }
        guard !chosen.isEmpty else {
            let requested = wanted.split(whereSeparator: { $0 == "," || $0 == " " }).joined(separator: ", ")
            throw KitError.usage("'\(path)': evaluator results have none of the tasks \(requested) (found: \(results.map(\.0).joined(separator: ", ")))")
        }
        var metrics: [String: MetricValue] = [:]
        for (task, value) in chosen {
            guard case let .object(fields) = value else { continue }
            var n = 0
            if let ns = json["n-samples"]?[task] {
                n = Int(ns["effective"]?.numberValue ?? ns["original"]?.numberValue ?? 0)
            }
            let byName = Dictionary(fields.map { ($0.0, $0.1) }, uniquingKeysWith: { a, _ in a })
            for (key, v) in fields {
                guard let x = v.numberValue, !key.contains("_stderr"), key != "alias" else { continue }
                let parts = key.split(separator: ",", maxSplits: 1).map(String.init)
                let metric = parts[0]
                let filter = parts.count > 1 ? parts[1] : "none"
                let stderrKey = parts.count > 1 ? "\(metric)_stderr,\(filter)" : "\(metric)_stderr"
                let se = byName[stderrKey]?.numberValue ?? 0
                var label = chosen.count > 1 ? "\(task).\(metric)" : metric
                if filter != "none" { label += "@" + filter }
                metrics[label] = MetricValue(value: x, n: n, stderr: se.isFinite ? se : 0)
            }
        }
        guard !metrics.isEmpty else { throw KitError.usage("'\(path)': evaluator results have no numeric metrics") }
        return TaskResult(task: wanted, kind: "external", shots: 0, seed: 0, tokenization: "external", chance: nil, metrics: metrics,
                          evaluator: "external", elapsedSeconds: 0)
    }
}
