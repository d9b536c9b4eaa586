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

    @OptionGroup var data: DataOptions

    @OptionGroup var storage: DTypeFlags

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

    @Option(name: .customLong("repeat"),
            help: "Run the tasks N times in this process after one unmeasured warm-up (one document per task); results.json's greenprune block gets each round's speed, wall time and peak memory, their median/min/max, and rounds_identical.")
    var repeatCount: Int = 1

    var taskList: [String] {
        tasks.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    func validate() throws {
        guard !taskList.isEmpty else { throw ValidationError("--tasks: give at least one task name") }
        if let l = limit, l < 1 { throw ValidationError("--limit must be at least 1, got \(l)") }
        guard seqLen >= 2 else { throw ValidationError("--seq-len must be at least 2, got \(seqLen)") }
        if let m = maxLength, m < 1 { throw ValidationError("--max-length must be at least 1, got \(m)") }
        guard (1 ... 100).contains(repeatCount) else { throw ValidationError("--repeat must be in 1...100, got \(repeatCount)") }
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
        var options = EvaluationRunOptions(tasks: taskList, dataDirectory: Paths.dataDirectory(data.dataDir))
        options.limit = limit
        options.sequenceLength = seqLen
        options.maxLength = maxLength
        options.scorer = ScorerOptions(kvReuse: !noKvReuse, batchTokens: batchTokens)
        options.dtype = storage.dtype
        options.baseline = baseline.map { URL(fileURLWithPath: $0) }
        options.showProgress = !quiet
        let directory = URL(fileURLWithPath: model)
        let results = repeatCount > 1 ? try repeated(directory: directory, options: options)
            : try EvaluationRun.run(modelDirectory: directory, options: options)
        let out = URL(fileURLWithPath: output)
        try results.write(to: out, logSamples: logSamples)
        print(results.table)
        let g = results.file.greenprune
        print(String(format: "%@: %.1f s, %.0f tokens/s, peak RSS %.0f MB -> %@",
                     model, g?.wallSeconds ?? results.totalSeconds, g?.tokensPerSecond ?? 0,
                     Double(g?.peakRSSBytes ?? results.peakResidentBytes) / 1e6, out.appendingPathComponent("results.json").path))
        if let s = g?.roundsSpread?.tokensPerSecond {
            print(String(format: "%d rounds: tokens/s median %.0f (min %.0f, max %.0f)", s.count, s.median, s.min, s.max))
        }
    }

    /// `--repeat`: an unmeasured warm-up on one document per task (model file and data in the
    /// page cache, CPU clocked up), then `repeatCount` measured rounds; the last round's results
    /// are kept with every round's figures. Peak memory is the one process's high-water mark read
    /// after each round, so the block keeps the largest.
    private func repeated(directory: URL, options: EvaluationRunOptions) throws -> EvaluationResults {
        var warm = options
        warm.limit = 1
        warm.showProgress = false
        _ = try EvaluationRun.run(modelDirectory: directory, options: warm)
        var rounds: [RoundFigures] = []
        var last: EvaluationResults?
        var identical = true
        for k in 1 ... repeatCount {
            let r = try EvaluationRun.run(modelDirectory: directory, options: options)
            if let l = last, l.file.results != r.file.results || DocumentScores(l.reports) != DocumentScores(r.reports) { identical = false }
            let g = r.file.greenprune
            rounds.append(RoundFigures(round: k, tokensPerSecond: g?.tokensPerSecond, wallSeconds: r.totalSeconds,
                                       peakRSSBytes: r.peakResidentBytes))
            last = r
        }
        guard var result = last else { throw ValidationError("--repeat must be at least 1") }
        if !identical {
            FileHandle.standardError.write(Data("WARNING: task results differ between rounds (scoring should be deterministic); results.json records rounds_identical: false\n".utf8))
        }
        result.rounds = rounds
        result.roundsIdentical = identical
        return result
    }
}
