import ArgumentParser
import Foundation
import GreenPrune

/// `greenprune evaluate DIR --tasks a,b [--limit N] [--data-dir D] [--seq-len N] [--max-length N]
/// [--batch-tokens N] [--baseline DIR] --output OUT [--log-samples] [--no-kv-reuse]`.
struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Evaluate a model on lm-eval-compatible tasks, pruning-paper perplexity or encoder metrics.",
        discussion: """
            Decoder tasks: wikitext, wikitext2_chunked, ptb_chunked, lambada_openai and the \
            multiple-choice tasks described in configs/tasks/ (hellaswag, piqa, arc_easy, \
            arc_challenge, boolq, winogrande, openbookqa), and output_drift (needs --baseline: KL \
            divergence, top-1 agreement, logits and hidden-state MSE against the baseline decoder \
            on the wikitext2_chunked windows; it loads and runs the baseline too, so run it in its own \
            call when memory, speed or energy matter, as sweeps do). Encoder tasks: stsb, embedding_drift (needs --baseline). Writes OUT/results.json (lm-eval layout plus a `greenprune` block), \
            OUT/trace.h5 and, with --log-samples, OUT/samples_<task>.jsonl; results.json is written \
            last, so a failed run leaves none. Prints a table on stdout and progress on stderr.
            """)

    @Argument(help: "The model directory (config.json, model.safetensors, tokenizer.json).")
    var model: String

    @Option(help: "Comma-separated task names.")
    var tasks: String

    @Option(help: "Evaluate only the first N documents of each task (windows for the chunked tasks).")
    var limit: Int?

    @Option(help: "Data folder (default: $GREENPRUNE_DATA, else ../shared/data).")
    var dataDir: String?

    @Option(help: "Window length of wikitext2_chunked / ptb_chunked.")
    var seqLen: Int = 128

    @Option(help: "Rolling-window and truncation length (default: the model's max_position_embeddings).")
    var maxLength: Int?

    @Option(help: "Token budget of one plain batch (requests × longest sequence); 1 = one request per call.")
    var batchTokens: Int = defaultBatchTokens

    @Option(help: "Baseline model directory (embedding_drift for encoders, output_drift for decoders).")
    var baseline: String?

    @Option(help: "Output directory.")
    var output: String

    @Flag(help: "Write OUT/samples_<task>.jsonl, one line per document.")
    var logSamples = false

    @Flag(help: "Score every choice as its own sequence (no shared-context KV reuse).")
    var noKvReuse = false

    @Flag(help: "No progress bar on stderr.")
    var quiet = false

    var taskList: [String] {
        tasks.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    func validate() throws {
        guard !taskList.isEmpty else { throw ValidationError("--tasks: give at least one task name") }
        if let l = limit, l < 1 { throw ValidationError("--limit must be at least 1, got \(l)") }
        guard seqLen >= 2 else { throw ValidationError("--seq-len must be at least 2, got \(seqLen)") }
        if let m = maxLength, m < 1 { throw ValidationError("--max-length must be at least 1, got \(m)") }
        guard batchTokens >= 1 else { throw ValidationError("--batch-tokens must be at least 1, got \(batchTokens)") }
        guard !output.isEmpty else { throw ValidationError("--output must not be empty") }
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: model, isDirectory: &isDir), isDir.boolValue else {
            throw ValidationError("\(model): no such model directory")
        }
    }

    func run() throws {
        // trace.h5 needs libhdf5: fail now, not after the evaluation.
        try HDF5Library.load(for: URL(fileURLWithPath: output).appendingPathComponent("trace.h5"))
        var options = EvaluationRunOptions(tasks: taskList, dataDirectory: Paths.dataDirectory(dataDir))
        options.limit = limit
        options.sequenceLength = seqLen
        options.maxLength = maxLength
        options.scorer = ScorerOptions(kvReuse: !noKvReuse, batchTokens: batchTokens)
        options.baseline = baseline.map { URL(fileURLWithPath: $0) }
        options.showProgress = !quiet
        let results = try EvaluationRun.run(modelDirectory: URL(fileURLWithPath: model), options: options)
        let out = URL(fileURLWithPath: output)
        try results.write(to: out, logSamples: logSamples)
        print(results.table)
        print(String(format: "%@: %.1f s, %.0f tokens/s, peak RSS %.0f MB -> %@",
                     model, results.totalSeconds, results.file.greenprune?.tokensPerSecond ?? 0,
                     Double(results.peakResidentBytes) / 1e6, out.appendingPathComponent("results.json").path))
    }
}
