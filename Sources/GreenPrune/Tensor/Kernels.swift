import CKernels
import Foundation

// Forward kernels, llm.c style: free functions over raw pointers, output first, shapes in the
// doc comment. Dimension letters: B batch, T time (new tokens), S key/value time stride,
// N = B·T rows, C channels (hidden size), H query heads, G key/value heads, D head dim,
// F MLP width, V vocabulary. Every array is row-major and contiguous unless a stride is given.
//
// Each kernel says which of its inputs/outputs a backward pass needs, so a `*Backward`
// partner can sit beside it (Tensor/KernelsBackward.swift) without changing the forward.

/// out (N, C) = inp (N, C) / rms(inp row) · weight (C); rms = sqrt(mean(x²) + eps).
///
/// HF LlamaRMSNorm (float32 throughout). `rstd` (N), if given, receives 1/rms per row:
/// the backward needs `inp`, `weight` and `rstd`. `out` may alias `inp`.
public func rmsnormForward(_ out: UnsafeMutablePointer<Float>, _ rstd: UnsafeMutablePointer<Float>?,
                           _ inp: UnsafePointer<Float>, _ weight: UnsafePointer<Float>,
                           n: Int, c: Int, eps: Float) {
    parallelFor(n, grain: 16) { rows in
        for i in rows {
            let r = gpk_rmsnorm_row(out + i * c, inp + i * c, weight, c, eps)
            rstd?[i] = r
        }
    }
}

/// out (N, C) = (inp − mean) / sqrt(var + eps) · weight (C) + bias (C), biased variance (nn.LayerNorm).
///
/// `mean`, `rstd` (N), if given, receive the row statistics the backward needs (with `inp`,
/// `weight`). `out` may alias `inp`.
public func layernormForward(_ out: UnsafeMutablePointer<Float>, _ mean: UnsafeMutablePointer<Float>?,
                             _ rstd: UnsafeMutablePointer<Float>?, _ inp: UnsafePointer<Float>,
                             _ weight: UnsafePointer<Float>, _ bias: UnsafePointer<Float>,
                             n: Int, c: Int, eps: Float) {
    parallelFor(n, grain: 16) { rows in
        for i in rows {
            let x = inp + i * c
            let y = out + i * c
            var m: Float = 0
            for j in 0..<c { m += x[j] }
            m /= Float(c)
            var v: Float = 0
            for j in 0..<c { let d = x[j] - m; v += d * d }
            v /= Float(c)
            let r = 1 / (v + eps).squareRoot()
            mean?[i] = m
            rstd?[i] = r
            for j in 0..<c { y[j] = (x[j] - m) * r * weight[j] + bias[j] }
        }
    }
}

/// x (n, c) ← LayerNorm(x + residual) in place (`residual` nil: LayerNorm(x)), the post-norm
/// block's residual add and norm in one pass per row (`gpk_add_layernorm_row`, vectorised).
public func addLayernormForward(_ x: UnsafeMutablePointer<Float>, residual: UnsafePointer<Float>?,
                                _ weight: UnsafePointer<Float>, _ bias: UnsafePointer<Float>,
                                n: Int, c: Int, eps: Float) {
    parallelFor(n, grain: 16) { rows in
        for i in rows {
            gpk_add_layernorm_row(x + i * c, x + i * c, residual.map { $0 + i * c }, weight, bias, c, eps)
        }
    }
}

/// Fills the rotary tables for absolute positions `start ..< start + T`:
/// cos, sin (T, D/2) with angle[t][i] = (start + t) · invFreq[i].
///
/// `invFreq` (D/2) comes from `RopeConfig.inverseFrequencies` (llama3/linear scaling applied
/// there). As in transformers, the angle is the float32 product position · invFreq.
public func ropeTables(_ cos: UnsafeMutablePointer<Float>, _ sin: UnsafeMutablePointer<Float>,
                       invFreq: [Float], start: Int, t: Int) {
    let half = invFreq.count
    for p in 0..<t {
        let pos = Float(start + p)
        for i in 0..<half {
            let a = Double(pos * invFreq[i])
            cos[p * half + i] = Float(Foundation.cos(a))
            sin[p * half + i] = Float(Foundation.sin(a))
        }
    }
}

