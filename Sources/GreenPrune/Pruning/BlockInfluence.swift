import Foundation

/// Block Influence (ShortGPT, Men et al. 2024): BIₗ = 1 − mean over tokens of
/// cos(xₗ, xₗ₊₁), the cosine between the hidden state entering layer l and the one leaving it.
/// A layer that barely changes its input scores low and is removed first by `--importance bi`.
public struct BlockInfluence {
    /// Σ over tokens of cos(in, out), per layer.
    public private(set) var cosineSum: [Double]
    /// Tokens accumulated.
    public private(set) var tokens: Int = 0

    public init(layers: Int) { cosineSum = [Double](repeating: 0, count: layers) }

    /// Adds the hidden states around layer `l`: `input`, `output` (T, C) row-major.
    public mutating func add(layer l: Int, input: UnsafePointer<Float>, output: UnsafePointer<Float>, tokens t: Int, hidden c: Int) {
        var s = 0.0
        for i in 0..<t {
            var dot = 0.0, na = 0.0, nb = 0.0
            for j in 0..<c {
                let a = Double(input[i * c + j]), b = Double(output[i * c + j])
                dot += a * b
                na += a * a
                nb += b * b
            }
            s += na > 0 && nb > 0 ? dot / (na.squareRoot() * nb.squareRoot()) : 1
        }
        cosineSum[l] += s
        if l == 0 { tokens += t }
    }

    /// BI per layer.
    public var scores: [Double] {
        cosineSum.map { tokens > 0 ? 1 - $0 / Double(tokens) : 0 }
    }

    /// The `n` layers with the lowest BI among `eligible`, ascending by index.
    public static func layersToRemove(_ bi: [Double], eligible: [Int], count n: Int) -> [Int] {
        eligible.sorted { (bi[$0], $0) < (bi[$1], $1) }.prefix(n).sorted()
    }
}
