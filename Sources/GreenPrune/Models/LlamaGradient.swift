import Foundation

/// A float32 buffer allocated once and freed with its owner (activations, gradients).
public final class GradBuffer {
    public let pointer: UnsafeMutablePointer<Float>
    public let count: Int

    public init(_ count: Int) {
        self.count = count
        pointer = .allocate(capacity: max(count, 1))
        pointer.initialize(repeating: 0, count: max(count, 1))
    }

    deinit { pointer.deallocate() }

    public func zero() { pointer.update(repeating: 0, count: count) }
    /// A copy as an array.
    public var array: [Float] { Array(UnsafeBufferPointer(start: pointer, count: count)) }
}

/// Forward with saved activations, then backward, of a Hugging Face Llama on a checkpoint
/// held as a `StateDict` (per-layer widths from the tensor shapes, so pruned models work).
///
/// The loss is Hugging Face's causal-LM loss: the mean over the B·(T−1) predicted tokens of
/// −log softmax(logits[b, t−1])[ids[b, t]]. `accumulate` adds scale-weighted gradients of the
/// token-loss SUM into the buffers of the weights asked for, so a caller splits a batch into
/// micro-batches (or single samples, for per-sample gradients) and sums. Weights not asked for
/// get no buffer; backward stops at the lowest layer that still needs one.
public final class LlamaGradient {
    public let geometry: PruneGeometry
    public let state: StateDict
    public let rmsEps: Float
    /// Rotary inverse frequencies (D/2).
    public let invFreq: [Float]
    /// Gradient buffers by parameter name (embedding: `model.embed_tokens.weight`, which also
    /// collects the tied head's part).
    public private(set) var gradients: [String: GradBuffer] = [:]

    /// `wanted`: parameter names whose gradients are kept.
    /// `invFreq` (D/2) from `RopeConfig.inverseFrequencies`.
    public init(state: StateDict, geometry: PruneGeometry, invFreq: [Float], rmsEps: Float, wanted: Set<String>) throws {
        self.state = state
        self.geometry = geometry
        self.rmsEps = rmsEps
        guard invFreq.count * 2 == geometry.headDim else { throw InputError("rope", "\(invFreq.count) frequencies for head_dim \(geometry.headDim)") }
        self.invFreq = invFreq
        for name in wanted {
            guard let t = state[name] else { throw InputError(name, "no such parameter for a gradient") }
            gradients[name] = GradBuffer(t.values.count)
        }
        if !geometry.tiedEmbeddings && state[LlamaNames.head] == nil {
            throw InputError(LlamaNames.head, "missing and tie_word_embeddings is false")
        }
    }

    /// Frees the activation workspace (the next pass allocates it again).
    public func releaseWorkspace() { workspace = nil }

    /// The gradient of `name` as an array, freeing its buffer (so copying every gradient out
    /// never holds two copies of all of them).
    public func takeGradient(_ name: String) -> [Float]? {
        guard let g = gradients.removeValue(forKey: name) else { return nil }
        return g.array
    }

    /// Sets every gradient buffer to 0.
    public func zeroGradients() { for g in gradients.values { g.zero() } }

    /// Every Llama parameter name this model has, in Hugging Face order.
    public static func parameterNames(layers: Int, tied: Bool) -> [String] {
        LlamaNames.parameterNames(layers: layers, tied: tied)
    }

    private func weight<R>(_ name: String, _ body: (UnsafePointer<Float>) -> R) throws -> R {
        guard let t = state[name], !t.values.isEmpty else { throw InputError(name, "weight missing from the model or empty") }
        return try t.values.withUnsafeBufferPointer { buf in
            guard let base = buf.baseAddress else { throw InputError(name, "empty weight") }
            return body(base)
        }
    }

    private func grad(_ name: String) -> UnsafeMutablePointer<Float>? { gradients[name]?.pointer }

