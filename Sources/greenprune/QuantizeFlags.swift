import ArgumentParser
import GreenPrune

extension QuantGranularity: ExpressibleByArgument {}
extension QuantFormat: ExpressibleByArgument {}
extension ActivationQuantization: ExpressibleByArgument {}
extension QuantObserver: ExpressibleByArgument {}
extension QuantizeSettings.Method: ExpressibleByArgument {}
extension QuantizeSettings.Scheme: ExpressibleByArgument {}
extension QuantizeSettings.ScaleChoice: ExpressibleByArgument {}

/// The flags of `QuantizeSettings`, one per key; a flag left out keeps the options file's value,
/// else the default `QuantizeSettings` states.
struct QuantizeFlags: ParsableArguments {
    @Option(help: "Weight bits: 8 or 4 (required unless --options gives them).")
    var bits: Int?

    @Option(help: "Scale granularity: tensor, channel or group.")
    var granularity: QuantGranularity?

    @Option(help: "Columns per scale for --granularity group: 32, 64 or 128 (default 128).")
    var groupSize: Int?

    @Option(help: "symmetric (zero point 0) or asymmetric (a zero point per scale) (default \(QuantizeSettings(bits: 8).scheme.rawValue)).")
    var scheme: QuantizeSettings.Scheme?

    @Option(help: "How scales are chosen: minmax (the block's range) or mse (the shrunk range, p = 1 … 0.80, with the least rounding error Σ|w − ŵ|^2.4, as llm-compressor's MSE observer) (default \(QuantizeSettings(bits: 8).observer.rawValue)).")
    var observer: QuantObserver?

    @Option(name: .customLong("scale-dtype"), help: "weight_scale storage: float16 (half the bytes, on disk and in memory for 4-bit layers; each scale is rounded up to a float16, at most 0.1% coarser, before the codes are computed, so every weight stays within half a step), float32 (what compressed-tensors' own writer emits for a float32 model), or auto: float32 (default \(QuantizeSettings(bits: 8).scaleDType.rawValue)).")
    var scaleDType: QuantizeSettings.ScaleChoice?

    @Option(help: "Activations at run time: none (float) or int8 (dynamic per-token int8, int8×int8 kernels) (default \(QuantizeSettings(bits: 8).activations.rawValue)).")
    var activations: ActivationQuantization?

    @Option(parsing: .singleValue, help: "Leave modules matching this glob or substring in float (repeatable).")
    var skip: [String] = []

    @Option(help: "Leave the first N transformer layers in float (default \(QuantizeSettings(bits: 8).skipFirst)).")
    var skipFirst: Int?

    @Option(help: "Leave the last N transformer layers in float (default \(QuantizeSettings(bits: 8).skipLast)).")
    var skipLast: Int?

    @Flag(help: "Quantize the output head (lm_head) too; for a tied decoder a quantized copy of the embedding becomes lm_head and config.json is untied (the lookups keep the float table).")
    var includeHead = false

    @Flag(help: "Quantize the token embedding table too.")
    var includeEmbeddings = false

    @Option(help: "compressed-tensors (directory) or gguf (one file of ggml 32-weight blocks: Q8_0 for --bits 8, Q4_0 / Q4_1 for --bits 4 symmetric / asymmetric; the granularity flags do not apply) (default \(QuantizeSettings(bits: 8).format.rawValue)).")
    var format: QuantFormat?

    @Option(help: "rtn (round to nearest) or gptq (calibrated error compensation, same stored format) (default \(QuantizeSettings(bits: 8).method.rawValue)).")
    var method: QuantizeSettings.Method?

    @Option(help: "SmoothQuant strength α in (0, 1) (0.5 is the paper's default): before rounding, move each input channel's activation range into the weights, s_j = max|X_j|^α / max|W_j|^(1−α), folded into the preceding norm (q/k/v, gate/up) or up_proj rows (down). For --activations int8 on Llama decoders; uses the calibration flags.")
    var smooth: Double?

    @Flag(help: "AWQ: before rounding, scale each input channel of q/k/v, gate/up and down by s = a^α (a: the channel's RMS on the calibration text), α searched per group for the least output error after rounding, folded into the preceding norm or up_proj rows. Llama decoders; combines with --method rtn or gptq; uses the calibration flags.")
    var awq = false

    @Option(help: "AWQ: exponents tried per group, α = 0, 1/N, …, (N−1)/N (default \(QuantizeSettings(bits: 8).awqGrid)).")
    var awqGrid: Int?

    @Flag(help: "AWQ: scale only; do not clip each block's range (p·min, p·max, p = 1 … 0.5) for the least output error.")
    var awqNoClip = false

    @Option(help: "GPTQ dampening: fraction of mean(diag H) added to H's diagonal (default \(OptionError.number(QuantizeSettings(bits: 8).dampening))).")
    var dampening: Double?

    @Flag(help: "GPTQ: quantize columns in storage order instead of by decreasing activation (act-order).")
    var noActOrder = false

    @Flag(help: "GPTQ on a decoder: take every Hessian from the float model in one pass instead of layer by layer through the quantized layers.")
    var noSequential = false

    /// The settings with these flags over `base` (an options file's), or over the defaults.
    func settings(over base: QuantizeSettings?) throws -> QuantizeSettings {
        guard var s = base ?? bits.map(QuantizeSettings.init(bits:)) else { throw OptionError(nil, "give {bits} 8 or 4") }
        if let bits { s.bits = bits }
        if let granularity { s.granularity = granularity }
        if let groupSize { s.groupSize = groupSize }
        if let scheme { s.scheme = scheme }
        if let observer { s.observer = observer }
        if let scaleDType { s.scaleDType = scaleDType }
        if let activations { s.activations = activations }
        if !skip.isEmpty { s.skip = skip }
        if let skipFirst { s.skipFirst = skipFirst }
        if let skipLast { s.skipLast = skipLast }
        if includeHead { s.includeHead = true }
        if includeEmbeddings { s.includeEmbeddings = true }
        if let format { s.format = format }
        if let method { s.method = method }
        if let smooth { s.smooth = smooth }
        if awq { s.awq = true }
        if let awqGrid { s.awqGrid = awqGrid }
        if awqNoClip { s.awqNoClip = true }
        if let dampening { s.dampening = dampening }
        if noActOrder { s.noActOrder = true }
        if noSequential { s.noSequential = true }
        return s
    }
}

