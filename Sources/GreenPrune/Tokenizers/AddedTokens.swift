/// One entry of tokenizer.json's `added_tokens`.
public struct AddedToken {
    public let id: Int
    public let content: String
    /// Dropped by `decode(_, skipSpecialTokens: true)`.
    public let special: Bool
    /// Matched in the normalized text rather than the raw text.
    public let normalized: Bool
    /// Whitespace before (lstrip) / after (rstrip) a match is swallowed by the token.
    public let lstrip: Bool
    public let rstrip: Bool
    /// Matches only with no word character on either side.
    public let singleWord: Bool

    init(_ node: JSONField) throws {
        id = try node.int("id")
        content = try node.string("content")
        guard id >= 0, id < 1 << 24 else { throw node.error("id must be in 0..<16777216") }
        guard !content.isEmpty else { throw node.error("content must not be empty") }
        special = try node.bool("special", default: false)
        normalized = try node.bool("normalized", default: !special)
        lstrip = try node.bool("lstrip", default: false)
        rstrip = try node.bool("rstrip", default: false)
        singleWord = try node.bool("single_word", default: false)
    }
}

/// A stretch of input after added tokens are cut out: text for the pipeline, or a token id.
enum AddedTokenSegment {
    case text(Range<Int>)
    case token(Int)
}

/// Finds added tokens in text, leftmost match first and the longest at a position (the
/// aho-corasick LeftmostLongest search Hugging Face uses), before the normalizer/model see it.
struct AddedTokenMatcher {
    private struct Entry { let id: Int; let scalars: [Unicode.Scalar]; let token: AddedToken }
    /// First scalar → candidate tokens, longest first.
    private let byFirst: [Unicode.Scalar: [Entry]]
    /// Whether an ASCII scalar starts some token; non-ASCII first scalars go to the dictionary.
    private let asciiFirst: [Bool]
    private let nonASCIIFirst: Bool

    init(_ tokens: [AddedToken], normalizer: Normalizer?) {
        var d = [Unicode.Scalar: [Entry]]()
        for t in tokens {
            var s = Array(t.content.unicodeScalars)
            if t.normalized, let n = normalizer { s = n.normalize(s) }
            guard let f = s.first else { continue }
            d[f, default: []].append(Entry(id: t.id, scalars: s, token: t))
        }
        byFirst = d.mapValues { $0.sorted { $0.scalars.count > $1.scalars.count } }
        asciiFirst = (0..<128).map { d[Unicode.Scalar(UInt8($0))] != nil }
        nonASCIIFirst = d.keys.contains { $0.value >= 128 }
    }

    var isEmpty: Bool { byFirst.isEmpty }

    /// Cuts `s` into text segments and token ids.
    func split(_ s: [Unicode.Scalar]) -> [AddedTokenSegment] {
        if byFirst.isEmpty { return s.isEmpty ? [] : [.text(0..<s.count)] }
        var out = [AddedTokenSegment]()
        var textStart = 0
        var i = 0
        while i < s.count {
            let v = s[i].value
            guard v < 128 ? asciiFirst[Int(v)] : nonASCIIFirst,
                  let cands = byFirst[s[i]], let e = cands.first(where: { matches($0, s, i) }) else {
                i += 1
                continue
            }
            var lo = i, hi = i + e.scalars.count
            if e.token.lstrip { while lo > textStart && ScalarClass.isSpace(s[lo - 1]) { lo -= 1 } }
            if e.token.rstrip { while hi < s.count && ScalarClass.isSpace(s[hi]) { hi += 1 } }
            if lo > textStart { out.append(.text(textStart..<lo)) }
            out.append(.token(e.id))
            textStart = hi
            i = hi
        }
        if textStart < s.count { out.append(.text(textStart..<s.count)) }
        return out
    }

    private func matches(_ e: Entry, _ s: [Unicode.Scalar], _ i: Int) -> Bool {
        let n = e.scalars.count
        guard i + n <= s.count, s[i..<(i + n)].elementsEqual(e.scalars) else { return false }
        if e.token.singleWord {
            if i > 0 && ScalarClass.isWord(s[i - 1]) { return false }
            if i + n < s.count && ScalarClass.isWord(s[i + n]) { return false }
        }
        return true
    }
}
