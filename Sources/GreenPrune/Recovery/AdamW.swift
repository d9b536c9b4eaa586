import Foundation

/// AdamW (Loshchilov & Hutter 2019) with PyTorch's update rule (`torch.optim.AdamW`,
/// single-tensor path), for parameter tensors held in numbered slots:
///
///     t += 1
///     θ ← θ · (1 − lr · λ)                         decoupled weight decay
///     m ← m + (1 − β1) · (g − m)                  (PyTorch's lerp)
///     v ← β2 · v + (1 − β2) · g²
///     θ ← θ − lr / (1 − β1ᵗ) · m / (√v / √(1 − β2ᵗ) + ε)
///
/// `beginStep()` advances t once per optimizer step; `update` then applies the rule to each slot.
public struct AdamW: Equatable, Sendable {
    public var beta1: Float
    public var beta2: Float
    public var epsilon: Float
    /// λ, decoupled from the gradient.
    public var weightDecay: Float
    /// Optimizer steps taken (t).
    public var step: Int
    /// First moments by slot (empty until the slot's first update).
    public var m: [[Float]]
    /// Second moments by slot.
    public var v: [[Float]]

    /// PyTorch's defaults but for the weight decay (Hugging Face Trainer's default 0).
    public init(slots: Int, beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8, weightDecay: Float = 0) {
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.weightDecay = weightDecay
        step = 0
        m = Array(repeating: [], count: slots)
        v = Array(repeating: [], count: slots)
    }

    /// Starts an optimizer step (t += 1).
    public mutating func beginStep() { step += 1 }

    /// Applies the rule at the current t to the tensor in `slot`.
    public mutating func update(_ theta: inout [Float], gradient g: [Float], slot: Int, lr: Float) {
        precondition(step >= 1, "AdamW: beginStep() before update")
        precondition(theta.count == g.count, "AdamW: parameter and gradient sizes differ")
        if m[slot].isEmpty {
            m[slot] = [Float](repeating: 0, count: theta.count)
            v[slot] = [Float](repeating: 0, count: theta.count)
        }
        let b1 = beta1, b2 = beta2, eps = epsilon
        let decay = 1 - lr * weightDecay
        let bc1 = 1 - pow(Double(b1), Double(step))
        let bc2Sqrt = Float((1 - pow(Double(b2), Double(step))).squareRoot())
        let stepSize = Float(Double(lr) / bc1)
        m[slot].withUnsafeMutableBufferPointer { m in
            v[slot].withUnsafeMutableBufferPointer { v in
                for j in theta.indices {
                    let gj = g[j]
                    theta[j] *= decay
                    m[j] += (1 - b1) * (gj - m[j])
                    v[j] = v[j] * b2 + (1 - b2) * gj * gj
                    let denom = v[j].squareRoot() / bc2Sqrt + eps
                    theta[j] -= stepSize * (m[j] / denom)
                }
            }
        }
    }
}
