import Foundation

/// results.json: lm-eval's layout (what its `make_table` reads) plus GreenPrune's `greenprune`
/// block. `evaluate` writes it, the sweep merges and tabulates it, the report reads it: this is
/// the one schema all three share.
///
/// Every field is optional when read, so a file from another tool (or an older GreenPrune), or a
/// sweep's merged file whose comparison steps carry no `greenprune` block, still reads.
public struct ResultsFile: Codable, Equatable {
    /// `results.<task>."<metric>,<filter>"`, with `"<metric>_stderr,<filter>"` beside it.
    public var results: [String: TaskResult] = [:]
    public var groupSubtasks: [String: [String]]?
    /// Each task's definition (lm-eval's task config: `task`, `metric_list`, `metadata`, ...).
    public var configs: [String: JSONValue]?
    public var versions: [String: Double]?
    public var nShot: [String: Int]?
    /// `higher_is_better.<task>.<metric>`.
    public var higherIsBetter: [String: [String: Bool]]?
    public var nSamples: [String: SampleCounts]?
    /// The run's settings (`model`, `model_args`, `limit`, `seq_len`, ...).
    public var config: [String: JSONValue]?
    /// Unix time the run started.
    public var date: Double?
    /// A string, as lm-eval writes it.
    public var totalEvaluationTimeSeconds: String?
    public var greenprune: GreenPruneFigures?

    // lm-eval's run metadata (`simple_evaluate`, `add_env_info`, `add_tokenizer_info`, the
    // evaluation tracker). What GreenPrune writes in each: README "results.json".
    /// The lm-eval release whose layout the file follows (`LMEvalLayout.version`).
    public var lmEvalVersion: String?
    public var transformersVersion: String?
    public var prettyEnvInfo: String?
    /// lm-eval: `git describe` of the working directory; null here.
    public var gitHash: String?
    public var upperGitHash: String?
    /// `[token, "id"]`.
    public var tokenizerPadToken: [String?]?
    public var tokenizerEosToken: [String?]?
    public var tokenizerBosToken: [String?]?
    public var eotTokenID: Int?
    /// The longest sequence the model is given (rolling windows, truncation).
    public var maxLength: Int?
    public var modelSource: String?
    public var modelName: String?
    public var modelNameSanitized: String?
    public var systemInstruction: String?
    public var systemInstructionSha: String?
    public var fewshotAsMultiturn: Bool?
    public var chatTemplate: String?
    public var chatTemplateSha: String?
    /// `task_hashes.<task>`: `LMEvalLayout.taskHash` of the task's samples.
    public var taskHashes: [String: String]?

    public init() {}

    enum CodingKeys: String, CodingKey {
        case results, configs, versions, config, date, greenprune
        case groupSubtasks = "group_subtasks"
        case nShot = "n-shot"
        case higherIsBetter = "higher_is_better"
        case nSamples = "n-samples"
        case totalEvaluationTimeSeconds = "total_evaluation_time_seconds"
        case lmEvalVersion = "lm_eval_version"
        case transformersVersion = "transformers_version"
        case prettyEnvInfo = "pretty_env_info"
        case gitHash = "git_hash"
        case upperGitHash = "upper_git_hash"
        case tokenizerPadToken = "tokenizer_pad_token"
        case tokenizerEosToken = "tokenizer_eos_token"
        case tokenizerBosToken = "tokenizer_bos_token"
        case eotTokenID = "eot_token_id"
        case maxLength = "max_length"
        case modelSource = "model_source"
        case modelName = "model_name"
        case modelNameSanitized = "model_name_sanitized"
        case systemInstruction = "system_instruction"
        case systemInstructionSha = "system_instruction_sha"
        case fewshotAsMultiturn = "fewshot_as_multiturn"
        case chatTemplate = "chat_template"
        case chatTemplateSha = "chat_template_sha"
        case taskHashes = "task_hashes"
    }

    /// The run-metadata keys lm-eval writes even when their value is None: written as null here
    /// too once the file carries lm-eval's metadata (`lm_eval_version`).
    static let nullableKeys: [CodingKeys] = [
        .gitHash, .upperGitHash, .eotTokenID, .maxLength, .systemInstruction, .systemInstructionSha,
        .fewshotAsMultiturn, .chatTemplate, .chatTemplateSha,
    ]

