import Foundation
import GreenPrune
import Testing

/// Quantization as a transform of the loaded model: the quantized model in memory is the model
/// its written directory loads as, so evaluating it without writing gives the same numbers.
@Suite("Quantized model in memory")
struct QuantizedModelTests {
    /// SmolLM2 quantized in memory holds, bit for bit, the weights of the directory written from
    /// it and loaded back, and scores a few windows as it does (within float32 rounding): INT8
    /// per channel with a quantized copy of the tied head (the config untied), and INT4 groups of
    /// 64 with zero points and the quantized token table (read row by row, and the tied head).
    @Test(arguments: [(8, QuantGranularity.channel, true, false, true), (4, .group, false, true, false)])
    func smolLM2InMemoryEqualsWritten(_ bits: Int, _ gran: QuantGranularity, _ sym: Bool, _ embeddings: Bool, _ head: Bool) throws {
        let src = try ModelsFixtures.model(Paths.defaultDecoder)
        let root = temporaryDirectory("inmem")
        defer { try? FileManager.default.removeItem(at: root) }
        let scheme = try QuantScheme(bits: bits, granularity: gran, groupSize: 64, symmetric: sym)
        // Three of the 30 layers quantized keep the test short; the other 27 stay float.
        let options = QuantizeOptions(scheme: scheme, skipFirst: 1, skipLast: 26, includeHead: head, includeEmbeddings: embeddings)
        let bundle = try ModelLoader.load(src)
        let text = """
        The tower is 324 metres tall, about the same height as an 81-storey building, and the tallest structure in Paris. \
        Its base is square, measuring 125 metres on each side. During its construction, the Eiffel Tower surpassed the \
        Washington Monument to become the tallest man-made structure in the world.
        """
        let ids = try bundle.requireTokenizer().encode(text, addSpecialTokens: false)
        let windows = stride(from: 0, to: ids.count - 16, by: 16).prefix(3).map { ScoreRequest(tokens: Array(ids[$0 ..< $0 + 16]), scoreFrom: 1) }
        #expect(windows.count == 3)
        let float = try bundle.llama().score(windows)

        let quantized = try Quantizer.quantize(bundle, options: options, progress: false)
        let inMemory = try quantized.bundle.llama()
        #expect(inMemory === (try bundle.llama()))
        let expectedModules = 3 * 7 + (embeddings ? 1 : 0) + (head ? 1 : 0)
        #expect(quantized.modules.count == expectedModules && quantized.layers.count == expectedModules)
        #expect(inMemory.weights.layers[1].linears.allSatisfy { $0.layer.weightStorage == .quantized(bits: bits) })
        #expect(inMemory.weights.layers[0].linears.allSatisfy { $0.layer.weightStorage == .float32 })
        let out = root.appendingPathComponent("q")
        try quantized.write(to: out, start: Date(), progress: false)
        let reloaded = try ModelLoader.loadLlama(out)
        #expect(reloaded.weights.tied == inMemory.weights.tied)
        // The written model is the in-memory one: every linear's dequantized matrix, the output
        // layer's and the token rows read back bit for bit.
        #expect(try sameWeights(inMemory.weights, reloaded.weights))
        #expect(try !sameWeights(inMemory.weights, ModelLoader.loadLlama(src).weights))
        // And the loader reads it the same way: the same log-probabilities bit for bit, on the
        // int16 kernel (where the CPU has it) and on float32 products. Tests running beside this
        // one cannot move them: a product never runs during another suite's single-threaded
        // section (`BLAS.whileSingleThreaded`), where OpenBLAS would round it differently.
        let int16 = inMemory.kernelOptions.int16Dot
        for m in [inMemory, reloaded] { m.kernelOptions.int16Dot = false }
        let (a, b) = (try inMemory.score(windows), try reloaded.score(windows))
        #expect(maxGap(a, b) == 0, "in-memory and written models differ by \(maxGap(a, b))")
        if int16 {
            for m in [inMemory, reloaded] { m.kernelOptions.int16Dot = true }
            let gap = maxGap(try inMemory.score(windows), try reloaded.score(windows))
            #expect(gap == 0, "int16 kernel: in-memory and written models differ by \(gap)")
        }
        // And the quantization did something, by more than the bound above.
        #expect(maxGap(a, float) > 1e-2, "quantizing moved the log-probabilities by \(maxGap(a, float)) only")
    }

