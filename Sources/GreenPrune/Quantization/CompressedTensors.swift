import Foundation

/// The `compressed-tensors` checkpoint layout (neuralmagic/compressed-tensors, read by vLLM and
/// llm-compressor): how quantized Linear weights are named, packed and described in config.json.
///
/// Per quantized module `<m>` (e.g. `model.layers.0.self_attn.q_proj`):
/// - format `pack-quantized` (our 4-bit): `<m>.weight_packed` int32 (out, ⌈in/(32/b)⌉) holding
///   32/b codes per word, least-significant first, each stored as q + 2^(b−1) (unsigned);
///   `<m>.weight_shape` int64 [out, in] (the library's `torch.tensor(weight.shape)`; int32 read too); `<m>.weight_scale` (out, groups) — (1) for a tensor
///   scale, (out, 1) per channel; `<m>.weight_zero_point` when asymmetric: for channel/group
///   int32 packed the same way but along the output dimension, (⌈out/(32/b)⌉, groups); for a
///   tensor scale int8 (1).
/// - format `int-quantized` (our 8-bit): `<m>.weight` int8 (out, in) codes, `<m>.weight_scale`
///   as above, `<m>.weight_zero_point` int8 with the scale's shape when asymmetric.
public enum CompressedTensors {
    /// `quantization_config.format` for a bit width.
    public static func format(bits: Int) -> String { bits == 8 ? "int-quantized" : "pack-quantized" }

    /// Packs signed codes (rows, cols) along the columns into int32 words:
    /// (rows, ⌈cols/(32/bits)⌉), code j of a word in bits [bits·j, bits·(j+1)), offset 2^(bits−1),
    /// zero padding at the end of each row.
    public static func pack(_ codes: [Int8], rows: Int, cols: Int, bits: Int) -> [Int32] {
        let per = 32 / bits, words = (cols + per - 1) / per
        let offset = 1 << (bits - 1), mask = UInt32((1 << bits) - 1)
        var out = [Int32](repeating: 0, count: rows * words)
        for r in 0 ..< rows {
            for w in 0 ..< words {
                var word: UInt32 = 0
                for j in 0 ..< per {
                    let c = w * per + j
                    guard c < cols else { break }
                    let u = UInt32(Int(codes[r * cols + c]) + offset) & mask
                    word |= u << UInt32(bits * j)
                }
                out[r * words + w] = Int32(bitPattern: word)
            }
        }
        return out
    }

    /// Inverse of `pack`: (rows, cols) signed codes.
    public static func unpack(_ words: [Int32], rows: Int, cols: Int, bits: Int) -> [Int8] {
        let per = 32 / bits, nw = (cols + per - 1) / per
        let offset = 1 << (bits - 1), mask = UInt32((1 << bits) - 1)
        var out = [Int8](repeating: 0, count: rows * cols)
        for r in 0 ..< rows {
            for c in 0 ..< cols {
                let word = UInt32(bitPattern: words[r * nw + c / per])
                let u = (word >> UInt32(bits * (c % per))) & mask
                out[r * cols + c] = Int8(Int(u) - offset)
            }
        }
        return out
    }

    /// Packs (rows, cols) codes along the rows (compressed-tensors' `packed_dim=0`, used for zero
    /// points): (⌈rows/(32/bits)⌉, cols), row i of a word column at bits [bits·(i mod per), …).
    public static func packRows(_ codes: [Int8], rows: Int, cols: Int, bits: Int) -> [Int32] {
        let per = 32 / bits, prow = (rows + per - 1) / per
        let offset = 1 << (bits - 1), mask = UInt32((1 << bits) - 1)
        var out = [UInt32](repeating: 0, count: prow * cols)
        for r in 0 ..< rows {
            for c in 0 ..< cols {
                let u = UInt32(Int(codes[r * cols + c]) + offset) & mask
                out[(r / per) * cols + c] |= u << UInt32(bits * (r % per))
            }
        }
        return out.map { Int32(bitPattern: $0) }
    }

