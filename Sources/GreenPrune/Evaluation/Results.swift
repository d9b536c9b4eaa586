import COpenBLAS
import Foundation

/// Size facts about the evaluated model, for the `greenprune` block of results.json.
public struct ModelFacts {
    public var path: String
    public var family: String
    public var parameters: Int
    public var nonEmbeddingParameters: Int
    public var bytesOnDisk: Int
    /// lm-eval's tokenizer fields, where the model has a tokenizer.
    public var tokenizer: TokenizerFacts?
    /// The longest sequence the model was given (lm-eval's `max_length`).
    public var maxLength: Int?
    public init(path: String, family: String, parameters: Int, nonEmbeddingParameters: Int, bytesOnDisk: Int,
                tokenizer: TokenizerFacts? = nil, maxLength: Int? = nil) {
        self.path = path
        self.family = family
        self.parameters = parameters
        self.nonEmbeddingParameters = nonEmbeddingParameters
        self.bytesOnDisk = bytesOnDisk
        self.tokenizer = tokenizer
        self.maxLength = maxLength
    }

    /// Σ sizes of the regular files under `directory` (recursively).
    public static func bytesOnDisk(_ directory: URL) -> Int {
        guard let e = FileManager.default.enumerator(at: directory, includingPropertiesForKeys: [.fileSizeKey, .isRegularFileKey]) else { return 0 }
        var total = 0
        for case let url as URL in e {
            let v = try? url.resourceValues(forKeys: [.fileSizeKey, .isRegularFileKey])
            if v?.isRegularFile == true { total += v?.fileSize ?? 0 }
        }
        return total
    }
}

/// Peak resident set size of this process: `VmHWM` of /proc/self/status, in bytes (0 where
/// the file does not exist).
public func peakResidentBytes() -> Int {
    guard let s = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
    for line in s.split(separator: "\n") where line.hasPrefix("VmHWM:") {
        let parts = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
        if parts.count >= 2, let kb = Int(parts[1]) { return kb * 1024 }
    }
    return 0
}

/// The kernel set OpenBLAS chose (`Prescott` means its CPU detection fell back to SSE3
/// kernels, several times slower on AVX-512 machines: set `OPENBLAS_CORETYPE=SkylakeX`).
public func openBLASCoreName() -> String {
    guard let p = openblas_get_corename() else { return "unknown" }
    return String(cString: p)
}

/// One evaluated task, language-model or encoder, in the shape the outputs need.
public struct TaskReport {
    public var name: String
    public var version: Double
    public var configuration: [String: Any]
    public var metrics: [MetricSpec]
    public var values: [String: (value: Double, standardError: Double?)]
    public var originalCount: Int
    public var effectiveCount: Int
    public var wallSeconds: Double
    /// Tokens as lm-eval would feed them (Σ(len − 1)) and tokens the model actually read.
    public var requestTokens: Int
    public var tokensRead: Int
    /// `--log-samples` lines.
    public var samples: [[String: Any]]
    public var language: TaskOutcome?
    public var encoder: EncoderOutcome?

    public init(_ o: TaskOutcome) {
        name = o.task; version = o.version; configuration = o.configuration; metrics = o.metrics
        values = o.values; originalCount = o.originalCount; effectiveCount = o.documents.count
        wallSeconds = o.wallSeconds; requestTokens = o.requestTokens; tokensRead = o.tokensRead
        samples = TaskReport.samples(o)
        language = o
    }

    public init(_ o: EncoderOutcome) {
        name = o.task; version = o.version; configuration = o.configuration; metrics = o.metrics
        values = o.values; originalCount = o.originalCount; effectiveCount = o.count
        wallSeconds = o.wallSeconds; requestTokens = o.tokens; tokensRead = o.tokens
        samples = o.samples.map { LMEvalLayout.completed($0, metrics: o.metrics) }
        encoder = o
    }

