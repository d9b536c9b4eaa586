import ArgumentParser
import Foundation
import GreenPrune

/// `greenprune-bench quant`: what quantization costs and saves, measured within one run.
///
/// `encoder BASE DIR…`: all-MiniLM-style encoders — STS-B Spearman, embedding_drift (MSE,
/// cosine) against BASE, and weights size on disk relative to BASE.
/// `decoder BASE DIR…`: each model scored in its own child process (so peak RSS is its own) on
/// the first `--windows` windows of wikitext2_chunked — perplexity, tokens/s and peak RSS, with
/// ratios to BASE. With `--repeat N` the models run N rounds, interleaved (each round starts one
/// model later), and speed is the median over rounds of each round's ratio to BASE: on a shared
/// machine whose speed drifts by tens of percent, only ratios taken close together mean much.
/// Tokens per CPU-second (user + system, all threads) are printed beside tokens per wall-second:
/// other processes on the machine do not advance that clock.
struct QuantBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quant",
        abstract: "Measure quantized models against their float baseline (accuracy, size, speed, peak RSS).")

    enum Kind: String, ExpressibleByArgument { case encoder, decoder, score }

    @Argument(help: "encoder, decoder (or score: one child measurement, JSON on stdout).")
    var kind: Kind

    @Argument(help: "Baseline (float) directory first, then the quantized directories.")
    var directories: [String]

    @Option(help: "STS-B pairs (encoder) to use; all by default.")
    var limit: Int?

    @Option(help: "wikitext2_chunked windows to score (decoder).")
    var windows: Int = 40

    @Option(help: "Window length in tokens (decoder).")
    var seqLen: Int = 128

    @Option(help: "Tokens per scoring batch (decoder); smaller batches need less activation memory.")
    var batchTokens: Int = defaultBatchTokens

    @Option(help: "Evaluation data directory.")
    var dataDir: String?

    @Option(help: "Activations for every quantized layer at run time (none | int8), overriding the config.")
    var activations: ActivationQuantization?

    @Option(help: "Rounds of every decoder, interleaved; speed ratios are medians over rounds.")
    var `repeat`: Int = 1

    @Flag(help: "Also score each quantized decoder with its float-activation products on sgemm, next to the default path where that is another (AMX tiles, AVX-512 BF16 dot products, int16 dot products).")
    var sgemmToo = false

    @Flag(help: "Also score each quantized decoder on the AVX-512 BF16 dot-product kernel where the CPU has it and does not take it by default (no AMX, VDPBF16PS slower than FMA).")
    var bf16DotToo = false

    @Flag(help: "Also score each quantized decoder with its layers out of row bands (one threaded product per projection), next to the default where its products run in row bands.")
    var noRowBandsToo = false

    @Flag(inversion: .prefixedNo, help: "score: layers in row bands where every projection can compute on the calling thread (the default), or (--no-row-bands) one threaded product per projection.")
    var rowBands = true

    @Flag(help: "score: float-activation products on sgemm, never on AMX tiles (the same as --kernel sgemm).")
    var noAmx = false

    @Option(help: "score: the float-activation product path of quantized layers: auto (the default choice), sgemm, bf16-dot (AVX-512 BF16 dot products, never AMX) or int16-dot (int16 dot products on AVX-512 VNNI or AVX2, never AMX or bf16).")
    var kernel: FloatKernel = .auto

    /// Float-activation product paths a child can be told to take.
    enum FloatKernel: String, ExpressibleByArgument, CaseIterable {
        case auto, sgemm
        case bf16Dot = "bf16-dot"
        case int16Dot = "int16-dot"
    }

    func validate() throws {
        guard !directories.isEmpty else { throw ValidationError("give at least one model directory") }
        guard `repeat` >= 1 else { throw ValidationError("--repeat must be at least 1, got \(`repeat`)") }
        guard kind == .score || directories.count >= 2 else { throw ValidationError("give the baseline directory and at least one quantized directory") }
    }

    func run() throws {
        switch kind {
        case .encoder: try encoder()
        case .decoder: try decoder()
        case .score: try score()
        }
    }

    static func weightBytes(_ dir: String) -> Int {
        let url = URL(fileURLWithPath: dir)
        let items = (try? FileManager.default.contentsOfDirectory(at: url, includingPropertiesForKeys: [.fileSizeKey])) ?? []
        return items.filter { $0.pathExtension == "safetensors" }
            .reduce(0) { $0 + ((try? $1.resourceValues(forKeys: [.fileSizeKey]).fileSize) ?? 0) }
    }

    func loadEncoder(_ dir: String) throws -> BertModel {
        let url = URL(fileURLWithPath: dir)
        let m = try ModelLoader.loadBert(url)
        m.tokenizer = try TokenizerLoader.load(directory: url)
        if let d = try? Data(contentsOf: url.appendingPathComponent("sentence_bert_config.json")),
           let o = try? JSONSerialization.jsonObject(with: d) as? [String: Any], let n = o["max_seq_length"] as? Int {
            m.maxSequenceLength = n
        }
        applyActivations(m.weights.layers.flatMap { [$0.query, $0.key, $0.value, $0.attentionOutput, $0.intermediate, $0.output] })
        return m
    }

    func applyActivations(_ layers: [any LinearLayer]) {
        guard let a = activations else { return }
        for case let q as QuantizedLinear in layers { q.activations = a }
    }

    func encoder() throws {
        let data = Paths.dataDirectory(dataDir)
        let base = try loadEncoder(directories[0])
        let baseRho = try STSBTask().run(base, baseline: nil, dataDirectory: data, limit: limit).values["spearman"]!.value
        let baseBytes = Self.weightBytes(directories[0])
        print(String(format: "%-40@ stsb %.2f  size %d", directories[0] as NSString, baseRho, baseBytes))
        for dir in directories.dropFirst() {
            let m = try loadEncoder(dir)
            let quantized = m.weights.layers.first.map { if case .quantized = $0.query.weightStorage { true } else { false } } ?? false
            let rho = try STSBTask().run(m, baseline: nil, dataDirectory: data, limit: limit).values["spearman"]!.value
            let drift = try EmbeddingDriftTask().run(m, baseline: base, dataDirectory: data, limit: limit)
            let bytes = Self.weightBytes(dir)
            print(String(format: "%-40@ stsb %.2f (Δ %+.2f)  drift mse %.3e cosine %.6f  size %d (%.1f%%)  QuantizedLinear: %@",
                         dir as NSString, rho, rho - baseRho, drift.values["mse"]!.value, drift.values["cosine"]!.value,
                         bytes, 100 * Double(bytes) / Double(baseBytes), quantized ? "yes" : "no"))
        }
    }

    /// Child: load one decoder, score the windows, print one JSON line.
    func score() throws {
        let url = URL(fileURLWithPath: directories[0])
        let t0 = Date()
        let model = try ModelLoader.loadLlama(url)
        applyActivations(model.weights.layers.flatMap { $0.linears.map(\.layer) })
        switch noAmx ? .sgemm : kernel {
        case .auto: break
        case .sgemm: model.kernelOptions.amx = false; model.kernelOptions.bf16Dot = false; model.kernelOptions.int16Dot = false
        case .bf16Dot: model.kernelOptions.amx = false; model.kernelOptions.bf16Dot = true; model.kernelOptions.int16Dot = false
        case .int16Dot: model.kernelOptions.amx = false; model.kernelOptions.bf16Dot = false; model.kernelOptions.int16Dot = true
        }
        model.kernelOptions.rowBands = rowBands
        // The windows are token ids: tokenize first, then free the tokenizer's tables and word
        // cache (a few MB, in both the float and the quantized run) before scoring.
        let task = ChunkedPerplexityTask(.wikitext2)
        let documents: [TaskDocument]
        do {
            let tokenizer = try TokenizerLoader.load(directory: url)
            let setup = TaskSetup(dataDirectory: Paths.dataDirectory(dataDir), sequenceLength: seqLen, tokenizer: tokenizer)
            documents = Evaluator.limited(try task.documents(setup), windows)
        }
        let loadSeconds = Date().timeIntervalSince(t0)
        let loadedRSS = Harness.rss()
        model.maxBatchTokens = batchTokens
        let ev = Evaluator(model: model, tokenizer: TokenIdsOnly(), options: ScorerOptions(batchTokens: batchTokens), showProgress: false)
        let cpu0 = Harness.processCPUSeconds()
        let out = try ev.run(task, documents: documents)
        let cpuSeconds = Harness.processCPUSeconds() - cpu0
        let resident = model.weights.layers.reduce(0) { $0 + $1.linears.reduce(0) { $0 + $1.layer.residentBytes } }
        let kind = model.weights.layers.first.map { String(describing: type(of: $0.qProj)) } ?? "?"
        var kernel: String
        if let q = model.weights.layers.first?.qProj as? QuantizedLinear {
            kernel = q.activations == .int8 ? "int8 \(q.isa)" : q.floatKernelName(rows: batchTokens)
        } else { kernel = "sgemm" }
        let banded = model.runsInRowBands(rows: batchTokens)
        kernel += banded ? " in row bands" : ", one threaded product per projection"
        let o: [String: Any] = ["dir": url.path, "perplexity": out.values["perplexity"]!.value,
                                "tokens_per_second": out.tokensPerSecond, "wall_seconds": out.wallSeconds,
                                "tokens_per_cpu_second": cpuSeconds > 0 ? Double(out.requestTokens) / cpuSeconds : 0,
                                "load_seconds": loadSeconds, "peak_rss_bytes": peakResidentBytes(), "rss_after_load_bytes": loadedRSS,
                                "rss_anon_bytes": Harness.procStatus()["RssAnon"] ?? 0, "rss_file_bytes": Harness.procStatus()["RssFile"] ?? 0,
                                "linear_resident_bytes": resident, "projection_type": kind, "kernel": kernel]
        print(String(decoding: try JSONSerialization.data(withJSONObject: o, options: [.sortedKeys]), as: UTF8.self))
    }

    func decoder() throws {
        // Entries: the baseline, each quantized directory, and with --sgemm-too / --bf16-dot-too
        // each quantized directory again on that path where it is not the default one.
        let standard = KernelOptions.standard
        var entries = directories.map { (dir: $0, kernel: FloatKernel.auto, rowBands: true) }
        if sgemmToo && (standard.amx || standard.bf16Dot || standard.int16Dot) {
            entries += directories.dropFirst().map { (dir: $0, kernel: .sgemm, rowBands: true) }
        }
        // Quantized layers take the int16 kernel before the bf16 one (QuantizedLinear.usesInt16Dot).
        let bf16DotByDefault = standard.bf16Dot && !(standard.int16Dot && KernelOptions.int16DotAvailable)
        if bf16DotToo && KernelOptions.bf16DotAvailable && !standard.amx && !bf16DotByDefault {
            entries += directories.dropFirst().map { (dir: $0, kernel: .bf16Dot, rowBands: true) }
        }
        if noRowBandsToo { entries += directories.dropFirst().map { (dir: $0, kernel: .auto, rowBands: false) } }
        print(String(format: "AVX-512 BF16 dot products: %@ (VDPBF16PS multiply-adds per second ×%.2f of float32 FMA); AMX: %@",
                     (KernelOptions.bf16DotAvailable ? (bf16DotByDefault ? "on" : standard.bf16Dot ? "on for bf16 weights; quantized layers take the int16 kernel" : "available, off by default") : "unavailable") as NSString,
                     KernelOptions.bf16DotSpeedup, (standard.amx ? "on" : "off") as NSString))
        print(String(format: "int16 dot products (%@): %@ (multiply-adds per second ×%.2f of float32 FMA)",
                     KernelOptions.int16DotISA.description as NSString,
                     (KernelOptions.int16DotAvailable ? (standard.int16Dot ? "on" : "available, off by default") : "unavailable") as NSString,
                     KernelOptions.int16DotSpeedup))
        // rounds[r][i]: entry i's child result in round r.
        let rounds: [[[String: Any]?]] = try Harness.interleavedRounds(`repeat`, variants: entries.count) {
            try child(entries[$0].dir, kernel: entries[$0].kernel, rowBands: entries[$0].rowBands)
        }
        func d(_ o: [String: Any]?, _ k: String) -> Double { (o?[k] as? NSNumber)?.doubleValue ?? 0 }
        let median = Harness.median
        if `repeat` > 1 { print("speed: median over \(`repeat`) interleaved rounds of each round's ratio to the baseline") }
        for i in entries.indices {
            let dir = entries[i].dir
            let o = rounds[0][i], b = rounds[0][0]
            let wallRatio = median(rounds.map { d($0[i], "tokens_per_second") / d($0[0], "tokens_per_second") })
            let cpuRatio = median(rounds.map { d($0[i], "tokens_per_cpu_second") / d($0[0], "tokens_per_cpu_second") })
            let tps = median(rounds.map { d($0[i], "tokens_per_second") })
            let peak = median(rounds.map { d($0[i], "peak_rss_bytes") }), basePeak = median(rounds.map { d($0[0], "peak_rss_bytes") })
            print(String(format: "%-40@ ppl %.4f (%+.2f%%)  %.1f tok/s (×%.3f; per CPU-second ×%.3f)  peak RSS %.1f MB (%.1f%%; after load %.0f MB, at exit anon %.0f MB, file %.0f MB)  linear weights %.1f MB  size %.1f MB (%.1f%%)  %@ on %@",
                         dir as NSString, d(o, "perplexity"), 100 * (d(o, "perplexity") / d(b, "perplexity") - 1),
                         tps, wallRatio, cpuRatio,
                         peak / 1e6, 100 * peak / basePeak,
                         d(o, "rss_after_load_bytes") / 1e6,
                         d(o, "rss_anon_bytes") / 1e6, d(o, "rss_file_bytes") / 1e6,
                         d(o, "linear_resident_bytes") / 1e6,
                         Double(Self.weightBytes(dir)) / 1e6,
                         100 * Double(Self.weightBytes(dir)) / Double(Self.weightBytes(directories[0])),
                         (o?["projection_type"] as? String ?? "?") as NSString, (o?["kernel"] as? String ?? "?") as NSString))
        }
    }

    /// Scores `dir` in a child process (`quant score`) and returns its JSON line.
    private func child(_ dir: String, kernel: FloatKernel = .auto, rowBands: Bool = true) throws -> [String: Any] {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL
        if !FileManager.default.isExecutableFile(atPath: p.executableURL!.path) {
            p.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        }
        var args = ["quant", "score", dir, "--windows", String(windows), "--seq-len", String(seqLen),
                    "--batch-tokens", String(batchTokens)]
        if let d = dataDir { args += ["--data-dir", d] }
        if let a = activations { args += ["--activations", a.rawValue] }
        if kernel != .auto { args += ["--kernel", kernel.rawValue] }
        if !rowBands { args.append("--no-row-bands") }
        p.arguments = args
        let pipe = Pipe()
        p.standardOutput = pipe
        try p.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0, let line = String(data: data, encoding: .utf8)?.split(separator: "\n").last,
              let o = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
            throw InputError(dir, "the scoring child failed (exit \(p.terminationStatus))")
        }
        FileHandle.standardError.write(Data((String(line) + "\n").utf8))
        return o
    }
}

/// Stands in for the tokenizer once every request is already token ids (the scored windows),
/// so the real one is freed before scoring; asked to encode text, it throws.
private final class TokenIdsOnly: Tokenizer {
    func encode(_ text: String, addSpecialTokens: Bool) throws -> [Int] {
        throw InputError("greenprune-bench quant", "internal: text reached the scorer after the tokenizer was freed")
    }
    func decode(_ ids: [Int], skipSpecialTokens: Bool) -> String { "" }
    func token(for id: Int) -> String? { nil }
    func id(for token: String) -> Int? { nil }
    var vocabularySize: Int { 0 }
    var bosTokenId: Int? { nil }
    var eosTokenId: Int? { nil }
    var addsBosByDefault: Bool { false }
}
