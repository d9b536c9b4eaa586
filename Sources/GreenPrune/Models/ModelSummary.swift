import Foundation

/// What `greenprune inspect` reports about a loaded model directory, and what results files
/// record (parameters, non-embedding parameters, bytes on disk).
public struct ModelSummary: Codable, Sendable {
    /// One layer's dimensions, read from its tensors.
    public struct Layer: Codable, Sendable {
        public var index: Int
        public var heads: Int
        public var kvHeads: Int
        public var headDim: Int
        public var mlp: Int
        enum CodingKeys: String, CodingKey {
            case index, heads, headDim = "head_dim", kvHeads = "kv_heads", mlp = "intermediate_size"
        }
    }
    public var directory: String
    public var family: String
    public var modelType: String
    public var architectures: [String]
    public var hiddenSize: Int
    public var vocabSize: Int
    public var maxPositions: Int
    public var tiedEmbeddings: Bool
    public var layers: [Layer]
    /// Parameters per component: embeddings, attention, mlp, norms, lm_head.
    public var parametersByComponent: [String: Int]
    public var parameters: Int
    /// Parameters outside the token embedding (and a separate output layer).
    public var nonEmbeddingParameters: Int
    /// Tensor count per checkpoint dtype.
    public var dtypes: [String: Int]
    /// Size of the safetensors files.
    public var checkpointBytes: Int
    /// Size of every file in the directory.
    public var bytesOnDisk: Int
    /// Weights as they sit in memory while running (float32, bf16/f16 as loaded, or packed when quantized).
    public var weightBytesInMemory: Int
    /// Weight bytes read from the file without a copy (mmap'd float32, bf16 or f16).
    public var mappedWeightBytes: Int
    /// Tokens per forward assumed for the estimate (the scorer's batch budget).
    public var estimateTokens: Int
    /// Activation buffers for that forward.
    public var activationBytes: Int
    /// weights + activations.
    public var estimatedMemoryBytes: Int

    enum CodingKeys: String, CodingKey {
        case directory, family, layers, parameters, dtypes, architectures
        case modelType = "model_type", hiddenSize = "hidden_size", vocabSize = "vocab_size"
        case maxPositions = "max_position_embeddings", tiedEmbeddings = "tie_word_embeddings"
        case parametersByComponent = "parameters_by_component"
        case nonEmbeddingParameters = "non_embedding_parameters"
        case checkpointBytes = "checkpoint_bytes", bytesOnDisk = "bytes_on_disk"
        case weightBytesInMemory = "weight_bytes_in_memory", mappedWeightBytes = "mapped_weight_bytes"
        case estimateTokens = "estimate_tokens", activationBytes = "activation_bytes"
        case estimatedMemoryBytes = "estimated_memory_bytes"
    }

