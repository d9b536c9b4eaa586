import Foundation

// ggml's quantized block formats, one namespace per format, following the layouts of
// ggml-common.h. Blocks are read and written byte by byte at fixed offsets (little-endian,
// unaligned), never by reinterpreting Swift structs, so a hostile file cannot misalign a load.
//
// Names as in ggml: `d` scale, `m`/`dmin` min, `qs` quants. A block holds `weights` values in
// `bytes` bytes; bits per weight = 8 · bytes / weights. Within a 32-weight 4-bit block, byte j
// holds weight j in its low nibble and weight j + 16 in its high nibble.
//
// Dequantizers take `count` weights (a multiple of `weights`) from `count / weights` blocks.
// Quantizers for Q8_0 / Q4_0 / Q4_1 reproduce ggml's `quantize_row_*_ref` bit for bit: same
// float32 arithmetic in the same order, the same truncating casts, and fp16 round-to-nearest-even.

/// The ggml tensor types GreenPrune knows, with ggml's numbering (`enum ggml_type`).
public enum GGMLType: UInt32, CaseIterable, Sendable {
    case f32 = 0, f16 = 1, q4_0 = 2, q4_1 = 3, q5_0 = 6, q5_1 = 7, q8_0 = 8, q8_1 = 9
    case q2_K = 10, q3_K = 11, q4_K = 12, q5_K = 13, q6_K = 14, q8_K = 15
    case i8 = 24, i16 = 25, i32 = 26, i64 = 27, f64 = 28, bf16 = 30

    /// ggml's name for the type ("Q4_1", "F32", …).
    public var name: String {
        switch self {
        case .f32: return "F32"
        case .f16: return "F16"
        case .bf16: return "BF16"
        case .f64: return "F64"
        case .i8: return "I8"
        case .i16: return "I16"
        case .i32: return "I32"
        case .i64: return "I64"
        case .q4_0: return "Q4_0"
        case .q4_1: return "Q4_1"
        case .q5_0: return "Q5_0"
        case .q5_1: return "Q5_1"
        case .q8_0: return "Q8_0"
        case .q8_1: return "Q8_1"
        case .q2_K: return "Q2_K"
        case .q3_K: return "Q3_K"
        case .q4_K: return "Q4_K"
        case .q5_K: return "Q5_K"
        case .q6_K: return "Q6_K"
        case .q8_K: return "Q8_K"
        }
    }

    /// Weights per block (1 for plain element types).
    public var blockWeights: Int {
        switch self {
        case .f32, .f16, .bf16, .f64, .i8, .i16, .i32, .i64: return 1
        case .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q8_1: return 32
        case .q2_K, .q3_K, .q4_K, .q5_K, .q6_K, .q8_K: return 256
        }
    }

    /// Bytes per block (per element for plain types), as ggml's `type_size`.
    public var blockBytes: Int {
        switch self {
        case .f32, .i32: return 4
        case .f16, .bf16, .i16: return 2
        case .f64, .i64: return 8
        case .i8: return 1
        case .q4_0: return BlockQ4_0.bytes
        case .q4_1: return BlockQ4_1.bytes
        case .q5_0: return 22
        case .q5_1: return 24
        case .q8_0: return BlockQ8_0.bytes
        case .q8_1: return 36
        case .q2_K: return 84
        case .q3_K: return 110
        case .q4_K: return BlockQ4_K.bytes
        case .q5_K: return 176
        case .q6_K: return BlockQ6_K.bytes
        case .q8_K: return 292
        }
    }

    /// Whether `dequantize(_:_:count:into:)` can turn this type into float32.
    public var canDequantize: Bool {
        switch self {
        case .f32, .f16, .bf16, .q8_0, .q4_0, .q4_1, .q4_K, .q6_K: return true
        default: return false
        }
    }

    /// Bytes that `count` weights take (count must be a multiple of `blockWeights`).
    public func byteCount(weights count: Int) -> Int { count / blockWeights * blockBytes }
}

// MARK: - Little-endian byte access

