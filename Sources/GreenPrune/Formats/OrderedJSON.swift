import Foundation

/// A JSON value whose objects keep their keys in the order given, for writing files a person
/// reads (config.json, tokenizer.json) deterministically. Numbers print the way Python's
/// `json.dumps` does for the same values (ints without a point, doubles in shortest
/// round-trip form, e.g. `100000.0`, `9.999999747378752e-06`).
public indirect enum OrderedJSON: Sendable {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([OrderedJSON])
    case object([(String, OrderedJSON)])

    /// Renders with `indent` spaces per level (0 = compact, one line).
    public func rendered(indent: Int = 2) -> String {
        var out = ""
        render(into: &out, indent: indent, level: 0)
        return out
    }

    private func render(into out: inout String, indent: Int, level: Int) {
        let newline = indent > 0 ? "\n" : ""
        let pad = { (l: Int) in String(repeating: " ", count: indent * l) }
        switch self {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let i): out += String(i)
        case .double(let d): out += OrderedJSON.format(d)
        case .string(let s): out += jsonString(s)
        case .array(let items):
            if items.isEmpty { out += "[]"; return }
            out += "[" + newline
            for (i, item) in items.enumerated() {
                out += pad(level + 1)
                item.render(into: &out, indent: indent, level: level + 1)
                out += (i + 1 < items.count ? "," : "") + newline
            }
            out += pad(level) + "]"
        case .object(let pairs):
            if pairs.isEmpty { out += "{}"; return }
            out += "{" + newline
            for (i, (k, v)) in pairs.enumerated() {
                out += pad(level + 1) + jsonString(k) + (indent > 0 ? ": " : ":")
                v.render(into: &out, indent: indent, level: level + 1)
                out += (i + 1 < pairs.count ? "," : "") + newline
            }
            out += pad(level) + "}"
        }
    }

    /// Python-style float text: always a point or an exponent; non-finite values become null
    /// (JSON has no NaN/Infinity).
    static func format(_ d: Double) -> String {
        guard d.isFinite else { return "null" }
        let s = "\(d)"  // Swift prints the shortest round-trip digits ("1e-05", "100000.0")
        if s.contains(".") || s.contains("e") || s.contains("E") { return s }
        return s + ".0"
    }
}
