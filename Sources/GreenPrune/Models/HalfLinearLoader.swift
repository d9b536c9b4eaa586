import Foundation

/// `prefix.weight` (out, in) [+ `prefix.bias`] as a `HalfLinear` when `dtype` keeps it in half
/// precision: BF16/F16 halves stored as the wanted type are mapped without a copy, other float
/// tensors are rounded into owned halves (and their mapped pages dropped). Nil when the weight
/// stays float32, so the dense loader takes it.
public struct HalfLinearLoader: LinearLayerLoader {
    /// The storage type asked for (`--dtype`).
    public var dtype: WeightDType

    public init(dtype: WeightDType) { self.dtype = dtype }

    /// The half type `name` is kept in, or nil when it stays float32 (or is absent or not float).
    public func halfType(of name: String, in checkpoint: SafeTensorsReader) -> DType? {
        guard let info = checkpoint.info(name), [.f32, .f16, .bf16, .f64].contains(info.dtype) else { return nil }
        let target = dtype.resolve(info.dtype)
        return target == .f32 ? nil : target
    }

    public func load(prefix: String, checkpoint: SafeTensorsReader) throws -> (layer: any LinearLayer, names: [String])? {
        let wn = prefix + ".weight", bn = prefix + ".bias"
        guard let target = halfType(of: wn, in: checkpoint), let info = checkpoint.info(wn), let file = checkpoint.file(of: wn) else { return nil }
        guard info.shape.count == 2 else { throw InputError(file.url.path, "tensor '\(wn)' has shape \(info.shape), expected 2 dimensions") }
        var names = [wn]
        var bias: FloatStorage?
        if checkpoint.info(bn) != nil {
            bias = try checkpoint.floats(bn, shape: [info.shape[0]])
            names.append(bn)
        }
        let layer: HalfLinear
        if info.dtype == target {
            layer = try HalfLinear(dtype: target, bytes: file.bytes(info), mapping: file.file, bias: bias,
                                   outFeatures: info.shape[0], inFeatures: info.shape[1])
        } else {
            let w = try checkpoint.floats(wn)
            layer = try HalfLinear(dtype: target, rounding: w.pointer, bias: bias, outFeatures: info.shape[0], inFeatures: info.shape[1])
            file.release(info)
        }
        return (layer, names)
    }
}
