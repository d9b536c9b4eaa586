import Foundation

/// The quantized modules of a compressed-tensors model directory, handed to the model loader
/// as `QuantizedLinear` layers (or, for a quantized embedding table, dequantized floats).
///
/// Accepts what `Quantizer` writes and what llm-compressor writes for integer weights:
/// `int-quantized` (int8 `weight`), `pack-quantized` with 4 or 8 bits, tensor/channel/group
/// scales in F32/F16/BF16, symmetric or with zero points. Every shape is checked against
/// `weight_shape` / the scheme; errors are one line naming the file and tensor.
public final class QuantizedCheckpoint {
    public let scheme: QuantScheme
    public let activations: ActivationQuantization
    /// Modules the config says were left in float.
    public let ignore: Set<String>
    public let reader: SafeTensorsReader
    let path: String

    /// nil when `config.json` in `dir` has no `quantization_config`.
    public static func open(_ dir: URL, reader: SafeTensorsReader) throws -> QuantizedCheckpoint? {
        let url = dir.appendingPathComponent("config.json")
        guard let config = try? ConfigJSON.load(url), let cfg = try config.value(CTQuantizationConfig.self, CTQuantizationConfig.key) else {
            return nil
        }
        let (scheme, act) = try cfg.scheme(source: url.path)
        return QuantizedCheckpoint(scheme: scheme, activations: act ? .int8 : .none, ignore: Set(cfg.ignore), reader: reader, path: url.path)
    }

    init(scheme: QuantScheme, activations: ActivationQuantization, ignore: Set<String>, reader: SafeTensorsReader, path: String) {
        self.scheme = scheme; self.activations = activations; self.ignore = ignore; self.reader = reader; self.path = path
    }

    /// True when `module` is stored quantized (it has a `weight_scale`).
    public func isQuantized(_ module: String) -> Bool { reader.info(module + ".weight_scale") != nil }

    /// Shape (out, in) of a quantized module.
    public func shape(_ module: String) throws -> (rows: Int, cols: Int) {
        if let s = reader.info(module + ".weight_shape") {
            guard s.dtype == .i32 || s.dtype == .i64, s.elementCount == 2, let f = reader.file(of: s.name) else {
                throw InputError(path, "\(s.name) must hold two integers")
            }
            let b = f.bytes(s)
            let v = s.dtype == .i32 ? [Int(b.loadUnaligned(fromByteOffset: 0, as: Int32.self).littleEndian), Int(b.loadUnaligned(fromByteOffset: 4, as: Int32.self).littleEndian)]
                                    : [Int(b.loadUnaligned(fromByteOffset: 0, as: Int64.self).littleEndian), Int(b.loadUnaligned(fromByteOffset: 8, as: Int64.self).littleEndian)]
            guard v[0] > 0, v[1] > 0, v[0] < 1 << 24, v[1] < 1 << 24 else { throw InputError(path, "\(s.name) holds \(v), not a valid shape") }
            return (v[0], v[1])
        }
        if let w = reader.info(module + ".weight"), w.shape.count == 2 { return (w.shape[0], w.shape[1]) }
        throw InputError(path, "\(module) has weight_scale but neither weight nor weight_shape")
    }

    /// The module as a QuantizedLinear (nil when it is not stored quantized).
    public func linear(_ module: String, bias: [Float]? = nil) throws -> QuantizedLinear? {
        guard isQuantized(module) else { return nil }
        let (rows, cols) = try shape(module)
        try scheme.validate(cols: cols, name: module)
        let glen = scheme.groupLength(cols: cols), gpr = cols / glen
        let (scales, zeros) = try parameters(module, rows: rows, groupsPerRow: gpr)
        let bits = scheme.bits
        if let w = reader.info(module + ".weight"), w.dtype == .i8 {
            guard w.shape == [rows, cols], let f = reader.file(of: w.name) else {
                throw InputError(path, "\(w.name) has shape \(w.shape) \(w.dtype.rawValue), expected [\(rows), \(cols)] I8")
            }
            return try QuantizedLinear(rows: rows, cols: cols, bits: 8, groupLength: glen, bytes: f.bytes(w), owner: f.file,
                                       scales: scales, zeroPoints: zeros, bias: bias, activations: activations)
        }
        guard let p = reader.info(module + ".weight_packed"), let f = reader.file(of: p.name) else {
            throw InputError(path, "\(module) has no weight or weight_packed tensor")
        }
        let per = 32 / bits
        guard p.dtype == .i32, p.shape == [rows, (cols + per - 1) / per] else {
            throw InputError(path, "\(p.name) has shape \(p.shape) \(p.dtype.rawValue), expected [\(rows), \((cols + per - 1) / per)] I32 for \(bits)-bit codes")
        }
        if bits == 4 {
            return try QuantizedLinear(rows: rows, cols: cols, bits: 4, groupLength: glen, bytes: f.bytes(p), owner: f.file,
                                       scales: scales, zeroPoints: zeros, bias: bias, activations: activations)
        }
        // pack-quantized 8-bit (llm-compressor's W8A16): four codes per word → int8 codes.
        let words = int32s(f.bytes(p))
        let codes = CompressedTensors.unpack(words, rows: rows, cols: cols, bits: 8)
        return try QuantizedLinear(rows: rows, cols: cols, bits: 8, groupLength: glen, storage: codes.withUnsafeBytes { Data($0) },
                                   scales: scales, zeroPoints: zeros, bias: bias, activations: activations)
    }

