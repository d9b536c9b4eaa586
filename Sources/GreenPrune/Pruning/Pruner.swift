import Foundation

/// Everything `greenprune prune` decides besides the model: estimator, policy, calibration.
public struct PruneOptions {
    public var importance: ImportanceKind = .taylor
    public var taylor: TaylorVariant = .paramFirst
    public var reduction: GroupReduction = .sum
    /// Score `kv-group` units as LLM-Pruner's code does (see `scoreLayer`).
    public var llmprunerCompat = false
    public var policy: PrunePolicy
    public var seed: UInt64 = 0
    /// Calibration samples per gradient micro-batch (memory ∝ microBatch · length).
    public var microBatch = 4

    public init(policy: PrunePolicy) { self.policy = policy }
}

/// Units and parameters one layer loses, as `--dry-run` prints them.
public struct PlanRow: Equatable, Sendable {
    public var layer: Int
    public var attentionUnits: Int
    public var queryHeadsRemoved: Int
    public var kvHeadsRemoved: Int
    public var mlpChannels: Int
    public var parameters: Int
}

/// The result of pruning: the new model and what was decided.
public struct PruneOutcome {
    /// The pruned model: the source and what each of its layers keeps.
    public var model: PrunedModel
    /// Per layer of the ORIGINAL model, the units kept (indices into the original widths);
    /// empty for depth pruning.
    public var keeps: [LayerKeep]
    /// Scores per iterative step, per pruned layer (indices into that step's widths).
    public var scores: [[Int: LayerScores]]
    /// Depth pruning: the removed layers and every layer's Block Influence.
    public var removedLayers: [Int]
    public var blockInfluence: [Double]
    /// Mean calibration loss of each gradient pass.
    public var losses: [Double]
    public var ratio: Double
    /// Seconds spent computing gradients / forward passes, and in surgery.
    public var gradientSeconds = 0.0
    public var surgerySeconds = 0.0
}

/// Structured pruning of a loaded Llama model (LLM-Pruner's block-wise pruning, ShortGPT depth
/// pruning): a transform from the model to a `PrunedModel` over it.
public enum Pruner {
    /// The per-layer plan at the final ratio, with no scores needed.
    public static func plan(_ model: LlamaModel, _ o: PruneOptions) throws -> [PlanRow] {
        try plan(PruneGeometry(model), o)
    }

    /// The same from the model's widths alone (`PruneGeometry(config:checkpoint:)` reads them from
    /// the headers, before any weight).
    public static func plan(_ g: PruneGeometry, _ o: PruneOptions) throws -> [PlanRow] {
        if o.importance == .bi {
            let n = try depthCount(g, o)
            return (0..<n).map { PlanRow(layer: -1 - $0, attentionUnits: 0, queryHeadsRemoved: 0, kvHeadsRemoved: 0, mlpChannels: 0, parameters: 0) }
        }
        let r = try o.policy.resolvedRatio(g)
        let counts = try o.policy.counts(g, original: g, ratio: r)
        return counts.map { c in
            let d = g.layers[c.layer]
            let (qh, kvh) = o.policy.unit == .kvGroup ? (c.attention * d.nRep, c.attention) : (c.attention * d.numKVHeads, 0)
            return PlanRow(layer: c.layer, attentionUnits: c.attention, queryHeadsRemoved: qh, kvHeadsRemoved: kvh,
                           mlpChannels: c.mlp,
                           parameters: PrunePolicy.removedParameters(g, [c], unit: o.policy.unit))
        }
    }

    /// Layers a depth pruning removes: ⌊ratio · eligible⌋, or for a parameter target the fewest
    /// layers whose parameters reach it.
    static func depthCount(_ g: PruneGeometry, _ o: PruneOptions) throws -> Int {
        let eligible = o.policy.attnLayers.layers.count
        if let r = o.policy.ratio { return Int(Double(eligible) * r) }
        let perLayer = { (d: BlockDims) in 2 * g.hidden + d.numHeads * g.paramsPerQueryHead + d.numKVHeads * g.paramsPerKVHead + d.intermediate * g.paramsPerMLPChannel }
        let want = (o.policy.targetParams ?? 0) * Double(g.totalParameters)
        var n = 0, removed = 0.0
        while removed < want {
            guard n < eligible else { throw InputError("--target-params", "removing every eligible layer does not reach the target") }
            removed += Double(perLayer(g.layers[o.policy.attnLayers.layers[n]]))
            n += 1
        }
        return n
    }

