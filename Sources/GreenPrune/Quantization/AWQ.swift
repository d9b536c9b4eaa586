import Foundation

/// AWQ's settings (`quantize --awq`): the grid of exponents searched and the calibration text.
public struct AWQOptions: Codable, Equatable, Sendable {
    /// Exponents α ∈ {0, 1/n, …, (n−1)/n} tried per group (AutoAWQ: n = 20).
    public var gridSize: Int
    /// JSONL with a `text` field (the C4 sample by default).
    public var calibration: String
    public var numExamples: Int
    public var calibrationLength: Int
    /// Clip each block's range for the least output error after scaling (AWQ's auto_clip).
    public var clip: Bool

    enum CodingKeys: String, CodingKey {
        case gridSize = "grid_size", calibration, numExamples = "num_examples", calibrationLength = "calibration_len", clip
    }

    public init(calibration: String, numExamples: Int = 128, calibrationLength: Int = 256, gridSize: Int = 20, clip: Bool = true) throws {
        guard gridSize >= 2 else { throw InputError("--awq-grid", "must be at least 2, got \(gridSize)") }
        guard numExamples >= 1 else { throw InputError("--num-examples", "must be at least 1") }
        guard calibrationLength >= 2 else { throw InputError("--calibration-len", "must be at least 2") }
        self.gridSize = gridSize; self.calibration = calibration
        self.numExamples = numExamples; self.calibrationLength = calibrationLength
        self.clip = clip
    }
}

/// Activation-aware weight scaling (AWQ, Lin et al., 2024) for Llama decoders.
///
/// Input channels that carry large activations matter more to a Linear's output, so before
/// rounding, column j of every Linear reading one input is multiplied by s_j and the input
/// divided by s_j, folded into what produces it as SmoothQuant does (the float model is
/// unchanged): the norm weight for q/k/v and gate/up, the rows of up_proj for down_proj.
/// o_proj is not scaled (with grouped KV heads one factor would have to serve several inputs).
/// Then, unless `clip` is off, every quantized Linear but q and k has each block's range clipped
/// where that lowers the block's output error (`clip`); this changes the float weights.
///
/// s = a^α / √(max a · min a), a_j the RMS of input channel j over the calibration tokens (the
/// Gram diagonal; AutoAWQ uses mean |x|). α is chosen per group from the grid by the output error
/// the rounding leaves on the calibration inputs, Σ_i tr((W_i − Ŵ_i) G (W_i − Ŵ_i)ᵀ) with
/// G = Σ xxᵀ and Ŵ_i = Q(W_i·diag s)·diag(1/s); α = 0 is plain rounding, so the chosen scales
/// never do worse than it on that measure. Rounding follows the target scheme (observer included).
public enum AWQ {
    /// The result of one group's search.
    public struct Choice: Sendable {
        public var alpha: Double
        public var scales: [Float]
        /// Output error with the chosen scales, and with plain rounding (α = 0).
        public var loss: Double
        public var roundingLoss: Double
    }

    /// The scales for exponent α from channel statistics `a` (each floored at 1e-4).
    public static func scales(_ a: [Float], alpha: Double) -> [Float] {
        let s = a.map { max(Float(pow(Double(max($0, 0)), alpha)), 1e-4) }
        let norm = (s.max()! * s.min()!).squareRoot()
        return s.map { $0 / norm }
    }

