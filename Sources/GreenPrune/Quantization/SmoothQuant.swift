import Foundation

/// SmoothQuant's settings (`quantize --smooth α`): the migration strength and the calibration text
/// whose activations set the per-channel factors.
public struct SmoothQuantOptions: Codable, Equatable, Sendable {
    /// α in s_j = max|X_j|^α / max|W_j|^(1−α).
    public var alpha: Double
    /// JSONL with a `text` field (the C4 sample by default).
    public var calibration: String
    public var numExamples: Int
    public var calibrationLength: Int

    enum CodingKeys: String, CodingKey {
        case alpha, calibration, numExamples = "num_examples", calibrationLength = "calibration_len"
    }

    public init(alpha: Double, calibration: String, numExamples: Int = 128, calibrationLength: Int = 256) throws {
        guard alpha > 0, alpha < 1 else { throw InputError("--smooth", "α = \(alpha) must be in (0, 1)") }
        guard numExamples >= 1 else { throw InputError("--num-examples", "must be at least 1") }
        guard calibrationLength >= 2 else { throw InputError("--calibration-len", "must be at least 2") }
        self.alpha = alpha; self.calibration = calibration
        self.numExamples = numExamples; self.calibrationLength = calibrationLength
    }
}

/// SmoothQuant (Xiao et al., 2023) for Llama decoders: per input channel j of a Linear, the
/// activation is divided by s_j and the weight column multiplied by s_j, so the float model is
/// unchanged while activation outliers move into the weights, where per-channel weight scales
/// absorb them. Dynamic per-token int8 activations (`--activations int8`) then lose far less.
///
/// The division is folded into what produces the activation, so nothing is added at run time:
/// - q/k/v input: `input_layernorm.weight[j] /= s_j`, columns j of q, k, v `*= s_j`;
/// - gate/up input: `post_attention_layernorm.weight[j] /= s_j`, columns j of gate, up `*= s_j`;
/// - down input silu(gate)·up: row j of up `/= s_j`, column j of down `*= s_j`.
/// (o_proj's input is left alone: folding it would need one factor per shared KV channel.)
public enum SmoothQuant {
    /// s_j = max|X_j|^α / max_rows |W_rj|^(1−α) over the Linears reading X (both maxima floored at
    /// 1e-5, as the reference implementation does). X max: (cols); weights: each (rows_i, cols).
    public static func factors(activationMax: [Float], weights: [(w: [Float], rows: Int)], cols: Int, alpha: Double) -> [Float] {
        var wmax = [Float](repeating: 0, count: cols)
        for (w, rows) in weights {
            for r in 0 ..< rows {
                for j in 0 ..< cols { wmax[j] = max(wmax[j], abs(w[r * cols + j])) }
            }
        }
        return (0 ..< cols).map { j in
            let a = Double(max(activationMax[j], 1e-5)), b = Double(max(wmax[j], 1e-5))
            return Float(pow(a, alpha) / pow(b, 1 - alpha))
        }
    }

    /// Columns j of w (rows, cols) times s[j].
    public static func scaleColumns(_ w: inout [Float], rows: Int, cols: Int, by s: [Float]) {
        for r in 0 ..< rows { for j in 0 ..< cols { w[r * cols + j] *= s[j] } }
    }

    /// Row j of w (rows, cols) divided by s[j].
    public static func divideRows(_ w: inout [Float], rows: Int, cols: Int, by s: [Float]) {
        for r in 0 ..< rows { let f = 1 / s[r]; for j in 0 ..< cols { w[r * cols + j] *= f } }
    }

    /// Per-channel max |x| over every input row a Linear saw.
    final class AbsMax {
        var value: [Float]
        init(cols: Int) { value = [Float](repeating: 0, count: cols) }
        func add(_ x: UnsafePointer<Float>, rows m: Int, cols n: Int) {
            value.withUnsafeMutableBufferPointer { v in
                for i in 0 ..< m { let row = x + i * n; for j in 0 ..< n { v[j] = max(v[j], abs(row[j])) } }
            }
        }
    }

    /// A Linear that records its input's per-channel max |x|, then runs `inner`.
    final class Recorder: LinearLayer {
        let inner: any LinearLayer
        let stat: AbsMax
        init(_ inner: any LinearLayer, _ stat: AbsMax) { self.inner = inner; self.stat = stat }
        var inFeatures: Int { inner.inFeatures }
        var outFeatures: Int { inner.outFeatures }
        var residentBytes: Int { inner.residentBytes }
        func forward(_ x: UnsafePointer<Float>, rows m: Int, into out: UnsafeMutablePointer<Float>) {
            stat.add(x, rows: m, cols: inner.inFeatures)
            inner.forward(x, rows: m, into: out)
        }
    }

