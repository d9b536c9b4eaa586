/// y = x · Wᵀ (+ b) over a batch of rows: the one operation every projection in a model does.
///
/// Dense float32 weights (`cblas_sgemm`) and quantized weights (packed int8/int4, dequantized
/// tile by tile or run through int8 kernels) both conform, so a model runs either unchanged.
public protocol LinearLayer: AnyObject {
    /// Input width (columns of W).
    var inFeatures: Int { get }
    /// Output width (rows of W).
    var outFeatures: Int { get }
    /// out (M, outFeatures) = x (M, inFeatures) · Wᵀ + bias; both row-major and contiguous.
    func forward(_ x: UnsafePointer<Float>, rows m: Int, into out: UnsafeMutablePointer<Float>)
    /// Bytes the weights (and scales, bias) occupy in memory while the model runs.
    var residentBytes: Int { get }
    /// A band of output features: out (M, r.count), row stride `ldo` ≥ r.count, =
    /// x (M, inFeatures) · W[r, :]ᵀ + bias[r]. The streaming output layer calls this one
    /// vocabulary tile at a time. The default computes every output into a temporary and copies
    /// the band; dense and weight-only quantized layers compute only the band.
    func forward(_ x: UnsafePointer<Float>, rows m: Int, outputs r: Range<Int>,
                 into out: UnsafeMutablePointer<Float>, ldo: Int)
}

extension LinearLayer {
    public func forward(_ x: UnsafePointer<Float>, rows m: Int, outputs r: Range<Int>,
                        into out: UnsafeMutablePointer<Float>, ldo: Int) {
        forwardBandThroughFullProduct(x, rows: m, outputs: r, into: out, ldo: ldo)
    }

    /// The band by way of the whole product (into a temporary), for layers that cannot compute
    /// part of their outputs.
    public func forwardBandThroughFullProduct(_ x: UnsafePointer<Float>, rows m: Int, outputs r: Range<Int>,
                                              into out: UnsafeMutablePointer<Float>, ldo: Int) {
        precondition(r.lowerBound >= 0 && r.upperBound <= outFeatures && ldo >= r.count, "LinearLayer: bad output band")
        guard m > 0, !r.isEmpty else { return }
        let all = UnsafeMutablePointer<Float>.allocate(capacity: m * outFeatures)
        defer { all.deallocate() }
        forward(x, rows: m, into: all)
        for i in 0 ..< m { (out + i * ldo).update(from: all + i * outFeatures + r.lowerBound, count: r.count) }
    }
}

/// A (V, C) table read one row per token: the token embeddings when they are kept quantized
/// (for a tied model the same table is the head, as llama.cpp's token_embd is).
public protocol EmbeddingRows: AnyObject {
    /// Row width C.
    var rowWidth: Int { get }
    /// Rows V.
    var rowCount: Int { get }
    /// out (n, C) = table rows ids[0..<n] (ids in 0..<V).
    func gather(_ ids: UnsafePointer<Int32>, count n: Int, into out: UnsafeMutablePointer<Float>)
}
