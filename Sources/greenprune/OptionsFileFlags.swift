import ArgumentParser
import Foundation
import GreenPrune

/// `--options FILE` and `--print-options`, for the commands whose options are one
/// `CommandOptions` value (`prune`, `recover`, `quantize`): a sweep hands its step the file, and a user
/// can turn flags into one.
struct OptionsFileFlags: ParsableArguments {
    @Option(help: "An options file (JSON or YAML with the keys of the command's block in a sweep config, as a sweep writes it for its step); flags given as well override its values.")
    var options: String?

    @Flag(help: "Print the options (the flags over --options) as an options file holds them, and exit.")
    var printOptions = false

    /// The options file's settings, nil without `--options`.
    func read<T: CommandOptions>(_ type: T.Type) throws -> T? {
        try options.map { try OptionsFile.read(type, from: URL(fileURLWithPath: $0)) }
    }

    /// Prints `settings` when `--print-options` asks; true when the command should stop there.
    func printIfAsked<T: CommandOptions>(_ settings: T) throws -> Bool {
        guard printOptions else { return false }
        print(String(decoding: try OptionsFile.json(settings), as: UTF8.self))
        return true
    }
}

/// The command-line form of an option error: `--ratio must be in [0, 1), got 1.5`.
func flagErrors<T>(_ body: () throws -> T) throws -> T {
    do { return try body() } catch let e as OptionError { throw ValidationError(e.description) }
}
