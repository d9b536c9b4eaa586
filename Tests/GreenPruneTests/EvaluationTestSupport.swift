import Foundation
import GreenPrune

/// A tokenizer with one token per Unicode scalar: id = scalar value + 3 (0 unk, 1 BOS, 2 EOS).
final class CharTokenizer: Tokenizer {
    var bos: Int? = 1
    var eos: Int? = 2
    var addsBos = false
    /// Ids that replace the default for some scalars.
    var remap: [Unicode.Scalar: Int]
    init(bos: Int? = 1, eos: Int? = 2, addsBos: Bool = false, remap: [Unicode.Scalar: Int] = [:]) {
        self.bos = bos; self.eos = eos; self.addsBos = addsBos; self.remap = remap
    }
    func encode(_ text: String, addSpecialTokens: Bool) throws -> [Int] {
        let ids = text.unicodeScalars.map { remap[$0] ?? Int($0.value) + 3 }
        return (addSpecialTokens && addsBos ? [bos ?? 1] : []) + ids
    }
    func decode(_ ids: [Int], skipSpecialTokens: Bool) -> String {
        String(String.UnicodeScalarView(ids.compactMap { $0 >= 3 ? Unicode.Scalar(UInt32($0 - 3)) : nil }))
    }
    func token(for id: Int) -> String? { decode([id], skipSpecialTokens: false) }
    func id(for token: String) -> Int? { token.unicodeScalars.count == 1 ? token.unicodeScalars.first.map { Int($0.value) + 3 } : nil }
    var vocabularySize: Int { 512 }
    var bosTokenId: Int? { bos }
    var eosTokenId: Int? { eos }
    var addsBosByDefault: Bool { addsBos }
}

/// A GPT-2-like word tokenizer: a token is a run of spaces followed by a run of non-spaces
/// (" word"), or trailing spaces alone. The vocabulary grows as words are seen.
final class WordTokenizer: Tokenizer {
    private(set) var vocab: [String: Int] = ["<bos>": 1, "<eos>": 2]
    private(set) var words: [Int: String] = [1: "<bos>", 2: "<eos>"]
    func pieces(_ text: String) -> [String] {
        var out: [String] = []
        var cur = ""
        var sawWord = false
        for ch in text {
            if ch == " " || ch == "\n" {
                if sawWord { out.append(cur); cur = ""; sawWord = false }
                cur.append(ch)
            } else {
                cur.append(ch); sawWord = true
            }
        }
        if !cur.isEmpty { out.append(cur) }
        return out
    }
    func encode(_ text: String, addSpecialTokens: Bool) throws -> [Int] {
        pieces(text).map { p in
            if let id = vocab[p] { return id }
            let id = vocab.count + 3
            vocab[p] = id; words[id] = p
            return id
        }
    }
    func decode(_ ids: [Int], skipSpecialTokens: Bool) -> String { ids.compactMap { words[$0] }.joined() }
    func token(for id: Int) -> String? { words[id] }
    func id(for token: String) -> Int? { vocab[token] }
    var vocabularySize: Int { 4096 }
    var bosTokenId: Int? { 1 }
    var eosTokenId: Int? { 2 }
    var addsBosByDefault: Bool { false }
}

/// A bigram model known in closed form: the successor token (prev + 1) gets logit 2, every
/// other token logit 0, over V tokens. So ln p(next = prev+1) = 2 − ln(e² + V − 1), any other
/// token −ln(e² + V − 1), and only the successor is greedy. Records every call.
final class DummyLM: TokenScorer {
    let maxLength: Int
    let vocabularySize: Int
    var plainCalls: [[ScoreRequest]] = []
    var prefixCalls: [(prefix: [Int], continuations: [[Int]])] = []
    /// Whether `score(prefix:continuations:)` runs its own (KV-reuse) path.
    let ownPrefixPath: Bool

    init(maxLength: Int = 64, vocabularySize: Int = 512, ownPrefixPath: Bool = true) {
        self.maxLength = maxLength
        self.vocabularySize = vocabularySize
        self.ownPrefixPath = ownPrefixPath
    }

    static func logp(_ token: Int, after prev: Int, vocabulary v: Int = 512) -> Double {
        let z = log(exp(2.0) + Double(v - 1))
        return token == prev + 1 ? 2 - z : -z
    }

    func scoreOne(_ tokens: [Int], from: Int) -> ScoreResult {
        var lp: [Float] = [], g: [Bool] = []
        for t in from ..< tokens.count {
            lp.append(Float(Self.logp(tokens[t], after: tokens[t - 1], vocabulary: vocabularySize)))
            g.append(tokens[t] == tokens[t - 1] + 1)
        }
        return ScoreResult(logprobs: lp, greedy: g)
    }

    func score(_ batch: [ScoreRequest]) throws -> [ScoreResult] {
        plainCalls.append(batch)
        return batch.map { scoreOne($0.tokens, from: $0.scoreFrom) }
    }

    func score(prefix: [Int], continuations: [[Int]]) throws -> [ScoreResult] {
        guard ownPrefixPath else {
            return try score(continuations.map { ScoreRequest(tokens: prefix + $0, scoreFrom: prefix.count) })
        }
        prefixCalls.append((prefix, continuations))
        return continuations.map { scoreOne(prefix + $0, from: prefix.count) }
    }
}

/// A temporary data directory holding the given files; removed on deinit.
final class TempDataDirectory {
    let url: URL
    init(_ files: [String: String]) throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("gp-eval-\(UUID().uuidString)")
        for (path, text) in files {
            let f = url.appendingPathComponent(path)
            try FileManager.default.createDirectory(at: f.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(text.utf8).write(to: f)
        }
    }
    deinit { try? FileManager.default.removeItem(at: url) }
}

/// configs/tasks of this package (tests run from the package root).
func taskRegistry() throws -> TaskRegistry {
    let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../configs/tasks").standardizedFileURL
    return try TaskRegistry(specDirectory: dir)
}

func languageTask(_ name: String) throws -> EvaluationTask {
    guard case let .language(t) = try taskRegistry().task(name) else { throw InputError(name, "not a language task") }
    return t
}

/// The shared data directory, or nil when it is absent.
func sharedData() -> URL? {
    let d = Paths.dataDirectory()
    return FileManager.default.fileExists(atPath: d.appendingPathComponent("hellaswag").path) ? d : nil
}

/// FNV-1a 64 of the UTF-8 bytes, as hex (what scripts/eval-fixtures.py pins texts with).
func fnv1a64(_ s: String) -> String {
    var h: UInt64 = 0xcbf29ce484222325
    for b in s.utf8 { h ^= UInt64(b); h = h &* 0x100000001b3 }
    return String(format: "%016llx", h)
}
