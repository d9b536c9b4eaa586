import Foundation

/// Σ xᵀx over every input row a Linear saw: the (cols, cols) Gram matrix GPTQ needs
/// (H = 2·XᵀX / n; the scale does not change GPTQ's result, λ is relative to mean(diag H)).
public final class HessianAccumulator {
    /// Input width.
    public let cols: Int
    /// Σ xᵀx, (cols, cols) row-major.
    public private(set) var sum: [Float]
    /// Input rows accumulated.
    public private(set) var rows = 0

    public init(cols: Int) {
        self.cols = cols
        sum = [Float](repeating: 0, count: cols * cols)
    }

    /// sum += Xᵀ X for x (m, cols) row-major, through sgemm.
    public func add(_ x: UnsafePointer<Float>, rows m: Int) {
        guard m > 0 else { return }
        sum.withUnsafeMutableBufferPointer { s in
            sgemm(transA: true, m: cols, n: cols, k: m, a: x, lda: cols, b: x, ldb: cols,
                  beta: 1, c: s.baseAddress!, ldc: cols)
        }
        rows += m
    }

    /// 2·XᵀX / n, the Hessian of the layer's mean squared reconstruction loss.
    public var hessian: [Float] {
        let f = rows > 0 ? 2 / Float(rows) : 0
        return sum.map { $0 * f }
    }
}

/// A Linear that runs `inner` and, when it owns an accumulator, adds its input rows to it.
/// Projections reading the same input (q/k/v, gate/up) share one accumulator; only the first of
/// them records, so every row is counted once.
public final class HessianRecorder: LinearLayer {
    public let inner: any LinearLayer
    /// The accumulator this layer's input feeds (shared with its siblings).
    public let accumulator: HessianAccumulator
    /// Whether this layer adds its rows (false for the siblings of the recording one).
    public let records: Bool

    public init(_ inner: any LinearLayer, accumulator: HessianAccumulator, records: Bool) {
        self.inner = inner; self.accumulator = accumulator; self.records = records
    }

    public var inFeatures: Int { inner.inFeatures }
    public var outFeatures: Int { inner.outFeatures }
    public var residentBytes: Int { inner.residentBytes + (records ? accumulator.sum.count * 4 : 0) }

    public func forward(_ x: UnsafePointer<Float>, rows m: Int, into out: UnsafeMutablePointer<Float>) {
        if records { accumulator.add(x, rows: m) }
        inner.forward(x, rows: m, into: out)
    }
}