    /// Summarises a loaded bundle.
    public init(_ b: ModelBundle) {
        directory = b.directory.path
        family = b.family.rawValue
        modelType = b.config.modelType ?? ""
        architectures = b.config.architectures ?? []
        var dt: [String: Int] = [:]
        for n in b.checkpoint.names { if let i = b.checkpoint.info(n) { dt[i.dtype.rawValue, default: 0] += 1 } }
        dtypes = dt
        checkpointBytes = b.checkpoint.bytesOnDisk
        bytesOnDisk = ModelSummary.directoryBytes(b.directory)
        func linearParams(_ l: any LinearLayer) -> Int {
            l.inFeatures * l.outFeatures + (l.bias?.count ?? 0)
        }
        func mapped(_ s: FloatStorage?) -> Int { s.map { $0.isMapped ? $0.byteCount : 0 } ?? 0 }
        func mapped(_ l: any LinearLayer) -> Int { l.mappedBytes }
        switch b.model {
        case .llama(let m):
            let w = m.weights, c = m.config
            hiddenSize = w.hiddenSize; vocabSize = w.vocabSize; maxPositions = c.maxPositions; tiedEmbeddings = w.tied
            layers = w.layers.enumerated().map { Layer(index: $0, heads: $1.numHeads, kvHeads: $1.numKVHeads, headDim: c.headDim, mlp: $1.intermediateSize) }
            let attn = w.layers.reduce(0) { $0 + [$1.qProj, $1.kProj, $1.vProj, $1.oProj].map(linearParams).reduce(0, +) }
            let mlp = w.layers.reduce(0) { $0 + [$1.gateProj, $1.upProj, $1.downProj].map(linearParams).reduce(0, +) }
            let norms = w.layers.reduce(w.norm.count) { $0 + $1.inputLayernorm.count + $1.postAttentionLayernorm.count }
            let head = w.tied ? 0 : linearParams(w.lmHead)
            parametersByComponent = ["embeddings": w.embeddingCount, "attention": attn, "mlp": mlp, "norms": norms, "lm_head": head]
            parameters = w.embeddingCount + attn + mlp + norms + head
            nonEmbeddingParameters = attn + mlp + norms
            // A quantized table replaces the float one, whose mapped pages are then never read.
            let rowsLayer = w.embeddingRows as? any LinearLayer
            let headSeparate = !w.tied || rowsLayer != nil
            let embedBytes = rowsLayer.map { $0 === w.lmHead ? 0 : $0.residentBytes } ?? w.embedTokens.byteCount
            var inMemory = embedBytes + 4 * norms + (headSeparate ? w.lmHead.residentBytes : 0)
            // A bf16/f16 table read row by row is a mapped `HalfLinear` (the head too, when tied).
            let embedMapped = rowsLayer.map { $0 === w.lmHead ? 0 : mapped($0) } ?? mapped(w.embedTokens)
            var mappedBytes = embedMapped + mapped(w.norm) + (headSeparate ? mapped(w.lmHead) : 0)
            for l in w.layers {
                for (_, lin) in l.linears { inMemory += lin.residentBytes; mappedBytes += mapped(lin) }
                mappedBytes += mapped(l.inputLayernorm) + mapped(l.postAttentionLayernorm)
            }
            weightBytesInMemory = inMemory
            mappedWeightBytes = mappedBytes
            estimateTokens = m.maxBatchTokens
            activationBytes = m.activationBytes(rows: m.maxBatchTokens, time: min(512, m.maxBatchTokens))
        case .decoder(let m):
            let f = m.facts
            hiddenSize = m.hiddenSize; vocabSize = m.vocabularySize; maxPositions = f.maxPositions; tiedEmbeddings = f.tiedEmbeddings
            layers = f.layers.enumerated().map { Layer(index: $0, heads: $1.heads, kvHeads: $1.kvHeads, headDim: $1.headDim, mlp: $1.mlp) }
            parametersByComponent = f.parametersByComponent
            parameters = f.parameters
            nonEmbeddingParameters = f.nonEmbeddingParameters
            weightBytesInMemory = f.weightBytes
            mappedWeightBytes = f.mappedWeightBytes
            estimateTokens = m.maxBatchTokens
            activationBytes = m.activationBytes(rows: m.maxBatchTokens, time: min(512, m.maxBatchTokens))
        case .bert(let m):
            let w = m.weights, c = m.config
            hiddenSize = c.hiddenSize; vocabSize = c.vocabSize; maxPositions = c.maxPositions; tiedEmbeddings = false
            layers = w.layers.indices.map { Layer(index: $0, heads: c.numHeads, kvHeads: c.numHeads, headDim: c.headDim, mlp: c.intermediateSize) }
            let emb = w.embeddingCount
            let attn = w.layers.reduce(w.relativeAttentionBias?.count ?? 0) { $0 + [$1.query, $1.key, $1.value, $1.attentionOutput].map(linearParams).reduce(0, +) }
            let mlp = w.layers.reduce(0) { $0 + linearParams($1.intermediate) + linearParams($1.output) }
            let norms = 2 * c.hiddenSize * (1 + 2 * w.layers.count)
            parametersByComponent = ["embeddings": emb, "attention": attn, "mlp": mlp, "norms": norms, "lm_head": 0]
            parameters = emb + attn + mlp + norms
            nonEmbeddingParameters = attn + mlp + norms
            let relative = w.relativeAttentionBias?.count ?? 0
            // A quantized or half token table is a layer read row by row, counted as stored.
            let wordRows = w.wordEmbeddingRows as? any LinearLayer
            var inMemory = 4 * (emb + norms + relative) + (wordRows.map { $0.residentBytes - 4 * $0.outFeatures * $0.inFeatures } ?? 0)
            var mappedBytes = (wordRows.map(mapped) ?? mapped(w.wordEmbeddings)) + mapped(w.positionEmbeddings)
                + mapped(w.tokenTypeEmbeddings) + mapped(w.relativeAttentionBias)
            for l in w.layers {
                for lin in [l.query, l.key, l.value, l.attentionOutput, l.intermediate, l.output] {
                    inMemory += lin.residentBytes; mappedBytes += mapped(lin)
                }
            }
            weightBytesInMemory = inMemory
            mappedWeightBytes = mappedBytes
            estimateTokens = min(m.maxBatchTokens, 64 * m.maxSequenceLength)
            let n = estimateTokens, t = min(m.maxSequenceLength, n)
            activationBytes = 4 * (n * (5 * c.hiddenSize + c.intermediateSize) + t * t)   // x, tmp, q (attention output in place), k, v; FFN
        }
        estimatedMemoryBytes = weightBytesInMemory + activationBytes
    }

    /// Σ sizes of the regular files directly in `dir` (and one level of subdirectories).
    public static func directoryBytes(_ dir: URL) -> Int {
        guard let e = FileManager.default.enumerator(at: dir, includingPropertiesForKeys: [.fileSizeKey, .isRegularFileKey]) else { return 0 }
        var total = 0
        for case let u as URL in e {
            if let v = try? u.resourceValues(forKeys: [.fileSizeKey, .isRegularFileKey]), v.isRegularFile == true { total += v.fileSize ?? 0 }
        }
        return total
    }
}
