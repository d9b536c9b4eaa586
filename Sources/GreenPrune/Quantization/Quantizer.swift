import Foundation

/// Output format of `greenprune quantize`.
public enum QuantFormat: String, Codable, CaseIterable, Sendable {
    /// A Hugging Face directory in the compressed-tensors layout (vLLM, llm-compressor).
    case compressedTensors = "compressed-tensors"
    /// One GGUF file of Q8_0 / Q4_0 / Q4_1 blocks (llama.cpp).
    case gguf
}

/// What to quantize and how.
public struct QuantizeOptions: Codable, Equatable, Sendable {
    public var scheme: QuantScheme
    /// Recorded in `quantization_config` as dynamic per-token int8 input activations.
    public var activations: ActivationQuantization
    /// Module-name patterns left in float: a glob (`*`, `?`, `[…]`, fnmatch) matching the whole
    /// name, or else a plain substring (`down_proj`, `layers.3.`).
    public var skip: [String]
    /// Leave the first / last N transformer layers in float.
    public var skipFirst: Int
    public var skipLast: Int
    /// Quantize the output layer (`lm_head`) too (off by default; a tied head has no tensor).
    public var includeHead: Bool
    /// Quantize the token embedding matrix too (off by default).
    public var includeEmbeddings: Bool
    public var format: QuantFormat
    /// GPTQ calibration (`--method gptq`); nil for round-to-nearest.
    public var gptq: GPTQOptions?
    /// SmoothQuant before quantizing (`--smooth α`); nil for none.
    public var smoothQuant: SmoothQuantOptions?
    /// AWQ scaling before quantizing (`--awq`); nil for none.
    public var awq: AWQOptions?
    /// The type the tensors left in float are written in (`--dtype`; `auto` keeps each one's).
    public var floatDType = WeightDType.auto

    enum CodingKeys: String, CodingKey {
        case scheme, activations, skip, skipFirst = "skip_first", skipLast = "skip_last",
             includeHead = "include_head", includeEmbeddings = "include_embeddings", format, gptq, smoothQuant = "smoothquant", awq
    }

    /// "gptq" or "rtn" (round-to-nearest).
    public var method: String { gptq == nil ? "rtn" : "gptq" }

    public init(scheme: QuantScheme, activations: ActivationQuantization = .none, skip: [String] = [],
                skipFirst: Int = 0, skipLast: Int = 0, includeHead: Bool = false, includeEmbeddings: Bool = false,
                format: QuantFormat = .compressedTensors, gptq: GPTQOptions? = nil, smoothQuant: SmoothQuantOptions? = nil,
                awq: AWQOptions? = nil) {
        self.scheme = scheme; self.activations = activations; self.skip = skip
        self.skipFirst = skipFirst; self.skipLast = skipLast
        self.includeHead = includeHead; self.includeEmbeddings = includeEmbeddings; self.format = format
        self.gptq = gptq; self.smoothQuant = smoothQuant; self.awq = awq
    }
}

/// `OUT/quantization.json`: the settings, what was quantized, and what it saved.
public struct QuantizationReport: Codable, Sendable {
    public var source: String
    public var family: String
    public var options: QuantizeOptions
    /// Modules stored quantized.
    public var quantized: [String]
    /// Linear modules left in float, with the reason.
    public var skipped: [String: String]
    /// Bytes of the source weights files / of the output weights files.
    public var bytesBefore: Int
    public var bytesAfter: Int
    public var wallSeconds: Double
    /// GPTQ only: per module, its calibration reconstruction loss ‖X(W−Ŵ)ᵀ‖² over the loss of
    /// round-to-nearest with the same scheme (below 1: GPTQ did better on that layer).
    public var gptqLossRatios: [String: Double]?
    /// AWQ only: per group (named by its first module) the exponent α chosen and the group's
    /// calibration output error with those scales over plain rounding's (≤ 1).
    public var awqAlphas: [String: Double]?
    public var awqLossRatios: [String: Double]?

    enum CodingKeys: String, CodingKey {
        case source, family, options, quantized, skipped, bytesBefore = "bytes_before",
             bytesAfter = "bytes_after", ratio, wallSeconds = "wall_seconds", gptqLossRatios = "gptq_loss_ratio_vs_rtn",
             awqAlphas = "awq_alpha", awqLossRatios = "awq_loss_ratio_vs_rtn"
    }

