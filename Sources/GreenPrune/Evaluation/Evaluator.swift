import CKernels
import Foundation

/// What one task produced: the aggregated metrics and everything the outputs show.
public struct TaskOutcome {
    public var task: String
    public var version: Double
    public var configuration: [String: Any]
    public var metrics: [MetricSpec]
    /// Aggregated value and standard error (nil where the metric has none) per metric name.
    public var values: [String: (value: Double, standardError: Double?)]
    /// Documents in the file before / after `--limit`.
    public var originalCount: Int
    public var documents: [TaskDocument]
    /// Per document: one answer per request, in request order.
    public var answers: [[Answer]]
    /// Per document: the metric values before aggregation.
    public var sampleValues: [[String: SampleValue]]
    /// Every model call with its timing.
    public var batches: [BatchTiming]
    public var wallSeconds: Double
    /// Tokens the model read (after KV reuse) and tokens lm-eval would feed, Σ(len − 1).
    public var tokensRead: Int
    public var requestTokens: Int
    /// Tokens per second as lm-eval would count them (Σ(len − 1) over requests / wall time).
    public var tokensPerSecond: Double { wallSeconds > 0 ? Double(requestTokens) / wallSeconds : 0 }
}

/// Runs tasks on a model: builds the requests, scores them through the `Scorer`, and turns
/// the answers into metrics.
public final class Evaluator {
    public let model: TokenScorer
    public let encoder: RequestEncoder
    public let options: ScorerOptions
    public var showProgress: Bool

    /// `maxLength` defaults to the model's `maxLength` (`max_position_embeddings`).
    public init(model: TokenScorer, tokenizer: Tokenizer, maxLength: Int? = nil,
                options: ScorerOptions = ScorerOptions(), showProgress: Bool = true) {
        self.model = model
        self.encoder = RequestEncoder(tokenizer: tokenizer, maxLength: maxLength ?? model.maxLength)
        self.options = options
        self.showProgress = showProgress
    }

    /// Evaluates `task` on its first `limit` documents (all when nil).
    public func run(_ task: EvaluationTask, setup: TaskSetup, limit: Int? = nil) throws -> TaskOutcome {
        let all = try documents(task, setup: setup)
        // Documents past the limit are dropped before scoring rather than held through it.
        return try run(task, documents: Self.limited(all, limit), originalCount: all.count)
    }

    /// The first `limit` documents (all when nil), as a new array.
    public static func limited(_ documents: [TaskDocument], _ limit: Int?) -> [TaskDocument] {
        guard let limit, limit < documents.count else { return documents }
        return Array(documents.prefix(max(limit, 0)))
    }

    /// Every document of `task` (read before any scoring, so a bad file fails fast).
    public func documents(_ task: EvaluationTask, setup: TaskSetup) throws -> [TaskDocument] {
        var setup = setup
        if setup.tokenizer == nil { setup.tokenizer = encoder.tokenizer }
        return try task.documents(setup)
    }

    /// Evaluates `task` on the first `limit` of its already-read documents `all`;
    /// `originalCount` is the task's full size when `all` is already a prefix of it.
    public func run(_ task: EvaluationTask, documents all: [TaskDocument], limit: Int? = nil,
                    originalCount: Int? = nil) throws -> TaskOutcome {
        let start = DispatchTime.now().uptimeNanoseconds
        let documents = Self.limited(all, limit)
        let answers = try answer(documents, label: task.name)
        let samples = zip(documents, answers).map { task.process($0, answers: $1) }
        var values: [String: (Double, Double?)] = [:]
        for m in task.metrics { values[m.name] = m.aggregate(samples.compactMap { $0[m.name] }) }
        let wall = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        return TaskOutcome(task: task.name, version: task.version, configuration: task.configuration,
                           metrics: task.metrics, values: values, originalCount: originalCount ?? all.count,
                           documents: documents, answers: answers, sampleValues: samples,
                           batches: lastTimings, wallSeconds: wall,
                           tokensRead: lastTimings.reduce(0) { $0 + $1.tokens },
                           requestTokens: lastTimings.reduce(0) { $0 + $1.requestTokens })
    }

    private var lastTimings: [BatchTiming] = []

    /// Answers every request of `documents`: per document, per request, the summed log-likelihood
    /// over its windows and whether all its tokens were greedy.
    public func answer(_ documents: [TaskDocument], label: String = "score") throws -> [[Answer]] {
        // Flatten: document → request → windows (one sequence each).
        var sequences: [ScoreRequest] = []
        var groups: [Int] = []
        var owner: [(doc: Int, request: Int)] = []
        for (d, doc) in documents.enumerated() {
            for (r, req) in doc.requests.enumerated() {
                for s in try encoder.encode(req) {
                    sequences.append(s)
                    groups.append(d)
                    owner.append((d, r))
                }
            }
        }
        var remaining = [Int](repeating: 0, count: documents.count)
        for o in owner { remaining[o.doc] += 1 }
        let bar = ProgressBar(label, total: documents.count, unit: "docs", enabled: showProgress)
        bar.advance(remaining.filter { $0 == 0 }.count)
        // Reading and tokenizing the task's files left freed heap behind (tens of MB for a
        // whole corpus); give it back before the activations are allocated.
        gpk_release_free_heap()
        let scorer = Scorer(model: model, options: options)
        let results = try scorer.score(sequences, groups: groups) { finished in
            var docsDone = 0
            for i in finished {
                remaining[owner[i].doc] -= 1
                if remaining[owner[i].doc] == 0 { docsDone += 1 }
            }
            if docsDone > 0 { bar.advance(docsDone) }
        }
        bar.finish()
        lastTimings = scorer.timings

        var answers = documents.map { doc in
            [Answer](repeating: Answer(loglikelihood: 0, isGreedy: true, tokenCount: 0), count: doc.requests.count)
        }
        for (i, res) in results.enumerated() {
            let (d, r) = owner[i]
            answers[d][r].loglikelihood += res.sum
            answers[d][r].isGreedy = answers[d][r].isGreedy && res.allGreedy
            answers[d][r].tokenCount += res.logprobs.count
        }
        return answers
    }
}