    /// lm-eval's sample records: doc_id, doc, target, arguments, resps, filtered_resps (each
    /// log-likelihood as Python's `str(float)`, full precision), the metrics, filter, metric
    /// names and hashes (`LMEvalLayout.completed`); plus the log-likelihoods and greedy flags as
    /// plain arrays.
    static func samples(_ o: TaskOutcome) -> [[String: Any]] {
        o.documents.enumerated().map { i, doc in
            let answers = o.answers[i]
            var args: [String: Any] = [:]
            for (k, r) in doc.requests.enumerated() {
                var a: [String: Any] = [:]
                for (j, s) in r.arguments.enumerated() { a["arg_\(j)"] = s }
                args["gen_args_\(k)"] = a
            }
            let resps = answers.map { [[PythonJSON.float($0.loglikelihood), $0.isGreedy ? "True" : "False"]] }
            var rec: [String: Any] = [
                "doc_id": doc.id, "doc": doc.fields, "target": doc.target,
                "request_type": doc.requests.first?.kindName ?? "",
                "arguments": args, "resps": resps, "filtered_resps": resps.map { $0[0] },
                "loglikelihoods": answers.map { JSONNumber.clean($0.loglikelihood) },
                "is_greedy": answers.map(\.isGreedy),
                "num_tokens": answers.map(\.tokenCount),
            ]
            for (k, v) in o.sampleValues[i] { rec[k] = v.jsonValue }
            return LMEvalLayout.completed(rec, metrics: o.metrics)
        }
    }
}

/// Everything `greenprune evaluate` writes: results.json (lm-eval's layout plus a `greenprune`
/// block), samples_<task>.jsonl, trace.h5, and the table on stdout.
public struct EvaluationResults {
    public var reports: [TaskReport]
    public var model: ModelFacts
    /// The run's settings for `config` (limit, seq_len, batch_tokens, kv_reuse, ...).
    public var settings: [String: Any]
    /// Unix time the run started, and its total wall time.
    public var startDate: Date
    public var totalSeconds: Double
    public var peakResidentBytes: Int
    /// `evaluate --repeat`: each round's figures and whether their task results agreed; the
    /// block's speed and wall time are then the rounds' medians, peak memory their maximum.
    public var rounds: [RoundFigures]?
    public var roundsIdentical: Bool?

    public init(reports: [TaskReport], model: ModelFacts, settings: [String: Any], startDate: Date,
                totalSeconds: Double, peakResidentBytes: Int) {
        self.reports = reports
        self.model = model
        self.settings = settings
        self.startDate = startDate
        self.totalSeconds = totalSeconds
        self.peakResidentBytes = peakResidentBytes
    }

    /// The results.json contents.
    public var file: ResultsFile {
        var f = ResultsFile()
        var configs: [String: JSONValue] = [:], versions: [String: Double] = [:], nShot: [String: Int] = [:]
        var hib: [String: [String: Bool]] = [:], nSamples: [String: ResultsFile.SampleCounts] = [:]
        var wall: [String: Double] = [:], perTask: [String: TaskFigures] = [:]
        for r in reports {
            var entry = TaskResult(alias: r.name, name: r.name, sampleLen: r.effectiveCount)
            for m in r.metrics {
                guard let v = r.values[m.name] else { continue }
                entry.set(m.name, value: v.value, standardError: v.standardError)
            }
            f.results[r.name] = entry
            configs[r.name] = JSONValue(LMEvalLayout.taskConfig(r.configuration)) ?? .null
            versions[r.name] = r.version
            nShot[r.name] = 0
            hib[r.name] = Dictionary(uniqueKeysWithValues: r.metrics.map { ($0.name, $0.higherIsBetter) })
            nSamples[r.name] = .init(original: r.originalCount, effective: r.effectiveCount)
            wall[r.name] = r.wallSeconds
            perTask[r.name] = TaskFigures(
                wallSeconds: r.wallSeconds, documents: r.effectiveCount,
                documentsPerSecond: r.wallSeconds > 0 ? Double(r.effectiveCount) / r.wallSeconds : 0,
                tokens: r.requestTokens, tokensRead: r.tokensRead,
                tokensPerSecond: r.wallSeconds > 0 ? Double(r.requestTokens) / r.wallSeconds : 0,
                modelCalls: r.language?.batches.count ?? 0)
        }
        let tokens = reports.reduce(0) { $0 + $1.requestTokens }
        let tokenSeconds = reports.filter { $0.requestTokens > 0 }.reduce(0) { $0 + $1.wallSeconds }
        var config = settings
        config["model"] = "greenprune"
        config["model_args"] = "pretrained=\(model.path)"
        config["model_path"] = model.path
        config["model_family"] = model.family
        config["model_num_parameters"] = model.parameters
        config["device"] = "cpu"
        // lm-eval's execution keys. Nothing in a zero-shot evaluation is random, so no seed is
        // set; the standard errors are lm-eval's closed forms, which bootstrap_iters (lm-eval's
        // default) does not change.
        for k in ["batch_size", "use_cache", "gen_kwargs", "random_seed", "numpy_seed", "torch_seed", "fewshot_seed"] where config[k] == nil {
            config[k] = NSNull()
        }
        if config["batch_sizes"] == nil { config["batch_sizes"] = [Int]() }
        if config["bootstrap_iters"] == nil { config["bootstrap_iters"] = 100000 }
        f.groupSubtasks = Dictionary(uniqueKeysWithValues: reports.map { ($0.name, [String]()) })
        f.configs = configs
        f.versions = versions
        f.nShot = nShot
        f.higherIsBetter = hib
        f.nSamples = nSamples
        f.config = config.compactMapValues { JSONValue($0) }
        f.date = startDate.timeIntervalSince1970
        f.totalEvaluationTimeSeconds = String(totalSeconds)
        f.lmEvalVersion = LMEvalLayout.version
        f.transformersVersion = "N/A"
        f.prettyEnvInfo = "N/A (torch not used: GreenPrune \(GreenPruneInfo.version), Swift, OpenBLAS \(openBLASCoreName()))"
        f.modelSource = "greenprune"
        f.modelName = model.path
        f.modelNameSanitized = LMEvalLayout.sanitizedModelName(model.path)
        f.fewshotAsMultiturn = false
        if let t = model.tokenizer {
            f.tokenizerPadToken = t.pad
            f.tokenizerEosToken = t.eos
            f.tokenizerBosToken = t.bos
            f.eotTokenID = t.eotTokenID
        }
        f.maxLength = model.maxLength
        f.taskHashes = Dictionary(uniqueKeysWithValues: reports.map { ($0.name, LMEvalLayout.taskHash($0.samples)) })
        var g = GreenPruneFigures()
        g.version = GreenPruneInfo.version
        g.tokensPerSecond = tokenSeconds > 0 ? Double(tokens) / tokenSeconds : 0
        g.wallSeconds = totalSeconds
        g.wallSecondsByTask = wall
        g.tasks = perTask
        g.parameters = model.parameters
        g.nonEmbeddingParameters = model.nonEmbeddingParameters
        g.bytesOnDisk = model.bytesOnDisk
        g.peakRSSBytes = peakResidentBytes
        g.blasCore = openBLASCoreName()
        g.kernels = KernelOptions.standard.recorded
        g.blasThreads = BLAS.threads
        if let rs = rounds, rs.count > 1 { g.setRounds(rs, identical: roundsIdentical ?? true, peakIsCumulative: true) }
        f.greenprune = g
        return f
    }