    /// Activations one layer's backward needs (N = B·T rows).
    private struct LayerActs {
        let x: GradBuffer       // (N, C) residual entering the layer
        let ln1: GradBuffer     // (N, C) input_layernorm output
        let rstd1: GradBuffer   // (N)
        let q: GradBuffer       // (N, H·D) after RoPE
        let k: GradBuffer       // (N, G·D) after RoPE
        let v: GradBuffer       // (N, G·D)
        let probs: GradBuffer   // (B, H, T, T) attention probabilities
        let y: GradBuffer       // (N, H·D) attention output before o_proj
        let x1: GradBuffer      // (N, C) residual after attention
        let ln2: GradBuffer     // (N, C) post_attention_layernorm output
        let rstd2: GradBuffer   // (N)
        let gate: GradBuffer    // (N, F)
        let up: GradBuffer      // (N, F)
        let act: GradBuffer     // (N, F) silu(gate) · up
    }

    /// Every buffer one forward+backward needs, allocated once for B ≤ `b` sequences of `t`
    /// tokens and reused by later passes (a smaller micro-batch uses the prefix): fresh
    /// allocations each pass cost page faults and zeroing on the order of the matmuls.
    private final class Workspace {
        let b: Int, t: Int
        let resid: [GradBuffer]     // L+1 × (N, C): resid[l] enters layer l, resid[L] leaves the last
        let acts: [LayerActs]
        let scratch: GradBuffer     // (T, T) attention scratch
        let lnf: GradBuffer         // (N, C) final norm output
        let rstdf: GradBuffer       // (N)
        let logits: GradBuffer      // (B·(T−1), V) logits, then dlogits
        let dlnf: GradBuffer        // (N, C)
        let dx: GradBuffer          // (N, C) gradient of the residual stream
        let dact, dgate, dup: GradBuffer  // (N, max F)
        let dln1, dln2: GradBuffer  // (N, C)
        let dy, dq: GradBuffer      // (N, max H·D)
        let dk, dv: GradBuffer      // (N, max G·D)

        init(_ g: PruneGeometry, b: Int, t: Int) {
            self.b = b
            self.t = t
            let n = b * t, c = g.hidden, d = g.headDim
            let resid = (0...g.layers.count).map { _ in GradBuffer(n * c) }
            self.resid = resid
            acts = g.layers.enumerated().map { l, dims in
                let h = dims.numHeads, kv = dims.numKVHeads, f = dims.intermediate
                return LayerActs(x: resid[l], ln1: GradBuffer(n * c), rstd1: GradBuffer(n), q: GradBuffer(n * h * d),
                                 k: GradBuffer(n * kv * d), v: GradBuffer(n * kv * d), probs: GradBuffer(b * h * t * t),
                                 y: GradBuffer(n * h * d), x1: GradBuffer(n * c), ln2: GradBuffer(n * c), rstd2: GradBuffer(n),
                                 gate: GradBuffer(n * f), up: GradBuffer(n * f), act: GradBuffer(n * f))
            }
            let maxF = g.layers.map(\.intermediate).max() ?? 0
            let maxQ = (g.layers.map(\.numHeads).max() ?? 0) * d, maxKV = (g.layers.map(\.numKVHeads).max() ?? 0) * d
            scratch = GradBuffer(t * t)
            lnf = GradBuffer(n * c); rstdf = GradBuffer(n); logits = GradBuffer(b * (t - 1) * g.vocab)
            dlnf = GradBuffer(n * c); dx = GradBuffer(n * c)
            dact = GradBuffer(n * maxF); dgate = GradBuffer(n * maxF); dup = GradBuffer(n * maxF)
            dln1 = GradBuffer(n * c); dln2 = GradBuffer(n * c)
            dy = GradBuffer(n * maxQ); dq = GradBuffer(n * maxQ); dk = GradBuffer(n * maxKV); dv = GradBuffer(n * maxKV)
        }
    }

    private var workspace: Workspace?

