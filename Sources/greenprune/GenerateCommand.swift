import ArgumentParser
import Foundation
import GreenPrune

/// `greenprune generate DIR --prompt P --max-tokens N`: greedy decoding with a KV cache.
struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Greedy continuation of a prompt (a KV cache; stops at the end-of-sequence token).")

    @Argument(help: "Model directory of a decoder.")
    var model: String

    @Option(help: "The prompt text (tokenized as is; no chat template).")
    var prompt: String

    @Option(help: "Most new tokens to generate.")
    var maxTokens = 32

    @Flag(help: "Print only the continuation, not the prompt.")
    var continuationOnly = false

    func validate() throws {
        guard maxTokens >= 1 else { throw ValidationError("--max-tokens must be at least 1") }
    }

    func run() throws {
        let bundle = try ModelLoader.load(URL(fileURLWithPath: model))
        let lm = try bundle.decoder()
        let tok = try bundle.requireTokenizer()
        let ids = try tok.encode(prompt, addSpecialTokens: true)
        guard !ids.isEmpty else { throw InputError("--prompt", "tokenizes to no tokens") }
        var stops = Set(lm.eosTokenIds)
        if let e = tok.eosTokenId { stops.insert(e) }
        let start = Date()
        let out = try lm.generate(prompt: ids, maxTokens: maxTokens, stop: stops)
        let seconds = Date().timeIntervalSince(start)
        let text = tok.decode(out, skipSpecialTokens: true)
        print(continuationOnly ? text : prompt + text)
        FileHandle.standardError.write(Data(String(format: "%ld prompt tokens, %ld new tokens in %.2f s\n", ids.count, out.count, seconds).utf8))
    }
}
