import Foundation

/// Folds adapters into a checkpoint: W' = W + (alpha / R) · B · A for every adapted projection,
/// so the merged model needs no LoRA code to load and evaluate.
public enum LoRAMerge {
    /// Adds every adapter of `adapters` into its projection's weight in `state` (a Hugging Face
    /// state dict); a missing weight or a shape other than (O, I) is an error naming it.
    public static func merge(_ adapters: LoRAAdapters, into state: inout StateDict) throws {
        for e in adapters.entries {
            let name = LlamaNames.weight(e.site.projection, layer: e.site.layer)
            let l = e.layer
            guard var w = state[name] else { throw InputError(name, "no such weight to merge the adapter into") }
            guard w.shape == [l.outFeatures, l.inFeatures] else {
                throw InputError(name, "has shape \(w.shape), the adapter is \(l.outFeatures)×\(l.inFeatures)")
            }
            state[name] = nil
            w.values.withUnsafeMutableBufferPointer { wp in
                loraMerge(wp.baseAddress!, l.a, l.b, o: l.outFeatures, i: l.inFeatures, r: l.rank, scale: l.scaling)
            }
            state[name] = w
        }
    }
}
