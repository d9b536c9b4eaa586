/// A piece of text the pre-tokenizers cut and the model then tokenizes on its own.
public struct TextPiece {
    public var scalars: [Unicode.Scalar]
    /// Whether the piece starts at offset 0 of the original text (Metaspace's "first" scheme).
    public var atOrigin: Bool

    public init(_ scalars: [Unicode.Scalar], atOrigin: Bool) {
        self.scalars = scalars
        self.atOrigin = atOrigin
    }
}

/// A tokenizer.json `pre_tokenizer`: cuts normalized text into the pieces ("words") the model
/// tokenizes independently, and may rewrite them (ByteLevel's byte → scalar map, Metaspace's ▁).
public protocol PreTokenizer {
    func preTokenize(_ pieces: [TextPiece]) -> [TextPiece]
    /// The pieces of one input piece, handed to `emit` in order as they are made: the same
    /// pieces `preTokenize([piece])` returns, without holding them all (a whole corpus makes
    /// hundreds of thousands).
    func preTokenize(_ piece: TextPiece, emit: (TextPiece) throws -> Void) rethrows
}

extension PreTokenizer {
    public func preTokenize(_ piece: TextPiece, emit: (TextPiece) throws -> Void) rethrows {
        for p in preTokenize([piece]) { try emit(p) }
    }
}

/// The pre-tokenizer `"type"` strings GreenPrune implements.
public enum PreTokenizerType: String, CaseIterable {
    case sequence = "Sequence"
    case byteLevel = "ByteLevel"
    case split = "Split"
    case digits = "Digits"
    case whitespace = "Whitespace"
    case whitespaceSplit = "WhitespaceSplit"
    case bert = "BertPreTokenizer"
    case punctuation = "Punctuation"
    case metaspace = "Metaspace"
    case charDelimiterSplit = "CharDelimiterSplit"
}

/// What a split does with the delimiters it finds (Hugging Face `SplitDelimiterBehavior`).
public enum SplitBehavior: String {
    case removed = "Removed"
    case isolated = "Isolated"
    case mergedWithPrevious = "MergedWithPrevious"
    case mergedWithNext = "MergedWithNext"
    case contiguous = "Contiguous"

    static func parse(_ node: JSONField?, default d: SplitBehavior) throws -> SplitBehavior {
        guard let node else { return d }
        let s = try node.string()
        guard let b = SplitBehavior(rawValue: s) else { throw node.error("unknown split behavior '\(s)'") }
        return b
    }
}

/// Builds the pre-tokenizer described by `node` (nil for JSON null); unknown types throw.
public func makePreTokenizer(_ node: JSONField?) throws -> PreTokenizer? {
    guard let node, !node.isNull else { return nil }
    let name = try node.type()
    guard let type = PreTokenizerType(rawValue: name) else { throw unsupported("pre_tokenizer", name, node) }
    switch type {
    case .sequence:
        return SequencePreTokenizer(parts: try node.required("pretokenizers").array().compactMap { try makePreTokenizer($0) })
    case .byteLevel:
        return ByteLevelPreTokenizer(addPrefixSpace: try node.bool("add_prefix_space", default: true),
                                     useRegex: try node.bool("use_regex", default: true))
    case .split:
        return SplitPreTokenizer(pattern: try node.required("pattern").pattern(),
                                 behavior: try SplitBehavior.parse(node.field("behavior"), default: .isolated),
                                 invert: try node.bool("invert", default: false))
    case .digits:
        return DigitsPreTokenizer(individual: try node.bool("individual_digits", default: false))
    case .whitespace: return WhitespacePreTokenizer()
    case .whitespaceSplit: return PredicateSplit(behavior: .removed, predicate: ScalarClass.isSpace)
    case .bert: return BertPreTokenizer()
    case .punctuation:
        return PredicateSplit(behavior: try SplitBehavior.parse(node.field("behavior"), default: .isolated),
                              predicate: ScalarClass.isBertPunctuation)
    case .metaspace:
        let rep = Array(try node.optionalString("replacement")?.unicodeScalars ?? "▁".unicodeScalars)
        guard rep.count == 1 else { throw node.error("replacement must be one character") }
        let scheme: MetaspacePreTokenizer.Prepend
        if let s = try node.optionalString("prepend_scheme") {
            guard let p = MetaspacePreTokenizer.Prepend(rawValue: s) else { throw node.error("unknown prepend_scheme '\(s)'") }
            scheme = p
        } else {
            scheme = try node.bool("add_prefix_space", default: true) ? .always : .never
        }
        return MetaspacePreTokenizer(replacement: rep[0], prepend: scheme, split: try node.bool("split", default: true))
    case .charDelimiterSplit:
        let d = Array(try node.string("delimiter").unicodeScalars)
        guard d.count == 1 else { throw node.error("delimiter must be one character") }
        let c = d[0]
        return PredicateSplit(behavior: .removed, predicate: { $0 == c })
    }
}

