import Foundation

/// Something that finds the delimiter matches of a `Split` pre-tokenizer (or the words of
/// a ByteLevel one) in a run of scalars.
protocol SplitPattern {
    /// Non-overlapping, non-empty matches in `s`, left to right, as scalar index ranges.
    func matches(in s: ArraySlice<Unicode.Scalar>) -> [Range<Int>]
}

/// The regular expressions tokenizer.json files use most, matched by hand-written scanners
/// (exact implementations of the Oniguruma patterns, 10–50× faster than NSRegularExpression).
enum KnownPattern {
    /// GPT-2 / ByteLevel(use_regex: true).
    static let gpt2 = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#
    /// Llama-3 (tiktoken cl100k style): digits in groups of up to three.
    static let llama3 = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    /// Qwen2: as Llama-3 but one digit per match.
    static let qwen2 = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#

    /// A scanner for `regex`: a hand-written one for the known patterns, else NSRegularExpression.
    static func pattern(regex: String, file: String) throws -> SplitPattern {
        switch regex {
        case gpt2: return GPT2Scanner()
        case llama3: return Llama3Scanner(maxDigits: 3)
        case qwen2: return Llama3Scanner(maxDigits: 1)
        default: return try RegexPattern(regex, file: file)
        }
    }
}

/// End of the run of scalars satisfying `pred` that starts at `i`.
@inline(__always)
private func runEnd(_ s: ArraySlice<Unicode.Scalar>, from i: Int, _ pred: (Unicode.Scalar) -> Bool) -> Int {
    var j = i
    while j < s.endIndex && pred(s[j]) { j += 1 }
    return j
}

@inline(__always)
private func isOther(_ c: Unicode.Scalar) -> Bool {
    ScalarClass.of(c) & (ScalarClass.letter | ScalarClass.number | ScalarClass.space) == 0
}

/// Length of a contraction (`'s 't 're 've 'm 'll 'd`) at `i`, 0 if none; `caseless` for `(?i:…)`
/// (Unicode case folding also lets ſ, U+017F, stand for s).
@inline(__always)
private func contraction(_ s: ArraySlice<Unicode.Scalar>, _ i: Int, caseless: Bool) -> Int {
    guard s[i] == "'", i + 1 < s.endIndex else { return 0 }
    func fold(_ c: Unicode.Scalar) -> UInt32 {
        guard caseless else { return c.value }
        if c.value == 0x17F { return 0x73 }
        return (0x41...0x5A).contains(c.value) ? c.value | 0x20 : c.value
    }
    let a = fold(s[i + 1])
    switch a {
    case 0x73, 0x74, 0x6D, 0x64: return 2                      // 's 't 'm 'd
    case 0x72, 0x76, 0x6C:                                     // 're 've 'll
        guard i + 2 < s.endIndex else { return 0 }
        let b = fold(s[i + 2])
        if (a == 0x72 || a == 0x76) && b == 0x65 { return 3 }
        if a == 0x6C && b == 0x6C { return 3 }
        return 0
    default: return 0
    }
}

/// `\s+(?!\S)|\s+` at `i` (a whitespace scalar): the whole run if it ends the text, else the
/// run less its last scalar (which then leads the next word), unless that leaves nothing.
@inline(__always)
private func whitespaceMatch(_ s: ArraySlice<Unicode.Scalar>, _ i: Int) -> Int {
    let j = runEnd(s, from: i, ScalarClass.isSpace)
    if j == s.endIndex || j - 1 == i { return j }
    return j - 1
}

/// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
struct GPT2Scanner: SplitPattern {
    func matches(in s: ArraySlice<Unicode.Scalar>) -> [Range<Int>] {
        var out = [Range<Int>]()
        out.reserveCapacity(s.count / 4 + 1)
        var i = s.startIndex
        while i < s.endIndex {
            let end = matchEnd(s, i)
            out.append(i..<end)
            i = end
        }
        return out
    }

    @inline(__always)
    func matchEnd(_ s: ArraySlice<Unicode.Scalar>, _ i: Int) -> Int {
        let c = s[i]
        let k = contraction(s, i, caseless: false)
        if k > 0 { return i + k }
        // ` ?X+` for X in letter / number / other: the optional space then a run of one class.
        var start = i
        if c == " ", i + 1 < s.endIndex { start = i + 1 }
        let lead = s[start]
        if start == i + 1 || c != " " {
            let bits = ScalarClass.of(lead)
            if bits & ScalarClass.letter != 0 { return runEnd(s, from: start, ScalarClass.isLetter) }
            if bits & ScalarClass.number != 0 { return runEnd(s, from: start, ScalarClass.isNumber) }
            if bits & ScalarClass.space == 0 { return runEnd(s, from: start, isOther) }
        }
        if ScalarClass.isSpace(c) { return whitespaceMatch(s, i) }
        // Unreachable for well-formed classes; advance one scalar to guarantee progress.
        return i + 1
    }
}

/// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,max}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
struct Llama3Scanner: SplitPattern {
    /// 3 for Llama-3 (`\p{N}{1,3}`), 1 for Qwen2 (`\p{N}`).
    let maxDigits: Int

    func matches(in s: ArraySlice<Unicode.Scalar>) -> [Range<Int>] {
        var out = [Range<Int>]()
        out.reserveCapacity(s.count / 4 + 1)
        var i = s.startIndex
        while i < s.endIndex {
            let end = matchEnd(s, i)
            out.append(i..<end)
            i = end
        }
        return out
    }

    @inline(__always)
    private func isNewline(_ c: Unicode.Scalar) -> Bool { c == "\r" || c == "\n" }

    @inline(__always)
    func matchEnd(_ s: ArraySlice<Unicode.Scalar>, _ i: Int) -> Int {
        let c = s[i]
        let k = contraction(s, i, caseless: true)
        if k > 0 { return i + k }
        let bits = ScalarClass.of(c)
        // [^\r\n\p{L}\p{N}]?\p{L}+
        if bits & ScalarClass.letter != 0 { return runEnd(s, from: i, ScalarClass.isLetter) }
        if bits & ScalarClass.number == 0, !isNewline(c), i + 1 < s.endIndex, ScalarClass.isLetter(s[i + 1]) {
            return runEnd(s, from: i + 1, ScalarClass.isLetter)
        }
        // \p{N}{1,max}
        if bits & ScalarClass.number != 0 {
            var j = i + 1
            while j < s.endIndex && j - i < maxDigits && ScalarClass.isNumber(s[j]) { j += 1 }
            return j
        }
        //  ?[^\s\p{L}\p{N}]+[\r\n]*
        var start = i
        if c == " ", i + 1 < s.endIndex, isOther(s[i + 1]) { start = i + 1 }
        if isOther(s[start]) {
            let j = runEnd(s, from: start, isOther)
            return runEnd(s, from: j, isNewline)
        }
        // \s*[\r\n]+ : up to the last newline of the whitespace run.
        let j = runEnd(s, from: i, ScalarClass.isSpace)
        var last = j - 1
        while last >= i && !isNewline(s[last]) { last -= 1 }
        if last >= i { return last + 1 }
        // \s+(?!\S)|\s+
        if bits & ScalarClass.space != 0 { return whitespaceMatch(s, i) }
        return i + 1
    }
}

/// Any other pattern, through NSRegularExpression (ICU syntax, close to Oniguruma's for the
/// constructs tokenizer.json files use).
struct RegexPattern: SplitPattern {
    let regex: NSRegularExpression

    init(_ pattern: String, file: String) throws {
        do {
            regex = try NSRegularExpression(pattern: pattern)
        } catch {
            throw InputError(file, "cannot compile split pattern \(pattern.debugDescription)")
        }
    }

    func matches(in s: ArraySlice<Unicode.Scalar>) -> [Range<Int>] {
        var text = String.UnicodeScalarView()
        text.append(contentsOf: s)
        let string = String(text)
        // UTF-16 offset → scalar index.
        var u16ToScalar = [Int]()
        u16ToScalar.reserveCapacity(s.count * 2 + 1)
        for (k, c) in s.enumerated() {
            u16ToScalar.append(s.startIndex + k)
            if c.value > 0xFFFF { u16ToScalar.append(s.startIndex + k) }
        }
        u16ToScalar.append(s.endIndex)
        let ns = string as NSString
        var out = [Range<Int>]()
        for m in regex.matches(in: string, range: NSRange(location: 0, length: ns.length)) {
            let r = m.range
            guard r.length > 0, r.location + r.length < u16ToScalar.count else { continue }
            out.append(u16ToScalar[r.location]..<u16ToScalar[r.location + r.length])
        }
        return out
    }
}

/// A literal delimiter (`{"String": "..."}` in tokenizer.json).
struct LiteralPattern: SplitPattern {
    let needle: [Unicode.Scalar]

    func matches(in s: ArraySlice<Unicode.Scalar>) -> [Range<Int>] {
        guard !needle.isEmpty, s.count >= needle.count else { return [] }
        var out = [Range<Int>]()
        var i = s.startIndex
        let first = needle[0]
        while i + needle.count <= s.endIndex {
            if s[i] == first && s[i..<(i + needle.count)].elementsEqual(needle) {
                out.append(i..<(i + needle.count))
                i += needle.count
            } else {
                i += 1
            }
        }
        return out
    }
}
