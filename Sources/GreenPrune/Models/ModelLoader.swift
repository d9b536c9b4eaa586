import Foundation

/// Builds a linear layer from checkpoint tensors. The dense float loader is always tried
/// last; the quantization module can register a loader for its packed formats in
/// `ModelLoader.linearLoaders` (it reads `prefix.weight_packed`, `prefix.weight_scale`, …,
/// configured from config.json's quantization_config, and reports the names it used).
public protocol LinearLayerLoader {
    /// The layer stored under `prefix` (`model.layers.0.self_attn.q_proj`) with the checkpoint
    /// names it consumed, or nil when this loader does not recognise the tensors there.
    func load(prefix: String, checkpoint: SafeTensorsReader) throws -> (layer: any LinearLayer, names: [String])?
}

/// `prefix.weight` (out, in) [+ `prefix.bias` (out)] as float32 (F16/BF16 converted on load,
/// aligned F32 mapped without a copy).
public struct DenseLinearLoader: LinearLayerLoader {
    public init() {}
    public func load(prefix: String, checkpoint: SafeTensorsReader) throws -> (layer: any LinearLayer, names: [String])? {
        let wn = prefix + ".weight", bn = prefix + ".bias"
        guard let info = checkpoint.info(wn) else { return nil }
        let path = checkpoint.file(of: wn)?.url.path ?? wn
        guard info.shape.count == 2 else { throw InputError(path, "tensor '\(wn)' has shape \(info.shape), expected 2 dimensions") }
        let w = try checkpoint.floats(wn)
        var names = [wn]
        var bias: FloatStorage?
        if checkpoint.info(bn) != nil {
            bias = try checkpoint.floats(bn, shape: [info.shape[0]])
            names.append(bn)
        }
        return (DenseLinear(weight: w, bias: bias, outFeatures: info.shape[0], inFeatures: info.shape[1]), names)
    }
}

/// A model loaded from a directory.
public enum LoadedModel {
    case llama(LlamaModel)
    /// A decoder of another family (`DecoderFamilies`): it scores and generates, but pruning,
    /// recovery and quantization take Llama-family decoders only.
    case decoder(any DecoderModel)
    case bert(BertModel)

    /// The decoder of either case; nil for an encoder.
    public var decoder: (any DecoderModel)? {
        switch self {
        case .llama(let m): return m
        case .decoder(let m): return m
        case .bert: return nil
        }
    }
}

/// A model directory (config.json + safetensors [+ tokenizer.json]) turned into a model.
public struct ModelBundle {
    public var directory: URL
    public var config: ModelConfig
    public var checkpoint: SafeTensorsReader
    public var model: LoadedModel
    /// The family's name ("llama", "bert").
    public var family: ModelFamily
    /// The directory's tokenizer.json (nil when the directory has none).
    public var tokenizer: (any Tokenizer)?

    /// The Llama-family decoder, or an error: naming the directory for an encoder, config.json
    /// for another decoder family ("`command` supports llama-family decoders; this is gpt2").
    public func llama(for command: String = "this command") throws -> LlamaModel {
        if case .llama(let m) = model { return m }
        guard case .decoder = model else { throw InputError(directory.path, "not a decoder (model_type \(config.modelType ?? "?"))") }
        throw InputError(directory.appendingPathComponent("config.json").path,
                         "\(command) supports llama-family decoders; this is \(config.modelType ?? family.rawValue)")
    }

    /// The decoder of any family, or an error naming the directory.
    public func decoder() throws -> any DecoderModel {
        guard let m = model.decoder else { throw InputError(directory.path, "not a decoder (model_type \(config.modelType ?? "?"))") }
        return m
    }

    /// The encoder, or an error naming the directory.
    public func bert() throws -> BertModel {
        guard case .bert(let m) = model else { throw InputError(directory.path, "not an encoder (model_type \(config.modelType ?? "?"))") }
        return m
    }

    /// The tokenizer, or an error naming the directory.
    public func requireTokenizer() throws -> any Tokenizer {
        guard let tokenizer else { throw InputError(directory.appendingPathComponent("tokenizer.json").path, "missing: this command needs the model's tokenizer") }
        return tokenizer
    }
}

