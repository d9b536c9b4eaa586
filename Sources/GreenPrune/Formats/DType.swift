import Foundation

/// Element types of tensors in safetensors files (the names are safetensors' own).
public enum DType: String, Codable, CaseIterable, Sendable {
    case f32 = "F32", f16 = "F16", bf16 = "BF16", f64 = "F64"
    case i8 = "I8", u8 = "U8", i16 = "I16", i32 = "I32", i64 = "I64", bool = "BOOL"

    /// PyTorch's name for a float type (config.json's `torch_dtype`): float32, bfloat16, float16.
    public var torchName: String {
        switch self {
        case .bf16: return "bfloat16"
        case .f16: return "float16"
        case .f64: return "float64"
        default: return "float32"
        }
    }

    /// Bytes per element.
    public var size: Int {
        switch self {
        case .i8, .u8, .bool: return 1
        case .f16, .bf16, .i16: return 2
        case .f32, .i32: return 4
        case .f64, .i64: return 8
        }
    }
}

/// IEEE half → float (exact; handles subnormals, inf, NaN).
@inline(__always) public func halfToFloat(_ h: UInt16) -> Float {
    Float(Float16(bitPattern: h))
}

/// float → IEEE half, round to nearest even.
@inline(__always) public func floatToHalf(_ f: Float) -> UInt16 {
    Float16(f).bitPattern
}

/// bfloat16 → float (exact: bf16 is the top half of a float32).
@inline(__always) public func bf16ToFloat(_ b: UInt16) -> Float {
    Float(bitPattern: UInt32(b) << 16)
}

/// float → bfloat16, round to nearest even (NaN stays NaN), as PyTorch converts.
@inline(__always) public func floatToBF16(_ f: Float) -> UInt16 {
    let bits = f.bitPattern
    if f.isNaN { return UInt16(bits >> 16) | 0x40 }
    let rounding: UInt32 = 0x7FFF + ((bits >> 16) & 1)
    return UInt16((bits &+ rounding) >> 16)
}
