import Foundation

// Backward kernels, llm.c style: one per forward kernel in Kernels.swift / Attention.swift /
// BLAS.swift, same argument order, gradients ACCUMULATED (`+=`) into the d-buffers, so callers
// zero them once per pass. Letters as in Kernels.swift: N = B·T rows, C channels, H query
// heads, G key/value heads, D head dim, F MLP width, V vocabulary.

/// Backward of `matmulLinear` (out (M, N) = x (M, K) · Wᵀ, W (N, K)):
/// dx (M, K) += dout (M, N) · W and, if `dw` is given, dW (N, K) += doutᵀ · x. Both sgemm.
public func matmulLinearBackward(_ dx: UnsafeMutablePointer<Float>?, _ dw: UnsafeMutablePointer<Float>?,
                                 _ dout: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
                                 m: Int, n: Int, k: Int) {
    if let dx {
        sgemm(m: m, n: k, k: n, a: dout, lda: n, b: w, ldb: k, beta: 1, c: dx, ldc: k)
    }
    if let dw {
        sgemm(transA: true, m: n, n: k, k: m, a: dout, lda: n, b: x, ldb: k, beta: 1, c: dw, ldc: k)
    }
}

/// Backward of `rmsnormForward` (y = w ⊙ x · r, r = 1/√(mean(x²) + eps) per row):
///   dx += r · (w ⊙ dy) − r³/C · x · Σⱼ (w ⊙ dy ⊙ x)ⱼ,   dw += Σ_rows dy ⊙ x · r.
/// inp, rstd are what the forward read and saved. dinp may not alias dout.
public func rmsnormBackward(_ dinp: UnsafeMutablePointer<Float>, _ dweight: UnsafeMutablePointer<Float>?,
                            _ dout: UnsafePointer<Float>, _ inp: UnsafePointer<Float>,
                            _ weight: UnsafePointer<Float>, _ rstd: UnsafePointer<Float>, n: Int, c: Int) {
    parallelFor(n, grain: 16) { rows in
        for i in rows {
            let x = inp + i * c, dy = dout + i * c, dx = dinp + i * c
            let r = rstd[i]
            var dot: Float = 0
            for j in 0..<c { dot += weight[j] * dy[j] * x[j] }
            let k = r * r * r * dot / Float(c)
            for j in 0..<c { dx[j] += r * weight[j] * dy[j] - k * x[j] }
        }
    }
    if let dweight {
        // Column sums over rows: serial over rows keeps the order fixed (C is small).
        for i in 0..<n {
            let x = inp + i * c, dy = dout + i * c
            let r = rstd[i]
            for j in 0..<c { dweight[j] += dy[j] * x[j] * r }
        }
    }
}

/// Backward of `ropeForward`, in place on the gradient dx (B, T, heads, D): the rotation is
/// orthogonal, so the gradient turns back by the opposite angle:
///   dx[i] ← dx[i]·cos + dx[i+D/2]·sin,  dx[i+D/2] ← dx[i+D/2]·cos − dx[i]·sin.
public func ropeBackward(_ dx: UnsafeMutablePointer<Float>, cos: UnsafePointer<Float>, sin: UnsafePointer<Float>,
                         b: Int, t: Int, heads: Int, d: Int, rowStride: Int) {
    let half = d / 2
    parallelFor(b * t, grain: 8) { rows in
        for r in rows {
            let p = r % t
            let cr = cos + p * half, sr = sin + p * half
            for h in 0..<heads {
                let v = dx + r * rowStride + h * d
                for i in 0..<half {
                    let g1 = v[i], g2 = v[i + half]
                    v[i] = g1 * cr[i] + g2 * sr[i]
                    v[i + half] = g2 * cr[i] - g1 * sr[i]
                }
            }
        }
    }
}