    /// `n-samples.<task>`: documents in the set and documents evaluated (`--limit`).
    public struct SampleCounts: Codable, Equatable {
        public var original: Int
        public var effective: Int
        public init(original: Int, effective: Int) {
            self.original = original
            self.effective = effective
        }
    }

    // MARK: Reading

    /// The numeric metrics of `task` (every filter), sorted by name.
    public func metrics(task: String) -> [TaskResult.Metric] { results[task]?.metrics() ?? [] }

    /// The value of one metric.
    public func value(task: String, metric: String) -> Double? {
        metrics(task: task).first { $0.name == metric }?.value
    }

    /// Peak resident memory of the evaluation in bytes: the one place it is read from a results
    /// file (`greenprune.peak_rss_bytes`, the largest of the merged steps in a sweep's file).
    public var peakResidentBytes: Double? { greenprune?.peakRSSBytes.map(Double.init) }

    /// Reads `url`, or an error naming it.
    public static func read(_ url: URL) throws -> ResultsFile {
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw InputError(url.path, "cannot read results")
        }
        do { return try JSONDecoder().decode(ResultsFile.self, from: data) } catch {
            throw InputError(url.path, "not a results.json: \(Template.oneLine(error))")
        }
    }

    // MARK: Writing

    /// The file's text as Python's `json.dumps(indent=2, ensure_ascii=False, sort_keys=True)`
    /// writes it: lm-eval's floats stay floats (`"versions": {"arc_easy": 1.0}`, a metric of
    /// exactly 1 as `1.0`), every value at full precision.
    public func encoded() throws -> Data {
        guard case var .object(o) = try JSONDecoder().decode(JSONValue.self, from: JSONEncoder().encode(self)) else {
            throw InputError("results.json", "did not encode as an object")
        }
        // Through JSONEncoder a Double of integral value comes back an Int: put the typed values back.
        o["results"] = .object(results.mapValues(\.jsonValue))
        if let v = versions { o["versions"] = .object(v.mapValues { .double($0) }) }
        if let c = configs { o["configs"] = .object(c) }
        if let c = config { o["config"] = .object(c) }
        if let d = date { o["date"] = .double(d) }
        if lmEvalVersion != nil {
            for k in Self.nullableKeys where o[k.rawValue] == nil { o[k.rawValue] = .null }
        }
        return Data((PythonJSON.dumps(.object(o), indent: 2) + "\n").utf8)
    }

    /// Writes the file atomically.
    public func write(to url: URL) throws {
        try AtomicFile.write(try encoded(), to: url)
    }
}

/// One task's entry in `results`: its `alias` and the `"<metric>,<filter>"` values, a number or
/// `"N/A"` (lm-eval's word for an undefined standard error).
public struct TaskResult: Codable, Equatable {
    public enum Value: Codable, Equatable {
        case number(Double)
        /// Any string; lm-eval writes `"N/A"`.
        case text(String)

        public init(_ x: Double) { self = x.isFinite ? .number(x) : .text("N/A") }

        public init(from decoder: Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let v = try? c.decode(Double.self) { self = .number(v) } else { self = .text(try c.decode(String.self)) }
        }

        public func encode(to encoder: Encoder) throws {
            var c = encoder.singleValueContainer()
            switch self {
            case let .number(v): try c.encode(v)
            case let .text(s): try c.encode(s)
            }
        }

        public var number: Double? { if case let .number(v) = self { return v } else { return nil } }
    }

    /// A metric as the sweep and the report use it.
    public struct Metric: Equatable {
        public var name: String
        public var value: Double
        public var stderr: Double?
        public init(name: String, value: Double, stderr: Double?) {
            self.name = name
            self.value = value
            self.stderr = stderr
        }
    }

    public var alias: String?
    /// The task's name and the number of documents evaluated (lm-eval 0.4's `name`, `sample_len`).
    public var name: String?
    public var sampleLen: Int?
    /// Keyed `"<metric>,<filter>"` and `"<metric>_stderr,<filter>"`.
    public var values: [String: Value]

    public init(alias: String?, name: String? = nil, sampleLen: Int? = nil, values: [String: Value] = [:]) {
        self.alias = alias
        self.name = name
        self.sampleLen = sampleLen
        self.values = values
    }

