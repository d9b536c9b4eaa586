import Foundation
import GreenPrune
import Testing

/// Kernel paths are chosen per model (`LlamaModel.kernelOptions`), not per process: the options
/// reach every quantized layer, including layers swapped in later, and two models loaded from
/// the same directory with different options score independently and agree.
@Suite struct KernelOptionsTests {
    @Test func optionsReachEveryQuantizedLayerAndKeepTheNumbers() throws {
        let root = temporaryDirectory("kernel-options")
        defer { try? FileManager.default.removeItem(at: root) }
        let src = root.appendingPathComponent("f32"), out = root.appendingPathComponent("q")
        try writeTinyLlama(src, layerDims: [(4, 96), (4, 96)])
        let scheme = try QuantScheme(bits: 4, granularity: .group, groupSize: 32, symmetric: false)
        _ = try Quantizer.quantize(model: src, to: out, options: QuantizeOptions(scheme: scheme, includeHead: true), progress: false)

        let standard = try ModelLoader.loadLlama(out)
        let small = try ModelLoader.loadLlama(out)
        // 3 rows of a 64-wide layer per tile: many partial tiles; per head, in turn.
        small.kernelOptions = KernelOptions(amx: false, tileElements: 3 * 64, groupedHeads: false, parallelOverHeads: false)
        let layers = small.weights.layers.flatMap { $0.linears.map(\.layer) } + [small.weights.lmHead]
        let quantized = layers.compactMap { $0 as? QuantizedLinear }
        #expect(quantized.count == layers.count)
        #expect(quantized.allSatisfy { $0.options == small.kernelOptions })
        // The other model's layers keep the defaults.
        #expect((standard.weights.layers[0].qProj as? QuantizedLinear)?.options == KernelOptions.standard)

        var g = SplitMix(state: 3)
        let requests = (0 ..< 2).map { _ in ScoreRequest(tokens: (0 ..< 41).map { _ in Int(g.int8(0, 49)) }, scoreFrom: 1) }
        // Where AMX or the int16 kernel runs by default, the reference is the standard model on
        // sgemm (int16 rounding would turn the other path's float32 rounding of the activations
        // into whole int16 steps).
        standard.kernelOptions.amx = false
        standard.kernelOptions.int16Dot = false
        small.kernelOptions.int16Dot = false
        let reference = try standard.score(requests).flatMap(\.logprobs)
        let other = try small.score(requests).flatMap(\.logprobs)
        #expect(reference.count == 80 && other.count == 80)
        let diff = zip(reference, other).map { abs($0 - $1) }.max()!
        #expect(diff < 1e-5, "largest log-probability change \(diff)")

        // A layer swapped in after the options were set receives them.
        let w = [Float](repeating: 0.5, count: 64 * 64)
        let fresh = try QuantizedLinear(try w.withUnsafeBufferPointer { try scheme.quantize($0, rows: 64, cols: 64, name: "w") })
        #expect(fresh.options == KernelOptions.standard)
        small.weights.layers[0].setLinear(.o, fresh)
        #expect(fresh.options == small.kernelOptions)
    }
}
