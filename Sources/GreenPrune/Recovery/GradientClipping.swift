import Foundation

/// Global-norm clipping as `torch.nn.utils.clip_grad_norm_`: the 2-norm of all gradients taken
/// together; when it exceeds `maxNorm`, every gradient is multiplied by maxNorm / (norm + 1e-6).
public enum GradientClipping {
    /// The global norm before clipping.
    @discardableResult
    public static func clip(_ gradients: inout [[Float]], maxNorm: Float) -> Double {
        let norm = globalNorm(gradients)
        let coefficient = Double(maxNorm) / (norm + 1e-6)
        guard coefficient < 1 else { return norm }
        let c = Float(coefficient)
        for t in gradients.indices { for j in gradients[t].indices { gradients[t][j] *= c } }
        return norm
    }

    /// √(Σ g²) over every tensor, accumulated in double precision.
    public static func globalNorm(_ gradients: [[Float]]) -> Double {
        var sum = 0.0
        for g in gradients { for x in g { sum += Double(x) * Double(x) } }
        return sum.squareRoot()
    }
}
