import Foundation

/// Any JSON value, for the parts of a Codable file whose shape belongs to someone else (a task's
/// definition, a run's settings).
public enum JSONValue: Codable, Equatable, Sendable {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    /// The value of a `JSONSerialization`-style object (`[String: Any]`, `[Any]`, numbers, strings,
    /// `NSNull`); nil for anything JSON cannot hold.
    public init?(_ any: Any) {
        switch any {
        case is NSNull: self = .null
        case let v as JSONValue: self = v
        case let v as Bool: self = .bool(v)
        case let v as Int: self = .int(v)
        case let v as Double: self = .double(v)
        case let v as Float: self = .double(Double(v))
        case let v as String: self = .string(v)
        case let v as [Any]:
            var a: [JSONValue] = []
            for x in v {
                guard let j = JSONValue(x) else { return nil }
                a.append(j)
            }
            self = .array(a)
        case let v as [String: Any]:
            var o: [String: JSONValue] = [:]
            for (k, x) in v {
                guard let j = JSONValue(x) else { return nil }
                o[k] = j
            }
            self = .object(o)
        default: return nil
        }
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let v = try? c.decode(Bool.self) { self = .bool(v) }
        else if let v = try? c.decode(Int.self) { self = .int(v) }
        else if let v = try? c.decode(Double.self) { self = .double(v) }
        else if let v = try? c.decode(String.self) { self = .string(v) }
        else if let v = try? c.decode([JSONValue].self) { self = .array(v) }
        else { self = .object(try c.decode([String: JSONValue].self)) }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .null: try c.encodeNil()
        case let .bool(v): try c.encode(v)
        case let .int(v): try c.encode(v)
        case let .double(v): try c.encode(v)
        case let .string(v): try c.encode(v)
        case let .array(v): try c.encode(v)
        case let .object(v): try c.encode(v)
        }
    }

    /// The number, for `.int` and `.double`.
    public var number: Double? {
        switch self {
        case let .int(v): return Double(v)
        case let .double(v): return v
        default: return nil
        }
    }
}
