import Foundation
import Testing
import GreenPrune

/// AdamW, the learning-rate schedules and gradient clipping against hand-computed values.
@Suite("Recovery optimizer")
struct RecoveryOptimizerTests {
    /// Two AdamW steps on one scalar, against the paper's form (Loshchilov & Hutter, Algorithm 2
    /// with PyTorch's ε placement) written out in double precision:
    /// θ ← θ(1 − lr·λ) − lr · m̂ / (√v̂ + ε), m̂ = m / (1 − β1ᵗ), v̂ = v / (1 − β2ᵗ).
    @Test func adamWTwoSteps() {
        var opt = AdamW(slots: 1, beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0.01)
        var theta: [Float] = [1]
        // Step 1, g = 0.5, lr = 0.1: θ = 0.999 − 0.1 · 0.5 / (0.5 + 1e-8) ≈ 0.899.
        opt.beginStep()
        opt.update(&theta, gradient: [0.5], slot: 0, lr: 0.1)
        #expect(abs(Double(theta[0]) - (0.999 - 0.1 * 0.5 / (0.5 + 1e-8))) < 1e-6)
        // Step 2, g = −1, lr = 0.05.
        opt.beginStep()
        opt.update(&theta, gradient: [-1], slot: 0, lr: 0.05)
        var th = 0.999 - 0.1 * 0.5 / (0.5 + 1e-8)
        let m = 0.9 * 0.05 + 0.1 * -1.0, v = 0.999 * 0.00025 + 0.001 * 1.0
        let mh = m / (1 - 0.81), vh = v / (1 - 0.999 * 0.999)
        th = th * (1 - 0.05 * 0.01) - 0.05 * mh / (vh.squareRoot() + 1e-8)
        #expect(abs(Double(theta[0]) - th) < 1e-6, "\(theta[0]) vs \(th)")
        #expect(opt.step == 2)
    }

    /// With no weight decay the first step moves every coordinate with a gradient by lr in the
    /// direction against it, whatever the gradient's size (m̂ / √v̂ = sign g).
    @Test func firstStepIsSignDescent() {
        var opt = AdamW(slots: 2)
        var a: [Float] = [1, 2, 3], b: [Float] = [0, 0]
        opt.beginStep()
        opt.update(&a, gradient: [1e-3, -7, 0], slot: 0, lr: 0.01)
        opt.update(&b, gradient: [100, -0.5], slot: 1, lr: 0.01)
        #expect(abs(a[0] - 0.99) < 1e-6 && abs(a[1] - 2.01) < 1e-6 && a[2] == 3)
        #expect(abs(b[0] + 0.01) < 1e-6 && abs(b[1] - 0.01) < 1e-6)
    }

    /// Hugging Face's schedules at the points where they are known exactly.
    @Test func schedules() {
        let lin = LearningRateSchedule(peak: 1, warmupSteps: 10, totalSteps: 110, decay: .linear)
        #expect(lin.rate(afterSteps: 0) == 0)
        #expect(lin.rate(afterSteps: 5) == 0.5)
        #expect(lin.rate(afterSteps: 10) == 1)
        #expect(lin.rate(afterSteps: 60) == 0.5)
        #expect(lin.rate(afterSteps: 110) == 0)
        #expect(lin.rate(afterSteps: 200) == 0)
        let cos = LearningRateSchedule(peak: 2, warmupSteps: 10, totalSteps: 110, decay: .cosine)
        #expect(cos.rate(afterSteps: 10) == 2)
        #expect(abs(cos.rate(afterSteps: 60) - 1) < 1e-12)
        #expect(abs(cos.rate(afterSteps: 35) - (1 + Foundation.cos(Double.pi / 4))) < 1e-12)
        #expect(abs(cos.rate(afterSteps: 110)) < 1e-12)
        let flat = LearningRateSchedule(peak: 3, warmupSteps: 0, totalSteps: 5, decay: .constant)
        #expect((0 ..< 5).allSatisfy { flat.rate(afterSteps: $0) == 3 })
    }

    /// A 3-4-5 triangle: the norm is 5; clipped to 1 the gradients become (0.6, 0.8) (up to
    /// PyTorch's 1e-6 in the denominator); under the limit they stay as they are.
    @Test func clipping() {
        var g: [[Float]] = [[3], [0, 4]]
        let norm = GradientClipping.clip(&g, maxNorm: 1)
        #expect(norm == 5)
        #expect(abs(g[0][0] - 0.6) < 1e-6 && g[1][0] == 0 && abs(g[1][1] - 0.8) < 1e-6)
        var h: [[Float]] = [[3], [0, 4]]
        GradientClipping.clip(&h, maxNorm: 10)
        #expect(h == [[3], [0, 4]])
    }

    /// Impossible options name their flag.
    @Test func optionsValidation() {
        func problem(_ change: (inout TrainingOptions) -> Void) -> String? {
            var o = TrainingOptions()
            change(&o)
            do { try o.validate(); return nil } catch let e as InputError { return e.source } catch { return "?" }
        }
        #expect(problem { _ in } == nil)
        #expect(problem { $0.learningRate = 0 } == "--lr")
        #expect(problem { $0.microBatch = 16 } == "--micro-batch")
        #expect(problem { $0.batchSize = 6; $0.microBatch = 4 } == "--batch-size")
        #expect(problem { $0.decay = "step" } == "--schedule")
        #expect(problem { $0.maxSteps = 0 } == "--max-steps")
        #expect(problem { $0.maxMinutes = -1 } == "--max-minutes")
        #expect(problem { $0.weightDecay = .nan } == "--weight-decay")
    }
}
