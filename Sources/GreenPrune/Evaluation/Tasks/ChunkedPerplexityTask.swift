import Foundation

/// `wikitext2_chunked` / `ptb_chunked`: the perplexity pruning papers quote (LLM-Pruner, Wanda,
/// SparseGPT). One string, tokenized once with the tokenizer's default special tokens, cut into
/// non-overlapping windows of `seq_len` tokens (remainder dropped); each window predicts its
/// tokens 1…seq_len−1; perplexity = exp(mean NLL over all predicted tokens).
public struct ChunkedPerplexityTask: EvaluationTask {
    public enum Corpus: String, Sendable {
        /// WikiText-2 test: rows of wiki.test.raw (" " → "", others keep their `\n`) joined by "\n\n".
        case wikitext2
        /// PTB test (papers use validation): each line stripped, joined by "\n\n".
        case ptb
    }
    public let corpus: Corpus
    public init(_ corpus: Corpus) { self.corpus = corpus }

    public var name: String { corpus == .wikitext2 ? "wikitext2_chunked" : "ptb_chunked" }
    public var version: Double { 1.0 }
    public var file: String { corpus == .wikitext2 ? "wikitext2/wiki.test.raw" : "ptb/ptb.test.txt" }
    public var metrics: [MetricSpec] {
        [MetricSpec("perplexity", .weightedPerplexity, higherIsBetter: false, hasStandardError: false)]
    }
    /// Documents are 128-token windows of the default `--seq-len`.
    public var info: TaskInfo {
        TaskInfo(name: name, metrics: metrics, cost: .tokensPerDocument(128), documents: corpus == .wikitext2 ? 2240 : 900)
    }
    public var configuration: [String: Any] {
        ["task": name, "dataset_path": file, "output_type": "loglikelihood_tokens",
         "protocol": "LLM-Pruner: corpus joined with \"\\n\\n\", tokenized once, non-overlapping seq_len windows",
         "split": corpus == .ptb ? "test (papers use validation)" : "test", "num_fewshot": 0,
         "metric_list": metrics.map { ["metric": $0.name, "aggregation": $0.aggregation.rawValue, "higher_is_better": $0.higherIsBetter] },
         "metadata": ["version": version]]
    }

    /// The corpus string built from the file's text, as Hugging Face's loaders give the rows.
    public func corpusText(_ text: String) -> String {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        if text.hasSuffix("\n") { lines.removeLast() }
        switch corpus {
        case .wikitext2: return lines.map { $0 == " " ? "" : $0 + "\n" }.joined(separator: "\n\n")
        case .ptb: return lines.map { TextStatistics.pythonStrip(String($0)) }.joined(separator: "\n\n")
        }
    }

    /// `tokens` cut into windows of `length`, the remainder dropped.
    public static func windows(_ tokens: [Int], length: Int) -> [[Int]] {
        guard length > 0 else { return [] }
        return (0 ..< tokens.count / length).map { Array(tokens[($0 * length) ..< (($0 + 1) * length)]) }
    }

    public func documents(_ setup: TaskSetup) throws -> [TaskDocument] {
        let url = try setup.file(file)
        guard let tokenizer = setup.tokenizer else { throw InputError(name, "needs the model's tokenizer") }
        guard setup.sequenceLength >= 2 else { throw InputError("--seq-len", "must be at least 2, got \(setup.sequenceLength)") }
        let tokens = try tokenizer.encode(corpusText(try DataFiles.text(url)), addSpecialTokens: true)
        let windows = Self.windows(tokens, length: setup.sequenceLength)
        guard !windows.isEmpty else {
            throw InputError(url.path, "only \(tokens.count) tokens: fewer than one window of \(setup.sequenceLength)")
        }
        return windows.enumerated().map { i, w in
            TaskDocument(id: i, requests: [.tokenWindow(tokens: w)], weights: ["tokens": Double(w.count - 1)],
                         fields: ["window": String(i), "first_token": String(i * setup.sequenceLength)])
        }
    }

    public func process(_ document: TaskDocument, answers: [Answer]) -> [String: SampleValue] {
        let ll = answers.reduce(0) { $0 + $1.loglikelihood }
        return ["perplexity": .weighted(loglikelihood: ll, weight: document.weights["tokens"] ?? 0)]
    }
}
