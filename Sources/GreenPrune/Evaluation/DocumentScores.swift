import Foundation

/// Per-document metric values of one `evaluate` run, written as `documents.json` beside
/// results.json. `report` reads them to put an interval on every figure and to compare a variant
/// with its baseline document by document (paired), which results.json's aggregates cannot do.
///
/// ```
/// {"version": 1, "tasks": {"hellaswag": {"documents": [0, 1, ...],
///    "metrics": {"acc": {"aggregation": "mean", "values": [1, 0, ...]}, ...}},
///  "wikitext2_chunked": {"documents": [...], "metrics": {"perplexity":
///    {"aggregation": "weighted_perplexity", "loglikelihoods": [...], "weights": [...]}}},
///  "stsb": {"documents": [...], "metrics": {"spearman": {"aggregation": "spearman", "x": [cosine...], "y": [gold...]}}}}}
/// ```
public struct DocumentScores: Codable, Equatable, Sendable {
    /// One metric's per-document values, in the shape its aggregation needs.
    public struct MetricValues: Codable, Equatable, Sendable {
        /// `mean`, `perplexity` (exp −mean of `values`), `weighted_perplexity`, `bits_per_byte`
        /// (over `loglikelihoods` / `weights`), `spearman` (×100, of `x` against `y`).
        public var aggregation: String
        public var values: [Double]?
        public var loglikelihoods: [Double]?
        public var weights: [Double]?
        public var x: [Double]?
        public var y: [Double]?

        enum CodingKeys: String, CodingKey { case aggregation, values, loglikelihoods, weights, x, y }

        public init(aggregation: String, values: [Double]? = nil, loglikelihoods: [Double]? = nil,
                    weights: [Double]? = nil, x: [Double]? = nil, y: [Double]? = nil) {
            self.aggregation = aggregation
            self.values = values
            self.loglikelihoods = loglikelihoods
            self.weights = weights
            self.x = x
            self.y = y
        }

        /// Documents held (nil when the arrays disagree in length: a malformed file).
        public var count: Int? {
            let lengths = [values, loglikelihoods, weights, x, y].compactMap { $0?.count }
            guard let first = lengths.first, lengths.allSatisfy({ $0 == first }) else { return nil }
            if aggregation == "weighted_perplexity" || aggregation == "bits_per_byte" {
                guard loglikelihoods != nil, weights != nil else { return nil }
            }
            if aggregation == "spearman" { guard x != nil, y != nil else { return nil } }
            if aggregation == "mean" || aggregation == "perplexity" { guard values != nil else { return nil } }
            return first
        }

        /// Same aggregation and arrays, element by element within 1e-4 relative (exact for 0 and 1).
        func isClose(to other: MetricValues) -> Bool {
            guard aggregation == other.aggregation else { return false }
            func close(_ a: [Double]?, _ b: [Double]?) -> Bool {
                guard let a, let b else { return a == nil && b == nil }
                return a.count == b.count && zip(a, b).allSatisfy { abs($0 - $1) <= 1e-4 * max(1, abs($0), abs($1)) }
            }
            return close(values, other.values) && close(loglikelihoods, other.loglikelihoods) && close(weights, other.weights)
                && close(x, other.x) && close(y, other.y)
        }

        /// The values of the documents at `indices`.
        func subset(_ indices: [Int]) -> MetricValues {
            func pick(_ a: [Double]?) -> [Double]? { a.map { a in indices.map { a[$0] } } }
            return MetricValues(aggregation: aggregation, values: pick(values), loglikelihoods: pick(loglikelihoods),
                                weights: pick(weights), x: pick(x), y: pick(y))
        }
    }

    public struct TaskScores: Codable, Equatable, Sendable {
        /// Document ids (position in the task's file order), one per value.
        public var documents: [Int]
        public var metrics: [String: MetricValues]
        enum CodingKeys: String, CodingKey { case documents, metrics }
        public init(documents: [Int], metrics: [String: MetricValues]) {
            self.documents = documents
            self.metrics = metrics
        }
    }

    public static let fileName = "documents.json"

    public var version: Int
    public var tasks: [String: TaskScores]

    enum CodingKeys: String, CodingKey { case version, tasks }

    public init(tasks: [String: TaskScores]) {
        version = 1
        self.tasks = tasks
    }

