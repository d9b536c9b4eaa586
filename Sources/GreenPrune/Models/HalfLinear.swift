import CKernels
import CQuantKernels
import Foundation

/// y = x · Wᵀ + b with W kept as bfloat16 or IEEE float16: a zero-copy view into a mapped
/// safetensors file, or halves this layer owns (rounded from float32 to nearest even).
///
/// The products expand W to float32 a tile of rows at a time (`ExpandedTiles`, the loop
/// `QuantizedLinear` uses) and run `cblas_sgemm`, so the result is the float32 product of the
/// half-precision values and the float weights never exist in full; or, for bf16 weights with
/// `options.bf16Dot` on a CPU with AVX-512 BF16, the activations are rounded to bf16 once and
/// multiplied by VNNI-packed weight tiles with float32 sums (`usesBF16Dot`). The same table read one row
/// at a time is an embedding (`EmbeddingRows`), so a tied model's table and head stay in half
/// precision too.
public final class HalfLinear: LinearLayer {
    /// `.bf16` or `.f16`.
    public let dtype: DType
    public let inFeatures: Int
    public let outFeatures: Int
    /// b (outFeatures) as float32, or nil.
    public let bias: FloatStorage?
    /// W (outFeatures, inFeatures) as half bit patterns, row-major.
    private let halves: UnsafePointer<UInt16>
    /// The mapped file `halves` points into, or nil when the layer owns them.
    private let mapping: MappedFile?
    /// Which kernel paths this layer takes (the expansion tile size); a model sets it on its layers.
    public var options = KernelOptions.standard
    /// dW (and db) that `backward` adds into, while attached (`attachGradients`).
    public private(set) var gradients: LinearGradients?

    /// A view of `bytes` (outFeatures·inFeatures halves of `dtype`) inside `mapping` when they are
    /// 2-byte aligned; otherwise (or without a mapping) a copy the layer owns.
    public init(dtype: DType, bytes: UnsafeRawBufferPointer, mapping: MappedFile?, bias: FloatStorage? = nil,
                outFeatures: Int, inFeatures: Int) throws {
        guard dtype == .bf16 || dtype == .f16 else { throw InputError("HalfLinear", "weights must be BF16 or F16, not \(dtype.rawValue)") }
        guard bytes.count == outFeatures * inFeatures * 2, outFeatures * inFeatures > 0, let base = bytes.baseAddress else {
            throw InputError("HalfLinear", "weights hold \(bytes.count) bytes, expected \(outFeatures)×\(inFeatures) halves")
        }
        guard bias.map({ $0.count == outFeatures }) ?? true else {
            throw InputError("HalfLinear", "bias holds \(bias?.count ?? 0) values, expected \(outFeatures)")
        }
        self.dtype = dtype
        self.outFeatures = outFeatures
        self.inFeatures = inFeatures
        self.bias = bias
        if let mapping, Int(bitPattern: base) % 2 == 0 {
            halves = base.assumingMemoryBound(to: UInt16.self)
            self.mapping = mapping
        } else {
            let copy = UnsafeMutableRawPointer.allocate(byteCount: bytes.count, alignment: 64)
            copy.copyMemory(from: base, byteCount: bytes.count)
            halves = UnsafePointer(copy.assumingMemoryBound(to: UInt16.self))
            self.mapping = nil
        }
    }

    /// A layer owning `weight` (outFeatures·inFeatures floats, row-major) rounded to `dtype`
    /// (round to nearest even).
    public convenience init(dtype: DType, rounding weight: UnsafePointer<Float>, bias: FloatStorage? = nil,
                            outFeatures: Int, inFeatures: Int) throws {
        let n = outFeatures * inFeatures
        let tmp = UnsafeMutablePointer<UInt16>.allocate(capacity: max(n, 1))
        defer { tmp.deallocate() }
        roundToHalf(weight, count: n, dtype: dtype, into: tmp)
        try self.init(dtype: dtype, bytes: UnsafeRawBufferPointer(start: tmp, count: 2 * n), mapping: nil, bias: bias,
                      outFeatures: outFeatures, inFeatures: inFeatures)
    }

