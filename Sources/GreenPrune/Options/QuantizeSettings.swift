import Foundation

/// Everything `greenprune quantize` is told besides the model and where to write: the flags, the
/// `quantize:` block of a sweep variant and the options file a sweep hands its child, one value.
/// `quantizeOptions(dataDirectory:)` turns it into what `Quantizer` takes.
public struct QuantizeSettings: CommandOptions, CalibrationSettings, Sendable {
    /// Round to nearest, or GPTQ's calibrated error compensation (same stored format).
    public enum Method: String, OptionChoice, Sendable { case rtn, gptq }
    /// Zero point 0, or a zero point per scale.
    public enum Scheme: String, OptionChoice, Sendable { case symmetric, asymmetric }
    /// `weight_scale` storage: a `ScaleType`, or auto: float32, what compressed-tensors' own
    /// writer emits for a float32 model (float16 halves the scales' bytes, as an option).
    public enum ScaleChoice: String, OptionChoice, Sendable {
        case auto, float16, float32
        public func resolved(bits: Int) -> ScaleType {
            switch self {
            case .auto: return .float32
            case .float16: return .float16
            case .float32: return .float32
            }
        }
    }

    /// Weight bits: 8 or 4.
    public var bits: Int
    /// nil: channel, or group when only `groupSize` is given (`resolvedGranularity`).
    public var granularity: QuantGranularity?
    /// Columns per scale with group granularity: 32, 64 or 128 (nil: 128).
    public var groupSize: Int?
    public var scheme: Scheme = .symmetric
    public var observer: QuantObserver = .minmax
    public var scaleDType: ScaleChoice = .auto
    /// Activations at run time: float, or dynamic per-token int8.
    public var activations: ActivationQuantization = .none
    /// Module-name globs or substrings left in float.
    public var skip: [String] = []
    /// Transformer layers left in float at the start / end.
    public var skipFirst = 0
    public var skipLast = 0
    public var includeHead = false
    public var includeEmbeddings = false
    public var format: QuantFormat = .compressedTensors
    public var method: Method = .rtn
    /// SmoothQuant strength α in (0, 1); nil: no smoothing.
    public var smooth: Double?
    /// AWQ scaling before rounding, its exponent grid, and whether it skips the range clipping.
    public var awq = false
    public var awqGrid = 20
    public var awqNoClip = false
    public var calibration: String?
    public var numExamples = 128
    public var calibrationLen = 256
    /// GPTQ: fraction of mean(diag H) added to H's diagonal.
    public var dampening = 0.01
    /// GPTQ: storage column order instead of act-order; Hessians from the float model in one pass.
    public var noActOrder = false
    public var noSequential = false
    /// `dtype`: the storage type of the float weights while the command runs and in what it writes
    /// (`--dtype`); nil is auto, the checkpoint's own (left out of the options file, so settings
    /// without it keep their hashes).
    public var dtype: WeightDType?

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case bits, granularity, groupSize = "group_size", scheme, observer, scaleDType = "scale_dtype", activations, skip,
             skipFirst = "skip_first", skipLast = "skip_last", includeHead = "include_head",
             includeEmbeddings = "include_embeddings", format, method, smooth, awq, awqGrid = "awq_grid",
             awqNoClip = "awq_no_clip", calibration, numExamples = "num_examples", calibrationLen = "calibration_len",
             dampening, noActOrder = "no_act_order", noSequential = "no_sequential", dtype
    }

    /// The defaults for `bits`-bit weights.
    public init(bits: Int) { self.bits = bits }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        guard let bits = try c.decodeIfPresent(Int.self, forKey: .bits) else { throw OptionError(nil, "needs {bits} (8 or 4)") }
        let d = QuantizeSettings(bits: bits)
        self = d
        granularity = try c.decodeIfPresent(QuantGranularity.self, forKey: .granularity)
        groupSize = try c.decodeIfPresent(Int.self, forKey: .groupSize)
        scheme = try c.value(.scheme, or: d.scheme)
        observer = try c.value(.observer, or: d.observer)
        scaleDType = try c.value(.scaleDType, or: d.scaleDType)
        activations = try c.value(.activations, or: d.activations)
        skip = try c.value(.skip, or: d.skip)
        skipFirst = try c.value(.skipFirst, or: d.skipFirst)
        skipLast = try c.value(.skipLast, or: d.skipLast)
        includeHead = try c.value(.includeHead, or: d.includeHead)
        includeEmbeddings = try c.value(.includeEmbeddings, or: d.includeEmbeddings)
        format = try c.value(.format, or: d.format)
        method = try c.value(.method, or: d.method)
        smooth = try c.decodeIfPresent(Double.self, forKey: .smooth)
        awq = try c.value(.awq, or: d.awq)
        awqGrid = try c.value(.awqGrid, or: d.awqGrid)
        awqNoClip = try c.value(.awqNoClip, or: d.awqNoClip)
        calibration = try c.decodeIfPresent(String.self, forKey: .calibration)
        numExamples = try c.value(.numExamples, or: d.numExamples)
        calibrationLen = try c.value(.calibrationLen, or: d.calibrationLen)
        dampening = try c.value(.dampening, or: d.dampening)
        noActOrder = try c.value(.noActOrder, or: d.noActOrder)
        noSequential = try c.value(.noSequential, or: d.noSequential)
        dtype = try WeightDType.option(c.decodeIfPresent(WeightDType.self, forKey: .dtype))
    }

    /// Channel by default; group when only `groupSize` is given.
    public var resolvedGranularity: QuantGranularity { granularity ?? (groupSize != nil ? .group : .channel) }

    public func validate() throws {
        guard bits == 8 || bits == 4 else { throw OptionError("bits", "must be 8 or 4, got \(bits)") }
        if let g = groupSize {
            guard QuantScheme.groupSizes.contains(g) else { throw OptionError("group_size", "must be 32, 64 or 128, got \(g)") }
            guard resolvedGranularity == .group else { throw OptionError("group_size", "needs {granularity} group") }
        }
        guard skipFirst >= 0 else { throw OptionError("skip_first", "must be ≥ 0, got \(skipFirst)") }
        guard skipLast >= 0 else { throw OptionError("skip_last", "must be ≥ 0, got \(skipLast)") }
        let calibrated = method == .gptq || smooth != nil || awq
        if method == .gptq {
            guard format == .compressedTensors else { throw OptionError("method", "gptq writes compressed-tensors directories, not {format} gguf") }
            guard dampening > 0, dampening < 1 else { throw OptionError("dampening", "must be in (0, 1), got \(OptionError.number(dampening))") }
        } else if calibration != nil && !calibrated {
            throw OptionError("calibration", "needs {method} gptq, {smooth} or {awq}")
        }
        if calibrated { try validateCalibration() }
        if awq {
            guard smooth == nil else { throw OptionError("awq", "and {smooth} both rescale the same channels; use one") }
            guard format == .compressedTensors else { throw OptionError("awq", "writes compressed-tensors directories, not {format} gguf") }
            guard awqGrid >= 2 else { throw OptionError("awq_grid", "must be at least 2, got \(awqGrid)") }
        }
        if let a = smooth {
            guard a > 0, a < 1 else { throw OptionError("smooth", "α = \(OptionError.number(a)) must be in (0, 1)") }
            guard format == .compressedTensors else { throw OptionError("smooth", "writes compressed-tensors directories, not {format} gguf") }
        }
    }

    /// What `Quantizer` takes; the calibration file defaults to the C4 sample under `dataDirectory`.
    public func quantizeOptions(dataDirectory: URL) throws -> QuantizeOptions {
        let s = try QuantScheme(bits: bits, granularity: resolvedGranularity, groupSize: groupSize, symmetric: scheme == .symmetric,
                                observer: observer, scaleType: scaleDType.resolved(bits: bits))
        let file = calibrationFile(dataDirectory: dataDirectory).path
        let gptq = method == .gptq
            ? try GPTQOptions(calibration: file, numExamples: numExamples, calibrationLength: calibrationLen,
                              dampening: dampening, actOrder: !noActOrder, sequential: !noSequential)
            : nil
        let sq = try smooth.map { try SmoothQuantOptions(alpha: $0, calibration: file, numExamples: numExamples, calibrationLength: calibrationLen) }
        let aw = awq
            ? try AWQOptions(calibration: file, numExamples: numExamples, calibrationLength: calibrationLen, gridSize: awqGrid, clip: !awqNoClip)
            : nil
        var o = QuantizeOptions(scheme: s, activations: activations, skip: skip, skipFirst: skipFirst, skipLast: skipLast,
                                includeHead: includeHead, includeEmbeddings: includeEmbeddings, format: format, gptq: gptq,
                                smoothQuant: sq, awq: aw)
        o.floatDType = dtype ?? .auto
        return o
    }
}
