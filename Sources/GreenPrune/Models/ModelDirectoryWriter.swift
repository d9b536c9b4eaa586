import Foundation

/// Writes a float32 model directory (what `prune` and `recover` produce): model.safetensors from
/// named tensors, one tensor in memory at a time, config.json, and the tokenizer files of the
/// directory it came from; built under a temporary name and renamed into place, so a failed or
/// interrupted write leaves nothing that looks complete.
public enum ModelDirectoryWriter {
    /// Files copied unchanged from the source directory when present (the per-layer modeling file
    /// too, so a recovered pruned model keeps what its config.json's `auto_map` names).
    public static let passThroughFiles = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                                          "generation_config.json", "tokenizer.model", "vocab.json", "merges.txt",
                                          PerLayerRemoteCode.fileName]

    /// Writes `tensors` and `config` to `out`, with the tokenizer files of `source`; `also`
    /// writes further files into the (temporary) directory before it is renamed. `out` must not
    /// be `source` or hold it (the commands check --out against --force before any work).
    public static func write(_ tensors: [NamedTensor], config: ConfigJSON, source: URL, to out: URL,
                             progress: ProgressBar? = nil, also: (URL) throws -> Void = { _ in }) throws {
        try OutputTarget.check(out, inputs: [source], force: true)
        let fm = FileManager.default
        try fm.createDirectory(at: out.deletingLastPathComponent(), withIntermediateDirectories: true)
        let tmp = AtomicFile.temporarySibling(of: out)
        do {
            try fm.createDirectory(at: tmp, withIntermediateDirectories: false)
            try SafeTensorsWriter.write(tensors.map(\.entry), to: tmp.appendingPathComponent("model.safetensors"), progress: progress)
            try config.data().write(to: tmp.appendingPathComponent("config.json"))
            for f in passThroughFiles {
                let src = source.appendingPathComponent(f)
                if fm.fileExists(atPath: src.path) { try fm.copyItem(at: src, to: tmp.appendingPathComponent(f)) }
            }
            try also(tmp)
            try AtomicFile.commit(tmp, to: out)
        } catch {
            try? fm.removeItem(at: tmp)
            if error is InputError { throw error }
            throw InputError(out.path, "cannot write the model: \(FileErrors.problem(error))")
        }
    }
}
