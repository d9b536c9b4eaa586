import Foundation

/// A tokenizer.json `decoder`: turns token strings back into text. Stages work on the list of
/// token strings (`decode_chain` in Hugging Face) so they can be chained; the result is joined.
public protocol TokenDecoder {
    func decodeChain(_ tokens: [String]) -> [String]
}

/// The decoder `"type"` strings GreenPrune implements.
public enum DecoderType: String, CaseIterable {
    case sequence = "Sequence"
    case byteLevel = "ByteLevel"
    case metaspace = "Metaspace"
    case wordPiece = "WordPiece"
    case replace = "Replace"
    case byteFallback = "ByteFallback"
    case fuse = "Fuse"
    case strip = "Strip"
    case bpe = "BPEDecoder"
}

/// Builds the decoder described by `node` (nil for JSON null); unknown types throw.
public func makeDecoder(_ node: JSONField?) throws -> TokenDecoder? {
    guard let node, !node.isNull else { return nil }
    let name = try node.type()
    guard let type = DecoderType(rawValue: name) else { throw unsupported("decoder", name, node) }
    switch type {
    case .sequence:
        return SequenceDecoder(parts: try node.required("decoders").array().compactMap { try makeDecoder($0) })
    case .byteLevel: return ByteLevelDecoder()
    case .metaspace:
        let rep = Array(try node.optionalString("replacement")?.unicodeScalars ?? "▁".unicodeScalars)
        guard rep.count == 1 else { throw node.error("replacement must be one character") }
        let scheme = try node.optionalString("prepend_scheme")
        let stripFirst = try scheme.map { $0 != "never" } ?? node.bool("add_prefix_space", default: true)
        return MetaspaceDecoder(replacement: rep[0], stripFirst: stripFirst)
    case .wordPiece:
        return WordPieceDecoder(prefix: try node.optionalString("prefix") ?? "##",
                                cleanup: try node.bool("cleanup", default: true))
    case .replace:
        return ReplaceDecoder(pattern: try node.required("pattern").pattern(), content: try node.string("content"))
    case .byteFallback: return ByteFallbackDecoder()
    case .fuse: return FuseDecoder()
    case .strip:
        let content = Array(try node.string("content").unicodeScalars)
        guard content.count == 1 else { throw node.error("content must be one character") }
        return StripDecoder(content: content[0],
                            start: try node.optionalInt("start") ?? 0, stop: try node.optionalInt("stop") ?? 0)
    case .bpe:
        return BPESuffixDecoder(suffix: try node.optionalString("suffix") ?? "</w>")
    }
}

struct SequenceDecoder: TokenDecoder {
    let parts: [TokenDecoder]
    func decodeChain(_ tokens: [String]) -> [String] { parts.reduce(tokens) { $1.decodeChain($0) } }
}

/// Maps GPT-2 stand-in scalars back to bytes, then decodes UTF-8 lossily. A token holding a
/// scalar outside the map contributes its own UTF-8 bytes (as Hugging Face does).
struct ByteLevelDecoder: TokenDecoder {
    func decodeChain(_ tokens: [String]) -> [String] {
        var bytes = [UInt8]()
        let map = ByteLevelTable.scalarToByte
        for t in tokens {
            var mine = [UInt8]()
            var ok = true
            for c in t.unicodeScalars {
                guard let b = map[c.value] else { ok = false; break }
                mine.append(b)
            }
            bytes += ok ? mine : Array(t.utf8)
        }
        return [String(decoding: bytes, as: UTF8.self)]
    }
}

/// ▁ back to spaces; in the first token every ▁ is dropped (the prepended one).
struct MetaspaceDecoder: TokenDecoder {
    let replacement: Unicode.Scalar
    let stripFirst: Bool
    func decodeChain(_ tokens: [String]) -> [String] {
        tokens.enumerated().map { i, t in
            var v = String.UnicodeScalarView()
            for c in t.unicodeScalars {
                if c == replacement {
                    if !(i == 0 && stripFirst) { v.append(" ") }
                } else {
                    v.append(c)
                }
            }
            return String(v)
        }
    }
}

