import Foundation

/// A bad option value, stated once for every way options arrive: a command-line flag, a block
/// of the sweep YAML or an options file.
///
/// `problem` reads after the option's name and writes the names of other options as `{key}`;
/// each place renders the names its own way (`--target-params` on the command line,
/// `target_params` in YAML), so the same value gives the same words everywhere:
/// `--ratio must be in [0, 1), got 1.5` and `sweep.yaml:9: prune.ratio must be in [0, 1), got 1.5`.
public struct OptionError: Error, LocalizedError, CustomStringConvertible, Equatable {
    /// The snake_case key of the option at fault; nil when the problem is the combination.
    public var key: String?
    /// What is wrong, with other options written as `{key}`.
    public var problem: String

    public init(_ key: String?, _ problem: String) {
        self.key = key
        self.problem = problem
    }

    /// `ratio` → `--ratio`, `target_params` → `--target-params`.
    public static func flag(_ key: String) -> String { "--" + key.replacingOccurrences(of: "_", with: "-") }

    /// The message with option names rendered by `name`: `<name(key)> <problem>`, or the problem
    /// alone when no single option is at fault.
    public func message(naming name: (String) -> String) -> String {
        // Only `{snake_case}` spans are names; other braces (a value the user typed) stay as they are.
        var text = "", rest = problem[...]
        while let open = rest.firstIndex(of: "{") {
            text += rest[..<open]
            let after = rest[rest.index(after: open)...]
            if let close = after.firstIndex(of: "}"), after[..<close].first?.isLowercase == true,
               after[..<close].allSatisfy({ $0 == "_" || ($0.isASCII && ($0.isLowercase || $0.isNumber)) }) {
                text += name(String(after[..<close]))
                rest = after[after.index(after: close)...]
            } else {
                text += "{"
                rest = after
            }
        }
        text += rest
        return key.map { name($0) + " " + text } ?? text
    }

    /// The command-line form.
    public var description: String { message(naming: OptionError.flag) }
    public var errorDescription: String? { description }

    /// A number as a user writes it: 0.2 → "0.2", 3.0 → "3".
    public static func number(_ x: Double) -> String {
        x == x.rounded() && abs(x) < 1e15 ? String(Int(x)) : String(x)
    }
}
