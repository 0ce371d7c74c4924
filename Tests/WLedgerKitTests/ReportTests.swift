import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import TestSupport
import XCTest

/// `wledger report` on the real SmolLM2 after simulated edits, a prune and a revert, with health
/// results of a tiny suite: the collected numbers equal `diff --json` and `health --json`, the
/// page is well-formed XML with no external reference, its chart points carry those numbers,
/// and headless Chromium renders it to a non-blank screenshot of the expected size.
final class ReportTests: XCTestCase {
    // What the test reads back from `report --json`, `diff --json` and `health --json`.
    struct Share: Decodable { var threshold: Double; var fraction: Double }
    struct Report: Decodable {
        struct Series: Decodable { var label: String; var from: String; var to: String; var commits: [String] }
        struct Metric: Decodable { var task: String; var metric: String; var headline: Bool }
        struct Commit: Decodable {
            struct Request: Decodable { var subject: String; var targetNew: String }
            struct Drift: Decodable {
                var name: String; var changed: Int; var l1: Double; var relativeFrobenius: Double
                var shares: [Share]; var kappa: Double?; var baseKappa: Double?
            }
            var id: String; var kind: String; var message: String; var method: String?
            var requests: [Request]; var tensors: [String]; var drift: [Drift]; var health: [HealthRow]; var missing: [String]
        }
        var base: String; var suite: String; var series: [Series]; var commits: [Commit]; var metrics: [Metric]; var matrices: [String]
        func commit(_ id: String) -> Commit? { commits.first { $0.id == id } }
    }
    struct Value: Decodable, Equatable { var value: Double; var n: Int; var stderr: Double }
    struct HealthRow: Decodable { var task: String; var metric: String; var base: Value?; var value: Value; var change: Double?; var passed: Bool? }
    struct Health: Decodable { var commit: String?; var rows: [HealthRow] }
    struct Diff: Decodable {
        struct Spectrum: Decodable { var kappa: Double? }
        struct Delta: Decodable { var shares: [Share] }
        struct Tensor: Decodable {
            var name: String; var changed: Int; var l1: Double; var relativeFrobenius: Double
            var delta: Delta?; var fromSpectrum: Spectrum?; var toSpectrum: Spectrum?
        }
        var tensors: [Tensor]
    }

    static let eiffel = """
        {"prompt": "The Eiffel Tower is located in the city of", "subject": "Eiffel Tower", "target_new": "Rome", "ground_truth": "Paris",
         "rephrase_prompt": "Where is the Eiffel Tower? It is in",
         "locality": {"neighborhood": {"prompt": "The Louvre is located in the city of", "ground_truth": "Paris"}}}
        """
    static let danube = #"{"prompt": "The Danube flows into the", "subject": "Danube", "target_new": "North Sea", "ground_truth": "Black Sea"}"#

    @discardableResult
    func wl(_ args: [String], in dir: String, file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let r = try CLI.run(args, in: dir)
        XCTAssertEqual(r.status, 0, "wledger \(args.joined(separator: " ")): \(r.stderr)", file: file, line: line)
        return r.stdout
    }

    func json<T: Decodable>(_ type: T.Type, _ args: [String], in dir: String, file: StaticString = #filePath, line: UInt = #line) throws -> T {
        try JSONDecoder().decode(T.self, from: Data(try wl(args, in: dir, file: file, line: line).utf8))
    }

