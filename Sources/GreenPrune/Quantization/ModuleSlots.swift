import Foundation

/// Where each module a quantizer names (a checkpoint module: `model.layers.3.mlp.down_proj`,
/// `lm_head`, `embed_tokens`, `encoder.layer.0.attention.self.query`) lives in a loaded model:
/// its float weight to quantize and the place its quantized layer takes, laid out as the model
/// loader lays out a quantized checkpoint, so the quantized model in memory is the one a written
/// directory loads as.
struct ModuleSlots {
    let bundle: ModelBundle

    init(_ bundle: ModelBundle) { self.bundle = bundle }

    /// True when `module` is the head made from a tied (or head-less) decoder's embedding.
    private func headFromEmbedding(_ module: String) -> Bool {
        module == LlamaNames.headModule && (bundle.config.tieWordEmbeddings == true || bundle.checkpoint.info(LlamaNames.head) == nil)
    }

    /// W (rows, cols) of `module` as float32 and its bias, as the model holds them now.
    func floatWeight(_ module: String) throws -> (values: [Float], rows: Int, cols: Int, bias: FloatStorage?) {
        switch bundle.model {
        case .llama(let m):
            let w = m.weights, c = w.hiddenSize
            if module == LlamaNames.embeddingModule || headFromEmbedding(module) {
                guard w.embeddingRows == nil else { throw InputError(LlamaNames.embedding, "is not a float table in this model") }
                return (w.embedTokens.array, w.embedTokens.count / max(c, 1), c, nil)
            }
            if module == LlamaNames.headModule { return try rows(of: w.lmHead, module) }
            guard let p = LlamaNames.parse(module + ".weight"), case .projection(let r) = p.role, let i = p.layer, i < w.layers.count else {
                throw InputError(module, "is not a module of this model")
            }
            return try rows(of: w.layers[i].linear(r), module)
        case .bert(let m):
            if BertNames.unprefixed(module) == BertNames.wordEmbeddingsModule {
                let c = m.config.hiddenSize
                return (m.weights.wordEmbeddings.array, m.weights.wordEmbeddings.count / max(c, 1), c, nil)
            }
            guard let (i, r) = BertNames.projection(ofModule: module), i < m.weights.layers.count else {
                throw InputError(module, "is not a module of this model")
            }
            return try rows(of: m.weights.layers[i].linear(r), module)
        case .decoder:
            throw InputError(module, "quantize supports llama-family decoders and encoders")
        }
    }

    private func rows(of l: any LinearLayer, _ module: String) throws -> (values: [Float], rows: Int, cols: Int, bias: FloatStorage?) {
        // A model quantized once (in memory) is not quantized again from its codes.
        guard l.weightStorage.isFloat else { throw InputError(module, "is not float in this model; quantize the float model") }
        var v = [Float](repeating: 0, count: l.outFeatures * l.inFeatures)
        if !v.isEmpty { try v.withUnsafeMutableBufferPointer { try l.weightRows(0 ..< l.outFeatures, into: $0.baseAddress!) } }
        return (v, l.outFeatures, l.inFeatures, l.bias)
    }

    /// Puts `layer` in `module`'s place: a projection or head replaced; a decoder's quantized
    /// table read row by row (and its head when tied); a quantized copy of a tied embedding as
    /// the head of an untied model (the config the writer gives it); an encoder's table as the
    /// dequantized floats the loader makes of it.
    func place(_ layer: QuantizedLinear, as module: String) throws {
        switch bundle.model {
        case .llama(let m):
            if module == LlamaNames.embeddingModule {
                m.weights.embeddingRows = layer
                m.weights.embedTokens = FloatStorage(zeros: 0)
                if m.weights.tied { m.weights.lmHead = layer }
            } else if headFromEmbedding(module) {
                m.weights.lmHead = layer
                m.weights.tied = false
            } else if module == LlamaNames.headModule {
                m.weights.lmHead = layer
            } else {
                guard let p = LlamaNames.parse(module + ".weight"), case .projection(let r) = p.role, let i = p.layer,
                      i < m.weights.layers.count else { throw InputError(module, "is not a module of this model") }
                m.weights.layers[i].setLinear(r, layer)
            }
        case .bert(let m):
            if BertNames.unprefixed(module) == BertNames.wordEmbeddingsModule {
                let table = FloatStorage(zeros: layer.outFeatures * layer.inFeatures)
                layer.dequantize(rows: 0 ..< layer.outFeatures, into: table.mutablePointer!)
                m.weights.wordEmbeddings = table
                return
            }
            guard let (i, r) = BertNames.projection(ofModule: module), i < m.weights.layers.count else {
                throw InputError(module, "is not a module of this model")
            }
            m.weights.layers[i].setLinear(r, layer)
        case .decoder:
            throw InputError(module, "quantize supports llama-family decoders and encoders")
        }
    }
}
