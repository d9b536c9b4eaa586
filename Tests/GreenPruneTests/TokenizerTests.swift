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

    @Test(arguments: ["smollm2", "minilm", "sp-bpe", "sp-metaspace", "llama3", "qwen2", "roberta"])
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

/// Small literal cases per stage, and the hand-written regex scanners against ICU's engine.
@Suite struct TokenizerStageTests {
    static func node(_ json: String) throws -> JSONField {
        try JSONField.parse(Data(json.utf8), file: "inline.json")
    }

    static func pieces(_ preTokenizerJSON: String, _ text: String) throws -> [String] {
        guard let p = try makePreTokenizer(try node(preTokenizerJSON)) else { return [] }
        return p.preTokenize([TextPiece(Array(text.unicodeScalars), atOrigin: true)])
            .map { String(String.UnicodeScalarView($0.scalars)) }
    }

    static func splitJSON(_ regex: String) -> String {
        let data = try? JSONSerialization.data(withJSONObject: ["Regex": regex], options: [])
        let pattern = String(decoding: data ?? Data(), as: UTF8.self)
        return #"{"type": "Split", "pattern": \#(pattern), "behavior": "Isolated", "invert": false}"#
    }

    static let gpt2 = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#
    static let llama3 = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let qwen2 = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#

    /// The exact GPT-2 / Llama-3 / Qwen2 patterns go to hand-written scanners; the same pattern
    /// wrapped in `(?:…)` goes to NSRegularExpression (ICU). Both must cut 3000 random strings
    /// identically. (VT and NEL are left out: ICU's `\s` lacks them, Oniguruma's has them; the
    /// fixtures cover them against the real library.)
    @Test(arguments: ["gpt2", "llama3", "qwen2"])
    func scannerMatchesICU(pattern name: String) throws {
        let regex = ["gpt2": Self.gpt2, "llama3": Self.llama3, "qwen2": Self.qwen2][name] ?? ""
        let fast = Self.splitJSON(regex), slow = Self.splitJSON("(?:" + regex + ")")
        let alphabet: [String] = ["a", "b", "Z", "s", "S", "t", "l", "L", "e", "r", "v", "m", "d", "D",
                                  "'", "'", "1", "2", "9", " ", " ", " ", "\n", "\r", "\t", ".", ",", "!",
                                  "-", "é", "ß", "中", "文", "ا", "٣", "½", "Ⅻ", "\u{00A0}", "\u{3000}",
                                  "\u{2028}", "🦀", "❤️", "\u{0301}", "_", "$", "\"", "#"]
        var seed: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> Int {
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            return Int(seed >> 33)
        }
        var compared = 0
        for _ in 0..<3000 {
            let n = 1 + next() % 24
            let text = (0..<n).map { _ in alphabet[next() % alphabet.count] }.joined()
            let a = try Self.pieces(fast, text), b = try Self.pieces(slow, text)
            #expect(a == b, "\(name) on \(text.debugDescription)")
            #expect(a.joined() == text)
            compared += 1
        }
        #expect(compared == 3000)
    }

    /// Hand-worked cases of the GPT-2 pattern (the digits case is the one SmolLM2's Digits
    /// pre-tokenizer exists for).
    @Test func gpt2Cases() throws {
        let p = Self.splitJSON(Self.gpt2)
        #expect(try Self.pieces(p, "x  42") == ["x", " ", " 42"])
        #expect(try Self.pieces(p, "I'm here  \n") == ["I", "'m", " here", "  \n"])
        #expect(try Self.pieces(p, "a\n\nb") == ["a", "\n", "\n", "b"])
        #expect(try Self.pieces(#"{"type": "Digits", "individual_digits": true}"#, "ab12 3") == ["ab", "1", "2", " ", "3"])
        #expect(try Self.pieces(#"{"type": "Digits", "individual_digits": false}"#, "ab12 3") == ["ab", "12", " ", "3"])
        #expect(try Self.pieces(Self.splitJSON(Self.llama3), "12345 it'S") == ["123", "45", " it", "'S"])
    }

