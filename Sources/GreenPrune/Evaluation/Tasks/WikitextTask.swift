import Foundation

/// `wikitext` as lm-eval's `wikitext` (document level): `loglikelihood_rolling(detok(page))`
/// per page; word_perplexity, byte_perplexity and bits_per_byte over the original pages.
///
/// Pages: a page starts at each line matching `^ = [^=].* = $` (a top-level heading) and runs,
/// lines with their `\n`, up to the next one; lines before the first heading are dropped.
public struct WikitextTask: EvaluationTask {
    public static let file = "wikitext2/wiki.test.raw"
    public init() {}
    public var name: String { "wikitext" }
    public var version: Double { 2.0 }
    public var metrics: [MetricSpec] {
        [MetricSpec("word_perplexity", .weightedPerplexity, higherIsBetter: false, hasStandardError: false),
         MetricSpec("byte_perplexity", .weightedPerplexity, higherIsBetter: false, hasStandardError: false),
         MetricSpec("bits_per_byte", .bitsPerByte, higherIsBetter: false, hasStandardError: false)]
    }
    /// 62 pages of about 5,200 tokens each.
    public var info: TaskInfo {
        TaskInfo(name: name, metrics: metrics, primaryMetric: "word_perplexity", cost: .tokensPerDocument(5200), documents: 62)
    }
    public var configuration: [String: Any] {
        ["task": name, "dataset_path": Self.file, "output_type": "loglikelihood_rolling",
         "doc_to_text": "", "doc_to_target": "{{wikitext_detokenizer(page)}}", "num_fewshot": 0,
         "metric_list": metrics.map { ["metric": $0.name, "aggregation": $0.aggregation.rawValue, "higher_is_better": $0.higherIsBetter] },
         "metadata": ["version": version]]
    }

    /// Whether `line` (without its `\n`) is a top-level heading: ` = X… = ` with X ≠ `=`.
    public static func isTopHeading(_ line: Substring) -> Bool {
        let s = Array(line.unicodeScalars)
        guard s.count >= 7 else { return false }
        return s[0] == " " && s[1] == "=" && s[2] == " " && s[3] != "="
            && s[s.count - 3] == " " && s[s.count - 2] == "=" && s[s.count - 1] == " "
    }

    /// The pages of a wiki.test.raw text, each line with its `\n`.
    public static func pages(_ text: String) -> [String] {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        if text.hasSuffix("\n") { lines.removeLast() }
        var pages: [String] = []
        var current: String?
        for line in lines {
            if isTopHeading(line) {
                if let c = current { pages.append(c) }
                current = ""
            }
            if current != nil { current! += line + "\n" }
        }
        if let c = current { pages.append(c) }
        return pages
    }

    public func documents(_ setup: TaskSetup) throws -> [TaskDocument] {
        let url = try setup.file(Self.file)
        let pages = Self.pages(try DataFiles.text(url))
        guard !pages.isEmpty else { throw InputError(url.path, "no top-level heading ( = Title = ) found") }
        return pages.enumerated().map { i, page in
            TaskDocument(id: i, requests: [.loglikelihoodRolling(text: WikitextDetokenizer.detokenize(page))],
                         weights: ["words": Double(TextStatistics.pythonSplitCount(page)),
                                   "bytes": Double(page.utf8.count)],
                         fields: ["page": page])
        }
    }

    public func process(_ document: TaskDocument, answers: [Answer]) -> [String: SampleValue] {
        let ll = answers.reduce(0) { $0 + $1.loglikelihood }
        let words = document.weights["words"] ?? 0, bytes = document.weights["bytes"] ?? 0
        return ["word_perplexity": .weighted(loglikelihood: ll, weight: words),
                "byte_perplexity": .weighted(loglikelihood: ll, weight: bytes),
                "bits_per_byte": .weighted(loglikelihood: ll, weight: bytes)]
    }
}

/// lm-eval's `wikitext_detokenizer`: undoes WikiText's tokenisation (` @-@ `, ` , `, spaced
/// brackets and quotes, `= =` headings) so a subword model reads natural text.
public enum WikitextDetokenizer {
    /// The patterns are constants: a nil here is a programming error the tests catch.
    private static func regex(_ p: String) -> NSRegularExpression? {
        try? NSRegularExpression(pattern: p, options: [])
    }
    // Python `re` patterns, same meaning under ICU: lazy groups, `\s`, negated classes that
    // cross newlines.
    private static let slashQuote = regex(#"/' [0-9]/"#)
    private static let parens = regex(#"\(\s*([^\)]*?)\s*\)"#)
    private static let brackets = regex(#"\[\s*([^\]]*?)\s*\]"#)
    private static let braces = regex(#"\{\s*([^}]*?)\s*\}"#)
    private static let doubleQuotes = regex(#""\s*([^"]*?)\s*""#)
    private static let singleQuotes = regex(#"'\s*([^']*?)\s*'"#)

    private static func sub(_ r: NSRegularExpression?, _ template: String, _ s: String) -> String {
        guard let r else { return s }
        return r.stringByReplacingMatches(in: s, options: [], range: NSRange(s.startIndex..., in: s), withTemplate: template)
    }

    public static func detokenize(_ page: String) -> String {
        var s = page
        s = s.replacingOccurrences(of: "s '", with: "s'", options: .literal)
        s = sub(slashQuote, "/'[0-9]/", s)
        s = s.replacingOccurrences(of: " @-@ ", with: "-", options: .literal)
        s = s.replacingOccurrences(of: " @,@ ", with: ",", options: .literal)
        s = s.replacingOccurrences(of: " @.@ ", with: ".", options: .literal)
        s = s.replacingOccurrences(of: " : ", with: ": ", options: .literal)
        s = s.replacingOccurrences(of: " ; ", with: "; ", options: .literal)
        s = s.replacingOccurrences(of: " . ", with: ". ", options: .literal)
        s = s.replacingOccurrences(of: " ! ", with: "! ", options: .literal)
        s = s.replacingOccurrences(of: " ? ", with: "? ", options: .literal)
        s = s.replacingOccurrences(of: " , ", with: ", ", options: .literal)
        s = sub(parens, "($1)", s)
        s = sub(brackets, "[$1]", s)
        s = sub(braces, "{$1}", s)
        s = sub(doubleQuotes, "\"$1\"", s)
        s = sub(singleQuotes, "'$1'", s)
        s = s.replacingOccurrences(of: "= = = =", with: "====", options: .literal)
        s = s.replacingOccurrences(of: "= = =", with: "===", options: .literal)
        s = s.replacingOccurrences(of: "= =", with: "==", options: .literal)
        s = s.replacingOccurrences(of: " \u{B0} ", with: "\u{B0}", options: .literal)
        s = s.replacingOccurrences(of: " \n", with: "\n", options: .literal)
        s = s.replacingOccurrences(of: "\n ", with: "\n", options: .literal)
        s = s.replacingOccurrences(of: " N ", with: " 1 ", options: .literal)
        s = s.replacingOccurrences(of: " 's", with: "'s", options: .literal)
        return s
    }
}
