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

    public var description: String { "\(source): \(problem)" }
    public var errorDescription: String? { description }
}
