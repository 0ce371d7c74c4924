import Foundation

/// Renders `ReportData` as one self-contained HTML page: inline SVG charts drawn here, inline
/// CSS (with print rules) and a few lines of inline JavaScript to sort the table. It makes no
/// request of any kind (no external URL; the only URI is SVG's namespace name). The markup is
/// also well-formed XML, so it can be checked with any XML parser.
public enum ReportHTML {
    public static func render(_ data: ReportData) -> String {
        var h = ""
        h += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n"
        h += "<title>wledger report: \(esc(data.model))</title>\n<style>\(css)</style>\n</head>\n<body>\n"
        h += "<h1>wledger report: \(esc(data.model))</h1>\n"
        h += "<p class=\"meta\">base \(esc(short(data.base))) · suite \(esc(data.suite)) (\(esc(data.evaluator))) · "
        h += data.series.map { s in "<span style=\"color:\(seriesColor(data, s.label))\">\(esc(s.label))</span> (\(s.commits.count) commit\(s.commits.count == 1 ? "" : "s"), \(esc(short(s.from)))..\(esc(short(s.to))))" }
            .joined(separator: ", ")
        h += "</p>\n"
        h += "<p class=\"note\">x = commits since the start of each range (0 = its first commit). Vertical lines mark revert (R), "
        h += "prune (P) and restrain (S) commits. Dots are commits with a value; lines join them. Hover a dot for its commit and value.</p>\n"
        h += abilities(data)
        h += drift(data)
        h += table(data)
        h += "<script>/*<![CDATA[*/\(script)/*]]>*/</script>\n</body>\n</html>\n"
        return h
    }

    // MARK: - Sections

    static func abilities(_ data: ReportData) -> String {
        var h = "<h2>1. Abilities vs commits</h2>\n"
        if data.metrics.isEmpty {
            h += "<p class=\"empty\">No cached health results for these commits: run <code>wledger health REV</code> for some of them, "
            h += "or <code>wledger report --evaluate</code>.</p>\n"
            return h
        }
        h += "<p class=\"note\">One chart per task metric, one line per range. Dashed grey: the base's value (for edit retention, "
        h += "the base asked the same requests). Red shading: values that fail a threshold from .wledger/config.</p>\n"
        h += legend(data.series.map { ($0.label, seriesColor(data, $0.label), seriesDash(data, $0.label)) })
        h += "<div class=\"grid\">\n"
        for m in data.metrics {
            var chart = Chart(title: "\(m.task) · \(m.metric)", id: "health-\(m.task)-\(m.metric)")
            var baseLine: [Point] = []
            var failLimit: [Point] = []
            let lowerIsBetter = Threshold.lowerIsBetter(m.metric)
            for s in data.series {
                let color = seriesColor(data, s.label)
                var pts: [Point] = []
                for (x, id) in s.commits.enumerated() {
                    guard let c = data.commit(id) else { continue }
                    let row = c.health(m.task, m.metric)
                    let tip = row.map { r in
                        "\(s.label) #\(x) \(short(id)) \(c.kind): \(firstLine(c.message)) — \(m.metric) \(fmt(r.value.value)) ± \(fmt(r.value.stderr))"
                            + (r.change.map { " (\(signed($0)) vs base)" } ?? "")
                    } ?? ""
                    pts.append(Point(x: x, y: row?.value.value, tip: tip))
                    if s.label == data.series[0].label {
                        baseLine.append(Point(x: x, y: row?.base?.value, tip: row?.base.map { "base \(fmt($0.value))" } ?? ""))
                        if let t = m.threshold, let r = row {
                            // The metric fails below the highest floor, or, where lower is
                            // better, above the lowest ceiling.
                            var limit = lowerIsBetter ? Double.infinity : -Double.infinity
                            if lowerIsBetter {
                                if let mx = t.max { limit = min(limit, mx) }
                                if let d = t.maxDrop, let b = r.base?.value { limit = min(limit, b + d.allowed(base: b)) }
                            } else {
                                if let mn = t.min { limit = max(limit, mn) }
                                if let d = t.maxDrop, let b = r.base?.value { limit = max(limit, b - d.allowed(base: b)) }
                            }
                            if limit.isFinite { failLimit.append(Point(x: x, y: limit, tip: "")) }
                        }
                    }
                }
                chart.lines.append(Line(label: s.label, color: color, dash: seriesDash(data, s.label), points: pts))
                chart.markers += markers(data, s, color: color)
            }
            // The first range is drawn last, on top.
            chart.lines.reverse()
            if baseLine.contains(where: { $0.y != nil }) {
                chart.references.append(Line(label: "base", color: "#777777", dash: "5,4", points: baseLine, dots: false))
            }
            if !failLimit.isEmpty {
                var desc: [String] = []
                if let mn = m.threshold?.min, !lowerIsBetter { desc.append("min \(fmt(mn))") }
                if let mx = m.threshold?.max, lowerIsBetter { desc.append("max \(fmt(mx))") }
                if let d = m.threshold?.maxDrop { desc.append("max-drop \(d)") }
                chart.bands.append(Band(label: "fails " + desc.joined(separator: ", "), limit: failLimit, above: lowerIsBetter))
            }
            h += figure(chart)
        }
        h += "</div>\n"
        return h
    }

