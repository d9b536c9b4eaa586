import Foundation
import GreenPrune

/// The built `greenprune` CLI the end-to-end tests run: `$GREENPRUNE_BIN` (scripts/test.sh sets it
/// to the self-contained build), else the newest of .build/static/release, .build/release and
/// .build/debug. Missing is an error, not a skip: these tests must not pass without running it.
enum CLIBinary {
    static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func url() throws -> URL {
        if let b = ProcessInfo.processInfo.environment["GREENPRUNE_BIN"], !b.isEmpty {
            guard FileManager.default.isExecutableFile(atPath: b) else {
                throw InputError(b, "GREENPRUNE_BIN is not an executable file")
            }
            return URL(fileURLWithPath: b)
        }
        let fm = FileManager.default
        let candidates = ["static/release", "release", "debug"]
            .map { packageRoot.appendingPathComponent(".build/\($0)/greenprune").path }
        let built = candidates.filter { fm.isExecutableFile(atPath: $0) }
        let newest = built.max { a, b in
            let da = (try? fm.attributesOfItem(atPath: a)[.modificationDate] as? Date) ?? .distantPast
            let db = (try? fm.attributesOfItem(atPath: b)[.modificationDate] as? Date) ?? .distantPast
            return da < db
        }
        guard let bin = newest else {
            throw InputError("greenprune", "no built binary (looked for \(candidates.joined(separator: ", "))): run scripts/test.sh or swift build -c release")
        }
        return URL(fileURLWithPath: bin)
    }
}