    /// The module's weight dequantized to float32 (rows, cols) — for an embedding table.
    public func dequantized(_ module: String) throws -> FloatStorage? {
        guard let l = try linear(module) else { return nil }
        let out = FloatStorage(zeros: l.outFeatures * l.inFeatures)
        l.dequantize(rows: 0 ..< l.outFeatures, into: out.mutablePointer!)
        return out
    }

    /// Scales and zero points expanded to (rows, groupsPerRow).
    func parameters(_ module: String, rows: Int, groupsPerRow gpr: Int) throws -> ([Float], [Int8]?) {
        let name = module + ".weight_scale"
        guard let info = reader.info(name) else { throw InputError(path, "missing \(name)") }
        let expected = scheme.granularity == .tensor ? 1 : rows * gpr
        guard info.elementCount == expected else {
            throw InputError(path, "\(name) has shape \(info.shape), expected \(expected) values for \(scheme.granularity.rawValue) scales")
        }
        var scales = try reader.floats(name).array
        guard scales.allSatisfy({ $0.isFinite }) else { throw InputError(path, "\(name) holds a non-finite scale") }
        reader.file(of: name)?.release(info)  // copied: its file pages need not stay resident
        if scheme.granularity == .tensor { scales = [Float](repeating: scales[0], count: rows) }
        guard !scheme.symmetric else { return (scales, nil) }
        let zname = module + ".weight_zero_point"
        guard let z = reader.info(zname), let f = reader.file(of: zname) else { throw InputError(path, "missing \(zname) for an asymmetric scheme") }
        var zeros: [Int8]
        let per = 32 / scheme.bits
        switch z.dtype {
        case .i8:
            guard z.elementCount == expected else { throw InputError(path, "\(zname) has shape \(z.shape), expected \(expected) values") }
            zeros = Array(f.bytes(z).bindMemory(to: Int8.self))
        case .i32 where scheme.bits == 4 && z.shape == [(rows + per - 1) / per, gpr]:
            zeros = CompressedTensors.unpackRows(int32s(f.bytes(z)), rows: rows, cols: gpr, bits: scheme.bits)
        default:
            throw InputError(path, "\(zname) has shape \(z.shape) \(z.dtype.rawValue), not a zero-point layout GreenPrune reads")
        }
        guard zeros.allSatisfy({ Int($0) >= scheme.qmin && Int($0) <= scheme.qmax }) else {
            throw InputError(path, "\(zname) holds a zero point outside [\(scheme.qmin), \(scheme.qmax)]")
        }
        if scheme.granularity == .tensor { zeros = [Int8](repeating: zeros[0], count: rows) }
        f.release(z)
        return (scales, zeros)
    }

    func int32s(_ b: UnsafeRawBufferPointer) -> [Int32] {
        (0 ..< b.count / 4).map { Int32(littleEndian: b.loadUnaligned(fromByteOffset: 4 * $0, as: Int32.self)) }
    }
}

/// The model loader's hook for compressed-tensors checkpoints: quantized modules come back as
/// `QuantizedLinear`, a quantized embedding table as dequantized floats. The checkpoint's
/// `quantization_config` is read once per `SafeTensorsReader` from the config.json beside it.
public struct CompressedTensorsLinearLoader: LinearLayerLoader {
    public init() {}

    private final class Cache: @unchecked Sendable {
        let lock = NSLock()
        var reader: ObjectIdentifier?
        var checkpoint: QuantizedCheckpoint?
    }
    private static let cache = Cache()

    /// The quantized view of `checkpoint`, or nil for a float model.
    public static func quantized(_ checkpoint: SafeTensorsReader) throws -> QuantizedCheckpoint? {
        // Cheap test first: float checkpoints have no weight_scale tensors.
        guard checkpoint.names.contains(where: { $0.hasSuffix(".weight_scale") }) else { return nil }
        cache.lock.lock(); defer { cache.lock.unlock() }
        if cache.reader == ObjectIdentifier(checkpoint) { return cache.checkpoint }
        guard let dir = checkpoint.files.first?.url.deletingLastPathComponent() else { return nil }
        guard let q = try QuantizedCheckpoint.open(dir, reader: checkpoint) else {
            throw InputError(dir.appendingPathComponent("config.json").path, "the checkpoint holds weight_scale tensors but config.json has no quantization_config")
        }
        cache.reader = ObjectIdentifier(checkpoint); cache.checkpoint = q
        return q
    }

    public func load(prefix: String, checkpoint: SafeTensorsReader) throws -> (layer: any LinearLayer, names: [String])? {
        guard let q = try Self.quantized(checkpoint), q.isQuantized(prefix) else { return nil }
        var names = [".weight_scale", ".weight", ".weight_packed", ".weight_shape", ".weight_zero_point"]
            .map { prefix + $0 }.filter { checkpoint.info($0) != nil }
        var bias: [Float]? = nil
        if let b = checkpoint.info(prefix + ".bias") {
            bias = try checkpoint.floats(b.name).array
            names.append(b.name)
        }
        guard let layer = try q.linear(prefix, bias: bias) else { return nil }
        return (layer, names)
    }

    /// A float tensor `name` (`….weight`) stored quantized, dequantized, with the names it used.
    public static func dequantizedTensor(_ name: String, _ checkpoint: SafeTensorsReader) throws -> (FloatStorage, [String])? {
        guard name.hasSuffix(".weight"), let q = try quantized(checkpoint) else { return nil }
        let prefix = String(name.dropLast(".weight".count))
        guard let s = try q.dequantized(prefix) else { return nil }
        let names = [".weight_scale", ".weight", ".weight_packed", ".weight_shape", ".weight_zero_point"]
            .map { prefix + $0 }.filter { checkpoint.info($0) != nil }
        return (s, names)
    }
}
