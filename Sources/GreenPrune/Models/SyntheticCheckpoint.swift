import Foundation

/// A random-weight model directory with a real geometry (`greenprune synth`): config.json from
/// `ModelGeometry`, the tensors under `LlamaNames` in Hugging Face's order, sharded as
/// transformers shards (`model-0000k-of-0000n.safetensors` + `model.safetensors.index.json`)
/// once the weights pass `maxShardBytes`, and a real tokenizer copied from a model on disk.
///
/// Weights are deterministic in (seed, tensor name): each tensor has its own generator, so a
/// tensor's bytes do not depend on the others or on the shard layout. Projections, biases and
/// the embedding are approximately normal with standard deviation 0.02 (a sum of four uniform
/// 16-bit draws, rescaled: bounded by ±3.5σ, so no value is extreme), norms are 1: activations
/// stay small and every forward finite. Only one tensor is in memory at a time.
///
/// The embedding has the geometry's rows even when the tokenizer has fewer tokens (SmolLM2's
/// 49,152 in a 128,256-row Llama 3 table): ids past the tokenizer's range are never produced,
/// so those rows are never read. A tokenizer with more tokens than the geometry's rows is an
/// error.
public enum SyntheticCheckpoint {
    /// transformers' default `max_shard_size` ("5GB").
    public static let maxShardBytes = 5_000_000_000
    /// Standard deviation of the random weights (transformers' `initializer_range`).
    public static let weightScale: Float = 0.02

    /// One tensor of the checkpoint: name, shape, and whether it is a norm (ones).
    public struct Tensor: Sendable, Equatable {
        public var name: String
        public var shape: [Int]
        public var isNorm: Bool
        public var count: Int { shape.reduce(1, *) }
    }

    /// Every tensor of `g`, in Hugging Face's `named_parameters` order.
    public static func tensors(_ g: ModelGeometry) -> [Tensor] {
        let c = g.hidden, q = g.heads * g.headDim, kv = g.kvHeads * g.headDim, f = g.intermediate
        var out = [Tensor(name: LlamaNames.embedding, shape: [g.vocab, c], isNorm: false)]
        for l in 0..<g.layers {
            let shapes: [(LlamaProjection, [Int])] = [(.q, [q, c]), (.k, [kv, c]), (.v, [kv, c]), (.o, [c, q]),
                                                       (.gate, [f, c]), (.up, [f, c]), (.down, [c, f])]
            out.append(Tensor(name: LlamaNames.norm(.input, layer: l), shape: [c], isNorm: true))
            for (p, shape) in shapes {
                let w = LlamaNames.weight(p, layer: l)
                out.append(Tensor(name: w, shape: shape, isNorm: false))
                if g.qkvBias && [.q, .k, .v].contains(p) { out.append(Tensor(name: LlamaNames.bias(w), shape: [shape[0]], isNorm: false)) }
                if p == .o { out.append(Tensor(name: LlamaNames.norm(.postAttention, layer: l), shape: [c], isNorm: true)) }
            }
        }
        out.append(Tensor(name: LlamaNames.finalNorm, shape: [c], isNorm: true))
        if !g.tiedEmbeddings { out.append(Tensor(name: LlamaNames.head, shape: [g.vocab, c], isNorm: false)) }
        return out
    }

    /// The bytes of tensor `t` stored as `dtype` (F32, F16 or BF16), from its own generator.
    public static func bytes(_ t: Tensor, dtype: DType, seed: UInt64) throws -> Data {
        guard [.f32, .f16, .bf16].contains(dtype) else {
            throw InputError("--dtype", "synthetic weights are F32, F16 or BF16, not \(dtype.rawValue)")
        }
        let n = t.count
        var data = Data(count: n * dtype.size)
        // FNV-1a of the name, mixed with the seed, starts this tensor's SplitMix64 stream.
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in t.name.utf8 { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01b3 }
        var rng = SplitMix64(seed: h ^ (seed &* 0x9e37_79b9_7f4a_7c15))
        // Four 16-bit uniforms per draw: their sum has mean 2 and variance 4/12 (in units of 2^16).
        let unit = Float(3).squareRoot() * weightScale / 65536
        data.withUnsafeMutableBytes { raw in
            for i in 0..<n {
                var v: Float = 1
                if !t.isNorm {
                    let r = rng.next()
                    let s = (r & 0xffff) + ((r >> 16) & 0xffff) + ((r >> 32) & 0xffff) + (r >> 48)
                    v = (Float(s) - 131_072) * unit
                }
                switch dtype {
                case .f32: raw.storeBytes(of: v.bitPattern.littleEndian, toByteOffset: 4 * i, as: UInt32.self)
                case .f16: raw.storeBytes(of: floatToHalf(v).littleEndian, toByteOffset: 2 * i, as: UInt16.self)
                default: raw.storeBytes(of: floatToBF16(v).littleEndian, toByteOffset: 2 * i, as: UInt16.self)
                }
            }
        }
        return data
    }