    /// Searches α for Linears `weights` (each (rows_i, cols)) that read one input with Gram
    /// matrix `gram` (Σ xxᵀ over `count` input rows).
    public static func search(weights: [(w: [Float], rows: Int)], cols: Int, gram: [Float], count: Int,
                              scheme: QuantScheme, grid: Int, name: String) throws -> Choice {
        let n = Float(max(count, 1))
        let rms = (0 ..< cols).map { (max(gram[$0 * cols + $0], 0) / n).squareRoot() }
        var best: Choice?
        for step in 0 ..< grid {
            let alpha = Double(step) / Double(grid)
            let s = scales(rms, alpha: alpha)
            var loss = 0.0
            for (w, rows) in weights {
                var scaled = w
                SmoothQuant.scaleColumns(&scaled, rows: rows, cols: cols, by: s)
                var back = try scaled.withUnsafeBufferPointer { try scheme.quantize($0, rows: rows, cols: cols, name: name) }.dequantize()
                SmoothQuant.scaleColumns(&back, rows: rows, cols: cols, by: s.map { 1 / $0 })
                loss += w.withUnsafeBufferPointer { GPTQ.reconstructionLoss($0, back, rows: rows, cols: cols, hessian: gram) }
            }
            if step == 0 { best = Choice(alpha: 0, scales: s, loss: loss, roundingLoss: loss) }
            if loss < best!.loss { best = Choice(alpha: alpha, scales: s, loss: loss, roundingLoss: best!.roundingLoss) }
        }
        return best!
    }

    /// Activation-aware clipping (AWQ's auto_clip): for each block of W (rows, cols) — a row's
    /// group of columns — the range [p·min, p·max], p ∈ {1, 0.95, …, 0.5}, whose rounding leaves the
    /// least output error δ G_bb δᵀ (G_bb: the block's diagonal block of the Gram matrix), and the
    /// block's weights clamped to it, so that the scheme's min/max scales are then those of the
    /// chosen range. Per-tensor schemes are left alone. Returns the summed block errors after and
    /// before (p = 1 is in the grid, so after ≤ before).
    @discardableResult
    public static func clip(_ w: inout [Float], rows: Int, cols: Int, gram: [Float], scheme: QuantScheme) -> (loss: Double, unclipped: Double) {
        guard scheme.granularity != .tensor else { return (0, 0) }
        let len = scheme.groupLength(cols: cols), lo = Float(scheme.qmin), hi = Float(scheme.qmax)
        let ratios: [Float] = (0 ... 10).map { 1 - Float($0) * 0.05 }
        var block = [Float](repeating: 0, count: len * len)
        var delta = [Float](repeating: 0, count: rows * len), prod = [Float](repeating: 0, count: rows * len)
        var best = [Double](repeating: .infinity, count: rows), bestRatio = [Float](repeating: 1, count: rows)
        var mins = [Float](repeating: 0, count: rows), maxs = [Float](repeating: 0, count: rows)
        var total = (loss: 0.0, unclipped: 0.0)
        for g in 0 ..< cols / len {
            let c0 = g * len
            for i in 0 ..< len { for j in 0 ..< len { block[i * len + j] = gram[(c0 + i) * cols + c0 + j] } }
            for r in 0 ..< rows {
                var mn = Float.infinity, mx = -Float.infinity
                for c in 0 ..< len { let v = w[r * cols + c0 + c]; mn = min(mn, v); mx = max(mx, v) }
                mins[r] = mn; maxs[r] = mx
                best[r] = .infinity; bestRatio[r] = 1
            }
            for p in ratios {
                for r in 0 ..< rows {
                    let q = scheme.parameters(min: p * mins[r], max: p * maxs[r]), z = Float(q.zero)
                    for c in 0 ..< len {
                        let v = w[r * cols + c0 + c]
                        let code = min(max((v / q.scale + z).rounded(.toNearestOrEven), lo), hi)
                        delta[r * len + c] = v - (code - z) * q.scale
                    }
                }
                delta.withUnsafeBufferPointer { d in block.withUnsafeBufferPointer { b in prod.withUnsafeMutableBufferPointer { o in
                    sgemm(m: rows, n: len, k: len, a: d.baseAddress!, lda: len, b: b.baseAddress!, ldb: len, c: o.baseAddress!, ldc: len)
                } } }
                for r in 0 ..< rows {
                    var e = 0.0
                    for c in 0 ..< len { e += Double(delta[r * len + c]) * Double(prod[r * len + c]) }
                    if p == 1 { total.unclipped += e }
                    if e < best[r] { best[r] = e; bestRatio[r] = p }
                }
            }
            for r in 0 ..< rows {
                total.loss += best[r]
                guard bestRatio[r] < 1 else { continue }
                let a = bestRatio[r] * mins[r], b = bestRatio[r] * maxs[r]
                for c in 0 ..< len { w[r * cols + c0 + c] = min(max(w[r * cols + c0 + c], a), b) }
            }
        }
        return total
    }

