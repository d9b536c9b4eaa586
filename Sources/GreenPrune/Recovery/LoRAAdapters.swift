import Foundation

/// Where one adapter sits: a layer's projection.
public struct LoRASite: Hashable, Sendable, Comparable {
    public var layer: Int
    public var projection: LlamaProjection

    public init(layer: Int, projection: LlamaProjection) {
        self.layer = layer
        self.projection = projection
    }

    /// Layer first, then the projections in forward order.
    public static func < (x: LoRASite, y: LoRASite) -> Bool {
        if x.layer != y.layer { return x.layer < y.layer }
        let order = LlamaProjection.allCases
        return order.firstIndex(of: x.projection)! < order.firstIndex(of: y.projection)!
    }

    /// PEFT's module name in a saved adapter: `base_model.model.` + the checkpoint's module
    /// (`base_model.model.model.layers.3.self_attn.q_proj`); `.lora_A.weight` / `.lora_B.weight`
    /// follow.
    public var peftModule: String { "base_model.model." + LlamaNames.module(projection, layer: layer) }
    /// `….lora_A.weight` (R, I).
    public var peftA: String { peftModule + ".lora_A.weight" }
    /// `….lora_B.weight` (O, R).
    public var peftB: String { peftModule + ".lora_B.weight" }
}

/// Every adapter of a model, in site order (layer, then projection): what the optimizer steps,
/// the checkpoint saves and the merge folds in.
public final class LoRAAdapters {
    public let settings: LoRASettings
    /// The adapters in site order.
    public let entries: [(site: LoRASite, layer: LoRALinear)]

    /// Wraps `base(site)` for every layer in `0..<layers` and every target projection, drawing
    /// the A matrices in site order from one generator seeded by `seed`.
    public init(settings: LoRASettings, layers: Int, seed: UInt64, base: (LoRASite) throws -> any LinearLayer) throws {
        try settings.validate()
        self.settings = settings
        var rng = SplitMix64(seed: seed)
        var out: [(site: LoRASite, layer: LoRALinear)] = []
        for l in 0 ..< layers {
            for p in settings.targets {
                let site = LoRASite(layer: l, projection: p)
                out.append((site, LoRALinear(base: try base(site), rank: settings.rank, alpha: settings.alpha,
                                             dropout: settings.dropout, generator: &rng)))
            }
        }
        entries = out
    }

    /// Adapters given whole (a loaded checkpoint or PEFT file); sorted into site order.
    public init(settings: LoRASettings, entries: [(site: LoRASite, layer: LoRALinear)]) {
        self.settings = settings
        self.entries = entries.sorted { $0.site < $1.site }
    }

    /// The adapter at `site`, if any.
    public func adapter(_ site: LoRASite) -> LoRALinear? { entries.first { $0.site == site }?.layer }

    /// Trainable parameters (A and B of every adapter).
    public var parameterCount: Int { entries.reduce(0) { $0 + $1.layer.a.count + $1.layer.b.count } }

    /// Dropout on or off in every adapter.
    public func setTraining(_ on: Bool) { for e in entries { e.layer.training = on } }

    /// Every adapter's dropout key for micro-batch `index` of a run seeded with `seed`.
    public func setDropoutKeys(seed: UInt64, microBatch index: UInt64) {
        for (n, e) in entries.enumerated() {
            e.layer.dropoutKey = loraDropoutKey(seed: seed, microBatch: index, salt: UInt64(n))
        }
    }

    /// Zeroes every gradient.
    public func zeroGradients() { for e in entries { e.layer.zeroGradients() } }
}

extension LoRAAdapters {
    /// Wraps the target projections of `model` in adapters, in place (the frozen layers stay as
    /// loaded: mapped float32 or quantized), and returns them. Per-layer widths of a pruned
    /// model come from each layer's own projections.
    public static func attach(to model: LlamaModel, settings: LoRASettings, seed: UInt64) throws -> LoRAAdapters {
        var weights = model.weights
        let adapters = try LoRAAdapters(settings: settings, layers: weights.layers.count, seed: seed) {
            weights.layers[$0.layer].linear($0.projection)
        }
        for e in adapters.entries { weights.layers[e.site.layer].setLinear(e.site.projection, e.layer) }
        model.weights = weights
        return adapters
    }
}