    /// Inverse of `packRows`.
    public static func unpackRows(_ words: [Int32], rows: Int, cols: Int, bits: Int) -> [Int8] {
        let per = 32 / bits
        let offset = 1 << (bits - 1), mask = UInt32((1 << bits) - 1)
        var out = [Int8](repeating: 0, count: rows * cols)
        for r in 0 ..< rows {
            for c in 0 ..< cols {
                let u = (UInt32(bitPattern: words[(r / per) * cols + c]) >> UInt32(bits * (r % per))) & mask
                out[r * cols + c] = Int8(Int(u) - offset)
            }
        }
        return out
    }

    /// Shape of `weight_scale` (and an asymmetric `weight_zero_point` before packing).
    public static func scaleShape(_ t: QuantizedTensor) -> [Int] {
        switch t.scheme.granularity {
        case .tensor: return [1]
        case .channel: return [t.rows, 1]
        case .group: return [t.rows, t.groupsPerRow]
        }
    }
}

/// compressed-tensors' `QuantizationArgs` (one entry of `weights` / `input_activations`).
public struct CTQuantizationArgs: Codable, Equatable, Sendable {
    public var numBits: Int
    public var type: String
    public var symmetric: Bool
    public var groupSize: Int?
    /// "tensor", "channel", "group" (weights) or "token" (activations).
    public var strategy: String
    /// True for activations quantized at run time.
    public var dynamic: Bool
    public var observer: String?

    enum CodingKeys: String, CodingKey {
        case numBits = "num_bits", type, symmetric, groupSize = "group_size", strategy, dynamic,
             observer, blockStructure = "block_structure", actorder, observerKwargs = "observer_kwargs"
    }

    public init(numBits: Int, symmetric: Bool, groupSize: Int?, strategy: String, dynamic: Bool) {
        self.numBits = numBits; self.type = "int"; self.symmetric = symmetric
        self.groupSize = groupSize; self.strategy = strategy; self.dynamic = dynamic
        self.observer = dynamic ? nil : "minmax"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        numBits = try c.decode(Int.self, forKey: .numBits)
        type = try c.decodeIfPresent(String.self, forKey: .type) ?? "int"
        symmetric = try c.decodeIfPresent(Bool.self, forKey: .symmetric) ?? true
        groupSize = try c.decodeIfPresent(Int.self, forKey: .groupSize)
        strategy = try c.decodeIfPresent(String.self, forKey: .strategy) ?? "tensor"
        dynamic = (try? c.decodeIfPresent(Bool.self, forKey: .dynamic)) ?? false
        observer = try? c.decodeIfPresent(String.self, forKey: .observer)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(numBits, forKey: .numBits)
        try c.encode(type, forKey: .type)
        try c.encode(symmetric, forKey: .symmetric)
        try c.encode(groupSize, forKey: .groupSize)       // null unless strategy "group"
        try c.encode(strategy, forKey: .strategy)
        try c.encode(dynamic, forKey: .dynamic)
        try c.encode(observer, forKey: .observer)
        try c.encodeNil(forKey: .blockStructure)
        try c.encodeNil(forKey: .actorder)
        try c.encode([String: String](), forKey: .observerKwargs)
    }
}

/// One `config_groups` entry: which modules it targets and how their tensors are quantized.
public struct CTConfigGroup: Codable, Equatable, Sendable {
    public var targets: [String]
    public var weights: CTQuantizationArgs
    public var inputActivations: CTQuantizationArgs?
    /// The group's compression format (`QuantizationScheme.format`); without it compressed-tensors
    /// ≥ 0.20 infers one per module, pack-quantized for any integer weight of ≤ 8 bits.
    public var format: String?

    enum CodingKeys: String, CodingKey {
        case targets, weights, inputActivations = "input_activations", outputActivations = "output_activations", format
    }

    public init(targets: [String], weights: CTQuantizationArgs, inputActivations: CTQuantizationArgs?, format: String? = nil) {
        self.targets = targets; self.weights = weights; self.inputActivations = inputActivations; self.format = format
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        targets = try c.decodeIfPresent([String].self, forKey: .targets) ?? ["Linear"]
        weights = try c.decode(CTQuantizationArgs.self, forKey: .weights)
        inputActivations = try c.decodeIfPresent(CTQuantizationArgs.self, forKey: .inputActivations)
        format = try c.decodeIfPresent(String.self, forKey: .format)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(targets, forKey: .targets)
        try c.encode(weights, forKey: .weights)
        try c.encode(inputActivations, forKey: .inputActivations)
        try c.encodeNil(forKey: .outputActivations)
        try c.encodeIfPresent(format, forKey: .format)
    }
}

