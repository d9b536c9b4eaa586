import Foundation
import GreenPrune
import Testing

/// GPTQ against closed-form cases and against the quantity it minimises.
@Suite("GPTQ")
struct GPTQTests {
    /// x (m, k) with correlated columns: x = z · A, z uniform, A random with a strong diagonal.
    static func correlatedInputs(m: Int, k: Int, seed: UInt64) -> [Float] {
        var g = SplitMix(state: seed)
        let z = (0 ..< m * k).map { _ in g.float() }
        let a = (0 ..< k * k).map { i in (i % (k + 1) == 0 ? 1 : 0) + 0.6 * g.float() }
        var x = [Float](repeating: 0, count: m * k)
        for i in 0 ..< m { for j in 0 ..< k {
            var s: Float = 0
            for c in 0 ..< k { s += z[i * k + c] * a[c * k + j] }
            x[i * k + j] = s
        } }
        return x
    }

    static func gram(_ x: [Float], m: Int, k: Int) -> [Float] {
        let acc = HessianAccumulator(cols: k)
        x.withUnsafeBufferPointer { acc.add($0.baseAddress!, rows: m) }
        return acc.sum
    }

    @Test("the Gram accumulator equals Σ xᵀx computed directly, over several calls")
    func gramMatrix() {
        let m = 37, k = 11
        let x = Self.correlatedInputs(m: m, k: k, seed: 3)
        let acc = HessianAccumulator(cols: k)
        x.withUnsafeBufferPointer { p in
            acc.add(p.baseAddress!, rows: 20)
            acc.add(p.baseAddress! + 20 * k, rows: m - 20)
        }
        #expect(acc.rows == m)
        for i in 0 ..< k { for j in 0 ..< k {
            var s = 0.0
            for r in 0 ..< m { s += Double(x[r * k + i]) * Double(x[r * k + j]) }
            #expect(abs(Double(acc.sum[i * k + j]) - s) <= 1e-4 * max(1, abs(s)))
            #expect(abs(Double(acc.hessian[i * k + j]) - 2 * s / Double(m)) <= 1e-4 * max(1, abs(2 * s / Double(m))))
        } }
    }

