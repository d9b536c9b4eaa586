import Foundation

/// Folds adapters into a checkpoint: W' = W + (alpha / R) · B · A for every adapted projection,
/// so the merged model needs no LoRA code to load and evaluate.
public enum LoRAMerge {
    /// `tensors` (a model's named tensors) with every adapter of `adapters` added into its
    /// projection's weight as a writer reads it; a missing weight or a shape other than (O, I)
    /// is an error naming it.
    public static func merged(_ tensors: [NamedTensor], _ adapters: LoRAAdapters) throws -> [NamedTensor] {
        var out = tensors
        let index = Dictionary(out.indices.map { (out[$0].name, $0) }, uniquingKeysWith: { a, _ in a })
        for e in adapters.entries {
            let name = LlamaNames.weight(e.site.projection, layer: e.site.layer)
            let l = e.layer
            guard let i = index[name] else { throw InputError(name, "no such weight to merge the adapter into") }
            guard out[i].shape == [l.outFeatures, l.inFeatures] else {
                throw InputError(name, "has shape \(out[i].shape), the adapter is \(l.outFeatures)×\(l.inFeatures)")
            }
            out[i] = out[i].editing { wp in
                loraMerge(wp.baseAddress!, l.a, l.b, o: l.outFeatures, i: l.inFeatures, r: l.rank, scale: l.scaling)
            }
        }
        return out
    }
}
