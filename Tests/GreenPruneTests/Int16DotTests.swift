import CQuantKernels
import Foundation
import GreenPrune
import Testing

/// The int16 path (CQuantKernels/int16_dot.c, AVX-512 VNNI or AVX2): the packing against the
/// codes it expands, each instruction set's kernel bit for bit against the portable C twin (int32
/// sums are exact and the float flush order is fixed) and against float64 products of the same
/// integers, and `QuantizedLinear` on it against the float32 dequantized path within int16
/// rounding. Tests that need a vector kernel are skipped (and say so) on CPUs with neither.
@Suite("int16 dot products (AVX-512 VNNI, AVX2)", .serialized)
struct Int16DotTests {
    static var available: Bool { KernelOptions.int16DotAvailable }

    /// Random weight storage for `n` rows of width `k`: int8 codes over the full range (8-bit) or
    /// the compressed-tensors words (4-bit), with per-group scales and zero points.
    struct Weights {
        let bits: Int, n: Int, k: Int, group: Int
        var rowBytes: Int { bits == 8 ? k : 4 * ((k + 7) / 8) }
        var gpr: Int { k / group }
        var data: [UInt8] = []
        var scales: [Float] = []
        var zeros: [Int8]?

        init(bits: Int, n: Int, k: Int, group: Int, asymmetric: Bool, extreme: Bool = false, seed: UInt64) {
            self.bits = bits; self.n = n; self.k = k; self.group = group
            var g = SplitMix(state: seed)
            let rb = bits == 8 ? k : 4 * ((k + 7) / 8)
            data = (0 ..< n * rb).map { _ in extreme ? (bits == 8 ? 0x80 : 0x00) : UInt8(truncatingIfNeeded: g.next()) }
            scales = (0 ..< n * (k / group)).map { _ in 0.01 + 0.02 * abs(g.float()) }
            if asymmetric {
                zeros = (0 ..< n * (k / group)).map { _ in extreme ? (bits == 8 ? 127 : 7) : (bits == 8 ? g.int8(-128, 127) : g.int8(-8, 7)) }
            }
        }

        /// q − z of value c of row r, from the storage directly.
        func value(_ r: Int, _ c: Int) -> Int {
            let z = Int(zeros?[r * gpr + c / group] ?? 0)
            if bits == 8 { return Int(Int8(bitPattern: data[r * rowBytes + c])) - z }
            let byte = data[r * rowBytes + c / 2]
            return Int(c % 2 == 0 ? byte & 0xF : byte >> 4) - 8 - z
        }

        func scale(_ r: Int, _ c: Int) -> Float { scales[r * gpr + c / group] }

        /// B and S for all rows: (Np/16) blocks from qk_int16_pack_q.
        func pack() -> (b: [Int16], s: [Float]) {
            let np = (n + 31) / 32 * 32, kp = (k + 31) / 32 * 32
            var b = [Int16](repeating: 0x5555, count: np * kp), s = [Float](repeating: .nan, count: np * gpr)
            for j in 0 ..< np / 16 {
                let lo = min(n, 16 * j), rows = max(0, min(n, lo + 16) - lo)
                let rc = data.withUnsafeBytes { d in
                    b.withUnsafeMutableBufferPointer { bp in s.withUnsafeMutableBufferPointer { sp in
                        scales.withUnsafeBufferPointer { sc in
                            let z = zeros.map { Array($0[min($0.count, lo * gpr)...]) }
                            return z.withUnsafeBufferPointerOrNil { zp in
                                qk_int16_pack_q(Int64(rows), Int64(k), Int32(bits), d.baseAddress! + lo * rowBytes, Int64(rowBytes),
                                                sc.baseAddress! + lo * gpr, zp, Int64(gpr), Int64(group),
                                                bp.baseAddress! + j * 16 * kp, sp.baseAddress! + j * 16 * gpr)
                            }
                        }
                    } }
                }
                precondition(rc == 0)
            }
            return (b, s)
        }
    }

    /// x (m, k) packed by qk_int16_pack_a: (Mp, Kp) int16 and Mp row scales.
    static func packA(_ x: [Float], m: Int, k: Int) -> (a: [Int16], rs: [Float]) {
        let mp = (m + 7) / 8 * 8, kp = (k + 31) / 32 * 32
        var a = [Int16](repeating: 0x5555, count: mp * kp), rs = [Float](repeating: .nan, count: mp)
        x.withUnsafeBufferPointer { xp in a.withUnsafeMutableBufferPointer { ap in rs.withUnsafeMutableBufferPointer { rp in
            qk_int16_pack_a(0, Int64(mp), Int64(m), Int64(k), xp.baseAddress!, Int64(k), ap.baseAddress!, rp.baseAddress!)
        } } }
        return (a, rs)
    }

