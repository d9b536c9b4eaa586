import Foundation

/// One STS Benchmark pair: the gold similarity (0–5) and the two sentences.
public struct STSPair: Sendable, Equatable {
    public var score: Double
    public var sentence1: String
    public var sentence2: String
    public init(score: Double, sentence1: String, sentence2: String) {
        self.score = score
        self.sentence1 = sentence1
        self.sentence2 = sentence2
    }
}

/// What an encoder task produced: metrics computed directly, not from scored requests (decoder
/// `output_drift` returns one too, for the same reason).
public struct EncoderOutcome {
    public var task: String
    public var version: Double
    public var configuration: [String: Any]
    public var metrics: [MetricSpec]
    public var values: [String: (value: Double, standardError: Double?)]
    public var originalCount: Int
    public var count: Int
    /// Per pair (stsb) or per sentence (embedding_drift): the logged values.
    public var samples: [[String: Any]]
    public var wallSeconds: Double
    /// Sentences embedded (by the evaluated encoder).
    public var sentences: Int
    /// Tokens the evaluated encoder read (special tokens included).
    public var tokens: Int = 0
}

/// A task on a `SentenceEncoder` (`stsb`, `embedding_drift`).
public protocol EncoderTask {
    var name: String { get }
    /// The task's metrics, group, direction and cost (see `TaskInfo`).
    var info: TaskInfo { get }
    func run(_ encoder: SentenceEncoder, baseline: SentenceEncoder?, dataDirectory: URL, limit: Int?) throws -> EncoderOutcome
}

extension EncoderTask {
    /// Whether the task needs `--baseline`.
    public var needsBaseline: Bool { info.needsBaseline }
}

/// Reads `stsb/sts-test.csv`: tab-separated, no quote handling (50 lines hold a `"`; a CSV
/// reader honouring quotes would merge lines); columns 5, 6, 7 are score, sentence1, sentence2.
public enum STSBenchmark {
    public static let file = "stsb/sts-test.csv"

    public static func pairs(dataDirectory: URL) throws -> [STSPair] {
        let url = try TaskSetup(dataDirectory: dataDirectory).file(file)
        return try DataFiles.lines(url).enumerated().map { i, line in
            let cols = line.split(separator: "\t", omittingEmptySubsequences: false)
            let place = "\(url.path):\(i + 1)"
            guard cols.count >= 7 else { throw InputError(place, "expected at least 7 tab-separated columns, got \(cols.count)") }
            guard let score = Double(cols[4].trimmingCharacters(in: .whitespaces)) else {
                throw InputError(place, "score \"\(cols[4])\" is not a number")
            }
            return STSPair(score: score, sentence1: String(cols[5]), sentence2: String(cols[6]))
        }
    }

    /// Embeds in chunks so a progress bar can move.
    static func embed(_ encoder: SentenceEncoder, _ texts: [String], label: String) throws -> [[Float]] {
        let bar = ProgressBar(label, total: texts.count, unit: "sentences")
        var out: [[Float]] = []
        out.reserveCapacity(texts.count)
        var i = 0
        while i < texts.count {
            let chunk = Array(texts[i ..< min(i + 64, texts.count)])
            let e = try encoder.embed(chunk)
            guard e.count == chunk.count else { throw InputError("encoder", "returned \(e.count) embeddings for \(chunk.count) texts") }
            out += e
            bar.advance(chunk.count)
            i += chunk.count
        }
        bar.finish()
        return out
    }

    static func config(_ name: String, _ metrics: [MetricSpec], _ extra: [String: Any]) -> [String: Any] {
        var c: [String: Any] = ["task": name, "dataset_path": file, "output_type": "sentence_embedding",
                                "metric_list": metrics.map { ["metric": $0.name, "aggregation": $0.aggregation.rawValue, "higher_is_better": $0.higherIsBetter] },
                                "metadata": ["version": 1.0]]
        for (k, v) in extra { c[k] = v }
        return c
    }
}

/// `stsb`: 100 × Spearman correlation between the cosine similarity of each pair's
/// embeddings and the gold score.
public struct STSBTask: EncoderTask {
    public init() {}
    public var name: String { "stsb" }
    public static let metric = MetricSpec("spearman", .mean, higherIsBetter: true, hasStandardError: false)
    /// The STS-B test pairs (1,379), each embedded twice.
    public var info: TaskInfo {
        TaskInfo(name: name, metrics: [Self.metric], cost: .secondsPerDocument(0.025), documents: 1379)
    }