/// Joins WordPiece pieces: `##` continuations glue on, other tokens get a space; `cleanup`
/// undoes BERT's spacing around punctuation and contractions.
struct WordPieceDecoder: TokenDecoder {
    let prefix: String
    let cleanup: Bool
    func decodeChain(_ tokens: [String]) -> [String] {
        tokens.enumerated().map { i, t in
            var s = t
            if i != 0 {
                let u = s.unicodeScalars, p = prefix.unicodeScalars
                if u.starts(with: p) {
                    s = String(String.UnicodeScalarView(u.dropFirst(p.count)))
                } else {
                    s = " " + s
                }
            }
            return cleanup ? Self.cleanUp(s) : s
        }
    }

    /// Hugging Face's `cleanup` (transformers' `clean_up_tokenization`).
    static func cleanUp(_ s: String) -> String {
        var s = s
        for (a, b) in [(" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
                       (" 'm", "'m"), (" do not", " don't"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")] {
            s = replacingScalars(s, a, b)
        }
        return s
    }
}

struct ReplaceDecoder: TokenDecoder {
    let pattern: SplitPattern
    let content: String
    func decodeChain(_ tokens: [String]) -> [String] {
        let normalizer = ReplaceNormalizer(pattern: pattern, content: Array(content.unicodeScalars))
        return tokens.map { t in
            var v = String.UnicodeScalarView()
            v.append(contentsOf: normalizer.normalize(Array(t.unicodeScalars)))
            return String(v)
        }
    }
}

/// Runs of `<0xXX>` tokens back to the text their bytes spell (one U+FFFD per byte if invalid).
struct ByteFallbackDecoder: TokenDecoder {
    func decodeChain(_ tokens: [String]) -> [String] {
        var out = [String]()
        var pending = [UInt8]()
        func flush() {
            guard !pending.isEmpty else { return }
            if let s = strictUTF8(pending) {
                out.append(s)
            } else {
                out += Array(repeating: "\u{FFFD}", count: pending.count)
            }
            pending.removeAll()
        }
        for t in tokens {
            let u = Array(t.utf8)
            if u.count == 6, u[0] == 0x3C, u[1] == 0x30, u[2] == 0x78, u[5] == 0x3E,
               let b = UInt8(String(decoding: u[3...4], as: UTF8.self), radix: 16) {
                pending.append(b)
            } else {
                flush()
                out.append(t)
            }
        }
        flush()
        return out
    }
}

/// Strict UTF-8 decoding (nil on any invalid sequence, where `String(decoding:)` would repair).
private func strictUTF8(_ bytes: [UInt8]) -> String? {
    var it = bytes.makeIterator()
    var codec = UTF8()
    var v = String.UnicodeScalarView()
    while true {
        switch codec.decode(&it) {
        case .scalarValue(let c): v.append(c)
        case .emptyInput: return String(v)
        case .error: return nil
        }
    }
}

struct FuseDecoder: TokenDecoder {
    func decodeChain(_ tokens: [String]) -> [String] { [tokens.joined()] }
}

/// Removes up to `start` leading and `stop` trailing `content` characters from each token.
struct StripDecoder: TokenDecoder {
    let content: Unicode.Scalar
    let start: Int
    let stop: Int
    func decodeChain(_ tokens: [String]) -> [String] {
        tokens.map { t in
            let s = Array(t.unicodeScalars)
            var lo = 0, hi = s.count
            while lo < min(start, hi) && s[lo] == content { lo += 1 }
            var removed = 0
            while removed < stop && hi > lo && s[hi - 1] == content { hi -= 1; removed += 1 }
            var v = String.UnicodeScalarView()
            v.append(contentsOf: s[lo..<hi])
            return String(v)
        }
    }
}

/// Classic BPE end-of-word suffix → space (last token gets none).
struct BPESuffixDecoder: TokenDecoder {
    let suffix: String
    func decodeChain(_ tokens: [String]) -> [String] {
        tokens.enumerated().map { i, t in
            replacingScalars(t, suffix, i == tokens.count - 1 ? "" : " ")
        }
    }
}

/// Every occurrence of `a` in `s` replaced by `b`, compared scalar by scalar (String's own
/// comparisons work on grapheme clusters, so "##" would not be a prefix of "##िय").
func replacingScalars(_ s: String, _ a: String, _ b: String) -> String {
    let pattern = LiteralPattern(needle: Array(a.unicodeScalars))
    let out = ReplaceNormalizer(pattern: pattern, content: Array(b.unicodeScalars)).normalize(Array(s.unicodeScalars))
    return String(String.UnicodeScalarView(out))
}
