import Foundation

/// W (out, in) of a projection that pruning scores, read as float32 rows in order, a block of rows
/// at a time (`LinearLayer.weightRows`: float32 copied, halves widened exactly) into one reused
/// block of at most `blockElements` values, so importance reads half-precision weights without a
/// float copy of the matrix. The visiting order is the same for every storage, so sums over it
/// are the same for equal values.
public enum ProjectionRows {
    /// Most values of a widened block (4 MiB of float32).
    public static let blockElements = 1 << 20

    /// Calls `body(rows, w)` for consecutive row ranges covering 0 ..< out, `w` holding those
    /// rows ((rows.count, in) row-major). A quantized layer is an error naming `name`.
    public static func forEachBlock(_ layer: any LinearLayer, name: String,
                                    _ body: (_ rows: Range<Int>, _ w: UnsafePointer<Float>) throws -> Void) throws {
        let r = layer.outFeatures, c = layer.inFeatures
        guard layer.weightStorage.isFloat else {
            throw InputError(name, "is quantized; importance needs float32 or half-precision weights")
        }
        let step = max(1, min(r, blockElements / max(c, 1)))
        let block = UnsafeMutablePointer<Float>.allocate(capacity: max(1, step * c))
        defer { block.deallocate() }
        var r0 = 0
        while r0 < r {
            let rows = r0 ..< min(r, r0 + step)
            try layer.weightRows(rows, into: block)
            try body(rows, block)
            r0 = rows.upperBound
        }
    }
}
