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

/// Hugging Face Llama parameter names.
public enum LlamaNames {
    public static func layer(_ l: Int) -> String { "model.layers.\(l)." }
    public static func q(_ l: Int) -> String { layer(l) + "self_attn.q_proj.weight" }
    public static func k(_ l: Int) -> String { layer(l) + "self_attn.k_proj.weight" }
    public static func v(_ l: Int) -> String { layer(l) + "self_attn.v_proj.weight" }
    public static func o(_ l: Int) -> String { layer(l) + "self_attn.o_proj.weight" }
    public static func gate(_ l: Int) -> String { layer(l) + "mlp.gate_proj.weight" }
    public static func up(_ l: Int) -> String { layer(l) + "mlp.up_proj.weight" }
    public static func down(_ l: Int) -> String { layer(l) + "mlp.down_proj.weight" }
    /// The bias that sits beside a `.weight` name (present only with attention_bias / mlp_bias).
    public static func bias(_ weight: String) -> String {
        String(weight.dropLast("weight".count)) + "bias"
    }
}
