import Foundation

/// A frozen linear layer with a trainable low-rank adapter (Hu et al. 2021, PEFT's `lora.Linear`):
/// y = base(x) + s · (drop(x) · Aᵀ) · Bᵀ with A (R, I), B (O, R), s = alpha / R.
///
/// A starts Kaiming-uniform as PEFT's default (`kaiming_uniform_(a=√5)`, i.e. U(−1/√I, 1/√I))
/// from a seeded generator, B at zero, so the wrapped model starts exactly as the base. The base
/// gets no gradients; `gradA` and `gradB` accumulate with `+=` until `zeroGradients()`.
/// Dropout applies only while `training`, with the mask drawn from `dropoutKey` (set by the
/// trainer per micro-batch) so the backward and a recomputed forward see the same mask.
public final class LoRALinear: LinearLayer {
    /// The frozen layer.
    public let base: any LinearLayer
    /// Rank R.
    public let rank: Int
    /// alpha (s = alpha / R).
    public let alpha: Float
    /// Dropout probability p on the adapter's input.
    public let dropout: Float
    /// A (R, I), row-major (PEFT's `lora_A.weight`).
    public var a: [Float]
    /// B (O, R), row-major (PEFT's `lora_B.weight`).
    public var b: [Float]
    /// dL/dA (R, I), accumulated.
    public var gradA: [Float]
    /// dL/dB (O, R), accumulated.
    public var gradB: [Float]
    /// Dropout on (training) or off (evaluation, merge checks).
    public var training = false
    /// The key of the current micro-batch's dropout mask (see `loraDropoutKey`).
    public var dropoutKey: UInt64 = 0

    public var inFeatures: Int { base.inFeatures }
    public var outFeatures: Int { base.outFeatures }
    /// The frozen layer's bias (the adapter adds none).
    public var bias: FloatStorage? { base.bias }
    /// s = alpha / R.
    public var scaling: Float { alpha / Float(rank) }

    /// Wraps `base` with A drawn Kaiming-uniform from `generator` and B = 0.
    public init<G: RandomNumberGenerator>(base: any LinearLayer, rank: Int, alpha: Float, dropout: Float,
                                          generator: inout G) {
        precondition(rank >= 1 && dropout >= 0 && dropout < 1, "LoRALinear: rank ≥ 1 and dropout in [0, 1)")
        self.base = base
        self.rank = rank
        self.alpha = alpha
        self.dropout = dropout
        let bound = 1 / Double(base.inFeatures).squareRoot()
        a = (0 ..< rank * base.inFeatures).map { _ in
            Float((Double(generator.next() >> 11) * 0x1p-53 * 2 - 1) * bound)
        }
        b = [Float](repeating: 0, count: base.outFeatures * rank)
        gradA = [Float](repeating: 0, count: a.count)
        gradB = [Float](repeating: 0, count: b.count)
    }

    /// Wraps `base` with the given A (R·I floats) and B (O·R floats).
    public init(base: any LinearLayer, rank: Int, alpha: Float, dropout: Float, a: [Float], b: [Float]) {
        precondition(rank >= 1 && dropout >= 0 && dropout < 1, "LoRALinear: rank ≥ 1 and dropout in [0, 1)")
        precondition(a.count == rank * base.inFeatures && b.count == base.outFeatures * rank, "LoRALinear: A or B has the wrong size")
        self.base = base
        self.rank = rank
        self.alpha = alpha
        self.dropout = dropout
        self.a = a
        self.b = b
        gradA = [Float](repeating: 0, count: a.count)
        gradB = [Float](repeating: 0, count: b.count)
    }

    /// Sets both gradients to zero.
    public func zeroGradients() {
        for j in gradA.indices { gradA[j] = 0 }
        for j in gradB.indices { gradB[j] = 0 }
    }

    private var dropsInput: Bool { training && dropout > 0 }