/// Runs calibration text through a float model with recorders on the Linear modules GPTQ will
/// quantize, and returns each module's Hessian (keyed by the module name, e.g.
/// `model.layers.3.mlp.down_proj`, `encoder.layer.0.attention.self.query`).
///
/// `collect` takes every Hessian from the float model's activations in one pass (encoders, and
/// decoders with `--no-sequential`); `quantizeSequential` is the GPTQ paper's layer-by-layer loop
/// through the already quantized layers (decoders, the default).
public enum HessianCollection {
    /// Gram accumulators (Σ xᵀx, which GPTQ may use in place of H: its result does not depend on
    /// H's scale) for `modules` of the loaded model in `bundle` (as it is now: SmoothQuant's or
    /// AWQ's edits in place), from `options`' calibration text (tokens of the model's own
    /// tokenizer; BERT samples get [CLS]/[SEP] around them), with the hash of the calibration
    /// ids. Modules reading the same input share one accumulator. The model is left as it was.
    public static func collect(_ bundle: ModelBundle, modules: Set<String>, options g: GPTQOptions,
                               progress: Bool) throws -> (hessians: [String: HessianAccumulator], idsHash: String) {
        let dir = bundle.directory
        let tokenizer = try bundle.requireTokenizer()
        let file = URL(fileURLWithPath: g.calibration)
        var recorders: [String: HessianAccumulator] = [:]
        // Recorders on the projections of `group` that are in `modules` (named by `module`).
        func wrap<Role: Equatable>(_ group: [Role], _ module: (Role) -> String, _ get: (Role) -> any LinearLayer,
                                   _ set: (Role, any LinearLayer) -> Void) {
            let wanted = group.filter { modules.contains(module($0)) }
            guard let first = wanted.first else { return }
            let acc = HessianAccumulator(cols: get(first).inFeatures)
            for role in wanted {
                set(role, HessianRecorder(get(role), accumulator: acc, records: role == first))
                recorders[module(role)] = acc
            }
        }
        let samples: [[Int]]
        switch bundle.model {
        case .llama(let m):
            samples = try Calibration.samples(file: file, tokenizer: tokenizer, count: g.numExamples, length: g.calibrationLength,
                                              maxLength: m.maxLength)
            let unwrapped = m.weights
            defer { m.weights = unwrapped }
            for i in m.weights.layers.indices {
                for group in LlamaProjection.inputGroups {
                    wrap(group, { LlamaNames.module($0, layer: i) }, { m.weights.layers[i].linear($0) }) { role, l in
                        m.weights.layers[i].setLinear(role, l)
                    }
                }
            }
            if modules.contains(LlamaNames.headModule) { recorders[LlamaNames.headModule] = HessianAccumulator(cols: m.weights.lmHead.inFeatures) }
            let bar = progress ? ProgressBar("calibrate", total: samples.count, unit: "samples") : nil
            let perBatch = max(1, m.maxBatchTokens / g.calibrationLength)
            var i = 0
            while i < samples.count {
                let batch = Array(samples[i ..< min(samples.count, i + perBatch)])
                let t = g.calibrationLength
                // forward stops at the final norm: the head's input is its result, every row.
                let h = m.forward(tokens: batch.flatMap { $0 }, batch: batch.count, time: t,
                                  lengths: [Int](repeating: t, count: batch.count))
                recorders[LlamaNames.headModule]?.add(h, rows: batch.count * t)
                i += batch.count
                bar?.advance(batch.count)
            }
            bar?.finish()
        case .decoder:
            throw InputError(dir.path, "GPTQ supports llama-family decoders and encoders; this is \(bundle.family.rawValue)")
        case .bert(let m):
            guard g.calibrationLength <= m.maxSequenceLength else {
                throw InputError("--calibration-len", "\(g.calibrationLength) exceeds the encoder's \(m.maxSequenceLength) positions")
            }
            let inner = try Calibration.samples(file: file, tokenizer: tokenizer, count: g.numExamples,
                                                length: max(1, g.calibrationLength - 2))
            let cls = try tokenizer.encode("", addSpecialTokens: true)
            guard cls.count == 2 else { throw InputError(dir.appendingPathComponent("tokenizer.json").path, "expected [CLS] and [SEP] around an empty text, got \(cls.count) special tokens") }
            samples = inner.map { [cls[0]] + $0 + [cls[1]] }
            let unwrapped = m.weights
            defer { m.weights = unwrapped }
            let arch = m.config.architecture
            let prefixed = bundle.checkpoint.info(arch.modelPrefix + BertNames.module(.query, layer: 0, architecture: arch) + ".weight") != nil
            let base = prefixed ? arch.modelPrefix : ""
            for i in m.weights.layers.indices {
                for group in BertProjection.inputGroups {
                    wrap(group, { base + BertNames.module($0, layer: i, architecture: arch) }, { m.weights.layers[i].linear($0) }) { role, l in
                        m.weights.layers[i].setLinear(role, l)
                    }
                }
            }
            let bar = progress ? ProgressBar("calibrate", total: samples.count, unit: "samples") : nil
            let t = samples[0].count
            let perBatch = max(1, m.maxBatchTokens / t)
            var i = 0
            while i < samples.count {
                let batch = Array(samples[i ..< min(samples.count, i + perBatch)])
                _ = m.forward(tokens: batch.flatMap { $0 }, batch: batch.count, time: t,
                              lengths: [Int](repeating: t, count: batch.count))
                i += batch.count
                bar?.advance(batch.count)
            }
            bar?.finish()
        }
        let missing = modules.subtracting(recorders.keys)
        if let m = missing.sorted().first {
            throw InputError(m, "GPTQ has no calibration inputs for this module")
        }
        return (recorders, Calibration.idsHash(samples))
    }

