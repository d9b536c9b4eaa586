import Foundation
import Testing
import GreenPrune

/// Central finite differences of a scalar f at every index of x (or at `indices`),
/// compared with the analytic gradient: |fd − an| ≤ tol · max|an| + 1e-5.
func expectFD(_ x: [Float], _ analytic: [Float], eps: Float = 1e-2, tol: Double = 1e-2,
              indices: [Int]? = nil, _ label: String, _ f: ([Float]) -> Double) {
    let scale = analytic.map { abs(Double($0)) }.max() ?? 0
    var worst = 0.0
    for i in indices ?? Array(0..<x.count) {
        var p = x, m = x
        p[i] += eps
        m[i] -= eps
        let fd = (f(p) - f(m)) / Double(2 * eps)
        worst = max(worst, abs(fd - Double(analytic[i])))
    }
    #expect(worst <= tol * scale + 1e-5, "\(label): max |fd − analytic| = \(worst), max |analytic| = \(scale)")
}

/// n uniform floats in [−s, s).
func randomFloats(_ n: Int, _ rng: inout SplitMix64, _ s: Float = 1) -> [Float] {
    (0..<n).map { _ in (Float(rng.next() >> 40) / Float(1 << 24) * 2 - 1) * s }
}

@Suite("LlamaGradient", .serialized)
struct LlamaGradientTests {
    // MARK: kernels, each against finite differences of ⟨dout, forward(x)⟩

    @Test func rmsnormBackwardMatchesFiniteDifferences() {
        var rng = SplitMix64(seed: 3)
        let n = 3, c = 7
        let x = randomFloats(n * c, &rng), w = randomFloats(c, &rng).map { $0 + 1 }, dout = randomFloats(n * c, &rng)
        func f(_ x: [Float], _ w: [Float]) -> Double {
            var y = [Float](repeating: 0, count: n * c)
            rmsnormForward(&y, nil, x, w, n: n, c: c, eps: 1e-5)
            return zip(y, dout).reduce(0) { $0 + Double($1.0) * Double($1.1) }
        }
        var y = [Float](repeating: 0, count: n * c), rstd = [Float](repeating: 0, count: n)
        rmsnormForward(&y, &rstd, x, w, n: n, c: c, eps: 1e-5)
        var dx = [Float](repeating: 0, count: n * c), dw = [Float](repeating: 0, count: c)
        rmsnormBackward(&dx, &dw, dout, x, w, rstd, n: n, c: c)
        expectFD(x, dx, "rmsnorm dx") { f($0, w) }
        expectFD(w, dw, "rmsnorm dw") { f(x, $0) }
    }

    @Test func ropeBackwardMatchesFiniteDifferences() {
        var rng = SplitMix64(seed: 4)
        let b = 2, t = 3, heads = 2, d = 4
        let inv = RopeConfig(theta: 10000).inverseFrequencies(headDim: d)
        var cos = [Float](repeating: 0, count: t * d / 2), sin = cos
        ropeTables(&cos, &sin, invFreq: inv, start: 0, t: t)
        let x = randomFloats(b * t * heads * d, &rng), dout = randomFloats(x.count, &rng)
        func f(_ x: [Float]) -> Double {
            var y = x
            ropeForward(&y, cos: cos, sin: sin, b: b, t: t, heads: heads, d: d, rowStride: heads * d)
            return zip(y, dout).reduce(0) { $0 + Double($1.0) * Double($1.1) }
        }
        var dx = dout
        ropeBackward(&dx, cos: cos, sin: sin, b: b, t: t, heads: heads, d: d, rowStride: heads * d)
        expectFD(x, dx, "rope dx", f)
    }