    /// The scaled float tensors of the Llama model in `dir` (name → values, same shapes) for the
    /// modules in `modules`, and per group (named by its first module) the choice made.
    ///
    /// Layer by layer like sequential GPTQ: the calibration samples' residual streams go through
    /// one float layer at a time, that layer's three input Gram matrices are gathered, its groups
    /// searched, and the streams moved on through the (unscaled: the scaling changes nothing in
    /// float) layer. Holds the streams (samples × length × C floats) and one layer's Grams.
    /// The loaded model in `bundle` is left as it was; the caller folds the result in (`apply`).
    public static func scaledTensors(_ bundle: ModelBundle, modules: Set<String>, scheme: QuantScheme,
                                     options o: AWQOptions, progress: Bool) throws
        -> (tensors: [String: [Float]], choices: [String: Choice]) {
        guard let (m, samples) = try Calibration.decoderSamples(bundle, file: o.calibration, count: o.numExamples,
                                                                 length: o.calibrationLength) else {
            throw InputError("--awq", "AWQ is implemented for Llama-family decoders; \(bundle.directory.path) is not one")
        }
        let float = m.weights
        defer { m.weights = float }
        let streams = CalibrationStreams(model: m, samples: samples, length: o.calibrationLength)

        func load(_ name: String) throws -> (values: [Float], rows: Int, cols: Int) { try float.floatTensor(name, for: "AWQ") }
        var out: [String: [Float]] = [:]
        var choices: [String: Choice] = [:]
        let layerCount = m.weights.layers.count
        // o_proj is clipped only (see the type's comment).
        let groups = LlamaProjection.inputGroups
        let lastNeeded = (0 ..< layerCount).last { i in LlamaProjection.allCases.contains { modules.contains(LlamaNames.module($0, layer: i)) } } ?? -1
        let bar = progress ? ProgressBar("awq layers", total: max(lastNeeded + 1, 0), unit: "layers") : nil
        for i in 0 ..< lastNeeded + 1 {
            func module(_ r: LlamaProjection) -> String { LlamaNames.module(r, layer: i) }
            func weight(_ r: LlamaProjection) -> String { LlamaNames.weight(r, layer: i) }
            let original = m.weights.layers[i]
            let wanted = groups.filter { g in g.contains { modules.contains(module($0)) } && (o.clip || g[0] != .o) }
            if !wanted.isEmpty {
                var layer = original
                var grams: [LlamaProjection: HessianAccumulator] = [:]
                for g in wanted {
                    let acc = HessianAccumulator(cols: original.linear(g[0]).inFeatures)
                    grams[g[0]] = acc
                    layer.setLinear(g[0], HessianRecorder(original.linear(g[0]), accumulator: acc, records: true))
                }
                m.weights.layers[i] = layer
                streams.probe(layer: i)
                m.weights.layers[i] = original
                // The group's members that are quantized set the error; every member is scaled.
                // Tensors by checkpoint name.
                var tensors: [String: (values: [Float], rows: Int, cols: Int)] = [:]
                func tensor(_ n: String) throws -> (values: [Float], rows: Int, cols: Int) {
                    if let v = tensors[n] { return v }
                    let v = try load(n)
                    tensors[n] = v
                    return v
                }
                var changed = Set<String>()
                // Folds 1/s into what produces the group's input.
                func foldInverse(_ s: [Float], group: LlamaProjection) throws {
                    if group == .down {
                        // up was loaded (and maybe scaled for gate/up) before down's turn.
                        var up = try tensor(weight(.up))
                        SmoothQuant.divideRows(&up.values, rows: up.rows, cols: up.cols, by: s)
                        tensors[weight(.up)] = up
                        changed.insert(weight(.up))
                    } else if let n = group.precedingNorm {
                        let normName = LlamaNames.norm(n, layer: i)
                        var norm = try tensor(normName)
                        for j in s.indices { norm.values[j] /= s[j] }
                        tensors[normName] = norm
                        changed.insert(normName)
                    }
                }
                for g in wanted {
                    let acc = grams[g[0]]!
                    let members = try g.map { ($0, try tensor(weight($0))) }
                    let counted = members.filter { modules.contains(module($0.0)) }
                    var gram = acc.sum
                    if g[0] != .o {
                        let choice = try search(weights: counted.map { ($0.1.values, $0.1.rows) }, cols: acc.cols, gram: acc.sum,
                                                count: acc.rows, scheme: scheme, grid: o.gridSize, name: module(g[0]))
                        choices[module(g[0])] = choice
                        if choice.alpha > 0 {
                            let s = choice.scales
                            for (r, w) in members {
                                var v = w.values
                                SmoothQuant.scaleColumns(&v, rows: w.rows, cols: w.cols, by: s)
                                tensors[weight(r)] = (v, w.rows, w.cols)
                                changed.insert(weight(r))
                            }
                            // The inputs become x / s: G → S⁻¹ G S⁻¹.
                            let cols = acc.cols
                            for i in 0 ..< cols { for j in 0 ..< cols { gram[i * cols + j] /= s[i] * s[j] } }
                            try foldInverse(s, group: g[0])
                        }
                    }
                    // Clipping (not q/k: their products go through softmax, where the linear
                    // output error is the wrong measure).
                    if o.clip {
                        for (r, _) in counted where r != .q && r != .k {
                            var w = tensors[weight(r)]!
                            let e = clip(&w.values, rows: w.rows, cols: w.cols, gram: gram, scheme: scheme)
                            if e.loss < e.unclipped { tensors[weight(r)] = w; changed.insert(weight(r)) }
                        }
                    }
                }
                for n in changed { out[n] = tensors[n]!.values }
            }
            if i < lastNeeded { streams.advance(layer: i) }
            bar?.advance(1)
        }
        bar?.finish()
        return (out, choices)
    }

