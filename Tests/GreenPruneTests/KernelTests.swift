import Foundation
import Testing
import GreenPrune

/// Forward kernels against closed-form cases. Tolerances are float32 rounding (1e-6 relative).
@Suite struct KernelTests {
    static func close(_ a: [Float], _ b: [Float], _ tol: Float = 1e-6) -> Bool {
        a.count == b.count && zip(a, b).allSatisfy { abs($0 - $1) <= tol * max(1, abs($1)) }
    }

    @Test func sgemmHandProduct() {
        let a: [Float] = [1, 2, 3, 4, 5, 6]        // (2, 3)
        let w: [Float] = [1, 0, -1, 2, 1, 0]       // (2, 3) → x · Wᵀ
        var out = [Float](repeating: 0, count: 4)
        matmulLinear(&out, a, w, m: 2, n: 2, k: 3)
        let expected: [Float] = [-2, 4, -2, 13]   // rows (1,2,3),(4,5,6) · (1,0,-1),(2,1,0)
        #expect(out == expected)
        var acc: [Float] = [1, 1, 1, 1]
        matmulLinear(&acc, a, w, m: 2, n: 2, k: 3, accumulate: true)
        #expect(acc == [-1, 5, -1, 14])
        // K = 0: an empty sum is zero (BLAS leaves this undefined, the wrapper does not).
        var z: [Float] = [7, 7]
        sgemm(m: 1, n: 2, k: 0, a: a, lda: 1, b: w, ldb: 2, c: &z, ldc: 2)
        #expect(z == [0, 0])
    }

    @Test func denseLinearAddsBias() {
        let l = DenseLinear(weight: [1, 2, 3, 4], bias: [10, 20], outFeatures: 2, inFeatures: 2)
        var out = [Float](repeating: 0, count: 2)
        l.forward([1, 1], rows: 1, into: &out)
        #expect(out == [13, 27])
        #expect(l.residentBytes == 24)
    }

    @Test func rmsnormClosedForm() {
        let x: [Float] = [3, 4, 0, -5]  // mean(x²) = 12.5
        var out = [Float](repeating: 0, count: 4), rstd: [Float] = [0]
        rmsnormForward(&out, &rstd, x, [1, 2, 1, 0.5], n: 1, c: 4, eps: 0)
        let r = Float(1 / 12.5.squareRoot())
        #expect(Self.close(out, [3 * r, 8 * r, 0, -2.5 * r]))
        #expect(abs(rstd[0] - r) < 1e-7)
    }

    @Test func layernormClosedForm() {
        let x: [Float] = [1, 2, 3, 4, 10, 10, 10, 10]  // row 0: mean 2.5, var 1.25; row 1 constant
        var out = [Float](repeating: 0, count: 8)
        layernormForward(&out, nil, nil, x, [1, 1, 1, 1], [0, 0, 0, 1], n: 2, c: 4, eps: 0)
        let s = Float(1 / 1.25.squareRoot())
        #expect(Self.close(Array(out[0..<4]), [-1.5 * s, -0.5 * s, 0.5 * s, 1.5 * s + 1]))
        var out2 = [Float](repeating: 0, count: 4)
        layernormForward(&out2, nil, nil, Array(x[4...]), [1, 1, 1, 1], [0, 0, 0, 1], n: 1, c: 4, eps: 1e-5)
        #expect(out2 == [0, 0, 0, 1])
    }

    @Test func ropeRotatesHalves() {
        // D = 4: pairs (0, 2) with frequency 1, (1, 3) with θ^(-1/2). Position 0 is identity,
        // position p rotates pair i by p·f_i.
        let inv: [Float] = [1, 0.01]
        var cos = [Float](repeating: 0, count: 4), sin = [Float](repeating: 0, count: 4)
        ropeTables(&cos, &sin, invFreq: inv, start: 0, t: 2)
        var x: [Float] = [1, 2, 0, 3,   1, 2, 0, 3]   // (T=2, heads=1, D=4)
        ropeForward(&x, cos: cos, sin: sin, b: 1, t: 2, heads: 1, d: 4, rowStride: 4)
        #expect(Array(x[0..<4]) == [1, 2, 0, 3])
        let c1 = Float(Foundation.cos(1.0)), s1 = Float(Foundation.sin(1.0))
        let c2 = Float(Foundation.cos(0.01)), s2 = Float(Foundation.sin(0.01))
        let e1: Float = 2 * c2 - 3 * s2, e3: Float = 3 * c2 + 2 * s2
        let expected: [Float] = [c1, e1, s1, e3]
        #expect(Self.close(Array(x[4..<8]), expected))
        // A rotation keeps the norm of each pair.
        #expect(abs(x[4] * x[4] + x[6] * x[6] - 1) < 1e-6)
    }