    private func workspaceFor(b: Int, t: Int) -> Workspace {
        if let w = workspace, w.t == t, w.b >= b { return w }
        workspace = nil  // free the old one before allocating
        let w = Workspace(geometry, b: b, t: t)
        workspace = w
        return w
    }

    /// Runs the forward, saving activations; `hidden(l, input, output)` sees the residual stream
    /// around each layer (Block Influence). Returns the activations and the final residual.
    private func forward(ids: [Int32], b: Int, t: Int, cos: UnsafePointer<Float>, sin: UnsafePointer<Float>,
                         hidden: (Int, UnsafePointer<Float>, UnsafePointer<Float>) -> Void) throws -> Workspace {
        let g = geometry, c = g.hidden, d = g.headDim, n = b * t
        let ws = workspaceFor(b: b, t: t)
        try ids.withUnsafeBufferPointer { idp in
            guard let idBase = idp.baseAddress else { return }
            try weight(LlamaNames.embedding) { embeddingForward(ws.resid[0].pointer, ids: idBase, table: $0, n: n, c: c) }
        }
        for (l, dims) in g.layers.enumerated() {
            let h = dims.numHeads, kv = dims.numKVHeads, f = dims.intermediate
            let a = ws.acts[l]
            try weight(LlamaNames.norm(.input, layer: l)) { rmsnormForward(a.ln1.pointer, a.rstd1.pointer, a.x.pointer, $0, n: n, c: c, eps: rmsEps) }
            try weight(LlamaNames.q(l)) { matmulLinear(a.q.pointer, a.ln1.pointer, $0, m: n, n: h * d, k: c) }
            try weight(LlamaNames.k(l)) { matmulLinear(a.k.pointer, a.ln1.pointer, $0, m: n, n: kv * d, k: c) }
            try weight(LlamaNames.v(l)) { matmulLinear(a.v.pointer, a.ln1.pointer, $0, m: n, n: kv * d, k: c) }
            try addBiasIfPresent(LlamaNames.q(l), a.q.pointer, n: n)
            try addBiasIfPresent(LlamaNames.k(l), a.k.pointer, n: n)
            try addBiasIfPresent(LlamaNames.v(l), a.v.pointer, n: n)
            ropeForward(a.q.pointer, cos: cos, sin: sin, b: b, t: t, heads: h, d: d, rowStride: h * d)
            ropeForward(a.k.pointer, cos: cos, sin: sin, b: b, t: t, heads: kv, d: d, rowStride: kv * d)
            attentionForward(a.y.pointer, probs: a.probs.pointer, q: a.q.pointer, k: a.k.pointer, v: a.v.pointer,
                             lengths: Array(repeating: t, count: b), b: b, t: t, past: 0, s: t, heads: h, kvHeads: kv,
                             d: d, qStride: h * d, kvStride: kv * d, causal: true, scratch: ws.scratch.pointer)
            try weight(LlamaNames.o(l)) { matmulLinear(a.x1.pointer, a.y.pointer, $0, m: n, n: c, k: h * d) }
            try addBiasIfPresent(LlamaNames.o(l), a.x1.pointer, n: n)
            residualForward(a.x1.pointer, a.x.pointer, count: n * c)
            try weight(LlamaNames.norm(.postAttention, layer: l)) { rmsnormForward(a.ln2.pointer, a.rstd2.pointer, a.x1.pointer, $0, n: n, c: c, eps: rmsEps) }
            try weight(LlamaNames.gate(l)) { matmulLinear(a.gate.pointer, a.ln2.pointer, $0, m: n, n: f, k: c) }
            try weight(LlamaNames.up(l)) { matmulLinear(a.up.pointer, a.ln2.pointer, $0, m: n, n: f, k: c) }
            try addBiasIfPresent(LlamaNames.gate(l), a.gate.pointer, n: n)
            try addBiasIfPresent(LlamaNames.up(l), a.up.pointer, n: n)
            siluMulForward(a.act.pointer, a.gate.pointer, a.up.pointer, count: n * f)
            let out = ws.resid[l + 1]
            try weight(LlamaNames.down(l)) { matmulLinear(out.pointer, a.act.pointer, $0, m: n, n: c, k: f) }
            try addBiasIfPresent(LlamaNames.down(l), out.pointer, n: n)
            residualForward(out.pointer, a.x1.pointer, count: n * c)
            hidden(l, a.x.pointer, out.pointer)
        }
        return ws
    }

