import Foundation
import GreenPrune

extension LoRAAdapters {
    /// The same A and B (copies) over zero bases of the same shapes: what the merge and the PEFT
    /// files read, without holding the trained model's layers, so its mapped weights and the
    /// engine's buffers can be released before the merge loads a float32 copy of the base.
    func detached() -> LoRAAdapters {
        LoRAAdapters(settings: settings, entries: entries.map { e in
            let l = e.layer
            return (e.site, LoRALinear(base: ZeroLinear(outFeatures: l.outFeatures, inFeatures: l.inFeatures),
                                       rank: l.rank, alpha: l.alpha, dropout: l.dropout, a: l.a, b: l.b))
        })
    }
}

/// y = x · 0ᵀ: a shape without weights (a detached adapter's base adds nothing).
private final class ZeroLinear: LinearLayer {
    let outFeatures: Int
    let inFeatures: Int

    init(outFeatures: Int, inFeatures: Int) {
        self.outFeatures = outFeatures
        self.inFeatures = inFeatures
    }

    func forward(_ x: UnsafePointer<Float>, rows m: Int, into out: UnsafeMutablePointer<Float>) {
        out.update(repeating: 0, count: m * outFeatures)
    }

    func backward(input x: UnsafePointer<Float>, outputGradient dy: UnsafePointer<Float>, rows m: Int,
                  inputGradient dx: UnsafeMutablePointer<Float>?) throws {}

    var residentBytes: Int { 0 }
}