    static func drift(_ data: ReportData) -> String {
        var h = "<h2>2. Weight drift vs commits</h2>\n"
        if data.matrices.isEmpty {
            h += "<p class=\"empty\">No tensor differs from the base in these commits.</p>\n"
            return h
        }
        h += "<p class=\"note\">ΔW = W(commit) − W(base) per edited matrix, in float64, computed as <code>wledger diff base COMMIT</code> does. "
        h += "δ = |ΔW / W(base)|; 0.077 and 0.171 are RECT's thresholds. κ = σmax/σmin (dashed: the base's κ)."
        h += "</p>\n"
        h += legend(data.matrices.enumerated().map { i, n in (n, palette[i % palette.count], nil) })
        if data.series.count > 1 { h += legend(data.series.map { ($0.label, "#444444", seriesDash(data, $0.label)) }) }
        let thresholds = data.deltaThresholds
        var panels: [(String, String, (ReportCommit.Drift) -> Double?, Bool)] = [
            ("Σ|ΔW| since base", "l1", { $0.l1 }, false),
            ("‖ΔW‖F / ‖W‖F", "relfro", { $0.relativeFrobenius }, false),
        ]
        for (i, t) in thresholds.enumerated() {
            panels.append(("share of elements with δ > \(fmtThreshold(t))", "share\(i)", { d in d.shares.indices.contains(i) ? d.shares[i].fraction : nil }, true))
        }
        panels.append(("condition number κ", "kappa", { $0.kappa }, false))
        h += "<div class=\"grid\">\n"
        for (title, key, value, percent) in panels {
            var chart = Chart(title: title, id: "drift-\(key)")
            chart.percent = percent
            for (si, s) in data.series.enumerated() {
                for (mi, name) in data.matrices.enumerated() {
                    let color = palette[mi % palette.count]
                    var pts: [Point] = []
                    for (x, id) in s.commits.enumerated() {
                        guard let c = data.commit(id), let d = c.drift(name) else { pts.append(Point(x: x, y: nil, tip: "")); continue }
                        let v = value(d)
                        let tip = "\(name) · \(s.label) #\(x) \(short(id)) \(c.kind): \(firstLine(c.message)) — \(v.map { percent ? pct($0) : fmt($0) } ?? "-")"
                        pts.append(Point(x: x, y: v, tip: tip))
                    }
                    chart.lines.append(Line(label: "\(name) (\(s.label))", color: color, dash: seriesDash(data, s.label), points: pts))
                    if key == "kappa", si == 0, let k = data.commits.lazy.compactMap({ $0.drift(name)?.baseKappa }).first {
                        chart.references.append(Line(label: "κ base", color: color, dash: "2,4",
                                                     points: s.commits.indices.map { Point(x: $0, y: k, tip: "") }, dots: false))
                    }
                }
                chart.markers += markers(data, s, color: data.series.count > 1 ? seriesColor(data, s.label) : "#555555")
            }
            chart.lines.reverse()
            h += figure(chart)
        }
        h += "</div>\n"
        return h
    }

