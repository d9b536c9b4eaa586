import COpenBLAS
import Foundation

/// Products with a weight W (out, in) held in a compact form (quantized codes, bf16/f16 halves)
/// that is expanded to float32 a tile of rows at a time into this thread's `QuantWorkspace` and
/// multiplied with `cblas_sgemm`: the float weights never exist in full. `QuantizedLinear` and
/// `HalfLinear` share these loops and differ only in how they expand rows.
enum ExpandedTiles {
    /// `expand(r, dst)` writes W[r, :] as float32 into dst ((r.count, in) row-major). It is
    /// called from several threads at once on disjoint row ranges.
    typealias Expand = (Range<Int>, UnsafeMutablePointer<Float>) -> Void

    /// Rows of one tile for width `n` under `tileElements` weights, at least one, at most `rows`.
    static func tileRows(_ tileElements: Int, width n: Int, rows: Int) -> Int {
        max(1, min(rows, tileElements / max(n, 1)))
    }

    /// out[:, band − band.lowerBound] (row stride `ldo`) = x (M, n) · W[band, :]ᵀ, or += with
    /// `accumulate`: tile by tile, each tile's rows expanded by the threads together, then one sgemm.
    static func forward(_ x: UnsafePointer<Float>, rows m: Int, width n: Int, outputs band: Range<Int>,
                        into out: UnsafeMutablePointer<Float>, ldo: Int, accumulate: Bool, tileElements: Int,
                        expand: Expand) {
        guard m > 0, !band.isEmpty else { return }
        // Each thread expands its own share of the band and multiplies it on single-threaded sgemm:
        // no hand-over between the expanding threads and OpenBLAS's workers at every tile, which
        // on a loaded machine left one side spinning in sched_yield while the other was descheduled.
        let parts = min(activeCores, band.count / 64)
        if m >= 64, BLAS.whileSingleThreaded(workers: parts, { p in
            let lo = band.lowerBound + band.count * p / parts, hi = band.lowerBound + band.count * (p + 1) / parts
            forwardTiles(x, rows: m, width: n, outputs: lo ..< hi, into: out + (lo - band.lowerBound), ldo: ldo,
                         accumulate: accumulate, tileElements: tileElements / parts, expand: expand, threaded: false)
        }) { return }
        forwardTiles(x, rows: m, width: n, outputs: band, into: out, ldo: ldo, accumulate: accumulate,
                     tileElements: tileElements, expand: expand, threaded: true)
    }

    /// `forward` with every tile expanded and multiplied on the calling thread, one after another
    /// (OpenBLAS's thread count is the caller's to set): the row-band decoder's workers.
    static func forwardOnCallingThread(_ x: UnsafePointer<Float>, rows m: Int, width n: Int, outputs band: Range<Int>,
                                       into out: UnsafeMutablePointer<Float>, ldo: Int, accumulate: Bool,
                                       tileElements: Int, expand: Expand) {
        guard m > 0, !band.isEmpty else { return }
        forwardTiles(x, rows: m, width: n, outputs: band, into: out, ldo: ldo, accumulate: accumulate,
                     tileElements: tileElements, expand: expand, threaded: false)
    }

    /// `forward` tile by tile on this thread's workspace; with `threaded`, each tile's rows are
    /// expanded by the threads together.
    private static func forwardTiles(_ x: UnsafePointer<Float>, rows m: Int, width n: Int, outputs band: Range<Int>,
                                     into out: UnsafeMutablePointer<Float>, ldo: Int, accumulate: Bool, tileElements: Int,
                                     expand: Expand, threaded: Bool) {
        let tile = tileRows(tileElements, width: n, rows: band.count)
        let scratch = QuantWorkspace.current.buffer(.weightTile, bytes: tile * n * 4).bindMemory(to: Float.self, capacity: tile * n)
        var r0 = band.lowerBound
        while r0 < band.upperBound {
            let r1 = min(band.upperBound, r0 + tile)
            if threaded { expandTile(r0 ..< r1, width: n, into: scratch, expand: expand) } else { expand(r0 ..< r1, scratch) }
            sgemm(transB: true, m: m, n: r1 - r0, k: n, a: x, lda: n, b: scratch, ldb: n,
                  beta: accumulate ? 1 : 0, c: out + (r0 - band.lowerBound), ldc: ldo)
            r0 = r1
        }
    }

    /// dx (M, n) += dy (M, outFeatures) · W, W expanded tile by tile as in `forward`.
    static func backward(_ dy: UnsafePointer<Float>, rows m: Int, outFeatures: Int, width n: Int,
                         into dx: UnsafeMutablePointer<Float>, tileElements: Int, expand: Expand) {
        guard m > 0, outFeatures > 0 else { return }
        let tile = tileRows(tileElements, width: n, rows: outFeatures)
        let scratch = QuantWorkspace.current.buffer(.weightTile, bytes: tile * n * 4).bindMemory(to: Float.self, capacity: tile * n)
        var r0 = 0
        while r0 < outFeatures {
            let r1 = min(outFeatures, r0 + tile)
            expandTile(r0 ..< r1, width: n, into: scratch, expand: expand)
            // dx += dy[:, r0..<r1] (M, t) · W[r0..<r1, :] (t, n)
            sgemm(m: m, n: n, k: r1 - r0, a: dy + r0, lda: outFeatures, b: scratch, ldb: n, beta: 1, c: dx, ldc: n)
            r0 = r1
        }
    }

    /// W[r, :] into `scratch`, the rows split between threads when there are enough of them.
    private static func expandTile(_ r: Range<Int>, width n: Int, into scratch: UnsafeMutablePointer<Float>, expand: Expand) {
        let t = r.count
        let parts = min(activeCores, max(1, t / 16))
        if parts == 1 { expand(r, scratch); return }
        DispatchQueue.concurrentPerform(iterations: parts) { p in
            let a = r.lowerBound + t * p / parts, b = r.lowerBound + t * (p + 1) / parts
            expand(a ..< b, scratch + (a - r.lowerBound) * n)
        }
    }
}
