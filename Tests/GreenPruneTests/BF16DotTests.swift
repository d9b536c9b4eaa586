import CQuantKernels
import Foundation
import GreenPrune
import Testing

/// The AVX-512 BF16 dot-product path (CQuantKernels/bf16_dot.c) against float64 products of the
/// same bf16-rounded operands: a product of two bf16 values is exact in float32, so only the
/// float32 sums and the column scale separate the kernel from the reference. Tests that need
/// VDPBF16PS are skipped (and say so) on CPUs without AVX-512 BF16.
@Suite("AVX-512 BF16 dot products", .serialized)
struct BF16DotTests {
    static var available: Bool { KernelOptions.bf16DotAvailable }

    static func bf16(_ f: Float) -> Float { Float(bitPattern: UInt32(qk_bf16_round(f)) << 16) }

    /// qk_bf16_gemm_scaled on packed operands: every row block (M = 1, 8, 13, 40), column block
    /// (N = 1, 33, 45, 96) and depth (K = 1, 31, 77, 576: odd, and past one 32-wide block), with a
    /// column scale and added onto C; rows and columns outside the product stay untouched.
    @Test(arguments: [(1, 1, 1), (8, 33, 31), (13, 45, 77), (40, 96, 576), (9, 1, 64)])
    func kernelEqualsReferenceOfRoundedOperands(_ m: Int, _ n: Int, _ k: Int) {
        guard Self.available else { print("AVX-512 BF16 unavailable on this CPU: skipped"); return }
        let mp = (m + 31) / 32 * 32, np = (n + 31) / 32 * 32, kp = (k + 31) / 32 * 32
        let x = randomMatrix(m, k, seed: 31), w = randomMatrix(n, k, seed: 32)
        let wh = w.map { qk_bf16_round($0) }
        let scale = (0 ..< n).map { Float(1 + $0 % 5) * 0.25 }
        var a = [UInt16](repeating: 0xFFFF, count: mp * kp), b = [UInt16](repeating: 0xFFFF, count: np * kp)
        x.withUnsafeBufferPointer { xp in a.withUnsafeMutableBufferPointer { qk_amx_pack_a(0, Int64(mp), Int64(m), Int64(k), xp.baseAddress!, Int64(k), $0.baseAddress!) } }
        wh.withUnsafeBufferPointer { wp in b.withUnsafeMutableBufferPointer { qk_bf16_pack_b(0, Int64(np / 16), Int64(n), Int64(k), wp.baseAddress!, Int64(k), $0.baseAddress!) } }
        let ref = referenceMatmul(x.map(Self.bf16), w.map(Self.bf16), m: m, n: n, k: k)
        let mag = referenceMatmul(x.map { abs(Self.bf16($0)) }, w.map { abs(Self.bf16($0)) }, m: m, n: n, k: k)
        // C has a row stride of n + 3: the three extra columns must keep their sentinel.
        let ldc = n + 3
        let c0 = (0 ..< m * ldc).map { Float($0 % 7) - 3 }
        var c = c0
        let rc = c.withUnsafeMutableBufferPointer { cp in
            qk_bf16_gemm_scaled(Int64(m), Int64(n), Int64(k), 0, Int64(m), a, b, scale, 1, cp.baseAddress!, Int64(ldc))
        }
        #expect(rc == 0)
        for i in 0 ..< m { for j in 0 ..< ldc {
            let got = Double(c[i * ldc + j])
            if j >= n { #expect(got == Double(c0[i * ldc + j]), "c[\(i), \(j)] outside the product"); continue }
            let want = Double(c0[i * ldc + j]) + Double(scale[j]) * ref[i * n + j]
            // float32 sums over k terms: well under 2⁻²⁴·k of Σ|x||w| apart, plus the scale's product and the add.
            let bound = (Double(k) + 4) * 0x1p-24 * Double(scale[j]) * mag[i * n + j] + 0x1p-23 * abs(want) + 1e-7
            #expect(abs(got - want) <= bound, "c[\(i), \(j)]: \(got) vs \(want)")
        } }
        // Overwriting without a scale: qk_bf16_gemm, the same sums.
        var d = [Float](repeating: .nan, count: m * n)
        _ = d.withUnsafeMutableBufferPointer { qk_bf16_gemm(Int64(m), Int64(n), Int64(k), 0, Int64(m), a, b, 0, $0.baseAddress!, Int64(n)) }
        for i in 0 ..< m * n {
            #expect(abs(Double(d[i]) - ref[i]) <= (Double(k) + 2) * 0x1p-24 * mag[i] + 1e-7, "d[\(i)]")
        }
        // Row ranges must start on the kernel's 8-row blocks and stay inside M.
        #expect(qk_bf16_gemm_scaled(Int64(m), Int64(n), Int64(k), 3, Int64(m), a, b, nil, 0, &d, Int64(n)) == -1)
        #expect(qk_bf16_gemm_scaled(Int64(m), Int64(n), Int64(k), 0, Int64(m + 1), a, b, nil, 0, &d, Int64(n)) == -1)
    }

    /// QuantizedLinear on the dot-product kernel (AMX off) against the float64 product of the
    /// bf16-rounded input and the weights as the kernel expands them: per-row scales keep the
    /// integer codes exact (the scale multiplies the float32 sums), 4-bit groups are rounded to
    /// bf16 with their scales. Widths that are (192) and are not (90, 91) multiples of 32 take
    /// the codes-to-blocks pass and the dequantize-then-pack one; 9 and 77 rows are not
    /// multiples of the 8-row blocks. Also the band form, one packed input read by another
    /// layer, the add into the output, and that 7 rows stay on sgemm.
    @Test(arguments: [(8, QuantGranularity.channel, true, 192), (8, .channel, false, 91), (4, .group, false, 192),
                      (4, .group, true, 192), (4, .channel, false, 90)])
    func quantizedLinear(_ bits: Int, _ gran: QuantGranularity, _ sym: Bool, _ k: Int) throws {
        guard Self.available else { print("AVX-512 BF16 unavailable on this CPU: skipped"); return }
        let n = 130
        let scheme = try QuantScheme(bits: bits, granularity: gran, groupSize: 64, symmetric: sym)
        let w = randomMatrix(n, k, seed: 41)
        let t = try w.withUnsafeBufferPointer { try scheme.quantize($0, rows: n, cols: k, name: "w") }
        let layer = try QuantizedLinear(t, bias: nil), other = try QuantizedLinear(t, bias: nil)
        // The int16 kernel goes first where it is on (VNNI CPUs): off here, so the bf16 kernel takes the rows.
        for l in [layer, other] { l.options.amx = false; l.options.int16Dot = false; l.options.bf16Dot = true; l.options.tileElements = 64 * k }
        #expect(!layer.usesBF16Dot(rows: 7) && !layer.usesAMX(rows: 77))
        let dq = t.dequantize()
        let expanded = layer.groupsPerRow == 1 ? dq : dq.map(Self.bf16)
        for m in [9, 77] {
            #expect(layer.usesBF16Dot(rows: m))
            let x = randomMatrix(m, k, seed: UInt64(42 + m))
            let ref = referenceMatmul(x.map(Self.bf16), expanded, m: m, n: n, k: k)
            let mag = referenceMatmul(x.map { abs(Self.bf16($0)) }, expanded.map(abs), m: m, n: n, k: k)
            var out = [Float](repeating: .nan, count: m * n)
            x.withUnsafeBufferPointer { xp in out.withUnsafeMutableBufferPointer { layer.forward(xp.baseAddress!, rows: m, into: $0.baseAddress!) } }
            for i in 0 ..< m * n {
                #expect(abs(Double(out[i]) - ref[i]) <= 2e-5 * mag[i] + 1e-6, "m \(m): out[\(i)] \(out[i]) vs \(ref[i])")
            }
            // Against the unrounded input the error is bf16's, not zero: the kernel really ran.
            let exact = referenceMatmul(x, dq, m: m, n: n, k: k)
            #expect(zip(out, exact).contains { Double($0) != $1 }, "no bf16 rounding: the dot-product path did not run")
            // Band 40..<100 (row stride 80) from an input packed once by `layer`, read by `other`.
            let packed = try #require(x.withUnsafeBufferPointer { layer.packInput($0.baseAddress!, rows: m) })
            #expect(layer.sharesPackedInput(with: other, rows: m))
            var band = [Float](repeating: .nan, count: m * 80)
            band.withUnsafeMutableBufferPointer {
                other.forward(packed: packed, outputs: 40 ..< 70, into: $0.baseAddress!, ldo: 80)
                other.forward(packed: packed, outputs: 70 ..< 100, into: $0.baseAddress! + 30, ldo: 80)
            }
            for i in 0 ..< m { for j in 0 ..< 80 {
                if j < 60 { #expect(band[i * 80 + j] == out[i * n + 40 + j], "band[\(i), \(j)]") } else { #expect(band[i * 80 + j].isNaN) }
            } }
            // Added in place: y0 + the same product, one float32 add per entry.
            let y0 = (0 ..< m * n).map { Float($0 % 7) - 3 }
            var acc = y0
            _ = x.withUnsafeBufferPointer { xp in acc.withUnsafeMutableBufferPointer { layer.forward(xp.baseAddress!, rows: m, addingInto: $0.baseAddress!) } }
            for i in 0 ..< m * n { #expect(acc[i] == y0[i] + out[i], "accumulated out[\(i)]") }
        }
    }

    /// A 64×64 symmetric 8-bit layer off AMX, with the int16 kernel on or off and the bf16 one on.
    private func eightBitLayer(_ gran: QuantGranularity, seed: UInt64, int16Dot: Bool) throws -> QuantizedLinear {
        let scheme = try QuantScheme(bits: 8, granularity: gran, groupSize: 32, symmetric: true)
        let w = randomMatrix(64, 64, seed: seed)
        let layer = try QuantizedLinear(try w.withUnsafeBufferPointer { try scheme.quantize($0, rows: 64, cols: 64, name: "w") }, bias: nil)
        layer.options.amx = false
        layer.options.int16Dot = int16Dot
        layer.options.bf16Dot = true
        return layer
    }

    /// 8-bit groups stay on sgemm on this path too: a bf16 weight would move by up to a quarter step.
    @Test func int8GroupsStayOnSgemm() throws {
        #expect(!(try eightBitLayer(.group, seed: 51, int16Dot: false)).usesBF16Dot(rows: 64))
    }

    /// Where the int16 kernel and the bf16 dot-product kernel are both on (AVX-512 VNNI and BF16,
    /// as Zen 4), a quantized layer takes the int16 one: 16 bits of each activation, not 8.
    @Test func int16KernelGoesFirst() throws {
        let layer = try eightBitLayer(.channel, seed: 52, int16Dot: true)
        #expect(layer.usesInt16Dot(rows: 64) == KernelOptions.int16DotAvailable)
        #expect(layer.usesBF16Dot(rows: 64) == (Self.available && !KernelOptions.int16DotAvailable))
        #expect(layer.floatKernelName(rows: 64)
                == (KernelOptions.int16DotAvailable ? "int16-dot" : Self.available ? "bf16-dot" : "sgemm"))
    }

    /// A quantized decoder scored on the dot-product kernel (q/k/v and gate/up sharing one packed
    /// input, o/down adding into the residual stream, the head's rows packed once per pass)
    /// against the same model on sgemm: bf16 activations move each log-probability by well under
    /// 0.02 nats on this tiny model, and by something (the kernel really ran).
    @Test(arguments: [(8, QuantGranularity.channel), (4, .group)])
    func decoderOnBF16DotEqualsSgemm(_ bits: Int, _ gran: QuantGranularity) throws {
        guard Self.available else { print("AVX-512 BF16 unavailable on this CPU: skipped"); return }
        let root = temporaryDirectory("bf16dot-decoder")
        defer { try? FileManager.default.removeItem(at: root) }
        let m = try tinyQuantizedDecoder(in: root, bits: bits, granularity: gran)
        let head = try #require(m.weights.lmHead as? QuantizedLinear)
        var g = SplitMix(state: 19)
        let tokens = (0 ..< 41).map { _ in Int(g.int8(0, 49)) }
        let request = ScoreRequest(tokens: tokens, scoreFrom: 1)
        m.kernelOptions.amx = false
        m.kernelOptions.int16Dot = false
        m.kernelOptions.bf16Dot = true
        let dot = try m.score([request])[0].logprobs
        #expect(head.usesBF16Dot(rows: 40))
        m.kernelOptions.bf16Dot = false
        let sgemm = try m.score([request])[0].logprobs
        #expect(!head.usesBF16Dot(rows: 40))
        #expect(dot.count == 40 && sgemm.count == 40)
        let diff = zip(dot, sgemm).map { abs($0 - $1) }
        #expect(diff.max()! < 0.02, "largest log-probability change \(diff.max()!)")
        #expect(diff.max()! > 0, "bf16 rounding left no trace: the dot-product path did not run")
    }

    /// The run-time choice: a CPU with AVX-512 BF16 reports a positive VDPBF16PS/FMA rate ratio,
    /// one without reports 0. The default is on without timing where /proc/cpuinfo names an AMD
    /// CPU with AVX-512 BF16 (families 25 and 26: Zen 4 and later), otherwise it follows the ratio.
    @Test func defaultFollowsMeasuredSpeedup() throws {
        #expect((KernelOptions.bf16DotSpeedup > 0) == Self.available)
        #expect(KernelOptions.standard.bf16Dot
                == (Self.available && (KernelOptions.bf16DotKnownFast || KernelOptions.bf16DotSpeedup >= 1.25)))
        #if arch(x86_64)
        let cpu = try #require(CPUInfo.first)
        #expect(KernelOptions.bf16DotKnownFast == (cpu.isAMD([25, 26]) && cpu.flags.isSuperset(of: ["avx512f", "avx512_bf16"])),
                "vendor \(cpu.vendor), family \(cpu.family)")
        #endif
        print("VDPBF16PS multiply-adds per second: ×\(KernelOptions.bf16DotSpeedup) of float32 FMA; known fast: \(KernelOptions.bf16DotKnownFast); bf16Dot by default: \(KernelOptions.standard.bf16Dot)")
    }
}

/// A two-layer tiny Llama written under `root`, quantized with groups of 32 (symmetric at 8 bits,
/// asymmetric at 4) head included, and loaded: the decoder the bf16 paths are checked on.
func tinyQuantizedDecoder(in root: URL, bits: Int, granularity: QuantGranularity) throws -> LlamaModel {
    let src = root.appendingPathComponent("f32"), out = root.appendingPathComponent("q")
    try writeTinyLlama(src, layerDims: [(4, 96), (4, 96)])
    let scheme = try QuantScheme(bits: bits, granularity: granularity, groupSize: 32, symmetric: bits == 8)
    _ = try Quantizer.quantize(model: src, to: out, options: QuantizeOptions(scheme: scheme, includeHead: true), progress: false)
    return try ModelLoader.loadLlama(out)
}