    public init(source: String, family: String, options: QuantizeOptions, quantized: [String],
                skipped: [String: String], bytesBefore: Int, bytesAfter: Int, wallSeconds: Double,
                gptqLossRatios: [String: Double]? = nil, awq: [String: AWQ.Choice]? = nil) {
        self.source = source; self.family = family; self.options = options; self.quantized = quantized
        self.skipped = skipped; self.bytesBefore = bytesBefore; self.bytesAfter = bytesAfter; self.wallSeconds = wallSeconds
        self.gptqLossRatios = gptqLossRatios
        awqAlphas = awq?.mapValues { $0.alpha }
        awqLossRatios = awq?.mapValues { $0.roundingLoss > 0 ? $0.loss / $0.roundingLoss : 1 }
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        source = try c.decode(String.self, forKey: .source)
        family = try c.decode(String.self, forKey: .family)
        options = try c.decode(QuantizeOptions.self, forKey: .options)
        quantized = try c.decode([String].self, forKey: .quantized)
        skipped = try c.decode([String: String].self, forKey: .skipped)
        bytesBefore = try c.decode(Int.self, forKey: .bytesBefore)
        bytesAfter = try c.decode(Int.self, forKey: .bytesAfter)
        wallSeconds = try c.decode(Double.self, forKey: .wallSeconds)
        gptqLossRatios = try c.decodeIfPresent([String: Double].self, forKey: .gptqLossRatios)
        awqAlphas = try c.decodeIfPresent([String: Double].self, forKey: .awqAlphas)
        awqLossRatios = try c.decodeIfPresent([String: Double].self, forKey: .awqLossRatios)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(source, forKey: .source); try c.encode(family, forKey: .family)
        try c.encode(options, forKey: .options); try c.encode(quantized, forKey: .quantized)
        try c.encode(skipped, forKey: .skipped); try c.encode(bytesBefore, forKey: .bytesBefore)
        try c.encode(bytesAfter, forKey: .bytesAfter)
        try c.encode(bytesBefore > 0 ? Double(bytesAfter) / Double(bytesBefore) : 0, forKey: .ratio)
        try c.encode(wallSeconds, forKey: .wallSeconds)
        try c.encodeIfPresent(gptqLossRatios, forKey: .gptqLossRatios)
        try c.encodeIfPresent(awqAlphas, forKey: .awqAlphas)
        try c.encodeIfPresent(awqLossRatios, forKey: .awqLossRatios)
    }
}

/// Per-module GPTQ diagnostics gathered while the writer quantizes.
final class GPTQStats { var ratios: [String: Double] = [:] }

/// Model directory → quantized model directory.
///
/// Works on checkpoint names, so any Llama-family decoder or BERT encoder — pruned ones
/// included, whose layers differ in shape — goes through the same path: every Linear weight
/// (attention and MLP projections) is quantized with the scheme unless skipped; norms, biases,
/// position tables and (by default) embeddings and the output head keep their dtype.
public enum Quantizer {
    /// The role a checkpoint tensor plays.
    public enum Role: Equatable, Sendable {
        /// A projection inside transformer layer `layer`.
        case linear(layer: Int)
        /// The output head (`lm_head`).
        case head
        /// The token embedding matrix.
        case embedding
        /// A Linear outside the layers that GreenPrune keeps in float (BERT's pooler).
        case otherLinear
        /// Everything else (norms, biases, position tables).
        case other
    }

    /// Classifies `name` (a tensor name) for `family`.
    public static func role(of name: String, family: ModelFamily) -> Role {
        guard name.hasSuffix(".weight") else { return .other }
        let module = String(name.dropLast(".weight".count))
        switch family {
        case .llama:
            switch LlamaNames.parse(module)?.role {
            case .head: return .head
            case .embedding: return .embedding
            case .projection:
                if let l = LlamaNames.layerIndex(module) { return .linear(layer: l) }
            default: break
            }
        case .bert:
            let inner = BertNames.unprefixed(module)
            if inner == BertNames.wordEmbeddingsModule { return .embedding }
            if inner == BertNames.poolerModule { return .otherLinear }
            if let (l, _) = BertNames.projection(ofModule: module) { return .linear(layer: l) }
        default: break
        }
        return .other
    }

    /// True when `pattern` selects `module`: fnmatch for globs, else substring.
    public static func matches(_ pattern: String, _ module: String) -> Bool {
        if pattern.contains(where: { "*?[".contains($0) }) { return fnmatch(pattern, module, 0) == 0 }
        return module.contains(pattern)
    }

