import Foundation

/// A model directory's config.json as one value: the typed fields (`model`, a `ModelConfig`)
/// over every member of the file, the ones GreenPrune does not know kept as read, in their
/// order, with integers still integers. Every reader and writer of config.json goes through it:
/// edits are typed (`update` for `ModelConfig` fields, `value`/`set` with a Codable type for
/// blocks such as `quantization_config`), and `data()` writes the file back with every key of
/// the source that no edit removed.
public struct ConfigJSON {
    /// The file, for errors.
    public let path: String
    /// The typed view; change it with `update`, so the members follow.
    public private(set) var model: ModelConfig
    /// Every member, in file order.
    private var members: [(String, OrderedJSON)]

    /// Parses config.json bytes; errors name `path` (the same words as `ModelConfig.decode`).
    public init(data: Data, path: String) throws {
        self.path = path
        model = try ModelConfig.decode(data, path: path)
        guard case .object(let m)? = ConfigJSON.ordered(data) else { throw InputError(path, "not a JSON object") }
        members = m
    }

    /// Reads `url` (a regular file, never a FIFO).
    public static func load(_ url: URL) throws -> ConfigJSON {
        try ConfigJSON(data: try RegularFile.contents(url), path: url.path)
    }

    /// The member names, in file order.
    public var keys: [String] { members.map(\.0) }

    /// Changes typed fields; the members whose encoded value changed are replaced in place,
    /// new ones appended, fields set to nil removed.
    public mutating func update(_ edit: (inout ModelConfig) -> Void) throws {
        let before = try ConfigJSON.encodedMembers(model)
        edit(&model)
        let after = try ConfigJSON.encodedMembers(model)
        for key in Set(before.keys).union(after.keys).sorted() where before[key]?.rendered(indent: 0) != after[key]?.rendered(indent: 0) {
            replace(key, with: after[key])
        }
    }

    /// Member `key` decoded as `type`; nil when absent. A member of the wrong shape is an error naming the file.
    public func value<T: Decodable>(_ type: T.Type, _ key: String) throws -> T? {
        guard let v = members.first(where: { $0.0 == key })?.1 else { return nil }
        do {
            return try JSONDecoder().decode(T.self, from: Data(v.rendered(indent: 0).utf8))
        } catch {
            throw InputError(path, "\(key) is malformed (\(error.localizedDescription))")
        }
    }

    /// Whether the file has member `key`.
    public func contains(_ key: String) -> Bool { members.contains { $0.0 == key } }

    /// Sets member `key` to `value` encoded (nil removes it); a key that is a `ModelConfig`
    /// field goes through `update` instead, so the typed view cannot disagree with the file.
    public mutating func set<T: Encodable>(_ key: String, _ value: T?) throws {
        precondition(ModelConfig.CodingKeys(rawValue: key) == nil, "\(key) is a ModelConfig field: use update")
        guard let value else { return replace(key, with: nil) }
        guard let v = ConfigJSON.ordered(try ConfigJSON.encode(value)) else { throw InputError(path, "\(key) cannot be written as JSON") }
        replace(key, with: v)
    }

    /// The file's bytes: two-space indentation, `"key": value` as transformers writes them.
    public func data() -> Data { Data((OrderedJSON.object(members).rendered() + "\n").utf8) }

    private mutating func replace(_ key: String, with value: OrderedJSON?) {
        if let i = members.firstIndex(where: { $0.0 == key }) {
            if let value { members[i].1 = value } else { members.remove(at: i) }
        } else if let value {
            members.append((key, value))
        }
    }

    /// The members `ModelConfig` writes (nil fields omitted).
    private static func encodedMembers(_ m: ModelConfig) throws -> [String: OrderedJSON] {
        guard case .object(let pairs)? = ordered(try encode(m)) else { return [:] }
        return Dictionary(pairs, uniquingKeysWith: { a, _ in a })
    }

    /// `value` as JSON with every object's keys sorted: Foundation's encoder otherwise writes them
    /// in hash order, which changes from run to run, and so would the written config.json.
    private static func encode<T: Encodable>(_ value: T) throws -> Data {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return try e.encode(value)
    }

    /// JSON bytes as an `OrderedJSON`: the order of members from `JSONTreeParser`, whether a
    /// number was written as an integer from `JSONSerialization` (which keeps that, where the
    /// tree parser reads every number as a double); nil for anything that is not JSON.
    static func ordered(_ data: Data) -> OrderedJSON? {
        guard let tree = try? JSONTreeParser.parse([UInt8](data)),
              let any = try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]) else { return nil }
        return merge(tree, any)
    }

    private static func merge(_ t: JSONTree, _ v: Any) -> OrderedJSON {
        switch t {
        case .null: return .null
        case let .bool(b): return .bool(b)
        case let .string(s): return .string(s)
        case let .number(d):
            guard let n = v as? NSNumber, !["d", "f"].contains(String(cString: n.objCType)), let i = Int(exactly: n.int64Value) else {
                return .double(d)
            }
            return .int(i)
        case let .array(items):
            let values = v as? [Any] ?? []
            return .array(items.enumerated().map { merge($1, $0 < values.count ? values[$0] : NSNull()) })
        case let .object(pairs):
            let values = v as? [String: Any] ?? [:]
            return .object(pairs.map { ($0.key, merge($0.value, values[$0.key] ?? NSNull())) })
        }
    }
}
