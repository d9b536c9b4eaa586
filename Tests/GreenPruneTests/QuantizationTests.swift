import Foundation
import GreenPrune
import Testing

/// Deterministic pseudo-random numbers (SplitMix64) so failures reproduce.
struct SplitMix {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in [-1, 1).
    mutating func float() -> Float { Float(Double(next() >> 11) / Double(1 << 53)) * 2 - 1 }
    mutating func int8(_ lo: Int, _ hi: Int) -> Int8 { Int8(lo + Int(next() % UInt64(hi - lo + 1))) }
}

/// Weights with a few outliers per row, like real projections.
func randomMatrix(_ rows: Int, _ cols: Int, seed: UInt64) -> [Float] {
    var g = SplitMix(state: seed)
    return (0 ..< rows * cols).map { i in g.float() * (i % 37 == 0 ? 3 : 0.2) }
}

/// out (m, n) = x (m, k) · wᵀ (n, k) in Double, the reference every path is checked against.
func referenceMatmul(_ x: [Float], _ w: [Float], m: Int, n: Int, k: Int) -> [Double] {
    var out = [Double](repeating: 0, count: m * n)
    for i in 0 ..< m { for j in 0 ..< n {
        var s = 0.0
        for c in 0 ..< k { s += Double(x[i * k + c]) * Double(w[j * k + c]) }
        out[i * n + j] = s
    } }
    return out
}

@Suite("Quantization")
struct QuantizationTests {
    static let schemes: [QuantScheme] = {
        var s: [QuantScheme] = []
        for bits in [8, 4] { for sym in [true, false] {
            s.append(try! QuantScheme(bits: bits, granularity: .tensor, symmetric: sym))
            s.append(try! QuantScheme(bits: bits, granularity: .channel, symmetric: sym))
            for g in [32, 64, 128] { s.append(try! QuantScheme(bits: bits, granularity: .group, groupSize: g, symmetric: sym)) }
            // Float16 scales: rounded before the codes are computed, so the bound still holds.
            s.append(try! QuantScheme(bits: bits, granularity: .channel, symmetric: sym, scaleType: .float16))
            s.append(try! QuantScheme(bits: bits, granularity: .group, groupSize: 32, symmetric: sym, scaleType: .float16))
        } }
        return s
    }()

    // MARK: scheme

