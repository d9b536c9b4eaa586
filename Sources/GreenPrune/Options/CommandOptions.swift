import Foundation

/// The options of one command (`prune`, `recover`, `quantize`): one Codable value that the command line
/// fills, the sweep YAML decodes and an options file (`--options FILE`) carries to a child
/// process, with one `validate()` for all three.
public protocol CommandOptions: Codable, Equatable {
    /// The keys of the YAML block and of the options file (snake_case, one per flag).
    associatedtype CodingKeys: CodingKey & CaseIterable
    /// Throws an `OptionError` naming the option at fault.
    func validate() throws
}

/// A choice among fixed names (`--importance taylor`): in YAML a value outside them is an error
/// that lists them.
public protocol OptionChoice: CaseIterable, RawRepresentable, Codable where RawValue == String {}

extension OptionChoice {
    static var choiceNames: [String] { allCases.map(\.rawValue) }
    static func choice(_ name: String) -> Self? { Self(rawValue: name) }
}

extension ImportanceKind: OptionChoice {}
extension TaylorVariant: OptionChoice {}
extension GroupReduction: OptionChoice {}
extension AttentionUnit: OptionChoice {}
extension PrunePolicy.TargetMode: OptionChoice {}
extension QuantGranularity: OptionChoice {}
extension QuantObserver: OptionChoice {}
extension QuantFormat: OptionChoice {}
extension ActivationQuantization: OptionChoice {}
extension WeightDType: OptionChoice {}

/// Reading and writing options as files, and their canonical form.
public enum OptionsFile {
    /// Decodes and validates `type` from a YAML mapping; every error is an `InputError` at the
    /// line of the offending key (`sweep.yaml:9: prune.ratio must be in [0, 1), got 1.5`).
    static func decode<T: CommandOptions>(_ type: T.Type, from node: ConfigNode) throws -> T {
        let entries = try node.mapping(allowed: Set(T.CodingKeys.allCases.map(\.stringValue)))
        do {
            let value = try T(from: ConfigNodeDecoder(node: node))
            try value.validate()
            return value
        } catch let e as OptionError {
            // `models[0].variants[1].prune` → `prune`; an options file's root has no name.
            let block = node.path.split(separator: ".").last.map(String.init) ?? ""
            let text = e.message { $0 == e.key && !block.isEmpty ? block + "." + $0 : $0 }
            let at = e.key.flatMap { entries[$0] } ?? node
            throw at.error(e.key == nil && !block.isEmpty ? block + ": " + text : text)
        }
    }

    /// Reads an options file (JSON, as `write` makes it, or YAML) and validates it.
    public static func read<T: CommandOptions>(_ type: T.Type, from url: URL) throws -> T {
        let data = try RegularFile.contents(url)
        return try decode(type, from: try ConfigNode.parse(String(decoding: data, as: UTF8.self), file: url.path))
    }

    /// Writes `options` as JSON, atomically (a child reads it with `read`).
    public static func write<T: CommandOptions>(_ options: T, to url: URL) throws {
        try AtomicFile.write(try json(options), to: url)
    }

    /// The options file's bytes: every option, one key per line, sorted.
    public static func json<T: CommandOptions>(_ options: T) throws -> Data {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return try enc.encode(options)
    }

    /// Sorted-key compact JSON of every option, defaults included: equal options give equal bytes.
    /// (Slashes stay escaped, as the settings hash had them before options were typed, so runs
    /// without prune or quantize keep their hashes.)
    public static func canonical<T: Encodable>(_ value: T) throws -> Data {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        return try enc.encode(value)
    }

    /// The options that differ from `defaults`, as `key=value` words (for plans and logs).
    public static func summary<T: Encodable>(_ value: T, defaults: T) -> String {
        guard let a = try? JSONDecoder().decode([String: JSONValue].self, from: canonical(value)),
              let b = try? JSONDecoder().decode([String: JSONValue].self, from: canonical(defaults)) else { return "" }
        return a.keys.sorted().compactMap { k -> String? in
            guard a[k] != b[k], let v = a[k] else { return nil }
            return k + "=" + describe(v)
        }.joined(separator: " ")
    }

    private static func describe(_ v: JSONValue) -> String {
        switch v {
        case .null: return "null"
        case let .bool(b): return String(b)
        case let .int(i): return String(i)
        case let .double(d): return OptionError.number(d)
        case let .string(s): return s
        case let .array(a): return "[" + a.map(describe).joined(separator: ",") + "]"
        case let .object(o): return "{" + o.keys.sorted().map { $0 + ":" + describe(o[$0]!) }.joined(separator: ",") + "}"
        }
    }
}

extension KeyedDecodingContainer {
    /// The value at `key`, or `fallback` (the option's default) when the key is absent or null.
    func value<T: Decodable>(_ key: Key, or fallback: T) throws -> T { try decodeIfPresent(T.self, forKey: key) ?? fallback }
}
