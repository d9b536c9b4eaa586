import Foundation

/// The Llama gradient engine is the recovery loop's model: its forward runs the adapter-wrapped
/// projections (dropout keyed per micro-batch by the trainer, so a checkpointed layer's
/// recomputed forward draws the same masks), and `LinearLayer.backward` fills each adapter's
/// dA and dB while the frozen bases only pass dx on.
extension LlamaGradient: CausalLMGradient {
    /// `accumulate` under the trainer's name.
    public func lossAndBackward(batch: [[Int]], lossMask: [[Bool]]?, scale: Float) throws -> (lossSum: Double, tokens: Int) {
        try accumulate(batch: batch, lossMask: lossMask, scale: scale)
    }

    /// Wraps the target projections of `model` in LoRA adapters (`LoRAAdapters.attach`; the
    /// frozen layers stay as loaded, mapped float32 or quantized, and get no gradient buffers)
    /// and returns an engine whose backward reaches every layer's adapters, with them.
    public static func forLoRA(_ model: LlamaModel, settings: LoRASettings, seed: UInt64,
                               checkpointing: Bool = true) throws -> (engine: LlamaGradient, adapters: LoRAAdapters) {
        let adapters = try LoRAAdapters.attach(to: model, settings: settings, seed: seed)
        let engine = try LlamaGradient(model: model, wanted: [], checkpointing: checkpointing)
        // No frozen parameter is wanted, so the engine would stop above layer 0; the adapters
        // of every layer need their backward.
        engine.lowestBackwardLayer = 0
        return (engine, adapters)
    }
}