    private func addBiasIfPresent(_ weightName: String, _ out: UnsafeMutablePointer<Float>, n: Int) throws {
        guard let bias = state[LlamaNames.bias(weightName)] else { return }
        bias.values.withUnsafeBufferPointer { addBias(out, $0.baseAddress!, n: n, c: bias.values.count) }
    }

    /// Validates a batch: equal lengths T ≥ 2, ids inside the vocabulary.
    private func flatten(_ batch: [[Int]]) throws -> (ids: [Int32], b: Int, t: Int) {
        guard let t = batch.first?.count, t >= 2, batch.allSatisfy({ $0.count == t }) else {
            throw InputError("calibration", "batch needs sequences of one length ≥ 2")
        }
        var ids: [Int32] = []
        ids.reserveCapacity(batch.count * t)
        for s in batch {
            for id in s {
                guard id >= 0, id < geometry.vocab else { throw InputError("calibration", "token id \(id) outside the vocabulary") }
                ids.append(Int32(id))
            }
        }
        return (ids, batch.count, t)
    }

    private func ropeTablesFor(t: Int) -> (GradBuffer, GradBuffer) {
        let half = geometry.headDim / 2
        let cos = GradBuffer(t * half), sin = GradBuffer(t * half)
        ropeTables(cos.pointer, sin.pointer, invFreq: invFreq, start: 0, t: t)
        return (cos, sin)
    }

