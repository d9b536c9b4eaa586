import ArgumentParser
import Foundation
import GreenPrune

/// `greenprune convert MODEL.gguf --out DIR [--dtype f32|bf16|f16]`: a llama GGUF file to a
/// Hugging Face model directory.
struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert a llama GGUF file into a Hugging Face model directory.",
        discussion: """
            Writes model.safetensors, config.json, generation_config.json, tokenizer.json and \
            tokenizer_config.json. Quantized weights (Q8_0, Q4_0, Q4_1, Q4_K, Q6_K) are \
            dequantized; q/k rows are un-permuted from llama.cpp's layout. The directory appears \
            only when complete.
            """)

    enum StorageType: String, ExpressibleByArgument, CaseIterable {
        case f32, bf16, f16
        var dtype: DType { self == .f32 ? .f32 : self == .bf16 ? .bf16 : .f16 }
    }

    @Argument(help: "The GGUF file.")
    var model: String

    @Option(help: "Output model directory (must not exist or be empty, unless --force).")
    var out: String

    @OptionGroup var replace: ForceFlag

    @Option(help: "Storage type of the weights: f32, bf16 or f16.")
    var dtype: StorageType = .f32

    @Flag(help: "No progress bar on stderr.")
    var quiet = false

    func validate() throws {
        guard !out.isEmpty else { throw ValidationError("--out must not be empty") }
    }

    func run() throws {
        guard FileManager.default.fileExists(atPath: model) else { throw InputError(model, "no such file") }
        try OutputTarget.check(URL(fileURLWithPath: out), inputs: [URL(fileURLWithPath: model)], force: replace.force)
        let summary = try GGUFImporter.convert(gguf: URL(fileURLWithPath: model), to: URL(fileURLWithPath: out),
                                               dtype: dtype.dtype, showProgress: !quiet)
        print(String(format: "%@: %d tensors, %d parameters, %.1f MB (%@) in %.1f s",
                     out, summary.tensors, summary.parameters, Double(summary.safetensorsBytes) / 1e6,
                     dtype.rawValue, summary.seconds))
    }
}