    @Test func attentionBackwardMatchesFiniteDifferences() {
        var rng = SplitMix64(seed: 5)
        let b = 2, t = 5, h = 4, g = 2, d = 4
        let q = randomFloats(b * t * h * d, &rng), k = randomFloats(b * t * g * d, &rng), v = randomFloats(b * t * g * d, &rng)
        let dout = randomFloats(q.count, &rng)
        var scratch = [Float](repeating: 0, count: t * t)
        func run(_ q: [Float], _ k: [Float], _ v: [Float], probs: inout [Float]) -> [Float] {
            var out = [Float](repeating: 0, count: b * t * h * d)
            attentionForward(&out, probs: &probs, q: q, k: k, v: v, lengths: [t, t], b: b, t: t, past: 0, s: t,
                             heads: h, kvHeads: g, d: d, qStride: h * d, kvStride: g * d, causal: true, scratch: &scratch)
            return out
        }
        func f(_ q: [Float], _ k: [Float], _ v: [Float]) -> Double {
            var p = [Float](repeating: 0, count: b * h * t * t)
            return zip(run(q, k, v, probs: &p), dout).reduce(0) { $0 + Double($1.0) * Double($1.1) }
        }
        var probs = [Float](repeating: 0, count: b * h * t * t)
        _ = run(q, k, v, probs: &probs)
        var dq = [Float](repeating: 0, count: q.count), dk = [Float](repeating: 0, count: k.count), dv = dk
        attentionBackward(dq: &dq, dk: &dk, dv: &dv, dout: dout, q: q, k: k, v: v, probs: probs, b: b, t: t,
                          heads: h, kvHeads: g, d: d, qStride: h * d, kvStride: g * d, scratch: &scratch)
        expectFD(q, dq, "attention dq") { f($0, k, v) }
        expectFD(k, dk, "attention dk") { f(q, $0, v) }
        expectFD(v, dv, "attention dv") { f(q, k, $0) }
    }

    @Test func siluMulBackwardMatchesFiniteDifferences() {
        var rng = SplitMix64(seed: 6)
        let n = 19
        let gate = randomFloats(n, &rng, 3), up = randomFloats(n, &rng), dout = randomFloats(n, &rng)
        func f(_ g: [Float], _ u: [Float]) -> Double {
            var y = [Float](repeating: 0, count: n)
            siluMulForward(&y, g, u, count: n)
            return zip(y, dout).reduce(0) { $0 + Double($1.0) * Double($1.1) }
        }
        var dg = [Float](repeating: 0, count: n), du = dg
        siluMulBackward(&dg, &du, dout, gate, up, count: n)
        expectFD(gate, dg, "silu dgate") { f($0, up) }
        expectFD(up, du, "silu dup") { f(gate, $0) }
    }

    @Test func crossEntropyGradientMatchesFiniteDifferences() {
        var rng = SplitMix64(seed: 7)
        let n = 3, v = 11
        let logits = randomFloats(n * v, &rng, 3)
        let targets: [Int32] = [0, 5, 10]
        func f(_ x: [Float]) -> Double {
            var y = x
            return crossEntropyForwardBackward(&y, targets: targets, n: n, v: v, scale: 1) / Double(n)
        }
        var d = logits
        _ = crossEntropyForwardBackward(&d, targets: targets, n: n, v: v, scale: 1 / Float(n))
        expectFD(logits, d, "cross-entropy dlogits", f)
    }

    // MARK: whole model: every parameter tensor (embedding, norms, q/k/v/o, gate/up/down, head)

    @Test(arguments: [false, true])
    func tinyModelGradientsMatchFiniteDifferences(tied: Bool) throws {
        let (state, geo) = PruningFixtures.tinyTensors(seed: 11, tied: tied)
        let names = LlamaGradient.parameterNames(layers: geo.layers.count, tied: tied)
        let batch = [[1, 5, 7, 2, 12, 3], [4, 4, 9, 0, 11, 6]]
        let scale = 1 / Float(batch.count * 5)
        let engine = try LlamaGradient(model: try PruningFixtures.load(state, geo), wanted: Set(names))
        _ = try engine.accumulate(batch: batch, scale: scale)
        for name in names {
            let w = try #require(state[name]), an = try #require(engine.gradients[name]).array
            var rng = SplitMix64(seed: UInt64(name.utf8.count))
            let idx = (0..<8).map { _ in Int(rng.next() % UInt64(w.values.count)) }
            expectFD(w.values, an, eps: 1e-2, tol: 2e-2, indices: idx, name) { x in
                var s = state
                s[name] = PruningFixtures.Tensor(shape: w.shape, values: x)
                let e = try? LlamaGradient(model: try PruningFixtures.load(s, geo), wanted: [])
                // accumulate returns Σ token losses; the analytic gradient is of their mean.
                return ((try? e?.accumulate(batch: batch, scale: 1)) ?? .nan) * Double(scale)
            }
        }
    }

