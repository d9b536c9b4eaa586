import Foundation

/// Gradients of Hugging Face's causal-LM loss through a `LlamaModel`: its own forward
/// (`runLayers` recording a `LlamaTape`), the head and loss, then `backwardLayer` in reverse.
/// The weights stay as the model holds them (mapped F32, owned copies, quantized codes or
/// adapter wrappers); only the gradients asked for get buffers.
///
/// The loss of a sequence is −log softmax(logits[t−1])[ids[t]] summed over its counted targets
/// t ≥ 1 (all of them, or those a loss mask marks). `accumulate` adds scale-weighted gradients
/// of that SUM into the buffers, so a caller splits a batch into micro-batches (or single
/// samples, for per-sample gradients) and sums; scale = 1 / (tokens counted in the whole batch)
/// gives the gradient of Hugging Face's mean loss. Backward stops at `lowestBackwardLayer`.
public final class LlamaGradient {
    /// The model whose forward and weights the engine runs.
    public let model: LlamaModel
    /// Keep only each layer's input during the forward and recompute the layer's activations in
    /// the backward (about L·N·C floats saved instead of every layer's activations; one more
    /// forward of compute). The gradients are the same.
    public var checkpointing: Bool { didSet { if checkpointing != oldValue { releaseWorkspace() } } }
    /// Gradient buffers by parameter name. A projection's are the buffers attached to its layer;
    /// for a tied model the embedding's buffer is the head's, collecting both parts.
    public private(set) var gradients: [String: GradBuffer] = [:]
    /// Lowest layer whose backward runs: the lowest layer holding a wanted parameter (0 when the
    /// embedding is wanted). A caller whose layers carry trainable parameters of their own
    /// (adapters) sets it to 0.
    public var lowestBackwardLayer: Int

    /// Most rows of the output layer evaluated together (the logits buffer is rows × V floats).
    public var headRows = 256

    private var normGradients: [[LlamaNorm: GradBuffer]]
    private var finalNormGradient: GradBuffer?
    /// The untied embedding's gradient (V, C); a tied one is the head's weight gradient.
    private var embeddingGradient: UnsafeMutablePointer<Float>?
    /// Layers this engine attached gradients to (detached when it goes away).
    private var attached: [any LinearLayer] = []
    private var tape: LlamaTape?
    private var buffers: Buffers?

    /// `wanted`: parameter names (`LlamaNames`) whose gradients are kept: projection weights and
    /// biases, norms, the embedding, an untied head. Throws for a name the model does not have
    /// or whose weights take no gradient (quantized).
    public init(model: LlamaModel, wanted: Set<String>, checkpointing: Bool = false) throws {
        self.model = model
        self.checkpointing = checkpointing
        let w = model.weights
        normGradients = w.layers.map { _ in [:] }
        lowestBackwardLayer = w.layers.count
        do {
            for name in wanted.sorted() { try want(name) }
        } catch {
            for l in attached { l.detachGradients() }
            throw error
        }
    }

    deinit { for l in attached { l.detachGradients() } }

    private func want(_ name: String) throws {
        let w = model.weights, c = model.hiddenSize
        guard let parsed = LlamaNames.parse(name), parsed.suffix == "weight" || parsed.suffix == "bias" else {
            throw InputError(name, "no such parameter for a gradient")
        }
        func attach(_ layer: any LinearLayer) throws -> LinearGradients {
            do {
                let g = try layer.attachGradients()
                if !attached.contains(where: { $0 === layer }) { attached.append(layer) }
                return g
            } catch let e as InputError { throw InputError(name, e.problem) }
        }
        if let l = parsed.layer, l >= w.layers.count { throw InputError(name, "no such parameter for a gradient") }
        switch (parsed.role, parsed.suffix) {
        case (.projection(let p), _):
            let l = parsed.layer!
            let g = try attach(w.layers[l].linear(p))
            guard let buf = parsed.suffix == "weight" ? g.weight : g.bias else { throw InputError(name, "no such parameter for a gradient") }
            gradients[name] = buf
            lowestBackwardLayer = min(lowestBackwardLayer, l)
        case (.norm(let n), "weight"):
            let l = parsed.layer!, buf = GradBuffer(c)
            normGradients[l][n] = buf
            gradients[name] = buf
            lowestBackwardLayer = min(lowestBackwardLayer, l)
        case (.finalNorm, "weight"):
            let buf = GradBuffer(c)
            finalNormGradient = buf
            gradients[name] = buf
        case (.embedding, "weight"):
            guard w.embeddingRows == nil else { throw InputError(name, "a quantized embedding table takes no gradient") }
            if w.tied {
                let g = try attach(w.lmHead)
                gradients[name] = g.weight
                embeddingGradient = g.weight.pointer
            } else {
                let buf = GradBuffer(w.embeddingCount)
                gradients[name] = buf
                embeddingGradient = buf.pointer
            }
            lowestBackwardLayer = 0
        case (.head, "weight") where !w.tied:
            gradients[name] = try attach(w.lmHead).weight
        default:
            throw InputError(name, "no such parameter for a gradient")
        }
    }