    /// Prunes `model` with calibration `samples` (ignored by l1/l2/random). Each iterative step scores the model as the previous step left it (the first, the model
    /// as loaded; later ones, the cut layers as owned copies); the outcome's model is the source
    /// with the composed keeps, cut only when written.
    public static func run(_ model: LlamaModel, samples: [[Int]], _ o: PruneOptions,
                           log: (String) -> Void = { _ in }) throws -> PruneOutcome {
        let original = PruneGeometry(model)
        try o.policy.validate(original)
        if o.importance == .bi { return try runDepth(model, samples: samples, o, log: log) }
        let estimator = try makeImportanceEstimator(o.importance, taylor: o.taylor, seed: o.seed)
        let ratio = try o.policy.resolvedRatio(original)
        var current = model
        var geometry = original
        var keeps = original.layers.enumerated().map { LayerKeep.all(layer: $0.offset, $0.element) }
        var outcome = PruneOutcome(model: PrunedModel(unchanged: model), keeps: [], scores: [], removedLayers: [],
                                   blockInfluence: [], losses: [], ratio: ratio)
        let attn = o.policy.attnLayers.layers, mlp = o.policy.mlpLayers.layers
        let scored = Array(Set(attn + mlp)).sorted()
        for step in 1...o.policy.iterativeSteps {
            let r = o.policy.stepRatio(ratio, step: step)
            let counts = try o.policy.counts(geometry, original: original, ratio: r)
            var scores: [Int: LayerScores] = [:]
            func score(_ l: Int, _ gradients: [String: WeightGradients]) throws {
                scores[l] = try scoreLayer(l, dims: geometry.layers[l], headDim: original.headDim, unit: o.policy.unit,
                                           estimator: estimator, reduction: o.reduction, llmprunerCompat: o.llmprunerCompat,
                                           weights: current.weights, gradients: gradients)
            }
            let t1 = Date()
            if estimator.needsGradients {
                // Every layer scored needs all seven projections' gradients (both unit kinds);
                // each layer is scored as soon as its gradients are complete, then they are freed.
                let weights = GradientCollector.prunableWeights(attnLayers: scored, mlpLayers: scored)
                let bar = ProgressBar("gradients step \(step)/\(o.policy.iterativeSteps)",
                                      total: GradientCollector.layerCount(weights: weights), unit: "layers")
                let loss = try GradientCollector.reduceByLayer(model: current, samples: samples, weights: weights,
                                                               fisher: estimator.needsFisher, microBatch: o.microBatch,
                                                               progress: bar, score)
                bar.finish()
                outcome.losses.append(loss)
                outcome.gradientSeconds += Date().timeIntervalSince(t1)
                log(String(format: "step %ld: calibration loss %.6f over %ld samples", step, loss, samples.count))
            } else {
                for l in scored { try score(l, [:]) }
            }
            let t2 = estimator.needsGradients ? Date() : t1  // scores without gradients count as surgery
            // Layers outside a range keep that kind of unit whatever their scores.
            let stepKeep = Selection.select(scores: scores, counts: counts, geometry: geometry,
                                            unit: o.policy.unit, global: o.policy.global)
            keeps = zip(stepKeep, keeps).map { $0.composed(after: $1) }
            geometry.layers = stepKeep.map(\.dims)
            // Only a later step needs the pruned model to run; the last one's is cut when written.
            if step < o.policy.iterativeSteps { current = try PrunedModel(source: current, keep: stepKeep).model() }
            outcome.scores.append(scores)
            outcome.surgerySeconds += Date().timeIntervalSince(t2)
            log("step \(step): ratio \(r), " + describe(geometry, original))
        }
        outcome.model = PrunedModel(source: model, keep: keeps)
        outcome.keeps = keeps
        return outcome
    }

    static func describe(_ g: PruneGeometry, _ o: PruneGeometry) -> String {
        let changed = zip(g.layers, o.layers).enumerated().filter { $0.element.0 != $0.element.1 }.count
        return "\(changed) of \(g.layers.count) layers narrowed, \(g.totalParameters) parameters (was \(o.totalParameters))"
    }

    /// ShortGPT: Block Influence on the calibration samples, then removal of the lowest layers
    /// inside the attention range.
    static func runDepth(_ model: LlamaModel, samples: [[Int]], _ o: PruneOptions,
                         log: (String) -> Void) throws -> PruneOutcome {
        let g = PruneGeometry(model)
        let n = try depthCount(g, o)
        guard n < g.layers.count else { throw InputError("--ratio", "would remove every layer") }
        let t0 = Date()
        let engine = try LlamaGradient(model: model, wanted: [])
        var bi = BlockInfluence(layers: g.layers.count)
        let bar = ProgressBar("block influence", total: samples.count, unit: "samples")
        var i = 0
        while i < samples.count {
            let batch = Array(samples[i ..< min(samples.count, i + max(1, o.microBatch))])
            let t = batch[0].count
            try engine.hiddenStates(batch: batch) { l, x, y in
                bi.add(layer: l, input: x, output: y, tokens: batch.count * t, hidden: g.hidden)
            }
            i += batch.count
            bar.advance(batch.count)
        }
        bar.finish()
        let scores = bi.scores
        let removed = BlockInfluence.layersToRemove(scores, eligible: o.policy.attnLayers.layers, count: n)
        let pruned = PrunedModel(source: model, keep: g.layers.enumerated().filter { !removed.contains($0.offset) }
            .map { LayerKeep.all(layer: $0.offset, $0.element) })
        log("block influence removed layers \(removed)")
        var out = PruneOutcome(model: pruned, keeps: [], scores: [], removedLayers: removed, blockInfluence: scores,
                               losses: [], ratio: o.policy.ratio ?? Double(n) / Double(max(1, o.policy.attnLayers.layers.count)))
        out.gradientSeconds = Date().timeIntervalSince(t0)
        return out
    }

    /// Writes the importance scores: `/step_S/layer_LL/mlp` [F] and `/step_S/layer_LL/attention`
    /// [units] (float64), or `/block_influence` [layers] for depth pruning.
    public static func writeImportance(_ outcome: PruneOutcome, unit: AttentionUnit, to url: URL) throws {
        let h5 = try HDF5Writer(url: url)
        if !outcome.blockInfluence.isEmpty {
            try h5.write("/block_influence", outcome.blockInfluence, shape: [outcome.blockInfluence.count])
        }
        for (s, scores) in outcome.scores.enumerated() {
            for (l, sc) in scores.sorted(by: { $0.key < $1.key }) {
                let base = String(format: "/step_%ld/layer_%02ld", s + 1, l)
                try h5.write(base + "/mlp", sc.mlp, shape: [sc.mlp.count])
                try h5.write(base + "/attention", sc.attention, shape: [sc.attention.count])
                try h5.setAttribute(base + "/attention", "unit", unit.rawValue)
            }
        }
        try h5.close()
    }
}
