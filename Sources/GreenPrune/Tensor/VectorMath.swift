/// Vectorised exp and reductions used by softmax, log-softmax and SiLU. The row loops run in
/// C (Sources/CKernels, compiled per instruction set) because Swift's generic SIMD lowering of
/// unaligned loads and lane-wise min/max is several times slower; `vexp` stays for Swift callers.
import CKernels

public typealias Vec = SIMD8<Float>

/// eˣ on 8 lanes: x = n·ln2 + r with |r| ≤ ln2/2, eʳ by the Cephes `expf` polynomial (≈1 ulp),
/// times 2ⁿ built in the exponent bits. Inputs are clamped to [-87.3, 88.3] so 2ⁿ stays a normal
/// float (no inf, no denormals); e⁸⁸·³ ≈ 2¹²⁷·⁴ is near FLT_MAX anyway.
@inline(__always)
public func vexp(_ x: Vec) -> Vec {
    // min/max and the 1.5·2²³ rounding trick instead of clamped()/rounded(), which Swift
    // lowers to slow per-lane code.
    var x = x.replacing(with: Vec(repeating: -87.3), where: x .< -87.3)
    x = x.replacing(with: Vec(repeating: 88.3), where: x .> 88.3)
    let shifted = x * 1.44269504088896341 + 12582912.0
    let n = shifted - 12582912.0
    x = x - n * 0.693359375          // ln2 split in two for an exact reduction
    x = x + n * 2.12194440e-4
    let z = x * x
    var p: Vec = Vec(repeating: 1.9875691500e-4)
    p = p * x + 1.3981999507e-3
    p = p * x + 8.3334519073e-3
    p = p * x + 4.1665795894e-2
    p = p * x + 1.6666665459e-1
    p = p * x + 5.0000001201e-1
    p = p * z + x + 1
    // 2ⁿ: shifted's bits hold 0x4B400000 + n; move n (biased) into the exponent field.
    let bits = unsafeBitCast(shifted, to: SIMD8<UInt32>.self) &- 0x4B40_0000 &+ 127
    return p * unsafeBitCast(bits &<< 23, to: Vec.self)
}

/// Scalar eˣ with the same polynomial as the vector kernels.
@inline(__always)
public func sexp(_ x: Float) -> Float { gpk_exp(x) }

/// max of `n` floats (n ≥ 1).
@inline(__always)
public func vmax(_ p: UnsafePointer<Float>, _ n: Int) -> Float { gpk_max(p, n) }

/// out[i] = exp(x[i] - shift) and returns Σ out[i] (8-lane partial sums). `out` may equal `x`.
@inline(__always)
public func vexpShiftSum(_ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ n: Int, shift: Float) -> Float {
    gpk_exp_shift_sum(out, x, n, shift)
}

/// Σ exp(x[i] - shift) without storing (log-sum-exp over a vocabulary row).
@inline(__always)
public func vsumExpShift(_ x: UnsafePointer<Float>, _ n: Int, shift: Float) -> Float {
    gpk_sum_exp_shift(x, n, shift)
}

/// x[i] *= a over `n` floats.
@inline(__always)
public func vscale(_ x: UnsafeMutablePointer<Float>, _ n: Int, _ a: Float) { gpk_scale(x, n, a) }
