import Foundation
import GreenPrune

/// Shared helpers for the pruning tests: the SmolLM2 model (loaded once), the Taylor fixture
/// in ../shared/reference/smollm2_taylor, and a tiny random Llama.
enum PruningFixtures {
    /// SmolLM2-135M from `Paths.defaultDecoder` as `ModelLoader` maps it (a fresh model per call:
    /// a gradient engine attaches its buffers to the model's layers, and suites run in parallel);
    /// a clear error if scripts/fetch-models.sh has not run.
    static func smolLM2() throws -> LlamaModel {
        let dir = Paths.defaultDecoder
        guard FileManager.default.fileExists(atPath: dir.appendingPathComponent("model.safetensors").path) else {
            throw InputError(dir.path, "SmolLM2-135M is missing: run scripts/fetch-models.sh first")
        }
        return try ModelLoader.loadLlama(dir)
    }

    static var taylorDir: URL { Paths.referenceDirectory().appendingPathComponent("smollm2_taylor") }

    static func json(_ name: String) throws -> [String: Any] {
        let url = taylorDir.appendingPathComponent(name)
        guard let o = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any] else {
            throw InputError(url.path, "not a JSON object")
        }
        return o
    }

    static func f32(_ name: String) throws -> [Float] {
        let d = try Data(contentsOf: taylorDir.appendingPathComponent(name))
        return d.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
    }

    /// The [2][64] calibration ids of the fixture.
    static func ids() throws -> [[Int]] {
        guard let ids = try json("ids.json")["ids"] as? [[Int]] else { throw InputError("ids.json", "no ids") }
        return ids
    }

    /// max |a − b| / max |b|.
    static func relMaxError(_ a: [Float], _ b: [Float]) -> Double {
        relMaxError(a.map(Double.init), b.map(Double.init))
    }

    static func relMaxError(_ a: [Double], _ b: [Double]) -> Double {
        guard a.count == b.count, !b.isEmpty else { return .infinity }
        let m = b.map(abs).max() ?? 0
        let e = zip(a, b).map { abs($0 - $1) }.max() ?? 0
        return m > 0 ? e / m : e
    }

    /// One tensor of a test checkpoint.
    struct Tensor: Equatable {
        var shape: [Int]
        var values: [Float]
    }

    /// A test checkpoint: tensors by name.
    typealias Tensors = [String: Tensor]

    /// A tiny random Llama checkpoint: V 13, C 8, D 4, 4 query heads over 2 KV heads, F 6, 2 layers.
    static func tinyTensors(seed: UInt64 = 1, tied: Bool = false, layers: Int = 2) -> (Tensors, PruneGeometry) {
        var rng = SplitMix64(seed: seed)
        func rand(_ n: Int, _ s: Float) -> [Float] { (0..<n).map { _ in (Float(rng.next() >> 40) / Float(1 << 24) * 2 - 1) * s } }
        let v = 13, c = 8, d = 4, h = 4, g = 2, f = 6
        var st: Tensors = [LlamaNames.embedding: Tensor(shape: [v, c], values: rand(v * c, 1)),
                           LlamaNames.finalNorm: Tensor(shape: [c], values: rand(c, 0.5).map { $0 + 1 })]
        if !tied { st[LlamaNames.head] = Tensor(shape: [v, c], values: rand(v * c, 1)) }
        for l in 0..<layers {
            st[LlamaNames.q(l)] = Tensor(shape: [h * d, c], values: rand(h * d * c, 0.6))
            st[LlamaNames.k(l)] = Tensor(shape: [g * d, c], values: rand(g * d * c, 0.6))
            st[LlamaNames.v(l)] = Tensor(shape: [g * d, c], values: rand(g * d * c, 0.6))
            st[LlamaNames.o(l)] = Tensor(shape: [c, h * d], values: rand(c * h * d, 0.4))
            st[LlamaNames.gate(l)] = Tensor(shape: [f, c], values: rand(f * c, 0.6))
            st[LlamaNames.up(l)] = Tensor(shape: [f, c], values: rand(f * c, 0.6))
            st[LlamaNames.down(l)] = Tensor(shape: [c, f], values: rand(c * f, 0.4))
            st[LlamaNames.norm(.input, layer: l)] = Tensor(shape: [c], values: rand(c, 0.5).map { $0 + 1 })
            st[LlamaNames.norm(.postAttention, layer: l)] = Tensor(shape: [c], values: rand(c, 0.5).map { $0 + 1 })
        }
        let geo = PruneGeometry(hidden: c, headDim: d, vocab: v, tiedEmbeddings: tied,
                                layers: Array(repeating: BlockDims(numHeads: h, numKVHeads: g, intermediate: f), count: layers))
        return (st, geo)
    }

    /// Writes `tensors` as a model directory (model.safetensors + config.json, θ 10000, ε 1e-5).
    static func write(_ tensors: Tensors, _ geo: PruneGeometry, to dir: URL) throws {
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let entries = tensors.map { SafeTensorsEntry(name: $0.key, floats: $0.value.values, shape: $0.value.shape) }
        try SafeTensorsWriter.write(entries, to: dir.appendingPathComponent("model.safetensors"))
        let d = geo.layers[0]
        let cfg: [String: Any] = ["model_type": "llama", "hidden_size": geo.hidden, "num_hidden_layers": geo.layers.count,
                                  "num_attention_heads": d.numHeads, "num_key_value_heads": d.numKVHeads, "head_dim": geo.headDim,
                                  "intermediate_size": d.intermediate, "vocab_size": geo.vocab, "rms_norm_eps": 1e-5,
                                  "rope_theta": 10000.0, "tie_word_embeddings": geo.tiedEmbeddings, "max_position_embeddings": 64,
                                  "hidden_act": "silu"]
        try JSONSerialization.data(withJSONObject: cfg).write(to: dir.appendingPathComponent("config.json"))
    }

    /// `tensors` as `ModelLoader` loads them (written to a temporary directory, removed again:
    /// the mapping keeps the file's pages).
    static func load(_ tensors: Tensors, _ geo: PruneGeometry) throws -> LlamaModel {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gp-tiny-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        try write(tensors, geo, to: dir)
        return try ModelLoader.loadLlama(dir)
    }

    /// The tiny random Llama as a loaded model.
    static func tinyModel(seed: UInt64 = 1, tied: Bool = false, layers: Int = 2) throws -> LlamaModel {
        let (t, g) = tinyTensors(seed: seed, tied: tied, layers: layers)
        return try load(t, g)
    }

    /// A model's tensors (`NamedTensor`s read out) by name.
    static func tensors(_ named: [NamedTensor]) throws -> Tensors {
        Dictionary(uniqueKeysWithValues: try named.map { ($0.name, Tensor(shape: $0.shape, values: try $0.values())) })
    }
}