    deinit { if mapping == nil { halves.deallocate() } }

    /// True when the halves are a zero-copy view into a mapped file.
    public var isMapped: Bool { mapping != nil }

    /// Halves of W plus the float32 bias (mapped pages included: they are resident once touched).
    public var residentBytes: Int { outFeatures * inFeatures * 2 + (bias?.byteCount ?? 0) }

    public var weightStorage: LinearWeightStorage { .half(dtype) }

    /// W[rows, :] widened to float32 (exact).
    public func weightRows(_ rows: Range<Int>, into out: UnsafeMutablePointer<Float>) throws { expand(rows: rows, into: out) }

    public var mappedBytes: Int {
        (isMapped ? 2 * outFeatures * inFeatures : 0) + (bias.map { $0.isMapped ? $0.byteCount : 0 } ?? 0)
    }

    /// W as its own halves (`NamedTensor(name:halves:)`) and the float32 bias.
    public func namedTensors(weight name: String) -> [NamedTensor]? { weightAndBias(NamedTensor(name: name, halves: self)) }

    public func adopt(_ options: KernelOptions) { if self.options != options { self.options = options } }

    /// W[r, :] as float32 into `out` ((r.count, in) row-major), exact.
    public func expand(rows r: Range<Int>, into out: UnsafeMutablePointer<Float>) {
        precondition(r.lowerBound >= 0 && r.upperBound <= outFeatures, "HalfLinear: rows out of range")
        let src = halves + r.lowerBound * inFeatures, n = r.count * inFeatures
        if dtype == .bf16 { gpk_bf16_to_f32(src, out, n) } else { gpk_f16_to_f32(src, out, n) }
    }

    /// W's half bit patterns ((out, in) row-major, `dtype`), for a reader that copies or cuts
    /// them without widening (a writer storing the same type); valid only inside `body`.
    public func withHalves<R>(_ body: (UnsafePointer<UInt16>) throws -> R) rethrows -> R {
        try withExtendedLifetime(self) { try body(halves) }
    }

    // MARK: - Forward

    public func forward(_ x: UnsafePointer<Float>, rows m: Int, into out: UnsafeMutablePointer<Float>) {
        forward(x, rows: m, outputs: 0 ..< outFeatures, into: out, ldo: outFeatures, accumulate: false)
    }

    /// out (M, r.count), stride `ldo` = x · W[r, :]ᵀ + b[r]: only the band's rows are expanded.
    public func forward(_ x: UnsafePointer<Float>, rows m: Int, outputs r: Range<Int>,
                        into out: UnsafeMutablePointer<Float>, ldo: Int) {
        precondition(r.lowerBound >= 0 && r.upperBound <= outFeatures && ldo >= r.count, "HalfLinear: bad output band")
        forward(x, rows: m, outputs: r, into: out, ldo: ldo, accumulate: false)
    }

    public var computesOutputBands: Bool { true }

    /// True unless the products take the bf16 dot-product kernel, whose threads split each tile.
    public var computesOnCallingThread: Bool { !takesBF16Dot }

    /// The band's rows expanded one tile after another into this thread's workspace, each tile
    /// multiplied by one sgemm, the bias (if any) written or added first: the float32 product of
    /// the halves, as `forward` computes it on sgemm.
    public func forward(onCallingThread x: UnsafePointer<Float>, rows m: Int, outputs r: Range<Int>,
                        into out: UnsafeMutablePointer<Float>, ldo: Int, accumulate: Bool) {
        precondition(r.lowerBound >= 0 && r.upperBound <= outFeatures && ldo >= r.count, "HalfLinear: bad output band")
        guard m > 0, !r.isEmpty else { return }
        let biased = applyBias(out, rows: m, outputs: r, ldo: ldo, adding: accumulate)
        ExpandedTiles.forwardOnCallingThread(x, rows: m, width: inFeatures, outputs: r, into: out, ldo: ldo,
                                             accumulate: accumulate || biased, tileElements: options.tileElements) { rows, dst in
            self.expand(rows: rows, into: dst)
        }
    }