/// Backward of causal `attentionForward` with no cache (past = 0, S = T, every length T),
/// per sequence b and query head h (KV head g = h / (H/G)), P = probs[b, h] (T, T):
///   dP = dO · Vᵀ;  dV_g += Pᵀ · dO;  dS = P ⊙ (dP − rowsum(P ⊙ dP));
///   dQ += scale · dS · K_g;  dK_g += scale · dSᵀ · Q   (all sgemm; masked P are 0, so dS is).
/// q, dq, dout (B, T, H·D) with row stride qStride; k, v, dk, dv (B, T, G·D), stride kvStride.
/// `scratch` holds T·T floats.
public func attentionBackward(dq: UnsafeMutablePointer<Float>, dk: UnsafeMutablePointer<Float>,
                              dv: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>,
                              q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                              probs: UnsafePointer<Float>, b: Int, t: Int, heads: Int, kvHeads: Int, d: Int,
                              qStride: Int, kvStride: Int, scratch: UnsafeMutablePointer<Float>) {
    guard heads > 0, kvHeads > 0, t > 0 else { return }
    let group = heads / kvHeads
    let scale = 1 / Float(d).squareRoot()
    for bi in 0..<b {
        for h in 0..<heads {
            let g = h / group
            let qOff = bi * t * qStride + h * d, kvOff = bi * t * kvStride + g * d
            let p = probs + ((bi * heads + h) * t) * t
            let ds = scratch
            // dP (T, T) = dO_bh (T, D) · V_bgᵀ
            sgemm(transB: true, m: t, n: t, k: d, a: dout + qOff, lda: qStride, b: v + kvOff, ldb: kvStride,
                  beta: 0, c: ds, ldc: t)
            // dV_bg (T, D) += Pᵀ · dO_bh
            sgemm(transA: true, m: t, n: d, k: t, a: p, lda: t, b: dout + qOff, ldb: qStride,
                  beta: 1, c: dv + kvOff, ldc: kvStride)
            // Softmax backward row by row, over the visible keys j ≤ i.
            for i in 0..<t {
                let pr = p + i * t, dr = ds + i * t
                var dot: Float = 0
                for j in 0...i { dot += pr[j] * dr[j] }
                for j in 0...i { dr[j] = pr[j] * (dr[j] - dot) }
                for j in (i + 1)..<t { dr[j] = 0 }
            }
            // dQ_bh += scale · dS · K_bg;  dK_bg += scale · dSᵀ · Q_bh
            sgemm(m: t, n: d, k: t, alpha: scale, a: ds, lda: t, b: k + kvOff, ldb: kvStride,
                  beta: 1, c: dq + qOff, ldc: qStride)
            sgemm(transA: true, m: t, n: d, k: t, alpha: scale, a: ds, lda: t, b: q + qOff, ldb: qStride,
                  beta: 1, c: dk + kvOff, ldc: kvStride)
        }
    }
}

/// Backward of `siluMulForward` (out = silu(g) · u, silu(g) = g·σ(g)):
///   du += dout · silu(g),   dg += dout · u · σ(g) · (1 + g · (1 − σ(g))).
public func siluMulBackward(_ dgate: UnsafeMutablePointer<Float>, _ dup: UnsafeMutablePointer<Float>,
                            _ dout: UnsafePointer<Float>, _ gate: UnsafePointer<Float>,
                            _ up: UnsafePointer<Float>, count n: Int) {
    parallelFor(n, grain: 4096) { r in
        for i in r {
            let g = gate[i]
            let s = 1 / (1 + exp(-g))
            dup[i] += dout[i] * g * s
            dgate[i] += dout[i] * up[i] * s * (1 + g * (1 - s))
        }
    }
}

/// Backward of `embeddingForward`: dtable[ids[i]] (C) += dout[i] (C), rows in order.
public func embeddingBackward(_ dtable: UnsafeMutablePointer<Float>, _ dout: UnsafePointer<Float>,
                              ids: UnsafePointer<Int32>, n: Int, c: Int) {
    for i in 0..<n {
        let row = dtable + Int(ids[i]) * c, g = dout + i * c
        for j in 0..<c { row[j] += g[j] }
    }
}

/// Output head loss and its gradient in one pass, in place on logits (N, V):
/// returns Σᵢ −log softmax(logitsᵢ)[targets[i]] (summed in double) and replaces each row by
/// dlogits = scale · (softmax(row) − onehot(target)). With scale = 1/(tokens in the loss),
/// this is the gradient of the mean cross-entropy (Hugging Face causal-LM loss).
public func crossEntropyForwardBackward(_ logits: UnsafeMutablePointer<Float>, targets: UnsafePointer<Int32>,
                                        n: Int, v: Int, scale: Float) -> Double {
    guard n > 0, v > 0 else { return 0 }
    var losses = [Double](repeating: 0, count: n)
    losses.withUnsafeMutableBufferPointer { lp in
        let lossOut = lp.baseAddress!
        parallelFor(n, grain: 4) { rows in
            for i in rows {
                let row = logits + i * v
                let lse = logSumExp(row, v)
                let tgt = Int(targets[i])
                lossOut[i] = Double(lse - row[tgt])
                for j in 0..<v { row[j] = scale * exp(row[j] - lse) }
                row[tgt] -= scale
            }
        }
    }
    return losses.reduce(0, +)
}
