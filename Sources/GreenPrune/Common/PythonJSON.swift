/// JSON text as Python's `json.dumps(value, indent=..., ensure_ascii=False)` writes it, keys
/// sorted (`sort_keys=True`): floats in `repr` form (`1.0`, `-12.345678901234567`, `1e-05`),
/// integers without a point, strings as `jsonString` escapes them (non-ASCII as itself). lm-eval
/// hashes documents with `json.dumps(doc, indent=2, ensure_ascii=False)`, so a `doc_hash`
/// computed from this text is the one Python computes from the same (key-ordered) object;
/// results.json gets `1.0` where lm-eval writes a float, not Foundation's `1`.
public enum PythonJSON {
    /// `value` as JSON text; `indent` nil gives one line with `", "` and `": "` separators.
    public static func dumps(_ value: JSONValue, indent: Int? = nil) -> String {
        var out = ""
        write(value, indent: indent, depth: 0, into: &out)
        return out
    }

    /// Python's `repr(float)`: the shortest digits that read back to `x`, in fixed notation for
    /// decimal exponents −4 ... 15 (`.0` added to integers), otherwise `d.ddde±XX`; `NaN` and
    /// `±Infinity` as Python's json module writes them.
    public static func float(_ x: Double) -> String {
        if x.isNaN { return "NaN" }
        if x.isInfinite { return x < 0 ? "-Infinity" : "Infinity" }
        // Swift's description has the same shortest digits; only its choice of notation differs.
        var s = Substring("\(x)")
        let negative = s.hasPrefix("-")
        if negative { s = s.dropFirst() }
        var exponent = 0
        if let e = s.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            exponent = Int(s[s.index(after: e)...]) ?? 0
            s = s[..<e]
        }
        let point = s.firstIndex(of: ".") ?? s.endIndex
        let integerDigits = s.distance(from: s.startIndex, to: point)
        var digits = Array(s.filter { $0 != "." })
        // Decimal exponent of the first significant digit.
        var e10 = integerDigits - 1 + exponent
        while digits.count > 1, digits.first == "0" { digits.removeFirst(); e10 -= 1 }
        while digits.count > 1, digits.last == "0" { digits.removeLast() }
        let sign = negative ? "-" : ""
        if digits == ["0"] { return sign + "0.0" }
        if e10 < -4 || e10 >= 16 {
            let mantissa = digits.count == 1 ? String(digits[0]) : String(digits[0]) + "." + String(digits[1...])
            let magnitude = String(abs(e10))
            return sign + mantissa + "e" + (e10 < 0 ? "-" : "+") + (magnitude.count < 2 ? "0" : "") + magnitude
        }
        if e10 < 0 { return sign + "0." + String(repeating: "0", count: -e10 - 1) + String(digits) }
        let whole = e10 + 1
        if digits.count <= whole { return sign + String(digits) + String(repeating: "0", count: whole - digits.count) + ".0" }
        return sign + String(digits[..<whole]) + "." + String(digits[whole...])
    }

    private static func write(_ v: JSONValue, indent: Int?, depth: Int, into out: inout String) {
        switch v {
        case .null: out += "null"
        case let .bool(b): out += b ? "true" : "false"
        case let .int(i): out += String(i)
        case let .double(d): out += float(d)
        case let .string(s): out += jsonString(s)
        case let .array(a):
            guard !a.isEmpty else { out += "[]"; return }
            out += "["
            for (i, x) in a.enumerated() {
                out += i == 0 ? "" : ","
                newline(indent, depth + 1, &out)
                write(x, indent: indent, depth: depth + 1, into: &out)
            }
            newline(indent, depth, &out, closing: true)
            out += "]"
        case let .object(o):
            guard !o.isEmpty else { out += "{}"; return }
            out += "{"
            // Python sorts keys by code point, which is UTF-8 byte order.
            for (i, key) in o.keys.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }).enumerated() {
                out += i == 0 ? "" : ","
                newline(indent, depth + 1, &out)
                out += jsonString(key) + ": "
                write(o[key]!, indent: indent, depth: depth + 1, into: &out)
            }
            newline(indent, depth, &out, closing: true)
            out += "}"
        }
    }

    /// The break before an item (or the closing bracket): a newline and indentation, or on one
    /// line a space after each comma.
    private static func newline(_ indent: Int?, _ depth: Int, _ out: inout String, closing: Bool = false) {
        if let n = indent {
            out += "\n" + String(repeating: " ", count: n * depth)
        } else if !closing, out.last == "," {
            out += " "
        }
    }
}