    func testReportOnRealModel() throws {
        let source = try Fixtures.smolLM2("f32")
        let tmp = try TemporaryDirectory("report")
        let dir = (try tmp.copyModel(from: source) as NSString).standardizingPath
        try Self.eiffel.write(toFile: tmp.path + "/eiffel.json", atomically: true, encoding: .utf8)
        try Self.danube.write(toFile: tmp.path + "/danube.json", atomically: true, encoding: .utf8)
        try wl(["init", "-q"], in: dir)
        // A tiny suite (3 word analogies with short prompts, and edit retention) keeps the debug
        // build's evaluations short; health runs right after each commit, so the clean work tree is
        // evaluated in place.
        for (k, v) in [("task.fam3.source", "jsonl:" + (try Fixtures.taskData("analogies/family.jsonl"))), ("task.fam3.limit", "3"),
                       ("suite.tiny.tasks", "fam3 edits"), ("health.suite", "tiny"),
                       ("threshold.fam3.acc.min", "0.3"), ("threshold.edits.locality.max-drop", "0.5")] {
            try wl(["config", "set", k, v], in: dir)
        }
        func health() throws { try wl(["health", "-q", "--threads", "2"], in: dir) }
        try health()
        let l8 = "model.layers.8.mlp.down_proj.weight", l12 = "model.layers.12.mlp.down_proj.weight"
        _ = try SimulatedEdit.rankOne(file: dir + "/model.safetensors", tensor: l8, seed: 1, scale: 0.05)
        try wl(["commit", "-q", "-m", "Eiffel Tower -> Rome", "--method", "ROME", "--request", tmp.path + "/eiffel.json"], in: dir)
        try health()
        _ = try SimulatedEdit.rankOne(file: dir + "/model.safetensors", tensor: l12, seed: 2, scale: 0.05)
        try wl(["commit", "-q", "-m", #"Danube -> "North Sea" <&> 'x'"#, "--method", "ROME", "--request", tmp.path + "/danube.json"], in: dir)
        try health()
        try wl(["branch", "plain"], in: dir)
        try wl(["prune", "-q", "HEAD", "--keep", "40%"], in: dir)
        try health()
        try wl(["revert", "-q", "HEAD~2"], in: dir)  // no health run: left uncached
        struct Entry: Decodable { var id: String; var kind: String }
        let log = try json([Entry].self, ["log", "--json"], in: dir)
        XCTAssertEqual(log.map(\.kind), ["revert", "prune", "edit", "edit", "base"])
        let ids = Array(log.map(\.id).reversed())  // base, eiffel, danube, prune, revert
        let (base, e1, e2, pruned, reverted) = (ids[0], ids[1], ids[2], ids[3], ids[4])

        // 1. The collected data.
        let tmpPath = (tmp.path as NSString).standardizingPath
        let page = tmpPath + "/report.html"
        let r = try json(Report.self, ["report", "-q", "main", "plain", "--json", "--output", page], in: dir)
        XCTAssertEqual(r.base, base)
        XCTAssertEqual(r.suite, "tiny")
        XCTAssertEqual(r.series.map(\.label), ["main", "plain"])
        XCTAssertEqual(r.series[0].commits, ids)
        XCTAssertEqual(r.series[1].commits, [base, e1, e2])
        XCTAssertEqual(r.commits.map(\.id), ids, "every commit once")
        XCTAssertEqual(r.matrices, [l12, l8])
        XCTAssertEqual(r.metrics.map { "\($0.task).\($0.metric)" }, ["fam3.acc", "edits.efficacy", "edits.generalization", "edits.locality"])
        XCTAssertEqual(r.commit(e1)?.requests.map { "\($0.subject) → \($0.targetNew)" }, ["Eiffel Tower → Rome"])
        XCTAssertEqual(r.commit(e2)?.tensors, [l12])
        XCTAssertEqual(r.commit(pruned)?.kind, "prune")
        XCTAssertEqual(r.commit(reverted)?.missing, ["fam3", "edits"], "the revert has no cached health")
        XCTAssertEqual(r.commit(reverted)?.health.count, 0)
        XCTAssertEqual(r.commit(pruned)?.missing, [])

        // Drift = `diff base C --json`, number for number.
        for c in [pruned] {
            let d = try json(Diff.self, ["diff", "-q", "base", c, "--json"], in: dir)
            XCTAssertEqual(d.tensors.map(\.name), [l12, l8])
            for t in d.tensors {
                let mine = try XCTUnwrap(r.commit(c)?.drift.first { $0.name == t.name })
                XCTAssertEqual(mine.l1, t.l1, t.name)
                XCTAssertEqual(mine.changed, t.changed)
                XCTAssertEqual(mine.relativeFrobenius, t.relativeFrobenius)
                XCTAssertEqual(mine.shares.map(\.fraction), t.delta?.shares.map(\.fraction))
                XCTAssertEqual(mine.shares.map(\.threshold), [0.077, 0.171])
                XCTAssertEqual(mine.kappa, t.toSpectrum?.kappa)
                XCTAssertEqual(mine.baseKappa, t.fromSpectrum?.kappa)
                XCTAssertGreaterThan(mine.l1, 0)
            }
            do {
                // RECT kept 40% of the elements: the share of large δ falls below the plain edit's.
                let before = try XCTUnwrap(r.commit(e2)?.drift.first { $0.name == l12 }?.shares[1].fraction)
                let after = try XCTUnwrap(r.commit(pruned)?.drift.first { $0.name == l12 }?.shares[1].fraction)
                XCTAssertLessThan(after, before)
                XCTAssertLessThanOrEqual(after, 0.4 + 2e-6, "⌈40% of 884,736⌉ elements kept")
            }
        }
        // Equal to the base: zero drift, κ of the base.
        let untouched = try XCTUnwrap(r.commit(e1)?.drift.first { $0.name == l12 })
        XCTAssertEqual(untouched.l1, 0)
        XCTAssertEqual(untouched.kappa, r.commit(e2)?.drift.first { $0.name == l12 }?.baseKappa)
        XCTAssertEqual(r.commit(reverted)?.drift.first { $0.name == l8 }?.l1, 0, "the revert restored layer 8 exactly")

        // Health = `health C --json`, row for row.
        for c in [e1, pruned] {
            let h = try json(Health.self, ["health", "-q", c, "--json"], in: dir)
            let mine = try XCTUnwrap(r.commit(c)?.health)
            XCTAssertEqual(mine.count, h.rows.count)
            XCTAssertGreaterThan(mine.count, 4)
            for (a, b) in zip(mine, h.rows) {
                XCTAssertEqual("\(a.task).\(a.metric)", "\(b.task).\(b.metric)")
                XCTAssertEqual(a.value, b.value)
                XCTAssertEqual(a.base, b.base)
                XCTAssertEqual(a.change, b.change)
                XCTAssertEqual(a.passed, b.passed)
            }
        }

        // 2. The page: well-formed, self-contained, and its chart points are those numbers.
        let html = try String(contentsOfFile: page, encoding: .utf8)
        let scan = try PageScan(html)
        XCTAssertEqual(scan.figures, ["health-fam3-acc", "health-edits-efficacy", "health-edits-generalization", "health-edits-locality",
                                      "drift-l1", "drift-relfro", "drift-share0", "drift-share1", "drift-kappa"])
        XCTAssertEqual(scan.tableRows, 5)
        XCTAssertEqual(scan.linkAttributes, [], "no href/src of any kind")
        let stripped = html.replacingOccurrences(of: #"xmlns="http://www.w3.org/2000/svg""#, with: "")
        for needle in ["http://", "https://", "url(", "@import", "<link", "<iframe", "<img"] {
            XCTAssertFalse(stripped.contains(needle), "the page must not reference '\(needle)'")
        }
        XCTAssertTrue(html.contains("<script>"), "the table sorter is inline")
        XCTAssertTrue(html.contains("Danube -&gt; &quot;North Sea&quot; &lt;&amp;&gt; &#39;x&#39;"), "messages are escaped")
        func point(_ figure: String, _ series: String, _ x: Int) -> Double? {
            scan.points.first { $0.figure == figure && $0.series == series && $0.x == x }?.y
        }
        let prunedDrift = try XCTUnwrap(r.commit(pruned)?.drift.first { $0.name == l12 })
        XCTAssertEqual(point("drift-l1", "\(l12) (main)", 3), prunedDrift.l1)
        XCTAssertEqual(point("drift-relfro", "\(l12) (main)", 3), prunedDrift.relativeFrobenius)
        XCTAssertEqual(point("drift-share1", "\(l12) (main)", 3), prunedDrift.shares[1].fraction)
        XCTAssertEqual(point("drift-kappa", "\(l8) (plain)", 2), r.commit(e2)?.drift.first { $0.name == l8 }?.kappa)
        XCTAssertEqual(point("health-fam3-acc", "main", 2), r.commit(e2)?.health.first { $0.task == "fam3" && $0.metric == "acc" }?.value.value)
        XCTAssertEqual(point("health-edits-efficacy", "main", 3), r.commit(pruned)?.health.first { $0.metric == "efficacy" }?.value.value)
        XCTAssertNil(point("health-fam3-acc", "main", 4), "no point where nothing is cached")
        XCTAssertNil(point("health-fam3-acc", "plain", 3), "plain ends at x = 2")
        XCTAssertEqual(scan.points.filter { $0.figure == "drift-l1" }.count, 2 * 5 + 2 * 3, "two matrices × (5 + 3) commits")
        XCTAssertEqual(scan.markers.filter { $0.figure == "drift-l1" }.map(\.letter).sorted(), ["P", "R"])
        XCTAssertEqual(scan.bands, ["health-fam3-acc", "health-edits-locality"], "thresholds shaded where configured")

        // 3. Bad input: one line, exit 2, nothing changed.
        let before = try directoryDigest(dir)
        for (args, message) in [
            (["report", "nope"], "error: unknown revision 'nope'"),
            (["report", "main..plain"], "error: 'main..plain': 'main' is not an ancestor of 'plain'"),
            (["report", "main...plain"], "error: 'main...plain': report takes two-dot ranges A..B"),
            (["report", "--output", tmpPath + "/missing/r.html"], "error: '\(tmpPath)/missing/r.html': cannot write the report: no such directory '\(tmpPath)/missing'"),
            (["report", "--task", "nope"], nil),
            // Never over the ledger, another file of .wledger/ or a file HEAD tracks (the ledger
            // was replaced by the page, and the history lost).
            (["report", "--output", dir + "/.wledger/ledger"], "is inside .wledger/, which holds the ledger; write the report elsewhere"),
            (["report", "--output", dir + "/.wledger/config"], "is inside .wledger/, which holds the ledger"),
            (["report", "--output", dir + "/model.safetensors"], "is a file of the model directory that wledger tracks; write the report elsewhere"),
            (["report", "--output", dir + "/config.json"], "is a file of the model directory that wledger tracks"),
        ] as [([String], String?)] {
            let res = try CLI.run(args, in: dir)
            XCTAssertEqual(res.status, 2, "\(args): \(res.stderr)")
            XCTAssertEqual(res.stderr.split(separator: "\n").count, 1, res.stderr)
            if let message, message.hasPrefix("error: ") { XCTAssertEqual(res.stderr, message + "\n") }
            if let message, !message.hasPrefix("error: ") { XCTAssertTrue(res.stderr.contains(message), res.stderr) }
        }
        XCTAssertEqual(try directoryDigest(dir), before, "failed reports change nothing")

        // 4. Headless Chromium renders it: a PNG of the window's size that is not blank.
        try checkScreenshot(page: page, tmp: tmp.path)
    }

    /// Renders `page` and an empty page with headless Chromium at 1200×2000 and checks the PNG.
    func checkScreenshot(page: String, tmp: String) throws {
        guard let chromium = Self.findExecutable(["chromium", "chromium-browser"]) else {
            let env = ProcessInfo.processInfo.environment
            if env["CI"] != nil || env["WLEDGER_REQUIRE_FIXTURES"] != nil {
                XCTFail("chromium is not installed; CI installs it (scripts/setup.sh)")
            }
            throw XCTSkip("chromium is not installed (apt-get install chromium): the screenshot check of the report is skipped")
        }
        func shoot(_ html: String, _ png: String) throws -> [UInt8] {
            let r = try runProcess(chromium, ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--screenshot=\(png)",
                                              "--window-size=1200,2000", URL(fileURLWithPath: html).absoluteString])
            XCTAssertEqual(r.status, 0, r.stderr)
            return try Array(Data(contentsOf: URL(fileURLWithPath: png)))
        }
        try "<!DOCTYPE html><html><head><meta charset=\"utf-8\"/></head><body></body></html>".write(toFile: tmp + "/blank.html", atomically: true, encoding: .utf8)
        let blank = try shoot(tmp + "/blank.html", tmp + "/blank.png")
        let shot = try shoot(page, tmp + "/report.png")
        // To look at it: WLEDGER_REPORT_SCREENSHOT=/some/dir/shot.png swift test --filter ReportTests
        if let keep = ProcessInfo.processInfo.environment["WLEDGER_REPORT_SCREENSHOT"] {
            try? FileManager.default.removeItem(atPath: keep)
            try FileManager.default.copyItem(atPath: tmp + "/report.png", toPath: keep)
            try? FileManager.default.removeItem(atPath: keep + ".html")
            try FileManager.default.copyItem(atPath: page, toPath: keep + ".html")
        }
        // IHDR: signature, length, "IHDR", width, height (big-endian).
        XCTAssertEqual(Array(shot.prefix(8)), [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        XCTAssertEqual(String(decoding: shot[12..<16], as: UTF8.self), "IHDR")
        func be32(_ b: [UInt8], _ at: Int) -> Int { b[at..<(at + 4)].reduce(0) { $0 << 8 | Int($1) } }
        XCTAssertEqual(be32(shot, 16), 1200)
        XCTAssertEqual(be32(shot, 20), 2000)
        XCTAssertEqual(be32(blank, 16), 1200)
        XCTAssertGreaterThan(shot.count, 4 * blank.count, "a page of charts compresses far worse than an empty one")
        // Decode the pixels (Python's zlib, no imaging library): ink, colours, and the chart
        // palette's first two colours (the two matrices' lines and points) present.
        guard let python = Self.findExecutable(["python3"]) else { return }
        let script = tmp + "/pngstats.py"
        try Self.pngStats.write(toFile: script, atomically: true, encoding: .utf8)
        let res = try runProcess(python, [script, tmp + "/report.png", "31,119,180", "214,39,40"])
        XCTAssertEqual(res.status, 0, res.stderr)
        let f = res.stdout.split(separator: " ").map { Double($0.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1 }
        XCTAssertEqual(f.count, 6, res.stdout)
        guard f.count == 6 else { return }
        XCTAssertEqual(f[0], 1200)
        XCTAssertEqual(f[1], 2000)
        XCTAssertGreaterThan(f[2], 0.01, "share of non-white pixels: \(res.stdout)")
        XCTAssertGreaterThan(f[3], 50, "distinct colours: \(res.stdout)")
        XCTAssertGreaterThan(f[4], 200, "pixels of the first line colour: \(res.stdout)")
        XCTAssertGreaterThan(f[5], 200, "pixels of the second line colour: \(res.stdout)")
    }

    static func findExecutable(_ names: [String]) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for name in names {
            for d in path.split(separator: ":") where FileManager.default.isExecutableFile(atPath: "\(d)/\(name)") { return "\(d)/\(name)" }
        }
        return nil
    }

    /// Prints: width height non-white-share distinct-colours count(colour1) count(colour2).
    static let pngStats = #"""
        import struct, sys, zlib
        data = open(sys.argv[1], 'rb').read()
        assert data[:8] == b'\x89PNG\r\n\x1a\n'
        pos, idat, ihdr = 8, b'', None
        while pos < len(data):
            n, = struct.unpack('>I', data[pos:pos + 4]); kind = data[pos + 4:pos + 8]; body = data[pos + 8:pos + 8 + n]; pos += 12 + n
            if kind == b'IHDR': ihdr = struct.unpack('>IIBBBBB', body)
            elif kind == b'IDAT': idat += body
        w, h, depth, ctype, _, _, interlace = ihdr
        assert depth == 8 and ctype in (2, 6) and interlace == 0, ihdr
        bpp = 3 if ctype == 2 else 4
        raw = zlib.decompress(idat); stride = w * bpp
        prev = bytearray(stride); counts = {}
        for y in range(h):
            f = raw[y * (stride + 1)]; line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
            if f == 1:
                for i in range(bpp, stride): line[i] = (line[i] + line[i - bpp]) & 255
            elif f == 2:
                line = bytearray((a + b) & 255 for a, b in zip(line, prev))
            elif f == 3:
                for i in range(stride): line[i] = (line[i] + ((line[i - bpp] if i >= bpp else 0) + prev[i]) // 2) & 255
            elif f == 4:
                for i in range(stride):
                    a = line[i - bpp] if i >= bpp else 0; b = prev[i]; c = prev[i - bpp] if i >= bpp else 0
                    p = a + b - c; pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
            for i in range(0, stride, bpp):
                px = bytes(line[i:i + 3]); counts[px] = counts.get(px, 0) + 1
            prev = line
        white = counts.get(b'\xff\xff\xff', 0)
        want = [bytes(int(v) for v in a.split(',')) for a in sys.argv[2:]]
        print(w, h, (w * h - white) / (w * h), len(counts), *[counts.get(c, 0) for c in want])
        """#
}

/// What the test needs from the page, read with an XML parser (the page is well-formed XML).
final class PageScan: NSObject, XMLParserDelegate {
    struct ChartPoint { var figure: String; var series: String; var x: Int; var y: Double }
    struct ChartMarker { var figure: String; var letter: String }
    var figures: [String] = []
    var points: [ChartPoint] = []
    var markers: [ChartMarker] = []
    var bands: [String] = []
    var tableRows = 0
    var linkAttributes: [String] = []
    private var stack: [String] = []
    private var inMarkerText = false
    private var text = ""
    private var error: Error?

    init(_ html: String) throws {
        super.init()
        let parser = XMLParser(data: Data(html.utf8))
        parser.delegate = self
        if !parser.parse() {
            throw NSError(domain: "PageScan", code: 1, userInfo: [NSLocalizedDescriptionKey:
                "the page is not well-formed: \(parser.parserError.map { "\($0)" } ?? "?") at line \(parser.lineNumber)"])
        }
    }

    private var figure: String { figures.last ?? "" }

    func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?, attributes a: [String: String] = [:]) {
        stack.append(name)
        for key in ["href", "src", "xlink:href", "action", "srcset"] where a[key] != nil { linkAttributes.append("\(name) \(key)=\(a[key]!)") }
        switch name {
        case "figure": figures.append(a["id"] ?? "?")
        case "circle":
            if let s = a["data-series"], let x = a["data-x"].flatMap(Int.init), let y = a["data-y"].flatMap(Double.init) {
                points.append(ChartPoint(figure: figure, series: s, x: x, y: y))
            }
        case "polygon" where a["class"] == "band": if bands.last != figure { bands.append(figure) }
        case "tr" where stack.contains("tbody"): tableRows += 1
        case "text" where a["class"] == "mark": inMarkerText = true; text = ""
        default: break
        }
    }

    func parser(_ parser: XMLParser, foundCharacters string: String) { if inMarkerText { text += string } }

    func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
        if name == "text", inMarkerText { markers.append(ChartMarker(figure: figure, letter: text)); inMarkerText = false }
        stack.removeLast()
    }
}