    /// Forward and backward on `batch` (B sequences of T ids): adds `scale` · ∂(Σ token losses)/∂W
    /// to every kept gradient and returns Σ token losses (B·(T−1) tokens, in double).
    /// For the mean loss of the whole calibration set, scale = 1 / (total predicted tokens).
    @discardableResult
    public func accumulate(batch: [[Int]], scale: Float) throws -> Double {
        let (ids, b, t) = try flatten(batch)
        let g = geometry, c = g.hidden, d = g.headDim, n = b * t, vocab = g.vocab
        let (cos, sin) = ropeTablesFor(t: t)
        // Lowest layer whose backward is needed.
        var lowest = g.layers.count
        if gradients[LlamaNames.embedding] != nil { lowest = 0 }
        for name in gradients.keys { if let l = LlamaNames.layerIndex(name) { lowest = min(lowest, l) } }
        let ws = try forward(ids: ids, b: b, t: t, cos: cos.pointer, sin: sin.pointer, hidden: { _, _, _ in })
        let xL = ws.resid[g.layers.count]
        // Buffers the backward accumulates into start at 0.
        func zero(_ buf: GradBuffer, _ count: Int) { buf.pointer.update(repeating: 0, count: count) }

        // Final norm and head, predicted rows only: sample s, positions 0 ..< T−1.
        let lnf = ws.lnf, rstdf = ws.rstdf
        try weight(LlamaNames.finalNorm) { rmsnormForward(lnf.pointer, rstdf.pointer, xL.pointer, $0, n: n, c: c, eps: rmsEps) }
        let rowsPer = t - 1, m = b * rowsPer
        let logits = ws.logits
        var targets = [Int32](repeating: 0, count: m)
        let headName = g.tiedEmbeddings ? LlamaNames.embedding : LlamaNames.head
        try weight(headName) { e in
            for s in 0..<b {
                matmulLinear(logits.pointer + s * rowsPer * vocab, lnf.pointer + s * t * c, e, m: rowsPer, n: vocab, k: c)
                for i in 0..<rowsPer { targets[s * rowsPer + i] = ids[s * t + i + 1] }
            }
        }
        let loss = targets.withUnsafeBufferPointer {
            crossEntropyForwardBackward(logits.pointer, targets: $0.baseAddress!, n: m, v: vocab, scale: scale)
        }
        // dlnf for predicted rows (the last position of each sample gets no gradient).
        let dlnf = ws.dlnf
        zero(dlnf, n * c)
        try weight(headName) { e in
            for s in 0..<b {
                matmulLinearBackward(dlnf.pointer + s * t * c, grad(headName).map { $0 }, logits.pointer + s * rowsPer * vocab,
                                     lnf.pointer + s * t * c, e, m: rowsPer, n: vocab, k: c)
            }
        }
        let dx = ws.dx
        zero(dx, n * c)
        try weight(LlamaNames.finalNorm) { rmsnormBackward(dx.pointer, grad(LlamaNames.finalNorm), dlnf.pointer, xL.pointer, $0, rstdf.pointer, n: n, c: c) }

        // Layers in reverse, down to the lowest one needed.
        let scratch = ws.scratch
        for l in stride(from: g.layers.count - 1, through: lowest, by: -1) {
            let a = ws.acts[l]
            let dims = g.layers[l], h = dims.numHeads, kv = dims.numKVHeads, f = dims.intermediate
            // dx holds ∂/∂(layer output); the residual passes it to x1 unchanged.
            let dx1 = dx
            let dact = ws.dact
            zero(dact, n * f)
            try weight(LlamaNames.down(l)) { matmulLinearBackward(dact.pointer, grad(LlamaNames.down(l)), dx.pointer, a.act.pointer, $0, m: n, n: c, k: f) }
            try biasBackward(LlamaNames.down(l), dx.pointer, n: n)
            let dgate = ws.dgate, dup = ws.dup
            zero(dgate, n * f)
            zero(dup, n * f)
            siluMulBackward(dgate.pointer, dup.pointer, dact.pointer, a.gate.pointer, a.up.pointer, count: n * f)
            let dln2 = ws.dln2
            zero(dln2, n * c)
            try weight(LlamaNames.gate(l)) { matmulLinearBackward(dln2.pointer, grad(LlamaNames.gate(l)), dgate.pointer, a.ln2.pointer, $0, m: n, n: f, k: c) }
            try weight(LlamaNames.up(l)) { matmulLinearBackward(dln2.pointer, grad(LlamaNames.up(l)), dup.pointer, a.ln2.pointer, $0, m: n, n: f, k: c) }
            try biasBackward(LlamaNames.gate(l), dgate.pointer, n: n)
            try biasBackward(LlamaNames.up(l), dup.pointer, n: n)
            try weight(LlamaNames.norm(.postAttention, layer: l)) {
                rmsnormBackward(dx1.pointer, grad(LlamaNames.norm(.postAttention, layer: l)), dln2.pointer, a.x1.pointer, $0, a.rstd2.pointer, n: n, c: c)
            }
            // Attention: dx1 flows to x through the residual and through o_proj ∘ attention.
            let dy = ws.dy
            zero(dy, n * h * d)
            try weight(LlamaNames.o(l)) { matmulLinearBackward(dy.pointer, grad(LlamaNames.o(l)), dx1.pointer, a.y.pointer, $0, m: n, n: c, k: h * d) }
            try biasBackward(LlamaNames.o(l), dx1.pointer, n: n)
            let dq = ws.dq, dk = ws.dk, dv = ws.dv
            zero(dq, n * h * d)
            zero(dk, n * kv * d)
            zero(dv, n * kv * d)
            attentionBackward(dq: dq.pointer, dk: dk.pointer, dv: dv.pointer, dout: dy.pointer, q: a.q.pointer, k: a.k.pointer,
                              v: a.v.pointer, probs: a.probs.pointer, b: b, t: t, heads: h, kvHeads: kv, d: d,
                              qStride: h * d, kvStride: kv * d, scratch: scratch.pointer)
            ropeBackward(dq.pointer, cos: cos.pointer, sin: sin.pointer, b: b, t: t, heads: h, d: d, rowStride: h * d)
            ropeBackward(dk.pointer, cos: cos.pointer, sin: sin.pointer, b: b, t: t, heads: kv, d: d, rowStride: kv * d)
            let dln1 = ws.dln1
            zero(dln1, n * c)
            try weight(LlamaNames.q(l)) { matmulLinearBackward(dln1.pointer, grad(LlamaNames.q(l)), dq.pointer, a.ln1.pointer, $0, m: n, n: h * d, k: c) }
            try weight(LlamaNames.k(l)) { matmulLinearBackward(dln1.pointer, grad(LlamaNames.k(l)), dk.pointer, a.ln1.pointer, $0, m: n, n: kv * d, k: c) }
            try weight(LlamaNames.v(l)) { matmulLinearBackward(dln1.pointer, grad(LlamaNames.v(l)), dv.pointer, a.ln1.pointer, $0, m: n, n: kv * d, k: c) }
            try biasBackward(LlamaNames.q(l), dq.pointer, n: n)
            try biasBackward(LlamaNames.k(l), dk.pointer, n: n)
            try biasBackward(LlamaNames.v(l), dv.pointer, n: n)
            try weight(LlamaNames.norm(.input, layer: l)) {
                rmsnormBackward(dx1.pointer, grad(LlamaNames.norm(.input, layer: l)), dln1.pointer, a.x.pointer, $0, a.rstd1.pointer, n: n, c: c)
            }
        }
        if lowest == 0, let de = grad(LlamaNames.embedding) {
            ids.withUnsafeBufferPointer { embeddingBackward(de, dx.pointer, ids: $0.baseAddress!, n: n, c: c) }
        }
        return loss
    }

