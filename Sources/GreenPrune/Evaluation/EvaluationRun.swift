import Foundation

/// Settings of one `greenprune evaluate` run.
public struct EvaluationRunOptions {
    public var tasks: [String]
    public var limit: Int?
    public var dataDirectory: URL
    /// Window length of the chunked perplexity tasks.
    public var sequenceLength: Int = 128
    /// Rolling-window / truncation length; nil = the model's `max_position_embeddings`.
    public var maxLength: Int?
    public var scorer = ScorerOptions()
    /// The type the model's weights are kept in (`HalfLinear` for bf16/f16; `--dtype`).
    public var dtype = WeightDType.f32
    /// Baseline model directory (`embedding_drift` for encoders, `output_drift` for decoders).
    public var baseline: URL?
    public var showProgress = true
    /// Where the task descriptions live (nil = `TaskRegistry.taskDirectory()`).
    public var taskDirectory: URL?

    public init(tasks: [String], dataDirectory: URL) {
        self.tasks = tasks
        self.dataDirectory = dataDirectory
    }

    /// The settings as results.json's `config` shows them.
    public var json: [String: Any] {
        var c: [String: Any] = [
            "tasks": tasks, "limit": limit.map { $0 as Any } ?? NSNull(), "data_dir": dataDirectory.path,
            "seq_len": sequenceLength, "batch_size": "auto", "batch_tokens": scorer.batchTokens,
            "kv_reuse": scorer.kvReuse, "num_fewshot": 0, "dtype": dtype.rawValue,
        ]
        c["max_length"] = maxLength.map { $0 as Any } ?? NSNull()
        c["baseline"] = baseline.map { $0.path as Any } ?? NSNull()
        return c
    }
}

/// Loads a model directory and runs the requested tasks on it.
public enum EvaluationRun {
    /// Parameter counts: total, and without the token/position embeddings (and an untied
    /// output layer, which is an embedding matrix too).
    public static func parameterCounts(_ bundle: ModelBundle) -> (total: Int, nonEmbedding: Int) {
        switch bundle.model {
        case let .llama(m):
            let w = m.weights
            let total = w.parameterCount
            let head = w.tied ? 0 : w.lmHead.inFeatures * w.lmHead.outFeatures
            return (total, total - w.embeddingCount - head)
        case let .decoder(m):
            let f = m.facts
            return (f.parameters, f.nonEmbeddingParameters)
        case let .bert(m):
            // From the layers' shapes, not the checkpoint's element counts (packed int32 words
            // and scales of a quantized model are storage, not parameters). Every BERT Linear has a bias.
            let w = m.weights
            let embedding = w.embeddingCount
            var total = embedding + w.embeddingsLayerNormWeight.count + w.embeddingsLayerNormBias.count
                + (w.relativeAttentionBias?.count ?? 0)
            for l in w.layers {
                for lin in [l.query, l.key, l.value, l.attentionOutput, l.intermediate, l.output] {
                    total += lin.inFeatures * lin.outFeatures + lin.outFeatures
                }
                total += l.attentionLayerNormWeight.count + l.attentionLayerNormBias.count
                    + l.outputLayerNormWeight.count + l.outputLayerNormBias.count
            }
            return (total, total - embedding)
        }
    }

    /// `report` unchanged, or an error naming the task when a metric is NaN or infinite: JSON
    /// cannot hold it (it would be stored as "N/A", the mark of a missing standard error) and a
    /// sweep could not rank it, so it must never pass as a result. An undefined standard error
    /// stays allowed.
    public static func finite(_ report: TaskReport) throws -> TaskReport {
        for m in report.metrics {
            guard let v = report.values[m.name]?.value, !v.isFinite else { continue }
            throw InputError(report.name, "metric \(m.name) is \(v) (the model's log-likelihoods are not finite: its weights or activations overflow float32)")
        }
        return report
    }

