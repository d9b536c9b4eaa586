import ArgumentParser
import Foundation
import GreenPrune

/// `greenprune-bench eval [DIR] [--limit 300] [--chunked-limit N]`: the evaluation engine's speed
/// against an lm-eval-like baseline measured in the same run.
struct EvalBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Time hellaswag and wikitext2_chunked through the engine and through a per-request baseline.",
        discussion: """
            Loads the model once, then runs: hellaswag on the first --limit documents through the \
            engine (length-sorted batches, shared-context KV reuse); the same documents through the \
            plain per-request path (one sequence per call, no KV reuse: how lm-eval's Hugging Face \
            backend runs at batch size 1, though it still skips the output layer where nothing is \
            scored); and wikitext2_chunked. Prints tokens/s and documents/s for each, the \
            speed-up, and the time lm-eval would need at --lm-eval-tokens-per-second.
            """)

    @Argument(help: "Decoder directory (default: ~/.cache/greenprune/models/smollm2-135m).")
    var model: String?

    @Option(help: "HellaSwag documents.")
    var limit: Int = 300

    @Option(help: "wikitext2_chunked windows (default: all).")
    var chunkedLimit: Int?

    @Option(help: "Data folder (default: $GREENPRUNE_DATA, else ../shared/data).")
    var dataDir: String?

    @Option(help: "Token budget of one engine batch.")
    var batchTokens: Int = defaultBatchTokens

    @Option(help: "lm-eval (Hugging Face backend, 2 threads) throughput this machine was measured at.")
    var lmEvalTokensPerSecond: Double = 490

    @Flag(help: "Skip the per-request baseline.")
    var noBaseline = false

    @Flag(help: "Skip wikitext2_chunked.")
    var noChunked = false

    func validate() throws {
        guard limit >= 1 else { throw ValidationError("--limit must be at least 1") }
        guard batchTokens >= 1 else { throw ValidationError("--batch-tokens must be at least 1") }
        guard lmEvalTokensPerSecond > 0 else { throw ValidationError("--lm-eval-tokens-per-second must be positive") }
    }

    func line(_ label: String, _ o: TaskOutcome) -> String {
        String(format: "%-34@ %6d docs %8.1f s %8.2f docs/s %8.1f tokens/s (%d tokens as lm-eval counts them, %d read, %d model calls)",
               label as NSString, o.documents.count, o.wallSeconds, Double(o.documents.count) / o.wallSeconds,
               o.tokensPerSecond, o.requestTokens, o.tokensRead, o.batches.count)
    }

    func run() throws {
        let dir = model.map { URL(fileURLWithPath: $0) } ?? Paths.defaultDecoder
        let llama = try ModelLoader.loadLlama(dir)
        llama.maxBatchTokens = batchTokens   // as evaluate: the scorer's calls are not re-split
        let tokenizer = try TokenizerLoader.load(directory: dir)
        let registry = try TaskRegistry()
        guard case let .language(hellaswag) = try registry.task("hellaswag") else { return }
        let setup = TaskSetup(dataDirectory: Paths.dataDirectory(dataDir), tokenizer: tokenizer)
        FileHandle.standardError.write(Data("OpenBLAS core: \(openBLASCoreName()) (set OPENBLAS_CORETYPE to override)\n".utf8))

        let engine = Evaluator(model: llama, tokenizer: tokenizer, options: ScorerOptions(kvReuse: true, batchTokens: batchTokens))
        let fast = try engine.run(hellaswag, setup: setup, limit: limit)
        print(line("hellaswag (engine, KV reuse)", fast))
        let acc = fast.values["acc"]?.value ?? .nan, accNorm = fast.values["acc_norm"]?.value ?? .nan
        print(String(format: "  acc %.4f  acc_norm %.4f", acc, accNorm))
        let lmEvalSeconds = Double(fast.requestTokens) / lmEvalTokensPerSecond
        print(String(format: "  lm-eval estimate: %d sequences, %d tokens at %.0f tokens/s = %.1f s -> engine %.1fx faster",
                     fast.documents.reduce(0) { $0 + $1.requests.count }, fast.requestTokens, lmEvalTokensPerSecond,
                     lmEvalSeconds, lmEvalSeconds / fast.wallSeconds))
        let batched = Evaluator(model: llama, tokenizer: tokenizer, options: ScorerOptions(kvReuse: false, batchTokens: batchTokens))
        let packed = try batched.run(hellaswag, setup: setup, limit: limit)
        print(line("hellaswag (engine, batched, no KV)", packed))
        if !noBaseline {
            let baseline = Evaluator(model: llama, tokenizer: tokenizer, options: ScorerOptions(kvReuse: false, batchTokens: 1))
            let slow = try baseline.run(hellaswag, setup: setup, limit: limit)
            print(line("hellaswag (per-request baseline)", slow))
            var worst = 0.0
            for (a, b) in zip(fast.answers.joined(), slow.answers.joined()) { worst = max(worst, abs(a.loglikelihood - b.loglikelihood)) }
            print(String(format: "  speed-up over the per-request path in this run: %.2fx with KV reuse, %.2fx batched without (max |Δ ll| between the paths %.2e)",
                         slow.wallSeconds / fast.wallSeconds, slow.wallSeconds / packed.wallSeconds, worst))
        }
        if !noChunked {
            let chunked = try engine.run(ChunkedPerplexityTask(.wikitext2), setup: setup, limit: chunkedLimit)
            print(line("wikitext2_chunked (seq_len 128)", chunked))
            print(String(format: "  perplexity %.4f", chunked.values["perplexity"]?.value ?? .nan))
        }
        print(String(format: "peak RSS %.0f MB", Double(peakResidentBytes()) / 1e6))
    }
}
