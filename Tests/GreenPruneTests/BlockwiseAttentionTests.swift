import Foundation
import Testing
import GreenPrune

/// The blockwise (online-softmax) attention path against the textbook formula in double
/// precision, against the per-head path that forms whole score rows, and on SmolLM2 over a long
/// window of wikitext against the same model on the per-head path.
@Suite struct BlockwiseAttentionTests {
    /// Every window takes the blockwise path, on sgemm calls (FusedAttentionTests covers the fused kernel).
    static let blockwise = KernelOptions(blockwiseFromTime: 1, fusedAttention: false)
    /// No window takes it, nor the grouped-query path: whole score rows per head.
    static let perHead = KernelOptions(groupedHeads: false, blockwiseFromTime: .max)

    struct Case: Sendable, CustomStringConvertible {
        var t: Int, past: Int, length: Int, heads: Int, kvHeads: Int, causal: Bool = true
        var description: String { "T \(t) past \(past) length \(length) H \(heads)/\(kvHeads)\(causal ? "" : " bidirectional")" }
    }

    static func random(_ n: Int, seed: UInt32) -> [Float] {
        var s = seed
        return (0 ..< n).map { _ in s = s &* 1664525 &+ 1013904223; return Float(Int(s >> 9) % 2001 - 1000) / 400 }
    }

    /// Random queries (`queries` floats) and keys and values (`keys` floats each).
    static func inputs(queries: Int, keys: Int, seeds: (UInt32, UInt32, UInt32)) -> ([Float], [Float], [Float]) {
        (random(queries, seed: seeds.0), random(keys, seed: seeds.1), random(keys, seed: seeds.2))
    }

    /// softmax(q·kᵀ/√d + bias) v over the visible keys, in double precision.
    static func naive(_ q: [Float], _ k: [Float], _ v: [Float], _ c: Case, b: Int, s: Int, d: Int,
                      lengths: [Int], bias: [Float]? = nil) -> [Double] {
        let (t, past, h, g) = (c.t, c.past, c.heads, c.kvHeads)
        let l = past + t
        var out = [Double](repeating: 0, count: b * t * h * d)
        for bi in 0 ..< b {
            for i in 0 ..< lengths[bi] {
                for hh in 0 ..< h {
                    let gg = hh / (h / g)
                    let keys = c.causal ? past + i + 1 : past + lengths[bi]
                    var sc = [Double](repeating: 0, count: keys)
                    for j in 0 ..< keys {
                        var dot = 0.0
                        for x in 0 ..< d { dot += Double(q[(bi * t + i) * h * d + hh * d + x]) * Double(k[(bi * s + j) * g * d + gg * d + x]) }
                        sc[j] = dot / Double(d).squareRoot() + Double(bias?[(hh * t + i) * l + j] ?? 0)
                    }
                    let m = sc.max()!
                    let e = sc.map { Foundation.exp($0 - m) }
                    let z = e.reduce(0, +)
                    for x in 0 ..< d {
                        var acc = 0.0
                        for j in 0 ..< keys { acc += e[j] / z * Double(v[(bi * s + j) * g * d + gg * d + x]) }
                        out[(bi * t + i) * h * d + hh * d + x] = acc
                    }
                }
            }
        }
        return out
    }

    static func run(_ options: KernelOptions, _ q: [Float], _ k: [Float], _ v: [Float], _ c: Case, b: Int, s: Int,
                    d: Int, lengths: [Int], segments: [Int32]? = nil, bias: [Float]? = nil, bf16: Bool = false) -> [Float] {
        var out = [Float](repeating: .nan, count: q.count)
        var scratch = [Float](repeating: 0, count: c.t * (c.past + c.t))
        let run = { (seg: UnsafePointer<Int32>?, sb: UnsafePointer<Float>?) in
            attentionForward(&out, probs: nil, q: q, k: k, v: v, lengths: lengths, b: b, t: c.t, past: c.past, s: s,
                             heads: c.heads, kvHeads: c.kvHeads, d: d, qStride: c.heads * d, kvStride: c.kvHeads * d,
                             causal: c.causal, scratch: &scratch, segments: seg, scoreBias: sb, options: options, bf16: bf16)
        }
        let withBias = { (seg: UnsafePointer<Int32>?) in
            if let bias { bias.withUnsafeBufferPointer { run(seg, $0.baseAddress) } } else { run(seg, nil) }
        }
        if let segments { segments.withUnsafeBufferPointer { withBias($0.baseAddress) } } else { withBias(nil) }
        return out
    }