    /// The smoothed float tensors of the loaded Llama model in `bundle` (name → values, same
    /// shapes), from the activation maxima of `options`' calibration text run through it. The
    /// model is left as it was: the caller folds the result in as edits (`AWQ.apply`).
    public static func smoothedTensors(_ bundle: ModelBundle, options o: SmoothQuantOptions,
                                       progress: Bool) throws -> [String: [Float]] {
        guard let (m, samples) = try Calibration.decoderSamples(bundle, file: o.calibration, count: o.numExamples,
                                                                 length: o.calibrationLength) else {
            throw InputError("--smooth", "SmoothQuant is implemented for Llama-family decoders; \(bundle.directory.path) is not one")
        }
        let float = m.weights
        defer { m.weights = float }
        // The inputs of q (shared by k, v), gate (shared by up) and down, per layer.
        var stats: [(attn: AbsMax, mlp: AbsMax, down: AbsMax)] = []
        for i in m.weights.layers.indices {
            let l = m.weights.layers[i]
            let s = (AbsMax(cols: l.qProj.inFeatures), AbsMax(cols: l.gateProj.inFeatures), AbsMax(cols: l.downProj.inFeatures))
            m.weights.layers[i].setLinear(.q, Recorder(l.qProj, s.0))
            m.weights.layers[i].setLinear(.gate, Recorder(l.gateProj, s.1))
            m.weights.layers[i].setLinear(.down, Recorder(l.downProj, s.2))
            stats.append(s)
        }
        let bar = progress ? ProgressBar("smooth", total: samples.count, unit: "samples") : nil
        let t = o.calibrationLength, perBatch = max(1, m.maxBatchTokens / t)
        var i = 0
        while i < samples.count {
            let batch = Array(samples[i ..< min(samples.count, i + perBatch)])
            _ = m.forward(tokens: batch.flatMap { $0 }, batch: batch.count, time: t, lengths: [Int](repeating: t, count: batch.count))
            i += batch.count
            bar?.advance(batch.count)
        }
        bar?.finish()

        func load(_ name: String) throws -> (values: [Float], rows: Int, cols: Int) { try float.floatTensor(name, for: "SmoothQuant") }
        var out: [String: [Float]] = [:]
        for (li, s) in stats.enumerated() {
            func weight(_ role: LlamaProjection) -> String { LlamaNames.weight(role, layer: li) }
            // q/k/v from the attention norm.
            let normName = LlamaNames.norm(.input, layer: li)
            var norm = try load(normName)
            var qkv = try [LlamaProjection.q, .k, .v].map { (weight($0), try load(weight($0))) }
            var f = factors(activationMax: s.attn.value, weights: qkv.map { ($0.1.values, $0.1.rows) }, cols: norm.rows, alpha: o.alpha)
            for j in f.indices { norm.values[j] /= f[j] }
            for k in qkv.indices { scaleColumns(&qkv[k].1.values, rows: qkv[k].1.rows, cols: qkv[k].1.cols, by: f) }
            out[normName] = norm.values
            for (name, w) in qkv { out[name] = w.values }
            // gate/up from the MLP norm.
            let mnormName = LlamaNames.norm(.postAttention, layer: li)
            var mnorm = try load(mnormName)
            var gate = try load(weight(.gate)), up = try load(weight(.up))
            f = factors(activationMax: s.mlp.value, weights: [(gate.values, gate.rows), (up.values, up.rows)], cols: mnorm.rows, alpha: o.alpha)
            for j in f.indices { mnorm.values[j] /= f[j] }
            scaleColumns(&gate.values, rows: gate.rows, cols: gate.cols, by: f)
            scaleColumns(&up.values, rows: up.rows, cols: up.cols, by: f)
            // down from up's rows (silu(gate)·up is linear in up).
            var down = try load(weight(.down))
            f = factors(activationMax: s.down.value, weights: [(down.values, down.rows)], cols: down.cols, alpha: o.alpha)
            divideRows(&up.values, rows: up.rows, cols: up.cols, by: f)
            scaleColumns(&down.values, rows: down.rows, cols: down.cols, by: f)
            out[mnormName] = mnorm.values
            out[weight(.gate)] = gate.values
            out[weight(.up)] = up.values
            out[weight(.down)] = down.values
        }
        return out
    }
}
