import Foundation
import GreenPrune

/// Shared helpers for the pruning tests: the SmolLM2 model (loaded once), the Taylor fixture
/// in ../shared/reference/smollm2_taylor, and a tiny random Llama.
enum PruningFixtures {
    static let lock = NSLock()
    nonisolated(unsafe) static var cachedModel: PrunableModel?

    /// SmolLM2-135M from `Paths.defaultDecoder`; a clear error if scripts/fetch-models.sh has not run.
    static func smolLM2() throws -> PrunableModel {
        lock.lock()
        defer { lock.unlock() }
        if let m = cachedModel { return m }
        let dir = Paths.defaultDecoder
        guard FileManager.default.fileExists(atPath: dir.appendingPathComponent("model.safetensors").path) else {
            throw InputError(dir.path, "SmolLM2-135M is missing: run scripts/fetch-models.sh first")
        }
        let m = try PrunableModel.load(dir)
        cachedModel = m
        return m
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

    /// A tiny random Llama: V 13, C 8, D 4, 4 query heads over 2 KV heads, F 6, 2 layers.
    static func tinyModel(seed: UInt64 = 1, tied: Bool = false, layers: Int = 2) -> (StateDict, PruneGeometry) {
        var rng = SplitMix64(seed: seed)
        func rand(_ n: Int, _ s: Float) -> [Float] { (0..<n).map { _ in (Float(rng.next() >> 40) / Float(1 << 24) * 2 - 1) * s } }
        let v = 13, c = 8, d = 4, h = 4, g = 2, f = 6
        var st: StateDict = ["model.embed_tokens.weight": StateTensor(shape: [v, c], values: rand(v * c, 1)),
                             "model.norm.weight": StateTensor(shape: [c], values: rand(c, 0.5).map { $0 + 1 })]
        if !tied { st["lm_head.weight"] = StateTensor(shape: [v, c], values: rand(v * c, 1)) }
        for l in 0..<layers {
            st[LlamaNames.q(l)] = StateTensor(shape: [h * d, c], values: rand(h * d * c, 0.6))
            st[LlamaNames.k(l)] = StateTensor(shape: [g * d, c], values: rand(g * d * c, 0.6))
            st[LlamaNames.v(l)] = StateTensor(shape: [g * d, c], values: rand(g * d * c, 0.6))
            st[LlamaNames.o(l)] = StateTensor(shape: [c, h * d], values: rand(c * h * d, 0.4))
            st[LlamaNames.gate(l)] = StateTensor(shape: [f, c], values: rand(f * c, 0.6))
            st[LlamaNames.up(l)] = StateTensor(shape: [f, c], values: rand(f * c, 0.6))
            st[LlamaNames.down(l)] = StateTensor(shape: [c, f], values: rand(c * f, 0.4))
            st[LlamaNames.layer(l) + "input_layernorm.weight"] = StateTensor(shape: [c], values: rand(c, 0.5).map { $0 + 1 })
            st[LlamaNames.layer(l) + "post_attention_layernorm.weight"] = StateTensor(shape: [c], values: rand(c, 0.5).map { $0 + 1 })
        }
        let geo = PruneGeometry(hidden: c, headDim: d, vocab: v, tiedEmbeddings: tied,
                                layers: Array(repeating: BlockDims(numHeads: h, numKVHeads: g, intermediate: f), count: layers))
        return (st, geo)
    }

    /// Rotary frequencies for the tiny model (θ = 10000, D = 4).
    static let tinyInvFreq: [Float] = RopeConfig(theta: 10000).inverseFrequencies(headDim: 4)
}
