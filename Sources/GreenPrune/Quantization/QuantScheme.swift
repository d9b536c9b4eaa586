import Foundation

/// Which weights share one scale (and zero point).
public enum QuantGranularity: String, Codable, CaseIterable, Sendable {
    /// One scale for the whole matrix.
    case tensor
    /// One scale per output channel (row of W).
    case channel
    /// One scale per `groupSize` consecutive input columns of each row.
    case group
}

/// How a block's scale and zero point are chosen (compressed-tensors' `observer`).
public enum QuantObserver: String, Codable, CaseIterable, Sendable {
    /// From the block's min and max (every weight inside the range).
    case minmax
    /// llm-compressor's MSE observer: the range [p·min, p·max] for p = 1, 0.99, …, 0.80 whose
    /// rounding error Σ|w − ŵ|^2.4 over the block is least (outliers may clip, the rest get a
    /// finer step).
    case mse
}

/// The type scales are stored in (compressed-tensors' `weight_scale` dtype).
public enum ScaleType: String, Codable, CaseIterable, Sendable {
    case float32
    /// Scales are rounded *up* to a float16 before the codes are computed: a step at most 2⁻¹⁰
    /// larger (in float16's normal range, [2⁻¹⁴, 65504]; coarser below it), never a smaller one,
    /// which would push a block's extreme weights past the last code (a symmetric block's
    /// largest weight sits exactly half a step inside it). So every weight stays within half a
    /// step of the stored scale. A scale over 65504 cannot be stored.
    case float16

    /// `s` (> 0) as stored.
    @inlinable public func stored(_ s: Float) -> Float {
        guard self == .float16, s <= 65504 else { return s }
        var h = Float16(s)
        if Float(h) < s { h = h.nextUp }
        return Float(h)
    }
    /// True when every value is exactly a float16 (what the writer and the loader check).
    public static func fitsFloat16<C: Collection>(_ values: C) -> Bool where C.Element == Float {
        values.allSatisfy { Float(Float16($0)) == $0 && $0.isFinite }
    }
}

/// A round-to-nearest integer weight quantization scheme, as compressed-tensors defines it.
///
/// Codes are signed: q ∈ [qmin, qmax] = [−2^(b−1), 2^(b−1)−1]. The range always contains 0
/// (min ← min(min, 0), max ← max(max, 0)), and with R = qmax − qmin = 2^b − 1:
/// - symmetric:  scale = max(|min|, |max|) / (R/2), zero point 0;
/// - asymmetric: scale = (max − min) / R, zero point z = round(clamp(qmin − min/scale, qmin, qmax)).
/// q = clamp(round(w/scale + z), qmin, qmax) with ties to even (torch.round), and
/// w ≈ (q − z)·scale, off by at most half a step for every weight inside [min, max].
/// A zero scale (an all-zero block) becomes float32 epsilon, as compressed-tensors does.
public struct QuantScheme: Codable, Equatable, Sendable {
    /// 8 or 4.
    public var bits: Int
    public var granularity: QuantGranularity
    /// Columns per group (32, 64 or 128) when `granularity == .group`, else nil.
    public var groupSize: Int?
    public var symmetric: Bool
    /// How scales are chosen (minmax unless asked).
    public var observer: QuantObserver
    /// Scale storage (float32 unless asked; the CLI's default asks for float16 at 4 bits).
    public var scaleType: ScaleType

    enum CodingKeys: String, CodingKey {
        case bits, granularity, groupSize = "group_size", symmetric, observer, scaleType = "scale_dtype"
    }

    /// Group sizes the command accepts.
    public static let groupSizes = [32, 64, 128]

    /// Validates the combination; errors name the flag at fault in one line.
    public init(bits: Int, granularity: QuantGranularity, groupSize: Int? = nil, symmetric: Bool = true,
                observer: QuantObserver = .minmax, scaleType: ScaleType = .float32) throws {
        guard bits == 8 || bits == 4 else {
            throw InputError("--bits", "\(bits) is not supported (use 8 or 4)")
        }
        var size: Int? = nil
        if granularity == .group {
            let g = groupSize ?? 128
            guard Self.groupSizes.contains(g) else {
                throw InputError("--group-size", "\(g) is not supported (use 32, 64 or 128)")
            }
            size = g
        }
        self.bits = bits
        self.granularity = granularity
        self.groupSize = size
        self.symmetric = symmetric
        self.observer = observer
        self.scaleType = scaleType
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        try self.init(bits: try c.decode(Int.self, forKey: .bits),
                      granularity: try c.decode(QuantGranularity.self, forKey: .granularity),
                      groupSize: try c.decodeIfPresent(Int.self, forKey: .groupSize),
                      symmetric: try c.decode(Bool.self, forKey: .symmetric),
                      observer: try c.decodeIfPresent(QuantObserver.self, forKey: .observer) ?? .minmax,
                      scaleType: try c.decodeIfPresent(ScaleType.self, forKey: .scaleType) ?? .float32)
    }