    public func run(_ encoder: SentenceEncoder, baseline: SentenceEncoder?, dataDirectory: URL, limit: Int?) throws -> EncoderOutcome {
        let start = DispatchTime.now().uptimeNanoseconds
        let all = try STSBenchmark.pairs(dataDirectory: dataDirectory)
        let pairs = limit.map { Array(all.prefix(max($0, 0))) } ?? all
        let texts = pairs.flatMap { [$0.sentence1, $0.sentence2] }
        let e = try STSBenchmark.embed(encoder, texts, label: name)
        let cosines = pairs.indices.map { Metrics.cosine(e[2 * $0], e[2 * $0 + 1]) }
        let rho = 100 * Metrics.spearman(cosines, pairs.map(\.score))
        let samples: [[String: Any]] = pairs.enumerated().map { i, p in
            ["doc_id": i, "doc": ["score": p.score, "sentence1": p.sentence1, "sentence2": p.sentence2],
             "target": p.score, "cosine": JSONNumber.clean(cosines[i])]
        }
        return EncoderOutcome(task: name, version: 1.0,
                              configuration: STSBenchmark.config(name, [Self.metric], ["pooling": "mean over non-padding tokens, L2-normalised", "similarity": "cosine", "scale": "spearman × 100"]),
                              metrics: [Self.metric], values: ["spearman": (rho, nil)],
                              originalCount: all.count, count: pairs.count, samples: samples,
                              wallSeconds: Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9,
                              sentences: 2 * pairs.count, tokens: encoder.tokenCount(texts))
    }
}

/// `embedding_drift`: how far a compressed encoder's normalised embeddings moved from its
/// baseline's on the STS-B sentences (sentence1, sentence2 of each pair, in order): mean over
/// sentences of the per-sentence mean squared error, and the mean cosine similarity.
public struct EmbeddingDriftTask: EncoderTask {
    public init() {}
    public var name: String { "embedding_drift" }
    public static let metrics = [MetricSpec("mse", .mean, higherIsBetter: false, hasStandardError: true),
                                 MetricSpec("cosine", .mean, higherIsBetter: true, hasStandardError: true)]
    /// The STS-B test pairs, each embedded by the model and by its baseline.
    public var info: TaskInfo {
        TaskInfo(name: name, metrics: Self.metrics, needsBaseline: true, cost: .secondsPerDocument(0.02), documents: 1379)
    }

    public func run(_ encoder: SentenceEncoder, baseline: SentenceEncoder?, dataDirectory: URL, limit: Int?) throws -> EncoderOutcome {
        guard let baseline else { throw InputError("--baseline", "embedding_drift needs the baseline encoder's directory") }
        guard baseline.dimension == encoder.dimension else {
            throw InputError("--baseline", "embedding width \(baseline.dimension) differs from the model's \(encoder.dimension)")
        }
        let start = DispatchTime.now().uptimeNanoseconds
        let all = try STSBenchmark.pairs(dataDirectory: dataDirectory)
        let pairs = limit.map { Array(all.prefix(max($0, 0))) } ?? all
        let texts = pairs.flatMap { [$0.sentence1, $0.sentence2] }
        let a = try STSBenchmark.embed(encoder, texts, label: name)
        let b = try STSBenchmark.embed(baseline, texts, label: name + " (baseline)")
        let mse = texts.indices.map { Metrics.meanSquaredError(a[$0], b[$0]) }
        let cos = texts.indices.map { Metrics.cosine(a[$0], b[$0]) }
        let samples: [[String: Any]] = texts.enumerated().map { i, t in
            ["doc_id": i, "doc": ["sentence": t], "mse": JSONNumber.clean(mse[i]), "cosine": JSONNumber.clean(cos[i])]
        }
        return EncoderOutcome(task: name, version: 1.0,
                              configuration: STSBenchmark.config(name, Self.metrics, ["sentences": "sentence1, sentence2 of each STS-B pair"]),
                              metrics: Self.metrics,
                              values: ["mse": (Metrics.mean(mse), Metrics.standardErrorOfMean(mse)),
                                       "cosine": (Metrics.mean(cos), Metrics.standardErrorOfMean(cos))],
                              originalCount: 2 * all.count, count: texts.count, samples: samples,
                              wallSeconds: Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9,
                              sentences: texts.count, tokens: encoder.tokenCount(texts))
    }
}
