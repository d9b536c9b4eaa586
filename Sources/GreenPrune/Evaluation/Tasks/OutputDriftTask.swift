import Foundation

/// `output_drift`: how far a compressed decoder's outputs moved from its baseline's, position by
/// position, on the `wikitext2_chunked` windows (WikiText-2 test tokenized once with the
/// baseline's tokenizer, cut into `seq_len` windows; `--limit` takes the first N). Both models
/// read the same ids; each window's positions 0…T−2 (those that predict a token, as the
/// perplexity counts them) give, per window:
/// - `hidden_mse`: mean (h − h₀)² of the final hidden states (after the last norm: transformers'
///   `last_hidden_state`);
/// - `logits_mse`: mean (z − z₀)² over the vocabulary;
/// - `kl_divergence`: mean KL(p₀ ‖ p) = Σ p₀ (log p₀ − log p) of the next-token distributions,
///   in nats (llama.cpp's `perplexity --kl-divergence`);
/// - `top1_agreement`: the fraction of positions whose most likely token is the baseline's
///   (llama.cpp's "Same top p").
/// Aggregates are means over windows with their standard errors.
public struct OutputDriftTask {
    public init() {}
    public var name: String { "output_drift" }
    public var version: Double { 1.0 }
    public static let metrics = [
        MetricSpec("kl_divergence", .mean, higherIsBetter: false, hasStandardError: true),
        MetricSpec("top1_agreement", .mean, higherIsBetter: true, hasStandardError: true),
        MetricSpec("logits_mse", .mean, higherIsBetter: false, hasStandardError: true),
        MetricSpec("hidden_mse", .mean, higherIsBetter: false, hasStandardError: true),
    ]
    /// The wikitext2_chunked windows, each read by the model and by its baseline.
    public var info: TaskInfo {
        TaskInfo(name: name, metrics: Self.metrics, needsBaseline: true, cost: .tokensPerDocument(256), documents: 2240)
    }

    /// The per-window values of one window's positions.
    public struct WindowDrift: Equatable {
        public var hiddenMSE: Double
        public var logitsMSE: Double
        public var klDivergence: Double
        public var top1Agreement: Double
    }

    /// Compares rows 0..<n of two models' outputs: hidden states (n, C) and logits (n, V).
    public static func compare(hidden h: UnsafePointer<Float>, baseline h0: UnsafePointer<Float>, width c: Int,
                               logits z: UnsafePointer<Float>, baseline z0: UnsafePointer<Float>, vocab v: Int,
                               rows n: Int) -> WindowDrift {
        guard n > 0 else { return WindowDrift(hiddenMSE: 0, logitsMSE: 0, klDivergence: 0, top1Agreement: 1) }
        var hsum = 0.0
        for i in 0 ..< n * c { let d = Double(h[i]) - Double(h0[i]); hsum += d * d }
        var zsum = 0.0, kl = 0.0, same = 0
        for r in 0 ..< n {
            let a = z + r * v, b = z0 + r * v
            var maxA = -Double.infinity, maxB = -Double.infinity, argA = 0, argB = 0
            for j in 0 ..< v {
                let x = Double(a[j]), y = Double(b[j])
                let d = x - y
                zsum += d * d
                if x > maxA { maxA = x; argA = j }
                if y > maxB { maxB = y; argB = j }
            }
            var sA = 0.0, sB = 0.0
            for j in 0 ..< v { sA += Foundation.exp(Double(a[j]) - maxA); sB += Foundation.exp(Double(b[j]) - maxB) }
            let lseA = maxA + Foundation.log(sA), lseB = maxB + Foundation.log(sB)
            var k = 0.0
            for j in 0 ..< v {
                let lp0 = Double(b[j]) - lseB, lp = Double(a[j]) - lseA
                k += Foundation.exp(lp0) * (lp0 - lp)
            }
            kl += max(k, 0)  // a true KL is ≥ 0; summation rounding can leave −1e-17
            if argA == argB { same += 1 }
        }
        return WindowDrift(hiddenMSE: hsum / Double(n * c), logitsMSE: zsum / Double(n * v),
                           klDivergence: kl / Double(n), top1Agreement: Double(same) / Double(n))
    }

