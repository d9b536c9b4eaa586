import Foundation
import GreenPrune
import Testing

/// AWQ: the error measure against its definition, the search against plain rounding, and the
/// folded SmolLM2 layers against the float model they must leave unchanged.
@Suite("AWQ")
struct AWQTests {
    /// The error AWQ searches with, tr(ΔGΔᵀ) (GPTQ.reconstructionLoss) with G = Σ xxᵀ, is
    /// Σ_n ‖Δ x_n‖², the squared output error over the inputs.
    @Test func outputErrorIsTheSquaredOutputError() {
        let rows = 7, cols = 24, n = 30
        let w = randomMatrix(rows, cols, seed: 1), wq = w.enumerated().map { $0.element + Float($0.offset % 5) * 0.01 - 0.02 }
        let x = randomMatrix(n, cols, seed: 2)
        var gram = [Float](repeating: 0, count: cols * cols)
        for r in 0 ..< n { for i in 0 ..< cols { for j in 0 ..< cols { gram[i * cols + j] += x[r * cols + i] * x[r * cols + j] } } }
        let direct = zip(referenceMatmul(x, w, m: n, n: rows, k: cols), referenceMatmul(x, wq, m: n, n: rows, k: cols))
            .reduce(0.0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }
        let e = w.withUnsafeBufferPointer { GPTQ.reconstructionLoss($0, wq, rows: rows, cols: cols, hessian: gram) }
        #expect(abs(e - direct) <= 1e-4 * direct)
    }