    /// Evaluates the model in `directory` on every task of `options`; nothing is written here.
    public static func run(modelDirectory directory: URL, options: EvaluationRunOptions) throws -> EvaluationResults {
        let startDate = Date()
        let start = DispatchTime.now().uptimeNanoseconds
        // A task twice would be scored twice, then collide in results.json and trace.h5.
        var seen = Set<String>()
        for t in options.tasks where !seen.insert(t).inserted {
            throw InputError("--tasks", "\(t) is listed twice")
        }
        let registry = try TaskRegistry(specDirectory: options.taskDirectory ?? TaskRegistry.taskDirectory())
        let entries = try options.tasks.map { ($0, try registry.task($0)) }
        let bundle = try ModelLoader.load(directory, dtype: options.dtype)
        let counts = parameterCounts(bundle)
        var reports: [TaskReport] = []
        var tokenizerFacts: TokenizerFacts?, maxLength: Int?

        switch bundle.model {
        case .llama, .decoder:
            let model = try bundle.decoder()
            let tokenizer = try TokenizerLoader.load(directory: directory)
            tokenizerFacts = TokenizerFacts(tokenizer)
            maxLength = options.maxLength ?? model.maxLength
            // The scorer plans calls of up to batchTokens; the model must not re-split them.
            model.maxBatchTokens = options.scorer.batchTokens
            let evaluator = Evaluator(model: model, tokenizer: tokenizer, maxLength: options.maxLength,
                                      options: options.scorer, showProgress: options.showProgress)
            let setup = TaskSetup(dataDirectory: options.dataDirectory, sequenceLength: options.sequenceLength, tokenizer: tokenizer)
            // Read every task's data first: a bad file fails the run before any scoring.
            var loaded: [(EvaluationTask, [TaskDocument], Int)] = []
            var drift: (task: OutputDriftTask, model: LlamaModel, baseline: LlamaModel, tokenizer: Tokenizer)?
            for (name, entry) in entries {
                switch entry {
                case let .language(task):
                    let all = try evaluator.documents(task, setup: setup)
                    loaded.append((task, Evaluator.limited(all, options.limit), all.count))
                case let .decoderDrift(task):
                    guard let b = options.baseline else { throw InputError("--baseline", "\(name) needs the baseline decoder's directory") }
                    // The windows are the baseline's tokens, so both models read the same ids.
                    drift = (task, try bundle.llama(for: name), try ModelLoader.loadLlama(b, dtype: options.dtype),
                             try TokenizerLoader.load(directory: b))
                case .encoder:
                    throw InputError("--tasks", "\(name) needs a sentence encoder; \(directory.path) is a decoder")
                }
            }
            // GREENPRUNE_PROFILE=1: seconds per forward phase on stderr after each task.
            let profile = GreenPruneEnvironment.process.profile ? ForwardProfile() : nil
            model.profile = profile
            defer { model.profile = nil }
            for (task, docs, count) in loaded {
                let t0 = DispatchTime.now().uptimeNanoseconds
                reports.append(try finite(TaskReport(try evaluator.run(task, documents: docs, originalCount: count))))
                if let p = profile {
                    let wall = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
                    let parts = (p.order.map { String(format: "%@ %.2f", $0, p.seconds[$0]!) }
                                 + p.countOrder.map { "\($0) \(p.counts[$0]!)" }).joined(separator: ", ")
                    FileHandle.standardError.write(Data(String(format: "profile %@: %.2f s wall; %@\n", task.name, wall, parts).utf8))
                    p.reset()
                }
            }
            if let d = drift {
                reports.append(try finite(TaskReport(try d.task.run(d.model, baseline: d.baseline, tokenizer: d.tokenizer,
                                                         dataDirectory: options.dataDirectory, sequenceLength: options.sequenceLength,
                                                         limit: options.limit, showProgress: options.showProgress))))
            }
        case let .bert(model):
            if model.tokenizer == nil { model.tokenizer = try TokenizerLoader.load(directory: directory) }
            tokenizerFacts = model.tokenizer.map(TokenizerFacts.init)
            model.maxBatchTokens = options.scorer.batchTokens
            var baseline: BertModel?
            for (name, entry) in entries {
                guard case let .encoder(task) = entry else {
                    throw InputError("--tasks", "\(name) needs a causal language model; \(directory.path) is an encoder")
                }
                if task.needsBaseline, baseline == nil {
                    guard let b = options.baseline else { throw InputError("--baseline", "\(name) needs the baseline encoder's directory") }
                    let base = try ModelLoader.loadBert(b)
                    if base.tokenizer == nil { base.tokenizer = try TokenizerLoader.load(directory: b) }
                    base.maxBatchTokens = options.scorer.batchTokens
                    baseline = base
                }
                reports.append(try finite(TaskReport(try task.run(model, baseline: baseline, dataDirectory: options.dataDirectory, limit: options.limit))))
            }
        }
        let facts = ModelFacts(path: directory.path, family: bundle.family.rawValue, parameters: counts.total,
                               nonEmbeddingParameters: counts.nonEmbedding, bytesOnDisk: ModelFacts.bytesOnDisk(directory),
                               tokenizer: tokenizerFacts, maxLength: maxLength)
        return EvaluationResults(reports: reports, model: facts, settings: options.json, startDate: startDate,
                                 totalSeconds: Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9,
                                 peakResidentBytes: peakResidentBytes())
    }
}
