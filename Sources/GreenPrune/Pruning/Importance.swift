import Foundation

/// The gradient statistics of one weight that Taylor importance needs, same shape as the weight.
public struct WeightGradients: Sendable {
    /// G = ∂L/∂W on the whole calibration batch (L = mean token loss).
    public var grad: [Float]
    /// A = (1/N) Σₙ Gₙ ⊙ Gₙ, the mean of squared per-sample gradients (Fisher diagonal,
    /// LLM-Pruner's `acc_grad`); nil unless a second-order variant asked for it.
    public var fisher: [Float]?

    public init(grad: [Float], fisher: [Float]? = nil) {
        self.grad = grad
        self.fisher = fisher
    }
}

/// Scores every row or column of a Linear weight [out, in]; groups sum these per unit.
public protocol ImportanceEstimator {
    /// Whether this estimator needs G (and A) of the prunable weights.
    var needsGradients: Bool { get }
    /// Whether it needs the per-sample Fisher term A.
    var needsFisher: Bool { get }
    /// Score of each row (`axis == .row`, length out) or column (length in) of `weight`'s
    /// matrix W (out, in): float32 (`DenseLinear`) or half precision (`HalfLinear`, read through
    /// `ProjectionRows`).
    func channelScores(name: String, weight: any LinearLayer, gradients: WeightGradients?, axis: GroupAxis) throws -> [Double]
}

extension ImportanceEstimator {
    public var needsGradients: Bool { false }
    public var needsFisher: Bool { false }
}

/// `--importance`: which estimator scores the units.
public enum ImportanceKind: String, CaseIterable, Codable, Sendable {
    case random, l1, l2, taylor
    /// Block Influence (ShortGPT): removes whole layers instead of units.
    case bi
}

/// How the member scores of one unit combine (`--group-reduction`).
public enum GroupReduction: String, CaseIterable, Codable, Sendable {
    case sum, mean, max, prod, first

    /// Combines member scores (root first).
    public func reduce(_ xs: [Double]) -> Double {
        guard let head = xs.first else { return 0 }
        switch self {
        case .sum: return xs.reduce(0, +)
        case .mean: return xs.reduce(0, +) / Double(xs.count)
        case .max: return xs.max() ?? head
        case .prod: return xs.reduce(1, *)
        case .first: return head
        }
    }
}

/// Unit scores of one layer: one per MLP channel and one per attention unit.
public struct LayerScores: Equatable, Sendable {
    /// [intermediate] score of each MLP channel.
    public var mlp: [Double]
    /// [numKVHeads] for `kv-group`, [numHeads] for `query-head`.
    public var attention: [Double]

    public init(mlp: [Double], attention: [Double]) {
        self.mlp = mlp
        self.attention = attention
    }
}

/// Builds an estimator from the command-line choices; `bi` is scored by `BlockInfluence`.
public func makeImportanceEstimator(_ kind: ImportanceKind, taylor: TaylorVariant, seed: UInt64) throws -> ImportanceEstimator {
    switch kind {
    case .random: return RandomImportance(seed: seed)
    case .l1: return MagnitudeImportance(p: 1)
    case .l2: return MagnitudeImportance(p: 2)
    case .taylor: return TaylorImportance(variant: taylor)
    case .bi: throw InputError("--importance", "bi removes whole layers and has no per-channel estimator")
    }
}

/// Scores the units of layer `l`.
///
/// A member's score for a unit is the sum of its channel scores over the rows/columns the unit
/// owns; `reduction` combines the members. With `llmprunerCompat` and the `kv-group` unit, it
/// reproduces LLM-Pruner's as-coded GQA scoring instead: every member vector is folded to the
/// k_proj length C = numKVHeads·headDim (channel c gathers c, c+C, c+2C, …), the members are
/// reduced per channel, and each KV head sums its headDim consecutive channels — so KV head h
/// is scored with query heads h, h+numKVHeads, … rather than its own (README `_as_coded`).
public func scoreLayer(_ l: Int, dims: BlockDims, headDim hd: Int, unit: AttentionUnit,
                      estimator: ImportanceEstimator, reduction: GroupReduction, llmprunerCompat: Bool,
                      weights: LlamaWeights, gradients: [String: WeightGradients]) throws -> LayerScores {
    var cache: [String: [Double]] = [:]
    func channels(_ name: String, _ axis: GroupAxis) throws -> [Double] {
        let key = name + "#" + axis.rawValue
        if let c = cache[key] { return c }
        let w = try weights.projection(name)
        let g = gradients[name]
        if estimator.needsGradients && g == nil { throw InputError(name, "no gradient computed for this weight") }
        let c = try estimator.channelScores(name: name, weight: w, gradients: g, axis: axis)
        cache[key] = c
        return c
    }
    func memberScore(_ m: GroupMember) throws -> Double {
        let c = try channels(m.tensor, m.axis)
        return m.indices.reduce(0.0) { $0 + c[$1] }
    }

    // MLP channels: gate row j, up row j, down column j.
    let gate = try channels(LlamaNames.gate(l), .row)
    let up = try channels(LlamaNames.up(l), .row)
    let down = try channels(LlamaNames.down(l), .column)
    let mlp = (0..<dims.intermediate).map { reduction.reduce([gate[$0], up[$0], down[$0]]) }

    var attention: [Double] = []
    switch unit {
    case .queryHead:
        for i in 0..<dims.numHeads {
            attention.append(reduction.reduce(try Groups.queryHead(layer: l, head: i, headDim: hd).map(memberScore)))
        }
    case .kvGroup where llmprunerCompat:
        let k = try channels(LlamaNames.k(l), .row), v = try channels(LlamaNames.v(l), .row)
        let q = try channels(LlamaNames.q(l), .row), o = try channels(LlamaNames.o(l), .column)
        let c = k.count
        func fold(_ x: [Double]) -> [Double] {
            var f = [Double](repeating: 0, count: c)
            for (i, s) in x.enumerated() { f[i % c] += s }
            return f
        }
        let qf = fold(q), of = fold(o)
        let perChannel = (0..<c).map { reduction.reduce([k[$0], of[$0], v[$0], qf[$0]]) }
        for h in 0..<dims.numKVHeads {
            attention.append(perChannel[h * hd ..< (h + 1) * hd].reduce(0, +))
        }
    case .kvGroup:
        for h in 0..<dims.numKVHeads {
            let members = Groups.kvGroup(layer: l, kvHead: h, nRep: dims.nRep, headDim: hd)
            attention.append(reduction.reduce(try members.map(memberScore)))
        }
    }
    return LayerScores(mlp: mlp, attention: attention)
}
