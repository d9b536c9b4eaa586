import Foundation

/// The storage type of a model's float weights while a command runs and in what it writes
/// (`--dtype`): `auto` keeps the checkpoint's own (bf16 stays bf16), the others convert.
public enum WeightDType: String, Codable, CaseIterable, Sendable {
    case auto, f32, bf16, f16

    /// The type weights stored as `stored` are kept in: `stored` itself for `auto` (F64 as F32),
    /// else this one.
    public func resolve(_ stored: DType) -> DType {
        switch self {
        case .auto: return stored == .bf16 || stored == .f16 ? stored : .f32
        case .f32: return .f32
        case .bf16: return .bf16
        case .f16: return .f16
        }
    }

    /// The type of a checkpoint's float weights: the float dtype holding the most bytes (F32 when
    /// it holds none).
    public static func stored(in checkpoint: SafeTensorsReader) -> DType {
        var bytes: [DType: Int] = [:]
        for name in checkpoint.names {
            guard let info = checkpoint.info(name), [.f32, .f16, .bf16, .f64].contains(info.dtype) else { continue }
            bytes[info.dtype, default: 0] += info.fileRange.count
        }
        return bytes.max { $0.value < $1.value || ($0.value == $1.value && $0.key.rawValue > $1.key.rawValue) }?.key ?? .f32
    }

    /// An options block's `dtype` as the settings hold it: auto spelled out is the same as absent.
    static func option(_ value: WeightDType?) -> WeightDType? { value == .auto ? nil : value }

    /// `resolve` of the checkpoint in `directory` (config.json's directory), for a writer.
    public func resolve(directory: URL) throws -> DType {
        if self != .auto { return resolve(.f32) }
        return resolve(Self.stored(in: try SafeTensorsReader(directory)))
    }
}
