import Foundation

/// A half-open layer range `A:B` (LLM-Pruner's `block_*_layer_start` / `_end`): layers A ..< B.
public struct LayerRange: Codable, Equatable, Sendable, CustomStringConvertible {
    public var start: Int
    public var end: Int

    public init(start: Int, end: Int) {
        self.start = start
        self.end = end
    }

    /// Parses `A:B`.
    public init?(parsing s: String) {
        let parts = s.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let a = Int(parts[0]), let b = Int(parts[1]) else { return nil }
        self.init(start: a, end: b)
    }

    public var description: String { "\(start):\(end)" }
    public var layers: [Int] { start < end ? Array(start..<end) : [] }
}

/// How many units each pruned layer loses: the policy half of pruning, independent of scores.
public struct PrunePolicy: Codable, Equatable, Sendable {
    /// Fraction of each pruned layer's units removed (`--ratio`), or nil with a target.
    public var ratio: Double?
    /// Fraction of all parameters to remove (`--target-params`); the ratio is solved for.
    public var targetParams: Double?
    public var attnLayers: LayerRange
    public var mlpLayers: LayerRange
    public var unit: AttentionUnit
    /// One threshold across layers instead of the same count per layer.
    public var global: Bool
    public var iterativeSteps: Int
    /// MLP widths kept are rounded up to a multiple of this.
    public var roundTo: Int?
    /// How `targetParams` picks among the ratios' step function (nil: `.atLeast`).
    public var targetMode: TargetMode?

    /// `--target-mode`: the smallest ratio removing at least the target, or the ratio whose
    /// removal is closest to it (either side).
    public enum TargetMode: String, Codable, CaseIterable, Sendable {
        case atLeast = "at-least"
        case closest
    }

    enum CodingKeys: String, CodingKey {
        case ratio
        case targetParams = "target_params"
        case targetMode = "target_mode"
        case attnLayers = "attn_layers"
        case mlpLayers = "mlp_layers"
        case unit = "attention_unit"
        case global
        case iterativeSteps = "iterative_steps"
        case roundTo = "round_to"
    }

    public init(ratio: Double?, targetParams: Double? = nil, attnLayers: LayerRange, mlpLayers: LayerRange,
                unit: AttentionUnit = .kvGroup, global: Bool = false, iterativeSteps: Int = 1, roundTo: Int? = nil) {
        self.ratio = ratio
        self.targetParams = targetParams
        self.attnLayers = attnLayers
        self.mlpLayers = mlpLayers
        self.unit = unit
        self.global = global
        self.iterativeSteps = iterativeSteps
        self.roundTo = roundTo
    }

    /// The default layer range from `--skip-first N --skip-last M` on a model of `n` layers.
    public static func range(skipFirst: Int, skipLast: Int, layers n: Int) -> LayerRange {
        LayerRange(start: skipFirst, end: n - skipLast)
    }

    /// Checks every flag against the model before any work; throws one-line errors naming the flag.
    public func validate(_ g: PruneGeometry) throws {
        switch (ratio, targetParams) {
        case (nil, nil): throw InputError("--ratio", "give --ratio or --target-params")
        case (.some, .some): throw InputError("--ratio", "give either --ratio or --target-params, not both")
        case (let r?, nil):
            guard r >= 0, r < 1 else { throw InputError("--ratio", "\(r) must be in [0, 1)") }
        case (nil, let p?):
            guard p >= 0, p < 1 else { throw InputError("--target-params", "\(p) must be in [0, 1)") }
        }
        let n = g.layers.count
        for (flag, r) in [("--attn-layers", attnLayers), ("--mlp-layers", mlpLayers)] {
            guard r.start >= 0, r.end <= n, r.start <= r.end else {
                throw InputError(flag, "range \(r) is outside the model's layers 0:\(n)")
            }
        }
        guard iterativeSteps >= 1 else { throw InputError("--iterative-steps", "must be at least 1") }
        if let k = roundTo, k < 1 { throw InputError("--round-to", "must be at least 1") }
        if unit == .queryHead {
            for l in attnLayers.layers where g.layers[l].numKVHeads == 0 || g.layers[l].numHeads % g.layers[l].numKVHeads != 0 {
                throw InputError("--attention-unit", "layer \(l) has \(g.layers[l].numHeads) heads for \(g.layers[l].numKVHeads) KV heads")
            }
        }
        // A ratio must not empty any pruned layer.
        if let r = ratio { _ = try counts(g, original: g, ratio: r) }
    }

