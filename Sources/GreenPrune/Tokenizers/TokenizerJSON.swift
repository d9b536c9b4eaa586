import Foundation

/// One value inside tokenizer.json, with typed accessors whose errors name the file and the
/// key path (`tokenizer.json: pre_tokenizer.pretokenizers[1] must be an object`).
public struct JSONField {
    public let value: JSONTree
    /// The file the value came from.
    public let file: String
    /// Where in the file (dotted key path).
    public let path: String

    public init(value: JSONTree, file: String, path: String) {
        self.value = value
        self.file = file
        self.path = path
    }

    /// Parses a whole file.
    public static func parse(_ data: Data, file: String) throws -> JSONField {
        do {
            return JSONField(value: try JSONTreeParser.parse([UInt8](data)), file: file, path: "")
        } catch let f as JSONTreeParser.Failure {
            throw InputError(file, "not valid JSON (\(f.problem) at byte \(f.offset))")
        }
    }

    func error(_ problem: String) -> InputError {
        InputError(file, path.isEmpty ? problem : "\(path) \(problem)")
    }

    private func child(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    var isNull: Bool { if case .null = value { return true } else { return false } }

    /// The members of an object.
    func members() throws -> [(key: String, value: JSONTree)] {
        guard case .object(let m) = value else { throw error("must be a JSON object") }
        return m
    }

    /// A field, nil when absent or null.
    func field(_ key: String) throws -> JSONField? {
        guard case .object(let m) = value else { throw error("must be a JSON object") }
        guard let v = m.first(where: { $0.key == key })?.value else { return nil }
        if case .null = v { return nil }
        return JSONField(value: v, file: file, path: child(key))
    }

    /// A field that must be present.
    func required(_ key: String) throws -> JSONField {
        guard let n = try field(key) else { throw error("is missing '\(key)'") }
        return n
    }

    func string() throws -> String {
        guard case .string(let s) = value else { throw error("must be a string") }
        return s
    }

    func int() throws -> Int {
        guard case .number(let d) = value, let i = Int(exactly: d) else { throw error("must be an integer") }
        return i
    }

    func bool() throws -> Bool {
        guard case .bool(let b) = value else { throw error("must be true or false") }
        return b
    }

    func array() throws -> [JSONField] {
        guard case .array(let a) = value else { throw error("must be an array") }
        return a.enumerated().map { JSONField(value: $1, file: file, path: "\(path)[\($0)]") }
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
func unsupported(_ stage: String, _ type: String, _ node: JSONField) -> InputError {
    InputError(node.file, "unsupported \(stage) type '\(type)'" + (node.path.isEmpty ? "" : " at \(node.path)"))
}