    /// Sequential GPTQ for Llama-family decoders, the GPTQ paper's loop: the calibration
    /// samples' residual streams go through the model one layer at a time. Layer i's Hessians
    /// come from inputs that already passed through the *quantized* layers 0..<i; its modules in
    /// `modules` are quantized with `GPTQ.quantize`, put in place (dequantized), and the layer is
    /// run again to give layer i+1 its inputs, so each layer also absorbs the error of the ones
    /// before it. The head's Hessian (when `lm_head` is in `modules`) comes from the final norm
    /// of the quantized stack. Returns nil for a model that is not a decoder (BERT encoders use
    /// `collect`'s one pass). Costs two layer passes over the calibration set per layer, about
    /// two float forwards in all, plus the residual streams (samples × length × C floats). The
    /// loaded model in `bundle` (SmoothQuant's or AWQ's edits in place) is left as it was.
    public static func quantizeSequential(_ bundle: ModelBundle, modules: Set<String>, options g: GPTQOptions,
                                          scheme: QuantScheme, progress: Bool) throws
        -> (tensors: [String: QuantizedTensor], hessians: [String: HessianAccumulator], idsHash: String)? {
        guard let (m, samples) = try Calibration.decoderSamples(bundle, file: g.calibration, count: g.numExamples,
                                                                 length: g.calibrationLength) else { return nil }
        let float = m.weights
        defer { m.weights = float }
        // Residual streams of every sample, moved through one layer at a time.
        let streams = CalibrationStreams(model: m, samples: samples, length: g.calibrationLength)

        var tensors: [String: QuantizedTensor] = [:]
        var hessians: [String: HessianAccumulator] = [:]
        let layerCount = m.weights.layers.count
        let bar = progress ? ProgressBar("gptq layers", total: layerCount, unit: "layers") : nil
        // Past the last quantized layer only the head's Hessian needs the streams.
        let lastNeeded = modules.contains(LlamaNames.headModule) ? layerCount - 1
            : ((0 ..< layerCount).last { i in LlamaProjection.allCases.contains { modules.contains(LlamaNames.module($0, layer: i)) } } ?? -1)
        for i in 0 ..< layerCount where i <= lastNeeded {
            let original = m.weights.layers[i]
            guard LlamaProjection.allCases.contains(where: { modules.contains(LlamaNames.module($0, layer: i)) }) else {
                // A layer left in float: one pass carries the streams through it.
                streams.advance(layer: i)
                bar?.advance(1)
                continue
            }
            // Recorders on this layer's modules (siblings reading one input share an accumulator).
            var layer = original
            for group in LlamaProjection.inputGroups {
                let wanted = group.filter { modules.contains(LlamaNames.module($0, layer: i)) }
                guard let first = wanted.first else { continue }
                let acc = HessianAccumulator(cols: original.linear(first).inFeatures)
                for role in wanted {
                    hessians[LlamaNames.module(role, layer: i)] = acc
                    layer.setLinear(role, HessianRecorder(original.linear(role), accumulator: acc, records: role == first))
                }
            }
            m.weights.layers[i] = layer
            streams.probe(layer: i)
            // Quantize, then run the quantized layer for the next one's inputs.
            var quantized = original
            for role in LlamaProjection.allCases where modules.contains(LlamaNames.module(role, layer: i)) {
                let lin = original.linear(role), module = LlamaNames.module(role, layer: i)
                let w = try float.floatTensor(LlamaNames.weight(role, layer: i), for: "GPTQ").values
                let q = try w.withUnsafeBufferPointer {
                    try GPTQ.quantize($0, rows: lin.outFeatures, cols: lin.inFeatures, hessian: hessians[module]!.sum,
                                      scheme: scheme, dampening: g.dampening, blockSize: g.blockSize,
                                      actOrder: g.actOrder, name: module)
                }
                tensors[module] = q
                quantized.setLinear(role, DenseLinear(weight: FloatStorage(q.dequantize()), bias: lin.bias,
                                                      outFeatures: lin.outFeatures, inFeatures: lin.inFeatures))
            }
            m.weights.layers[i] = quantized
            streams.advance(layer: i)
            bar?.advance(1)
        }
        bar?.finish()
        if modules.contains(LlamaNames.headModule) {
            let c = m.hiddenSize
            let acc = HessianAccumulator(cols: c)
            streams.forEachBatch { x, rows, scratch in
                rmsnormForward(scratch, nil, x, m.weights.norm.pointer, n: rows, c: c, eps: m.config.rmsNormEps)
                acc.add(scratch, rows: rows)
            }
            hessians[LlamaNames.headModule] = acc
        }
        return (tensors, hessians, Calibration.idsHash(samples))
    }
}
