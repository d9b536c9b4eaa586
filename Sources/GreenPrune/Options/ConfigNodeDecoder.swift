import Foundation
import Yams

/// A `Decoder` over a YAML node (the sweep config, an options file), so option types decode
/// with their own `init(from:)` while every type error keeps the node's `file:line`.
struct ConfigNodeDecoder: Decoder {
    let node: ConfigNode
    var codingPath: [CodingKey] = []
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard case .mapping(let m) = node.node else { throw node.error("\(node.path) must be a mapping") }
        var entries: [String: ConfigNode] = [:]
        for (k, v) in m {
            let key = k.string ?? ""
            entries[key] = ConfigNode(node: v, file: node.file, path: node.path.isEmpty ? key : node.path + "." + key)
        }
        return KeyedDecodingContainer(Keyed<Key>(node: node, entries: entries, codingPath: codingPath))
    }

    func unkeyedContainer() throws -> UnkeyedDecodingContainer {
        Unkeyed(items: try node.sequence(), codingPath: codingPath)
    }

    func singleValueContainer() throws -> SingleValueDecodingContainer { Single(node: node, codingPath: codingPath) }

    /// A value of `type` from `n`: scalars through `ConfigNode`'s checked accessors, choices
    /// against their names, anything else through its own `init(from:)`.
    static func value<T: Decodable>(_ type: T.Type, _ n: ConfigNode) throws -> T {
        let v: Any
        switch type {
        case is Bool.Type: v = try n.bool()
        case is Int.Type: v = try n.int()
        case is Double.Type: v = try n.double()
        case is Float.Type: v = Float(try n.double())
        case is String.Type: v = try n.string()
        default:
            if let t = type as? any FixedWidthInteger.Type {
                guard let x = integer(t, try n.string()) else {
                    throw n.error("\(n.path) must be an integer in \(t.min)...\(t.max), got \(try n.string())")
                }
                v = x
            } else if let c = type as? any OptionChoice.Type {
                let name = try n.choice(c.choiceNames)
                guard let x = c.choice(name) else { throw n.error("\(n.path) must be one of \(c.choiceNames.joined(separator: "|"))") }
                v = x
            } else {
                return try T(from: ConfigNodeDecoder(node: n))
            }
        }
        guard let x = v as? T else { throw n.error("\(n.path) has an unexpected type") }
        return x
    }

    private static func integer<I: FixedWidthInteger>(_ type: I.Type, _ text: String) -> I? { I(text) }

    struct Keyed<Key: CodingKey>: KeyedDecodingContainerProtocol {
        let node: ConfigNode
        let entries: [String: ConfigNode]
        var codingPath: [CodingKey]
        var allKeys: [Key] { entries.keys.compactMap { Key(stringValue: $0) } }

        func contains(_ key: Key) -> Bool { entries[key.stringValue] != nil }
        func decodeNil(forKey key: Key) throws -> Bool { entries[key.stringValue]?.isNull ?? true }

        func entry(_ key: Key) throws -> ConfigNode {
            guard let n = entries[key.stringValue] else {
                throw node.error("\(node.path.isEmpty ? "the document" : node.path) needs '\(key.stringValue)'")
            }
            return n
        }

        func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
            try ConfigNodeDecoder.value(type, try entry(key))
        }
        func decode(_ t: Bool.Type, forKey key: Key) throws -> Bool { try ConfigNodeDecoder.value(t, try entry(key)) }
        func decode(_ t: String.Type, forKey key: Key) throws -> String { try ConfigNodeDecoder.value(t, try entry(key)) }
        func decode(_ t: Double.Type, forKey key: Key) throws -> Double { try ConfigNodeDecoder.value(t, try entry(key)) }
        func decode(_ t: Float.Type, forKey key: Key) throws -> Float { try ConfigNodeDecoder.value(t, try entry(key)) }
        func decode(_ t: Int.Type, forKey key: Key) throws -> Int { try ConfigNodeDecoder.value(t, try entry(key)) }
        func decode(_ t: Int8.Type, forKey key: Key) throws -> Int8 { try ConfigNodeDecoder.value(t, try entry(key)) }
        func decode(_ t: Int16.Type, forKey key: Key) throws -> Int16 { try ConfigNodeDecoder.value(t, try entry(key)) }
        func decode(_ t: Int32.Type, forKey key: Key) throws -> Int32 { try ConfigNodeDecoder.value(t, try entry(key)) }
        func decode(_ t: Int64.Type, forKey key: Key) throws -> Int64 { try ConfigNodeDecoder.value(t, try entry(key)) }
        func decode(_ t: UInt.Type, forKey key: Key) throws -> UInt { try ConfigNodeDecoder.value(t, try entry(key)) }
        func decode(_ t: UInt8.Type, forKey key: Key) throws -> UInt8 { try ConfigNodeDecoder.value(t, try entry(key)) }
        func decode(_ t: UInt16.Type, forKey key: Key) throws -> UInt16 { try ConfigNodeDecoder.value(t, try entry(key)) }
        func decode(_ t: UInt32.Type, forKey key: Key) throws -> UInt32 { try ConfigNodeDecoder.value(t, try entry(key)) }
        func decode(_ t: UInt64.Type, forKey key: Key) throws -> UInt64 { try ConfigNodeDecoder.value(t, try entry(key)) }

        func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
            try ConfigNodeDecoder(node: try entry(key)).container(keyedBy: type)
        }

        func nestedUnkeyedContainer(forKey key: Key) throws -> UnkeyedDecodingContainer {
            try ConfigNodeDecoder(node: try entry(key)).unkeyedContainer()
        }

        func superDecoder() throws -> Decoder { ConfigNodeDecoder(node: node) }
        func superDecoder(forKey key: Key) throws -> Decoder { ConfigNodeDecoder(node: try entry(key)) }
    }

    struct Unkeyed: UnkeyedDecodingContainer {
        let items: [ConfigNode]
        var codingPath: [CodingKey]
        var currentIndex = 0
        var count: Int? { items.count }
        var isAtEnd: Bool { currentIndex >= items.count }

        init(items: [ConfigNode], codingPath: [CodingKey]) {
            self.items = items
            self.codingPath = codingPath
        }

        mutating func next() throws -> ConfigNode {
            guard !isAtEnd else {
                throw DecodingError.valueNotFound(ConfigNode.self, .init(codingPath: codingPath, debugDescription: "list ended"))
            }
            defer { currentIndex += 1 }
            return items[currentIndex]
        }

        mutating func decodeNil() throws -> Bool {
            guard !isAtEnd, items[currentIndex].isNull else { return false }
            currentIndex += 1
            return true
        }

        mutating func decode<T: Decodable>(_ type: T.Type) throws -> T { try ConfigNodeDecoder.value(type, try next()) }
        mutating func decode(_ t: Bool.Type) throws -> Bool { try ConfigNodeDecoder.value(t, try next()) }
        mutating func decode(_ t: String.Type) throws -> String { try ConfigNodeDecoder.value(t, try next()) }
        mutating func decode(_ t: Double.Type) throws -> Double { try ConfigNodeDecoder.value(t, try next()) }
        mutating func decode(_ t: Float.Type) throws -> Float { try ConfigNodeDecoder.value(t, try next()) }
        mutating func decode(_ t: Int.Type) throws -> Int { try ConfigNodeDecoder.value(t, try next()) }
        mutating func decode(_ t: Int8.Type) throws -> Int8 { try ConfigNodeDecoder.value(t, try next()) }
        mutating func decode(_ t: Int16.Type) throws -> Int16 { try ConfigNodeDecoder.value(t, try next()) }
        mutating func decode(_ t: Int32.Type) throws -> Int32 { try ConfigNodeDecoder.value(t, try next()) }
        mutating func decode(_ t: Int64.Type) throws -> Int64 { try ConfigNodeDecoder.value(t, try next()) }
        mutating func decode(_ t: UInt.Type) throws -> UInt { try ConfigNodeDecoder.value(t, try next()) }
        mutating func decode(_ t: UInt8.Type) throws -> UInt8 { try ConfigNodeDecoder.value(t, try next()) }
        mutating func decode(_ t: UInt16.Type) throws -> UInt16 { try ConfigNodeDecoder.value(t, try next()) }
        mutating func decode(_ t: UInt32.Type) throws -> UInt32 { try ConfigNodeDecoder.value(t, try next()) }
        mutating func decode(_ t: UInt64.Type) throws -> UInt64 { try ConfigNodeDecoder.value(t, try next()) }

        mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
            try ConfigNodeDecoder(node: try next()).container(keyedBy: type)
        }

        mutating func nestedUnkeyedContainer() throws -> UnkeyedDecodingContainer {
            try ConfigNodeDecoder(node: try next()).unkeyedContainer()
        }

        mutating func superDecoder() throws -> Decoder { ConfigNodeDecoder(node: try next()) }
    }

    struct Single: SingleValueDecodingContainer {
        let node: ConfigNode
        var codingPath: [CodingKey]
        func decodeNil() -> Bool { node.isNull }
        func decode<T: Decodable>(_ type: T.Type) throws -> T { try ConfigNodeDecoder.value(type, node) }
        func decode(_ t: Bool.Type) throws -> Bool { try ConfigNodeDecoder.value(t, node) }
        func decode(_ t: String.Type) throws -> String { try ConfigNodeDecoder.value(t, node) }
        func decode(_ t: Double.Type) throws -> Double { try ConfigNodeDecoder.value(t, node) }
        func decode(_ t: Float.Type) throws -> Float { try ConfigNodeDecoder.value(t, node) }
        func decode(_ t: Int.Type) throws -> Int { try ConfigNodeDecoder.value(t, node) }
        func decode(_ t: Int8.Type) throws -> Int8 { try ConfigNodeDecoder.value(t, node) }
        func decode(_ t: Int16.Type) throws -> Int16 { try ConfigNodeDecoder.value(t, node) }
        func decode(_ t: Int32.Type) throws -> Int32 { try ConfigNodeDecoder.value(t, node) }
        func decode(_ t: Int64.Type) throws -> Int64 { try ConfigNodeDecoder.value(t, node) }
        func decode(_ t: UInt.Type) throws -> UInt { try ConfigNodeDecoder.value(t, node) }
        func decode(_ t: UInt8.Type) throws -> UInt8 { try ConfigNodeDecoder.value(t, node) }
        func decode(_ t: UInt16.Type) throws -> UInt16 { try ConfigNodeDecoder.value(t, node) }
        func decode(_ t: UInt32.Type) throws -> UInt32 { try ConfigNodeDecoder.value(t, node) }
        func decode(_ t: UInt64.Type) throws -> UInt64 { try ConfigNodeDecoder.value(t, node) }
    }
}
