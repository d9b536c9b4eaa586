/// A parsed JSON value. Objects keep their members in file order as (key, value) pairs:
/// vocabularies are iterated, not searched, and two keys that differ only by Unicode
/// normalization (which Swift's `String ==` would merge) stay distinct, as in Rust.
public indirect enum JSONTree {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONTree])
    case object([(key: String, value: JSONTree)])

    /// The member named `key` of an object (first occurrence), nil otherwise.
    public subscript(key: String) -> JSONTree? {
        guard case .object(let members) = self else { return nil }
        return members.first(where: { $0.key == key })?.value
    }
}

/// A strict, bounded JSON parser over UTF-8 bytes (RFC 8259), much faster than
/// JSONSerialization for tokenizer.json (no NSDictionary bridging). Errors carry a byte offset.
public struct JSONTreeParser {
    public struct Failure: Error {
        public let offset: Int
        public let problem: String
    }

    private let b: [UInt8]
    private var i = 0
    private var depth = 0
    private static let maxDepth = 256

    /// Parses one JSON document (surrounding whitespace allowed, nothing else).
    public static func parse(_ bytes: [UInt8]) throws -> JSONTree {
        var p = JSONTreeParser(b: bytes)
        p.skipSpace()
        let v = try p.value()
        p.skipSpace()
        guard p.i == p.b.count else { throw Failure(offset: p.i, problem: "unexpected data after the JSON value") }
        return v
    }

    private init(b: [UInt8]) { self.b = b }

    private mutating func skipSpace() {
        while i < b.count, b[i] == 0x20 || b[i] == 0x0A || b[i] == 0x0D || b[i] == 0x09 { i += 1 }
    }

    private func fail(_ problem: String) -> Failure { Failure(offset: i, problem: problem) }

    private mutating func expect(_ literal: String) throws {
        for c in literal.utf8 {
            guard i < b.count, b[i] == c else { throw fail("invalid literal") }
            i += 1
        }
    }

    private mutating func value() throws -> JSONTree {
        guard i < b.count else { throw fail("unexpected end of data") }
        switch b[i] {
        case UInt8(ascii: "{"): return try object()
        case UInt8(ascii: "["): return try array()
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): try expect("true"); return .bool(true)
        case UInt8(ascii: "f"): try expect("false"); return .bool(false)
        case UInt8(ascii: "n"): try expect("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try number())
        default: throw fail("unexpected character")
        }
    }

    private mutating func enter() throws {
        depth += 1
        guard depth <= Self.maxDepth else { throw fail("nested deeper than \(Self.maxDepth) levels") }
    }

    private mutating func object() throws -> JSONTree {
        try enter(); defer { depth -= 1 }
        i += 1
        var members = [(key: String, value: JSONTree)]()
        skipSpace()
        if i < b.count, b[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
        while true {
            skipSpace()
            guard i < b.count, b[i] == UInt8(ascii: "\"") else { throw fail("expected a string key") }
            let k = try string()
            skipSpace()
            guard i < b.count, b[i] == UInt8(ascii: ":") else { throw fail("expected ':'") }
            i += 1
            skipSpace()
            members.append((k, try value()))
            skipSpace()
            guard i < b.count else { throw fail("unexpected end of data in an object") }
            if b[i] == UInt8(ascii: ",") { i += 1; continue }
            if b[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
            throw fail("expected ',' or '}'")
        }
    }

    private mutating func array() throws -> JSONTree {
        try enter(); defer { depth -= 1 }
        i += 1
        var items = [JSONTree]()
        skipSpace()
        if i < b.count, b[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
        while true {
            skipSpace()
            items.append(try value())
            skipSpace()
            guard i < b.count else { throw fail("unexpected end of data in an array") }
            if b[i] == UInt8(ascii: ",") { i += 1; continue }
            if b[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
            throw fail("expected ',' or ']'")
        }
    }

    private mutating func hex4() throws -> UInt32 {
        guard i + 4 <= b.count else { throw fail("truncated \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = b[i]
            let d: UInt8
            switch c {
            case 0x30...0x39: d = c - 0x30
            case 0x41...0x46: d = c - 0x41 + 10
            case 0x61...0x66: d = c - 0x61 + 10
            default: throw fail("bad hex digit in \\u escape")
            }
            v = v << 4 | UInt32(d)
            i += 1
        }
        return v
    }

    private mutating func string() throws -> String {
        i += 1
        let start = i
        // Fast path: no escapes.
        while i < b.count {
            let c = b[i]
            if c == UInt8(ascii: "\"") {
                let s = b.withUnsafeBufferPointer { String(decoding: UnsafeBufferPointer(rebasing: $0[start..<i]), as: UTF8.self) }
                i += 1
                return s
            }
            if c == UInt8(ascii: "\\") { break }
            if c < 0x20 { throw fail("control character in a string") }
            i += 1
        }
        var out = Array(b[start..<i])
        while i < b.count {
            let c = b[i]
            if c == UInt8(ascii: "\"") {
                i += 1
                return String(decoding: out, as: UTF8.self)
            }
            if c < 0x20 { throw fail("control character in a string") }
            if c != UInt8(ascii: "\\") { out.append(c); i += 1; continue }
            i += 1
            guard i < b.count else { break }
            let e = b[i]
            i += 1
            switch e {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                var v = try hex4()
                if (0xD800..<0xDC00).contains(v), i + 6 <= b.count, b[i] == UInt8(ascii: "\\"), b[i + 1] == UInt8(ascii: "u") {
                    let save = i
                    i += 2
                    let lo = try hex4()
                    if (0xDC00..<0xE000).contains(lo) {
                        v = 0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00)
                    } else {
                        i = save
                    }
                }
                // A lone surrogate becomes U+FFFD (Swift strings cannot hold one).
                let scalar = Unicode.Scalar(v) ?? "\u{FFFD}"
                out.append(contentsOf: Array(String(Character(scalar)).utf8))
            default: throw fail("unknown escape")
            }
        }
        throw fail("unterminated string")
    }

    private mutating func number() throws -> Double {
        let start = i
        if b[i] == UInt8(ascii: "-") { i += 1 }
        while i < b.count, (0x30...0x39).contains(b[i]) || b[i] == UInt8(ascii: ".") || b[i] == UInt8(ascii: "e")
                || b[i] == UInt8(ascii: "E") || b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") { i += 1 }
        let text = String(decoding: b[start..<i], as: UTF8.self)
        guard let d = Double(text) else { throw Failure(offset: start, problem: "invalid number") }
        return d
    }
}
