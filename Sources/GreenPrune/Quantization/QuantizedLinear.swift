import CKernels
import COpenBLAS
import CQuantKernels
import Foundation

/// How a quantized layer treats its input at run time.
public enum ActivationQuantization: String, Codable, CaseIterable, Sendable {
    /// Float32 activations; weights dequantized tile by tile, then `cblas_sgemm`.
    case none
    /// Activations quantized per token to int8 at run time (dynamic), int8 × int8 → int32 kernels.
    case int8
}

/// y = x · Wᵀ + b with W kept quantized in memory.
///
/// Storage (allocated once, freed in deinit):
/// - 8-bit: `codes` int8 (out, in);
/// - 4-bit: compressed-tensors words, (out, ⌈in/8⌉) uint32, 8 codes per word least-significant
///   first, each code stored as q + 8;
/// - `scales` (out, G) and, when asymmetric, zero points (out, G), G = in / groupLength groups per
///   row (a per-tensor scale is repeated per row); 4-bit zero points two per byte (z + 8, the
///   even index in the low nibble), 8-bit ones a byte each. 4-bit layers whose scales are all exact
///   float16 values (what `quantize` writes at 4 bits by default) keep them as float16, half the bytes;
///   the kernels read them converted a row or a block at a time.
/// With `.none`, `forward` dequantizes at most `options.tileElements` weights at a time into a float
/// scratch buffer (threads split the rows) and multiplies with `cblas_sgemm`, or expands them to
/// bf16 blocks for AMX tiles (`usesAMX`) or the AVX-512 BF16 dot-product kernel (`usesBF16Dot`), or
/// multiplies int16 activations by int16 codes on AVX-512 VNNI (`usesInt16Dot`); with `.int8` it
/// quantizes each input row to int8 and runs `Int8Kernels.gemm` (4-bit rows unpacked 256 at
/// a time to int8). Either way the float weights never exist in full.
public final class QuantizedLinear: LinearLayer {
    public let inFeatures: Int
    public let outFeatures: Int
    /// 8 or 4.
    public let bits: Int
    /// Input columns sharing one scale.
    public let groupLength: Int
    /// Scales per row (in / groupLength).
    public let groupsPerRow: Int
    public var activations: ActivationQuantization
    /// Instruction-set path of the int8 kernels (the fastest by default).
    public var isa: Int8Kernels.ISA = Int8Kernels.best

    /// Bytes per packed row (4-bit: 4·⌈in/8⌉; 8-bit: in).
    private let rowBytes: Int
    private let data: UnsafeRawBufferPointer
    /// The mapped file `data` points into (nil when the layer owns `data`).
    private let owner: AnyObject?
    /// Scales as float32, or (`scales16`) as float16; exactly one is non-nil.
    private let scales32: UnsafeMutableBufferPointer<Float>?
    private let scales16: UnsafeMutableBufferPointer<Float16>?
    private let scaleCount: Int
    /// 8-bit zero points, one per byte.
    private let zeros: UnsafeMutableBufferPointer<Int8>?
    /// 4-bit zero points, two per byte: zero point i is the nibble i of the buffer (low nibble
    /// first) minus 8.
    private let zeros4: UnsafeMutableBufferPointer<UInt8>?
    /// b (outFeatures), owned.
    public let bias: FloatStorage?

    /// Which kernel paths this layer takes (AMX tiles, bf16 dot products, the dequantization tile size); a model
    /// sets it on its layers (`LlamaModel.kernelOptions`).
    public var options = KernelOptions.standard

    public func adopt(_ options: KernelOptions) { if self.options != options { self.options = options } }

    /// Fewest input rows for the AMX path (below it, expanding the weights to tiles costs more
    /// than the tiles save).
    public static let amxMinRows = 32

    /// True when this layer's float-activation products go through AMX bf16 tiles for `m` input
    /// rows. Only where bf16 adds nothing next to the quantization error: rows with one scale
    /// (the integer codes are exact in bf16 and the scale is applied to the float32 sums) or
    /// 4-bit groups (the dequantized weight rounded to bf16 moves by at most 2⁻⁹ of itself,
    /// under 0.05 steps). 8-bit groups stay on sgemm.
    public func usesAMX(rows m: Int) -> Bool {
        options.amx && KernelOptions.amxAvailable && activations == .none && m >= Self.amxMinRows && (groupsPerRow == 1 || bits == 4)
    }

    /// Fewest input rows for the AVX-512 BF16 dot-product path (one 8-row block of its kernel).
    public static let bf16DotMinRows = 8

    /// True when this layer's float-activation products for `m` input rows go through the
    /// AVX-512 BF16 dot-product kernel (`KernelOptions.bf16Dot`, a CPU with VDPBF16PS): the
    /// weights expanded from their codes into the same bf16 blocks as AMX's, multiplied by the
    /// activations rounded to bf16, float32 sums. Only where neither AMX nor the int16 kernel
    /// takes the rows, and under the same rule as AMX (rows with one scale, or 4-bit groups).
    public func usesBF16Dot(rows m: Int) -> Bool {
        options.bf16Dot && KernelOptions.bf16DotAvailable && activations == .none && m >= Self.bf16DotMinRows
            && (groupsPerRow == 1 || bits == 4) && !usesAMX(rows: m) && !usesInt16Dot(rows: m)
    }

    /// Fewest input rows for the int16 dot-product path (one 8-row block of its kernel).
    public static let int16DotMinRows = 8