/// config.json's `quantization_config` for `quant_method: "compressed-tensors"`.
public struct CTQuantizationConfig: Codable, Equatable, Sendable {
    /// Its member of config.json.
    public static let key = "quantization_config"
    public var quantMethod: String
    public var format: String
    public var configGroups: [String: CTConfigGroup]
    /// Linear modules left unquantized (exact module names, e.g. "lm_head").
    public var ignore: [String]
    public var quantizationStatus: String

    enum CodingKeys: String, CodingKey {
        case quantMethod = "quant_method", format, configGroups = "config_groups", ignore,
             quantizationStatus = "quantization_status", kvCacheScheme = "kv_cache_scheme",
             globalCompressionRatio = "global_compression_ratio"
    }

    /// One config group for `scheme`; `includesEmbeddings` adds "Embedding" to its targets.
    public init(scheme: QuantScheme, activationsInt8: Bool, ignore: [String], includesEmbeddings: Bool = false) {
        quantMethod = "compressed-tensors"
        format = CompressedTensors.format(bits: scheme.bits)
        var w = CTQuantizationArgs(numBits: scheme.bits, symmetric: scheme.symmetric, groupSize: scheme.groupSize,
                                   strategy: scheme.granularity.rawValue, dynamic: false)
        w.observer = scheme.observer.rawValue
        let a = activationsInt8 ? CTQuantizationArgs(numBits: 8, symmetric: true, groupSize: nil,
                                                     strategy: "token", dynamic: true) : nil
        configGroups = ["group_0": CTConfigGroup(targets: includesEmbeddings ? ["Linear", "Embedding"] : ["Linear"],
                                                 weights: w, inputActivations: a, format: format)]
        self.ignore = ignore
        quantizationStatus = "compressed"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        quantMethod = try c.decode(String.self, forKey: .quantMethod)
        format = try c.decode(String.self, forKey: .format)
        configGroups = try c.decode([String: CTConfigGroup].self, forKey: .configGroups)
        ignore = try c.decodeIfPresent([String].self, forKey: .ignore) ?? []
        quantizationStatus = try c.decodeIfPresent(String.self, forKey: .quantizationStatus) ?? "compressed"
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(quantMethod, forKey: .quantMethod)
        try c.encode(format, forKey: .format)
        try c.encode(configGroups, forKey: .configGroups)
        try c.encode(ignore, forKey: .ignore)
        try c.encode(quantizationStatus, forKey: .quantizationStatus)
        try c.encodeNil(forKey: .kvCacheScheme)
        try c.encodeNil(forKey: .globalCompressionRatio)
    }

    /// The one scheme GreenPrune reads back (a single config group of integer weights), or a
    /// one-line error naming what it cannot run.
    public func scheme(source: String) throws -> (scheme: QuantScheme, activationsInt8: Bool) {
        guard quantMethod == "compressed-tensors" else {
            throw InputError(source, "quant_method \"\(quantMethod)\" is not supported (only compressed-tensors)")
        }
        guard configGroups.count == 1, let g = configGroups.values.first else {
            throw InputError(source, "quantization_config has \(configGroups.count) config_groups; GreenPrune reads exactly one")
        }
        // A group's own format wins over the top-level one (which says "mixed-precision" then).
        let format = g.format ?? self.format
        guard format == "pack-quantized" || format == "int-quantized" || format == "naive-quantized" else {
            throw InputError(source, "compressed-tensors format \"\(format)\" is not supported (pack-quantized, int-quantized)")
        }
        let w = g.weights
        guard w.type == "int" else { throw InputError(source, "weights of type \"\(w.type)\" are not supported (int only)") }
        guard let gran = QuantGranularity(rawValue: w.strategy) else {
            throw InputError(source, "weight strategy \"\(w.strategy)\" is not supported (tensor, channel, group)")
        }
        let s = try QuantScheme(bits: w.numBits, granularity: gran, groupSize: w.groupSize, symmetric: w.symmetric,
                                observer: w.observer.flatMap { QuantObserver(rawValue: $0) } ?? .minmax)
        return (s, g.inputActivations != nil)
    }
}