    /// Runs `model` and `baseline` over the windows. Both need the same vocabulary and width.
    public func run(_ model: LlamaModel, baseline: LlamaModel, tokenizer: Tokenizer, dataDirectory: URL,
                    sequenceLength: Int, limit: Int?, showProgress: Bool = true) throws -> EncoderOutcome {
        let start = DispatchTime.now().uptimeNanoseconds
        let c = model.hiddenSize, v = model.weights.lmHead.outFeatures
        guard baseline.hiddenSize == c else {
            throw InputError("--baseline", "hidden size \(baseline.hiddenSize) differs from the model's \(c)")
        }
        guard baseline.weights.lmHead.outFeatures == v else {
            throw InputError("--baseline", "vocabulary \(baseline.weights.lmHead.outFeatures) differs from the model's \(v)")
        }
        for (m, flag) in [(model, "--seq-len"), (baseline, "--baseline")] where sequenceLength > m.maxLength {
            throw InputError(flag, "--seq-len \(sequenceLength) exceeds the \(flag == "--seq-len" ? "model" : "baseline")'s context of \(m.maxLength) positions; use --seq-len \(m.maxLength) or less")
        }
        let corpus = ChunkedPerplexityTask(.wikitext2)
        let setup = TaskSetup(dataDirectory: dataDirectory, sequenceLength: sequenceLength, tokenizer: tokenizer)
        let all = try corpus.documents(setup)
        let documents = Evaluator.limited(all, limit)
        let t = sequenceLength, n = t - 1
        // Each model's outputs for one window: hidden (T, C) copied out of the model's state,
        // logits (T−1, V) through its head.
        let h = UnsafeMutablePointer<Float>.allocate(capacity: n * c), h0 = UnsafeMutablePointer<Float>.allocate(capacity: n * c)
        let z = UnsafeMutablePointer<Float>.allocate(capacity: n * v), z0 = UnsafeMutablePointer<Float>.allocate(capacity: n * v)
        defer { h.deallocate(); h0.deallocate(); z.deallocate(); z0.deallocate() }
        func outputs(_ m: LlamaModel, _ tokens: [Int], hidden: UnsafeMutablePointer<Float>, logits: UnsafeMutablePointer<Float>) throws {
            guard tokens.allSatisfy({ $0 >= 0 && $0 < m.weights.vocabSize }) else {
                throw InputError(corpus.file, "a token id is outside the model's vocabulary of \(m.weights.vocabSize)")
            }
            let x = m.forward(tokens: tokens, batch: 1, time: t, lengths: [t])
            hidden.update(from: x, count: n * c)
            m.weights.lmHead.forward(hidden, rows: n, into: logits)
        }
        let bar = ProgressBar(name, total: documents.count, unit: "windows", enabled: showProgress)
        var drifts: [WindowDrift] = []
        for doc in documents {
            guard case let .tokenWindow(tokens) = doc.requests[0] else { continue }
            try outputs(model, tokens, hidden: h, logits: z)
            try outputs(baseline, tokens, hidden: h0, logits: z0)
            drifts.append(Self.compare(hidden: h, baseline: h0, width: c, logits: z, baseline: z0, vocab: v, rows: n))
            bar.advance()
        }
        bar.finish()
        let columns: [(String, KeyPath<WindowDrift, Double>)] = [
            ("kl_divergence", \.klDivergence), ("top1_agreement", \.top1Agreement),
            ("logits_mse", \.logitsMSE), ("hidden_mse", \.hiddenMSE),
        ]
        var values: [String: (value: Double, standardError: Double?)] = [:]
        for (key, path) in columns {
            let xs = drifts.map { $0[keyPath: path] }
            values[key] = (Metrics.mean(xs), Metrics.standardErrorOfMean(xs))
        }
        let samples: [[String: Any]] = zip(documents, drifts).map { doc, d in
            var s: [String: Any] = ["doc_id": doc.id, "doc": doc.fields]
            for (key, path) in columns { s[key] = JSONNumber.clean(d[keyPath: path]) }
            return s
        }
        let configuration: [String: Any] = [
            "task": name, "dataset_path": corpus.file, "output_type": "output_drift", "split": "test",
            "num_fewshot": 0, "seq_len": t,
            "positions": "0 … seq_len − 2 of each wikitext2_chunked window (those that predict a token)",
            "kl_divergence": "mean over positions of Σ p_baseline (log p_baseline − log p), nats",
            "metric_list": Self.metrics.map { ["metric": $0.name, "aggregation": $0.aggregation.rawValue, "higher_is_better": $0.higherIsBetter] },
            "metadata": ["version": version],
        ]
        return EncoderOutcome(task: name, version: version, configuration: configuration, metrics: Self.metrics,
                              values: values, originalCount: all.count, count: drifts.count, samples: samples,
                              wallSeconds: Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9,
                              sentences: drifts.count, tokens: drifts.count * t)
    }
}
