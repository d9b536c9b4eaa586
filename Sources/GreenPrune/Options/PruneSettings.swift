import Foundation

/// Everything `greenprune prune` is told besides the model and where to write: the flags, the
/// `prune:` block of a sweep variant and the options file a sweep hands its child, one value.
/// `policy(layers:)` and `prunerOptions(layers:)` resolve it against a model.
public struct PruneSettings: CommandOptions, CalibrationSettings, Sendable {
    /// Fraction of each pruned layer's units to remove, in [0, 1).
    public var ratio: Double?
    /// Fraction of all parameters to remove, in [0, 1); the per-layer ratio is solved for.
    public var targetParams: Double?
    /// With `targetParams`: the smallest ratio reaching it, or the ratio landing nearest it.
    public var targetMode: PrunePolicy.TargetMode = .atLeast
    public var importance: ImportanceKind = .taylor
    public var taylor: TaylorVariant = .paramFirst
    /// How member scores combine into a unit's.
    public var groupReduction: GroupReduction = .sum
    public var attentionUnit: AttentionUnit = .kvGroup
    /// Score kv-groups as LLM-Pruner's code does.
    public var llmprunerCompat = false
    /// Layers whose attention / MLP is pruned (half-open); nil: from `skipFirst`/`skipLast`.
    public var attnLayers: LayerRange?
    public var mlpLayers: LayerRange?
    /// Layers left alone at the start / end when no range is given.
    public var skipFirst = 3
    public var skipLast = 3
    /// Prune every layer to the same widths.
    public var uniform = false
    /// One threshold across layers instead of the same ratio per layer.
    public var global = false
    /// Prune in k steps, recomputing gradients between them.
    public var iterativeSteps = 1
    /// Round kept MLP widths up to a multiple of n.
    public var roundTo: Int?
    public var calibration: String?
    public var numExamples = 10
    public var calibrationLen = 64
    /// Samples per gradient micro-batch (memory grows with it).
    public var microBatch = 4
    /// Seed of the random estimator.
    public var seed: UInt64 = 0
    /// `dtype`: the storage type of the float weights while the command runs and in what it writes
    /// (`--dtype`); nil is auto, the checkpoint's own (left out of the options file, so settings
    /// without it keep their hashes).
    public var dtype: WeightDType?

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case ratio, targetParams = "target_params", targetMode = "target_mode", importance, taylor,
             groupReduction = "group_reduction", attentionUnit = "attention_unit", llmprunerCompat = "llmpruner_compat",
             attnLayers = "attn_layers", mlpLayers = "mlp_layers", skipFirst = "skip_first", skipLast = "skip_last",
             uniform, global, iterativeSteps = "iterative_steps", roundTo = "round_to", calibration,
             numExamples = "num_examples", calibrationLen = "calibration_len", microBatch = "micro_batch", seed, dtype
    }

    /// The defaults, with the ratio and target unset (`validate` asks for one of them).
    public init() {}

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = PruneSettings()
        ratio = try c.decodeIfPresent(Double.self, forKey: .ratio)
        targetParams = try c.decodeIfPresent(Double.self, forKey: .targetParams)
        targetMode = try c.value(.targetMode, or: d.targetMode)
        importance = try c.value(.importance, or: d.importance)
        taylor = try c.value(.taylor, or: d.taylor)
        groupReduction = try c.value(.groupReduction, or: d.groupReduction)
        attentionUnit = try c.value(.attentionUnit, or: d.attentionUnit)
        llmprunerCompat = try c.value(.llmprunerCompat, or: d.llmprunerCompat)
        attnLayers = try PruneSettings.layerRange(c, .attnLayers)
        mlpLayers = try PruneSettings.layerRange(c, .mlpLayers)
        skipFirst = try c.value(.skipFirst, or: d.skipFirst)
        skipLast = try c.value(.skipLast, or: d.skipLast)
        uniform = try c.value(.uniform, or: d.uniform)
        global = try c.value(.global, or: d.global)
        iterativeSteps = try c.value(.iterativeSteps, or: d.iterativeSteps)
        roundTo = try c.decodeIfPresent(Int.self, forKey: .roundTo)
        calibration = try c.decodeIfPresent(String.self, forKey: .calibration)
        numExamples = try c.value(.numExamples, or: d.numExamples)
        calibrationLen = try c.value(.calibrationLen, or: d.calibrationLen)
        microBatch = try c.value(.microBatch, or: d.microBatch)
        seed = try c.value(.seed, or: d.seed)
        dtype = try WeightDType.option(c.decodeIfPresent(WeightDType.self, forKey: .dtype))
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encodeIfPresent(ratio, forKey: .ratio)
        try c.encodeIfPresent(targetParams, forKey: .targetParams)
        try c.encode(targetMode, forKey: .targetMode)
        try c.encode(importance, forKey: .importance)
        try c.encode(taylor, forKey: .taylor)
        try c.encode(groupReduction, forKey: .groupReduction)
        try c.encode(attentionUnit, forKey: .attentionUnit)
        try c.encode(llmprunerCompat, forKey: .llmprunerCompat)
        try c.encodeIfPresent(attnLayers?.description, forKey: .attnLayers)
        try c.encodeIfPresent(mlpLayers?.description, forKey: .mlpLayers)
        try c.encode(skipFirst, forKey: .skipFirst)
        try c.encode(skipLast, forKey: .skipLast)
        try c.encode(uniform, forKey: .uniform)
        try c.encode(global, forKey: .global)
        try c.encode(iterativeSteps, forKey: .iterativeSteps)
        try c.encodeIfPresent(roundTo, forKey: .roundTo)
        try c.encodeIfPresent(calibration, forKey: .calibration)
        try c.encode(numExamples, forKey: .numExamples)
        try c.encode(calibrationLen, forKey: .calibrationLen)
        try c.encode(microBatch, forKey: .microBatch)
        try c.encode(seed, forKey: .seed)
        try c.encodeIfPresent(dtype, forKey: .dtype)
    }

    /// A layer range written `A:B`.
    static func layerRange(_ c: KeyedDecodingContainer<CodingKeys>, _ key: CodingKeys) throws -> LayerRange? {
        guard let text = try c.decodeIfPresent(String.self, forKey: key) else { return nil }
        return try LayerRange.option(text, key: key.stringValue)
    }

    public func validate() throws {
        switch (ratio, targetParams) {
        case (nil, nil): throw OptionError(nil, "give {ratio} or {target_params}")
        case (.some, .some): throw OptionError(nil, "give either {ratio} or {target_params}, not both")
        case let (r?, nil):
            guard r >= 0, r < 1 else { throw OptionError("ratio", "must be in [0, 1), got \(OptionError.number(r))") }
        case let (nil, p?):
            guard p >= 0, p < 1 else {
                throw OptionError("target_params", "(the fraction of all parameters to remove) must be in [0, 1), got \(OptionError.number(p))")
            }
        }
        if targetMode == .closest && targetParams == nil { throw OptionError("target_mode", "needs {target_params}") }
        if uniform && (attnLayers != nil || mlpLayers != nil) {
            throw OptionError("uniform", "prunes every layer; drop {attn_layers}/{mlp_layers}")
        }
        guard skipFirst >= 0 else { throw OptionError("skip_first", "must be ≥ 0, got \(skipFirst)") }
        guard skipLast >= 0 else { throw OptionError("skip_last", "must be ≥ 0, got \(skipLast)") }
        guard iterativeSteps >= 1 else { throw OptionError("iterative_steps", "must be at least 1, got \(iterativeSteps)") }
        if let k = roundTo { guard k >= 1 else { throw OptionError("round_to", "must be at least 1, got \(k)") } }
        try validateCalibration()
        guard microBatch >= 1 else { throw OptionError("micro_batch", "must be at least 1, got \(microBatch)") }
        if importance == .bi && (global || iterativeSteps > 1) {
            throw OptionError("importance", "bi removes whole layers; {global} and {iterative_steps} do not apply")
        }
    }

    /// The policy for a model of `n` layers; a range outside its layers is an `OptionError`.
    public func policy(layers n: Int) throws -> PrunePolicy {
        let def = uniform ? LayerRange(start: 0, end: n) : PrunePolicy.range(skipFirst: skipFirst, skipLast: skipLast, layers: n)
        var p = PrunePolicy(ratio: ratio, targetParams: targetParams, attnLayers: attnLayers ?? def, mlpLayers: mlpLayers ?? def,
                            unit: attentionUnit, global: global, iterativeSteps: iterativeSteps, roundTo: roundTo)
        p.targetMode = targetMode
        for (key, r) in [("attn_layers", p.attnLayers), ("mlp_layers", p.mlpLayers)] {
            guard r.start >= 0, r.end <= n, r.start <= r.end else {
                throw OptionError(key, "range \(r) is outside the model's layers 0:\(n)")
            }
        }
        return p
    }

    /// What `Pruner` takes for a model of `n` layers.
    public func prunerOptions(layers n: Int) throws -> PruneOptions {
        var o = PruneOptions(policy: try policy(layers: n))
        o.importance = importance
        o.taylor = taylor
        o.reduction = groupReduction
        o.llmprunerCompat = llmprunerCompat
        o.seed = seed
        o.microBatch = microBatch
        return o
    }
}

extension LayerRange {
    /// Parses the `A:B` value of option `key`; anything else is an `OptionError`.
    public static func option(_ text: String, key: String) throws -> LayerRange {
        guard let r = LayerRange(parsing: text) else { throw OptionError(key, "'\(text)' is not A:B") }
        return r
    }
}