/// Cuts `piece` at `matches` (sorted, non-overlapping ranges) as `behavior` says; empty
/// pieces are dropped. Follows `NormalizedString::split` in Hugging Face tokenizers.
func splitPiece(_ piece: TextPiece, at matches: [Range<Int>], behavior: SplitBehavior, invert: Bool = false,
           into out: inout [TextPiece]) {
    let s = piece.scalars
    // The whole piece as alternating (range, isMatch) segments.
    var segs = [(Range<Int>, Bool)]()
    segs.reserveCapacity(matches.count * 2 + 1)
    var last = 0
    for m in matches {
        if m.lowerBound > last { segs.append((last..<m.lowerBound, invert)) }
        segs.append((m, !invert))
        last = m.upperBound
    }
    if last < s.count { segs.append((last..<s.count, invert)) }

    var kept = [Range<Int>]()
    kept.reserveCapacity(segs.count)
    switch behavior {
    case .removed:
        kept = segs.filter { !$0.1 }.map { $0.0 }
    case .isolated:
        kept = segs.map { $0.0 }
    case .mergedWithPrevious:
        var prevMatch = false
        for (r, isMatch) in segs {
            if isMatch && !prevMatch, let l = kept.last {
                kept[kept.count - 1] = l.lowerBound..<r.upperBound
            } else {
                kept.append(r)
            }
            prevMatch = isMatch
        }
    case .mergedWithNext:
        var nextMatch = false
        for (r, isMatch) in segs.reversed() {
            if isMatch && !nextMatch, let l = kept.last {
                kept[kept.count - 1] = r.lowerBound..<l.upperBound
            } else {
                kept.append(r)
            }
            nextMatch = isMatch
        }
        kept.reverse()
    case .contiguous:
        var prevMatch = false
        for (r, isMatch) in segs {
            if isMatch == prevMatch, let l = kept.last {
                kept[kept.count - 1] = l.lowerBound..<r.upperBound
            } else {
                kept.append(r)
            }
            prevMatch = isMatch
        }
    }
    for r in kept where !r.isEmpty {
        out.append(TextPiece(Array(s[r]), atOrigin: piece.atOrigin && r.lowerBound == 0))
    }
}

/// Each scalar satisfying `predicate` as a one-scalar match.
func scalarMatches(_ s: [Unicode.Scalar], _ predicate: (Unicode.Scalar) -> Bool) -> [Range<Int>] {
    var out = [Range<Int>]()
    for (i, c) in s.enumerated() where predicate(c) { out.append(i..<(i + 1)) }
    return out
}

struct SequencePreTokenizer: PreTokenizer {
    let parts: [PreTokenizer]
    func preTokenize(_ pieces: [TextPiece]) -> [TextPiece] {
        parts.reduce(pieces) { $1.preTokenize($0) }
    }

    /// Depth first: each stage treats every piece on its own, so a piece can go through all the
    /// later stages before the next one is made.
    func preTokenize(_ piece: TextPiece, emit: (TextPiece) throws -> Void) rethrows {
        try run(piece, from: 0, emit)
    }

    private func run(_ piece: TextPiece, from stage: Int, _ emit: (TextPiece) throws -> Void) rethrows {
        guard stage < parts.count else { return try emit(piece) }
        try parts[stage].preTokenize(piece) { try run($0, from: stage + 1, emit) }
    }
}

/// GPT-2's byte-level stage: optional leading space, the GPT-2 regex split, then every UTF-8
/// byte replaced by its printable stand-in scalar.
struct ByteLevelPreTokenizer: PreTokenizer {
    let addPrefixSpace: Bool
    let useRegex: Bool

    func preTokenize(_ pieces: [TextPiece]) -> [TextPiece] {
        var out = [TextPiece]()
        out.reserveCapacity(pieces.count * 4)
        for p in pieces { preTokenize(p) { out.append($0) } }
        return out
    }

    func preTokenize(_ piece: TextPiece, emit: (TextPiece) throws -> Void) rethrows {
        var p = piece
        if addPrefixSpace && p.scalars.first != " " { p.scalars.insert(" ", at: 0) }
        if useRegex {
            let s = p.scalars[...], scanner = GPT2Scanner()
            var i = s.startIndex
            while i < s.endIndex {
                let end = scanner.matchEnd(s, i)
                try emit(TextPiece(Self.mapBytes(s[i ..< end]), atOrigin: p.atOrigin && i == 0))
                i = end
            }
        } else if !p.scalars.isEmpty {
            try emit(TextPiece(Self.mapBytes(p.scalars[...]), atOrigin: p.atOrigin))
        }
    }