    /// Which modules of `reader` get quantized (sorted) and which Linear ones stay float (reason).
    /// With `tied` (config.json's tie_word_embeddings), the head is the embedding: a stray
    /// lm_head.weight in the checkpoint is not the head (transformers and vLLM ignore it), so it
    /// is never quantized as one.
    public static func plan(_ reader: SafeTensorsReader, family: ModelFamily, numLayers: Int, tied: Bool,
                            options o: QuantizeOptions) -> (quantize: [String], skipped: [String: String]) {
        var q: [String] = [], skipped: [String: String] = [:]
        for name in reader.names {
            guard let info = reader.info(name), info.shape.count == 2 else { continue }
            let module = String(name.dropLast(".weight".count))
            let r = role(of: name, family: family)
            switch r {
            case .other: continue
            case .otherLinear: skipped[module] = "kept in float (outside the transformer layers)"; continue
            case .head where !o.includeHead: skipped[module] = "output head (use --include-head)"; continue
            case .head where tied: continue  // the embedding is the head (added below)
            case .embedding where !o.includeEmbeddings: continue
            case .linear(let l) where l < o.skipFirst: skipped[module] = "--skip-first \(o.skipFirst)"; continue
            case .linear(let l) where l >= numLayers - o.skipLast: skipped[module] = "--skip-last \(o.skipLast)"; continue
            default: break
            }
            if let p = o.skip.first(where: { matches($0, module) }) { skipped[module] = "--skip \(p)"; continue }
            guard [DType.f32, .f16, .bf16, .f64].contains(info.dtype) else { continue }
            q.append(module)
        }
        // A tied decoder has no lm_head tensor: --include-head stores a quantized copy of the
        // embedding as lm_head and unties the config (as llm-compressor does), so the head runs
        // quantized while the token lookups read the float table row by row, as vLLM does.
        if family == .llama, o.includeHead, !o.includeEmbeddings, tied || reader.info(LlamaNames.head) == nil,
           reader.info(LlamaNames.embedding)?.shape.count == 2 {
            q.append(LlamaNames.headModule)
        }
        return (q, skipped)
    }

    /// The float tensor a quantized module is made from (a tied head, or one without a tensor,
    /// reads the embedding).
    static func source(of module: String, _ reader: SafeTensorsReader, tied: Bool) -> String {
        module == LlamaNames.headModule && (tied || reader.info(LlamaNames.head) == nil) ? LlamaNames.embedding : module + ".weight"
    }

    /// The weights files of a model directory, for size accounting.
    static func weightFiles(_ dir: URL) -> [URL] {
        let items = (try? FileManager.default.contentsOfDirectory(at: dir, includingPropertiesForKeys: nil)) ?? []
        return items.filter { $0.pathExtension == "safetensors" || $0.pathExtension == "gguf" || $0.lastPathComponent == TFCheckpoint.fileName }
    }

    static func bytes(of files: [URL]) -> Int {
        files.reduce(0) { $0 + ((try? FileManager.default.attributesOfItem(atPath: $1.path)[.size] as? Int) ?? 0) }
    }

    /// Throws when `dir` already holds a quantized model (config or tensor names say so).
    public static func refuseQuantized(_ dir: URL, config: ConfigJSON, reader: SafeTensorsReader) throws {
        if config.contains(CTQuantizationConfig.key) {
            throw InputError(dir.appendingPathComponent("config.json").path, "the model is already quantized (quantization_config present); quantize the float model instead")
        }
        if let n = reader.names.first(where: { $0.hasSuffix(".weight_scale") || $0.hasSuffix(".weight_packed") }) {
            throw InputError(dir.path, "the model is already quantized (tensor \(n)); quantize the float model instead")
        }
    }

