import CKernels
import Foundation

/// The one validation of a model directory, shared by every command that reads a model.
///
/// `ModelLoader.load` runs `checkTensors` between reading the headers and reading any weight,
/// and the commands that do not build a model for themselves (`convert`'s output) call
/// `validate`, which is that same load (`prune` and `quantize` load the model they transform). So config.json, the tensor names, shapes
/// and dtypes, finiteness and tokenizer.json are judged one way everywhere, and nothing writes a
/// complete-looking directory from a checkpoint that `inspect` would reject.
public enum ModelDirectoryCheck {
    /// Name endings of compressed-tensors parts that hold integers, not float weights.
    static let integerSuffixes = [".weight_packed", ".weight_shape", ".weight_zero_point", ".weight_g_idx"]

    /// Validates `directory` completely (config.json, every tensor against it, non-finite values,
    /// tokenizer.json when present) by loading it once and dropping the result; the error is
    /// one line naming the file.
    public static func validate(_ directory: URL) throws {
        do { _ = try ModelLoader.load(directory) }
        // The weights were only read to be checked: hand their freed heap back at once.
        gpk_release_free_heap()
    }

    /// The checks that need only the headers and one pass over the bytes, run before anything is
    /// allocated from config values: the layer count against the tensors present (a config that
    /// claims 10⁹ layers fails here, not in a loop over them), integer tensors where float
    /// weights belong, and NaN or infinities in any float tensor.
    public static func checkTensors(_ checkpoint: SafeTensorsReader, family: ModelFamily, numLayers: Int,
                                    configPath: String) throws {
        try checkLayerCount(checkpoint.names, family: family, numLayers: numLayers, configPath: configPath)
        try checkDTypes(checkpoint)
        try checkFinite(checkpoint)
    }

    /// The layer index in `name` (the decoder family's `layerIndex`, e.g. `model.layers.7.…`;
    /// `[bert.]encoder.layer.7.…` for an encoder), or nil for a tensor outside the layers.
    public static func layerIndex(_ name: String, family: ModelFamily) -> Int? {
        DecoderFamilies.family(named: family).map { $0.layerIndex(name) } ?? BertNames.layerIndex(name)
    }

    /// Throws unless the checkpoint's layers are exactly 0..<numLayers.
    public static func checkLayerCount(_ names: [String], family: ModelFamily, numLayers: Int, configPath: String) throws {
        let found = Set(names.compactMap { layerIndex($0, family: family) })
        if found.count == numLayers, found.max() == numLayers - 1 || numLayers == 0 { return }
        let held = found.isEmpty ? "no layer tensors" : "tensors for \(found.count) layers (indices \(found.min()!)…\(found.max()!))"
        throw InputError(configPath, "num_hidden_layers is \(numLayers) but the checkpoint holds \(held)")
    }

    /// True when `name` may hold integers: a compressed-tensors part, an int8 `weight` beside its
    /// `weight_scale`, or a position-id buffer.
    static func mayBeInteger(_ name: String, _ checkpoint: SafeTensorsReader) -> Bool {
        if integerSuffixes.contains(where: { name.hasSuffix($0) }) || name.hasSuffix("position_ids") { return true }
        if name.hasSuffix(".weight") { return checkpoint.info(name + "_scale") != nil }
        return false
    }

    /// Throws for an integer or boolean tensor where a float one belongs.
    public static func checkDTypes(_ checkpoint: SafeTensorsReader) throws {
        for name in checkpoint.names {
            guard let info = checkpoint.info(name), floatKind(info.dtype) == nil, !mayBeInteger(name, checkpoint) else { continue }
            throw InputError(checkpoint.file(of: name)?.url.path ?? name,
                             "tensor '\(name)' is \(info.dtype.rawValue), expected a floating-point dtype (F32, F16, BF16)")
        }
    }

    static func floatKind(_ d: DType) -> Int32? {
        switch d {
        case .f32: return Int32(GPK_F32.rawValue)
        case .f16: return Int32(GPK_F16.rawValue)
        case .bf16: return Int32(GPK_BF16.rawValue)
        case .f64: return Int32(GPK_F64.rawValue)
        default: return nil
        }
    }

    /// Throws, naming the tensor and the first bad element, when a float tensor holds NaN or ±inf
    /// (such weights give a perplexity that looks plausible or `nan`, never an error).
    ///
    /// The bytes are read with pread into one bounded buffer rather than through the mapping,
    /// so the scan leaves no resident pages behind (a quantized model's packed weights are
    /// never scanned, and its memory figures stay its own).
    public static func checkFinite(_ checkpoint: SafeTensorsReader) throws {
        let chunk = 1 << 22
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: chunk, alignment: 64)
        defer { buffer.deallocate() }
        for name in checkpoint.names {
            guard let info = checkpoint.info(name), let kind = floatKind(info.dtype), let file = checkpoint.file(of: name) else { continue }
            let size = info.dtype.size
            let perChunk = chunk / size
            var done = 0
            let total = info.elementCount
            while done < total {
                let n = min(perChunk, total - done)
                let offset = info.fileRange.lowerBound + done * size
                let bad: Int
                if file.file.read(buffer, count: n * size, at: offset) {
                    bad = gpk_first_nonfinite(buffer, n, kind)
                } else if let base = file.file.base {
                    bad = gpk_first_nonfinite(base + offset, n, kind)
                } else { break }
                if bad < n {
                    throw InputError(file.url.path, "tensor '\(name)' holds a non-finite value (NaN or ±inf) at element \(done + bad)")
                }
                done += n
            }
        }
    }
}
