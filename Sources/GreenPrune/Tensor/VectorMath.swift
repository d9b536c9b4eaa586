/// Vectorised exp and reductions used by softmax, log-softmax and SiLU.

public typealias Vec = SIMD8<Float>

/// eˣ on 8 lanes: x = n·ln2 + r with |r| ≤ ln2/2, eʳ by the Cephes `expf` polynomial (≈1 ulp),
/// times 2ⁿ built in the exponent bits. Inputs are clamped to [-87.3, 88.7] (no inf/denormals).
@inline(__always)
public func vexp(_ x: Vec) -> Vec {
    var x = x.clamped(lowerBound: Vec(repeating: -87.3), upperBound: Vec(repeating: 88.7))
    let n = (x * 1.44269504088896341).rounded(.toNearestOrEven)
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
    let e = (SIMD8<Int32>(n, rounding: .towardZero) &+ 127) &<< 23
    return p * unsafeBitCast(e, to: Vec.self)
}

/// Scalar eˣ with the same polynomial (for tails, so results match the vector lanes).
@inline(__always)
public func sexp(_ x: Float) -> Float { vexp(Vec(repeating: x))[0] }

/// max of `n` floats (n ≥ 1).
@inline(__always)
public func vmax(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
    var m = Vec(repeating: -.infinity)
    var i = 0
    while i + 8 <= n { m = pointwiseMax(m, UnsafeRawPointer(p + i).loadUnaligned(as: Vec.self)); i += 8 }
    var r = m.max()
    while i < n { r = Swift.max(r, p[i]); i += 1 }
    return r
}

/// out[i] = exp(x[i] - shift) and returns Σ out[i] (accumulated in float, 8 lanes).
@inline(__always)
public func vexpShiftSum(_ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ n: Int, shift: Float) -> Float {
    var s = Vec.zero
    let sh = Vec(repeating: shift)
    var i = 0
    while i + 8 <= n {
        let e = vexp(UnsafeRawPointer(x + i).loadUnaligned(as: Vec.self) - sh)
        UnsafeMutableRawPointer(out + i).storeBytes(of: e, as: Vec.self)
        s += e
        i += 8
    }
    var r = s.sum()
    while i < n { let e = sexp(x[i] - shift); out[i] = e; r += e; i += 1 }
    return r
}

/// Σ exp(x[i] - shift) without storing (log-sum-exp over a vocabulary row).
@inline(__always)
public func vsumExpShift(_ x: UnsafePointer<Float>, _ n: Int, shift: Float) -> Float {
    var s0 = Vec.zero, s1 = Vec.zero
    let sh = Vec(repeating: shift)
    var i = 0
    while i + 16 <= n {
        s0 += vexp(UnsafeRawPointer(x + i).loadUnaligned(as: Vec.self) - sh)
        s1 += vexp(UnsafeRawPointer(x + i + 8).loadUnaligned(as: Vec.self) - sh)
        i += 16
    }
    var r = (s0 + s1).sum()
    while i < n { r += sexp(x[i] - shift); i += 1 }
    return r
}
