import Foundation

/// A float32 linear layer: y = x · Wᵀ + b through `cblas_sgemm`.
///
/// `weight` (outFeatures, inFeatures) is either a zero-copy view into a mapped safetensors
/// file or owned memory (converted from F16/BF16, or written by pruning). Pruning reads it
/// through `weight.pointer` and builds a new layer from the rows/columns it keeps.
public final class DenseLinear: LinearLayer {
    /// W (outFeatures, inFeatures), row-major.
    public let weight: FloatStorage
    /// b (outFeatures), or nil.
    public let bias: FloatStorage?
    public let inFeatures: Int
    public let outFeatures: Int
    /// dW (and db) that `backward` adds into, while attached (`attachGradients`).
    public private(set) var gradients: LinearGradients?

    /// Wraps `weight` (out·in floats) and an optional `bias` (out floats).
    public init(weight: FloatStorage, bias: FloatStorage? = nil, outFeatures: Int, inFeatures: Int) {
        precondition(weight.count == outFeatures * inFeatures, "DenseLinear: weight has \(weight.count) floats, expected \(outFeatures)×\(inFeatures)")
        precondition(bias == nil || bias!.count == outFeatures, "DenseLinear: bias size mismatch")
        self.weight = weight
        self.bias = bias
        self.outFeatures = outFeatures
        self.inFeatures = inFeatures
    }

    /// A layer owning copies of `weight` (row-major out×in) and `bias`.
    public convenience init(weight: [Float], bias: [Float]? = nil, outFeatures: Int, inFeatures: Int) {
        self.init(weight: FloatStorage(weight), bias: bias.map { FloatStorage($0) },
                  outFeatures: outFeatures, inFeatures: inFeatures)
    }

    public func forward(_ x: UnsafePointer<Float>, rows m: Int, into out: UnsafeMutablePointer<Float>) {
        guard let bias else {
            matmulLinear(out, x, weight.pointer, m: m, n: outFeatures, k: inFeatures)
            return
        }
        // The bias written first and the product added to it (beta = 1): OpenBLAS otherwise
        // clears `out` for beta = 0 and the bias is one more pass over it.
        fillRows(out, with: bias.pointer, n: m, c: outFeatures)
        matmulLinear(out, x, weight.pointer, m: m, n: outFeatures, k: inFeatures, accumulate: true)
    }

    /// out (M, r.count), stride `ldo` = x · W[r, :]ᵀ + b[r]: one sgemm on the band's rows of W.
    public func forward(_ x: UnsafePointer<Float>, rows m: Int, outputs r: Range<Int>,
                        into out: UnsafeMutablePointer<Float>, ldo: Int) {
        precondition(r.lowerBound >= 0 && r.upperBound <= outFeatures && ldo >= r.count, "DenseLinear: bad output band")
        guard m > 0, !r.isEmpty else { return }
        sgemm(transB: true, m: m, n: r.count, k: inFeatures, a: x, lda: inFeatures,
              b: weight.pointer + r.lowerBound * inFeatures, ldb: inFeatures, beta: 0, c: out, ldc: ldo)
        applyBias(out, rows: m, outputs: r, ldo: ldo, adding: true)
    }

    public var computesOutputBands: Bool { true }

    public var computesOnCallingThread: Bool { true }

    /// One sgemm on the band's rows of W, the bias (if any) written or added first on this thread.
    public func forward(onCallingThread x: UnsafePointer<Float>, rows m: Int, outputs r: Range<Int>,
                        into out: UnsafeMutablePointer<Float>, ldo: Int, accumulate: Bool) {
        precondition(r.lowerBound >= 0 && r.upperBound <= outFeatures && ldo >= r.count, "DenseLinear: bad output band")
        guard m > 0, !r.isEmpty else { return }
        let biased = applyBias(out, rows: m, outputs: r, ldo: ldo, adding: accumulate)
        sgemm(transB: true, m: m, n: r.count, k: inFeatures, a: x, lda: inFeatures,
              b: weight.pointer + r.lowerBound * inFeatures, ldb: inFeatures, beta: accumulate || biased ? 1 : 0,
              c: out, ldc: ldo)
    }

    /// out += x · Wᵀ straight from sgemm (beta = 1) when there is no bias; a biased layer adds
    /// through the caller's buffer.
    public func forward(_ x: UnsafePointer<Float>, rows m: Int, addingInto out: UnsafeMutablePointer<Float>) -> Bool {
        guard bias == nil else { return false }
        matmulLinear(out, x, weight.pointer, m: m, n: outFeatures, k: inFeatures, accumulate: true)
        return true
    }

    /// dx (M, in) += dy (M, out) · W; while gradients are attached, dW (out, in) += dyᵀ · x and
    /// db (out) += Σ_rows dy (summed row by row in order, so the result does not depend on threads).
    public func backward(input x: UnsafePointer<Float>, outputGradient dy: UnsafePointer<Float>, rows m: Int,
                         inputGradient dx: UnsafeMutablePointer<Float>?) throws {
        guard m > 0 else { return }
        matmulLinearBackward(dx, nil, dy, x, weight.pointer, m: m, n: outFeatures, k: inFeatures)
        gradients?.add(input: x, outputGradient: dy, rows: m, outFeatures: outFeatures, inFeatures: inFeatures)
    }

    public func attachGradients() throws -> LinearGradients {
        if let gradients { return gradients }
        let g = LinearGradients(outFeatures: outFeatures, inFeatures: inFeatures, bias: bias != nil)
        gradients = g
        return g
    }

    public func detachGradients() { gradients = nil }

    /// Bytes of weight and bias (mapped pages included: they are resident once touched).
    public var residentBytes: Int { weight.byteCount + (bias?.byteCount ?? 0) }

    public var weightStorage: LinearWeightStorage { .float32 }

    /// W[rows, :] copied from the storage.
    public func weightRows(_ rows: Range<Int>, into out: UnsafeMutablePointer<Float>) throws {
        precondition(rows.lowerBound >= 0 && rows.upperBound <= outFeatures, "DenseLinear: rows out of range")
        out.update(from: weight.pointer + rows.lowerBound * inFeatures, count: rows.count * inFeatures)
    }

    public var mappedBytes: Int { (weight.isMapped ? weight.byteCount : 0) + (bias.map { $0.isMapped ? $0.byteCount : 0 } ?? 0) }

    /// W (out, in) and the bias over this layer's storage, nothing copied.
    public func namedTensors(weight name: String) -> [NamedTensor]? {
        weightAndBias(NamedTensor(name: name, shape: [outFeatures, inFeatures], storage: weight))
    }
}
