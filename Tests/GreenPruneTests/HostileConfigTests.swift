import Foundation
import Testing
import GreenPrune

/// Configs built to crash the YAML parser (issue 22): nesting deep enough to overflow the stack of
/// a recursive composer must be refused with one line naming the file and line, before any parse.
@Suite struct HostileConfigTests {
    static let limit = YAMLNesting.maxDepth

    /// `x: [[[…]]]` with `brackets` levels of flow sequences under the top mapping.
    static func flow(_ brackets: Int) -> String {
        "x: " + String(repeating: "[", count: brackets) + String(repeating: "]", count: brackets) + "\n"
    }

    /// `levels` block mappings, each indented one space more than its parent.
    static func blockMappings(_ levels: Int) -> String {
        var s = ""
        s.reserveCapacity(levels * levels / 2 + 4 * levels)
        for i in 0 ..< levels { s += String(repeating: " ", count: i) + "a:\n" }
        return s + String(repeating: " ", count: levels) + "b: 1\n"
    }

    static func inputError(_ body: () throws -> Void) -> InputError? {
        do { try body() } catch let e as InputError { return e } catch { return nil }
        return nil
    }

    @Test func depthAtTheLimitParsesAndOneMoreIsRefused() throws {
        // The top mapping is one level, so limit-1 brackets reach exactly the limit.
        let ok = Self.inputError { _ = try SweepConfig.parse(Self.flow(Self.limit - 1), file: "ok.yaml", defaults: [:]) }
        #expect(ok != nil && !(ok!.problem.contains("nested")), "\(String(describing: ok))")
        let deep = Self.inputError { _ = try SweepConfig.parse(Self.flow(Self.limit), file: "deep.yaml", defaults: [:]) }
        #expect(deep == InputError("deep.yaml:1", "YAML nested deeper than \(Self.limit) levels"))
    }

    @Test(arguments: [5000, 1_000_000]) func deepFlowSequencesAreRefused(levels: Int) throws {
        let e = Self.inputError { _ = try SweepConfig.parse(Self.flow(levels), file: "f.yaml", defaults: [:]) }
        #expect(e == InputError("f.yaml:1", "YAML nested deeper than \(Self.limit) levels"))
    }

    @Test func millionUnclosedBracketsAreRefused() throws {
        let text = "x: " + String(repeating: "[", count: 1_000_000)
        let e = Self.inputError { _ = try SweepConfig.parse(text, file: "u.yaml", defaults: [:]) }
        #expect(e == InputError("u.yaml:1", "YAML nested deeper than \(Self.limit) levels"))
    }

    @Test func deepBlockMappingsAreRefusedAtTheirLine() throws {
        // Mapping k (1-based) starts on line k, so the first one past the limit is on line limit+1.
        let e = Self.inputError { _ = try SweepConfig.parse(Self.blockMappings(5000), file: "b.yaml", defaults: [:]) }
        #expect(e == InputError("b.yaml:\(Self.limit + 1)", "YAML nested deeper than \(Self.limit) levels"))
    }

    @Test func deepBlockSequencesAreRefused() throws {
        let text = String(repeating: "- ", count: 5000) + "x\n"
        let e = Self.inputError { _ = try SweepConfig.parse(text, file: "s.yaml", defaults: [:]) }
        #expect(e == InputError("s.yaml:1", "YAML nested deeper than \(Self.limit) levels"))
    }

    @Test func deepTaskDescriptionIsRefused() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gp-hostile-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("deep.yaml")
        try Data(("task: deep\nfile: d.jsonl\ndoc_to_text: " + Self.flow(5000).dropFirst(3)).utf8).write(to: url)
        let e = Self.inputError { _ = try MultipleChoiceSpec.load(url) }
        #expect(e == InputError(url.path + ":3", "YAML nested deeper than \(Self.limit) levels"))
    }

    /// The CLI: a non-zero exit and exactly one `file:line: problem` line on stderr, for each shape.
    @Test(arguments: ["flow", "block", "unclosed"]) func sweepDryRunGivesOneLine(shape: String) throws {
        let bin = try CLIBinary.url().path
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gp-hostile-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let text: String, line: Int
        switch shape {
        case "flow": (text, line) = (Self.flow(5000), 1)
        case "block": (text, line) = (Self.blockMappings(5000), Self.limit + 1)
        default: (text, line) = ("x: " + String(repeating: "[", count: 1_000_000), 1)
        }
        try Data(text.utf8).write(to: dir.appendingPathComponent("h.yaml"))
        let (rc, out, err) = try SweepFixtures.run([bin, "sweep", "h.yaml", "--dry-run"], cwd: dir)
        #expect(rc == 1, "exit \(rc), stderr: \(err)")
        let lines = err.split(separator: "\n")
        #expect(lines.count == 1, "\(err)")
        #expect(err.contains("h.yaml:\(line): YAML nested deeper than \(Self.limit) levels"), "\(err)")
        #expect(out.isEmpty)
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("out").path))
    }

    /// A name read from a hostile file can hold a newline; the error naming it must stay one line
    /// (found by the gguf fuzz target: a metadata key with control characters before a bad type).
    @Test func errorNamingAKeyWithANewlineIsOneLine() throws {
        var bytes = Array("GGUF".utf8)
        func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
        func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
        u32(3); u64(0); u64(1)          // version 3, no tensors, one metadata entry
        let key = Array("bad\nkey\r\u{85}".utf8)
        u64(UInt64(key.count)); bytes += key
        u32(99)                          // an unknown value type
        bytes += [UInt8](repeating: 0, count: 16)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gp-hostile-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("k.gguf")
        try Data(bytes).write(to: url)
        let e = Self.inputError { _ = try GGUFFile(url: url) }
        let text = try #require(e).description
        #expect(text == url.path + ": metadata 'bad\\nkey\\r\\u{85}': unknown value type 99", "\(text)")
        let breaksLine = text.contains(where: \.isNewline)
        #expect(!breaksLine)
        #expect(InputError("f", "a\tb").description == "f: a\tb")
    }
}
