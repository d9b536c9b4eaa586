import Foundation

/// The calibration samples' residual streams, held between decoder layers for the layer-by-layer
/// passes (sequential GPTQ, AWQ): every sample embedded once, then moved through one layer at a
/// time. Holds samples × length × C floats plus one batch of scratch.
final class CalibrationStreams {
    let model: LlamaModel
    /// Tokens per sample.
    let time: Int
    /// Sample ranges run together (at most the model's token budget per batch).
    let batches: [Range<Int>]
    /// (samples·T, C) streams.
    private let xs: UnsafeMutablePointer<Float>
    /// One batch of streams, for passes that must leave `xs` as it is.
    private let scratch: UnsafeMutablePointer<Float>

    /// Embeds `samples` (each `length` tokens) with `model`'s token table.
    init(model m: LlamaModel, samples: [[Int]], length t: Int) {
        model = m; time = t
        let c = m.hiddenSize, perBatch = max(1, m.maxBatchTokens / t)
        batches = stride(from: 0, to: samples.count, by: perBatch).map { $0 ..< min(samples.count, $0 + perBatch) }
        xs = .allocate(capacity: samples.count * t * c)
        scratch = .allocate(capacity: perBatch * t * c)
        for r in batches { m.embed(Array(samples[r].joined()), into: xs + r.lowerBound * t * c) }
    }

    deinit { xs.deallocate(); scratch.deallocate() }

    private func run(_ x: UnsafeMutablePointer<Float>, layer i: Int, samples r: Range<Int>) {
        model.runLayers(x, layers: i ..< i + 1, batch: r.count, time: time, lengths: [Int](repeating: time, count: r.count))
    }

    /// Runs layer `i` as it is now over a copy of the streams (recorders in it see every input
    /// row); the streams do not move.
    func probe(layer i: Int) {
        let n = time * model.hiddenSize
        for r in batches {
            scratch.update(from: xs + r.lowerBound * n, count: r.count * n)
            run(scratch, layer: i, samples: r)
        }
    }

    /// Moves the streams through layer `i` as it is now.
    func advance(layer i: Int) {
        let n = time * model.hiddenSize
        for r in batches { run(xs + r.lowerBound * n, layer: i, samples: r) }
    }

    /// `body(streams, rows, scratch)` per batch: the batch's streams (rows, C) and room for as many.
    func forEachBatch(_ body: (UnsafeMutablePointer<Float>, Int, UnsafeMutablePointer<Float>) -> Void) {
        let n = time * model.hiddenSize
        for r in batches { body(xs + r.lowerBound * n, r.count * time, scratch) }
    }
}

extension Calibration {
    /// The loaded Llama model of `bundle` and `count` samples of `length` tokens from `file`,
    /// encoded with the model's tokenizer; nil when the model is not a Llama-family decoder.
    static func decoderSamples(_ bundle: ModelBundle, file: String, count: Int, length: Int) throws -> (model: LlamaModel, samples: [[Int]])? {
        guard case .llama(let m) = bundle.model else { return nil }
        let samples = try samples(file: URL(fileURLWithPath: file), tokenizer: try bundle.requireTokenizer(), count: count,
                                  length: length, maxLength: m.maxLength)
        return (m, samples)
    }
}
