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
    /// Whether `forward(_:rows:outputs:into:ldo:)` computes only the band (dense and quantized
    /// layers) rather than the whole product: callers then split wide products into bands to keep
    /// their buffers small. False by default (e.g. calibration recorders see whole products).
    var computesOutputBands: Bool { get }
    /// out (M, outFeatures) += x (M, inFeatures) · Wᵀ + bias without a temporary of the caller's
    /// (the residual add after o_proj and down_proj), returning true; or false, leaving `out`
    /// untouched, when the layer cannot add in place (the caller adds through its own buffer).
    /// False by default.
    func forward(_ x: UnsafePointer<Float>, rows m: Int, addingInto out: UnsafeMutablePointer<Float>) -> Bool
    /// Whether M rows of input packed once by this layer (`packInput`) can also feed `other`'s
    /// products (q/k/v, gate/up): both take packed inputs of the same kind and width for M rows.
    /// False by default.
    func sharesPackedInput(with other: any LinearLayer, rows m: Int) -> Bool
    /// x (M, inFeatures) converted once for several `forward(packed:outputs:into:ldo:)` calls
    /// (quantized layers on AMX tiles round it to bf16 tiles), or nil when this layer multiplies
    /// M plain rows only. Nil by default.
    func packInput(_ x: UnsafePointer<Float>, rows m: Int) -> (any PackedLinearInput)?
    /// out (M, r.count), stride `ldo` = x · W[r, :]ᵀ + b[r] from an input packed by this layer or
    /// by one that `sharesPackedInput(with:)` this one.
    func forward(packed: any PackedLinearInput, outputs r: Range<Int>, into out: UnsafeMutablePointer<Float>, ldo: Int)
    /// Whether `forward(onCallingThread:rows:outputs:into:ldo:accumulate:)` is available: the
    /// layer can compute its product without a parallel section of its own (float32 weights on
    /// one sgemm, half-precision or quantized weights expanded tile by tile). False by default.
    var computesOnCallingThread: Bool { get }
    /// Whether the layer's products take bf16 dot products over activations rounded to bf16
    /// (bf16 weights on `KernelOptions.bf16Dot`), so what reads its outputs may round as well
    /// (`LlamaModel.attentionInBF16`). False by default.
    var multipliesInBF16: Bool { get }
    /// out (M, r.count), row stride `ldo`, = x (M, inFeatures) · W[r, :]ᵀ + b[r], or += with
    /// `accumulate`, with no work handed to other threads but OpenBLAS's own (which the caller
    /// has set to one thread): the row-band decoder's workers call it, each on its own rows.
    /// Only called when `computesOnCallingThread`.
    func forward(onCallingThread x: UnsafePointer<Float>, rows m: Int, outputs r: Range<Int>,
                 into out: UnsafeMutablePointer<Float>, ldo: Int, accumulate: Bool)
    /// Takes the kernel paths of the model that holds it (a layer with no choice of kernels
    /// ignores them).
    func adopt(_ options: KernelOptions)
    /// Backward of `forward(_:rows:into:)` for input x (M, inFeatures) and output gradient
    /// dy (M, outFeatures): adds dy · W (M, inFeatures) into dx when dx is non-nil, and adds
    /// this layer's parameter gradients into its attached gradient buffers when it has any.
    func backward(input x: UnsafePointer<Float>, outputGradient dy: UnsafePointer<Float>, rows m: Int,
                  inputGradient dx: UnsafeMutablePointer<Float>?) throws
    /// Attaches zeroed buffers for this layer's own parameter gradients (dW, and db when it has a
    /// bias), which every later `backward` adds into, and returns them (the ones already attached
    /// if any). Throws for a layer whose weights take no gradient (quantized codes; the default).
    func attachGradients() throws -> LinearGradients
    /// Stops collecting parameter gradients (`backward` then computes dx only).
    func detachGradients()
    /// b (outFeatures) as float32, or nil for a layer without one (or one that computes through
    /// another layer and holds no parameters of its own). Nil by default.
    var bias: FloatStorage? { get }
    /// How W is held: float32, bf16/f16 halves, integer codes, or not at all (`.none`, the
    /// default: a recorder or adapter wrapping another layer).
    var weightStorage: LinearWeightStorage { get }
    /// W[rows, :] as float32 into `out` ((rows.count, inFeatures) row-major): copied, halves
    /// widened, codes dequantized. Throws `linearLayerLacks` for a layer holding no weights (the
    /// default).
    func weightRows(_ rows: Range<Int>, into out: UnsafeMutablePointer<Float>) throws
    /// Bytes of weight and bias read from a mapped file without a copy (0 by default: owned or
    /// quantized storage).
    var mappedBytes: Int { get }
    /// The weight as a tensor named `weight` (a writer saves it as float32 or in its own
    /// half type), followed by the bias as `LlamaNames.bias(weight)` when there is one; nil for a
    /// layer whose weights no float writer can take (quantized codes, recorders; the default).
    func namedTensors(weight: String) -> [NamedTensor]?
}

/// How a linear layer holds its weight matrix (what `inspect` and the writers need to know).
public enum LinearWeightStorage: Equatable, Sendable {
    /// float32 (`DenseLinear`).
    case float32
    /// bfloat16 or float16 halves (`HalfLinear`), `.bf16` or `.f16`.
    case half(DType)
    /// Integer codes of `bits` bits with scales (`QuantizedLinear`).
    case quantized(bits: Int)
    /// No matrix of its own: the layer computes through another one (recorders, adapters).
    case none

    /// True for float32 and half-precision weights, the ones pruning scores and cuts.
    public var isFloat: Bool {
        switch self {
        case .float32, .half: return true
        case .quantized, .none: return false
        }
    }
}