    /// Shrink factors the MSE observer tries (llm-compressor: grid 100, maxshrink 0.2).
    static let mseShrinks: [Float] = (0 ..< 20).map { 1 - Float($0) / 100 }

    /// Scale and zero point for the block of `n` finite values at `v` (every `stride`-th float):
    /// `parameters(min:max:)` of the block's range, or with the MSE observer of the shrunk range
    /// whose rounding error Σ|w − ŵ|^2.4 is least (ties keep the wider range).
    public func parameters(block v: UnsafePointer<Float>, count n: Int, stride: Int = 1) -> (scale: Float, zero: Int) {
        var mn = Float.infinity, mx = -Float.infinity
        for i in 0 ..< n { let x = v[i * stride]; mn = Swift.min(mn, x); mx = Swift.max(mx, x) }
        guard observer == .mse, n > 0 else { return parameters(min: mn, max: mx) }
        let lo = Float(qmin), hi = Float(qmax)
        var best = parameters(min: mn, max: mx), bestError = Float.infinity
        for p in Self.mseShrinks {
            let cand = parameters(min: p * mn, max: p * mx)
            let z = Float(cand.zero)
            var err: Float = 0
            for i in 0 ..< n {
                let x = v[i * stride]
                let q = Swift.min(Swift.max((x / cand.scale + z).rounded(.toNearestOrEven), lo), hi)
                err += pow(abs(x - (q - z) * cand.scale), 2.4)
            }
            if err < bestError { bestError = err; best = cand }
        }
        return best
    }

    /// Smallest code, −2^(bits−1).
    public var qmin: Int { -(1 << (bits - 1)) }
    /// Largest code, 2^(bits−1) − 1.
    public var qmax: Int { (1 << (bits - 1)) - 1 }

    /// Columns of a row that share one scale for a matrix `cols` wide.
    public func groupLength(cols: Int) -> Int { granularity == .group ? (groupSize ?? cols) : cols }

    /// Throws unless a matrix of this width can be quantized (the group size divides it).
    public func validate(cols: Int, name: String) throws {
        if granularity == .group, let g = groupSize, cols % g != 0 {
            throw InputError("--group-size", "\(g) does not divide the input width \(cols) of \(name) (skip it with --skip or pick another group size)")
        }
        guard cols > 0 else { throw InputError(name, "has no columns") }
    }

    /// Scale and zero point for a block whose values span [lo, hi].
    @inlinable
    public func parameters(min lo: Float, max hi: Float) -> (scale: Float, zero: Int) {
        let mn = Swift.min(lo, 0), mx = Swift.max(hi, 0)
        let range = Float((1 << bits) - 1)
        var scale: Float
        var zero = 0
        if symmetric {
            scale = Swift.max(abs(mn), abs(mx)) / (range / 2)
        } else {
            scale = (mx - mn) / range
        }
        if scale == 0 { scale = Float.ulpOfOne }
        scale = scaleType.stored(scale)
        if !symmetric {
            let z = Swift.min(Swift.max(Float(qmin) - mn / scale, Float(qmin)), Float(qmax))
            zero = Int(z.rounded(.toNearestOrEven))
        }
        return (scale, zero)
    }