    /// The adapter's input (M, I): x, or x ∘ mask under dropout (the mask into `mask` too).
    private func droppedInput(_ x: UnsafePointer<Float>, rows m: Int, mask: UnsafeMutablePointer<Float>,
                              into xd: UnsafeMutablePointer<Float>) {
        let n = m * inFeatures
        loraDropoutMask(mask, key: dropoutKey, rows: m, cols: inFeatures, p: dropout)
        for j in 0 ..< n { xd[j] = x[j] * mask[j] }
    }

    public func forward(_ x: UnsafePointer<Float>, rows m: Int, into out: UnsafeMutablePointer<Float>) {
        base.forward(x, rows: m, into: out)
        guard m > 0 else { return }
        let i = inFeatures, r = rank
        let u = UnsafeMutablePointer<Float>.allocate(capacity: m * r)
        defer { u.deallocate() }
        a.withUnsafeBufferPointer { a in
            b.withUnsafeBufferPointer { b in
                if dropsInput {
                    let xd = UnsafeMutablePointer<Float>.allocate(capacity: 2 * m * i)
                    defer { xd.deallocate() }
                    droppedInput(x, rows: m, mask: xd + m * i, into: xd)
                    loraForward(out, u, xd, a.baseAddress!, b.baseAddress!, m: m, i: i, o: outFeatures, r: r, scale: scaling)
                } else {
                    loraForward(out, u, x, a.baseAddress!, b.baseAddress!, m: m, i: i, o: outFeatures, r: r, scale: scaling)
                }
            }
        }
    }

    /// dA, dB += the adapter's gradients; dx += dy · W (the frozen base's backward) +
    /// s · ((dy · B) · A) ∘ mask. The rank-R activations are recomputed from x, so nothing of
    /// the forward needs keeping.
    public func backward(input x: UnsafePointer<Float>, outputGradient dy: UnsafePointer<Float>, rows m: Int,
                         inputGradient dx: UnsafeMutablePointer<Float>?) throws {
        if let dx { try base.backward(input: x, outputGradient: dy, rows: m, inputGradient: dx) }
        guard m > 0 else { return }
        let i = inFeatures, o = outFeatures, r = rank
        // u (M, R), g (M, R), then xd and mask (M, I) each under dropout, then dxd (M, I).
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: 2 * m * r + 3 * m * i)
        defer { scratch.deallocate() }
        let u = scratch, g = scratch + m * r
        let xdBuf = g + m * r, mask = xdBuf + m * i, dxd = mask + m * i
        let xd: UnsafePointer<Float>
        if dropsInput { droppedInput(x, rows: m, mask: mask, into: xdBuf); xd = UnsafePointer(xdBuf) } else { xd = x }
        a.withUnsafeBufferPointer { a in
            b.withUnsafeBufferPointer { b in
                gradA.withUnsafeMutableBufferPointer { dA in
                    gradB.withUnsafeMutableBufferPointer { dB in
                        sgemm(transB: true, m: m, n: r, k: i, a: xd, lda: i, b: a.baseAddress!, ldb: i, beta: 0, c: u, ldc: r)
                        loraBackward(dA: dA.baseAddress!, dB: dB.baseAddress!, dxd: dx == nil ? nil : dxd, g: g,
                                     dy: dy, xd: xd, u: u, a: a.baseAddress!, b: b.baseAddress!,
                                     m: m, i: i, o: o, r: r, scale: scaling)
                    }
                }
            }
        }
        guard let dx else { return }
        if dropsInput {
            for j in 0 ..< m * i { dx[j] += dxd[j] * mask[j] }
        } else {
            for j in 0 ..< m * i { dx[j] += dxd[j] }
        }
    }

    public func adopt(_ options: KernelOptions) { base.adopt(options) }

    /// The base's bytes plus A and B.
    public var residentBytes: Int { base.residentBytes + (a.count + b.count) * MemoryLayout<Float>.size }
}
