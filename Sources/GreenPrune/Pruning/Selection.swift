import Foundation

/// The units one layer keeps after pruning, as indices into the layer's widths before it.
public struct LayerKeep: Codable, Equatable, Sendable {
    public var layer: Int
    /// Query heads kept, ascending (grouped by KV head).
    public var queryHeads: [Int]
    /// KV heads kept, ascending.
    public var kvHeads: [Int]
    /// MLP channels kept, ascending.
    public var mlpChannels: [Int]

    enum CodingKeys: String, CodingKey {
        case layer
        case queryHeads = "query_heads"
        case kvHeads = "kv_heads"
        case mlpChannels = "mlp_channels"
    }

    public init(layer: Int, queryHeads: [Int], kvHeads: [Int], mlpChannels: [Int]) {
        self.layer = layer
        self.queryHeads = queryHeads
        self.kvHeads = kvHeads
        self.mlpChannels = mlpChannels
    }

    /// Everything kept.
    public static func all(layer: Int, _ d: BlockDims) -> LayerKeep {
        LayerKeep(layer: layer, queryHeads: Array(0..<d.numHeads), kvHeads: Array(0..<d.numKVHeads),
                  mlpChannels: Array(0..<d.intermediate))
    }

    /// The widths after pruning.
    public var dims: BlockDims {
        BlockDims(numHeads: queryHeads.count, numKVHeads: kvHeads.count, intermediate: mlpChannels.count)
    }

    /// Maps this step's indices back through an earlier keep (iterative pruning).
    public func composed(after earlier: LayerKeep) -> LayerKeep {
        LayerKeep(layer: layer, queryHeads: queryHeads.map { earlier.queryHeads[$0] },
                  kvHeads: kvHeads.map { earlier.kvHeads[$0] },
                  mlpChannels: mlpChannels.map { earlier.mlpChannels[$0] })
    }
}

/// Chooses the units to remove from their scores: lowest first, ties to the lower index.
public enum Selection {
    /// Indices of the `n` lowest scores among `candidates`.
    static func lowest(_ scores: [Double], among candidates: [Int], count n: Int) -> Set<Int> {
        let sorted = candidates.sorted { (scores[$0], $0) < (scores[$1], $1) }
        return Set(sorted.prefix(max(0, n)))
    }

    /// Applies per-layer counts (local pruning) or their total as one threshold per unit kind
    /// (global pruning, each layer keeping at least one unit — one query head per KV group).
    public static func select(scores: [Int: LayerScores], counts: [PrunePolicy.LayerCount], geometry g: PruneGeometry,
                              unit: AttentionUnit, global: Bool) -> [LayerKeep] {
        var removeAttn: [Int: Int] = [:], removeMLP: [Int: Int] = [:]
        for c in counts {
            removeAttn[c.layer] = c.attention
            removeMLP[c.layer] = c.mlp
        }
        if global {
            removeMLP = globalCounts(scores: scores.mapValues { $0.mlp }, total: counts.reduce(0) { $0 + $1.mlp },
                                     floor: { _ in 1 }, eligible: counts.filter { $0.mlp > 0 }.map(\.layer))
            let eligible = counts.filter { $0.attention > 0 }.map(\.layer)
            switch unit {
            case .kvGroup:
                removeAttn = globalCounts(scores: scores.mapValues { $0.attention }, total: counts.reduce(0) { $0 + $1.attention },
                                          floor: { _ in 1 }, eligible: eligible)
            case .queryHead:
                // Heads compete across layers; a layer then removes ⌊n / numKVHeads⌋ per group.
                let total = counts.reduce(0) { $0 + $1.attention * g.layers[$1.layer].numKVHeads }
                let heads = globalCounts(scores: scores.mapValues { $0.attention }, total: total,
                                         floor: { g.layers[$0].numKVHeads }, eligible: eligible)
                removeAttn = heads.reduce(into: [:]) { $0[$1.key] = $1.value / max(1, g.layers[$1.key].numKVHeads) }
            }
        }
        var out: [LayerKeep] = []
        for (l, d) in g.layers.enumerated() {
            var keep = LayerKeep.all(layer: l, d)
            guard let s = scores[l] else { out.append(keep); continue }
            let m = removeMLP[l] ?? 0
            if m > 0 {
                let gone = lowest(s.mlp, among: Array(0..<d.intermediate), count: m)
                keep.mlpChannels = keep.mlpChannels.filter { !gone.contains($0) }
            }
            let a = removeAttn[l] ?? 0
            if a > 0 {
                switch unit {
                case .kvGroup:
                    let gone = lowest(s.attention, among: Array(0..<d.numKVHeads), count: a)
                    keep.kvHeads = keep.kvHeads.filter { !gone.contains($0) }
                    keep.queryHeads = keep.kvHeads.flatMap { Array($0 * d.nRep ..< ($0 + 1) * d.nRep) }
                case .queryHead:
                    var gone = Set<Int>()
                    for h in 0..<d.numKVHeads {
                        gone.formUnion(lowest(s.attention, among: Array(h * d.nRep ..< (h + 1) * d.nRep), count: a))
                    }
                    keep.queryHeads = keep.queryHeads.filter { !gone.contains($0) }
                }
            }
            out.append(keep)
        }
        return out
    }

    /// Splits `total` removals across layers by ranking all their units together; a layer of
    /// n units loses at most n − floor(layer).
    static func globalCounts(scores: [Int: [Double]], total: Int, floor: (Int) -> Int, eligible: [Int]) -> [Int: Int] {
        var pool: [(score: Double, layer: Int, index: Int)] = []
        for l in eligible { for (i, s) in (scores[l] ?? []).enumerated() { pool.append((s, l, i)) } }
        pool.sort { ($0.score, $0.layer, $0.index) < ($1.score, $1.layer, $1.index) }
        var removed: [Int: Int] = [:]
        var left = total
        for u in pool where left > 0 {
            let cap = (scores[u.layer]?.count ?? 0) - floor(u.layer)
            if removed[u.layer, default: 0] < cap {
                removed[u.layer, default: 0] += 1
                left -= 1
            }
        }
        return removed
    }
}
