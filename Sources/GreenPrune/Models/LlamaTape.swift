import Foundation

/// What the backward of one decoder layer reads, recorded by `LlamaModel.runLayers(…tape:)`
/// (llm.c's activation tensors for one layer). N = B·T rows; widths are this layer's.
/// The layer's input x is `LlamaTape.inputs[l]`.
final class LlamaLayerTape {
    let ln1: GradBuffer     // (N, C) input_layernorm output (what q/k/v read)
    let rstd1: GradBuffer   // (N) its 1/rms
    let q: GradBuffer       // (N, H·D) after RoPE
    let k: GradBuffer       // (N, G·D) after RoPE
    let v: GradBuffer       // (N, G·D)
    let probs: GradBuffer   // (B, H, T, T) attention probabilities
    let y: GradBuffer       // (N, H·D) attention output (what o_proj reads)
    let x1: GradBuffer      // (N, C) residual after attention
    let ln2: GradBuffer     // (N, C) post_attention_layernorm output (what gate/up read)
    let rstd2: GradBuffer   // (N)
    let gate: GradBuffer    // (N, F) before SiLU
    let up: GradBuffer      // (N, F)
    let act: GradBuffer     // (N, F) silu(gate) · up (what down_proj reads)

    init(b: Int, t: Int, c: Int, d: Int, heads h: Int, kvHeads g: Int, mlp f: Int) {
        let n = b * t
        ln1 = GradBuffer(n * c); rstd1 = GradBuffer(n)
        q = GradBuffer(n * h * d); k = GradBuffer(n * g * d); v = GradBuffer(n * g * d)
        probs = GradBuffer(b * h * t * t); y = GradBuffer(n * h * d)
        x1 = GradBuffer(n * c); ln2 = GradBuffer(n * c); rstd2 = GradBuffer(n)
        gate = GradBuffer(n * f); up = GradBuffer(n * f); act = GradBuffer(n * f)
    }
}

/// The activations one forward keeps for its backward over B sequences of T tokens (no cache,
/// no padding), and the backward's scratch, allocated once per (B, T) and reused.
///
/// Without checkpointing every layer's `LlamaLayerTape` is kept. With checkpointing only each
/// layer's input is kept; the backward runs the layer's forward again from it into one shared
/// layer tape (`recompute`), so the saved activations are L·N·C floats plus one layer's.
public final class LlamaTape {
    /// Sequences B and tokens per sequence T.
    public let batch: Int, time: Int
    /// Whether only layer inputs are kept (activations recomputed during the backward).
    public let checkpointing: Bool
    /// inputs[l] (N, C): the residual stream entering layer l. A caller that keeps the inputs of
    /// several batches swaps its own in; a layer whose buffer is shorter than (N, C) is not saved.
    var inputs: [GradBuffer]
    /// One tape per layer, or (checkpointing) one shared by every layer, sized for the widest.
    let layers: [LlamaLayerTape]
    /// Set while the backward recomputes a layer: the forward then records into `layers[0]`.
    var recomputing = false
    /// Whether a checkpointed forward also records into the shared layer tape (no memory beyond
    /// that tape): it then takes the same path as the recomputation, so a recomputed layer gives
    /// its output bit for bit and the gradients equal those of a forward that keeps every
    /// activation. A forward that records nothing takes the inference paths (grouped-query
    /// attention, no probabilities kept), whose sgemm shapes differ: OpenBLAS's AVX2 kernels
    /// then round some sums differently, so the recomputed layer would not be the one whose loss
    /// was taken.
    var checkpointedForwardRecords = true
    /// (N, C) the residual stream a recomputed layer runs on (checkpointing only).
    let rerun: GradBuffer
    /// Rotary tables (T, D/2) for positions 0..<T.
    let cos: GradBuffer, sin: GradBuffer
    /// Backward scratch: gradients of one layer's activations (widths the maxima over layers).
    let dact, dgate, dup: GradBuffer  // (N, F)
    let dln: GradBuffer               // (N, C)
    let dy, dq: GradBuffer            // (N, H·D)
    let dk, dv: GradBuffer            // (N, G·D)
    let scratch: GradBuffer           // (T, T) attention backward

    /// `savesInputs` false: the layer inputs are left empty for the caller to swap in.
    init(model: LlamaModel, batch b: Int, time t: Int, checkpointing: Bool, savesInputs: Bool = true) {
        let w = model.weights.layers, c = model.hiddenSize, d = model.config.headDim, n = b * t
        batch = b; time = t
        self.checkpointing = checkpointing
        inputs = w.map { _ in GradBuffer(savesInputs ? n * c : 0) }
        let maxH = w.map(\.numHeads).max() ?? 0, maxG = w.map(\.numKVHeads).max() ?? 0
        let maxF = w.map(\.intermediateSize).max() ?? 0
        if checkpointing {
            layers = w.isEmpty ? [] : [LlamaLayerTape(b: b, t: t, c: c, d: d, heads: maxH, kvHeads: maxG, mlp: maxF)]
        } else {
            layers = w.map { LlamaLayerTape(b: b, t: t, c: c, d: d, heads: $0.numHeads, kvHeads: $0.numKVHeads, mlp: $0.intermediateSize) }
        }
        rerun = GradBuffer(checkpointing ? n * c : 0)
        cos = GradBuffer(t * d / 2); sin = GradBuffer(t * d / 2)
        ropeTables(cos.pointer, sin.pointer, invFreq: model.invFreq, start: 0, t: t)
        dact = GradBuffer(n * maxF); dgate = GradBuffer(n * maxF); dup = GradBuffer(n * maxF)
        dln = GradBuffer(n * c)
        dy = GradBuffer(n * maxH * d); dq = GradBuffer(n * maxH * d)
        dk = GradBuffer(n * maxG * d); dv = GradBuffer(n * maxG * d)
        scratch = GradBuffer(t * t)
    }

    /// Called by the forward as layer l starts on x (N, C): keeps x as the layer's input and
    /// returns where the layer records its activations, or nil when it records none (the
    /// checkpointed forward).
    func record(layer l: Int, input x: UnsafePointer<Float>, count: Int) -> LlamaLayerTape? {
        if recomputing { return layers[0] }
        if inputs[l].count >= count { inputs[l].pointer.update(from: x, count: count) }
        guard checkpointing else { return layers[l] }
        return checkpointedForwardRecords ? layers[0] : nil
    }

    /// The tape of layer l after the forward (or after `recompute`).
    func layerTape(_ l: Int) -> LlamaLayerTape { checkpointing ? layers[0] : layers[l] }
}
