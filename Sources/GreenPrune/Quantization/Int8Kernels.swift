import CQuantKernels
import Foundation

/// Int8 × int8 → int32 kernels (the C target CQuantKernels) as the Swift side calls them.
///
/// The instruction set is chosen once at run time (`best`); tests pass each path explicitly to
/// compare them with one another and with float32.
public enum Int8Kernels {
    /// An instruction-set path of the C kernels.
    public enum ISA: Int32, CaseIterable, Sendable, CustomStringConvertible {
        case portable = 0, avx2 = 1, avx512vnni = 2
        public var description: String {
            switch self { case .portable: return "portable"; case .avx2: return "avx2"; case .avx512vnni: return "avx512-vnni" }
        }
        /// True when this CPU can run the path.
        public var isSupported: Bool { qk_isa_supported(Int32(rawValue)) != 0 }
    }

    /// The fastest path this CPU runs.
    public static var best: ISA { ISA(rawValue: qk_best_isa()) ?? .portable }

    /// Σ a[k]·b[k]; a ∈ [−127, 127].
    public static func dot(_ a: [Int8], _ b: [Int8], isa: ISA = best) -> Int32 {
        precondition(a.count == b.count)
        return qk_dot_s8(isa.rawValue, a, b, Int64(a.count))
    }

    /// Per-row symmetric int8 quantization: x (M, K) → q (M, K) ∈ [−127, 127], scale (M).
    /// Rows are split across threads; `portable` forces the plain C loop (tests compare the two).
    public static func quantizeRows(_ x: UnsafePointer<Float>, rows m: Int, cols k: Int,
                                    into q: UnsafeMutablePointer<Int8>, scales: UnsafeMutablePointer<Float>,
                                    portable: Bool = false) {
        if portable { return qk_quantize_rows_s8_portable(Int64(m), Int64(k), x, q, scales) }
        parallelFor(m, grain: Swift.max(1, (1 << 16) / Swift.max(k, 1))) { r in
            qk_quantize_rows_s8(Int64(r.count), Int64(k), x + r.lowerBound * k, q + r.lowerBound * k, scales + r.lowerBound)
        }
    }

    /// A (M, K) prepared once for every column range of a product: A + 128 as unsigned bytes
    /// (M·K) and per-group row sums (M, K/group).
    public static func prepare(_ a: UnsafePointer<Int8>, rows m: Int, cols k: Int, group: Int,
                               unsigned au: UnsafeMutablePointer<UInt8>, sums: UnsafeMutablePointer<Int32>) {
        qk_prepare_s8(Int64(m), Int64(k), Int64(group), a, au, sums)
    }

    /// C[m, n] (ldc) = aScale[m] · Σ_g bScale[n, g] · Σ_{k∈g} A[m,k]·(B[n,k] − bZero[n, g]) for n in n0..<n1.
    /// A (M, K) int8, B (N, K) int8, bScale/bZero (N, K/group); `prepared` is `prepare`'s output
    /// for A (nil: each call prepares its own).
    public static func gemm(isa: ISA = best, m: Int, n: Int, k: Int, columns: Range<Int>,
                            a: UnsafePointer<Int8>, prepared: (UnsafePointer<UInt8>, UnsafePointer<Int32>)? = nil,
                            aScale: UnsafePointer<Float>,
                            b: UnsafePointer<Int8>, bScale: UnsafePointer<Float>, bZero: UnsafePointer<Int8>?,
                            group: Int, c: UnsafeMutablePointer<Float>, ldc: Int) {
        qk_gemm_s8(isa.rawValue, Int64(m), Int64(n), Int64(k), Int64(columns.lowerBound), Int64(columns.upperBound),
                   a, prepared?.0, prepared?.1, aScale, b, bScale, bZero, Int64(group), c, Int64(ldc))
    }
}