    /// The packed block holds q − z of each value at B[j·16·Kp + 32p + 2c + e], zero past N and K,
    /// and the scales at S[(j·G + g)·16 + c]: the codes-to-block pass (K a multiple of 32, groups
    /// of 16·i: vectors) and the scalar one (other widths and groups) against the storage.
    @Test(arguments: [(8, 40, 576, 576, false), (8, 33, 192, 32, true), (4, 40, 192, 64, true), (4, 17, 90, 10, true),
                      (8, 20, 91, 91, false), (4, 30, 80, 16, false)])
    func packingMatchesCodes(_ bits: Int, _ n: Int, _ k: Int, _ group: Int, _ asym: Bool) {
        let w = Weights(bits: bits, n: n, k: k, group: group, asymmetric: asym, seed: UInt64(bits * 1000 + k))
        let (b, s) = w.pack()
        let np = (n + 31) / 32 * 32, kp = (k + 31) / 32 * 32
        for r in 0 ..< np { for c in 0 ..< kp {
            let got = Int(b[(r / 16) * 16 * kp + 32 * (c / 2) + 2 * (r % 16) + c % 2])
            let want = r < n && c < k ? w.value(r, c) : 0
            if got != want { Issue.record("b[\(r), \(c)] = \(got), want \(want)"); return }
        } }
        for r in 0 ..< np { for g in 0 ..< w.gpr {
            #expect(s[((r / 16) * w.gpr + g) * 16 + r % 16] == (r < n ? w.scales[r * w.gpr + g] : 0), "s[\(r), \(g)]")
        } }
    }

