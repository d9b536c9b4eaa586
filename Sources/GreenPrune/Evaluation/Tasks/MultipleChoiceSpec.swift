import Foundation
import Yams

/// A multiple-choice task described in a YAML/JSON file under `configs/tasks/`, with lm-eval's
/// field names where they exist:
///
/// ```yaml
/// task: piqa
/// file: piqa/valid.jsonl             # under --data-dir
/// labels_file: piqa/valid-labels.lst # optional: line k becomes field `label` of document k
/// format: jsonl                      # or `lines`, with lines_per_doc (fields line1, line2, ...)
/// doc_to_text: "Question: {{goal}}\nAnswer:"
/// doc_to_choice: ["{{sol1}}", "{{sol2}}"]   # templates, or "{{field}}" naming an array field
/// doc_to_target: "{{label}}"          # renders to the gold index
/// target_delimiter: " "               # put before each choice (default " ")
/// metric_list:                      # or the short form [acc, acc_norm]
///   - {metric: acc, aggregation: mean, higher_is_better: true}
///   - {metric: acc_norm, aggregation: mean, higher_is_better: true}
/// primary_metric: acc_norm            # shown by reports (default: the first listed)
/// tag: zero_shot_average              # groups the task is averaged in (a name or a list)
/// documents: 1838                     # full-set size and tokens read per document, for
/// tokens_per_document: 41             # the sweep's time estimate (default 100 each)
/// ```
/// With `scoring: partial` (WinoGrande) the choices are contexts and every request scores the
/// same continuation `target_delimiter + render(continuation)`.
public struct MultipleChoiceSpec: Codable, Equatable, Sendable {
    public enum Format: String, Codable, Sendable { case jsonl, lines }
    public enum Scoring: String, Codable, Sendable { case choices, partial }

    /// Where the choices come from: a list of templates, or one array field.
    public enum Choices: Codable, Equatable, Sendable {
        case templates([String])
        case field(String)

        public init(from decoder: Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let list = try? c.decode([String].self) {
                self = .templates(list)
            } else {
                let s = try c.decode(String.self)
                guard let name = Template.soleField(s) else {
                    throw DecodingError.dataCorruptedError(in: c, debugDescription: "doc_to_choice must be a list of templates or \"{{field}}\" naming an array field, got \(s)")
                }
                self = .field(name)
            }
        }

        public func encode(to encoder: Encoder) throws {
            var c = encoder.singleValueContainer()
            switch self {
            case let .templates(t): try c.encode(t)
            case let .field(f): try c.encode("{{\(f)}}")
            }
        }
    }

    public var task: String
    public var version: Double
    public var file: String
    public var labelsFile: String?
    public var format: Format
    public var linesPerDoc: Int?
    public var docToText: String
    public var docToChoice: Choices
    public var docToTarget: String
    public var targetDelimiter: String
    public var scoring: Scoring
    public var continuation: String?
    public var metricList: [String]
    /// lm-eval's `tag`: the groups whose averages include the task.
    public var tag: [String]
    public var primaryMetric: String?
    public var documents: Double?
    public var tokensPerDocument: Double?

    /// One `metric_list` entry: a metric name, or lm-eval's `{metric, aggregation, higher_is_better}`.
    /// acc and acc_norm are means where higher is better; an entry saying otherwise is refused.
    struct MetricEntry: Decodable {
        var metric: String
        enum CodingKeys: String, CodingKey {
            case metric, aggregation
            case higherIsBetter = "higher_is_better"
        }
        init(from decoder: Decoder) throws {
            if let name = try? decoder.singleValueContainer().decode(String.self) {
                metric = name
                return
            }
            let c = try decoder.container(keyedBy: CodingKeys.self)
            metric = try c.decode(String.self, forKey: .metric)
            if let a = try c.decodeIfPresent(String.self, forKey: .aggregation), a != Aggregation.mean.rawValue {
                throw DecodingError.dataCorruptedError(forKey: .aggregation, in: c, debugDescription: "\(metric) is aggregated by mean, not \(a)")
            }
            if try c.decodeIfPresent(Bool.self, forKey: .higherIsBetter) == false {
                throw DecodingError.dataCorruptedError(forKey: .higherIsBetter, in: c, debugDescription: "\(metric) is higher-is-better")
            }
        }
    }

    /// A string or a list of strings (lm-eval's `tag`).
    struct Names: Decodable {
        var names: [String]
        init(from decoder: Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let list = try? c.decode([String].self) { names = list } else { names = [try c.decode(String.self)] }
        }
    }