    /// The entry as JSON, numbers as doubles (lm-eval's metrics are Python floats).
    var jsonValue: JSONValue {
        var o: [String: JSONValue] = [:]
        if let alias { o["alias"] = .string(alias) }
        if let name { o["name"] = .string(name) }
        if let sampleLen { o["sample_len"] = .int(sampleLen) }
        for (k, v) in values {
            switch v {
            case let .number(x): o[k] = .double(x)
            case let .text(t): o[k] = .string(t)
            }
        }
        return .object(o)
    }

    /// Sets `"<metric>,none"` and `"<metric>_stderr,none"` (`"N/A"` where undefined).
    public mutating func set(_ metric: String, value: Double, standardError: Double?) {
        values["\(metric),none"] = Value(value)
        values["\(metric)_stderr,none"] = Value(standardError ?? .nan)
    }

    /// The numeric metrics of `filter` (nil: every filter), sorted by name, each with the
    /// standard error of its filter.
    public func metrics(filter: String? = nil) -> [Metric] {
        var out: [Metric] = []
        for (key, v) in values {
            let parts = key.split(separator: ",", maxSplits: 1).map(String.init)
            guard parts.count == 2, filter == nil || parts[1] == filter, !parts[0].hasSuffix("_stderr"),
                  let value = v.number else { continue }
            out.append(Metric(name: parts[0], value: value, stderr: values["\(parts[0])_stderr,\(parts[1])"]?.number))
        }
        return out.sorted { $0.name < $1.name }
    }

    struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: Key.self)
        alias = nil
        values = [:]
        for key in c.allKeys {
            if key.stringValue == "alias" { alias = try c.decode(String.self, forKey: key); continue }
            if key.stringValue == "name" { name = try c.decode(String.self, forKey: key); continue }
            if key.stringValue == "sample_len" { sampleLen = try c.decode(Int.self, forKey: key); continue }
            // Keys without a filter (lm-eval group entries, other tools) are not metrics.
            guard key.stringValue.contains(","), let v = try? c.decode(Value.self, forKey: key) else { continue }
            values[key.stringValue] = v
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: Key.self)
        if let alias { try c.encode(alias, forKey: Key(stringValue: "alias")) }
        if let name { try c.encode(name, forKey: Key(stringValue: "name")) }
        if let sampleLen { try c.encode(sampleLen, forKey: Key(stringValue: "sample_len")) }
        for (k, v) in values { try c.encode(v, forKey: Key(stringValue: k)) }
    }
}

/// The `greenprune` block: model size, speed, memory and per-task figures of the evaluation.
public struct GreenPruneFigures: Codable, Equatable {
    public var version: String?
    /// Request tokens over the wall time of the tasks that have tokens.
    public var tokensPerSecond: Double?
    public var wallSeconds: Double?
    public var wallSecondsByTask: [String: Double]?
    public var tasks: [String: TaskFigures]?
    public var parameters: Int?
    public var nonEmbeddingParameters: Int?
    public var bytesOnDisk: Int?
    /// Peak resident set (VmHWM) of the evaluating process; read it through
    /// `ResultsFile.peakResidentBytes`.
    public var peakRSSBytes: Int?
    /// OpenBLAS's kernel set (`Prescott` flags a slow fallback).
    public var blasCore: String?
    /// The kernel choices the evaluation ran with (`KernelOptions.recorded`): two runs that differ
    /// here round their products differently.
    public var kernels: [String: Bool]?
    /// OpenBLAS's thread count for products (`BLAS.threads`: OPENBLAS_NUM_THREADS, or the cores).
    /// On AVX2 OpenBLAS rounds a product differently on one thread than on several, and the row
    /// bands need more than one, so two runs that differ here differ in the last bits.
    public var blasThreads: Int?
    /// The measured evaluation repeated (`evaluate --repeat`, a sweep's `repeat:`): each round's
    /// figures in order; nil for a single evaluation. `tokensPerSecond` and `wallSeconds` are then
    /// their medians.
    public var rounds: [RoundFigures]?
    /// Median, min and max of the rounds' figures.
    public var roundsSpread: RoundSpreads?
    /// Whether every round gave the same task results (scoring is deterministic, so false means a bug
    /// or a changed input between rounds).
    public var roundsIdentical: Bool?

    public init() {}