    /// Row quantization: |a·scale − x| ≤ scale/2 (to nearest) with scale = max|x| / 32767, the
    /// largest value at ±32767; zero rows and padding zero with scale 0; a row with inf or NaN
    /// gets scale NaN.
    @Test func activationRows() {
        let m = 5, k = 45
        var x = randomMatrix(m, k, seed: 61)
        for c in 0 ..< k { x[2 * k + c] = 0 }
        x[3 * k + 7] = .infinity
        x[4 * k + 3] = .nan
        let (a, rs) = Self.packA(x, m: m, k: k)
        let kp = 64
        for i in 0 ..< 2 {
            let mx = (0 ..< k).map { abs(x[i * k + $0]) }.max()!
            #expect(rs[i] == mx / 32767)
            #expect((0 ..< k).contains { abs(Int(a[i * kp + $0])) == 32767 })
            for c in 0 ..< k { #expect(abs(Float(a[i * kp + c]) * rs[i] - x[i * k + c]) <= rs[i] * 0.5001, "a[\(i), \(c)]") }
            for c in k ..< kp { #expect(a[i * kp + c] == 0) }
        }
        #expect(rs[2] == 0 && (0 ..< kp).allSatisfy { a[2 * kp + $0] == 0 })
        #expect(rs[3].isNaN && rs[4].isNaN)
        #expect(rs[5 ..< 8].allSatisfy { $0 == 0 } && a[5 * kp ..< 8 * kp].allSatisfy { $0 == 0 })
        // The AVX-512 pass (qk_int16_pack_a where the CPU has it) gives the portable loop's values,
        // ties included (x = (n + ½)·scale rounds to even both ways).
        var y = randomMatrix(11, 77, seed: 62)
        for c in 0 ..< 77 { y[5 * 77 + c] = Float(c % 9) - 4 }
        y[5 * 77] = 32767 / 4
        y[7 * 77 + 5] = -.infinity
        var pa = [Int16](repeating: 0x5555, count: 16 * 96), pr = [Float](repeating: 7, count: 16)
        y.withUnsafeBufferPointer { yp in pa.withUnsafeMutableBufferPointer { ap in pr.withUnsafeMutableBufferPointer { rp in
            qk_int16_pack_a_portable(0, 16, 11, 77, yp.baseAddress!, 77, ap.baseAddress!, rp.baseAddress!)
        } } }
        let (va, vr) = Self.packA(y, m: 11, k: 77)
        #expect(va == pa)
        #expect(zip(vr, pr).allSatisfy { $0.bitPattern == $1.bitPattern || ($0.isNaN && $1.isNaN) })
    }

    /// The vector instruction sets this CPU runs (AVX-512 CPUs run the AVX2 kernel too).
    static var isas: [Int8Kernels.ISA] { [.avx2, .avx512vnni].filter { $0.rawValue <= qk_int16_dot_isa() } }

    /// Each instruction set's packing and kernel against the portable ones, bit for bit, on the
    /// same inputs: activation rows (ties, inf, zero rows, widths off 8/16), codes (8- and 4-bit,
    /// groups of 16·i: vectors; others: the scalar pass) and products (rows off the 4- and 8-row
    /// blocks, columns off 16/32, small and per-row groups, zero points, accumulate).
    @Test(arguments: [(1, 1, 8, 64, 64, false), (13, 45, 4, 192, 32, true), (9, 50, 4, 90, 10, true),
                      (16, 70, 8, 600, 600, true), (37, 130, 8, 256, 64, true), (300, 40, 4, 96, 16, true),
                      (70, 64, 4, 1536, 128, true)])
    func everyInstructionSetEqualsPortable(_ m: Int, _ n: Int, _ bits: Int, _ k: Int, _ group: Int, _ asym: Bool) throws {
        guard !Self.isas.isEmpty else { print("no int16 kernel (AVX-512 VNNI or AVX2) on this CPU: skipped"); return }
        let w = Weights(bits: bits, n: n, k: k, group: group, asymmetric: asym, seed: UInt64(3 * m + n))
        let np = (n + 31) / 32 * 32, kp = (k + 31) / 32 * 32, mp = (m + 7) / 8 * 8, gpr = k / group
        func packQ(_ isa: Int8Kernels.ISA) -> (b: [Int16], s: [Float]) {
            var b = [Int16](repeating: 0x5555, count: np * kp), s = [Float](repeating: .nan, count: np * gpr)
            for j in 0 ..< np / 16 {
                let lo = min(n, 16 * j), rows = max(0, min(n, lo + 16) - lo)
                let z = w.zeros.map { Array($0[min($0.count, lo * gpr)...]) }
                let rc = w.data.withUnsafeBytes { d in w.scales.withUnsafeBufferPointer { sc in z.withUnsafeBufferPointerOrNil { zp in
                    b.withUnsafeMutableBufferPointer { bp in s.withUnsafeMutableBufferPointer { sp in
                        qk_int16_pack_q_isa(isa.rawValue, Int64(rows), Int64(k), Int32(bits), d.baseAddress! + lo * w.rowBytes,
                                            Int64(w.rowBytes), sc.baseAddress! + lo * gpr, zp, Int64(gpr), Int64(group),
                                            bp.baseAddress! + j * 16 * kp, sp.baseAddress! + j * 16 * gpr)
                    } }
                } } }
                #expect(rc == 0)
            }
            return (b, s)
        }
        var x = randomMatrix(m, k, seed: UInt64(5 + m))
        for c in 0 ..< k { x[c] = Float(c % 9) - 4 }          // ties at ±½ step
        if m > 4 { x[3 * k + k / 2] = .nan; for c in 0 ..< k { x[2 * k + c] = 0 } }
        func packA(_ isa: Int8Kernels.ISA) -> (a: [Int16], rs: [Float]) {
            var a = [Int16](repeating: 0x5555, count: mp * kp), rs = [Float](repeating: 7, count: mp)
            #expect(qk_int16_pack_a_isa(isa.rawValue, 0, Int64(mp), Int64(m), Int64(k), x, Int64(k), &a, &rs) == 0)
            return (a, rs)
        }
        let (b0, s0) = packQ(.portable), (a0, r0) = packA(.portable)
        let ldc = n + 3, c0 = (0 ..< m * ldc).map { Float($0 % 7) - 3 }
        func gemm(_ isa: Int8Kernels.ISA) -> [Float] {
            var c = c0
            let rc = qk_int16_gemm_isa(isa.rawValue, Int64(m), Int64(n), Int64(k), 0, Int64(m), 0, Int64(n), Int32(bits), a0, r0, b0, s0,
                                       Int64(gpr), Int64(group), 1, &c, Int64(ldc))
            #expect(rc == 0)
            return c
        }
        let want = gemm(.portable)
        #expect(want.contains { !$0.isNaN && $0 != 0 })
        for isa in Self.isas {
            let (b, s) = packQ(isa), (a, rs) = packA(isa)
            #expect(b == b0 && s == s0, "\(isa): packed codes differ from the portable pass")
            #expect(a == a0 && zip(rs, r0).allSatisfy { $0.bitPattern == $1.bitPattern || ($0.isNaN && $1.isNaN) },
                    "\(isa): packed activations differ from the portable pass")
            let got = gemm(isa)
            let bad = (0 ..< got.count).filter { got[$0].bitPattern != want[$0].bitPattern && !(got[$0].isNaN && want[$0].isNaN) }
            #expect(bad.isEmpty, "\(isa): \(bad.count) products differ, first at \(bad.first.map { "c[\($0 / ldc), \($0 % ldc)]" } ?? "")")
        }
    }

    /// The best kernel here equals the portable loop bit for bit (rows M = 1..40 and 300, past one
    /// 256-row pass; k in several chunks; widths off the 32
    /// blocks, N off the 16/32 column blocks, groups, zero points, added onto C with a row stride
    /// past N whose extra columns stay untouched) and the float64 value of the same integers
    /// within the float32 flushes' rounding; also split into row and column ranges.
    @Test(arguments: [(1, 1, 8, 64, 64, false), (7, 33, 8, 576, 576, false), (13, 45, 4, 192, 32, true),
                      (40, 96, 4, 384, 128, false), (9, 50, 4, 90, 10, true), (16, 70, 8, 600, 600, true),
                      (24, 130, 8, 256, 64, true), (3, 17, 4, 91, 91, true), (300, 40, 8, 96, 32, true)])
    func kernelEqualsPortable(_ m: Int, _ n: Int, _ bits: Int, _ k: Int, _ group: Int, _ asym: Bool) {
        guard Self.available else { print("no int16 kernel (AVX-512 VNNI or AVX2) on this CPU: skipped"); return }
        let w = Weights(bits: bits, n: n, k: k, group: group, asymmetric: asym, seed: UInt64(m * 100 + n))
        let (b, s) = w.pack()
        let x = randomMatrix(m, k, seed: UInt64(7 + m)), (a, rs) = Self.packA(x, m: m, k: k)
        let kp = (k + 31) / 32 * 32, ldc = n + 3
        let c0 = (0 ..< m * ldc).map { Float($0 % 7) - 3 }
        var vnni = c0, portable = c0
        let rv = vnni.withUnsafeMutableBufferPointer {
            qk_int16_gemm(Int64(m), Int64(n), Int64(k), 0, Int64(m), 0, Int64(n), Int32(bits), a, rs, b, s, Int64(w.gpr), Int64(group), 1,
                          $0.baseAddress!, Int64(ldc))
        }
        let rp = portable.withUnsafeMutableBufferPointer {
            qk_int16_gemm_portable(Int64(m), Int64(n), Int64(k), 0, Int64(m), 0, Int64(n), Int32(bits), a, rs, b, s, Int64(w.gpr),
                                   Int64(group), 1, $0.baseAddress!, Int64(ldc))
        }
        #expect(rv == 0 && rp == 0)
        for i in 0 ..< m * ldc where vnni[i].bitPattern != portable[i].bitPattern {
            Issue.record("c[\(i / ldc), \(i % ldc)]: \(vnni[i]) vs portable \(portable[i])"); return
        }
        for i in 0 ..< m { for j in 0 ..< ldc {
            let got = Double(vnni[i * ldc + j])
            if j >= n { #expect(got == Double(c0[i * ldc + j]), "c[\(i), \(j)] outside the product"); continue }
            var want = 0.0, mag = 0.0
            for c in 0 ..< k {
                let t = Double(a[i * kp + c]) * Double(w.value(j, c)) * Double(w.scale(j, c))
                want += t; mag += abs(t)
            }
            want = Double(c0[i * ldc + j]) + want * Double(rs[i])
            // One rounding per flush (at most k/2 segments) and the row scale, each ≤ 2⁻²⁴ of the
            // running magnitude, and the final add.
            let bound = (Double(k / 2) + 3) * 0x1p-24 * mag * Double(rs[i]) + 0x1p-23 * abs(want) + 1e-7
            #expect(abs(got - want) <= bound, "c[\(i), \(j)]: \(got) vs \(want)")
        } }
        // Row and column ranges: rows 8..<m and columns 32..<n overwrite only that part.
        if m > 8 && n > 32 {
            var part = [Float](repeating: .nan, count: m * ldc)
            _ = part.withUnsafeMutableBufferPointer {
                qk_int16_gemm(Int64(m), Int64(n), Int64(k), 8, Int64(m), 32, Int64(n), Int32(bits), a, rs, b, s, Int64(w.gpr), Int64(group), 0,
                              $0.baseAddress!, Int64(ldc))
            }
            for i in 0 ..< m { for j in 0 ..< ldc {
                let v = part[i * ldc + j]
                if i >= 8 && j >= 32 && j < n { #expect(v + c0[i * ldc + j] == vnni[i * ldc + j] || abs(v + c0[i * ldc + j] - vnni[i * ldc + j]) <= 1e-6 * abs(vnni[i * ldc + j]) + 1e-6) }
                else { #expect(v.isNaN, "part[\(i), \(j)] written outside its range") }
            } }
        }
        // Ranges must start on the 8-row and 32-column blocks; groups must divide K.
        var d = [Float](repeating: 0, count: m * n)
        #expect(qk_int16_gemm(Int64(m), Int64(n), Int64(k), 3, Int64(m), 0, Int64(n), Int32(bits), a, rs, b, s, Int64(w.gpr), Int64(group), 0, &d, Int64(n)) == -1)
        #expect(qk_int16_gemm(Int64(m), Int64(n), Int64(k), 0, Int64(m), 16, Int64(n), Int32(bits), a, rs, b, s, Int64(w.gpr), Int64(group), 0, &d, Int64(n)) == -1)
        #expect(qk_int16_gemm_portable(Int64(m), Int64(n), Int64(k), 0, Int64(m + 1), 0, Int64(n), Int32(bits), a, rs, b, s, Int64(w.gpr), Int64(group), 0, &d, Int64(n)) == -1)
    }

    /// The int32 overflow bound: every activation at ±32767 and every weight at |q − z| = 255
    /// (8-bit: code −128, zero point 127) or 15 (4-bit: nibble 0, zero point 7) over K = 1024, one
    /// group per row: the sums are flushed before they could wrap, so the result is the float64
    /// product to float rounding (a wrapped lane would be off by 2³² · scale).
    @Test(arguments: [8, 4])
    func extremeValuesDoNotOverflow(_ bits: Int) {
        guard Self.available else { print("no int16 kernel (AVX-512 VNNI or AVX2) on this CPU: skipped"); return }
        let m = 8, n = 32, k = 1024
        let w = Weights(bits: bits, n: n, k: k, group: k, asymmetric: true, extreme: true, seed: 71)
        #expect(abs(w.value(0, 0)) == (bits == 8 ? 255 : 15))
        let (b, s) = w.pack()
        let x = (0 ..< m * k).map { i in Float(i / k % 2 == 0 ? 1 : -1) }
        let (a, rs) = Self.packA(x, m: m, k: k)
        #expect(a[0] == 32767)
        var c = [Float](repeating: 0, count: m * n)
        _ = c.withUnsafeMutableBufferPointer {
            qk_int16_gemm(Int64(m), Int64(n), Int64(k), 0, Int64(m), 0, Int64(n), Int32(bits), a, rs, b, s, 1, Int64(k), 0, $0.baseAddress!, Int64(n))
        }
        for i in 0 ..< m { for j in 0 ..< n {
            let want = Double(k) * Double(a[i * k]) * Double(w.value(j, 0)) * Double(w.scales[j]) * Double(rs[i])
            #expect(abs(Double(c[i * n + j]) - want) <= 1e-5 * abs(want), "c[\(i), \(j)]: \(c[i * n + j]) vs \(want)")
        } }
    }

    /// QuantizedLinear on the int16 kernel against the same layer on sgemm (its float32
    /// dequantized weights): the only difference is each input rounded to its row's int16 step,
    /// so |Δy| ≤ step/2 · Σ|w| plus float32 rounding. 8-bit per row and 8-bit groups (which bf16
    /// paths refuse), 4-bit groups of 32/64/128, zero points, widths off the 32 blocks (90, 91:
    /// the scalar packing pass), 130 outputs, rows 8..136 (7 stays on sgemm), a bias, the band form
    /// with one packed input read by another layer, and the add into the output.
    @Test(arguments: [(8, QuantGranularity.channel, true, 192, 0), (8, .channel, false, 91, 0), (8, .group, true, 192, 32),
                      (4, .group, false, 192, 32), (4, .group, true, 192, 64), (4, .group, false, 384, 128), (4, .channel, false, 90, 0)])
    func quantizedLinearMatchesSgemm(_ bits: Int, _ gran: QuantGranularity, _ sym: Bool, _ k: Int, _ groupSize: Int) throws {
        guard Self.available else { print("no int16 kernel (AVX-512 VNNI or AVX2) on this CPU: skipped"); return }
        let n = 130
        let scheme = try QuantScheme(bits: bits, granularity: gran, groupSize: groupSize == 0 ? nil : groupSize, symmetric: sym)
        let w = randomMatrix(n, k, seed: 81)
        let t = try w.withUnsafeBufferPointer { try scheme.quantize($0, rows: n, cols: k, name: "w") }
        let bias = (0 ..< n).map { Float($0 % 11) * 0.1 - 0.5 }
        let layer = try QuantizedLinear(t, bias: bias), other = try QuantizedLinear(t, bias: bias), sgemm = try QuantizedLinear(t, bias: bias)
        for l in [layer, other] { l.options.amx = false; l.options.bf16Dot = false; l.options.int16Dot = true; l.options.tileElements = 64 * k }
        sgemm.options.amx = false; sgemm.options.bf16Dot = false; sgemm.options.int16Dot = false
        #expect(!layer.usesInt16Dot(rows: 7) && layer.floatKernelName(rows: 7) == "sgemm")
        let absW = t.dequantize().map(abs)
        let sumW = (0 ..< n).map { j in (0 ..< k).reduce(0.0) { $0 + Double(absW[j * k + $1]) } }
        // 136 rows: enough for every thread to take a share of each tile's columns.
        for m in [8, 9, 13, 40, 136] {
            #expect(layer.usesInt16Dot(rows: m) && layer.floatKernelName(rows: m) == "int16-dot" && !sgemm.usesInt16Dot(rows: m))
            let x = randomMatrix(m, k, seed: UInt64(82 + m))
            var out = [Float](repeating: .nan, count: m * n), ref = out
            x.withUnsafeBufferPointer { xp in
                out.withUnsafeMutableBufferPointer { layer.forward(xp.baseAddress!, rows: m, into: $0.baseAddress!) }
                ref.withUnsafeMutableBufferPointer { sgemm.forward(xp.baseAddress!, rows: m, into: $0.baseAddress!) }
            }
            for i in 0 ..< m {
                let step = Double((0 ..< k).map { abs(x[i * k + $0]) }.max()!) / 32767
                for j in 0 ..< n {
                    let mag = (0 ..< k).reduce(0.0) { $0 + Double(abs(x[i * k + $1]) * absW[j * k + $1]) }
                    let bound = 0.5 * step * sumW[j] * 1.001 + (Double(k) + 10) * 0x1p-24 * mag + 1e-6
                    #expect(abs(Double(out[i * n + j]) - Double(ref[i * n + j])) <= bound, "m \(m): y[\(i), \(j)] \(out[i * n + j]) vs sgemm \(ref[i * n + j])")
                }
            }
            #expect(zip(out, ref).contains { $0 != $1 }, "no int16 rounding: the int16 path did not run")
            // On the calling thread (a row band's product): a band of 3 rows (under the threaded
            // path's 8) and the rest give the whole product's bits, as each row's int16 scale and
            // sums are its own; so does an output band. On sgemm, the same product within rounding.
            #expect(layer.computesOnCallingThread && sgemm.computesOnCallingThread)
            let first = min(3, m)
            var split = [Float](repeating: .nan, count: m * n), cols = [Float](repeating: .nan, count: m * 80), serial = split
            x.withUnsafeBufferPointer { xp in
                split.withUnsafeMutableBufferPointer { o in
                    layer.forward(onCallingThread: xp.baseAddress!, rows: first, into: o.baseAddress!)
                    layer.forward(onCallingThread: xp.baseAddress! + first * k, rows: m - first, into: o.baseAddress! + first * n)
                }
                cols.withUnsafeMutableBufferPointer {
                    layer.forward(onCallingThread: xp.baseAddress!, rows: m, outputs: 40 ..< 100, into: $0.baseAddress!, ldo: 80, accumulate: false)
                }
                serial.withUnsafeMutableBufferPointer { sgemm.forward(onCallingThread: xp.baseAddress!, rows: m, into: $0.baseAddress!) }
            }
            #expect(split == out, "m \(m): int16 on the calling thread")
            for i in 0 ..< m { for j in 0 ..< 80 {
                if j < 60 { #expect(cols[i * 80 + j] == out[i * n + 40 + j], "m \(m): band[\(i), \(j)]") } else { #expect(cols[i * 80 + j].isNaN) }
            } }
            for i in 0 ..< m { for j in 0 ..< n {
                // Two float32 sums of the same k products in different orders: k ulps of Σ|x·w|.
                let mag = (0 ..< k).reduce(0.0) { $0 + Double(abs(x[i * k + $1]) * absW[j * k + $1]) }
                #expect(abs(Double(serial[i * n + j]) - Double(ref[i * n + j])) <= Double(k) * 0x1p-24 * mag + 1e-6,
                        "m \(m): sgemm on the calling thread, y[\(i), \(j)]")
            } }
            // Band 40..<100 (row stride 80) from an input packed once by `layer`, read by `other`.
            let packed = try #require(x.withUnsafeBufferPointer { layer.packInput($0.baseAddress!, rows: m) })
            #expect(layer.sharesPackedInput(with: other, rows: m) && !layer.sharesPackedInput(with: sgemm, rows: m))
            var band = [Float](repeating: .nan, count: m * 80)
            band.withUnsafeMutableBufferPointer {
                other.forward(packed: packed, outputs: 40 ..< 70, into: $0.baseAddress!, ldo: 80)
                other.forward(packed: packed, outputs: 70 ..< 100, into: $0.baseAddress! + 30, ldo: 80)
            }
            for i in 0 ..< m { for j in 0 ..< 80 {
                if j < 60 { #expect(abs(band[i * 80 + j] - out[i * n + 40 + j]) <= 1e-6 * abs(out[i * n + 40 + j]) + 1e-6, "band[\(i), \(j)]") }
                else { #expect(band[i * 80 + j].isNaN) }
            } }
            // Added in place: y0 + the same product and bias, one float32 add per entry at most
            // (the bias is added before or after the product).
            let y0 = (0 ..< m * n).map { Float($0 % 7) - 3 }
            var acc = y0
            _ = x.withUnsafeBufferPointer { xp in acc.withUnsafeMutableBufferPointer { layer.forward(xp.baseAddress!, rows: m, addingInto: $0.baseAddress!) } }
            for i in 0 ..< m * n { #expect(abs(acc[i] - (y0[i] + out[i])) <= 2e-6 * (abs(y0[i]) + abs(out[i]) + 1) + 1e-6, "accumulated out[\(i)]") }
            var serialAcc = y0
            x.withUnsafeBufferPointer { xp in serialAcc.withUnsafeMutableBufferPointer { layer.forward(onCallingThread: xp.baseAddress!, rows: m, into: $0.baseAddress!, accumulate: true) } }
            #expect(serialAcc == acc, "m \(m): added in place on the calling thread")
        }
    }

    /// A quantized decoder scored on the int16 kernel (q/k/v and gate/up sharing one packed input,
    /// o/down adding into the residual stream, the head's rows packed once per pass) against the
    /// same model on sgemm: int16 activations move each log-probability by well under 0.002 nats
    /// on this tiny model, and by something (the kernel really ran).
    @Test(arguments: [(8, QuantGranularity.channel), (4, .group), (8, .group)])
    func decoderOnInt16DotEqualsSgemm(_ bits: Int, _ gran: QuantGranularity) throws {
        guard Self.available else { print("no int16 kernel (AVX-512 VNNI or AVX2) on this CPU: skipped"); return }
        let root = temporaryDirectory("int16dot-decoder")
        defer { try? FileManager.default.removeItem(at: root) }
        let m = try tinyQuantizedDecoder(in: root, bits: bits, granularity: gran)
        let head = try #require(m.weights.lmHead as? QuantizedLinear)
        var g = SplitMix(state: 23)
        let tokens = (0 ..< 41).map { _ in Int(g.int8(0, 49)) }
        let request = ScoreRequest(tokens: tokens, scoreFrom: 1)
        m.kernelOptions.amx = false
        m.kernelOptions.bf16Dot = false
        m.kernelOptions.int16Dot = true
        let dot = try m.score([request])[0].logprobs
        #expect(head.usesInt16Dot(rows: 40))
        m.kernelOptions.int16Dot = false
        let sgemm = try m.score([request])[0].logprobs
        #expect(!head.usesInt16Dot(rows: 40))
        #expect(dot.count == 40 && sgemm.count == 40)
        let diff = zip(dot, sgemm).map { abs($0 - $1) }
        #expect(diff.max()! < 0.002, "largest log-probability change \(diff.max()!)")
        #expect(diff.max()! > 0, "int16 rounding left no trace: the int16 path did not run")
    }

    /// A quantized decoder (every projection and the head) in row bands, each band's products on
    /// the int16 kernel on its own thread, against one threaded product per projection: the
    /// log-probabilities are the same bits, biases or not (every row's int16 scale and sums are
    /// its own, each bias is added in the same order, and nothing else in a layer depends on how
    /// rows are split).
    @Test(arguments: [(8, QuantGranularity.channel, false), (4, .group, false), (8, .group, true)])
    func decoderRowBandsEqualWholeProducts(_ bits: Int, _ gran: QuantGranularity, _ biases: Bool) throws {
        guard Self.available else { print("no int16 kernel (AVX-512 VNNI or AVX2) on this CPU: skipped"); return }
        let root = temporaryDirectory("int16dot-bands")
        defer { try? FileManager.default.removeItem(at: root) }
        let src = root.appendingPathComponent("f32"), out = root.appendingPathComponent("q")
        try writeTinyLlama(src, layerDims: [(4, 96), (4, 96), (2, 64)], seed: 9, biases: biases)
        let scheme = try QuantScheme(bits: bits, granularity: gran, groupSize: 32, symmetric: bits == 8)
        _ = try Quantizer.quantize(model: src, to: out, options: QuantizeOptions(scheme: scheme, includeHead: true), progress: false)
        let m = try ModelLoader.loadLlama(out)
        m.kernelOptions.int16Dot = true
        #expect(m.weights.layers.allSatisfy { $0.linears.allSatisfy { $0.layer.weightStorage == .quantized(bits: bits) } })
        #expect(m.weights.layers.allSatisfy { $0.linears.allSatisfy { ($0.layer.bias != nil) == biases } })
        var g = SplitMix(state: 29)
        let requests = (0 ..< 4).map { _ in ScoreRequest(tokens: (0 ..< 60).map { _ in Int(g.next() % 50) }, scoreFrom: 1) }
        let (banded, whole) = try ModelsFixtures.inAndOutOfRowBands(m) { try m.score(requests) }
        for (i, (a, b)) in zip(banded, whole).enumerated() {
            #expect(a.logprobs.count == 59 && b.logprobs.count == 59)
            let d = ModelsFixtures.maxAbsDiff(a.logprobs, b.logprobs)
            #expect(a.logprobs == b.logprobs, "request \(i): max |Δ logprob| = \(d)")
        }
        // Int8 activations keep their own threaded path.
        for l in m.weights.layers { for p in l.linears { (p.layer as? QuantizedLinear)?.activations = .int8 } }
        #expect(!m.weights.layers[0].qProj.computesOnCallingThread)
    }

    /// The run-time choice: a CPU with AVX-512 VNNI or AVX2 reports a positive integer-step/FMA
    /// rate ratio, one without reports 0. The default is on without timing where /proc/cpuinfo
    /// names a CPU known to run the kernel fast (AVX-512 VNNI; AVX2 on AMD Zen, families 23, 25
    /// and 26), otherwise it follows the ratio; `GREENPRUNE_INT16_DOT=0` turns it off.
    @Test func defaultFollowsMeasuredSpeedup() throws {
        #expect((KernelOptions.int16DotSpeedup > 0) == Self.available)
        #expect(KernelOptions.standard.int16Dot
                == (Self.available && (KernelOptions.int16DotKnownFast || KernelOptions.int16DotSpeedup >= 1.25)
                    && GreenPruneEnvironment.process.int16Dot))
        #if arch(x86_64)
        let cpu = try #require(CPUInfo.first)
        let vnni = cpu.flags.isSuperset(of: ["avx512f", "avx512bw", "avx512vl", "avx512_vnni"])
        #expect(KernelOptions.int16DotKnownFast == (vnni || (cpu.isAMD([23, 25, 26]) && cpu.flags.isSuperset(of: ["avx2", "fma"]))),
                "vendor \(cpu.vendor), family \(cpu.family)")
        #endif
        #expect(!GreenPruneEnvironment(["GREENPRUNE_INT16_DOT": "0"]).int16Dot && GreenPruneEnvironment([:]).int16Dot)
        #expect(Self.available == (KernelOptions.int16DotISA != .portable))
        print("int16 kernel on \(KernelOptions.int16DotISA): multiply-adds per second ×\(KernelOptions.int16DotSpeedup) of float32 FMA; int16Dot by default: \(KernelOptions.standard.int16Dot)")
    }
}

private extension Optional where Wrapped == [Int8] {
    func withUnsafeBufferPointerOrNil<R>(_ body: (UnsafePointer<Int8>?) -> R) -> R {
        guard let a = self else { return body(nil) }
        return a.withUnsafeBufferPointer { body($0.baseAddress) }
    }
}
