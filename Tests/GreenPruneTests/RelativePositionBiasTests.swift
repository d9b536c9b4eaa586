import Foundation
import Testing
import GreenPrune

/// MPNet's relative-position buckets and the attention-score bias they index.
@Suite struct RelativePositionBiasTests {
    /// The bucket of query − key distance n ≥ 0 for 32 buckets and max distance 128, derived by
    /// hand from the T5 formula without logarithms: 16 buckets per direction, the first 8 exact;
    /// for n ≥ 8 the bucket is 8 + ⌊8 · log₁₆(n/8)⌋ = 8 + ⌊log₂(n²/64)⌋, i.e. 8 + the largest
    /// k ≤ 7 with 64 · 2ᵏ ≤ n².
    static func handBucket(_ n: Int) -> Int {
        if n < 8 { return n }
        var k = 0
        while k < 7 && 64 << (k + 1) <= n * n { k += 1 }
        return 8 + k
    }

    /// Literal values at every edge of the logarithmic buckets (n² crossing 64 · 2ᵏ: 8√2 ≈ 11.3,
    /// 16, 16√2 ≈ 22.6, 32, 32√2 ≈ 45.3, 64, 64√2 ≈ 90.5, then the cap), in both directions:
    /// relative = key − query, and a key after its query (relative > 0) adds 16.
    @Test(arguments: [
        (0, 0), (-1, 1), (-7, 7), (-8, 8), (-11, 8), (-12, 9), (-15, 9), (-16, 10), (-22, 10), (-23, 11),
        (-31, 11), (-32, 12), (-45, 12), (-46, 13), (-63, 13), (-64, 14), (-90, 14), (-91, 15), (-127, 15),
        (-128, 15), (-129, 15), (-5000, 15),
        (1, 17), (7, 23), (8, 24), (11, 24), (12, 25), (16, 26), (23, 27), (32, 28), (46, 29), (64, 30), (90, 30),
        (91, 31), (128, 31), (5000, 31),
    ])
    func bucketEdges(relative: Int, bucket: Int) {
        #expect(relativePositionBucket(relative, buckets: 32) == bucket, "relative \(relative)")
    }

    /// Every distance up to 1000 in both directions against the hand derivation.
    @Test func bucketsMatchTheIntegerForm() {
        for n in 0 ... 1000 {
            #expect(relativePositionBucket(-n, buckets: 32) == Self.handBucket(n), "query − key = \(n)")
            if n > 0 { #expect(relativePositionBucket(n, buckets: 32) == 16 + Self.handBucket(n), "key − query = \(n)") }
        }
    }

    /// With 4 buckets (2 per direction, 1 exact) and distances below 128 the formula gives:
    /// 0 on the diagonal, 1 for a key before its query, 2 + 1 = 3 for a key after it. The bias
    /// block (H, T, T) reads table[bucket][h] at (h, query i, key j).
    @Test func biasBlockIndexesTheTableByKeyMinusQuery() {
        let heads = 2, t = 3, buckets = 4
        let table: [Float] = (0 ..< buckets * heads).map { Float(10 * ($0 / heads) + $0 % heads) }   // table[b][h] = 10b + h
        var out = [Float](repeating: .nan, count: heads * t * t)
        table.withUnsafeBufferPointer { tp in
            out.withUnsafeMutableBufferPointer { relativePositionBiasForward($0.baseAddress!, table: tp.baseAddress!, t: t, heads: heads, buckets: buckets) }
        }
        for h in 0 ..< heads {
            for i in 0 ..< t {
                for j in 0 ..< t {
                    let bucket = j == i ? 0 : (j < i ? 1 : 3)
                    #expect(out[(h * t + i) * t + j] == Float(10 * bucket + h), "h \(h) i \(i) j \(j)")
                }
            }
        }
    }

    /// attentionForward with `scoreBias` equals softmax(QKᵀ/√d + bias[h]) V over the visible keys,
    /// computed here in double precision, on both the grouped and the per-head paths, with one
    /// right-padded sequence.
    @Test(arguments: [true, false])
    func attentionAddsTheBiasBeforeTheSoftmax(grouped: Bool) {
        let b = 2, t = 4, heads = 2, d = 3, c = heads * d
        let lengths = [4, 3]
        func values(_ n: Int, _ seed: Int) -> [Float] { (0 ..< n).map { Float(sin(Double($0 * 7 + seed))) } }
        let q = values(b * t * c, 1), k = values(b * t * c, 2), v = values(b * t * c, 3)
        let bias = values(heads * t * t, 4).map { 2 * $0 }
        var out = [Float](repeating: 0, count: b * t * c), scratch = [Float](repeating: 0, count: t * t)
        var options = KernelOptions.standard
        options.groupedHeads = grouped
        attentionForward(&out, probs: nil, q: q, k: k, v: v, lengths: lengths, b: b, t: t, past: 0, s: t,
                         heads: heads, kvHeads: heads, d: d, qStride: c, kvStride: c, causal: false,
                         scratch: &scratch, scoreBias: bias, options: options)
        for bi in 0 ..< b {
            for h in 0 ..< heads {
                for i in 0 ..< lengths[bi] {
                    let keys = 0 ..< lengths[bi]
                    let s = keys.map { j -> Double in
                        var dot = 0.0
                        for e in 0 ..< d { dot += Double(q[(bi * t + i) * c + h * d + e]) * Double(k[(bi * t + j) * c + h * d + e]) }
                        return dot / Double(d).squareRoot() + Double(bias[(h * t + i) * t + j])
                    }
                    let m = s.max()!, w = s.map { exp($0 - m) }, z = w.reduce(0, +)
                    for e in 0 ..< d {
                        let want = keys.reduce(0.0) { $0 + w[$1] / z * Double(v[(bi * t + $1) * c + h * d + e]) }
                        let got = Double(out[(bi * t + i) * c + h * d + e])
                        #expect(abs(got - want) < 1e-5, "b \(bi) h \(h) i \(i) e \(e): \(got) vs \(want)")
                    }
                }
            }
        }
    }
}