    /// True when this layer's float-activation products for `m` input rows go through the
    /// int16 kernel (`KernelOptions.int16Dot`: AVX-512 VNNI or AVX2): each input row quantized to int16
    /// with its own scale, the weights expanded from their codes to the exact integers q − z,
    /// int32 sums flushed to float32 with the group scales (`qk_int16_gemm`). Any group length
    /// (even, or one group per row) takes it: the codes stay exact, so 8-bit groups do too. Only
    /// where AMX does not take the rows. It goes before the bf16 dot-product kernel where both are
    /// on (AVX-512 VNNI and BF16, as Zen 4): both run at about twice sgemm's rate there, and this
    /// one keeps 16 bits of each activation instead of 8, sums exactly, and computes on the
    /// calling thread (row bands, bit for bit).
    public func usesInt16Dot(rows m: Int) -> Bool {
        options.int16Dot && KernelOptions.int16DotAvailable && activations == .none && m >= Self.int16DotMinRows
            && (groupsPerRow == 1 || groupLength % 2 == 0) && !usesAMX(rows: m)
    }

    /// The name of the kernel that multiplies `m` float input rows (for benchmarks' output).
    public func floatKernelName(rows m: Int) -> String {
        usesAMX(rows: m) ? "amx-bf16" : usesBF16Dot(rows: m) ? "bf16-dot" : usesInt16Dot(rows: m) ? "int16-dot" : "sgemm"
    }

    /// How `m` input rows are packed: bf16 (AMX tiles or the bf16 dot-product kernel), int16 (the
    /// int16 kernel), or nil (sgemm reads them as they are).
    private func packFormat(rows m: Int) -> PackedInput.Format? {
        usesAMX(rows: m) || usesBF16Dot(rows: m) ? .bf16 : usesInt16Dot(rows: m) ? .int16 : nil
    }

    /// Builds the layer from quantized codes (any granularity), copying them into packed storage.
    public convenience init(_ t: QuantizedTensor, bias: [Float]? = nil, activations: ActivationQuantization = .none) throws {
        let rows = t.rows, cols = t.cols
        if t.scheme.bits == 4 {
            let words = CompressedTensors.pack(t.codes, rows: rows, cols: cols, bits: 4)
            try self.init(rows: rows, cols: cols, bits: 4, groupLength: t.groupLength,
                          storage: words.withUnsafeBytes { Data($0) },
                          scales: t.rowScales, zeroPoints: t.rowZeroPoints, bias: bias, activations: activations)
        } else {
            try self.init(rows: rows, cols: cols, bits: 8, groupLength: t.groupLength,
                          storage: t.codes.withUnsafeBytes { Data($0) },
                          scales: t.rowScales, zeroPoints: t.rowZeroPoints, bias: bias, activations: activations)
        }
    }

