import Foundation

/// Writes a float model directory (what `prune` and `recover` produce): model.safetensors from
/// named tensors, one tensor in memory at a time, config.json, and the tokenizer files of the
/// directory it came from; built under a temporary name and renamed into place, so a failed or
/// interrupted write leaves nothing that looks complete.
public enum ModelDirectoryWriter {
    /// Files copied unchanged from the source directory when present (the per-layer modeling file
    /// too, so a recovered pruned model keeps what its config.json's `auto_map` names).
    public static let passThroughFiles = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                                          "generation_config.json", "tokenizer.model", "vocab.json", "merges.txt",
                                          PerLayerRemoteCode.fileName]

    /// Writes `tensors` stored as `dtype` (F32, BF16 or F16, rounded to nearest even; config.json's
    /// `torch_dtype` says which) and `config` to `out`, with the tokenizer files of `source`; `also`
    /// writes further files into the (temporary) directory before it is renamed. `out` must not
    /// be `source` or hold it (the commands check --out against --force before any work).
    public static func write(_ tensors: [NamedTensor], config: ConfigJSON, source: URL, to out: URL, dtype: DType = .f32,
                             progress: ProgressBar? = nil, also: (URL) throws -> Void = { _ in }) throws {
        guard [.f32, .bf16, .f16].contains(dtype) else { throw InputError("--dtype", "cannot store float weights as \(dtype.rawValue) (F32, F16 or BF16)") }
        var config = config
        try config.update { c in
            let name = dtype.torchName
            if c.dtype != nil { c.dtype = name }
            if c.torchDtype != nil || c.dtype == nil { c.torchDtype = name }
        }
        try OutputTarget.check(out, inputs: [source], force: true)
        let fm = FileManager.default
        try fm.createDirectory(at: out.deletingLastPathComponent(), withIntermediateDirectories: true)
        let tmp = AtomicFile.temporarySibling(of: out)
        do {
            try fm.createDirectory(at: tmp, withIntermediateDirectories: false)
            try SafeTensorsWriter.write(tensors.map { $0.entry(as: dtype) }, to: tmp.appendingPathComponent("model.safetensors"), progress: progress)
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

    /// The float Llama-family model in `source` written again at `out` with its weights stored as
    /// `dtype` (what `convert DIR --dtype` does), with a progress bar on stderr when `progress`;
    /// returns the number of tensors written.
    @discardableResult
    public static func convert(_ source: URL, to out: URL, dtype: DType, progress: Bool = false) throws -> Int {
        let model = try ModelLoader.loadLlama(source)
        let tensors = try model.weights.namedTensors()
        let bar = progress ? ProgressBar("convert", total: tensors.count, unit: "tensors") : nil
        try write(tensors, config: try ConfigJSON.load(source.appendingPathComponent("config.json")), source: source, to: out,
                  dtype: dtype, progress: bar)
        bar?.finish()
        return tensors.count
    }
}