    /// s = a^α / √(max·min): α = 0 gives ones; the normalisation puts max·min at 1.
    @Test func scalesFollowTheFormula() {
        #expect(AWQ.scales([4, 1, 9], alpha: 0) == [1, 1, 1])
        let s = AWQ.scales([4, 1, 9], alpha: 0.5)          // √a = 2, 1, 3; √(3·1) = √3
        for (v, want) in zip(s, [2, 1, 3].map { Float($0) / Float(3).squareRoot() }) { #expect(abs(v - want) < 1e-6) }
    }

    /// Inputs with a few loud channels: the search keeps α = 0's loss as its reference, never
    /// returns more than it, and here finds scales that cut the output error.
    @Test func searchBeatsRoundingOnOutlierChannels() throws {
        let rows = 32, cols = 128, n = 256
        let w = randomMatrix(rows, cols, seed: 5)
        var g = SplitMix(state: 9)
        let x: [Float] = (0 ..< n * cols).map { i in g.float() * (i % cols < 4 ? 20 : 0.5) }
        var gram = [Float](repeating: 0, count: cols * cols)
        x.withUnsafeBufferPointer { xp in gram.withUnsafeMutableBufferPointer { gp in
            sgemm(transA: true, m: cols, n: cols, k: n, a: xp.baseAddress!, lda: cols, b: xp.baseAddress!, ldb: cols, c: gp.baseAddress!, ldc: cols)
        } }
        let scheme = try QuantScheme(bits: 4, granularity: .group, groupSize: 64, symmetric: false)
        let c = try AWQ.search(weights: [(w, rows)], cols: cols, gram: gram, count: n, scheme: scheme, grid: 10, name: "t")
        let rtn = try w.withUnsafeBufferPointer { try scheme.quantize($0, rows: rows, cols: cols, name: "t") }.dequantize()
        let rtnLoss = w.withUnsafeBufferPointer { GPTQ.reconstructionLoss($0, rtn, rows: rows, cols: cols, hessian: gram) }
        #expect(abs(c.roundingLoss - rtnLoss) <= 1e-6 * c.roundingLoss)
        #expect(c.loss <= c.roundingLoss)
        #expect(c.alpha > 0 && c.loss < 0.8 * c.roundingLoss, "α \(c.alpha), \(c.loss) vs \(c.roundingLoss)")
    }

    /// Clipping never raises a block's output error (p = 1 is in the grid), clamps only where it
    /// lowers it, and on heavy-tailed rows with an outlier input channel it finds a cut.
    @Test func clipOnlyLowersTheOutputError() throws {
        let rows = 24, cols = 128, n = 200
        var g = SplitMix(state: 4)
        var w: [Float] = (0 ..< rows * cols).map { _ in let u = g.float(); return u * u * u + g.float() * 0.05 }
        let original = w
        let x: [Float] = (0 ..< n * cols).map { i in g.float() * (i % cols == 3 ? 8 : 1) }
        var gram = [Float](repeating: 0, count: cols * cols)
        x.withUnsafeBufferPointer { xp in gram.withUnsafeMutableBufferPointer { gp in
            sgemm(transA: true, m: cols, n: cols, k: n, a: xp.baseAddress!, lda: cols, b: xp.baseAddress!, ldb: cols, c: gp.baseAddress!, ldc: cols)
        } }
        let scheme = try QuantScheme(bits: 4, granularity: .group, groupSize: 32, symmetric: false)
        func error(_ v: [Float]) throws -> Double {
            let q = try v.withUnsafeBufferPointer { try scheme.quantize($0, rows: rows, cols: cols, name: "w") }.dequantize()
            return original.withUnsafeBufferPointer { GPTQ.reconstructionLoss($0, q, rows: rows, cols: cols, hessian: gram) }
        }
        let e = AWQ.clip(&w, rows: rows, cols: cols, gram: gram, scheme: scheme)
        #expect(e.loss <= e.unclipped && e.loss < 0.95 * e.unclipped, "\(e)")
        // Measured against the original weights, the clipped ones still round better.
        let after = try error(w), before = try error(original)
        #expect(after < before)
        #expect(w != original && zip(w, original).allSatisfy { abs($0) <= abs($1) + 1e-7 })
    }

    /// SmolLM2 layers 0–1 (8 × 64 calibration tokens, grid 5, no clipping): the rescaled float tensors put back
    /// into the model change no last-position logit beyond float rounding, every group's error is at most plain
    /// rounding's, and at least one group moves. Then `quantize --awq` (clipping on) with GPTQ
    /// writes a model that loads and reports the exponents.
    @Test func smolLM2FoldingKeepsTheFloatModel() throws {
        let src = try ModelsFixtures.model(Paths.defaultDecoder)
        let scheme = try QuantScheme(bits: 4, granularity: .group, groupSize: 64, symmetric: false)
        let cal = Calibration.defaultFile(dataDirectory: Paths.dataDirectory()).path
        // Scaling alone leaves the float model as it was (clipping, tested below, does not).
        let options = try AWQOptions(calibration: cal, numExamples: 8, calibrationLength: 64, gridSize: 5, clip: false)
        let modules = Set((0 ..< 2).flatMap { i in ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                                                     "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"].map { "model.layers.\(i).\($0)" } })
        let r = try AWQ.scaledTensors(try ModelLoader.load(src), modules: modules, scheme: scheme, options: options, progress: false)
        #expect(r.choices.count == 6)
        #expect(r.choices.values.allSatisfy { $0.loss <= $0.roundingLoss })
        #expect(r.choices.values.contains { $0.alpha > 0 })
        #expect(r.tensors.keys.allSatisfy { $0.hasPrefix("model.layers.0.") || $0.hasPrefix("model.layers.1.") })

        let base = try ModelLoader.loadLlama(src), scaled = try ModelLoader.loadLlama(src)
        try AWQ.apply(r.tensors, to: scaled)
        let tokens = [1, 504, 3458, 282, 4193, 314, 5549, 30, 378, 2462, 314, 253, 7555, 28]
        let a = try base.lastLogits([tokens])[0], b = try scaled.lastLogits([tokens])[0]
        let scale = a.map { abs($0) }.max()!
        #expect(zip(a, b).allSatisfy { abs($0 - $1) <= 2e-4 * scale }, "max |Δ| \(zip(a, b).map { abs($0 - $1) }.max()!) of \(scale)")
        #expect(throws: InputError.self) { try AWQ.apply(["model.norm.weight": [1]], to: scaled) }

        let root = temporaryDirectory("smol-awq")
        defer { try? FileManager.default.removeItem(at: root) }
        let g = try GPTQOptions(calibration: cal, numExamples: 8, calibrationLength: 64)
        var clipping = options
        clipping.clip = true
        let report = try Quantizer.quantize(model: src, to: root.appendingPathComponent("q"),
                                            options: QuantizeOptions(scheme: scheme, skipLast: 28, gptq: g, awq: clipping), progress: false)
        #expect(report.awqAlphas?.count == 6 && report.awqLossRatios?.values.allSatisfy { $0 <= 1 } == true)
        #expect(report.gptqLossRatios?.values.allSatisfy { $0 < 1 } == true)
        let q = try ModelLoader.loadLlama(root.appendingPathComponent("q"))
        #expect(try q.lastLogits([tokens])[0].allSatisfy(\.isFinite))
        #expect(throws: InputError.self) { try AWQOptions(calibration: cal, gridSize: 1) }
    }
}
