import Foundation

/// A loaded model after quantization: the same model object with its quantized projections held
/// in memory as `QuantizedLinear` (so it runs — evaluate or embed it — without being written),
/// SmoothQuant's or AWQ's rescaled float tensors in place, and what the writers and the report
/// need besides (`Quantizer.quantize(_:options:progress:)` makes it; `write(to:start:progress:)`
/// writes it). It is the model its written directory loads as, but where the writer changes a
/// float tensor's type (`--dtype`, or an edited norm of a bf16/f16 checkpoint stored rounded):
/// the model keeps float32 there.
public struct QuantizedModel {
    /// The source model as loaded, its projections now quantized (`bundle.model` is the one
    /// object the transform edited; `bundle.checkpoint` is still the float source).
    public var bundle: ModelBundle
    /// The settings as applied (GPTQ's calibration hash and whether it ran sequentially filled in).
    public var options: QuantizeOptions
    /// Modules stored quantized, in checkpoint order (a tied head's copy last).
    public var modules: [String]
    /// Linear modules left in float, with the reason.
    public var skipped: [String: String]
    /// Each quantized module's layer in the model, by module name (an embedding table's too,
    /// whose rows an encoder reads dequantized).
    public var layers: [String: QuantizedLinear]
    /// Float tensors by checkpoint name that SmoothQuant or AWQ changed (the model holds them too).
    public var edits: [String: [Float]]
    /// GPTQ only: per module, its reconstruction loss over round-to-nearest's.
    public var gptqLossRatios: [String: Double]?
    /// AWQ only: per group, the exponent chosen and its loss.
    public var awqChoices: [String: AWQ.Choice]?

    /// The quantized model's tensors of `module` in `options.scheme`'s layout.
    public func tensor(_ module: String) throws -> QuantizedTensor {
        guard let l = layers[module] else { throw InputError(module, "is not quantized in this model") }
        return try l.quantizedTensor(scheme: options.scheme)
    }
}

extension Quantizer {
    /// The modules to quantize and the float ones with their reasons, after every check of the
    /// options against the loaded model (nothing is computed yet).
    static func checkedPlan(_ bundle: ModelBundle, options o: QuantizeOptions) throws -> (quantize: [String], skipped: [String: String]) {
        let dir = bundle.directory, reader = bundle.checkpoint, config = bundle.config, family = bundle.family
        guard family == .llama || family == .bert else {
            throw InputError(dir.appendingPathComponent("config.json").path,
                             "quantize supports llama-family decoders and encoders; this is \(config.modelType ?? family.rawValue)")
        }
        try refuseQuantized(dir, config: try ConfigJSON.load(dir.appendingPathComponent("config.json")), reader: reader)
        let numLayers = config.numHiddenLayers ?? 0
        guard o.skipFirst + o.skipLast <= numLayers || numLayers == 0 else {
            throw InputError("--skip-first/--skip-last", "skip \(o.skipFirst)+\(o.skipLast) layers but the model has \(numLayers)")
        }
        let tied = config.tieWordEmbeddings == true
        let planned = plan(reader, family: family, numLayers: numLayers, tied: tied, options: o)
        // Validate every width before computing anything.
        for m in planned.quantize {
            let info = reader.info(source(of: m, reader, tied: tied))!
            try o.scheme.validate(cols: info.shape[1], name: m)
        }
        guard o.format == .compressedTensors || o.scheme.observer == .minmax else {
            throw InputError("--observer", "\(o.scheme.observer.rawValue) applies to compressed-tensors output; GGUF blocks use ggml's own scales")
        }
        if o.smoothQuant != nil {
            guard o.format == .compressedTensors else { throw InputError("--smooth", "applies to compressed-tensors output, not --format gguf") }
            guard o.awq == nil else { throw InputError("--smooth", "and --awq both rescale the same channels; use one") }
            guard family == .llama else { throw InputError("--smooth", "is implemented for Llama-family decoders; \(dir.path) is \(family.rawValue)") }
        }
        if o.awq != nil {
            guard o.format == .compressedTensors else { throw InputError("--awq", "applies to compressed-tensors output, not --format gguf") }
            guard family == .llama else { throw InputError("--awq", "is implemented for Llama-family decoders; \(dir.path) is \(family.rawValue)") }
            if let b = reader.names.first(where: { n in LlamaNames.parse(n).map { $0.role == .projection(.up) && $0.suffix == "bias" } ?? false }) {
                throw InputError(b, "AWQ folds \(LlamaProjection.down.module)'s scales into \(LlamaProjection.up.module)'s rows and does not rescale biases")
            }
        }
        if o.gptq != nil, o.format != .compressedTensors {
            throw InputError("--method gptq", "writes compressed-tensors directories; GGUF export uses ggml's own rounding")
        }
        return planned
    }

