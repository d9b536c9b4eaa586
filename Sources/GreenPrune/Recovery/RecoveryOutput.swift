import Foundation

/// A recovery run's output directory: the merged model (adapters folded into the weights, so it
/// loads and evaluates like any model directory), the PEFT adapter files beside it for the
/// unmerged base, and recovery.json. Built under a temporary name and renamed into place.
public enum RecoveryOutput {
    /// recovery.json's file name.
    public static let reportFile = "recovery.json"

    /// Writes `out` from `base` (the model the adapters were trained on) and `adapters`; `report`
    /// becomes recovery.json.
    public static func write(base: PrunableModel, adapters: LoRAAdapters, report: [String: Any], to out: URL,
                             progress: ProgressBar? = nil) throws {
        var merged = base
        try LoRAMerge.merge(adapters, into: &merged.state)
        let json = try JSONSerialization.data(withJSONObject: report, options: [.prettyPrinted, .sortedKeys])
        try merged.save(to: out, configJSON: base.configJSON, progress: progress) { tmp in
            try PEFTAdapter.write(adapters, baseModel: base.directory.path, to: tmp)
            try json.write(to: tmp.appendingPathComponent(reportFile))
        }
    }
}