    /// lm-eval's markdown table: Tasks | Version | Filter | n-shot | Metric | | Value | | Stderr.
    public var table: String {
        var rows = ["|    Tasks    |Version|Filter|n-shot|    Metric     |   |  Value  |   | Stderr |",
                    "|-------------|------:|------|-----:|---------------|---|--------:|---|-------:|"]
        for r in reports {
            for (k, m) in r.metrics.enumerated() {
                guard let v = r.values[m.name] else { continue }
                let se = v.standardError.flatMap { $0.isFinite ? EvaluationResults.tableNumber($0) : nil } ?? "N/A"
                rows.append("|\(k == 0 ? r.name : "")|\(k == 0 ? EvaluationResults.version(r.version) : "")|\(k == 0 ? "none" : "")|\(k == 0 ? "0" : "")|\(m.name)|\(m.higherIsBetter ? "↑" : "↓")|\(EvaluationResults.tableNumber(v.value))|±|\(se)|")
            }
        }
        return rows.joined(separator: "\n")
    }

    /// A metric in the stdout table: 4 decimals as lm-eval prints, but values below 1e-3 (an
    /// embedding-drift MSE of 2e-6, its standard error) in 3 significant digits so they do not
    /// read as 0.0000.
    static func tableNumber(_ x: Double) -> String {
        x != 0 && abs(x) < 1e-3 ? String(format: "%.3g", x) : String(format: "%.4f", x)
    }

    static func version(_ v: Double) -> String { v == v.rounded() ? String(Int(v)) : String(v) }

    /// Writes the outputs into `directory` (created if needed): samples, trace and documents.json
    /// (per-document values for the report's intervals) first, each atomically, and results.json
    /// last, so a run that fails leaves no results.json. A directory this call created is removed
    /// again when writing fails, so a failed run leaves no empty output folder behind.
    public func write(to directory: URL, logSamples: Bool, trace: Bool = true) throws {
        let fm = FileManager.default
        let created = !fm.fileExists(atPath: directory.path)
        do {
            try fm.createDirectory(at: directory, withIntermediateDirectories: true)
        } catch {
            throw InputError(directory.path, "cannot create output directory: \(FileErrors.problem(error))")
        }
        do {
            try writeFiles(to: directory, logSamples: logSamples, trace: trace)
        } catch {
            if created { try? fm.removeItem(at: directory) }
            throw error
        }
    }

