import ArgumentParser
import Foundation
import GreenPrune

extension QuantGranularity: ExpressibleByArgument {}
extension QuantFormat: ExpressibleByArgument {}
extension ActivationQuantization: ExpressibleByArgument {}

/// `greenprune quantize DIR --out OUT --bits 8|4 …`: post-training round-to-nearest quantization.
struct Quantize: ParsableCommand {
    enum Scheme: String, ExpressibleByArgument, CaseIterable { case symmetric, asymmetric }
    enum Method: String, ExpressibleByArgument, CaseIterable { case rtn, gptq }

    static let configuration = CommandConfiguration(
        abstract: "Quantize every Linear layer of a model to INT8 or INT4 (compressed-tensors directory or GGUF).",
        discussion: """
        Writes OUT/ as a Hugging Face directory in the compressed-tensors layout (config.json gains \
        quantization_config; tensors <module>.weight (int8) or <module>.weight_packed (4-bit in int32) \
        with weight_scale), plus OUT/quantization.json with the settings, bytes before/after and wall time. \
        Embeddings and the output head stay in their dtype unless --include-embeddings / --include-head.
        """)

    @Argument(help: "Model directory (config.json + model.safetensors).")
    var model: String

    @Option(help: "Output directory (or .gguf file with --format gguf); must not exist or be empty, unless --force.")
    var out: String

    @OptionGroup var replace: ForceFlag

    @Option(help: "Weight bits: 8 or 4.")
    var bits: Int

    @Option(help: "Scale granularity: tensor, channel or group.")
    var granularity: QuantGranularity?

    @Option(help: "Columns per scale for --granularity group: 32, 64 or 128 (default 128).")
    var groupSize: Int?

    @Option(help: "symmetric (zero point 0) or asymmetric (a zero point per scale).")
    var scheme: Scheme = .symmetric

    @Option(help: "How scales are chosen: minmax (the block's range) or mse (the shrunk range, p = 1 … 0.80, with the least rounding error Σ|w − ŵ|^2.4, as llm-compressor's MSE observer).")
    var observer: QuantObserver = .minmax

    @Option(name: .customLong("scale-dtype"), help: "weight_scale storage: float16 (half the bytes, on disk and in memory for 4-bit layers; each scale is rounded up to a float16, at most 0.1% coarser, before the codes are computed, so every weight stays within half a step), float32 (what llm-compressor writes for a float32 model), or auto: float16 for --bits 4, float32 for --bits 8 (whose scales are a negligible share of the bytes and stay float32 in memory anyway).")
    var scaleDType: ScaleChoice = .auto

    @Option(help: "Activations at run time: none (float) or int8 (dynamic per-token int8, int8×int8 kernels).")
    var activations: ActivationQuantization = .none

    @Option(parsing: .singleValue, help: "Leave modules matching this glob or substring in float (repeatable).")
    var skip: [String] = []

    @Option(help: "Leave the first N transformer layers in float.")
    var skipFirst: Int = 0

    @Option(help: "Leave the last N transformer layers in float.")
    var skipLast: Int = 0

    @Flag(help: "Quantize the output head (lm_head) too; for a tied decoder a quantized copy of the embedding becomes lm_head and config.json is untied (the lookups keep the float table).")
    var includeHead = false

    @Flag(help: "Quantize the token embedding table too.")
    var includeEmbeddings = false

    @Option(help: "compressed-tensors (directory) or gguf (one file of ggml 32-weight blocks: Q8_0 for --bits 8, Q4_0 / Q4_1 for --bits 4 symmetric / asymmetric; the granularity flags do not apply).")
    var format: QuantFormat = .compressedTensors

    @Option(help: "rtn (round to nearest) or gptq (calibrated error compensation, same stored format).")
    var method: Method = .rtn

    @Option(help: "SmoothQuant strength α in (0, 1) (0.5 is the paper's default): before rounding, move each input channel's activation range into the weights, s_j = max|X_j|^α / max|W_j|^(1−α), folded into the preceding norm (q/k/v, gate/up) or up_proj rows (down). For --activations int8 on Llama decoders; uses the calibration flags below.")
    var smooth: Double?

    @Flag(help: "AWQ: before rounding, scale each input channel of q/k/v, gate/up and down by s = a^α (a: the channel's RMS on the calibration text), α searched per group for the least output error after rounding, folded into the preceding norm or up_proj rows. Llama decoders; combines with --method rtn or gptq; uses the calibration flags below.")
    var awq = false

    @Option(help: "AWQ: exponents tried per group, α = 0, 1/N, …, (N−1)/N.")
    var awqGrid = 20

    @Flag(help: "AWQ: scale only; do not clip each block's range (p·min, p·max, p = 1 … 0.5) for the least output error.")
    var awqNoClip = false

    @Option(help: "GPTQ / SmoothQuant / AWQ calibration text, JSONL with a 'text' field (default: the C4 sample in the data directory).")
    var calibration: String?

    @Option(help: "GPTQ / SmoothQuant / AWQ calibration documents.")
    var numExamples: Int = 128

    @Option(help: "GPTQ / SmoothQuant / AWQ tokens per calibration document.")
    var calibrationLen: Int = 256

    @Option(help: "GPTQ dampening: fraction of mean(diag H) added to H's diagonal.")
    var dampening: Double = 0.01

    @Flag(help: "GPTQ: quantize columns in storage order instead of by decreasing activation (act-order).")
    var noActOrder = false

