import Foundation

/// A series on an `SVGPlot`: points joined by a line and/or drawn as markers, optionally labelled.
public struct SVGSeries {
    public var name: String
    public var points: [(x: Double, y: Double)]
    public var color: String
    public var line = true
    public var markers = true
    /// Filled markers (else hollow rings).
    public var filled = true
    /// Text beside each marker (same count as `points`), or empty.
    public var labels: [String] = []
    public var dashed = false
    /// Error bars: per point, the interval drawn around it vertically (`yErrors`) and
    /// horizontally (`xErrors`); empty, or nil entries, for none.
    public var yErrors: [Interval?] = []
    public var xErrors: [Interval?] = []

    public init(name: String, points: [(x: Double, y: Double)], color: String) {
        self.name = name
        self.points = points
        self.color = color
    }
}

/// A small XY chart written as standalone SVG 1.1: axes with "nice" ticks, a title, axis labels,
/// a legend. No scripts, no external references, so it can be inlined in HTML.
public struct SVGPlot {
    public var title: String
    public var xLabel: String
    public var yLabel: String
    public var series: [SVGSeries]
    public var width = 760.0
    public var height = 400.0
    /// Extend the y axis down (or up) to 0, for quantities such as power.
    public var includeZeroY = false
    /// A logarithmic y axis (positive values only), for perplexities that explode.
    public var logY = false

