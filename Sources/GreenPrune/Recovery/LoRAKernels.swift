import Foundation

// LoRA's kernels as free functions over row-major buffers. Dimension letters: M rows (tokens),
// I input features, O output features, R the adapter's rank. A (R, I) and B (O, R) are the
// adapter (PEFT's lora_A.weight and lora_B.weight), s = alpha / R its scaling.

/// mask (M, I) = 0 or 1 / (1 - p) per element: the inverted-dropout factors for LoRA's input
/// (PyTorch's `nn.Dropout` in training mode keeps an element with probability 1 - p and scales
/// it by 1 / (1 - p)).
///
/// The mask is a pure function of (`key`, row, column), not of a generator's position, so a
/// forward recomputed for the backward (activation checkpointing) draws the same mask, and a
/// resumed run needs no generator state beyond the key.
public func loraDropoutMask(_ mask: UnsafeMutablePointer<Float>, key: UInt64, rows m: Int, cols n: Int, p: Float) {
    let keep = 1 / (1 - p)
    for i in 0 ..< m {
        let row = mask + i * n
        for j in 0 ..< n {
            // 24 uniform bits from a SplitMix64 finaliser of (key, element index).
            let u = Float(mix64(key &+ UInt64(i * n + j) &* 0x9e37_79b9_7f4a_7c15) >> 40) * 0x1p-24
            row[j] = u < p ? 0 : keep
        }
    }
}

/// SplitMix64's output function: a bijective 64-bit mix, used as a counter-based generator.
@inline(__always)
func mix64(_ x: UInt64) -> UInt64 {
    var z = x
    z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
    z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
    return z ^ (z >> 31)
}

/// The key of one (micro-batch, layer) dropout mask: the run's seed, the micro-batch's global
/// index and the layer's own salt, mixed so nearby values give unrelated masks.
public func loraDropoutKey(seed: UInt64, microBatch: UInt64, salt: UInt64) -> UInt64 {
    mix64(mix64(seed ^ 0x4c6f_5241) &+ mix64(microBatch &+ 1) &+ salt &* 0xd1b5_4a32_d192_ed03)
}

/// u (M, R) = xd (M, I) · Aᵀ, then y (M, O) += s · u · Bᵀ: the adapter's half of
/// y = base(x) + s · (drop(x) · Aᵀ) · Bᵀ. `xd` is the dropped input (x itself without dropout);
/// `u` is left holding the rank-R activations the backward reuses.
public func loraForward(_ y: UnsafeMutablePointer<Float>, _ u: UnsafeMutablePointer<Float>,
                        _ xd: UnsafePointer<Float>, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                        m: Int, i: Int, o: Int, r: Int, scale: Float) {
    sgemm(transB: true, m: m, n: r, k: i, a: xd, lda: i, b: a, ldb: i, beta: 0, c: u, ldc: r)
    sgemm(transB: true, m: m, n: o, k: r, alpha: scale, a: u, lda: r, b: b, ldb: r, beta: 1, c: y, ldc: o)
}

/// Backward of `loraForward` for output gradient dy (M, O), accumulating with `+=`:
/// - dB (O, R) += s · dyᵀ · u
/// - g (M, R) = s · dy · B (scratch)
/// - dA (R, I) += gᵀ · xd
/// - dxd (M, I) = g · A, written (not added) into `dxd` when non-nil; the caller applies the
///   dropout mask and adds it into the layer's input gradient.
public func loraBackward(dA: UnsafeMutablePointer<Float>, dB: UnsafeMutablePointer<Float>,
                         dxd: UnsafeMutablePointer<Float>?, g: UnsafeMutablePointer<Float>,
                         dy: UnsafePointer<Float>, xd: UnsafePointer<Float>, u: UnsafePointer<Float>,
                         a: UnsafePointer<Float>, b: UnsafePointer<Float>,
                         m: Int, i: Int, o: Int, r: Int, scale: Float) {
    sgemm(transA: true, m: o, n: r, k: m, alpha: scale, a: dy, lda: o, b: u, ldb: r, beta: 1, c: dB, ldc: r)
    sgemm(m: m, n: r, k: o, alpha: scale, a: dy, lda: o, b: b, ldb: r, beta: 0, c: g, ldc: r)
    sgemm(transA: true, m: r, n: i, k: m, a: g, lda: r, b: xd, ldb: i, beta: 1, c: dA, ldc: i)
    if let dxd { sgemm(m: m, n: i, k: r, a: g, lda: r, b: a, ldb: i, beta: 0, c: dxd, ldc: i) }
}

/// W' (O, I) = W + s · B · A: the adapter folded into the frozen weight (PEFT's merge: the
/// product B · A first, then scaled and added), in place.
public func loraMerge(_ w: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                      o: Int, i: Int, r: Int, scale: Float) {
    var delta = [Float](repeating: 0, count: i)
    for row in 0 ..< o {
        for j in 0 ..< i { delta[j] = 0 }
        for k in 0 ..< r {
            let bk = b[row * r + k], ak = a + k * i
            for j in 0 ..< i { delta[j] += bk * ak[j] }
        }
        let wr = w + row * i
        for j in 0 ..< i { wr[j] += delta[j] * scale }
    }
}