    static func table(_ data: ReportData) -> String {
        var h = "<h2>3. Commits</h2>\n<p class=\"note\">Click a column header to sort. Drift columns: Σ over, or the largest of, "
        h += "the edited matrices vs the base. Health: value (change vs base); FAIL marks a failed threshold; – no cached result.</p>\n"
        h += "<div class=\"tablewrap\"><table class=\"sortable\" id=\"commits\">\n<thead><tr>"
        var headers = ["#", "range", "commit", "kind", "message", "method", "request", "tensors touched", "Σ|ΔW| (commit)",
                       "Σ|ΔW| since base", "max ‖ΔW‖F/‖W‖F"]
        headers += data.deltaThresholds.map { "max share δ &gt; \(fmtThreshold($0))" }
        headers += ["max κ (base)"]
        headers += data.metrics.map { "\(esc($0.task)) \(esc($0.metric))" }
        h += headers.map { "<th>\($0)</th>" }.joined() + "</tr></thead>\n<tbody>\n"
        for c in data.commits {
            let member = data.series.filter { $0.commits.contains(c.id) }
            let x = member.first?.commits.firstIndex(of: c.id) ?? 0
            var cells: [(String, String)] = []  // (sort value, html)
            cells.append(("\(x)", "\(x)"))
            cells.append((member.map(\.label).joined(separator: " "), member.map { esc($0.label) }.joined(separator: "<br/>")))
            cells.append((c.id, "<code title=\"\(esc(c.id))\">\(esc(short(c.id)))</code>"))
            cells.append((c.kind, "<span class=\"kind-\(esc(c.kind))\">\(esc(c.kind))</span>"))
            cells.append((firstLine(c.message), esc(firstLine(c.message))))
            cells.append((c.method ?? "", esc(c.method ?? "")))
            let req = c.requests.map { "\($0.subject) → \($0.targetNew)" }
            cells.append((req.joined(separator: "; "), req.map(esc).joined(separator: "<br/>")))
            cells.append(("\(c.tensors.count)", c.tensors.map { esc(shortTensor($0)) }.joined(separator: "<br/>")))
            cells.append((num(c.l1), sci(c.l1)))
            let total = c.drift.reduce(0) { $0 + $1.l1 }
            cells.append((num(total), sci(total)))
            let rel = c.drift.map(\.relativeFrobenius).max() ?? 0
            cells.append((num(rel), sci(rel)))
            for i in data.deltaThresholds.indices {
                let s = c.drift.compactMap { $0.shares.indices.contains(i) ? $0.shares[i].fraction : nil }.max() ?? 0
                cells.append((num(s), pct(s)))
            }
            if let worst = c.drift.filter({ $0.kappa != nil }).max(by: { $0.kappa! < $1.kappa! }), let k = worst.kappa {
                cells.append((num(k), "\(fmt(k)) (\(worst.baseKappa.map(fmt) ?? "-"))"))
            } else {
                cells.append(("", "–"))
            }
            for m in data.metrics {
                if let r = c.health(m.task, m.metric) {
                    let change = r.change.map { " (\(signed($0)))" } ?? ""
                    let fail = r.passed == false ? " <span class=\"fail\" title=\"\(esc(r.failure ?? ""))\">FAIL</span>" : ""
                    cells.append((num(r.value.value), fmt(r.value.value) + change + fail))
                } else {
                    cells.append(("", "–"))
                }
            }
            let wrapping: Set<Int> = [4, 6, 7]  // message, request, tensors
            h += "<tr class=\"kind-\(esc(c.kind))\">" + cells.enumerated().map { i, cell in
                "<td\(wrapping.contains(i) ? "" : " class=\"nw\"") data-v=\"\(esc(cell.0))\">\(cell.1)</td>"
            }.joined() + "</tr>\n"
        }
        h += "</tbody>\n</table></div>\n"
        return h
    }

    static func markers(_ data: ReportData, _ s: ReportSeries, color: String) -> [Marker] {
        s.commits.enumerated().compactMap { x, id in
            guard let c = data.commit(id) else { return nil }
            let letter: String
            switch c.kind {
            case "revert": letter = "R"
            case "prune": letter = "P"
            case "restrain": letter = "S"
            default: return nil
            }
            return Marker(x: x, letter: letter, color: color, tip: "\(s.label) #\(x) \(short(id)) \(c.kind): \(firstLine(c.message))")
        }
    }

    static func legend(_ items: [(String, String, String?)]) -> String {
        "<div class=\"legend\">" + items.map { label, color, dash in
            "<span><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"24\" height=\"10\"><line x1=\"0\" y1=\"5\" x2=\"24\" y2=\"5\" stroke=\"\(color)\" stroke-width=\"2.5\"\(dash.map { " stroke-dasharray=\"\($0)\"" } ?? "")/></svg> \(esc(label))</span>"
        }.joined(separator: " ") + "</div>\n"
    }

    static let dashes = ["", "6,3", "2,3", "8,3,2,3"]

    static func seriesDash(_ data: ReportData, _ label: String) -> String? {
        let i = data.series.firstIndex { $0.label == label } ?? 0
        let d = dashes[i % dashes.count]
        return d.isEmpty ? nil : d
    }

    static func seriesColor(_ data: ReportData, _ label: String) -> String {
        let i = data.series.firstIndex { $0.label == label } ?? 0
        return palette[i % palette.count]
    }

    // MARK: - SVG charts

    struct Point { var x: Int; var y: Double?; var tip: String }
    struct Line { var label: String; var color: String; var dash: String?; var points: [Point]; var dots = true }
    /// The region below `limit` (values that fail a threshold).
    /// A failing region: below the limit, or above it (`above`, metrics where lower is better).
    struct Band { var label: String; var limit: [Point]; var above = false }
    struct Marker { var x: Int; var letter: String; var color: String; var tip: String }
    struct Chart {
        var title: String
        var id: String
        var lines: [Line] = []
        var references: [Line] = []
        var bands: [Band] = []
        var markers: [Marker] = []
        var percent = false
    }

    static let width = 560.0, height = 250.0
    static let left = 62.0, right = 14.0, top = 16.0, bottom = 36.0

    static func figure(_ c: Chart) -> String {
        "<figure class=\"chart\" id=\"\(esc(slug(c.id)))\"><figcaption>\(esc(c.title))</figcaption>\n\(svg(c))</figure>\n"
    }

    /// One line chart as an SVG element.
    static func svg(_ c: Chart) -> String {
        let allLines = c.lines + c.references
        let xMax = max(1, (allLines.flatMap { $0.points.map(\.x) } + c.markers.map(\.x)).max() ?? 1)
        var ys = allLines.flatMap { $0.points.compactMap(\.y) }.filter(\.isFinite)
        let bandValues = c.bands.flatMap { $0.limit.compactMap(\.y) }.filter(\.isFinite)
        // Threshold limits are always in view with some of the failing region below them, so the
        // margin to failing shows.
        ys += bandValues
        var yMin = ys.min() ?? 0, yMax = ys.max() ?? 1
        if let lowest = bandValues.min() { yMin = min(yMin, lowest - 0.15 * max(yMax - lowest, abs(lowest) * 0.1, 1e-9)) }
        if c.percent { yMin = min(yMin, 0) }
        if yMax - yMin < 1e-12 {
            let pad = yMax == 0 ? 1 : abs(yMax) * 0.1
            yMin -= pad; yMax += pad
        }
        let step = niceStep((yMax - yMin) / 5)
        yMin = (yMin / step).rounded(.down) * step
        yMax = (yMax / step).rounded(.up) * step
        if yMax - yMin < step { yMax = yMin + step }
        let pw = width - left - right, ph = height - top - bottom
        func sx(_ x: Int) -> Double { left + Double(x) / Double(xMax) * pw }
        func sy(_ y: Double) -> Double { top + (1 - (min(max(y, yMin), yMax) - yMin) / (yMax - yMin)) * ph }
        func f(_ v: Double) -> String { String(format: "%.1f", v) }

        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 \(Int(width)) \(Int(height))\" width=\"\(Int(width))\" height=\"\(Int(height))\" role=\"img\">\n"
        s += "<title>\(esc(c.title))</title>\n"
        s += "<rect x=\"\(f(left))\" y=\"\(f(top))\" width=\"\(f(pw))\" height=\"\(f(ph))\" fill=\"#ffffff\" stroke=\"#bbbbbb\"/>\n"
        // Threshold bands: shaded below the limit (above it where lower is better).
        for b in c.bands {
            let pts = b.limit.compactMap { p in p.y.map { (sx(p.x), sy($0)) } }
            guard let first = pts.first, let last = pts.last else { continue }
            var poly = pts.count == 1 ? [(left, first.1), (left + pw, first.1)] : pts
            if pts.count > 1 {
                poly.insert((left, first.1), at: 0)
                poly.append((left + pw, last.1))
            }
            poly += b.above ? [(left + pw, top), (left, top)] : [(left + pw, top + ph), (left, top + ph)]
            s += "<polygon class=\"band\" points=\"\(poly.map { "\(f($0.0)),\(f($0.1))" }.joined(separator: " "))\" fill=\"#e53935\" fill-opacity=\"0.13\" stroke=\"none\"><title>\(esc(b.label))</title></polygon>\n"
            let edge = poly.dropLast(2).map { "\(f($0.0)),\(f($0.1))" }.joined(separator: " ")
            s += "<polyline points=\"\(edge)\" fill=\"none\" stroke=\"#e53935\" stroke-opacity=\"0.6\" stroke-width=\"1\"/>\n"
        }
        // Grid and axes.
        var y = yMin
        var guardCount = 0
        while y <= yMax + step * 1e-6 && guardCount < 20 {
            let py = sy(y)
            s += "<line x1=\"\(f(left))\" y1=\"\(f(py))\" x2=\"\(f(left + pw))\" y2=\"\(f(py))\" stroke=\"#eeeeee\"/>"
            s += "<text x=\"\(f(left - 6))\" y=\"\(f(py + 4))\" text-anchor=\"end\" class=\"tick\">\(esc(tickLabel(y, step: step, percent: c.percent)))</text>\n"
            y += step
            guardCount += 1
        }
        let xStep = max(1, Int(niceStep(Double(xMax) / 10).rounded(.up)))
        for x in stride(from: 0, through: xMax, by: xStep) {
            let px = sx(x)
            s += "<line x1=\"\(f(px))\" y1=\"\(f(top + ph))\" x2=\"\(f(px))\" y2=\"\(f(top + ph + 4))\" stroke=\"#888888\"/>"
            s += "<text x=\"\(f(px))\" y=\"\(f(top + ph + 16))\" text-anchor=\"middle\" class=\"tick\">\(x)</text>\n"
        }
        s += "<text x=\"\(f(left + pw / 2))\" y=\"\(f(height - 4))\" text-anchor=\"middle\" class=\"axis\">commits since start</text>\n"
        // Markers for revert / prune / restrain.
        for m in c.markers {
            let px = sx(m.x)
            s += "<g class=\"marker\"><title>\(esc(m.tip))</title><line x1=\"\(f(px))\" y1=\"\(f(top))\" x2=\"\(f(px))\" y2=\"\(f(top + ph))\" stroke=\"\(m.color)\" stroke-dasharray=\"3,3\" stroke-width=\"1\"/>"
            s += "<text x=\"\(f(px + 3))\" y=\"\(f(top + 11))\" class=\"mark\" fill=\"\(m.color)\">\(esc(m.letter))</text></g>\n"
        }
        // Reference lines, then data lines with points.
        for l in c.references + c.lines {
            // Commits without a value (no cached result) are skipped: the line joins its neighbours.
            let segments = [l.points.compactMap { p in p.y.flatMap { $0.isFinite ? (sx(p.x), sy($0)) : nil } }]
            let dash = l.dash.map { " stroke-dasharray=\"\($0)\"" } ?? ""
            let widthAttr = l.dots ? "2" : "1.5"
            for seg in segments where seg.count > 1 {
                s += "<polyline points=\"\(seg.map { "\(f($0.0)),\(f($0.1))" }.joined(separator: " "))\" fill=\"none\" stroke=\"\(l.color)\" stroke-width=\"\(widthAttr)\"\(dash)><title>\(esc(l.label))</title></polyline>\n"
            }
            if l.dots {
                for p in l.points {
                    guard let v = p.y, v.isFinite else { continue }
                    s += "<circle cx=\"\(f(sx(p.x)))\" cy=\"\(f(sy(v)))\" r=\"3\" fill=\"\(l.color)\" data-series=\"\(esc(l.label))\" data-x=\"\(p.x)\" data-y=\"\(num(v))\"><title>\(esc(p.tip))</title></circle>\n"
                }
            }
        }
        s += "</svg>\n"
        return s
    }

    /// 1, 2 or 5 times a power of ten, at least `raw`.
    static func niceStep(_ raw: Double) -> Double {
        guard raw > 0, raw.isFinite else { return 1 }
        let p = pow(10, (log10(raw)).rounded(.down))
        for m in [1.0, 2, 5, 10] where m * p >= raw * (1 - 1e-9) { return m * p }
        return 10 * p
    }

    static func tickLabel(_ v: Double, step: Double, percent: Bool) -> String {
        let scaled = percent ? v * 100 : v
        let st = percent ? step * 100 : step
        if abs(scaled) >= 1e5 || (abs(scaled) > 0 && abs(scaled) < 1e-3 && st < 1e-3) { return String(format: "%.2g", scaled) + (percent ? "%" : "") }
        let decimals = max(0, min(6, Int((-log10(st)).rounded(.up))))
        let text = String(format: "%.\(decimals)f", abs(scaled) < st * 1e-6 ? 0 : scaled)
        return text + (percent ? "%" : "")
    }

    // MARK: - Formatting

    static func esc(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.count)
        for ch in s.unicodeScalars {
            switch ch {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default:
                // Control characters other than tab/newline are not allowed in XML.
                if ch.value < 0x20 && ch != "\t" && ch != "\n" { out += " " } else { out.unicodeScalars.append(ch) }
            }
        }
        return out
    }

    static func short(_ id: String) -> String { String(id.prefix(12)) }
    static func firstLine(_ s: String) -> String { s.split(separator: "\n", omittingEmptySubsequences: false).first.map(String.init) ?? "" }
    static func shortTensor(_ n: String) -> String { n.hasPrefix("model.") ? String(n.dropFirst(6)) : n }
    static func slug(_ s: String) -> String { String(s.map { $0.isLetter || $0.isNumber || $0 == "-" ? $0 : "_" }) }
    static func fmt(_ x: Double) -> String { abs(x) >= 1000 || (x != 0 && abs(x) < 0.001) ? String(format: "%.3g", x) : String(format: abs(x) >= 100 ? "%.1f" : "%.3f", x) }
    static func signed(_ x: Double) -> String { (x >= 0 ? "+" : "−") + fmt(abs(x)) }
    static func sci(_ x: Double) -> String { String(format: "%.4g", x) }
    static func pct(_ x: Double) -> String { String(format: "%.3f%%", 100 * x) }
    static func num(_ x: Double) -> String { x.isFinite ? "\(x)" : "" }
    static func fmtThreshold(_ t: Double) -> String { String(format: "%g", t) }

    static let palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22"]

    static let css = """

        body { font: 14px/1.4 -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #222; margin: 24px; max-width: 1180px; }
        h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 18px; margin: 28px 0 6px; border-bottom: 1px solid #ddd; }
        .meta, .note { color: #555; margin: 4px 0; } .empty { color: #a00; }
        code { font: 12px monospace; }
        .legend { margin: 6px 0; font-size: 12px; } .legend span { margin-right: 12px; white-space: nowrap; }
        .grid { display: grid; grid-template-columns: repeat(2, 560px); gap: 12px 24px; }
        figure.chart { margin: 0; break-inside: avoid; page-break-inside: avoid; }
        figcaption { font-weight: 600; font-size: 13px; }
        svg text.tick { font-size: 11px; fill: #555; } svg text.axis { font-size: 11px; fill: #333; }
        svg text.mark { font-size: 11px; font-weight: 700; }
        table { border-collapse: collapse; font-size: 11px; margin-top: 8px; width: 100%; }
        th, td { border: 1px solid #ddd; padding: 2px 4px; vertical-align: top; text-align: left; overflow-wrap: anywhere; }
        td.nw { white-space: nowrap; } td:nth-child(5) { min-width: 140px; } td:nth-child(7) { min-width: 110px; } td:nth-child(8) { min-width: 150px; }
        .tablewrap { overflow-x: auto; }
        th { background: #f4f4f4; cursor: pointer; user-select: none; }
        th[data-dir="asc"]::after { content: " ▲"; } th[data-dir="desc"]::after { content: " ▼"; }
        tr.kind-revert td, tr.kind-prune td, tr.kind-restrain td { background: #fbf8ec; }
        .fail { color: #fff; background: #c62828; padding: 0 3px; border-radius: 2px; font-weight: 700; }
        @page { size: A4 landscape; margin: 12mm; }
        @media print {
          body { margin: 0; font-size: 10pt; max-width: none; }
          .grid { grid-template-columns: repeat(2, 1fr); }
          svg { max-width: 100%; height: auto; }
          th { cursor: auto; background: #eee; }
          h2 { break-after: avoid; page-break-after: avoid; }
          tr { break-inside: avoid; page-break-inside: avoid; }
        }

        """

    /// Sorts the commit table by a clicked column (numbers numerically, empty cells last).
    static let script = """

        (function () {
          var tables = document.querySelectorAll("table.sortable");
          Array.prototype.forEach.call(tables, function (table) {
            var heads = table.tHead.rows[0].cells;
            Array.prototype.forEach.call(heads, function (th, col) {
              th.addEventListener("click", function () {
                var dir = th.getAttribute("data-dir") === "asc" ? -1 : 1;
                Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("data-dir"); });
                th.setAttribute("data-dir", dir === 1 ? "asc" : "desc");
                var body = table.tBodies[0];
                var rows = Array.prototype.slice.call(body.rows);
                rows.sort(function (r1, r2) {
                  var a = r1.cells[col].getAttribute("data-v"), b = r2.cells[col].getAttribute("data-v");
                  if (a === b) return 0;
                  if (a === "") return 1;
                  if (b === "") return -1;
                  var x = Number(a), y = Number(b);
                  if (!isNaN(x) && !isNaN(y)) return dir * (x - y);
                  return dir * a.localeCompare(b);
                });
                rows.forEach(function (r) { body.appendChild(r); });
              });
            });
          });
        })();

        """
}
