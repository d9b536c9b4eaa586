import ArgumentParser
import Foundation
import GreenPrune

/// `greenprune score DIR --text T | --file F [--json]`: log-likelihood of each text under a
/// decoder, the first token unscored (it has no context), as in the reference files.
struct Score: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Log-likelihood and perplexity of texts under a causal language model.",
        discussion: """
            Each text is tokenized with the model's tokenizer.json (special tokens as the tokenizer \
            adds them); ln p(token t | tokens < t) is summed over t = 1..n-1; perplexity = \
            exp(-mean). With --file, every non-empty line is one text.
            """)

    @Argument(help: "Model directory of a decoder (config.json, model.safetensors, tokenizer.json).")
    var model: String

    @Option(help: "A text to score (repeatable).")
    var text: [String] = []

    @Option(help: "A UTF-8 file: each non-empty line is scored as one text.")
    var file: String?

    @Flag(help: "Print one JSON object per text (JSON lines).")
    var json = false

    func validate() throws {
        if text.isEmpty && file == nil { throw ValidationError("give --text or --file") }
    }

    func run() throws {
        var texts = text
        if let file {
            guard let data = FileManager.default.contents(atPath: file) else { throw InputError(file, "cannot read") }
            guard let s = String(data: data, encoding: .utf8) else { throw InputError(file, "not UTF-8 text") }
            texts += s.split(whereSeparator: \.isNewline).map(String.init).filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }
        }
        let bundle = try ModelLoader.load(URL(fileURLWithPath: model))
        let lm = try bundle.decoder()
        let tok = try bundle.requireTokenizer()
        var ids: [[Int]] = []
        for (i, t) in texts.enumerated() {
            let e = try tok.encode(t, addSpecialTokens: true)
            guard !e.isEmpty else { throw InputError("text \(i + 1)", "tokenizes to no tokens") }
            guard e.count <= lm.maxLength else {
                throw InputError("text \(i + 1)", "\(e.count) tokens exceed the model's \(lm.maxLength) positions")
            }
            ids.append(e)
        }
        // Single-token texts have nothing to score; the rest go through the batched scorer.
        let scorable = ids.indices.filter { ids[$0].count > 1 }
        let results = try lm.score(scorable.map { ScoreRequest(tokens: ids[$0], scoreFrom: 1) })
        var byText = [Int: ScoreResult]()
        for (k, i) in scorable.enumerated() { byText[i] = results[k] }
        for (i, t) in texts.enumerated() {
            let r = byText[i] ?? ScoreResult(logprobs: [], greedy: [])
            let n = r.logprobs.count
            let sum = r.sum
            let mean: Double? = n > 0 ? sum / Double(n) : nil
            let ppl: Double? = mean.map { Foundation.exp(-$0) }
            if json {
                var obj: [String: Any] = ["text": t, "ids": ids[i], "n_tokens": ids[i].count, "n_scored": n,
                                          "sum_loglik": sum, "token_logprobs": r.logprobs.map(Double.init)]
                obj["mean_loglik"] = mean ?? NSNull()
                obj["perplexity"] = ppl ?? NSNull()
                let data = try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys, .withoutEscapingSlashes])
                print(String(decoding: data, as: UTF8.self))
            } else {
                print("text \(i + 1): \(t)")
                print("  ids (\(ids[i].count)): \(ids[i].map(String.init).joined(separator: " "))")
                if let mean, let ppl {
                    print(String(format: "  scored %d tokens: sum loglik %.4f, mean %.4f, perplexity %.3f", n, sum, mean, ppl))
                } else {
                    print("  scored 0 tokens (the first token has no context)")
                }
            }
        }
    }
}