    @Flag(help: "GPTQ on a decoder: take every Hessian from the float model in one pass instead of layer by layer through the quantized layers.")
    var noSequential = false

    @Option(help: "Data directory (default $GREENPRUNE_DATA or ../shared/data).")
    var dataDir: String?

    @Flag(help: "No progress bar.")
    var quiet = false

    /// Channel by default; group when only --group-size is given.
    var resolvedGranularity: QuantGranularity { granularity ?? (groupSize != nil ? .group : .channel) }

    func validate() throws {
        guard bits == 8 || bits == 4 else { throw ValidationError("--bits: \(bits) is not supported (use 8 or 4)") }
        if let g = groupSize {
            guard QuantScheme.groupSizes.contains(g) else { throw ValidationError("--group-size: \(g) is not supported (use 32, 64 or 128)") }
            guard resolvedGranularity == .group else { throw ValidationError("--group-size needs --granularity group") }
        }
        guard skipFirst >= 0, skipLast >= 0 else { throw ValidationError("--skip-first/--skip-last must not be negative") }
        if method == .gptq {
            guard format == .compressedTensors else { throw ValidationError("--method gptq writes compressed-tensors directories, not --format gguf") }
            guard numExamples >= 1 else { throw ValidationError("--num-examples must be at least 1") }
            guard calibrationLen >= 2 else { throw ValidationError("--calibration-len must be at least 2") }
            guard dampening > 0, dampening < 1 else { throw ValidationError("--dampening must be in (0, 1)") }
        } else if calibration != nil && smooth == nil && !awq {
            throw ValidationError("--calibration needs --method gptq, --smooth or --awq")
        }
        if awq {
            guard smooth == nil else { throw ValidationError("--awq and --smooth both rescale the same channels; use one") }
            guard format == .compressedTensors else { throw ValidationError("--awq writes compressed-tensors directories, not --format gguf") }
            guard awqGrid >= 2 else { throw ValidationError("--awq-grid must be at least 2") }
            guard numExamples >= 1, calibrationLen >= 2 else { throw ValidationError("--num-examples ≥ 1 and --calibration-len ≥ 2") }
        }
        if let a = smooth {
            guard a > 0, a < 1 else { throw ValidationError("--smooth: α = \(a) must be in (0, 1)") }
            guard format == .compressedTensors else { throw ValidationError("--smooth writes compressed-tensors directories, not --format gguf") }
            guard numExamples >= 1, calibrationLen >= 2 else { throw ValidationError("--num-examples ≥ 1 and --calibration-len ≥ 2") }
        }
    }

    func run() throws {
        try OutputTarget.check(URL(fileURLWithPath: out), inputs: [URL(fileURLWithPath: model)] + (calibration.map { [URL(fileURLWithPath: $0)] } ?? []),
                               force: replace.force)
        let s = try QuantScheme(bits: bits, granularity: resolvedGranularity, groupSize: groupSize, symmetric: scheme == .symmetric,
                                observer: observer, scaleType: scaleDType.resolved(bits: bits))
        var gptq: GPTQOptions?
        if method == .gptq {
            let file = calibration.map { URL(fileURLWithPath: $0) }
                ?? Calibration.defaultFile(dataDirectory: Paths.dataDirectory(dataDir))
            gptq = try GPTQOptions(calibration: file.path, numExamples: numExamples, calibrationLength: calibrationLen,
                                   dampening: dampening, actOrder: !noActOrder, sequential: !noSequential)
        }
        let calibrationFile = calibration.map { URL(fileURLWithPath: $0) }
            ?? Calibration.defaultFile(dataDirectory: Paths.dataDirectory(dataDir))
        let sq = try smooth.map { try SmoothQuantOptions(alpha: $0, calibration: calibrationFile.path, numExamples: numExamples,
                                                         calibrationLength: calibrationLen) }
        let aw = awq ? try AWQOptions(calibration: calibrationFile.path, numExamples: numExamples, calibrationLength: calibrationLen,
                                      gridSize: awqGrid, clip: !awqNoClip) : nil
        let options = QuantizeOptions(scheme: s, activations: activations, skip: skip, skipFirst: skipFirst, skipLast: skipLast,
                                      includeHead: includeHead, includeEmbeddings: includeEmbeddings, format: format, gptq: gptq,
                                      smoothQuant: sq, awq: aw)
        let r = try Quantizer.quantize(model: URL(fileURLWithPath: model), to: URL(fileURLWithPath: out), options: options, progress: !quiet)
        print(String(format: "%@: %d modules quantized (\(options.method)\(aw == nil ? "" : " after AWQ scaling")) (%d kept in float), %d → %d bytes (%.1f%%) in %.1f s",
                     out, r.quantized.count, r.skipped.count, r.bytesBefore, r.bytesAfter,
                     100 * Double(r.bytesAfter) / Double(max(r.bytesBefore, 1)), r.wallSeconds))
    }
}

extension QuantObserver: ExpressibleByArgument {}
/// `--scale-dtype`: a `ScaleType`, or auto (float16 where it saves memory: 4-bit layers).
enum ScaleChoice: String, ExpressibleByArgument, CaseIterable {
    case auto, float16, float32
    func resolved(bits: Int) -> ScaleType {
        switch self {
        case .auto: return bits == 4 ? .float16 : .float32
        case .float16: return .float16
        case .float32: return .float32
        }
    }
}