    enum CodingKeys: String, CodingKey {
        case version, tasks, parameters
        case tokensPerSecond = "tokens_per_second"
        case wallSeconds = "wall_seconds"
        case wallSecondsByTask = "wall_seconds_by_task"
        case nonEmbeddingParameters = "non_embedding_parameters"
        case bytesOnDisk = "bytes_on_disk"
        case peakRSSBytes = "peak_rss_bytes"
        case blasCore = "blas_core"
        case kernels
        case blasThreads = "blas_threads"
        case rounds
        case roundsSpread = "rounds_spread"
        case roundsIdentical = "rounds_identical"
    }

    /// Integers written as JSON numbers by other tools may carry a fraction (`1000.0`).
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func int(_ k: CodingKeys) throws -> Int? {
            try c.decodeIfPresent(Double.self, forKey: k).flatMap { $0.isFinite && abs($0) < 9e18 ? Int($0) : nil }
        }
        version = try c.decodeIfPresent(String.self, forKey: .version)
        tokensPerSecond = try c.decodeIfPresent(Double.self, forKey: .tokensPerSecond)
        wallSeconds = try c.decodeIfPresent(Double.self, forKey: .wallSeconds)
        wallSecondsByTask = try c.decodeIfPresent([String: Double].self, forKey: .wallSecondsByTask)
        tasks = try c.decodeIfPresent([String: TaskFigures].self, forKey: .tasks)
        parameters = try int(.parameters)
        nonEmbeddingParameters = try int(.nonEmbeddingParameters)
        bytesOnDisk = try int(.bytesOnDisk)
        peakRSSBytes = try int(.peakRSSBytes)
        blasCore = try c.decodeIfPresent(String.self, forKey: .blasCore)
        kernels = try c.decodeIfPresent([String: Bool].self, forKey: .kernels)
        blasThreads = try int(.blasThreads)
        rounds = try c.decodeIfPresent([RoundFigures].self, forKey: .rounds)
        roundsSpread = try c.decodeIfPresent(RoundSpreads.self, forKey: .roundsSpread)
        roundsIdentical = try c.decodeIfPresent(Bool.self, forKey: .roundsIdentical)
    }

    /// Sets `rounds`, `roundsSpread` and the medians of speed and wall time, and of peak memory
    /// when the rounds are separate processes (a sweep's); with `peakIsCumulative` (one process,
    /// `evaluate --repeat`, each round reading its high-water mark) peak memory is their maximum.
    public mutating func setRounds(_ rs: [RoundFigures], identical: Bool, peakIsCumulative: Bool) {
        rounds = rs
        roundsIdentical = identical
        let spreads = RoundSpreads(rs)
        roundsSpread = spreads
        if let s = spreads.tokensPerSecond { tokensPerSecond = s.median }
        if let s = spreads.wallSeconds { wallSeconds = s.median }
        if let s = spreads.peakRSSBytes { peakRSSBytes = Int(peakIsCumulative ? s.max : s.median) }
    }

    /// Tokens the evaluation scored: the sum of the per-task `tokens`, nil without per-task figures.
    public var tokens: Double? {
        guard let t = tasks, !t.isEmpty else { return nil }
        return t.values.reduce(0) { $0 + Double($1.tokens) }
    }
}

/// `greenprune.tasks.<task>`: one task's time, documents, tokens and model calls.
public struct TaskFigures: Codable, Equatable {
    public var wallSeconds: Double
    public var documents: Int
    public var documentsPerSecond: Double
    /// Tokens as lm-eval would feed them (Σ(len − 1)), and tokens the model actually read.
    public var tokens: Int
    public var tokensRead: Int
    public var tokensPerSecond: Double
    public var modelCalls: Int

    public init(wallSeconds: Double, documents: Int, documentsPerSecond: Double, tokens: Int, tokensRead: Int,
                tokensPerSecond: Double, modelCalls: Int) {
        self.wallSeconds = wallSeconds
        self.documents = documents
        self.documentsPerSecond = documentsPerSecond
        self.tokens = tokens
        self.tokensRead = tokensRead
        self.tokensPerSecond = tokensPerSecond
        self.modelCalls = modelCalls
    }

    enum CodingKeys: String, CodingKey {
        case documents, tokens
        case wallSeconds = "wall_seconds"
        case documentsPerSecond = "documents_per_second"
        case tokensRead = "tokens_read"
        case tokensPerSecond = "tokens_per_second"
        case modelCalls = "model_calls"
    }
}