    /// UTF-8 bytes of `s`, each as its GPT-2 stand-in scalar.
    static func mapBytes(_ s: ArraySlice<Unicode.Scalar>) -> [Unicode.Scalar] {
        let table = ByteLevelTable.byteToScalar
        var out = [Unicode.Scalar]()
        out.reserveCapacity(s.count)
        for c in s {
            if c.value < 0x80 {
                out.append(table[Int(c.value)])
            } else {
                if let bytes = UTF8.encode(c) { for b in bytes { out.append(table[Int(b)]) } }
            }
        }
        return out
    }
}

/// A `Split` with a literal or regex pattern.
struct SplitPreTokenizer: PreTokenizer {
    let pattern: SplitPattern
    let behavior: SplitBehavior
    let invert: Bool

    func preTokenize(_ pieces: [TextPiece]) -> [TextPiece] {
        var out = [TextPiece]()
        for p in pieces {
            splitPiece(p, at: pattern.matches(in: p.scalars[...]), behavior: behavior, invert: invert, into: &out)
        }
        return out
    }
}

/// Splits where `predicate` holds (WhitespaceSplit, Punctuation, CharDelimiterSplit).
struct PredicateSplit: PreTokenizer {
    let behavior: SplitBehavior
    let predicate: (Unicode.Scalar) -> Bool

    func preTokenize(_ pieces: [TextPiece]) -> [TextPiece] {
        var out = [TextPiece]()
        for p in pieces { splitPiece(p, at: scalarMatches(p.scalars, predicate), behavior: behavior, into: &out) }
        return out
    }
}

/// Digits isolated from the rest, one per piece or in runs.
struct DigitsPreTokenizer: PreTokenizer {
    let individual: Bool
    func preTokenize(_ pieces: [TextPiece]) -> [TextPiece] {
        var out = [TextPiece]()
        out.reserveCapacity(pieces.count)
        for p in pieces {
            let m = scalarMatches(p.scalars, ScalarClass.isNumber)
            if m.isEmpty { out.append(p); continue }
            splitPiece(p, at: m, behavior: individual ? .isolated : .contiguous, into: &out)
        }
        return out
    }
}

/// `\w+|[^\w\s]+` (Oniguruma classes): words and runs of punctuation, whitespace dropped.
struct WhitespacePreTokenizer: PreTokenizer {
    func preTokenize(_ pieces: [TextPiece]) -> [TextPiece] {
        var out = [TextPiece]()
        for p in pieces {
            let s = p.scalars
            var m = [Range<Int>]()
            var i = 0
            while i < s.count {
                if ScalarClass.isWord(s[i]) {
                    var j = i + 1
                    while j < s.count && ScalarClass.isWord(s[j]) { j += 1 }
                    m.append(i..<j); i = j
                } else if !ScalarClass.isSpace(s[i]) {
                    var j = i + 1
                    while j < s.count && !ScalarClass.isWord(s[j]) && !ScalarClass.isSpace(s[j]) { j += 1 }
                    m.append(i..<j); i = j
                } else {
                    i += 1
                }
            }
            splitPiece(p, at: m, behavior: .removed, invert: true, into: &out)
        }
        return out
    }
}

/// BERT's basic tokenizer: split on whitespace (dropped), then isolate each punctuation mark.
struct BertPreTokenizer: PreTokenizer {
    func preTokenize(_ pieces: [TextPiece]) -> [TextPiece] {
        var words = [TextPiece]()
        for p in pieces { splitPiece(p, at: scalarMatches(p.scalars, ScalarClass.isSpace), behavior: .removed, into: &words) }
        var out = [TextPiece]()
        out.reserveCapacity(words.count)
        for w in words {
            let m = scalarMatches(w.scalars, ScalarClass.isBertPunctuation)
            if m.isEmpty { out.append(w) } else { splitPiece(w, at: m, behavior: .isolated, into: &out) }
        }
        return out
    }
}

/// SentencePiece's whitespace handling: spaces become ▁, a ▁ is prepended (always, only at the
/// start of the text, or never), and the text is cut before each ▁ when `split`.
struct MetaspacePreTokenizer: PreTokenizer {
    enum Prepend: String { case always, first, never }
    let replacement: Unicode.Scalar
    let prepend: Prepend
    let split: Bool

    func preTokenize(_ pieces: [TextPiece]) -> [TextPiece] {
        var out = [TextPiece]()
        for var p in pieces {
            for i in p.scalars.indices where p.scalars[i] == " " { p.scalars[i] = replacement }
            let add: Bool
            switch prepend {
            case .always: add = true
            case .first: add = p.atOrigin
            case .never: add = false
            }
            if add && p.scalars.first != replacement { p.scalars.insert(replacement, at: 0) }
            if split {
                let r = replacement
                splitPiece(p, at: scalarMatches(p.scalars, { $0 == r }), behavior: .mergedWithNext, into: &out)
            } else if !p.scalars.isEmpty {
                out.append(p)
            }
        }
        return out
    }
}
