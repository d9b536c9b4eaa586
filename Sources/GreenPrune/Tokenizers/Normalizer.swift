import Foundation

/// A tokenizer.json `normalizer`: rewrites text before pre-tokenization (lower-casing,
/// Unicode normalization, BERT's cleaning, SentencePiece's space → ▁ replacement).
public protocol Normalizer {
    func normalize(_ s: [Unicode.Scalar]) -> [Unicode.Scalar]
}

/// The normalizer `"type"` strings GreenPrune implements.
public enum NormalizerType: String, CaseIterable {
    case sequence = "Sequence"
    case bert = "BertNormalizer"
    case lowercase = "Lowercase"
    case nfd = "NFD", nfc = "NFC", nfkd = "NFKD", nfkc = "NFKC"
    case stripAccents = "StripAccents"
    case strip = "Strip"
    case replace = "Replace"
    case prepend = "Prepend"
}

/// Builds the normalizer described by `node` (nil for JSON null); unknown types throw.
public func makeNormalizer(_ node: JSONField?) throws -> Normalizer? {
    guard let node, !node.isNull else { return nil }
    let name = try node.type()
    guard let type = NormalizerType(rawValue: name) else { throw unsupported("normalizer", name, node) }
    switch type {
    case .sequence:
        let parts = try node.required("normalizers").array().compactMap { try makeNormalizer($0) }
        return SequenceNormalizer(parts: parts)
    case .bert:
        let lowercase = try node.bool("lowercase", default: true)
        return BertNormalizer(cleanText: try node.bool("clean_text", default: true),
                              handleChineseChars: try node.bool("handle_chinese_chars", default: true),
                              stripAccents: try node.field("strip_accents")?.bool() ?? lowercase,
                              lowercase: lowercase)
    case .lowercase: return LowercaseNormalizer()
    case .nfd: return UnicodeNormalizer(form: .nfd)
    case .nfc: return UnicodeNormalizer(form: .nfc)
    case .nfkd: return UnicodeNormalizer(form: .nfkd)
    case .nfkc: return UnicodeNormalizer(form: .nfkc)
    case .stripAccents: return StripAccentsNormalizer()
    case .strip:
        return StripNormalizer(left: try node.bool("strip_left", default: true),
                               right: try node.bool("strip_right", default: true))
    case .replace:
        return ReplaceNormalizer(pattern: try node.required("pattern").pattern(),
                                 content: Array(try node.string("content").unicodeScalars))
    case .prepend:
        return PrependNormalizer(prefix: Array(try node.string("prepend").unicodeScalars))
    }
}

struct SequenceNormalizer: Normalizer {
    let parts: [Normalizer]
    func normalize(_ s: [Unicode.Scalar]) -> [Unicode.Scalar] {
        parts.reduce(s) { $1.normalize($0) }
    }
}

/// Per-scalar lower-casing (Rust `char::to_lowercase`: full mappings, no context rules).
func lowercaseScalars(_ s: [Unicode.Scalar]) -> [Unicode.Scalar] {
    var out = [Unicode.Scalar]()
    out.reserveCapacity(s.count)
    for c in s {
        if c.value < 0x80 {
            out.append((0x41...0x5A).contains(c.value) ? Unicode.Scalar(UInt8(c.value | 0x20)) : c)
        } else {
            out.append(contentsOf: c.properties.lowercaseMapping.unicodeScalars)
        }
    }
    return out
}

/// NFD/NFC/NFKD/NFKC through Foundation (pure ASCII is left as it is: every form keeps it).
struct UnicodeNormalizer: Normalizer {
    enum Form { case nfd, nfc, nfkd, nfkc }
    let form: Form