    /// Largest |a − b| over the real (unpadded) query rows.
    static func worst(_ a: [Float], _ b: [Double], t: Int, width: Int, lengths: [Int]) -> Double {
        var w = 0.0
        for (bi, n) in lengths.enumerated() { for i in 0 ..< n { for x in 0 ..< width {
            let idx = (bi * t + i) * width + x
            w = max(w, abs(Double(a[idx]) - b[idx]))
        } } }
        return w
    }

    /// Random inputs: T not a multiple of either block (300, 700), exactly one query block (128),
    /// T = 1 with a cached past, several key blocks behind a short window (past 600), GQA 9/3
    /// (SmolLM2), 4/2, 2/1 and multi-head 4/4, right padding, and a bidirectional window.
    @Test(arguments: [
        Case(t: 300, past: 0, length: 211, heads: 9, kvHeads: 3),
        Case(t: 700, past: 0, length: 650, heads: 4, kvHeads: 2),
        Case(t: 128, past: 0, length: 128, heads: 2, kvHeads: 1),
        Case(t: 1, past: 90, length: 1, heads: 9, kvHeads: 3),
        Case(t: 1, past: 0, length: 1, heads: 4, kvHeads: 4),
        Case(t: 37, past: 600, length: 20, heads: 9, kvHeads: 3),
        Case(t: 300, past: 0, length: 170, heads: 4, kvHeads: 4, causal: false),
    ])
    func matchesNaiveAndPerHead(_ c: Case) {
        let r = Self.compare(c, d: 16, Self.blockwise, Self.perHead)
        #expect(r.fromNaive < 1e-5, "\(c)")
        #expect(r.fromOther < 1e-5, "\(c)")
        // The two paths take different routes: an identical result would mean one was not run.
        #expect(c.t * c.heads <= 4 || r.out != r.other)
    }

    /// Case `c` over two sequences (lengths T and c.length, head size `d`, random inputs) under
    /// `options` and under `other`: the first's largest error against the formula and largest
    /// difference from the second over the real rows, and both outputs.
    static func compare(_ c: Case, d: Int, _ options: KernelOptions, _ other: KernelOptions, bf16: Bool = false)
        -> (fromNaive: Double, fromOther: Double, out: [Float], other: [Float]) {
        let b = 2, s = c.past + c.t + 2
        let (q, k, v) = inputs(queries: b * c.t * c.heads * d, keys: b * s * c.kvHeads * d, seeds: (3, 5, 7))
        let lengths = [c.t, c.length]
        let expected = naive(q, k, v, c, b: b, s: s, d: d, lengths: lengths)
        let out = run(options, q, k, v, c, b: b, s: s, d: d, lengths: lengths, bf16: bf16)
        let second = run(other, q, k, v, c, b: b, s: s, d: d, lengths: lengths)
        let width = c.heads * d
        return (worst(out, expected, t: c.t, width: width, lengths: lengths),
                worst(out, second.map(Double.init), t: c.t, width: width, lengths: lengths), out, second)
    }

    /// Shared-prefix segments (a packed row: prefix, choice runs, padding; and a row whose
    /// segments interleave) over several query and key blocks equal the per-head path.
    @Test func segmentsMatchPerHead() {
        #expect(Self.packedRows(d: 16, Self.blockwise, Self.perHead).difference < 1e-5)
    }

    /// Two packed rows of 560 tokens, 9 query heads over 3 key/value heads of size `d`: row 0 a
    /// prefix, choice runs 1, 2, 3 and padding; row 1 segments that interleave (1, 2, 3, 1, …,
    /// masked key by key). Returns the largest difference between `options` and `other` over the
    /// real rows, and both outputs.
    static func packedRows(d: Int, _ options: KernelOptions, _ other: KernelOptions, bf16: Bool = false)
        -> (difference: Double, out: [Float], other: [Float]) {
        let b = 2, t = 560, c = Case(t: t, past: 0, length: t, heads: 9, kvHeads: 3)
        let (q, k, v) = inputs(queries: b * t * c.heads * d, keys: b * t * c.kvHeads * d, seeds: (13, 17, 19))
        var segs = [Int32](repeating: 0, count: b * t)
        for j in 300 ..< 330 { segs[j] = 1 }
        for j in 330 ..< 480 { segs[j] = 2 }
        for j in 480 ..< 540 { segs[j] = 3 }
        for j in 20 ..< 550 { segs[t + j] = Int32(1 + (j / 7) % 3) }
        let lengths = [540, 550]
        let out = run(options, q, k, v, c, b: b, s: t, d: d, lengths: lengths, segments: segs, bf16: bf16)
        let second = run(other, q, k, v, c, b: b, s: t, d: d, lengths: lengths, segments: segs)
        return (worst(out, second.map(Double.init), t: t, width: c.heads * d, lengths: lengths), out, second)
    }