    /// |w − dequant(quant(w))| ≤ scale/2 for every weight (float32 rounding: + 1e-6·|w| + 1e-9).
    @Test("round trip within half a step", arguments: schemes)
    func roundTrip(_ scheme: QuantScheme) throws {
        let rows = 12, cols = 384
        let w = randomMatrix(rows, cols, seed: UInt64(scheme.bits * 100 + (scheme.groupSize ?? 1)))
        let t = try w.withUnsafeBufferPointer { try scheme.quantize($0, rows: rows, cols: cols, name: "w") }
        let d = t.dequantize()
        var worstSteps: Float = 0
        for r in 0 ..< rows { for c in 0 ..< cols {
            let i = r * cols + c
            let s = t.scales[t.scaleIndex(row: r, col: c)]
            let err = abs(w[i] - d[i])
            #expect(err <= s / 2 + 1e-6 * abs(w[i]) + 1e-9, "w[\(r),\(c)] = \(w[i]) → \(d[i]), step \(s)")
            #expect(Int(t.codes[i]) >= scheme.qmin && Int(t.codes[i]) <= scheme.qmax)
            worstSteps = max(worstSteps, err / s)
        } }
        // The bound is tight: some weight lands near half a step (or the scheme is too coarse).
        #expect(worstSteps > 0.4)
        if scheme.scaleType == .float16 { #expect(ScaleType.fitsFloat16(t.scales)) }
    }

    /// Float16 scale storage: the float16 at or just above the scale (never a smaller step),
    /// unchanged when stored as float32.
    @Test func float16ScaleRounding() throws {
        let f16 = ScaleType.float16
        // 0.1 lies between the float16s 0.0999755859375 and 0.10003662109375.
        #expect(f16.stored(0.1) == 0.10003662109375)
        #expect(f16.stored(0.0999755859375) == 0.0999755859375)
        #expect(f16.stored(0.5) == 0.5)
        #expect(ScaleType.float32.stored(0.1) == 0.1)
        for s: Float in [0.1, 0.0123, 1e-6, 3.3e-7, 6e-5, Float.ulpOfOne] {
            let v = f16.stored(s)
            // Below 2⁻¹⁴ float16 values are 2⁻²⁴ apart; above, 2⁻¹⁰ relative.
            #expect(v >= s && v - s <= max(s / 1024, 1.0 / 16_777_216) && ScaleType.fitsFloat16([v]), "\(s) → \(v)")
        }
        #expect(f16.stored(Float.ulpOfOne) == Float.ulpOfOne)  // the all-zero block's scale is exact
        #expect(!ScaleType.fitsFloat16([70000]))
        // A block of tiny weights: every one still within half a (stored) step, none clipped.
        let scheme = try QuantScheme(bits: 8, granularity: .channel, symmetric: true, scaleType: .float16)
        let w: [Float] = (0 ..< 64).map { Float($0 - 31) * 1e-6 }
        let t = try w.withUnsafeBufferPointer { try scheme.quantize($0, rows: 1, cols: 64, name: "w") }
        let d = t.dequantize()
        for i in 0 ..< 64 { #expect(abs(w[i] - d[i]) <= t.scales[0] / 2 * 1.0001) }
    }

    /// Worked by hand from compressed-tensors' formulas.
    @Test func workedExamples() throws {
        // 8-bit symmetric per channel: scale = max|w| / 127.5 = 1 (exact in float); −127.5 → −128
        // (ties to even), 63.5 → 64, 127.5 → 128 clamped to 127, 0.25 → 0; row 2: scale 2, 5 → 2.5 → 2.
        let s8 = try QuantScheme(bits: 8, granularity: .channel, symmetric: true)
        let t8 = try [-127.5, 63.5, 127.5, 0.25, 255, 5, 0, -1].withUnsafeBufferPointer { try s8.quantize($0, rows: 2, cols: 4, name: "w") }
        #expect(t8.codes == [-128, 64, 127, 0, 127, 2, 0, 0])
        #expect(t8.scales == [1, 2])
        // 4-bit symmetric: scale = 7.5 / 7.5 = 1; −7.5 → −8, 3.5 → 4, 7.5 → 8 clamped to 7, 2.4 → 2.
        let s4s = try QuantScheme(bits: 4, granularity: .tensor, symmetric: true)
        let t4s = try [-7.5, 3.5, 7.5, 2.4].withUnsafeBufferPointer { try s4s.quantize($0, rows: 1, cols: 4, name: "w") }
        #expect(t4s.codes == [-8, 4, 7, 2])
        #expect(t8.zeroPoints == nil)
        // 4-bit asymmetric: [0, 3] → scale 3/15 = 0.2, zero point −8 − 0/0.2 = −8,
        // codes round(x/0.2 − 8) = [−8, −3, 2, 7].
        let s4 = try QuantScheme(bits: 4, granularity: .tensor, symmetric: false)
        let t4 = try [0, 1, 2, 3].withUnsafeBufferPointer { try s4.quantize($0, rows: 1, cols: 4, name: "w") }
        #expect(t4.codes == [-8, -3, 2, 7])
        #expect(abs(t4.scales[0] - 0.2) < 1e-7)
        #expect(t4.zeroPoints == [-8])
        // All-zero group: scale becomes float32 epsilon, codes 0.
        let z = try [Float](repeating: 0, count: 32).withUnsafeBufferPointer {
            try QuantScheme(bits: 4, granularity: .group, groupSize: 32).quantize($0, rows: 1, cols: 32, name: "w")
        }
        #expect(z.scales == [Float.ulpOfOne])
        #expect(z.codes.allSatisfy { $0 == 0 })
    }

    @Test func badInputIsOneLineError() throws {
        for (make, flag) in [({ _ = try QuantScheme(bits: 3, granularity: .channel) }, "--bits"),
                             ({ _ = try QuantScheme(bits: 4, granularity: .group, groupSize: 48) }, "--group-size")] as [(() throws -> Void, String)] {
            do { try make(); Issue.record("expected an error for \(flag)") } catch {
                let text = "\(error)"
                #expect(text.hasPrefix(flag) && !text.contains("\n"), "\(text)")
            }
        }
        let s = try QuantScheme(bits: 4, granularity: .group, groupSize: 128)
        let w = [Float](repeating: 1, count: 2 * 500)
        #expect(throws: InputError.self) { try w.withUnsafeBufferPointer { try s.quantize($0, rows: 2, cols: 500, name: "model.layers.0.mlp.down_proj") } }
        do { _ = try w.withUnsafeBufferPointer { try s.quantize($0, rows: 2, cols: 500, name: "down") } } catch {
            #expect("\(error)".contains("500") && "\(error)".contains("down") && !"\(error)".contains("\n"))
        }
        let nan = [Float.nan, 1]
        #expect(throws: InputError.self) { try nan.withUnsafeBufferPointer { try QuantScheme(bits: 8, granularity: .tensor).quantize($0, rows: 1, cols: 2, name: "w") } }
    }

    // MARK: compressed-tensors packing

    /// compressed-tensors' pack_to_int32 docstring: 8-bit [1, 2] → [129, 130, 0, 0] → 33409.
    @Test func packDocstringExample() {
        #expect(CompressedTensors.pack([1, 2], rows: 1, cols: 2, bits: 8) == [33409])
        #expect(CompressedTensors.unpack([33409], rows: 1, cols: 2, bits: 8) == [1, 2])
    }

    /// 4-bit: code j sits in bits 4j..4j+3 of the word, stored as q + 8; rows pad with zero bits.
    @Test func pack4BitWorked() {
        let codes: [Int8] = [-8, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7, 7]
        let words = CompressedTensors.pack(codes, rows: 1, cols: 17, bits: 4)
        #expect(words.map { UInt32(bitPattern: $0) } == [0x7654_3210, 0xFEDC_BA98, 0x0000_000F])
        #expect(CompressedTensors.unpack(words, rows: 1, cols: 17, bits: 4) == codes)
        // Two rows of 3: each row starts a new word.
        let two = CompressedTensors.pack([0, 1, -1, 2, -8, 7], rows: 2, cols: 3, bits: 4)
        #expect(two.map { UInt32(bitPattern: $0) } == [0x798, 0xF0A])
        // Zero points pack along the rows (packed_dim=0): column c of word-row 0 holds rows 0..7.
        let zp: [Int8] = [1, -1, 0, 2, 3, -8, 7, -2, 5, 4]   // (5 rows, 2 cols)
        let zw = CompressedTensors.packRows(zp, rows: 5, cols: 2, bits: 4)
        // column 0: rows 1,0,3,7,5 → u = 9,8,11,15,13 → 0xDFB89; column 1: −1,2,−8,−2,4 → 7,10,0,6,12 → 0xC60A7
        #expect(zw.map { UInt32(bitPattern: $0) } == [0xD_FB89, 0xC_60A7])
        #expect(CompressedTensors.unpackRows(zw, rows: 5, cols: 2, bits: 4) == zp)
    }

    @Test func packRandomRoundTrip() {
        var g = SplitMix(state: 7)
        for (bits, lo, hi) in [(4, -8, 7), (8, -128, 127)] {
            let rows = 5, cols = 37
            let codes = (0 ..< rows * cols).map { _ in g.int8(lo, hi) }
            #expect(CompressedTensors.unpack(CompressedTensors.pack(codes, rows: rows, cols: cols, bits: bits), rows: rows, cols: cols, bits: bits) == codes)
            #expect(CompressedTensors.unpackRows(CompressedTensors.packRows(codes, rows: rows, cols: cols, bits: bits), rows: rows, cols: cols, bits: bits) == codes)
        }
    }

    /// The config.json block uses compressed-tensors' key names and values.
    @Test func quantizationConfigJSON() throws {
        let s = try QuantScheme(bits: 4, granularity: .group, groupSize: 128, symmetric: false)
        let cfg = CTQuantizationConfig(scheme: s, activationsInt8: true, ignore: ["lm_head"])
        let json = try JSONSerialization.jsonObject(with: JSONEncoder().encode(cfg)) as? [String: Any]
        #expect(json?["quant_method"] as? String == "compressed-tensors")
        #expect(json?["format"] as? String == "pack-quantized")
        #expect(json?["ignore"] as? [String] == ["lm_head"])
        let group = (json?["config_groups"] as? [String: Any])?["group_0"] as? [String: Any]
        #expect(group?["targets"] as? [String] == ["Linear"])
        let w = group?["weights"] as? [String: Any]
        #expect(w?["num_bits"] as? Int == 4)
        #expect(w?["strategy"] as? String == "group")
        #expect(w?["group_size"] as? Int == 128)
        #expect(w?["symmetric"] as? Bool == false)
        #expect(w?["type"] as? String == "int")
        let a = group?["input_activations"] as? [String: Any]
        #expect(a?["strategy"] as? String == "token" && a?["dynamic"] as? Bool == true && a?["num_bits"] as? Int == 8)
        let back = try JSONDecoder().decode(CTQuantizationConfig.self, from: JSONEncoder().encode(cfg))
        #expect(try back.scheme(source: "config.json").scheme == s)
        #expect(CTQuantizationConfig(scheme: try QuantScheme(bits: 8, granularity: .channel), activationsInt8: false, ignore: []).format == "int-quantized")
    }

    // MARK: int8 kernels

    /// Every SIMD path gives the exact integer the portable loop gives, including −128 weights
    /// and lengths with tails.
    @Test func int8DotPathsAgree() {
        var g = SplitMix(state: 11)
        for len in [1, 31, 32, 33, 64, 100, 576, 1536] {
            let a = (0 ..< len).map { _ in g.int8(-127, 127) }
            var b = (0 ..< len).map { _ in g.int8(-128, 127) }
            b[0] = -128
            let exact = zip(a, b).reduce(Int32(0)) { $0 + Int32($1.0) * Int32($1.1) }
            for isa in Int8Kernels.ISA.allCases where isa.isSupported {
                #expect(Int8Kernels.dot(a, b, isa: isa) == exact, "\(isa) len \(len)")
            }
            // Worst case for vpmaddubsw saturation: all −127 × −128.
            let wa = [Int8](repeating: -127, count: len), wb = [Int8](repeating: -128, count: len)
            for isa in Int8Kernels.ISA.allCases where isa.isSupported {
                #expect(Int8Kernels.dot(wa, wb, isa: isa) == Int32(len) * 127 * 128)
            }
        }
        print("int8 kernels: best path on this CPU is \(Int8Kernels.best); supported: \(Int8Kernels.ISA.allCases.filter(\.isSupported))")
    }

    // MARK: QuantizedLinear

    /// forward(.none) equals dequantize-then-matmul (double reference on the dequantized W),
    /// relative to Σ|x||w| with tolerance 1e-5, through several tiles; bias added.
    /// Widths that are multiples of 8 go through the vector dequantization kernels, k = 250
    /// through the scalar path: both bit-identical to QuantizedTensor.dequantize.
    @Test("QuantizedLinear = dequantized matmul", arguments: [(8, QuantGranularity.channel, true, 256, ScaleType.float32), (4, .group, true, 256, .float32),
                                                              (4, .group, false, 256, .float32), (8, .tensor, false, 256, .float32), (4, .channel, true, 256, .float32),
                                                              (4, .channel, false, 250, .float32), (8, .channel, false, 250, .float32),
                                                              (4, .group, false, 256, .float16), (4, .channel, true, 256, .float16), (4, .channel, false, 250, .float16),
                                                              (8, .channel, true, 256, .float16)])
    func linearMatchesDequantized(_ bits: Int, _ gran: QuantGranularity, _ sym: Bool, _ k: Int, _ scaleType: ScaleType) throws {
        let m = 5, n = 70
        let scheme = try QuantScheme(bits: bits, granularity: gran, groupSize: 64, symmetric: sym, scaleType: scaleType)
        let w = randomMatrix(n, k, seed: 3)
        let x = randomMatrix(m, k, seed: 4)
        let bias = (0 ..< n).map { Float($0) * 0.01 }
        let t = try w.withUnsafeBufferPointer { try scheme.quantize($0, rows: n, cols: k, name: "w") }
        let layer = try QuantizedLinear(t, bias: bias)
        // 4-bit layers keep float16-exact scales as float16 (8-bit ones always as float32).
        #expect(layer.hasFloat16Scales == (bits == 4 && scaleType == .float16))
        layer.options.tileElements = 16 * k       // 5 tiles, the last one partial
        var out = [Float](repeating: .nan, count: m * n)
        x.withUnsafeBufferPointer { xp in out.withUnsafeMutableBufferPointer { layer.forward(xp.baseAddress!, rows: m, into: $0.baseAddress!) } }
        let dq = t.dequantize()
        let ref = referenceMatmul(x, dq, m: m, n: n, k: k)
        let mag = referenceMatmul(x.map(abs), dq.map(abs), m: m, n: n, k: k)
        for i in 0 ..< m * n {
            #expect(abs(Double(out[i]) - ref[i] - Double(bias[i % n])) <= 1e-5 * mag[i] + 1e-6, "out[\(i)]")
        }
        // Unpacked dequantization is bit-identical to QuantizedTensor's (q − z)·scale.
        var rows = [Float](repeating: 0, count: n * k)
        rows.withUnsafeMutableBufferPointer { layer.dequantize(rows: 0 ..< n, into: $0.baseAddress!) }
        #expect(rows == dq)
        // Memory: packed codes (4-bit rows padded to whole int32 words) plus scales, zeros, bias.
        let packedBytes = bits == 4 ? n * 4 * ((k + 7) / 8) : n * k
        #expect(layer.residentBytes <= packedBytes + n * layer.groupsPerRow * 5 + n * 4)
    }

    /// Dynamic per-row activation quantization: the vector path gives the portable loop's codes
    /// and scales bit for bit, ties (x/scale = k + ½) round away from zero as roundf does, and a
    /// zero row gets scale 1. Rows of 37 floats exercise the 16-wide body and the tail.
    @Test func quantizeRowsVectorMatchesPortable() {
        let k = 37
        // Row 0: max |x| = 127, so the scale is exactly 1 and the listed ties are exact.
        var row0: [Float] = [127, 2.5, -3.5, 0.5, -0.5, 126.5, -126.5, 0.49999997, -1.5, 1.5000001]
        row0 += (row0.count ..< k).map { Float($0) - 20.5 }
        let rows = [row0, [Float](repeating: 0, count: k), randomMatrix(1, k, seed: 5).map { $0 * 3 }, randomMatrix(1, k, seed: 6)]
        let x = rows.flatMap { $0 }, m = rows.count
        var qv = [Int8](repeating: 0, count: m * k), qp = qv
        var sv = [Float](repeating: 0, count: m), sp = sv
        x.withUnsafeBufferPointer { xp in
            Int8Kernels.quantizeRows(xp.baseAddress!, rows: m, cols: k, into: &qv, scales: &sv)
            Int8Kernels.quantizeRows(xp.baseAddress!, rows: m, cols: k, into: &qp, scales: &sp, portable: true)
        }
        #expect(qv == qp && sv == sp)
        #expect(sv[0] == 1 && sv[1] == 1)
        #expect(Array(qv[0 ..< 10]) == [127, 3, -4, 1, -1, 127, -127, 0, -2, 2])
        #expect(qv[k ..< 2 * k].allSatisfy { $0 == 0 })
    }

    /// The int8 GEMM with A prepared once by the caller (`Int8Kernels.prepare`) equals the call
    /// that prepares A itself, on every ISA path, over a column range that starts mid-block.
    @Test func int8GemmPreparedMatchesSelfPrepared() {
        let m = 11, n = 40, k = 64, group = 32, g = k / group
        var rng = SystemRandomNumberGenerator()
        let a = (0 ..< m * k).map { _ in Int8.random(in: -127 ... 127, using: &rng) }
        let b = (0 ..< n * k).map { _ in Int8.random(in: -128 ... 127, using: &rng) }
        let zero = (0 ..< n * g).map { _ in Int8.random(in: -8 ... 7, using: &rng) }
        let aScale = (0 ..< m).map { Float($0 + 1) * 0.01 }, bScale = (0 ..< n * g).map { Float($0 % 7 + 1) * 0.02 }
        var au = [UInt8](repeating: 0, count: m * k), sums = [Int32](repeating: 0, count: m * g)
        Int8Kernels.prepare(a, rows: m, cols: k, group: group, unsigned: &au, sums: &sums)
        #expect(au == a.map { UInt8(bitPattern: $0) ^ 0x80 })
        #expect(sums[g + 1] == a[k + group ..< 2 * k].reduce(Int32(0)) { $0 + Int32($1) })
        var outs: [[Float]] = []
        for isa in Int8Kernels.ISA.allCases where isa.isSupported {
            for usePrepared in [false, true] {
                var c = [Float](repeating: .nan, count: m * n)
                au.withUnsafeBufferPointer { up in sums.withUnsafeBufferPointer { sp in
                    Int8Kernels.gemm(isa: isa, m: m, n: n, k: k, columns: 5 ..< n, a: a,
                                     prepared: usePrepared ? (up.baseAddress!, sp.baseAddress!) : nil, aScale: aScale,
                                     b: b, bScale: bScale, bZero: zero, group: group, c: &c, ldc: n)
                } }
                outs.append(c.enumerated().filter { $0.offset % n >= 5 }.map(\.element))
            }
        }
        for o in outs.dropFirst() { #expect(o == outs[0]) }
        #expect(!outs[0].contains { $0.isNaN })
    }

    /// forward(.int8): every ISA path gives bit-identical output (integer dots are exact and the
    /// float epilogue is shared), and the result is within the activation-quantization bound of
    /// the float product: |Σ (x − x̂)·w| ≤ (scale_x/2)·Σ|w| per output.
    @Test("int8 activations", arguments: [(8, QuantGranularity.channel, true, ScaleType.float32), (4, .group, true, .float32), (4, .group, false, .float32),
                                          (8, .channel, false, .float32), (4, .group, false, .float16)])
    func int8Activations(_ bits: Int, _ gran: QuantGranularity, _ sym: Bool, _ scaleType: ScaleType) throws {
        let m = 7, n = 96, k = 320
        let scheme = try QuantScheme(bits: bits, granularity: gran, groupSize: 32, symmetric: sym, scaleType: scaleType)
        let w = randomMatrix(n, k, seed: 21)
        let x = randomMatrix(m, k, seed: 22)
        let t = try w.withUnsafeBufferPointer { try scheme.quantize($0, rows: n, cols: k, name: "w") }
        let layer = try QuantizedLinear(t, activations: .int8)
        var outs: [[Float]] = []
        for isa in Int8Kernels.ISA.allCases where isa.isSupported {
            layer.isa = isa
            var out = [Float](repeating: .nan, count: m * n)
            x.withUnsafeBufferPointer { xp in out.withUnsafeMutableBufferPointer { layer.forward(xp.baseAddress!, rows: m, into: $0.baseAddress!) } }
            outs.append(out)
        }
        for o in outs.dropFirst() { #expect(o == outs[0]) }
        // A band of outputs (the streaming head's call) equals those columns of the full product.
        let band = 17 ..< 61, ldo = band.count + 3
        var part = [Float](repeating: .nan, count: m * ldo)
        x.withUnsafeBufferPointer { xp in
            part.withUnsafeMutableBufferPointer { layer.forward(xp.baseAddress!, rows: m, outputs: band, into: $0.baseAddress!, ldo: ldo) }
        }
        for i in 0 ..< m {
            #expect(Array(part[i * ldo ..< i * ldo + band.count]) == Array(outs.last![i * n + band.lowerBound ..< i * n + band.upperBound]))
        }
        let dq = t.dequantize()
        let ref = referenceMatmul(x, dq, m: m, n: n, k: k)
        for i in 0 ..< m {
            let sx = Double(x[i * k ..< (i + 1) * k].map(abs).max()!) / 127
            for j in 0 ..< n {
                let wsum = dq[j * k ..< (j + 1) * k].reduce(0.0) { $0 + Double(abs($1)) }
                #expect(abs(Double(outs[0][i * n + j]) - ref[i * n + j]) <= sx / 2 * wsum * 1.0001 + 1e-5)
            }
        }
    }
}