    /// MiniLM quantized in memory (INT8 per channel, its token table too) embeds exactly as the
    /// directory written from it does once loaded.
    @Test func miniLMInMemoryEqualsWritten() throws {
        let src = try ModelsFixtures.model(Paths.defaultEncoder)
        let root = temporaryDirectory("inmem-enc")
        defer { try? FileManager.default.removeItem(at: root) }
        let bundle = try ModelLoader.load(src)
        let quantized = try Quantizer.quantize(bundle, options: QuantizeOptions(scheme: try QuantScheme(bits: 8, granularity: .channel), includeEmbeddings: true),
                                               progress: false)
        let texts = ["A man is playing a guitar.", "The weather is lovely today, said nobody in particular."]
        let out = root.appendingPathComponent("q")
        try quantized.write(to: out, start: Date(), progress: false)
        let inMemory = try quantized.bundle.bert(), reloaded = try ModelLoader.loadBert(out)
        #expect(try inMemory.embed(texts) == reloaded.embed(texts))
        #expect(quantized.layers.count == 6 * 6 + 1)
        // The model in memory is quantized now: a second pass is refused, not run on its codes.
        #expect(throws: InputError.self) {
            try Quantizer.quantize(quantized.bundle, options: QuantizeOptions(scheme: try QuantScheme(bits: 4, granularity: .channel)), progress: false)
        }
        // Quantizing changes storage, not parameters: `inspect` counts the quantized layers'
        // biases as it counts the float ones'.
        let before = ModelSummary(try ModelLoader.load(src)), after = ModelSummary(try ModelLoader.load(out))
        #expect(after.parameters == before.parameters && after.parametersByComponent == before.parametersByComponent)
        #expect(after.mappedWeightBytes < before.mappedWeightBytes)
    }

    /// Largest difference between two scorings' per-token log-probabilities.
    func maxGap(_ a: [ScoreResult], _ b: [ScoreResult]) -> Double {
        guard a.map(\.logprobs.count) == b.map(\.logprobs.count) else { return .infinity }
        return zip(a.flatMap(\.logprobs), b.flatMap(\.logprobs)).map { Double(abs($0 - $1)) }.max() ?? 0
    }

    /// Whether two decoders hold the same weights: each linear's storage kind and dequantized
    /// rows, the output layer's, the final norm and every token row, compared bit for bit.
    func sameWeights(_ x: LlamaWeights, _ y: LlamaWeights) throws -> Bool {
        func rows(_ l: any LinearLayer) throws -> [Float] {
            var out = [Float](repeating: 0, count: l.outFeatures * l.inFeatures)
            try out.withUnsafeMutableBufferPointer { try l.weightRows(0 ..< l.outFeatures, into: $0.baseAddress!) }
            return out
        }
        func same(_ a: any LinearLayer, _ b: any LinearLayer) throws -> Bool {
            guard a.weightStorage == b.weightStorage, a.inFeatures == b.inFeatures, a.outFeatures == b.outFeatures else { return false }
            return try rows(a).map(\.bitPattern) == rows(b).map(\.bitPattern)
        }
        func bits(_ s: FloatStorage) -> [UInt32] { UnsafeBufferPointer(start: s.pointer, count: s.count).map(\.bitPattern) }
        func tokenRows(_ w: LlamaWeights) -> [UInt32] {
            let v = w.lmHead.outFeatures, c = w.lmHead.inFeatures
            let ids = Array(0 ..< Int32(v))
            var out = [Float](repeating: 0, count: v * c)
            if let e = w.embeddingRows {
                ids.withUnsafeBufferPointer { i in out.withUnsafeMutableBufferPointer { e.gather(i.baseAddress!, count: v, into: $0.baseAddress!) } }
            } else {
                out = Array(UnsafeBufferPointer(start: w.embedTokens.pointer, count: w.embedTokens.count))
            }
            return out.map(\.bitPattern)
        }
        guard x.layers.count == y.layers.count, bits(x.norm) == bits(y.norm),
              try same(x.lmHead, y.lmHead), tokenRows(x) == tokenRows(y) else { return false }
        for (l, m) in zip(x.layers, y.layers) {
            guard l.linears.count == m.linears.count else { return false }
            for (p, q) in zip(l.linears, m.linears) where !(try same(p.layer, q.layer)) { return false }
        }
        return true
    }

    /// A quantized layer gives back the codes, scales and zero points it was built from, in the
    /// scheme's layout (one scale for a per-tensor scheme), and refuses another scheme.
    @Test(arguments: [(8, QuantGranularity.tensor, false), (4, .group, false), (4, .channel, true), (8, .group, true)])
    func layerGivesBackItsTensor(_ bits: Int, _ gran: QuantGranularity, _ sym: Bool) throws {
        let rows = 6, cols = 64
        var g = SplitMix(state: 7)
        let w = (0 ..< rows * cols).map { _ in g.float() }
        let scheme = try QuantScheme(bits: bits, granularity: gran, groupSize: 32, symmetric: sym)
        let t = try w.withUnsafeBufferPointer { try scheme.quantize($0, rows: rows, cols: cols, name: "w") }
        let layer = try QuantizedLinear(t)
        #expect(try layer.quantizedTensor(scheme: scheme) == t)
        let other = try QuantScheme(bits: bits == 8 ? 4 : 8, granularity: gran, groupSize: 32, symmetric: sym)
        #expect(throws: InputError.self) { try layer.quantizedTensor(scheme: other) }
        // weightRows is the dequantized matrix.
        var rowsOut = [Float](repeating: 0, count: rows * cols)
        try rowsOut.withUnsafeMutableBufferPointer { try layer.weightRows(0 ..< rows, into: $0.baseAddress!) }
        #expect(rowsOut == t.dequantize())
    }
}
