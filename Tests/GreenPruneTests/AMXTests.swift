import CQuantKernels
import Foundation
import GreenPrune
import Testing

/// The AMX bf16 path (CQuantKernels/amx_bf16.c) against closed forms: bf16 rounding by its
/// definition, integer products that bf16 and float32 hold exactly, and the rounding bound of
/// a float product. Tests that need the tiles are skipped (and say so) on CPUs without AMX.
@Suite("AMX bf16 kernels", .serialized)
struct AMXTests {
    static var available: Bool { qk_amx_bf16_available() != 0 }

    /// bf16 is the top half of a float32, rounded to nearest with ties to even.
    @Test func bf16Rounding() {
        func bits(_ f: Float) -> UInt16 { qk_bf16_round(f) }
        #expect(bits(1) == 0x3F80)
        #expect(bits(-2) == 0xC000)
        #expect(bits(Float(bitPattern: 0x3F80_8000)) == 0x3F80)   // tie, even below
        #expect(bits(Float(bitPattern: 0x3F81_8000)) == 0x3F82)   // tie, even above
        #expect(bits(Float(bitPattern: 0x3F80_8001)) == 0x3F81)   // just over half
        #expect(bits(Float(bitPattern: 0x3F80_7FFF)) == 0x3F80)   // just under half
        #expect(bits(Float(bitPattern: 0x7F7F_FFFF)) == 0x7F80)   // largest float rounds to +inf
        #expect(bits(.infinity) == 0x7F80)
        #expect(Float(bitPattern: UInt32(bits(.nan)) << 16).isNaN)
    }

    /// The packed A is each row rounded by qk_bf16_round, zero padded to a multiple of 32 in both
    /// directions; widths 37 and 64 take the 32-wide vector body and the tail.
    @Test(arguments: [37, 64])
    func packA(_ k: Int) {
        let m = 5, mp = 32, kp = (k + 31) / 32 * 32
        let x = randomMatrix(m, k, seed: 11)
        var a = [UInt16](repeating: 0xFFFF, count: mp * kp)
        x.withUnsafeBufferPointer { xp in a.withUnsafeMutableBufferPointer { qk_amx_pack_a(0, Int64(mp), Int64(m), Int64(k), xp.baseAddress!, Int64(k), $0.baseAddress!) } }
        for r in 0 ..< mp { for c in 0 ..< kp {
            let want: UInt16 = r < m && c < k ? qk_bf16_round(x[r * k + c]) : 0
            #expect(a[r * kp + c] == want, "a[\(r), \(c)]")
        } }
    }

    /// Tile t of a 16-row block holds W[c][32t + 2p + e] at [p][2c + e]; missing rows are zero.
    @Test func packBLayout() {
        let rows = 13, k = 40, kp = 64
        let w = (0 ..< rows * k).map { Float($0 % 251) }    // small integers: exact in bf16
        var tiles = [UInt16](repeating: 0xFFFF, count: 16 * kp)
        let rc = w.withUnsafeBufferPointer { wp in tiles.withUnsafeMutableBufferPointer { qk_amx_pack_b16(Int64(rows), Int64(k), wp.baseAddress!, Int64(k), $0.baseAddress!) } }
        #expect(rc == 0)
        for t in 0 ..< kp / 32 { for p in 0 ..< 16 { for c in 0 ..< 16 { for e in 0 ..< 2 {
            let kk = 32 * t + 2 * p + e
            let want: UInt16 = c < rows && kk < k ? qk_bf16_round(w[c * k + kk]) : 0
            #expect(tiles[t * 512 + p * 32 + 2 * c + e] == want)
        } } } }
    }

