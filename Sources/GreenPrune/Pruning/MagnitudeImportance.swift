import Foundation

/// Magnitude importance (`l1`, `l2`): a row's or column's Σ|w|ᵖ, as Torch-Pruning's
/// `MagnitudeImportance(p)` (no root; LLM-Pruner pairs l2 with group reduction `mean`).
public struct MagnitudeImportance: ImportanceEstimator {
    public var p: Int

    public init(p: Int) { self.p = p }

    public func channelScores(name: String, weight: any LinearLayer, gradients: WeightGradients?, axis: GroupAxis) throws -> [Double] {
        let r = weight.outFeatures, c = weight.inFeatures
        var out = [Double](repeating: 0, count: axis == .row ? r : c)
        try ProjectionRows.forEachBlock(weight, name: name) { rows, w in
            for i in rows {
                let row = w + (i - rows.lowerBound) * c
                for j in 0..<c {
                    let x = Double(row[j])
                    let s = p == 1 ? abs(x) : x * x
                    out[axis == .row ? i : j] += s
                }
            }
        }
        return out
    }
}