    /// Frees the activation workspace (the next pass allocates it again).
    public func releaseWorkspace() { tape = nil; buffers = nil }

    /// The gradient of `name` as an array, freeing its buffer (a projection's layer stops
    /// collecting gradients), so copying every gradient out never holds two copies of all of them.
    public func takeGradient(_ name: String) -> [Float]? {
        guard let g = gradients.removeValue(forKey: name) else { return nil }
        if let p = LlamaNames.parse(name), case .projection(let role) = p.role, p.suffix == "weight", let l = p.layer {
            let layer = model.weights.layers[l].linear(role)
            layer.detachGradients()
            attached.removeAll { $0 === layer }
        }
        return g.array
    }

    /// Sets every gradient buffer to 0.
    public func zeroGradients() { for g in gradients.values { g.zero() } }

    /// Every Llama parameter name this model has, in Hugging Face order.
    public static func parameterNames(layers: Int, tied: Bool) -> [String] {
        LlamaNames.parameterNames(layers: layers, tied: tied)
    }

    /// The head and loss buffers besides the tape, for N rows and `headRows` rows of logits.
    private final class Buffers {
        let n: Int
        let x: GradBuffer       // (N, C) residual stream; after the forward, the last layer's output
        let lnf: GradBuffer     // (N, C) final norm output
        let rstdf: GradBuffer   // (N)
        let dlnf: GradBuffer    // (N, C)
        let dx: GradBuffer      // (N, C) gradient of the residual stream
        let rows: GradBuffer    // (headRows, C) gathered rows of lnf
        let drows: GradBuffer   // (headRows, C)
        let logits: GradBuffer  // (headRows, V) logits, then dlogits

        init(n: Int, c: Int, v: Int, headRows: Int) {
            self.n = n
            x = GradBuffer(n * c); lnf = GradBuffer(n * c); rstdf = GradBuffer(n)
            dlnf = GradBuffer(n * c); dx = GradBuffer(n * c)
            rows = GradBuffer(headRows * c); drows = GradBuffer(headRows * c); logits = GradBuffer(headRows * v)
        }
    }

    /// The tape and buffers for B sequences of T tokens, reused while (B, T) stays the same:
    /// fresh allocations each pass cost page faults and zeroing on the order of the matmuls.
    private func workspace(b: Int, t: Int) -> (LlamaTape, Buffers) {
        let rows = max(1, headRows)
        if let tape, let buffers, tape.batch == b, tape.time == t, buffers.rows.count == rows * model.hiddenSize {
            return (tape, buffers)
        }
        releaseWorkspace()  // free the old ones before allocating
        let tp = LlamaTape(model: model, batch: b, time: t, checkpointing: checkpointing)
        let bf = Buffers(n: b * t, c: model.hiddenSize, v: model.vocabularySize, headRows: rows)
        tape = tp
        buffers = bf
        return (tp, bf)
    }

    /// Validates a batch and its loss mask (one flag per token, or nil).
    private func flatten(_ batch: [[Int]], lossMask: [[Bool]]?) throws -> (ids: [Int], b: Int, t: Int) {
        let (ids, b, t) = try flatten(batch)
        if let lossMask {
            guard lossMask.count == b, lossMask.allSatisfy({ $0.count == t }) else {
                throw InputError("loss mask", "needs one flag per token of each sequence (\(b) × \(t))")
            }
        }
        return (ids, b, t)
    }

    /// The counted predictions of B sequences of T ids: row s·T + i of the final hidden states
    /// predicts ids[s·T + i + 1] when the mask counts that target.
    private static func countedTargets(_ ids: [Int], b: Int, t: Int, lossMask: [[Bool]]?) -> (rows: [Int], targets: [Int32]) {
        var rows: [Int] = [], targets: [Int32] = []
        for s in 0 ..< b {
            for i in 0 ..< t - 1 where lossMask?[s][i + 1] ?? true {
                rows.append(s * t + i)
                targets.append(Int32(ids[s * t + i + 1]))
            }
        }
        return (rows, targets)
    }

