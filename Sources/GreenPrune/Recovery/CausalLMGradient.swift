import Foundation

/// A causal language model that can take one training micro-batch: the contract between the
/// recovery loop and a gradient engine.
///
/// The loss is Hugging Face's causal-LM token loss: the logits at position t − 1 predict token t,
/// and a target position t counts when `lossMask[b][t]` is true (position 0 never counts; with
/// no mask every t ≥ 1 counts). The rows of `batch` have equal lengths.
public protocol CausalLMGradient: AnyObject {
    /// Runs the forward and backward of `batch` (B rows of T token ids): returns the summed token
    /// loss (−log p of each counted target, unscaled) and the number of counted targets, and
    /// adds `scale` · d(loss sum)/dθ into the gradients of the trainable layers (the LoRA
    /// adapters), whose dropout keys the caller has set.
    func lossAndBackward(batch: [[Int]], lossMask: [[Bool]]?, scale: Float) throws -> (lossSum: Double, tokens: Int)

    /// The summed token loss and counted targets of `batch` without gradients (validation).
    func loss(batch: [[Int]], lossMask: [[Bool]]?) throws -> (lossSum: Double, tokens: Int)
}

extension CausalLMGradient {
    /// By default the training pass with a zero scale: right, but it pays for a backward.
    public func loss(batch: [[Int]], lossMask: [[Bool]]?) throws -> (lossSum: Double, tokens: Int) {
        try lossAndBackward(batch: batch, lossMask: lossMask, scale: 0)
    }
}