    /// dbias (C) += Σ_rows dout (N, C), when the weight has a bias and its gradient is kept.
    private func biasBackward(_ weightName: String, _ dout: UnsafePointer<Float>, n: Int) throws {
        let name = LlamaNames.bias(weightName)
        guard let db = grad(name), let bias = state[name] else { return }
        let c = bias.values.count
        for i in 0..<n { for j in 0..<c { db[j] += dout[i * c + j] } }
    }

    /// Forward only: logits (B·T, V) of every position, row-major.
    public func logits(batch: [[Int]]) throws -> [Float] {
        let (ids, b, t) = try flatten(batch)
        let (cos, sin) = ropeTablesFor(t: t)
        let xL = try forward(ids: ids, b: b, t: t, cos: cos.pointer, sin: sin.pointer, hidden: { _, _, _ in }).resid[geometry.layers.count]
        let n = b * t, c = geometry.hidden
        let lnf = GradBuffer(n * c)
        try weight(LlamaNames.finalNorm) { rmsnormForward(lnf.pointer, nil, xL.pointer, $0, n: n, c: c, eps: rmsEps) }
        var out = [Float](repeating: 0, count: n * geometry.vocab)
        try weight(geometry.tiedEmbeddings ? LlamaNames.embedding : LlamaNames.head) { e in
            out.withUnsafeMutableBufferPointer { matmulLinear($0.baseAddress!, lnf.pointer, e, m: n, n: geometry.vocab, k: c) }
        }
        return out
    }

    /// Forward only: feeds the residual stream around every layer to `hidden` (layer, input
    /// (B·T, C), output (B·T, C)) — what Block Influence needs.
    public func hiddenStates(batch: [[Int]], _ hidden: (Int, UnsafePointer<Float>, UnsafePointer<Float>) -> Void) throws {
        let (ids, b, t) = try flatten(batch)
        let (cos, sin) = ropeTablesFor(t: t)
        _ = try forward(ids: ids, b: b, t: t, cos: cos.pointer, sin: sin.pointer, hidden: hidden)
    }
}
