import CKernels
import COpenBLAS
import Foundation

/// Thin wrappers over OpenBLAS: every matmul in GreenPrune goes through `cblas_sgemm`.
public enum BLAS {
    /// Threads OpenBLAS uses for one call.
    public static var threads: Int {
        get { Int(openblas_get_num_threads()) }
        set { openblas_set_num_threads(Int32(max(1, newValue))) }
    }

    /// When OpenBLAS runs on more than one thread, runs `body` with it on one thread per call
    /// (for callers that spread many small products over their own threads instead) and returns
    /// true; otherwise returns false without running `body`. The thread count is one setting for
    /// the whole process, so these sections run one at a time: concurrent callers (tests run in
    /// parallel) never read each other's temporary 1, take a different path for it, or restore it
    /// in the wrong order.
    public static func whileSingleThreaded(_ body: () -> Void) -> Bool {
        singleThreadedSection.lock()
        defer { singleThreadedSection.unlock() }
        let configured = threads
        guard configured > 1 else { return false }
        threads = 1
        body()
        threads = configured
        return true
    }

    private static let singleThreadedSection = NSLock()

    /// Makes OpenBLAS's idle worker threads sleep almost at once instead of spinning for about
    /// 2^28 cycles after each product (OPENBLAS_THREAD_TIMEOUT=4, unless the environment sets
    /// it). The spinning worker otherwise holds a core while GreenPrune's own threads run
    /// attention, softmax and dequantization between products (on two cores, hellaswag 300 spent
    /// 11–12 s of system time spinning). Returns whether it changed anything. Call at start-up,
    /// before other threads use BLAS.
    @discardableResult
    public static func sleepWhenIdle() -> Bool {
        gpk_blas_set_thread_timeout(4) != 0
    }
}

/// C (M, N) = alpha · op(A) · op(B) + beta · C, all row-major.
///
/// op(A) is (M, K): A is (M, K) with row stride `lda`, or (K, M) when `transA`.
/// op(B) is (K, N): B is (K, N) with row stride `ldb`, or (N, K) when `transB`.
/// An empty product (K = 0) leaves beta · C, which BLAS does not promise for K = 0.
@inline(__always)
public func sgemm(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
                  alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
                  b: UnsafePointer<Float>, ldb: Int,
                  beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
    if m == 0 || n == 0 { return }
    if k == 0 {
        for i in 0..<m {
            let row = c + i * ldc
            for j in 0..<n { row[j] = beta == 0 ? 0 : beta * row[j] }
        }
        return
    }
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
}

/// out (M, N) = x (M, K) · Wᵀ (+ out when `accumulate`), W (N, K) row-major: the Linear form.
@inline(__always)
public func matmulLinear(_ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
                         m: Int, n: Int, k: Int, accumulate: Bool = false) {
    sgemm(transB: true, m: m, n: n, k: k, a: x, lda: k, b: w, ldb: k, beta: accumulate ? 1 : 0, c: out, ldc: n)
}