/// `greenprune.rounds[i]`: one round of a repeated measured evaluation.
public struct RoundFigures: Codable, Equatable {
    /// 1-based.
    public var round: Int
    public var tokensPerSecond: Double?
    public var wallSeconds: Double?
    /// Peak resident set of the round's process (`evaluate --repeat`: the one process's high-water mark after the round).
    public var peakRSSBytes: Int?
    /// Energy of the round's evaluation (J), where a tracker measured it.
    public var energyJoules: Double?
    /// Tokens the round scored (timing rounds score fewer than the whole evaluation).
    public var tokens: Double?
    /// The kernel choices the round's process ran with (`GreenPruneFigures.kernels`).
    public var kernels: [String: Bool]?
    /// OpenBLAS's thread count in the round's process (`GreenPruneFigures.blasThreads`).
    public var blasThreads: Int?

    public init(round: Int, tokensPerSecond: Double? = nil, wallSeconds: Double? = nil, peakRSSBytes: Int? = nil,
                energyJoules: Double? = nil, tokens: Double? = nil, kernels: [String: Bool]? = nil, blasThreads: Int? = nil) {
        self.round = round
        self.tokensPerSecond = tokensPerSecond
        self.wallSeconds = wallSeconds
        self.peakRSSBytes = peakRSSBytes
        self.energyJoules = energyJoules
        self.tokens = tokens
        self.kernels = kernels
        self.blasThreads = blasThreads
    }

    /// Where rounds ran different kernel choices or OpenBLAS thread counts (which change a
    /// product's last bits), one clause per choice that differs, e.g. "int16_dot on in rounds 1, 3
    /// and off in round 2" or "blas_threads 2 in round 1 and 1 in round 2"; nil when every round
    /// recorded the same.
    public static func kernelDifferences(_ rounds: [RoundFigures]) -> String? {
        // "<key> <value> in round(s) a, b and <value> in round(s) c" when `among` recorded several values.
        func clause<V: Equatable>(_ key: String, _ among: [RoundFigures], _ values: [V], _ of: (RoundFigures) -> V,
                                  _ label: (V) -> String) -> String? {
            let parts: [String] = values.compactMap { v in
                let rs = among.filter { of($0) == v }.map(\.round)
                return rs.isEmpty ? nil : label(v) + (rs.count == 1 ? " in round " : " in rounds ") + rs.map(String.init).joined(separator: ", ")
            }
            return parts.count > 1 ? "\(key) " + parts.joined(separator: " and ") : nil
        }
        let recorded = rounds.filter { $0.kernels != nil }
        let keys = Set(recorded.flatMap { $0.kernels!.keys }).sorted()
        var clauses: [String] = keys.compactMap { key in
            clause(key, recorded, [true, false, nil], { $0.kernels![key] }, { $0.map { $0 ? "on" : "off" } ?? "unrecorded" })
        }
        let counted = rounds.filter { $0.blasThreads != nil }
        if let c = clause("blas_threads", counted, Set(counted.map(\.blasThreads!)).sorted(by: >), { $0.blasThreads! }, String.init) {
            clauses.append(c)
        }
        return clauses.isEmpty ? nil : clauses.joined(separator: "; ")
    }

    enum CodingKeys: String, CodingKey {
        case round
        case tokensPerSecond = "tokens_per_second"
        case wallSeconds = "wall_seconds"
        case peakRSSBytes = "peak_rss_bytes"
        case energyJoules = "energy_joules"
        case tokens, kernels
        case blasThreads = "blas_threads"
    }
}

/// `greenprune.rounds_spread`: median, min and max over the rounds of each figure.
public struct RoundSpreads: Codable, Equatable {
    public var tokensPerSecond: Spread?
    public var wallSeconds: Spread?
    public var peakRSSBytes: Spread?
    public var energyJoules: Spread?

    public init(_ rounds: [RoundFigures]) {
        tokensPerSecond = Spread(rounds.compactMap(\.tokensPerSecond))
        wallSeconds = Spread(rounds.compactMap(\.wallSeconds))
        peakRSSBytes = Spread(rounds.compactMap { $0.peakRSSBytes.map(Double.init) })
        energyJoules = Spread(rounds.compactMap(\.energyJoules))
    }

    enum CodingKeys: String, CodingKey {
        case tokensPerSecond = "tokens_per_second"
        case wallSeconds = "wall_seconds"
        case peakRSSBytes = "peak_rss_bytes"
        case energyJoules = "energy_joules"
    }
}
