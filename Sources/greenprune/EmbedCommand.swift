import ArgumentParser
import Foundation
import GreenPrune

/// `greenprune embed DIR --text T [--json]`: sentence-transformers embeddings (mean pooling
/// over the non-padding tokens, then L2 normalisation) from a BERT or MPNet encoder.
struct Embed: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "L2-normalised mean-pooled sentence embeddings from a BERT or MPNet encoder.")

    @Argument(help: "Model directory of an encoder (config.json, model.safetensors, tokenizer.json).")
    var model: String

    @Option(help: "A text to embed (repeatable).")
    var text: [String] = []

    @Flag(help: "Print one JSON object per text (JSON lines).")
    var json = false

    func validate() throws {
        if text.isEmpty { throw ValidationError("give at least one --text") }
    }

    func run() throws {
        let bundle = try ModelLoader.load(URL(fileURLWithPath: model))
        let enc = try bundle.bert()
        let tok = try bundle.requireTokenizer()
        let ids = try text.map { try tok.encode($0, addSpecialTokens: true) }
        let vectors = try enc.embed(ids: ids)
        for (i, t) in text.enumerated() {
            if json {
                let obj: [String: Any] = ["text": t, "ids": ids[i], "dimension": vectors[i].count,
                                          "embedding": vectors[i].map(Double.init)]
                let data = try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys, .withoutEscapingSlashes])
                print(String(decoding: data, as: UTF8.self))
            } else {
                print("text \(i + 1): \(t)")
                print("  \(ids[i].count) tokens, \(vectors[i].count) dimensions:")
                print("  " + vectors[i].map { String(format: "%.6f", $0) }.joined(separator: " "))
            }
        }
    }
}
