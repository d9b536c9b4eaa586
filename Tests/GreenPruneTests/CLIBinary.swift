import Foundation
import GreenPrune

/// The built executables the end-to-end tests run: the `greenprune` CLI from `$GREENPRUNE_BIN`
/// and the `greenprune-bench` benchmarks from `$GREENPRUNE_BENCH_BIN` (scripts/test.sh sets both
/// to the self-contained build), else the newest of .build/static/release, .build/release and
/// .build/debug. Missing is an error, not a skip: these tests must not pass without running it.
enum CLIBinary {
    static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The `greenprune` CLI.
    static func url() throws -> URL { try executable("greenprune", variable: "GREENPRUNE_BIN") }

    /// The `greenprune-bench` benchmarks.
    static func benchURL() throws -> URL { try executable("greenprune-bench", variable: "GREENPRUNE_BENCH_BIN") }

    private static func executable(_ name: String, variable: String) throws -> URL {
        if let b = ProcessInfo.processInfo.environment[variable], !b.isEmpty {
            guard FileManager.default.isExecutableFile(atPath: b) else {
                throw InputError(b, "\(variable) is not an executable file")
            }
            return URL(fileURLWithPath: b)
        }
        let fm = FileManager.default
        let candidates = ["static/release", "release", "debug"]
            .map { packageRoot.appendingPathComponent(".build/\($0)/\(name)").path }
        let built = candidates.filter { fm.isExecutableFile(atPath: $0) }
        let newest = built.max { a, b in
            let da = (try? fm.attributesOfItem(atPath: a)[.modificationDate] as? Date) ?? .distantPast
            let db = (try? fm.attributesOfItem(atPath: b)[.modificationDate] as? Date) ?? .distantPast
            return da < db
        }
        guard let bin = newest else {
            throw InputError(name, "no built binary (looked for \(candidates.joined(separator: ", "))): run scripts/test.sh or swift build -c release")
        }
        return URL(fileURLWithPath: bin)
    }
}
