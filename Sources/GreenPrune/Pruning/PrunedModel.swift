import Foundation

/// What pruning produces: the loaded model it was cut from and, per layer of the pruned model,
/// the units kept (`Surgery`'s description). Its tensors are views of the source's weights, cut
/// one at a time as they are written, so the pruned model is never held beside the source;
/// `model()` builds it as a model that runs, for the next iterative step or a check.
public struct PrunedModel {
    /// The model as loaded (mapped weights).
    public let source: LlamaModel
    /// One entry per layer of the pruned model (`keep[i].layer`: its source layer; unit indices
    /// into that layer's widths).
    public let keep: [LayerKeep]

    public init(source: LlamaModel, keep: [LayerKeep]) {
        self.source = source
        self.keep = keep
    }

    /// The source unchanged: every layer, every unit.
    public init(unchanged source: LlamaModel) {
        self.init(source: source, keep: PruneGeometry(source).layers.enumerated().map { LayerKeep.all(layer: $0.offset, $0.element) })
    }

    /// The pruned widths.
    public var geometry: PruneGeometry {
        var g = PruneGeometry(source)
        g.layers = keep.map(\.dims)
        return g
    }

    /// Every tensor of the pruned model, named for its new layer indices (float32 views of the
    /// source, cut when read).
    public func tensors() throws -> [NamedTensor] {
        try Surgery.tensors(source.weights, keep: keep, headDim: source.config.headDim)
    }

    /// Every parameter (a tied head counted once), biases included.
    public func parameterCount() throws -> Int { try tensors().reduce(0) { $0 + $1.count } }

    /// The pruned model as a model: cut projections own their values, the rest shares the source;
    /// it takes the source's kernel paths (an iterative run's later steps compute as its first).
    public func model() throws -> LlamaModel {
        let m = LlamaModel(config: source.config, weights: try Surgery.apply(source.weights, keep: keep, headDim: source.config.headDim))
        m.kernelOptions = source.kernelOptions
        return m
    }

    /// `config` (the source's config.json) with the pruned widths (`Surgery.updatedConfig`).
    public func config(from config: ConfigJSON) throws -> ConfigJSON {
        try Surgery.updatedConfig(config, layers: keep.map(\.dims), headDim: source.config.headDim)
    }

    /// Writes the pruned model directory at `out` (`ModelDirectoryWriter`): model.safetensors
    /// tensor by tensor, config.json with the pruned widths and both rotary layouts (transformers
    /// 4.x and 5.x each read only theirs), the tokenizer files of `sourceDirectory`, and where the
    /// layers differ in width the modeling file transformers runs with trust_remote_code. The
    /// weights are stored as `dtype` (F32, BF16 or F16).
    public func write(to out: URL, config: ConfigJSON, sourceDirectory: URL, dtype: DType = .f32, progress: ProgressBar? = nil,
                      also: (URL) throws -> Void = { _ in }) throws {
        var (pruned, remoteCode) = try PerLayerRemoteCode.prepare(try self.config(from: config))
        try pruned.writeBothRopeLayouts()
        try ModelDirectoryWriter.write(try tensors(), config: pruned, source: sourceDirectory, to: out, dtype: dtype, progress: progress) { tmp in
            for (name, data) in remoteCode { try data.write(to: tmp.appendingPathComponent(name)) }
            try also(tmp)
        }
    }
}
