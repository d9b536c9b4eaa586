import Foundation

/// `--format gguf`: Q8_0 / Q4_0 / Q4_1 blocks in a GGUF file llama.cpp loads.
public enum GGUFExport {
    static func write(model dir: URL, reader: SafeTensorsReader, config: ModelConfig, configData: Data, family: ModelFamily,
                      modules: [String], skipped: [String: String], to out: URL, options: QuantizeOptions,
                      start: Date) throws -> QuantizationReport {
        throw InputError("--format", "gguf export is not implemented yet; use --format compressed-tensors")
    }
}