    /// Validates a batch: equal lengths T ≥ 2, ids inside the vocabulary.
    private func flatten(_ batch: [[Int]]) throws -> (ids: [Int], b: Int, t: Int) {
        guard let t = batch.first?.count, t >= 2, batch.allSatisfy({ $0.count == t }) else {
            throw InputError("calibration", "batch needs sequences of one length ≥ 2")
        }
        let v = model.vocabularySize
        if let bad = batch.lazy.flatMap({ $0 }).first(where: { $0 < 0 || $0 >= v }) {
            throw InputError("calibration", "token id \(bad) outside the vocabulary")
        }
        return (batch.flatMap { $0 }, batch.count, t)
    }

    /// Forward and backward on `batch` (B sequences of T ids): adds `scale` · ∂(Σ token losses)/∂W
    /// to every kept gradient and returns Σ token losses (B·(T−1) tokens, in double).
    /// For the mean loss of the whole calibration set, scale = 1 / (total predicted tokens).
    @discardableResult
    public func accumulate(batch: [[Int]], scale: Float) throws -> Double {
        try accumulate(batch: batch, lossMask: nil, scale: scale).lossSum
    }

    /// The same with only some targets counted: `lossMask[b][t]` (one flag per token, T per
    /// sequence) says whether token t is a target of the loss (predicted from position t − 1;
    /// the flag of t = 0 is ignored). Hugging Face's labels of −100 are the false flags: prompt
    /// tokens (`train_on_inputs=False`) and right padding, which lets sequences of different
    /// lengths share a batch. Nil counts every target. Returns Σ counted token losses and the
    /// number of counted tokens.
    public func accumulate(batch: [[Int]], lossMask: [[Bool]]?, scale: Float) throws -> (lossSum: Double, tokens: Int) {
        let (ids, b, t) = try flatten(batch, lossMask: lossMask)
        let (rows, targets) = Self.countedTargets(ids, b: b, t: t, lossMask: lossMask)
        let w = model.weights
        let (tape, buf) = workspace(b: b, t: t)
        let loss = try forwardAndHead(ids: ids, rows: rows, targets: targets, tape: tape, buffers: buf, scale: scale)
        let dx = buf.dx.pointer
        for l in stride(from: w.layers.count - 1, through: lowestBackwardLayer, by: -1) {
            try model.backwardLayer(l, tape: tape, dx: dx) { normGradients[l][$0]?.pointer }
        }
        if lowestBackwardLayer == 0 { embeddingBackward(ids: ids, dx: dx) }
        return (loss, rows.count)
    }

    /// The forward of one batch (B·T = ids.count rows, recorded on `tape`), the head and loss over
    /// the counted rows, and the final norm's backward: returns Σ counted token losses and leaves
    /// ∂(scale · Σ losses)/∂(last layer's output) in `buffers.dx`.
    private func forwardAndHead(ids: [Int], rows: [Int], targets: [Int32], tape: LlamaTape, buffers buf: Buffers,
                                scale: Float) throws -> Double {
        let w = model.weights, c = model.hiddenSize, n = ids.count, vocab = model.vocabularySize
        let b = tape.batch, t = tape.time
        let x = buf.x.pointer
        model.embed(ids, into: x)
        model.runLayers(x, layers: 0 ..< w.layers.count, batch: b, time: t, lengths: Array(repeating: t, count: b), tape: tape)
        let lnf = buf.lnf.pointer
        rmsnormForward(lnf, buf.rstdf.pointer, x, w.norm.pointer, n: n, c: c, eps: model.config.rmsNormEps)

        // Head and loss over the counted rows, `headRows` at a time: logits, then dlogits in
        // place, then the head's backward into those rows of dlnf.
        let dlnf = buf.dlnf.pointer
        dlnf.update(repeating: 0, count: n * c)
        var loss = 0.0
        var r0 = 0
        while r0 < rows.count {
            let m = min(buf.rows.count / c, rows.count - r0)
            for i in 0 ..< m { (buf.rows.pointer + i * c).update(from: lnf + rows[r0 + i] * c, count: c) }
            w.lmHead.forward(buf.rows.pointer, rows: m, into: buf.logits.pointer)
            loss += targets.withUnsafeBufferPointer {
                crossEntropyForwardBackward(buf.logits.pointer, targets: $0.baseAddress! + r0, n: m, v: vocab, scale: scale)
            }
            buf.drows.pointer.update(repeating: 0, count: m * c)
            try w.lmHead.backward(input: buf.rows.pointer, outputGradient: buf.logits.pointer, rows: m, inputGradient: buf.drows.pointer)
            for i in 0 ..< m {
                let src = buf.drows.pointer + i * c, dst = dlnf + rows[r0 + i] * c
                for j in 0 ..< c { dst[j] += src[j] }
            }
            r0 += m
        }
        let dx = buf.dx.pointer
        dx.update(repeating: 0, count: n * c)
        rmsnormBackward(dx, finalNormGradient?.pointer, dlnf, x, w.norm.pointer, buf.rstdf.pointer, n: n, c: c)
        return loss
    }

