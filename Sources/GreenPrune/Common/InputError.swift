import Foundation

/// A problem with something the user handed us (a file, a flag, a config value).
///
/// `description` is one line that names the file (or flag) and the problem, the way every
/// GreenPrune command reports bad input before exiting non-zero.
public struct InputError: Error, LocalizedError, CustomStringConvertible, Equatable {
    /// The file, flag or config path the problem is about.
    public var source: String
    /// What is wrong with it, in words a user can act on.
    public var problem: String

    public init(_ source: String, _ problem: String) {
        self.source = source
        self.problem = problem
    }

    /// Control characters (a newline inside a name read from a hostile file) are escaped, so
    /// the message stays one line whatever the file holds.
    public var description: String { InputError.oneLine("\(source): \(problem)") }
    public var errorDescription: String? { description }

    /// `s` with every line break and other control character but tab written as an escape.
    static func oneLine(_ s: String) -> String {
        func escaped(_ u: Unicode.Scalar) -> Bool {
            (u.properties.generalCategory == .control && u != "\t") || u == "\u{2028}" || u == "\u{2029}"
        }
        guard s.unicodeScalars.contains(where: escaped) else { return s }
        var out = ""
        for u in s.unicodeScalars {
            if !escaped(u) { out.unicodeScalars.append(u) }
            else if u == "\n" { out += "\\n" }
            else if u == "\r" { out += "\\r" }
            else { out += "\\u{\(String(u.value, radix: 16))}" }
        }
        return out
    }
}
