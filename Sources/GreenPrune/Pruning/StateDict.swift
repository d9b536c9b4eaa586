import Foundation

/// One float32 tensor of a checkpoint, row-major (`shape` [out, in] for a Linear weight).
public struct StateTensor: Equatable, Sendable {
    public var shape: [Int]
    public var values: [Float]

    public init(shape: [Int], values: [Float]) {
        self.shape = shape
        self.values = values
    }

    /// Rows of a 2-D tensor (`shape[0]`), or the length of a 1-D one.
    public var rows: Int { shape.first ?? 0 }
    /// Columns of a 2-D tensor (1 for a vector).
    public var cols: Int { shape.count >= 2 ? shape[1] : 1 }

    /// The rows `keep` (in that order) of a [rows, cols] tensor (or entries of a vector).
    public func selectingRows(_ keep: [Int]) -> StateTensor {
        let c = cols
        var out = [Float](repeating: 0, count: keep.count * c)
        values.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for (i, r) in keep.enumerated() {
                    for j in 0..<c { dst[i * c + j] = src[r * c + j] }
                }
            }
        }
        var s = shape
        s[0] = keep.count
        return StateTensor(shape: s, values: out)
    }

    /// The columns `keep` (in that order) of a [rows, cols] tensor.
    public func selectingColumns(_ keep: [Int]) -> StateTensor {
        let r = rows, c = cols, k = keep.count
        var out = [Float](repeating: 0, count: r * k)
        values.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for i in 0..<r {
                    for (j, col) in keep.enumerated() { dst[i * k + j] = src[i * c + col] }
                }
            }
        }
        return StateTensor(shape: [r, k], values: out)
    }
}

/// A checkpoint as a map from Hugging Face parameter name to tensor.
public typealias StateDict = [String: StateTensor]
