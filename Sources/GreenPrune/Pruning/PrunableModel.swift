import Foundation

/// A Llama model directory held as an editable state dict: what pruning reads and writes.
public struct PrunableModel {
    /// The directory it came from.
    public var directory: URL
    /// config.json (unknown keys survive a save; pruning edits its widths).
    public var configJSON: ConfigJSON
    public var config: LlamaConfig
    public var state: StateDict
    public var geometry: PruneGeometry

    /// Files copied unchanged into a pruned directory when present (the per-layer modeling file
    /// too, so a recovered pruned model keeps what its config.json's `auto_map` names).
    public static let passThroughFiles = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                                          "generation_config.json", "tokenizer.model", "vocab.json", "merges.txt",
                                          PerLayerRemoteCode.fileName]

    /// Loads `dir` (config.json + safetensors) into float32 arrays, after the shared
    /// `ModelDirectoryCheck.validate` (so a checkpoint `inspect` rejects is never pruned).
    public static func load(_ dir: URL) throws -> PrunableModel {
        try ModelDirectoryCheck.validate(dir)
        let configURL = dir.appendingPathComponent("config.json")
        let json = try ConfigJSON.load(configURL)
        let config = try json.model.llama(path: configURL.path)
        let reader = try SafeTensorsReader(dir)
        var state: StateDict = [:]
        for name in reader.names {
            guard let info = reader.info(name) else { continue }
            let f = try reader.floats(name)
            state[name] = StateTensor(shape: info.shape, values: Array(UnsafeBufferPointer(start: f.pointer, count: f.count)))
        }
        if config.tieWordEmbeddings { state.removeValue(forKey: LlamaNames.head) }
        let geometry = try PruneGeometry(state: state, headDim: config.headDim, tiedEmbeddings: config.tieWordEmbeddings)
        guard geometry.layers.count == config.numLayers else {
            throw InputError(dir.path, "config.json says \(config.numLayers) layers, the weights have \(geometry.layers.count)")
        }
        if let dims = try json.value([BlockDims].self, Surgery.layerDimsKey) {
            guard dims == geometry.layers else {
                throw InputError(configURL.path, "\(Surgery.layerDimsKey) disagrees with the tensor shapes")
            }
        }
        return PrunableModel(directory: dir, configJSON: json, config: config, state: state, geometry: geometry)
    }

    /// Every parameter (tied head counted once).
    public var parameterCount: Int { state.values.reduce(0) { $0 + $1.values.count } }

    /// Writes a loadable model directory at `out`: model.safetensors (float32), config.json,
    /// the tokenizer files, and `extra` files (name → bytes); built under a temporary name and
    /// renamed into place.
    /// `also` writes further files into the (temporary) directory before it is renamed.
    public func save(to out: URL, configJSON config: ConfigJSON, extra: [String: Data] = [:],
                     progress: ProgressBar? = nil, also: (URL) throws -> Void = { _ in }) throws {
        let entries = state.keys.sorted().compactMap { name -> SafeTensorsEntry? in
            guard let t = state[name] else { return nil }
            return SafeTensorsEntry(name: name, floats: t.values, shape: t.shape)
        }
        try PrunableModel.writeDirectory(entries, from: directory, to: out, configJSON: config, extra: extra, progress: progress, also: also)
    }

    /// Writes a model directory at `out` whose model.safetensors holds `entries` (each produced
    /// when the writer reaches it, so a caller can stream them), with config.json, the
    /// tokenizer files of `directory` (the source model) and `extra` files; built under a
    /// temporary name and renamed into place. `also` writes further files into the temporary directory.
    public static func writeDirectory(_ entries: [SafeTensorsEntry], from directory: URL, to out: URL, configJSON config: ConfigJSON,
                                      extra: [String: Data] = [:], progress: ProgressBar? = nil,
                                      also: (URL) throws -> Void = { _ in }) throws {
        // The CLI checks --out against --force first; whatever the caller, never the input.
        try OutputTarget.check(out, inputs: [directory], force: true)
        let fm = FileManager.default
        try fm.createDirectory(at: out.deletingLastPathComponent(), withIntermediateDirectories: true)
        let tmp = AtomicFile.temporarySibling(of: out)
        do {
            try fm.createDirectory(at: tmp, withIntermediateDirectories: false)
            try SafeTensorsWriter.write(entries, to: tmp.appendingPathComponent("model.safetensors"), progress: progress)
            try config.data().write(to: tmp.appendingPathComponent("config.json"))
            for f in PrunableModel.passThroughFiles {
                let src = directory.appendingPathComponent(f)
                if fm.fileExists(atPath: src.path) { try fm.copyItem(at: src, to: tmp.appendingPathComponent(f)) }
            }
            for (name, data) in extra { try data.write(to: tmp.appendingPathComponent(name)) }
            try also(tmp)
            try AtomicFile.commit(tmp, to: out)
        } catch {
            try? fm.removeItem(at: tmp)
            if error is InputError { throw error }
            throw InputError(out.path, "cannot write the pruned model: \(FileErrors.problem(error))")
        }
    }
}