    /// out += x · Wᵀ + b in place (sgemm's beta = 1, then the bias).
    public func forward(_ x: UnsafePointer<Float>, rows m: Int, addingInto out: UnsafeMutablePointer<Float>) -> Bool {
        forward(x, rows: m, outputs: 0 ..< outFeatures, into: out, ldo: outFeatures, accumulate: true)
        return true
    }

    private func forward(_ x: UnsafePointer<Float>, rows m: Int, outputs r: Range<Int>,
                         into out: UnsafeMutablePointer<Float>, ldo: Int, accumulate: Bool) {
        guard m > 0, !r.isEmpty else { return }
        if usesBF16Dot(rows: m) {
            forwardBF16Dot(QuantizedLinear.PackedInput(x, rows: m, columns: inFeatures), outputs: r, into: out, ldo: ldo, accumulate: accumulate)
        } else {
            ExpandedTiles.forward(x, rows: m, width: inFeatures, outputs: r, into: out, ldo: ldo, accumulate: accumulate,
                                  tileElements: options.tileElements) { rows, dst in self.expand(rows: rows, into: dst) }
        }
        applyBias(out, rows: m, outputs: r, ldo: ldo, adding: true)
    }

    // MARK: - bf16 dot products

    /// Fewest input rows for the dot-product path (one 8-row block of the kernel).
    public static let bf16DotMinRows = 8

    /// True when `m` rows multiply on AVX-512 BF16 dot products: bf16 weights, the option on,
    /// the CPU able. The activations are then rounded to bf16 (a tolerance path: products of
    /// rounded inputs, float32 sums), not exact as the sgemm path is.
    public func usesBF16Dot(rows m: Int) -> Bool {
        takesBF16Dot && m >= Self.bf16DotMinRows
    }

    /// bf16 weights, the option on, the CPU able: products of `bf16DotMinRows` rows or more run
    /// on the dot-product kernel.
    private var takesBF16Dot: Bool { dtype == .bf16 && options.bf16Dot && KernelOptions.bf16DotAvailable }

    public var multipliesInBF16: Bool { takesBF16Dot }

    /// x (M, in) rounded to bf16 once (`QuantizedLinear.PackedInput`, the AMX layout) for several
    /// products on the dot-product path, or nil when M rows do not take it.
    public func packInput(_ x: UnsafePointer<Float>, rows m: Int) -> (any PackedLinearInput)? {
        usesBF16Dot(rows: m) ? QuantizedLinear.PackedInput(x, rows: m, columns: inFeatures) : nil
    }

    /// Another bf16 layer of the same width reads this one's packed rows when both take the
    /// dot-product path for M rows (q/k/v, gate/up).
    public func sharesPackedInput(with other: any LinearLayer, rows m: Int) -> Bool {
        guard let h = other as? HalfLinear else { return false }
        return h.inFeatures == inFeatures && usesBF16Dot(rows: m) && h.usesBF16Dot(rows: m)
    }

    public func forward(packed: any PackedLinearInput, outputs r: Range<Int>, into out: UnsafeMutablePointer<Float>, ldo: Int) {
        guard let p = packed as? QuantizedLinear.PackedInput, p.format == .bf16, p.columns == inFeatures else {
            preconditionFailure("HalfLinear: input packed by another kind of layer")
        }
        precondition(r.lowerBound >= 0 && r.upperBound <= outFeatures && ldo >= r.count, "HalfLinear: bad output band")
        guard p.rows > 0, !r.isEmpty else { return }
        forwardBF16Dot(p, outputs: r, into: out, ldo: ldo, accumulate: false)
        applyBias(out, rows: p.rows, outputs: r, ldo: ldo, adding: true)
    }