@inline(__always) func loadU16(_ p: UnsafeRawPointer, _ offset: Int) -> UInt16 {
    UInt16(littleEndian: p.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
}

@inline(__always) func storeU16(_ p: UnsafeMutableRawPointer, _ offset: Int, _ v: UInt16) {
    p.storeBytes(of: v.littleEndian, toByteOffset: offset, as: UInt16.self)
}

@inline(__always) func loadHalf(_ p: UnsafeRawPointer, _ offset: Int) -> Float {
    halfToFloat(loadU16(p, offset))
}

/// `(int)(v)` for a float that ggml then casts to int8 and clamps to [0, 15]: truncation toward
/// zero; NaN and values below zero give 0 (ggml's casts are undefined there; we stay in range).
@inline(__always) func truncatedNibble(_ v: Float) -> UInt8 {
    guard v >= 0 else { return 0 }
    return v >= 15 ? 15 : UInt8(v)
}

// MARK: - Blocks

/// `block_q8_0 { half d; int8 qs[32]; }` — 34 bytes per 32 weights, 8.5 bits per weight.
/// x[j] = d · qs[j].
public enum BlockQ8_0 {
    public static let weights = 32
    public static let bytes = 34

    /// Dequantizes one block at `b` into `y[0..<32]`.
    @inline(__always) public static func dequantize(_ b: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = loadHalf(b, 0)
        let qs = b.advanced(by: 2).assumingMemoryBound(to: Int8.self)
        for j in 0..<32 { y[j] = d * Float(qs[j]) }
    }

    /// Quantizes `x[0..<32]` into one block at `b`, as ggml's `quantize_row_q8_0_ref`:
    /// d = amax / 127, qs = round-half-away(x / d).
    @inline(__always) public static func quantize(_ x: UnsafePointer<Float>, _ b: UnsafeMutableRawPointer) {
        var amax: Float = 0
        for j in 0..<32 { amax = max(amax, abs(x[j])) }
        let d = amax / 127
        let id: Float = d != 0 ? 1 / d : 0
        storeU16(b, 0, floatToHalf(d))
        for j in 0..<32 {
            let v = (x[j] * id).rounded(.toNearestOrAwayFromZero)
            // |x·id| ≤ 127 for finite input; clamp keeps NaN/inf input from trapping.
            let q: Int8 = v.isNaN ? 0 : Int8(max(-128, min(127, v)))
            b.storeBytes(of: q, toByteOffset: 2 + j, as: Int8.self)
        }
    }
}

/// `block_q4_0 { half d; uint8 qs[16]; }` — 18 bytes per 32 weights, 4.5 bits per weight.
/// x = d · (q − 8), q a 4-bit nibble.
public enum BlockQ4_0 {
    public static let weights = 32
    public static let bytes = 18

    @inline(__always) public static func dequantize(_ b: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = loadHalf(b, 0)
        let qs = b.advanced(by: 2).assumingMemoryBound(to: UInt8.self)
        for j in 0..<16 {
            y[j] = Float(Int(qs[j] & 0x0F) - 8) * d
            y[j + 16] = Float(Int(qs[j] >> 4) - 8) * d
        }
    }

    /// As ggml's `quantize_row_q4_0_ref`: d = (the value of largest magnitude) / −8,
    /// q = min(15, trunc(x / d + 8.5)).
    @inline(__always) public static func quantize(_ x: UnsafePointer<Float>, _ b: UnsafeMutableRawPointer) {
        var amax: Float = 0, vmax: Float = 0
        for j in 0..<32 where amax < abs(x[j]) { amax = abs(x[j]); vmax = x[j] }
        let d = vmax / -8
        let id: Float = d != 0 ? 1 / d : 0
        storeU16(b, 0, floatToHalf(d))
        for j in 0..<16 {
            let lo = truncatedNibble(x[j] * id + 8.5)
            let hi = truncatedNibble(x[j + 16] * id + 8.5)
            b.storeBytes(of: lo | (hi << 4), toByteOffset: 2 + j, as: UInt8.self)
        }
    }
}

/// `block_q4_1 { half d; half m; uint8 qs[16]; }` — 20 bytes per 32 weights, 5 bits per weight.
/// x = d · q + m, q a 4-bit nibble.
public enum BlockQ4_1 {
    public static let weights = 32
    public static let bytes = 20

    @inline(__always) public static func dequantize(_ b: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = loadHalf(b, 0), m = loadHalf(b, 2)
        let qs = b.advanced(by: 4).assumingMemoryBound(to: UInt8.self)
        for j in 0..<16 {
            y[j] = Float(qs[j] & 0x0F) * d + m
            y[j + 16] = Float(qs[j] >> 4) * d + m
        }
    }

    /// As ggml's `quantize_row_q4_1_ref`: d = (max − min) / 15, m = min,
    /// q = min(15, trunc((x − min) / d + 0.5)).
    @inline(__always) public static func quantize(_ x: UnsafePointer<Float>, _ b: UnsafeMutableRawPointer) {
        var vmin = Float.greatestFiniteMagnitude, vmax = -Float.greatestFiniteMagnitude
        for j in 0..<32 {
            if x[j] < vmin { vmin = x[j] }
            if x[j] > vmax { vmax = x[j] }
        }
        let d = (vmax - vmin) / 15
        let id: Float = d != 0 ? 1 / d : 0
        storeU16(b, 0, floatToHalf(d))
        storeU16(b, 2, floatToHalf(vmin))
        for j in 0..<16 {
            let lo = truncatedNibble((x[j] - vmin) * id + 0.5)
            let hi = truncatedNibble((x[j + 16] - vmin) * id + 0.5)
            b.storeBytes(of: lo | (hi << 4), toByteOffset: 4 + j, as: UInt8.self)
        }
    }
}

/// `block_q4_K { half d; half dmin; uint8 scales[12]; uint8 qs[128]; }` — 144 bytes per 256
/// weights, 4.5 bits per weight. Eight sub-blocks of 32 weights, each with a 6-bit scale `sc`
/// and 6-bit min `mn` packed in `scales`; x = d · sc · q − dmin · mn.
public enum BlockQ4_K {
    public static let weights = 256
    public static let bytes = 144

    /// The 6-bit scale and min of sub-block `j` (0..<8) from the 12 packed bytes: sub-blocks
    /// 0–3 keep theirs in the low 6 bits of bytes j and j+4; sub-blocks 4–7 take their low 4 bits
    /// from byte j+4 (scale: low nibble, min: high nibble) and their top 2 bits from the top of
    /// bytes j−4 (scale) and j (min).
    @inline(__always) static func scaleMin(_ j: Int, _ q: UnsafePointer<UInt8>) -> (Float, Float) {
        if j < 4 { return (Float(q[j] & 63), Float(q[j + 4] & 63)) }
        let sc = (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4)
        let mn = (q[j + 4] >> 4) | ((q[j] >> 6) << 4)
        return (Float(sc), Float(mn))
    }

    @inline(__always) public static func dequantize(_ b: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = loadHalf(b, 0), dmin = loadHalf(b, 2)
        let scales = b.advanced(by: 4).assumingMemoryBound(to: UInt8.self)
        let qs = b.advanced(by: 16).assumingMemoryBound(to: UInt8.self)
        // Four groups of 64 weights; each group's 32 bytes hold sub-block 2g in the low nibbles
        // and sub-block 2g+1 in the high nibbles.
        for g in 0..<4 {
            let (sc1, m1) = scaleMin(2 * g, scales), (sc2, m2) = scaleMin(2 * g + 1, scales)
            let d1 = d * sc1, mm1 = dmin * m1, d2 = d * sc2, mm2 = dmin * m2
            let q = qs + 32 * g, out = y + 64 * g
            for l in 0..<32 {
                out[l] = d1 * Float(q[l] & 0x0F) - mm1
                out[l + 32] = d2 * Float(q[l] >> 4) - mm2
            }
        }
    }
}

/// `block_q6_K { uint8 ql[128]; uint8 qh[64]; int8 scales[16]; half d; }` — 210 bytes per 256
/// weights, 6.5625 bits per weight. Sixteen sub-blocks of 16 weights with an 8-bit signed scale;
/// q is 6 bits (4 low bits in `ql`, 2 high bits in `qh`), x = d · scale · (q − 32).
public enum BlockQ6_K {
    public static let weights = 256
    public static let bytes = 210

    @inline(__always) public static func dequantize(_ b: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = loadHalf(b, 208)
        let qlAll = b.assumingMemoryBound(to: UInt8.self)
        let qhAll = (b + 128).assumingMemoryBound(to: UInt8.self)
        let scAll = (b + 192).assumingMemoryBound(to: Int8.self)
        // Two halves of 128 weights, each using 64 bytes of ql, 32 of qh and 8 scales. Within a
        // half, weight l + 32k (k = 0..3) takes its low bits from ql (k even: low nibble of
        // ql[l + 32(k/2)], k odd: high nibble) and its high 2 bits from bits 2k..2k+1 of qh[l].
        for half in 0..<2 {
            let ql = qlAll + 64 * half, qh = qhAll + 32 * half, sc = scAll + 8 * half
            let out = y + 128 * half
            for l in 0..<32 {
                let s = l / 16
                let q1 = Int((ql[l] & 0x0F) | (((qh[l] >> 0) & 3) << 4)) - 32
                let q2 = Int((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) - 32
                let q3 = Int((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32
                let q4 = Int((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32
                out[l] = d * Float(sc[s]) * Float(q1)
                out[l + 32] = d * Float(sc[s + 2]) * Float(q2)
                out[l + 64] = d * Float(sc[s + 4]) * Float(q3)
                out[l + 96] = d * Float(sc[s + 6]) * Float(q4)
            }
        }
    }
}

// MARK: - Whole rows

/// An error from the block kernels: a type they cannot handle, or a count that is not a whole
/// number of blocks.
public struct GGMLBlockError: Error, LocalizedError, CustomStringConvertible {
    public var description: String
    public var errorDescription: String? { description }
}

/// Dequantizes `count` weights of `type` from `src` into `y[0..<count]`.
///
/// `src` must hold at least `type.byteCount(weights: count)` bytes (checked); `count` must be a
/// multiple of the block size. Supports F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K and Q6_K.
public func ggmlDequantize(_ type: GGMLType, _ src: UnsafeRawBufferPointer, count: Int,
                           into y: UnsafeMutablePointer<Float>) throws {
    guard count >= 0, count % type.blockWeights == 0 else {
        throw GGMLBlockError(description: "\(type.name): \(count) weights is not a whole number of \(type.blockWeights)-weight blocks")
    }
    let need = type.byteCount(weights: count)
    guard src.count >= need else {
        throw GGMLBlockError(description: "\(type.name): \(count) weights need \(need) bytes, have \(src.count)")
    }
    guard count > 0, let base = src.baseAddress else { return }
    let nb = count / type.blockWeights
    switch type {
    case .f32:
        for i in 0..<count {
            y[i] = Float(bitPattern: UInt32(littleEndian: base.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
        }
    case .f16:
        for i in 0..<count { y[i] = halfToFloat(loadU16(base, 2 * i)) }
    case .bf16:
        for i in 0..<count { y[i] = bf16ToFloat(loadU16(base, 2 * i)) }
    case .q8_0:
        for i in 0..<nb { BlockQ8_0.dequantize(base + i * BlockQ8_0.bytes, y + i * 32) }
    case .q4_0:
        for i in 0..<nb { BlockQ4_0.dequantize(base + i * BlockQ4_0.bytes, y + i * 32) }
    case .q4_1:
        for i in 0..<nb { BlockQ4_1.dequantize(base + i * BlockQ4_1.bytes, y + i * 32) }
    case .q4_K:
        for i in 0..<nb { BlockQ4_K.dequantize(base + i * BlockQ4_K.bytes, y + i * 256) }
    case .q6_K:
        for i in 0..<nb { BlockQ6_K.dequantize(base + i * BlockQ6_K.bytes, y + i * 256) }
    default:
        throw GGMLBlockError(description: "\(type.name): dequantization not supported (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q6_K)")
    }
}

/// Dequantizes a whole buffer into a new float array of `count` weights.
public func ggmlDequantize(_ type: GGMLType, _ src: UnsafeRawBufferPointer, count: Int) throws -> [Float] {
    var out = [Float](repeating: 0, count: count)
    try out.withUnsafeMutableBufferPointer { o in
        guard let p = o.baseAddress else { return }
        try ggmlDequantize(type, src, count: count, into: p)
    }
    return out
}

/// Quantizes `x` (a multiple of 32 weights) to Q8_0, Q4_0 or Q4_1 blocks, bit-exact with ggml's
/// `quantize_row_*_ref`. Returns `type.byteCount(weights: x.count)` bytes.
public func ggmlQuantize(_ type: GGMLType, _ x: UnsafeBufferPointer<Float>) throws -> [UInt8] {
    guard x.count % type.blockWeights == 0 else {
        throw GGMLBlockError(description: "\(type.name): \(x.count) weights is not a whole number of \(type.blockWeights)-weight blocks")
    }
    let quantize: (UnsafePointer<Float>, UnsafeMutableRawPointer) -> Void
    switch type {
    case .q8_0: quantize = BlockQ8_0.quantize
    case .q4_0: quantize = BlockQ4_0.quantize
    case .q4_1: quantize = BlockQ4_1.quantize
    default:
        throw GGMLBlockError(description: "\(type.name): quantization not supported (supported: Q8_0, Q4_0, Q4_1)")
    }
    var out = [UInt8](repeating: 0, count: type.byteCount(weights: x.count))
    guard let xs = x.baseAddress else { return out }
    out.withUnsafeMutableBytes { o in
        guard let ob = o.baseAddress else { return }
        for i in 0..<(x.count / 32) { quantize(xs + 32 * i, ob + type.blockBytes * i) }
    }
    return out
}

/// Quantizes a float array (see the buffer version).
public func ggmlQuantize(_ type: GGMLType, _ x: [Float]) throws -> [UInt8] {
    try x.withUnsafeBufferPointer { try ggmlQuantize(type, $0) }
}