    /// Puts float tensors named as in the checkpoint (`model.layers.N.…weight`) into a loaded
    /// Llama model: norms replaced, Linears replaced by dense ones (biases kept).
    public static func apply(_ tensors: [String: [Float]], to m: LlamaModel) throws {
        for (name, v) in tensors {
            guard let parsed = LlamaNames.parse(name), let i = parsed.layer, i < m.weights.layers.count,
                  parsed.suffix == "weight" else { throw InputError(name, "not a layer tensor AWQ can set") }
            var layer = m.weights.layers[i]
            switch parsed.role {
            case .norm(let n):
                let count = layer.norm(n).count
                guard v.count == count else { throw InputError(name, "has \(v.count) values, expected \(count)") }
                switch n {
                case .input: layer.inputLayernorm = FloatStorage(v)
                case .postAttention: layer.postAttentionLayernorm = FloatStorage(v)
                }
            case .projection(let r):
                let lin = layer.linear(r)
                guard v.count == lin.outFeatures * lin.inFeatures else { throw InputError(name, "has \(v.count) values, expected \(lin.outFeatures)×\(lin.inFeatures)") }
                layer.setLinear(r, DenseLinear(weight: FloatStorage(v), bias: lin.bias,
                                               outFeatures: lin.outFeatures, inFeatures: lin.inFeatures))
            default:
                throw InputError(name, "not a layer tensor AWQ can set")
            }
            m.weights.layers[i] = layer
        }
    }
}