    /// Quantizes the model in `dir` into `out` (built under a temporary name, then renamed).
    @discardableResult
    public static func quantize(model dir: URL, to out: URL, options o: QuantizeOptions, progress: Bool = true) throws -> QuantizationReport {
        let start = Date()
        // The shared check first: an invalid checkpoint never becomes a quantized directory.
        try ModelDirectoryCheck.validate(dir)
        let configURL = dir.appendingPathComponent("config.json")
        let configJSON = try ConfigJSON.load(configURL)
        let config = configJSON.model
        let family = try config.family(path: configURL.path)
        guard family == .llama || family == .bert else {
            throw InputError(configURL.path, "quantize supports llama-family decoders and encoders; this is \(config.modelType ?? family.rawValue)")
        }
        let reader = try SafeTensorsReader(dir)
        try refuseQuantized(dir, config: configJSON, reader: reader)
        // The CLI checks --out against --force first; whatever the caller, never the input.
        try OutputTarget.check(out, inputs: [dir], force: true)
        let numLayers = config.numHiddenLayers ?? 0
        guard o.skipFirst + o.skipLast <= numLayers || numLayers == 0 else {
            throw InputError("--skip-first/--skip-last", "skip \(o.skipFirst)+\(o.skipLast) layers but the model has \(numLayers)")
        }
        let tied = config.tieWordEmbeddings == true
        let (modules, skipped) = plan(reader, family: family, numLayers: numLayers, tied: tied, options: o)
        // Validate every width before writing anything.
        for m in modules {
            let info = reader.info(source(of: m, reader, tied: tied))!
            try o.scheme.validate(cols: info.shape[1], name: m)
        }

        guard o.format == .compressedTensors || o.scheme.observer == .minmax else {
            throw InputError("--observer", "\(o.scheme.observer.rawValue) applies to compressed-tensors output; GGUF blocks use ggml's own scales")
        }
        var o = o
        var rescaled: [String: [Float]] = [:]
        var awqChoices: [String: AWQ.Choice]?
        if let sq = o.smoothQuant {
            guard o.format == .compressedTensors else { throw InputError("--smooth", "applies to compressed-tensors output, not --format gguf") }
            guard o.awq == nil else { throw InputError("--smooth", "and --awq both rescale the same channels; use one") }
            guard family == .llama else { throw InputError("--smooth", "is implemented for Llama-family decoders; \(dir.path) is \(family.rawValue)") }
            rescaled = try SmoothQuant.smoothedTensors(model: dir, reader: reader, options: sq, progress: progress)
        }
        if let aw = o.awq {
            guard o.format == .compressedTensors else { throw InputError("--awq", "applies to compressed-tensors output, not --format gguf") }
            guard family == .llama else { throw InputError("--awq", "is implemented for Llama-family decoders; \(dir.path) is \(family.rawValue)") }
            if let b = reader.names.first(where: { n in LlamaNames.parse(n).map { $0.role == .projection(.up) && $0.suffix == "bias" } ?? false }) {
                throw InputError(b, "AWQ folds \(LlamaProjection.down.module)'s scales into \(LlamaProjection.up.module)'s rows and does not rescale biases")
            }
            let r = try AWQ.scaledTensors(model: dir, reader: reader, modules: Set(modules), scheme: o.scheme, options: aw, progress: progress)
            rescaled = r.tensors
            awqChoices = r.choices
        }
        var hessians: [String: HessianAccumulator] = [:]
        var precomputed: [String: QuantizedTensor] = [:]
        if let g = o.gptq {
            guard o.format == .compressedTensors else {
                throw InputError("--method gptq", "writes compressed-tensors directories; GGUF export uses ggml's own rounding")
            }
            // Embedding tables are lookups, not Linears: they have no Hessian and stay round-to-nearest.
            let linears = modules.filter { role(of: $0 + ".weight", family: family) != .embedding }
            if g.sequential, let r = try HessianCollection.quantizeSequential(model: dir, modules: Set(linears), options: g,
                                                                            scheme: o.scheme, reader: reader, replacing: rescaled,
                                                                            progress: progress) {
                hessians = r.hessians
                precomputed = r.tensors
                o.gptq?.calibrationIdsHash = r.idsHash
            } else {
                let r = try HessianCollection.collect(model: dir, modules: Set(linears), options: g, replacing: rescaled, progress: progress)
                hessians = r.hessians
                o.gptq?.calibrationIdsHash = r.idsHash
                o.gptq?.sequential = false
            }
        }

        if o.format == .gguf {
            return try GGUFExport.write(model: dir, reader: reader, config: config, family: family,
                                        modules: modules, skipped: skipped, to: out, options: o, start: start, progress: progress)
        }

        let tmp = AtomicFile.temporarySibling(of: out)
        let fm = FileManager.default
        do {
            try fm.createDirectory(at: tmp, withIntermediateDirectories: true)
            // Everything but the weights and config.json comes along unchanged (tokenizer, pooling…).
            for item in try fm.contentsOfDirectory(at: dir, includingPropertiesForKeys: nil) {
                let n = item.lastPathComponent
                if n.hasPrefix(".") || n == "config.json" || n == "quantization.json" || item.pathExtension == "safetensors"
                    || n == "model.safetensors.index.json" || n == TFCheckpoint.fileName { continue }
                try fm.copyItem(at: item, to: tmp.appendingPathComponent(n))
            }
            let stats = o.gptq == nil ? nil : GPTQStats()
            let entries = try tensorEntries(reader, modules: Set(modules), tied: tied, scheme: o.scheme, gptq: o.gptq, hessians: hessians,
                                            precomputed: precomputed, stats: stats, replacing: rescaled, floatDType: o.floatDType)
            let bar = progress ? ProgressBar("quantize", total: entries.count, unit: "tensors") : nil
            try SafeTensorsWriter.write(entries, metadata: ["format": "pt", "quantized_by": "greenprune"],
                                        to: tmp.appendingPathComponent("model.safetensors"), progress: bar)
            bar?.finish()
            // A head that stays float is named even when tied (no tensor of its own): otherwise
            // compressed-tensors' `Linear` target takes lm_head for a quantized module.
            var ignore = skipped.keys.sorted()
            if family == .llama, !modules.contains(LlamaNames.headModule), !ignore.contains(LlamaNames.headModule) {
                ignore.append(LlamaNames.headModule)
            }
            let qc = CTQuantizationConfig(scheme: o.scheme, activationsInt8: o.activations == .int8, ignore: ignore,
                                          includesEmbeddings: modules.contains { role(of: $0 + ".weight", family: family) == .embedding })
            // A quantized lm_head of a tied model is its own tensor now: config.json says so, or
            // vLLM and transformers would tie lm_head back to the float embedding and skip it.
            let untie = config.tieWordEmbeddings == true && modules.contains(LlamaNames.headModule)
            var written = configJSON
            if untie { try written.update { $0.tieWordEmbeddings = false } }
            try written.writeBothRopeLayouts()
            try written.set(CTQuantizationConfig.key, qc)
            try AtomicFile.write(written.data(), to: tmp.appendingPathComponent("config.json"))
            let report = QuantizationReport(source: dir.path, family: family.rawValue, options: o, quantized: modules, skipped: skipped,
                                            bytesBefore: bytes(of: weightFiles(dir)),
                                            bytesAfter: bytes(of: weightFiles(tmp)),
                                            wallSeconds: Date().timeIntervalSince(start), gptqLossRatios: stats?.ratios,
                                            awq: awqChoices)
            let enc = JSONEncoder(); enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            try AtomicFile.write(try enc.encode(report), to: tmp.appendingPathComponent("quantization.json"))
            try AtomicFile.commit(tmp, to: out)
            return report
        } catch {
            try? fm.removeItem(at: tmp)
            throw error
        }
    }

