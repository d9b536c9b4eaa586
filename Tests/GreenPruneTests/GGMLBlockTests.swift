import Foundation
import Testing
import GreenPrune

/// The ggml block kernels against blocks worked by hand from the layouts in ggml-common.h, the
/// quantizers bit for bit against ggml's `quantize_row_*_ref` arithmetic worked by hand, and
/// a requantization of the SmolLM2 GGUF's Q4_1 tensors.
@Suite struct GGMLBlockTests {
    private func dequant(_ type: GGMLType, _ bytes: [UInt8], count: Int) throws -> [Float] {
        try bytes.withUnsafeBytes { try ggmlDequantize(type, $0, count: count) }
    }

    // MARK: Dequantization, hand-worked blocks (all expected values are exact in float32)

    @Test func q8_0() throws {
        // d = 0.5 (fp16 0x3800), x = d · qs.
        var b = [UInt8](repeating: 0, count: 34)
        b[0] = 0x00; b[1] = 0x38
        b[2] = 1; b[3] = UInt8(bitPattern: -3); b[33] = 127; b[32] = UInt8(bitPattern: -128)
        let y = try dequant(.q8_0, b, count: 32)
        #expect(y[0] == 0.5 && y[1] == -1.5 && y[31] == 63.5 && y[30] == -64 && y[2] == 0)
    }

    @Test func q4_0() throws {
        // d = 2 (0x4000); qs[0] = 0x9F: weight 0 = (15 − 8)·2 = 14, weight 16 = (9 − 8)·2 = 2;
        // the other bytes are 0: (0 − 8)·2 = −16.
        var b = [UInt8](repeating: 0, count: 18)
        b[0] = 0x00; b[1] = 0x40; b[2] = 0x9F
        let y = try dequant(.q4_0, b, count: 32)
        #expect(y[0] == 14 && y[16] == 2 && y[1] == -16 && y[31] == -16)
    }

    @Test func q4_1() throws {
        // d = 0.25 (0x3400), m = −1 (0xBC00); qs[0] = 0x3A: weight 0 = 10·0.25 − 1 = 1.5,
        // weight 16 = 3·0.25 − 1 = −0.25; qs[15] = 0xF0: weight 15 = −1, weight 31 = 2.75.
        var b = [UInt8](repeating: 0, count: 20)
        b[0] = 0x00; b[1] = 0x34; b[2] = 0x00; b[3] = 0xBC; b[4] = 0x3A; b[19] = 0xF0
        let y = try dequant(.q4_1, b, count: 32)
        #expect(y[0] == 1.5 && y[16] == -0.25 && y[15] == -1 && y[31] == 2.75 && y[1] == -1)
    }

    @Test func q4_K() throws {
        // d = 1 (0x3C00), dmin = 0.5 (0x3800). scales[0] = 2 | 1<<6, scales[4] = 4 | 2<<6,
        // scales[8] = 0x53. Sub-block 0: scale 2, min 4. Sub-block 4: scale = (0x53 & 15) | (1 << 4)
        // = 19, min = (0x53 >> 4) | (2 << 4) = 37. Sub-blocks 1 and 5 have scale = min = 0.
        var b = [UInt8](repeating: 0, count: 144)
        b[0] = 0x00; b[1] = 0x3C; b[2] = 0x00; b[3] = 0x38
        b[4 + 0] = 2 | (1 << 6); b[4 + 4] = 4 | (2 << 6); b[4 + 8] = 0x53
        b[16 + 0] = 0x07   // weight 0 (sub-block 0, low nibble) = 1·2·7 − 0.5·4 = 12
        b[16 + 64] = 0x0A  // weight 128 (sub-block 4) = 1·19·10 − 0.5·37 = 171.5
        let y = try dequant(.q4_K, b, count: 256)
        #expect(y[0] == 12)
        #expect(y[1] == -2)        // q = 0: −dmin·4
        #expect(y[32] == 0)        // sub-block 1, scale 0, min 0
        #expect(y[128] == 171.5)
        #expect(y[129] == -18.5)   // q = 0: −0.5·37
        #expect(y[160] == 0)       // sub-block 5
    }

