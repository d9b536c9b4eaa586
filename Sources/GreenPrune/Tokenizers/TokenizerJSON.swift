import Foundation

/// One value inside tokenizer.json, with typed accessors whose errors name the file and the
/// key path (`tokenizer.json: pre_tokenizer.pretokenizers[1].pattern must be an object`).
public struct JSONNode {
    /// The decoded value (`[String: Any]`, `[Any]`, `String`, `NSNumber`, `NSNull`).
    public let value: Any
    /// The file the value came from.
    public let file: String
    /// Where in the file (dotted key path).
    public let path: String

    public init(value: Any, file: String, path: String) {
        self.value = value
        self.file = file
        self.path = path
    }

    /// Parses a whole file.
    public static func parse(_ data: Data, file: String) throws -> JSONNode {
        do {
            let v = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
            return JSONNode(value: v, file: file, path: "")
        } catch {
            throw InputError(file, "not valid JSON")
        }
    }

    func error(_ problem: String) -> InputError {
        InputError(file, path.isEmpty ? problem : "\(path) \(problem)")
    }

    private func child(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    var isNull: Bool { value is NSNull }

    /// The value as an object.
    func object() throws -> [String: Any] {
        guard let o = value as? [String: Any] else { throw error("must be a JSON object") }
        return o
    }

    /// A field, nil when absent or null.
    func field(_ key: String) throws -> JSONNode? {
        guard let v = try object()[key], !(v is NSNull) else { return nil }
        return JSONNode(value: v, file: file, path: child(key))
    }

    /// A field that must be present.
    func required(_ key: String) throws -> JSONNode {
        guard let n = try field(key) else { throw error("is missing '\(key)'") }
        return n
    }

    func string() throws -> String {
        guard let s = value as? String else { throw error("must be a string") }
        return s
    }

    func int() throws -> Int {
        if let i = value as? Int { return i }
        if let n = value as? NSNumber, let i = Int(exactly: n.doubleValue) { return i }
        throw error("must be an integer")
    }

    func bool() throws -> Bool {
        guard let b = value as? Bool else { throw error("must be true or false") }
        return b
    }

    func array() throws -> [JSONNode] {
        guard let a = value as? [Any] else { throw error("must be an array") }
        return a.enumerated().map { JSONNode(value: $1, file: file, path: "\(path)[\($0)]") }
    }

    func string(_ key: String) throws -> String { try required(key).string() }
    func optionalString(_ key: String) throws -> String? { try field(key)?.string() }
    func bool(_ key: String, default d: Bool) throws -> Bool { try field(key)?.bool() ?? d }
    func int(_ key: String) throws -> Int { try required(key).int() }
    func optionalInt(_ key: String) throws -> Int? { try field(key)?.int() }

    /// The stage's `"type"` string.
    func type() throws -> String { try string("type") }

    /// A `{"String": "…"}` or `{"Regex": "…"}` pattern as a splitter.
    func pattern() throws -> SplitPattern {
        if let s = try field("String") { return LiteralPattern(needle: Array(try s.string().unicodeScalars)) }
        if let r = try field("Regex") { return try KnownPattern.pattern(regex: try r.string(), file: file) }
        throw error("must hold 'String' or 'Regex'")
    }
}

/// The error for a stage whose `"type"` GreenPrune does not implement.
func unsupported(_ stage: String, _ type: String, _ node: JSONNode) -> InputError {
    InputError(node.file, "unsupported \(stage) type '\(type)'" + (node.path.isEmpty ? "" : " at \(node.path)"))
}