    /// Codes straight to tiles (qk_amx_pack_q) equal the rows dequantized by the definition,
    /// (q − offset)·scale in float32, then packed (qk_amx_pack_b16), bit for bit: 4-bit nibbles
    /// (least significant first) and int8 codes, groups of 16 to the whole row, full and partial
    /// blocks, with and without scales. Layouts the kernel does not take are refused.
    @Test(arguments: [4, 8])
    func packQuantizedEqualsDequantizeThenPack(_ bits: Int) {
        guard Self.available else { print("AMX bf16 unavailable on this CPU: skipped"); return }
        var rng = SplitMix64(seed: UInt64(bits))
        for k in [32, 192, 576] {
            for group in [16, 32, 64, 192, k] where k % group == 0 {
                for rows in [16, 5] {
                    let gpr = k / group, rowBytes = bits == 4 ? k / 2 : k
                    let data = (0 ..< 16 * rowBytes).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
                    let scale = (0 ..< 16 * gpr).map { _ in Float(rng.next() % 1000 + 1) * 1e-4 }
                    let offset = (0 ..< 16 * gpr).map { _ in Float(bits == 4 ? 8 : 0) + Float(Int(rng.next() % 15) - 7) }
                    for scaled in [true, false] {
                        var w = [Float](repeating: 0, count: 16 * k)
                        for r in 0 ..< rows { for c in 0 ..< k {
                            let q: Float = bits == 4
                                ? Float((data[r * rowBytes + c / 2] >> (c % 2 == 0 ? 0 : 4)) & 0xF)
                                : Float(Int8(bitPattern: data[r * rowBytes + c]))
                            let g = r * gpr + c / group
                            w[r * k + c] = scaled ? (q - offset[g]) * scale[g] : q - offset[g]
                        } }
                        var want = [UInt16](repeating: 0xFFFF, count: 16 * k), got = want
                        _ = qk_amx_pack_b16(Int64(rows), Int64(k), w, Int64(k), &want)
                        let rc = qk_amx_pack_q(Int64(rows), Int64(k), Int32(bits), data, Int64(rowBytes), scaled ? scale : nil,
                                               offset, Int64(gpr), Int64(group), &got)
                        #expect(rc == 0)
                        #expect(got == want, "bits \(bits) k \(k) group \(group) rows \(rows) scaled \(scaled)")
                    }
                }
            }
        }
        var tiles = [UInt16](repeating: 0, count: 16 * 64)
        let codes = [UInt8](repeating: 0, count: 16 * 64), ones = [Float](repeating: 1, count: 64)
        #expect(qk_amx_pack_q(16, 40, Int32(bits), codes, 64, ones, ones, 1, 40, &tiles) == -1)   // width not a multiple of 32
        #expect(qk_amx_pack_q(16, 64, Int32(bits), codes, 64, ones, ones, 8, 8, &tiles) == -1)    // groups of 8
        #expect(qk_amx_pack_q(16, 64, 3, codes, 64, ones, ones, 1, 64, &tiles) == -1)             // 3 bits
        #expect(qk_amx_pack_q(17, 64, Int32(bits), codes, 64, ones, ones, 1, 64, &tiles) == -1)   // more than 16 rows
    }

