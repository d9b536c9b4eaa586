import Foundation

/// The backward of `LlamaModel.runLayers`, layer by layer over the same `LlamaLayerWeights`
/// (llm.c's `gpt2_backward`: the forward's kernel list reversed, each `*Backward` kernel
/// accumulating into its d-buffers). Projections go through `LinearLayer.backward`, so a dense,
/// quantized or adapter-wrapped layer passes dx on and fills its own attached gradients.
extension LlamaModel {
    /// Backward of decoder layer l as `runLayers(…tape:)` ran it. On entry dx (N, C) holds
    /// ∂loss/∂(layer output); on return ∂loss/∂(layer input). The norms' weight gradients (C) go
    /// into `normGradient(norm)` when it gives a buffer. With a checkpointing tape the layer's
    /// activations are first recomputed from its saved input.
    func backwardLayer(_ l: Int, tape: LlamaTape, dx: UnsafeMutablePointer<Float>,
                       normGradient: (LlamaNorm) -> UnsafeMutablePointer<Float>?) throws {
        if tape.checkpointing { recomputeLayer(l, tape: tape) }
        let layer = weights.layers[l], a = tape.layerTape(l), x = tape.inputs[l].pointer
        let b = tape.batch, t = tape.time, n = b * t, c = hiddenSize, d = config.headDim
        let h = layer.numHeads, g = layer.numKVHeads, f = layer.intermediateSize
        func zeroed(_ buf: GradBuffer, _ count: Int) -> UnsafeMutablePointer<Float> {
            buf.pointer.update(repeating: 0, count: count)
            return buf.pointer
        }
        // MLP: out = x1 + down(silu(gate(ln2)) ⊙ up(ln2)), ln2 = rmsnorm(x1). dx passes to x1
        // through the residual unchanged and through the MLP into the norm.
        let dact = zeroed(tape.dact, n * f)
        try layer.downProj.backward(input: a.act.pointer, outputGradient: dx, rows: n, inputGradient: dact)
        let dgate = zeroed(tape.dgate, n * f), dup = zeroed(tape.dup, n * f)
        siluMulBackward(dgate, dup, dact, a.gate.pointer, a.up.pointer, count: n * f)
        var dln = zeroed(tape.dln, n * c)
        try layer.gateProj.backward(input: a.ln2.pointer, outputGradient: dgate, rows: n, inputGradient: dln)
        try layer.upProj.backward(input: a.ln2.pointer, outputGradient: dup, rows: n, inputGradient: dln)
        rmsnormBackward(dx, normGradient(.postAttention), dln, a.x1.pointer, layer.postAttentionLayernorm.pointer,
                        a.rstd2.pointer, n: n, c: c)
        // Attention: x1 = x + o(attention(rope(q(ln1)), rope(k(ln1)), v(ln1))), ln1 = rmsnorm(x).
        let dy = zeroed(tape.dy, n * h * d)
        try layer.oProj.backward(input: a.y.pointer, outputGradient: dx, rows: n, inputGradient: dy)
        let dq = zeroed(tape.dq, n * h * d), dk = zeroed(tape.dk, n * g * d), dv = zeroed(tape.dv, n * g * d)
        attentionBackward(dq: dq, dk: dk, dv: dv, dout: dy, q: a.q.pointer, k: a.k.pointer, v: a.v.pointer,
                          probs: a.probs.pointer, b: b, t: t, heads: h, kvHeads: g, d: d,
                          qStride: h * d, kvStride: g * d, scratch: tape.scratch.pointer)
        ropeBackward(dq, cos: tape.cos.pointer, sin: tape.sin.pointer, b: b, t: t, heads: h, d: d, rowStride: h * d)
        ropeBackward(dk, cos: tape.cos.pointer, sin: tape.sin.pointer, b: b, t: t, heads: g, d: d, rowStride: g * d)
        dln = zeroed(tape.dln, n * c)
        try layer.qProj.backward(input: a.ln1.pointer, outputGradient: dq, rows: n, inputGradient: dln)
        try layer.kProj.backward(input: a.ln1.pointer, outputGradient: dk, rows: n, inputGradient: dln)
        try layer.vProj.backward(input: a.ln1.pointer, outputGradient: dv, rows: n, inputGradient: dln)
        rmsnormBackward(dx, normGradient(.input), dln, x, layer.inputLayernorm.pointer, a.rstd1.pointer, n: n, c: c)
    }

    /// Runs layer l's forward again from its saved input, recording into the tape's shared layer
    /// tape (the same code and inputs as the first forward, so the same activations).
    private func recomputeLayer(_ l: Int, tape: LlamaTape) {
        let n = tape.batch * tape.time
        tape.rerun.pointer.update(from: tape.inputs[l].pointer, count: n * hiddenSize)
        tape.recomputing = true
        defer { tape.recomputing = false }
        runLayers(tape.rerun.pointer, layers: l ..< l + 1, batch: tape.batch, time: tape.time,
                  lengths: Array(repeating: tape.time, count: tape.batch), tape: tape)
    }
}