    /// The embedding's gradient (when kept) from ∂loss/∂(layer 0's input) dx (N, C).
    private func embeddingBackward(ids: [Int], dx: UnsafePointer<Float>) {
        guard let de = embeddingGradient else { return }
        let id32 = ids.map { Int32($0) }
        id32.withUnsafeBufferPointer { GreenPrune.embeddingBackward(de, dx, ids: $0.baseAddress!, n: ids.count, c: model.hiddenSize) }
    }

    /// Gradients of several micro-batches with the loops swapped (layer-major): the forwards of
    /// every batch first, keeping only each layer's input (checkpointing) and the gradient at
    /// the top, then, from the top layer down, the backward of that one layer over every batch in
    /// order, recomputing its activations from its input. A layer's parameters in `wanted` get
    /// gradient buffers only while that layer runs: for each layer holding some,
    /// `batchDone(l, k, buffers)` follows batch k's backward of layer l, `layerDone(l, buffers)`
    /// the last one, and the buffers are freed after it. Each buffer ends as `accumulate` would leave it after the same batches in the same
    /// order (bit for bit, unless `batchDone` edits it: zeroing it there gives per-batch
    /// gradients); the memory is the weights, one layer's gradients, the layer inputs of every
    /// batch and one batch's activations of one layer. `wanted`: layer parameters only (projections,
    /// norms), none already kept by the engine. Returns Σ token losses (every target counted).
    public func accumulateByLayer(batches: [[[Int]]], scale: Float, wanted: [String],
                                  batchDone: (_ layer: Int, _ batch: Int, _ gradients: [String: GradBuffer]) throws -> Void,
                                  layerDone: (_ layer: Int, _ gradients: [String: GradBuffer]) throws -> Void) throws -> Double {
        let layerCount = model.weights.layers.count, c = model.hiddenSize
        var byLayer: [Int: [String]] = [:]
        for name in wanted {
            guard let p = LlamaNames.parse(name), let l = p.layer, l < layerCount else {
                throw InputError(name, "not a decoder layer's parameter (layer-major gradients)")
            }
            guard gradients[name] == nil else { throw InputError(name, "the engine already keeps this gradient") }
            byLayer[l, default: []].append(name)
        }
        let low = min(lowestBackwardLayer, byLayer.keys.min() ?? layerCount)
        let flat = try batches.map { try flatten($0) }
        guard let t = flat.first?.t, flat.allSatisfy({ $0.t == t }) else {
            throw InputError("calibration", "batches need sequences of one length ≥ 2")
        }
        releaseWorkspace()
        // One tape per batch size, its layer inputs swapped for the batch's own.
        var tapes: [Int: LlamaTape] = [:]
        func tape(_ b: Int) -> LlamaTape {
            if let tp = tapes[b] { return tp }
            let tp = LlamaTape(model: model, batch: b, time: t, checkpointing: true, savesInputs: false)
            tapes[b] = tp
            return tp
        }
        var inputs: [[GradBuffer]] = [], dxs: [GradBuffer] = []
        var loss = 0.0
        do {
            var heads: [Int: Buffers] = [:]
            for (ids, b, _) in flat {
                let n = b * t
                inputs.append((0 ..< layerCount).map { GradBuffer($0 >= low ? n * c : 0) })
                let tp = tape(b)
                tp.inputs = inputs[inputs.count - 1]
                let buf = heads[b] ?? Buffers(n: n, c: c, v: model.vocabularySize, headRows: max(1, headRows))
                heads[b] = buf
                let (rows, targets) = Self.countedTargets(ids, b: b, t: t, lossMask: nil)
                loss += try forwardAndHead(ids: ids, rows: rows, targets: targets, tape: tp, buffers: buf, scale: scale)
                let dx = GradBuffer(n * c)
                dx.pointer.update(from: buf.dx.pointer, count: n * c)
                dxs.append(dx)
            }
        }
        let savedLowest = lowestBackwardLayer
        var current: [String] = []
        defer {
            for name in current { release(name) }
            lowestBackwardLayer = savedLowest
        }
        for l in stride(from: layerCount - 1, through: low, by: -1) {
            current = byLayer[l] ?? []
            for name in current { try want(name) }
            let buffers = gradients.filter { current.contains($0.key) }
            for (k, (_, b, _)) in flat.enumerated() {
                let tp = tape(b)
                tp.inputs = inputs[k]
                try model.backwardLayer(l, tape: tp, dx: dxs[k].pointer) { normGradients[l][$0]?.pointer }
                if !current.isEmpty { try batchDone(l, k, buffers) }
            }
            if !current.isEmpty { try layerDone(l, buffers) }
            for name in current { release(name) }
            current = []
            for k in inputs.indices { inputs[k][l] = GradBuffer(0) }
        }
        if low == 0 {
            for (k, (ids, _, _)) in flat.enumerated() { embeddingBackward(ids: ids, dx: dxs[k].pointer) }
        }
        return loss
    }