/// Loads model directories with a strict check that the checkpoint's tensor names and shapes
/// are exactly what the model needs (missing and unexpected names listed in the error).
public enum ModelLoader {
    /// Extra linear loaders tried before the dense one (quantized formats register here).
    nonisolated(unsafe) public static var linearLoaders: [any LinearLayerLoader] = [CompressedTensorsLinearLoader()]

    /// Reads `directory/config.json`, the safetensors checkpoint and (when `tokenizer` and the
    /// file exists) tokenizer.json, and builds the model, its projections and token table kept
    /// as `dtype` says (`HalfLinear` for bf16/f16; float32 by default).
    public static func load(_ directory: URL, tokenizer loadTokenizer: Bool = true, dtype: WeightDType = .f32) throws -> ModelBundle {
        let configURL = directory.appendingPathComponent("config.json")
        guard FileManager.default.fileExists(atPath: configURL.path) else {
            throw InputError(directory.path, "not a model directory: config.json is missing")
        }
        let json = try ConfigJSON.load(configURL)
        let config = json.model
        let family = try config.family(path: configURL.path)
        let decoderFamily = DecoderFamilies.family(named: family)
        // Validate config.json before touching the weights, so its errors come first.
        let numLayers = try decoderFamily?.layerCount(json) ?? config.bert(path: configURL.path).numLayers
        let checkpoint = try SafeTensorsReader(directory)
        try ModelDirectoryCheck.checkTensors(checkpoint, family: family, numLayers: numLayers, configPath: configURL.path)
        var tokenizer: (any Tokenizer)?
        if loadTokenizer, FileManager.default.fileExists(atPath: directory.appendingPathComponent("tokenizer.json").path) {
            tokenizer = try TokenizerLoader.load(directory: directory)
        }
        let model: LoadedModel
        if let decoderFamily {
            let m = try decoderFamily.load(json, checkpoint: checkpoint, dtype: dtype)
            model = (m as? LlamaModel).map(LoadedModel.llama) ?? .decoder(m)
        } else {
            let bc = try config.bert(path: configURL.path)
            try SentenceTransformersModules.check(directory)
            let w = try loadBertWeights(checkpoint, config: bc, dtype: dtype)
            let bert = BertModel(config: bc, weights: w, tokenizer: tokenizer)
            bert.maxSequenceLength = try sentenceTransformersMaxLength(directory) ?? bc.maxTokens
            model = .bert(bert)
        }
        return ModelBundle(directory: directory, config: config, checkpoint: checkpoint, model: model,
                           family: family, tokenizer: tokenizer)
    }