    /// From an evaluation's task reports.
    public init(_ reports: [TaskReport]) {
        var tasks: [String: TaskScores] = [:]
        for r in reports {
            if let o = r.language {
                var metrics: [String: MetricValues] = [:]
                for m in o.metrics {
                    let vs = o.sampleValues.map { $0[m.name] }
                    switch m.aggregation {
                    case .mean, .perplexity:
                        let xs = vs.compactMap { v -> Double? in if case let .scalar(x)? = v { return x } else { return nil } }
                        if xs.count == vs.count { metrics[m.name] = MetricValues(aggregation: m.aggregation.rawValue, values: xs) }
                    case .weightedPerplexity, .bitsPerByte:
                        let ws = vs.compactMap { v -> (Double, Double)? in
                            if case let .weighted(ll, w)? = v { return (ll, w) } else { return nil }
                        }
                        if ws.count == vs.count {
                            metrics[m.name] = MetricValues(aggregation: m.aggregation.rawValue, loglikelihoods: ws.map(\.0),
                                                           weights: ws.map(\.1))
                        }
                    }
                }
                tasks[r.name] = TaskScores(documents: o.documents.map(\.id), metrics: metrics)
            } else if let e = r.encoder {
                var metrics: [String: MetricValues] = [:]
                let ids = e.samples.enumerated().map { i, s in s["doc_id"] as? Int ?? i }
                for m in e.metrics {
                    if m.name == "spearman" {
                        let x = e.samples.compactMap { $0["cosine"] as? Double }, y = e.samples.compactMap { $0["target"] as? Double }
                        if x.count == e.samples.count, y.count == e.samples.count {
                            metrics[m.name] = MetricValues(aggregation: "spearman", x: x, y: y)
                        }
                    } else {
                        let xs = e.samples.compactMap { $0[m.name] as? Double }
                        if xs.count == e.samples.count { metrics[m.name] = MetricValues(aggregation: "mean", values: xs) }
                    }
                }
                tasks[r.name] = TaskScores(documents: ids, metrics: metrics)
            }
        }
        self.init(tasks: tasks)
    }

    /// The tasks of several evaluations of one model (a sweep run's evaluate and compare steps).
    public static func merged(_ parts: [DocumentScores]) -> DocumentScores {
        var tasks: [String: TaskScores] = [:]
        for p in parts { tasks.merge(p.tasks) { _, later in later } }
        return DocumentScores(tasks: tasks)
    }

    /// Whether every task here is the start of the same task in `whole`: the same first documents
    /// with the same values (0/1 scores exactly; log-likelihoods and similar within 1e-4 relative,
    /// since a longer evaluation batches the same documents with others). Timing rounds on a
    /// task's first N documents are checked against the whole evaluation this way.
    public func isPrefix(of whole: DocumentScores) -> Bool {
        tasks.allSatisfy { name, part in
            guard let w = whole.tasks[name], part.documents.count <= w.documents.count,
                  Array(w.documents.prefix(part.documents.count)) == part.documents else { return false }
            let head = Array(0 ..< part.documents.count)
            return part.metrics.allSatisfy { metric, values in
                guard let wv = w.metrics[metric], wv.count == w.documents.count else { return false }
                return values.isClose(to: wv.subset(head))
            }
        }
    }

    /// Reads `directory/documents.json`; nil when the run has none (evaluated before it existed).
    public static func read(from directory: URL) throws -> DocumentScores? {
        let url = directory.appendingPathComponent(fileName)
        guard FileManager.default.fileExists(atPath: url.path) else { return nil }
        do {
            return try JSONDecoder().decode(DocumentScores.self, from: Data(contentsOf: url))
        } catch {
            throw InputError(url.path, "not a documents.json GreenPrune wrote (\(error.localizedDescription))")
        }
    }

    public func write(to directory: URL) throws {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        try AtomicFile.write(try e.encode(self), to: directory.appendingPathComponent(Self.fileName))
    }
}

/// A figure with its 95% interval (`interval` nil where none can be given).
public struct Estimate: Codable, Equatable, Sendable {
    public var value: Double
    public var interval: Interval?
    enum CodingKeys: String, CodingKey { case value, interval }
    public init(_ value: Double, _ interval: Interval?) {
        self.value = value
        self.interval = interval
    }
}

/// How a variant differs from its baseline on one metric, on the documents both scored.
public struct MetricComparison: Codable, Equatable, Sendable {
    /// `difference` (variant − baseline, metric units) or `ratio` (variant / baseline: perplexities).
    public var kind: String
    public var estimate: Estimate
    /// Documents both runs scored.
    public var documents: Int
    enum CodingKeys: String, CodingKey { case kind, estimate, documents }

    public init(kind: String, estimate: Estimate, documents: Int) {
        self.kind = kind
        self.estimate = estimate
        self.documents = documents
    }

    /// Whether the interval excludes no change (0 for a difference, 1 for a ratio).
    public var isResolved: Bool {
        guard let i = estimate.interval, i.low.isFinite, i.high.isFinite else { return false }
        return !i.contains(kind == "ratio" ? 1 : 0)
    }
}