    public static let palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                                 "#bcbd22", "#17becf"]

    public init(title: String, xLabel: String, yLabel: String, series: [SVGSeries]) {
        self.title = title
        self.xLabel = xLabel
        self.yLabel = yLabel
        self.series = series
    }

    /// Up to about `count` round tick values covering [lo, hi] (1, 2, 5 × 10^k steps).
    public static func ticks(_ lo: Double, _ hi: Double, count: Int = 5) -> [Double] {
        guard lo.isFinite, hi.isFinite else { return [] }
        if hi <= lo { return [lo] }
        let raw = (hi - lo) / Double(max(count, 1))
        let mag = pow(10, floor(log10(raw)))
        let step = [1.0, 2, 5, 10].map { $0 * mag }.first { $0 >= raw } ?? 10 * mag
        var t = ceil(lo / step - 1e-9) * step
        var out: [Double] = []
        while t <= hi + step * 1e-9 { out.append(abs(t) < step * 1e-9 ? 0 : t); t += step }
        return out
    }

    static func num(_ v: Double) -> String { String(format: "%.2f", v) }

    static func tickText(_ v: Double) -> String {
        if v == 0 { return "0" }
        let a = abs(v)
        if a >= 1e5 || a < 1e-3 { return String(format: "%.1e", v) }
        return String(format: "%g", (v * 1e6).rounded() / 1e6)
    }

    public func render() -> String {
        let ml = 70.0, mr = 170.0, mt = 40.0, mb = 55.0
        let pw = width - ml - mr, ph = height - mt - mb
        // On a log axis every y is drawn as log10(y); ticks are labelled with the values.
        let ty: (Double) -> Double = logY ? { $0 > 0 ? log10($0) : .nan } : { $0 }
        var extent = series.flatMap(\.points)
        for se in series {  // error bars stay inside the axes
            for (j, p) in se.points.enumerated() {
                if j < se.yErrors.count, let e = se.yErrors[j] { extent += [(p.x, e.low), (p.x, e.high)] }
                if j < se.xErrors.count, let e = se.xErrors[j] { extent += [(e.low, p.y), (e.high, p.y)] }
            }
        }
        let all = extent.map { (x: $0.x, y: ty($0.y)) }.filter { $0.x.isFinite && $0.y.isFinite }
        var x0 = all.map(\.x).min() ?? 0, x1 = all.map(\.x).max() ?? 1
        var y0 = all.map(\.y).min() ?? 0, y1 = all.map(\.y).max() ?? 1
        if includeZeroY { y0 = min(y0, 0); y1 = max(y1, 0) }
        if x1 - x0 < 1e-12 { x0 -= max(abs(x0) * 0.1, 1); x1 += max(abs(x1) * 0.1, 1) }
        if y1 - y0 < 1e-12 { y0 -= max(abs(y0) * 0.1, 1); y1 += max(abs(y1) * 0.1, 1) }
        let padX = (x1 - x0) * 0.06, padY = (y1 - y0) * 0.08
        x0 -= padX; x1 += padX; y0 -= padY; y1 += padY
        func sx(_ x: Double) -> Double { ml + (x - x0) / (x1 - x0) * pw }
        func sy(_ y: Double) -> Double { mt + ph - (y - y0) / (y1 - y0) * ph }
        var s = """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" viewBox="0 0 \(Int(width)) \(Int(height))" font-family="sans-serif" font-size="12">
        <title>\(HTML.escape(title))</title>
        <rect x="0" y="0" width="\(Int(width))" height="\(Int(height))" fill="#ffffff"/>
        <text x="\(Self.num(width / 2))" y="22" text-anchor="middle" font-size="15" font-weight="bold">\(HTML.escape(title))</text>

        """
        s += "<g stroke=\"#dddddd\" stroke-width=\"1\">\n"
        let xt = Self.ticks(x0, x1)
        var yt = Self.ticks(y0, y1)
        if logY {  // powers of ten when the axis spans at least two
            let decades = stride(from: ceil(y0), through: floor(y1), by: 1).map { $0 }
            if decades.count >= 2 { yt = decades }
        }
        for t in xt { s += "<line x1=\"\(Self.num(sx(t)))\" y1=\"\(Self.num(mt))\" x2=\"\(Self.num(sx(t)))\" y2=\"\(Self.num(mt + ph))\"/>\n" }
        for t in yt { s += "<line x1=\"\(Self.num(ml))\" y1=\"\(Self.num(sy(t)))\" x2=\"\(Self.num(ml + pw))\" y2=\"\(Self.num(sy(t)))\"/>\n" }
        s += "</g>\n<rect x=\"\(Self.num(ml))\" y=\"\(Self.num(mt))\" width=\"\(Self.num(pw))\" height=\"\(Self.num(ph))\" fill=\"none\" stroke=\"#333333\"/>\n"
        for t in xt { s += "<text x=\"\(Self.num(sx(t)))\" y=\"\(Self.num(mt + ph + 16))\" text-anchor=\"middle\">\(Self.tickText(t))</text>\n" }
        for t in yt { s += "<text x=\"\(Self.num(ml - 6))\" y=\"\(Self.num(sy(t) + 4))\" text-anchor=\"end\">\(Self.tickText(logY ? pow(10, t) : t))</text>\n" }
        s += "<text x=\"\(Self.num(ml + pw / 2))\" y=\"\(Self.num(height - 12))\" text-anchor=\"middle\">\(HTML.escape(xLabel))</text>\n"
        s += "<text transform=\"translate(16 \(Self.num(mt + ph / 2))) rotate(-90)\" text-anchor=\"middle\">\(HTML.escape(yLabel))</text>\n"
        for (i, se) in series.enumerated() {
            let pts = se.points.map { (x: $0.x, y: ty($0.y)) }.filter { $0.x.isFinite && $0.y.isFinite }
            s += "<g class=\"series\" data-name=\"\(HTML.escape(se.name))\">\n"
            if se.line, pts.count > 1 {
                let d = pts.enumerated().map { ($0.offset == 0 ? "M" : "L") + Self.num(sx($0.element.x)) + " " + Self.num(sy($0.element.y)) }.joined(separator: " ")
                s += "<path d=\"\(d)\" fill=\"none\" stroke=\"\(se.color)\" stroke-width=\"1.8\"\(se.dashed ? " stroke-dasharray=\"5 3\"" : "")/>\n"
            }
            // Error bars first, so markers sit on top; an interval is drawn in data units
            // (through the log transform on a log axis), with 3-pixel caps.
            for (j, p) in se.points.enumerated() where p.x.isFinite && ty(p.y).isFinite {
                if j < se.yErrors.count, let e = se.yErrors[j], ty(e.low).isFinite, ty(e.high).isFinite {
                    let x = Self.num(sx(p.x)), lo = Self.num(sy(ty(e.low))), hi = Self.num(sy(ty(e.high)))
                    s += "<path class=\"error-bar\" d=\"M\(x) \(lo) L\(x) \(hi) M\(Self.num(sx(p.x) - 3)) \(lo) L\(Self.num(sx(p.x) + 3)) \(lo) M\(Self.num(sx(p.x) - 3)) \(hi) L\(Self.num(sx(p.x) + 3)) \(hi)\" stroke=\"\(se.color)\" stroke-width=\"1.2\" fill=\"none\"/>\n"
                }
                if j < se.xErrors.count, let e = se.xErrors[j], e.low.isFinite, e.high.isFinite {
                    let y = Self.num(sy(ty(p.y))), lo = Self.num(sx(e.low)), hi = Self.num(sx(e.high))
                    s += "<path class=\"error-bar\" d=\"M\(lo) \(y) L\(hi) \(y) M\(lo) \(Self.num(sy(ty(p.y)) - 3)) L\(lo) \(Self.num(sy(ty(p.y)) + 3)) M\(hi) \(Self.num(sy(ty(p.y)) - 3)) L\(hi) \(Self.num(sy(ty(p.y)) + 3))\" stroke=\"\(se.color)\" stroke-width=\"1.2\" fill=\"none\"/>\n"
                }
            }
            if se.markers {
                for (j, p) in se.points.map({ (x: $0.x, y: ty($0.y)) }).enumerated() where p.x.isFinite && p.y.isFinite {
                    s += "<circle cx=\"\(Self.num(sx(p.x)))\" cy=\"\(Self.num(sy(p.y)))\" r=\"4.5\" fill=\"\(se.filled ? se.color : "#ffffff")\" stroke=\"\(se.color)\" stroke-width=\"1.8\"/>\n"
                    if j < se.labels.count {
                        s += "<text x=\"\(Self.num(sx(p.x) + 7))\" y=\"\(Self.num(sy(p.y) - 6))\" font-size=\"10\" fill=\"#333333\">\(HTML.escape(se.labels[j]))</text>\n"
                    }
                }
            }
            // Legend entry.
            let ly = mt + 8 + Double(i) * 16
            s += "<rect x=\"\(Self.num(ml + pw + 12))\" y=\"\(Self.num(ly - 8))\" width=\"10\" height=\"10\" fill=\"\(se.color)\"/>"
            s += "<text x=\"\(Self.num(ml + pw + 27))\" y=\"\(Self.num(ly + 1))\" font-size=\"11\">\(HTML.escape(se.name))</text>\n</g>\n"
        }
        if all.isEmpty {
            s += "<text x=\"\(Self.num(ml + pw / 2))\" y=\"\(Self.num(mt + ph / 2))\" text-anchor=\"middle\" fill=\"#888888\">no data</text>\n"
        }
        return s + "</svg>\n"
    }
}
