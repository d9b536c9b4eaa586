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

/// Loaded model → quantized model (`quantize(_:options:progress:)`) → written directory.
///
/// Which modules are quantized is planned on checkpoint names, so any Llama-family decoder or
/// BERT encoder — pruned ones included, whose layers differ in shape — goes through the same
/// path: every Linear weight (attention and MLP projections) is quantized with the scheme unless
/// skipped; norms, biases, position tables and (by default) embeddings and the output head keep
/// their dtype.
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

    /// Quantizes the model in `dir` into `out` (built under a temporary name, then renamed): the
    /// model loaded once (`ModelLoader.load`, the validation every command runs), quantized in
    /// memory (`quantize(_:options:progress:)`), then written (`QuantizedModel.write`); GGUF
    /// output is written from the loaded float model by ggml's block rounding (`GGUFExport`).
    @discardableResult
    public static func quantize(model dir: URL, to out: URL, options o: QuantizeOptions, progress: Bool = true) throws -> QuantizationReport {
        let start = Date()
        // The shared check first: an invalid checkpoint never becomes a quantized directory.
        let bundle = try ModelLoader.load(dir)
        // The CLI checks --out against --force first; whatever the caller, never the input.
        try OutputTarget.check(out, inputs: [dir], force: true)
        if o.format == .gguf {
            let (modules, skipped) = try checkedPlan(bundle, options: o)
            return try GGUFExport.write(bundle, modules: modules, skipped: skipped, to: out, options: o, start: start, progress: progress)
        }
        return try quantize(bundle, options: o, progress: progress).write(to: out, start: start, progress: progress)
    }
}
