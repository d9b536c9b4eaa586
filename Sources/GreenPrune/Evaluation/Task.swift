import Foundation

/// How a task's per-document values become one corpus-level number (lm-eval's aggregations).
public enum Aggregation: String, Sendable, Codable {
    /// Mean of `.scalar` values, with standard error sample-stddev/√n.
    case mean
    /// exp(−mean of `.scalar` log-likelihoods) (lambada's `perplexity`).
    case perplexity
    /// exp(−Σll/Σweight) over `.weighted` values (word/byte/token perplexity).
    case weightedPerplexity = "weighted_perplexity"
    /// −Σll/(Σbytes·ln 2) over `.weighted` values.
    case bitsPerByte = "bits_per_byte"
}

/// One document's value for one metric, before aggregation.
public enum SampleValue: Sendable, Equatable {
    case scalar(Double)
    /// A log-likelihood and what it is normalised by (words, bytes, tokens).
    case weighted(loglikelihood: Double, weight: Double)

    /// The value as lm-eval logs it: the scalar, or `[ll, weight]`.
    public var jsonValue: Any {
        switch self {
        case let .scalar(v): return JSONNumber.clean(v)
        case let .weighted(ll, w): return [JSONNumber.clean(ll), JSONNumber.clean(w)]
        }
    }
}

/// A metric a task reports: its name, aggregation, direction, and whether a standard error goes
/// with it.
public struct MetricSpec: Sendable, Equatable {
    public var name: String
    public var aggregation: Aggregation
    public var higherIsBetter: Bool
    public var hasStandardError: Bool
    public init(_ name: String, _ aggregation: Aggregation, higherIsBetter: Bool, hasStandardError: Bool) {
        self.name = name
        self.aggregation = aggregation
        self.higherIsBetter = higherIsBetter
        self.hasStandardError = hasStandardError
    }

    public static let acc = MetricSpec("acc", .mean, higherIsBetter: true, hasStandardError: true)
    public static let accNorm = MetricSpec("acc_norm", .mean, higherIsBetter: true, hasStandardError: true)

    /// Aggregates the documents' values; the standard error is NaN where undefined.
    public func aggregate(_ values: [SampleValue]) -> (value: Double, standardError: Double?) {
        let scalars = values.compactMap { v -> Double? in if case let .scalar(x) = v { return x } else { return nil } }
        let weighted = values.compactMap { v -> (loglikelihood: Double, weight: Double)? in
            if case let .weighted(ll, w) = v { return (ll, w) } else { return nil }
        }
        switch aggregation {
        case .mean:
            return (Metrics.mean(scalars), hasStandardError ? Metrics.standardErrorOfMean(scalars) : nil)
        case .perplexity:
            return (Metrics.perplexity(loglikelihoods: scalars), nil)
        case .weightedPerplexity:
            return (Metrics.weightedPerplexity(weighted), nil)
        case .bitsPerByte:
            return (Metrics.bitsPerByte(weighted), nil)
        }
    }
}

/// One document of a task: the requests it asks, what its metrics need, and what
/// `--log-samples` shows of it.
public struct TaskDocument: Sendable {
    /// Position in the task's file order (0-based).
    public var id: Int
    public var requests: [Request]
    /// Index of the correct choice (multiple-choice tasks).
    public var gold: Int?
    /// The choice texts whose Unicode-scalar lengths normalise `acc_norm`.
    public var choices: [String]
    /// Normalisers of weighted metrics (`words`, `bytes`, `tokens`).
    public var weights: [String: Double]
    /// The document's fields as read from the file, for `--log-samples`.
    public var fields: [String: String]
    /// The target as lm-eval logs it.
    public var target: String

    public init(id: Int, requests: [Request], gold: Int? = nil, choices: [String] = [],
                weights: [String: Double] = [:], fields: [String: String] = [:], target: String = "") {
        self.id = id
        self.requests = requests
        self.gold = gold
        self.choices = choices
        self.weights = weights
        self.fields = fields
        self.target = target
    }
}

/// What a task may use to build its documents.
public struct TaskSetup {
    /// Folder holding the data sets (`--data-dir`).
    public var dataDirectory: URL
    /// Window length of the chunked perplexity tasks (`--seq-len`).
    public var sequenceLength: Int
    /// The model's tokenizer (the chunked tasks tokenize the whole corpus once).
    public var tokenizer: Tokenizer?
    public init(dataDirectory: URL, sequenceLength: Int = 128, tokenizer: Tokenizer? = nil) {
        self.dataDirectory = dataDirectory
        self.sequenceLength = sequenceLength
        self.tokenizer = tokenizer
    }

    /// `dataDirectory/relative`, or an error naming the missing file.
    public func file(_ relative: String) throws -> URL {
        let url = dataDirectory.appendingPathComponent(relative)
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw InputError(url.path, "data file not found (set --data-dir or GREENPRUNE_DATA to the folder holding \(relative))")
        }
        return url
    }
}

/// A log-likelihood task: a data reader and request builder (`documents`) and the metrics
/// (`process` per document, `metrics` to aggregate).
public protocol EvaluationTask {
    var name: String { get }
    var version: Double { get }
    var metrics: [MetricSpec] { get }
    /// The task's primary metric, groups and cost (see `TaskInfo`); by default its first metric,
    /// no group, and `TaskInfo`'s default size.
    var info: TaskInfo { get }
    /// The task's definition for `configs` in results.json.
    var configuration: [String: Any] { get }
    /// Every document of the task in file order (`--limit` is applied by the caller).
    func documents(_ setup: TaskSetup) throws -> [TaskDocument]
    /// The document's metric values from its answers (one per request, in request order).
    func process(_ document: TaskDocument, answers: [Answer]) -> [String: SampleValue]
}

extension EvaluationTask {
    public var info: TaskInfo { TaskInfo(name: name, metrics: metrics) }

    /// acc (and acc_norm where listed) of a multiple-choice document.
    public func multipleChoiceValues(_ document: TaskDocument, answers: [Answer]) -> [String: SampleValue] {
        let lls = answers.map(\.loglikelihood)
        let gold = document.gold ?? -1
        var out: [String: SampleValue] = [:]
        for m in metrics {
            switch m.name {
            case "acc": out["acc"] = .scalar(Metrics.accuracy(loglikelihoods: lls, gold: gold))
            case "acc_norm": out["acc_norm"] = .scalar(Metrics.normalizedAccuracy(loglikelihoods: lls, choices: document.choices, gold: gold))
            default: break
            }
        }
        return out
    }
}

/// JSON cannot hold NaN or infinities: lm-eval writes "N/A" for an undefined standard error.
public enum JSONNumber {
    public static func clean(_ v: Double) -> Any { v.isFinite ? v : "N/A" }
}