    /// Stops keeping the gradient of a layer parameter `want` attached (its buffer is freed when
    /// no one holds it).
    private func release(_ name: String) {
        guard gradients.removeValue(forKey: name) != nil, let p = LlamaNames.parse(name), let l = p.layer else { return }
        switch p.role {
        case .projection(let role):
            let layer = model.weights.layers[l].linear(role)
            layer.detachGradients()
            attached.removeAll { $0 === layer }
        case .norm(let n):
            normGradients[l][n] = nil
        default:
            break
        }
    }

    /// Forward only: the summed loss of the counted targets (as `accumulate` counts them, in
    /// double) and their number, with no tape and no gradient — a validation pass.
    public func loss(batch: [[Int]], lossMask: [[Bool]]?) throws -> (lossSum: Double, tokens: Int) {
        let (ids, b, t) = try flatten(batch, lossMask: lossMask)
        let (rows, targets) = Self.countedTargets(ids, b: b, t: t, lossMask: lossMask)
        let c = model.hiddenSize, v = model.vocabularySize, chunk = max(1, headRows)
        let hidden = model.forward(tokens: ids, batch: b, time: t, lengths: Array(repeating: t, count: b))
        let gathered = GradBuffer(min(chunk, rows.count) * c), logits = GradBuffer(min(chunk, rows.count) * v)
        var loss = 0.0
        var r0 = 0
        while r0 < rows.count {
            let m = min(chunk, rows.count - r0)
            for i in 0 ..< m { (gathered.pointer + i * c).update(from: hidden + rows[r0 + i] * c, count: c) }
            model.weights.lmHead.forward(gathered.pointer, rows: m, into: logits.pointer)
            // Scale 0: the loss only (the rows it overwrites are not read again).
            loss += targets.withUnsafeBufferPointer {
                crossEntropyForwardBackward(logits.pointer, targets: $0.baseAddress! + r0, n: m, v: v, scale: 0)
            }
            r0 += m
        }
        return (loss, rows.count)
    }

    /// Forward only: logits (B·T, V) of every position, row-major.
    public func logits(batch: [[Int]]) throws -> [Float] {
        let (ids, b, t) = try flatten(batch)
        let hidden = model.forward(tokens: ids, batch: b, time: t, lengths: Array(repeating: t, count: b))
        var out = [Float](repeating: 0, count: b * t * model.vocabularySize)
        out.withUnsafeMutableBufferPointer { model.weights.lmHead.forward(hidden, rows: b * t, into: $0.baseAddress!) }
        return out
    }

    /// Forward only: feeds the residual stream around every layer to `hidden` (layer, input
    /// (B·T, C), output (B·T, C)) — what Block Influence needs.
    public func hiddenStates(batch: [[Int]], _ hidden: (Int, UnsafePointer<Float>, UnsafePointer<Float>) -> Void) throws {
        let (ids, b, t) = try flatten(batch)
        let n = b * t * model.hiddenSize
        let x = GradBuffer(n), input = GradBuffer(n)
        model.embed(ids, into: x.pointer)
        for l in 0 ..< model.weights.layers.count {
            input.pointer.update(from: x.pointer, count: n)
            model.runLayers(x.pointer, layers: l ..< l + 1, batch: b, time: t, lengths: Array(repeating: t, count: b))
            hidden(l, input.pointer, x.pointer)
        }
    }
}
