import Foundation
import Testing
import GreenPrune

/// Reference files and fixtures the tokenizer tests compare against.
enum TokenizerFixtures {
    static var smolDirectory: URL { Paths.referenceDirectory().appendingPathComponent("smollm2-135m") }
    static var miniLMDirectory: URL { Paths.defaultEncoder }
    static var fixtureDirectory: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/tokenizers")
    }

    static func json(_ url: URL) throws -> Any {
        try JSONSerialization.jsonObject(with: try Data(contentsOf: url))
    }

    /// The model directory, or a clear failure saying how to get it.
    static func directory(_ url: URL) throws -> URL {
        guard FileManager.default.fileExists(atPath: url.appendingPathComponent("tokenizer.json").path) else {
            throw InputError(url.path, "missing tokenizer.json; run scripts/fetch-models.sh")
        }
        return url
    }

    nonisolated(unsafe) static var cache = [String: Tokenizer]()
    static let lock = NSLock()

    static func tokenizer(_ name: String) throws -> Tokenizer {
        lock.lock(); defer { lock.unlock() }
        if let t = cache[name] { return t }
        let t: Tokenizer
        switch name {
        case "smollm2": t = try TokenizerLoader.load(directory: try directory(smolDirectory))
        case "minilm": t = try TokenizerLoader.load(directory: try directory(miniLMDirectory))
        default:
            let dir = fixtureDirectory.appendingPathComponent(name)
            t = try TokenizerLoader.load(tokenizerJSON: dir.appendingPathComponent("tokenizer.json"),
                                         config: FileManager.default.fileExists(atPath: dir.appendingPathComponent("tokenizer_config.json").path)
                                            ? dir.appendingPathComponent("tokenizer_config.json") : nil)
        }
        cache[name] = t
        return t
    }

    /// (text, ids) pairs of a reference file (`smollm2_ref.json` / `minilm_ref.json`).
    static func reference(_ file: String) throws -> [(String, [Int])] {
        let root = try json(Paths.referenceDirectory().appendingPathComponent(file)) as? [String: Any]
        let sentences = root?["sentences"] as? [[String: Any]] ?? []
        return sentences.compactMap { s in
            guard let t = s["text"] as? String, let ids = s["ids"] as? [Int] else { return nil }
            return (t, ids)
        }
    }
}

@Suite struct TokenizerTests {
    /// Ids of the five reference sentences, exactly as tokenizers 0.23 encoded them.
    @Test(arguments: [("smollm2", "smollm2_ref.json"), ("minilm", "minilm_ref.json")])
    func referenceIds(model: String, file: String) throws {
        let tok = try TokenizerFixtures.tokenizer(model)
        let refs = try TokenizerFixtures.reference(file)
        #expect(refs.count == 5)
        for (text, ids) in refs {
            #expect(try tok.encode(text, addSpecialTokens: true) == ids, "\(model): \(text)")
        }
    }

    /// decode(encode(s)) gives s back (MiniLM lower-cases, so compare with the lower-cased text).
    @Test(arguments: ["smollm2", "minilm"])
    func roundTrip(model: String) throws {
        let tok = try TokenizerFixtures.tokenizer(model)
        let sentences = try TokenizerFixtures.json(Paths.referenceDirectory().appendingPathComponent("sentences.json")) as? [String] ?? []
        #expect(sentences.count == 5)
        for s in sentences {
            let ids = try tok.encode(s, addSpecialTokens: true)
            let back = tok.decode(ids, skipSpecialTokens: true)
            #expect(back == (model == "minilm" ? s.lowercased() : s))
        }
    }
}

/// Hard strings (digits, whitespace runs, accents, CJK, emoji, code, URLs, contractions,
/// special tokens in text) against ids and decodes from the Python `tokenizers` library,
/// written by scripts/make_tokenizer_fixtures.py.
@Suite struct TokenizerFixtureTests {
    struct Case {
        let text: String
        let ids: [Int]
        let idsNoSpecial: [Int]
        let decoded: String
        let decodedSkipSpecial: String
    }

    static func cases(_ name: String) throws -> [Case] {
        let url = TokenizerFixtures.fixtureDirectory.appendingPathComponent("expected.json")
        let root = try TokenizerFixtures.json(url) as? [String: Any]
        let rows = (root?["tokenizers"] as? [String: Any])?[name] as? [[String: Any]] ?? []
        return rows.compactMap { r in
            guard let t = r["text"] as? String, let a = r["ids"] as? [Int], let b = r["ids_no_special"] as? [Int],
                  let d = r["decoded"] as? String, let s = r["decoded_skip_special"] as? String else { return nil }
            return Case(text: t, ids: a, idsNoSpecial: b, decoded: d, decodedSkipSpecial: s)
        }
    }

    @Test(arguments: ["smollm2", "minilm", "sp-bpe", "sp-metaspace", "llama3", "qwen2"])
    func hardStrings(tokenizer name: String) throws {
        let tok = try TokenizerFixtures.tokenizer(name)
        let cases = try Self.cases(name)
        #expect(cases.count >= 50, "expected.json has the cases of \(name)")
        for c in cases {
            #expect(try tok.encode(c.text, addSpecialTokens: true) == c.ids, "\(name) ids: \(c.text.debugDescription)")
            #expect(try tok.encode(c.text, addSpecialTokens: false) == c.idsNoSpecial, "\(name) ids (no special): \(c.text.debugDescription)")
            #expect(tok.decode(c.ids, skipSpecialTokens: false) == c.decoded, "\(name) decode: \(c.text.debugDescription)")
            #expect(tok.decode(c.ids, skipSpecialTokens: true) == c.decodedSkipSpecial, "\(name) decode (skip special): \(c.text.debugDescription)")
        }
    }
}
