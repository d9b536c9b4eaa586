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
        var text = problem
        // Keys are snake_case words, so a `{…}` span is always a name.
        while let open = text.range(of: "{"), let close = text.range(of: "}", range: open.upperBound..<text.endIndex) {
            text.replaceSubrange(open.lowerBound..<close.upperBound, with: name(String(text[open.upperBound..<close.lowerBound])))
        }
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
