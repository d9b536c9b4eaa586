import Foundation

extension QuantizedModel {
    /// Writes the model as a compressed-tensors directory at `out` (built under a temporary name,
    /// then renamed): the source's other files, model.safetensors in the source's tensor order —
    /// each quantized module's codes, scales and zero points from its layer in the model,
    /// SmoothQuant's or AWQ's edits as float, every other tensor as the checkpoint stores it
    /// (or in `options.floatDType`) — config.json with `quantization_config`, and
    /// quantization.json, whose wall time runs from `start`.
    @discardableResult
    public func write(to out: URL, start: Date, progress: Bool = true) throws -> QuantizationReport {
        let dir = bundle.directory, family = bundle.family, o = options
        // Whatever the caller, never the input.
        try OutputTarget.check(out, inputs: [dir], force: true)
        let configJSON = try ConfigJSON.load(dir.appendingPathComponent("config.json"))
        let tmp = AtomicFile.temporarySibling(of: out)
        let fm = FileManager.default
        do {
            try fm.createDirectory(at: tmp, withIntermediateDirectories: true)
            // Everything but the weights and config.json comes along unchanged (tokenizer, pooling…).
            for item in try fm.contentsOfDirectory(at: dir, includingPropertiesForKeys: nil) {
                let n = item.lastPathComponent
                if n.hasPrefix(".") || n == "config.json" || n == "quantization.json" || item.pathExtension == "safetensors"
                    || n == "model.safetensors.index.json" || n == TFCheckpoint.fileName { continue }
                try fm.copyItem(at: item, to: tmp.appendingPathComponent(n))
            }
            let entries = try tensorEntries()
            let bar = progress ? ProgressBar("write", total: entries.count, unit: "tensors") : nil
            try SafeTensorsWriter.write(entries, metadata: ["format": "pt", "quantized_by": "greenprune"],
                                        to: tmp.appendingPathComponent("model.safetensors"), progress: bar)
            bar?.finish()
            // A head that stays float is named even when tied (no tensor of its own): otherwise
            // compressed-tensors' `Linear` target takes lm_head for a quantized module.
            var ignore = skipped.keys.sorted()
            if family == .llama, !modules.contains(LlamaNames.headModule), !ignore.contains(LlamaNames.headModule) {
                ignore.append(LlamaNames.headModule)
            }
            let qc = CTQuantizationConfig(scheme: o.scheme, activationsInt8: o.activations == .int8, ignore: ignore,
                                          includesEmbeddings: modules.contains { Quantizer.role(of: $0 + ".weight", family: family) == .embedding })
            // A quantized lm_head of a tied model is its own tensor now: config.json says so, or
            // vLLM and transformers would tie lm_head back to the float embedding and skip it.
            let untie = bundle.config.tieWordEmbeddings == true && modules.contains(LlamaNames.headModule)
            var written = configJSON
            if untie { try written.update { $0.tieWordEmbeddings = false } }
            try written.writeBothRopeLayouts()
            try written.set(CTQuantizationConfig.key, qc)
            try AtomicFile.write(written.data(), to: tmp.appendingPathComponent("config.json"))
            let report = QuantizationReport(source: dir.path, family: family.rawValue, options: o, quantized: modules, skipped: skipped,
                                            bytesBefore: Quantizer.bytes(of: Quantizer.weightFiles(dir)),
                                            bytesAfter: Quantizer.bytes(of: Quantizer.weightFiles(tmp)),
                                            wallSeconds: Date().timeIntervalSince(start), gptqLossRatios: gptqLossRatios,
                                            awq: awqChoices)
            let enc = JSONEncoder(); enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            try AtomicFile.write(try enc.encode(report), to: tmp.appendingPathComponent("quantization.json"))
            try AtomicFile.commit(tmp, to: out)
            return report
        } catch {
            try? fm.removeItem(at: tmp)
            throw error
        }
    }