extension DocumentScores.MetricValues {
    /// The metric's value from these documents and its 95% interval: normal (lm-eval's standard
    /// error) for means, a seeded percentile bootstrap over documents for the rest.
    public func estimate(seed: UInt64 = Uncertainty.defaultSeed) -> Estimate? {
        guard count != nil, (count ?? 0) > 0 else { return nil }
        switch aggregation {
        case "mean":
            let v = values ?? []
            let m = Metrics.mean(v), se = Uncertainty.standardError(v)
            return Estimate(m, se.isFinite ? Uncertainty.normalInterval(mean: m, standardError: se) : nil)
        case "perplexity":
            let v = values ?? [], w = [Double](repeating: 1, count: v.count)
            return Estimate(Metrics.perplexity(loglikelihoods: v), Uncertainty.perplexityInterval(loglikelihoods: v, weights: w, seed: seed))
        case "weighted_perplexity", "bits_per_byte":
            let ll = loglikelihoods ?? [], w = weights ?? []
            let i = Uncertainty.perplexityInterval(loglikelihoods: ll, weights: w, seed: seed)
            let items = zip(ll, w).map { (loglikelihood: $0, weight: $1) }
            if aggregation == "bits_per_byte" {
                // bits per byte = ln(byte perplexity) / ln 2, monotone: the interval maps through.
                return Estimate(Metrics.bitsPerByte(items), Interval(low: log(i.low) / M_LN2, high: log(i.high) / M_LN2))
            }
            return Estimate(Metrics.weightedPerplexity(items), i)
        case "spearman":
            let x = self.x ?? [], y = self.y ?? []
            let i = Uncertainty.bootstrap(count: x.count, seed: seed) { counts in
                var xs: [Double] = [], ys: [Double] = []
                for k in counts.indices { for _ in 0 ..< counts[k] { xs.append(x[k]); ys.append(y[k]) } }
                return 100 * Metrics.spearman(xs, ys)
            }
            return Estimate(100 * Metrics.spearman(x, y), i)
        default:
            return nil
        }
    }

    /// This run (the variant) against `baseline` on the same documents, already aligned: a paired
    /// difference for means (and Spearman, by paired bootstrap), a paired ratio for perplexities.
    public func compare(to baseline: DocumentScores.MetricValues, seed: UInt64 = Uncertainty.defaultSeed) -> MetricComparison? {
        guard aggregation == baseline.aggregation, let n = count, n > 0, baseline.count == n else { return nil }
        switch aggregation {
        case "mean":
            let d = Uncertainty.pairedDifference(variant: values ?? [], baseline: baseline.values ?? [])
            return MetricComparison(kind: "difference", estimate: Estimate(d.mean, d.standardError.isFinite ? d.interval : nil), documents: n)
        case "perplexity":
            let v = values ?? [], b = baseline.values ?? [], w = [Double](repeating: 1, count: n)
            let r = exp(-(v.reduce(0, +) - b.reduce(0, +)) / Double(n))
            return MetricComparison(kind: "ratio", estimate: Estimate(r, Uncertainty.pairedPerplexityRatio(variant: v, baseline: b, weights: w, seed: seed)), documents: n)
        case "weighted_perplexity":
            // The same windows and tokens on both sides: the weights are the baseline's.
            let v = loglikelihoods ?? [], b = baseline.loglikelihoods ?? [], w = baseline.weights ?? []
            let r = exp(-(v.reduce(0, +) - b.reduce(0, +)) / w.reduce(0, +))
            return MetricComparison(kind: "ratio", estimate: Estimate(r, Uncertainty.pairedPerplexityRatio(variant: v, baseline: b, weights: w, seed: seed)), documents: n)
        case "bits_per_byte":
            let v = loglikelihoods ?? [], b = baseline.loglikelihoods ?? [], w = baseline.weights ?? []
            let d = -(v.reduce(0, +) - b.reduce(0, +)) / (w.reduce(0, +) * M_LN2)
            let i = Uncertainty.bootstrap(count: n, seed: seed) { counts in
                var dv = 0.0, sw = 0.0
                for k in counts.indices where counts[k] != 0 {
                    dv += Double(counts[k]) * (v[k] - b[k])
                    sw += Double(counts[k]) * w[k]
                }
                return -dv / (sw * M_LN2)
            }
            return MetricComparison(kind: "difference", estimate: Estimate(d, i), documents: n)
        case "spearman":
            let vx = x ?? [], bx = baseline.x ?? [], y = self.y ?? []
            let d = 100 * (Metrics.spearman(vx, y) - Metrics.spearman(bx, y))
            let i = Uncertainty.bootstrap(count: n, seed: seed) { counts in
                var a: [Double] = [], c: [Double] = [], g: [Double] = []
                for k in counts.indices { for _ in 0 ..< counts[k] { a.append(vx[k]); c.append(bx[k]); g.append(y[k]) } }
                return 100 * (Metrics.spearman(a, g) - Metrics.spearman(c, g))
            }
            return MetricComparison(kind: "difference", estimate: Estimate(d, i), documents: n)
        default:
            return nil
        }
    }
}

extension DocumentScores.TaskScores {
    /// `metric` of this run and of `baseline` restricted to the documents both scored, in this
    /// run's order; nil when either lacks the metric or they share no document.
    public func aligned(_ metric: String, with baseline: DocumentScores.TaskScores)
        -> (variant: DocumentScores.MetricValues, baseline: DocumentScores.MetricValues)? {
        guard let mv = metrics[metric], let mb = baseline.metrics[metric],
              mv.count == documents.count, mb.count == baseline.documents.count else { return nil }
        var position: [Int: Int] = [:]
        for (i, d) in baseline.documents.enumerated() where position[d] == nil { position[d] = i }
        var iv: [Int] = [], ib: [Int] = []
        for (i, d) in documents.enumerated() { if let j = position[d] { iv.append(i); ib.append(j) } }
        guard !iv.isEmpty else { return nil }
        return (mv.subset(iv), mb.subset(ib))
    }
}
