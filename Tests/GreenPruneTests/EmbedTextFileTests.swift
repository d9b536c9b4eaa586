import Foundation
import GreenPrune
import Testing

/// `embed --text-file` and `--no-normalize` (the bench's way in, scripts/bench-bnb.sh): the same
/// vectors as `--text`, the raw mean-pooled vectors that normalise to them, and one line for a
/// file with an empty line.
extension HostileModelInputTests {
    @Test func embedTextFileAndRawVectors() throws {
        let model = TFCheckpointTests.safetensorsDirectory.path
        let texts = ["The quick brown fox.", "a short one", "A third, longer sentence about nothing much."]
        let file = root.appendingPathComponent("texts.txt")
        try Data((texts.joined(separator: "\n") + "\n").utf8).write(to: file)
        let byFlag = try cli(["embed", model, "--json"] + texts.flatMap { ["--text", $0] })
        let byFile = try cli(["embed", model, "--json", "--text-file", file.path])
        let raw = try cli(["embed", model, "--json", "--no-normalize", "--text-file", file.path])
        for r in [byFlag, byFile, raw] { #expect(r.status == 0, "\(r.stderr)") }
        #expect(byFile.stderr.hasPrefix("embed: 3 texts, "), "\(byFile.stderr)")
        let a = try embeddings(byFlag), b = try embeddings(byFile), c = try embeddings(raw)
        #expect(a.count == 3 && a == b)
        #expect(c.count == 3)
        for (x, y) in zip(c, a) {
            let norm = x.reduce(0) { $0 + Double($1) * Double($1) }.squareRoot()
            // Mean pooling of a random tiny BERT's outputs is not a unit vector.
            #expect(abs(norm - 1) > 1e-3, "\(norm)")
            for (u, v) in zip(x, y) { #expect(abs(Double(u) / norm - Double(v)) < 1e-6) }
        }
    }

    /// Each `--json` line is valid JSON holding the text as given (quotes, backslashes, slashes,
    /// tabs, non-ASCII), the tokenizer's ids, and the embedding the library computes, every
    /// float exactly.
    @Test func embedJSONLinesHoldTheTextIdsAndExactVectors() throws {
        let model = TFCheckpointTests.safetensorsDirectory
        let texts = ["She said \"hi\" \\ left/right", "tab\there, naïve café 東京 🙂", "plain"]
        let r = try cli(["embed", model.path, "--json"] + texts.flatMap { ["--text", $0] })
        #expect(r.status == 0, "\(r.stderr)")
        let bundle = try ModelLoader.load(model)
        let ids = try texts.map { try bundle.requireTokenizer().encode($0, addSpecialTokens: true) }
        let vectors = try bundle.bert().embed(ids: ids, normalize: true)
        let lines = r.stdout.split(separator: "\n")
        #expect(lines.count == texts.count)
        for (i, line) in lines.enumerated() where i < texts.count {
            let obj = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            #expect(Set(obj.keys) == ["dimension", "embedding", "ids", "text"])
            #expect(obj["text"] as? String == texts[i])
            #expect((obj["ids"] as? [Any])?.compactMap { ($0 as? NSNumber)?.intValue } == ids[i])
            #expect((obj["dimension"] as? NSNumber)?.intValue == vectors[i].count)
            #expect(ModelsFixtures.floatList(obj["embedding"]) == vectors[i])
        }
    }

    @Test func embedTextFileWithAnEmptyLineFails() throws {
        let file = root.appendingPathComponent("gap.txt")
        try Data("first\n\nthird\n".utf8).write(to: file)
        let r = try cli(["embed", TFCheckpointTests.safetensorsDirectory.path, "--text-file", file.path])
        expectCleanError(r, file: file.path, "line 2 is empty", "embed --text-file")
        #expect(r.stdout.isEmpty)
        let missing = try cli(["embed", TFCheckpointTests.safetensorsDirectory.path, "--text-file", root.appendingPathComponent("none.txt").path])
        expectCleanError(missing, file: root.appendingPathComponent("none.txt").path, "cannot open", "embed --text-file missing")
    }
}
