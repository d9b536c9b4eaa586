import Foundation

/// `lambada_openai`: one `loglikelihood(context, " " + continuation)` per passage; `acc` = every
/// continuation token greedy, `perplexity` = exp(−mean ll) over passages.
public struct LambadaTask: EvaluationTask {
    public static let file = "lambada_openai/lambada_openai_test.jsonl"
    public init() {}
    public var name: String { "lambada_openai" }
    public var version: Double { 1.0 }
    public var metrics: [MetricSpec] {
        [MetricSpec("perplexity", .perplexity, higherIsBetter: false, hasStandardError: false), .acc]
    }
    public var info: TaskInfo {
        TaskInfo(name: name, metrics: metrics, primaryMetric: "acc", cost: .tokensPerDocument(86), documents: 5153)
    }
    public var configuration: [String: Any] {
        ["task": name, "dataset_path": Self.file, "output_type": "loglikelihood",
         "doc_to_text": "{{context}}", "doc_to_target": " {{continuation}}", "num_fewshot": 0,
         "metric_list": metrics.map { ["metric": $0.name, "aggregation": $0.aggregation.rawValue, "higher_is_better": $0.higherIsBetter] },
         "metadata": ["version": version]]
    }

    public func documents(_ setup: TaskSetup) throws -> [TaskDocument] {
        let url = try setup.file(Self.file)
        return try DataFiles.jsonLines(url).enumerated().map { i, entry in
            let place = "\(url.path):\(entry.line)"
            guard let context = DataFiles.string(entry.object["context"]) else { throw InputError(place, "field context is missing or not text") }
            guard let cont = DataFiles.string(entry.object["continuation"]) else { throw InputError(place, "field continuation is missing or not text") }
            return TaskDocument(id: i, requests: [.loglikelihood(context: context, continuation: " " + cont)],
                                fields: ["context": context, "continuation": cont], target: " " + cont)
        }
    }

    public func process(_ document: TaskDocument, answers: [Answer]) -> [String: SampleValue] {
        guard let a = answers.first else { return [:] }
        return ["perplexity": .scalar(a.loglikelihood), "acc": .scalar(a.isGreedy ? 1 : 0)]
    }
}