/// A linear layer's parameter gradients, filled by `backward` while attached to the layer.
public final class LinearGradients {
    /// dW (outFeatures, inFeatures), row-major like W.
    public let weight: GradBuffer
    /// db (outFeatures), or nil for a layer without a bias.
    public let bias: GradBuffer?

    /// Zeroed buffers for an (out, in) weight, with a bias gradient when `bias`.
    public init(outFeatures: Int, inFeatures: Int, bias: Bool) {
        weight = GradBuffer(outFeatures * inFeatures)
        self.bias = bias ? GradBuffer(outFeatures) : nil
    }

    /// dW (out, in) += dyᵀ · x and db (out) += Σ_rows dy for input x (M, in) and output gradient
    /// dy (M, out) (the bias summed row by row in order, so the result does not depend on threads).
    public func add(input x: UnsafePointer<Float>, outputGradient dy: UnsafePointer<Float>, rows m: Int,
                    outFeatures: Int, inFeatures: Int) {
        sgemm(transA: true, m: outFeatures, n: inFeatures, k: m, a: dy, lda: outFeatures, b: x, ldb: inFeatures,
              beta: 1, c: weight.pointer, ldc: inFeatures)
        if let db = bias?.pointer {
            for i in 0 ..< m { let row = dy + i * outFeatures; for j in 0 ..< outFeatures { db[j] += row[j] } }
        }
    }
}

/// The error a layer without a backward (a calibration recorder) or without parameter
/// gradients (quantized codes) throws when asked for one.
public func linearLayerLacks(_ layer: any LinearLayer, _ what: String) -> InputError {
    InputError("\(type(of: layer))", "\(layer.outFeatures)×\(layer.inFeatures) layer has no \(what)")
}

/// An input a linear layer converted once so that several of its products (or those of layers
/// that share its packed inputs) read it without converting it again.
public protocol PackedLinearInput {
    /// Rows M of the input.
    var rows: Int { get }
}

extension LinearLayer {
    public var computesOutputBands: Bool { false }

    public func adopt(_ options: KernelOptions) {}

    public func backward(input x: UnsafePointer<Float>, outputGradient dy: UnsafePointer<Float>, rows m: Int,
                         inputGradient dx: UnsafeMutablePointer<Float>?) throws {
        throw linearLayerLacks(self, "backward")
    }

    public func attachGradients() throws -> LinearGradients { throw linearLayerLacks(self, "weight gradient") }

    public func detachGradients() {}

    public var bias: FloatStorage? { nil }

    public var weightStorage: LinearWeightStorage { .none }

    public func weightRows(_ rows: Range<Int>, into out: UnsafeMutablePointer<Float>) throws {
        throw linearLayerLacks(self, "weights of its own to read")
    }

    public var mappedBytes: Int { 0 }

    public func namedTensors(weight: String) -> [NamedTensor]? { nil }

    /// `weight` and the bias (if any) as tensors: what `namedTensors(weight:)` returns for layers
    /// whose weight tensor is `w`.
    func weightAndBias(_ w: NamedTensor) -> [NamedTensor] {
        [w] + (bias.map { [NamedTensor(name: LlamaNames.bias(w.name), shape: [$0.count], storage: $0)] } ?? [])
    }

    public func forward(_ x: UnsafePointer<Float>, rows m: Int, addingInto out: UnsafeMutablePointer<Float>) -> Bool { false }

    public func sharesPackedInput(with other: any LinearLayer, rows m: Int) -> Bool { false }

    public func packInput(_ x: UnsafePointer<Float>, rows m: Int) -> (any PackedLinearInput)? { nil }

    public func forward(packed: any PackedLinearInput, outputs r: Range<Int>, into out: UnsafeMutablePointer<Float>, ldo: Int) {
        preconditionFailure("\(Self.self) packs no inputs: forward(packed:) needs an input from packInput")
    }

    public var computesOnCallingThread: Bool { false }

    public var multipliesInBF16: Bool { false }

    public func forward(onCallingThread x: UnsafePointer<Float>, rows m: Int, outputs r: Range<Int>,
                        into out: UnsafeMutablePointer<Float>, ldo: Int, accumulate: Bool) {
        preconditionFailure("\(Self.self) has no product on the calling thread (computesOnCallingThread is false)")
    }

    /// The whole product on the calling thread: out (M, outFeatures) = x · Wᵀ + b, or += with
    /// `accumulate` (see `forward(onCallingThread:rows:outputs:into:ldo:accumulate:)`).
    public func forward(onCallingThread x: UnsafePointer<Float>, rows m: Int, into out: UnsafeMutablePointer<Float>,
                 accumulate: Bool = false) {
        forward(onCallingThread: x, rows: m, outputs: 0 ..< outFeatures, into: out, ldo: outFeatures, accumulate: accumulate)
    }

    /// b[r] written into (`adding` false) or added to each of the M rows of out (M, r.count),
    /// row stride `ldo`, on the calling thread: the bias after a product, or before one that adds
    /// into `out` (sgemm's beta = 1). Returns whether the layer has a bias (without one, `out` is
    /// untouched).
    @discardableResult
    func applyBias(_ out: UnsafeMutablePointer<Float>, rows m: Int, outputs r: Range<Int>, ldo: Int, adding: Bool) -> Bool {
        guard let bias else { return false }
        let b = bias.pointer + r.lowerBound
        for i in 0 ..< m {
            let o = out + i * ldo
            if adding { for j in 0 ..< r.count { o[j] += b[j] } } else { o.update(from: b, count: r.count) }
        }
        return true
    }

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