    /// Tile by tile over the band (at most `options.tileElements` weights, whole 32-row blocks):
    /// the tile's bf16 rows packed into VNNI blocks (threads split the blocks), then multiplied
    /// with the packed input (threads split the rows of the input).
    private func forwardBF16Dot(_ p: QuantizedLinear.PackedInput, outputs band: Range<Int>,
                                into out: UnsafeMutablePointer<Float>, ldo: Int, accumulate: Bool) {
        let n = inFeatures, m = p.rows, kp = (n + 31) / 32 * 32
        let tile = Swift.max(32, Swift.min((band.count + 31) / 32 * 32, options.tileElements / n / 32 * 32))
        let b = QuantWorkspace.current.buffer(.weightTile, bytes: tile * kp * 2).bindMemory(to: UInt16.self, capacity: tile * kp)
        var r0 = band.lowerBound
        while r0 < band.upperBound {
            let r1 = Swift.min(band.upperBound, r0 + tile), t = r1 - r0
            let blocks = (t + 31) / 32 * 2
            parallelFor(blocks, grain: 8) { js in
                qk_bf16_pack_b(Int64(js.lowerBound), Int64(js.upperBound), Int64(t), Int64(n), self.halves + r0 * n, Int64(n), b)
            }
            let c = out + (r0 - band.lowerBound)
            let parts = Swift.min(activeCores, Swift.max(1, m / 64))
            DispatchQueue.concurrentPerform(iterations: parts) { q in
                let a0 = (m * q / parts) / 8 * 8, a1 = q == parts - 1 ? m : (m * (q + 1) / parts) / 8 * 8
                _ = qk_bf16_gemm(Int64(m), Int64(t), Int64(n), Int64(a0), Int64(a1), p.bf16, b, accumulate ? 1 : 0, c, Int64(ldo))
            }
            r0 = r1
        }
    }

    // MARK: - Backward

    /// dx (M, in) += dy (M, out) · W through expanded tiles; while gradients are attached,
    /// dW (out, in) += dyᵀ · x and db += Σ_rows dy, in float32 (the halves take no update here:
    /// the gradient is what importance scores read).
    public func backward(input x: UnsafePointer<Float>, outputGradient dy: UnsafePointer<Float>, rows m: Int,
                         inputGradient dx: UnsafeMutablePointer<Float>?) throws {
        guard m > 0 else { return }
        if let dx {
            ExpandedTiles.backward(dy, rows: m, outFeatures: outFeatures, width: inFeatures, into: dx,
                                   tileElements: options.tileElements) { rows, dst in self.expand(rows: rows, into: dst) }
        }
        gradients?.add(input: x, outputGradient: dy, rows: m, outFeatures: outFeatures, inFeatures: inFeatures)
    }

    public func attachGradients() throws -> LinearGradients {
        if let gradients { return gradients }
        let g = LinearGradients(outFeatures: outFeatures, inFeatures: inFeatures, bias: bias != nil)
        gradients = g
        return g
    }

    public func detachGradients() { gradients = nil }
}

extension HalfLinear: EmbeddingRows {
    public var rowWidth: Int { inFeatures }
    public var rowCount: Int { outFeatures }

    /// out row i = W[ids[i], :] as float32. Mapped rows are read with pread, not through the
    /// mapping, so scattered lookups do not fault in the pages around each row (see
    /// `FloatStorage.gatherRows`).
    public func gather(_ ids: UnsafePointer<Int32>, count n: Int, into out: UnsafeMutablePointer<Float>) {
        let c = inFeatures
        withUnsafeTemporaryAllocation(of: UInt16.self, capacity: c) { row in
            for i in 0 ..< n {
                let id = Int(ids[i]), src = halves + id * c
                var from = UnsafePointer(src)
                if let mapping, let base = mapping.base,
                   mapping.read(row.baseAddress!, count: 2 * c, at: UnsafeRawPointer(src) - base) {
                    from = UnsafePointer(row.baseAddress!)
                }
                if dtype == .bf16 { gpk_bf16_to_f32(from, out + i * c, c) } else { gpk_f16_to_f32(from, out + i * c, c) }
            }
        }
    }
}

/// dst[i] = `dtype` (BF16 or F16) bits of src[i], rounded to nearest even (NaN stays NaN).
public func roundToHalf(_ src: UnsafePointer<Float>, count n: Int, dtype: DType, into dst: UnsafeMutablePointer<UInt16>) {
    if dtype == .bf16 {
        for i in 0 ..< n { dst[i] = floatToBF16(src[i]) }
    } else {
        for i in 0 ..< n { dst[i] = floatToHalf(src[i]) }
    }
}