    @Test("inverse Cholesky: UᵀU = (H + λI)⁻¹ for a random SPD matrix")
    func inverseCholesky() throws {
        let k = 9
        let h = Self.gram(Self.correlatedInputs(m: 50, k: k, seed: 5), m: 50, k: k)
        let (u, dead) = try GPTQ.inverseCholesky(h, cols: k, dampening: 0.01, name: "h")
        #expect(!dead.contains(true))
        var mean = 0.0
        for i in 0 ..< k { mean += Double(h[i * k + i]) }
        mean /= Double(k)
        // (UᵀU)·(H + λI) = I
        for i in 0 ..< k { for j in 0 ..< k {
            var s = 0.0
            for c in 0 ..< k {
                var inv = 0.0
                for r in 0 ..< k { inv += Double(u[r * k + i]) * Double(u[r * k + c]) }
                s += inv * (Double(h[c * k + j]) + (c == j ? 0.01 * mean : 0))
            }
            #expect(abs(s - (i == j ? 1 : 0)) < 1e-4, "(\(i),\(j)) = \(s)")
        } }
        for i in 0 ..< k { for j in 0 ..< i { #expect(u[i * k + j] == 0) } }
    }

    @Test("with uncorrelated inputs (diagonal H) GPTQ is round-to-nearest, code for code", arguments: [
        (8, QuantGranularity.channel, nil as Int?, true), (4, .group, 32, true), (4, .group, 32, false), (8, .tensor, nil, false),
    ])
    func diagonalHessianIsRTN(bits: Int, granularity: QuantGranularity, group: Int?, symmetric: Bool) throws {
      for actOrder in [false, true] {
        let rows = 6, cols = 64
        let scheme = try QuantScheme(bits: bits, granularity: granularity, groupSize: group, symmetric: symmetric)
        let w = randomMatrix(rows, cols, seed: 11)
        var h = [Float](repeating: 0, count: cols * cols)
        for i in 0 ..< cols { h[i * cols + i] = Float(1 + i % 5) }
        let rtn = try w.withUnsafeBufferPointer { try scheme.quantize($0, rows: rows, cols: cols, name: "w") }
        let g = try w.withUnsafeBufferPointer { try GPTQ.quantize($0, rows: rows, cols: cols, hessian: h, scheme: scheme, blockSize: 16, actOrder: actOrder, name: "w") }
        #expect(g == rtn, "actOrder \(actOrder)")
      }
    }

    @Test("on correlated inputs GPTQ's layer loss ‖X(W−Ŵ)ᵀ‖² is well below round-to-nearest's", arguments: [
        (8, QuantGranularity.channel, nil as Int?), (4, .group, 32), (4, .channel, nil),
    ])
    func lowerReconstructionLoss(bits: Int, granularity: QuantGranularity, group: Int?) throws {
      for actOrder in [false, true] {
        let rows = 24, cols = 64, m = 400
        let scheme = try QuantScheme(bits: bits, granularity: granularity, groupSize: group, symmetric: true)
        let w = randomMatrix(rows, cols, seed: 21)
        let x = Self.correlatedInputs(m: m, k: cols, seed: 22)
        let h = Self.gram(x, m: m, k: cols)
        let rtn = try w.withUnsafeBufferPointer { try scheme.quantize($0, rows: rows, cols: cols, name: "w") }
        let g = try w.withUnsafeBufferPointer { try GPTQ.quantize($0, rows: rows, cols: cols, hessian: h, scheme: scheme, blockSize: 16, actOrder: actOrder, name: "w") }
        let lossR = w.withUnsafeBufferPointer { GPTQ.reconstructionLoss($0, rtn.dequantize(), rows: rows, cols: cols, hessian: h) }
        let lossG = w.withUnsafeBufferPointer { GPTQ.reconstructionLoss($0, g.dequantize(), rows: rows, cols: cols, hessian: h) }
        // The loss is also Σ‖x·(W − Ŵ)ᵀ‖² over the calibration rows: check it directly once.
        let dq = g.dequantize()
        let direct = referenceMatmul(x, zip(w, dq).map { $0 - $1 }, m: m, n: rows, k: cols).reduce(0) { $0 + $1 * $1 }
        #expect(abs(direct - lossG) <= 1e-3 * direct)
        #expect(lossG < 0.7 * lossR, "GPTQ \(lossG) vs RTN \(lossR)")
        // Still a valid code book: every code in range, scales positive.
        #expect(g.codes.allSatisfy { Int($0) >= scheme.qmin && Int($0) <= scheme.qmax })
        #expect(g.scales.allSatisfy { $0 > 0 })
      }
    }

    @Test("a never-active input column is zeroed and the rest still quantizes")
    func deadColumn() throws {
        let rows = 4, cols = 32
        let scheme = try QuantScheme(bits: 8, granularity: .channel)
        let w = randomMatrix(rows, cols, seed: 31)
        var x = Self.correlatedInputs(m: 100, k: cols, seed: 32)
        for r in 0 ..< 100 { x[r * cols + 5] = 0 }
        let h = Self.gram(x, m: 100, k: cols)
        for actOrder in [false, true] {
            let g = try w.withUnsafeBufferPointer { try GPTQ.quantize($0, rows: rows, cols: cols, hessian: h, scheme: scheme, actOrder: actOrder, name: "w") }
            for r in 0 ..< rows { #expect(g.codes[r * cols + 5] == 0) }
        }
    }

    @Test("options reject impossible values with the flag's name")
    func options() {
        #expect(throws: InputError.self) { try GPTQOptions(calibration: "c", numExamples: 0) }
        #expect(throws: InputError.self) { try GPTQOptions(calibration: "c", dampening: 0) }
        #expect(throws: InputError.self) { try GPTQOptions(calibration: "c", calibrationLength: 1) }
    }
}
