import Foundation
import Yams

/// A YAML node with the file it came from, for validation errors that name the line.
///
/// Every accessor throws an `InputError` whose source is `file:line` (Yams' node marks are
/// 1-based), so a bad config fails before any work with a message such as
/// `configs/x.yaml:12: prune.ratio must be in (0, 1), got 1.5`.
struct ConfigNode {
    let node: Node
    let file: String
    /// The dotted path of this node inside the document (`models[0].variants[2].prune`).
    let path: String

    /// `file:line` of this node (or the file alone when Yams gave no mark).
    var location: String { node.mark.map { "\(file):\($0.line)" } ?? file }

    func error(_ problem: String) -> InputError { InputError(location, problem) }

    /// Parses `text` into its root node; YAML syntax errors become one-line `InputError`s.
    static func parse(_ text: String, file: String) throws -> ConfigNode {
        try YAMLNesting.check(text, file: file)
        do {
            guard let root = try Yams.compose(yaml: text) else { throw InputError(file, "empty config") }
            return ConfigNode(node: root, file: file, path: "")
        } catch let e as InputError {
            throw e
        } catch let e as YamlError {
            throw InputError(file, "invalid YAML: " + ConfigNode.oneLine(String(describing: e)))
        } catch {
            throw InputError(file, "invalid YAML: " + ConfigNode.oneLine(error.localizedDescription))
        }
    }

    static func oneLine(_ s: String) -> String {
        s.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }.joined(separator: " ")
    }

    private func child(_ node: Node, _ sub: String) -> ConfigNode {
        ConfigNode(node: node, file: file, path: path.isEmpty ? sub : (sub.hasPrefix("[") ? path + sub : path + "." + sub))
    }

    /// The keys and values of a mapping, rejecting keys outside `allowed` at their own line.
    func mapping(allowed: Set<String>) throws -> [String: ConfigNode] {
        guard case .mapping(let m) = node else {
            throw error("\(path.isEmpty ? "the document" : path) must be a mapping")
        }
        var out: [String: ConfigNode] = [:]
        for (k, v) in m {
            let key = k.string ?? ""
            guard allowed.contains(key) else {
                let where_ = path.isEmpty ? "" : " in \(path)"
                throw InputError(k.mark.map { "\(file):\($0.line)" } ?? file,
                                 "unknown key '\(key)'\(where_) (allowed: \(allowed.sorted().joined(separator: ", ")))")
            }
            guard out[key] == nil else {
                throw InputError(k.mark.map { "\(file):\($0.line)" } ?? file, "duplicate key '\(key)'")
            }
            out[key] = child(v, key)
        }
        return out
    }

    /// The items of a sequence.
    func sequence() throws -> [ConfigNode] {
        guard case .sequence(let s) = node else { throw error("\(path) must be a list") }
        return s.enumerated().map { child($0.element, "[\($0.offset)]") }
    }

    var isMapping: Bool { if case .mapping = node { return true } else { return false } }
    var isNull: Bool { if case .scalar(let s) = node { return s.tag == .implicit && ["", "~", "null"].contains(s.string) } else { return false } }

    func string() throws -> String {
        guard case .scalar(let s) = node else { throw error("\(path) must be a string") }
        return s.string
    }

    func int() throws -> Int {
        guard case .scalar(let s) = node, let v = Int(s.string) else {
            throw error("\(path) must be an integer, got \(ConfigNode.oneLine(node.string ?? "a collection"))")
        }
        return v
    }

    func double() throws -> Double {
        guard case .scalar(let s) = node, let v = Double(s.string), v.isFinite else {
            throw error("\(path) must be a number, got \(ConfigNode.oneLine(node.string ?? "a collection"))")
        }
        return v
    }

    func bool() throws -> Bool {
        guard case .scalar(let s) = node else { throw error("\(path) must be true or false") }
        switch s.string.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default: throw error("\(path) must be true or false, got \(s.string)")
        }
    }

    /// A string that must be one of `choices`.
    func choice(_ choices: [String]) throws -> String {
        let v = try string()
        guard choices.contains(v) else {
            throw error("\(path) must be one of \(choices.joined(separator: "|")), got '\(v)'")
        }
        return v
    }

    /// A list of strings (extra command-line arguments).
    func strings() throws -> [String] { try sequence().map { try $0.string() } }
}