    @Test func q6_K() throws {
        // d = 0.5 at byte 208; scales (int8, bytes 192…) sc[0] = 2, sc[2] = −1, sc[4] = 3,
        // sc[6] = 4, sc[8] = −5. ql[0] = 0x3A, ql[32] = 0x5C, qh[0] = 0xE4 (2-bit fields 0,1,2,3).
        var b = [UInt8](repeating: 0, count: 210)
        b[208] = 0x00; b[209] = 0x38
        b[192 + 0] = 2; b[192 + 2] = UInt8(bitPattern: -1); b[192 + 4] = 3; b[192 + 6] = 4
        b[192 + 8] = UInt8(bitPattern: -5)
        b[0] = 0x3A; b[32] = 0x5C; b[128] = 0xE4
        b[64] = 0x01; b[128 + 32] = 0x02  // second half: weight 128, q = 1 | 2<<4 = 33
        let y = try dequant(.q6_K, b, count: 256)
        #expect(y[0] == -22)    // q = 0xA | 0<<4 = 10 → 0.5·2·(10 − 32)
        #expect(y[32] == 2)     // q = 0xC | 1<<4 = 28 → 0.5·(−1)·(28 − 32)
        #expect(y[64] == 4.5)   // q = 0x3 | 2<<4 = 35 → 0.5·3·3
        #expect(y[96] == 42)    // q = 0x5 | 3<<4 = 53 → 0.5·4·21
        #expect(y[1] == -32)    // q = 0 → 0.5·2·(−32)
        #expect(y[16] == 0)     // sc[1] = 0
        #expect(y[128] == -2.5) // 0.5·(−5)·(33 − 32)
    }