    /// An additive score bias (MPNet's relative positions), bidirectional, equals the formula.
    @Test func scoreBiasMatchesNaive() {
        let b = 1, t = 290, d = 8, c = Case(t: t, past: 0, length: t, heads: 2, kvHeads: 2, causal: false)
        let (q, k, v) = Self.inputs(queries: b * t * c.heads * d, keys: b * t * c.kvHeads * d, seeds: (23, 29, 31))
        let bias = Self.random(c.heads * t * t, seed: 37)
        let expected = Self.naive(q, k, v, c, b: b, s: t, d: d, lengths: [t], bias: bias)
        let block = Self.run(Self.blockwise, q, k, v, c, b: b, s: t, d: d, lengths: [t], bias: bias)
        #expect(Self.worst(block, expected, t: t, width: c.heads * d, lengths: [t]) < 1e-5)
    }

    /// The decoder writes the output over its queries: in place equals a separate output bit for bit.
    @Test func inPlaceOverQueriesEqualsSeparateOutput() {
        let b = 2, t = 333, d = 16, c = Case(t: t, past: 5, length: 300, heads: 9, kvHeads: 3)
        let s = c.past + t
        let (q, k, v) = Self.inputs(queries: b * t * c.heads * d, keys: b * s * c.kvHeads * d, seeds: (41, 43, 47))
        let lengths = [t, c.length]
        let separate = Self.run(Self.blockwise, q, k, v, c, b: b, s: s, d: d, lengths: lengths)
        var inPlace = q
        var scratch: [Float] = [0]
        inPlace.withUnsafeMutableBufferPointer { p in
            attentionForward(p.baseAddress!, probs: nil, q: p.baseAddress!, k: k, v: v, lengths: lengths, b: b, t: t,
                             past: c.past, s: s, heads: c.heads, kvHeads: c.kvHeads, d: d, qStride: c.heads * d,
                             kvStride: c.kvHeads * d, causal: true, scratch: &scratch, options: Self.blockwise)
        }
        #expect(inPlace == separate)
    }

    /// Long windows need no T×L scratch; the per-head path and kept probabilities still do.
    @Test func scratchFollowsThePath() {
        let standard = KernelOptions()
        #expect(attentionScratchCount(t: 4096, past: 0, keepsProbabilities: false, options: standard) == 0)
        #expect(attentionScratchCount(t: 4096, past: 0, keepsProbabilities: true, options: standard) == 4096 * 4096)
        #expect(attentionScratchCount(t: 300, past: 10, keepsProbabilities: false, options: Self.perHead) == 300 * 310)
    }

    /// SmolLM2 over a 2048-token window of wikitext (one rolling window, every token scored):
    /// the blockwise path's log-likelihood equals the per-head path's within 1e-4 relative, and
    /// each token's log-probability within 2e-3.
    @Test func smolLM2LongWindowMatchesPerHeadPath() throws {
        let (block, rows) = try Self.smolLM2Window(Self.blockwise, Self.perHead)
        let a = block.reduce(0.0) { $0 + Double($1) }, b = rows.reduce(0.0) { $0 + Double($1) }
        #expect(abs(a - b) <= 1e-4 * abs(b), "log-likelihood \(a) vs \(b)")
        #expect(ModelsFixtures.maxAbsDiff(block, rows) < 2e-3)
        #expect(block != rows)
    }

    /// SmolLM2's log-probabilities of the first 2048 wikitext test tokens (one window, every token
    /// scored) under `first` and then `second`, on the float32 model or on `model`; `once`: under
    /// `first` only (the second result empty).
    static func smolLM2Window(_ first: KernelOptions, _ second: KernelOptions, model given: LlamaModel? = nil,
                              once: Bool = false) throws -> ([Float], [Float]) {
        let dir = try ModelsFixtures.model(ModelsFixtures.smollm2)
        let model = try given ?? ModelLoader.loadLlama(dir)
        let tokenizer = try TokenizerLoader.load(directory: dir)
        let raw = try DataFiles.text(Paths.dataDirectory(nil).appendingPathComponent("wikitext2/wiki.test.raw"))
        let ids = Array(try tokenizer.encode(String(raw.prefix(40_000)), addSpecialTokens: false).prefix(2049))
        try #require(ids.count == 2049)
        let request = ScoreRequest(tokens: ids, scoreFrom: 1)
        model.maxBatchTokens = 2048
        model.kernelOptions = first
        let a = try model.score([request])[0].logprobs
        if once { return (a, []) }
        model.kernelOptions = second
        return (a, try model.score([request])[0].logprobs)
    }
}
