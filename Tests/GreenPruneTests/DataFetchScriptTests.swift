import Foundation
import Testing
import GreenPrune

/// scripts/fetch-data.sh --verify-only: the evaluation data against scripts/data-sha256.txt.
@Suite struct DataFetchScriptTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..").standardizedFileURL

    func verify(_ dir: URL) throws -> (status: Int32, errors: [String]) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/bash")
        p.arguments = [Self.root.appendingPathComponent("scripts/fetch-data.sh").path, "--verify-only", dir.path]
        let err = Pipe()
        p.standardError = err
        p.standardOutput = Pipe()
        try p.run()
        let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        return (p.terminationStatus, text.split(separator: "\n").map(String.init))
    }

    /// The listed paths (sha256sum's format, comments skipped).
    func listed() throws -> [(hash: String, path: String)] {
        let text = try String(contentsOf: Self.root.appendingPathComponent("scripts/data-sha256.txt"), encoding: .utf8)
        return text.split(separator: "\n").filter { !$0.hasPrefix("#") }.map {
            let f = $0.split(separator: " ", omittingEmptySubsequences: true)
            return (String(f[0]), String(f[1]))
        }
    }

    @Test func aChangedOrMissingFileIsNamedOnOneLine() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gp-data-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let all = try listed()
        #expect(all.count >= 17 && all.allSatisfy { $0.hash.count == 64 })
        // One file present with other bytes: "x" (sha256 2d711642…), every other file missing.
        let changed = dir.appendingPathComponent(all[0].path)
        try FileManager.default.createDirectory(at: changed.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data("x".utf8).write(to: changed)
        let (status, errors) = try verify(dir)
        #expect(status == 1)
        #expect(errors.count == all.count)
        #expect(errors.first == "\(changed.path): sha256 2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881, expected \(all[0].hash) (remove it to fetch it again)")
        for (e, f) in zip(errors.dropFirst(), all.dropFirst()) {
            #expect(e == dir.appendingPathComponent(f.path).path + ": missing")
        }
    }

    @Test(.enabled(if: sharedData() != nil, "needs the shared data directory"))
    func theSharedDataMatchesTheList() throws {
        let (status, errors) = try verify(try #require(sharedData()))
        #expect(status == 0, "\(errors)")
    }
}