/// In place: x (B, T, heads, D) rotated by position, HF `rotate_half` convention (the first
/// and second halves of each head pair up): for i < D/2,
/// x[i] ← x[i]·cos − x[i+D/2]·sin,  x[i+D/2] ← x[i+D/2]·cos + x[i]·sin.
///
/// `rowStride` is the distance between consecutive tokens (heads·D for a packed q/k buffer).
/// cos, sin (T, D/2) from `ropeTables`: token r uses row r mod T, or row positions[r] when
/// `positions` (B·T, each < the tables' rows) is given. The backward is the same rotation with −sin.
public func ropeForward(_ x: UnsafeMutablePointer<Float>, cos: UnsafePointer<Float>, sin: UnsafePointer<Float>,
                        b: Int, t: Int, heads: Int, d: Int, rowStride: Int, positions: UnsafePointer<Int32>? = nil) {
    parallelFor(b * t, grain: 8) { rows in
        ropeRows(x, rows: rows, cos: cos, sin: sin, t: t, heads: heads, d: d, rowStride: rowStride, positions: positions)
    }
}

/// `ropeForward` on tokens `rows` only, on the calling thread (`gpk_rope_row`, vectorised).
@inline(__always)
public func ropeRows(_ x: UnsafeMutablePointer<Float>, rows: Range<Int>, cos: UnsafePointer<Float>, sin: UnsafePointer<Float>,
                     t: Int, heads: Int, d: Int, rowStride: Int, positions: UnsafePointer<Int32>?) {
    let half = d / 2
    for r in rows {
        let p = positions.map { Int($0[r]) } ?? r % t
        gpk_rope_row(x + r * rowStride, cos + p * half, sin + p * half, heads, d)
    }
}

/// out (n) = silu(gate) · up, silu(g) = g / (1 + e⁻ᵍ) (SwiGLU). `out` may alias `gate`.
/// The backward needs `gate` and `up`.
public func siluMulForward(_ out: UnsafeMutablePointer<Float>, _ gate: UnsafePointer<Float>,
                           _ up: UnsafePointer<Float>, count n: Int) {
    parallelFor(n, grain: 16384) { r in
        gpk_silu_mul(out + r.lowerBound, gate + r.lowerBound, up + r.lowerBound, r.count)
    }
}

/// gate (rows, width), row stride `ldg` = silu(gate) · up, up (rows, width) contiguous: one
/// band of SwiGLU's columns, in place.
public func siluMulBand(_ gate: UnsafeMutablePointer<Float>, ldg: Int, _ up: UnsafePointer<Float>, rows: Int, width: Int) {
    parallelFor(rows, grain: max(1, 16384 / max(width, 1))) { r in
        for i in r { gpk_silu_mul(gate + i * ldg, gate + i * ldg, up + i * width, width) }
    }
}

/// out (n) = gelu(inp), exact form 0.5·x·(1 + erf(x/√2)) (BERT's "gelu"). `out` may alias `inp`.
/// The backward needs `inp`. erf is `gpk_gelu`'s vectorised fit (within about 1e-7 of erf):
/// libm's scalar `erff` took a quarter of an encoder's forward.
public func geluForward(_ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, count n: Int) {
    parallelFor(n, grain: 16384) { r in
        gpk_gelu(out + r.lowerBound, inp + r.lowerBound, r.count)
    }
}

/// out (n) = gelu(inp), tanh form 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) (GPT-2's
/// "gelu_new", transformers' NewGELUActivation). `out` may alias `inp`.
public func geluTanhForward(_ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, count n: Int) {
    parallelFor(n, grain: 4096) { r in
        for i in r {
            let x = inp[i]
            out[i] = 0.5 * x * (1 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)))
        }
    }
}

