import Foundation

/// Folds adapters into a checkpoint: W' = W + (alpha / R) · B · A for every adapted projection,
/// so the merged model needs no LoRA code to load and evaluate.
public enum LoRAMerge {
    /// Adds every adapter of `adapters` into its projection's weight in `state` (a Hugging Face
    /// state dict); a missing weight or a shape other than (O, I) is an error naming it.
    public static func merge(_ adapters: LoRAAdapters, into state: inout StateDict) throws {
        for (name, l) in byWeight(adapters) {
            guard var w = state[name] else { throw InputError(name, "no such weight to merge the adapter into") }
            state[name] = nil
            try merge(l, into: &w.values, shape: w.shape, name: name)
            state[name] = w
        }
    }

    /// Each adapter by the checkpoint name of the weight it folds into.
    public static func byWeight(_ adapters: LoRAAdapters) -> [String: LoRALinear] {
        Dictionary(adapters.entries.map { (LlamaNames.weight($0.site.projection, layer: $0.site.layer), $0.layer) }) { a, _ in a }
    }

    /// Adds one adapter into the weight `name` of `shape`, held row-major in `w`.
    public static func merge(_ l: LoRALinear, into w: inout [Float], shape: [Int], name: String) throws {
        guard shape == [l.outFeatures, l.inFeatures], w.count == l.outFeatures * l.inFeatures else {
            throw InputError(name, "has shape \(shape), the adapter is \(l.outFeatures)×\(l.inFeatures)")
        }
        w.withUnsafeMutableBufferPointer { wp in
            loraMerge(wp.baseAddress!, l.a, l.b, o: l.outFeatures, i: l.inFeatures, r: l.rank, scale: l.scaling)
        }
    }
}