    /// Quantizes W (rows, cols) row-major. Throws on a width the group size does not divide
    /// or on a non-finite weight.
    public func quantize(_ w: UnsafeBufferPointer<Float>, rows: Int, cols: Int, name: String) throws -> QuantizedTensor {
        try validate(cols: cols, name: name)
        guard w.count == rows * cols else {
            throw InputError(name, "has \(w.count) values, expected \(rows)×\(cols)")
        }
        let glen = groupLength(cols: cols)
        let groupsPerRow = granularity == .tensor ? 0 : cols / glen
        let nScales = granularity == .tensor ? 1 : rows * groupsPerRow
        var scales = [Float](repeating: 0, count: nScales)
        var zeros = [Int8](repeating: 0, count: nScales)
        var codes = [Int8](repeating: 0, count: rows * cols)
        let lo = Float(qmin), hi = Float(qmax)

        // Block b covers W[r, c0 ..< c0+len] for every (r, c0) it owns.
        func extrema(_ start: Int, _ len: Int, _ mn: inout Float, _ mx: inout Float) throws {
            for i in start ..< start + len {
                let v = w[i]
                guard v.isFinite else { throw InputError(name, "has a non-finite weight at index \(i)") }
                mn = Swift.min(mn, v); mx = Swift.max(mx, v)
            }
        }
        func encode(_ start: Int, _ len: Int, _ scale: Float, _ zero: Int) {
            let z = Float(zero)
            for i in start ..< start + len {
                let q = (w[i] / scale + z).rounded(.toNearestOrEven)
                codes[i] = Int8(Swift.min(Swift.max(q, lo), hi))
            }
        }
        if granularity == .tensor {
            var mn = Float.infinity, mx = -Float.infinity
            try extrema(0, rows * cols, &mn, &mx)
            let p = observer == .minmax ? parameters(min: mn, max: mx) : parameters(block: w.baseAddress!, count: rows * cols)
            scales[0] = p.scale; zeros[0] = Int8(p.zero)
            encode(0, rows * cols, p.scale, p.zero)
        } else {
            for r in 0 ..< rows {
                for g in 0 ..< groupsPerRow {
                    let start = r * cols + g * glen
                    var mn = Float.infinity, mx = -Float.infinity
                    try extrema(start, glen, &mn, &mx)
                    let p = observer == .minmax ? parameters(min: mn, max: mx) : parameters(block: w.baseAddress! + start, count: glen)
                    scales[r * groupsPerRow + g] = p.scale
                    zeros[r * groupsPerRow + g] = Int8(p.zero)
                    encode(start, glen, p.scale, p.zero)
                }
            }
        }
        return QuantizedTensor(scheme: self, rows: rows, cols: cols, codes: codes, scales: scales,
                               zeroPoints: symmetric ? nil : zeros)
    }
}

/// A quantized matrix: signed integer codes with their scales (and zero points).
public struct QuantizedTensor: Sendable, Equatable {
    public var scheme: QuantScheme
    /// Output channels (rows of W).
    public var rows: Int
    /// Input width (columns of W).
    public var cols: Int
    /// (rows, cols) codes in [qmin, qmax], row-major.
    public var codes: [Int8]
    /// tensor: [1]; channel: (rows, 1); group: (rows, cols/groupSize) row-major.
    public var scales: [Float]
    /// Same shape as `scales`; nil for symmetric schemes (zero point 0).
    public var zeroPoints: [Int8]?

    public init(scheme: QuantScheme, rows: Int, cols: Int, codes: [Int8], scales: [Float], zeroPoints: [Int8]?) {
        self.scheme = scheme; self.rows = rows; self.cols = cols
        self.codes = codes; self.scales = scales; self.zeroPoints = zeroPoints
    }

    /// Columns per scale along a row.
    public var groupLength: Int { scheme.groupLength(cols: cols) }
    /// Scale columns: 1 for tensor and channel, cols/groupSize for group.
    public var groupsPerRow: Int { scheme.granularity == .group ? cols / groupLength : 1 }

    /// Index into `scales` / `zeroPoints` of the block that holds W[r, c].
    @inlinable public func scaleIndex(row r: Int, col c: Int) -> Int {
        switch scheme.granularity {
        case .tensor: return 0
        case .channel: return r
        case .group: return r * groupsPerRow + c / groupLength
        }
    }

    /// Scales expanded to (rows, groupsPerRow) — one per row even for a per-tensor scheme.
    public var rowScales: [Float] {
        scheme.granularity == .tensor ? [Float](repeating: scales[0], count: rows) : scales
    }
    /// Zero points expanded like `rowScales`.
    public var rowZeroPoints: [Int8]? {
        guard let z = zeroPoints else { return nil }
        return scheme.granularity == .tensor ? [Int8](repeating: z[0], count: rows) : z
    }

    /// W ≈ (q − z)·scale, (rows, cols) row-major.
    public func dequantize() -> [Float] {
        var out = [Float](repeating: 0, count: rows * cols)
        for r in 0 ..< rows {
            for c in 0 ..< cols {
                let s = scaleIndex(row: r, col: c)
                let z = Float(zeroPoints?[s] ?? 0)
                out[r * cols + c] = (Float(codes[r * cols + c]) - z) * scales[s]
            }
        }
        return out
    }
}