    @Test func bertNormalizerAndPreTokenizer() throws {
        let n = try makeNormalizer(try Self.node(#"{"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true, "strip_accents": null, "lowercase": true}"#))
        let out = n?.normalize(Array("Héllo\tWORLD\u{0007}中".unicodeScalars)) ?? []
        #expect(String(String.UnicodeScalarView(out)) == "hello world 中 ")
        #expect(try Self.pieces(#"{"type": "BertPreTokenizer"}"#, "Hi, there!  ok") == ["Hi", ",", "there", "!", "ok"])
    }

    @Test func metaspace() throws {
        let always = #"{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": true}"#
        #expect(try Self.pieces(always, "Hey  friend") == ["▁Hey", "▁", "▁friend"])
        let first = #"{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": false}"#
        #expect(try Self.pieces(first, "a b") == ["▁a▁b"])
    }

    @Test func decoders() throws {
        func run(_ json: String, _ tokens: [String]) throws -> String {
            try makeDecoder(try Self.node(json))?.decodeChain(tokens).joined() ?? ""
        }
        #expect(try run(#"{"type": "ByteLevel"}"#, ["Ġhello", "Ċ", "Ã©"]) == " hello\né")
        #expect(try run(###"{"type": "WordPiece", "prefix": "##", "cleanup": true}"###, ["un", "##believ", "##able", "!"]) == "unbelievable!")
        #expect(try run(#"{"type": "ByteFallback"}"#, ["a", "<0xE2>", "<0x82>", "<0xAC>"]) == "a€")
        #expect(try run(#"{"type": "ByteFallback"}"#, ["<0xE2>", "<0x82>", "b"]) == "\u{FFFD}\u{FFFD}b")
        let llama2 = #"{"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "▁"}, "content": " "}, {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}"#
        #expect(try run(llama2, ["▁Hello", "▁wor", "ld", "<0x21>"]) == "Hello world!")
    }

    /// A hand-made WordPiece tokenizer with BertProcessing: greedy longest match, `##`
    /// continuations, [UNK] for unmatchable and over-long words, [CLS]/[SEP] around.
    @Test func wordPieceWithBertProcessing() throws {
        let json = ###"""
        {"added_tokens": [{"id": 0, "content": "[UNK]", "special": true}, {"id": 1, "content": "[CLS]", "special": true},
                          {"id": 2, "content": "[SEP]", "special": true}],
         "normalizer": {"type": "BertNormalizer", "lowercase": true},
         "pre_tokenizer": {"type": "BertPreTokenizer"},
         "post_processor": {"type": "BertProcessing", "sep": ["[SEP]", 2], "cls": ["[CLS]", 1]},
         "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true},
         "model": {"type": "WordPiece", "unk_token": "[UNK]", "max_input_chars_per_word": 9,
                   "vocab": {"[UNK]": 0, "[CLS]": 1, "[SEP]": 2, "un": 3, "##aff": 4, "##able": 5, "aff": 6, "!": 7, "a": 8}}}
        """###
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gp-wp-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try Data(json.utf8).write(to: dir.appendingPathComponent("tokenizer.json"))
        let tok = try TokenizerLoader.load(directory: dir)
        // "unaffable" = un ##aff ##able; "Un" lower-cased; "xyz" and the 10-letter "aaaaaaaaaa" are [UNK] (ids checked with tokenizers 0.23).
        #expect(try tok.encode("Unaffable! xyz aaaaaaaaaa a", addSpecialTokens: true) == [1, 3, 4, 5, 7, 0, 0, 8, 2])
        #expect(try tok.encode("[CLS]un", addSpecialTokens: false) == [1, 3])
        #expect(tok.decode([1, 3, 4, 5, 7, 8, 2], skipSpecialTokens: true) == "unaffable! a")
    }

    /// MiniLM's tokenizer.json pads to 128 and truncates at 128; encode does neither.
    @Test func paddingAndTruncationDoNotLeak() throws {
        let tok = try TokenizerFixtures.tokenizer("minilm")
        #expect(try tok.encode("hi", addSpecialTokens: true) == [101, 7632, 102])
        let long = Array(repeating: "word", count: 300).joined(separator: " ")
        #expect(try tok.encode(long, addSpecialTokens: true).count == 302)
        #expect(try tok.encode("", addSpecialTokens: true) == [101, 102])
        #expect(try tok.encode("", addSpecialTokens: false) == [])
    }

    /// BOS/EOS and vocabulary sizes from tokenizer.json + tokenizer_config.json.
    @Test func specialTokenMetadata() throws {
        let smol = try TokenizerFixtures.tokenizer("smollm2")
        #expect(smol.vocabularySize == 49152)
        #expect(smol.bosTokenId == 1 && smol.eosTokenId == 2 && !smol.addsBosByDefault)
        #expect(smol.token(for: 2) == "<|im_end|>" && smol.id(for: "Ġcapital") == 3575)
        #expect(try smol.encode("<|im_start|>user\nHi<|im_end|>", addSpecialTokens: true).first == 1)
        let mini = try TokenizerFixtures.tokenizer("minilm")
        #expect(mini.vocabularySize == 30522 && mini.bosTokenId == nil && !mini.addsBosByDefault)
        let sp = try TokenizerFixtures.tokenizer("sp-bpe")
        #expect(sp.addsBosByDefault && sp.bosTokenId == 1 && sp.eosTokenId == 2)
        #expect(try sp.encode("hi", addSpecialTokens: true).first == 1)
        let l3 = try TokenizerFixtures.tokenizer("llama3")
        #expect(l3.addsBosByDefault && l3.bosTokenId == l3.id(for: "<|begin_of_text|>"))
    }
}

/// Broken tokenizer files give one-line `InputError`s naming the file, never a crash.
@Suite struct TokenizerMalformedTests {
    static let minimalModel = #""model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}"#

    static let corpus: [(name: String, content: String, phrase: String)] = [
        ("empty", "", "not valid JSON"),
        ("not-json", "hello, I am not JSON", "not valid JSON"),
        ("truncated", #"{"model": {"type": "BPE", "vocab": {"a": 0"#, "not valid JSON"),
        ("top-level-array", "[1, 2, 3]", "must be a JSON object"),
        ("deep-nesting", String(repeating: "[", count: 100_000), "nested deeper"),
        ("bad-escape", #"{"model": "\q"}"#, "not valid JSON"),
        ("missing-model", #"{"normalizer": null}"#, "is missing 'model'"),
        ("unigram", #"{"model": {"type": "Unigram", "vocab": []}}"#, "unsupported model type 'Unigram'"),
        ("precompiled", #"{"normalizer": {"type": "Precompiled", "precompiled_charsmap": ""}, \#(minimalModel)}"#,
         "unsupported normalizer type 'Precompiled'"),
        ("unicode-scripts", #"{"pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "UnicodeScripts"}]}, \#(minimalModel)}"#,
         "unsupported pre_tokenizer type 'UnicodeScripts' at pre_tokenizer.pretokenizers[0]"),
        ("ctc-decoder", #"{"decoder": {"type": "CTC"}, \#(minimalModel)}"#, "unsupported decoder type 'CTC'"),
        ("post-processor", #"{"post_processor": {"type": "Nope"}, \#(minimalModel)}"#, "unsupported post_processor type 'Nope'"),
        ("merge-not-in-vocab", #"{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a b"]}}"#, "not in the vocabulary"),
        ("bad-merge", #"{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [7]}}"#, "model.merges[0]"),
        ("negative-id", #"{"model": {"type": "BPE", "vocab": {"a": -1}, "merges": []}}"#, "must map to an id"),
        ("huge-id", #"{"model": {"type": "BPE", "vocab": {"a": 1e300}, "merges": []}}"#, "must map to an id"),
        ("sparse-ids", #"{"model": {"type": "BPE", "vocab": {"a": 0, "b": 16000000}, "merges": []}}"#, "sparse"),
        ("string-id", #"{"model": {"type": "WordPiece", "vocab": {"a": "0"}}}"#, "must map to an id"),
        ("no-type", #"{"model": {"vocab": {"a": 0}}}"#, "has no 'type'"),
        ("bad-unk", #"{"model": {"type": "WordPiece", "unk_token": "[UNK]", "vocab": {"a": 0}}}"#, "unk_token '[UNK]'"),
        ("template-unknown-special", #"{"post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "[X]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}], "special_tokens": {}}, \#(minimalModel)}"#,
         "which special_tokens does not define"),
        ("bad-regex", #"{"pre_tokenizer": {"type": "Split", "pattern": {"Regex": "(unclosed"}, "behavior": "Isolated", "invert": false}, \#(minimalModel)}"#,
         "cannot compile split pattern"),
        ("bad-behavior", #"{"pre_tokenizer": {"type": "Split", "pattern": {"String": " "}, "behavior": "Sideways"}, \#(minimalModel)}"#,
         "unknown split behavior"),
        ("added-token-without-id", #"{"added_tokens": [{"content": "<s>"}], \#(minimalModel)}"#, "is missing 'id'"),
        ("type-not-string", #"{"model": {"type": 7}}"#, "model.type must be a string"),
    ]

    @Test(arguments: corpus.map { $0.name })
    func malformedTokenizerJSON(name: String) throws {
        guard let entry = Self.corpus.first(where: { $0.name == name }) else { return }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gp-tok-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("tokenizer.json")
        try Data(entry.content.utf8).write(to: url)
        do {
            _ = try TokenizerLoader.load(directory: dir)
            Issue.record("\(name): loaded without an error")
        } catch let e as InputError {
            #expect(e.description.contains(url.path), "\(name): \(e.description)")
            #expect(e.description.contains(entry.phrase), "\(name): \(e.description)")
            #expect(!e.description.contains("\n"), "\(name): more than one line")
        }
    }

    @Test func truncatedRealFile() throws {
        let src = try Data(contentsOf: TokenizerFixtures.directory(TokenizerFixtures.smolDirectory).appendingPathComponent("tokenizer.json"))
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gp-tok-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        for cut in [1, 1000, src.count / 2, src.count - 2] {
            try src.prefix(cut).write(to: dir.appendingPathComponent("tokenizer.json"))
            #expect(throws: InputError.self) { _ = try TokenizerLoader.load(directory: dir) }
        }
    }

    @Test func missingFileAndBadConfig() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gp-tok-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        #expect(throws: InputError.self) { _ = try TokenizerLoader.load(directory: dir) }
        try Data(#"{\#(Self.minimalModel)}"#.utf8).write(to: dir.appendingPathComponent("tokenizer.json"))
        try Data(#"{"bos_token": 5}"#.utf8).write(to: dir.appendingPathComponent("tokenizer_config.json"))
        do {
            _ = try TokenizerLoader.load(directory: dir)
            Issue.record("bad tokenizer_config.json loaded")
        } catch let e as InputError {
            #expect(e.description.contains("tokenizer_config.json") && e.description.contains("bos_token"))
        }
        try Data(#"{"add_bos_token": false}"#.utf8).write(to: dir.appendingPathComponent("tokenizer_config.json"))
        let tok = try TokenizerLoader.load(directory: dir)
        #expect(try tok.encode("abab", addSpecialTokens: true) == [2, 2])
        #expect(tok.decode([2, 2], skipSpecialTokens: false) == "ab ab")
    }
}

/// One tokenizer shared by many threads (the BPE word cache is locked) gives the ids a
/// single thread gives.
@Suite struct TokenizerConcurrencyTests {
    @Test func concurrentEncodeMatchesSerial() throws {
        let tok = try TokenizerFixtures.tokenizer("smollm2")
        let url = Paths.dataDirectory().appendingPathComponent("wikitext2/wiki.test.raw")
        let text = try String(contentsOf: url, encoding: .utf8)
        let lines = Array(text.split(separator: "\n").prefix(400).map(String.init))
        #expect(lines.count == 400)
        // A fresh tokenizer, so the threads fill its empty word cache concurrently.
        let fresh = try TokenizerLoader.load(directory: TokenizerFixtures.directory(TokenizerFixtures.smolDirectory))
        let results = ResultBox(count: lines.count)
        DispatchQueue.concurrentPerform(iterations: lines.count) { i in
            results.set(i, (try? fresh.encode(lines[i], addSpecialTokens: false)) ?? [-1])
        }
        let serial = try lines.map { try tok.encode($0, addSpecialTokens: false) }
        #expect(results.values == serial)
        #expect(serial.joined().count > 10_000)
    }

    final class ResultBox: @unchecked Sendable {
        private let lock = NSLock()
        private(set) var values: [[Int]]
        init(count: Int) { values = Array(repeating: [], count: count) }
        func set(_ i: Int, _ v: [Int]) { lock.lock(); values[i] = v; lock.unlock() }
    }
}

/// The tokenizer.json `greenprune convert` writes from the GGUF tokenizes like the reference one.
@Suite struct ImportedTokenizerTests {
    @Test func importedSmolLM2MatchesReference() throws {
        let imported = try TokenizerLoader.load(directory: TokenizerFixtures.directory(Paths.defaultDecoder))
        let cases = try TokenizerFixtureTests.cases("smollm2")
        #expect(cases.count >= 50)
        for c in cases {
            #expect(try imported.encode(c.text, addSpecialTokens: true) == c.ids, "imported: \(c.text.debugDescription)")
            #expect(imported.decode(c.ids, skipSpecialTokens: true) == c.decodedSkipSpecial)
        }
        for (text, ids) in try TokenizerFixtures.reference("smollm2_ref.json") {
            #expect(try imported.encode(text, addSpecialTokens: true) == ids)
        }
        let reference = try TokenizerFixtures.tokenizer("smollm2")
        #expect(imported.vocabularySize == reference.vocabularySize)
        #expect(imported.bosTokenId == reference.bosTokenId && imported.eosTokenId == reference.eosTokenId)
        #expect(imported.addsBosByDefault == reference.addsBosByDefault)
        let wiki = try String(contentsOf: Paths.dataDirectory().appendingPathComponent("wikitext2/wiki.test.raw"), encoding: .utf8)
        let sample = String(wiki.prefix(100_000))
        #expect(try imported.encode(sample, addSpecialTokens: false) == reference.encode(sample, addSpecialTokens: false))
    }
}

/// The pooled token map against Swift's Dictionary (the structure it replaces).
@Suite struct ScalarSequenceMapTests {
    @Test func agreesWithDictionaryThroughGrowthReplacementAndClearing() {
        var rng = SystemRandomNumberGenerator()
        var map = ScalarSequenceMap()
        var reference = [[Unicode.Scalar]: [Int32]]()
        let alphabet: [Unicode.Scalar] = ["a", "b", "Ġ", "é", "e", "\u{301}", "😀", "\0"]
        for round in 0 ..< 3 {
            for _ in 0 ..< 5_000 {
                let key = (0 ..< Int.random(in: 0 ... 6, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! }
                let value = (0 ..< Int.random(in: 0 ... 4, using: &rng)).map { _ in Int32.random(in: -5 ... 1 << 20, using: &rng) }
                map.set(key, value)
                reference[key] = value
            }
            #expect(map.count == reference.count)
            for (k, v) in reference { #expect(map.value(k).map { $0.map { Int32(bitPattern: $0) } } == v) }
            var seen = 0
            map.forEach { k, v in
                seen += 1
                let key = k.map { Unicode.Scalar($0)! }
                #expect(reference[key] == v.map { Int32(bitPattern: $0) })
            }
            #expect(seen == reference.count)
            // Canonically equivalent strings stay different keys.
            if let e1 = map.value(["é"] as [Unicode.Scalar]), let e2 = map.value(["e", "\u{301}"] as [Unicode.Scalar]) {
                #expect(Array(e1) == reference[["é"]].map { $0.map { UInt32(bitPattern: $0) } })
                #expect(Array(e2) == reference[["e", "\u{301}"]].map { $0.map { UInt32(bitPattern: $0) } })
            }
            #expect(map.value(["z"] as [Unicode.Scalar]) == nil)
            if round < 2 { map.removeAll(); reference.removeAll(); #expect(map.count == 0 && map.value(["a"] as [Unicode.Scalar]) == nil) }
        }
    }

    @Test func singleIds() {
        var map = ScalarSequenceMap(minimumCapacity: 3)
        map.set("hello".unicodeScalars, CollectionOfOne(Int32(7)))
        map.set("".unicodeScalars, CollectionOfOne(Int32(0)))
        map.set("hello".unicodeScalars, CollectionOfOne(Int32(9)))
        #expect(map.id("hello".unicodeScalars) == 9)
        #expect(map.id("".unicodeScalars) == 0)
        #expect(map.id("hell".unicodeScalars) == nil)
        #expect(map.count == 2)
    }
}

/// Streaming pre-tokenization (pieces handed on one by one, depth first through a Sequence)
/// gives exactly the pieces the stage-by-stage arrays give, for the default models' pipelines and
/// the Llama-3 / Qwen2 (Sequence of Split and ByteLevel) and SentencePiece (Metaspace) fixtures.
@Suite struct StreamingPreTokenizerTests {
    @Test(arguments: ["smollm2", "minilm", "llama3", "qwen2", "sp-metaspace"])
    func streamingMatchesArrays(_ name: String) throws {
        let tok = try #require(try TokenizerFixtures.tokenizer(name) as? PreTrainedTokenizer)
        let pre = try #require(tok.preTokenizer)
        let wiki = try String(contentsOf: Paths.dataDirectory().appendingPathComponent("wikitext2/wiki.test.raw"), encoding: .utf8)
        let piece = TextPiece(Array(wiki.prefix(50_000).unicodeScalars), atOrigin: true)
        var streamed = [TextPiece]()
        pre.preTokenize(piece) { streamed.append($0) }
        let arrays = pre.preTokenize([piece])
        #expect(streamed.count == arrays.count && !streamed.isEmpty)
        #expect(streamed.map(\.scalars) == arrays.map(\.scalars))
        #expect(streamed.map(\.atOrigin) == arrays.map(\.atOrigin))
    }
}
