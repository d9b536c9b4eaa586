import Foundation

/// What the sweep and the report know about a task without running it: its metrics (each with
/// aggregation and direction), the one shown in tables, the groups it is averaged in, whether it
/// compares against a baseline, and its cost for the sweep's time estimate.
///
/// Every task states these facts once: a Swift task in its type (`info`), a multiple-choice task
/// in its YAML description (`tag`, `primary_metric`, `metric_list`, `documents`,
/// `tokens_per_document`). `TaskRegistry` is where everyone else reads them.
public struct TaskInfo: Sendable, Equatable {
    /// How much work one document is, for `WorkEstimate`.
    public enum Cost: Sendable, Equatable {
        /// Tokens a decoder reads per document (per window for the chunked perplexities).
        case tokensPerDocument(Double)
        /// Seconds per document on two cores (encoder tasks, timed with all-MiniLM-L6-v2).
        case secondsPerDocument(Double)
    }

    public var name: String
    /// In the order results.json and the stdout table list them.
    public var metrics: [MetricSpec]
    /// The metric a report shows for the task (lm-eval / LLM-Pruner's choice).
    public var primaryMetric: String
    /// The groups the task is averaged in (lm-eval's `tag`), e.g. `TaskGroup.zeroShotAverage`.
    public var groups: [String]
    /// Runs a model against its baseline (`--baseline`); a sweep runs it as an unmeasured step.
    public var needsBaseline: Bool
    public var cost: Cost
    /// Documents in the full set (windows for the chunked perplexities).
    public var documents: Double

    /// Assumed for a task whose description does not state its size.
    public static let defaultDocuments = 100.0
    public static let defaultTokensPerDocument = 100.0

    public init(name: String, metrics: [MetricSpec], primaryMetric: String? = nil, groups: [String] = [],
                needsBaseline: Bool = false, cost: Cost = .tokensPerDocument(TaskInfo.defaultTokensPerDocument),
                documents: Double = TaskInfo.defaultDocuments) {
        self.name = name
        self.metrics = metrics
        self.primaryMetric = primaryMetric ?? metrics.first?.name ?? ""
        self.groups = groups
        self.needsBaseline = needsBaseline
        self.cost = cost
        self.documents = documents
    }

    /// The spec of metric `name`, if the task reports it.
    public func metric(_ name: String) -> MetricSpec? { metrics.first { $0.name == name } }
}

/// Group names tasks declare in `groups` / YAML `tag`.
public enum TaskGroup {
    /// The zero-shot multiple-choice tasks averaged as pruning papers do (LLM-Pruner's seven:
    /// boolq, piqa, hellaswag, winogrande, arc_easy, arc_challenge, openbookqa).
    public static let zeroShotAverage = "zero_shot_average"
}
