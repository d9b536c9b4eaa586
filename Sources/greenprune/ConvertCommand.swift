import ArgumentParser
import Foundation
import GreenPrune

/// `greenprune convert MODEL.gguf|DIR --out DIR [--dtype auto|f32|bf16|f16]`: a llama GGUF file,
/// or a float model directory, to a Hugging Face model directory with its weights in that type.
struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert a llama GGUF file (or a model directory) into a Hugging Face model directory.",
        discussion: """
            Writes model.safetensors, config.json, generation_config.json, tokenizer.json and \
            tokenizer_config.json. Quantized weights (Q8_0, Q4_0, Q4_1, Q4_K, Q6_K) are \
            dequantized; q/k rows are un-permuted from llama.cpp's layout. A model directory is \
            written again with its weights in --dtype (its tokenizer files copied). The directory \
            appears only when complete.
            """)

    @Argument(help: "The GGUF file, or a model directory.")
    var model: String

    @Option(help: "Output model directory (must not exist or be empty, unless --force).")
    var out: String

    @OptionGroup var replace: ForceFlag

    @OptionGroup var storage: DTypeFlags

    @Flag(help: "No progress bar on stderr.")
    var quiet = false

    func validate() throws {
        guard !out.isEmpty else { throw ValidationError("--out must not be empty") }
    }

    func run() throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: model, isDirectory: &isDirectory) else { throw InputError(model, "no such file") }
        let source = URL(fileURLWithPath: model), outURL = URL(fileURLWithPath: out)
        try OutputTarget.check(outURL, inputs: [source], force: replace.force)
        if isDirectory.boolValue {
            let start = Date()
            let dtype = try storage.dtype.resolve(directory: source)
            let count = try ModelDirectoryWriter.convert(source, to: outURL, dtype: dtype, progress: !quiet)
            let bytes = try SafeTensorsReader(outURL).bytesOnDisk
            print(String(format: "%@: %d tensors, %.1f MB (%@) in %.1f s", out, count, Double(bytes) / 1e6,
                         dtype.rawValue.lowercased(), Date().timeIntervalSince(start)))
            return
        }
        let dtype = storage.dtype == .auto ? try GGUFImporter.storedFloatType(gguf: source) : storage.dtype.resolve(.f32)
        let summary = try GGUFImporter.convert(gguf: source, to: outURL, dtype: dtype, showProgress: !quiet)
        print(String(format: "%@: %d tensors, %d parameters, %.1f MB (%@) in %.1f s",
                     out, summary.tensors, summary.parameters, Double(summary.safetensorsBytes) / 1e6,
                     dtype.rawValue.lowercased(), summary.seconds))
    }
}
