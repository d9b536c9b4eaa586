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

    /// Writes `out` from the model directory `base` (the model the adapters were trained on) and
    /// `adapters`; `report` becomes recovery.json; `progress` shows a bar of the tensors written.
    ///
    /// The merged checkpoint is streamed one tensor at a time from the mapped base (float32, in
    /// name order, a tied head left out, as `PrunableModel.save` writes it): no float copy of the
    /// whole model is built, and each tensor's mapped pages are dropped once it is written, so
    /// the merge needs about one tensor's memory beside what training used.
    public static func write(base: URL, adapters: LoRAAdapters, report: [String: Any], to out: URL,
                             progress: Bool = false) throws {
        let cfgURL = base.appendingPathComponent("config.json")
        let configJSON = try ConfigJSON.load(cfgURL)
        let config = try configJSON.model.llama(path: cfgURL.path)
        let reader = try SafeTensorsReader(base)
        let merges = LoRAMerge.byWeight(adapters)
        for name in merges.keys.sorted() where reader.info(name) == nil {
            throw InputError(name, "no such weight to merge the adapter into")
        }
        let names = reader.names.filter { !(config.tieWordEmbeddings && $0 == LlamaNames.head) }
        // The tensor whose pages to drop once the writer has moved past it.
        final class Written { var last: (file: SafeTensorsFile, info: SafeTensorInfo)? }
        let written = Written()
        let entries = names.compactMap { name -> SafeTensorsEntry? in
            guard let info = reader.info(name), let file = reader.file(of: name) else { return nil }
            return SafeTensorsEntry(name: name, dtype: .f32, shape: info.shape) {
                if let w = written.last { w.file.release(w.info) }
                written.last = (file, info)
                let f = try reader.floats(name)
                guard let l = merges[name] else {
                    // Unchanged: the mapped floats themselves (or the converted copy, kept alive by the Data).
                    return Data(bytesNoCopy: UnsafeMutableRawPointer(mutating: f.pointer), count: f.count * 4,
                                deallocator: .custom { _, _ in withExtendedLifetime(f) {} })
                }
                var values = Array(UnsafeBufferPointer(start: f.pointer, count: f.count))
                try LoRAMerge.merge(l, into: &values, shape: info.shape, name: name)
                return values.withUnsafeBytes { Data($0) }
            }
        }
        let json = try JSONSerialization.data(withJSONObject: report, options: [.prettyPrinted, .sortedKeys])
        let bar = progress ? ProgressBar("writing", total: entries.count, unit: "tensors") : nil
        try PrunableModel.writeDirectory(entries, from: base, to: out, configJSON: configJSON, progress: bar) { tmp in
            let adapterDir = tmp.appendingPathComponent(adapterFolder)
            try FileManager.default.createDirectory(at: adapterDir, withIntermediateDirectories: false)
            try PEFTAdapter.write(adapters, baseModel: base.path, to: adapterDir)
            try json.write(to: tmp.appendingPathComponent(reportFile))
        }
        bar?.finish()
    }
}