    /// Quantizes the loaded model in `bundle` in place — SmoothQuant or AWQ folded into its
    /// norms and weights, GPTQ's Hessians from calibration forwards of the same model, then every
    /// planned module replaced by a `QuantizedLinear` — and returns it with what the writer and
    /// the report need. The GGUF format is written from the float model instead (`GGUFExport`),
    /// so it does not come here.
    public static func quantize(_ bundle: ModelBundle, options o: QuantizeOptions, progress: Bool = true) throws -> QuantizedModel {
        guard o.format == .compressedTensors else {
            throw InputError("--format", "\(o.format.rawValue) is written from the float model (GGUFExport), not as a quantized model")
        }
        let (modules, skipped) = try checkedPlan(bundle, options: o)
        let family = bundle.family
        var o = o
        var edits: [String: [Float]] = [:]
        var awqChoices: [String: AWQ.Choice]?
        if let sq = o.smoothQuant {
            edits = try SmoothQuant.smoothedTensors(bundle, options: sq, progress: progress)
        }
        if let aw = o.awq {
            let r = try AWQ.scaledTensors(bundle, modules: Set(modules), scheme: o.scheme, options: aw, progress: progress)
            edits = r.tensors
            awqChoices = r.choices
        }
        if !edits.isEmpty { try AWQ.apply(edits, to: try bundle.llama()) }
        var hessians: [String: HessianAccumulator] = [:]
        var precomputed: [String: QuantizedTensor] = [:]
        if let g = o.gptq {
            // Embedding tables are lookups, not Linears: they have no Hessian and stay round-to-nearest.
            let linears = modules.filter { role(of: $0 + ".weight", family: family) != .embedding }
            if g.sequential, let r = try HessianCollection.quantizeSequential(bundle, modules: Set(linears), options: g,
                                                                            scheme: o.scheme, progress: progress) {
                hessians = r.hessians
                precomputed = r.tensors
                o.gptq?.calibrationIdsHash = r.idsHash
            } else {
                let r = try HessianCollection.collect(bundle, modules: Set(linears), options: g, progress: progress)
                hessians = r.hessians
                o.gptq?.calibrationIdsHash = r.idsHash
                o.gptq?.sequential = false
            }
        }
        let stats = o.gptq == nil ? nil : GPTQStats()
        let bar = progress ? ProgressBar("quantize", total: modules.count, unit: "modules") : nil
        var layers: [String: QuantizedLinear] = [:]
        let slots = ModuleSlots(bundle)
        for m in modules {
            let w = try slots.floatWeight(m)
            let rows = w.rows, cols = w.cols
            let t: QuantizedTensor
            if let g = o.gptq, let h = hessians[m] {
                // Sequential GPTQ quantized the layers already (each from its own inputs).
                t = try precomputed[m] ?? w.values.withUnsafeBufferPointer {
                    try GPTQ.quantize($0, rows: rows, cols: cols, hessian: h.sum, scheme: o.scheme,
                                      dampening: g.dampening, blockSize: g.blockSize, actOrder: g.actOrder, name: m)
                }
                if let stats {
                    let rtn = try w.values.withUnsafeBufferPointer { try o.scheme.quantize($0, rows: rows, cols: cols, name: m) }
                    let (lg, lr) = w.values.withUnsafeBufferPointer {
                        (GPTQ.reconstructionLoss($0, t.dequantize(), rows: rows, cols: cols, hessian: h.sum),
                         GPTQ.reconstructionLoss($0, rtn.dequantize(), rows: rows, cols: cols, hessian: h.sum))
                    }
                    stats.ratios[m] = lr > 0 ? lg / lr : 1
                }
            } else {
                t = try w.values.withUnsafeBufferPointer { try o.scheme.quantize($0, rows: rows, cols: cols, name: m) }
            }
            let layer = try QuantizedLinear(t, bias: w.bias?.array, activations: o.activations)
            layers[m] = layer
            try slots.place(layer, as: m)
            bar?.advance(1)
        }
        bar?.finish()
        return QuantizedModel(bundle: bundle, options: o, modules: modules, skipped: skipped, layers: layers, edits: edits,
                              gptqLossRatios: stats?.ratios, awqChoices: awqChoices)
    }
}