    /// Tensors grouped into shards in order: a new shard starts where the next tensor would take
    /// the current one past `maxShardBytes` (one shard: model.safetensors).
    public static func shards(_ tensors: [Tensor], dtype: DType, maxShardBytes: Int = maxShardBytes) -> [[Tensor]] {
        var out: [[Tensor]] = [[]]
        var size = 0
        for t in tensors {
            let b = t.count * dtype.size
            if size + b > maxShardBytes && !out[out.count - 1].isEmpty {
                out.append([])
                size = 0
            }
            out[out.count - 1].append(t)
            size += b
        }
        return out
    }

    /// Writes the directory `out` (built under a temporary name, renamed into place when
    /// complete): config.json, the shards (and their index when several), and the tokenizer
    /// files of `tokenizerSource`, whose config.json (when present) gives the BOS/EOS ids.
    public static func write(_ g: ModelGeometry, dtype: DType, seed: UInt64, tokenizerSource: URL, to out: URL,
                             maxShardBytes: Int = maxShardBytes, progress: ProgressBar? = nil) throws {
        let tokenizer = try TokenizerLoader.load(directory: tokenizerSource)
        guard tokenizer.vocabularySize <= g.vocab else {
            throw InputError(tokenizerSource.path, "its tokenizer has \(tokenizer.vocabularySize) tokens, more than \(g.name)'s \(g.vocab) embedding rows; take the tokenizer of a model with at most \(g.vocab) (--tokenizer-from)")
        }
        var bos: Int? = nil, eos: Int? = nil
        let sourceConfig = tokenizerSource.appendingPathComponent("config.json")
        if FileManager.default.fileExists(atPath: sourceConfig.path) {
            let m = try ConfigJSON.load(sourceConfig).model
            bos = m.bosTokenId?.first
            eos = m.eosTokenId?.first
        }
        let members = g.configMembers(dtype: dtype, bosTokenId: bos, eosTokenId: eos)
        let json = try JSONSerialization.data(withJSONObject: members, options: [.prettyPrinted, .sortedKeys])
        let config = try ConfigJSON(data: json, path: out.appendingPathComponent("config.json").path)
        _ = try config.model.llama(path: config.path)

        let fm = FileManager.default
        try fm.createDirectory(at: out.deletingLastPathComponent(), withIntermediateDirectories: true)
        let tmp = AtomicFile.temporarySibling(of: out)
        do {
            try fm.createDirectory(at: tmp, withIntermediateDirectories: false)
            let groups = shards(tensors(g), dtype: dtype, maxShardBytes: maxShardBytes)
            var weightMap: [String: String] = [:]
            var total = 0
            for (k, group) in groups.enumerated() {
                let file = groups.count == 1 ? "model.safetensors"
                    : String(format: "model-%05d-of-%05d.safetensors", k + 1, groups.count)
                let entries = group.map { t in
                    SafeTensorsEntry(name: t.name, dtype: dtype, shape: t.shape) { try bytes(t, dtype: dtype, seed: seed) }
                }
                try SafeTensorsWriter.write(entries, to: tmp.appendingPathComponent(file), progress: progress)
                for t in group { weightMap[t.name] = file; total += t.count * dtype.size }
            }
            if groups.count > 1 {
                let index: [String: Any] = ["metadata": ["total_size": total], "weight_map": weightMap]
                try JSONSerialization.data(withJSONObject: index, options: [.prettyPrinted, .sortedKeys])
                    .write(to: tmp.appendingPathComponent("model.safetensors.index.json"))
            }
            try config.data().write(to: tmp.appendingPathComponent("config.json"))
            for f in ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"] {
                let src = tokenizerSource.appendingPathComponent(f)
                if fm.fileExists(atPath: src.path) { try fm.copyItem(at: src, to: tmp.appendingPathComponent(f)) }
            }
            try AtomicFile.commit(tmp, to: out)
        } catch {
            try? fm.removeItem(at: tmp)
            if error is InputError { throw error }
            throw InputError(out.path, "cannot write the model: \(FileErrors.problem(error))")
        }
    }
}
