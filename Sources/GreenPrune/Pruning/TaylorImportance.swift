import Foundation

/// `--taylor`: LLM-Pruner's four Taylor-importance variants.
public enum TaylorVariant: String, CaseIterable, Codable, Sendable {
    /// S = W ⊙ G; a channel scores |Σ S| over its row/column.
    case vectorize
    /// S = W ⊙ G; a channel scores Σ |S|.
    case paramFirst = "param_first"
    /// S = W ⊙ A ⊙ W (A: mean squared per-sample gradient); Σ |S|.
    case paramSecond = "param_second"
    /// S = W ⊙ G − ½ W ⊙ A ⊙ W; Σ |S|.
    case paramMix = "param_mix"
}

/// First/second-order Taylor importance of the loss change when a weight is zeroed
/// (LLM-Pruner §3.2, `TaylorImportance`): element salience S from W, G = ∂L/∂W and the
/// Fisher diagonal A, reduced per row or column. Computed in float64.
public struct TaylorImportance: ImportanceEstimator {
    public var variant: TaylorVariant

    public init(variant: TaylorVariant) { self.variant = variant }

    public var needsGradients: Bool { true }
    public var needsFisher: Bool { variant == .paramSecond || variant == .paramMix }

    public func channelScores(name: String, weight: any LinearLayer, gradients: WeightGradients?, axis: GroupAxis) throws -> [Double] {
        let r = weight.outFeatures, c = weight.inFeatures, count = r * c
        guard let g = gradients, g.grad.count == count else {
            throw InputError(name, "Taylor importance needs the gradient of this weight")
        }
        let fisher = g.fisher ?? []
        if needsFisher && fisher.count != count {
            throw InputError(name, "\(variant.rawValue) needs per-sample gradients (Fisher term)")
        }
        var out = [Double](repeating: 0, count: axis == .row ? r : c)
        let variant = self.variant
        // W is read a block of rows at a time (half weights widened block by block); `e` indexes
        // G and A over the whole matrix, `w` the block.
        try g.grad.withUnsafeBufferPointer { gr in
            try fisher.withUnsafeBufferPointer { a in
                try ProjectionRows.forEachBlock(weight, name: name) { rows, w in
                    for i in rows {
                        let row = w + (i - rows.lowerBound) * c
                        for j in 0..<c {
                            let e = i * c + j
                            let wd = Double(row[j])
                            let s: Double
                            switch variant {
                            case .vectorize, .paramFirst: s = wd * Double(gr[e])
                            case .paramSecond: s = wd * Double(a[e]) * wd
                            case .paramMix: s = wd * Double(gr[e]) - 0.5 * wd * Double(a[e]) * wd
                            }
                            out[axis == .row ? i : j] += variant == .vectorize ? s : abs(s)
                        }
                    }
                }
            }
        }
        if variant == .vectorize { out = out.map(abs) }
        return out
    }
}