    @Test func microBatchesAndPerSampleGradientsAgreeWithOneBatch() throws {
        let batch = [[1, 5, 7, 2, 12, 3], [4, 4, 9, 0, 11, 6], [2, 3, 4, 5, 6, 7]]
        let w = [LlamaNames.q(1), LlamaNames.down(0)]
        let one = try LlamaGradient(model: try PruningFixtures.tinyModel(seed: 12), wanted: Set(w))
        _ = try one.accumulate(batch: batch, scale: 1 / 15)
        for fisher in [false, true] {
            let r = try GradientCollector.collect(model: try PruningFixtures.tinyModel(seed: 12), samples: batch, weights: w,
                                                  fisher: fisher, microBatch: 2)
            for name in w {
                let g = try #require(r.gradients[name])
                #expect(PruningFixtures.relMaxError(g.grad, try #require(one.gradients[name]).array) < 1e-5, "\(name) fisher=\(fisher)")
                #expect((g.fisher != nil) == fisher)
            }
        }
    }

    // MARK: SmolLM2 against ../shared/reference/smollm2_taylor (transformers 5.24, float32)

    @Test func smolLM2LossAndGradientsMatchTransformers() throws {
        let model = try PruningFixtures.smolLM2()
        let ids = try PruningFixtures.ids()
        let names = LlamaGradient.parameterNames(layers: model.weights.layers.count, tied: true)
        let engine = try LlamaGradient(model: model, wanted: Set(names))
        let sum = try engine.accumulate(batch: ids, scale: 1 / 126)
        let expected = try #require(try PruningFixtures.json("loss.json")["loss"] as? Double)
        #expect(abs(sum / 126 - expected) < 1e-5, "loss \(sum / 126) vs \(expected)")

        // Per-tensor gradient norms, relative 1e-3.
        let tensors = try #require(try PruningFixtures.json("grad_norms.json")["tensors"] as? [[String: Any]])
        #expect(tensors.count == 272)
        var worst = (0.0, "")
        for t in tensors {
            let name = try #require(t["name"] as? String), ref = try #require(t["grad_l2"] as? Double)
            let g = try #require(engine.gradients[name], "no gradient for \(name)")
            var ss = 0.0
            for i in 0..<g.count { ss += Double(g.pointer[i]) * Double(g.pointer[i]) }
            let rel = abs(ss.squareRoot() - ref) / ref
            if rel > worst.0 { worst = (rel, name) }
        }
        #expect(worst.0 < 1e-3, "worst gradient-norm error \(worst.0) at \(worst.1)")

        // Full gradients, relative 1e-4 of the tensor's max |value|.
        let full = ["grad_norm.f32": "model.norm.weight",
                    "grad_layers_0_input_layernorm.f32": "model.layers.0.input_layernorm.weight",
                    "grad_layers_5_self_attn_k_proj.f32": LlamaNames.k(5),
                    "grad_layers_5_self_attn_o_proj.f32": LlamaNames.o(5),
                    "grad_layers_5_mlp_down_proj.f32": LlamaNames.down(5)]
        for (file, name) in full {
            let ref = try PruningFixtures.f32(file)
            let ours = try #require(engine.gradients[name]).array
            let e = PruningFixtures.relMaxError(ours, ref)
            #expect(e < 1e-4, "\(name): max error \(e) of max |grad|")
        }
    }
}
