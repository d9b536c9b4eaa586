import ArgumentParser
import Foundation
import GreenPrune

/// `greenprune quantize DIR --out OUT --bits 8|4 …`: post-training round-to-nearest quantization.
struct Quantize: ParsableCommand {
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
    var out: String?

    @OptionGroup var replace: ForceFlag

    @OptionGroup var optionsFile: OptionsFileFlags
    @OptionGroup var flags: QuantizeFlags
    @OptionGroup var calibrationFlags: CalibrationFlags
    @OptionGroup var data: DataOptions

    @OptionGroup var storage: DTypeFlags

    @Flag(help: "No progress bar.")
    var quiet = false

    /// The options file's settings (or the defaults), then the flags given, validated.
    func settings() throws -> QuantizeSettings {
        let base = try optionsFile.read(QuantizeSettings.self)
        return try flagErrors {
            var s = try flags.settings(over: base)
            calibrationFlags.apply(to: &s)
            storage.apply(to: &s.dtype)
            try s.validate()
            return s
        }
    }

    func validate() throws {
        if !optionsFile.printOptions { guard let o = out, !o.isEmpty else { throw ValidationError("Missing expected argument '--out <out>'") } }
        _ = try settings()
    }

    func run() throws {
        let settings = try settings()
        if try optionsFile.printIfAsked(settings) { return }
        let out = self.out ?? ""
        try OutputTarget.check(URL(fileURLWithPath: out), inputs: [URL(fileURLWithPath: model)] + (settings.calibration.map { [URL(fileURLWithPath: $0)] } ?? []),
                               force: replace.force)
        let options = try settings.quantizeOptions(dataDirectory: Paths.dataDirectory(data.dataDir))
        let r = try Quantizer.quantize(model: URL(fileURLWithPath: model), to: URL(fileURLWithPath: out), options: options, progress: !quiet)
        print(String(format: "%@: %ld modules quantized (\(options.method)\(options.awq == nil ? "" : " after AWQ scaling")) (%ld kept in float), %ld → %ld bytes (%.1f%%) in %.1f s",
                     out, r.quantized.count, r.skipped.count, r.bytesBefore, r.bytesAfter,
                     100 * Double(r.bytesAfter) / Double(max(r.bytesBefore, 1)), r.wallSeconds))
    }
}
