import Foundation
import Testing
import GreenPrune

/// The capabilities `LlamaModel` asks of a linear layer through `LinearLayer` (output bands,
/// adding into the residual stream, packed shared inputs): what a layer that implements none of
/// them gets, and what `DenseLinear` and `QuantizedLinear` give, against closed forms.
@Suite struct LinearCapabilitiesTests {
    /// A layer that only multiplies (as a calibration recorder does): every capability is off.
    final class PlainLayer: LinearLayer {
        let inner: DenseLinear
        init(_ inner: DenseLinear) { self.inner = inner }
        var inFeatures: Int { inner.inFeatures }
        var outFeatures: Int { inner.outFeatures }
        var residentBytes: Int { inner.residentBytes }
        func forward(_ x: UnsafePointer<Float>, rows m: Int, into out: UnsafeMutablePointer<Float>) { inner.forward(x, rows: m, into: out) }
    }

    // W = [[1, 2], [3, 4], [5, 6]] (3 outputs, 2 inputs), x = [[1, -1], [2, 0.5]].
    static let w: [Float] = [1, 2, 3, 4, 5, 6]
    static let x: [Float] = [1, -1, 2, 0.5]
    // x · Wᵀ by hand.
    static let product: [Float] = [-1, -1, -1, 3, 8, 13]

    @Test func defaultsAreOff() {
        let layer: any LinearLayer = PlainLayer(DenseLinear(weight: Self.w, outFeatures: 3, inFeatures: 2))
        #expect(!layer.computesOutputBands)
        var out: [Float] = [7, 7, 7, 7, 7, 7]
        let added = Self.x.withUnsafeBufferPointer { xp in out.withUnsafeMutableBufferPointer { layer.forward(xp.baseAddress!, rows: 2, addingInto: $0.baseAddress!) } }
        #expect(!added)
        #expect(out == [7, 7, 7, 7, 7, 7])
        #expect(Self.x.withUnsafeBufferPointer { layer.packInput($0.baseAddress!, rows: 64) } == nil)
        #expect(!layer.sharesPackedInput(with: layer, rows: 64))
        // The band through the whole product.
        var band: [Float] = [0, 0, 0, 0]
        Self.x.withUnsafeBufferPointer { xp in band.withUnsafeMutableBufferPointer { layer.forward(xp.baseAddress!, rows: 2, outputs: 1 ..< 3, into: $0.baseAddress!, ldo: 2) } }
        #expect(band == [-1, -1, 8, 13])
    }

    @Test func denseAddsInPlaceWithoutBias() {
        let plain: any LinearLayer = DenseLinear(weight: Self.w, outFeatures: 3, inFeatures: 2)
        #expect(plain.computesOutputBands)
        var out: [Float] = [1, 2, 3, 4, 5, 6]
        let added = Self.x.withUnsafeBufferPointer { xp in out.withUnsafeMutableBufferPointer { plain.forward(xp.baseAddress!, rows: 2, addingInto: $0.baseAddress!) } }
        #expect(added)
        #expect(out == zip([1, 2, 3, 4, 5, 6], Self.product).map { $0 + $1 })
        #expect(Self.x.withUnsafeBufferPointer { plain.packInput($0.baseAddress!, rows: 64) } == nil)

        let biased: any LinearLayer = DenseLinear(weight: Self.w, bias: [1, 1, 1], outFeatures: 3, inFeatures: 2)
        var untouched: [Float] = [1, 2, 3, 4, 5, 6]
        let addedBiased = Self.x.withUnsafeBufferPointer { xp in untouched.withUnsafeMutableBufferPointer { biased.forward(xp.baseAddress!, rows: 2, addingInto: $0.baseAddress!) } }
        #expect(!addedBiased)
        #expect(untouched == [1, 2, 3, 4, 5, 6])
    }

    /// A quantized layer adds in place (out₀ + its own product, bias included) and shares packed
    /// inputs only with quantized layers of its width that pack the rows the same way (AMX, or the
    /// bf16 or int16 dot-product kernels).
    @Test func quantizedAddsInPlaceAndSharesOnlyWithItsKind() throws {
        let k = 64, n = 48, m = 40
        let scheme = try QuantScheme(bits: 8, granularity: .channel, groupSize: 64, symmetric: true, scaleType: .float32)
        let w = randomMatrix(n, k, seed: 11), x = randomMatrix(m, k, seed: 12)
        let bias = (0 ..< n).map { Float($0) * 0.1 }
        let t = try w.withUnsafeBufferPointer { try scheme.quantize($0, rows: n, cols: k, name: "w") }
        let q = try QuantizedLinear(t, bias: bias)
        let layer: any LinearLayer = q
        #expect(layer.computesOutputBands)
        var product = [Float](repeating: 0, count: m * n)
        x.withUnsafeBufferPointer { xp in product.withUnsafeMutableBufferPointer { layer.forward(xp.baseAddress!, rows: m, into: $0.baseAddress!) } }
        let start = randomMatrix(m, n, seed: 13)
        var out = start
        let added = x.withUnsafeBufferPointer { xp in out.withUnsafeMutableBufferPointer { layer.forward(xp.baseAddress!, rows: m, addingInto: $0.baseAddress!) } }
        #expect(added)
        for i in 0 ..< m * n { #expect(abs(out[i] - (start[i] + product[i])) <= 1e-4 * (abs(start[i]) + abs(product[i]) + 1), "out[\(i)]") }

        let dense = DenseLinear(weight: t.dequantize(), outFeatures: n, inFeatures: k)
        #expect(!layer.sharesPackedInput(with: dense, rows: m))
        #expect(!dense.sharesPackedInput(with: layer, rows: m))
        let narrower = try QuantizedLinear(try w.withUnsafeBufferPointer { try scheme.quantize($0, rows: 2 * n, cols: k / 2, name: "w2") }, bias: nil)
        #expect(!layer.sharesPackedInput(with: narrower, rows: m))
        let sibling = try QuantizedLinear(t, bias: nil)
        let packs = q.usesAMX(rows: m) || q.usesBF16Dot(rows: m) || q.usesInt16Dot(rows: m)
        #expect(layer.sharesPackedInput(with: sibling, rows: m) == packs)
        // Packs exactly when the rows run on AMX or a dot-product kernel; the packed product
        // equals the plain one.
        let packed = x.withUnsafeBufferPointer { layer.packInput($0.baseAddress!, rows: m) }
        #expect((packed != nil) == packs)
        if let packed {
            var viaPacked = [Float](repeating: 0, count: m * n)
            viaPacked.withUnsafeMutableBufferPointer { layer.forward(packed: packed, outputs: 0 ..< n, into: $0.baseAddress!, ldo: n) }
            #expect(viaPacked == product)
        }
    }
}