/// x (n) += y (n): the residual connection.
public func residualForward(_ x: UnsafeMutablePointer<Float>, _ y: UnsafePointer<Float>, count n: Int) {
    parallelFor(n, grain: 16384) { r in
        for i in r { x[i] += y[i] }
    }
}

/// out (N, C) += bias (C) broadcast over rows.
public func addBias(_ out: UnsafeMutablePointer<Float>, _ bias: UnsafePointer<Float>, n: Int, c: Int) {
    parallelFor(n, grain: 64) { rows in
        for i in rows {
            let y = out + i * c
            for j in 0..<c { y[j] += bias[j] }
        }
    }
}

/// out (N, C), row stride `ld` (default C) = row (C) in every row: a bias as the starting value
/// of a product added to it.
public func fillRows(_ out: UnsafeMutablePointer<Float>, with row: UnsafePointer<Float>, n: Int, c: Int, ld: Int? = nil) {
    let ld = ld ?? c
    parallelFor(n, grain: 64) { rows in
        for i in rows { (out + i * ld).update(from: row, count: c) }
    }
}

/// out (N, C) = table[ids[i]] (rows of a (V, C) table). Ids must be in 0..<V (checked by callers).
/// The backward scatters-adds into the table's gradient rows.
public func embeddingForward(_ out: UnsafeMutablePointer<Float>, ids: UnsafePointer<Int32>,
                             table: UnsafePointer<Float>, n: Int, c: Int) {
    parallelFor(n, grain: 64) { rows in
        for i in rows { (out + i * c).update(from: table + Int(ids[i]) * c, count: c) }
    }
}

/// In place over `rows` rows of `cols`: row ← softmax(row). Used where a row's full
/// distribution is needed (attention uses its own masked variant).
public func softmaxForward(_ x: UnsafeMutablePointer<Float>, rows: Int, cols: Int) {
    parallelFor(rows, grain: 4) { rr in
        for i in rr {
            let row = x + i * cols
            let m = vmax(row, cols)
            vscale(row, cols, 1 / vexpShiftSum(row, row, cols, shift: m))
        }
    }
}

/// log Σ exp(row) over `n` logits, stable (max-shifted).
@inline(__always)
public func logSumExp(_ row: UnsafePointer<Float>, _ n: Int) -> Float {
    let m = vmax(row, n)
    return m + log(vsumExpShift(row, n, shift: m))
}

/// In place over `rows` rows of `cols`: row ← log softmax(row) = row − logsumexp(row).
public func logSoftmaxForward(_ x: UnsafeMutablePointer<Float>, rows: Int, cols: Int) {
    parallelFor(rows, grain: 4) { rr in
        for i in rr {
            let row = x + i * cols
            let l = logSumExp(row, cols)
            for j in 0..<cols { row[j] -= l }
        }
    }
}

/// out (B, C) = mean over the first lengths[b] rows of x (B, T, C) (sentence-transformers
/// mean pooling: padding rows excluded).
public func meanPoolForward(_ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>,
                            lengths: [Int], b: Int, t: Int, c: Int) {
    for bi in 0..<b {
        let y = out + bi * c
        y.update(repeating: 0, count: c)
        let n = max(1, min(lengths[bi], t))
        for ti in 0..<n {
            let row = x + (bi * t + ti) * c
            for j in 0..<c { y[j] += row[j] }
        }
        let inv = 1 / Float(n)
        for j in 0..<c { y[j] *= inv }
    }
}

/// In place: each of `rows` rows of `cols` divided by max(‖row‖₂, 1e-12) (torch F.normalize).
public func l2NormalizeRows(_ x: UnsafeMutablePointer<Float>, rows: Int, cols: Int) {
    for i in 0..<rows {
        let row = x + i * cols
        var ss: Double = 0
        for j in 0..<cols { ss += Double(row[j]) * Double(row[j]) }
        let inv = Float(1 / max(ss.squareRoot(), 1e-12))
        for j in 0..<cols { row[j] *= inv }
    }
}
