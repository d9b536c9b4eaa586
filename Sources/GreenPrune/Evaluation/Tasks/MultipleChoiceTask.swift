import Foundation

/// A multiple-choice task run from a `MultipleChoiceSpec`: each document asks one
/// `loglikelihood` per choice; `acc` (and `acc_norm`) compare the answers with the gold index.
public struct MultipleChoiceTask: EvaluationTask {
    public let spec: MultipleChoiceSpec
    public init(spec: MultipleChoiceSpec) { self.spec = spec }

    public var name: String { spec.task }
    public var version: Double { spec.version }
    public var metrics: [MetricSpec] {
        spec.metricList.map { $0 == "acc_norm" ? MetricSpec.accNorm : MetricSpec.acc }
    }
    public var info: TaskInfo {
        TaskInfo(name: name, metrics: metrics, primaryMetric: spec.primaryMetric, groups: spec.tag,
                 cost: .tokensPerDocument(spec.tokensPerDocument ?? TaskInfo.defaultTokensPerDocument),
                 documents: spec.documents ?? TaskInfo.defaultDocuments)
    }

    public var configuration: [String: Any] {
        var c: [String: Any] = [
            "task": spec.task, "dataset_path": spec.file, "output_type": "multiple_choice",
            "doc_to_text": spec.docToText, "doc_to_target": spec.docToTarget,
            "target_delimiter": spec.targetDelimiter, "num_fewshot": 0,
            "metric_list": metrics.map { ["metric": $0.name, "aggregation": $0.aggregation.rawValue, "higher_is_better": $0.higherIsBetter] },
            "metadata": ["version": spec.version],
        ]
        switch spec.docToChoice {
        case let .templates(t): c["doc_to_choice"] = t
        case let .field(f): c["doc_to_choice"] = "{{\(f)}}"
        }
        if spec.scoring == .partial { c["scoring"] = "partial"; c["continuation"] = spec.continuation ?? "" }
        if let l = spec.labelsFile { c["labels_file"] = l }
        return c
    }

    /// A raw document: its fields as strings, array fields apart, and where it starts.
    struct RawDocument {
        var line: Int
        var fields: [String: String]
        var arrays: [String: [String]]
    }

    public func documents(_ setup: TaskSetup) throws -> [TaskDocument] {
        let url = try setup.file(spec.file)
        var raws = try readRaw(url)
        if let labels = spec.labelsFile {
            let lurl = try setup.file(labels)
            let lines = try DataFiles.lines(lurl)
            guard lines.count == raws.count else {
                throw InputError(lurl.path, "has \(lines.count) labels for \(raws.count) documents in \(spec.file)")
            }
            for i in raws.indices { raws[i].fields["label"] = lines[i].trimmingCharacters(in: .whitespaces) }
        }
        return try raws.enumerated().map { try document($0.offset, $0.element, url: url) }
    }

    func readRaw(_ url: URL) throws -> [RawDocument] {
        switch spec.format {
        case .jsonl:
            return try DataFiles.jsonLines(url).map { entry in
                var fields: [String: String] = [:]
                var arrays: [String: [String]] = [:]
                for (k, v) in entry.object {
                    if let s = DataFiles.string(v) { fields[k] = s } else if let a = DataFiles.strings(v) { arrays[k] = a }
                }
                return RawDocument(line: entry.line, fields: fields, arrays: arrays)
            }
        case .lines:
            let n = spec.linesPerDoc ?? 1
            let lines = try DataFiles.lines(url)
            guard lines.count % n == 0 else {
                throw InputError("\(url.path):\(lines.count - lines.count % n + 1)", "incomplete document: \(lines.count % n) of \(n) lines")
            }
            return stride(from: 0, to: lines.count, by: n).map { start in
                var fields: [String: String] = [:]
                for k in 0 ..< n { fields["line\(k + 1)"] = String(lines[start + k]) }
                return RawDocument(line: start + 1, fields: fields, arrays: [:])
            }
        }
    }

    func document(_ id: Int, _ raw: RawDocument, url: URL) throws -> TaskDocument {
        let place = "\(url.path):\(raw.line)"
        let missing = { (field: String) -> Error in InputError(place, "field \(field) is missing or not text") }
        let choices: [String]
        switch spec.docToChoice {
        case let .templates(t): choices = try t.map { try Template.render($0, raw.fields, missing: missing) }
        case let .field(f):
            guard let a = raw.arrays[f] else { throw InputError(place, "field \(f) is missing or not an array of text") }
            choices = a
        }
        guard !choices.isEmpty else { throw InputError(place, "no choices") }
        let targetText = try Template.render(spec.docToTarget, raw.fields, missing: missing).trimmingCharacters(in: .whitespaces)
        guard let gold = Int(targetText) else { throw InputError(place, "gold \"\(targetText)\" is not an integer") }
        guard choices.indices.contains(gold) else {
            throw InputError(place, "gold index \(gold) out of range for \(choices.count) choices")
        }
        let requests: [Request]
        switch spec.scoring {
        case .choices:
            let context = try Template.render(spec.docToText, raw.fields, missing: missing)
            requests = choices.map { .loglikelihood(context: context, continuation: spec.targetDelimiter + $0) }
        case .partial:
            let cont = spec.targetDelimiter + (try Template.render(spec.continuation ?? "", raw.fields, missing: missing))
            requests = choices.map { .loglikelihood(context: $0, continuation: cont) }
        }
        var fields = raw.fields
        for (k, v) in raw.arrays { fields[k] = "[" + v.map { "\"\($0)\"" }.joined(separator: ", ") + "]" }
        return TaskDocument(id: id, requests: requests, gold: gold, choices: choices, fields: fields, target: String(gold))
    }

    public func process(_ document: TaskDocument, answers: [Answer]) -> [String: SampleValue] {
        multipleChoiceValues(document, answers: answers)
    }
}
