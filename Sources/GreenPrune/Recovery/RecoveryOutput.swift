import Foundation

/// A recovery run's output directory: the merged model (adapters folded into the weights, so it
/// loads and evaluates like any model directory), the PEFT adapter files in `adapter/` for the
/// unmerged base, and recovery.json. Built under a temporary name and renamed into place.
///
/// The adapter files sit in a subfolder, not beside config.json: transformers, finding an
/// adapter_config.json at the top of a model directory, would apply the adapter again on top of
/// the merged weights.
public enum RecoveryOutput {
    /// recovery.json's file name.
    public static let reportFile = "recovery.json"
    /// The subfolder holding adapter_model.safetensors and adapter_config.json.
    public static let adapterFolder = "adapter"

    /// Writes `out` from `base` (the model the adapters were trained on, as loaded from
    /// `directory`) and `adapters`, merged tensor by tensor as they are written; `report`
    /// becomes recovery.json; `progress` shows a bar of the tensors written; the weights are
    /// stored as `dtype` (F32, BF16 or F16).
    public static func write(base: LlamaModel, directory: URL, adapters: LoRAAdapters, report: [String: Any], to out: URL,
                             dtype: DType = .f32, progress: Bool = false) throws {
        let merged = try LoRAMerge.merged(try base.weights.namedTensors(), adapters)
        let config = try ConfigJSON.load(directory.appendingPathComponent("config.json"))
        let bar = progress ? ProgressBar("writing", total: merged.count, unit: "tensors") : nil
        let json = try JSONSerialization.data(withJSONObject: report, options: [.prettyPrinted, .sortedKeys])
        try ModelDirectoryWriter.write(merged, config: config, source: directory, to: out, dtype: dtype, progress: bar) { tmp in
            let adapterDir = tmp.appendingPathComponent(adapterFolder)
            try FileManager.default.createDirectory(at: adapterDir, withIntermediateDirectories: false)
            try PEFTAdapter.write(adapters, baseModel: directory.path, to: adapterDir)
            try json.write(to: tmp.appendingPathComponent(reportFile))
        }
    }
}