    enum CodingKeys: String, CodingKey {
        case task, version, file, format, scoring, continuation, tag, documents
        case primaryMetric = "primary_metric"
        case tokensPerDocument = "tokens_per_document"
        case labelsFile = "labels_file"
        case linesPerDoc = "lines_per_doc"
        case docToText = "doc_to_text"
        case docToChoice = "doc_to_choice"
        case docToTarget = "doc_to_target"
        case targetDelimiter = "target_delimiter"
        case metricList = "metric_list"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        task = try c.decode(String.self, forKey: .task)
        version = try c.decodeIfPresent(Double.self, forKey: .version) ?? 1.0
        file = try c.decode(String.self, forKey: .file)
        labelsFile = try c.decodeIfPresent(String.self, forKey: .labelsFile)
        format = try c.decodeIfPresent(Format.self, forKey: .format) ?? .jsonl
        linesPerDoc = try c.decodeIfPresent(Int.self, forKey: .linesPerDoc)
        docToText = try c.decodeIfPresent(String.self, forKey: .docToText) ?? ""
        docToChoice = try c.decode(Choices.self, forKey: .docToChoice)
        docToTarget = try c.decode(String.self, forKey: .docToTarget)
        targetDelimiter = try c.decodeIfPresent(String.self, forKey: .targetDelimiter) ?? " "
        scoring = try c.decodeIfPresent(Scoring.self, forKey: .scoring) ?? .choices
        continuation = try c.decodeIfPresent(String.self, forKey: .continuation)
        metricList = try c.decodeIfPresent([MetricEntry].self, forKey: .metricList)?.map(\.metric) ?? ["acc"]
        tag = try c.decodeIfPresent(Names.self, forKey: .tag)?.names ?? []
        primaryMetric = try c.decodeIfPresent(String.self, forKey: .primaryMetric)
        documents = try c.decodeIfPresent(Double.self, forKey: .documents)
        tokensPerDocument = try c.decodeIfPresent(Double.self, forKey: .tokensPerDocument)
    }

    /// Loud checks of what decoding cannot see; `source` names the spec file in errors.
    public func validate(source: String) throws {
        if format == .lines, (linesPerDoc ?? 0) < 1 {
            throw InputError(source, "format: lines needs lines_per_doc ≥ 1")
        }
        if scoring == .partial, continuation == nil {
            throw InputError(source, "scoring: partial needs a `continuation` template")
        }
        if scoring == .choices, docToText.isEmpty {
            throw InputError(source, "doc_to_text is missing")
        }
        for m in metricList where m != "acc" && m != "acc_norm" {
            throw InputError(source, "metric_list: unknown metric \(m) (known: acc, acc_norm)")
        }
        if scoring == .partial, metricList.contains("acc_norm") {
            throw InputError(source, "acc_norm is undefined with scoring: partial (the choices are contexts)")
        }
        if let p = primaryMetric, !metricList.contains(p) {
            throw InputError(source, "primary_metric \(p) is not in metric_list (\(metricList.joined(separator: ", ")))")
        }
        for (key, v) in [("documents", documents), ("tokens_per_document", tokensPerDocument)] {
            if let v, !(v > 0 && v.isFinite) { throw InputError(source, "\(key) must be a positive number, got \(v)") }
        }
    }

    /// Reads a `.yaml`/`.yml`/`.json` description.
    public static func load(_ url: URL) throws -> MultipleChoiceSpec {
        let text: String
        do { text = try String(contentsOf: url, encoding: .utf8) } catch {
            throw InputError(url.path, "cannot read task description: \(error.localizedDescription)")
        }
        do {
            let spec: MultipleChoiceSpec
            if url.pathExtension.lowercased() == "json" {
                spec = try JSONDecoder().decode(MultipleChoiceSpec.self, from: Data(text.utf8))
            } else {
                try YAMLNesting.check(text, file: url.path)
                spec = try YAMLDecoder().decode(MultipleChoiceSpec.self, from: text)
            }
            try spec.validate(source: url.path)
            return spec
        } catch let e as InputError {
            throw e
        } catch {
            throw InputError(url.path, "invalid task description: \(Template.oneLine(error))")
        }
    }
}

/// `{{field}}` substitution over a document's fields.
public enum Template {
    /// The field name when `template` is exactly `{{name}}` (spaces allowed inside the braces).
    public static func soleField(_ template: String) -> String? {
        let t = template.trimmingCharacters(in: .whitespaces)
        guard t.hasPrefix("{{"), t.hasSuffix("}}"), t.count > 4 else { return nil }
        let inner = t.dropFirst(2).dropLast(2).trimmingCharacters(in: .whitespaces)
        return inner.isEmpty || inner.contains("{") || inner.contains("}") ? nil : inner
    }

    /// Replaces every `{{name}}` with `fields[name]`; `missing` is called for an absent field.
    public static func render(_ template: String, _ fields: [String: String], missing: (String) -> Error) throws -> String {
        var out = ""
        var rest = Substring(template)
        while let open = rest.range(of: "{{") {
            out += rest[..<open.lowerBound]
            guard let close = rest[open.upperBound...].range(of: "}}") else {
                out += rest[open.lowerBound...]
                return out
            }
            let name = rest[open.upperBound ..< close.lowerBound].trimmingCharacters(in: .whitespaces)
            guard let value = fields[name] else { throw missing(name) }
            out += value
            rest = rest[close.upperBound...]
        }
        out += rest
        return out
    }

    /// An error's description on one line.
    static func oneLine(_ error: Error) -> String {
        let text: String
        if let d = error as? DecodingError {
            switch d {
            case let .keyNotFound(key, _): text = "missing key \(key.stringValue)"
            case let .typeMismatch(_, ctx), let .valueNotFound(_, ctx), let .dataCorrupted(ctx):
                let path = ctx.codingPath.map(\.stringValue).joined(separator: ".")
                text = (path.isEmpty ? "" : path + ": ") + ctx.debugDescription
            @unknown default: text = "\(d)"
            }
        } else {
            text = error.localizedDescription
        }
        return text.split(whereSeparator: \.isNewline).joined(separator: " ")
    }
}