    /// Small integers are exact in bf16 and their sums exact in float32, so the tiles must give
    /// the integer product exactly, column scales applied after. Sizes leave partial tiles in
    /// M, N and K; two column ranges (as two threads would) and a row stride wider than N.
    @Test func integerProductIsExact() throws {
        guard Self.available else { print("AMX bf16 unavailable on this CPU: skipped"); return }
        let m = 45, n = 70, k = 100, ldc = 75
        let kp = 128, mp = 64, np = 96
        var g = SplitMix(state: 5)
        let x = (0 ..< m * k).map { _ in Float(g.int8(-8, 8)) }
        let w = (0 ..< n * k).map { _ in Float(g.int8(-127, 127)) }
        let scale = (0 ..< n).map { Float($0 + 1) * 0.25 }
        var a = [UInt16](repeating: 0, count: mp * kp), b = [UInt16](repeating: 0, count: np * kp)
        x.withUnsafeBufferPointer { xp in a.withUnsafeMutableBufferPointer { qk_amx_pack_a(0, Int64(mp), Int64(m), Int64(k), xp.baseAddress!, Int64(k), $0.baseAddress!) } }
        w.withUnsafeBufferPointer { wp in b.withUnsafeMutableBufferPointer { bp in
            for j in 0 ..< np / 16 {
                let rows = max(0, min(16, n - 16 * j))
                _ = qk_amx_pack_b16(Int64(rows), Int64(k), wp.baseAddress! + min(16 * j, n - 1) * k, Int64(k), bp.baseAddress! + j * 16 * kp)
            }
        } }
        // With accumulate, C starts at small integers (i − j) and the product is added to them.
        for (scaled, accumulate) in [(false, false), (true, false), (false, true), (true, true)] {
            var c = [Float](repeating: .nan, count: m * ldc)
            if accumulate { for i in 0 ..< m { for j in 0 ..< n { c[i * ldc + j] = Float(i - j) } } }
            for (c0, c1) in [(0, 32), (32, n)] {
                let rc = a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in scale.withUnsafeBufferPointer { sp in c.withUnsafeMutableBufferPointer { cp in
                    qk_amx_bf16_gemm(Int64(m), Int64(n), Int64(k), Int64(c0), Int64(c1), ap.baseAddress!, bp.baseAddress!,
                                     scaled ? sp.baseAddress! : nil, accumulate ? 1 : 0, cp.baseAddress!, Int64(ldc))
                } } } }
                #expect(rc == 0)
            }
            let ref = referenceMatmul(x, w, m: m, n: n, k: k)
            for i in 0 ..< m { for j in 0 ..< ldc {
                if j < n {
                    let expected = ref[i * n + j] * (scaled ? Double(scale[j]) : 1) + (accumulate ? Double(i - j) : 0)
                    #expect(Double(c[i * ldc + j]) == expected, "c[\(i), \(j)] (scaled \(scaled), accumulate \(accumulate))")
                } else {
                    #expect(c[i * ldc + j].isNaN, "column \(j) beyond N was written")
                }
            } }
        }
        // A column range that does not start on a 32-column block is refused.
        let rc = a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in
            var c = [Float](repeating: 0, count: m * n)
            return c.withUnsafeMutableBufferPointer { qk_amx_bf16_gemm(Int64(m), Int64(n), Int64(k), 16, Int64(n), ap.baseAddress!, bp.baseAddress!, nil, 0, $0.baseAddress!, Int64(n)) }
        } }
        #expect(rc == -1)
    }

    /// QuantizedLinear on AMX against the double product of its dequantized weights. Rounding x
    /// to bf16 moves each product by at most 2⁻⁹ of |x·w|; rounding a grouped 4-bit weight adds
    /// 2⁻⁹ more (per-row scales keep the codes exact), so |Δ| ≤ 2⁻⁸·Σ|x||w| (plus float32
    /// accumulation). Also checks the band form (outputs 40..<100, row stride 80), the sgemm
    /// path at the same size, and that the error is not zero (the tiles really ran).
    @Test("QuantizedLinear on AMX", arguments: [(8, QuantGranularity.channel, true, ScaleType.float32), (8, .channel, false, .float32), (4, .group, false, .float32),
                                                (4, .group, true, .float32), (4, .channel, false, .float32), (4, .group, false, .float16), (4, .channel, false, .float16)])
    func quantizedLinear(_ bits: Int, _ gran: QuantGranularity, _ sym: Bool, _ scaleType: ScaleType) throws {
        guard Self.available else { print("AMX bf16 unavailable on this CPU: skipped"); return }
        let m = 77, n = 130, k = 192
        let scheme = try QuantScheme(bits: bits, granularity: gran, groupSize: 64, symmetric: sym, scaleType: scaleType)
        let w = randomMatrix(n, k, seed: 21), x = randomMatrix(m, k, seed: 22)
        let t = try w.withUnsafeBufferPointer { try scheme.quantize($0, rows: n, cols: k, name: "w") }
        let layer = try QuantizedLinear(t, bias: nil)
        layer.options.amx = true
        layer.options.tileElements = 64 * k     // three tiles, the last partial
        #expect(layer.usesAMX(rows: m))
        #expect(!layer.usesAMX(rows: 8))
        var out = [Float](repeating: .nan, count: m * n)
        x.withUnsafeBufferPointer { xp in out.withUnsafeMutableBufferPointer { layer.forward(xp.baseAddress!, rows: m, into: $0.baseAddress!) } }
        let dq = t.dequantize()
        let ref = referenceMatmul(x, dq, m: m, n: n, k: k)
        let mag = referenceMatmul(x.map(abs), dq.map(abs), m: m, n: n, k: k)
        var maxErr = 0.0
        for i in 0 ..< m * n {
            let e = abs(Double(out[i]) - ref[i])
            maxErr = max(maxErr, e)
            #expect(e <= 0x1p-8 * mag[i] + 1e-5 * mag[i] + 1e-6, "out[\(i)]")
        }
        #expect(maxErr > 0, "bf16 rounding left no trace: the AMX path did not run")
        // Band: outputs 40..<100 into a buffer with row stride 80; columns 60..<80 untouched.
        var band = [Float](repeating: .nan, count: m * 80)
        x.withUnsafeBufferPointer { xp in band.withUnsafeMutableBufferPointer { layer.forward(xp.baseAddress!, rows: m, outputs: 40 ..< 100, into: $0.baseAddress!, ldo: 80) } }
        for i in 0 ..< m { for j in 0 ..< 80 {
            if j < 60 { #expect(band[i * 80 + j] == out[i * n + 40 + j], "band[\(i), \(j)]") } else { #expect(band[i * 80 + j].isNaN) }
        } }
        // The input packed once serves several bands (the streaming head): the same values.
        let packed = try #require(x.withUnsafeBufferPointer { layer.packInput($0.baseAddress!, rows: m) })
        #expect(x.withUnsafeBufferPointer { layer.packInput($0.baseAddress!, rows: 8) } == nil)
        var bands = [Float](repeating: .nan, count: m * 80)
        bands.withUnsafeMutableBufferPointer {
            layer.forward(packed: packed, outputs: 40 ..< 70, into: $0.baseAddress!, ldo: 80)
            layer.forward(packed: packed, outputs: 70 ..< 100, into: $0.baseAddress! + 30, ldo: 80)
        }
        for i in 0 ..< m { for j in 0 ..< 60 { #expect(bands[i * 80 + j] == band[i * 80 + j], "packed band[\(i), \(j)]") } }
        // Accumulating onto y0 gives y0 + the same product (one float32 add per entry).
        let y0 = (0 ..< m * n).map { Float($0 % 7) - 3 }
        func accumulated() -> [Float] {
            var acc = y0
            x.withUnsafeBufferPointer { xp in acc.withUnsafeMutableBufferPointer { layer.forward(xp.baseAddress!, rows: m, into: $0.baseAddress!, accumulate: true) } }
            return acc
        }
        var acc = accumulated()
        for i in 0 ..< m * n { #expect(acc[i] == y0[i] + out[i], "accumulated out[\(i)]") }
        // The sgemm path at the same size stays within float32 rounding, and accumulates too.
        layer.options.amx = false
        #expect(!layer.usesAMX(rows: m))
        x.withUnsafeBufferPointer { xp in out.withUnsafeMutableBufferPointer { layer.forward(xp.baseAddress!, rows: m, into: $0.baseAddress!) } }
        for i in 0 ..< m * n { #expect(abs(Double(out[i]) - ref[i]) <= 1e-5 * mag[i] + 1e-6) }
        acc = accumulated()
        for i in 0 ..< m * n { #expect(abs(Double(acc[i]) - Double(y0[i]) - ref[i]) <= 1e-5 * mag[i] + 1e-5) }
    }

    /// A quantized decoder scored on AMX tiles (q/k/v and gate/up packing their shared input
    /// once, o/down adding into the residual stream, the head's rows packed once per pass)
    /// against the same model on sgemm: 40 scored rows, so every product takes the tiles. bf16
    /// activations move each log-probability by well under 0.02 nats on this tiny model, and by
    /// something (the tiles really ran).
    @Test("quantized decoder on AMX = on sgemm", arguments: [(8, QuantGranularity.channel), (4, .group)])
    func decoderOnAMX(_ bits: Int, _ gran: QuantGranularity) throws {
        guard Self.available else { print("AMX bf16 unavailable on this CPU: skipped"); return }
        let root = temporaryDirectory("amx-decoder")
        defer { try? FileManager.default.removeItem(at: root) }
        let m = try tinyQuantizedDecoder(in: root, bits: bits, granularity: gran)
        #expect(m.weights.lmHead is QuantizedLinear)
        var g = SplitMix(state: 9)
        let tokens = (0 ..< 41).map { _ in Int(g.int8(0, 49)) }
        let request = ScoreRequest(tokens: tokens, scoreFrom: 1)
        m.kernelOptions.amx = true
        let tiles = try m.score([request])[0].logprobs
        m.kernelOptions.amx = false
        let sgemm = try m.score([request])[0].logprobs
        #expect(tiles.count == 40 && sgemm.count == 40)
        let diff = zip(tiles, sgemm).map { abs($0 - $1) }
        #expect(diff.max()! < 0.02, "largest log-probability change \(diff.max()!)")
        #expect(diff.max()! > 0, "bf16 rounding left no trace: the AMX path did not run")
    }

    /// The up projection in bands of columns (multiplied into silu(gate) band by band) gives the
    /// whole-product path's log-probabilities: bit for bit on AMX tiles (each output sums over K
    /// in the same order), within float32 rounding on sgemm; dense and 4-bit models, bands that
    /// do not divide F (40, 40, 16 of 96).
    @Test func upProjectionInBandsEqualsWholeProduct() throws {
        let root = temporaryDirectory("up-bands")
        defer { try? FileManager.default.removeItem(at: root) }
        let src = root.appendingPathComponent("f32"), out = root.appendingPathComponent("q")
        try writeTinyLlama(src, layerDims: [(4, 96), (4, 96)])
        let scheme = try QuantScheme(bits: 4, granularity: .group, groupSize: 32, symmetric: false)
        _ = try Quantizer.quantize(model: src, to: out, options: QuantizeOptions(scheme: scheme), progress: false)
        var g = SplitMix(state: 5)
        let requests = (0 ..< 3).map { _ in ScoreRequest(tokens: (0 ..< 41).map { _ in Int(g.int8(0, 49)) }, scoreFrom: 1) }
        for (dir, amx) in [(src, false), (out, false), (out, true)] where !amx || Self.available {
            let m = try ModelLoader.loadLlama(dir)
            m.kernelOptions.amx = amx
            m.mlpUpBand = 1 << 20
            let whole = try m.score(requests).flatMap(\.logprobs)
            m.mlpUpBand = 40
            let bands = try m.score(requests).flatMap(\.logprobs)
            #expect(whole.count == 120 && bands.count == 120)
            let diff = zip(whole, bands).map { abs($0 - $1) }.max()!
            if amx { #expect(diff == 0, "AMX: largest change \(diff)") } else { #expect(diff < 1e-5, "\(dir.lastPathComponent): largest change \(diff)") }
        }
    }

    /// 8-bit groups keep sgemm: a bf16 weight would move by up to a quarter step.
    @Test func int8GroupsStayOnSgemm() throws {
        let scheme = try QuantScheme(bits: 8, granularity: .group, groupSize: 32, symmetric: true)
        let w = randomMatrix(64, 64, seed: 1)
        let t = try w.withUnsafeBufferPointer { try scheme.quantize($0, rows: 64, cols: 64, name: "w") }
        let layer = try QuantizedLinear(t, bias: nil)
        layer.options.amx = true
        #expect(!layer.usesAMX(rows: 1000))
    }
}