    /// Units removed from one layer at `ratio`, counted on the original widths as LLM-Pruner does
    /// (keep = ⌊N·(1 − r)⌋ channels, heads counted as whole headDim blocks of removed channels),
    /// minus what earlier iterative steps already removed.
    public struct LayerCount: Codable, Equatable, Sendable {
        public var layer: Int
        /// KV groups (kv-group) or query heads per KV group (query-head) removed.
        public var attention: Int
        /// MLP channels removed.
        public var mlp: Int

        public init(layer: Int, attention: Int, mlp: Int) {
            self.layer = layer
            self.attention = attention
            self.mlp = mlp
        }
    }

    /// Per-layer removal counts at `ratio`; `current` are the widths now, `original` those
    /// before the first step. Throws when a layer would lose every unit.
    public func counts(_ current: PruneGeometry, original: PruneGeometry, ratio r: Double) throws -> [LayerCount] {
        let hd = original.headDim
        var out: [LayerCount] = []
        for l in 0..<original.layers.count {
            let o = original.layers[l], c = current.layers[l]
            var attn = 0, mlp = 0
            if attnLayers.layers.contains(l) {
                switch unit {
                case .kvGroup:
                    let ch = o.numKVHeads * hd
                    let keep = o.numKVHeads - (ch - Int(Double(ch) * (1 - r))) / hd
                    if keep <= 0 { throw InputError(flagName, "\(describe(r)) would remove every KV group of layer \(l)") }
                    attn = max(0, c.numKVHeads - keep)
                case .queryHead:
                    let ch = o.nRep * hd
                    let keep = o.nRep - (ch - Int(Double(ch) * (1 - r))) / hd
                    if keep <= 0 { throw InputError(flagName, "\(describe(r)) would remove every query head of layer \(l)") }
                    attn = max(0, c.nRep - keep)
                }
            }
            if mlpLayers.layers.contains(l) {
                var keep = Int(Double(o.intermediate) * (1 - r))
                if let k = roundTo { keep = min(o.intermediate, (keep + k - 1) / k * k) }
                if keep <= 0 { throw InputError(flagName, "\(describe(r)) would remove every MLP channel of layer \(l)") }
                mlp = max(0, c.intermediate - keep)
            }
            out.append(LayerCount(layer: l, attention: attn, mlp: mlp))
        }
        return out
    }

    private var flagName: String { targetParams != nil ? "--target-params" : "--ratio" }
    private func describe(_ r: Double) -> String {
        targetParams.map { "target \($0) (ratio \(r))" } ?? "ratio \(r)"
    }

    /// Parameters the counts remove.
    public static func removedParameters(_ g: PruneGeometry, _ counts: [LayerCount], unit: AttentionUnit) -> Int {
        counts.reduce(0) { n, c in
            let d = g.layers[c.layer]
            let attn: Int
            switch unit {
            case .kvGroup: attn = c.attention * (g.paramsPerKVHead + d.nRep * g.paramsPerQueryHead)
            case .queryHead: attn = c.attention * d.numKVHeads * g.paramsPerQueryHead
            }
            return n + attn + c.mlp * g.paramsPerMLPChannel
        }
    }

    /// The per-layer ratio of the final step: `ratio`, or for `--target-params p` the smallest
    /// ratio whose counts remove at least p of all parameters (bisection over the step function);
    /// with `targetMode == .closest`, that one or the step just below, whichever lands nearer p.
    public func resolvedRatio(_ g: PruneGeometry) throws -> Double {
        if let r = ratio { return r }
        guard let p = targetParams else { throw InputError("--ratio", "give --ratio or --target-params") }
        let want = p * Double(g.totalParameters)
        func removed(_ r: Double) -> Double? {
            guard let c = try? counts(g, original: g, ratio: r) else { return nil }
            return Double(PrunePolicy.removedParameters(g, c, unit: unit))
        }
        if want <= 0 { return 0 }
        var lo = 0.0, hi = 1.0
        for _ in 0..<60 {
            let mid = (lo + hi) / 2
            if let n = removed(mid), n < want { lo = mid } else { hi = mid }
        }
        guard let n = removed(hi), n >= want else {
            throw InputError("--target-params", "removing \(p) of all parameters from the chosen layers would empty a layer")
        }
        // `lo` sits on the step just below: fewer units removed than the target asks.
        if targetMode == .closest, let below = removed(lo), want - below < n - want { return lo }
        return hi
    }

    /// Ratio of iterative step s (1-based) of k: linear schedule r·s/k, as LLM-Pruner's.
    public func stepRatio(_ r: Double, step s: Int) -> Double {
        r * Double(s) / Double(iterativeSteps)
    }
}