    /// `max_seq_length` from sentence_bert_config.json (sentence-transformers truncates there).
    static func sentenceTransformersMaxLength(_ directory: URL) throws -> Int? {
        let url = directory.appendingPathComponent("sentence_bert_config.json")
        guard FileManager.default.fileExists(atPath: url.path) else { return nil }
        let data = try RegularFile.contents(url)
        guard let obj = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw InputError(url.path, "not a JSON object")
        }
        guard let v = obj["max_seq_length"] else { return nil }
        guard let n = v as? Int, n > 1 else { throw InputError(url.path, "max_seq_length must be an integer > 1") }
        return n
    }

    /// Loads a decoder directory (error if it holds an encoder).
    public static func loadLlama(_ directory: URL, dtype: WeightDType = .f32) throws -> LlamaModel {
        try load(directory, tokenizer: false, dtype: dtype).llama()
    }

    /// Loads an encoder directory (error if it holds a decoder).
    public static func loadBert(_ directory: URL) throws -> BertModel {
        try load(directory).bert()
    }

    // MARK: name bookkeeping

    /// Tracks which checkpoint names were used so leftovers can be reported.
    final class NameLedger {
        let checkpoint: SafeTensorsReader
        /// Projections and tables kept in half precision when this says so (`HalfLinearLoader`).
        var dtype = WeightDType.f32
        var used = Set<String>()
        var missing: [String] = []
        var shapeErrors: [String] = []
        init(_ c: SafeTensorsReader) { checkpoint = c }

        /// Float tensor `name` with `shape`; records a missing name or a wrong shape.
        func tensor(_ name: String, _ shape: [Int]) throws -> FloatStorage? {
            // A quantized embedding table (compressed-tensors) comes back dequantized.
            if let (s, names) = try CompressedTensorsLinearLoader.dequantizedTensor(name, checkpoint) {
                used.formUnion(names)
                if s.count != shape.reduce(1, *) { shapeErrors.append("\(name) has \(s.count) values, expected \(shape)") }
                return s
            }
            guard let info = checkpoint.info(name) else { missing.append(name); return nil }
            used.insert(name)
            guard info.shape == shape else { shapeErrors.append("\(name) is \(info.shape), expected \(shape)"); return nil }
            return try checkpoint.floats(name)
        }

        func linear(_ prefix: String) throws -> (any LinearLayer)? {
            for loader in ModelLoader.linearLoaders + [HalfLinearLoader(dtype: dtype), DenseLinearLoader()] {
                if let (layer, names) = try loader.load(prefix: prefix, checkpoint: checkpoint) {
                    used.formUnion(names)
                    return layer
                }
            }
            missing.append(prefix + ".weight")
            return nil
        }

        func expectShape(_ name: String, _ got: [Int], _ want: [Int]) {
            if got != want { shapeErrors.append("\(name) is \(got), expected \(want)") }
        }

        func expectBias(_ prefix: String, _ layer: any LinearLayer, required: Bool) {
            // A quantized layer's bias is its loader's business (compressed-tensors keeps it as is).
            if required, layer.weightStorage.isFloat, layer.bias == nil { missing.append(prefix + ".bias") }
        }

        /// Throws one line listing missing, unexpected and mis-shaped tensors.
        func finish(ignoring ignorable: (String) -> Bool, family: String) throws {
            let unexpected = checkpoint.names.filter { !used.contains($0) && !ignorable($0) }
            guard missing.isEmpty && unexpected.isEmpty && shapeErrors.isEmpty else {
                func list(_ a: [String]) -> String {
                    a.count <= 8 ? a.joined(separator: ", ") : a.prefix(8).joined(separator: ", ") + ", … (\(a.count) in all)"
                }
                var parts: [String] = []
                if !missing.isEmpty { parts.append("missing \(list(missing))") }
                if !unexpected.isEmpty { parts.append("unexpected \(list(unexpected))") }
                if !shapeErrors.isEmpty { parts.append("wrong shapes: \(list(shapeErrors))") }
                throw InputError(checkpoint.files.first?.url.path ?? "checkpoint",
                                 "checkpoint does not match the \(family) model: " + parts.joined(separator: "; "))
            }
        }
    }

    // MARK: Llama

    /// Llama-family weights; each layer's head counts and MLP width come from its tensors.
    public static func loadLlamaWeights(_ checkpoint: SafeTensorsReader, llama c: LlamaConfig, dtype: WeightDType = .f32) throws -> LlamaWeights {
        let ledger = NameLedger(checkpoint)
        ledger.dtype = dtype
        let C = c.hiddenSize, D = c.headDim
        // A quantized or half-precision table loads as a layer read row by row, never as floats.
        var quantizedEmbed: (any LinearLayer)? = nil
        if checkpoint.info(LlamaNames.embeddingModule + ".weight_scale") != nil
            || HalfLinearLoader(dtype: dtype).halfType(of: LlamaNames.embedding, in: checkpoint) != nil {
            quantizedEmbed = try ledger.linear(LlamaNames.embeddingModule)
        }
        let vocab = quantizedEmbed?.outFeatures ?? checkpoint.info(LlamaNames.embedding)?.shape.first ?? c.vocabSize
        if let q = quantizedEmbed { ledger.expectShape(LlamaNames.embedding, [q.outFeatures, q.inFeatures], [vocab, C]) }
        let embed = quantizedEmbed == nil ? try ledger.tensor(LlamaNames.embedding, [vocab, C]) : FloatStorage(zeros: 0)
        var layers: [LlamaLayerWeights] = []
        for i in 0..<c.numLayers {
            let ln1 = try ledger.tensor(LlamaNames.norm(.input, layer: i), [C])
            let ln2 = try ledger.tensor(LlamaNames.norm(.postAttention, layer: i), [C])
            let linears = try LlamaProjection.allCases.map { try ledger.linear(LlamaNames.module($0, layer: i)) }
            let present = linears.compactMap { $0 }
            guard let ln1, let ln2, present.count == linears.count else { continue }
            let q = present[0], k = present[1], v = present[2], o = present[3], g = present[4], u = present[5], dn = present[6]
            // Per-layer dims from the shapes: H_l·D = q rows, G_l·D = k rows, F_l = gate rows.
            let qw = q.outFeatures, kvw = k.outFeatures, f = g.outFeatures
            if qw % D != 0 || kvw % D != 0 {
                ledger.shapeErrors.append("layer \(i): q/k rows \(qw)/\(kvw) are not multiples of head_dim \(D)")
            } else if (kvw == 0) != (qw == 0) || (kvw > 0 && (qw / D) % (kvw / D) != 0) {
                ledger.shapeErrors.append("layer \(i): \(qw / D) query heads, not a multiple of its \(kvw / D) key/value heads")
            }
            for (role, lin) in zip(LlamaProjection.allCases, present) {
                let expected: [Int]
                switch role {
                case .q: expected = [qw, C]
                case .k, .v: expected = [kvw, C]
                case .o: expected = [C, qw]
                case .gate, .up: expected = [f, C]
                case .down: expected = [C, f]
                }
                ledger.expectShape(LlamaNames.weight(role, layer: i), [lin.outFeatures, lin.inFeatures], expected)
            }
            for (role, lin) in zip(LlamaProjection.allCases, present) {
                let required: Bool
                switch role {
                case .q, .k, .v: required = c.qkvBias
                case .o: required = c.outputBias
                case .gate, .up, .down: required = c.mlpBias
                }
                ledger.expectBias(LlamaNames.module(role, layer: i), lin, required: required)
            }
            layers.append(LlamaLayerWeights(inputLayernorm: ln1, qProj: q, kProj: k, vProj: v, oProj: o,
                                            postAttentionLayernorm: ln2, gateProj: g, upProj: u, downProj: dn,
                                            headDim: D))
        }
        let norm = try ledger.tensor(LlamaNames.finalNorm, [C])
        var head: (any LinearLayer)?
        // A tied checkpoint may still carry lm_head.weight (ignored, as transformers does).
        let tied = c.tieWordEmbeddings
        let embeddingRows = quantizedEmbed as? any EmbeddingRows
        if tied {
            // vLLM and transformers tie lm_head to the embedding and skip any lm_head tensors, so
            // a quantized one here would be silently dropped: refuse it (GreenPrune unties the
            // config when it quantizes the head of a tied model).
            if checkpoint.info(LlamaNames.headModule + ".weight_scale") != nil {
                throw InputError(checkpoint.files.first?.url.deletingLastPathComponent().appendingPathComponent("config.json").path ?? "config.json",
                                 "tie_word_embeddings is true but the checkpoint has a quantized \(LlamaNames.headModule), which vLLM and transformers would ignore; set tie_word_embeddings to false to use it")
            }
            if let q = quantizedEmbed { head = q }
            else if let embed { head = DenseLinear(weight: embed, outFeatures: vocab, inFeatures: C) }
            if let h = checkpoint.info(LlamaNames.head) { ledger.expectShape(LlamaNames.head, h.shape, [vocab, C]) }
        } else {
            head = try ledger.linear(LlamaNames.headModule)
            if let head { ledger.expectShape(LlamaNames.head, [head.outFeatures, head.inFeatures], [vocab, C]) }
        }
        try ledger.finish(ignoring: { name in
            (tied && name == LlamaNames.head) || name.hasSuffix(".rotary_emb.inv_freq")
        }, family: c.modelType)
        guard let embed, let norm, let head, layers.count == c.numLayers else {
            throw InputError(checkpoint.files.first?.url.path ?? "checkpoint", "incomplete llama checkpoint")
        }
        return LlamaWeights(embedTokens: embed, layers: layers, norm: norm, lmHead: head, tied: tied, embeddingRows: embeddingRows)
    }

    // MARK: BERT

    /// BERT or MPNet weights (names with or without the `bert.` / `mpnet.` prefix); pooler and
    /// the `embeddings.position_ids` buffer are ignored, as sentence-transformers does.
    public static func loadBertWeights(_ checkpoint: SafeTensorsReader, config c: BertConfig, dtype: WeightDType = .f32) throws -> BertWeights {
        let ledger = NameLedger(checkpoint)
        ledger.dtype = dtype
        let arch = c.architecture
        let prefix = checkpoint.info(arch.modelPrefix + BertNames.wordEmbeddings) != nil ? arch.modelPrefix : ""
        let C = c.hiddenSize, F = c.intermediateSize
        func t(_ name: String, _ shape: [Int]) throws -> FloatStorage? { try ledger.tensor(prefix + name, shape) }
        func lin(_ name: String, _ out: Int, _ inp: Int) throws -> (any LinearLayer)? {
            guard let l = try ledger.linear(prefix + name) else { return nil }
            ledger.expectShape(prefix + name + ".weight", [l.outFeatures, l.inFeatures], [out, inp])
            ledger.expectBias(prefix + name, l, required: true)
            return l
        }
        // A quantized or half-precision token table loads as rows read per token, as a decoder's
        // does: expanded in full, it alone would outweigh the quantized model.
        var wordRows: (any EmbeddingRows)? = nil
        let wordModule = prefix + BertNames.wordEmbeddingsModule
        if checkpoint.info(wordModule + ".weight_scale") != nil
            || HalfLinearLoader(dtype: dtype).halfType(of: wordModule + ".weight", in: checkpoint) != nil {
            if let l = try ledger.linear(wordModule) {
                ledger.expectShape(wordModule + ".weight", [l.outFeatures, l.inFeatures], [c.vocabSize, C])
                wordRows = l as? any EmbeddingRows
            }
        }
        let word = wordRows == nil ? try t(BertNames.wordEmbeddings, [c.vocabSize, C]) : FloatStorage(zeros: 0)
        let pos = try t(BertNames.positionEmbeddings, [c.maxPositions, C])
        let type = arch == .bert ? try t(BertNames.tokenTypeEmbeddings, [c.typeVocabSize, C]) : nil
        let relative = arch == .mpnet ? try t(BertNames.relativeAttentionBias, [c.relativeAttentionBuckets, c.numHeads]) : nil
        let lnw = try t(BertNames.embeddingsLayerNorm + ".weight", [C]), lnb = try t(BertNames.embeddingsLayerNorm + ".bias", [C])
        var layers: [BertLayerWeights] = []
        for i in 0..<c.numLayers {
            let q = try lin(BertNames.module(.query, layer: i, architecture: arch), C, C)
            let k = try lin(BertNames.module(.key, layer: i, architecture: arch), C, C)
            let v = try lin(BertNames.module(.value, layer: i, architecture: arch), C, C)
            let o = try lin(BertNames.module(.attentionOutput, layer: i, architecture: arch), C, C)
            let an = BertNames.attentionLayerNorm(layer: i, architecture: arch)
            let aw = try t(an + ".weight", [C]), ab = try t(an + ".bias", [C])
            let inter = try lin(BertNames.module(.intermediate, layer: i, architecture: arch), F, C)
            let out = try lin(BertNames.module(.output, layer: i, architecture: arch), C, F)
            let on = BertNames.outputLayerNorm(layer: i)
            let ow = try t(on + ".weight", [C]), ob = try t(on + ".bias", [C])
            guard let q, let k, let v, let o, let aw, let ab, let inter, let out, let ow, let ob else { continue }
            layers.append(BertLayerWeights(query: q, key: k, value: v, attentionOutput: o,
                                           attentionLayerNormWeight: aw, attentionLayerNormBias: ab,
                                           intermediate: inter, output: out,
                                           outputLayerNormWeight: ow, outputLayerNormBias: ob))
        }
        try ledger.finish(ignoring: { name in
            let n = name.hasPrefix(prefix) ? String(name.dropFirst(prefix.count)) : name
            return n == BertNames.positionIDs || n.hasPrefix(BertNames.poolerPrefix)
        }, family: arch.rawValue)
        guard let word, let pos, (type != nil) == (arch == .bert), (relative != nil) == (arch == .mpnet), let lnw, let lnb,
              layers.count == c.numLayers else {
            throw InputError(checkpoint.files.first?.url.path ?? "checkpoint", "incomplete \(arch.rawValue) checkpoint")
        }
        return BertWeights(wordEmbeddings: word, positionEmbeddings: pos, tokenTypeEmbeddings: type,
                           embeddingsLayerNormWeight: lnw, embeddingsLayerNormBias: lnb, layers: layers,
                           relativeAttentionBias: relative, wordEmbeddingRows: wordRows)
    }
}