    @Test func f16AndBF16() throws {
        // F16 bit patterns: 1, −2, 65504 (largest finite), 2^-24 (smallest subnormal).
        let h: [UInt16] = [0x3C00, 0xC000, 0x7BFF, 0x0001]
        let hb = h.flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] }
        #expect(try dequant(.f16, hb, count: 4) == [1, -2, 65504, Float(1) / 16_777_216])
        // BF16 = top half of a float32: 1, −3, 3.140625.
        let bf: [UInt16] = [0x3F80, 0xC040, 0x4049]
        let bb = bf.flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] }
        #expect(try dequant(.bf16, bb, count: 3) == [1, -3, 3.140625])
    }

    @Test func shortBuffersAndPartialBlocksThrow() {
        #expect(throws: GGMLBlockError.self) { try dequant(.q4_1, [UInt8](repeating: 0, count: 19), count: 32) }
        #expect(throws: GGMLBlockError.self) { try dequant(.q8_0, [UInt8](repeating: 0, count: 34), count: 16) }
        #expect(throws: GGMLBlockError.self) { try dequant(.q5_0, [UInt8](repeating: 0, count: 22), count: 32) }
        #expect(throws: GGMLBlockError.self) { try ggmlQuantize(.q4_K, [Float](repeating: 0, count: 256)) }
    }

    // MARK: Quantization, bit-exact with ggml's reference arithmetic

    @Test func quantizeQ8_0() throws {
        // amax = 31.75 → d = 31.75/127 = 0.25 (fp16 0x3400), 1/d = 4; q = roundf(4x), halves away
        // from zero: −0.625 → −2.5 → −3, 0.375 → 1.5 → 2, 0.125 → 0.5 → 1, −0.125 → −1.
        var x = [Float](repeating: 0, count: 32)
        x[0] = 31.75; x[1] = -0.625; x[2] = 0.375; x[3] = 0.125; x[4] = -0.125; x[5] = 10
        var expected = [UInt8](repeating: 0, count: 34)
        expected[0] = 0x00; expected[1] = 0x34
        expected[2] = 127; expected[3] = UInt8(bitPattern: -3); expected[4] = 2; expected[5] = 1
        expected[6] = UInt8(bitPattern: -1); expected[7] = 40
        #expect(try ggmlQuantize(.q8_0, x) == expected)
        // All zeros: d = 0, id = 0, q = 0.
        #expect(try ggmlQuantize(.q8_0, [Float](repeating: 0, count: 32)) == [UInt8](repeating: 0, count: 34))
    }

    @Test func quantizeQ4_0() throws {
        // Block 1: the value of largest magnitude is −4 → d = −4/−8 = 0.5 (0x3800), 1/d = 2,
        // q = min(15, trunc(2x + 8.5)): −4 → 0, 3.5 → 15, 0.26 → 9, 0.24 → 8, −0.25 → 8, 0 → 8.
        var x = [Float](repeating: 0, count: 64)
        x[0] = -4; x[16] = 3.5; x[1] = 0.26; x[17] = 0.24; x[2] = -0.25
        // Block 2: 8 and −8 tie for largest magnitude; the first (8) wins → d = −1, 1/d = −1:
        // 8 → trunc(0.5) = 0, −8 → trunc(16.5) = 16 → clamped to 15, −7 → 15, 3.2 → trunc(5.3) = 5.
        x[32] = 8; x[48] = -8; x[33] = -7; x[49] = 3.2
        var expected = [UInt8](repeating: 0x88, count: 36)
        expected[0] = 0x00; expected[1] = 0x38
        expected[2] = 0xF0; expected[3] = 0x89
        expected[18] = 0x00; expected[19] = 0xBC
        expected[20] = 0xF0; expected[21] = 0x5F
        #expect(try ggmlQuantize(.q4_0, x) == expected)
    }

    @Test func quantizeQ4_1() throws {
        // min = −1, max = 2 → d = 3/15 = 0.2 (fp16 0x3266), m = −1 (0xBC00), 1/d = 5 in float32;
        // q = min(15, trunc((x + 1)·5 + 0.5)): −1 → 0, 2 → 15, 0 → 5, 0.5 → 8, 0.29 → 6, 0.31 → 7.
        var x = [Float](repeating: -1, count: 32)
        x[16] = 2; x[1] = 0; x[17] = 0.5; x[2] = 0.29; x[18] = 0.31
        var expected = [UInt8](repeating: 0, count: 20)
        expected[0] = 0x66; expected[1] = 0x32; expected[2] = 0x00; expected[3] = 0xBC
        expected[4] = 0xF0; expected[5] = 0x85; expected[6] = 0x76
        #expect(try ggmlQuantize(.q4_1, x) == expected)
    }

    @Test func quantizationErrorIsBounded() throws {
        // Round trip on pseudo-random data: |x − x̂| ≤ d/2 plus the error of storing d (and m) in
        // fp16 (q·|d − fp16(d)| ≤ qmax·d·2⁻¹¹), with d = amax/127 (Q8_0), (max − min)/15 (Q4_1).
        // Q4_0 is asymmetric (q − 8 ∈ [−8, 7]): values opposite the largest one are clamped at 7
        // steps, so its bound is a whole d.
        var rng = GGMLTestRNG(seed: 7)
        let x = (0..<(32 * 64)).map { _ in Float(rng.nextDouble() * 4 - 2) }
        for (type, qmax) in [(GGMLType.q8_0, Float(127)), (.q4_1, 15), (.q4_0, 8)] {
            let q = try ggmlQuantize(type, x)
            let y = try dequant(type, q, count: x.count)
            for blk in 0..<64 {
                let xs = x[(blk * 32)..<(blk * 32 + 32)]
                let d: Float
                switch type {
                case .q8_0: d = xs.map(abs).max()! / 127
                case .q4_0: d = xs.map(abs).max()! / 8
                default: d = (xs.max()! - xs.min()!) / 15
                }
                let bound = (type == .q4_0 ? d : d / 2) + qmax * d / 2048 + 1e-3 * d + (type == .q4_1 ? abs(xs.min()!) / 2048 : 0)
                for j in 0..<32 { #expect(abs(y[blk * 32 + j] - x[blk * 32 + j]) <= bound) }
            }
        }
    }

    // MARK: The real file

    @Test func requantizingSmolLM2Q4_1GivesTheSameBytes() throws {
        let url = Paths.home.appendingPathComponent("gguf/SmolLM2-135M-Instruct.Q4_1.gguf")
        guard FileManager.default.fileExists(atPath: url.path) else {
            Issue.record("missing \(url.path): run scripts/fetch-models.sh")
            return
        }
        let f = try GGUFFile(url: url)
        var blocks = 0, same = 0
        for t in f.tensors where t.type == .q4_1 {
            let x = try f.floats(t)
            let q = try ggmlQuantize(.q4_1, x)
            f.withBytes(of: t) { orig in
                for b in 0..<(t.byteCount / 20) {
                    blocks += 1
                    if (0..<20).allSatisfy({ orig[b * 20 + $0] == q[b * 20 + $0] }) { same += 1 }
                }
            }
        }
        let fraction = Double(same) / Double(max(blocks, 1))
        print("Q4_1 requantization: \(same)/\(blocks) blocks identical (\(String(format: "%.4f", 100 * fraction))%)")
        #expect(blocks > 100_000)
        #expect(fraction >= 0.999)
    }
}

/// A small deterministic generator (GGMLTestRNG) so tests do not depend on the system RNG.
fileprivate struct GGMLTestRNG: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func nextDouble() -> Double { Double(next() >> 11) / Double(1 << 53) }
}