    /// Builds the layer from its stored form: `storage` is int8 codes (8-bit) or the
    /// compressed-tensors int32 words (4-bit) as raw little-endian bytes; `scales` and
    /// `zeroPoints` are (rows, cols/groupLength).
    public convenience init(rows: Int, cols: Int, bits: Int, groupLength: Int, storage: Data, scales: [Float],
                            zeroPoints: [Int8]?, bias: [Float]?, activations: ActivationQuantization = .none) throws {
        let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: Swift.max(storage.count, 1), alignment: 64)
        defer { copy.deallocate() }
        storage.withUnsafeBytes { copy.copyMemory(from: $0) }
        try self.init(rows: rows, cols: cols, bits: bits, groupLength: groupLength,
                      bytes: UnsafeRawBufferPointer(rebasing: copy[0 ..< storage.count]), owner: nil,
                      scales: scales, zeroPoints: zeroPoints, bias: bias, activations: activations)
    }

    /// As above from raw bytes. With an `owner` (a mapped file) and 4-byte-aligned bytes the layer
    /// keeps a zero-copy view and holds the owner alive; otherwise it copies the bytes.
    public init(rows: Int, cols: Int, bits: Int, groupLength: Int, bytes storage: UnsafeRawBufferPointer, owner: AnyObject?,
                scales: [Float], zeroPoints: [Int8]?, bias: [Float]?, activations: ActivationQuantization = .none) throws {
        guard bits == 8 || bits == 4 else { throw InputError("QuantizedLinear", "\(bits)-bit weights are not supported (8 or 4)") }
        guard rows > 0, cols > 0, groupLength > 0, cols % groupLength == 0 else {
            throw InputError("QuantizedLinear", "group length \(groupLength) does not divide the width \(cols)")
        }
        inFeatures = cols; outFeatures = rows; self.bits = bits
        self.groupLength = groupLength; groupsPerRow = cols / groupLength
        self.activations = activations
        rowBytes = bits == 8 ? cols : 4 * ((cols + 7) / 8)
        guard storage.count == rows * rowBytes, let src = storage.baseAddress else {
            throw InputError("QuantizedLinear", "packed weights hold \(storage.count) bytes, expected \(rows * rowBytes) for \(rows)×\(cols) at \(bits) bits")
        }
        guard scales.count == rows * groupsPerRow, zeroPoints.map({ $0.count == scales.count }) ?? true else {
            throw InputError("QuantizedLinear", "scales hold \(scales.count) values, expected \(rows * groupsPerRow)")
        }
        if bits == 4, let bad = zeroPoints?.first(where: { $0 < -8 || $0 > 7 }) {
            throw InputError("QuantizedLinear", "4-bit zero point \(bad) is outside [-8, 7]")
        }
        guard bias.map({ $0.count == rows }) ?? true else {
            throw InputError("QuantizedLinear", "bias holds \(bias?.count ?? 0) values, expected \(rows)")
        }
        if let owner, Int(bitPattern: src) % 4 == 0 {
            data = storage
            self.owner = owner
        } else {
            let raw = UnsafeMutableRawBufferPointer.allocate(byteCount: storage.count, alignment: 64)
            raw.copyMemory(from: storage)
            data = UnsafeRawBufferPointer(raw)
            self.owner = nil
        }
        scaleCount = scales.count
        if bits == 4 && ScaleType.fitsFloat16(scales) {
            let b = UnsafeMutableBufferPointer<Float16>.allocate(capacity: scales.count)
            for (i, s) in scales.enumerated() { b[i] = Float16(s) }
            scales16 = b; scales32 = nil
        } else {
            let b = UnsafeMutableBufferPointer<Float>.allocate(capacity: scales.count)
            _ = b.initialize(from: scales)
            scales32 = b; scales16 = nil
        }
        if let z = zeroPoints, bits == 4 {
            let b = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: (z.count + 1) / 2)
            b.initialize(repeating: 0)
            for (i, v) in z.enumerated() { b[i >> 1] |= UInt8(Int(v) + 8) << UInt8((i & 1) * 4) }
            zeros4 = b; zeros = nil
        } else if let z = zeroPoints {
            let b = UnsafeMutableBufferPointer<Int8>.allocate(capacity: z.count)
            _ = b.initialize(from: z)
            zeros = b; zeros4 = nil
        } else { zeros = nil; zeros4 = nil }
        self.bias = bias.map { FloatStorage($0) }
    }

    deinit {
        if owner == nil { data.deallocate() }
        scales32?.deallocate(); scales16?.deallocate(); zeros?.deallocate(); zeros4?.deallocate()
    }

    /// True when the codes are a zero-copy view into a mapped file.
    public var isMapped: Bool { owner != nil }

    public var residentBytes: Int {
        data.count + scaleCount * (scales16 == nil ? 4 : 2) + (zeros?.count ?? 0) + (zeros4?.count ?? 0) + (bias?.count ?? 0) * 4
    }

    public var weightStorage: LinearWeightStorage { .quantized(bits: bits) }

    /// W[rows, :] dequantized, (q − z)·scale.
    public func weightRows(_ rows: Range<Int>, into out: UnsafeMutablePointer<Float>) throws { dequantize(rows: rows, into: out) }

    /// True when the scales are held as float16.
    public var hasFloat16Scales: Bool { scales16 != nil }

    /// Scale i as float32.
    @inline(__always) private func scale(_ i: Int) -> Float {
        if let s = scales16 { return Float(s[i]) }
        return scales32![i]
    }

    /// Scales i ..< i + n as float32: a pointer into the float32 storage, or `tmp` (room for n)
    /// filled from the float16 storage.
    @inline(__always) private func scales(from i: Int, count n: Int, tmp: UnsafeMutablePointer<Float>) -> UnsafePointer<Float> {
        if let s = scales16 {
            s.baseAddress!.withMemoryRebound(to: UInt16.self, capacity: scaleCount) { gpk_f16_to_f32($0 + i, tmp, n) }
            return UnsafePointer(tmp)
        }
        return UnsafePointer(scales32!.baseAddress! + i)
    }

    /// Zero point i (0 for a symmetric layer).
    @inline(__always) private func zero(_ i: Int) -> Int8 {
        if let z = zeros4 { return Int8(truncatingIfNeeded: Int((z[i >> 1] >> UInt8((i & 1) * 4)) & 0xF) - 8) }
        return zeros?[i] ?? 0
    }

    /// Zero points i ..< i + n as int8: a pointer into the 8-bit storage, or `tmp` (room for n)
    /// filled from the nibbles; nil for a symmetric layer.
    private func zeroPoints(from i: Int, count n: Int, tmp: UnsafeMutablePointer<Int8>) -> UnsafePointer<Int8>? {
        if let z = zeros { return UnsafePointer(z.baseAddress! + i) }
        guard zeros4 != nil else { return nil }
        for j in 0 ..< n { tmp[j] = zero(i + j) }
        return UnsafePointer(tmp)
    }

    /// True when the layer has a zero point per group (asymmetric scheme).
    public var isAsymmetric: Bool { zeros != nil || zeros4 != nil }

    /// The codes, scales and zero points this layer was built from, in `scheme`'s layout (one
    /// scale for a per-tensor scheme): what a writer stores. Exact: codes and zero points are
    /// integers, and float16-held scales were float16 values to begin with. An error when the
    /// layer does not have `scheme`'s bits, group length or symmetry.
    public func quantizedTensor(scheme: QuantScheme) throws -> QuantizedTensor {
        guard scheme.bits == bits, scheme.groupLength(cols: inFeatures) == groupLength, scheme.symmetric == !isAsymmetric else {
            throw InputError("QuantizedLinear", "\(outFeatures)×\(inFeatures) \(bits)-bit layer (groups of \(groupLength)) is not stored as \(scheme.bits)-bit \(scheme.granularity.rawValue)")
        }
        var codes = [Int8](repeating: 0, count: outFeatures * inFeatures)
        codes.withUnsafeMutableBufferPointer { self.codes(rows: 0 ..< outFeatures, into: $0.baseAddress!) }
        let n = scheme.granularity == .tensor ? 1 : scaleCount
        return QuantizedTensor(scheme: scheme, rows: outFeatures, cols: inFeatures, codes: codes,
                               scales: (0 ..< n).map(scale), zeroPoints: isAsymmetric ? (0 ..< n).map(zero) : nil)
    }

    // MARK: - Unpacking

    /// Codes of rows r0..<r1 as int8, (r1−r0, in) row-major.
    public func codes(rows r: Range<Int>, into out: UnsafeMutablePointer<Int8>) {
        let n = inFeatures
        if bits == 8 {
            let src = data.baseAddress!.assumingMemoryBound(to: Int8.self)
            (out).update(from: src + r.lowerBound * n, count: r.count * n)
            return
        }
        let wpr = rowBytes / 4
        let words = data.baseAddress!.assumingMemoryBound(to: UInt32.self)
        for (i, row) in r.enumerated() {
            let w = words + row * wpr
            let o = out + i * n
            var c = 0
            for j in 0 ..< wpr {
                var v = UInt32(littleEndian: w[j])
                let end = Swift.min(8, n - c)
                for _ in 0 ..< end {
                    o[c] = Int8(truncatingIfNeeded: Int32(v & 0xF) - 8)
                    v >>= 4; c += 1
                }
            }
        }
    }

    /// W[r0..<r1, :] ≈ (q − z)·scale as float32, (r1−r0, in) row-major; with `unitScale`, the
    /// integer codes q − z alone (exact in float32 and bf16).
    public func dequantize(rows r: Range<Int>, into out: UnsafeMutablePointer<Float>, unitScale: Bool = false) {
        let n = inFeatures, gl = groupLength, gpr = groupsPerRow
        if n % 8 == 0 && gl % 8 == 0 {
            // Vector kernels (CKernels), 8 columns per step; offsets as floats per row.
            withUnsafeTemporaryAllocation(of: Float.self, capacity: 3 * gpr) { buf in
                let off = buf.baseAddress!, ones = off + gpr, tmp = ones + gpr
                ones.initialize(repeating: 1, count: gpr)
                let base: Float = bits == 4 ? 8 : 0
                for (i, row) in r.enumerated() {
                    for g in 0 ..< gpr { off[g] = base + Float(zero(row * gpr + g)) }
                    let sc = unitScale ? UnsafePointer(ones) : scales(from: row * gpr, count: gpr, tmp: tmp)
                    if bits == 8 {
                        gpk_dequant_s8_row(out + i * n, data.baseAddress!.assumingMemoryBound(to: Int8.self) + row * n,
                                           sc, off, n, gl)
                    } else {
                        gpk_dequant_u4_row(out + i * n, data.baseAddress!.assumingMemoryBound(to: UInt32.self) + row * (rowBytes / 4),
                                           sc, off, n, gl)
                    }
                }
            }
            return
        }
        if bits == 8 {
            let src = data.baseAddress!.assumingMemoryBound(to: Int8.self)
            for (i, row) in r.enumerated() {
                let q = src + row * n, o = out + i * n
                for g in 0 ..< gpr {
                    let s = unitScale ? 1 : scale(row * gpr + g), z = Float(zero(row * gpr + g))
                    for c in g * gl ..< (g + 1) * gl { o[c] = (Float(q[c]) - z) * s }
                }
            }
            return
        }
        let wpr = rowBytes / 4
        let words = data.baseAddress!.assumingMemoryBound(to: UInt32.self)
        for (i, row) in r.enumerated() {
            let w = words + row * wpr, o = out + i * n
            var c = 0
            for g in 0 ..< gpr {
                // Stored nibble u = q + 8, so w = (u − (8 + z))·s, the subtraction exact in float.
                let s = unitScale ? 1 : scale(row * gpr + g)
                let off = 8 + Float(zero(row * gpr + g))
                let end = (g + 1) * gl
                while c < end {
                    if c & 7 == 0 && c + 8 <= end {
                        var v = UInt32(littleEndian: w[c >> 3])
                        for k in 0 ..< 8 { o[c + k] = (Float(v & 0xF) - off) * s; v >>= 4 }
                        c += 8
                    } else {
                        let u = (UInt32(littleEndian: w[c >> 3]) >> UInt32(4 * (c & 7))) & 0xF
                        o[c] = (Float(u) - off) * s
                        c += 1
                    }
                }
            }
        }
    }

    // MARK: - Forward

    public func forward(_ x: UnsafePointer<Float>, rows m: Int, into out: UnsafeMutablePointer<Float>) {
        forward(x, rows: m, into: out, accumulate: false)
    }

    /// out (M, outFeatures) = x · Wᵀ + b, or with `accumulate` out += x · Wᵀ + b: a residual
    /// add, without an (M, outFeatures) temporary for float activations (AMX's epilogue or
    /// sgemm's beta = 1; int8 activations go through one).
    public func forward(_ x: UnsafePointer<Float>, rows m: Int, into out: UnsafeMutablePointer<Float>, accumulate: Bool) {
        guard m > 0 else { return }
        // Float activations start from the bias and add the product to it (sgemm's beta = 1, the
        // AMX epilogue's add): one pass less over `out` than adding the bias afterwards.
        let biasFirst = activations == .none && !accumulate && bias != nil
        switch activations {
        case .none:
            if let format = packFormat(rows: m) {
                forwardPacked(PackedInput(x, rows: m, columns: inFeatures, format: format), outputs: 0 ..< outFeatures,
                              into: out, ldo: outFeatures, accumulate: accumulate, bias: biasFirst ? bias?.pointer : nil)
            } else {
                if biasFirst, let b = bias { fillRows(out, with: b.pointer, n: m, c: outFeatures) }
                forwardDequantized(x, rows: m, into: out, accumulate: accumulate || biasFirst)
            }
        case .int8 where accumulate:
            let tmp = UnsafeMutablePointer<Float>.allocate(capacity: m * outFeatures)
            defer { tmp.deallocate() }
            forwardInt8(x, rows: m, into: tmp)
            for i in 0 ..< m * outFeatures { out[i] += tmp[i] }
        case .int8: forwardInt8(x, rows: m, into: out)
        }
        if !biasFirst { applyBias(out, rows: m, outputs: 0 ..< outFeatures, ldo: outFeatures, adding: true) }
    }

    /// Adds in place on every path (float activations: AMX's epilogue or sgemm's beta = 1).
    public func forward(_ x: UnsafePointer<Float>, rows m: Int, addingInto out: UnsafeMutablePointer<Float>) -> Bool {
        forward(x, rows: m, into: out, accumulate: true)
        return true
    }

    public var computesOutputBands: Bool { true }

    /// True for float activations on the int16 kernel or on sgemm; false where AMX tiles or the
    /// bf16 dot-product kernel take large products (their threads split each tile) and for int8
    /// activations.
    public var computesOnCallingThread: Bool { activations == .none && !usesAMX(rows: .max) && !usesBF16Dot(rows: .max) }

    /// The band's product with no parallel section: on the int16 kernel (wherever it takes large
    /// products, at any row count, so that a short last band of rows computes what the whole
    /// product computes for its rows: each row's int16 scale and sums are its own), the input
    /// packed and each tile's codes expanded on this thread; otherwise tiles dequantized one after
    /// another for sgemm. The bias in the same order as `forward`'s: written first and the
    /// product added to it, or (with `accumulate`) added after the product.
    public func forward(onCallingThread x: UnsafePointer<Float>, rows m: Int, outputs r: Range<Int>,
                        into out: UnsafeMutablePointer<Float>, ldo: Int, accumulate: Bool) {
        precondition(r.lowerBound >= 0 && r.upperBound <= outFeatures && ldo >= r.count, "QuantizedLinear: bad output band")
        precondition(computesOnCallingThread, "QuantizedLinear: no product on the calling thread for this layer's kernels")
        guard m > 0, !r.isEmpty else { return }
        let biasFirst = !accumulate && applyBias(out, rows: m, outputs: r, ldo: ldo, adding: false)
        if usesInt16Dot(rows: .max) {
            forwardInt16(PackedInput(x, rows: m, columns: inFeatures, format: .int16, threaded: false), outputs: r, into: out,
                         ldo: ldo, accumulate: accumulate || biasFirst, bias: nil, threaded: false)
        } else {
            ExpandedTiles.forwardOnCallingThread(x, rows: m, width: inFeatures, outputs: r, into: out, ldo: ldo,
                                                 accumulate: accumulate || biasFirst, tileElements: options.tileElements) { rows, dst in
                self.dequantize(rows: rows, into: dst)
            }
        }
        if accumulate { applyBias(out, rows: m, outputs: r, ldo: ldo, adding: true) }
    }

    /// out (M, r.count), stride `ldo` = x · W[r, :]ᵀ + b[r]: only the band's weight rows are
    /// dequantized (float activations) or multiplied (int8 activations).
    public func forward(_ x: UnsafePointer<Float>, rows m: Int, outputs r: Range<Int>,
                        into out: UnsafeMutablePointer<Float>, ldo: Int) {
        precondition(r.lowerBound >= 0 && r.upperBound <= outFeatures && ldo >= r.count, "QuantizedLinear: bad output band")
        guard m > 0, !r.isEmpty else { return }
        switch activations {
        case .none:
            if let format = packFormat(rows: m) {
                forwardPacked(PackedInput(x, rows: m, columns: inFeatures, format: format), outputs: r, into: out, ldo: ldo,
                              accumulate: false, bias: bias?.pointer)
                return
            }
            forwardDequantized(x, rows: m, outputs: r, into: out, ldo: ldo)
        case .int8: forwardInt8(x, rows: m, outputs: r, into: out, ldo: ldo)
        }
        applyBias(out, rows: m, outputs: r, ldo: ldo, adding: true)
    }

    /// Tile by tile: W tile (T, in) dequantized (threads split its rows), out[:, tile] = x · tileᵀ,
    /// over the output rows `band` (all by default), written with row stride `ldo`.
    private func forwardDequantized(_ x: UnsafePointer<Float>, rows m: Int, outputs band: Range<Int>? = nil,
                                    into out: UnsafeMutablePointer<Float>, ldo: Int? = nil, accumulate: Bool = false) {
        ExpandedTiles.forward(x, rows: m, width: inFeatures, outputs: band ?? 0 ..< outFeatures, into: out,
                              ldo: ldo ?? outFeatures, accumulate: accumulate, tileElements: options.tileElements) { r, dst in
            self.dequantize(rows: r, into: dst)
        }
    }

    // MARK: - Backward

    /// dx (M, in) += dy (M, out) · W with W dequantized tile by tile as in the forward (so a
    /// quantized base passes gradients to what sits below it, e.g. adapters); the codes take no
    /// gradient (`attachGradients` throws).
    public func backward(input x: UnsafePointer<Float>, outputGradient dy: UnsafePointer<Float>, rows m: Int,
                         inputGradient dx: UnsafeMutablePointer<Float>?) throws {
        guard let dx, m > 0 else { return }
        ExpandedTiles.backward(dy, rows: m, outFeatures: outFeatures, width: inFeatures, into: dx,
                               tileElements: options.tileElements) { r, dst in self.dequantize(rows: r, into: dst) }
    }

    /// Float activations packed once for AMX bf16 tiles or the bf16 dot-product kernel (x (M, in)
    /// rounded to bf16, (Mp, Kp) with Mp, Kp rounded up to 32), or for the int16 kernel (each row
    /// quantized to int16 with its scale, `qk_int16_pack_a`: Mp rounded up to 8). Several
    /// `forward(packed:outputs:into:ldo:)` calls over different output bands share it (the
    /// streaming output layer). It lives in this thread's workspace: valid until the next
    /// quantized product on the same thread packs its input.
    public struct PackedInput: PackedLinearInput {
        /// The element type of the packed rows.
        enum Format { case bf16, int16 }
        public let rows: Int
        let columns: Int
        let format: Format
        /// (Mp, Kp) bf16 (UInt16) or int16 values.
        let a: UnsafeMutableRawPointer
        /// int16: the scale of each packed row (Mp values); nil for bf16.
        let rowScale: UnsafeMutablePointer<Float>?
        /// The bf16 values (format bf16).
        var bf16: UnsafeMutablePointer<UInt16> { a.assumingMemoryBound(to: UInt16.self) }
        /// Packs on the threads together, or without `threaded` on the calling thread alone.
        init(_ x: UnsafePointer<Float>, rows m: Int, columns n: Int, format: Format = .bf16, threaded: Bool = true) {
            rows = m; columns = n; self.format = format
            let kp = (n + 31) / 32 * 32
            switch format {
            case .bf16:
                let mp = (m + 31) / 32 * 32
                let a = QuantWorkspace.current.buffer(.packedInput, bytes: mp * kp * 2).bindMemory(to: UInt16.self, capacity: mp * kp)
                self.a = UnsafeMutableRawPointer(a); rowScale = nil
                parallelFor(mp / 32, grain: 4) { blocks in
                    qk_amx_pack_a(Int64(blocks.lowerBound * 32), Int64(blocks.upperBound * 32), Int64(m), Int64(n), x, Int64(n), a)
                }
            case .int16:
                let mp = (m + 7) / 8 * 8
                let raw = QuantWorkspace.current.buffer(.packedInput, bytes: mp * kp * 2 + mp * 4)
                let a = raw.bindMemory(to: Int16.self, capacity: mp * kp)
                let rs = (raw + mp * kp * 2).bindMemory(to: Float.self, capacity: mp)
                self.a = raw; rowScale = rs
                if threaded {
                    parallelFor(mp / 8, grain: 8) { blocks in
                        qk_int16_pack_a(Int64(blocks.lowerBound * 8), Int64(blocks.upperBound * 8), Int64(m), Int64(n), x, Int64(n), a, rs)
                    }
                } else {
                    qk_int16_pack_a(0, Int64(mp), Int64(m), Int64(n), x, Int64(n), a, rs)
                }
            }
        }
    }

    /// x (M, in) packed for this layer's bf16 or int16 path (a `PackedInput`), or nil when M rows
    /// run on sgemm.
    public func packInput(_ x: UnsafePointer<Float>, rows m: Int) -> (any PackedLinearInput)? {
        packFormat(rows: m).map { PackedInput(x, rows: m, columns: inFeatures, format: $0) }
    }

    /// Another quantized layer of the same input width reads this one's packed rows when both
    /// pack M rows the same way (bf16 for AMX and the bf16 dot products alike, or int16).
    public func sharesPackedInput(with other: any LinearLayer, rows m: Int) -> Bool {
        guard let q = other as? QuantizedLinear, let f = packFormat(rows: m) else { return false }
        return q.inFeatures == inFeatures && q.packFormat(rows: m) == f
    }

    /// out (M, r.count), stride `ldo` = x · W[r, :]ᵀ + b[r] from an input `packInput` packed.
    public func forward(packed: any PackedLinearInput, outputs r: Range<Int>, into out: UnsafeMutablePointer<Float>, ldo: Int) {
        guard let p = packed as? PackedInput else { preconditionFailure("QuantizedLinear: input packed by another kind of layer") }
        precondition(p.columns == inFeatures && r.lowerBound >= 0 && r.upperBound <= outFeatures && ldo >= r.count,
                     "QuantizedLinear: bad packed input or output band")
        guard p.rows > 0, !r.isEmpty else { return }
        forwardPacked(p, outputs: r, into: out, ldo: ldo, accumulate: false, bias: bias?.pointer)
    }

    /// The bf16 paths over the output rows `band`, written with row stride `ldo`: x packed to
    /// bf16 once, then tile by tile (at most `options.tileElements` weights) the band's rows
    /// expanded 16 at a time straight into VNNI blocks (threads split the blocks) and multiplied
    /// on AMX tiles (threads split the columns) or by the AVX-512 BF16 dot-product kernel
    /// (threads split the input rows, so each reads the whole tile once from the shared cache).
    /// Rows with one scale are expanded as exact codes q − z and scaled after the product;
    /// grouped rows are expanded with their scales. With `bias` (the layer's, indexed by output
    /// row; not with `accumulate`) each output starts from its bias and the product is added to it.
    private func forwardPacked(_ packed: PackedInput, outputs band: Range<Int>,
                               into out: UnsafeMutablePointer<Float>, ldo: Int, accumulate: Bool, bias: UnsafePointer<Float>? = nil) {
        precondition(bias == nil || !accumulate, "QuantizedLinear: a bias start and an accumulating product")
        if packed.format == .int16 { forwardInt16(packed, outputs: band, into: out, ldo: ldo, accumulate: accumulate, bias: bias); return }
        var accumulate = accumulate
        if let bias {
            fillRows(out, with: bias + band.lowerBound, n: packed.rows, c: band.count, ld: ldo)
            accumulate = true
        }
        let n = inFeatures, m = packed.rows, kp = (n + 31) / 32 * 32, a = packed.bf16
        let exact = groupsPerRow == 1, amx = usesAMX(rows: m)
        let tile = Swift.max(32, Swift.min((band.count + 31) / 32 * 32, options.tileElements / n / 32 * 32))
        let b = QuantWorkspace.current.buffer(.weightTile, bytes: tile * kp * 2).bindMemory(to: UInt16.self, capacity: tile * kp)
        var r0 = band.lowerBound
        while r0 < band.upperBound {
            let r1 = Swift.min(band.upperBound, r0 + tile), t = r1 - r0
            let blocks = (t + 31) / 32 * 2
            parallelFor(blocks, grain: 4) { range in
                var w: UnsafeMutablePointer<Float>? = nil
                defer { w?.deallocate() }
                for j in range {
                    let lo = r0 + 16 * j, hi = Swift.min(r1, lo + 16), tiles = b + j * 16 * kp
                    if self.packTiles(rows: lo ..< Swift.max(lo, hi), unitScale: exact, into: tiles) { continue }
                    let rowsF = w ?? UnsafeMutablePointer<Float>.allocate(capacity: 16 * n)
                    w = rowsF
                    if lo < hi { self.dequantize(rows: lo ..< hi, into: rowsF, unitScale: exact) }
                    _ = qk_amx_pack_b16(Int64(Swift.max(0, hi - lo)), Int64(n), rowsF, Int64(n), tiles)
                }
            }
            withUnsafeTemporaryAllocation(of: Float.self, capacity: exact ? t : 0) { tmp in
                let colScale: UnsafePointer<Float>? = exact ? scales(from: r0, count: t, tmp: tmp.baseAddress!) : nil
                let c = out + (r0 - band.lowerBound)
                if amx {
                    let parts = Swift.min(activeCores, Swift.max(1, t / 64))
                    DispatchQueue.concurrentPerform(iterations: parts) { p in
                        let c0 = (t * p / parts) / 32 * 32, c1 = p == parts - 1 ? t : (t * (p + 1) / parts) / 32 * 32
                        _ = qk_amx_bf16_gemm(Int64(m), Int64(t), Int64(n), Int64(c0), Int64(c1), a, b, colScale, accumulate ? 1 : 0, c, Int64(ldo))
                    }
                } else {
                    let parts = Swift.min(activeCores, Swift.max(1, m / 64))
                    DispatchQueue.concurrentPerform(iterations: parts) { p in
                        let a0 = (m * p / parts) / 8 * 8, a1 = p == parts - 1 ? m : (m * (p + 1) / parts) / 8 * 8
                        _ = qk_bf16_gemm_scaled(Int64(m), Int64(t), Int64(n), Int64(a0), Int64(a1), a, b, colScale, accumulate ? 1 : 0, c, Int64(ldo))
                    }
                }
            }
            r0 = r1
        }
    }

    /// Weight rows `r` (at most 16; fewer leave zero rows) straight from their codes to one block
    /// of AMX tiles (`qk_amx_pack_q`, the same bits as dequantizing and packing them), with the
    /// scales applied or, with `unitScale`, the codes alone. False when the kernel does not take
    /// this layout (width not a multiple of 32, groups not a multiple of 16, no AVX-512 BF16).
    private func packTiles(rows r: Range<Int>, unitScale: Bool, into tiles: UnsafeMutablePointer<UInt16>) -> Bool {
        let n = inFeatures, gpr = groupsPerRow
        guard n % 32 == 0, groupLength % 16 == 0, r.count <= 16 else { return false }
        return withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * 16 * gpr) { buf in
            let off = buf.baseAddress!, tmp = off + 16 * gpr
            let base: Float = bits == 4 ? 8 : 0
            for i in 0 ..< r.count * gpr { off[i] = base + Float(zero(r.lowerBound * gpr + i)) }
            let sc: UnsafePointer<Float>? = unitScale || r.isEmpty ? nil : scales(from: r.lowerBound * gpr, count: r.count * gpr, tmp: tmp)
            return qk_amx_pack_q(Int64(r.count), Int64(n), Int32(bits), data.baseAddress! + r.lowerBound * rowBytes, Int64(rowBytes),
                                 sc, off, Int64(gpr), Int64(groupLength), tiles) == 0
        }
    }

    /// The int16 path over the output rows `band`, written with row stride `ldo`: x packed to int16
    /// rows once, then tile by tile (at most `options.tileElements` weights) the threads split the
    /// tile's columns in groups of 32; each expands its own columns' rows from their codes to
    /// int16 VNNI blocks with their scales (16 rows at a time) and multiplies them by every input
    /// row with `qk_int16_gemm`. One parallel section per tile, no hand-over between expanding and
    /// multiplying, and each thread's expanded blocks are still in its own cache when it reads
    /// them. The sums do not depend on the split (each output is one thread's), so every split
    /// gives the same bits. With `bias`, each thread first fills its own columns with their
    /// biases and adds the product to them. Without `threaded`, the calling thread does all of it.
    private func forwardInt16(_ packed: PackedInput, outputs band: Range<Int>, into out: UnsafeMutablePointer<Float>, ldo: Int,
                              accumulate: Bool, bias: UnsafePointer<Float>?, threaded: Bool = true) {
        let n = inFeatures, m = packed.rows, kp = (n + 31) / 32 * 32, gpr = groupsPerRow
        let a = UnsafePointer(packed.a.assumingMemoryBound(to: Int16.self)), rs = UnsafePointer(packed.rowScale!)
        let tile = Swift.max(32, Swift.min((band.count + 31) / 32 * 32, options.tileElements / n / 32 * 32))
        // The expanded codes, then their scales (tile / 16 blocks of (gpr, 16) floats).
        let codeBytes = tile * kp * 2
        let buf = QuantWorkspace.current.buffer(.weightTile, bytes: codeBytes + tile * gpr * 4)
        let b = buf.bindMemory(to: Int16.self, capacity: tile * kp)
        let s = (buf + codeBytes).bindMemory(to: Float.self, capacity: tile * gpr)
        var r0 = band.lowerBound
        while r0 < band.upperBound {
            let r1 = Swift.min(band.upperBound, r0 + tile), t = r1 - r0
            let groups = (t + 31) / 32
            // Every thread when there are rows enough (64 each); with few rows (decoding) the work is
            // mostly expanding codes, worth a thread per 64 columns.
            let parts = threaded ? Swift.min(activeCores, groups, m >= 64 * activeCores ? groups : Swift.max(1, t / 64)) : 1
            let c = out + (r0 - band.lowerBound)
            func columns(_ p: Int) {
                // Column groups g0 ..< g1: blocks 2·g0 ..< 2·g1 (a block past the tile's last row is
                // zero, as the kernel reads whole pairs of blocks).
                let g0 = groups * p / parts, g1 = groups * (p + 1) / parts
                for j in (2 * g0) ..< (2 * g1) {
                    let lo = r0 + 16 * j, hi = Swift.max(lo, Swift.min(r1, lo + 16))
                    self.packInt16(rows: lo ..< hi, into: b + j * 16 * kp, scales: s + j * 16 * gpr)
                }
                let c0 = 32 * g0, c1 = Swift.min(t, 32 * g1)
                if let bias {
                    for i in 0 ..< m { (c + i * ldo + c0).update(from: bias + r0 + c0, count: c1 - c0) }
                }
                let rc = qk_int16_gemm(Int64(m), Int64(t), Int64(n), 0, Int64(m), Int64(c0), Int64(c1), Int32(bits), a, rs, b, s,
                                       Int64(gpr), Int64(groupLength), accumulate || bias != nil ? 1 : 0, c, Int64(ldo))
                precondition(rc == 0, "QuantizedLinear: the int16 kernel refused a layout usesInt16Dot accepted")
            }
            if parts == 1 { columns(0) } else { DispatchQueue.concurrentPerform(iterations: parts, execute: columns) }
            r0 = r1
        }
    }

    /// Weight rows `r` (at most 16; fewer leave zero rows) from their codes to one int16 VNNI
    /// block and its (groupsPerRow, 16) scales (`qk_int16_pack_q`).
    private func packInt16(rows r: Range<Int>, into block: UnsafeMutablePointer<Int16>, scales s: UnsafeMutablePointer<Float>) {
        let gpr = groupsPerRow
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 16 * gpr) { sbuf in
            withUnsafeTemporaryAllocation(of: Int8.self, capacity: 16 * gpr) { zbuf in
                let sc = scales(from: r.lowerBound * gpr, count: r.count * gpr, tmp: sbuf.baseAddress!)
                let z = zeroPoints(from: r.lowerBound * gpr, count: r.count * gpr, tmp: zbuf.baseAddress!)
                let rc = qk_int16_pack_q(Int64(r.count), Int64(inFeatures), Int32(bits), data.baseAddress! + r.lowerBound * rowBytes,
                                         Int64(rowBytes), sc, z, Int64(gpr), Int64(groupLength), block, s)
                precondition(rc == 0, "QuantizedLinear: the int16 packing refused a layout usesInt16Dot accepted")
            }
        }
    }

    /// Per-token int8 activations, int8 weights, int32 accumulation, over the output rows
    /// `band` (all by default) written with row stride `ldo`.
    private func forwardInt8(_ x: UnsafePointer<Float>, rows m: Int, outputs band: Range<Int>? = nil,
                             into out: UnsafeMutablePointer<Float>, ldo: Int? = nil) {
        let n = inFeatures
        let band = band ?? 0 ..< outFeatures, ldo = ldo ?? outFeatures
        let qa = UnsafeMutablePointer<Int8>.allocate(capacity: m * n)
        let sa = UnsafeMutablePointer<Float>.allocate(capacity: m)
        defer { qa.deallocate(); sa.deallocate() }
        Int8Kernels.quantizeRows(x, rows: m, cols: n, into: qa, scales: sa)
        // Shared by every kernel call below (both threads, every 4-bit chunk): prepared once.
        let au = UnsafeMutablePointer<UInt8>.allocate(capacity: m * n)
        let asum = UnsafeMutablePointer<Int32>.allocate(capacity: m * groupsPerRow)
        defer { au.deallocate(); asum.deallocate() }
        Int8Kernels.prepare(qa, rows: m, cols: n, group: groupLength, unsigned: au, sums: asum)
        let prepared = (UnsafePointer(au), UnsafePointer(asum))
        let parts = Swift.min(activeCores, Swift.max(1, band.count / 64))
        let zp = zeros.map { UnsafePointer($0.baseAddress!) }
        let isa = self.isa, gpr = groupsPerRow
        DispatchQueue.concurrentPerform(iterations: parts) { p in
            // Weight rows a..<b; the kernel sees them as rows 0..<(b − a) and writes out's columns
            // from a − band.lowerBound on.
            let a = band.lowerBound + band.count * p / parts, b = band.lowerBound + band.count * (p + 1) / parts
            if bits == 8 {
                // 8-bit scales are always float32 (see init).
                let w = UnsafePointer(data.baseAddress!.assumingMemoryBound(to: Int8.self))
                Int8Kernels.gemm(isa: isa, m: m, n: b - a, k: n, columns: 0 ..< (b - a), a: qa, prepared: prepared, aScale: sa,
                                 b: w + a * n, bScale: UnsafePointer(scales32!.baseAddress! + a * gpr), bZero: zp.map { $0 + a * gpr },
                                 group: groupLength, c: out + (a - band.lowerBound), ldc: ldo)
            } else {
                // Unpack 256 rows at a time; pointers are shifted so the kernel sees rows 0..<t.
                let chunk = 256
                let buf = UnsafeMutablePointer<Int8>.allocate(capacity: chunk * n)
                let sbuf = UnsafeMutablePointer<Float>.allocate(capacity: chunk * gpr)
                let zbuf = UnsafeMutablePointer<Int8>.allocate(capacity: chunk * gpr)
                defer { buf.deallocate(); sbuf.deallocate(); zbuf.deallocate() }
                var r = a
                while r < b {
                    let e = Swift.min(b, r + chunk)
                    codes(rows: r ..< e, into: buf)
                    Int8Kernels.gemm(isa: isa, m: m, n: e - r, k: n, columns: 0 ..< (e - r), a: qa, prepared: prepared, aScale: sa,
                                     b: buf, bScale: self.scales(from: r * gpr, count: (e - r) * gpr, tmp: sbuf),
                                     bZero: self.zeroPoints(from: r * gpr, count: (e - r) * gpr, tmp: zbuf),
                                     group: groupLength, c: out + (r - band.lowerBound), ldc: ldo)
                    r = e
                }
            }
        }
    }
}

extension QuantizedLinear: EmbeddingRows {
    public var rowWidth: Int { inFeatures }
    public var rowCount: Int { outFeatures }
    /// Dequantizes row ids[i] of W into out row i: W (V, C) read as an embedding table.
    public func gather(_ ids: UnsafePointer<Int32>, count n: Int, into out: UnsafeMutablePointer<Float>) {
        parallelFor(n, grain: 64) { rows in
            for i in rows {
                let r = Int(ids[i])
                self.dequantize(rows: r ..< r + 1, into: out + i * self.inFeatures)
            }
        }
    }
}
