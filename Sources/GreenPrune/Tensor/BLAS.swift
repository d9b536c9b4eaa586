import CKernels
import COpenBLAS
import Foundation

/// Thin wrappers over OpenBLAS: every matmul in GreenPrune goes through `cblas_sgemm`.
public enum BLAS {
    /// Threads OpenBLAS uses for a product outside a single-threaded section: OpenBLAS's own
    /// setting at start-up (OPENBLAS_NUM_THREADS, or the cores) until set here. A section's
    /// temporary one is not seen here, and setting it waits for running products and sections.
    public static var threads: Int {
        get {
            let c = gpk_blas_configured_threads()
            return c > 0 ? Int(c) : startupThreads
        }
        set {
            let n = max(1, newValue)
            // Inside a section the new count takes effect when the section ends.
            let exclusive = gpk_blas_section_begin() != 0
            gpk_blas_set_configured_threads(Int32(n))
            if exclusive {
                openblas_set_num_threads(Int32(n))
                gpk_blas_section_end()
            }
        }
    }

    /// OpenBLAS's thread count before any section or setter changed it (read on first use;
    /// every section reads `threads` before it sets one thread).
    private static let startupThreads = Int(openblas_get_num_threads())

    /// When OpenBLAS runs on more than one thread, runs `body(worker)` for workers
    /// 0..<`workers` on threads of their own (`DispatchQueue.concurrentPerform`), with OpenBLAS
    /// on one thread per call, and returns true: for callers that spread many small products
    /// over their own threads. Otherwise (one thread configured, one worker asked for, or called
    /// from a worker of another section) returns false without running `body`, and the caller
    /// takes its serial path.
    ///
    /// The thread count is one setting for the whole process, and on AVX2 OpenBLAS rounds a
    /// product differently on one thread than on several. So a section excludes every product
    /// outside it (`sgemm` waits for the section to end, and the section for running products
    /// to finish) and sections run one at a time: a product computes the same bits whatever
    /// other threads of the process (tests running in parallel) are doing. Only the workers
    /// started here may call `sgemm` inside the section: a thread `body` starts itself would wait
    /// for the section, which waits for it.
    public static func whileSingleThreaded(workers: Int, _ body: (Int) -> Void) -> Bool {
        guard workers > 1, threads > 1, gpk_blas_section_begin() != 0 else { return false }
        defer { gpk_blas_section_end() }
        guard threads > 1 else { return false }
        openblas_set_num_threads(1)
        DispatchQueue.concurrentPerform(iterations: workers) { w in
            let was = gpk_blas_worker_begin()
            defer { gpk_blas_worker_end(was) }
            body(w)
        }
        openblas_set_num_threads(Int32(threads))
        return true
    }

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
    // Outside a section this waits for one to end (see `BLAS.whileSingleThreaded`).
    let locked = gpk_blas_call_begin()
    defer { gpk_blas_call_end(locked) }
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
}

/// out (M, N) = x (M, K) · Wᵀ (+ out when `accumulate`), W (N, K) row-major: the Linear form.
@inline(__always)
public func matmulLinear(_ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
                         m: Int, n: Int, k: Int, accumulate: Bool = false) {
    sgemm(transB: true, m: m, n: n, k: k, a: x, lda: k, b: w, ldb: k, beta: accumulate ? 1 : 0, c: out, ldc: n)
}
