import CKernels
import Foundation
import Testing
import GreenPrune

/// The fused blockwise attention kernel (`KernelOptions.fusedAttention`, `gpk_flash_attention`)
/// against the textbook formula in double precision and against the blockwise sgemm path it
/// replaces; each instruction-set version on its own; SmolLM2 over a long wikitext window.
@Suite struct FusedAttentionTests {
    typealias Case = BlockwiseAttentionTests.Case
    /// Every window blockwise, fused.
    static let fused = KernelOptions(blockwiseFromTime: 1, fusedAttention: true)
    /// Every window blockwise, on sgemm calls (the reference path).
    static let sgemm = KernelOptions(blockwiseFromTime: 1, fusedAttention: false)

    /// T not a multiple of the query block (300, 700) nor of the key block, exactly one query
    /// block (128), T = 1 after a cached past and without one, a short window behind several key
    /// blocks (past 600), GQA 3:1 (SmolLM2) and 1:1, right padding, bidirectional; head sizes 64
    /// (SmolLM2), 32 and 16.
    @Test(arguments: [
        (Case(t: 300, past: 0, length: 211, heads: 9, kvHeads: 3), 64),
        (Case(t: 700, past: 0, length: 650, heads: 3, kvHeads: 1), 32),
        (Case(t: 128, past: 0, length: 128, heads: 2, kvHeads: 2), 64),
        (Case(t: 1, past: 90, length: 1, heads: 9, kvHeads: 3), 64),
        (Case(t: 1, past: 0, length: 1, heads: 4, kvHeads: 4), 16),
        (Case(t: 37, past: 600, length: 20, heads: 9, kvHeads: 3), 64),
        (Case(t: 300, past: 0, length: 170, heads: 4, kvHeads: 4, causal: false), 16),
        (Case(t: 515, past: 3, length: 515, heads: 6, kvHeads: 2, causal: false), 48),
    ])
    func matchesNaiveAndSgemmPath(_ c: Case, _ d: Int) {
        let b = 2, s = c.past + c.t + 2
        let q = BlockwiseAttentionTests.random(b * c.t * c.heads * d, seed: 3)
        let k = BlockwiseAttentionTests.random(b * s * c.kvHeads * d, seed: 5)
        let v = BlockwiseAttentionTests.random(b * s * c.kvHeads * d, seed: 7)
        let lengths = [c.t, c.length]
        let expected = BlockwiseAttentionTests.naive(q, k, v, c, b: b, s: s, d: d, lengths: lengths)
        let fused = BlockwiseAttentionTests.run(Self.fused, q, k, v, c, b: b, s: s, d: d, lengths: lengths)
        let reference = BlockwiseAttentionTests.run(Self.sgemm, q, k, v, c, b: b, s: s, d: d, lengths: lengths)
        let width = c.heads * d
        #expect(BlockwiseAttentionTests.worst(fused, expected, t: c.t, width: width, lengths: lengths) < 1e-5, "\(c) D \(d)")
        #expect(BlockwiseAttentionTests.worst(fused, reference.map(Double.init), t: c.t, width: width, lengths: lengths) < 1e-5,
                "\(c) D \(d)")
        // Padded query rows get finite outputs too.
        #expect(fused.allSatisfy { $0.isFinite })
        // Different summation orders: an identical result would mean the fused kernel did not run.
        #expect(c.t * c.heads <= 4 || fused != reference, "\(c) D \(d)")
    }

    /// Shared-prefix segments (a packed row: prefix, choice runs, padding; and a row whose segments
    /// interleave) over several query and key blocks equal the sgemm path.
    @Test func segmentsMatchSgemmPath() {
        let b = 2, t = 560, d = 64, c = Case(t: t, past: 0, length: t, heads: 9, kvHeads: 3)
        let q = BlockwiseAttentionTests.random(b * t * c.heads * d, seed: 13)
        let k = BlockwiseAttentionTests.random(b * t * c.kvHeads * d, seed: 17)
        let v = BlockwiseAttentionTests.random(b * t * c.kvHeads * d, seed: 19)
        var segs = [Int32](repeating: 0, count: b * t)
        for j in 300 ..< 330 { segs[j] = 1 }
        for j in 330 ..< 480 { segs[j] = 2 }
        for j in 480 ..< 540 { segs[j] = 3 }
        for j in 20 ..< 550 { segs[t + j] = Int32(1 + (j / 7) % 3) }
        let lengths = [540, 550]
        let fused = BlockwiseAttentionTests.run(Self.fused, q, k, v, c, b: b, s: t, d: d, lengths: lengths, segments: segs)
        let reference = BlockwiseAttentionTests.run(Self.sgemm, q, k, v, c, b: b, s: t, d: d, lengths: lengths, segments: segs)
        #expect(BlockwiseAttentionTests.worst(fused, reference.map(Double.init), t: t, width: c.heads * d, lengths: lengths) < 1e-5)
        #expect(fused != reference)
    }

    /// Head sizes that are not a multiple of 16 and a score bias take the sgemm path: the option
    /// changes nothing there, bit for bit.
    @Test func uncoveredShapesFallBackToSgemmPath() {
        let c = Case(t: 290, past: 0, length: 290, heads: 2, kvHeads: 2, causal: false)
        for (d, withBias) in [(8, false), (24, false), (16, true)] {
            let q = BlockwiseAttentionTests.random(c.t * c.heads * d, seed: 23)
            let k = BlockwiseAttentionTests.random(c.t * c.kvHeads * d, seed: 29)
            let v = BlockwiseAttentionTests.random(c.t * c.kvHeads * d, seed: 31)
            let bias = withBias ? BlockwiseAttentionTests.random(c.heads * c.t * c.t, seed: 37) : nil
            let fused = BlockwiseAttentionTests.run(Self.fused, q, k, v, c, b: 1, s: c.t, d: d, lengths: [c.t], bias: bias)
            let reference = BlockwiseAttentionTests.run(Self.sgemm, q, k, v, c, b: 1, s: c.t, d: d, lengths: [c.t], bias: bias)
            #expect(fused == reference, "D \(d) bias \(withBias)")
        }
    }

    /// Each instruction-set version of the kernel (AVX-512, AVX2, baseline: the ones this CPU
    /// runs) on one task against the formula: 3 heads over one KV head, 200 queries after 70
    /// cached keys, 150 of them real, D = 64, key blocks of 64 and 128.
    @Test(arguments: [Int(GPK_ATTN_BASELINE.rawValue), Int(GPK_ATTN_AVX2.rawValue), Int(GPK_ATTN_AVX512.rawValue)])
    func everyInstructionSetMatchesNaive(_ isa: Int) {
        let c = Case(t: 200, past: 70, length: 150, heads: 3, kvHeads: 1)
        let d = 64, s = c.past + c.t
        let q = BlockwiseAttentionTests.random(c.t * c.heads * d, seed: 53)
        let k = BlockwiseAttentionTests.random(s * d, seed: 59)
        let v = BlockwiseAttentionTests.random(s * d, seed: 61)
        let expected = BlockwiseAttentionTests.naive(q, k, v, c, b: 1, s: s, d: d, lengths: [c.length])
        var results: [[Float]] = []
        for keyBlock in [64, 128] {
            var out = [Float](repeating: .nan, count: q.count)
            var work = [Float](repeating: .nan, count: gpk_flash_attention_work(3, c.t, d, keyBlock))
            let used = gpk_flash_attention(&out, q, c.heads * d, 3, c.t, d, k, v, d, c.past + c.length, c.past, 1,
                                           nil, nil, 1 / Float(d).squareRoot(), keyBlock, &work, Int32(isa))
            #expect(used <= Int32(isa) && used >= Int32(GPK_ATTN_BASELINE.rawValue))
            #expect(BlockwiseAttentionTests.worst(out, expected, t: c.t, width: c.heads * d, lengths: [c.length]) < 1e-5,
                    "isa \(used) key block \(keyBlock)")
            results.append(out)
        }
        #expect(results[0] != results[1])
    }

    /// SmolLM2 over a 2048-token window of wikitext (one rolling window, every token scored): the
    /// fused kernel's log-likelihood equals the sgemm path's within 1e-4 relative, and each token's
    /// log-probability within 2e-3.
    @Test func smolLM2LongWindowMatchesSgemmPath() throws {
        let dir = try ModelsFixtures.model(ModelsFixtures.smollm2)
        let model = try ModelLoader.loadLlama(dir)
        let tokenizer = try TokenizerLoader.load(directory: dir)
        let raw = try DataFiles.text(Paths.dataDirectory(nil).appendingPathComponent("wikitext2/wiki.test.raw"))
        let ids = Array(try tokenizer.encode(String(raw.prefix(40_000)), addSpecialTokens: false).prefix(2049))
        try #require(ids.count == 2049)
        let request = ScoreRequest(tokens: ids, scoreFrom: 1)
        model.maxBatchTokens = 2048
        model.kernelOptions = Self.fused
        let fused = try model.score([request])[0].logprobs
        model.kernelOptions = Self.sgemm
        let reference = try model.score([request])[0].logprobs
        let a = fused.reduce(0.0) { $0 + Double($1) }, b = reference.reduce(0.0) { $0 + Double($1) }
        #expect(abs(a - b) <= 1e-4 * abs(b), "log-likelihood \(a) vs \(b)")
        #expect(ModelsFixtures.maxAbsDiff(fused, reference) < 2e-3)
        #expect(fused != reference)
    }
}