    /// The output tensors: quantized modules in compressed-tensors form, everything else as is.
    /// Each module is quantized once, when the writer reaches its first tensor (names sort together).
    /// With `gptq`, modules that have a Hessian accumulator go through `GPTQ.quantize`. Float
    /// tensors named in `replacing` (SmoothQuant's or AWQ's) take the place of the checkpoint's, both where
    /// they are quantized and where they are written as they are (as F32).
    static func tensorEntries(_ reader: SafeTensorsReader, modules: Set<String>, tied: Bool, scheme: QuantScheme,
                              gptq: GPTQOptions? = nil, hessians: [String: HessianAccumulator] = [:],
                              precomputed: [String: QuantizedTensor] = [:],
                              stats: GPTQStats? = nil, replacing: [String: [Float]] = [:],
                              floatDType: WeightDType = .auto) throws -> [SafeTensorsEntry] {
        final class Cache { var name = ""; var tensor: QuantizedTensor? }
        let cache = Cache()
        func quantized(_ m: String) throws -> QuantizedTensor {
            if cache.name == m, let t = cache.tensor { return t }
            let src = source(of: m, reader, tied: tied)
            let info = reader.info(src)!
            let stored = try reader.floats(src)
            func quantize(_ w: UnsafeBufferPointer<Float>) throws -> QuantizedTensor {
                guard let g = gptq, let h = hessians[m] else {
                    return try scheme.quantize(w, rows: info.shape[0], cols: info.shape[1], name: m)
                }
                // Sequential GPTQ quantized the layers already (each from its own inputs).
                let t = try precomputed[m] ?? GPTQ.quantize(w, rows: info.shape[0], cols: info.shape[1], hessian: h.sum, scheme: scheme,
                                                            dampening: g.dampening, blockSize: g.blockSize, actOrder: g.actOrder, name: m)
                if let stats {
                    let rtn = try scheme.quantize(w, rows: info.shape[0], cols: info.shape[1], name: m)
                    let lg = GPTQ.reconstructionLoss(w, t.dequantize(), rows: info.shape[0], cols: info.shape[1], hessian: h.sum)
                    let lr = GPTQ.reconstructionLoss(w, rtn.dequantize(), rows: info.shape[0], cols: info.shape[1], hessian: h.sum)
                    stats.ratios[m] = lr > 0 ? lg / lr : 1
                }
                return t
            }
            // SmoothQuant's / AWQ's rescaled weights where they exist.
            let t = try replacing[src].map { try $0.withUnsafeBufferPointer(quantize) } ?? quantize(stored.buffer)
            cache.name = m; cache.tensor = t
            return t
        }
        var entries: [SafeTensorsEntry] = []
        var names = reader.names
        if modules.contains(LlamaNames.headModule) && reader.info(LlamaNames.head) == nil { names.append(LlamaNames.head) }
        for name in names {
            let module = name.hasSuffix(".weight") ? String(name.dropLast(".weight".count)) : ""
            guard modules.contains(module) else {
                let info = reader.info(name)!, file = reader.file(of: name)!
                let isFloat = [.f32, .f16, .bf16, .f64].contains(info.dtype), target = floatDType.resolve(info.dtype)
                if let v = replacing[name] {
                    entries.append(SafeTensorsEntry(name: name, floats: v, shape: info.shape, as: target))
                    continue
                }
                if isFloat && target != info.dtype {
                    entries.append(SafeTensorsEntry(name: name, dtype: target, shape: info.shape) {
                        try SafeTensorsWriter.encode(try reader.floats(name).array, as: target)
                    })
                    continue
                }
                entries.append(SafeTensorsEntry(name: name, dtype: info.dtype, shape: info.shape) { Data(file.bytes(info)) })
                continue
            }
            let info = reader.info(source(of: module, reader, tied: tied))!
            let rows = info.shape[0], cols = info.shape[1]
            let gpr = scheme.granularity == .group ? cols / scheme.groupLength(cols: cols) : 1
            let scaleShape = scheme.granularity == .tensor ? [1] : [rows, gpr]
            let scaleDType: DType = scheme.scaleType == .float16 ? .f16 : .f32
            entries.append(SafeTensorsEntry(name: module + ".weight_scale", dtype: scaleDType, shape: scaleShape) {
                let scales = try quantized(module).scales
                if scaleDType == .f16, !ScaleType.fitsFloat16(scales) {
                    throw InputError(module, "has a scale over float16's 65504 (weights of millions); use --scale-dtype float32")
                }
                return try SafeTensorsWriter.encode(scales, as: scaleDType)
            })
            if scheme.bits == 8 {
                entries.append(SafeTensorsEntry(name: module + ".weight", dtype: .i8, shape: [rows, cols]) {
                    try quantized(module).codes.withUnsafeBytes { Data($0) }
                })
                if !scheme.symmetric {
                    entries.append(SafeTensorsEntry(name: module + ".weight_zero_point", dtype: .i8, shape: scaleShape) {
                        try quantized(module).zeroPoints!.withUnsafeBytes { Data($0) }
                    })
                }
            } else {
                let per = 32 / scheme.bits
                entries.append(SafeTensorsEntry(name: module + ".weight_packed", dtype: .i32, shape: [rows, (cols + per - 1) / per]) {
                    let t = try quantized(module)
                    return littleEndianBytes(CompressedTensors.pack(t.codes, rows: rows, cols: cols, bits: scheme.bits))
                })
                entries.append(try SafeTensorsEntry(name: module + ".weight_shape", integers: [Int64(rows), Int64(cols)], shape: [2]))
                if !scheme.symmetric {
                    if scheme.granularity == .tensor {
                        entries.append(SafeTensorsEntry(name: module + ".weight_zero_point", dtype: .i8, shape: [1]) {
                            try quantized(module).zeroPoints!.withUnsafeBytes { Data($0) }
                        })
                    } else {
                        entries.append(SafeTensorsEntry(name: module + ".weight_zero_point", dtype: .i32, shape: [(rows + per - 1) / per, gpr]) {
                            let t = try quantized(module)
                            return littleEndianBytes(CompressedTensors.packRows(t.zeroPoints!, rows: rows, cols: gpr, bits: scheme.bits))
                        })
                    }
                }
            }
        }
        return entries
    }

    static func littleEndianBytes(_ v: [Int32]) -> Data {
        var d = Data(capacity: v.count * 4)
        for x in v { var le = x.littleEndian; withUnsafeBytes(of: &le) { d.append(contentsOf: $0) } }
        return d
    }
}
