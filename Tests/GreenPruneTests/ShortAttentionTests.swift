import Foundation
import Testing
import GreenPrune

/// The short-window encoder attention (`shortAttentionForward`, direct loops per (sequence, head))
/// against the textbook formula in double precision: padded sequences, grouped key/value heads,
/// an additive score bias, the output written over the queries, and the windows it refuses.
@Suite struct ShortAttentionTests {
    static func random(_ n: Int, seed: UInt32) -> [Float] {
        var s = seed
        return (0 ..< n).map { _ in s = s &* 1664525 &+ 1013904223; return Float(Int(s >> 9) % 2001 - 1000) / 400 }
    }

    /// softmax(q·kᵀ/√d + bias) v over keys 0..<lengths[b], in double precision, for the real
    /// query rows (q, out (B, T, H·D); k, v (B, T, G·D); bias (H, T, T)).
    static func naive(_ q: [Float], _ k: [Float], _ v: [Float], b: Int, t: Int, heads h: Int, kvHeads g: Int, d: Int,
                      lengths: [Int], bias: [Float]?) -> [Double] {
        var out = [Double](repeating: 0, count: b * t * h * d)
        for bi in 0 ..< b { for i in 0 ..< lengths[bi] { for hh in 0 ..< h {
            let gg = hh / (h / g), keys = lengths[bi]
            var sc = [Double](repeating: 0, count: keys)
            for j in 0 ..< keys {
                var dot = 0.0
                for x in 0 ..< d { dot += Double(q[(bi * t + i) * h * d + hh * d + x]) * Double(k[(bi * t + j) * g * d + gg * d + x]) }
                sc[j] = dot / Double(d).squareRoot() + Double(bias?[(hh * t + i) * t + j] ?? 0)
            }
            let m = sc.max()!, e = sc.map { Foundation.exp($0 - m) }, z = e.reduce(0, +)
            for x in 0 ..< d {
                out[(bi * t + i) * h * d + hh * d + x] = (0 ..< keys).reduce(0.0) { $0 + e[$1] / z * Double(v[(bi * t + $1) * g * d + gg * d + x]) }
            }
        } } }
        return out
    }

    /// Largest |a − b| over the real (unpadded) query rows.
    static func worst(_ a: [Float], _ b: [Double], t: Int, width: Int, lengths: [Int]) -> Double {
        var w = 0.0
        for (bi, n) in lengths.enumerated() { for i in 0 ..< n { for x in 0 ..< width {
            w = max(w, abs(Double(a[(bi * t + i) * width + x]) - b[(bi * t + i) * width + x]))
        } } }
        return w
    }

    static let cases: [(t: Int, d: Int, heads: Int, kvHeads: Int, bias: Bool)] = [
        (1, 8, 2, 2, false), (7, 32, 4, 4, true), (16, 64, 4, 2, false), (33, 24, 3, 3, true), (64, 64, 2, 1, true),
    ]

    @Test(arguments: cases.indices)
    func matchesTheFormula(_ index: Int) {
        let (t, d, heads, kvHeads, withBias) = Self.cases[index]
        let c = "T \(t) D \(d) H \(heads)/\(kvHeads)\(withBias ? " bias" : "")"
        let b = 3, lengths = [t, max(1, t / 2), max(1, t - 1)]
        let q = Self.random(b * t * heads * d, seed: 11 + UInt32(index))
        let k = Self.random(b * t * kvHeads * d, seed: 23 + UInt32(index))
        let v = Self.random(b * t * kvHeads * d, seed: 37 + UInt32(index))
        let bias = withBias ? Self.random(heads * t * t, seed: 5) : nil
        let want = Self.naive(q, k, v, b: b, t: t, heads: heads, kvHeads: kvHeads, d: d, lengths: lengths, bias: bias)
        #expect(shortAttentionTakes(t: t, d: d))
        for workers in [1, 2] {
            var out = [Float](repeating: .nan, count: q.count)
            let run = { (sb: UnsafePointer<Float>?) in
                shortAttentionForward(&out, q: q, k: k, v: v, lengths: lengths, b: b, t: t, heads: heads, kvHeads: kvHeads,
                                      d: d, qStride: heads * d, kvStride: kvHeads * d, scoreBias: sb, workers: workers)
            }
            if let bias { bias.withUnsafeBufferPointer { run($0.baseAddress) } } else { run(nil) }
            let err = Self.worst(out, want, t: t, width: heads * d, lengths: lengths)
            #expect(err < 1e-5, "\(c) workers \(workers): largest error \(err)")
            // Padding query rows attend to the valid keys too: finite, never left unwritten.
            #expect(out.allSatisfy { $0.isFinite })
        }
        // Through attentionForward (the encoder's call), the output written over the queries.
        var inPlace = q
        var scratch = [Float](repeating: 0, count: t * t)
        inPlace.withUnsafeMutableBufferPointer { p in
            let base = p.baseAddress!
            let call = { (sb: UnsafePointer<Float>?) in
                attentionForward(base, probs: nil, q: base, k: k, v: v, lengths: lengths, b: b, t: t,
                                 past: 0, s: t, heads: heads, kvHeads: kvHeads, d: d, qStride: heads * d,
                                 kvStride: kvHeads * d, causal: false, scratch: &scratch, scoreBias: sb)
            }
            if let bias { bias.withUnsafeBufferPointer { call($0.baseAddress) } } else { call(nil) }
        }
        let err = Self.worst(inPlace, want, t: t, width: heads * d, lengths: lengths)
        #expect(err < 1e-5, "\(c) in place: largest error \(err)")
    }

    @Test func refusesWhatItDoesNotTake() {
        #expect(!shortAttentionTakes(t: shortAttentionMaxTime + 1, d: 64))
        #expect(!shortAttentionTakes(t: 0, d: 64))
        #expect(!shortAttentionTakes(t: 16, d: 12))
        #expect(!shortAttentionTakes(t: 16, d: 264))
        #expect(shortAttentionTakes(t: shortAttentionMaxTime, d: 256))
    }
}