    /// The vectorised rotation (`gpk_rope_row` under `ropeForward`) equals the plain float32
    /// formula bit for bit: head sizes whose halves are a multiple of 8, and 20 and 6 (a scalar
    /// tail), over rows with a stride wider than the heads and with explicit positions.
    @Test func ropeMatchesPlainLoopBitForBit() {
        var seed: UInt64 = 12345
        func next() -> Float {
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int64(bitPattern: seed) >> 40) / Float(1 << 23)
        }
        for (d, heads, t) in [(64, 3, 5), (20, 2, 4), (6, 1, 3), (128, 1, 2)] {
            let half = d / 2, stride = heads * d + 3, b = 2
            let inv = (0..<half).map { Float(pow(10000.0, -2.0 * Double($0) / Double(d))) }
            var cos = [Float](repeating: 0, count: (t + 7) * half), sin = cos
            ropeTables(&cos, &sin, invFreq: inv, start: 0, t: t + 7)
            let x = (0..<(b * t * stride)).map { _ in next() }
            let positions = (0..<(b * t)).map { Int32(($0 * 5) % (t + 7)) }
            for pos in [nil, positions] {
                var expected = x
                for r in 0..<(b * t) {
                    let p = pos.map { Int($0[r]) } ?? r % t
                    for h in 0..<heads {
                        let o = r * stride + h * d
                        for i in 0..<half {
                            let x1 = x[o + i], x2 = x[o + i + half], c = cos[p * half + i], s = sin[p * half + i]
                            let p1 = x1 * c, p2 = x2 * s, p3 = x2 * c, p4 = x1 * s
                            expected[o + i] = p1 - p2
                            expected[o + i + half] = p3 + p4
                        }
                    }
                }
                var got = x
                if let pos {
                    pos.withUnsafeBufferPointer { pp in
                        ropeForward(&got, cos: cos, sin: sin, b: b, t: t, heads: heads, d: d, rowStride: stride, positions: pp.baseAddress)
                    }
                } else {
                    ropeForward(&got, cos: cos, sin: sin, b: b, t: t, heads: heads, d: d, rowStride: stride)
                }
                #expect(got.map(\.bitPattern) == expected.map(\.bitPattern), "d \(d) positions \(pos != nil)")
            }
        }
    }

    @Test func vectorExpAccuracy() {
        var worst: Double = 0
        for i in 0..<20000 {
            let x = Float(-80 + Double(i) * 0.0084)   // -80 … 88
            let e = Double(sexp(x)), ref = Foundation.exp(Double(x))
            worst = max(worst, abs(e - ref) / ref)
        }
        #expect(worst < 4e-7, "max relative error \(worst)")
        // The Swift SIMD version (for Swift callers) agrees with the C kernels lane by lane.
        let xs = Vec(-20, -1.5, -0.1, 0, 0.3, 2, 10, 80)
        let v = vexp(xs)
        for i in 0..<8 { #expect(abs(v[i] - sexp(xs[i])) <= 2e-7 * sexp(xs[i])) }
    }

    @Test func softmaxAndLogSoftmax() {
        var x: [Float] = [0, log(2), log(3), 5, 5, 5, 5, 5, 5, 5, 5]  // 11 columns: vector + tail
        var first = Array(x[0..<3])
        softmaxForward(&first, rows: 1, cols: 3)
        let sixths: [Float] = [1.0 / 6, 2.0 / 6, 3.0 / 6]
        #expect(Self.close(first, sixths))
        softmaxForward(&x, rows: 1, cols: 11)
        #expect(abs(x.reduce(0, +) - 1) < 1e-6)
        var l: [Float] = [1, 1, 1, 1]
        logSoftmaxForward(&l, rows: 1, cols: 4)
        #expect(Self.close(l, [Float](repeating: -log(4), count: 4)))
        let big: [Float] = [1000, 1000]
        #expect(abs(logSumExp(big, 2) - (1000 + log(2))) < 1e-3)
    }

    @Test func siluMulAndGelu() {
        let g: [Float] = Array(stride(from: -4, through: 4, by: 0.5))   // 17 values: vector + tail
        let u = [Float](repeating: 2, count: g.count)
        var out = [Float](repeating: 0, count: g.count)
        siluMulForward(&out, g, u, count: g.count)
        #expect(Self.close(out, g.map { 2 * $0 / (1 + Foundation.exp(-$0)) }, 2e-6))
        var y = [Float](repeating: 0, count: 3)
        geluForward(&y, [1, -1, 0], count: 3)
        // Φ(1) = 0.841344746…: gelu(1) = Φ(1), gelu(-1) = -(1 - Φ(1)).
        #expect(Self.close(y, [0.8413447460685429, -0.15865525393145707, 0]))
    }

    /// The vectorised GELU against libm's double-precision erf over every regime of its fit
    /// (the polynomial below |x/√2| = 1, the exp form up to 4, the constant beyond), on an odd
    /// count so the tail path runs too.
    @Test func geluMatchesDoubleErfOnAGrid() {
        let xs: [Float] = (0 ..< 40_001).map { Float(-10 + 20 * Double($0) / 40_000) }
        var y = [Float](repeating: .nan, count: xs.count)
        geluForward(&y, xs, count: xs.count)
        var worst = 0.0
        for (x, g) in zip(xs, y) {
            let d = Double(x), want = 0.5 * d * (1 + Foundation.erf(d / 2.0.squareRoot()))
            worst = max(worst, abs(Double(g) - want) / max(1, abs(d)))
        }
        #expect(worst < 3e-7, "largest error \(worst) relative to max(1, |x|)")
    }

    @Test func embeddingMeanPoolNormalize() {
        let table: [Float] = [0, 0, 1, 1, 2, 4]   // (V=3, C=2)
        var out = [Float](repeating: 0, count: 6)
        embeddingForward(&out, ids: [2, 0, 1], table: table, n: 3, c: 2)
        #expect(out == [2, 4, 0, 0, 1, 1])
        var pooled = [Float](repeating: 0, count: 2)
        meanPoolForward(&pooled, out, lengths: [2], b: 1, t: 3, c: 2)   // padding row 2 excluded
        #expect(pooled == [1, 2])
        l2NormalizeRows(&pooled, rows: 1, cols: 2)
        let r5 = Float(5).squareRoot()
        #expect(Self.close(pooled, [1 / r5, 2 / r5]))
    }

    /// Attention with D = 1: every score is q·k, so the outputs are weighted averages worked by hand.
    @Test func causalPaddedGroupedAttention() {
        // B = 1, T = 3, H = 2 query heads sharing G = 1 kv head, D = 1.
        let q: [Float] = [1, 0,  1, 0,  1, 0]          // head 0 q = 1, head 1 q = 0 (uniform)
        let k: [Float] = [0, Float(log(2.0)), Float(log(3.0))]
        let v: [Float] = [10, 20, 30]
        var out = [Float](repeating: 0, count: 6), scratch = [Float](repeating: 0, count: 9)
        var probs = [Float](repeating: -1, count: 2 * 3 * 3)
        attentionForward(&out, probs: &probs, q: q, k: k, v: v, lengths: [3], b: 1, t: 3, past: 0, s: 3,
                         heads: 2, kvHeads: 1, d: 1, qStride: 2, kvStride: 1, causal: true, scratch: &scratch)
        // head 0: weights ∝ e^k = 1, 2, 3 over the visible prefix.
        let head0: [Float] = [10, 50.0 / 3, 140.0 / 6]
        #expect(Self.close([out[0], out[2], out[4]], head0, 1e-5))
        // head 1: uniform over the prefix.
        #expect(Self.close([out[1], out[3], out[5]], [10, 15, 20], 1e-5))
        #expect(Self.close(Array(probs[0..<3]), [1, 0, 0]))           // row 0 sees key 0 only
        // Right padding: length 2 hides key 2 from every query, even non-causally.
        attentionForward(&out, probs: nil, q: q, k: k, v: v, lengths: [2], b: 1, t: 3, past: 0, s: 3,
                         heads: 2, kvHeads: 1, d: 1, qStride: 2, kvStride: 1, causal: false, scratch: &scratch)
        let padded: [Float] = [50.0 / 3, 15]
        #expect(Self.close([out[0], out[1]], padded, 1e-5))
        // A cached past: one new query at position 2 sees keys 0...2.
        attentionForward(&out, probs: nil, q: [1, 0], k: k, v: v, lengths: [1], b: 1, t: 1, past: 2, s: 3,
                         heads: 2, kvHeads: 1, d: 1, qStride: 2, kvStride: 1, causal: true, scratch: &scratch)
        let cached: [Float] = [140.0 / 6, 20]
        #expect(Self.close([out[0], out[1]], cached, 1e-5))
    }

    /// Blocked causal attention over several query blocks, GQA, padding and a cached past, against
    /// the textbook formula evaluated naively in double precision (tolerance 1e-5), on every path
    /// `KernelOptions` selects: grouped-query (T ≤ 256) or per head, heads in parallel or in turn.
    @Test(arguments: [(300, 0, 300), (200, 37, 150), (1, 90, 1)],
          [(true, true), (false, true), (true, false), (false, false)])
    func attentionMatchesNaiveFormula(_ c: (t: Int, past: Int, length: Int), _ paths: (grouped: Bool, parallel: Bool)) {
        let (t, past, length) = c
        let options = KernelOptions(groupedHeads: paths.grouped, parallelOverHeads: paths.parallel, blockwiseFromTime: .max)
        let b = 2, h = 4, g = 2, d = 8, s = past + t + 3, l = past + t
        var seed: UInt32 = 7
        func rnd() -> Float { seed = seed &* 1664525 &+ 1013904223; return Float(Int(seed >> 9) % 2001 - 1000) / 500 }
        let q = (0..<(b * t * h * d)).map { _ in rnd() }
        let k = (0..<(b * s * g * d)).map { _ in rnd() }
        let v = (0..<(b * s * g * d)).map { _ in rnd() }
        let lengths = [t, length]
        var out = [Float](repeating: 0, count: b * t * h * d), scratch = [Float](repeating: 0, count: t * l)
        attentionForward(&out, probs: nil, q: q, k: k, v: v, lengths: lengths, b: b, t: t, past: past, s: s,
                         heads: h, kvHeads: g, d: d, qStride: h * d, kvStride: g * d, causal: true, scratch: &scratch,
                         options: options)
        var worst = 0.0
        for bi in 0..<b {
            for i in 0..<min(t, lengths[bi]) {        // padded query rows are ignored by callers
                for hh in 0..<h {
                    let gg = hh / (h / g)
                    let keys = min(past + i + 1, past + lengths[bi])
                    var sc = [Double](repeating: 0, count: keys)
                    for j in 0..<keys {
                        var dot = 0.0
                        for x in 0..<d { dot += Double(q[(bi * t + i) * h * d + hh * d + x]) * Double(k[(bi * s + j) * g * d + gg * d + x]) }
                        sc[j] = dot / Double(d).squareRoot()
                    }
                    let m = sc.max()!
                    let e = sc.map { Foundation.exp($0 - m) }
                    let z = e.reduce(0, +)
                    for x in 0..<d {
                        var acc = 0.0
                        for j in 0..<keys { acc += e[j] / z * Double(v[(bi * s + j) * g * d + gg * d + x]) }
                        worst = max(worst, abs(acc - Double(out[(bi * t + i) * h * d + hh * d + x])))
                    }
                }
            }
        }
        #expect(worst < 1e-5, "max |Δ| = \(worst)")
    }

    /// Shared-prefix segments through the grouped-query path (no probabilities kept) equal the
    /// per-head path (probabilities kept) within 1e-5: a packed row (prefix, three choice runs,
    /// padding) and a row whose segments interleave (the grouped path's key-by-key fallback).
    @Test func groupedAttentionMatchesPerHeadWithSegments() {
        let b = 2, t = 40, h = 6, g = 2, d = 8
        var seed: UInt32 = 11
        func rnd() -> Float { seed = seed &* 1664525 &+ 1013904223; return Float(Int(seed >> 9) % 2001 - 1000) / 500 }
        let q = (0..<(b * t * h * d)).map { _ in rnd() }
        let k = (0..<(b * t * g * d)).map { _ in rnd() }
        let v = (0..<(b * t * g * d)).map { _ in rnd() }
        var segs = [Int32](repeating: 0, count: b * t)
        // Row 0: prefix 0..<10, choices 10..<18, 18..<30, 30..<36, padding 36..<40.
        for j in 10 ..< 18 { segs[j] = 1 }
        for j in 18 ..< 30 { segs[j] = 2 }
        for j in 30 ..< 36 { segs[j] = 3 }
        // Row 1: prefix 0..<5, then segments 1, 2, 1, 2… (not runs): masked key by key.
        for j in 5 ..< 38 { segs[t + j] = Int32(1 + (j / 3) % 2) }
        let lengths = [36, 38]
        var a = [Float](repeating: 0, count: b * t * h * d), c = a
        var scratch = [Float](repeating: 0, count: t * t), probs = [Float](repeating: 0, count: b * h * t * t)
        attentionForward(&a, probs: &probs, q: q, k: k, v: v, lengths: lengths, b: b, t: t, past: 0, s: t,
                         heads: h, kvHeads: g, d: d, qStride: h * d, kvStride: g * d, causal: true,
                         scratch: &scratch, segments: segs)
        attentionForward(&c, probs: nil, q: q, k: k, v: v, lengths: lengths, b: b, t: t, past: 0, s: t,
                         heads: h, kvHeads: g, d: d, qStride: h * d, kvStride: g * d, causal: true,
                         scratch: &scratch, segments: segs)
        var worst: Float = 0
        for bi in 0 ..< b { for i in 0 ..< lengths[bi] { for x in 0 ..< h * d {
            let idx = (bi * t + i) * h * d + x
            worst = max(worst, abs(a[idx] - c[idx]))
        } } }
        #expect(worst < 1e-5, "max |Δ| = \(worst)")
    }

    /// The decoder writes the attention output over its queries (out == q). Each (sequence,
    /// head) reads its queries before it writes those rows, so in place must equal a separate
    /// output buffer bit for bit: the grouped-query path (T ≤ 256) and the blocked causal path
    /// (T = 300, three query blocks; blockwise off), with a cached past, GQA and padding.
    @Test(arguments: [(40, 0), (120, 25), (300, 0), (300, 7)])
    func attentionInPlaceOverQueriesEqualsSeparateOutput(_ c: (t: Int, past: Int)) {
        let (t, past) = c
        let options = KernelOptions(blockwiseFromTime: .max)
        let b = 2, h = 6, g = 2, d = 8, s = past + t, l = past + t
        var seed: UInt32 = 5
        func rnd() -> Float { seed = seed &* 1664525 &+ 1013904223; return Float(Int(seed >> 9) % 2001 - 1000) / 500 }
        let q = (0..<(b * t * h * d)).map { _ in rnd() }
        let k = (0..<(b * s * g * d)).map { _ in rnd() }
        let v = (0..<(b * s * g * d)).map { _ in rnd() }
        let lengths = [t, max(1, t - 9)]
        var separate = [Float](repeating: 0, count: q.count), inPlace = q
        var scratch = [Float](repeating: 0, count: t * l)
        attentionForward(&separate, probs: nil, q: q, k: k, v: v, lengths: lengths, b: b, t: t, past: past, s: s,
                         heads: h, kvHeads: g, d: d, qStride: h * d, kvStride: g * d, causal: true, scratch: &scratch,
                         options: options)
        inPlace.withUnsafeMutableBufferPointer { p in
            attentionForward(p.baseAddress!, probs: nil, q: p.baseAddress!, k: k, v: v, lengths: lengths, b: b, t: t,
                             past: past, s: s, heads: h, kvHeads: g, d: d, qStride: h * d, kvStride: g * d,
                             causal: true, scratch: &scratch, options: options)
        }
        #expect(inPlace == separate, "t \(t) past \(past)")
        #expect(inPlace != q)
    }

    @Test func parallelForCoversEveryIndexOnce() {
        var hits = [Int](repeating: 0, count: 10_007)
        hits.withUnsafeMutableBufferPointer { h in
            parallelFor(h.count, grain: 10) { r in for i in r { h[i] += 1 } }
        }
        #expect(hits.allSatisfy { $0 == 1 })
    }
}