    static func apply(_ form: Form, _ s: [Unicode.Scalar]) -> [Unicode.Scalar] {
        if s.allSatisfy({ $0.value < 0x80 }) { return s }
        var view = String.UnicodeScalarView()
        view.append(contentsOf: s)
        let str = String(view)
        let out: String
        switch form {
        case .nfd: out = str.decomposedStringWithCanonicalMapping
        case .nfc: out = str.precomposedStringWithCanonicalMapping
        case .nfkd: out = str.decomposedStringWithCompatibilityMapping
        case .nfkc: out = str.precomposedStringWithCompatibilityMapping
        }
        return Array(out.unicodeScalars)
    }

    func normalize(_ s: [Unicode.Scalar]) -> [Unicode.Scalar] { Self.apply(form, s) }
}

struct LowercaseNormalizer: Normalizer {
    func normalize(_ s: [Unicode.Scalar]) -> [Unicode.Scalar] { lowercaseScalars(s) }
}

/// Drops non-spacing marks (Mn), what is left of accents after NFD.
struct StripAccentsNormalizer: Normalizer {
    func normalize(_ s: [Unicode.Scalar]) -> [Unicode.Scalar] {
        s.filter { ScalarClass.of($0) & ScalarClass.nonspacingMark == 0 }
    }
}

/// Trims White_Space at either end.
struct StripNormalizer: Normalizer {
    let left: Bool, right: Bool
    func normalize(_ s: [Unicode.Scalar]) -> [Unicode.Scalar] {
        var lo = 0, hi = s.count
        if left { while lo < hi && ScalarClass.isSpace(s[lo]) { lo += 1 } }
        if right { while hi > lo && ScalarClass.isSpace(s[hi - 1]) { hi -= 1 } }
        return Array(s[lo..<hi])
    }
}

/// Replaces every match of a literal or regex with `content` (SentencePiece's " " → "▁").
struct ReplaceNormalizer: Normalizer {
    let pattern: SplitPattern
    let content: [Unicode.Scalar]
    func normalize(_ s: [Unicode.Scalar]) -> [Unicode.Scalar] {
        let matches = pattern.matches(in: s[...])
        if matches.isEmpty { return s }
        var out = [Unicode.Scalar]()
        out.reserveCapacity(s.count + matches.count * content.count)
        var last = 0
        for m in matches {
            out.append(contentsOf: s[last..<m.lowerBound])
            out.append(contentsOf: content)
            last = m.upperBound
        }
        out.append(contentsOf: s[last...])
        return out
    }
}

/// Prepends a string to non-empty text (SentencePiece's leading ▁).
struct PrependNormalizer: Normalizer {
    let prefix: [Unicode.Scalar]
    func normalize(_ s: [Unicode.Scalar]) -> [Unicode.Scalar] { s.isEmpty ? s : prefix + s }
}

/// BERT's normalizer, in Hugging Face's order: clean text (drop NUL, U+FFFD and control
/// characters, map whitespace to a space), pad CJK ideographs with spaces, strip accents
/// (NFD then drop Mn; defaults to `lowercase`), lower-case.
struct BertNormalizer: Normalizer {
    let cleanText: Bool
    let handleChineseChars: Bool
    let stripAccents: Bool
    let lowercase: Bool

    func normalize(_ input: [Unicode.Scalar]) -> [Unicode.Scalar] {
        var s = input
        if cleanText || handleChineseChars {
            var out = [Unicode.Scalar]()
            out.reserveCapacity(s.count)
            for c in s {
                if cleanText {
                    if c.value == 0 || c.value == 0xFFFD || ScalarClass.isBertControl(c) { continue }
                    if c == "\t" || c == "\n" || c == "\r" || ScalarClass.isSpace(c) { out.append(" "); continue }
                }
                if handleChineseChars && ScalarClass.isCJK(c) {
                    out.append(" "); out.append(c); out.append(" ")
                } else {
                    out.append(c)
                }
            }
            s = out
        }
        if stripAccents {
            s = UnicodeNormalizer.apply(.nfd, s).filter { ScalarClass.of($0) & ScalarClass.nonspacingMark == 0 }
        }
        if lowercase { s = lowercaseScalars(s) }
        return s
    }
}