    /// The output tensors in the checkpoint's order: quantized modules in compressed-tensors form
    /// (each module's tensors read from its layer once, when the writer reaches the first of them:
    /// names sort together), SmoothQuant's or AWQ's edited float tensors (as F32, or
    /// `floatDType`), everything else as the checkpoint stores it.
    func tensorEntries() throws -> [SafeTensorsEntry] {
        let reader = bundle.checkpoint, scheme = options.scheme, floatDType = options.floatDType
        let quantizedModules = Set(modules)
        final class Cache { var name = ""; var tensor: QuantizedTensor? }
        let cache = Cache()
        func quantized(_ m: String) throws -> QuantizedTensor {
            if cache.name == m, let t = cache.tensor { return t }
            let t = try tensor(m)
            cache.name = m; cache.tensor = t
            return t
        }
        var entries: [SafeTensorsEntry] = []
        var names = reader.names
        if quantizedModules.contains(LlamaNames.headModule) && reader.info(LlamaNames.head) == nil { names.append(LlamaNames.head) }
        for name in names {
            let module = name.hasSuffix(".weight") ? String(name.dropLast(".weight".count)) : ""
            guard let layer = layers[module], quantizedModules.contains(module) else {
                let info = reader.info(name)!, file = reader.file(of: name)!
                let isFloat = [.f32, .f16, .bf16, .f64].contains(info.dtype), target = floatDType.resolve(info.dtype)
                if let v = edits[name] {
                    entries.append(SafeTensorsEntry(name: name, floats: v, shape: info.shape, as: target))
                    continue
                }
                if isFloat && target != info.dtype {
                    entries.append(SafeTensorsEntry(name: name, dtype: target, shape: info.shape) {
                        try SafeTensorsWriter.encode(try reader.floats(name).array, as: target)
                    })
                    continue
                }
                entries.append(SafeTensorsEntry(name: name, dtype: info.dtype, shape: info.shape) { Data(file.bytes(info)) })
                continue
            }
            let rows = layer.outFeatures, cols = layer.inFeatures
            let gpr = scheme.granularity == .group ? cols / scheme.groupLength(cols: cols) : 1
            let scaleShape = scheme.granularity == .tensor ? [1] : [rows, gpr]
            let scaleDType: DType = scheme.scaleType == .float16 ? .f16 : .f32
            entries.append(SafeTensorsEntry(name: module + ".weight_scale", dtype: scaleDType, shape: scaleShape) {
                let scales = try quantized(module).scales
                if scaleDType == .f16, !ScaleType.fitsFloat16(scales) {
                    throw InputError(module, "has a scale over float16's 65504 (weights of millions); use --scale-dtype float32")
                }
                return try SafeTensorsWriter.encode(scales, as: scaleDType)
            })
            if scheme.bits == 8 {
                entries.append(SafeTensorsEntry(name: module + ".weight", dtype: .i8, shape: [rows, cols]) {
                    try quantized(module).codes.withUnsafeBytes { Data($0) }
                })
                if !scheme.symmetric {
                    entries.append(SafeTensorsEntry(name: module + ".weight_zero_point", dtype: .i8, shape: scaleShape) {
                        try quantized(module).zeroPoints!.withUnsafeBytes { Data($0) }
                    })
                }
            } else {
                let per = 32 / scheme.bits
                entries.append(SafeTensorsEntry(name: module + ".weight_packed", dtype: .i32, shape: [rows, (cols + per - 1) / per]) {
                    let t = try quantized(module)
                    return Self.littleEndianBytes(CompressedTensors.pack(t.codes, rows: rows, cols: cols, bits: scheme.bits))
                })
                entries.append(try SafeTensorsEntry(name: module + ".weight_shape", integers: [Int64(rows), Int64(cols)], shape: [2]))
                if !scheme.symmetric {
                    if scheme.granularity == .tensor {
                        entries.append(SafeTensorsEntry(name: module + ".weight_zero_point", dtype: .i8, shape: [1]) {
                            try quantized(module).zeroPoints!.withUnsafeBytes { Data($0) }
                        })
                    } else {
                        entries.append(SafeTensorsEntry(name: module + ".weight_zero_point", dtype: .i32, shape: [(rows + per - 1) / per, gpr]) {
                            let t = try quantized(module)
                            return Self.littleEndianBytes(CompressedTensors.packRows(t.zeroPoints!, rows: rows, cols: gpr, bits: scheme.bits))
                        })
                    }
                }
            }
        }
        return entries
    }

    static func littleEndianBytes(_ v: [Int32]) -> Data {
        var d = Data(capacity: v.count * 4)
        for x in v { var le = x.littleEndian; withUnsafeBytes(of: &le) { d.append(contentsOf: $0) } }
        return d
    }
}