    private func writeFiles(to directory: URL, logSamples: Bool, trace: Bool) throws {
        if logSamples {
            for r in reports {
                // One line per sample as lm-eval's `json.dumps(sample, ensure_ascii=False)`, keys
                // sorted so a reader re-dumping `doc` gets the text its doc_hash was taken of.
                var text = ""
                for s in r.samples {
                    guard let v = JSONValue(s) else { throw InputError("samples_\(r.name).jsonl", "a sample is not JSON") }
                    text += PythonJSON.dumps(v) + "\n"
                }
                try AtomicFile.write(Data(text.utf8), to: directory.appendingPathComponent("samples_\(r.name).jsonl"))
            }
        }
        if trace { try writeTrace(directory.appendingPathComponent("trace.h5")) }
        try DocumentScores(reports).write(to: directory)
        try file.write(to: directory.appendingPathComponent("results.json"))
    }

    /// trace.h5, which `h5py` opens:
    ///
    /// ```
    /// /                                attrs: model (path), date (ISO 8601), greenprune_version
    /// /<task>/doc_offsets        int64 [D+1]  requests of document d: rows doc_offsets[d] ..< doc_offsets[d+1]
    /// /<task>/loglikelihood      f64 [R]      Σ ln p of each request (rolling requests summed over windows)
    /// /<task>/is_greedy          i32 [R]      1 when every scored token was the argmax
    /// /<task>/num_tokens         i64 [R]      tokens each log-likelihood sums over
    /// /<task>/gold               i64 [D]      gold choice (−1 where the task has none)
    /// /<task>/batches/seconds    f64 [B]      wall time of each model call, in call order
    /// /<task>/batches/requests   i64 [B]      requests answered by the call
    /// /<task>/batches/tokens     i64 [B]      tokens the model read (after KV reuse)
    /// /<task>/batches/kind       i32 [B]      0 = plain batch, 1 = shared-prefix (KV reuse) call
    /// /<task>                    attrs: wall_seconds
    /// ```
    /// Encoder tasks hold `/<task>/<value>` f64 [N] per logged value instead (`cosine`, `mse`),
    /// output_drift one per window (`kl_divergence`, `top1_agreement`, `logits_mse`, `hidden_mse`).
    public func writeTrace(_ url: URL) throws {
        let h5 = try HDF5Writer(url: url)
        try h5.setAttribute("/", "model", model.path)
        try h5.setAttribute("/", "date", ISO8601DateFormatter().string(from: startDate))
        try h5.setAttribute("/", "greenprune_version", GreenPruneInfo.version)
        for r in reports {
            let g = r.name
            var wrote = true
            if let o = r.language {
                var offsets: [Int64] = [0]
                var ll: [Double] = [], greedy: [Int32] = [], count: [Int64] = []
                for a in o.answers {
                    for x in a {
                        ll.append(x.loglikelihood)
                        greedy.append(x.isGreedy ? 1 : 0)
                        count.append(Int64(x.tokenCount))
                    }
                    offsets.append(Int64(ll.count))
                }
                try h5.write("\(g)/doc_offsets", offsets, shape: [offsets.count])
                try h5.write("\(g)/loglikelihood", ll, shape: [ll.count])
                try h5.write("\(g)/is_greedy", greedy, shape: [greedy.count])
                try h5.write("\(g)/num_tokens", count, shape: [count.count])
                try h5.write("\(g)/gold", o.documents.map { Int64($0.gold ?? -1) }, shape: [o.documents.count])
                try h5.write("\(g)/batches/seconds", o.batches.map(\.seconds), shape: [o.batches.count])
                try h5.write("\(g)/batches/requests", o.batches.map { Int64($0.requests) }, shape: [o.batches.count])
                try h5.write("\(g)/batches/tokens", o.batches.map { Int64($0.tokens) }, shape: [o.batches.count])
                try h5.write("\(g)/batches/kind", o.batches.map(\.kind.rawValue), shape: [o.batches.count])
            } else if let e = r.encoder {
                wrote = false
                for key in ["cosine", "mse", "kl_divergence", "top1_agreement", "logits_mse", "hidden_mse"] {
                    let vs = e.samples.compactMap { $0[key] as? Double }
                    if vs.count == e.samples.count, !vs.isEmpty {
                        try h5.write("\(g)/\(key)", vs, shape: [vs.count])
                        wrote = true
                    }
                }
            }
            if wrote { try h5.setAttribute(g, "wall_seconds", r.wallSeconds) }
        }
        try h5.close()
    }
}
